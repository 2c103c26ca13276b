"""Policy v1 in TOML: strict loading (unknown keys, bad hex, wrong lengths are errors).

::

    version = 1
    name = "my-service"

    [snp]
    measurement = ["<96 hex>", ...]      # any of
    host_data = "<64 hex>"
    products = ["Milan", "Genoa"]
    minimum_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }
    vmpl = [0]
    allow_debug = false

    [tdx]
    mr_td = "<96 hex>"
    rtmr0 = "<96 hex>"
    allowed_tcb_status = ["UpToDate"]
    events = { "compose-hash" = "<hex>" }

    [tpm]
    pcrs.sha256 = { 0 = "<64 hex>", 7 = "<64 hex>" }
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from atls.errors import ConfigurationError
from atls.policy._model import PlatformRules, Policy
from atls.policy._schema import PLATFORMS, TCB_STATUSES, PlatformSchema

__all__ = ["dump_policy", "load_policy", "parse_policy"]

_TCB_COMPONENTS = frozenset({"bootloader", "tee", "snp", "microcode", "fmc"})
_PRODUCTS = frozenset({"Milan", "Genoa", "Turin"})
_BANKS = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def _fail(where: str, msg: str) -> ConfigurationError:
    return ConfigurationError(f"policy {where}: {msg}", code="policy.invalid")


def _hexes(where: str, value: Any, length: int) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _fail(where, "an empty list allows nothing; remove the key instead")
    out = set()
    for item in items:
        if not isinstance(item, str):
            raise _fail(where, f"expected a hex string, got {type(item).__name__}")
        s = item.lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(s)
        except ValueError:
            raise _fail(where, f"{item!r} is not hex") from None
        if length and len(raw) != length:
            raise _fail(where, f"{item!r} has {len(raw)} bytes, expected {length}")
        out.add(s)
    return frozenset(out)


#: TPM_ALG_ID -> digest size, for the hash algorithms a TPM Name can use.
_TPM_NAME_ALGS = {0x0004: 20, 0x000B: 32, 0x000C: 48, 0x000D: 64}


def _check_tpm_name(where: str, name_hex: str) -> None:
    """A TPM Name: a 2-byte nameAlg followed by a digest of that algorithm's size."""
    raw = bytes.fromhex(name_hex)
    size = _TPM_NAME_ALGS.get(int.from_bytes(raw[:2], "big")) if len(raw) >= 2 else None
    if size is None or len(raw) != 2 + size:
        raise _fail(where, f"{name_hex!r} is not a TPM Name (nameAlg SHA-1/256/384/512 + digest)")


def _ints(where: str, value: Any) -> frozenset[int]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise _fail(where, "expected an integer or a non-empty list of integers")
    return frozenset(items)


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "expected true or false")
    return value


def _strings(where: str, value: Any, allowed: frozenset[str] | None = None) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) for i in items):
        raise _fail(where, "expected a string or a non-empty list of strings")
    if allowed is not None and not set(items) <= allowed:
        raise _fail(
            where, f"unknown values {sorted(set(items) - allowed)}; known: {sorted(allowed)}"
        )
    return frozenset(items)


def _platform(name: str, schema: PlatformSchema, table: Any) -> PlatformRules:
    if not isinstance(table, dict):
        raise _fail(f"[{name}]", "must be a table")
    kw: dict[str, Any] = {}
    values: dict[str, frozenset[str]] = {}
    ints: dict[str, frozenset[int]] = {}
    minimums: dict[str, int] = {}
    for key, value in table.items():
        where = f"[{name}].{key}"
        if key in schema.value_keys:
            values[key] = _hexes(where, value, schema.value_keys[key])
            if name == "tpm" and key == "ak_name":
                for n in values[key]:
                    _check_tpm_name(where, n)
        elif key in schema.int_keys:
            ints[key] = _ints(where, value)
        elif key.startswith("minimum_") and key[8:] in schema.min_keys:
            if not isinstance(value, int) or isinstance(value, bool):
                raise _fail(where, "expected one integer")
            minimums[key[8:]] = value
        elif key not in schema.rules:
            known = sorted(
                {
                    *schema.value_keys,
                    *schema.int_keys,
                    *schema.rules,
                    *(f"minimum_{k}" for k in schema.min_keys),
                }
            )
            raise _fail(where, f"unknown key; known keys: {', '.join(known)}")
        elif key in ("allow_debug", "allow_migration_agent", "allow_smt", "sept_ve_disable"):
            kw[key] = _bool(where, value)
        elif key == "minimum_tcb":
            if not isinstance(value, dict) or not value or not set(value) <= _TCB_COMPONENTS:
                raise _fail(where, f"expected a table with keys from {sorted(_TCB_COMPONENTS)}")
            for comp, v in value.items():
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 255:
                    raise _fail(f"{where}.{comp}", "expected an integer 0..255")
            kw[key] = dict(value)
        elif key == "products":
            kw[key] = _strings(where, value, _PRODUCTS)
        elif key == "signing_keys":
            kw[key] = _strings(where, value, frozenset({"vcek", "vlek"}))
        elif key == "allowed_tcb_status":
            kw[key] = _strings(where, value, TCB_STATUSES)
        elif key in ("allowed_advisories", "denied_advisories"):
            kw[key] = _strings(where, value)
        elif key == "events":
            if not isinstance(value, dict) or not value:
                raise _fail(where, "expected a table of event name = value(s)")
            kw[key] = {
                ev: frozenset(s.lower() for s in _strings(f"{where}.{ev}", v))
                for ev, v in value.items()
            }
        elif key == "pcrs":
            kw[key] = _pcrs(where, value)
        elif key in ("ima_allowed", "ima_denied"):
            kw[key] = _hexes(where, value, 0)
    return PlatformRules(values=values, ints=ints, minimums=minimums, **kw)


def _pcrs(where: str, value: Any) -> dict[str, dict[int, str]]:
    if not isinstance(value, dict) or not value:
        raise _fail(where, "expected a table of bank = { index = hex }")
    out: dict[str, dict[int, str]] = {}
    for bank, regs in value.items():
        if bank not in _BANKS or not isinstance(regs, dict) or not regs:
            raise _fail(f"{where}.{bank}", f"bank must be one of {sorted(_BANKS)} with PCR values")
        out[bank] = {}
        for idx, hexval in regs.items():
            if not str(idx).isdigit() or not 0 <= int(idx) <= 23:
                raise _fail(f"{where}.{bank}.{idx}", "PCR index must be 0..23")
            if not isinstance(hexval, str):
                raise _fail(f"{where}.{bank}.{idx}", "expected one hex string")
            (out[bank][int(idx)],) = _hexes(f"{where}.{bank}.{idx}", hexval, _BANKS[bank])
    return out


def parse_policy(data: Mapping[str, Any], *, source: str = "policy") -> Policy:
    """Build a :class:`Policy` from a decoded TOML document (strict)."""
    if not isinstance(data, Mapping):
        raise _fail(source, f"a policy is a table, not {type(data).__name__}")
    data = dict(data)
    version = data.pop("version", None)
    if version != 1:
        raise _fail(source, f"'version = 1' is required (got {version!r})")
    name = data.pop("name", source)
    if not isinstance(name, str):
        raise _fail(source, "name must be a string")
    platforms: dict[str, PlatformRules] = {}
    for key, table in data.items():
        if key not in PLATFORMS:
            raise _fail(source, f"unknown section [{key}]; known: {', '.join(PLATFORMS)}")
        platforms[key] = _platform(key, PLATFORMS[key], table)
    if not platforms:
        raise _fail(source, "an empty policy accepts nothing; add a platform section")
    return Policy(name, platforms)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load and strictly validate a policy TOML file (ConfigurationError on any problem)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"policy file {p} not found", code="policy.not_found") from None
    except OSError as e:
        raise ConfigurationError(
            f"policy file {p}: {e.strerror or e}", code="policy.unreadable"
        ) from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"policy file {p}: {e}", code="policy.invalid") from e
    return parse_policy(data, source=str(p))


def dump_policy(name: str, sections: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML text for a policy; the result is re-parsed to make sure it is valid."""
    doc: dict[str, Any] = {"version": 1, "name": name}
    doc.update({k: dict(v) for k, v in sections.items()})
    text = tomli_w.dumps(doc)
    parse_policy(tomllib.loads(text), source=name)
    return text
