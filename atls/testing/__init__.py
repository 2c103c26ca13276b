"""Test helpers that ship with atls, in the spirit of ``trio.testing`` and ``trustme``.

Everything here is *simulated*: fake vendor hierarchies (:mod:`atls.testing.snp`,
:mod:`atls.testing.tdx`, :mod:`atls.testing.tpm`) that sign real-format evidence with
deterministic, public keys; a fake configfs-tsm (:mod:`atls.testing.fake_tsm`); a fake Intel
PCS / AMD KDS over loopback HTTPS (:mod:`atls.testing.fake_pcs`); and the demo material of
``atls demo`` (:mod:`atls.testing.demo`). Simulated roots carry a marker in their subject and
are rejected by every trust store unless it was built with ``allow_simulated=True``.
"""

from atls.testing.demo import demo_attester, demo_trust_store

__all__ = ["demo_attester", "demo_trust_store"]
