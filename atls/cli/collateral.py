"""``atls collateral fetch`` and ``atls collateral show``."""

from __future__ import annotations

import datetime as _dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table

from atls.cli._common import (
    EXIT_USAGE,
    MAX_INPUT,
    err_console,
    parse_at,
    print_json,
    read_evidence,
)
from atls.collateral import Collateral
from atls.collateral.cache import CollateralCache
from atls.collateral.fetch import (
    CollateralFetcher,
    SnpTcb,
    read_collateral_dir,
    write_collateral_dir,
)
from atls.collateral.fetch._spec import Spec
from atls.collateral.fetch._x509 import CertInfo, CrlInfo
from atls.errors import (
    AtlsError,
    CollateralUnavailableError,
    ConfigurationError,
    UnsupportedEvidenceError,
)

__all__ = [
    "ENV_FETCH_CA_BUNDLE",
    "ENV_KDS_URL",
    "ENV_PCS_URL",
    "collateral_group",
    "describe_collateral",
    "fetch_for_verification",
    "parse_duration",
]

#: Environment defaults of the fetch options of ``atls verify --fetch`` (a PCCS, a mirror,
#: or a test double on loopback).
ENV_PCS_URL = "ATLS_PCS_URL"
ENV_KDS_URL = "ATLS_KDS_URL"
ENV_FETCH_CA_BUNDLE = "ATLS_FETCH_CA_BUNDLE"

EXIT_UNAVAILABLE = 1

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str) -> _dt.timedelta:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w``."""
    m = _DURATION.match(value)
    if not m:
        raise ConfigurationError(
            f"duration {value!r}: use a number with s, m, h, d or w", code="usage.duration"
        )
    return _dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def _iso(t: _dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(at: _dt.datetime, start: _dt.datetime | None, end: _dt.datetime | None) -> str:
    if start is not None and at < start:
        return "not yet valid"
    if end is not None and at >= end:
        return "EXPIRED"
    return "valid"


def _parse_time(v: object) -> _dt.datetime | None:
    if not isinstance(v, str):
        return None
    try:
        t = _dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def describe_collateral(coll: Collateral, at: _dt.datetime) -> list[dict[str, Any]]:
    """One JSON-able row per document, certificate and CRL, with its status at ``at``."""
    rows: list[dict[str, Any]] = []
    for d in coll.documents:
        try:
            inner = json.loads(d.body)
        except ValueError:
            inner = {}
        if not isinstance(inner, dict):
            inner = {}
        start, end = _parse_time(inner.get("issueDate")), _parse_time(inner.get("nextUpdate"))
        detail = ", ".join(
            f"{k}={inner[k]}" for k in ("id", "fmspc", "tcbEvaluationDataNumber") if k in inner
        )
        rows.append(
            {
                "type": "document",
                "name": d.kind,
                "detail": detail + (f", chain of {len(d.issuer_chain)}" if d.issuer_chain else ""),
                "valid_from": _iso(start),
                "valid_until": _iso(end),
                "status": _status(at, start, end),
            }
        )
    for c in coll.certificates:
        try:
            info = CertInfo(c)
        except ValueError:
            rows.append({"type": "certificate", "name": "(unparsable)", "status": "malformed"})
            continue
        rows.append(
            {
                "type": "certificate",
                "name": info.subject_cn,
                "detail": f"issued by {info.issuer_cn}",
                "valid_from": _iso(info.not_before),
                "valid_until": _iso(info.not_after),
                "status": _status(at, info.not_before, info.not_after),
            }
        )
    for r in coll.crls:
        try:
            crl = CrlInfo(r)
        except ValueError:
            rows.append({"type": "crl", "name": "(unparsable)", "status": "malformed"})
            continue
        rows.append(
            {
                "type": "crl",
                "name": crl.issuer_cn,
                "detail": f"{crl.revoked} revoked",
                "valid_from": _iso(crl.this_update),
                "valid_until": _iso(crl.next_update),
                "status": _status(at, crl.this_update, crl.next_update),
            }
        )
    return rows


def _render(rows: list[dict[str, Any]], sources: tuple[str, ...]) -> None:
    out = Console()
    table = Table("type", "name", "detail", "valid from", "valid until", "status")
    for r in rows:
        status = r.get("status", "")
        color = "green" if status == "valid" else "red"
        table.add_row(
            r["type"],
            esc(str(r.get("name", ""))),
            esc(str(r.get("detail", ""))),
            r.get("valid_from") or "-",
            r.get("valid_until") or "-",
            f"[{color}]{status}[/]",
        )
    out.print(table)
    for s in sources:
        style = "bold yellow" if s.startswith(("stale-cache:", "stale:")) else "dim"
        out.print(f"[{style}]source:[/] {esc(s)}")


def _parse_tcb(value: str, product: str) -> SnpTcb:
    """``--tcb``: 16 hex digits (the 8 raw REPORTED_TCB bytes as in the report) or
    ``bl=..,tee=..,snp=..,ucode=..[,fmc=..]``."""
    v = value.strip()
    if "=" not in v:
        try:
            raw = bytes.fromhex(v.removeprefix("0x"))
        except ValueError as e:
            raise ConfigurationError(f"--tcb {value!r} is not hex", code="usage.tcb") from e
        return SnpTcb.from_bytes(raw, product)
    parts: dict[str, int] = {}
    for item in v.split(","):
        k, _, n = item.partition("=")
        if k.strip() not in ("bl", "tee", "snp", "ucode", "fmc") or not n.strip().isdigit():
            raise ConfigurationError(f"--tcb item {item!r}", code="usage.tcb")
        parts[k.strip()] = int(n)
    try:
        return SnpTcb(
            bootloader=parts["bl"],
            tee=parts["tee"],
            snp=parts["snp"],
            microcode=parts["ucode"],
            fmc=parts.get("fmc"),
        )
    except KeyError as e:
        raise ConfigurationError(f"--tcb lacks {e.args[0]}=", code="usage.tcb") from e


def _evidence_candidates(path: str) -> list[bytes]:
    """The file's raw bytes first (a DCAP quote embeds PEM certificates, which the generic
    reader would take for an attested certificate), then the generic reading (hex, base64,
    PEM...). Standard input is read once, generically."""
    out: list[bytes] = []
    p = Path(path)
    if path != "-" and p.is_file() and p.stat().st_size <= MAX_INPUT:
        out.append(p.read_bytes())
    decoded = read_evidence(path)
    if decoded not in out:
        out.append(decoded)
    return out


def _plan_for_candidates(fetcher: CollateralFetcher, candidates: list[bytes]) -> list[Spec]:
    from atls.collateral.fetch._evidence import plan_for_evidence

    for data in candidates[:-1]:
        try:
            return plan_for_evidence(fetcher, data)
        except UnsupportedEvidenceError:
            continue
    return plan_for_evidence(fetcher, candidates[-1])


def _evidence_in(data: bytes) -> bytes:
    """The raw evidence: ``data`` itself, or the evidence extension of an attested
    certificate (its stapled collateral is used by the verifier anyway)."""
    from atls.pipeline import parse_certificate
    from atls.x509ext import EVIDENCE_OID, decode_evidence

    if not data.startswith(b"\x30"):
        return data
    try:
        parsed = parse_certificate(data)
    except AtlsError:
        return data
    raw = parsed.extension(EVIDENCE_OID)
    return data if raw is None else decode_evidence(raw).evidence


def fetch_for_verification(
    data: bytes,
    *,
    pcs_url: str | None,
    kds_url: str | None,
    ca_bundle: str | None,
    cache_dir: str | None,
    allow_stale_for: _dt.timedelta | None,
    at: _dt.datetime,
) -> Collateral:
    """What the evidence in ``data`` (raw, or inside an attested certificate) needs, from
    the cache while it is fresh at ``at``, else from Intel PCS/PCCS or AMD KDS.

    Raises :class:`CollateralUnavailableError`, or :class:`UnsupportedEvidenceError` when
    the evidence does not say what it needs (e.g. an SNP report version 2)."""
    evidence = _evidence_in(data)
    with CollateralFetcher(
        pcs_url=pcs_url,
        kds_url=kds_url,
        cache=CollateralCache(cache_dir) if cache_dir else True,
        verify=ca_bundle,
    ) as fetcher:
        return fetcher.collateral_for_evidence(evidence, at=at, allow_stale_for=allow_stale_for)


class _ProgressView:
    """Progress lines on a terminal (stderr); silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self._p: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if enabled:
            self._p = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), console=err_console
            )

    def __enter__(self) -> _ProgressView:
        if self._p is not None:
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()

    def __call__(self, what: str, event: str) -> None:
        if self._p is None:
            return
        labels = {
            "fetching": f"fetching {esc(what)}",
            "cache": f"[green]cached[/] {esc(what)}",
            "fetched": f"[green]fetched[/] {esc(what)}",
            "stale": f"[bold yellow]STALE[/] {esc(what)}",
            "failed": f"[red]failed[/] {esc(what)}",
        }
        desc = labels.get(event, esc(what))
        done = event != "fetching"
        task = self._tasks.get(what)
        if task is None:
            task = self._tasks[what] = self._p.add_task(desc, total=1)
        # update() (not add_task) marks a task finished, which stops its spinner
        self._p.update(task, description=desc, completed=1 if done else 0)


@click.group("collateral")
def collateral_group() -> None:
    """Fetch collateral (Intel PCS/PCCS, AMD KDS) into the cache or a directory, and show it."""


@collateral_group.command("fetch")
@click.option("--for", "evidence", metavar="EVIDENCE", help="Quote or report to fetch for.")
@click.option("--fmspc", metavar="HEX", help="Intel: FMSPC (instead of --for).")
@click.option("--ca", "pck_ca", type=click.Choice(["platform", "processor"]), help="Intel PCK CA.")
@click.option("--tee", type=click.Choice(["tdx", "sgx"]), default="tdx", show_default=True)
@click.option("--pce-id", metavar="HEX", help="Intel: PCE-ID to check the TCB info against.")
@click.option("--product", type=click.Choice(["Milan", "Genoa", "Turin"], case_sensitive=False))
@click.option("--chip-id", metavar="HEX", help="AMD: CHIP_ID (Turin: first 8 bytes suffice).")
@click.option(
    "--tcb",
    metavar="TCB",
    help="AMD: REPORTED_TCB as 16 hex digits or bl=,tee=,snp=,ucode=[,fmc=].",
)
@click.option("--vlek", is_flag=True, help="AMD: VLEK-signed evidence (ASVK chain and CRL).")
@click.option("--out", metavar="DIR", help="Also write the collateral into DIR.")
@click.option("--pcs-url", metavar="URL", help="Intel PCS or PCCS base URL.")
@click.option("--kds-url", metavar="URL", help="AMD KDS base URL.")
@click.option("--root-ca-crl-url", metavar="URL", help="Where to get the Intel root CA CRL.")
@click.option("--ca-bundle", metavar="FILE", help="CA certificates for the TLS connections.")
@click.option("--cache-dir", metavar="DIR", help="Cache directory (default: per-user).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--allow-stale-for",
    metavar="DURATION",
    help="Accept cached collateral expired at most this long ago when a refetch fails (e.g. 12h).",
)
@click.option("--at", metavar="TIME", help="Freshness reference time (default now).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def fetch_cmd(
    evidence: str | None,
    fmspc: str | None,
    pck_ca: str | None,
    tee: str,
    pce_id: str | None,
    product: str | None,
    chip_id: str | None,
    tcb: str | None,
    vlek: bool,
    out: str | None,
    pcs_url: str | None,
    kds_url: str | None,
    root_ca_crl_url: str | None,
    ca_bundle: str | None,
    cache_dir: str | None,
    no_cache: bool,
    allow_stale_for: str | None,
    at: str | None,
    as_json: bool,
) -> None:
    """Fetch what EVIDENCE needs (--for), or what --fmspc/--ca or --product/--chip-id/--tcb
    name, into the cache (and --out DIR). Exit 0 done, 1 unavailable, 2 usage error."""
    try:
        chosen = [x for x in (evidence, fmspc, product) if x is not None]
        if len(chosen) != 1:
            raise ConfigurationError(
                "give exactly one of --for EVIDENCE, --fmspc (with --ca) or --product "
                "(with --chip-id and --tcb)",
                code="usage.collateral_fetch",
            )
        if no_cache and cache_dir is not None:
            raise ConfigurationError("--no-cache and --cache-dir conflict", code="usage.cache")
        cache: CollateralCache | bool = (
            False if no_cache else (CollateralCache(cache_dir) if cache_dir else True)
        )
        when = parse_at(at)
        stale = parse_duration(allow_stale_for) if allow_stale_for else None
        candidates = _evidence_candidates(evidence) if evidence is not None else []
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    view = _ProgressView(err_console.is_terminal and not as_json)
    try:
        fetcher = CollateralFetcher(
            pcs_url=pcs_url,
            kds_url=kds_url,
            root_ca_crl_url=root_ca_crl_url,
            cache=cache,
            verify=ca_bundle,
            progress=view,
        )
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    try:
        specs: list[Spec]
        if candidates:
            specs = _plan_for_candidates(fetcher, candidates)
        elif fmspc is not None:
            if pck_ca is None:
                raise ConfigurationError("--fmspc needs --ca", code="usage.collateral_fetch")
            specs = fetcher.plan_intel(fmspc=fmspc, ca=pck_ca, tee=tee, pce_id=pce_id, update=None)
        else:
            assert product is not None
            if vlek:
                specs = fetcher.plan_amd(product=product, chip_id=None, tcb=None, key="vlek")
            else:
                if chip_id is None or tcb is None:
                    raise ConfigurationError(
                        "--product needs --chip-id and --tcb (or --vlek)",
                        code="usage.collateral_fetch",
                    )
                specs = fetcher.plan_amd(
                    product=product, chip_id=chip_id, tcb=_parse_tcb(tcb, product), key="vcek"
                )
    except AtlsError as e:
        fetcher.close()
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    try:
        with view, fetcher:
            coll = fetcher.get_all(specs, at=when, allow_stale_for=stale)
    except CollateralUnavailableError as e:
        if as_json:
            print_json({"ok": False, "error": e.to_json()})
        else:
            err_console.print(f"[red]collateral unavailable[/] ({e.code}): {esc(e.message)}")
        sys.exit(EXIT_UNAVAILABLE)
    written: list[Path] = []
    if out is not None:
        try:
            written = write_collateral_dir(coll, out)
        except OSError as e:
            err_console.print(f"[red]error:[/] cannot write {esc(out)}: {esc(str(e))}")
            sys.exit(EXIT_USAGE)
    rows = describe_collateral(coll, when)
    if as_json:
        print_json(
            {
                "ok": True,
                "items": rows,
                "sources": list(coll.sources),
                "written": [str(p) for p in written],
            }
        )
    else:
        _render(rows, coll.sources)
        if written:
            Console().print(f"wrote {len(written)} files to {esc(out or '')}")
    if any(s.startswith(("stale-cache:", "stale:")) for s in coll.sources):
        err_console.print("[bold yellow]warning: some collateral is STALE (--allow-stale-for)[/]")


@collateral_group.command("show")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--at", metavar="TIME", help="Judge validity at this time (default now).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show_cmd(directory: str, at: str | None, as_json: bool) -> None:
    """Show the collateral in DIRECTORY: documents, certificates, CRLs, validity, sources."""
    try:
        when = parse_at(at)
        coll = read_collateral_dir(directory)
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    rows = describe_collateral(coll, when)
    if as_json:
        print_json({"directory": directory, "items": rows, "sources": list(coll.sources)})
    else:
        if not rows:
            err_console.print(f"[yellow]no collateral found in {esc(directory)}[/]")
        _render(rows, coll.sources)
