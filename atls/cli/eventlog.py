"""``atls eventlog replay``: replay an event log and print the registers it produces."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from atls.cli._common import EXIT_REJECTED, EXIT_USAGE, err_console, print_json
from atls.errors import AtlsError
from atls.evidence.eventlog import (
    IMA_PCR,
    TcgLog,
    parse_ccel,
    parse_dstack_event_log,
    parse_ima,
    parse_tcg_log,
    replay,
    replay_dstack,
    replay_ima,
    replay_rtmrs,
)

__all__ = ["eventlog_group"]

MAX_LOG = 64 << 20
FORMATS = ("auto", "tcg", "ccel", "dstack", "ima")
IMA_DEFAULT_BANKS = ("sha1", "sha256")


@click.group("eventlog")
def eventlog_group() -> None:
    """Event logs: TCG (TPM, legacy SHA-1), TDX CCEL, dstack JSON, Linux IMA."""


def _sniff(data: bytes) -> str:
    head = data.lstrip()[:1]
    if head in (b"[", b"{"):
        return "dstack"
    if data[:1].isdigit() or _looks_like_ima_binary(data):
        return "ima"
    try:
        log = parse_tcg_log(data)
    except AtlsError:
        return "tcg"  # let the TCG parser report what is wrong
    return "ccel" if _looks_like_ccel(log) else "tcg"


def _looks_like_ima_binary(data: bytes) -> bool:
    """u32 pcr | 20-byte template hash | u32 name length | "ima..." (little-endian)."""
    n = int.from_bytes(data[24:28], "little")
    return 3 <= n <= 64 and data[28:31] == b"ima"


def _looks_like_ccel(log: TcgLog) -> bool:
    """TDVF writes the Spec ID event at CC-MR index 1 and only SHA-384; TPM logs use PCR 0."""
    return log.crypto_agile and (log.header_index == 1 or log.banks == ("sha384",))


def _hexes(regs: dict[int, bytes], prefix: str) -> dict[str, str]:
    return {f"{prefix}{i}": regs[i].hex() for i in sorted(regs)}


def _registers(data: bytes, fmt: str, table: bytes | None, banks: tuple[str, ...]) -> Any:
    out: dict[str, dict[str, str]] = {}
    if fmt == "dstack":
        out["sha384"] = _hexes(replay_dstack(parse_dstack_event_log(data)), "rtmr")
    elif fmt == "ima":
        entries = parse_ima(data)
        for bank in banks or IMA_DEFAULT_BANKS:
            out[bank] = {f"pcr{IMA_PCR}": replay_ima(entries, bank=bank).hex()}
    elif fmt == "ccel":
        log = parse_ccel(data, table=table)
        for bank in banks or log.banks:
            out[bank] = _hexes(replay_rtmrs(log.events, bank=bank), "rtmr")
    else:
        log = parse_tcg_log(data)
        for bank in banks or log.banks:
            out[bank] = _hexes(replay(log.events, bank=bank), "pcr")
    return out


def _read(path: str, what: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read(MAX_LOG + 1)
    else:
        p = Path(path)
        if not p.is_file():
            raise click.BadParameter(f"{what} {path} not found")
        with p.open("rb") as f:
            data = f.read(MAX_LOG + 1)
    if len(data) > MAX_LOG:
        raise click.BadParameter(f"{what} is larger than {MAX_LOG >> 20} MiB")
    return data


@eventlog_group.command("replay")
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Log format (auto: JSON = dstack, text = IMA ascii, binary TCG / CCEL / IMA).",
)
@click.option(
    "--table", metavar="FILE", help="The ACPI CCEL table, checked against a CCEL log area."
)
@click.option(
    "--bank",
    "banks",
    multiple=True,
    help="Digest bank to replay (repeatable; default: every bank the log carries).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def replay_cmd(
    file: str, fmt: str, table: str | None, banks: tuple[str, ...], as_json: bool
) -> None:
    """Replay FILE ('-' for stdin) and print the registers it produces: PCRs for TPM logs and
    IMA lists, RTMR0-3 for a CCEL or a dstack log. A replay proves nothing by itself: compare
    the values with a verified quote. Exit 0 on success, 1 if the log is rejected, 2 on usage
    errors."""
    data = _read(file, "event log")
    table_bytes = _read(table, "CCEL table") if table is not None else None
    if table_bytes is not None and fmt not in ("auto", "ccel"):
        err_console.print("[red]error:[/] --table applies to CCEL logs only")
        sys.exit(EXIT_USAGE)
    try:
        chosen = fmt if fmt != "auto" else ("ccel" if table_bytes else _sniff(data))
        registers = _registers(data, chosen, table_bytes, banks)
    except AtlsError as e:
        if as_json:
            print_json({"error": e.to_json()})
        else:
            err_console.print(f"[red]rejected:[/] {esc(str(e))} [dim]({e.code})[/]")
        sys.exit(EXIT_REJECTED)
    if as_json:
        print_json({"registers": registers})
        return
    t = Table(title=f"{esc(file)} ({chosen})")
    t.add_column("bank")
    t.add_column("register")
    t.add_column("value", overflow="fold")
    for bank, regs in registers.items():
        for name, value in regs.items():
            t.add_row(bank, name, value)
    Console().print(t)
