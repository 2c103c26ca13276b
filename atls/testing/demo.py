"""The demo material behind ``atls demo``, ``atls serve --attester simulated`` and
``atls connect --allow-simulated``.

The fake hierarchies are deterministic functions of their default seed, so a server in one
process and a client in another agree on the simulated roots without sharing a file. The keys
are public (anyone can rebuild them from this source): simulated evidence proves nothing, and
these roots are accepted only by a trust store built with ``allow_simulated=True``.
"""

from __future__ import annotations

from collections.abc import Iterable

from atls.attest.simulated import SimulatedAttester
from atls.collateral import Collateral
from atls.trust import TrustStore

__all__ = [
    "DEMO_PLATFORMS",
    "demo_attester",
    "demo_collateral",
    "demo_root_pems",
    "demo_trust_store",
]

DEMO_PLATFORMS = ("snp", "tdx")


def demo_attester(platform: str = "snp") -> SimulatedAttester:
    """A simulated attester for ``platform`` (``snp`` or ``tdx``) on the default seed."""
    if platform == "snp":
        return SimulatedAttester("snp")
    if platform == "tdx":
        return SimulatedAttester("tdx")
    raise ValueError(f"no simulated platform {platform!r} ({', '.join(DEMO_PLATFORMS)})")


def demo_trust_store(platforms: Iterable[str] = DEMO_PLATFORMS) -> TrustStore:
    """A trust store (``allow_simulated=True``) holding the simulated roots of ``platforms``."""
    store = TrustStore(allow_simulated=True)
    for platform in platforms:
        store = store.merged(demo_attester(platform).trust_store())
    return store


def demo_collateral(platforms: Iterable[str] = DEMO_PLATFORMS) -> Collateral:
    """The simulated hierarchies' collateral (VCEK chain and CRL; PCK CRLs, TCB info, QE
    identity), for clients of servers that do not staple it (e.g. the Cocos profile)."""
    out = Collateral()
    for platform in platforms:
        out = out.merged(demo_attester(platform).collateral())
    return out


def demo_root_pems() -> dict[str, bytes]:
    """``{file name: PEM}`` of the simulated roots (SNP ARK, Intel root, TPM AK CA root), as
    committed under ``certs/`` (``python -m atls.testing certs``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from atls.testing.tpm import FakeTpmCa

    stores = {
        "simulated-amd-ark-milan.pem": demo_attester("snp").trust_store(),
        "simulated-intel-sgx-root.pem": demo_attester("tdx").trust_store(),
        "simulated-tpm-ak-root.pem": FakeTpmCa().trust_store(),
    }
    out: dict[str, bytes] = {}
    for name, store in stores.items():
        (anchor,) = store.anchors
        out[name] = x509.load_der_x509_certificate(anchor.der).public_bytes(Encoding.PEM)
    return out

