"""TPM 2.0 quotes: parsing and verification in pure Python (no TSS needed to verify).

One evidence format, :data:`TPM_QUOTE` (``"tpm-quote-bundle"``, platform ``"tpm"``): a CBOR
bundle (:mod:`atls.evidence.tpm._bundle`) holding one ``TPM2_Quote`` (TPMS_ATTEST and
TPMT_SIGNATURE), the AK's TPM2B_PUBLIC, the quoted PCR values per bank, optionally the AK
certificate chain, the TCG event log and the IMA measurement list.

``Verified.report_data`` is the quote's ``extraData``. In atls the attester puts
``atls.binding.tpm_qualifying_data(report_data, digest_size)`` there (the first
``digest_size`` bytes of the 64-byte atls-v1 binding, ``digest_size`` = the AK's nameAlg
digest size), and the binding check compares it with the same prefix.

**How an AK is trusted** (never because the evidence carries it):

* **AK certificate chain** to a trust anchor of vendor ``google`` (the pinned GCE vTPM roots,
  ``trust.by_vendor("google")``) or ``tpm`` (simulated roots from :mod:`atls.testing.tpm`,
  only in a trust store that allows simulated anchors). The chain travels in the bundle
  (``akcerts``) and/or in ``collateral.certificates`` (intermediates). A certificate
  certifies only the key, so the quote's qualifiedSigner must then be recomputed from the
  AK's Name (GCE AKs are endorsement-hierarchy primaries; a child AK's bundle carries its
  ancestors' Names in ``akparents``): that binds the AK public area - attributes included -
  to the signed quote.
* **Pinned AK**, for TPMs whose AK the relying party enrolled itself (credential activation,
  an on-premises fleet, GyroidOS): the pins are *verifier configuration*, given as
  ``TpmQuoteFormat(pinned_ak_names=..., pinned_ak_public=...)`` (keyword-only) and handed to
  the pipeline (``AttestationVerifier(formats=[TpmQuoteFormat(...)])``), or as keyword
  arguments of :func:`verify_bundle`. They are deliberately *not* carried as collateral:
  collateral may be stapled by the peer (certificate extension ``.2``), so a
  ``"tpm-pinned-ak"`` document would let the attester pin its own key; and the
  :class:`~atls.trust.TrustStore` holds pinned vendor roots only, so an AK is not an anchor.
  ``Verified.trust_root`` is then ``"pinned-ak"`` and the claim ``ak_source`` ``"pinned"``.

Claims: ``pcrs`` (``{"sha256": {"0": hex, ...}}``, only quoted PCRs), ``pcr_selection``,
``ak_name``, ``ak_source`` (``"certificate:<root>"`` or ``"pinned"``), ``ak_public`` (type,
attributes, scheme), ``ak_hierarchy`` (the hierarchy the quote's qualifiedSigner derives
from, or None), ``ak_parents``, ``ak_cert`` (serial, validity, root, GCE instance
information), ``extra_data``, ``clock_info``, ``firmware_version``, ``qualified_signer``,
``signature``; with a TCG log, ``eventlog`` (replayed banks, verified / unverified PCRs,
``events``, ``scrtm_version``, ``secure_boot``, ``uefi_variables_sha256``, ``efi_apps``);
with an IMA list, ``ima`` (one entry per measurement). ``Verified.unchecked`` may list
``ak_cert.crl``, ``ak_cert`` (a pin decided), ``qualified_signer``, ``eventlog.pcrN`` (the
log extends PCR N but the quote does not cover it), ``eventlog.platform_state``,
``eventlog.efi_apps``, ``ima.pcrN``.

Error codes: ``tpm.bundle.parse``, ``tpm.bundle.version``; ``tpm.attest.parse``,
``tpm.attest.magic``, ``tpm.attest.type``, ``tpm.attest.qualified_signer``;
``tpm.signature.parse``, ``tpm.signature.alg``, ``tpm.signature.scheme``,
``tpm.signature.weak_hash``, ``tpm.signature``; ``tpm.public.parse``, ``tpm.ak.type``,
``tpm.ak.key``, ``tpm.ak.curve``, ``tpm.ak.attributes``, ``tpm.ak.untrusted``;
``tpm.ak_cert.parse``, ``tpm.ak_cert.usage``, ``tpm.ak_cert.key_mismatch``, ``tpm.ak_cert.chain``,
``tpm.ak_cert.no_anchor``, ``tpm.ak_cert.validity``, ``tpm.ak_cert.critical_extension``,
``tpm.ak_cert.revoked``, ``tpm.ak_cert.crl``; ``tpm.extra_data``; ``tpm.pcr_selection``,
``tpm.pcrs.missing``, ``tpm.pcrs.unquoted``, ``tpm.pcrs.size``, ``tpm.pcr_digest``;
``tpm.eventlog.bank``, ``tpm.eventlog.overlap``, ``tpm.ima.replay_mismatch``; the event-log
codes of :mod:`atls.evidence.eventlog` (``eventlog.parse``, ``eventlog.replay_mismatch``,
``eventlog.event_data``, ``eventlog.secure_boot``, ``eventlog.locality``, ``eventlog.bank``,
``eventlog.ima.template_hash``...); ``tpm.hash``; ``tpm.pin`` and ``tpm.rattestation``
(:class:`~atls.errors.ConfigurationError`).
"""

from __future__ import annotations

from atls.evidence.tpm._akcert import (
    AK_ANCHOR_VENDORS,
    DEFAULT_CHAIN_CACHE,
    GCE_INSTANCE_INFO_OID,
    AkChain,
    ChainCache,
    gce_instance_info,
    verify_ak_chain,
)
from atls.evidence.tpm._bundle import (
    BUNDLE_VERSION,
    MAX_BUNDLE,
    TpmEvidence,
    bundle_from_parts,
    decode_bundle,
    encode_bundle,
    looks_like_bundle,
)
from atls.evidence.tpm._quote import (
    QuoteResult,
    check_ak_attributes,
    compute_pcr_digest,
    verify_quote,
    verify_signature,
)
from atls.evidence.tpm._rattestation import RattestationConfig, parse_rattestation_conf
from atls.evidence.tpm._structs import (
    AK_REQUIRED_ATTRIBUTES,
    ALG_ECC,
    ALG_ECDSA,
    ALG_NULL,
    ALG_RSA,
    ALG_RSAPSS,
    ALG_RSASSA,
    ALG_SHA1,
    ALG_SHA256,
    ALG_SHA384,
    ALG_SHA512,
    ATTEST_QUOTE,
    ATTR_RESERVED,
    HIERARCHIES,
    TPM_GENERATED_VALUE,
    ClockInfo,
    PcrSelection,
    TpmsAttest,
    TpmtPublic,
    TpmtSignature,
    attribute_names,
    encode_attest,
    encode_pcr_selection,
    encode_public,
    encode_signature,
    hash_alg,
    hash_name,
    hash_size,
    parse_attest,
    parse_public,
    parse_signature,
    qualified_name_hierarchy,
)
from atls.evidence.tpm._verify import FORMAT_NAME, TpmQuoteFormat, ak_name, verify_bundle

__all__ = [
    "AK_ANCHOR_VENDORS",
    "AK_REQUIRED_ATTRIBUTES",
    "ALG_ECC",
    "ALG_ECDSA",
    "ALG_NULL",
    "ALG_RSA",
    "ALG_RSAPSS",
    "ALG_RSASSA",
    "ALG_SHA1",
    "ALG_SHA256",
    "ALG_SHA384",
    "ALG_SHA512",
    "ATTEST_QUOTE",
    "ATTR_RESERVED",
    "BUNDLE_VERSION",
    "DEFAULT_CHAIN_CACHE",
    "FORMAT_NAME",
    "GCE_INSTANCE_INFO_OID",
    "HIERARCHIES",
    "MAX_BUNDLE",
    "TPM_GENERATED_VALUE",
    "TPM_QUOTE",
    "AkChain",
    "ChainCache",
    "ClockInfo",
    "PcrSelection",
    "QuoteResult",
    "RattestationConfig",
    "TpmEvidence",
    "TpmQuoteFormat",
    "TpmsAttest",
    "TpmtPublic",
    "TpmtSignature",
    "ak_name",
    "attribute_names",
    "bundle_from_parts",
    "check_ak_attributes",
    "compute_pcr_digest",
    "decode_bundle",
    "encode_attest",
    "encode_bundle",
    "encode_pcr_selection",
    "encode_public",
    "encode_signature",
    "gce_instance_info",
    "hash_alg",
    "hash_name",
    "hash_size",
    "looks_like_bundle",
    "parse_attest",
    "parse_public",
    "parse_rattestation_conf",
    "parse_signature",
    "qualified_name_hierarchy",
    "verify_ak_chain",
    "verify_bundle",
    "verify_quote",
    "verify_signature",
]

#: The ``tpm-quote-bundle`` format with no pinned AKs (AK certificate chains only).
TPM_QUOTE = TpmQuoteFormat()
