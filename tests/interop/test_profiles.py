"""profile_verifier / profile_issuance: each profile's client accepts its own server over TLS,
and refuses a server speaking another profile (no application data flows)."""

from __future__ import annotations

import pytest
import trio

from atls.attest import SimulatedAttester
from atls.errors import AttestationError, ConfigurationError, HandshakeError
from atls.interop import PROFILES, profile_issuance, profile_verifier
from atls.interop.cocos import CocosVerifier
from atls.interop.dstack_verify import DstackIssuance, DstackVerifier
from atls.pipeline import AttestationVerifier
from atls.policy import parse_policy
from atls.testing.tdx import DEFAULT_AT, FakeIntel
from atls.tls import AttestedCredentials
from atls.tls.trio import open_attested_stream, serve_attested

INTEL = FakeIntel()
RUNTIME = [("app-id", b"\x01" * 20), ("compose-hash", b"\x02" * 32)]
POLICY = parse_policy({"version": 1, "tdx": {"mr_td": "11" * 48}})


def _verifier(profile, **kw):
    return profile_verifier(
        profile,
        policy=POLICY,
        trust=INTEL.trust_store(),
        collateral=INTEL.collateral(),
        allow_simulated=True,
        **kw,
    )


def _credentials(profile):
    opts = {"runtime_events": RUNTIME} if profile == "dstack" else {}
    iss = profile_issuance(profile, **opts)
    rtmr3 = iss.rtmr3 if isinstance(iss, DstackIssuance) else bytes(48)
    att = SimulatedAttester(
        "tdx", hierarchy=INTEL, rtmr=(b"\x21" * 48, b"\x22" * 48, b"\x23" * 48, rtmr3)
    )
    mode = "static" if profile == "dstack" else "fresh"
    return AttestedCredentials(att, mode=mode, profile=iss, clock=lambda: DEFAULT_AT)


def test_types_and_bindings():
    assert isinstance(_verifier("atls"), AttestationVerifier)
    assert _verifier("atls").nonce_size == 32 and _verifier("atls", fresh=False).nonce_size == 0
    assert isinstance(_verifier("dstack"), DstackVerifier) and _verifier("dstack").nonce_size == 0
    assert isinstance(_verifier("cocos"), CocosVerifier) and _verifier("cocos").nonce_size == 64
    for bad in (("dstack", True), ("cocos", False)):
        with pytest.raises(ConfigurationError) as e:
            _verifier(bad[0], fresh=bad[1])
        assert e.value.code == "usage.profile_fresh"
    with pytest.raises(ConfigurationError):
        _verifier("gramine")
    with pytest.raises(ConfigurationError):
        profile_issuance("dstack")
    with pytest.raises(ConfigurationError):
        profile_issuance("cocos", legacy=True)
    assert {
        profile_issuance(p, **({"runtime_events": RUNTIME} if p == "dstack" else {})).name
        for p in PROFILES
    } == {"atls-v1", "dstack", "cocos"}


@pytest.mark.parametrize("server", PROFILES)
@pytest.mark.parametrize("client", PROFILES)
async def test_profile_matrix(server, client):
    received: list[bytes] = []

    async def handler(stream):
        received.append(await stream.receive_some())
        await stream.send_all(b"ok")

    async with trio.open_nursery() as n:
        listeners = await n.start(
            lambda task_status: serve_attested(
                handler,
                0,
                credentials=_credentials(server),
                host="127.0.0.1",
                task_status=task_status,
            )
        )
        port = listeners[0].socket.getsockname()[1]
        outcome: object
        try:
            s = await open_attested_stream(
                "127.0.0.1", port, verifier=_verifier(client), clock=lambda: DEFAULT_AT
            )
        except (AttestationError, HandshakeError) as e:
            outcome = e
        else:
            async with s:
                await s.send_all(b"data")
                outcome = await s.receive_some()
        await trio.sleep(0.05)
        n.cancel_scope.cancel()
    if server == client:
        assert outcome == b"ok" and received == [b"data"]
    else:
        # refused by the client's verifier, or the server cannot mint for this client's SNI
        # (a Cocos server needs a 64-byte nonce): either way no application data flows
        assert isinstance(outcome, (AttestationError, HandshakeError)), outcome
        assert received == []
