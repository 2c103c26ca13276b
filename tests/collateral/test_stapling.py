"""Stapled collateral (extension .2): servers carry it, clients with nothing verify with it.

The servers are simulated SNP and TDX guests whose collateral comes from the fake AMD / Intel
hierarchies of :mod:`atls.testing`. The client has no collateral, no fetcher and an empty
cache directory (``ATLS_CACHE_DIR``); nothing here touches a network besides loopback.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from atls.attest import SimulatedAttester
from atls.collateral import Collateral
from atls.collateral.cache import ENV_CACHE_DIR
from atls.collateral.staple import collateral_expiry
from atls.errors import CollateralUnavailableError, VerificationError
from atls.pipeline import AttestationVerifier, builtin_formats, verify_evidence
from atls.policy import Policy
from atls.tls import AttestedCredentials
from atls.tls._sni import encode_nonce_sni
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested
from atls.x509ext import STAPLED_COLLATERAL_OID, decode_collateral

PLATFORMS = ["snp", "tdx"]


class Recorder:
    def __init__(self) -> None:
        self.received = b""
        self.handled = 0

    async def __call__(self, stream: AttestedStream) -> None:
        self.handled += 1
        while data := await stream.receive_some():
            self.received += data
            await stream.send_all(data)


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Any accidental use of the collateral cache would find nothing (and the test checks
    that nothing was written)."""
    d = tmp_path / "cache"
    monkeypatch.setenv(ENV_CACHE_DIR, str(d))
    return d


def _client(att: SimulatedAttester, *, fresh: bool, collateral: Collateral | None = None):
    # no collateral, no fetcher: only the simulated roots the policy owner chose to trust
    return AttestationVerifier(
        policy=Policy.default(),
        trust=att.trust_store(),
        collateral=collateral,
        fresh=fresh,
        allow_simulated=True,
    )


async def _serve(nursery: trio.Nursery, credentials: AttestedCredentials, rec: Recorder) -> int:
    listeners = await nursery.start(
        lambda task_status: serve_attested(
            rec, 0, credentials=credentials, host="127.0.0.1", task_status=task_status
        )
    )
    return int(listeners[0].socket.getsockname()[1])


def _stapled(cert: x509.Certificate) -> Collateral:
    """The collateral stapled in ``cert`` (extension .2), decoded strictly."""
    ext = cert.extensions.get_extension_for_oid(STAPLED_COLLATERAL_OID).value
    assert isinstance(ext, x509.UnrecognizedExtension)
    return decode_collateral(ext.value)


def _sni(i: int) -> str:
    return encode_nonce_sni(i.to_bytes(32, "big"))


@pytest.mark.parametrize("mode", ["static", "fresh"])
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_stapled_collateral_verifies_with_nothing_on_the_client(
    platform: str, mode: str, empty_cache: Path
) -> None:
    att = SimulatedAttester(platform)  # type: ignore[arg-type]
    creds = AttestedCredentials(att, mode=mode)  # type: ignore[arg-type]
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, creds, rec)
        for _ in range(3):
            s = await open_attested_stream(
                "127.0.0.1", port, verifier=_client(att, fresh=mode == "fresh")
            )
            async with s:
                assert s.attestation is not None
                assert s.attestation.verified.platform == platform
                assert s.attestation.verified.simulated
                await s.send_all(b"ping")
                assert await s.receive_some() == b"ping"
        n.cancel_scope.cancel()
    assert rec.received == b"ping" * 3
    # the collateral was taken once, at the first mint, never per handshake
    assert creds.collateral_refreshes == 1
    stapled = creds.stapled_collateral
    assert stapled is not None and stapled == att.collateral()
    assert not empty_cache.exists()


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_without_the_staple_the_same_client_is_refused(platform: str) -> None:
    """Negative control: it is the staple that makes the client above succeed."""
    att = SimulatedAttester(platform)  # type: ignore[arg-type]
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, AttestedCredentials(att, staple=False), rec)
        with pytest.raises(VerificationError) as ei:
            await open_attested_stream("127.0.0.1", port, verifier=_client(att, fresh=False))
        assert ei.value.code.endswith(("missing_vcek", "missing_root_crl"))
        await trio.sleep(0.05)
        n.cancel_scope.cancel()
    assert rec.handled == 0 and rec.received == b""


#: (platform, knobs of the fake hierarchy's collateral(), expected error code)
BAD_STAPLES = [
    ("snp", {"crl_expired": True}, "snp.crl.expired"),
    ("snp", {"expired_vcek": True}, "snp.chain.expired"),
    ("snp", {"wrong_ask": True}, "snp.chain.signature"),
    ("tdx", {"expired": True}, "tdx.collateral.expired"),
    ("tdx", {"tamper_tcb_info": True}, "tdx.collateral.signature"),
    ("tdx", {"wrong_crl_issuer": True}, "tdx.crl.signature"),
]


@pytest.mark.parametrize(
    ("platform", "knobs", "code"),
    BAD_STAPLES,
    ids=[f"{p}-{next(iter(k))}" for p, k, _ in BAD_STAPLES],
)
@pytest.mark.parametrize("mode", ["static", "fresh"])
async def test_bad_stapled_collateral_is_rejected_like_fetched_collateral(
    platform: str, knobs: dict[str, bool], code: str, mode: str
) -> None:
    att = SimulatedAttester(platform)  # type: ignore[arg-type]
    bad = att.hierarchy.collateral(**knobs)
    assert isinstance(bad, Collateral)
    at = dt.datetime.now(dt.UTC)
    # the verdict for the same collateral handed to the verifier as if fetched
    fmt = builtin_formats()[att.format_name]
    with pytest.raises(VerificationError) as direct:
        verify_evidence(
            fmt,
            att.attest(bytes(64)),
            trust=att.trust_store(),
            collateral=bad,
            at=at,
            allow_simulated=True,
        )
    assert direct.value.code == code

    stapling = AttestedCredentials(att, mode=mode, collateral_source=lambda: bad)  # type: ignore[arg-type]
    plain = AttestedCredentials(att, mode=mode, staple=False)  # type: ignore[arg-type]
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, stapling, rec)
        with pytest.raises(VerificationError) as stapled_err:
            await open_attested_stream(
                "127.0.0.1", port, verifier=_client(att, fresh=mode == "fresh")
            )
        plain_port = await _serve(n, plain, rec)
        with pytest.raises(VerificationError) as fetched_err:
            await open_attested_stream(
                "127.0.0.1",
                plain_port,
                verifier=_client(att, fresh=mode == "fresh", collateral=bad),
            )
        await trio.sleep(0.05)
        n.cancel_scope.cancel()
    assert stapled_err.value.code == fetched_err.value.code == code
    assert rec.handled == 0 and rec.received == b""


# ---- refresh --------------------------------------------------------------------------


class Clock:
    def __init__(self, t: dt.datetime) -> None:
        self.t = t

    def __call__(self) -> dt.datetime:
        return self.t


def _crl_next_updates(c: Collateral) -> list[dt.datetime]:
    from asn1crypto import crl as asn1_crl

    return sorted(
        asn1_crl.CertificateList.load(d)["tbs_cert_list"]["next_update"].native for d in c.crls
    )


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def _tdx_collateral(att: SimulatedAttester, t0: dt.datetime, crl_valid: dt.timedelta) -> Collateral:
    c = att.hierarchy.collateral(
        crl_this_update=t0 - dt.timedelta(days=1), crl_next_update=t0 + crl_valid
    )
    assert isinstance(c, Collateral)
    return c


def test_staple_is_refreshed_in_the_background_before_it_expires() -> None:
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = Clock(t0)
    att = SimulatedAttester("tdx")
    short = _tdx_collateral(att, t0, dt.timedelta(hours=2))
    long = _tdx_collateral(att, t0, dt.timedelta(days=30))
    answers = [short, long]
    calls: list[str] = []

    def source() -> Collateral:
        calls.append(threading.current_thread().name)
        return answers[min(len(calls), len(answers)) - 1]

    creds = AttestedCredentials(
        att,
        mode="fresh",
        lifetime=dt.timedelta(hours=6),
        clock=clock,
        collateral_source=source,
        staple_refresh_before=dt.timedelta(hours=1),
    )
    # an explicit source is called at start-up, in the caller's thread
    assert calls == [threading.current_thread().name]
    assert creds.staple_expiry == t0 + dt.timedelta(hours=2)
    assert collateral_expiry(short) == t0 + dt.timedelta(hours=2)

    first = creds.static()
    # the certificate never outlives its staple (6 h lifetime capped at the CRL's nextUpdate)
    assert first.not_after == t0 + dt.timedelta(hours=2)
    assert _stapled(first.certificate) == short
    # handshakes (fresh mode: one mint per nonce) never call the source
    minted = creds.minted
    for i in range(5):
        creds.select(_sni(i))
    assert creds.minted == minted + 5
    assert len(calls) == 1

    # an hour before the earliest nextUpdate the refresh runs in the background
    clock.t = t0 + dt.timedelta(minutes=61)
    assert creds.static() is first  # the caller is served at once with the current one
    _wait(lambda: creds.static() is not first)
    assert len(calls) == 2 and calls[1] == "atls-staple-refresh"
    second = creds.static()
    assert _stapled(second.certificate) == long
    assert _crl_next_updates(_stapled(second.certificate))[0] == t0 + dt.timedelta(days=30)
    assert second.not_after == clock.t - dt.timedelta(minutes=1) + dt.timedelta(hours=6, minutes=1)

    # the refreshed certificate verifies for a client with nothing, at that time
    verifier = _client(att, fresh=False)
    accepted = verifier.verify_certificate(
        second.certificate.public_bytes(Encoding.DER), nonce=b"", at=clock.t
    )
    assert accepted.verified.platform == "tdx"


def test_failed_refresh_keeps_the_staple_and_backs_off() -> None:
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = Clock(t0)
    att = SimulatedAttester("tdx")
    short = _tdx_collateral(att, t0, dt.timedelta(hours=2))
    calls = 0

    def source() -> Collateral:
        nonlocal calls
        calls += 1
        if calls == 1:
            return short
        raise CollateralUnavailableError("PCS down", code="collateral.network")

    creds = AttestedCredentials(
        att,
        lifetime=dt.timedelta(hours=6),
        clock=clock,
        collateral_source=source,
        staple_refresh_before=dt.timedelta(hours=1),
        staple_retry=dt.timedelta(minutes=5),
    )
    first = creds.static()
    clock.t = t0 + dt.timedelta(minutes=90)
    creds.static()
    _wait(lambda: calls == 2 and not creds._refreshing)
    # the current staple stays; no retry storm before staple_retry has passed
    assert creds.stapled_collateral == short
    for _ in range(20):
        assert creds.static() is first
    time.sleep(0.05)
    assert calls == 2
    clock.t += dt.timedelta(minutes=6)
    creds.static()
    _wait(lambda: calls == 3)
    # once the staple expired, the cap cannot apply: the certificate is minted anyway and a
    # client is refused with the same error as for expired fetched collateral
    clock.t = t0 + dt.timedelta(hours=3)
    _wait(lambda: not creds._refreshing)
    late = creds.static()
    assert late is not first and late.not_after > clock.t
    with pytest.raises(VerificationError) as ei:
        _client(att, fresh=False).verify_certificate(
            late.certificate.public_bytes(Encoding.DER), nonce=b"", at=clock.t
        )
    assert ei.value.code == "tdx.collateral.expired"


def test_explicit_source_failure_at_start_up_is_typed() -> None:
    att = SimulatedAttester("snp")

    def broken() -> Collateral:
        raise OSError("no route to host")

    with pytest.raises(CollateralUnavailableError) as ei:
        AttestedCredentials(att, collateral_source=broken)
    assert ei.value.code == "collateral.source"
    with pytest.raises(ValueError):
        AttestedCredentials(att, staple=False, collateral_source=att.collateral)


def test_set_collateral_is_used_from_the_next_certificate_on() -> None:
    att = SimulatedAttester("snp")
    creds = AttestedCredentials(att, mode="fresh")
    before = creds.select(_sni(1))
    assert creds.collateral_refreshes == 1
    only_chain = att.hierarchy.collateral(crl=False)
    creds.set_collateral(only_chain)
    after = creds.select(_sni(2))
    assert _stapled(before.certificate).crls and not _stapled(after.certificate).crls
    assert creds.collateral_refreshes == 1


# ---- a staple fetched from (fake) Intel PCS -------------------------------------------


async def test_tdx_server_staples_collateral_fetched_from_pcs(tmp_path: Path) -> None:
    """A TDX guest's attester has no TCB info, QE identity or CRLs of its own: the server
    fetches them once at start-up (fetching_source, through its cache) and staples them; a
    client with nothing verifies; handshakes make no further requests."""
    from atls.collateral.cache import CollateralCache
    from atls.collateral.fetch import CollateralFetcher
    from atls.collateral.staple import fetching_source
    from atls.testing.fake_pcs import FakeVendorServer, add_fake_intel

    att = SimulatedAttester("tdx")
    with FakeVendorServer() as pcs:
        add_fake_intel(pcs, att.hierarchy)
        fetcher = CollateralFetcher(
            pcs_url=pcs.base_url,
            cache=CollateralCache(tmp_path / "server-cache"),
            verify=pcs.ca_file,
        )
        with fetcher:
            creds = AttestedCredentials(
                att,
                mode="fresh",
                collateral_source=fetching_source(att, fetcher, include_attester=False),
            )
        assert len(pcs.requests) == 4
        stapled = creds.stapled_collateral
        assert stapled is not None
        assert {d.kind for d in stapled.documents} == {"tdx-tcb-info", "tdx-qe-identity"}
        assert len(stapled.crls) == 2 and att.hierarchy.pck_ca_der in stapled.certificates
        rec = Recorder()
        async with trio.open_nursery() as n:
            port = await _serve(n, creds, rec)
            for _ in range(2):
                s = await open_attested_stream("127.0.0.1", port, verifier=_client(att, fresh=True))
                async with s:
                    assert s.attestation is not None
                    assert s.attestation.verified.tcb_status == "UpToDate"
                    await s.send_all(b"x")
                    assert await s.receive_some() == b"x"
            n.cancel_scope.cancel()
        assert len(pcs.requests) == 4 and creds.collateral_refreshes == 1
