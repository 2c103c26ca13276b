"""``python -m atls.testing DIRECTORY``: write the simulated roots (PEM) into DIRECTORY.

This is how ``certs/`` is regenerated; the output is byte-identical on every run because
the fake hierarchies derive their keys from fixed seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from atls.testing.demo import demo_root_pems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m atls.testing DIRECTORY", file=sys.stderr)
        return 2
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    for name, pem in demo_root_pems().items():
        (target / name).write_bytes(pem)
        print(target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
