"""SecretVM (SCRT Labs): RTMR3 from the compose file and rootfs, and the derived identifiers
MR_AGGREGATED and MR_IMAGE (measurement-algorithms.md 7, 8; interop-formats.md 4.3)."""

from __future__ import annotations

from atls.measure._common import SHA384_ZERO, extend, require_digest, sha256

__all__ = [
    "KEY_PROVIDER_NONE",
    "mr_aggregated",
    "mr_image",
    "secretvm_rtmr3",
    "secretvm_snp_cmdline",
]

#: ``mrkp`` of the ``none`` key provider: SHA-256 of ``{"name":"none","id":""}``.
KEY_PROVIDER_NONE = sha256(b'{"name":"none","id":""}')


def _entry(digest32: bytes) -> bytes:
    return digest32 + bytes(16)


def secretvm_rtmr3(
    compose: bytes, rootfs_digest: bytes, *, docker_files_digest: bytes | None = None
) -> bytes:
    """RTMR3 = replay of SHA-256(compose), the rootfs SHA-256 (``rootfs_data``) and, when
    present, SHA-256 of the docker files, each right-padded with 16 zero bytes."""
    require_digest(rootfs_digest, 32, "rootfs digest")
    reg = extend(SHA384_ZERO, _entry(sha256(compose)))
    reg = extend(reg, _entry(rootfs_digest))
    if docker_files_digest is not None:
        reg = extend(reg, _entry(require_digest(docker_files_digest, 32, "docker files digest")))
    return reg


def mr_aggregated(
    mrtd: bytes,
    rtmr0: bytes,
    rtmr1: bytes,
    rtmr2: bytes,
    rtmr3: bytes,
    key_provider: bytes = bytes(32),
) -> bytes:
    """``SHA-256(MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3 || mrkp)``; ``mrkp`` defaults to 32
    zero bytes (no key provider)."""
    regs = [require_digest(r, 48, n) for r, n in
            ((mrtd, "MRTD"), (rtmr0, "RTMR0"), (rtmr1, "RTMR1"), (rtmr2, "RTMR2"),
             (rtmr3, "RTMR3"))]
    return sha256(b"".join(regs) + require_digest(key_provider, 32, "key provider digest"))


def mr_image(mrtd: bytes, rtmr1: bytes, rtmr2: bytes, rtmr3: bytes) -> bytes:
    """``SHA-256(MRTD || RTMR1 || RTMR2 || RTMR3)``."""
    regs = [require_digest(r, 48, n) for r, n in
            ((mrtd, "MRTD"), (rtmr1, "RTMR1"), (rtmr2, "RTMR2"), (rtmr3, "RTMR3"))]
    return sha256(b"".join(regs))


def secretvm_snp_cmdline(
    compose: bytes,
    rootfs_hash: str,
    *,
    cmdline_extra: str = "",
    docker_files_digest: bytes | None = None,
) -> str:
    """The kernel command line SecretVM measures on SEV-SNP (compose hash and rootfs hash in it):
    ``console=ttyS0 loglevel=7 [extra] docker_compose_hash=<hex> rootfs_hash=<hex>
    [docker_additional_files_hash=<hex>]``."""
    prefix = "console=ttyS0 loglevel=7" + (f" {cmdline_extra}" if cmdline_extra else "")
    line = f"{prefix} docker_compose_hash={sha256(compose).hex()} rootfs_hash={rootfs_hash}"
    if docker_files_digest is not None:
        d = require_digest(docker_files_digest, 32, "docker files digest")
        line += f" docker_additional_files_hash={d.hex()}"
    return line
