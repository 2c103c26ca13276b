"""The ONE definition of how report_data commits to a TLS key (and a client nonce).

Profile ``atls-v1``::

    report_data = SHA-512( b"atls-v1 report_data\\x00"
                           || u32be(len(spki_der)) || spki_der
                           || u32be(len(nonce))    || nonce )

``spki_der`` is the DER SubjectPublicKeyInfo of the leaf certificate's key; ``nonce`` is
the client's 32-byte nonce in fresh mode and empty in static mode. The length prefixes
make the encoding injective; the label separates it from every other use of SHA-512.
The result is exactly the 64 bytes of TDX/SNP report_data.

TPM quotes carry the binding in ``extraData``, which a TPM limits to the size of the
AK's name-algorithm digest. :func:`tpm_qualifying_data` reduces the 64 bytes to that size
by truncation (a prefix of a SHA-512 output is a sound hash of that length).

Published test vector (also asserted in tests/core/test_binding.py)::

    spki_der = bytes(range(91)), nonce = b""          (static mode)
      -> 37722618345595f373bd33807bd9a291c0ddd3b4fe7465f8798fed88d4f997e7
         ebe365e2082f88514c387e3b01f4ca2db92723cbebc2bfd2d2a67ec1c3aa7a46
    spki_der = bytes(range(91)), nonce = b"\\x01" * 32  (fresh mode)
      -> 7e4725535cb58e4ceaae167a9c96f72241b744aca69f78b8ef3e3fb2f72d7a17
         1ba513d4e6b522f9f1559fb1a5c0d8c4a8f7548ea2418cc93035f6038010bce3
"""

from __future__ import annotations

import hashlib
import hmac

from atls.errors import VerificationError

__all__ = [
    "ATLS_V1",
    "ATLS_V1_VECTOR",
    "NONCE_SIZE",
    "atls_v1_report_data",
    "check_atls_v1",
    "tpm_qualifying_data",
]

ATLS_V1 = "atls-v1"
NONCE_SIZE = 32
_LABEL = b"atls-v1 report_data\x00"


def atls_v1_report_data(spki_der: bytes, nonce: bytes = b"") -> bytes:
    """The 64 bytes of report_data that bind ``spki_der`` (and ``nonce``) under atls-v1."""
    if nonce and len(nonce) != NONCE_SIZE:
        raise ValueError(f"atls-v1 nonce must be empty or {NONCE_SIZE} bytes")
    h = hashlib.sha512()
    h.update(_LABEL)
    h.update(len(spki_der).to_bytes(4, "big"))
    h.update(spki_der)
    h.update(len(nonce).to_bytes(4, "big"))
    h.update(nonce)
    return h.digest()


def tpm_qualifying_data(report_data: bytes, digest_size: int) -> bytes:
    """Reduce a 64-byte binding to a TPM's qualifying-data limit (its nameAlg digest size)."""
    if not 20 <= digest_size <= 64:
        raise ValueError(f"unsupported TPM digest size {digest_size}")
    return report_data[:digest_size]


def check_atls_v1(report_data: bytes, spki_der: bytes, nonce: bytes = b"") -> None:
    """Raise VerificationError unless ``report_data`` commits to (spki, nonce).

    A TPM's shorter extraData is compared with the same-length prefix.
    """
    expected = atls_v1_report_data(spki_der, nonce)
    if len(report_data) < 20 or len(report_data) > 64:
        raise VerificationError(
            f"report_data has {len(report_data)} bytes; atls-v1 needs 20..64", code="binding.length"
        )
    if not hmac.compare_digest(report_data, expected[: len(report_data)]):
        code = "binding.nonce_mismatch" if nonce else "binding.key_mismatch"
        raise VerificationError(
            "evidence report_data does not commit to this certificate's key"
            + (" and the client nonce" if nonce else ""),
            code=code,
        )


#: The published vectors from the module docstring, as data: (spki_der, nonce, report_data).
ATLS_V1_VECTOR: tuple[tuple[bytes, bytes, bytes], ...] = (
    (
        bytes(range(91)),
        b"",
        bytes.fromhex(
            "37722618345595f373bd33807bd9a291c0ddd3b4fe7465f8798fed88d4f997e7"
            "ebe365e2082f88514c387e3b01f4ca2db92723cbebc2bfd2d2a67ec1c3aa7a46"
        ),
    ),
    (
        bytes(range(91)),
        b"\x01" * 32,
        bytes.fromhex(
            "7e4725535cb58e4ceaae167a9c96f72241b744aca69f78b8ef3e3fb2f72d7a17"
            "1ba513d4e6b522f9f1559fb1a5c0d8c4a8f7548ea2418cc93035f6038010bce3"
        ),
    ),
)
