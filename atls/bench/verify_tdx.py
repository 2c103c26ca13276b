"""Time the verification of one TDX or SGX quote with given collateral.

``python -m atls.bench verify-tdx --evidence E --collateral C... --at T --trust-dir D
--repeat N [--cold] [--allow-simulated] [--json]``

Prints the median wall-clock time of ``repeat`` verifications (``{"median_s": ...}`` with
``--json``). Warm by default: the first verification fills the caches (verified collateral
and PCK chain) and is not counted. With ``--cold`` every verification starts from empty
caches. ``benchmarks/tdx_vs_dcap_qvl.py`` compares both against dcap-qvl on the same quotes.
"""

from __future__ import annotations

import argparse
import binascii
import datetime as _dt
import json
import statistics
import time
from pathlib import Path

from atls.collateral import load_collateral
from atls.errors import AtlsError
from atls.evidence.tdx import SGX_QUOTE, TDX_QUOTE, clear_caches
from atls.trust import TrustStore

__all__ = ["main", "parse_at", "read_evidence"]


def parse_at(value: str) -> _dt.datetime:
    """ISO 8601 (``Z`` allowed) or unix seconds; a time without a zone is UTC."""
    if value.lstrip("-").replace(".", "", 1).isdigit():
        return _dt.datetime.fromtimestamp(float(value), _dt.UTC)
    t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def read_evidence(path: str) -> bytes:
    """Raw quote bytes, or the quote as hex text (``0x`` prefix allowed)."""
    data = Path(path).read_bytes()
    text = data.strip()
    if text.startswith((b"0x", b"0X")):
        text = text[2:]
    if text and len(text) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in text[:64]):
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            pass
    return data


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m atls.bench verify-tdx", description=__doc__)
    p.add_argument("--evidence", required=True, help="quote file (raw or hex)")
    p.add_argument("--collateral", nargs="+", default=[], help="collateral files/directories")
    p.add_argument("--at", required=True, help="verification time (ISO 8601 or unix seconds)")
    p.add_argument("--trust-dir", required=True, help="trust directory (Intel SGX Root CA)")
    p.add_argument("--repeat", type=int, default=200)
    p.add_argument("--cold", action="store_true", help="empty the caches before each run")
    p.add_argument("--allow-simulated", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.repeat < 1:
        p.error("--repeat must be at least 1")
    try:
        evidence = read_evidence(a.evidence)
        fmt = SGX_QUOTE if SGX_QUOTE.sniff(evidence) else TDX_QUOTE
        trust = TrustStore.from_directory(a.trust_dir, allow_simulated=a.allow_simulated)
        collateral = load_collateral(a.collateral)
        at = parse_at(a.at)
        clear_caches()
        first = fmt.verify(evidence, trust=trust, collateral=collateral, at=at)
        times: list[float] = []
        for _ in range(a.repeat):
            if a.cold:
                clear_caches()
            t0 = time.perf_counter()
            fmt.verify(evidence, trust=trust, collateral=collateral, at=at)
            times.append(time.perf_counter() - t0)
    except (AtlsError, OSError, ValueError) as e:
        print(json.dumps({"error": str(e)}) if a.json else f"error: {e}")
        return 1
    result = {
        "median_s": statistics.median(times),
        "mode": "cold" if a.cold else "warm",
        "repeat": a.repeat,
        "format": fmt.name,
        "tcb_status": first.tcb_status,
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(
            f"{fmt.name} {result['mode']}: median {result['median_s'] * 1e6:.0f} us over "
            f"{a.repeat} runs (TCB status {first.tcb_status})"
        )
    return 0
