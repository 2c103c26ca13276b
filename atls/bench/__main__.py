"""``python -m atls.bench BENCHMARK [options]``."""

from __future__ import annotations

import importlib
import sys

_BENCHMARKS = {
    "handshake": "atls.bench.handshake",
    "verify-tdx": "atls.bench.verify_tdx",
    "verify-tpm": "atls.bench.verify_tpm",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in _BENCHMARKS:
        print(f"usage: python -m atls.bench {{{','.join(_BENCHMARKS)}}} [options]", file=sys.stderr)
        return 2
    mod = importlib.import_module(_BENCHMARKS[argv[0]])
    rc: int = mod.main(argv[1:])
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
