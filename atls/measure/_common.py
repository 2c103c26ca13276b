"""Shared helpers of ``atls.measure``: hashes, extend/replay, GUIDs, typed errors.

Error convention of the whole package (stable codes, all starting with ``measure.``):

* malformed or inconsistent **artifact bytes** (a firmware image without TDVF metadata, a
  kernel that is not a PE image, an event log that does not parse) raise
  :class:`~atls.errors.EvidenceParseError` with ``format`` = ``measure.<artifact>`` and a
  ``code`` such as ``measure.ovmf.no_footer`` or ``measure.pe.not_pe``;
* bad **parameters** (memory too small for the firmware layout, zero vCPUs, an unknown vCPU
  type, a digest of the wrong length, an option combination that cannot be measured) raise
  :class:`~atls.errors.ConfigurationError` with a ``measure.*`` code.

Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

from atls.errors import ConfigurationError, EvidenceParseError

__all__ = [
    "SHA384_ZERO",
    "artifact_error",
    "config_error",
    "extend",
    "guid",
    "replay",
    "require_digest",
    "sha256",
    "sha384",
]

#: 48 zero bytes: the initial value of every RTMR and of the SNP launch digest.
SHA384_ZERO = bytes(48)


def sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def extend(register: bytes, digest: bytes) -> bytes:
    """``register = SHA-384(register || digest)`` (RTMR extend)."""
    return hashlib.sha384(register + digest).digest()


def replay(digests: Iterable[bytes], *, initial: bytes = SHA384_ZERO) -> bytes:
    """Extend ``initial`` (48 zero bytes by default) with every digest in order."""
    reg = initial
    for d in digests:
        reg = extend(reg, d)
    return reg


def guid(text: str) -> bytes:
    """A GUID in the UEFI mixed-endian byte form."""
    return uuid.UUID(text).bytes_le


def artifact_error(
    fmt: str, message: str, reason: str, *, offset: int | None = None, field: str | None = None
) -> EvidenceParseError:
    """A parse error for artifact ``fmt`` (``measure.ovmf``...) with code ``fmt.reason``."""
    return EvidenceParseError(
        message, format=fmt, offset=offset, field=field, code=f"{fmt}.{reason}"
    )


def config_error(message: str, reason: str) -> ConfigurationError:
    """A parameter error with code ``measure.<reason>``."""
    return ConfigurationError(message, code=f"measure.{reason}")


def require_digest(value: bytes, size: int, what: str) -> bytes:
    """Check that a caller-supplied digest has the right length."""
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise config_error(f"{what} must be {size} bytes, got {got}", "digest_length")
    return bytes(value)
