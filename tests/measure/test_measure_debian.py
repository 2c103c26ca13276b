"""End-to-end vectors from Debian's own packages (selfmade_debian in measure/expected.json).

Files are found by SHA-256 (the values in expected.json) under the installed paths
(``/usr/share/ovmf/OVMF.fd``, ``/boot/vmlinuz-6.1.0-56-cloud-amd64``) and under
``$ATLS_DEBIAN_DIR`` (default ``/opt/atls-debian``), where CI extracts the packages:

* ``ovmf`` 2022.11-6+deb12u2 (Debian 12): ``usr/share/ovmf/OVMF.fd``
* ``ovmf`` 2025.02-8+deb13u1 (Debian 13): ``usr/share/ovmf/OVMF.fd``
* ``linux-image-6.1.0-56-cloud-amd64`` 6.1.192-2 (Debian 12):
  ``boot/vmlinuz-6.1.0-56-cloud-amd64``

Each test skips with the missing package's name when its file is absent.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from atls.measure import (
    authenticode_digest,
    cfv_digest,
    measure_tdx,
    mrtd,
    parse_sev_metadata,
    parse_tdvf_metadata,
    qemu_patch_kernel,
    rtmr1,
    sev_es_reset_eip,
    sev_hashes_table_location,
    snp_inputs_from_ovmf,
    snp_measurement,
    td_hob_from_sections,
    vcpu_signature,
)
from atls.measure._common import sha384

pytestmark = pytest.mark.vectors

_PACKAGES = {
    "ovmf_bookworm": "Debian package ovmf 2022.11-6+deb12u2 (/usr/share/ovmf/OVMF.fd)",
    "ovmf_trixie": "Debian package ovmf 2025.02-8+deb13u1 (usr/share/ovmf/OVMF.fd extracted "
    "under $ATLS_DEBIAN_DIR)",
    "kernel": "Debian package linux-image-6.1.0-56-cloud-amd64 6.1.192-2 "
    "(/boot/vmlinuz-6.1.0-56-cloud-amd64)",
}
_NAMES = ("OVMF.fd", "vmlinuz-6.1.0-56-cloud-amd64")


@functools.cache
def _candidates() -> dict[str, Path]:
    """SHA-256 -> path of every candidate file."""
    roots = [Path("/")]
    extra = Path(os.environ.get("ATLS_DEBIAN_DIR", "/opt/atls-debian"))
    if extra.is_dir():
        roots += [extra, *sorted(p for p in extra.iterdir() if p.is_dir())]
    found: dict[str, Path] = {}
    for root in roots:
        for rel in ("usr/share/ovmf/OVMF.fd", "boot/vmlinuz-6.1.0-56-cloud-amd64"):
            p = root / rel
            if p.is_file():
                found.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), p)
    return found


@pytest.fixture(scope="module")
def debian(vectors):
    return json.loads((vectors / "measure" / "expected.json").read_text())["selfmade_debian"]


@functools.cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


def artifact(debian, key: str) -> bytes:
    path = _candidates().get(debian[key]["sha256"])
    if path is None:
        pytest.skip(f"needs {_PACKAGES[key]}")
    return _read(path)


def _shake_initrd(debian) -> bytes:
    data = hashlib.shake_256(b"atls test initrd").digest(3_000_000)
    assert hashlib.sha384(data).hexdigest() == debian["kernel"]["initrd_sha384"]
    assert hashlib.sha256(data).hexdigest() == debian["kernel"]["initrd_sha256"]
    return data


@pytest.mark.parametrize("key", ["ovmf_bookworm", "ovmf_trixie"])
def test_tdx_firmware(debian, key):
    fw = artifact(debian, key)
    x = debian[key]
    sections = parse_tdvf_metadata(fw)
    assert [s.to_json() for s in sections] == x["tdvf_sections"]
    assert mrtd(fw, sections, page_order="two-pass").hex() == x["mrtd_two_pass"]
    assert mrtd(fw, sections, page_order="single-pass").hex() == x["mrtd_single_pass"]
    assert cfv_digest(fw, sections).hex() == x["cfv_sha384"]
    assert sha384(td_hob_from_sections(sections, 2 << 30)).hex() == x["td_hob_2g"]


@pytest.mark.parametrize("key", ["ovmf_bookworm", "ovmf_trixie"])
def test_snp_firmware(debian, key):
    fw = artifact(debian, key)
    x = debian[key]
    assert [s.to_json() for s in parse_sev_metadata(fw)] == x["snp_metadata"]["sections"]
    assert hex(sev_es_reset_eip(fw)) == x["snp_metadata"]["sev_es_reset_eip"]
    assert sev_hashes_table_location(fw) is None  # OvmfPkgX64: no measured direct boot
    inputs = snp_inputs_from_ovmf(fw)
    assert inputs.ovmf_hash.hex() == x["snp_ovmf_prehash"]
    sig = vcpu_signature("EPYC-v4")
    for name, vcpus, features in (("snp_1vcpu_0x1", 1, 1), ("snp_4vcpu_0x1", 4, 1),
                                  ("snp_1vcpu_0x21", 1, 0x21)):
        got = snp_measurement(inputs, vcpus=vcpus, vcpu_sig=sig, guest_features=features)
        assert got.hex() == x[name], name


@pytest.mark.parametrize("key", ["ovmf_bookworm", "ovmf_trixie"])
@pytest.mark.parametrize("vmm", ["ec2", "gce"])
def test_snp_firmware_other_vmms_match_sev_snp_measure(debian, key, vmm, tmp_path):
    guest = pytest.importorskip("sevsnpmeasure.guest")
    from sevsnpmeasure.sev_mode import SevMode
    from sevsnpmeasure.vmm_types import VMMType

    from atls.measure import VmmType

    fw = artifact(debian, key)
    p = tmp_path / "OVMF.fd"
    p.write_bytes(fw)
    sig = vcpu_signature("EPYC-Milan")
    want = guest.calc_launch_digest(SevMode.SEV_SNP, 3, sig, str(p), None, None, None, 1, "",
                                    VMMType[vmm])
    got = snp_measurement(snp_inputs_from_ovmf(fw), vcpus=3, vcpu_sig=sig, vmm=VmmType.parse(vmm))
    assert got == want


def test_kernel_authenticode(debian):
    k = artifact(debian, "kernel")
    x = debian["kernel"]
    assert hex(int.from_bytes(k[0x206:0x208], "little")) == x["boot_protocol"]
    assert authenticode_digest(k).hex() == x["authenticode_sha384_raw"]
    initrd = _shake_initrd(debian)
    for mem, name in ((2 << 30, "authenticode_patched_initrd3M_2g"),
                      (1 << 30, "authenticode_patched_initrd3M_1g")):
        patched = qemu_patch_kernel(k, initrd_size=len(initrd), memory_size=mem)
        assert authenticode_digest(patched).hex() == x[name]
    # RAM matters only below 2.75 GiB: 2 GiB and 3/64 GiB give the same patched header
    two = qemu_patch_kernel(k, initrd_size=len(initrd), memory_size=2 << 30)
    for mem in (3 << 30, 64 << 30):
        assert qemu_patch_kernel(k, initrd_size=len(initrd), memory_size=mem) == two
    assert qemu_patch_kernel(k, initrd_size=len(initrd), memory_size=2560 << 20) != two


def test_measure_tdx_end_to_end(debian):
    """measure_tdx over the Debian firmware and kernel, QEMU 8.2 (two-pass, patched header) and
    QEMU 10.2 (single-pass, raw kernel)."""
    fw = artifact(debian, "ovmf_trixie")
    k = artifact(debian, "kernel")
    initrd = _shake_initrd(debian)
    x = debian["kernel"]
    old = measure_tdx(firmware=fw, qemu_version=(8, 2), memory_size=2 << 30, kernel=k,
                      initrd=initrd, append="console=ttyS0 loglevel=7")
    assert old.claims["mr_td"] == debian["ovmf_trixie"]["mrtd_two_pass"]
    patched = bytes.fromhex(x["authenticode_patched_initrd3M_2g"])
    assert old.claims["rtmr1"] == rtmr1(patched).hex()
    assert old.components["cmdline_sha384"] == \
        x["cmdline_digest_console=ttyS0 loglevel=7 initrd=initrd"]
    assert old.components["initrd_sha384"] == x["initrd_sha384"]
    new = measure_tdx(firmware=fw, qemu_version=(10, 2), memory_size=2 << 30, kernel=k,
                      initrd=initrd, append="console=ttyS0 loglevel=7")
    assert new.claims["mr_td"] == debian["ovmf_trixie"]["mrtd_single_pass"]
    assert new.claims["rtmr1"] == rtmr1(bytes.fromhex(x["authenticode_sha384_raw"])).hex()
    assert new.claims["rtmr2"] == old.claims["rtmr2"]
    # without a QEMU version: MRTD and RTMR1 are candidates, RTMR2 is determined
    unk = measure_tdx(firmware=fw, memory_size=2 << 30, kernel=k, initrd=initrd,
                      append="console=ttyS0 loglevel=7")
    assert "mr_td" not in unk.claims and "rtmr1" not in unk.claims
    assert unk.candidates["rtmr1"] == {"qemu>=10.2": new.claims["rtmr1"],
                                       "qemu<=10.1": old.claims["rtmr1"]}
    assert unk.claims["rtmr2"] == old.claims["rtmr2"]


def test_timing_real_firmware_and_kernel(debian):
    """A real 4 MiB OVMF + 14 MB kernel: MRTD, RTMR1 (patched) and RTMR2 well under a second."""
    fw = artifact(debian, "ovmf_trixie")
    k = artifact(debian, "kernel")
    initrd = _shake_initrd(debian)
    t = time.perf_counter()
    res = measure_tdx(firmware=fw, page_order="single-pass", qemu_version=(8, 2),
                      memory_size=2 << 30, kernel=k, initrd=initrd, append="console=ttyS0")
    elapsed = time.perf_counter() - t
    assert {"mr_td", "rtmr1", "rtmr2"} <= set(res.claims)
    assert elapsed < 5.0


_AMDSEV_SUFFIX_SHA256 = "8f765dfabc127fc0a938a0744a3103ec15864d7d794eb4c398aa976b6d6ab16c"


def _amdsev_suffix(vectors) -> bytes:
    """sev-snp-measure's tests/fixtures/ovmf_AmdSev_suffix.bin (4 KiB tail of an AmdSevX64
    build, Apache-2.0): looked up in $ATLS_AMDSEV_SUFFIX, $ATLS_DEBIAN_DIR or the vectors."""
    places = [os.environ.get("ATLS_AMDSEV_SUFFIX", ""),
              str(Path(os.environ.get("ATLS_DEBIAN_DIR", "/opt/atls-debian"))
                  / "ovmf_AmdSev_suffix.bin"),
              str(vectors / "snp" / "sev-snp-measure" / "ovmf_AmdSev_suffix.bin"),
              str(vectors / "measure" / "sev-snp-measure" / "ovmf_AmdSev_suffix.bin")]
    for p in places:
        if p and Path(p).is_file():
            data = Path(p).read_bytes()
            if hashlib.sha256(data).hexdigest() == _AMDSEV_SUFFIX_SHA256:
                return data
    pytest.skip("needs sev-snp-measure's tests/fixtures/ovmf_AmdSev_suffix.bin "
                "(set ATLS_AMDSEV_SUFFIX)")


def test_snp_kernel_hashes_with_amdsev_metadata(debian, vectors):
    """selfmade_debian.kernel.snp_kernel_hashes_2vcpu: AmdSevX64 metadata + trixie pre-hash +
    Debian kernel + the shake initrd, 2 vCPUs EPYC-v4 (oracle: sev-snp-measure 0.0.13)."""
    from atls.measure import SevHashes

    suffix = _amdsev_suffix(vectors)
    k = artifact(debian, "kernel")
    initrd = _shake_initrd(debian)
    assert sev_hashes_table_location(suffix) == (0x810C00, 0x400)
    inputs = snp_inputs_from_ovmf(
        suffix, ovmf_hash=bytes.fromhex(debian["ovmf_trixie"]["snp_ovmf_prehash"]),
        hashes=SevHashes.from_artifacts(k, initrd, "console=ttyS0 loglevel=7"))
    got = snp_measurement(inputs, vcpus=2, vcpu_sig=vcpu_signature("EPYC-v4"))
    assert got.hex() == debian["kernel"]["snp_kernel_hashes_2vcpu"]
