"""SEV-SNP launch digests cross-checked against sev-snp-measure (PyPI, independent oracle).

The firmware here is synthetic but well-formed: an OVMF footer table with the SEV metadata
(including an SNP_KERNEL_HASHES section, as in the AmdSevX64 build), the SEV-ES reset block and
the SEV hashes-table GPA, so the kernel-hashes path (measured direct boot) is exercised without
an AmdSevX64 image. Both implementations read the same bytes.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest

from atls.measure import (
    SevHashes,
    VmmType,
    snp_inputs_from_ovmf,
    snp_measurement,
    vcpu_signature,
)

guest = pytest.importorskip("sevsnpmeasure.guest", reason="sev-snp-measure (test oracle) missing")
from sevsnpmeasure.sev_mode import SevMode  # noqa: E402
from sevsnpmeasure.vmm_types import VMMType  # noqa: E402

FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"
SEV_META = "dc886566-984a-4798-a75e-5585a7bf67cc"
RESET = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
HASHES = "7255371f-3a3b-4b04-927b-1da6efa8d454"


def _table(entries: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(
        data + (len(data) + 18).to_bytes(2, "little") + uuid.UUID(g).bytes_le
        for g, data in entries
    )
    return body + (len(body) + 18).to_bytes(2, "little") + uuid.UUID(FOOTER).bytes_le


def synthetic_ovmf(size: int = 64 * 1024, *, kernel_hashes: bool = True, seed: bytes = b"x",
                   reset_eip: int = 0x80B004, table_gpa: int = 0x80FC00) -> bytes:
    """An OVMF-like image with an AmdSevX64-like SEV metadata table and footer."""
    fw = bytearray(hashlib.shake_256(seed).digest(size))
    sections = [(0x800000, 0x9000, 1), (0x80A000, 0x3000, 1), (0x80D000, 0x1000, 2),
                (0x80E000, 0x1000, 3)]
    if kernel_hashes:
        sections.append((0x80F000, 0x1000, 0x10))
    sections.append((0x810000, 0x10000, 1))
    meta = b"ASEV" + (16 + 12 * len(sections)).to_bytes(4, "little") + (1).to_bytes(4, "little")
    meta += len(sections).to_bytes(4, "little")
    meta += b"".join(g.to_bytes(4, "little") + s.to_bytes(4, "little") + t.to_bytes(4, "little")
                     for g, s, t in sections)
    meta_off = size - 0x1000
    fw[meta_off : meta_off + len(meta)] = meta
    table = _table([
        (SEV_META, (size - meta_off).to_bytes(4, "little")),
        (RESET, reset_eip.to_bytes(4, "little")),
        (HASHES, (table_gpa if kernel_hashes else 0).to_bytes(4, "little")
         + (0x400).to_bytes(4, "little")),
    ])
    fw[size - 32 - len(table) : size - 32] = table
    return bytes(fw)


def _oracle(tmp_path, fw: bytes, *, vcpus: int, vcpu_type: str, features: int, vmm: VMMType,
            kernel: bytes | None = None, initrd: bytes | None = None,
            append: str | None = None) -> bytes:
    ovmf = tmp_path / "ovmf.fd"
    ovmf.write_bytes(fw)
    kpath = ipath = None
    if kernel is not None:
        kpath = tmp_path / "kernel"
        kpath.write_bytes(kernel)
    if initrd is not None:
        ipath = tmp_path / "initrd"
        ipath.write_bytes(initrd)
    return guest.calc_launch_digest(
        SevMode.SEV_SNP, vcpus, vcpu_signature(vcpu_type), str(ovmf),
        str(kpath) if kpath else None, str(ipath) if ipath else None, append, features, "",
        vmm,
    )


_VMM = {VmmType.QEMU: VMMType.QEMU, VmmType.EC2: VMMType.ec2, VmmType.GCE: VMMType.gce}


@pytest.mark.parametrize("vmm", list(VmmType))
@pytest.mark.parametrize(("vcpus", "vcpu_type", "features"),
                         [(1, "EPYC-v4", 0x1), (3, "EPYC-Milan", 0x21), (2, "EPYC-Genoa", 0x1)])
def test_direct_boot_matches_oracle(tmp_path, vmm, vcpus, vcpu_type, features):
    fw = synthetic_ovmf()
    kernel = hashlib.shake_256(b"kernel").digest(50_000)
    initrd = hashlib.shake_256(b"initrd").digest(30_000)
    append = "console=ttyS0 root=/dev/vda"
    want = _oracle(tmp_path, fw, vcpus=vcpus, vcpu_type=vcpu_type, features=features,
                   vmm=_VMM[vmm], kernel=kernel, initrd=initrd, append=append)
    inputs = snp_inputs_from_ovmf(fw, hashes=SevHashes.from_artifacts(kernel, initrd, append))
    got = snp_measurement(inputs, vcpus=vcpus, vcpu_sig=vcpu_signature(vcpu_type),
                          guest_features=features, vmm=vmm)
    assert got == want


@pytest.mark.parametrize(("initrd", "append"), [(None, None), (None, "quiet"), (b"rd", None)])
def test_optional_initrd_and_cmdline_match_oracle(tmp_path, initrd, append):
    fw = synthetic_ovmf(seed=b"y")
    kernel = b"MZ" + bytes(5000)
    want = _oracle(tmp_path, fw, vcpus=2, vcpu_type="EPYC", features=1, vmm=VMMType.QEMU,
                   kernel=kernel, initrd=initrd, append=append)
    hashes = SevHashes.from_artifacts(kernel, initrd, append or "")
    got = snp_measurement(snp_inputs_from_ovmf(fw, hashes=hashes), vcpus=2,
                          vcpu_sig=vcpu_signature("EPYC"))
    assert got == want


def test_no_kernel_matches_oracle(tmp_path):
    for kh in (True, False):
        fw = synthetic_ovmf(kernel_hashes=kh, seed=b"z")
        want = _oracle(tmp_path, fw, vcpus=4, vcpu_type="EPYC-v4", features=1, vmm=VMMType.QEMU)
        got = snp_measurement(snp_inputs_from_ovmf(fw), vcpus=4, vcpu_sig=vcpu_signature("EPYC-v4"))
        assert got == want


def test_prehash_path_equals_full_path(tmp_path):
    fw = synthetic_ovmf(seed=b"p")
    full = snp_inputs_from_ovmf(fw)
    pre = snp_inputs_from_ovmf(fw, ovmf_hash=full.ovmf_hash)
    assert snp_measurement(full, vcpus=1, vcpu_sig=1) == snp_measurement(pre, vcpus=1, vcpu_sig=1)
