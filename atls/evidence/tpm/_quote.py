"""Quote verification: AK attributes, the signature over the received TPMS_ATTEST, extraData and
the PCR digest (TCG TPM 2.0 Library Part 1 "Attestation"; Part 3 ``TPM2_Quote``).

:func:`verify_quote` is the low-level checklist used by the evidence format and usable on its
own (e.g. for Azure vTPM quotes, whose AK public key comes from a TEE report instead of a
TPMT_PUBLIC)::

    1. the AK public area has restricted | sign | fixedTPM | fixedParent |
       sensitiveDataOrigin and not decrypt                       (tpm.ak.attributes)
    2. the signature scheme suits the key, equals the AK's scheme, uses an allowed hash
                                               (tpm.signature.scheme, tpm.signature.weak_hash)
    3. the signature verifies over the exact TPMS_ATTEST bytes      (tpm.signature)
    4. qualifiedSigner uses the AK's nameAlg              (tpm.attest.qualified_signer);
       it is recomputed from the AK's Name - for a primary key of the owner, endorsement,
       platform or null hierarchy, or through the given ancestor Names - which binds the
       whole AK public area (attributes included) to the signed quote; when no hierarchy
       yields it, ``qualified_signer`` is reported unchecked
    5. extraData equals the expected value, when one is given       (tpm.extra_data)
    6. every PCR value is supplied for the selection, no value outside it, each of the bank's
       size; pcrDigest = H_sign(selected values, selection order, indices ascending)
                      (tpm.pcrs.missing, tpm.pcrs.unquoted, tpm.pcrs.size, tpm.pcr_digest)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from atls.errors import UnsupportedEvidenceError, VerificationError
from atls.evidence.tpm._structs import (
    AK_REQUIRED_ATTRIBUTES,
    ALG_ECDSA,
    ALG_NULL,
    ALG_RSAPSS,
    ALG_RSASSA,
    ALG_SHA1,
    ATTR_DECRYPT,
    CURVES,
    HASH_ALGS,
    PcrSelection,
    TpmsAttest,
    TpmtPublic,
    TpmtSignature,
    attribute_names,
    hash_name,
    parse_attest,
    parse_name,
    parse_signature,
    qualified_name_hierarchy,
)

__all__ = [
    "PublicKey",
    "QuoteResult",
    "check_ak_attributes",
    "compute_pcr_digest",
    "key_description",
    "verify_quote",
    "verify_signature",
]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PcrValues = Mapping[str, Mapping[int, bytes]]


@dataclass(frozen=True)
class QuoteResult:
    """A verified quote: the parsed attest, its signature, and the quoted PCR values
    (``{bank: {index: value}}``, only what the selection covers)."""

    attest: TpmsAttest
    signature: TpmtSignature
    pcrs: Mapping[str, Mapping[int, bytes]]
    checks: tuple[str, ...]
    unchecked: tuple[str, ...]
    #: the hierarchy the AK's Qualified Name derives from (None: not recomputed)
    hierarchy: str | None = None


def check_ak_attributes(ak: TpmtPublic) -> None:
    """Step 1: an attestation key is a restricted signing key that never left its TPM."""
    missing = AK_REQUIRED_ATTRIBUTES & ~ak.attributes
    if missing or ak.attributes & ATTR_DECRYPT:
        what = []
        if missing:
            what.append("missing " + ", ".join(attribute_names(missing)))
        if ak.attributes & ATTR_DECRYPT:
            what.append("has decrypt")
        raise VerificationError(
            f"AK attributes {ak.attributes:#010x} ({', '.join(attribute_names(ak.attributes))}) "
            f"are not those of an attestation key: {'; '.join(what)}",
            code="tpm.ak.attributes",
        )
    if ak.scheme == ALG_NULL:
        raise VerificationError(
            "AK is a restricted signing key without a signing scheme", code="tpm.ak.attributes"
        )


def _hash(alg: int) -> hashes.HashAlgorithm:
    known = HASH_ALGS.get(alg)
    if known is None:
        raise UnsupportedEvidenceError(
            f"signature hash {alg:#06x} is not supported", code="tpm.signature.alg"
        )
    return known[2]()


def verify_signature(
    message: bytes,
    sig: TpmtSignature,
    key: PublicKey,
    *,
    ak: TpmtPublic | None = None,
    allow_sha1_signatures: bool = False,
) -> None:
    """Steps 2-3: check ``sig`` over ``message`` (the exact TPMS_ATTEST) with ``key``.

    With ``ak`` the scheme and hash must equal the AK's own scheme. SHA-1 signatures are
    refused unless ``allow_sha1_signatures=True``."""
    # 2. scheme and hash
    if sig.hash_alg == ALG_SHA1 and not allow_sha1_signatures:
        raise VerificationError(
            "quote is signed with SHA-1; pass allow_sha1_signatures=True to accept it",
            code="tpm.signature.weak_hash",
        )
    h = _hash(sig.hash_alg)
    if ak is not None and (sig.sig_alg, sig.hash_alg) != (ak.scheme, ak.scheme_hash):
        raise VerificationError(
            f"signature scheme {sig.scheme}/{hash_name(sig.hash_alg)} differs from the AK's "
            f"scheme {ak.scheme:#06x}/{hash_name(ak.scheme_hash)}",
            code="tpm.signature.scheme",
        )
    # 3. the signature over the received bytes
    try:
        if sig.sig_alg in (ALG_RSASSA, ALG_RSAPSS):
            if not isinstance(key, rsa.RSAPublicKey):
                raise VerificationError(
                    f"{sig.scheme} signature but the AK is not an RSA key",
                    code="tpm.signature.scheme",
                )
            if len(sig.signature) != (key.key_size + 7) // 8:
                raise VerificationError(
                    f"RSA signature of {len(sig.signature)} bytes for a {key.key_size}-bit key",
                    code="tpm.signature",
                )
            pad: padding.AsymmetricPadding
            if sig.sig_alg == ALG_RSASSA:
                pad = padding.PKCS1v15()
            else:
                # TPMs use either the digest length or the maximum salt; AUTO accepts both
                pad = padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO)
            key.verify(sig.signature, message, pad, h)
        elif sig.sig_alg == ALG_ECDSA:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise VerificationError(
                    "ECDSA signature but the AK is not an ECC key", code="tpm.signature.scheme"
                )
            size = (key.curve.key_size + 7) // 8
            if not 0 < len(sig.r) <= size or not 0 < len(sig.s) <= size:
                raise VerificationError(f"ECDSA r/s longer than {size} bytes", code="tpm.signature")
            der = encode_dss_signature(int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
            key.verify(der, message, ec.ECDSA(h))
        else:  # parse_signature admits nothing else
            raise UnsupportedEvidenceError(
                f"signature scheme {sig.scheme}", code="tpm.signature.alg"
            )
    except InvalidSignature as e:
        raise VerificationError(
            "quote signature does not verify with the AK", code="tpm.signature"
        ) from e
    except UnsupportedAlgorithm as e:
        raise UnsupportedEvidenceError(str(e), code="tpm.signature.alg") from e


def compute_pcr_digest(
    selection: tuple[PcrSelection, ...], pcrs: PcrValues, hash_alg: int
) -> tuple[bytes, dict[str, dict[int, bytes]]]:
    """Step 6: ``H_hash_alg`` over the selected PCR values (selection order, indices
    ascending), and the values used. Raises ``tpm.pcrs.missing`` / ``tpm.pcrs.size`` /
    ``tpm.pcr_selection``."""
    h = hashlib.new(HASH_ALGS[hash_alg][0]) if hash_alg in HASH_ALGS else None
    if h is None:
        raise UnsupportedEvidenceError(f"hash {hash_alg:#06x}", code="tpm.signature.alg")
    used: dict[str, dict[int, bytes]] = {}
    for sel in selection:
        bank = sel.bank
        if sel.hash_alg not in HASH_ALGS:
            raise UnsupportedEvidenceError(
                f"quote selects PCR bank {bank}, which atls cannot check", code="tpm.pcr_selection"
            )
        if bank in used:
            raise VerificationError(f"quote selects bank {bank} twice", code="tpm.pcr_selection")
        size = HASH_ALGS[sel.hash_alg][1]
        values = pcrs.get(bank, {})
        used[bank] = {}
        for i in sel.indices:
            v = values.get(i)
            if v is None:
                raise VerificationError(
                    f"quoted PCR {bank}:{i} has no value in the evidence", code="tpm.pcrs.missing"
                )
            if len(v) != size:
                raise VerificationError(
                    f"PCR {bank}:{i} has {len(v)} bytes, the bank's digests have {size}",
                    code="tpm.pcrs.size",
                )
            h.update(v)
            used[bank][i] = bytes(v)
    return h.digest(), used


def verify_quote(
    attest: bytes | TpmsAttest,
    signature: bytes | TpmtSignature,
    *,
    ak: TpmtPublic | PublicKey,
    pcrs: PcrValues,
    extra_data: bytes | None = None,
    allow_sha1_signatures: bool = False,
    ak_parents: Sequence[bytes] = (),
) -> QuoteResult:
    """Verify a quote with an AK the caller already trusts (see module docstring).

    ``attest``: TPMS_ATTEST bytes (or TPM2B_ATTEST) or a parsed one (whose ``raw`` is then
    what is verified); ``signature``: TPMT_SIGNATURE bytes or a :class:`TpmtSignature` (to
    verify a raw RSA signature, build ``TpmtSignature(ALG_RSASSA, ALG_SHA256, signature=...)``);
    ``ak``: the AK public area (attributes checked) or a bare public key (attributes and
    Name cannot be checked and are reported in ``unchecked``); ``pcrs``: ``{bank:
    {index: value}}`` holding exactly the quoted PCRs; ``extra_data``: the expected
    qualifying data (None: not compared here, the caller's binding check does it);
    ``ak_parents``: Names of the AK's ancestors, primary first (for step 4)."""
    a = attest if isinstance(attest, TpmsAttest) else parse_attest(attest)
    sig = signature if isinstance(signature, TpmtSignature) else parse_signature(signature)
    checks: list[str] = []
    unchecked: list[str] = []
    # 1. AK attributes
    if isinstance(ak, TpmtPublic):
        check_ak_attributes(ak)
        key: PublicKey = ak.public_key()
        public = ak
        checks.append("ak_attributes")
    else:
        key, public = ak, None
        unchecked += ["ak_attributes", "ak_scheme"]
    # 2.-3. signature over the exact received bytes
    verify_signature(a.raw, sig, key, ak=public, allow_sha1_signatures=allow_sha1_signatures)
    checks.append("signature")
    # 4. qualifiedSigner: same nameAlg as the AK, and derived from the AK's Name
    signer_alg, _ = parse_name(a.qualified_signer, field="qualifiedSigner")
    hierarchy: str | None = None
    if public is not None:
        if signer_alg != public.name_alg:
            raise VerificationError(
                f"qualifiedSigner uses hash {signer_alg:#06x}, the AK's nameAlg is "
                f"{public.name_alg:#06x}",
                code="tpm.attest.qualified_signer",
            )
        checks.append("qualified_signer_alg")
        hierarchy = qualified_name_hierarchy(a.qualified_signer, public.name(), ak_parents)
    if hierarchy is not None:
        checks.append("qualified_signer")
    else:
        unchecked.append("qualified_signer")
    # 5. extraData
    if extra_data is not None:
        if len(a.extra_data) != len(extra_data) or not hmac.compare_digest(
            a.extra_data, extra_data
        ):
            raise VerificationError(
                f"extraData {a.extra_data.hex()} is not the expected {bytes(extra_data).hex()}",
                code="tpm.extra_data",
            )
        checks.append("extra_data")
    # 6. PCR values: exactly the selection, digest with the signing hash
    digest, used = compute_pcr_digest(a.pcr_select, pcrs, sig.hash_alg)
    for bank, values in pcrs.items():
        extra = sorted(set(values) - set(used.get(bank, {})))
        if extra:
            raise VerificationError(
                f"PCR values {bank}:{extra} are not covered by the quote's selection",
                code="tpm.pcrs.unquoted",
            )
    if len(a.pcr_digest) != len(digest) or not hmac.compare_digest(a.pcr_digest, digest):
        raise VerificationError(
            f"pcrDigest {a.pcr_digest.hex()} is not the {hash_name(sig.hash_alg)} of the "
            f"supplied PCR values ({digest.hex()})",
            code="tpm.pcr_digest",
        )
    checks.append("pcr_digest")
    return QuoteResult(a, sig, used, tuple(checks), tuple(unchecked), hierarchy)


def key_description(key: PublicKey) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    for _, (name, _size, cls) in CURVES.items():
        if isinstance(key.curve, cls):
            return f"ecc-{name}"
    return f"ecc-{key.curve.name}"
