"""Writing collateral to a directory (``atls collateral fetch --out``) and reading it back.

Layout (every file readable on its own by :func:`atls.collateral.load_collateral`):

- ``<kind>.json``: a signed Intel document in PCS response form,
  ``{"tcbInfo"|"enclaveIdentity": <exact signed bytes>, "signature": "<hex>"}``;
- ``<kind>.issuer-chain.pem``: its issuer chain;
- ``certificates.pem``: every certificate (VCEK, ASK/ARK, PCK CA, TCB signing...);
- ``crl-<n>-<issuer>.der``: each CRL;
- ``MANIFEST.json``: which file is what, where it came from, and validity windows, so that
  :func:`read_collateral_dir` restores exactly the :class:`Collateral` that was written
  (documents with their issuer chains).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from atls.collateral import Collateral, Document, load_collateral
from atls.collateral._sniff import split_certificates
from atls.collateral.fetch._pcs_json import PcsJsonError, document_from_pcs_body
from atls.collateral.fetch._x509 import CertInfo, CrlInfo
from atls.errors import ConfigurationError

__all__ = ["MANIFEST", "read_collateral_dir", "write_collateral_dir"]

MANIFEST = "MANIFEST.json"
_FORMAT = "atls-collateral-dir-v1"
_MAX_FILE = 8 << 20

_FIELDS = {
    "tdx-tcb-info": "tcbInfo",
    "sgx-tcb-info": "tcbInfo",
    "tdx-qe-identity": "enclaveIdentity",
    "sgx-qe-identity": "enclaveIdentity",
}


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower()[:40] or "x"


def _pem(label: str, der: bytes) -> bytes:
    import base64

    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _iso(t: _dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(_dt.UTC).isoformat()


def _doc_validity(doc: Document) -> dict[str, Any]:
    try:
        inner = json.loads(doc.body)
    except ValueError:
        return {}
    if not isinstance(inner, dict):
        return {}
    return {k: inner[k] for k in ("issueDate", "nextUpdate", "fmspc", "id") if k in inner}


def _cert_entry(der: bytes) -> dict[str, Any]:
    try:
        info = CertInfo(der)
    except ValueError:
        return {}
    return {
        "subject": info.subject_cn,
        "issuer": info.issuer_cn,
        "not_before": _iso(info.not_before),
        "not_after": _iso(info.not_after),
    }


def _remove_previous(directory: Path) -> None:
    """Delete the files a previous manifest in ``directory`` listed (and the manifest)."""
    m = directory / MANIFEST
    if not m.is_file():
        return
    try:
        old = json.loads(m.read_bytes())
        files = [f["path"] for f in old.get("files", []) if isinstance(f.get("path"), str)]
    except (ValueError, AttributeError, TypeError):
        return
    for name in files:
        p = directory / name
        if p.parent == directory:
            with contextlib.suppress(OSError):
                p.unlink()
    with contextlib.suppress(OSError):
        m.unlink()


def write_collateral_dir(collateral: Collateral, directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``collateral`` into ``directory`` (created if needed); return the files written.

    Files of a previous write into the same directory (listed in its manifest) are replaced.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _remove_previous(d)
    entries: list[dict[str, Any]] = []
    written: list[Path] = []

    def put(name: str, data: bytes, entry: dict[str, Any]) -> None:
        _atomic_write(d / name, data)
        written.append(d / name)
        entries.append({"path": name, **entry})

    used: set[str] = set()
    for doc in collateral.documents:
        base = _slug(doc.kind)
        n = 1
        while base + (f"-{n}" if n > 1 else "") in used:
            n += 1
        stem = base + (f"-{n}" if n > 1 else "")
        used.add(stem)
        field = _FIELDS.get(doc.kind)
        chain_name = None
        if doc.issuer_chain:
            chain_name = f"{stem}.issuer-chain.pem"
            put(
                chain_name,
                b"".join(_pem("CERTIFICATE", c) for c in doc.issuer_chain),
                {"type": "issuer-chain", "of": f"{stem}.json"},
            )
        if field is not None:
            data = (
                b'{"'
                + field.encode()
                + b'":'
                + doc.body
                + b',"signature":"'
                + doc.signature.hex().encode()
                + b'"}'
            )
            put(
                f"{stem}.json",
                data,
                {
                    "type": "document",
                    "kind": doc.kind,
                    "field": field,
                    "issuer_chain": chain_name,
                    **_doc_validity(doc),
                },
            )
        else:
            put(f"{stem}.body", doc.body, {"type": "document-body", "kind": doc.kind})
            put(
                f"{stem}.sig",
                doc.signature,
                {"type": "document-signature", "of": f"{stem}.body", "issuer_chain": chain_name},
            )
    if collateral.certificates:
        put(
            "certificates.pem",
            b"".join(_pem("CERTIFICATE", c) for c in collateral.certificates),
            {
                "type": "certificates",
                "certificates": [_cert_entry(c) for c in collateral.certificates],
            },
        )
    for i, crl in enumerate(collateral.crls, 1):
        try:
            info: CrlInfo | None = CrlInfo(crl)
        except ValueError:
            info = None
        name = f"crl-{i}-{_slug(info.issuer_cn if info else 'unknown')}.der"
        put(
            name,
            crl,
            {
                "type": "crl",
                "issuer": info.issuer_cn if info else None,
                "this_update": _iso(info.this_update) if info else None,
                "next_update": _iso(info.next_update) if info else None,
            },
        )
    manifest = {
        "format": _FORMAT,
        "written": _iso(_dt.datetime.now(_dt.UTC)),
        "sources": list(collateral.sources),
        "files": entries,
    }
    _atomic_write(d / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8") + b"\n")
    written.append(d / MANIFEST)
    return written


def _read(d: Path, name: Any) -> bytes:
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        raise ConfigurationError(
            f"{d / MANIFEST}: bad file name {name!r}", code="collateral.manifest"
        )
    p = d / name
    if not p.is_file():
        raise ConfigurationError(
            f"{p}: listed in the manifest but missing", code="collateral.manifest"
        )
    if p.stat().st_size > _MAX_FILE:
        raise ConfigurationError(f"{p}: too large", code="collateral.too_large")
    return p.read_bytes()


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    m = Path(directory) / MANIFEST
    if not m.is_file():
        return None
    try:
        obj = json.loads(m.read_bytes())
    except ValueError as e:
        raise ConfigurationError(f"{m}: not JSON: {e}", code="collateral.manifest") from e
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise ConfigurationError(
            f"{m}: not an atls collateral manifest", code="collateral.manifest"
        )
    if not isinstance(obj.get("files"), list):
        raise ConfigurationError(f"{m}: no file list", code="collateral.manifest")
    return obj


def read_collateral_dir(directory: str | os.PathLike[str]) -> Collateral:
    """Read a directory written by :func:`write_collateral_dir` exactly (documents keep their
    issuer chains); any other directory is read with :func:`load_collateral`."""
    d = Path(directory)
    manifest = read_manifest(d)
    if manifest is None:
        return load_collateral([d])
    certs: list[bytes] = []
    crls: list[bytes] = []
    docs: list[Document] = []
    for f in manifest["files"]:
        if not isinstance(f, dict):
            raise ConfigurationError(f"{d / MANIFEST}: bad entry", code="collateral.manifest")
        kind = f.get("type")
        if kind == "document":
            chain: tuple[bytes, ...] = ()
            if f.get("issuer_chain") is not None:
                chain = tuple(split_certificates(_read(d, f["issuer_chain"])))
            body = _read(d, f.get("path"))
            try:
                docs.append(
                    document_from_pcs_body(
                        body, kind=str(f.get("kind")), field=str(f.get("field")), issuer_chain=chain
                    )
                )
            except PcsJsonError as e:
                raise ConfigurationError(
                    f"{d / str(f.get('path'))}: {e}", code="collateral.manifest"
                ) from e
        elif kind == "document-signature":
            chain = ()
            if f.get("issuer_chain") is not None:
                chain = tuple(split_certificates(_read(d, f["issuer_chain"])))
            body_name = f.get("of")
            body_entry = next(
                (
                    e
                    for e in manifest["files"]
                    if isinstance(e, dict) and e.get("path") == body_name
                ),
                None,
            )
            docs.append(
                Document(
                    kind=str(body_entry.get("kind")) if body_entry else "unknown",
                    body=_read(d, body_name),
                    signature=_read(d, f.get("path")),
                    issuer_chain=chain,
                )
            )
        elif kind == "certificates":
            certs += split_certificates(_read(d, f.get("path")))
        elif kind == "crl":
            crls.append(_read(d, f.get("path")))
        elif kind in ("issuer-chain", "document-body"):
            continue
        else:
            raise ConfigurationError(
                f"{d / MANIFEST}: unknown entry type {kind!r}", code="collateral.manifest"
            )
    sources = manifest.get("sources")
    srcs = tuple(s for s in sources if isinstance(s, str)) if isinstance(sources, list) else ()
    return Collateral(tuple(certs), tuple(crls), tuple(docs), srcs)
