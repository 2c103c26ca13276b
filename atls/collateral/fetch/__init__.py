"""Collateral fetchers at the edge: Intel PCS / any PCCS, and AMD KDS; blocking and async.

These are the only parts of :mod:`atls.collateral` that touch the network. They are never
called from a verifier or a TLS callback: fetch (or load) collateral first, then hand the
:class:`~atls.collateral.Collateral` to the verifier.

Quick use::

    from atls.collateral.fetch import fetch_intel, fetch_amd

    coll = fetch_intel(fmspc="50806f000000", ca="platform", tee="tdx")
    coll = fetch_amd(product="Milan", chip_id=chip_id, tcb=reported_tcb)

or, to reuse connections and configure everything once, :class:`CollateralFetcher` /
:class:`AsyncCollateralFetcher`. Responses are cached on disk (:mod:`atls.collateral.cache`)
and served from there while their own validity windows last; see that module for the
freshness and ``allow_stale_for`` rules.
"""

from __future__ import annotations

import datetime as _dt

from atls.collateral import Collateral
from atls.collateral.cache import CollateralCache
from atls.collateral.fetch._amd import AMD_KDS_URL, PRODUCTS, SnpTcb
from atls.collateral.fetch._client import (
    AsyncCollateralFetcher,
    CollateralFetcher,
    Progress,
    TcbArg,
)
from atls.collateral.fetch._dir import read_collateral_dir, write_collateral_dir
from atls.collateral.fetch._evidence import (
    AmdRequest,
    IntelRequest,
    request_for_evidence,
)
from atls.collateral.fetch._http import MAX_BODY, RetryPolicy, TlsVerify
from atls.collateral.fetch._intel import INTEL_PCS_URL, INTEL_ROOT_CA_CRL_URL, INTEL_ROOT_CA_URL

__all__ = [
    "AMD_KDS_URL",
    "INTEL_PCS_URL",
    "INTEL_ROOT_CA_CRL_URL",
    "INTEL_ROOT_CA_URL",
    "MAX_BODY",
    "PRODUCTS",
    "AmdRequest",
    "AsyncCollateralFetcher",
    "CollateralFetcher",
    "IntelRequest",
    "Progress",
    "RetryPolicy",
    "SnpTcb",
    "TcbArg",
    "TlsVerify",
    "collateral_for_evidence",
    "collateral_for_evidence_async",
    "fetch_amd",
    "fetch_amd_async",
    "fetch_amd_vcek",
    "fetch_amd_vcek_async",
    "fetch_intel",
    "fetch_intel_async",
    "read_collateral_dir",
    "request_for_evidence",
    "write_collateral_dir",
]


def fetch_intel(
    *,
    fmspc: str | bytes,
    ca: str,
    tee: str = "tdx",
    pce_id: str | bytes | None = None,
    update: str | None = None,
    pcs_url: str | None = None,
    root_ca_crl_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    """TCB info + QE identity (with issuer chains), PCK CRL and root CA CRL for one platform.

    ``fmspc``, ``ca`` ("platform"/"processor") and ``pce_id`` come from the quote's PCK
    certificate; ``tee`` is "tdx" or "sgx".
    """
    with CollateralFetcher(
        pcs_url=pcs_url, root_ca_crl_url=root_ca_crl_url, cache=cache, verify=verify
    ) as f:
        return f.fetch_intel(
            fmspc=fmspc,
            ca=ca,
            tee=tee,
            pce_id=pce_id,
            update=update,
            at=at,
            allow_stale_for=allow_stale_for,
        )


async def fetch_intel_async(
    *,
    fmspc: str | bytes,
    ca: str,
    tee: str = "tdx",
    pce_id: str | bytes | None = None,
    update: str | None = None,
    pcs_url: str | None = None,
    root_ca_crl_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    async with AsyncCollateralFetcher(
        pcs_url=pcs_url, root_ca_crl_url=root_ca_crl_url, cache=cache, verify=verify
    ) as f:
        return await f.fetch_intel(
            fmspc=fmspc,
            ca=ca,
            tee=tee,
            pce_id=pce_id,
            update=update,
            at=at,
            allow_stale_for=allow_stale_for,
        )


def fetch_amd_vcek(
    *,
    product: str,
    chip_id: bytes | str,
    tcb: TcbArg,
    kds_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    """The VCEK of one chip (CHIP_ID; Turin: its first 8 bytes) at one reported TCB."""
    with CollateralFetcher(kds_url=kds_url, cache=cache, verify=verify) as f:
        return f.fetch_amd_vcek(
            product=product, chip_id=chip_id, tcb=tcb, at=at, allow_stale_for=allow_stale_for
        )


async def fetch_amd_vcek_async(
    *,
    product: str,
    chip_id: bytes | str,
    tcb: TcbArg,
    kds_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    async with AsyncCollateralFetcher(kds_url=kds_url, cache=cache, verify=verify) as f:
        return await f.fetch_amd_vcek(
            product=product, chip_id=chip_id, tcb=tcb, at=at, allow_stale_for=allow_stale_for
        )


def fetch_amd(
    *,
    product: str,
    chip_id: bytes | str | None = None,
    tcb: TcbArg | None = None,
    key: str = "vcek",
    kds_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    """VCEK + ASK/ARK chain + CRL (``key="vlek"``: ASVK/ARK chain + CRL only)."""
    with CollateralFetcher(kds_url=kds_url, cache=cache, verify=verify) as f:
        return f.fetch_amd(
            product=product,
            chip_id=chip_id,
            tcb=tcb,
            key=key,
            at=at,
            allow_stale_for=allow_stale_for,
        )


async def fetch_amd_async(
    *,
    product: str,
    chip_id: bytes | str | None = None,
    tcb: TcbArg | None = None,
    key: str = "vcek",
    kds_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    async with AsyncCollateralFetcher(kds_url=kds_url, cache=cache, verify=verify) as f:
        return await f.fetch_amd(
            product=product,
            chip_id=chip_id,
            tcb=tcb,
            key=key,
            at=at,
            allow_stale_for=allow_stale_for,
        )


def collateral_for_evidence(
    evidence: bytes,
    *,
    pcs_url: str | None = None,
    kds_url: str | None = None,
    root_ca_crl_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    """Fetch what a TDX/SGX quote or an SNP report needs (see :func:`request_for_evidence`)."""
    with CollateralFetcher(
        pcs_url=pcs_url,
        kds_url=kds_url,
        root_ca_crl_url=root_ca_crl_url,
        cache=cache,
        verify=verify,
    ) as f:
        return f.collateral_for_evidence(evidence, at=at, allow_stale_for=allow_stale_for)


async def collateral_for_evidence_async(
    evidence: bytes,
    *,
    pcs_url: str | None = None,
    kds_url: str | None = None,
    root_ca_crl_url: str | None = None,
    cache: CollateralCache | bool = True,
    verify: TlsVerify = None,
    at: _dt.datetime | None = None,
    allow_stale_for: _dt.timedelta | None = None,
) -> Collateral:
    async with AsyncCollateralFetcher(
        pcs_url=pcs_url,
        kds_url=kds_url,
        root_ca_crl_url=root_ca_crl_url,
        cache=cache,
        verify=verify,
    ) as f:
        return await f.collateral_for_evidence(evidence, at=at, allow_stale_for=allow_stale_for)
