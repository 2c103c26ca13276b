"""The TPM evidence bundle (format ``tpm-quote-bundle``): one quote and what it needs, in CBOR.

A CBOR map (RFC 8949) with short text keys, version 1::

    {
      "v":       1,                                  version (unsigned int)
      "ak":      bstr,                               AK public area, TPM2B_PUBLIC
      "sig":     bstr,                               TPMT_SIGNATURE
      "pcrs":    {bank: {index: bstr}},              quoted PCR values; bank "sha1" | "sha256"
                                                     | "sha384" | "sha512", index 0..63
      "attest":  bstr,                               TPMS_ATTEST, exactly as TPM2_Quote returned it
      "akcerts": [bstr, ...],                        optional: AK certificate (DER) first, then
                                                     intermediates (not the root)
      "akparents": [bstr, ...],                      optional: the Names of the AK's ancestor
                                                     keys, primary first (lets the verifier
                                                     recompute the quote's qualifiedSigner for
                                                     an AK that is not a primary key)
      "imalog":  bstr,                               optional: IMA measurement list (binary
                                                     runtime measurements or the ascii list)
      "tcglog":  bstr,                               optional: TCG PC Client event log
                                                     (binary_bios_measurements)
    }

Decoding is strict: the input is capped (:data:`MAX_BUNDLE`), every field is capped, unknown
keys and wrong types are errors, and the bytes must be the canonical encoding of what they
decode to (RFC 8949 section 4.2.1 core deterministic encoding: shortest lengths, no
indefinite lengths, no tags, map keys sorted; for these short keys it coincides with the
length-first order of RFC 7049 section 3.9 that ``cbor2.dumps(canonical=True)`` writes). So
one bundle has exactly one encoding and duplicate keys cannot hide. All errors are
:class:`~atls.errors.EvidenceParseError` with code ``tpm.bundle.parse`` (or
:class:`~atls.errors.UnsupportedEvidenceError` ``tpm.bundle.version``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cbor2

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence.tpm._structs import HASH_ALGS, MAX_ATTEST, MAX_PCR_SELECT, MAX_PUBLIC

__all__ = [
    "BUNDLE_VERSION",
    "MAX_BUNDLE",
    "MAX_IMA_LOG",
    "MAX_TCG_LOG",
    "TpmEvidence",
    "bundle_from_parts",
    "decode_bundle",
    "encode_bundle",
    "looks_like_bundle",
]

BUNDLE_VERSION = 1
MAX_TCG_LOG = 1 << 20
MAX_IMA_LOG = 8 << 20
MAX_CERT = 16 * 1024
MAX_CERTS = 8
MAX_SIGNATURE = 1024
MAX_BUNDLE = MAX_TCG_LOG + MAX_IMA_LOG + 256 * 1024
_BANK_SIZES = {name: size for name, size, _ in HASH_ALGS.values()}
_FMT = "tpm.bundle"
_REQUIRED = ("v", "attest", "sig", "ak", "pcrs")
_OPTIONAL = ("akcerts", "akparents", "tcglog", "imalog")
MAX_PARENTS = 4
MAX_NAME = 66


@dataclass(frozen=True)
class TpmEvidence:
    """A decoded bundle (nothing verified yet). ``pcrs`` is ``{bank: {index: value}}``."""

    attest: bytes
    signature: bytes
    ak_public: bytes
    pcrs: Mapping[str, Mapping[int, bytes]]
    ak_certs: tuple[bytes, ...] = ()
    event_log: bytes | None = None
    ima_log: bytes | None = None
    version: int = field(default=BUNDLE_VERSION)
    ak_parents: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        frozen = {b: MappingProxyType(dict(v)) for b, v in self.pcrs.items()}
        object.__setattr__(self, "pcrs", MappingProxyType(frozen))


def _err(msg: str, fld: str | None = None) -> EvidenceParseError:
    return EvidenceParseError(msg, format=_FMT, field=fld, code="tpm.bundle.parse")


def _as_map(ev: TpmEvidence) -> dict[str, Any]:
    m: dict[str, Any] = {
        "v": ev.version,
        "attest": bytes(ev.attest),
        "sig": bytes(ev.signature),
        "ak": bytes(ev.ak_public),
        "pcrs": {b: {int(i): bytes(v) for i, v in vals.items()} for b, vals in ev.pcrs.items()},
    }
    if ev.ak_certs:
        m["akcerts"] = [bytes(c) for c in ev.ak_certs]
    if ev.ak_parents:
        m["akparents"] = [bytes(n) for n in ev.ak_parents]
    if ev.event_log is not None:
        m["tcglog"] = bytes(ev.event_log)
    if ev.ima_log is not None:
        m["imalog"] = bytes(ev.ima_log)
    return m


def encode_bundle(ev: TpmEvidence) -> bytes:
    """The canonical CBOR encoding of ``ev`` (checked by decoding it again)."""
    data: bytes = cbor2.dumps(_as_map(ev), canonical=True)
    decode_bundle(data)
    return data


def _bstr(m: Mapping[str, Any], key: str, limit: int, *, empty: bool = False) -> bytes:
    v = m[key]
    if type(v) is not bytes:
        raise _err(f"{key} must be a byte string", key)
    if len(v) > limit:
        raise _err(f"{key} has {len(v)} bytes (max {limit})", key)
    if not v and not empty:
        raise _err(f"{key} is empty", key)
    return v


def _pcrs(raw: Any) -> dict[str, dict[int, bytes]]:
    if type(raw) is not dict:
        raise _err("pcrs must be a map", "pcrs")
    if len(raw) > len(_BANK_SIZES):
        raise _err("too many PCR banks", "pcrs")
    out: dict[str, dict[int, bytes]] = {}
    for bank, values in raw.items():
        if type(bank) is not str or bank not in _BANK_SIZES:
            raise _err(f"PCR bank {bank!r} (expected one of {sorted(_BANK_SIZES)})", "pcrs")
        if type(values) is not dict or not values:
            raise _err(f"pcrs[{bank}] must be a non-empty map", "pcrs")
        size = _BANK_SIZES[bank]
        bank_out: dict[int, bytes] = {}
        for index, value in values.items():
            if type(index) is not int or not 0 <= index < MAX_PCR_SELECT * 8:
                raise _err(f"PCR index {index!r} in {bank}", "pcrs")
            if type(value) is not bytes or len(value) != size:
                raise _err(f"PCR {bank}:{index} must be {size} bytes", "pcrs")
            bank_out[index] = value
        out[bank] = bank_out
    return out


def _reject_tag(_decoder: Any, tag: Any) -> Any:
    raise _err(f"CBOR tag {getattr(tag, 'tag', '?')} is not allowed")


_DECODE_ERRORS = (
    cbor2.CBORDecodeError,
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
    EOFError,
    LookupError,
    ArithmeticError,
)


def decode_bundle(data: bytes) -> TpmEvidence:
    """Decode and structurally check a bundle (see the module docstring)."""
    buf = bytes(data)
    if len(buf) > MAX_BUNDLE:
        raise _err(f"bundle of {len(buf)} bytes (max {MAX_BUNDLE})")
    if not buf or not 0xA0 <= buf[0] <= 0xBB:
        raise _err("not a CBOR map")
    try:
        m = cbor2.loads(buf, tag_hook=_reject_tag)
    except EvidenceParseError:
        raise
    except _DECODE_ERRORS as e:
        raise _err(f"invalid CBOR: {e}") from e
    if type(m) is not dict:
        raise _err("not a CBOR map")
    unknown = [k for k in m if k not in _REQUIRED and k not in _OPTIONAL]
    if unknown:
        raise _err(f"unknown keys {unknown!r}")
    missing = [k for k in _REQUIRED if k not in m]
    if missing:
        raise _err(f"missing keys {missing!r}")
    v = m["v"]
    if type(v) is not int:
        raise _err("v must be an unsigned integer", "v")
    if v != BUNDLE_VERSION:
        raise UnsupportedEvidenceError(
            f"TPM evidence bundle version {v} (supported: {BUNDLE_VERSION})",
            code="tpm.bundle.version",
        )
    certs: tuple[bytes, ...] = ()
    if "akcerts" in m:
        raw = m["akcerts"]
        if type(raw) is not list or not 0 < len(raw) <= MAX_CERTS:
            raise _err(f"akcerts must be a list of 1..{MAX_CERTS} certificates", "akcerts")
        for c in raw:
            if type(c) is not bytes or not 0 < len(c) <= MAX_CERT:
                raise _err(f"akcerts entries must be DER of 1..{MAX_CERT} bytes", "akcerts")
        certs = tuple(raw)
    parents: tuple[bytes, ...] = ()
    if "akparents" in m:
        raw = m["akparents"]
        if type(raw) is not list or not 0 < len(raw) <= MAX_PARENTS:
            raise _err(f"akparents must be a list of 1..{MAX_PARENTS} Names", "akparents")
        for n in raw:
            if type(n) is not bytes or not 2 < len(n) <= MAX_NAME:
                raise _err(f"akparents entries must be Names of 3..{MAX_NAME} bytes", "akparents")
        parents = tuple(raw)
    ev = TpmEvidence(
        attest=_bstr(m, "attest", MAX_ATTEST),
        signature=_bstr(m, "sig", MAX_SIGNATURE),
        ak_public=_bstr(m, "ak", MAX_PUBLIC + 2),
        pcrs=_pcrs(m["pcrs"]),
        ak_certs=certs,
        event_log=_bstr(m, "tcglog", MAX_TCG_LOG) if "tcglog" in m else None,
        ima_log=_bstr(m, "imalog", MAX_IMA_LOG) if "imalog" in m else None,
        version=v,
        ak_parents=parents,
    )
    try:
        canonical = cbor2.dumps(_as_map(ev), canonical=True)
    except _DECODE_ERRORS as e:  # pragma: no cover - the map holds only bytes/ints/str
        raise _err(f"cannot re-encode: {e}") from e
    if canonical != buf:
        raise _err("not in canonical CBOR encoding (RFC 8949 section 4.2.1)")
    return ev


def looks_like_bundle(data: bytes) -> bool:
    """Cheap check: a CBOR map whose first key is ``"v"`` (canonical order puts it first)."""
    return len(data) > 4 and 0xA5 <= data[0] <= 0xA8 and data[1:3] == b"\x61v"


def bundle_from_parts(
    *,
    attest: bytes,
    signature: bytes,
    ak_public: bytes,
    pcrs: Mapping[str, Mapping[int, bytes]],
    ak_certs: Sequence[bytes] = (),
    event_log: bytes | None = None,
    ima_log: bytes | None = None,
    ak_parents: Sequence[bytes] = (),
) -> bytes:
    """Encode a bundle from its parts (attesters and tests)."""
    return encode_bundle(
        TpmEvidence(
            attest,
            signature,
            ak_public,
            pcrs,
            tuple(ak_certs),
            event_log,
            ima_log,
            ak_parents=tuple(ak_parents),
        )
    )
