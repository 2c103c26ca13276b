"""Whole-VM measurements from artifacts: every register the given inputs determine.

This is what ``atls measure tdx`` / ``atls measure snp`` print. The result's ``claims`` use the
claim names of ``atls verify`` (``mr_td``, ``rtmr0``..``rtmr3``, ``measurement``) so a measured
result can be compared with a verified quote key by key. A register whose value depends on an
input that was not given (the page-add order, the QEMU version) is not a claim; its possible
values are listed in ``candidates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atls.measure._common import config_error, replay, sha384
from atls.measure.acpi import AcpiDigests, acpi_digests, madt_cpu_count, patch_pci_window
from atls.measure.ovmf import parse_tdvf_metadata
from atls.measure.pe import authenticode_digest, qemu_patch_kernel
from atls.measure.snp import SevHashes, SnpLaunchInputs, VmmType, snp_measurement
from atls.measure.tdx import (
    InitrdArg,
    PageOrder,
    Rtmr0Events,
    cfv_digest,
    cmdline_digest,
    firmware_cmdline,
    mrtd,
    rtmr1_events,
    rtmr2_events,
    td_hob_from_sections,
)

__all__ = [
    "MeasureResult",
    "QemuVersion",
    "measure_snp",
    "measure_tdx",
    "parse_qemu_version",
]

Progress = Callable[[int], None]
QemuVersion = tuple[int, int]


def parse_qemu_version(text: str) -> QemuVersion:
    """``"8.2"``, ``"9.2.1"`` -> ``(major, minor)``."""
    parts = text.strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:3]) or len(parts) > 3:
        raise config_error(f"QEMU version {text!r}: use X.Y or X.Y.Z", "qemu_version")
    return int(parts[0]), int(parts[1])


@dataclass
class MeasureResult:
    """``claims``: determined registers (hex); ``candidates``: alternatives for undetermined
    ones; ``components``: the event digests the registers were built from."""

    claims: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, dict[str, str]] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)

    def to_json(self, *, components: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.claims)
        if self.candidates:
            out["candidates"] = self.candidates
        if components and self.components:
            out["components"] = self.components
        return out


def measure_tdx(
    *,
    firmware: bytes,
    page_order: PageOrder | None = None,
    qemu_version: QemuVersion | None = None,
    memory_size: int | None = None,
    cpus: int | None = None,
    acpi_tables: bytes | None = None,
    acpi: AcpiDigests | None = None,
    kernel: bytes | None = None,
    initrd: bytes | None = None,
    append: str = "",
    initrd_arg: InitrdArg = "append",
    extra_separator: bool = False,
    progress: Progress | None = None,
) -> MeasureResult:
    """MRTD and RTMR0-2 of a QEMU TDX guest (OVMF/TDVF, direct kernel boot).

    * MRTD: the firmware, and the page-add order (``page_order``, or from ``qemu_version``:
      QEMU < 9 two-pass, >= 9 single-pass; without either, both are candidates).
    * RTMR0: the firmware, ``memory_size`` and the ACPI blobs (``acpi_tables`` -- the
      ``etc/acpi/tables`` blob, patched here for ``memory_size`` -- or their ``acpi``
      digests). ``cpus`` is checked against the MADT of ``acpi_tables``.
    * RTMR1: the kernel; QEMU <= 10.1 patches its setup header (initrd size and
      ``memory_size`` matter), QEMU >= 10.2 does not; without ``qemu_version`` both are
      candidates.
    * RTMR2: the command line (with the firmware's ``initrd=initrd``) and the initrd.
    """
    res = MeasureResult()
    if memory_size is not None and (memory_size <= 0 or memory_size % (1 << 20)):
        raise config_error("memory size must be a positive number of MiB", "memory")
    if cpus is not None and cpus <= 0:
        raise config_error("vCPU count must be positive", "cpus")
    if acpi_tables is not None and acpi is not None:
        raise config_error("give the ACPI tables or their digests, not both", "acpi")
    if initrd is not None and not initrd:
        raise config_error("the initrd is empty", "initrd")
    if initrd is not None and kernel is None:
        raise config_error("an initrd needs a kernel", "initrd")
    if page_order is None and qemu_version is not None:
        page_order = "two-pass" if qemu_version < (9, 0) else "single-pass"

    # MRTD
    sections = parse_tdvf_metadata(firmware)
    res.components["tdvf_sections"] = [s.to_json() for s in sections]
    if page_order is not None:
        res.claims["mr_td"] = mrtd(firmware, sections, page_order=page_order,
                                   progress=progress).hex()
    else:
        res.candidates["mr_td"] = {
            order: mrtd(firmware, sections, page_order=order).hex()
            for order in ("two-pass", "single-pass")
        }

    # RTMR0
    if acpi_tables is not None:
        if memory_size is None:
            raise config_error("ACPI tables need the memory size (--memory)", "memory")
        if cpus is not None:
            have = madt_cpu_count(acpi_tables)
            if have != cpus:
                raise config_error(
                    f"the ACPI tables describe {have} vCPUs, not {cpus}", "cpus_mismatch"
                )
        acpi = acpi_digests(patch_pci_window(acpi_tables, memory_size))
    if memory_size is not None and acpi is not None:
        ev = Rtmr0Events(
            td_hob=sha384(td_hob_from_sections(sections, memory_size)),
            cfv=cfv_digest(firmware, sections),
            acpi=acpi,
            extra_separator=extra_separator,
        )
        digests = ev.digests()
        res.claims["rtmr0"] = replay(digests).hex()
        res.components["rtmr0_events"] = [d.hex() for d in digests]

    # RTMR1 / RTMR2
    if kernel is not None:
        raw = authenticode_digest(kernel)

        def patched() -> bytes:
            if memory_size is None:
                raise config_error(
                    "QEMU <= 10.1 patches the kernel for the RAM size: give --memory", "memory"
                )
            return authenticode_digest(qemu_patch_kernel(
                kernel, initrd_size=None if initrd is None else len(initrd),
                memory_size=memory_size, cmdline=append,
            ))

        if qemu_version is None:
            cands = {"qemu>=10.2": replay(rtmr1_events(raw)).hex()}
            if memory_size is not None:
                cands["qemu<=10.1"] = replay(rtmr1_events(patched())).hex()
            res.candidates["rtmr1"] = cands
        else:
            auth = patched() if qemu_version <= (10, 1) else raw
            res.claims["rtmr1"] = replay(rtmr1_events(auth)).hex()
            res.components["kernel_authenticode"] = auth.hex()
        line = firmware_cmdline(append, has_initrd=initrd is not None, initrd_arg=initrd_arg)
        cmd = cmdline_digest(line)
        initrd_digest = None if initrd is None else sha384(initrd)
        res.claims["rtmr2"] = replay(rtmr2_events(cmd, initrd_digest)).hex()
        res.components["cmdline"] = line
        res.components["cmdline_sha384"] = cmd.hex()
        if initrd_digest is not None:
            res.components["initrd_sha384"] = initrd_digest.hex()
    return res


def measure_snp(
    inputs: SnpLaunchInputs,
    *,
    vcpus: int,
    vcpu_sig: int,
    guest_features: int = 0x1,
    vmm: VmmType = VmmType.QEMU,
) -> MeasureResult:
    """The SNP launch measurement as a :class:`MeasureResult` (claim ``measurement``)."""
    res = MeasureResult()
    res.claims["measurement"] = snp_measurement(
        inputs, vcpus=vcpus, vcpu_sig=vcpu_sig, guest_features=guest_features, vmm=vmm
    ).hex()
    res.components["ovmf_hash"] = inputs.ovmf_hash.hex()
    res.components["sections"] = [s.to_json() for s in inputs.sections]
    res.components["sev_es_reset_eip"] = hex(inputs.sev_es_reset_eip)
    if inputs.hashes is not None:
        h: SevHashes = inputs.hashes
        res.components["kernel_sha256"] = h.kernel_sha256.hex()
        res.components["initrd_sha256"] = h.initrd_sha256.hex()
        res.components["cmdline_sha256"] = h.cmdline_sha256.hex()
    return res
