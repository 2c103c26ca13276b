"""Policy objects and their evaluation over :class:`~atls.evidence.Verified` claims.

A policy only ever sees claims a verifier produced (``Verified`` cannot be built
elsewhere). Evaluation collects *every* violation and raises one :class:`PolicyError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from atls.errors import PolicyError, Violation
from atls.evidence import Verified
from atls.policy._schema import DEFAULT_TCB_STATUS, PLATFORMS

__all__ = ["Accepted", "PlatformRules", "Policy"]


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class PlatformRules:
    """Reference values and rules for one platform section (``[snp]``, ``[tdx]``...)."""

    values: Mapping[str, frozenset[str]] = field(default_factory=_empty)
    ints: Mapping[str, frozenset[int]] = field(default_factory=_empty)
    minimums: Mapping[str, int] = field(default_factory=_empty)
    allow_debug: bool = False
    minimum_tcb: Mapping[str, int] | None = None
    products: frozenset[str] | None = None
    signing_keys: frozenset[str] | None = None
    allow_migration_agent: bool = False
    allow_smt: bool = True
    allowed_tcb_status: frozenset[str] | None = None
    allowed_advisories: frozenset[str] | None = None
    denied_advisories: frozenset[str] = frozenset()
    sept_ve_disable: bool | None = None
    events: Mapping[str, frozenset[str]] = field(default_factory=_empty)
    pcrs: Mapping[str, Mapping[int, str]] = field(default_factory=_empty)
    ima_allowed: frozenset[str] | None = None
    ima_denied: frozenset[str] = frozenset()

    def measured_keys(self, platform: str) -> bool:
        """True if the rules pin at least one measurement-like value."""
        schema = PLATFORMS.get(platform)
        keys = schema.measurement_keys if schema else frozenset()
        return bool(set(self.values) & keys) or bool(self.pcrs) or bool(self.events)


@dataclass(frozen=True)
class Accepted:
    """Evidence that verified and satisfied the policy."""

    verified: Verified
    policy: str
    binding: str
    unchecked: tuple[str, ...]

    @property
    def claims(self) -> Mapping[str, Any]:
        return self.verified.claims

    @property
    def platform(self) -> str:
        return self.verified.platform

    def to_json(self) -> dict[str, Any]:
        out = self.verified.to_json()
        out["policy"] = self.policy
        out["binding"] = self.binding
        out["unchecked"] = list(self.unchecked)
        return out


def _hex(v: Any) -> str | None:
    return v.lower() if isinstance(v, str) else None


@dataclass(frozen=True)
class Policy:
    """A named set of :class:`PlatformRules`. Build with :func:`~atls.policy.load_policy`,
    :func:`~atls.policy.parse_policy` or :meth:`Policy.default`.

    The default policy accepts authentic, non-debug evidence (for TDX/SGX: a TCB status in
    the default accepted set) and reports that measurements were not checked.
    """

    name: str
    platforms: Mapping[str, PlatformRules] = field(default_factory=dict)
    is_default: bool = False

    @classmethod
    def default(cls) -> Policy:
        return cls("default", {}, is_default=True)

    def evaluate(self, verified: Verified, *, binding: str = "") -> Accepted:
        rules = self.platforms.get(verified.platform)
        unchecked = list(verified.unchecked)
        if rules is None:
            if not self.is_default:
                raise PolicyError(
                    [Violation("platform", f"one of {sorted(self.platforms)}", verified.platform)],
                    code="policy.platform",
                )
            rules = PlatformRules()
            unchecked.append("measurements: no policy given, only authenticity was checked")
        elif not rules.measured_keys(verified.platform):
            unchecked.append(f"measurements: policy [{verified.platform}] pins none")
        violations = _check(verified, rules)
        if violations:
            raise PolicyError(violations)
        return Accepted(verified, self.name, binding, tuple(unchecked))


def _check(v: Verified, r: PlatformRules) -> list[Violation]:
    out: list[Violation] = []
    c = v.claims

    def bad(rule: str, expected: str, actual: object) -> None:
        out.append(Violation(rule, expected, str(actual)))

    # 1. debug evidence is rejected unless allowed
    if v.debug and not r.allow_debug:
        bad("allow_debug", "a non-debug guest", "debug")
    # 2. reference values (any-of)
    for key, allowed in r.values.items():
        actual = _hex(c.get(key))
        if actual is None:
            bad(key, "a value", "claim not present")
        elif actual not in allowed:
            bad(key, f"one of {sorted(allowed)}", actual)
    for key, allowed_ints in r.ints.items():
        iv = c.get(key)
        if not isinstance(iv, int) or iv not in allowed_ints:
            bad(key, f"one of {sorted(allowed_ints)}", iv)
    for key, minimum in r.minimums.items():
        iv = c.get(key)
        if not isinstance(iv, int) or iv < minimum:
            bad(f"minimum_{key}", f">= {minimum}", iv)
    # 3. SNP rules
    if r.minimum_tcb is not None:
        tcb = c.get("reported_tcb")
        if not isinstance(tcb, Mapping):
            bad("minimum_tcb", "a reported_tcb claim", "claim not present")
        else:
            for comp, minimum in r.minimum_tcb.items():
                have = tcb.get(comp)
                if not isinstance(have, int) or have < minimum:
                    bad(f"minimum_tcb.{comp}", f">= {minimum}", have)
    if r.products is not None and c.get("product") not in r.products:
        bad("products", f"one of {sorted(r.products)}", c.get("product"))
    if r.signing_keys is not None and c.get("signing_key") not in r.signing_keys:
        bad("signing_keys", f"one of {sorted(r.signing_keys)}", c.get("signing_key"))
    if v.platform == "snp":
        if c.get("policy_migrate_ma") and not r.allow_migration_agent:
            bad("allow_migration_agent", "migration agent disallowed", "allowed by guest policy")
        if c.get("policy_smt") and not r.allow_smt:
            bad("allow_smt", "SMT disallowed by guest policy", "SMT allowed")
    # 4. TCB status and advisories (TDX, SGX)
    schema = PLATFORMS.get(v.platform)
    if schema is not None and schema.has_tcb_status:
        allowed_status = r.allowed_tcb_status or DEFAULT_TCB_STATUS
        if v.tcb_status not in allowed_status:
            bad("allowed_tcb_status", f"one of {sorted(allowed_status)}", v.tcb_status)
        for adv in v.advisory_ids:
            if adv in r.denied_advisories:
                bad("denied_advisories", f"not {adv}", adv)
            elif r.allowed_advisories is not None and adv not in r.allowed_advisories:
                bad("allowed_advisories", f"one of {sorted(r.allowed_advisories)}", adv)
    if r.sept_ve_disable is not None and c.get("sept_ve_disable") is not r.sept_ve_disable:
        bad("sept_ve_disable", str(r.sept_ve_disable).lower(), c.get("sept_ve_disable"))
    # 5. replayed event-log facts (dstack compose-hash, app-id, ...)
    events = c.get("events")
    for name, allowed in r.events.items():
        have = events.get(name) if isinstance(events, Mapping) else None
        if have is None:
            bad(f"events.{name}", "an event", "event not present")
        elif str(have).lower() not in allowed:
            bad(f"events.{name}", f"one of {sorted(allowed)}", have)
    # 6. TPM PCRs and IMA
    pcrs = c.get("pcrs")
    for bank, regs in r.pcrs.items():
        quoted = pcrs.get(bank) if isinstance(pcrs, Mapping) else None
        for idx, want in regs.items():
            have = quoted.get(str(idx)) if isinstance(quoted, Mapping) else None
            if have is None or str(have).lower() != want:
                bad(f"pcrs.{bank}.{idx}", want, have if have is not None else "not quoted")
    if r.ima_allowed is not None or r.ima_denied:
        entries = c.get("ima")
        if not isinstance(entries, list):
            bad("ima", "an IMA measurement list", "none in the evidence")
        else:
            for e in entries:
                h = str(e.get("hash", "")).lower() if isinstance(e, Mapping) else ""
                path = e.get("path", "?") if isinstance(e, Mapping) else "?"
                if h in r.ima_denied:
                    bad("ima_denied", f"{path} not measured with a denied hash", h)
                elif r.ima_allowed is not None and h not in r.ima_allowed:
                    bad("ima_allowed", f"{path} with an allowed hash", h)
    return out
