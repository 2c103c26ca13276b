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

import base64
import binascii
import datetime as _dt
import hashlib
import json
import re
from collections.abc import Collection
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atls.collateral import Collateral
from atls.errors import (
    AttesterError,
    ConfigurationError,
    UnsupportedEvidenceError,
    VerificationError,
)
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
    "cocos_policy_from_json",
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


# --- Cocos attestation policy (go-sev-guest check.Config as protojson) -> atls [snp] ---------

_POLICY_BYTES = {  # check.Policy bytes field -> (atls [snp] key, length)
    "measurement": ("measurement", 48),
    "host_data": ("host_data", 32),
    "chip_id": ("chip_id", 64),
    "family_id": ("family_id", 16),
    "image_id": ("image_id", 16),
    "report_data": ("report_data", 64),
}
_KEY_HASHES = {
    "trusted_author_key_hashes": "author_key_digest",
    "trusted_id_key_hashes": "id_key_digest",
}
_PRODUCT_ENUM = {1: "Milan", 2: "Genoa", 3: "Turin"}
_GUEST_POLICY_KNOWN = (
    0x1FFFFF  # ABI minor/major, SMT, reserved(17), MIGRATE_MA, DEBUG, SINGLE_SOCKET
)


def _snake(key: str) -> str:
    """protojson accepts both lowerCamelCase JSON names and proto field names."""
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def _cfg_err(field: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"Cocos policy field {field!r}: {why}", code="cocos.policy")


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _cfg_err(field, "expected a JSON object")
    out: dict[str, Any] = {}
    for k, v in value.items():
        sk = _snake(str(k))
        if sk in out:
            raise _cfg_err(f"{field}.{sk}", "given twice (JSON and proto names)")
        out[sk] = v
    return out


def _uint(value: Any, field: str, bits: int = 64) -> int:
    """protojson writes 64-bit integers as decimal strings; accept both forms."""
    if isinstance(value, bool):
        raise _cfg_err(field, "expected an unsigned integer")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise _cfg_err(field, f"expected an unsigned {bits}-bit integer")
    return value


def _b64(value: Any, field: str, length: int | None) -> bytes:
    if not isinstance(value, str):
        raise _cfg_err(field, "expected base64 bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError) as e:
            raise _cfg_err(field, f"not base64: {e}") from e
    if length is not None and len(raw) != length:
        raise _cfg_err(field, f"{len(raw)} bytes, atls expects {length}")
    return raw


def _product(value: Any, field: str) -> str:
    if isinstance(value, dict):
        prod = _obj(value, field)
        extra = set(prod) - {"name"}
        if extra:
            raise _cfg_err(f"{field}.{sorted(extra)[0]}", "atls cannot pin a CPU stepping")
        value = prod.get("name", 0)
    if isinstance(value, int) and not isinstance(value, bool):
        name = _PRODUCT_ENUM.get(value)
    elif isinstance(value, str):
        name = value.removeprefix("SEV_PRODUCT_").capitalize()
        name = name if name in _PRODUCT_ENUM.values() else None
    else:
        name = None
    if name is None:
        raise _cfg_err(field, f"unknown SEV-SNP product {value!r} (Milan, Genoa, Turin)")
    return name


def _tcb(raw: int, product: str, field: str) -> dict[str, int]:
    b = raw.to_bytes(8, "little")
    if product == "Turin":
        comps = {"fmc": b[0], "bootloader": b[1], "tee": b[2], "snp": b[3], "microcode": b[7]}
        reserved = b[4:7]
    else:
        comps = {"bootloader": b[0], "tee": b[1], "snp": b[6], "microcode": b[7]}
        reserved = b[2:6]
    if any(reserved):
        raise _cfg_err(field, f"reserved bytes set in a {product} TCB_VERSION")
    return comps


def cocos_policy_from_json(
    text: str, *, name: str = "cocos", ignore: Collection[str] = ()
) -> dict[str, Any]:
    """A Cocos attestation policy (protojson of go-sev-guest ``check.Config`` plus
    ``pcr_values``) as an atls policy dict with an ``[snp]`` section, for
    :func:`atls.policy.parse_policy`.

    Every field is either carried over or refused with a :class:`ConfigurationError`
    (code ``cocos.policy``) naming it; nothing is dropped silently. A caller that accepts
    losing a check names the field in ``ignore`` (dotted, e.g. ``"pcr_values"``,
    ``"policy.minimum_build"``); an ignored field must be present. Zero/false values that
    impose no constraint in go-sev-guest (``minimum_build: 0``, ``require_id_block:
    false`` ...) are accepted as such. Mapping (docs/interop/cocos.md):

    * ``measurement``, ``host_data``, ``chip_id``, ``family_id``, ``image_id``,
      ``report_data`` -> the same keys; ``trusted_author_key_hashes`` /
      ``trusted_id_key_hashes`` -> ``author_key_digest`` / ``id_key_digest``;
    * ``vmpl`` -> ``vmpl``; ``minimum_guest_svn`` -> ``minimum_guest_svn``;
    * ``minimum_tcb`` (``minimum_tcb_turin`` for Turin) -> ``minimum_tcb`` components in the
      product's layout (checked against REPORTED_TCB);
    * ``policy`` (guest policy, the maximum permitted): DEBUG -> ``allow_debug``, SMT ->
      ``allow_smt``, MIGRATE_MA -> ``allow_migration_agent``; a required ABI version,
      SINGLE_SOCKET or any bit above 20 is refused;
    * ``product.name`` / ``root_of_trust.product_line`` -> ``products``.
    """
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigurationError(f"Cocos policy is not JSON: {e}", code="cocos.policy") from e
    top = _obj(doc, "<document>")
    ignored = {i for i in ignore}
    seen: set[str] = set()

    def skip(field: str) -> bool:
        if field in ignored:
            seen.add(field)
            return True
        return False

    def refuse(field: str, why: str) -> None:
        if not skip(field):
            raise _cfg_err(field, why + " (name it in ignore= to drop it knowingly)")

    snp: dict[str, Any] = {}
    products: set[str] = set()
    for key in top:
        if key not in ("policy", "root_of_trust", "pcr_values") and not skip(key):
            raise _cfg_err(key, "unknown top-level field")
    if "pcr_values" in top and top["pcr_values"] not in ({}, None):
        refuse("pcr_values", "vTPM PCR values: atls does not verify Cocos' vTPM evidence")
    elif "pcr_values" in top:
        skip("pcr_values")
    rot = _obj(top.get("root_of_trust") or {}, "root_of_trust")
    for key, value in rot.items():
        f = f"root_of_trust.{key}"
        if skip(f):
            continue
        if key in ("product", "product_line"):
            if value:
                products.add(_product(value, f))
        elif key == "disallow_network":
            if not isinstance(value, bool):
                raise _cfg_err(f, "expected a boolean")
            # atls verifiers never use the network: true is what they do, false permits it
        elif key == "check_crl":
            if not isinstance(value, bool):
                raise _cfg_err(f, "expected a boolean")
            if value:
                refuse(f, "requiring a CRL is collateral configuration, not policy")
        elif key in ("cabundle_paths", "cabundles"):
            if value:
                refuse(f, "custom AMD roots belong in the atls trust store")
        else:
            raise _cfg_err(f, "unknown field")
    pol = _obj(top.get("policy") or {}, "policy")
    if "product" in pol and not skip("policy.product"):
        products.add(_product(pol["product"], "policy.product"))
    if len(products) > 1:
        raise _cfg_err("policy.product", f"conflicting products {sorted(products)}")
    product = next(iter(products), "Milan")  # go-sev-guest's default product line
    if products:
        snp["products"] = sorted(products)
    required_keys: dict[str, str] = {}
    for key, value in pol.items():
        f = f"policy.{key}"
        if key == "product" or skip(f):
            continue
        if key in _POLICY_BYTES:
            atls_key, length = _POLICY_BYTES[key]
            raw = _b64(value, f, None)
            if raw:  # empty bytes = no constraint in go-sev-guest
                if len(raw) != length:
                    raise _cfg_err(f, f"{len(raw)} bytes, atls expects {length}")
                snp[atls_key] = raw.hex()
        elif key in _KEY_HASHES:
            if not isinstance(value, list):
                raise _cfg_err(f, "expected a list of base64 SHA-384 digests")
            if value:
                snp[_KEY_HASHES[key]] = [_b64(v, f, 48).hex() for v in value]
        elif key in ("trusted_author_keys", "trusted_id_keys"):
            if value:
                refuse(f, "give the keys' SHA-384 digests (trusted_*_key_hashes)")
        elif key == "vmpl":
            snp["vmpl"] = _uint(value, f, 32)
        elif key == "minimum_guest_svn":
            if _uint(value, f, 32):
                snp["minimum_guest_svn"] = _uint(value, f, 32)
        elif key in ("minimum_tcb", "minimum_tcb_turin"):
            raw_tcb = _uint(value, f)
            if raw_tcb:
                if (key == "minimum_tcb_turin") != (product == "Turin"):
                    raise _cfg_err(f, f"does not apply to a {product} policy")
                snp["minimum_tcb"] = _tcb(raw_tcb, product, f)
        elif key == "policy":
            gp = _uint(value, f)
            if gp & 0xFFFF:
                refuse(f, f"a minimum ABI version {gp >> 8 & 0xFF}.{gp & 0xFF} is not checked")
            if not gp >> 17 & 1:
                raise _cfg_err(f, "bit 17 is reserved and must be 1")
            if gp >> 20 & 1:
                refuse(f, "a required SINGLE_SOCKET is not checked")
            if gp & ~_GUEST_POLICY_KNOWN:
                refuse(
                    f,
                    f"bits {gp & ~_GUEST_POLICY_KNOWN:#x} (CXL, AES-256-XTS, ...) are not checked",
                )
            snp["allow_smt"] = bool(gp >> 16 & 1)
            snp["allow_migration_agent"] = bool(gp >> 18 & 1)
            snp["allow_debug"] = bool(gp >> 19 & 1)
        elif key in ("minimum_launch_tcb", "minimum_launch_tcb_turin", "minimum_build"):
            if _uint(value, f):
                refuse(f, "atls does not check the launch TCB / firmware build")
        elif key == "minimum_version":
            if value not in ("", "0.0", None):
                refuse(f, "atls does not check the firmware version")
        elif key in ("report_id", "report_id_ma", "platform_info"):
            if value not in ("", None):
                refuse(f, "not expressible in an atls [snp] policy")
        elif key in ("require_author_key", "require_id_block"):
            if not isinstance(value, bool):
                raise _cfg_err(f, "expected a boolean")
            if value:
                required_keys[f] = (
                    "author_key_digest" if key == "require_author_key" else "id_key_digest"
                )
        elif key == "permit_provisional_firmware":
            if not isinstance(value, bool):
                raise _cfg_err(f, "expected a boolean")
            if not value:
                refuse(f, "atls does not compare committed and current firmware")
        else:
            raise _cfg_err(f, "unknown field")
    for f, digest_key in required_keys.items():
        # the ID block / author key is required and trusted only by its pinned digest
        if digest_key not in snp:
            refuse(f, f"needs trusted key hashes to pin as {digest_key}")
    missing = ignored - seen
    if missing:
        raise ConfigurationError(
            f"ignore= names fields the policy does not have: {sorted(missing)}",
            code="cocos.policy",
        )
    return {"version": 1, "name": name, "snp": snp}
