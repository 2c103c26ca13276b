"""The result of a successful cryptographic verification.

Only verifiers construct :class:`Verified` (through :func:`make_verified`, a private
helper that the import-linter contracts keep away from policy, TLS and CLI code), so
policy evaluation can only ever see claims that a verifier checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Verified", "make_verified"]

_TOKEN = object()


@dataclass(frozen=True, eq=False)
class Verified:
    """Authentic evidence and the claims it makes.

    ``claims`` holds JSON-compatible values named as in the vendor specification
    (hex strings for byte fields, ints, bools, nested dicts for TCB versions).
    ``unchecked`` lists every field or step the verifier could *not* check; it is
    reported, never silently dropped.
    """

    platform: str
    claims: Mapping[str, Any]
    report_data: bytes
    trust_root: str
    simulated: bool
    debug: bool
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    _token: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise TypeError("Verified is constructed only by atls verifiers")

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "trust_root": self.trust_root,
            "simulated": self.simulated,
            "debug": self.debug,
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "claims": dict(self.claims),
            "unchecked": list(self.unchecked),
        }


def make_verified(
    *,
    platform: str,
    claims: Mapping[str, Any],
    report_data: bytes,
    trust_root: str,
    simulated: bool,
    debug: bool,
    tcb_status: str | None = None,
    advisory_ids: tuple[str, ...] = (),
    unchecked: tuple[str, ...] = (),
    checks: tuple[str, ...] = (),
) -> Verified:
    """Build a :class:`Verified`; called by platform verifiers only."""
    return Verified(
        platform=platform,
        claims=MappingProxyType(dict(claims)),
        report_data=bytes(report_data),
        trust_root=trust_root,
        simulated=simulated,
        debug=debug,
        tcb_status=tcb_status,
        advisory_ids=tuple(advisory_ids),
        unchecked=tuple(unchecked),
        checks=tuple(checks),
        _token=_TOKEN,
    )
