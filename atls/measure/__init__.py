"""Expected measurements from build artifacts (pure functions over bytes; no I/O).

* Intel TDX: :func:`mrtd` (both page-add orders), the RTMR0 events (:class:`Rtmr0Events`: TD
  HOB, CFV, secure-boot variables, separator, QEMU ACPI blobs, BootOrder/Boot0000), RTMR1
  (Authenticode of the kernel as QEMU serves it) and RTMR2 (command line, initrd);
  :func:`measure_tdx` puts them together.
* AMD SEV-SNP: :func:`snp_measurement` over :class:`SnpLaunchInputs` (OVMF pre-hash, SEV
  metadata, SEV hashes table, VMSAs); :func:`measure_snp`.
* RTMR3: dstack runtime-event replay (:func:`replay_rtmr3`), SecretVM compose/rootfs
  (:func:`secretvm_rtmr3`), and SecretVM's :func:`mr_aggregated` / :func:`mr_image`.

Errors: malformed artifacts raise :class:`~atls.errors.EvidenceParseError` with a
``measure.<artifact>.<reason>`` code; bad parameters raise
:class:`~atls.errors.ConfigurationError` with a ``measure.<reason>`` code. The algorithms and
byte layouts are those of the project's measurement-algorithms reference.
"""

from atls.measure.acpi import (
    AcpiDigests,
    acpi_digests,
    build_rsdp,
    build_table_loader,
    madt_cpu_count,
    patch_pci_window,
)
from atls.measure.artifacts import MeasureResult, measure_snp, measure_tdx, parse_qemu_version
from atls.measure.dstack import (
    DstackEvent,
    Rtmr3Replay,
    decode_td_hob_witness,
    parse_dstack_event_log,
    replay_registers,
    replay_rtmr3,
    runtime_event_digest,
)
from atls.measure.ovmf import (
    SevSection,
    SevSectionType,
    TdvfSection,
    TdvfSectionType,
    footer_table,
    parse_sev_metadata,
    parse_tdvf_metadata,
    sev_es_reset_eip,
    sev_hashes_table_location,
)
from atls.measure.pe import authenticode_digest, parse_pe, qemu_patch_kernel
from atls.measure.secretvm import (
    KEY_PROVIDER_NONE,
    mr_aggregated,
    mr_image,
    secretvm_rtmr3,
    secretvm_snp_cmdline,
)
from atls.measure.snp import (
    VCPU_SIGNATURES,
    SevHashes,
    SnpLaunchInputs,
    VmmType,
    cpu_signature,
    ovmf_prehash,
    sections_from_json,
    sev_hashes_table,
    snp_inputs_from_ovmf,
    snp_measurement,
    vcpu_signature,
    vmsa_page,
)
from atls.measure.tdx import (
    PageOrder,
    Rtmr0Events,
    boot0000_uiapp,
    cfv_digest,
    cmdline_digest,
    firmware_cmdline,
    mrtd,
    rtmr0,
    rtmr1,
    rtmr1_events,
    rtmr2,
    rtmr2_events,
    separator_digest,
    td_hob,
    td_hob_from_sections,
    uefi_variable_data,
)

__all__ = [
    "KEY_PROVIDER_NONE",
    "VCPU_SIGNATURES",
    "AcpiDigests",
    "DstackEvent",
    "MeasureResult",
    "PageOrder",
    "Rtmr0Events",
    "Rtmr3Replay",
    "SevHashes",
    "SevSection",
    "SevSectionType",
    "SnpLaunchInputs",
    "TdvfSection",
    "TdvfSectionType",
    "VmmType",
    "acpi_digests",
    "authenticode_digest",
    "boot0000_uiapp",
    "build_rsdp",
    "build_table_loader",
    "cfv_digest",
    "cmdline_digest",
    "cpu_signature",
    "decode_td_hob_witness",
    "firmware_cmdline",
    "footer_table",
    "madt_cpu_count",
    "measure_snp",
    "measure_tdx",
    "mr_aggregated",
    "mr_image",
    "mrtd",
    "ovmf_prehash",
    "parse_dstack_event_log",
    "parse_pe",
    "parse_qemu_version",
    "parse_sev_metadata",
    "parse_tdvf_metadata",
    "patch_pci_window",
    "qemu_patch_kernel",
    "replay_registers",
    "replay_rtmr3",
    "rtmr0",
    "rtmr1",
    "rtmr1_events",
    "rtmr2",
    "rtmr2_events",
    "runtime_event_digest",
    "secretvm_rtmr3",
    "secretvm_snp_cmdline",
    "sections_from_json",
    "separator_digest",
    "sev_es_reset_eip",
    "sev_hashes_table",
    "sev_hashes_table_location",
    "snp_inputs_from_ovmf",
    "snp_measurement",
    "td_hob",
    "td_hob_from_sections",
    "uefi_variable_data",
    "vcpu_signature",
    "vmsa_page",
]
