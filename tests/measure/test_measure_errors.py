"""Typed errors for bad artifacts and parameters, and property tests of the parsers:
random or mutated bytes raise only EvidenceParseError (never another exception, never a hang)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.errors import ConfigurationError, EvidenceParseError
from atls.measure import (
    AcpiDigests,
    SevHashes,
    SnpLaunchInputs,
    authenticode_digest,
    build_table_loader,
    decode_td_hob_witness,
    footer_table,
    measure_tdx,
    mrtd,
    parse_dstack_event_log,
    parse_pe,
    parse_sev_metadata,
    parse_tdvf_metadata,
    qemu_patch_kernel,
    replay_rtmr3,
    sections_from_json,
    snp_inputs_from_ovmf,
    snp_measurement,
    td_hob,
    vcpu_signature,
)
from atls.measure.acpi import madt_cpu_count, patch_pci_window, split_tables
from atls.measure.dstack import runtime_event_digest, runtime_event_preimage_v2

FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"
TDX_META = "e47a6535-984a-4798-865e-4685a7bf8ec2"
SEV_META = "dc886566-984a-4798-a75e-5585a7bf67cc"
RESET = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"


def _table(entries: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(
        data + (len(data) + 18).to_bytes(2, "little") + uuid.UUID(g).bytes_le
        for g, data in entries
    )
    return body + (len(body) + 18).to_bytes(2, "little") + uuid.UUID(FOOTER).bytes_le


SIZE = 0x40000
BFV = (0x10000, 0x30000, 0xFFFD0000, 0x30000, 0, 1)
CFV = (0x0, 0x10000, 0xFFFC0000, 0x10000, 1, 0)
TEMP = (0, 0, 0x800000, 0x6000, 3, 0)
HOB = (0, 0, 0x809000, 0x2000, 2, 0)


def tdvf_image(sections=(BFV, CFV, TEMP, HOB), *, seed: bytes = b"fw", sev: bool = True) -> bytes:
    """A synthetic firmware with a TDVF descriptor (and SEV metadata) and an OVMF footer."""
    fw = bytearray(hashlib.shake_256(seed).digest(SIZE))
    desc = b"TDVF" + (16 + 32 * len(sections)).to_bytes(4, "little") + (1).to_bytes(4, "little")
    desc += len(sections).to_bytes(4, "little")
    for off, raw, gpa, mem, typ, attr in sections:
        desc += (off.to_bytes(4, "little") + raw.to_bytes(4, "little") + gpa.to_bytes(8, "little")
                 + mem.to_bytes(8, "little") + typ.to_bytes(4, "little")
                 + attr.to_bytes(4, "little"))
    tdx_off = 0xF000
    fw[tdx_off : tdx_off + len(desc)] = desc
    entries = [(TDX_META, (SIZE - tdx_off).to_bytes(4, "little"))]
    if sev:
        meta = b"ASEV" + (28).to_bytes(4, "little") + (1).to_bytes(4, "little")
        meta += (1).to_bytes(4, "little") + (0x800000).to_bytes(4, "little")
        meta += (0x9000).to_bytes(4, "little") + (1).to_bytes(4, "little")
        fw[0xF800 : 0xF800 + len(meta)] = meta
        entries += [(SEV_META, (SIZE - 0xF800).to_bytes(4, "little")),
                    (RESET, (0x80B004).to_bytes(4, "little"))]
    t = _table(entries)
    fw[SIZE - 32 - len(t) : SIZE - 32] = t
    return bytes(fw)


def _code(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return excinfo.value.code  # type: ignore[attr-defined,no-any-return]


# ----------------------------------------------------------------- firmware


def test_synthetic_image_parses_and_orders_differ():
    fw = tdvf_image()
    secs = parse_tdvf_metadata(fw)
    assert [s.type for s in secs] == [0, 1, 3, 2]
    assert mrtd(fw, secs, page_order="two-pass") != mrtd(fw, secs, page_order="single-pass")


def test_mrtd_covers_bfv_bytes_not_cfv_bytes():
    fw = tdvf_image()
    secs = parse_tdvf_metadata(fw)
    base = mrtd(fw, secs, page_order="two-pass")
    for at in (0x10000, 0x2ABCD, 0x3FFFF - 100):  # inside the BFV (measured)
        flipped = bytearray(fw)
        flipped[at] ^= 1
        assert mrtd(bytes(flipped), secs, page_order="two-pass") != base
    flipped = bytearray(fw)
    flipped[0x1234] ^= 1  # inside the CFV: added, not extended
    assert mrtd(bytes(flipped), secs, page_order="two-pass") == base


def test_no_footer():
    with pytest.raises(EvidenceParseError) as e:
        parse_tdvf_metadata(bytes(SIZE))
    assert _code(e) == "measure.ovmf.no_footer"


def test_no_tdvf_metadata():
    fw = bytearray(SIZE)
    t = _table([(RESET, (0x80B004).to_bytes(4, "little"))])
    fw[SIZE - 32 - len(t) : SIZE - 32] = t
    with pytest.raises(EvidenceParseError) as e:
        parse_tdvf_metadata(bytes(fw))
    assert _code(e) == "measure.tdvf.absent"
    with pytest.raises(EvidenceParseError) as e:
        parse_sev_metadata(bytes(fw))
    assert _code(e) == "measure.sev_metadata.absent"


@pytest.mark.parametrize(("sections", "code"), [
    ((BFV, CFV, (0, 0, 0x800100, 0x6000, 3, 0), HOB), "measure.tdvf.alignment"),
    ((BFV, CFV, TEMP, (0, 0, 0x805000, 0x2000, 2, 0)), "measure.tdvf.overlap"),
    (((0x10000, 0x30000, 0xFFFD0000, 0x31000, 0, 1), CFV), "measure.tdvf.size"),
    (((0x30000, 0x30000, 0xFFFD0000, 0x30000, 0, 1), CFV), "measure.tdvf.size"),
    ((BFV, (0, 0, 0x800000, 0x1000, 9, 0)), "measure.tdvf.section_type"),
    ((BFV, (0, 0, 0x800000, 0x1000, 3, 4)), "measure.tdvf.attributes"),
    ((BFV, (0, 0, 0x800000, 1 << 40, 3, 0)), "measure.tdvf.too_large"),
])
def test_bad_tdvf_sections(sections, code):
    with pytest.raises(EvidenceParseError) as e:
        parse_tdvf_metadata(tdvf_image(sections))
    assert _code(e) == code


def test_memory_too_small_and_inconsistent_sizes():
    fw = tdvf_image()
    digests = AcpiDigests(bytes(48), bytes(48), bytes(48))
    with pytest.raises(ConfigurationError) as e:
        measure_tdx(firmware=fw, page_order="two-pass", memory_size=8 << 20, acpi=digests)
    assert _code(e) == "measure.memory_too_small"
    with pytest.raises(ConfigurationError) as e:
        measure_tdx(firmware=fw, page_order="two-pass", memory_size=3 << 19, acpi=digests)
    assert _code(e) == "measure.memory"
    with pytest.raises(ConfigurationError) as e:
        td_hob(0x809000, [(0x800000, 0x6000), (0x805000, 0x2000)], 1 << 30)
    assert _code(e) == "measure.td_hob"
    with pytest.raises(ConfigurationError) as e:
        measure_tdx(firmware=fw, page_order="sideways")  # type: ignore[arg-type]
    assert _code(e) == "measure.page_order"


def test_measure_tdx_without_kernel_or_acpi_prints_only_mrtd():
    res = measure_tdx(firmware=tdvf_image(), qemu_version=(9, 2))
    assert set(res.claims) == {"mr_td"}
    res = measure_tdx(firmware=tdvf_image(), memory_size=1 << 30,
                      acpi=AcpiDigests(bytes(48), bytes(48), bytes(48)))
    assert set(res.claims) == {"rtmr0"} and set(res.candidates) == {"mr_td"}


def test_acpi_errors():
    with pytest.raises(EvidenceParseError) as e:
        split_tables(bytes(100))
    assert _code(e) == "measure.acpi.size"
    blob = bytearray(128 * 1024)
    blob[0:4] = b"FACS"
    blob[4:8] = (64).to_bytes(4, "little")
    with pytest.raises(EvidenceParseError) as e:
        build_table_loader(bytes(blob))
    assert _code(e) == "measure.acpi.unsupported"
    with pytest.raises(EvidenceParseError) as e:
        patch_pci_window(bytes(blob), 1 << 30)
    assert _code(e) == "measure.acpi.unsupported"
    with pytest.raises(ConfigurationError):
        patch_pci_window(bytes(blob), 1000)


@pytest.mark.vectors
def test_cpus_mismatch(vectors):
    tables = bytes.fromhex(
        (vectors / "measure/oasis-cli/template_qemu_cpu2.hex").read_text().strip())
    assert madt_cpu_count(tables) == 2
    with pytest.raises(ConfigurationError) as e:
        measure_tdx(firmware=tdvf_image(), page_order="two-pass", memory_size=1 << 30, cpus=1,
                    acpi_tables=tables)
    assert _code(e) == "measure.cpus_mismatch"
    with pytest.raises(ConfigurationError) as e:
        measure_tdx(firmware=tdvf_image(), page_order="two-pass", acpi_tables=tables)
    assert _code(e) == "measure.memory"


# ----------------------------------------------------------------- kernel


def test_kernel_not_pe():
    with pytest.raises(EvidenceParseError) as e:
        authenticode_digest(b"\x7fELF" + bytes(1000))
    assert _code(e) == "measure.pe.not_pe"
    with pytest.raises(EvidenceParseError) as e:
        measure_tdx(firmware=tdvf_image(), page_order="two-pass", kernel=b"not a kernel")
    assert _code(e) == "measure.pe.not_pe"
    with pytest.raises(EvidenceParseError) as e:
        parse_pe(b"MZ" + bytes(0x3A) + (0x10000).to_bytes(4, "little"))
    assert _code(e) == "measure.pe.not_pe"


def test_kernel_patch_errors():
    with pytest.raises(ConfigurationError) as e:
        qemu_patch_kernel(b"MZ" + bytes(0x1000), initrd_size=10, memory_size=1 << 30)
    assert _code(e) == "measure.initrd"
    # no HdrS and no initrd: QEMU serves the file as is
    assert qemu_patch_kernel(b"MZ" + bytes(0x1000), initrd_size=None, memory_size=1 << 30) == \
        b"MZ" + bytes(0x1000)
    k = bytearray(0x2000)
    k[0x1F1] = 3
    k[0x202:0x206] = b"HdrS"
    k[0x206:0x208] = (0x20F).to_bytes(2, "little")
    k[0x211] = 1
    k[0x236:0x238] = (0x7F).to_bytes(2, "little")
    with pytest.raises(ConfigurationError):
        qemu_patch_kernel(bytes(k), initrd_size=1 << 30, memory_size=1 << 30)
    with pytest.raises(ConfigurationError):
        qemu_patch_kernel(bytes(k), initrd_size=None, memory_size=1 << 30, cmdline="vga=bad")
    p = qemu_patch_kernel(bytes(k), initrd_size=4096, memory_size=1 << 30, cmdline="vga=0x317")
    assert p[0x1FA:0x1FC] == (0x317).to_bytes(2, "little")
    assert p[0x210] == 0xB0 and p[0x211] == 0x81
    assert int.from_bytes(p[0x228:0x22C], "little") == 0x20000
    assert int.from_bytes(p[0x21C:0x220], "little") == 4096
    assert int.from_bytes(p[0x218:0x21C], "little") == (0x40000000 - 0x28000 - 1 - 4096) & ~0xFFF
    with pytest.raises(ConfigurationError) as e:
        measure_tdx(firmware=tdvf_image(), page_order="two-pass", kernel=bytes(k), initrd=b"")
    assert _code(e) == "measure.initrd"


# ----------------------------------------------------------------- SNP


def test_snp_parameter_errors():
    fw = tdvf_image()
    inputs = snp_inputs_from_ovmf(fw)
    with pytest.raises(ConfigurationError) as e:
        snp_measurement(inputs, vcpus=0, vcpu_sig=1)
    assert _code(e) == "measure.vcpus"
    with pytest.raises(ConfigurationError) as e:
        vcpu_signature("Pentium")
    assert _code(e) == "measure.vcpu_type"
    hashes = SevHashes.from_artifacts(b"k", None, "")
    with pytest.raises(ConfigurationError) as e:
        snp_measurement(SnpLaunchInputs(inputs.ovmf_hash, inputs.sections, 0x80B004, None,
                                        hashes), vcpus=1, vcpu_sig=1)
    assert _code(e) == "measure.no_kernel_hashes"
    with pytest.raises(EvidenceParseError) as e:
        sections_from_json([{"gpa": 0x800100, "size": 0x1000, "section_type": 1}])
    assert _code(e) == "measure.sev_metadata.alignment"
    with pytest.raises(ConfigurationError):
        sections_from_json([{"gpa": 0x800000, "size": 0x1000, "section_type": 7}])


# ----------------------------------------------------------------- dstack log


def test_dstack_log_errors():
    good = {"imr": 3, "event_type": 0x08000001, "digest": "", "event": "app-id",
            "event_payload": "abcd"}
    rep = replay_rtmr3(parse_dstack_event_log(json.dumps([good]).encode()))
    assert rep.events == 1 and rep.boot_rtmr3 is None
    bad = dict(good, digest="00" * 48)
    with pytest.raises(EvidenceParseError) as e:
        replay_rtmr3(parse_dstack_event_log(json.dumps([bad]).encode()))
    assert _code(e) == "measure.dstack_log.digest_mismatch"
    v2 = dict(good, version=2, preimage=runtime_event_preimage_v2("app-id", b"\xab\xcd").hex())
    r2 = replay_rtmr3(parse_dstack_event_log(json.dumps([v2]).encode()))
    assert r2.rtmr3 != rep.rtmr3
    assert runtime_event_preimage_v2("app-id", b"\xab\xcd") == \
        b'{"name":"app-id","payload":"abcd","type":134217729}'
    with pytest.raises(EvidenceParseError) as e:
        replay_rtmr3(parse_dstack_event_log(json.dumps([dict(v2, preimage="00")]).encode()))
    assert _code(e) == "measure.dstack_log.preimage"
    lines = b'{"event":"app-id","payload":"q80="}\n{"event":"boot-mr-done","payload":""}\n'
    rl = replay_rtmr3(parse_dstack_event_log(lines))
    assert rl.events == 2 and rl.boot_rtmr3 == rl.rtmr3
    assert runtime_event_digest("app-id", b"\xab\xcd") == \
        hashlib.sha384(b"\x01\x00\x00\x08:app-id:\xab\xcd").digest()
    for junk in (b"\xff", b"{", b"[1]", b'{"event_log": 5}', b'[{"imr": -1}]'):
        with pytest.raises(EvidenceParseError):
            parse_dstack_event_log(junk)


# ----------------------------------------------------------------- property tests

_FAST = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.binary(max_size=4096))
def test_random_bytes_firmware_parsers(data):
    for fn in (footer_table, parse_tdvf_metadata, parse_sev_metadata):
        with contextlib.suppress(EvidenceParseError):
            fn(data)


@_FAST
@given(st.binary(max_size=2048))
def test_random_bytes_pe(data):
    for image in (data, b"MZ" + data):
        with contextlib.suppress(EvidenceParseError):
            authenticode_digest(image)


@_FAST
@given(st.binary(max_size=1024), st.binary(max_size=64))
def test_random_bytes_logs_and_witness(data, witness):
    with contextlib.suppress(EvidenceParseError):
        replay_rtmr3(parse_dstack_event_log(data))
    with contextlib.suppress(EvidenceParseError):
        decode_td_hob_witness(witness)


_IMAGE = tdvf_image()
_TAIL = SIZE - 0x1000  # the footer table and descriptors live in the last pages


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(1, 255)), min_size=1,
                max_size=8))
def test_mutated_firmware_metadata(flips):
    """Flipped bytes in the descriptors and footer: typed errors, or a layout that measures."""
    fw = bytearray(_IMAGE)
    for at, x in flips:
        pos = 0xF000 + at % 0x1000 if at % 2 else _TAIL + at % 0x1000
        fw[pos] ^= x
    data = bytes(fw)
    try:
        secs = parse_tdvf_metadata(data)
    except EvidenceParseError:
        pass
    else:
        mrtd(data, secs, page_order="two-pass")
    try:
        inputs = snp_inputs_from_ovmf(data)
    except EvidenceParseError:
        pass
    else:
        snp_measurement(inputs, vcpus=1, vcpu_sig=1)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0x200, max_size=0x400), st.integers(0, 0x1FF))
def test_pe_header_mutations(tail, at):
    """A minimal PE32+ header with random contents after the COFF header: typed errors only."""
    img = bytearray(b"MZ" + bytes(0x3A) + (0x40).to_bytes(4, "little") + b"PE\0\0" + tail)
    img[0x40 + 4 + 16 : 0x40 + 4 + 18] = (0xF0).to_bytes(2, "little")
    img[0x40 + 24 : 0x40 + 26] = (0x20B).to_bytes(2, "little")
    img[min(at, len(img) - 1)] ^= 0x55
    try:
        parse_pe(bytes(img))
        authenticode_digest(bytes(img))
    except EvidenceParseError:
        pass


@_FAST
@given(st.binary(max_size=512))
def test_random_acpi_blobs(head):
    blob = head + bytes(128 * 1024 - len(head))
    for fn in (split_tables, build_table_loader, madt_cpu_count):
        with contextlib.suppress(EvidenceParseError):
            fn(blob)


@pytest.mark.vectors
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x22AB + 64), st.integers(1, 255)), min_size=1,
                max_size=6))
def test_mutated_acpi_template(vectors, flips):
    """Flipped bytes in a real QEMU tables blob: typed errors or a derivable loader/RSDP."""
    blob = bytearray(bytes.fromhex(
        (vectors / "measure/oasis-cli/template_qemu_cpu1.hex").read_text().strip()))
    for at, x in flips:
        blob[at] ^= x
    for fn in (build_table_loader, madt_cpu_count):
        with contextlib.suppress(EvidenceParseError):
            fn(bytes(blob))
    with contextlib.suppress(EvidenceParseError):
        patch_pci_window(bytes(blob), 1 << 30)
