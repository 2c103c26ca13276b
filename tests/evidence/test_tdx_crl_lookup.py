"""The CRL lookup's fast negative (the serial's DER INTEGER is not in the CRL) agrees with
cryptography's entry walk."""

from __future__ import annotations

import datetime as dt
import random

from asn1crypto.core import Integer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from atls.evidence.tdx._x509 import CrlInfo, _der_integer


class _Serial:
    def __init__(self, n: int) -> None:
        self.serial = n
        self.serial_der = _der_integer(n) if n > 0 else None


def test_der_integer_is_the_minimal_encoding() -> None:
    rnd = random.Random(7)
    for n in [1, 127, 128, 255, 256, 2**159, 2**1015, 2**1016, 2**2000 + 7] + [
        rnd.getrandbits(rnd.randrange(1, 3000)) | 1 for _ in range(500)
    ]:
        assert _der_integer(n) == Integer(n).dump()


def test_fast_negative_agrees_with_the_entry_walk() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    rnd = random.Random(11)
    revoked = [rnd.getrandbits(159) | 1 for _ in range(40)] + [1, 127, 128, 255, 256]
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CRL issuer")]))
        .last_update(now)
        .next_update(now + dt.timedelta(days=30))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(key, hashes.SHA256())
    info = CrlInfo(crl.public_bytes(Encoding.DER), crl, now, now + dt.timedelta(days=30))
    candidates = revoked + [s + 1 for s in revoked] + [s - 1 for s in revoked]
    candidates += [rnd.getrandbits(159) for _ in range(200)] + [2, 129, 257]
    for serial in candidates:
        if serial <= 0:
            continue
        expected = crl.get_revoked_certificate_by_serial_number(serial) is not None
        assert info.is_revoked(_Serial(serial), fmt="tdx") is expected  # type: ignore[arg-type]
