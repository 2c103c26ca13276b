"""The client nonce carried in SNI (fresh mode).

A 32-byte nonce is 64 hex characters: too long for one DNS label (63 at most, which stdlib
peers enforce), so it travels as two 32-character labels under a fixed suffix::

    <hex[0:32]>.<hex[32:64]>.nonce.atls
"""

from __future__ import annotations

import re

from atls.binding import NONCE_SIZE

__all__ = ["SNI_SUFFIX", "decode_nonce_sni", "encode_nonce_sni"]

SNI_SUFFIX = ".nonce.atls"
_RE = re.compile(r"^([0-9a-f]{32})\.([0-9a-f]{32})\.nonce\.atls$")


def encode_nonce_sni(nonce: bytes) -> str:
    """The SNI value carrying a 32-byte nonce (labels of at most 63 characters)."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    h = nonce.hex()
    return f"{h[:32]}.{h[32:]}{SNI_SUFFIX}"


def decode_nonce_sni(name: bytes | str | None) -> bytes | None:
    """The nonce in an SNI value, or None if it carries none."""
    if name is None:
        return None
    s = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    m = _RE.match(s.lower())
    return bytes.fromhex(m.group(1) + m.group(2)) if m else None
