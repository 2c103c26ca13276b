"""Verification of a TPM evidence bundle (TCG TPM 2.0 Library Part 1 "Attestation"; TCG PC
Client Platform Firmware Profile for the event log).

Checklist of :func:`verify_bundle` (codes in parentheses)::

    1. decode the bundle strictly                                      (tpm.bundle.*)
    2. parse the AK's TPM2B_PUBLIC; compute its Name over the received TPMT_PUBLIC
                                                                       (tpm.public.parse)
    3. the AK is an attestation key: restricted, sign, fixedTPM, fixedParent,
       sensitiveDataOrigin, not decrypt, with a signing scheme         (tpm.ak.attributes)
    4. the AK is trusted, in this order:
       a. its Name is one of the verifier's pinned AK Names            -> ak_source "pinned"
       b. its certificate chain leads to a trust anchor (see _akcert)  -> "certificate:<root>"
       c. otherwise                                                    (tpm.ak.untrusted)
       The AK in the evidence is never trusted because the evidence carries it.
    5. parse TPMS_ATTEST: magic TPM_GENERATED_VALUE, type quote        (tpm.attest.*)
    6. TPMT_SIGNATURE: scheme = the AK's scheme, SHA-1 only by opt-in, verifies over the
       exact TPMS_ATTEST bytes                                         (tpm.signature*)
    7. qualifiedSigner uses the AK's nameAlg and is recomputed from the AK's Name (a primary
       key of a hierarchy, or through the bundle's ``akparents``): this binds the AK public
       area - attributes, policy, Name - to the quote. An AK certificate certifies only the
       key, so an AK trusted through a certificate must pass this check; a pinned Name
       covers the whole public area by itself (then an unmatched qualifiedSigner is only
       reported unchecked)                                             (tpm.attest.qualified_signer)
    8. the PCR values are exactly the quoted selection and hash (with the signing hash, in
       selection order) to pcrDigest                                   (tpm.pcrs.*, tpm.pcr_digest)
    9. extraData becomes ``Verified.report_data``; comparing it with the expected binding
       (``atls.binding.tpm_qualifying_data`` reduction) is the binding step's job.
   10. TCG event log (optional): parsed; replayed in every quoted bank it carries; every PCR
       the log extends and the quote covers must equal the replayed value
       (eventlog.replay_mismatch); PCRs the log extends but the quote does not cover are
       reported in ``unchecked`` and their events are not used. From the verified events:
       every data-bound event must match its digest (eventlog.event_data, e.g. an S-CRTM
       version event whose data is not what was measured); the secure-boot state (PCR7) must
       be well formed (eventlog.secure_boot: variables matching their digests, SecureBoot
       one byte, no variable twice, no configuration after the separator, no UEFI debugger),
       as go-tpm-tools requires. Derived facts whose *structure* is unusual but whose
       digests are consistent do not reject the evidence: the S-CRTM version / non-host info
       (PCR0) and the EFI application list (PCR4/5) are then absent and reported unchecked
       (``eventlog.platform_state``, ``eventlog.efi_apps``), so a policy needing them fails
       closed.
   11. IMA list (optional): template hashes recomputed; replayed into its PCR in every quoted
       bank; must equal the quoted value (tpm.ima.replay_mismatch). A list whose PCR is not
       quoted is reported unchecked and yields no claims. A PCR extended both by the TCG log
       and by the IMA list is rejected (tpm.eventlog.overlap).

Verification never reads the clock or the network: ``trust``, ``collateral`` and ``at`` are
arguments. The AK chain is cached (see :class:`~atls.evidence.tpm.ChainCache`), so a warm
verification costs one signature check plus the PCR digest.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from atls.collateral._bundle import Collateral
from atls.errors import (
    AttestationError,
    ConfigurationError,
    EvidenceParseError,
    VerificationError,
)
from atls.evidence._verified import Verified, make_verified
from atls.evidence.tpm._akcert import (
    AK_ANCHOR_VENDORS,
    DEFAULT_CHAIN_CACHE,
    AkChain,
    ChainCache,
    verify_ak_chain,
)
from atls.evidence.tpm._bundle import TpmEvidence, decode_bundle, looks_like_bundle
from atls.evidence.tpm._quote import check_ak_attributes, verify_quote
from atls.evidence.tpm._structs import (
    HASH_ALGS,
    TpmtPublic,
    attribute_names,
    hash_name,
    parse_name,
    parse_public,
)
from atls.trust import TrustStore

__all__ = ["FORMAT_NAME", "TpmQuoteFormat", "ak_name", "verify_bundle"]

FORMAT_NAME = "tpm-quote-bundle"
_FACT_BANK_ORDER = ("sha256", "sha384", "sha512", "sha1")
_MAX_EVENT_CLAIMS = 4096
_EV_EFI_VARIABLE_AUTHORITY = 0x800000E0


def ak_name(ak_public: bytes) -> bytes:
    """The Name of an AK given as TPM2B_PUBLIC or TPMT_PUBLIC bytes."""
    data = bytes(ak_public)
    framed = len(data) >= 2 and int.from_bytes(data[:2], "big") == len(data) - 2
    return parse_public(data, tpm2b_framed=framed).name()


def _pins(names: Iterable[bytes], publics: Iterable[bytes]) -> frozenset[bytes]:
    out: set[bytes] = set()
    for n in names:
        n = bytes(n)
        try:
            alg, _ = parse_name(n, fmt="tpm.pin")
        except EvidenceParseError as e:
            raise ConfigurationError(
                f"pinned AK name {n.hex()} is not a TPM Name: {e.message}", code="tpm.pin"
            ) from e
        if alg not in HASH_ALGS:
            raise ConfigurationError(
                f"pinned AK name {n.hex()} does not use a supported hash", code="tpm.pin"
            )
        out.add(n)
    for p in publics:
        try:
            out.add(ak_name(bytes(p)))
        except AttestationError as e:
            raise ConfigurationError(
                f"pinned AK public area does not parse: {e.message}", code="tpm.pin"
            ) from e
    return frozenset(out)


def _hex_pcrs(pcrs: Mapping[str, Mapping[int, bytes]]) -> dict[str, dict[str, str]]:
    return {b: {str(i): v.hex() for i, v in sorted(vals.items())} for b, vals in pcrs.items()}


def _ak_claims(ak: TpmtPublic) -> dict[str, Any]:
    return {
        "type": ak.key_type,
        "name_alg": hash_name(ak.name_alg),
        "attributes": ak.attributes,
        "attribute_names": attribute_names(ak.attributes),
        "scheme": {0x0014: "rsassa", 0x0016: "rsapss", 0x0018: "ecdsa"}.get(
            ak.scheme, f"alg_0x{ak.scheme:04x}"
        ),
        "scheme_hash": hash_name(ak.scheme_hash),
        "auth_policy": ak.auth_policy.hex(),
    }


def _text(data: bytes | None) -> str | None:
    """Firmware strings are UTF-16LE (EDK2) or ASCII; decode for display, else None."""
    if not data:
        return None
    for enc in ("utf-16-le", "ascii"):
        try:
            s = data.decode(enc).rstrip("\x00")
        except UnicodeDecodeError:
            continue
        if s and s.isprintable():
            return s
    return None


_LogResult = tuple[dict[str, Any], list[str], list[str], set[int]]
_LOG_CACHE: OrderedDict[bytes, _LogResult] = OrderedDict()
_LOG_CACHE_SIZE = 64
_LOG_LOCK = threading.Lock()


def _check_tcg_log(
    raw: bytes, quoted: Mapping[str, Mapping[int, bytes]], ima_pcrs: set[int]
) -> _LogResult:
    """Step 10, memoized on the exact log bytes, quoted values and IMA PCRs (a warm
    verification of the same boot does not replay the log again)."""
    h = hashlib.sha256(b"atls tpm tcg log v1\0")
    h.update(hashlib.sha256(raw).digest())
    for bank in sorted(quoted):
        for i in sorted(quoted[bank]):
            h.update(f"{bank}:{i}:".encode() + quoted[bank][i])
    h.update(repr(sorted(ima_pcrs)).encode())
    key = h.digest()
    with _LOG_LOCK:
        hit = _LOG_CACHE.get(key)
        if hit is not None:
            _LOG_CACHE.move_to_end(key)
    if hit is None:
        hit = _check_tcg_log_uncached(raw, quoted, ima_pcrs)
        with _LOG_LOCK:
            _LOG_CACHE[key] = hit
            while len(_LOG_CACHE) > _LOG_CACHE_SIZE:
                _LOG_CACHE.popitem(last=False)
    claims, checks, unchecked, extended = hit
    return copy.deepcopy(claims), list(checks), list(unchecked), set(extended)


def _check_tcg_log_uncached(
    raw: bytes, quoted: Mapping[str, Mapping[int, bytes]], ima_pcrs: set[int]
) -> _LogResult:
    """Step 10. Returns (claims, checks, unchecked, PCRs the log extends)."""
    from atls.evidence.eventlog import (
        check_event_data,
        check_registers,
        efi_apps,
        parse_tcg_log,
        platform_state,
        replay,
        secure_boot_state,
    )

    log = parse_tcg_log(raw)
    banks = [b for b in quoted if b in log.banks]
    if not banks:
        raise VerificationError(
            f"the event log carries banks {list(log.banks)}, none of the quoted banks "
            f"{sorted(quoted)}",
            code="tpm.eventlog.bank",
        )
    verified: dict[str, list[int]] = {}
    extended: set[int] = set()
    unverified: set[int] = set()
    for bank in banks:
        regs = replay(log.events, bank=bank)
        extended |= set(regs)
        covered = sorted(i for i in regs if i in quoted[bank])
        unverified |= {i for i in regs if i not in quoted[bank]}
        check_registers(
            {f"pcr{i}": regs[i] for i in covered},
            {f"pcr{i}": quoted[bank][i] for i in covered},
            label=f" ({bank})",
        )
        verified[bank] = covered
    overlap = extended & ima_pcrs
    if overlap:
        raise VerificationError(
            f"PCRs {sorted(overlap)} are extended by both the TCG log and the IMA list",
            code="tpm.eventlog.overlap",
        )
    # facts come from one bank, preferring the strongest hash; only from verified PCRs
    bank = next(b for b in (*_FACT_BANK_ORDER, *banks) if b in banks)
    ok = set(verified[bank])
    trusted = [e for e in log.events if e.index in ok]
    # EV_EFI_VARIABLE_AUTHORITY events are checked by secure_boot_state, which tolerates (and
    # reports) the known shim bug of one unmeasured trailing byte
    check_event_data([e for e in trusted if e.event_type != _EV_EFI_VARIABLE_AUTHORITY], bank=bank)
    claims: dict[str, Any] = {
        "banks": list(log.banks),
        "crypto_agile": log.crypto_agile,
        "verified_pcrs": {b: v for b, v in verified.items()},
        "unverified_pcrs": sorted(unverified - ok),
        "fact_bank": bank,
    }
    unchecked: list[str] = []
    if 0 in ok:
        # the PCR0 digests were checked against their data above (check_event_data); what
        # platform_state adds is structure (where PCR0's separator is). A log it cannot read
        # (e.g. firmware whose FIT measurement happens to hash like a separator) yields no
        # platform claims rather than a rejection.
        try:
            ps = platform_state(trusted, bank=bank)
        except VerificationError as err:
            claims["platform_state_error"] = err.message
            unchecked.append("eventlog.platform_state")
        else:
            if ps.scrtm_version is not None:
                claims["scrtm_version"] = ps.scrtm_version.hex()
                text = _text(ps.scrtm_version)
                if text is not None:
                    claims["scrtm_version_text"] = text
            if ps.nonhost_info is not None:
                claims["nonhost_info"] = ps.nonhost_info.hex()
    if 7 in ok:
        sb = secure_boot_state(trusted, bank=bank)
        claims["secure_boot"] = sb.enabled
        claims["uefi_variables_sha256"] = {
            k: hashlib.sha256(v).hexdigest() for k, v in sorted(sb.variables.items())
        }
        claims["secure_boot_authorities"] = len(sb.authorities)
        if sb.quirks:
            claims["quirks"] = list(sb.quirks)
    if 4 in ok and 5 in ok:
        # The EFI application list is a derived fact: a log whose PCR4/5 markers are not in
        # the order go-tpm-tools expects (Windows boot manager logs, for one) replays fine but
        # yields no list. The claim is then absent (a policy that needs it fails closed).
        try:
            apps = efi_apps(trusted, bank=bank)
        except VerificationError as err:
            claims["efi_apps_error"] = err.message
            unchecked.append("eventlog.efi_apps")
        else:
            claims["efi_apps"] = [a.hex() for a in apps] if apps is not None else None
    events = []
    for ev in trusted[:_MAX_EVENT_CLAIMS]:
        d = ev.digest(bank)
        events.append({"pcr": ev.index, "type": ev.type_name, "digest": d.hex() if d else None})
    claims["events"] = events
    if len(trusted) > _MAX_EVENT_CLAIMS:
        claims["events_truncated"] = len(trusted)
    unchecked += [f"eventlog.pcr{i}" for i in sorted(unverified - ok)]
    checks = ["eventlog_replay", "eventlog_event_data"]
    return claims, checks, unchecked, extended


def _check_ima(
    raw: bytes, quoted: Mapping[str, Mapping[int, bytes]]
) -> tuple[list[dict[str, Any]] | None, list[str], list[str], set[int]]:
    """Step 11. Returns (claims or None, checks, unchecked, PCRs the list extends)."""
    from atls.evidence.eventlog import ima_claims, parse_ima, replay_ima

    entries = parse_ima(raw)
    pcrs = sorted({e.pcr for e in entries})
    verified: list[int] = []
    unchecked: list[str] = []
    for pcr in pcrs:
        banks = [b for b in quoted if pcr in quoted[b]]
        if not banks:
            unchecked.append(f"ima.pcr{pcr}")
            continue
        for bank in banks:
            value = replay_ima(entries, bank=bank, pcr=pcr)
            if not hmac.compare_digest(value, quoted[bank][pcr]):
                raise VerificationError(
                    f"IMA list replays PCR{pcr} ({bank}) to {value.hex()}, the quote says "
                    f"{quoted[bank][pcr].hex()}",
                    code="tpm.ima.replay_mismatch",
                )
        verified.append(pcr)
    if not verified:
        return None, [], unchecked, set(pcrs)
    ok = set(verified)
    return ima_claims([e for e in entries if e.pcr in ok]), ["ima_replay"], unchecked, set(pcrs)


def verify_bundle(
    evidence: bytes | TpmEvidence,
    *,
    trust: TrustStore,
    collateral: Collateral,
    at: datetime,
    pinned_ak_names: Iterable[bytes] = (),
    pinned_ak_public: Iterable[bytes] = (),
    allow_sha1_signatures: bool = False,
    anchor_vendors: Sequence[str] = AK_ANCHOR_VENDORS,
    cache: ChainCache | None = DEFAULT_CHAIN_CACHE,
) -> Verified:
    """Verify a ``tpm-quote-bundle`` (see the module docstring for the checklist).

    ``pinned_ak_names`` (TPM Names, ``u16 nameAlg || digest``) and ``pinned_ak_public``
    (TPM2B_PUBLIC or TPMT_PUBLIC) are AKs the relying party enrolled itself; without a pin
    matching and without an AK chain to an anchor in ``trust`` the evidence is rejected."""
    pins = _pins(pinned_ak_names, pinned_ak_public)
    checks: list[str] = []
    unchecked: list[str] = []
    # 1. the bundle
    ev = evidence if isinstance(evidence, TpmEvidence) else decode_bundle(evidence)
    checks.append("bundle")
    # 2.-3. the AK public area and its attributes
    ak = parse_public(ev.ak_public, tpm2b_framed=True)
    name = ak.name()
    check_ak_attributes(ak)
    # 4. trust in the AK
    chain: AkChain | None = None
    if name in pins:
        source, root, simulated = "pinned", "pinned-ak", False
        checks.append("ak_pinned")
        if ev.ak_certs:
            unchecked.append("ak_cert")  # the pin decided; the chain was not evaluated
    elif ev.ak_certs:
        chain = verify_ak_chain(
            ev.ak_certs,
            ak.public_key(),
            trust=trust,
            collateral=collateral,
            at=at,
            vendors=anchor_vendors,
            cache=cache,
        )
        source = f"certificate:{chain.anchor.name}"
        root, simulated = chain.anchor.name, chain.anchor.simulated
        checks.append("ak_chain")
        if not chain.crl_checked:
            unchecked.append("ak_cert.crl")
    else:
        raise VerificationError(
            f"the AK (Name {name.hex()}) is neither pinned by this verifier nor certified by an "
            "AK certificate chain; an AK is never trusted because the evidence carries it",
            code="tpm.ak.untrusted",
        )
    # 5.-9. the quote
    q = verify_quote(
        ev.attest,
        ev.signature,
        ak=ak,
        pcrs=ev.pcrs,
        extra_data=None,
        allow_sha1_signatures=allow_sha1_signatures,
        ak_parents=ev.ak_parents,
    )
    if q.hierarchy is None and chain is not None:
        raise VerificationError(
            "the quote's qualifiedSigner does not derive from the AK's Name (neither a primary "
            "key of a hierarchy nor through the bundle's akparents), so nothing binds the AK "
            "public area the certificate's key came with to this quote",
            code="tpm.attest.qualified_signer",
        )
    checks += list(q.checks)
    unchecked += list(q.unchecked)
    a = q.attest
    claims: dict[str, Any] = {
        "pcrs": _hex_pcrs(q.pcrs),
        "pcr_selection": {s.bank: list(s.indices) for s in a.pcr_select},
        "ak_name": name.hex(),
        "ak_source": source,
        "ak_public": _ak_claims(ak),
        "extra_data": a.extra_data.hex(),
        "clock_info": a.clock_info.to_json(),
        "firmware_version": a.firmware_version,
        "qualified_signer": a.qualified_signer.hex(),
        "ak_hierarchy": q.hierarchy,
        "ak_parents": [n.hex() for n in ev.ak_parents],
        "signature": {"scheme": q.signature.scheme, "hash": hash_name(q.signature.hash_alg)},
    }
    if chain is not None:
        claims["ak_cert"] = dict(chain.claims)
    # 10.-11. event logs
    ima_pcrs: set[int] = set()
    if ev.ima_log is not None:
        ima, c, u, ima_pcrs = _check_ima(ev.ima_log, q.pcrs)
        checks += c
        unchecked += u
        if ima is not None:
            claims["ima"] = ima
    if ev.event_log is not None:
        el, c, u, _ = _check_tcg_log(ev.event_log, q.pcrs, ima_pcrs)
        checks += c
        unchecked += u
        claims["eventlog"] = el
    return make_verified(
        platform="tpm",
        claims=claims,
        report_data=a.extra_data,
        trust_root=root,
        simulated=simulated,
        debug=False,
        unchecked=tuple(unchecked),
        checks=tuple(checks),
    )


class TpmQuoteFormat:
    """The :class:`~atls.evidence.EvidenceFormat` ``tpm-quote-bundle`` (platform ``tpm``).

    :data:`TPM_QUOTE` (no arguments) trusts AKs only through AK certificate chains to the
    trust store's ``google``/``tpm`` anchors. A relying party that enrolled its AKs itself
    builds its own instance with ``pinned_ak_names=`` / ``pinned_ak_public=`` and hands it to
    the pipeline (``AttestationVerifier(formats=[...])``): pins are verifier configuration,
    never something the peer can send."""

    __slots__ = ("_allow_sha1", "_cache", "_pins", "_vendors")

    def __init__(
        self,
        *,
        pinned_ak_names: Iterable[bytes] = (),
        pinned_ak_public: Iterable[bytes] = (),
        allow_sha1_signatures: bool = False,
        anchor_vendors: Sequence[str] = AK_ANCHOR_VENDORS,
        cache: ChainCache | None = DEFAULT_CHAIN_CACHE,
    ) -> None:
        self._pins = _pins(pinned_ak_names, pinned_ak_public)
        self._allow_sha1 = allow_sha1_signatures
        self._vendors = tuple(anchor_vendors)
        self._cache = cache

    @property
    def name(self) -> str:
        return FORMAT_NAME

    @property
    def platform(self) -> str:
        return "tpm"

    @property
    def pinned_ak_names(self) -> frozenset[bytes]:
        return self._pins

    def sniff(self, data: bytes) -> bool:
        if not looks_like_bundle(data):
            return False
        try:
            decode_bundle(data)
        except AttestationError:
            return False
        return True

    def verify(
        self, evidence: bytes, *, trust: TrustStore, collateral: Collateral, at: datetime
    ) -> Verified:
        return verify_bundle(
            evidence,
            trust=trust,
            collateral=collateral,
            at=at,
            pinned_ak_names=self._pins,
            allow_sha1_signatures=self._allow_sha1,
            anchor_vendors=self._vendors,
            cache=self._cache,
        )
