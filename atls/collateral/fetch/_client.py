"""The fetchers: Intel PCS/PCCS and AMD KDS, blocking and async, with the on-disk cache.

Every public method returns :class:`~atls.collateral.Collateral`. Each response is looked up
in the cache first (fresh entry: no request), fetched otherwise, and a failed refetch of an
expired entry raises :class:`CollateralUnavailableError` unless ``allow_stale_for`` (keyword-
only) admits the stale copy. ``Collateral.sources`` names where every part came from:
``<url>`` (fetched now), ``cache:<url>``, or, for expired collateral admitted by
``allow_stale_for``, ``stale-cache:<url> (...)`` / ``stale:<url> (...)`` (the latter when the
vendor itself served already-expired content).

Never call these from a verifier or a TLS callback: fetch first, then verify with the result.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import httpx

from atls.collateral import Collateral
from atls.collateral.cache import (
    CacheEntry,
    CollateralCache,
    Freshness,
    check_allow_stale_for,
    freshness,
)
from atls.collateral.fetch._amd import (
    SnpTcb,
    amd_base,
    cert_chain_spec,
    crl_spec,
    hwid_for,
    norm_key,
    norm_product,
    vcek_spec,
)
from atls.collateral.fetch._http import (
    AsyncTransport,
    HttpResult,
    RetryPolicy,
    SyncTransport,
    TlsVerify,
    _anyio_sleep,
)
from atls.collateral.fetch._intel import (
    intel_base,
    norm_ca,
    norm_fmspc,
    norm_pce_id,
    norm_tee,
    pck_crl_spec,
    qe_identity_spec,
    root_ca_crl_spec,
    tcb_info_spec,
)
from atls.collateral.fetch._spec import Piece, Spec
from atls.errors import CollateralUnavailableError, ConfigurationError

__all__ = ["AsyncCollateralFetcher", "CollateralFetcher", "Progress", "TcbArg"]

log = logging.getLogger("atls.collateral.fetch")

#: ``progress(what, event)``; event is one of "cache", "fetching", "fetched", "stale", "failed".
Progress = Callable[[str, str], None]
#: An SNP TCB as components, its 8 raw little-endian bytes, or the u64.
TcbArg = SnpTcb | bytes | int


def _now(at: _dt.datetime | None) -> _dt.datetime:
    if at is None:
        return _dt.datetime.now(_dt.UTC)
    if at.tzinfo is None:
        raise ConfigurationError("at must be timezone-aware", code="usage.at")
    return at


def _with_source(c: Collateral, source: str) -> Collateral:
    return Collateral(c.certificates, c.crls, c.documents, (source,))


def _as_result(entry: CacheEntry) -> HttpResult:
    return HttpResult(entry.url, entry.status, dict(entry.headers), entry.body, entry.fetched_at)


def _tcb(tcb: TcbArg, product: str) -> SnpTcb:
    if isinstance(tcb, SnpTcb):
        return tcb
    if isinstance(tcb, bytes | bytearray):
        return SnpTcb.from_bytes(bytes(tcb), product)
    if isinstance(tcb, int) and not isinstance(tcb, bool):
        return SnpTcb.from_int(tcb, product)
    raise ConfigurationError("tcb must be SnpTcb, 8 bytes or an int", code="usage.tcb")


class _FetcherBase:
    """Configuration, request planning and the cache/staleness rules (no network I/O)."""

    def __init__(
        self,
        *,
        pcs_url: str | None,
        kds_url: str | None,
        root_ca_crl_url: str | None,
        cache: CollateralCache | bool,
        progress: Progress | None,
    ) -> None:
        self.pcs_url = intel_base(pcs_url)
        self.kds_url = amd_base(kds_url)
        self.root_ca_crl_url = root_ca_crl_url
        if cache is True:
            self.cache: CollateralCache | None = CollateralCache()
        elif cache is False:
            self.cache = None
        elif isinstance(cache, CollateralCache):
            self.cache = cache
        else:
            raise ConfigurationError(
                "cache must be a CollateralCache or a bool", code="usage.cache"
            )
        self._progress_cb = progress

    def _progress(self, what: str, event: str) -> None:
        if self._progress_cb is not None:
            self._progress_cb(what, event)

    # -- request plans ----------------------------------------------------------------------

    def plan_intel_tcb_info(
        self, *, fmspc: str | bytes, tee: str, pce_id: str | bytes | None, update: str | None
    ) -> Spec:
        return tcb_info_spec(
            self.pcs_url,
            tee=norm_tee(tee),
            fmspc=norm_fmspc(fmspc),
            pce_id=norm_pce_id(pce_id),
            update=update,
        )

    def plan_intel_qe_identity(self, *, tee: str, update: str | None) -> Spec:
        return qe_identity_spec(self.pcs_url, tee=norm_tee(tee), update=update)

    def plan_intel_pck_crl(self, *, ca: str) -> Spec:
        return pck_crl_spec(self.pcs_url, ca=norm_ca(ca))

    def plan_intel_root_ca_crl(self) -> Spec:
        return root_ca_crl_spec(self.pcs_url, url=self.root_ca_crl_url)

    def plan_intel(
        self,
        *,
        fmspc: str | bytes,
        ca: str,
        tee: str,
        pce_id: str | bytes | None,
        update: str | None,
    ) -> list[Spec]:
        return [
            self.plan_intel_tcb_info(fmspc=fmspc, tee=tee, pce_id=pce_id, update=update),
            self.plan_intel_qe_identity(tee=tee, update=update),
            self.plan_intel_pck_crl(ca=ca),
            self.plan_intel_root_ca_crl(),
        ]

    def plan_amd_vcek(self, *, product: str, chip_id: bytes | str, tcb: TcbArg) -> Spec:
        p = norm_product(product)
        return vcek_spec(self.kds_url, product=p, hwid=hwid_for(p, chip_id), tcb=_tcb(tcb, p))

    def plan_amd_cert_chain(self, *, product: str, key: str) -> Spec:
        return cert_chain_spec(self.kds_url, product=norm_product(product), key=norm_key(key))

    def plan_amd_crl(self, *, product: str, key: str) -> Spec:
        return crl_spec(self.kds_url, product=norm_product(product), key=norm_key(key))

    def plan_amd(
        self, *, product: str, chip_id: bytes | str | None, tcb: TcbArg | None, key: str
    ) -> list[Spec]:
        specs: list[Spec] = []
        if norm_key(key) == "vcek":
            if chip_id is None or tcb is None:
                raise ConfigurationError(
                    "a VCEK needs chip_id and tcb", code="usage.vcek_arguments"
                )
            specs.append(self.plan_amd_vcek(product=product, chip_id=chip_id, tcb=tcb))
        specs.append(self.plan_amd_cert_chain(product=product, key=key))
        specs.append(self.plan_amd_crl(product=product, key=key))
        return specs

    # -- the cache rules --------------------------------------------------------------------

    def _parse_cached(self, spec: Spec, entry: CacheEntry) -> Piece | None:
        try:
            return spec.parse(_as_result(entry))
        except CollateralUnavailableError as e:
            log.warning("ignoring cache entry for %s: %s", spec.url, e.message)
            return None

    def _lookup(self, spec: Spec, at: _dt.datetime) -> tuple[Collateral | None, CacheEntry | None]:
        """A fresh cached answer (no request needed), else the cached entry, if any."""
        if self.cache is None:
            return None, None
        entry = self.cache.get(spec.key)
        if entry is None:
            return None, None
        piece = self._parse_cached(spec, entry)
        if piece is None:
            return None, None
        if entry.is_fresh(at) and piece.not_after > at:
            return _with_source(piece.collateral, f"cache:{spec.url}"), entry
        return None, entry

    def _stale_or_raise(
        self,
        spec: Spec,
        entry: CacheEntry,
        at: _dt.datetime,
        allow_stale_for: _dt.timedelta | None,
        cause: CollateralUnavailableError,
        *,
        fetched_now: bool = False,
    ) -> Collateral:
        state = freshness(entry, at, allow_stale_for=allow_stale_for)
        piece = self._parse_cached(spec, entry) if state is Freshness.STALE_ALLOWED else None
        if piece is not None:
            note = (
                f"{'stale' if fetched_now else 'stale-cache'}:{spec.url} "
                f"(expired {entry.not_after.isoformat()}, "
                f"allowed by allow_stale_for={allow_stale_for})"
            )
            log.warning("%s: using STALE collateral: %s", spec.what, note)
            self._progress(spec.what, "stale")
            return _with_source(piece.collateral, note)
        self._progress(spec.what, "failed")
        allowance = (
            "no stale collateral allowed"
            if allow_stale_for is None
            else f"more than allow_stale_for={allow_stale_for} ago"
        )
        raise CollateralUnavailableError(
            f"{spec.what}: the newest copy expired at {entry.not_after.isoformat()} "
            f"({allowance}); {cause.message}",
            code="collateral.expired",
        ) from cause

    def _fallback(
        self,
        spec: Spec,
        err: CollateralUnavailableError,
        entry: CacheEntry | None,
        at: _dt.datetime,
        allow_stale_for: _dt.timedelta | None,
    ) -> Collateral:
        if entry is None:
            self._progress(spec.what, "failed")
            raise err
        return self._stale_or_raise(spec, entry, at, allow_stale_for, err)

    def _accept(
        self,
        spec: Spec,
        res: HttpResult,
        piece: Piece,
        at: _dt.datetime,
        allow_stale_for: _dt.timedelta | None,
    ) -> Collateral:
        entry = CollateralCache.make_entry(
            key=spec.key,
            url=res.url,
            status=res.status,
            headers=res.headers,
            body=res.body,
            fetched_at=res.fetched_at,
            not_after=piece.not_after,
            not_before=piece.not_before,
        )
        if self.cache is not None:
            try:
                self.cache.put(entry)
            except OSError as e:
                log.warning("could not write the collateral cache %s: %s", self.cache.directory, e)
        if piece.not_after <= at:
            cause = CollateralUnavailableError(
                f"{spec.what}: {res.url} served collateral that expired at "
                f"{piece.not_after.isoformat()}",
                code="collateral.expired",
            )
            return self._stale_or_raise(spec, entry, at, allow_stale_for, cause, fetched_now=True)
        self._progress(spec.what, "fetched")
        return _with_source(piece.collateral, spec.url)


class CollateralFetcher(_FetcherBase):
    """Blocking fetcher. Use as a context manager (or call :meth:`close`).

    ``verify`` is an :class:`ssl.SSLContext`, a CA bundle path, or None (system default);
    certificate verification cannot be disabled. ``cache=True`` uses the per-user cache
    (:func:`atls.collateral.cache.default_cache_dir`), ``False`` none.
    """

    def __init__(
        self,
        *,
        pcs_url: str | None = None,
        kds_url: str | None = None,
        root_ca_crl_url: str | None = None,
        cache: CollateralCache | bool = True,
        verify: TlsVerify = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        client: httpx.Client | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(
            pcs_url=pcs_url,
            kds_url=kds_url,
            root_ca_crl_url=root_ca_crl_url,
            cache=cache,
            progress=progress,
        )
        self._transport = SyncTransport(
            verify=verify,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            sleep=sleep,
            client=client,
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> CollateralFetcher:
        return self

    def __exit__(
        self,
        t: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get(
        self,
        spec: Spec,
        *,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        """Obtain one planned request (cache rules applied)."""
        check_allow_stale_for(allow_stale_for)
        when = _now(at)
        hit, entry = self._lookup(spec, when)
        if hit is not None:
            self._progress(spec.what, "cache")
            return hit
        self._progress(spec.what, "fetching")
        try:
            res = self._transport.get(spec.url, spec.what)
            piece = spec.parse(res)
        except CollateralUnavailableError as e:
            return self._fallback(spec, e, entry, when, allow_stale_for)
        return self._accept(spec, res, piece, when, allow_stale_for)

    def get_all(
        self,
        specs: list[Spec],
        *,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        when = _now(at)
        parts = [self.get(s, at=when, allow_stale_for=allow_stale_for) for s in specs]
        return Collateral().merged(*parts)

    # -- Intel ------------------------------------------------------------------------------

    def fetch_intel(
        self,
        *,
        fmspc: str | bytes,
        ca: str,
        tee: str = "tdx",
        pce_id: str | bytes | None = None,
        update: str | None = None,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        """TCB info, QE identity, PCK CRL and root CA CRL for one platform (FMSPC + PCK CA)."""
        specs = self.plan_intel(fmspc=fmspc, ca=ca, tee=tee, pce_id=pce_id, update=update)
        return self.get_all(specs, at=at, allow_stale_for=allow_stale_for)

    def fetch_intel_tcb_info(
        self,
        *,
        fmspc: str | bytes,
        tee: str = "tdx",
        pce_id: str | bytes | None = None,
        update: str | None = None,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_intel_tcb_info(fmspc=fmspc, tee=tee, pce_id=pce_id, update=update)
        return self.get(spec, at=at, allow_stale_for=allow_stale_for)

    def fetch_intel_qe_identity(
        self,
        *,
        tee: str = "tdx",
        update: str | None = None,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_intel_qe_identity(tee=tee, update=update)
        return self.get(spec, at=at, allow_stale_for=allow_stale_for)

    def fetch_intel_pck_crl(
        self,
        *,
        ca: str,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        return self.get(self.plan_intel_pck_crl(ca=ca), at=at, allow_stale_for=allow_stale_for)

    def fetch_intel_root_ca_crl(
        self, *, at: _dt.datetime | None = None, allow_stale_for: _dt.timedelta | None = None
    ) -> Collateral:
        return self.get(self.plan_intel_root_ca_crl(), at=at, allow_stale_for=allow_stale_for)

    # -- AMD --------------------------------------------------------------------------------

    def fetch_amd_vcek(
        self,
        *,
        product: str,
        chip_id: bytes | str,
        tcb: TcbArg,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        """The VCEK for one chip at one reported TCB."""
        spec = self.plan_amd_vcek(product=product, chip_id=chip_id, tcb=tcb)
        return self.get(spec, at=at, allow_stale_for=allow_stale_for)

    def fetch_amd_cert_chain(
        self,
        *,
        product: str,
        key: str = "vcek",
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        """ASK + ARK (``key="vcek"``) or ASVK + ARK (``key="vlek"``)."""
        spec = self.plan_amd_cert_chain(product=product, key=key)
        return self.get(spec, at=at, allow_stale_for=allow_stale_for)

    def fetch_amd_crl(
        self,
        *,
        product: str,
        key: str = "vcek",
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_amd_crl(product=product, key=key)
        return self.get(spec, at=at, allow_stale_for=allow_stale_for)

    def fetch_amd(
        self,
        *,
        product: str,
        chip_id: bytes | str | None = None,
        tcb: TcbArg | None = None,
        key: str = "vcek",
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        """Everything for one SNP report: VCEK (``key="vcek"``), chain and CRL.

        With ``key="vlek"`` only the ASVK chain and CRL (the VLEK itself comes from the host).
        """
        specs = self.plan_amd(product=product, chip_id=chip_id, tcb=tcb, key=key)
        return self.get_all(specs, at=at, allow_stale_for=allow_stale_for)

    def collateral_for_evidence(
        self,
        evidence: bytes,
        *,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        """Everything needed to verify ``evidence`` (a TDX/SGX quote or an SNP report)."""
        from atls.collateral.fetch._evidence import plan_for_evidence

        specs = plan_for_evidence(self, evidence)
        return self.get_all(specs, at=at, allow_stale_for=allow_stale_for)


class AsyncCollateralFetcher(_FetcherBase):
    """The async twin of :class:`CollateralFetcher` (trio or asyncio, via httpx/anyio).

    Cache files are read and written in a worker thread.
    """

    def __init__(
        self,
        *,
        pcs_url: str | None = None,
        kds_url: str | None = None,
        root_ca_crl_url: str | None = None,
        cache: CollateralCache | bool = True,
        verify: TlsVerify = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = _anyio_sleep,
        client: httpx.AsyncClient | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(
            pcs_url=pcs_url,
            kds_url=kds_url,
            root_ca_crl_url=root_ca_crl_url,
            cache=cache,
            progress=progress,
        )
        self._transport = AsyncTransport(
            verify=verify,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            sleep=sleep,
            client=client,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncCollateralFetcher:
        return self

    async def __aexit__(
        self,
        t: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def get(
        self,
        spec: Spec,
        *,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        import anyio.to_thread

        check_allow_stale_for(allow_stale_for)
        when = _now(at)
        hit, entry = await anyio.to_thread.run_sync(self._lookup, spec, when)
        if hit is not None:
            self._progress(spec.what, "cache")
            return hit
        self._progress(spec.what, "fetching")
        try:
            res = await self._transport.get(spec.url, spec.what)
            piece = spec.parse(res)
        except CollateralUnavailableError as e:
            return await anyio.to_thread.run_sync(
                self._fallback, spec, e, entry, when, allow_stale_for
            )
        return await anyio.to_thread.run_sync(self._accept, spec, res, piece, when, allow_stale_for)

    async def get_all(
        self,
        specs: list[Spec],
        *,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        when = _now(at)
        parts = [await self.get(s, at=when, allow_stale_for=allow_stale_for) for s in specs]
        return Collateral().merged(*parts)

    async def fetch_intel(
        self,
        *,
        fmspc: str | bytes,
        ca: str,
        tee: str = "tdx",
        pce_id: str | bytes | None = None,
        update: str | None = None,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        specs = self.plan_intel(fmspc=fmspc, ca=ca, tee=tee, pce_id=pce_id, update=update)
        return await self.get_all(specs, at=at, allow_stale_for=allow_stale_for)

    async def fetch_intel_tcb_info(
        self,
        *,
        fmspc: str | bytes,
        tee: str = "tdx",
        pce_id: str | bytes | None = None,
        update: str | None = None,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_intel_tcb_info(fmspc=fmspc, tee=tee, pce_id=pce_id, update=update)
        return await self.get(spec, at=at, allow_stale_for=allow_stale_for)

    async def fetch_intel_qe_identity(
        self,
        *,
        tee: str = "tdx",
        update: str | None = None,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_intel_qe_identity(tee=tee, update=update)
        return await self.get(spec, at=at, allow_stale_for=allow_stale_for)

    async def fetch_intel_pck_crl(
        self,
        *,
        ca: str,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_intel_pck_crl(ca=ca)
        return await self.get(spec, at=at, allow_stale_for=allow_stale_for)

    async def fetch_intel_root_ca_crl(
        self, *, at: _dt.datetime | None = None, allow_stale_for: _dt.timedelta | None = None
    ) -> Collateral:
        spec = self.plan_intel_root_ca_crl()
        return await self.get(spec, at=at, allow_stale_for=allow_stale_for)

    async def fetch_amd_vcek(
        self,
        *,
        product: str,
        chip_id: bytes | str,
        tcb: TcbArg,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_amd_vcek(product=product, chip_id=chip_id, tcb=tcb)
        return await self.get(spec, at=at, allow_stale_for=allow_stale_for)

    async def fetch_amd_cert_chain(
        self,
        *,
        product: str,
        key: str = "vcek",
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_amd_cert_chain(product=product, key=key)
        return await self.get(spec, at=at, allow_stale_for=allow_stale_for)

    async def fetch_amd_crl(
        self,
        *,
        product: str,
        key: str = "vcek",
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        spec = self.plan_amd_crl(product=product, key=key)
        return await self.get(spec, at=at, allow_stale_for=allow_stale_for)

    async def fetch_amd(
        self,
        *,
        product: str,
        chip_id: bytes | str | None = None,
        tcb: TcbArg | None = None,
        key: str = "vcek",
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        specs = self.plan_amd(product=product, chip_id=chip_id, tcb=tcb, key=key)
        return await self.get_all(specs, at=at, allow_stale_for=allow_stale_for)

    async def collateral_for_evidence(
        self,
        evidence: bytes,
        *,
        at: _dt.datetime | None = None,
        allow_stale_for: _dt.timedelta | None = None,
    ) -> Collateral:
        from atls.collateral.fetch._evidence import plan_for_evidence

        specs = plan_for_evidence(self, evidence)
        return await self.get_all(specs, at=at, allow_stale_for=allow_stale_for)
