"""dstack (Phala) RA-TLS: certificate extensions, ``VersionedAttestation`` codecs, binding.

Formats (docs/interop/dstack.md; byte-level reference in the project's interop notes):

* OIDs under ``1.3.6.1.4.1.62397.1``: ``.8`` attestation (current), ``.1`` TDX quote and
  ``.2`` event log (legacy), ``.3`` app-id, ``.4`` usage, ``.9`` app-info (the last three are
  *issuer assertions*, never attested). Every extnValue is a DER OCTET STRING around the
  payload; a payload may be wrapped as ``ELGZv1`` + gzip (decompressed with a 16 KiB cap).
* ``VersionedAttestation`` V0 is SCALE (first byte 0x00), V1 is msgpack (a map prefix).
* Binding: ``report_data = SHA-512(b"ratls-cert:" || SPKI)`` (key only: no freshness).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgpack
from asn1crypto import core

from atls._bytes import Writer
from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.interop._scale import ScaleReader, scale_compact

__all__ = [
    "ARC",
    "OID_APP_ID",
    "OID_APP_INFO",
    "OID_ATTESTATION",
    "OID_EVENT_LOG",
    "OID_QUOTE",
    "OID_USAGE",
    "RUNTIME_EVENT_TYPE",
    "DstackAttestation",
    "TdxEvent",
    "decode_attestation",
    "dstack_report_data",
    "encode_attestation_v0",
    "unwrap_extension",
    "wrap_extension",
]

ARC = "1.3.6.1.4.1.62397.1"
OID_QUOTE = ARC + ".1"
OID_EVENT_LOG = ARC + ".2"
OID_APP_ID = ARC + ".3"
OID_USAGE = ARC + ".4"
OID_ATTESTATION = ARC + ".8"
OID_APP_INFO = ARC + ".9"

RUNTIME_EVENT_TYPE = 0x08000001
MAX_ATTESTATION = 10 << 20
MAX_GZIP_OUTPUT = 16 << 10
_FMT = "dstack"

_QUOTE_VARIANTS = {0: "tdx", 1: "gcp-tdx", 2: "nitro-enclave", 3: "sev-snp", 4: "aws-nitro-tpm"}


def dstack_report_data(spki_der: bytes) -> bytes:
    """dstack's certificate binding: SHA-512("ratls-cert:" || SPKI DER)."""
    return hashlib.sha512(b"ratls-cert:" + spki_der).digest()


@dataclass(frozen=True)
class TdxEvent:
    imr: int
    event_type: int
    digest: bytes
    event: str
    event_payload: bytes
    #: runtime event digest rule (1 or 2); V0 SCALE carries neither field (always 1)
    version: int = 1
    preimage: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "imr": self.imr,
            "event_type": self.event_type,
            "digest": self.digest.hex(),
            "event": self.event,
            "event_payload": self.event_payload.hex(),
        }
        if self.version != 1:
            out["version"] = self.version
        if self.preimage is not None:
            out["preimage"] = self.preimage.hex()
        return out


@dataclass(frozen=True)
class DstackAttestation:
    """A decoded ``VersionedAttestation`` (only fields atls uses are typed)."""

    version: int
    platform: str  # "tdx", "sev-snp", ...
    quote: bytes  # TDX quote or raw SNP report
    event_log: tuple[TdxEvent, ...] = ()
    runtime_events: tuple[tuple[str, bytes], ...] = ()
    report_data: bytes = b""
    config: str = ""
    cert_chain: tuple[bytes, ...] = ()
    mr_config: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _err(msg: str, field: str | None = None) -> EvidenceParseError:
    return EvidenceParseError(msg, format=_FMT, field=field, code="dstack.parse")


def unwrap_extension(ext_value: bytes) -> bytes:
    """The payload of a dstack extension: the inner OCTET STRING, ELGZv1 inflated (capped)."""
    if len(ext_value) > MAX_ATTESTATION + 16:
        raise _err("extension larger than 10 MiB")
    try:
        inner = core.OctetString.load(ext_value, strict=True).native
    except (ValueError, TypeError) as e:
        raise _err(f"extension is not a DER OCTET STRING: {e}") from e
    if not isinstance(inner, bytes):
        raise _err("extension is not an OCTET STRING")
    if inner.startswith(b"ELGZv1"):
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(inner[6:], MAX_GZIP_OUTPUT + 1)
        except zlib.error as e:
            raise _err(f"bad ELGZv1 gzip stream: {e}") from e
        if len(out) > MAX_GZIP_OUTPUT or d.unconsumed_tail:
            raise _err("ELGZv1 payload exceeds the 16 KiB cap")
        return out
    return inner


def wrap_extension(payload: bytes) -> bytes:
    return bytes(core.OctetString(payload).dump())


def _tdx_event(s: ScaleReader) -> TdxEvent:
    imr = s.r.u32("imr")
    etype = s.r.u32("event_type")
    digest = s.vec_u8("digest")
    name = s.string("event")
    payload = s.vec_u8("event_payload")
    return TdxEvent(imr, etype, digest, name, payload)


def _decode_v0(data: bytes) -> DstackAttestation:
    s = ScaleReader(data, _FMT)
    s.r.u8("version")
    variant = s.r.u8("quote variant")
    platform = _QUOTE_VARIANTS.get(variant)
    if platform is None:
        raise _err(f"unknown quote variant {variant}", "quote variant")
    cert_chain: tuple[bytes, ...] = ()
    mr_config = ""
    events: list[TdxEvent] = []
    if platform in ("tdx", "gcp-tdx"):
        quote = s.vec_u8("quote")
        for _ in range(s.count("event_log", 14)):
            events.append(_tdx_event(s))
    elif platform == "sev-snp":
        quote = s.vec_u8("report")
        cert_chain = tuple(s.vec_u8("cert_chain") for _ in range(s.count("cert_chain")))
        mr_config = s.string("mr_config")
    else:
        raise UnsupportedEvidenceError(
            f"dstack platform {platform} is not supported", code="dstack.platform"
        )
    runtime = tuple(
        (s.string("runtime event"), s.vec_u8("runtime payload"))
        for _ in range(s.count("runtime_events", 2))
    )
    report_data = s.r.bytes(64, "report_data")
    config = s.string("config")
    s.r.expect_end("attestation")
    return DstackAttestation(
        0, platform, quote, tuple(events), runtime, report_data, config, cert_chain, mr_config
    )


def _as_bytes(v: Any, field: str) -> bytes:
    """msgpack byte fields come as bin or as arrays of small integers: accept both."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, list) and all(isinstance(i, int) and 0 <= i <= 255 for i in v):
        return bytes(v)
    if isinstance(v, str):
        try:
            return bytes.fromhex(v)
        except ValueError:
            pass
    raise _err("expected bytes", field)


def _int_field(ev: dict[Any, Any], key: str) -> int:
    v = ev.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        raise _err(f"event {key} must be a u32", key)
    return v


def _str_field(ev: dict[Any, Any], key: str) -> str:
    v = ev.get(key, "")
    if not isinstance(v, str):
        raise _err(f"{key} must be a string", key)
    return v


def _list(v: Any, field: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _err("expected an array", field)
    return v


def _decode_v1(data: bytes) -> DstackAttestation:
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_ATTESTATION,
            max_str_len=MAX_ATTESTATION,
            max_array_len=1 << 16,
            max_map_len=1 << 12,
        )
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as e:
        raise _err(f"not a msgpack attestation: {e}") from e
    if not isinstance(obj, dict) or obj.get("version") != 1:
        raise _err("V1 attestation must be a map with version 1")
    platform = obj.get("platform")
    stack = obj.get("stack")
    if not isinstance(platform, dict) or not isinstance(stack, dict):
        raise _err("V1 attestation lacks platform/stack")
    kind = platform.get("kind")
    pdata = platform.get("data")
    sdata = stack.get("data")
    if not isinstance(pdata, dict) or not isinstance(sdata, dict):
        raise _err("V1 platform/stack data must be maps")
    if kind in ("tdx", "gcp-tdx"):
        quote = _as_bytes(pdata.get("quote"), "quote")
        events = []
        for ev in _list(pdata.get("event_log"), "event_log"):
            if not isinstance(ev, dict):
                raise _err("event must be a map", "event_log")
            version = ev.get("version", 1)
            preimage = ev.get("preimage")
            if isinstance(version, bool) or version not in (1, 2):
                raise _err("event version must be 1 or 2", "version")
            events.append(
                TdxEvent(
                    _int_field(ev, "imr"),
                    _int_field(ev, "event_type"),
                    _as_bytes(ev.get("digest", b""), "digest"),
                    _str_field(ev, "event"),
                    _as_bytes(ev.get("event_payload", b""), "event_payload"),
                    version,
                    None if preimage is None else _as_bytes(preimage, "preimage"),
                )
            )
        chain: tuple[bytes, ...] = ()
        mr_config = ""
    elif kind == "sev-snp":
        quote = _as_bytes(pdata.get("report"), "report")
        events = []
        chain = tuple(
            _as_bytes(c, "cert_chain") for c in _list(pdata.get("cert_chain"), "cert_chain")
        )
        mr_config = _str_field(pdata, "mr_config")
    else:
        raise UnsupportedEvidenceError(
            f"dstack platform {kind!r} is not supported", code="dstack.platform"
        )
    runtime = []
    for ev in _list(sdata.get("runtime_events"), "runtime_events"):
        if not isinstance(ev, dict):
            raise _err("runtime event must be a map", "runtime_events")
        runtime.append((_str_field(ev, "event"), _as_bytes(ev.get("payload", b""), "payload")))
    report_data = _as_bytes(sdata.get("report_data"), "report_data")
    if len(report_data) != 64:
        raise _err("report_data must be 64 bytes", "report_data")
    return DstackAttestation(
        1,
        kind,
        quote,
        tuple(events),
        tuple(runtime),
        report_data,
        _str_field(sdata, "config"),
        chain,
        mr_config,
        {"stack": stack.get("kind")},
    )


def decode_attestation(data: bytes) -> DstackAttestation:
    """Decode a ``VersionedAttestation`` (V0 SCALE or V1 msgpack); trailing bytes are errors."""
    if len(data) > MAX_ATTESTATION:
        raise _err("attestation larger than 10 MiB")
    if not data:
        raise _err("empty attestation")
    if data[0] == 0x00:
        return _decode_v0(data)
    if 0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF):
        return _decode_v1(data)
    raise _err(f"unknown VersionedAttestation prefix {data[0]:#04x}")


def encode_attestation_v0(att: DstackAttestation) -> bytes:
    """SCALE V0 for a TDX attestation (what an atls server in dstack mode emits)."""
    if att.platform != "tdx":
        raise ValueError("only TDX attestations are emitted in dstack format")
    if len(att.report_data) != 64:
        raise ValueError("report_data must be 64 bytes")
    w = Writer().u8(0).u8(0)
    scale_compact(w, len(att.quote)).raw(att.quote)
    scale_compact(w, len(att.event_log))
    for e in att.event_log:
        w.u32(e.imr).u32(e.event_type)
        scale_compact(w, len(e.digest)).raw(e.digest)
        name = e.event.encode()
        scale_compact(w, len(name)).raw(name)
        scale_compact(w, len(e.event_payload)).raw(e.event_payload)
    scale_compact(w, len(att.runtime_events))
    for name_s, payload in att.runtime_events:
        name = name_s.encode()
        scale_compact(w, len(name)).raw(name)
        scale_compact(w, len(payload)).raw(payload)
    w.raw(att.report_data)
    cfg = att.config.encode()
    scale_compact(w, len(cfg)).raw(cfg)
    return w.getvalue()


def legacy_event_log(payload: bytes) -> tuple[TdxEvent, ...]:
    """The legacy ``.1.2`` extension: a JSON array of TdxEvent."""
    try:
        items = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _err(f"event log is not JSON: {e}") from e
    if not isinstance(items, list):
        raise _err("event log must be a JSON array")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise _err("event must be an object")
        try:
            out.append(
                TdxEvent(
                    int(item["imr"]),
                    int(item["event_type"]),
                    bytes.fromhex(item.get("digest", "")),
                    str(item.get("event", "")),
                    bytes.fromhex(item.get("event_payload", "")),
                )
            )
        except (KeyError, ValueError, TypeError) as err:
            raise _err(f"bad event: {err}") from err
    return tuple(out)
