"""SEV-SNP attestation report verification, offline, as a numbered checklist.

The steps follow the AMD SEV-SNP Firmware ABI specification (56860, "Attestation") and the
VCEK/KDS specification (57230, "VCEK Certificate", "Certificate Chain"):

 1. The verification time is timezone-aware; an expected product, if given, is known.
 2. The report is parsed from its exact bytes: size 0x4A0, VERSION 2/3/5, SIGNATURE_ALGO 1,
    reserved and must-be-zero fields (:func:`~atls.evidence.snp.parse_report`).
 3. SIGNING_KEY names the endorsement key: VCEK (0) or VLEK (1). ``none`` (7) means the report
    is not signed and cannot be verified.
 4. Version 3+ reports name the product through CPUID_FAM_ID / CPUID_MOD_ID; it must be a
    known SEV-SNP product and the expected one.
 5. The endorsement key certificate (CN ``SEV-VCEK`` or ``SEV-VLEK``) is taken from the
    collateral. Its issuer names the product (``SEV-<product>`` / ``SEV-VLEK-<product>``),
    which must agree with the report's. Its TCB extensions (blSPL, teeSPL, snpSPL, ucodeSPL
    and, on Turin, fmcSPL) must equal REPORTED_TCB's components, and the reserved TCB bytes
    must be zero. A VCEK's hwID must equal CHIP_ID (Turin: the first 8 bytes, the rest zero);
    a VLEK has no hwID (CHIP_ID may be zero).
 6. The chain ARK -> ASK (VCEK) or ARK -> ASVK (VLEK) -> endorsement key:
    6.1 the ARK is a trust anchor of vendor ``amd`` (a pinned root, or a simulated root when
        the trust store allows them), self-issued ``ARK-<product>``, a CA, self-signature OK;
    6.2 the ASK/ASVK comes from the collateral, is named ``SEV-<product>`` /
        ``SEV-VLEK-<product>``, is issued by the ARK, is a CA allowed to sign certificates;
    6.3 the VCEK/VLEK is issued by the ASK/ASVK, is not a CA, has an ECDSA P-384 key;
    6.4 every signature is RSASSA-PSS SHA-384 (MGF1-SHA-384, salt 48) over the exact
        ``tbsCertificate`` bytes; no certificate has an unknown critical extension;
    6.5 every certificate is valid at the verification time;
    6.6 CRLs from the collateral issued by the ARK (revoking ASK/ASVK serials) or by the
        ASK/ASVK (revoking endorsement keys) are verified by their issuer, must be current and
        must not list the chain's certificates. Without an ARK-issued CRL the step is
        reported in ``Verified.unchecked`` as ``"crl"``.
 7. The report signature (ECDSA P-384, SHA-384; R and S little-endian) verifies over the
    exact bytes ``[0, 0x2A0)`` with the endorsement key.
 8. Claims are every report field under the ABI spec's name, TCB values decoded in the
    product's layout, ``product``, ``signing_key``; ``Verified.debug`` is policy bit 19.

Step 6 depends only on the certificate and CRL bytes, so its outcome is cached (see
:class:`~atls.evidence.snp.ChainCache`): a warm verification checks one signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from atls.collateral._bundle import Collateral
from atls.errors import ConfigurationError, UnsupportedEvidenceError, VerificationError
from atls.evidence._verified import Verified, make_verified
from atls.evidence.snp._cache import DEFAULT_CACHE, ChainCache, VerifiedChain
from atls.evidence.snp._report import PRODUCTS, SnpReport, TcbVersion, parse_report
from atls.evidence.snp._x509 import AmdCert, AmdCrl, p384_key, parse_cert, parse_crl, verify_pss
from atls.trust import Anchor, TrustStore

__all__ = ["verify_report"]

_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())
# role -> (endorsement key CN, signer CN template, signer name)
_ROLES = {
    "vcek": ("SEV-VCEK", "SEV-{}", "ASK"),
    "vlek": ("SEV-VLEK", "SEV-VLEK-{}", "ASVK"),
}


def _utc(at: datetime) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ConfigurationError(
            "the verification time must be a timezone-aware datetime (e.g. datetime.now(UTC))",
            code="usage.at",
        )
    return at.astimezone(UTC)


def _norm_product(product: str) -> str:
    p = product.strip().split("-", 1)[0].capitalize()
    if p not in PRODUCTS:
        raise ConfigurationError(
            f"SEV-SNP product {product!r} is not one of {', '.join(PRODUCTS)}",
            code="usage.product",
        )
    return p


def _digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.digest()


def _signer_product(cn: str, role: str) -> str | None:
    """The product of a signer CN (``SEV-Milan`` / ``SEV-VLEK-Milan``), else None."""
    template = _ROLES[role][1]
    for p in PRODUCTS:
        if cn == template.format(p):
            return p
    return None


#: At most this many endorsement key certificates, and signers per certificate, are tried
#: (collateral may be stapled by the peer: its size must not multiply the work).
MAX_CANDIDATES = 8


class _Parsed:
    """The collateral's certificates and CRLs, parsed on demand (through the cache when
    there is one). Only items that contain the bytes being looked for (a subject name, a CN)
    are parsed, so unrelated collateral (Intel certificates, other chips' VCEKs) costs a
    substring search."""

    def __init__(self, collateral: Collateral, cache: ChainCache | None) -> None:
        self._collateral = collateral
        self._cache = cache
        self._certs: dict[bytes, AmdCert | None] = {}

    def _cert(self, der: bytes) -> AmdCert | None:
        if der not in self._certs:
            try:
                self._certs[der] = self._cache.cert(der) if self._cache else parse_cert(der)
            except ValueError:
                self._certs[der] = None
        return self._certs[der]

    def certs_containing(self, needle: bytes) -> list[AmdCert]:
        out = []
        for der in self._collateral.certificates:
            if needle in der:
                c = self._cert(der)
                if c is not None:
                    out.append(c)
        return out

    def crls_of(self, *issuers: bytes) -> list[AmdCrl]:
        """Well-formed CRLs whose issuer is one of ``issuers`` (sorted by digest)."""
        out = []
        for der in self._collateral.crls:
            if not any(i in der for i in issuers):
                continue
            try:
                crl = self._cache.crl(der) if self._cache else parse_crl(der)
            except ValueError:
                continue
            if crl.issuer in issuers:
                out.append(crl)
        return sorted(out, key=lambda c: c.sha256)

    def found(self) -> str:
        """What the collateral holds, for error messages (parses everything)."""
        parsed = [self._cert(d) for d in self._collateral.certificates]
        names = sorted({c.subject_cn or "?" for c in parsed if c is not None})
        bad = sum(c is None for c in parsed)
        extra = f"; {bad} malformed certificate(s) skipped" if bad else ""
        return f"found: {', '.join(names) or 'no certificates'}{extra}"


# --- step 5: the endorsement key certificate -------------------------------------------------


def _hwid_matches(hw_id: bytes, chip_id: bytes, product: str) -> bool:
    if product == "Turin" and len(hw_id) == 8:
        return chip_id[:8] == hw_id and not any(chip_id[8:])
    return len(hw_id) == 64 and hw_id == chip_id


def _vek_problem(
    report: SnpReport, vek: AmdCert, role: str, report_product: str | None
) -> VerificationError | None:
    """Why ``vek`` cannot be the key that signed ``report`` (None: it can)."""
    what = role.upper()
    product = _signer_product(vek.issuer_cn, role)
    if product is None:
        return VerificationError(
            f"{what} {vek.describe()} is issued by {vek.issuer_cn!r}, not by an AMD "
            f"{_ROLES[role][2]} of {', '.join(PRODUCTS)}",
            code="snp.chain.name",
        )
    if report_product is not None and product != report_product:
        return VerificationError(
            f"the report comes from a {report_product} (CPUID) but the {what} is a "
            f"{product} certificate",
            code="snp.product",
        )
    if vek.amd_error:
        return VerificationError(f"{what}: {vek.amd_error}", code=f"snp.{role}.extension")
    # 5.1 TCB extensions == REPORTED_TCB components (in the product's layout).
    tcb = TcbVersion.decode(report.reported_tcb, product)
    names = ("fmc", "bootloader", "tee", "snp", "microcode")
    diffs: list[str] = []
    for name in names:
        want = getattr(tcb, name)
        if want is None:
            continue
        have = vek.amd.get(name)
        if not isinstance(have, int):
            return VerificationError(
                f"{what} {vek.describe()} has no {name} SPL extension", code=f"snp.{role}.extension"
            )
        if have != want:
            diffs.append(f"{name} {have} in the certificate, {want} in REPORTED_TCB")
    if any(tcb.reserved):
        diffs.append(f"reserved REPORTED_TCB bytes {tcb.reserved.hex()} are not zero")
    for spl in ("spl_4", "spl_5", "spl_6", "spl_7"):
        v = vek.amd.get(spl, 0)
        if v != 0:
            diffs.append(f"{spl} {v!r} in the certificate, reserved (0) in REPORTED_TCB")
    if diffs:
        return VerificationError(
            f"{what} {vek.describe()} is not the key for this REPORTED_TCB: {'; '.join(diffs)}",
            code=f"snp.{role}.tcb_mismatch",
        )
    # 5.2 VCEK: hwID == CHIP_ID. (A VLEK is not chip-specific: CHIP_ID may be zero.)
    if role == "vcek":
        hw_id = vek.amd.get("hw_id")
        if not isinstance(hw_id, bytes):
            return VerificationError(
                f"VCEK {vek.describe()} has no hwID extension", code="snp.vcek.extension"
            )
        if not _hwid_matches(hw_id, report.chip_id, product):
            masked = " (CHIP_ID is zero: masked by the host)" if not any(report.chip_id) else ""
            return VerificationError(
                f"VCEK {vek.describe()} is for hwID {hw_id.hex()[:16]}..., the report's CHIP_ID "
                f"is {report.chip_id.hex()[:16]}...{masked}",
                code="snp.vcek.chip_id_mismatch",
            )
    return None


# --- step 6: the certificate chain ------------------------------------------------------------


def _valid_at(cert: AmdCert, at: datetime, what: str) -> None:
    if at < cert.not_before:
        raise VerificationError(
            f"{what} {cert.describe()} is not valid before {cert.not_before.isoformat()} "
            f"(verification time {at.isoformat()})",
            code="snp.chain.not_yet_valid",
        )
    if at > cert.not_after:
        raise VerificationError(
            f"{what} {cert.describe()} expired at {cert.not_after.isoformat()} "
            f"(verification time {at.isoformat()})",
            code="snp.chain.expired",
        )


def _no_unknown_critical(cert: AmdCert, what: str) -> None:
    if cert.unknown_critical:
        raise VerificationError(
            f"{what} {cert.describe()} has unknown critical extension(s) "
            f"{', '.join(cert.unknown_critical)}",
            code="snp.chain.extension",
        )


def _check_crl(crl: AmdCrl, issuer: AmdCert, at: datetime, what: str) -> datetime:
    """Verify ``crl`` (signature, critical extensions, window); return its nextUpdate."""
    # The issuer's keyUsage is not required to include cRLSign: AMD's ASKs do not carry it,
    # and a CRL can only ever add a rejection, so accepting one cannot widen trust.
    verify_pss(issuer, crl.tbs, crl.signature, crl.pss, what=what, code="snp.crl.signature")
    if crl.unknown_critical:
        raise VerificationError(
            f"{what} has unknown critical extension(s) {', '.join(crl.unknown_critical)}",
            code="snp.crl.malformed",
        )
    if crl.next_update is None:
        raise VerificationError(f"{what} has no nextUpdate", code="snp.crl.malformed")
    if at < crl.this_update:
        raise VerificationError(
            f"{what} is not valid before {crl.this_update.isoformat()}",
            code="snp.crl.not_yet_valid",
        )
    if at > crl.next_update:
        raise VerificationError(
            f"{what} expired at {crl.next_update.isoformat()} (verification time {at.isoformat()})",
            code="snp.crl.expired",
        )
    return crl.next_update


def _verify_chain(
    ark: AmdCert,
    ask: AmdCert,
    vek: AmdCert,
    crls: Sequence[AmdCrl],
    role: str,
    at: datetime,
) -> tuple[VerifiedChain, datetime, datetime]:
    vek_cn, signer_template, signer = _ROLES[role]
    what = role.upper()
    # 6.1 The ARK: self-issued ARK-<product>, a CA, self-signed, valid.
    product = next((p for p in PRODUCTS if ark.subject_cn == f"ARK-{p}"), None)
    if product is None or not ark.self_issued:
        raise VerificationError(
            f"trust anchor {ark.describe()} is not a self-issued AMD ARK-<product>",
            code="snp.chain.name",
        )
    if not ark.is_ca or (ark.key_usage is not None and "key_cert_sign" not in ark.key_usage):
        raise VerificationError(
            f"ARK {ark.describe()} is not a CA allowed to sign certificates",
            code="snp.chain.extension",
        )
    _no_unknown_critical(ark, "ARK")
    verify_pss(
        ark, ark.tbs, ark.signature, ark.pss, what="ARK self-signature", code="snp.chain.signature"
    )
    _valid_at(ark, at, "ARK")
    # 6.2 The ASK (VCEK) or ASVK (VLEK): named for the ARK's product, a CA, signed by the ARK.
    if ask.subject_cn != signer_template.format(product):
        raise VerificationError(
            f"{what} chain: the {signer} under ARK-{product} must be "
            f"{signer_template.format(product)!r}, got {ask.subject_cn!r}",
            code="snp.chain.name",
        )
    if not ask.is_ca or (ask.key_usage is not None and "key_cert_sign" not in ask.key_usage):
        raise VerificationError(
            f"{signer} {ask.describe()} is not a CA allowed to sign certificates",
            code="snp.chain.extension",
        )
    _no_unknown_critical(ask, signer)
    verify_pss(ark, ask.tbs, ask.signature, ask.pss, what=signer, code="snp.chain.signature")
    _valid_at(ask, at, signer)
    # 6.3 The VCEK/VLEK: an end-entity P-384 key signed by the ASK/ASVK.
    if vek.subject_cn != vek_cn:
        raise VerificationError(
            f"{vek.describe()} is not a {vek_cn} certificate", code="snp.chain.name"
        )
    if vek.is_ca:
        raise VerificationError(f"{what} {vek.describe()} is a CA", code="snp.chain.extension")
    _no_unknown_critical(vek, what)
    key = p384_key(vek, what=what, code="snp.chain.key")
    verify_pss(ask, vek.tbs, vek.signature, vek.pss, what=what, code="snp.chain.signature")
    _valid_at(vek, at, what)
    # 6.6 Revocation: ARK-issued CRLs (ASK/ASVK serials), ASK/ASVK-issued CRLs (VCEK/VLEK).
    nbs = [ark.not_before, ask.not_before, vek.not_before]
    nas = [ark.not_after, ask.not_after, vek.not_after]
    crl_checked = False
    for crl in crls:
        if crl.issuer == ark.subject:
            next_update = _check_crl(crl, ark, at, f"CRL of ARK-{product}")
            crl_checked = True
            if ask.serial in crl.revoked:
                raise VerificationError(
                    f"{signer} {ask.describe()} (serial {ask.serial}) is revoked by the "
                    f"ARK-{product} CRL",
                    code="snp.chain.revoked",
                )
        elif crl.issuer == ask.subject:
            next_update = _check_crl(crl, ask, at, f"CRL of {ask.subject_cn}")
            if vek.serial in crl.revoked:
                raise VerificationError(
                    f"{what} {vek.describe()} (serial {vek.serial}) is revoked by the "
                    f"{ask.subject_cn} CRL",
                    code="snp.chain.revoked",
                )
        else:  # pragma: no cover - callers pass only CRLs of this chain
            continue
        nbs.append(crl.this_update)
        nas.append(next_update)
    checks = ["ark_anchor", "chain_signatures", "chain_validity"]
    if crl_checked:
        checks.append("crl")
    return VerifiedChain(product, key, crl_checked, tuple(checks)), max(nbs), min(nas)


def _anchors(trust: TrustStore, cache: ChainCache | None) -> list[tuple[Anchor, AmdCert]]:
    out: list[tuple[Anchor, AmdCert]] = []
    for a in trust.by_vendor("amd"):
        try:
            out.append((a, cache.cert(a.der) if cache else parse_cert(a.der)))
        except ValueError:
            continue
    return out


def _chain_for(
    vek: AmdCert,
    role: str,
    parsed: _Parsed,
    anchors: list[tuple[Anchor, AmdCert]],
    at: datetime,
    cache: ChainCache | None,
) -> tuple[VerifiedChain, Anchor]:
    signer = _ROLES[role][2]
    issuers = [
        c for c in parsed.certs_containing(vek.issuer) if c.subject == vek.issuer and c is not vek
    ][:MAX_CANDIDATES]
    if not issuers:
        raise VerificationError(
            f"no {signer} certificate {vek.issuer_cn!r} (the issuer of the {role.upper()}) in "
            f"the collateral ({parsed.found()})",
            code=f"snp.collateral.missing_{signer.lower()}",
        )
    errors: list[VerificationError] = []
    for ask in issuers:
        roots = [(a, c) for a, c in anchors if c.subject == ask.issuer]
        if not roots:
            errors.append(
                VerificationError(
                    f"{signer} {ask.describe()} is issued by {ask.issuer_cn!r}, which is not an "
                    "AMD root in the trust store",
                    code="snp.chain.untrusted_root",
                )
            )
            continue
        for anchor, ark in roots:
            crls = parsed.crls_of(ark.subject, ask.subject)
            key = _digest(ark.sha256, ask.sha256, vek.sha256, *(c.sha256 for c in crls))
            hit = cache.chain(key, at) if cache is not None else None
            if hit is not None:
                return hit, anchor
            try:
                chain, not_before, not_after = _verify_chain(ark, ask, vek, crls, role, at)
            except VerificationError as e:
                errors.append(e)
                continue
            if cache is not None:
                cache.put_chain(key, chain, not_before, not_after)
            return chain, anchor
    raise errors[0]


# --- the whole checklist ------------------------------------------------------------------------


def verify_report(
    report: SnpReport | bytes,
    *,
    trust: TrustStore,
    collateral: Collateral,
    at: datetime,
    product: str | None = None,
    cache: ChainCache | None = DEFAULT_CACHE,
) -> Verified:
    """Verify an SNP attestation report at ``at`` (timezone-aware) against ``trust``.

    ``collateral.certificates`` must hold the VCEK (or VLEK) and the ASK (or ASVK), DER;
    ``collateral.crls`` may hold the ARK's CRL. ``product`` (optional) is the product the
    caller expects ("Milan", "Genoa", "Turin"). ``cache=None`` disables chain caching.
    A :class:`SnpReport` is verified from its ``raw`` bytes (re-parsed), never its fields.
    """
    # 1. Inputs.
    at = _utc(at)
    expected = _norm_product(product) if product is not None else None
    # 2. Parse the exact bytes.
    r = parse_report(report.raw if isinstance(report, SnpReport) else report)
    # 3. The endorsement key the report names.
    role = r.signing_key_name
    if role == "none":
        raise VerificationError(
            "the report is not signed (SIGNING_KEY = none); it cannot be verified",
            code="snp.unsigned",
        )
    # 4. Product named by CPUID (v3+).
    report_product = r.cpuid_product
    if r.cpuid_fam_id is not None and report_product is None:
        raise UnsupportedEvidenceError(
            f"snp: CPUID family {r.cpuid_fam_id:#x} model {r.cpuid_mod_id:#x} is not a supported "
            f"SEV-SNP product ({', '.join(PRODUCTS)})",
            code="snp.unsupported.product",
        )
    if expected is not None and report_product is not None and report_product != expected:
        raise VerificationError(
            f"the report comes from a {report_product}, {expected} was expected",
            code="snp.product",
        )
    anchors = _anchors(trust, cache)
    if not anchors:
        raise VerificationError(
            "the trust store holds no AMD root (ARK)", code="snp.chain.no_anchor"
        )
    # 5. Endorsement key certificates in the collateral, best match first.
    parsed = _Parsed(collateral, cache)
    vek_cn = _ROLES[role][0]
    candidates = [c for c in parsed.certs_containing(vek_cn.encode()) if c.subject_cn == vek_cn]
    if not candidates:
        raise VerificationError(
            f"the report is signed by a {role.upper()} but the collateral holds no {vek_cn} "
            f"certificate ({parsed.found()})",
            code=f"snp.collateral.missing_{role}",
        )
    problems = [(c, _vek_problem(r, c, role, report_product)) for c in candidates]
    usable = [c for c, p in problems if p is None][:MAX_CANDIDATES]
    if not usable:
        raise next(p for _, p in problems if p is not None)
    # 6. The chain of each usable candidate, until one verifies.
    errors: list[VerificationError] = []
    found: tuple[AmdCert, VerifiedChain, Anchor] | None = None
    for vek in usable:
        try:
            chain, anchor = _chain_for(vek, role, parsed, anchors, at, cache)
        except VerificationError as e:
            errors.append(e)
            continue
        found = (vek, chain, anchor)
        break
    if found is None:
        raise errors[0]
    vek, chain, anchor = found
    if expected is not None and chain.product != expected:
        raise VerificationError(
            f"the {role.upper()} chain is for {chain.product}, {expected} was expected",
            code="snp.product",
        )
    # 7. The report signature over the exact signed bytes.
    try:
        chain.key.verify(
            encode_dss_signature(r.signature_r, r.signature_s), r.signed_bytes, _ECDSA_SHA384
        )
    except InvalidSignature as e:
        raise VerificationError(
            f"the report signature does not verify with {role.upper()} {vek.describe()}",
            code="snp.signature",
        ) from e
    # 8. Claims.
    claims: dict[str, Any] = r.claims(chain.product)
    name = vek.amd.get("product_name")
    if isinstance(name, str):
        claims[f"{role}_product_name"] = name
    csp = vek.amd.get("csp_id")
    if isinstance(csp, str):
        claims["csp_id"] = csp
    unchecked = () if chain.crl_checked else ("crl",)
    checks = (
        "report_format",
        f"{role}_tcb",
        *(("vcek_hwid",) if role == "vcek" else ()),
        *(("cpuid_product",) if report_product is not None else ()),
        *chain.checks,
        "report_signature",
    )
    return make_verified(
        platform="snp",
        claims=claims,
        report_data=r.report_data,
        trust_root=anchor.name,
        simulated=anchor.simulated,
        debug=r.debug,
        tcb_status=None,
        unchecked=unchecked,
        checks=checks,
    )
