"""A policy section that pins what one verified piece of evidence showed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atls.evidence import Verified

__all__ = ["pin_claims"]

_PINNED = {
    "snp": ("measurement", "host_data", "id_key_digest", "author_key_digest"),
    "tdx": (
        "mr_td",
        "rtmr0",
        "rtmr1",
        "rtmr2",
        "rtmr3",
        "mr_seam",
        "mr_config_id",
        "mr_owner",
        "mr_owner_config",
    ),
    "sgx": ("mr_enclave", "mr_signer"),
}


def _nonzero(v: Any) -> bool:
    return isinstance(v, str) and bool(v) and set(v) != {"0"}


def pin_claims(verified: Verified) -> dict[str, dict[str, Any]]:
    """``{platform: section}`` pinning the measurements of ``verified`` (zero values skipped
    except the main measurement)."""
    c = verified.claims
    section: dict[str, Any] = {}
    for i, key in enumerate(_PINNED.get(verified.platform, ())):
        v = c.get(key)
        if isinstance(v, str) and (i == 0 or _nonzero(v)):
            section[key] = v
    if verified.platform == "snp":
        if isinstance(c.get("product"), str):
            section["products"] = [c["product"]]
        tcb = c.get("reported_tcb")
        if isinstance(tcb, Mapping):
            section["minimum_tcb"] = {k: int(v) for k, v in tcb.items() if isinstance(v, int)}
        if isinstance(c.get("vmpl"), int):
            section["vmpl"] = [c["vmpl"]]
    elif verified.platform in ("tdx", "sgx"):
        if verified.tcb_status:
            section["allowed_tcb_status"] = [verified.tcb_status]
        if verified.platform == "tdx" and isinstance(c.get("sept_ve_disable"), bool):
            section["sept_ve_disable"] = c["sept_ve_disable"]
    elif verified.platform == "tpm":
        pcrs = c.get("pcrs")
        if isinstance(pcrs, Mapping):
            section["pcrs"] = {
                bank: {str(k): v for k, v in regs.items()}
                for bank, regs in pcrs.items()
                if isinstance(regs, Mapping)
            }
    if verified.debug:
        section["allow_debug"] = True
    return {verified.platform: section}
