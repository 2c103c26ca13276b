"""Linux IMA measurement lists (ascii and binary) and their replay into the IMA PCR.

Binary record (``binary_runtime_measurements``; integers in the kernel's byte order,
little-endian on x86 and with ``ima_canonical_fmt``)::

    u32 pcr | 20-byte SHA-1 template hash | u32 name length | template name
    | u32 template data length | template data        (no data length for template "ima")

Template data:

- ``ima-ng``:  ``u32 len | "<alg>:" 0x00 digest`` ``| u32 len | path 0x00``
- ``ima-sig``: ima-ng ``| u32 len | signature``; ``ima-buf``: ima-ng fields with the buffer
  instead of a path; ``ima-modsig``: ima-sig ``| u32 len | modsig digest | u32 len | modsig``
- ``ima`` (SHA-1 only): ``20-byte digest | u32 len | path`` in the list; the hash covers
  ``digest | path zero-padded to 256 bytes``.

The template hash is SHA-1 of the template data; the IMA PCR's bank B is extended with
``H_B(template data)``. A record whose template hash is all zeros is a *violation* and
extends ``0xFF`` repeated to the bank's size.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from atls._bytes import Reader, Writer
from atls.errors import EvidenceParseError, UnsupportedEvidenceError, VerificationError
from atls.evidence.eventlog._algs import bank_size, hash_bank
from atls.evidence.eventlog._tcg import FMT

__all__ = [
    "IMA_PCR",
    "MAX_IMA_ENTRIES",
    "ImaEntry",
    "check_template_hashes",
    "encode_ima_ascii",
    "encode_ima_binary",
    "ima_claims",
    "ima_template_data",
    "parse_ima",
    "parse_ima_ascii",
    "parse_ima_binary",
    "replay_ima",
]

IMA_PCR = 10
MAX_IMA_ENTRIES = 1_000_000
_IMA_NAME_LEN = 256  # IMA_EVENT_NAME_LEN_MAX + 1: the "ima" template hashes a padded name
_MAX_TEMPLATE_NAME = 64
# digest sizes of the file-hash algorithms the kernel names in d-ng fields
_FILE_HASHES = {
    "md5": 16,
    "sha1": 20,
    "rmd160": 20,
    "sha224": 28,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "wp256": 32,
    "wp384": 48,
    "wp512": 64,
    "tgr128": 16,
    "tgr160": 20,
    "tgr192": 24,
    "sm3": 32,
    "streebog256": 32,
    "streebog512": 64,
    "sha3-256": 32,
    "sha3-384": 48,
    "sha3-512": 64,
}
# template name -> its fields (kernel ima_template.c)
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "ima": ("d", "n"),
    "ima-ng": ("d-ng", "n-ng"),
    "ima-sig": ("d-ng", "n-ng", "sig"),
    "ima-buf": ("d-ng", "n-ng", "buf"),
    "ima-modsig": ("d-ng", "n-ng", "sig", "d-modsig", "modsig"),
    "ima-ngv2": ("d-ngv2", "n-ng"),
    "ima-sigv2": ("d-ngv2", "n-ng", "sig"),
}


@dataclass(frozen=True)
class ImaEntry:
    """One measurement. ``template_data`` is the exact hashed data (for ascii lists it is
    rebuilt from the printed fields). ``file_hash``/``path`` are None for templates atls
    does not decode; ``path`` is the buffer's hex for ``ima-buf``."""

    pcr: int
    template_hash: bytes
    template_name: str
    template_data: bytes
    file_hash_algorithm: str | None = None
    file_hash: bytes | None = None
    path: str | None = None
    signature: bytes | None = None

    @property
    def violation(self) -> bool:
        return not any(self.template_hash)


def _err(msg: str, offset: int | None = None, field: str | None = None) -> EvidenceParseError:
    return EvidenceParseError(f"IMA: {msg}", format=FMT, offset=offset, field=field)


def _path_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _digest_field(value: bytes, at: int) -> tuple[str, bytes]:
    """A d-ng value: ``"<alg>:" 0x00 digest`` (d-ngv2: ``"<type>:<alg>:" 0x00 digest``)."""
    sep = value.find(b":\x00")
    if sep < 0:
        raise _err("digest field without '<alg>:\\0' prefix", at, "d-ng")
    alg = value[:sep].decode("ascii", "replace")
    digest = value[sep + 2 :]
    algo = alg.rsplit(":", 1)[-1]
    want = _FILE_HASHES.get(algo)
    if want is not None and len(digest) != want:
        raise _err(f"{algo} digest of {len(digest)} bytes", at, "d-ng")
    return alg, digest


def _decode_template(name: str, data: bytes, byteorder: Literal["little", "big"]) -> ImaEntry:
    """Split template data into fields and pick out digest, path and signature."""
    fields = _TEMPLATES.get(name)
    if fields is None:
        return ImaEntry(0, b"", name, data)
    r = Reader(data, FMT)
    values: dict[str, tuple[int, bytes]] = {}
    for f in fields:
        at = r.pos
        if name == "ima" and f == "d":
            values[f] = (at, r.bytes(20, "d"))
            continue
        n = int.from_bytes(r.bytes(4, f"{f}.len"), byteorder)
        values[f] = (at, r.bytes(n, f))
    r.expect_end("template data")
    if name == "ima":
        return ImaEntry(0, b"", name, data, "sha1", values["d"][1], _path_text(values["n"][1]))
    at, d = values["d-ng" if "d-ng" in values else "d-ngv2"]
    alg, digest = _digest_field(d, at)
    at, raw_name = values["n-ng"]
    if name == "ima-buf":
        path = values["buf"][1].hex()
    else:
        if not raw_name.endswith(b"\x00"):
            raise _err("path is not NUL-terminated", at, "n-ng")
        path = _path_text(raw_name[:-1])
    sig = values["sig"][1] if "sig" in values else None
    return ImaEntry(0, b"", name, data, alg, digest, path, sig or None)


def _hash_input(e: ImaEntry) -> bytes:
    """What the template hash covers (the padded-name form for the "ima" template)."""
    if e.template_name != "ima":
        return e.template_data
    digest = e.template_data[:20]
    name = e.template_data[24:]
    if len(name) >= _IMA_NAME_LEN:
        raise UnsupportedEvidenceError(
            "ima template path longer than 255 bytes", code="eventlog.unsupported"
        )
    return digest + name.ljust(_IMA_NAME_LEN, b"\x00")


def _entry(
    pcr: int, thash: bytes, name: str, data: bytes, byteorder: Literal["little", "big"]
) -> ImaEntry:
    e = _decode_template(name, data, byteorder)
    return ImaEntry(pcr, thash, name, data, e.file_hash_algorithm, e.file_hash, e.path, e.signature)


def parse_ima_binary(
    data: bytes, *, byteorder: Literal["little", "big"] = "little"
) -> tuple[ImaEntry, ...]:
    """Parse ``binary_runtime_measurements``."""
    if not data:
        raise _err("empty measurement list", 0)
    r = Reader(data, FMT)
    out: list[ImaEntry] = []
    while r.remaining:
        if len(out) >= MAX_IMA_ENTRIES:
            raise _err(f"more than {MAX_IMA_ENTRIES} entries", r.pos)
        pcr = int.from_bytes(r.bytes(4, "pcr"), byteorder)
        thash = r.bytes(20, "template_hash")
        n_at = r.pos
        n = int.from_bytes(r.bytes(4, "template_name_len"), byteorder)
        if not 1 <= n <= _MAX_TEMPLATE_NAME:
            raise _err(f"template name length {n}", n_at, "template_name")
        raw = r.bytes(n, "template_name")
        if not all(0x21 <= b < 0x7F for b in raw):
            raise _err("template name is not printable ASCII", n_at + 4, "template_name")
        name = raw.decode("ascii")
        if name == "ima":
            # no data length: 20-byte digest, then a length-prefixed name
            d_at = r.pos
            digest = r.bytes(20, "d")
            m_bytes = r.bytes(4, "n.len")
            m = int.from_bytes(m_bytes, byteorder)
            tdata = digest + m_bytes + r.bytes(m, "n")
            if m >= _IMA_NAME_LEN:
                raise _err("ima template path longer than 255 bytes", d_at, "n")
        else:
            size = int.from_bytes(r.bytes(4, "template_data_len"), byteorder)
            tdata = r.bytes(size, "template_data")
        out.append(_entry(pcr, thash, name, tdata, byteorder))
    return tuple(out)


def ima_template_data(
    template_name: str,
    *,
    algorithm: str,
    file_hash: bytes,
    path: str,
    signature: bytes = b"",
    byteorder: Literal["little", "big"] = "little",
) -> bytes:
    """Build the template data of an ``ima-ng``/``ima-sig``/``ima`` record."""
    raw_path = path.encode("utf-8", "surrogateescape")

    def field(b: bytes) -> bytes:
        return len(b).to_bytes(4, byteorder) + b

    if template_name == "ima":
        if algorithm != "sha1" or len(file_hash) != 20:
            raise ValueError("the ima template carries SHA-1 file hashes")
        return file_hash + field(raw_path)
    if template_name not in ("ima-ng", "ima-sig"):
        raise ValueError(f"cannot build template {template_name}")
    out = field(algorithm.encode() + b":\x00" + file_hash) + field(raw_path + b"\x00")
    if template_name == "ima-sig":
        out += field(signature)
    return out


def _hexbytes(s: str) -> bytes | None:
    """Strict hex (even length, digits and a-f only), or None."""
    if len(s) % 2 or not s.isascii() or not all(c in "0123456789abcdefABCDEF" for c in s):
        return None
    return bytes.fromhex(s)


def _ascii_line(line: str, lineno: int) -> list[ImaEntry]:
    """Candidate entries for one ascii line (several when a path could contain spaces)."""
    parts = line.split(" ", 4)
    if len(parts) != 5:
        raise _err(f"line {lineno}: expected 5 fields", field="ascii")
    pcr_s, thash_s, name, hash_s, rest = parts
    if not pcr_s.isdigit() or not pcr_s.isascii() or len(pcr_s) > 10:
        raise _err(f"line {lineno}: bad PCR {pcr_s!r}", field="pcr")
    thash = _hexbytes(thash_s)
    if thash is None or len(thash) != 20:
        raise _err(f"line {lineno}: template hash must be 40 hex digits", field="template_hash")
    alg, sep, hex_digest = hash_s.rpartition(":")
    if name == "ima":
        alg, sep = "sha1", ":"
    if not sep or not alg:
        raise _err(f"line {lineno}: file hash without an algorithm", field="d-ng")
    file_hash = _hexbytes(hex_digest)
    if file_hash is None:
        raise _err(f"line {lineno}: file hash is not hex", field="d-ng")
    want = _FILE_HASHES.get(alg.rsplit(":", 1)[-1])
    if want is not None and len(file_hash) != want:
        raise _err(f"line {lineno}: {alg} hash of {len(file_hash)} bytes", field="d-ng")
    splits: list[tuple[str, bytes]] = []
    if name in ("ima", "ima-ng"):
        splits = [(rest, b"")]
    elif name == "ima-sig":
        splits = [(rest, b"")]
        path, _, sig_hex = rest.rpartition(" ")
        sig = _hexbytes(sig_hex)
        if path and sig:
            splits.insert(0, (path, sig))
    else:
        raise UnsupportedEvidenceError(
            f"line {lineno}: template {name!r} cannot be rebuilt from an ascii list; "
            "use binary_runtime_measurements",
            code="eventlog.unsupported",
        )
    pcr = int(pcr_s)
    out = []
    for path, sig in splits:
        try:
            tdata = ima_template_data(
                name, algorithm=alg, file_hash=file_hash, path=path, signature=sig
            )
        except ValueError as e:
            raise _err(f"line {lineno}: {e}", field="template") from e
        out.append(_entry(pcr, thash, name, tdata, "little"))
    return out


def parse_ima_ascii(text: str | bytes) -> tuple[ImaEntry, ...]:
    """Parse ``ascii_runtime_measurements`` (templates ima, ima-ng, ima-sig).

    The template data is rebuilt from the printed fields. For ``ima-sig`` lines the split
    between path and signature is the one whose rebuilt data hashes to the printed
    template hash."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    out: list[ImaEntry] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if len(out) >= MAX_IMA_ENTRIES:
            raise _err(f"more than {MAX_IMA_ENTRIES} entries", field="ascii")
        candidates = _ascii_line(line.rstrip("\r"), lineno)
        chosen = candidates[-1]
        for c in candidates:
            if c.violation or hmac.compare_digest(_template_hash(c), c.template_hash):
                chosen = c
                break
        out.append(chosen)
    if not out:
        raise _err("empty measurement list", field="ascii")
    return tuple(out)


def parse_ima(data: bytes) -> tuple[ImaEntry, ...]:
    """Binary or ascii list, told apart by the first byte (a digit starts an ascii line)."""
    if data[:1].isdigit():
        return parse_ima_ascii(data)
    return parse_ima_binary(data)


def _template_hash(e: ImaEntry) -> bytes:
    return hashlib.sha1(_hash_input(e)).digest()  # noqa: S324  (the IMA format is SHA-1)


def check_template_hashes(entries: Iterable[ImaEntry]) -> None:
    """Recompute every entry's SHA-1 template hash from its template data
    (:class:`VerificationError`, ``eventlog.ima.template_hash``). Violations (all-zero
    hash) are exempt: they stand for a measurement that could not be taken."""
    for i, e in enumerate(entries):
        if e.violation:
            continue
        if not hmac.compare_digest(_template_hash(e), e.template_hash):
            raise VerificationError(
                f"IMA entry {i} ({e.path!r}): template hash does not match its data",
                code="eventlog.ima.template_hash",
            )


def replay_ima(entries: Sequence[ImaEntry], *, bank: str = "sha1", pcr: int = IMA_PCR) -> bytes:
    """Check template hashes, then replay the entries of ``pcr`` into ``bank``."""
    check_template_hashes(entries)
    size = bank_size(bank)
    reg = bytes(size)
    for e in entries:
        if e.pcr != pcr:
            continue
        digest = b"\xff" * size if e.violation else hash_bank(bank, _hash_input(e))
        reg = hash_bank(bank, reg + digest)
    return reg


def ima_claims(entries: Sequence[ImaEntry]) -> list[dict[str, Any]]:
    """Entries as policy claims: ``[{"pcr", "template", "path", "algorithm", "hash",
    "violation"}]`` (hex hashes). Call only for a list that replayed to a signed PCR."""
    out: list[dict[str, Any]] = []
    for e in entries:
        out.append(
            {
                "pcr": e.pcr,
                "template": e.template_name,
                "path": e.path,
                "algorithm": e.file_hash_algorithm,
                "hash": e.file_hash.hex() if e.file_hash is not None else None,
                "violation": e.violation,
            }
        )
    return out


def encode_ima_binary(
    entries: Iterable[ImaEntry], *, byteorder: Literal["little", "big"] = "little"
) -> bytes:
    w = Writer()
    for e in entries:
        name = e.template_name.encode("ascii")
        w.raw(e.pcr.to_bytes(4, byteorder)).raw(e.template_hash)
        w.raw(len(name).to_bytes(4, byteorder)).raw(name)
        if e.template_name != "ima":
            w.raw(len(e.template_data).to_bytes(4, byteorder))
        w.raw(e.template_data)
    return w.getvalue()


def encode_ima_ascii(entries: Iterable[ImaEntry]) -> str:
    lines = []
    for e in entries:
        if e.file_hash is None or e.path is None or e.template_name not in _TEMPLATES:
            raise ValueError(f"cannot print template {e.template_name} as ascii")
        digest = e.file_hash.hex()
        if e.template_name != "ima":
            digest = f"{e.file_hash_algorithm}:{digest}"
        line = f"{e.pcr} {e.template_hash.hex()} {e.template_name} {digest} {e.path}"
        if e.template_name == "ima-sig" and e.signature:
            line += f" {e.signature.hex()}"
        lines.append(line + "\n")
    return "".join(lines)
