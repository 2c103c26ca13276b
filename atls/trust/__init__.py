"""Trust anchors: pinned vendor roots, loaded from a trust directory and checked on load."""

from atls.trust._store import Anchor, TrustStore, default_trust_dir, fingerprint
from atls.trust.pins import PINS, Pin

__all__ = ["PINS", "Anchor", "Pin", "TrustStore", "default_trust_dir", "fingerprint"]
