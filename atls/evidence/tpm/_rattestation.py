"""GyroidOS ``rattestation.conf``: expected PCR values for TPM attestation.

The file is the protobuf **text format** of ``RAttestationConfig`` (gyroidos/cml,
``rattestation/config.proto``)::

    name: "rattestation"                 # required
    kmod_sign_cert: "yocto.pem"          # required (PEM path, for IMA module signatures)
    atype: BASIC                         # BASIC (PCR 0..11) | ALL (0..23) | ADVANCED (bitmask)
    halg: SHA256                         # SHA1 (20) | SHA256 (32, default) | SHA384 (48)
    pcrs: 4095                           # PCR bitmask, ADVANCED only
    pcr_values { number: 0 value: "0X<hex>" }   # repeated: expected PCR values
    tpm_cert: "ak.pem"  verify_ima: true  ima_pcr: 10  verify_containers: true
    container_pcr: 11

:func:`parse_rattestation_conf` reads that text (no I/O) into :class:`RattestationConfig`;
:meth:`RattestationConfig.expected_pcrs` gives ``{bank: {index: value}}`` for the policy. It
is strict where GyroidOS is loose (interop-formats.md section 8.4): unknown fields, a
non-repeated field given twice, a PCR number given twice or outside 0..23, a value whose
length is not the ``halg`` digest size, or a value for a PCR outside the requested set are
:class:`~atls.errors.ConfigurationError` (code ``tpm.rattestation``). Values may carry the
``0X`` prefix GyroidOS writes (``0x`` is accepted too). ``tpm_cert`` is parsed but, as in
GyroidOS, is not a trust anchor here: AK trust comes from the verifier's pins or AK chains.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from atls.errors import ConfigurationError

__all__ = ["ATYPES", "HALGS", "RattestationConfig", "parse_rattestation_conf"]

#: IdsAttestationType (tpm2d/attestation.proto)
ATYPES = {"BASIC": 0, "ALL": 1, "ADVANCED": 2}
#: HashAlgLen: enum value = digest length -> atls bank name
HALGS = {"SHA1": 20, "SHA256": 32, "SHA384": 48}
_BANKS = {20: "sha1", 32: "sha256", 48: "sha384"}
_MAX_TEXT = 1 << 20
_MAX_PCR = 23
_CODE = "tpm.rattestation"

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n\f\v]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9A-Fa-f]+|\d+))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[:{}<>;,\[\]])
    """,
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "?": "?",
}


def _err(msg: str, line: int | None = None) -> ConfigurationError:
    where = f"rattestation.conf line {line}: " if line is not None else "rattestation.conf: "
    return ConfigurationError(where + msg, code=_CODE)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int


def _tokens(text: str) -> Iterator[_Tok]:
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _err(f"unexpected character {text[pos]!r}", line)
        kind = m.lastgroup or ""
        value = m.group()
        if kind != "ws":
            yield _Tok(kind, value, line)
        line += value.count("\n")
        pos = m.end()


def _unquote(tok: _Tok) -> str:
    body = tok.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xX" and (digits := re.match(r"[0-9A-Fa-f]{1,2}", body[i + 2 :])):
            out.append(chr(int(digits.group(), 16)))
            i += 2 + len(digits.group())
        elif digits := re.match(r"[0-7]{1,3}", body[i + 1 :]):
            out.append(chr(int(digits.group(), 8)))
            i += 1 + len(digits.group())
        else:
            raise _err(f"unknown escape \\{nxt} in a string", tok.line)
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, text: str | None = None) -> _Tok:
        t = self.peek()
        if t is None:
            raise _err(f"unexpected end of file (expected {text or 'more'})")
        if text is not None and t.text != text:
            raise _err(f"expected {text!r}, found {t.text!r}", t.line)
        self.i += 1
        return t

    def message(self, closer: str | None) -> list[tuple[str, Any, int]]:
        fields: list[tuple[str, Any, int]] = []
        while True:
            t = self.peek()
            if t is None:
                if closer is not None:
                    raise _err(f"missing {closer!r}")
                return fields
            if closer is not None and t.text == closer:
                self.i += 1
                return fields
            name = self.take()
            if name.kind != "ident":
                raise _err(f"expected a field name, found {name.text!r}", name.line)
            nxt = self.peek()
            if nxt is not None and nxt.text == ":":
                self.i += 1
                nxt = self.peek()
            if nxt is not None and nxt.text == "[":
                self.i += 1
                while True:
                    fields.append((name.text, self.value(), name.line))
                    sep = self.take()
                    if sep.text == "]":
                        break
                    if sep.text != ",":
                        raise _err(f"expected ',' or ']', found {sep.text!r}", sep.line)
            else:
                fields.append((name.text, self.value(), name.line))
            t = self.peek()
            if t is not None and t.text in (";", ","):
                self.i += 1

    def value(self) -> Any:
        t = self.take()
        if t.text in ("{", "<"):
            return self.message("}" if t.text == "{" else ">")
        if t.kind == "string":
            parts = [_unquote(t)]
            while (n := self.peek()) is not None and n.kind == "string":
                parts.append(_unquote(self.take()))
            return "".join(parts)
        if t.kind == "number":
            return int(t.text, 0)
        if t.kind == "ident":
            return t  # enum name or bool literal, resolved by the field
        raise _err(f"unexpected {t.text!r}", t.line)


def _int32(v: Any, fld: str, line: int) -> int:
    if not isinstance(v, int) or not -(2**31) <= v < 2**31:
        raise _err(f"{fld} must be an int32", line)
    return v


def _string(v: Any, fld: str, line: int) -> str:
    if not isinstance(v, str):
        raise _err(f"{fld} must be a quoted string", line)
    return v


def _bool(v: Any, fld: str, line: int) -> bool:
    if isinstance(v, _Tok) and v.text in ("true", "True", "t"):
        return True
    if isinstance(v, _Tok) and v.text in ("false", "False", "f"):
        return False
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise _err(f"{fld} must be true or false", line)


def _enum(v: Any, names: dict[str, int], fld: str, line: int) -> int:
    if isinstance(v, _Tok) and v.text in names:
        return names[v.text]
    if isinstance(v, int) and v in names.values():
        return v
    raise _err(f"{fld} must be one of {sorted(names)}", line)


def _hex_value(text: str, size: int, line: int) -> bytes:
    h = text[2:] if text[:2] in ("0X", "0x") else text
    if not re.fullmatch(r"[0-9A-Fa-f]*", h) or len(h) % 2:
        raise _err(f"PCR value {text!r} is not hex", line)
    value = bytes.fromhex(h)
    if len(value) != size:
        raise _err(f"PCR value of {len(value)} bytes; halg needs {size}", line)
    return value


@dataclass(frozen=True)
class RattestationConfig:
    """A parsed ``rattestation.conf`` (defaults as in ``config.proto``)."""

    name: str
    kmod_sign_cert: str
    atype: str = "BASIC"
    halg: int = 32
    pcrs: int | None = None
    pcr_values: tuple[tuple[int, bytes], ...] = ()
    tpm_cert: str | None = None
    verify_ima: bool = True
    ima_pcr: int = 10
    verify_containers: bool = True
    container_pcr: int = 11

    @property
    def bank(self) -> str:
        return _BANKS[self.halg]

    def selected_pcrs(self) -> tuple[int, ...]:
        """The PCRs requested: BASIC 0..11 (config.proto's comment), ALL 0..23, ADVANCED the
        bitmask."""
        if self.atype == "BASIC":
            return tuple(range(12))
        if self.atype == "ALL":
            return tuple(range(24))
        assert self.pcrs is not None
        return tuple(i for i in range(24) if self.pcrs & (1 << i))

    def expected_pcrs(self) -> dict[str, dict[int, bytes]]:
        """``{bank: {index: value}}`` for the configured ``pcr_values``."""
        return {self.bank: dict(self.pcr_values)}

    def expected_pcrs_hex(self) -> MappingProxyType[str, dict[str, str]]:
        return MappingProxyType({self.bank: {str(i): v.hex() for i, v in self.pcr_values}})


_SCALARS = {
    "name",
    "atype",
    "halg",
    "pcrs",
    "kmod_sign_cert",
    "tpm_cert",
    "verify_ima",
    "ima_pcr",
    "verify_containers",
    "container_pcr",
}


def parse_rattestation_conf(text: str | bytes) -> RattestationConfig:
    """Parse the protobuf text format of ``RAttestationConfig`` (see module docstring)."""
    if isinstance(text, bytes):
        if len(text) > _MAX_TEXT:
            raise _err(f"{len(text)} bytes (max {_MAX_TEXT})")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _err(f"not UTF-8: {e}") from e
    if len(text) > _MAX_TEXT:
        raise _err(f"{len(text)} characters (max {_MAX_TEXT})")
    fields = _Parser(text).message(None)
    seen: dict[str, int] = {}
    raw_values: list[tuple[list[tuple[str, Any, int]], int]] = []
    for fname, value, line in fields:
        if fname == "pcr_values":
            if not isinstance(value, list):
                raise _err('pcr_values must be a message { number: N value: "..." }', line)
            raw_values.append((value, line))
            continue
        if fname not in _SCALARS:
            raise _err(f"unknown field {fname!r}", line)
        if fname in seen:
            raise _err(f"field {fname!r} given twice (first on line {seen[fname]})", line)
        seen[fname] = line
    got = {f: (v, ln) for f, v, ln in fields if f != "pcr_values"}
    for req in ("name", "kmod_sign_cert"):
        if req not in got:
            raise _err(f"required field {req!r} is missing")
    kw: dict[str, Any] = {
        "name": _string(got["name"][0], "name", got["name"][1]),
        "kmod_sign_cert": _string(
            got["kmod_sign_cert"][0], "kmod_sign_cert", got["kmod_sign_cert"][1]
        ),
    }
    if "atype" in got:
        v, ln = got["atype"]
        code = _enum(v, ATYPES, "atype", ln)
        kw["atype"] = next(k for k, c in ATYPES.items() if c == code)
    if "halg" in got:
        kw["halg"] = _enum(got["halg"][0], HALGS, "halg", got["halg"][1])
    if "pcrs" in got:
        kw["pcrs"] = _int32(got["pcrs"][0], "pcrs", got["pcrs"][1])
    if "tpm_cert" in got:
        kw["tpm_cert"] = _string(got["tpm_cert"][0], "tpm_cert", got["tpm_cert"][1])
    for b in ("verify_ima", "verify_containers"):
        if b in got:
            kw[b] = _bool(got[b][0], b, got[b][1])
    for n in ("ima_pcr", "container_pcr"):
        if n in got:
            v = _int32(got[n][0], n, got[n][1])
            if not 0 <= v <= _MAX_PCR:
                raise _err(f"{n} {v} is not a PCR index", got[n][1])
            kw[n] = v
    atype = kw.get("atype", "BASIC")
    if atype == "ADVANCED" and "pcrs" not in kw:
        raise _err("atype ADVANCED needs the pcrs bitmask")
    if "pcrs" in kw and not 0 <= kw["pcrs"] < (1 << 24):
        raise _err(f"pcrs bitmask {kw['pcrs']:#x} selects PCRs outside 0..23")
    halg = kw.get("halg", 32)
    values: list[tuple[int, bytes]] = []
    for sub, line in raw_values:
        inner: dict[str, tuple[Any, int]] = {}
        for f, v, ln in sub:
            if f not in ("number", "value"):
                raise _err(f"unknown field {f!r} in pcr_values", ln)
            if f in inner:
                raise _err(f"field {f!r} given twice in pcr_values", ln)
            inner[f] = (v, ln)
        if "number" not in inner or "value" not in inner:
            raise _err("pcr_values needs number and value", line)
        number = _int32(inner["number"][0], "number", inner["number"][1])
        if not 0 <= number <= _MAX_PCR:
            raise _err(f"PCR number {number} outside 0..{_MAX_PCR}", inner["number"][1])
        if any(n == number for n, _ in values):
            raise _err(f"PCR {number} given twice", inner["number"][1])
        text_value = _string(inner["value"][0], "value", inner["value"][1])
        values.append((number, _hex_value(text_value, halg, inner["value"][1])))
    kw["pcr_values"] = tuple(values)
    cfg = RattestationConfig(**kw)
    outside = [n for n, _ in values if n not in cfg.selected_pcrs()]
    if outside:
        raise _err(f"values for PCRs {outside} that {cfg.atype} does not request")
    return cfg
