"""Cocos (Ultraviolet) era-B attested TLS: certificate extension, SNI nonce, binding.

* OIDs ``2.99999.1.0`` (SEV-SNP guest with vTPM: protobuf ``attest.Attestation``),
  ``.1.1`` (Azure CVM), ``.1.2`` (Intel TDX: the raw quote). The extnValue holds the evidence
  with no inner ASN.1 wrapping.
* Client nonce: 64 random bytes, sent as SNI ``hex(nonce) + ".nonce"`` (a 128-character label:
  CPython's ssl refuses it; pyOpenSSL sends it).
* Binding: ``h = SHA3-512(SPKI || nonce)``; TDX REPORTDATA must equal ``h``. Unlike Cocos'
  own era-B verifier, atls *requires* this equality (Cocos never compared it).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atls.collateral import Collateral
from atls.errors import AttesterError, UnsupportedEvidenceError, VerificationError
from atls.interop._profile import ProfileBase
from atls.pipeline import parse_certificate
from atls.policy import Accepted

__all__ = [
    "COCOS_NONCE_SIZE",
    "CocosIssuance",
    "OID_AZURE",
    "OID_SNP_VTPM",
    "OID_TDX",
    "CocosVerifier",
    "cocos_binding",
    "decode_cocos_sni",
    "encode_cocos_sni",
]

OID_SNP_VTPM = "2.99999.1.0"
OID_AZURE = "2.99999.1.1"
OID_TDX = "2.99999.1.2"
COCOS_NONCE_SIZE = 64
_SNI = re.compile(r"^([0-9a-f]{128})\.nonce$")


def cocos_binding(spki_der: bytes, nonce: bytes) -> bytes:
    """``SHA3-512(SPKI || nonce64)`` (SHA-3, not SHA-2)."""
    if len(nonce) != COCOS_NONCE_SIZE:
        raise ValueError("Cocos nonces are 64 bytes")
    return hashlib.sha3_512(spki_der + nonce).digest()


def encode_cocos_sni(nonce: bytes) -> str:
    if len(nonce) != COCOS_NONCE_SIZE:
        raise ValueError("Cocos nonces are 64 bytes")
    return nonce.hex() + ".nonce"


def decode_cocos_sni(name: bytes | str | None) -> bytes | None:
    if name is None:
        return None
    s = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    m = _SNI.match(s)
    return bytes.fromhex(m.group(1)) if m else None


class CocosVerifier(ProfileBase):
    """Verify a Cocos era-B server (TDX: OID 2.99999.1.2)."""

    nonce_size = COCOS_NONCE_SIZE

    def server_name(self, nonce: bytes) -> str | None:
        return encode_cocos_sni(nonce)

    def verify_certificate(
        self, cert_der: bytes, *, nonce: bytes, at: _dt.datetime, chain: tuple[bytes, ...] = ()
    ) -> Accepted:
        parsed = parse_certificate(cert_der)
        self._check_validity(parsed, at)
        present = [
            o
            for o in (OID_SNP_VTPM, OID_AZURE, OID_TDX)
            if parsed.extension(x509.ObjectIdentifier(o)) is not None
        ]
        if not present:
            raise VerificationError("no Cocos attestation extension", code="cert.no_evidence")
        if len(present) > 1:
            raise VerificationError("several Cocos attestation extensions", code="cocos.ambiguous")
        oid = present[0]
        evidence = parsed.extension(x509.ObjectIdentifier(oid))
        assert evidence is not None
        if oid != OID_TDX:
            raise UnsupportedEvidenceError(
                f"Cocos evidence {oid} (SNP with vTPM / Azure) is not supported yet",
                code="cocos.unsupported",
            )
        verified = self._verify("tdx-quote", evidence, at=at)
        self._require_equal(
            verified.report_data,
            cocos_binding(parsed.spki, nonce),
            "cocos.binding",
            "SHA3-512(SPKI || nonce)",
        )
        return self.policy.evaluate(verified, binding="cocos")


class CocosIssuance:
    """Server side: answer a Cocos era-B client with a fresh certificate per nonce.

    Only TDX evidence can be emitted (raw quote under ``2.99999.1.2``); Cocos' SNP form
    needs a vTPM quote wrapped in go-tpm-tools protobuf, which atls does not produce.
    """

    name = "cocos"

    def decode_nonce(self, server_name: str | None) -> bytes | None:
        return decode_cocos_sni(server_name)

    def report_data(self, spki_der: bytes, nonce: bytes) -> bytes:
        if len(nonce) != COCOS_NONCE_SIZE:
            raise AttesterError(
                "a Cocos client must send a 64-byte nonce in SNI", code="cocos.no_nonce"
            )
        return cocos_binding(spki_der, nonce)

    def certificate(
        self,
        key: ec.EllipticCurvePrivateKey,
        evidence_format: str,
        evidence: bytes,
        collateral: Collateral,
        *,
        not_before: _dt.datetime,
        lifetime: _dt.timedelta,
    ) -> x509.Certificate:
        if evidence_format != "tdx-quote":
            raise AttesterError(
                f"Cocos certificates carry TDX quotes, not {evidence_format}",
                code="cocos.unsupported",
            )
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ultraviolet"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "RS"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "Belgrade"),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + lifetime)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_TDX), evidence), critical=False
            )
            .sign(key, hashes.SHA256())
        )
