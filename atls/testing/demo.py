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
from atls.trust import TrustStore

__all__ = ["DEMO_PLATFORMS", "demo_attester", "demo_trust_store"]

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
