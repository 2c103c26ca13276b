"""Intel DCAP collateral files: recognise them by content and turn them into
:class:`~atls.collateral.Document` objects that keep the exact signed bytes.

Recognised (importing this module registers the sniffers in
:data:`atls.collateral._bundle.DOCUMENT_SNIFFERS`):

* Intel PCS / PCCS JSON bodies ``{"tcbInfo": {...}, "signature": "<hex>"}`` and
  ``{"enclaveIdentity": {...}, "signature": "<hex>"}``. Intel signs the exact bytes of the
  inner object as served, so it is cut out of the file by its byte span, never re-serialised.
  The kind comes from the inner ``id``: ``TDX`` -> ``tdx-tcb-info``; ``SGX`` (or none, v2) ->
  ``sgx-tcb-info``; ``TD_QE`` -> ``tdx-qe-identity``; ``QE`` -> ``sgx-qe-identity``; other
  enclave identities (``QVE``...) -> ``sgx-<id>-identity``.
* The dcap-qvl ``QuoteCollateralV3`` JSON (``tcb_info``, ``tcb_info_signature``,
  ``qe_identity``, ``qe_identity_signature``, ``*_issuer_chain`` PEM, ``root_ca_crl`` and
  ``pck_crl`` as hex DER, optional ``pck_certificate_chain``), so existing bundles work.
* A CRL given as hex text (what a PCCS serves for the root CA CRL).

PEM/DER certificates and CRLs are recognised by :mod:`atls.collateral._bundle` itself.
Files that look like one of these formats but are malformed raise
:class:`~atls.errors.ConfigurationError` with code ``collateral.intel.malformed``.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

from atls.collateral._bundle import DOCUMENT_SNIFFERS, Collateral, Document
from atls.collateral._sniff import is_der_sequence, split_certificates, split_crls
from atls.errors import ConfigurationError

__all__ = [
    "DCAP_QVL_KEYS",
    "collateral_from_dcap_qvl_json",
    "document_from_pcs_body",
    "document_kind",
    "sniff_intel_collateral",
    "to_dcap_qvl_json",
]

_WS = " \t\n\r"
_MAX = 8 << 20
DCAP_QVL_KEYS = frozenset(
    {
        "tcb_info",
        "tcb_info_signature",
        "qe_identity",
        "qe_identity_signature",
        "tcb_info_issuer_chain",
        "qe_identity_issuer_chain",
        "pck_crl_issuer_chain",
        "root_ca_crl",
        "pck_crl",
    }
)
_HEX_RE = re.compile(rb"\A\s*(?:0x)?([0-9a-fA-F\s]+?)\s*\Z")


def _malformed(msg: str) -> ConfigurationError:
    return ConfigurationError(f"Intel collateral: {msg}", code="collateral.intel.malformed")


def _reject_constant(name: str) -> Any:
    raise _malformed(f"non-JSON constant {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _top_level_spans(text: str) -> dict[str, tuple[int, int, Any]]:
    """Each member of the top-level JSON object as ``key -> (start, end, value)``, where
    ``text[start:end]`` is the exact source of the value. Duplicate keys are refused."""
    out: dict[str, tuple[int, int, Any]] = {}
    try:
        i = _ws(text, 0)
        if i >= len(text) or text[i] != "{":
            raise _malformed("not a JSON object")
        i = _ws(text, i + 1)
        if i < len(text) and text[i] == "}":
            i += 1
        else:
            while True:
                if i >= len(text) or text[i] != '"':
                    raise _malformed(f"expected a member name at {i}")
                key, i = _DECODER.raw_decode(text, i)
                i = _ws(text, i)
                if i >= len(text) or text[i] != ":":
                    raise _malformed(f"expected ':' at {i}")
                start = _ws(text, i + 1)
                value, end = _DECODER.raw_decode(text, start)
                if key in out:
                    raise _malformed(f"duplicate member {key!r}")
                out[key] = (start, end, value)
                i = _ws(text, end)
                if i < len(text) and text[i] == ",":
                    i = _ws(text, i + 1)
                    continue
                if i < len(text) and text[i] == "}":
                    i += 1
                    break
                raise _malformed(f"expected ',' or '}}' at {i}")
        if _ws(text, i) != len(text):
            raise _malformed("trailing data after the JSON object")
    except json.JSONDecodeError as e:
        raise _malformed(str(e)) from e
    except RecursionError as e:
        raise _malformed("JSON nested too deeply") from e
    return out


def document_kind(field: str, inner: Any) -> str:
    """The Document kind of a ``tcbInfo`` / ``enclaveIdentity`` object, from its ``id``."""
    if not isinstance(inner, dict):
        raise _malformed(f"{field} is not a JSON object")
    ident = inner.get("id")
    if field == "tcbInfo":
        if ident == "TDX":
            return "tdx-tcb-info"
        if ident in ("SGX", None):
            return "sgx-tcb-info"
        raise _malformed(f"tcbInfo id {ident!r} is not TDX or SGX")
    if ident == "TD_QE":
        return "tdx-qe-identity"
    if ident == "QE":
        return "sgx-qe-identity"
    if isinstance(ident, str) and ident.isidentifier():
        return f"sgx-{ident.lower()}-identity"
    raise _malformed(f"enclaveIdentity id {ident!r} is not recognised")


def _signature(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _malformed(f"{what} is not a hex string")
    try:
        sig = binascii.unhexlify(value.strip())
    except (binascii.Error, ValueError) as e:
        raise _malformed(f"{what} is not hex") from e
    if len(sig) != 64:
        raise _malformed(f"{what} is {len(sig)} bytes, expected 64 (ECDSA P-256 r||s)")
    return sig


def document_from_pcs_body(
    body: bytes, *, kind: str | None = None, field: str, issuer_chain: tuple[bytes, ...] = ()
) -> Document:
    """The signed document of a PCS response ``{"<field>": {...}, "signature": "<hex>"}``.

    ``kind`` is checked against the document's own ``id`` when given. Raises
    :class:`~atls.errors.ConfigurationError` (a ValueError) otherwise.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _malformed(f"not UTF-8: {e}") from e
    members = _top_level_spans(text)
    if field not in members or "signature" not in members:
        raise _malformed(f"expected members {field!r} and 'signature'")
    start, end, inner = members[field]
    found = document_kind(field, inner)
    if kind is not None and kind != found:
        raise _malformed(f"expected a {kind} document, found {found}")
    return Document(
        kind=found,
        body=text[start:end].encode("utf-8"),
        signature=_signature(members["signature"][2], "signature"),
        issuer_chain=issuer_chain,
    )


def _hex_der(value: Any, what: str) -> bytes:
    if isinstance(value, list):
        if not all(isinstance(b, int) and 0 <= b <= 255 for b in value):
            raise _malformed(f"{what} is not a byte array")
        return bytes(value)
    if not isinstance(value, str):
        raise _malformed(f"{what} is not a hex string")
    v = value.strip()
    if v.startswith(("0x", "0X")):
        v = v[2:]
    try:
        return binascii.unhexlify(v)
    except (binascii.Error, ValueError) as e:
        raise _malformed(f"{what} is not hex") from e


def _chain(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, str):
        raise _malformed(f"{what} is not a PEM string")
    certs = tuple(split_certificates(value.encode("ascii", "replace")))
    if not certs:
        raise _malformed(f"{what} holds no PEM certificate")
    return certs


def collateral_from_dcap_qvl_json(data: bytes | str) -> Collateral:
    """A dcap-qvl ``QuoteCollateralV3`` JSON document as :class:`Collateral`."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    members = _top_level_spans(text)
    missing = sorted(k for k in DCAP_QVL_KEYS if k not in members)
    if missing:
        raise _malformed(f"dcap-qvl collateral lacks {missing}")
    v = {k: m[2] for k, m in members.items()}
    docs = []
    certs: list[bytes] = []
    for name, field in (("tcb_info", "tcbInfo"), ("qe_identity", "enclaveIdentity")):
        body = v[name]
        if not isinstance(body, str):
            raise _malformed(f"{name} must be the signed JSON text (a string)")
        try:
            inner = json.loads(body)
        except (json.JSONDecodeError, RecursionError) as e:
            raise _malformed(f"{name} is not JSON: {e}") from e
        chain = _chain(v[f"{name}_issuer_chain"], f"{name}_issuer_chain")
        certs += [c for c in chain if c not in certs]
        docs.append(
            Document(
                kind=document_kind(field, inner),
                body=body.encode("utf-8"),
                signature=_signature(v[f"{name}_signature"], f"{name}_signature"),
                issuer_chain=chain,
            )
        )
    for extra in ("pck_crl_issuer_chain", "pck_certificate_chain"):
        if extra in v and v[extra] is not None:
            certs += [c for c in _chain(v[extra], extra) if c not in certs]
    crls = []
    for name in ("root_ca_crl", "pck_crl"):
        der = _hex_der(v[name], name)
        if not split_crls(der):
            raise _malformed(f"{name} is not a DER CRL")
        crls.append(der)
    return Collateral(tuple(certs), tuple(crls), tuple(docs))


def _pem(ders: tuple[bytes, ...]) -> str:
    import base64

    out = []
    for der in ders:
        b64 = base64.b64encode(der).decode("ascii")
        lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        out.append(f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n")
    return "".join(out)


def to_dcap_qvl_json(
    *,
    tcb_info: Document,
    qe_identity: Document,
    root_ca_crl: bytes,
    pck_crl: bytes,
    pck_crl_issuer_chain: tuple[bytes, ...],
) -> str:
    """The dcap-qvl ``QuoteCollateralV3`` JSON for these pieces (documents need their issuer
    chain). The inverse of :func:`collateral_from_dcap_qvl_json`."""
    for d in (tcb_info, qe_identity):
        if not d.issuer_chain:
            raise ValueError(f"{d.kind} has no issuer chain")
    return json.dumps(
        {
            "pck_crl_issuer_chain": _pem(pck_crl_issuer_chain),
            "root_ca_crl": root_ca_crl.hex(),
            "pck_crl": pck_crl.hex(),
            "tcb_info_issuer_chain": _pem(tcb_info.issuer_chain),
            "tcb_info": tcb_info.body.decode("utf-8"),
            "tcb_info_signature": tcb_info.signature.hex(),
            "qe_identity_issuer_chain": _pem(qe_identity.issuer_chain),
            "qe_identity": qe_identity.body.decode("utf-8"),
            "qe_identity_signature": qe_identity.signature.hex(),
        }
    )


def _looks_like_json_object(data: bytes) -> bool:
    head = data.lstrip()[:1]
    return head == b"{"


def sniff_intel_collateral(data: bytes) -> Collateral | None:
    """The DOCUMENT_SNIFFERS entry: Intel JSON collateral or a hex CRL, else None."""
    if len(data) > _MAX:
        return None
    if _looks_like_json_object(data):
        head = data[:4096]
        if b'"tcbInfo"' in head or b'"enclaveIdentity"' in head:
            text_members = _top_level_spans(_utf8(data))
            for field in ("tcbInfo", "enclaveIdentity"):
                if field in text_members:
                    return Collateral(documents=(document_from_pcs_body(data, field=field),))
            return None
        if sum(f'"{k}"'.encode() in data for k in DCAP_QVL_KEYS) >= 3:
            return collateral_from_dcap_qvl_json(data)
        return None
    m = _HEX_RE.match(data)
    if m is not None and len(data) >= 64:
        try:
            der = binascii.unhexlify(b"".join(m.group(1).split()))
        except (binascii.Error, ValueError):
            return None
        if is_der_sequence(der):
            crls = split_crls(der)
            if crls:
                return Collateral(crls=tuple(crls))
    return None


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _malformed(f"not UTF-8: {e}") from e


if sniff_intel_collateral not in DOCUMENT_SNIFFERS:
    DOCUMENT_SNIFFERS.append(sniff_intel_collateral)
