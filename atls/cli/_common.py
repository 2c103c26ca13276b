"""Shared CLI plumbing: trust, collateral, evidence input, time, output."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from atls.collateral import Collateral, load_collateral
from atls.collateral._sniff import split_certificates
from atls.errors import ConfigurationError
from atls.policy import Policy, load_policy
from atls.trust import TrustStore, default_trust_dir

__all__ = [
    "EXIT_ACCEPTED",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "err_console",
    "input_certificates",
    "load_trust",
    "parse_at",
    "print_json",
    "read_evidence",
    "read_limited",
    "simulated_banner",
]

EXIT_ACCEPTED = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2

err_console = Console(stderr=True)
MAX_INPUT = 16 << 20


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def simulated_banner() -> None:
    err_console.print(
        "[bold red]WARNING: SIMULATED TEE. This evidence is signed by atls's demo keys, which "
        "are public. It proves nothing about any hardware. Never use --allow-simulated in "
        "production.[/]"
    )


def parse_at(value: str | None) -> _dt.datetime:
    """``--at``: ISO 8601 (naive means UTC) or unix seconds; default now."""
    if value is None:
        return _dt.datetime.now(_dt.UTC)
    try:
        if value.lstrip("-").replace(".", "", 1).isdigit():
            return _dt.datetime.fromtimestamp(float(value), _dt.UTC)
        t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as e:
        raise ConfigurationError(
            f"--at {value!r}: not ISO 8601 or unix seconds", code="usage.at"
        ) from e
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def load_trust(
    trust_dir: str | None,
    *,
    allow_simulated: bool,
    simulated_platforms: Sequence[str] = ("snp", "tdx"),
    found_in: Sequence[bytes] = (),
) -> TrustStore:
    """The trust store: ``--trust-dir`` (or the default one if it exists), plus pinned vendor
    roots found among ``found_in`` (certificates of the evidence and collateral; see
    :meth:`TrustStore.pinned_among`), plus the demo simulated roots when ``--allow-simulated``
    is given."""
    if trust_dir is not None:
        store = TrustStore.from_directory(trust_dir, allow_simulated=allow_simulated)
    else:
        d = default_trust_dir()
        store = (
            TrustStore.from_directory(d, allow_simulated=allow_simulated)
            if d.is_dir()
            else TrustStore(allow_simulated=allow_simulated)
        )
    if found_in:
        store = store.merged(TrustStore.pinned_among(found_in, source="input"))
    if allow_simulated:
        from atls.testing.demo import demo_trust_store

        store = store.merged(demo_trust_store(simulated_platforms))
    return store


def input_certificates(evidence: bytes, collateral: Collateral) -> list[bytes]:
    """Every certificate the inputs carry (PEM text inside the evidence, such as a DCAP
    quote's PCK chain, and the collateral's), for :meth:`TrustStore.pinned_among`."""
    return [*split_certificates(evidence), *collateral.certificates]


def load_policy_option(path: str | None) -> Policy:
    return Policy.default() if path is None else load_policy(path)


def load_collateral_option(
    paths: Sequence[str], trust_dir: str | None = None, *, allow_simulated: bool = False
) -> Collateral:
    """``--collateral`` inputs, plus the intermediate certificates (ASK/ASVK, ...) that
    ``atls trust fetch`` saved in the trust directory (``--trust-dir`` or the default one).
    Intermediates are collateral, not anchors: verifiers still chain them to a pinned root.
    With ``--allow-simulated`` also the simulated TEE's collateral, as public as its roots
    (servers of the foreign profiles staple none)."""
    coll = load_collateral(paths) if paths else Collateral()
    if allow_simulated:
        from atls.testing.demo import demo_collateral

        coll = coll.merged(demo_collateral())
    d = Path(trust_dir) if trust_dir is not None else default_trust_dir()
    if d.is_dir():
        from atls.trust._store import _self_issued

        certs = [
            der
            for f in sorted(d.iterdir())
            if f.is_file() and f.stat().st_size <= 1 << 20
            for der in split_certificates(f.read_bytes())
            if not _self_issued(der)
        ]
        if certs:
            coll = coll.merged(Collateral(tuple(certs), sources=(str(d),)))
    return coll


def read_limited(path: str, what: str, limit: int = MAX_INPUT) -> bytes:
    """The bytes of a local input file, with a size cap; errors are usage errors."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ConfigurationError(f"{what} {path}: {e.strerror}", code="usage.file") from e
    if len(data) > limit:
        raise ConfigurationError(f"{what} {path} is larger than {limit} bytes", code="usage.file")
    return data


def read_evidence(path: str) -> bytes:
    """EVIDENCE: raw bytes, hex or base64 text, or a PEM/DER certificate; ``-`` is stdin."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_INPUT + 1)
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigurationError(f"evidence file {path} not found", code="usage.evidence")
        data = p.read_bytes()[: MAX_INPUT + 1]
    if len(data) > MAX_INPUT:
        raise ConfigurationError("evidence input is larger than 16 MiB", code="usage.evidence")
    # A PEM certificate only when the input *is* one: a raw DCAP quote carries its PCK chain
    # as PEM text inside its certification data and must stay a quote.
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        certs = split_certificates(data)
        if certs:
            return certs[0]
    text = data.strip()
    if text and all(32 <= b < 127 or b in b"\r\n\t" for b in text):
        compact = b"".join(text.split())
        if len(compact) % 2 == 0:
            try:
                return binascii.unhexlify(compact.removeprefix(b"0x"))
            except binascii.Error:
                pass
        try:
            return base64.b64decode(compact, validate=True)
        except binascii.Error:
            pass
    return data
