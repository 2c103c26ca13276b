"""The configfs-tsm attester against the in-memory kernel model (atls.testing.fake_tsm)."""

from __future__ import annotations

import datetime as dt
import errno
import os
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.attest.configfs_tsm import (
    DEFAULT_ROOT,
    GUID_ARK,
    GUID_ASK,
    GUID_CRL,
    GUID_VCEK,
    ConfigfsTsmAttester,
    OsTsmFileOps,
    build_cert_table,
)
from atls.collateral import Collateral
from atls.errors import AttesterError, ConfigurationError
from atls.testing.fake_tsm import FakeTsm, snp_cert_entries

ROOT = DEFAULT_ROOT
RD = bytes(range(64))


# -- report generators with the real layouts (where REPORT_DATA sits) ------------------------


def snp_layout(rd: bytes) -> bytes:
    """A 1184-byte blob with the SNP ATTESTATION_REPORT layout: version 2, REPORT_DATA at
    0x50. Unsigned: the attester does not verify, it only checks the echo."""
    return (2).to_bytes(4, "little") + bytes(0x4C) + rd + bytes(1184 - 0x90)


def tdx_v4_layout(rd: bytes) -> bytes:
    """Quote v4 header (version 4, TEE type 0x81) + TD report body with REPORTDATA at 520."""
    header = (4).to_bytes(2, "little") + (2).to_bytes(2, "little") + (0x81).to_bytes(4, "little")
    header += bytes(48 - len(header))
    body = bytes(520) + rd + bytes(584 - 520 - 64)
    return header + body + (0).to_bytes(4, "little")


def tdx_v5_layout(rd: bytes) -> bytes:
    header = (5).to_bytes(2, "little") + (2).to_bytes(2, "little") + (0x81).to_bytes(4, "little")
    header += bytes(48 - len(header))
    body = bytes(520) + rd + bytes(584 - 520 - 64)
    return header + (2).to_bytes(2, "little") + len(body).to_bytes(4, "little") + body


# -- a small certificate chain shaped like AMD's (ARK -> ASK -> VCEK) -----------------------


def _cert(
    cn: str, key: ec.EllipticCurvePrivateKey, issuer_cn: str, signer: ec.EllipticCurvePrivateKey
) -> bytes:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(signer, hashes.SHA256())
    )
    return c.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def chain() -> dict[str, bytes]:
    ark_k, ask_k, vcek_k = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ark = _cert("ARK-Test", ark_k, "ARK-Test", ark_k)
    ask = _cert("SEV-Test", ask_k, "ARK-Test", ark_k)
    vcek = _cert("SEV-VCEK", vcek_k, "SEV-Test", ask_k)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ARK-Test")]))
        .last_update(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        .next_update(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .sign(ark_k, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    return {"ark": ark, "ask": ask, "vcek": vcek, "crl": crl}


def snp_fake(**kw: object) -> FakeTsm:
    return FakeTsm(provider="sev_guest", generator=snp_layout, **kw)  # type: ignore[arg-type]


def tdx_fake(**kw: object) -> FakeTsm:
    return FakeTsm(provider="tdx_guest", generator=tdx_v4_layout, **kw)  # type: ignore[arg-type]


class Clock:
    """Injected monotonic clock + sleep: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def code_of(excinfo: pytest.ExceptionInfo[AttesterError]) -> str:
    return excinfo.value.code


# -- the happy paths -----------------------------------------------------------------------


def test_snp_request_sequence_and_cleanup() -> None:
    fake = snp_fake()
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    out = att.attest(RD)
    assert out == snp_layout(RD)
    assert att.format_name == "sev-snp-report"
    assert [r.report_data for r in fake.requests] == [RD]
    (name,) = fake.created
    d = f"{ROOT}/{name}"
    assert fake.calls == [
        ("mkdir", d),
        ("read", f"{d}/generation"),
        ("write", f"{d}/inblob"),
        ("read", f"{d}/outblob"),
        ("read", f"{d}/provider"),
        ("read", f"{d}/auxblob"),
        ("read", f"{d}/generation"),
        ("rmdir", d),
    ]
    assert fake.live == []
    assert fake.removed == [name]
    assert name.startswith(f"atls-{os.getpid()}-")


def test_tdx_v4_and_v5_quotes() -> None:
    for layout in (tdx_v4_layout, tdx_v5_layout):
        fake = FakeTsm(provider="tdx_guest", generator=layout)
        att = ConfigfsTsmAttester(ops=fake)
        assert att.format_name == "tdx-quote"
        assert att.attest(RD) == layout(RD)
        # TDX has no auxblob: it is never read, and collateral is empty without a request.
        assert not any(p.endswith("/auxblob") for _, p in fake.calls)
        n = len(fake.requests)
        assert att.collateral() == Collateral()
        assert len(fake.requests) == n
        assert fake.live == []


def test_tdx_cwt_quote_is_not_inspected() -> None:
    """A DICE-based TDX quote (not the v4/v5 layout) is returned as the kernel gave it."""
    cwt = b"\xd2\x84" + bytes(9000)
    att = ConfigfsTsmAttester(ops=FakeTsm(provider="tdx_guest", generator=lambda rd: cwt))
    assert att.attest(RD) == cwt


def test_privlevel_is_written_and_counted() -> None:
    fake = snp_fake()
    att = ConfigfsTsmAttester(ops=fake, privlevel=2)
    rep = att.report(RD)
    assert fake.requests[0].privlevel == 2
    assert rep.privlevel == 2
    assert rep.generation == 2  # inblob + privlevel
    assert ("write", f"{ROOT}/{fake.created[0]}/privlevel") in fake.calls


def test_unpinned_provider_is_probed_once() -> None:
    fake = snp_fake()
    att = ConfigfsTsmAttester(ops=fake)
    assert att.format_name == "sev-snp-report"
    assert att.format_name == "sev-snp-report"
    assert [c[0] for c in fake.calls] == ["mkdir", "read", "rmdir"]
    assert fake.live == []


def test_pinned_provider_needs_no_io() -> None:
    fake = snp_fake()
    assert ConfigfsTsmAttester(ops=fake, expected_provider="tdx_guest").format_name == "tdx-quote"
    assert fake.calls == []


def test_concurrent_requests_each_get_their_own_report() -> None:
    fake = snp_fake()
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = att.attest(bytes([i]) * 64)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {i: r[0x50:0x90] for i, r in results.items()} == {i: bytes([i]) * 64 for i in range(8)}
    assert len(set(fake.created)) == 8
    assert fake.live == []


# -- configuration and argument errors ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"privlevel": 4},
        {"privlevel": -1},
        {"privlevel": True},
        {"expected_provider": "arm_cca_guest"},
        {"expected_provider": "tdx_guest", "privlevel": 0},
        {"max_attempts": 0},
        {"timeout": -1.0},
        {"max_blob": 0},
    ],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as ei:
        ConfigfsTsmAttester(ops=snp_fake(), **kwargs)  # type: ignore[arg-type]
    assert ei.value.code == "tsm.config"


@pytest.mark.parametrize("n", [0, 32, 63, 65, 128])
def test_report_data_must_be_64_bytes(n: int) -> None:
    fake = snp_fake()
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(bytes(n))
    assert code_of(ei) == "tsm.inblob_size"
    assert fake.calls == []  # refused before touching the kernel


# -- kernel error paths, each mapped to a stable code; the directory is always removed -------


def test_missing_root_in_fake() -> None:
    fake = snp_fake(mounted=False)
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(RD)
    assert code_of(ei) == "tsm.unavailable"
    with pytest.raises(AttesterError) as ei:
        _ = ConfigfsTsmAttester(ops=fake).format_name
    assert code_of(ei) == "tsm.unavailable"


def test_missing_root_on_real_fs(tmp_path: Path) -> None:
    att = ConfigfsTsmAttester(str(tmp_path / "no" / "tsm" / "report"))
    with pytest.raises(AttesterError) as ei:
        _ = att.format_name
    assert code_of(ei) == "tsm.unavailable"
    assert "Linux >= 6.7" in str(ei.value)


def test_no_provider_enxio() -> None:
    fake = FakeTsm(provider=None)
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake).attest(RD)
    assert code_of(ei) == "tsm.no_provider"
    assert fake.dirs == {}


def test_provider_unloaded_mid_request() -> None:
    """The directory exists but the provider went away: outblob ENXIO, rmdir still done."""
    fake = snp_fake()
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    orig = fake.write_bytes

    def write_then_unload(path: str, data: bytes) -> None:
        orig(path, data)
        fake.unregister()

    fake.write_bytes = write_then_unload  # type: ignore[method-assign]
    with pytest.raises(AttesterError) as ei:
        att.attest(RD)
    assert code_of(ei) == "tsm.no_provider"
    assert fake.live == []


def test_permission_denied() -> None:
    fake = snp_fake()
    fake.permission_denied = True
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(RD)
    assert code_of(ei) == "tsm.permission"


def test_privlevel_below_floor_einval() -> None:
    fake = snp_fake(privlevel_floor=2)
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, privlevel=1).attest(RD)
    assert code_of(ei) == "tsm.privlevel"
    assert fake.live == [] and fake.requests == []


def test_privlevel_on_tdx_is_unsupported() -> None:
    fake = tdx_fake()
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, privlevel=0).attest(RD)
    assert code_of(ei) == "tsm.privlevel_unsupported"
    assert fake.live == []


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (errno.ETIMEDOUT, "tsm.timeout"),
        (errno.EIO, "tsm.io"),
        (errno.EINVAL, "tsm.invalid_request"),
        (errno.ENXIO, "tsm.no_provider"),
        (errno.ENOMEM, "tsm.io"),
    ],
)
def test_provider_failures(err: int, code: str) -> None:
    fake = snp_fake()
    fake.report_errno = err
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(RD)
    assert code_of(ei) == code
    assert isinstance(ei.value.__cause__, OSError) and ei.value.__cause__.errno == err
    assert fake.live == []


def test_outblob_above_kernel_limit_efbig() -> None:
    fake = FakeTsm(provider="tdx_guest", generator=lambda rd: bytes(40 * 1024))
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake).attest(RD)
    assert code_of(ei) == "tsm.blob_too_large"
    assert fake.live == []


def test_outblob_above_our_cap() -> None:
    fake = snp_fake()
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest", max_blob=1000).attest(RD)
    assert code_of(ei) == "tsm.blob_too_large"
    assert fake.live == []


def test_empty_outblob() -> None:
    fake = FakeTsm(provider="sev_guest", generator=lambda rd: b"")
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake).attest(RD)
    assert code_of(ei) == "tsm.empty_outblob"


@pytest.mark.parametrize(
    ("provider", "layout"),
    [("sev_guest", snp_layout), ("tdx_guest", tdx_v4_layout), ("tdx_guest", tdx_v5_layout)],
)
def test_report_not_over_our_report_data(provider: str, layout: object) -> None:
    other = bytes(64)
    fake = FakeTsm(provider=provider, generator=lambda rd: layout(other))  # type: ignore[operator]
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake).attest(RD)
    assert code_of(ei) == "tsm.report_data_mismatch"
    assert fake.live == []


def test_short_snp_report_is_a_mismatch() -> None:
    fake = FakeTsm(provider="sev_guest", generator=lambda rd: rd)
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake).attest(RD)
    assert code_of(ei) == "tsm.report_data_mismatch"


def test_provider_mismatch() -> None:
    fake = snp_fake()
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="tdx_guest").attest(RD)
    assert code_of(ei) == "tsm.provider_mismatch"
    assert fake.live == []


def test_provider_changes_after_probe() -> None:
    fake = snp_fake()
    att = ConfigfsTsmAttester(ops=fake)
    assert att.format_name == "sev-snp-report"
    fake.register("tdx_guest", tdx_v4_layout)
    with pytest.raises(AttesterError) as ei:
        att.attest(RD)
    assert code_of(ei) == "tsm.provider_mismatch"


def test_unknown_provider() -> None:
    fake = FakeTsm(provider="arm_cca_guest", generator=snp_layout)
    with pytest.raises(AttesterError) as ei:
        _ = ConfigfsTsmAttester(ops=fake).format_name
    assert code_of(ei) == "tsm.provider_unsupported"
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake).attest(RD)
    assert code_of(ei) == "tsm.provider_unsupported"
    assert fake.live == []


class Garbled(FakeTsm):
    """A kernel model whose text attribute ``attr`` reads as ``value``."""

    def __init__(self, attr: str, value: bytes) -> None:
        super().__init__(provider="sev_guest", generator=snp_layout)
        self.attr, self.value = attr, value

    def read_bytes(self, path: str, limit: int) -> bytes:
        data = super().read_bytes(path, limit)
        return self.value if path.endswith("/" + self.attr) else data


@pytest.mark.parametrize(
    ("attr", "value"),
    [
        ("generation", b"abc\n"),
        ("generation", b"-1\n"),
        ("generation", b""),
        ("generation", b"1" * 21 + b"\n"),
        ("provider", b"sev guest\n"),
        ("provider", b""),
    ],
)
def test_garbled_text_attributes(attr: str, value: bytes) -> None:
    fake = Garbled(attr, value)
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(RD)
    assert code_of(ei) == "tsm.protocol"
    assert fake.live == []


# -- EBUSY and generation races -----------------------------------------------------------------


def test_ebusy_is_retried_until_it_clears() -> None:
    fake = tdx_fake()
    fake.busy = 3
    clock = Clock()
    att = ConfigfsTsmAttester(ops=fake, sleep=clock.sleep, monotonic=clock.monotonic)
    assert att.attest(RD) == tdx_v4_layout(RD)
    assert len(clock.sleeps) == 3
    assert clock.sleeps == sorted(clock.sleeps)  # backoff grows
    assert len(fake.created) == 4  # 3 busy attempts + the good one (no probe needed)
    assert fake.live == []


def test_ebusy_until_timeout() -> None:
    fake = tdx_fake()
    fake.busy = 10_000
    clock = Clock()
    att = ConfigfsTsmAttester(
        ops=fake,
        expected_provider="tdx_guest",
        timeout=3.0,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    with pytest.raises(AttesterError) as ei:
        att.attest(RD)
    assert code_of(ei) == "tsm.busy"
    assert clock.now <= 3.0
    assert fake.live == []
    assert fake.requests == []


def test_ebusy_with_a_clock_that_never_advances_still_stops() -> None:
    fake = tdx_fake()
    fake.busy = 10_000
    att = ConfigfsTsmAttester(
        ops=fake, expected_provider="tdx_guest", sleep=lambda s: None, monotonic=lambda: 0.0
    )
    with pytest.raises(AttesterError) as ei:
        att.attest(RD)
    assert code_of(ei) == "tsm.busy"
    assert isinstance(ei.value.__cause__, OSError) and ei.value.__cause__.errno == errno.EBUSY
    assert 0 < len(fake.created) <= 1001
    assert fake.live == []


def test_report_directory_removed_by_someone_else() -> None:
    fake = snp_fake()
    orig = fake.write_bytes

    def write_then_vanish(path: str, data: bytes) -> None:
        orig(path, data)
        fake.rmdir(path.rsplit("/", 1)[0])

    fake.write_bytes = write_then_vanish  # type: ignore[method-assign]
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(RD)
    assert code_of(ei) == "tsm.protocol"
    assert fake.live == []


def test_generation_race_is_retried() -> None:
    fake = snp_fake()
    fake.race = 1  # another process writes inblob right after our outblob read
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    assert att.attest(RD) == snp_layout(RD)
    assert len(fake.created) == 2
    assert fake.live == []
    # The racer's write made the kernel regenerate on our auxblob read (a report over
    # someone else's data): exactly why that attempt had to be thrown away.
    assert len(fake.requests) == 3
    assert fake.requests[1].report_data != RD
    assert fake.requests[2].report_data == RD


def test_generation_race_every_time() -> None:
    fake = snp_fake()
    fake.race = 3
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest", max_attempts=3)
    with pytest.raises(AttesterError) as ei:
        att.attest(RD)
    assert code_of(ei) == "tsm.generation_race"
    assert len(fake.created) == 3
    assert fake.live == []


def test_race_on_tdx_detected_by_generation() -> None:
    """No auxblob read on TDX: the race shows only in the generation counter."""
    fake = tdx_fake()
    fake.race = 1
    att = ConfigfsTsmAttester(ops=fake, expected_provider="tdx_guest", max_attempts=1)
    with pytest.raises(AttesterError) as ei:
        att.attest(RD)
    assert code_of(ei) == "tsm.generation_race"
    assert "expected 1" in str(ei.value)


# -- rmdir ------------------------------------------------------------------------------------


def test_rmdir_failure_after_success_is_reported() -> None:
    fake = snp_fake()
    fake.rmdir_errno = errno.EBUSY
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(RD)
    assert code_of(ei) == "tsm.rmdir"


def test_rmdir_failure_does_not_mask_the_first_error() -> None:
    fake = snp_fake()
    fake.rmdir_errno = errno.EBUSY
    fake.report_errno = errno.ETIMEDOUT
    with pytest.raises(AttesterError) as ei:
        ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest").attest(RD)
    assert code_of(ei) == "tsm.timeout"
    assert fake.calls[-1][0] == "rmdir"


# -- collateral (SNP auxblob) ----------------------------------------------------------------


def test_snp_collateral_from_auxblob(chain: dict[str, bytes]) -> None:
    entries = [(GUID_ARK, chain["ark"]), (GUID_VCEK, chain["vcek"]), (GUID_ASK, chain["ask"])]
    entries.append((GUID_CRL, chain["crl"]))
    fake = snp_fake(certificates=entries)
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    att.attest(RD)
    coll = att.collateral()
    assert coll.certificates == (chain["vcek"], chain["ask"], chain["ark"])  # leaf first
    assert coll.crls == (chain["crl"],)
    assert coll.sources == ("configfs-tsm:auxblob",)
    assert len(fake.requests) == 1  # collateral() reused the request's auxblob
    assert att.cert_table is not None and len(att.cert_table.entries) == 4


def test_snp_collateral_before_any_attest(chain: dict[str, bytes]) -> None:
    fake = snp_fake(certificates=snp_cert_entries([chain["ark"], chain["ask"], chain["vcek"]]))
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    coll = att.collateral()
    assert coll.certificates == (chain["vcek"], chain["ask"], chain["ark"])
    assert [r.report_data for r in fake.requests] == [bytes(64)]
    assert fake.live == []


def test_snp_without_certificates() -> None:
    fake = snp_fake()
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    rep = att.report(RD)
    assert rep.auxblob == b""
    assert att.collateral() == Collateral()


def test_malformed_auxblob_fails_collateral_not_the_report() -> None:
    bad = build_cert_table([(GUID_VCEK, b"not a certificate")])
    fake = snp_fake(auxblob=bad)
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    assert att.attest(RD) == snp_layout(RD)
    with pytest.raises(AttesterError) as ei:
        att.collateral()
    assert code_of(ei) == "tsm.auxblob"
    assert ei.value.__cause__ is not None


def test_collateral_follows_the_latest_auxblob(chain: dict[str, bytes]) -> None:
    fake = snp_fake(auxblob=build_cert_table([(GUID_VCEK, b"junk")]))
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest")
    att.attest(RD)
    with pytest.raises(AttesterError):
        att.collateral()
    fake.auxblob_template = build_cert_table([(GUID_VCEK, chain["vcek"])])
    att.attest(RD)
    assert att.collateral().certificates == (chain["vcek"],)


# -- the kernel model itself ------------------------------------------------------------------


def _mk(fake: FakeTsm, name: str = "r") -> str:
    d = f"{ROOT}/{name}"
    fake.mkdir(d)
    return d


def test_fake_inblob_efbig_commits_empty() -> None:
    fake = snp_fake()
    d = _mk(fake)
    with pytest.raises(OSError) as ei:
        fake.write_bytes(f"{d}/inblob", bytes(65))
    assert ei.value.errno == errno.EFBIG
    assert fake.read_bytes(f"{d}/generation", 100) == b"1\n"  # the close committed b""
    with pytest.raises(OSError) as ei:
        fake.read_bytes(f"{d}/outblob", 1 << 16)
    assert ei.value.errno == errno.EINVAL


def test_fake_inblob_must_be_64_for_the_provider() -> None:
    fake = tdx_fake()
    d = _mk(fake)
    fake.write_bytes(f"{d}/inblob", bytes(63))  # accepted by configfs (<= 64)...
    with pytest.raises(OSError) as ei:
        fake.read_bytes(f"{d}/outblob", 1 << 16)  # ...refused by the provider
    assert ei.value.errno == errno.EINVAL


def test_fake_outblob_before_inblob() -> None:
    fake = snp_fake()
    d = _mk(fake)
    with pytest.raises(OSError) as ei:
        fake.read_bytes(f"{d}/outblob", 1 << 16)
    assert ei.value.errno == errno.EINVAL


def test_fake_report_cached_until_next_write() -> None:
    fake = snp_fake()
    d = _mk(fake)
    fake.write_bytes(f"{d}/inblob", RD)
    a = fake.read_bytes(f"{d}/outblob", 1 << 16)
    assert fake.read_bytes(f"{d}/outblob", 1 << 16) == a
    assert fake.read_bytes(f"{d}/auxblob", 1 << 16) == b""
    assert len(fake.requests) == 1
    fake.write_bytes(f"{d}/inblob", bytes(64))
    fake.read_bytes(f"{d}/auxblob", 1 << 16)  # any blob read regenerates
    assert len(fake.requests) == 2
    assert fake.read_bytes(f"{d}/outblob", 1 << 16) == snp_layout(bytes(64))
    assert fake.read_bytes(f"{d}/generation", 100) == b"2\n"


def test_fake_generation_lap_is_ebusy_and_silent_for_inblob() -> None:
    fake = snp_fake()
    d = _mk(fake)
    state = fake.dirs["r"]
    state.read_generation = 5
    state.write_generation = 4  # one more write would lap the last read generation
    fake.write_bytes(f"{d}/inblob", RD)  # configfs ignores the failed commit
    assert state.write_generation == 4 and state.inblob == b""
    with pytest.raises(OSError) as ei:
        fake.write_bytes(f"{d}/privlevel", b"0\n")  # a text attribute reports it
    assert ei.value.errno == errno.EBUSY


@pytest.mark.parametrize(
    ("text", "floor", "value", "err"),
    [
        (b"0", 0, 0, None),
        (b"3\n", 2, 3, None),
        (b"+2", 2, 2, None),
        (b"0x3", 2, 3, None),
        (b"02", 2, 2, None),
        (b"4", 0, None, errno.EINVAL),
        (b"1", 2, None, errno.EINVAL),  # below the floor
        (b"abc", 0, None, errno.EINVAL),
        (b"08", 0, None, errno.EINVAL),
        (b"-1", 0, None, errno.EINVAL),
        (b"3\n\n", 0, None, errno.EINVAL),
        (b"99999999999", 0, None, errno.ERANGE),
        (b"", 0, None, errno.EFAULT),
    ],
)
def test_fake_privlevel_parsing(
    text: bytes, floor: int, value: int | None, err: int | None
) -> None:
    fake = snp_fake(privlevel_floor=floor)
    d = _mk(fake)
    state = fake.dirs["r"]
    if err is None:
        fake.write_bytes(f"{d}/privlevel", text)
        assert (state.privlevel, state.write_generation) == (value, 1)
    else:
        with pytest.raises(OSError) as ei:
            fake.write_bytes(f"{d}/privlevel", text)
        assert ei.value.errno == err
        assert state.write_generation == 0


def test_fake_attribute_modes_and_visibility() -> None:
    fake = tdx_fake()
    d = _mk(fake)
    for attr, op, err in [
        ("generation", "write", errno.EACCES),
        ("outblob", "write", errno.EACCES),
        ("inblob", "read", errno.EACCES),
        ("auxblob", "read", errno.ENOENT),  # not visible for tdx_guest
        ("privlevel", "write", errno.ENOENT),  # idem
        ("nosuch", "read", errno.ENOENT),
    ]:
        with pytest.raises(OSError) as ei:
            if op == "read":
                fake.read_bytes(f"{d}/{attr}", 100)
            else:
                fake.write_bytes(f"{d}/{attr}", b"1")
        assert ei.value.errno == err, attr
    assert fake.read_bytes(f"{d}/provider", 100) == b"tdx_guest\n"
    snp = snp_fake(privlevel_floor=1)
    d2 = _mk(snp)
    assert snp.read_bytes(f"{d2}/privlevel_floor", 100) == b"1\n"


def test_fake_directories() -> None:
    fake = snp_fake()
    d = _mk(fake)
    with pytest.raises(FileExistsError):
        fake.mkdir(d)
    with pytest.raises(PermissionError):
        fake.mkdir(f"{d}/sub")  # a report item is not a group
    with pytest.raises(FileNotFoundError):
        fake.mkdir("/elsewhere/x")
    with pytest.raises(FileNotFoundError):
        fake.rmdir(f"{ROOT}/missing")
    fake.rmdir(d)
    with pytest.raises(FileNotFoundError):
        fake.read_bytes(f"{d}/generation", 100)


def test_fake_unregistered_provider() -> None:
    fake = snp_fake()
    d = _mk(fake)
    fake.unregister()
    for attr in ("provider", "privlevel_floor"):
        with pytest.raises(OSError) as ei:
            fake.read_bytes(f"{d}/{attr}", 100)
        assert ei.value.errno == errno.ENXIO
    with pytest.raises(OSError) as ei:
        fake.mkdir(f"{ROOT}/other")
    assert ei.value.errno == errno.ENXIO
    assert fake.read_bytes(f"{d}/generation", 100) == b"0\n"


def test_fake_needs_a_generator_for_a_provider() -> None:
    with pytest.raises(ValueError, match="generator"):
        FakeTsm(provider="sev_guest")
    with pytest.raises(ValueError, match="not both"):
        FakeTsm(generator=snp_layout, privlevel_generator=lambda rd, pl: rd)


def test_fake_privlevel_generator_sees_the_written_privlevel() -> None:
    seen: list[int] = []

    def gen(rd: bytes, privlevel: int) -> bytes:
        seen.append(privlevel)
        return snp_layout(rd)

    fake = FakeTsm(provider="sev_guest", privlevel_generator=gen)
    ConfigfsTsmAttester(ops=fake, privlevel=3).attest(RD)
    ConfigfsTsmAttester(ops=fake).attest(RD)
    assert seen == [3, 0]


# -- the real file operations, on a plain directory -----------------------------------------


def test_os_file_ops(tmp_path: Path) -> None:
    ops = OsTsmFileOps()
    d = str(tmp_path / "rep")
    ops.mkdir(d)
    assert (tmp_path / "rep").is_dir()
    f = f"{d}/blob"
    with pytest.raises(FileNotFoundError):
        ops.write_bytes(f, b"1")  # never creates: a configfs attribute exists or it does not
    Path(f).write_bytes(b"")
    ops.write_bytes(f, b"x" * 5000)
    assert ops.read_bytes(f, 5000) == b"x" * 5000
    with pytest.raises(OSError) as ei:
        ops.read_bytes(f, 4999)
    assert ei.value.errno == errno.EFBIG
    with pytest.raises(FileNotFoundError):
        ops.read_bytes(f"{d}/missing", 10)
    with pytest.raises(FileNotFoundError):
        ops.write_bytes(f"{d}/missing", b"1")
    os.symlink(f, f"{d}/link")
    with pytest.raises(OSError) as ei:
        ops.read_bytes(f"{d}/link", 10_000)
    assert ei.value.errno == errno.ELOOP
    os.remove(f)
    os.remove(f"{d}/link")
    ops.rmdir(d)
    assert not (tmp_path / "rep").exists()


# -- properties ------------------------------------------------------------------------------

_ERRNOS = [errno.EIO, errno.EINVAL, errno.ENXIO, errno.ETIMEDOUT, errno.ENOMEM, errno.EINTR]


@settings(max_examples=150, deadline=None)
@given(
    provider=st.sampled_from(["sev_guest", "tdx_guest"]),
    report_errno=st.none() | st.sampled_from(_ERRNOS),
    busy=st.integers(0, 4),
    race=st.integers(0, 4),
    privlevel=st.none() | st.integers(0, 3),
    floor=st.integers(0, 3),
    rd=st.binary(min_size=64, max_size=64),
)
def test_any_kernel_behaviour_gives_a_report_or_a_typed_error(
    provider: str,
    report_errno: int | None,
    busy: int,
    race: int,
    privlevel: int | None,
    floor: int,
    rd: bytes,
) -> None:
    layout = snp_layout if provider == "sev_guest" else tdx_v4_layout
    fake = FakeTsm(provider=provider, generator=layout, privlevel_floor=floor)
    fake.report_errno, fake.busy, fake.race = report_errno, busy, race
    clock = Clock()
    att = ConfigfsTsmAttester(
        ops=fake, privlevel=privlevel, sleep=clock.sleep, monotonic=clock.monotonic
    )
    try:
        out = att.attest(rd)
    except AttesterError as e:
        assert e.code.startswith("tsm.")
    else:
        assert out == layout(rd)
        assert fake.requests[-1].report_data == rd
        assert report_errno is None
    assert fake.live == []  # whatever happened, no report directory is left behind


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["mkdir", "rmdir", "read", "write"]),
            st.sampled_from(["a", "b"]),
            st.sampled_from(
                ["inblob", "outblob", "auxblob", "generation", "provider", "privlevel", "x"]
            ),
            st.binary(max_size=80),
        ),
        max_size=25,
    )
)
def test_fake_kernel_only_raises_oserror(ops: list[tuple[str, str, str, bytes]]) -> None:
    fake = snp_fake(privlevel_floor=1)
    last_gen: dict[str, int] = {}
    for op, name, attr, data in ops:
        d = f"{ROOT}/{name}"
        try:
            if op == "mkdir":
                fake.mkdir(d)
                last_gen[name] = 0
            elif op == "rmdir":
                fake.rmdir(d)
            elif op == "read":
                fake.read_bytes(f"{d}/{attr}", 1 << 16)
            else:
                fake.write_bytes(f"{d}/{attr}", data)
        except OSError:
            pass
        if name in fake.dirs:  # generation only ever grows, one per committed write
            g = fake.dirs[name].write_generation
            assert last_gen.get(name, 0) <= g <= last_gen.get(name, 0) + 1
            last_gen[name] = g
