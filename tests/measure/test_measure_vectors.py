"""Every value of measure/expected.json whose inputs are in the vector folder, and the registers
of the real quotes and reports whose inputs are given, recomputed by atls.measure."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import struct

import cbor2
import pytest

from atls.measure import (
    KEY_PROVIDER_NONE,
    AcpiDigests,
    Rtmr0Events,
    SevHashes,
    SnpLaunchInputs,
    TdvfSection,
    acpi_digests,
    boot0000_uiapp,
    cmdline_digest,
    decode_td_hob_witness,
    firmware_cmdline,
    mr_aggregated,
    mr_image,
    parse_dstack_event_log,
    patch_pci_window,
    replay_registers,
    replay_rtmr3,
    rtmr0,
    rtmr1,
    rtmr2,
    runtime_event_digest,
    secretvm_rtmr3,
    secretvm_snp_cmdline,
    sections_from_json,
    separator_digest,
    snp_measurement,
    td_hob,
    td_hob_from_sections,
    uefi_variable_data,
    vcpu_signature,
)
from atls.measure._common import replay, sha384

pytestmark = pytest.mark.vectors


@pytest.fixture(scope="module")
def expected(vectors):
    return json.loads((vectors / "measure" / "expected.json").read_text())


def _quote_regs(quote: bytes) -> dict[str, str]:
    """MRTD and RTMR0-3 of a TDX v4 quote (TD report body after the 48-byte header)."""
    assert int.from_bytes(quote[0:2], "little") == 4
    regs = {"mr_td": quote[184:232].hex()}
    for i in range(4):
        regs[f"rtmr{i}"] = quote[376 + 48 * i : 424 + 48 * i].hex()
    return regs


def _ccel_events(data: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(CC-MR index, type, SHA-384 digest, event data) of a TCG crypto-agile log (test helper)."""
    pos = 32
    (size,) = struct.unpack_from("<I", data, 28)
    spec = data[pos : pos + size]
    pos += size
    (n,) = struct.unpack_from("<I", spec, 24)
    sizes = dict(struct.unpack_from("<HH", spec, 28 + 4 * i) for i in range(n))
    out = []
    while pos + 8 <= len(data):
        idx, typ = struct.unpack_from("<II", data, pos)
        if typ == 0xFFFFFFFF or (idx, typ) == (0, 0):
            break
        pos += 8
        (count,) = struct.unpack_from("<I", data, pos)
        pos += 4
        dig = {}
        for _ in range(count):
            (alg,) = struct.unpack_from("<H", data, pos)
            dig[alg] = data[pos + 2 : pos + 2 + sizes[alg]]
            pos += 2 + sizes[alg]
        (esize,) = struct.unpack_from("<I", data, pos)
        out.append((idx, typ, dig[0x000C], data[pos + 4 : pos + 4 + esize]))
        pos += 4 + esize
    return out


def _sections(rows) -> list[TdvfSection]:
    return [
        TdvfSection(int(r["data_offset"], 16), int(r["raw_size"], 16), int(r["gpa"], 16),
                    int(r["mem_size"], 16), r["type"], r["attributes"])
        for r in rows
    ]


def _template(vectors, cpus: int) -> bytes:
    path = vectors / "measure" / "oasis-cli" / f"template_qemu_cpu{cpus}.hex"
    return bytes.fromhex(path.read_text().strip())


# ----------------------------------------------------------------- constants and components


def test_constant_events(expected):
    c = expected["constants"]
    assert separator_digest().hex() == c["separator"]
    assert sha384(boot0000_uiapp()).hex() == c["boot0000_uiapp"]
    assert len(boot0000_uiapp()) == 62
    assert sha384(b"\0\0").hex() == c["bootorder_0000"]
    ev = Rtmr0Events(td_hob=bytes(48), cfv=bytes(48), acpi=AcpiDigests(*(bytes(48),) * 3))
    names = ("SecureBoot", "PK", "KEK", "db", "dbx")
    assert [d.hex() for d in ev.secure_boot] == [c["efi_var_empty"][n] for n in names]
    assert ev.boot_order.hex() == c["bootorder_0000"]
    assert ev.boot0000.hex() == c["boot0000_uiapp"]


def test_uefi_variable_data_matches_logged_payload(vectors):
    """The full dstack log carries the UEFI_VARIABLE_DATA payloads: ours are byte-identical."""
    events = parse_dstack_event_log((vectors / "measure/dstack/quote-report.json").read_bytes())
    drv = [e.payload for e in events if e.event_type == 0x80000001]
    assert drv == [
        uefi_variable_data("SecureBoot", "8be4df61-93ca-11d2-aa0d-00e098032b8c"),
        uefi_variable_data("PK", "8be4df61-93ca-11d2-aa0d-00e098032b8c"),
        uefi_variable_data("KEK", "8be4df61-93ca-11d2-aa0d-00e098032b8c"),
        uefi_variable_data("db", "d719b2cb-3d3a-4596-a3bc-dad00e67656f"),
        uefi_variable_data("dbx", "d719b2cb-3d3a-4596-a3bc-dad00e67656f"),
    ]
    boot = [e.payload for e in events if e.event_type == 0x80000002]
    assert boot[1] == uefi_variable_data("Boot0000", "8be4df61-93ca-11d2-aa0d-00e098032b8c",
                                         boot0000_uiapp())


@pytest.mark.parametrize("mib", [512, 640, 1024, 2048, 2064, 2560, 2624, 2688, 2815, 2816, 3072,
                                 4096, 5120, 8192, 16384])
def test_td_hob_oasis(expected, mib):
    layout = _sections(expected["selfmade_debian"]["ovmf_bookworm"]["tdvf_sections"])
    got = sha384(td_hob_from_sections(layout, mib << 20)).hex()
    assert got == expected["oasis_cli"]["td_hob"][str(mib)]


def test_acpi_oasis(vectors, expected):
    cases = [c for c in expected["oasis_cli"]["acpi"] if c["cpus"] in (1, 2)]
    assert len(cases) == 6
    for c in cases:
        d = acpi_digests(patch_pci_window(_template(vectors, c["cpus"]), c["memory_mib"] << 20))
        assert d.to_json() == {"loader": c["loader"], "rsdp": c["rsdp"], "tables": c["tables"]}


def test_cmdline_digests(expected):
    for c in expected["oasis_cli"]["cmdline"]:
        assert cmdline_digest(c["cmdline"]).hex() == c["sha384"]
    key = "cmdline_digest_console=ttyS0 loglevel=7 initrd=initrd"
    line = firmware_cmdline("console=ttyS0 loglevel=7", has_initrd=True)
    assert cmdline_digest(line).hex() == expected["selfmade_debian"]["kernel"][key]


def test_oasis_measure_log_replays(expected):
    for case in expected["oasis_cli"]["measure_log"]:
        assert replay(bytes.fromhex(d) for d in case["log"]).hex() == case["expected"]


def test_oasis_rtmr0_replay_is_rtmr0_of_its_parts(vectors, expected):
    """The 14-digest oasis log = our RTMR0 for 2815 MiB, cpu1 template, with the extra separator."""
    layout = _sections(expected["selfmade_debian"]["ovmf_bookworm"]["tdvf_sections"])
    case = expected["oasis_cli"]["measure_log"][2]
    ev = Rtmr0Events(
        td_hob=sha384(td_hob_from_sections(layout, 2815 << 20)),
        cfv=bytes.fromhex(expected["constants"]["cfv_empty_4m_varstore"]),
        acpi=acpi_digests(patch_pci_window(_template(vectors, 1), 2815 << 20)),
        extra_separator=True,
    )
    assert [d.hex() for d in ev.digests()] == case["log"]
    assert rtmr0(ev).hex() == case["expected"]


# ----------------------------------------------------------------- dstack TDX (real quotes)


def test_dstack_lite_quote(vectors, expected):
    """dstack-0.6.0 lite: every register of the hardware-signed quote from image digests."""
    doc = json.loads((vectors / "measure/dstack/tdx-lite-getquote.json").read_text())
    quote = _quote_regs(bytes.fromhex(doc["quote"]))
    cfg = json.loads(doc["vm_config"]) if isinstance(doc["vm_config"], str) else doc["vm_config"]
    m = cbor2.loads(base64.b64decode(cfg["tdx_measurement"]["measurement"]))
    # MRTD: QEMU 8.2.2 -> two-pass candidate
    assert m["tdvf"]["mrtd"]["two_pass"].hex() == quote["mr_td"]
    assert m["tdvf"]["mrtd"]["single_pass"].hex() != quote["mr_td"]
    # RTMR0: HOB from the witness for 2 GiB, constants, ACPI digests from the log
    events = parse_dstack_event_log(json.dumps(doc).encode())
    hob_gpa, ranges = decode_td_hob_witness(m["tdvf"]["td_hob"])
    assert hob_gpa == 0x809000 and ranges[-1] == (0x810000, 0x10000)
    acpi = [e.digest for e in events if e.imr == 0 and e.event_type == 0xA]
    ev = Rtmr0Events(
        td_hob=sha384(td_hob(hob_gpa, ranges, cfg["memory_size"])),
        cfv=bytes.fromhex(expected["constants"]["cfv_empty_4m_varstore"]),
        acpi=AcpiDigests(*acpi),
    )
    assert rtmr0(ev).hex() == quote["rtmr0"] == expected["dstack_tdx_lite"]["quote"]["rtmr0"]
    # RTMR1 / RTMR2 from the image digests
    img = m["image"]
    assert rtmr1(img["kernel_authenticode"]).hex() == quote["rtmr1"]
    assert rtmr2(img["cmdline_sha384"], img["initrd_sha384"]).hex() == quote["rtmr2"]
    # RTMR3: the log's runtime events have empty digests; recomputed from the payloads
    rep = replay_rtmr3(events)
    assert rep.rtmr3.hex() == quote["rtmr3"] == expected["dstack_tdx_lite"]["quote"]["rtmr3"]
    # MRCONFIGID (0x01 form) = compose-hash payload
    compose = next(e.payload for e in events if e.name == "compose-hash")
    mrconfigid = bytes.fromhex(doc["quote"])[232:280]
    assert mrconfigid == b"\x01" + compose + bytes(15)


def test_dstack_full_log(vectors, expected):
    doc = json.loads((vectors / "measure/dstack/quote-report.json").read_text())
    quote = _quote_regs(bytes.fromhex(doc["quote"]))
    events = parse_dstack_event_log((vectors / "measure/dstack/quote-report.json").read_bytes())
    regs = replay_registers(events)
    assert {f"rtmr{i}": regs[i].hex() for i in range(4)} == {
        k: v for k, v in quote.items() if k != "mr_td"
    }
    assert quote == {k: expected["dstack_tdx_full"]["quote"][k.replace("mr_td", "mrtd")]
                     for k in quote}
    # the first RTMR0 event is the TD HOB for 64 GiB with the 0x810000 layout (split above 4 GiB)
    layout = _sections(expected["selfmade_debian"]["ovmf_bookworm"]["tdvf_sections"])
    assert events[0].digest == sha384(td_hob_from_sections(layout, 64 << 30))
    # runtime events carry digests: each equals the V1 digest of its payload
    for e in events:
        if e.imr == 3:
            assert e.digest == runtime_event_digest(e.name, e.payload)


def test_rtmr0_from_scratch_tappd(vectors, expected):
    """RTMR0 of quote-from-tappd.hex recomputed from scratch: 0x811000 layout, 1 GiB, the Oasis
    cpu1 ACPI template patched for 1 GiB, empty 4 MiB varstore. The CCEL of that machine has the
    same component digests."""
    quote = _quote_regs(bytes.fromhex(
        (vectors / "tdx/dcap-qvl/quote-from-tappd.hex").read_text().strip()))
    layout = _sections(expected["selfmade_debian"]["ovmf_trixie"]["tdvf_sections"])
    ev = Rtmr0Events(
        td_hob=sha384(td_hob_from_sections(layout, 1 << 30)),
        cfv=bytes.fromhex(expected["constants"]["cfv_empty_4m_varstore"]),
        acpi=acpi_digests(patch_pci_window(_template(vectors, 1), 1 << 30)),
    )
    assert rtmr0(ev).hex() == quote["rtmr0"] == expected["ccel_tappd"]["rtmr0"]
    ccel = _ccel_events((vectors / "measure/dstack/ccel.bin").read_bytes())
    assert [d for idx, _, d, _ in ccel if idx == 1] == ev.digests()
    rtmr1_log = [d for idx, _, d, _ in ccel if idx == 2]
    assert rtmr1_log[1:] == [sha384(b"Calling EFI Application from Boot Option"),
                             separator_digest(), sha384(b"Exit Boot Services Invocation"),
                             sha384(b"Exit Boot Services Returned with Success")]


# ----------------------------------------------------------------- SecretVM


def test_secretvm_docs_sample_aggregates(expected):
    s = expected["secretvm_docs_sample"]
    b = {k: bytes.fromhex(s[k]) for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")}
    assert mr_aggregated(b["mrtd"], b["rtmr0"], b["rtmr1"], b["rtmr2"], b["rtmr3"]).hex() == \
        s["mr_aggregated"]
    assert mr_image(b["mrtd"], b["rtmr1"], b["rtmr2"], b["rtmr3"]).hex() == s["mr_image"]
    assert KEY_PROVIDER_NONE.hex().startswith("3369c4d3")


def test_secretvm_tdx_rtmr3_real_quote(vectors):
    d = vectors / "tdx/secretvm-verify"
    quote = _quote_regs((d / "tdx_cpu_docker_check_quote.bin").read_bytes())
    compose = (d / "tdx_cpu_docker_check_compose.yaml").read_bytes()
    rows = list(csv.DictReader((d / "tdx.csv").read_text().splitlines()))
    row = next(r for r in rows if (r["template_name"], r["vm_type"], r["artifacts_ver"])
               == ("small", "prod", "v0.0.25"))
    assert (row["mrtd"], row["rtmr0"], row["rtmr1"], row["rtmr2"]) == tuple(
        quote[k] for k in ("mr_td", "rtmr0", "rtmr1", "rtmr2"))
    assert secretvm_rtmr3(compose, bytes.fromhex(row["rootfs_data"])).hex() == quote["rtmr3"]
    # another rootfs or one changed compose byte gives another RTMR3
    other = next(r for r in rows if r["rootfs_data"] != row["rootfs_data"])
    assert secretvm_rtmr3(compose, bytes.fromhex(other["rootfs_data"])).hex() != quote["rtmr3"]
    assert secretvm_rtmr3(compose + b" ", bytes.fromhex(row["rootfs_data"])).hex() != \
        quote["rtmr3"]


def test_secretvm_snp_real_report(vectors):
    """SecretVM SEV-SNP: the compose hash is on the measured command line; 1 vCPU ('small')."""
    d = vectors / "snp/secretvm-verify"
    report = base64.b64decode((d / "amd_cpu_docker_check_quote.txt").read_text().strip())
    assert report[0x10:0x1E] == b"prod-small-sev"
    image_id = report[0x20:0x30].rstrip(b"#\0").decode()
    entry = next(e for e in json.loads((d / "sev.json").read_text())
                 if e["vm_type"] == "prod" and e["artifacts_ver"] == image_id)
    compose = (d / "amd_cpu_docker_check_compose.yaml").read_bytes()
    line = secretvm_snp_cmdline(compose, entry["rootfs_hash"])
    inputs = SnpLaunchInputs(
        ovmf_hash=bytes.fromhex(entry["ovmf_hash"]),
        sections=sections_from_json(entry["ovmf_sections"]),
        sev_es_reset_eip=entry["sev_es_reset_eip"],
        sev_hashes_table_gpa=entry["sev_hashes_table_gpa"],
        hashes=SevHashes(hashlib.sha256(line.encode() + b"\0").digest(),
                         bytes.fromhex(entry["initrd_hash"]), bytes.fromhex(entry["kernel_hash"])),
    )
    got = snp_measurement(inputs, vcpus=1, vcpu_sig=vcpu_signature(entry["vcpu_type"]))
    assert got == report[0x90:0xC0]
    assert snp_measurement(inputs, vcpus=2, vcpu_sig=vcpu_signature(entry["vcpu_type"])) != got


# ----------------------------------------------------------------- dstack SNP (real report)


def test_dstack_snp_real(vectors, expected):
    doc = json.loads((vectors / "measure/dstack/sev_snp_real_measurement_doc.json").read_text())
    report = (vectors / "measure/dstack/sev_snp_attestation.bin").read_bytes()[4 : 4 + 1184]
    inputs = SnpLaunchInputs(
        ovmf_hash=bytes.fromhex(doc["ovmf_hash"]),
        sections=sections_from_json(doc["ovmf_sections"]),
        sev_es_reset_eip=doc["sev_es_reset_eip"],
        sev_hashes_table_gpa=doc["sev_hashes_table_gpa"],
        hashes=SevHashes(hashlib.sha256(doc["base_cmdline"].encode() + b"\0").digest(),
                         bytes.fromhex(doc["initrd_hash"]), bytes.fromhex(doc["kernel_hash"])),
    )
    got = snp_measurement(inputs, vcpus=doc["vcpus"], vcpu_sig=vcpu_signature(doc["vcpu_type"]),
                          guest_features=doc["guest_features"])
    assert got.hex() == expected["dstack_snp_real"]["measurement"] == report[0x90:0xC0].hex()
    host_data = report[0xC0:0xE0]
    assert hashlib.sha256(got + host_data).hexdigest() == \
        expected["dstack_snp_real"]["mr_aggregated_sha256_measurement_hostdata"]


# ----------------------------------------------------------------- dstack SNP unit vectors


def _dstack_synthetic_ovmf() -> bytes:
    """The 4 KiB synthetic image of dstack-mr's sev.rs tests (inputs described there): SEV
    metadata at 512 with four sections and a zero size field, and a footer table whose SEV
    hashes-table entry holds only the GPA."""
    import uuid

    fw = bytearray(4096)
    fw[512:516] = b"ASEV"
    fw[520:524] = (1).to_bytes(4, "little")
    fw[524:528] = (4).to_bytes(4, "little")
    for i, (gpa, size, typ) in enumerate([(0x1000, 0x1000, 1), (0x2000, 0x1000, 2),
                                          (0x3000, 0x1000, 3), (0x4000, 0x1000, 0x10)]):
        o = 528 + 12 * i
        fw[o : o + 12] = b"".join(v.to_bytes(4, "little") for v in (gpa, size, typ))

    def entry(data: bytes, g: str) -> bytes:
        return data + (len(data) + 18).to_bytes(2, "little") + uuid.UUID(g).bytes_le

    table = (entry((0x4000).to_bytes(4, "little"), "7255371f-3a3b-4b04-927b-1da6efa8d454")
             + entry((0xFFFFFFF0).to_bytes(4, "little"), "00f771de-1a7e-4fcb-890e-68c77e2fb44e")
             + entry((4096 - 512).to_bytes(4, "little"), "dc886566-984a-4798-a75e-5585a7bf67cc"))
    end = 4096 - 32 - 18
    fw[end - len(table) : end] = table
    fw[end : end + 2] = (len(table) + 18).to_bytes(2, "little")
    fw[end + 2 : end + 18] = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
    return bytes(fw)


def test_dstack_snp_synthetic(expected):
    from atls.errors import EvidenceParseError
    from atls.measure import (
        ovmf_prehash,
        parse_sev_metadata,
        sev_es_reset_eip,
        sev_hashes_table_location,
    )
    from atls.measure.snp import _Gctx

    x = expected["dstack_snp_synthetic"]
    g = _Gctx()
    g.update(1, 0x1000, hashlib.sha384(b"page").digest())
    assert g.ld.hex() == x["gctx_update_page_0x1000_contents_sha384_page"]
    fw = _dstack_synthetic_ovmf()
    assert ovmf_prehash(fw).hex() == x["synthetic_4k_ovmf_prehash"]
    assert sev_hashes_table_location(fw) == (0x4000, None)
    assert sev_es_reset_eip(fw) == 0xFFFFFFF0
    with pytest.raises(EvidenceParseError) as e:  # atls is strict: the size field must fit
        parse_sev_metadata(fw)
    assert e.value.code == "measure.sev_metadata.length"
    line = "console=ttyS0 dstack.rootfs_hash=" + "33" * 32
    inputs = SnpLaunchInputs(
        ovmf_hash=bytes([0x44]) * 48,
        sections=sections_from_json([
            {"gpa": 0x100000, "size": 0x2000, "section_type": 1},
            {"gpa": 0x800000, "size": 0x1000, "section_type": 0x10},
            {"gpa": 0x810000, "size": 0x1000, "section_type": 2},
            {"gpa": 0x820000, "size": 0x1000, "section_type": 3},
        ]),
        sev_es_reset_eip=0xFFFFFFF0,
        sev_hashes_table_gpa=0x801000,
        hashes=SevHashes(hashlib.sha256(line.encode() + b"\0").digest(), bytes([0x66]) * 32,
                         bytes([0x55]) * 32),
    )
    got = snp_measurement(inputs, vcpus=2, vcpu_sig=vcpu_signature("EPYC-v4"))
    assert got.hex() == x["synthetic_measurement_valid_input"]


def test_secretvm_docs_sample_rtmr0(expected):
    """RTMR0 b6941a8c... of the SecretVM documentation sample: 1 vCPU, 2 GiB, 0x811000 layout,
    reproduce-mr's template_qemu_cpu1.hex (not redistributable: no licence, so not in the
    vector folder; point ATLS_SECRETVM_TEMPLATE at a copy to run this)."""
    import os
    from pathlib import Path

    path = os.environ.get("ATLS_SECRETVM_TEMPLATE")
    if not path or not Path(path).is_file():
        pytest.skip("needs scrtlabs/reproduce-mr internal/template_qemu_cpu1.hex "
                    "(set ATLS_SECRETVM_TEMPLATE)")
    tables = bytes.fromhex(Path(path).read_text().strip())
    layout = _sections(expected["selfmade_debian"]["ovmf_trixie"]["tdvf_sections"])
    ev = Rtmr0Events(
        td_hob=sha384(td_hob_from_sections(layout, 2 << 30)),
        cfv=bytes.fromhex(expected["constants"]["cfv_empty_4m_varstore"]),
        acpi=acpi_digests(patch_pci_window(tables, 2 << 30)),
    )
    assert rtmr0(ev).hex() == expected["secretvm_docs_sample"]["rtmr0"]
