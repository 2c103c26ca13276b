"""Adapters for the certificate formats and bindings of other attested-TLS systems.

* :mod:`atls.interop.dstack` / :mod:`atls.interop.dstack_verify` - dstack RA-TLS
  certificates (Intel TDX): codecs, client verifier, issuance profile;
* :mod:`atls.interop.secretvm` - SecretVM's ``/cpu.html`` quote bound to the TLS key;
* :mod:`atls.interop.cocos` - Cocos' certificate extensions, SHA3-512 nonce binding and
  policy import.

Each adapter sits on the platform verifiers of :mod:`atls.evidence` and never changes them.
:func:`profile_verifier` and :func:`profile_issuance` pick the client verifier and the server
issuance profile by name (``atls``, ``dstack``, ``cocos``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atls.errors import ConfigurationError

if TYPE_CHECKING:
    from atls.collateral import Collateral
    from atls.pipeline import CertificateVerifier
    from atls.policy import Policy
    from atls.tls._credentials import IssuanceProfile
    from atls.trust import TrustStore

__all__ = ["PROFILES", "profile_issuance", "profile_verifier"]

#: The profile names both functions accept.
PROFILES = ("atls", "dstack", "cocos")


def _check(profile: str) -> None:
    if profile not in PROFILES:
        raise ConfigurationError(
            f"unknown profile {profile!r}; known: {', '.join(PROFILES)}", code="usage.profile"
        )


def profile_verifier(
    profile: str,
    *,
    policy: Policy,
    trust: TrustStore,
    collateral: Collateral | None,
    allow_simulated: bool = False,
    fresh: bool | None = None,
) -> CertificateVerifier:
    """The client-side certificate verifier of ``profile``.

    ``fresh=None`` takes the profile's own binding; an explicit value the profile cannot
    honour is refused (:class:`ConfigurationError`, code ``usage.profile_fresh``) rather
    than silently changed:

    * ``atls``: :class:`~atls.pipeline.AttestationVerifier`; fresh (32-byte nonce) unless
      ``fresh=False`` (key-only binding);
    * ``dstack``: :class:`~atls.interop.dstack_verify.DstackVerifier`; key-only by design
      (``fresh=True`` is refused);
    * ``cocos``: :class:`~atls.interop.cocos.CocosVerifier`; always a 64-byte nonce
      (``fresh=False`` is refused).
    """
    _check(profile)
    if profile == "atls":
        from atls.pipeline import AttestationVerifier

        return AttestationVerifier(
            policy=policy,
            trust=trust,
            collateral=collateral,
            fresh=fresh is not False,
            allow_simulated=allow_simulated,
        )
    kw: dict[str, Any] = {
        "policy": policy,
        "trust": trust,
        "collateral": collateral,
        "allow_simulated": allow_simulated,
    }
    if profile == "dstack":
        if fresh is True:
            raise ConfigurationError(
                "dstack certificates bind only the key (no client nonce): use fresh=False",
                code="usage.profile_fresh",
            )
        from atls.interop.dstack_verify import DstackVerifier

        return DstackVerifier(**kw)
    if fresh is False:
        raise ConfigurationError(
            "Cocos always binds a 64-byte client nonce: use fresh=True",
            code="usage.profile_fresh",
        )
    from atls.interop.cocos import CocosVerifier

    return CocosVerifier(**kw)


def profile_issuance(profile: str, **options: Any) -> IssuanceProfile:
    """The server-side issuance profile of ``profile`` (for
    :class:`~atls.tls.AttestedCredentials`).

    ``dstack`` needs ``runtime_events=[(name, payload), ...]`` (what the TD's RTMR3 holds;
    see :class:`~atls.interop.dstack_verify.DstackIssuance` for the other options); the
    others take no options.
    """
    _check(profile)
    if profile == "dstack":
        from atls.interop.dstack_verify import DstackIssuance

        if "runtime_events" not in options:
            raise ConfigurationError(
                "the dstack profile needs runtime_events (the events RTMR3 replays)",
                code="usage.profile_options",
            )
        return DstackIssuance(**options)
    if options:
        raise ConfigurationError(
            f"profile {profile!r} takes no options (got {', '.join(sorted(options))})",
            code="usage.profile_options",
        )
    if profile == "cocos":
        from atls.interop.cocos import CocosIssuance

        return CocosIssuance()
    from atls.tls._credentials import NativeProfile

    return NativeProfile()
