"""Server-side stapling: where the collateral a server carries in its certificate comes from.

:class:`~atls.tls.AttestedCredentials` staples what its ``collateral_source`` returns and
refreshes it in the background before the earliest ``nextUpdate``/``notAfter`` among the
stapled items (:func:`collateral_expiry`). The default source is the attester's own
collateral (an SNP guest's VCEK/ASK/ARK from the host's certificate table). A server whose
attester has none (TDX: the PCK chain is in the quote, but TCB info, QE identity and CRLs
are not) uses :func:`fetching_source`, which fetches what its own evidence needs from Intel
PCS / a PCCS or AMD KDS (through the on-disk cache)::

    from atls.collateral.fetch import CollateralFetcher
    from atls.collateral.staple import fetching_source

    fetcher = CollateralFetcher(pcs_url=..., kds_url=...)
    creds = AttestedCredentials(attester, collateral_source=fetching_source(attester, fetcher))

The source is called at start-up and by the background refresh only, never from a TLS
callback.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from atls.collateral._bundle import Collateral
from atls.collateral._validity import ItemWindow, collateral_expiry, collateral_windows

if TYPE_CHECKING:
    from atls.attest._base import Attester
    from atls.collateral.fetch import CollateralFetcher

__all__ = ["ItemWindow", "collateral_expiry", "collateral_windows", "fetching_source"]


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def fetching_source(
    attester: Attester,
    fetcher: CollateralFetcher,
    *,
    valid_for: _dt.timedelta = _dt.timedelta(0),
    include_attester: bool = True,
    clock: Callable[[], _dt.datetime] = _utcnow,
) -> Callable[[], Collateral]:
    """A ``collateral_source`` that fetches what ``attester``'s evidence needs.

    Each call makes one piece of evidence over zero report data (to learn FMSPC / PCK CA or
    product / CHIP_ID / REPORTED_TCB, which can change after a firmware update) and asks
    ``fetcher`` for collateral still valid at ``clock() + valid_for``: with ``valid_for``
    at least the credentials' ``staple_refresh_before``, a cached entry about to expire is
    refetched instead of being stapled again. The attester's own collateral comes first
    (``include_attester``). Raises :class:`~atls.errors.CollateralUnavailableError`.
    """

    def source() -> Collateral:
        evidence = attester.attest(bytes(64))
        fetched = fetcher.collateral_for_evidence(evidence, at=clock() + valid_for)
        if include_attester:
            return attester.collateral().merged(fetched)
        return fetched

    return source
