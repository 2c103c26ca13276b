"""certs/ holds exactly the simulated roots atls generates, and none of them is trusted
without the explicit opt-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from atls.errors import ConfigurationError
from atls.testing.demo import demo_root_pems
from atls.trust import TrustStore

CERTS = Path(__file__).resolve().parents[2] / "certs"


def test_committed_roots_are_what_the_generator_writes():
    pems = demo_root_pems()
    assert sorted(p.name for p in CERTS.glob("*.pem")) == sorted(pems)
    for name, pem in pems.items():
        stale = f"certs/{name} is stale: python -m atls.testing certs"
        assert (CERTS / name).read_bytes() == pem, stale


def test_certs_dir_is_refused_without_allow_simulated():
    with pytest.raises(ConfigurationError) as ei:
        TrustStore.from_directory(CERTS)
    assert ei.value.code == "trust.simulated_not_allowed"
    store = TrustStore.from_directory(CERTS, allow_simulated=True)
    assert len(store) == 3 and all(a.simulated for a in store.anchors)
