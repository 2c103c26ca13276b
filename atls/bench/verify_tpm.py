"""One TPM quote bundle verification, against the bare signature check it contains.

``python -m atls.bench verify-tpm [--repeat N] [--json]`` builds a bundle with the
simulated TPM (ECDSA P-256 AK certified by a two-level CA, PCRs 0-7 of the SHA-256 bank, a
TCG event log of 20 events replayed against them) and measures, alternating so that machine
noise hits all alike:

* ``signature``: ``cryptography``'s ECDSA P-256 verification of the TPMS_ATTEST bytes alone,
  the irreducible cost (the baseline);
* ``cold``: atls ``TPM_QUOTE.verify`` with the AK chain cache cleared (bundle decoding, AK
  public area and Name, AK certificate chain and validity, quote signature, PCR digest, event
  log replay);
* ``warm``: the same with the verified AK chain cached (by exact bytes, within its validity).

It prints medians and the ratios to the baseline. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["main", "run"]


def run(repeat: int = 300) -> dict[str, float]:
    from atls.evidence.tpm import DEFAULT_CHAIN_CACHE, TPM_QUOTE, decode_bundle
    from atls.testing.tpm import DEFAULT_AT, FakeTpm, FakeTpmCa

    ca = FakeTpmCa()
    tpm = FakeTpm(label="bench", ca=ca)
    for i in range(20):
        tpm.measure(i % 8, f"component {i}".encode())
    bundle = tpm.bundle(b"\x5a" * 32, event_log=True)
    trust, coll = ca.trust_store(), ca.collateral()
    parts = decode_bundle(bundle)
    key = tpm.key.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from atls.evidence.tpm import parse_signature

    sig = parse_signature(parts.signature)
    der_sig = encode_dss_signature(
        int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big")
    )

    def signature() -> None:
        key.verify(der_sig, parts.attest, ec.ECDSA(hashes.SHA256()))

    def cold() -> None:
        DEFAULT_CHAIN_CACHE.clear()
        TPM_QUOTE.verify(bundle, trust=trust, collateral=coll, at=DEFAULT_AT)

    def warm() -> None:
        TPM_QUOTE.verify(bundle, trust=trust, collateral=coll, at=DEFAULT_AT)

    samples: dict[str, list[float]] = {"signature": [], "cold": [], "warm": []}
    fns = {"signature": signature, "cold": cold, "warm": warm}
    warm()
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "signature_s": med["signature"],
        "cold_s": med["cold"],
        "warm_s": med["warm"],
        "cold_ratio": med["cold"] / med["signature"],
        "warm_ratio": med["warm"] / med["signature"],
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m atls.bench verify-tpm", description=__doc__)
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = run(args.repeat)
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"TPM quote bundle: cold {r['cold_s'] * 1e6:.0f} us ({r['cold_ratio']:.1f}x the bare "
            f"signature check, {r['signature_s'] * 1e6:.0f} us), warm {r['warm_s'] * 1e6:.0f} us "
            f"({r['warm_ratio']:.1f}x)"
        )
    return 0
