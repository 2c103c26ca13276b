"""``atls measure``: expected registers from build artifacts, and
:func:`policy_from_measured` (behind ``atls policy init --from-artifacts``): a policy pinning
them.

``--json`` prints the registers under the claim names of ``atls verify`` (``mr_td``,
``rtmr0``..``rtmr3``, ``measurement``, ``mr_aggregated``, ``mr_image``) so a measured result can
be diffed against a verified quote. Registers that depend on an input that was not given are
listed under ``candidates`` instead. Exit status: 0 measured, 2 bad input or options.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from atls.errors import AtlsError, ConfigurationError
from atls.measure import (
    KEY_PROVIDER_NONE,
    VCPU_SIGNATURES,
    AcpiDigests,
    MeasureResult,
    SevHashes,
    SnpLaunchInputs,
    VmmType,
    cpu_signature,
    measure_snp,
    measure_tdx,
    mr_aggregated,
    mr_image,
    parse_dstack_event_log,
    parse_qemu_version,
    replay_rtmr3,
    secretvm_rtmr3,
    secretvm_snp_cmdline,
    sections_from_json,
    snp_inputs_from_ovmf,
    vcpu_signature,
)

__all__ = ["measure_group", "policy_from_measured"]

EXIT_USAGE = 2
_err = Console(stderr=True)
_MAX_FIRMWARE = 64 << 20
_MAX_KERNEL = 512 << 20
_MAX_INITRD = 4 << 30
_MAX_SMALL = 16 << 20


def _fail(e: AtlsError, as_json: bool) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"errors": [e.to_json()]}, indent=2))
    _err.print(f"[red]error[/] {e.code}: {esc(e.message)}")
    sys.exit(EXIT_USAGE)


class _Bar:
    """A rich progress bar on stderr when it is a terminal; silent when piped."""

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def reader(self, path: str, label: str, limit: int) -> bytes:
        p = Path(path)
        try:
            size = p.stat().st_size
            if not p.is_file():
                raise ConfigurationError(f"{label} {path} is not a file", code="usage.file")
            if size > limit:
                raise ConfigurationError(
                    f"{label} {path} is larger than {limit >> 20} MiB", code="usage.file"
                )
            buf = bytearray()
            task = self._task(f"reading {label}", size)
            with p.open("rb") as f:
                while chunk := f.read(1 << 20):
                    buf += chunk
                    if len(buf) > limit:
                        raise ConfigurationError(f"{label} {path} grew while reading",
                                                 code="usage.file")
                    self.advance(task, len(chunk))
        except OSError as e:
            raise ConfigurationError(f"cannot read {label} {path}: {e.strerror}",
                                     code="usage.file") from e
        return bytes(buf)

    def _task(self, label: str, total: int) -> TaskID | None:
        if self.progress is None:
            return None
        return self.progress.add_task(label, total=total)

    def advance(self, task: TaskID | None, n: int) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, n)

    def hashing(self, label: str, total: int) -> Callable[[int], None] | None:
        task = self._task(label, total)
        if task is None:
            return None
        return lambda n: self.advance(task, n)


@contextmanager
def _bar() -> Iterator[_Bar]:
    b = _Bar()
    if not _err.is_terminal:
        yield b
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_err,
        transient=True,
    ) as p:
        b.progress = p
        yield b


_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$")


def parse_size(text: str) -> int:
    """A RAM size as QEMU ``-m`` takes it: a number of MiB, or with a K/M/G/T suffix."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigurationError(f"size {text!r}: use e.g. 2048, 2G or 512M", code="usage.size")
    shift = {"": 20, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]
    return int(m.group(1)) << shift


def _hex(text: str, size: int, what: str) -> bytes:
    try:
        b = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise ConfigurationError(f"{what} is not hex", code="usage.hex") from None
    if len(b) != size:
        raise ConfigurationError(f"{what} must be {size} bytes", code="usage.hex")
    return b


def _blob(data: bytes) -> bytes:
    """Raw bytes, or their hex text (QEMU table templates are often kept as hex)."""
    text = data.strip()
    if text and all(c in b"0123456789abcdefABCDEF \r\n\t" for c in text[:4096]):
        try:
            return binascii.unhexlify(b"".join(text.split()))
        except binascii.Error:
            pass
    return data


def _emit(res: MeasureResult, as_json: bool, title: str, components: bool) -> None:
    if as_json:
        click.echo(json.dumps(res.to_json(components=components), indent=2))
        return
    out = Console()
    table = Table(title=title)
    table.add_column("register", no_wrap=True)
    table.add_column("value", overflow="fold")
    for k, v in res.claims.items():
        table.add_row(k, v)
    for k, cands in res.candidates.items():
        for variant, v in cands.items():
            table.add_row(f"{k} [dim]({variant})[/]", v)
    out.print(table)
    if res.candidates:
        out.print("[yellow]candidates:[/] registers that depend on an input not given "
                  "(--page-order / --qemu-version)")
    if components:
        out.print_json(json.dumps(res.components))


@click.group("measure")
def measure_group() -> None:
    """Expected registers from build artifacts (firmware, kernel, initrd, command line...)."""


# --------------------------------------------------------------------------- tdx


@measure_group.command("tdx")
@click.option("--ovmf", required=True, metavar="FILE", help="OVMF/TDVF firmware image.")
@click.option("--page-order", type=click.Choice(["two-pass", "single-pass"]),
              help="MRTD page-add order: two-pass (QEMU 8.x TDX fork), single-pass (QEMU >= 9).")
@click.option("--qemu-version", metavar="X.Y",
              help="Host QEMU: selects the page order and whether the kernel header is patched "
              "(<= 10.1).")
@click.option("--kernel", metavar="FILE", help="bzImage given to QEMU -kernel.")
@click.option("--initrd", metavar="FILE", help="initrd given to QEMU -initrd.")
@click.option("--append", default="", metavar="CMDLINE", help="QEMU -append string.")
@click.option("--initrd-arg", type=click.Choice(["append", "prepend", "none"]), default="append",
              show_default=True,
              help="How the firmware adds initrd=initrd to the measured command line.")
@click.option("--memory", metavar="SIZE", help="Guest RAM (QEMU -m: MiB, or 2G, 512M).")
@click.option("--cpus", type=int, metavar="N", help="vCPU count (checked against the ACPI MADT).")
@click.option("--acpi-tables", metavar="FILE",
              help="QEMU's etc/acpi/tables blob (raw or hex), patched here for --memory.")
@click.option("--acpi-digests", metavar="LOADER,RSDP,TABLES",
              help="SHA-384 digests of the three ACPI blobs, e.g. from a reference event log.")
@click.option("--extra-separator", is_flag=True,
              help="The firmware logs a second separator after Boot0000.")
@click.option("--components", is_flag=True, help="Also print the event digests used.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tdx_cmd(ovmf: str, page_order: str | None, qemu_version: str | None, kernel: str | None,
            initrd: str | None, append: str, initrd_arg: str, memory: str | None,
            cpus: int | None, acpi_tables: str | None, acpi_digests: str | None,
            extra_separator: bool, components: bool, as_json: bool) -> None:
    """MRTD and RTMR0-2 of a QEMU TDX guest: every register the inputs determine.

    The ACPI tables are generated by QEMU for one machine and cannot be derived; without
    them (or their digests) RTMR0 is not printed."""
    try:
        if acpi_tables and acpi_digests:
            raise ConfigurationError("give --acpi-tables or --acpi-digests, not both",
                                     code="usage.acpi")
        digests = None
        if acpi_digests:
            parts = acpi_digests.split(",")
            if len(parts) != 3:
                raise ConfigurationError("--acpi-digests needs LOADER,RSDP,TABLES",
                                         code="usage.acpi")
            h = [_hex(p, 48, "ACPI digest") for p in parts]
            digests = AcpiDigests(h[0], h[1], h[2])
        with _bar() as bar:
            fw = bar.reader(ovmf, "firmware", _MAX_FIRMWARE)
            k = bar.reader(kernel, "kernel", _MAX_KERNEL) if kernel else None
            rd = bar.reader(initrd, "initrd", _MAX_INITRD) if initrd else None
            tables = _blob(bar.reader(acpi_tables, "ACPI tables", _MAX_SMALL)) \
                if acpi_tables else None
            res = measure_tdx(
                firmware=fw,
                page_order=page_order,  # type: ignore[arg-type]
                qemu_version=parse_qemu_version(qemu_version) if qemu_version else None,
                memory_size=parse_size(memory) if memory else None,
                cpus=cpus,
                acpi_tables=tables,
                acpi=digests,
                kernel=k,
                initrd=rd,
                append=append,
                initrd_arg=initrd_arg,  # type: ignore[arg-type]
                extra_separator=extra_separator,
                progress=bar.hashing("MRTD", len(fw)),
            )
    except AtlsError as e:
        _fail(e, as_json)
    _emit(res, as_json, "TDX (expected)", components)


# --------------------------------------------------------------------------- snp


def _launch_inputs(doc: Mapping[str, Any]) -> tuple[SnpLaunchInputs, dict[str, Any]]:
    """A launch-input document (dstack / SecretVM registry form)."""
    try:
        inputs = SnpLaunchInputs(
            ovmf_hash=_hex(str(doc["ovmf_hash"]), 48, "ovmf_hash"),
            sections=sections_from_json(doc["ovmf_sections"]),
            sev_es_reset_eip=int(doc["sev_es_reset_eip"]),
            sev_hashes_table_gpa=int(doc["sev_hashes_table_gpa"]) or None,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigurationError(f"launch inputs: missing or bad field {e}",
                                 code="usage.launch_inputs") from e
    return inputs, dict(doc)


@measure_group.command("snp")
@click.option("--ovmf", metavar="FILE", help="OVMF image (AmdSevX64 for measured direct boot).")
@click.option("--launch-inputs", metavar="FILE",
              help="Instead of --ovmf: JSON with ovmf_hash, ovmf_sections, sev_es_reset_eip, "
              "sev_hashes_table_gpa (optionally kernel_hash, initrd_hash, vcpu_type, vcpus, "
              "guest_features, base_cmdline), as dstack and SecretVM publish them.")
@click.option("--snp-ovmf-hash", metavar="HEX", help="Precalculated OVMF pre-hash.")
@click.option("--vcpus", type=int, metavar="N", help="Number of guest vCPUs.")
@click.option("--vcpu-type", metavar="CPUTYPE", help=f"One of {', '.join(VCPU_SIGNATURES)}.")
@click.option("--vcpu-sig", metavar="VALUE", help="Guest vCPU signature (CPUID 1 EAX).")
@click.option("--vcpu-family", type=int, metavar="FAMILY")
@click.option("--vcpu-model", type=int, metavar="MODEL")
@click.option("--vcpu-stepping", type=int, metavar="STEPPING")
@click.option("--kernel", metavar="FILE", help="Kernel file (QEMU kernel-hashes=on).")
@click.option("--initrd", metavar="FILE", help="Initrd file (use with --kernel).")
@click.option("--append", metavar="CMDLINE", help="Kernel command line (use with --kernel).")
@click.option("--secretvm-compose", metavar="FILE",
              help="SecretVM: build the command line from this compose file and --rootfs-hash.")
@click.option("--rootfs-hash", metavar="HEX", help="SecretVM rootfs hash.")
@click.option("--guest-features", metavar="VALUE", help="SEV_FEATURES in hex (default 0x1).")
@click.option("--vmm-type", type=click.Choice(["QEMU", "ec2", "gce"], case_sensitive=False),
              default="QEMU", show_default=True)
@click.option("--components", is_flag=True, help="Also print the inputs used.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def snp_cmd(ovmf: str | None, launch_inputs: str | None, snp_ovmf_hash: str | None,
            vcpus: int | None, vcpu_type: str | None, vcpu_sig: str | None,
            vcpu_family: int | None, vcpu_model: int | None, vcpu_stepping: int | None,
            kernel: str | None, initrd: str | None, append: str | None,
            secretvm_compose: str | None, rootfs_hash: str | None, guest_features: str | None,
            vmm_type: str, components: bool, as_json: bool) -> None:
    """SEV-SNP launch MEASUREMENT (option names as in sev-snp-measure).

    Measured direct boot (--kernel) needs an OVMF with an SNP_KERNEL_HASHES section (the
    AmdSevX64 build) and QEMU's kernel-hashes=on."""
    try:
        with _bar() as bar:
            res = _snp(bar, ovmf, launch_inputs, snp_ovmf_hash, vcpus, vcpu_type, vcpu_sig,
                       vcpu_family, vcpu_model, vcpu_stepping, kernel, initrd, append,
                       secretvm_compose, rootfs_hash, guest_features, vmm_type)
    except AtlsError as e:
        _fail(e, as_json)
    _emit(res, as_json, "SEV-SNP (expected)", components)


def _snp(bar: _Bar, ovmf: str | None, launch_inputs: str | None, snp_ovmf_hash: str | None,
         vcpus: int | None, vcpu_type: str | None, vcpu_sig: str | None,
         vcpu_family: int | None, vcpu_model: int | None, vcpu_stepping: int | None,
         kernel: str | None, initrd: str | None, append: str | None,
         secretvm_compose: str | None, rootfs_hash: str | None, guest_features: str | None,
         vmm_type: str) -> MeasureResult:
    if (ovmf is None) == (launch_inputs is None):
        raise ConfigurationError("give --ovmf or --launch-inputs", code="usage.snp")
    if append is not None and secretvm_compose is not None:
        raise ConfigurationError("--append and --secretvm-compose exclude each other",
                                 code="usage.snp")
    pre = None if snp_ovmf_hash is None else _hex(snp_ovmf_hash, 48, "--snp-ovmf-hash")
    doc: dict[str, Any] = {}
    if launch_inputs is not None:
        try:
            raw = json.loads(bar.reader(launch_inputs, "launch inputs", _MAX_SMALL))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigurationError("launch inputs are not JSON",
                                     code="usage.launch_inputs") from e
        if not isinstance(raw, dict):
            raise ConfigurationError("launch inputs must be a JSON object",
                                     code="usage.launch_inputs")
        inputs, doc = _launch_inputs(raw)
        if pre is not None:
            inputs = replace(inputs, ovmf_hash=pre)
    else:
        assert ovmf is not None
        fw = bar.reader(ovmf, "firmware", _MAX_FIRMWARE)
        inputs = snp_inputs_from_ovmf(
            fw, ovmf_hash=pre, progress=None if pre else bar.hashing("OVMF pages", len(fw))
        )
    n = vcpus if vcpus is not None else doc.get("vcpus")
    if not isinstance(n, int) or isinstance(n, bool):
        raise ConfigurationError("--vcpus is required", code="usage.snp")
    sig = _vcpu_sig(vcpu_type or doc.get("vcpu_type"), vcpu_sig, vcpu_family, vcpu_model,
                    vcpu_stepping)
    try:
        features = int(guest_features, 16) if guest_features is not None \
            else int(doc.get("guest_features", 1))
    except (TypeError, ValueError) as e:
        raise ConfigurationError("--guest-features is not hex", code="usage.snp") from e
    cmdline = append
    if secretvm_compose is not None:
        if rootfs_hash is None:
            raise ConfigurationError("--secretvm-compose needs --rootfs-hash", code="usage.snp")
        compose = bar.reader(secretvm_compose, "compose file", _MAX_SMALL)
        cmdline = secretvm_snp_cmdline(compose, rootfs_hash)
    elif cmdline is None and isinstance(doc.get("base_cmdline"), str):
        cmdline = doc["base_cmdline"]
    hashes = None
    if kernel is not None:
        k = bar.reader(kernel, "kernel", _MAX_KERNEL)
        rd = bar.reader(initrd, "initrd", _MAX_INITRD) if initrd else None
        hashes = SevHashes.from_artifacts(k, rd, cmdline or "")
    elif initrd is not None:
        raise ConfigurationError("--initrd needs --kernel", code="usage.snp")
    elif "kernel_hash" in doc:
        hashes = SevHashes(
            hashlib.sha256((cmdline or "").encode() + b"\0").digest(),
            _hex(str(doc["initrd_hash"]), 32, "initrd_hash") if "initrd_hash" in doc
            else hashlib.sha256(b"").digest(),
            _hex(str(doc["kernel_hash"]), 32, "kernel_hash"),
        )
    elif cmdline is not None:
        raise ConfigurationError("a command line needs --kernel", code="usage.snp")
    res = measure_snp(replace(inputs, hashes=hashes), vcpus=n, vcpu_sig=sig,
                      guest_features=features, vmm=VmmType.parse(vmm_type))
    if cmdline is not None:
        res.components["cmdline"] = cmdline
    return res


def _vcpu_sig(vcpu_type: Any, sig: str | None, family: int | None, model: int | None,
              stepping: int | None) -> int:
    if sig is not None:
        try:
            return int(sig, 0)
        except ValueError as e:
            raise ConfigurationError("--vcpu-sig is not a number", code="usage.snp") from e
    if family is not None or model is not None or stepping is not None:
        if family is None or model is None or stepping is None:
            raise ConfigurationError("--vcpu-family, --vcpu-model and --vcpu-stepping go "
                                     "together", code="usage.snp")
        return cpu_signature(family, model, stepping)
    if not isinstance(vcpu_type, str):
        raise ConfigurationError("--vcpu-type (or --vcpu-sig) is required", code="usage.snp")
    return vcpu_signature(vcpu_type)


# --------------------------------------------------------------------------- rtmr3


@measure_group.command("rtmr3")
@click.option("--dstack-event-log", metavar="FILE",
              help="dstack event log: JSON TdxEvent array, GetQuote response, or the guest's "
              "runtime_events.log.")
@click.option("--compose", metavar="FILE", help="SecretVM: docker-compose.yaml ...")
@click.option("--rootfs-hash", metavar="HEX", help="... and the rootfs SHA-256 (rootfs_data).")
@click.option("--docker-files", metavar="FILE", help="SecretVM: the docker files archive.")
@click.option("--docker-files-hash", metavar="HEX", help="SecretVM: its SHA-256 instead.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rtmr3_cmd(dstack_event_log: str | None, compose: str | None, rootfs_hash: str | None,
              docker_files: str | None, docker_files_hash: str | None, as_json: bool) -> None:
    """RTMR3 of a dstack (event-log replay) or SecretVM (compose + rootfs) guest."""
    res = MeasureResult()
    try:
        with _bar() as bar:
            if (dstack_event_log is None) == (compose is None):
                raise ConfigurationError("give --dstack-event-log or --compose", code="usage.rtmr3")
            if dstack_event_log is not None:
                if rootfs_hash or docker_files or docker_files_hash:
                    raise ConfigurationError("SecretVM options do not apply to a dstack log",
                                             code="usage.rtmr3")
                events = parse_dstack_event_log(
                    bar.reader(dstack_event_log, "event log", _MAX_SMALL)
                )
                rep = replay_rtmr3(events)
                res.claims["rtmr3"] = rep.rtmr3.hex()
                if rep.boot_rtmr3 is not None:
                    res.components["rtmr3_boot"] = rep.boot_rtmr3.hex()
                res.components["events"] = rep.events
            else:
                assert compose is not None
                res.claims["rtmr3"] = _secretvm_rtmr3(bar, compose, rootfs_hash, docker_files,
                                                      docker_files_hash).hex()
    except AtlsError as e:
        _fail(e, as_json)
    _emit(res, as_json, "RTMR3 (expected)", components=not as_json)


def _secretvm_rtmr3(bar: _Bar, compose: str, rootfs_hash: str | None, docker_files: str | None,
                    docker_files_hash: str | None) -> bytes:
    if rootfs_hash is None:
        raise ConfigurationError("--compose needs --rootfs-hash", code="usage.rtmr3")
    if docker_files and docker_files_hash:
        raise ConfigurationError("--docker-files and --docker-files-hash exclude each other",
                                 code="usage.rtmr3")
    files = None
    if docker_files_hash:
        files = _hex(docker_files_hash, 32, "--docker-files-hash")
    elif docker_files:
        files = hashlib.sha256(bar.reader(docker_files, "docker files", _MAX_INITRD)).digest()
    return secretvm_rtmr3(
        bar.reader(compose, "compose file", _MAX_SMALL),
        _hex(rootfs_hash, 32, "--rootfs-hash"),
        docker_files_digest=files,
    )


# --------------------------------------------------------------------------- secretvm


def _load_registers(path: str) -> dict[str, str]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigurationError(f"cannot read registers from {path}: {e}",
                                 code="usage.registers") from e
    if isinstance(doc, dict) and isinstance(doc.get("claims"), dict):
        doc = doc["claims"]  # `atls verify --json` output
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{path} is not a JSON object", code="usage.registers")
    return {k: v for k, v in doc.items() if isinstance(v, str)}


@measure_group.command("secretvm")
@click.option("--registers", metavar="FILE",
              help="JSON with mr_td, rtmr0..rtmr3 (`atls measure tdx --json` or "
              "`atls verify --json` output).")
@click.option("--mrtd", metavar="HEX")
@click.option("--rtmr0", metavar="HEX")
@click.option("--rtmr1", metavar="HEX")
@click.option("--rtmr2", metavar="HEX")
@click.option("--rtmr3", metavar="HEX")
@click.option("--compose", metavar="FILE", help="Compute RTMR3 from this compose file ...")
@click.option("--rootfs-hash", metavar="HEX", help="... and rootfs SHA-256.")
@click.option("--docker-files-hash", metavar="HEX", help="SHA-256 of the docker files, if any.")
@click.option("--key-provider", default="zero", show_default=True, metavar="zero|none|HEX",
              help="mrkp of MR_AGGREGATED: 32 zero bytes, the 'none' key provider, or a "
              "SHA-256 in hex.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def secretvm_cmd(registers: str | None, mrtd: str | None, rtmr0: str | None, rtmr1: str | None,
                 rtmr2: str | None, rtmr3: str | None, compose: str | None,
                 rootfs_hash: str | None, docker_files_hash: str | None, key_provider: str,
                 as_json: bool) -> None:
    """SecretVM's MR_AGGREGATED and MR_IMAGE from MRTD and RTMR0-3."""
    res = MeasureResult()
    try:
        with _bar() as bar:
            regs = _load_registers(registers) if registers else {}
            given = {"mr_td": mrtd, "rtmr0": rtmr0, "rtmr1": rtmr1, "rtmr2": rtmr2,
                     "rtmr3": rtmr3}
            regs.update({k: v for k, v in given.items() if v is not None})
            if compose is not None:
                if rtmr3 is not None:
                    raise ConfigurationError("--rtmr3 and --compose exclude each other",
                                             code="usage.secretvm")
                regs["rtmr3"] = _secretvm_rtmr3(bar, compose, rootfs_hash, None,
                                                 docker_files_hash).hex()
            missing = [k for k in given if k not in regs]
            if missing:
                raise ConfigurationError(f"missing registers: {', '.join(missing)}",
                                         code="usage.secretvm")
            b = {k: _hex(regs[k], 48, k) for k in given}
            mrkp = {"zero": bytes(32), "none": KEY_PROVIDER_NONE}.get(key_provider)
            if mrkp is None:
                mrkp = _hex(key_provider, 32, "--key-provider")
            res.claims.update({k: v.hex() for k, v in b.items()})
            res.claims["mr_aggregated"] = mr_aggregated(
                b["mr_td"], b["rtmr0"], b["rtmr1"], b["rtmr2"], b["rtmr3"], mrkp
            ).hex()
            res.claims["mr_image"] = mr_image(b["mr_td"], b["rtmr1"], b["rtmr2"],
                                              b["rtmr3"]).hex()
    except AtlsError as e:
        _fail(e, as_json)
    _emit(res, as_json, "SecretVM (expected)", components=False)


# --------------------------------------------------------------------------- policy


def policy_from_measured(measured: tuple[str, ...], name: str, allow_candidates: bool) -> str:
    """The TOML text of a policy pinning the registers in ``atls measure ... --json`` outputs
    (repeated files OR their values). Only what was measured is pinned; TCB status and the
    other rules keep their defaults. Raises :class:`ConfigurationError` on bad input."""
    from atls.policy import dump_policy

    sections: dict[str, dict[str, list[str]]] = {}
    for path in measured:
        doc = _load_json_object(path)
        platform = "snp" if "measurement" in doc else "tdx"
        keys = ("measurement",) if platform == "snp" else (
            "mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
        sec = sections.setdefault(platform, {})
        cands = doc.get("candidates", {})
        for k in keys:
            vals: list[str] = []
            if isinstance(doc.get(k), str):
                vals = [doc[k]]
            elif isinstance(cands, dict) and isinstance(cands.get(k), dict):
                if not allow_candidates:
                    raise ConfigurationError(
                        f"{path}: {k} is undetermined (candidates); give --page-order / "
                        "--qemu-version when measuring, or --allow-candidates",
                        code="usage.candidates")
                vals = [v for v in cands[k].values() if isinstance(v, str)]
            for v in vals:
                if v not in sec.setdefault(k, []):
                    sec[k].append(v)
        if not any(sec.values()):
            raise ConfigurationError(f"{path}: no register to pin", code="usage.measured")
    return dump_policy(name, {p: {k: v for k, v in s.items() if v}
                              for p, s in sections.items()})


def _load_json_object(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigurationError(f"cannot read {path}: {e}", code="usage.measured") from e
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{path} is not a JSON object", code="usage.measured")
    return doc
