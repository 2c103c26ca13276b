"""atls's DCAP verifier versus dcap-qvl (PyPI, Rust) on the same quotes, in one run.

    python benchmarks/tdx_vs_dcap_qvl.py [--rounds N] [--json]

For each real quote of the shared test vectors that has dcap-qvl-form collateral and
verifies (dcap-qvl's own samples, zkdcap's, go-tdx-guest's v5 sample cross-paired), it
measures, alternating one call of each per round so that machine noise hits all alike:

* ``dcap-qvl``: ``dcap_qvl.verify(quote, QuoteCollateralV3, now)`` (collateral object built
  once, as a caller would keep it);
* ``cold``: atls ``verify`` after ``clear_caches()`` (nothing cached: PCK chain, CRLs,
  TCB info, QE identity, QE report and quote signatures all checked);
* ``warm``: atls ``verify`` of the same quote again (verified collateral, PCK chain and QE
  report cached by exact bytes within their validity windows: one signature is checked);
* ``new platform``: atls after ``clear_caches(keep_collateral=True)`` (a quote from a
  platform not seen before, with collateral already verified).

It prints medians and the ratios to dcap-qvl. Nothing is asserted. The vectors are found
through ``$ATLS_TEST_VECTORS`` (default ``../shared/vectors`` beside the checkout).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dcap_qvl

from atls.collateral.intel import collateral_from_dcap_qvl_json
from atls.evidence.tdx import SGX_QUOTE, TDX_QUOTE, clear_caches
from atls.trust import TrustStore

CASES = [
    # (name, quote, dcap-qvl collateral JSON, unix time)
    (
        "tdx v4 (dcap-qvl)",
        "tdx/dcap-qvl/tdx_quote",
        "tdx/dcap-qvl/tdx_quote_collateral.json",
        1752919234,
    ),
    (
        "tdx v4 (near)",
        "tdx/dcap-qvl/near_quote.bin",
        "tdx/dcap-qvl/near_quote_collateral.json",
        1759388630,
    ),
    (
        "tdx v4 (zkdcap)",
        "tdx/zkdcap/quote_tdx_00806f050000.dat",
        "tdx/zkdcap/quote_tdx_00806f050000.dat.dcap-qvl-collateral.json",
        1737467060,
    ),
    (
        "tdx v5 (go-tdx-guest)",
        "tdx/go-tdx-guest/quote_v5_sample.dat",
        "tdx/dcap-qvl/tdx_quote_outdated_collateral.json",
        1774003274,
    ),
    (
        "sgx v3 (dcap-qvl)",
        "sgx/dcap-qvl/sgx_quote",
        "sgx/dcap-qvl/sgx_quote_collateral.json",
        1752919277,
    ),
]


def _vectors() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "vectors"
    p = Path(os.environ.get("ATLS_TEST_VECTORS", str(default)))
    if not p.is_dir():
        sys.exit(f"test vectors not found at {p} (set ATLS_TEST_VECTORS)")
    return p


def _time(f: Callable[[], object]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def run(rounds: int) -> list[dict[str, Any]]:
    v = _vectors()
    trust = TrustStore.from_certificates([(v / "tdx/dcap-qvl/TrustedRootCA.der").read_bytes()])
    out: list[dict[str, Any]] = []
    for name, quote_path, coll_path, now in CASES:
        quote = (v / quote_path).read_bytes()
        text = (v / coll_path).read_text()
        dq_coll = dcap_qvl.QuoteCollateralV3.from_json(text)
        coll = collateral_from_dcap_qvl_json(text)
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        fmt = SGX_QUOTE if SGX_QUOTE.sniff(quote) else TDX_QUOTE

        def ours() -> object:
            return fmt.verify(quote, trust=trust, collateral=coll, at=at)  # noqa: B023

        def theirs() -> object:
            return dcap_qvl.verify(quote, dq_coll, now)  # noqa: B023

        def cold() -> float:
            clear_caches()
            return _time(ours)

        def new_platform() -> float:
            clear_caches(keep_collateral=True)
            return _time(ours)

        ours_status = ours().tcb_status  # type: ignore[attr-defined]
        theirs_status = theirs().status  # type: ignore[attr-defined]
        samples: dict[str, list[float]] = {"dcap": [], "cold": [], "warm": [], "new": []}
        for _ in range(rounds):
            samples["dcap"].append(_time(theirs))
            samples["cold"].append(cold())
            samples["new"].append(new_platform())
            ours()
            samples["warm"].append(_time(ours))
        med = {k: statistics.median(s) for k, s in samples.items()}
        out.append(
            {
                "case": name,
                "status": ours_status,
                "dcap_qvl_status": theirs_status,
                "dcap_qvl_s": med["dcap"],
                "cold_s": med["cold"],
                "new_platform_s": med["new"],
                "warm_s": med["warm"],
                "cold_ratio": med["cold"] / med["dcap"],
                "new_platform_ratio": med["new"] / med["dcap"],
                "warm_ratio": med["warm"] / med["dcap"],
            }
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    results = run(a.rounds)
    if a.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"dcap-qvl {dcap_qvl.__version__}; medians of {a.rounds} alternating rounds")
    print(
        f"{'case':24s} {'status':36s} {'dcap-qvl':>9s} {'cold':>9s} {'new plat':>9s} "
        f"{'warm':>9s}   cold x  new x  warm x"
    )
    for r in results:
        print(
            f"{r['case']:24s} {r['status']!s:36s} {r['dcap_qvl_s'] * 1e6:7.0f}us "
            f"{r['cold_s'] * 1e6:7.0f}us {r['new_platform_s'] * 1e6:7.0f}us "
            f"{r['warm_s'] * 1e6:7.0f}us   {r['cold_ratio']:.2f}  {r['new_platform_ratio']:.2f}"
            f"  {r['warm_ratio']:.2f}"
        )
    for key in ("cold_ratio", "new_platform_ratio", "warm_ratio"):
        vals = [float(r[key]) for r in results]
        print(f"median {key}: {statistics.median(vals):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
