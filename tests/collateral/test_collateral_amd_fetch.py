"""AMD KDS fetcher (VCEK, cert_chain, CRL, rate limits) against the loopback fake."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from atls.collateral._sniff import split_certificates
from atls.collateral.fetch import (
    AsyncCollateralFetcher,
    CollateralFetcher,
    RetryPolicy,
    SnpTcb,
    fetch_amd_vcek,
)
from atls.collateral.fetch._amd import hwid_for
from atls.errors import CollateralUnavailableError, ConfigurationError
from atls.testing.fake_pcs import (
    AmdVector,
    FakeResponse,
    FakeVendorServer,
    add_amd_vectors,
)

pytestmark = pytest.mark.vectors

AT = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as s:
        yield s


@pytest.fixture
def amd(server: FakeVendorServer, vectors: Path) -> list[AmdVector]:
    return add_amd_vectors(server, vectors, crl_time=AT - dt.timedelta(days=1))


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, s: float) -> None:
        self.calls.append(s)


def _fetcher(server: FakeVendorServer, **kw: object) -> CollateralFetcher:
    return CollateralFetcher(
        kds_url=server.base_url,
        cache=False,
        verify=server.ca_file,
        **kw,  # type: ignore[arg-type]
    )


def _tcb(v: AmdVector) -> SnpTcb:
    fmc, bl, tee, snp, ucode = v.tcb
    return SnpTcb(bootloader=bl, tee=tee, snp=snp, microcode=ucode, fmc=fmc)


def test_every_vector_vcek_is_fetched_by_product_chip_and_tcb(
    server: FakeVendorServer, amd: list[AmdVector]
) -> None:
    assert {v.product for v in amd} == {"Milan", "Genoa", "Turin"}
    with _fetcher(server) as f:
        for v in amd:
            coll = f.fetch_amd_vcek(product=v.product, chip_id=v.hwid, tcb=_tcb(v), at=AT)
            assert coll.certificates == (v.der,), v.source
            assert coll.crls == () and coll.documents == ()
            (src,) = coll.sources
            assert src.startswith(f"{server.base_url}/vcek/v1/{v.product}/{v.hwid}?")


def test_report_facts_lead_to_the_right_vcek(
    server: FakeVendorServer, amd: list[AmdVector], vectors: Path
) -> None:
    """From each real report's CHIP_ID and REPORTED_TCB (as the report stores them) the
    fetcher builds the KDS request that returns exactly that report's VCEK."""
    facts = json.loads((vectors / "snp" / "EXPECTED_FACTS.json").read_bytes())
    by_file = {v.source: v for v in amd}
    checked = 0
    with _fetcher(server) as f:
        for report, fact in facts.items():
            v = by_file.get(fact.get("vek_file") or "")
            if v is None or fact.get("signing_key") != 0:
                continue
            product = fact["vek_ext"]["productName"]
            tcb = SnpTcb.from_bytes(bytes.fromhex(fact["reported_tcb"]), product)
            parts = fact["reported_tcb_parts"]
            assert (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode) == (
                parts["bl"],
                parts["tee"],
                parts["snp"],
                parts["ucode"],
            ), report
            assert tcb.fmc == parts.get("fmc"), report
            coll = f.fetch_amd_vcek(
                product=product, chip_id=bytes.fromhex(fact["chip_id"]), tcb=tcb, at=AT
            )
            assert coll.certificates == (v.der,), report
            checked += 1
    assert checked >= 5


def test_turin_url_uses_8_byte_hwid_and_fmc_first(
    server: FakeVendorServer, amd: list[AmdVector]
) -> None:
    chip = bytes.fromhex("59790fb1c39f35c1") + bytes(56)
    tcb = SnpTcb.from_int(int.from_bytes(bytes.fromhex("0101010400000051"), "little"), "Turin")
    assert tcb == SnpTcb(bootloader=1, tee=1, snp=4, microcode=81, fmc=1)
    assert tcb.query() == "fmcSPL=01&blSPL=01&teeSPL=01&snpSPL=04&ucodeSPL=81"
    with _fetcher(server) as f:
        coll = f.fetch_amd(product="turin", chip_id=chip, tcb=tcb, at=AT)
    assert server.requests[0].path == "/vcek/v1/Turin/59790fb1c39f35c1"
    assert server.requests[0].query == {
        "fmcSPL": "01",
        "blSPL": "01",
        "teeSPL": "01",
        "snpSPL": "04",
        "ucodeSPL": "81",
    }
    assert len(coll.certificates) == 3 and len(coll.crls) == 1
    assert [r.path for r in server.requests[1:]] == [
        "/vcek/v1/Turin/cert_chain",
        "/vcek/v1/Turin/crl",
    ]


def test_cert_chains_and_vlek(
    server: FakeVendorServer, amd: list[AmdVector], vectors: Path
) -> None:
    with _fetcher(server) as f:
        for product, vcek_file, vlek_file in (
            ("Milan", "ask_ark_milan.pem", "ask_ark_milan_vlek.pem"),
            ("Genoa", "ask_ark_genoa.pem", "ask_ark_genoa_vlek.pem"),
            ("Turin", "ask_ark_turin_vcek.pem", "ask_ark_turin_vlek.pem"),
        ):
            chain = f.fetch_amd_cert_chain(product=product, at=AT)
            expected = split_certificates(
                (vectors / "snp" / "go-sev-guest" / vcek_file).read_bytes()
            )
            assert chain.certificates == tuple(expected)
            vlek = f.fetch_amd(product=product, key="vlek", at=AT)
            expected_v = split_certificates(
                (vectors / "snp" / "go-sev-guest" / vlek_file).read_bytes()
            )
            assert vlek.certificates == tuple(expected_v)
            assert len(vlek.crls) == 1
            assert server.count(f"/vlek/v1/{product}/crl") == 1


def test_invalid_arguments(server: FakeVendorServer) -> None:
    tcb = SnpTcb(bootloader=1, tee=0, snp=1, microcode=1)
    with _fetcher(server) as f:
        bad: list[dict[str, object]] = [
            {"product": "Rome", "chip_id": "11" * 64, "tcb": tcb},
            {"product": "Milan", "chip_id": "11" * 63, "tcb": tcb},
            {"product": "Milan", "chip_id": "zz" * 64, "tcb": tcb},
            {"product": "Milan", "chip_id": bytes(64), "tcb": tcb},  # masked CHIP_ID
            {"product": "Turin", "chip_id": "11" * 8 + "01" + "00" * 55, "tcb": tcb},
            {"product": "Turin", "chip_id": "11" * 8, "tcb": tcb},  # no FMC on Turin
            {"product": "Milan", "chip_id": "11" * 64, "tcb": SnpTcb(1, 0, 1, 1, fmc=1)},
            {"product": "Milan", "chip_id": "11" * 64, "tcb": b"\x00" * 7},
            {"product": "Milan", "chip_id": "11" * 64, "tcb": 1 << 64},
            {"product": "Milan", "chip_id": "11" * 64, "tcb": "0"},
        ]
        for kw in bad:
            with pytest.raises(ConfigurationError):
                f.fetch_amd_vcek(**kw)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            f.fetch_amd(product="Milan")  # a VCEK needs chip_id and tcb
        with pytest.raises(ConfigurationError):
            f.fetch_amd_cert_chain(product="Milan", key="vxek")
    with pytest.raises(ConfigurationError):
        SnpTcb(bootloader=256, tee=0, snp=0, microcode=0)
    assert server.requests == []


def test_unknown_chip_is_not_found(server: FakeVendorServer, amd: list[AmdVector]) -> None:
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_vcek(product="Milan", chip_id="12" * 64, tcb=_tcb(amd[0]), at=AT)
    assert ei.value.code == "collateral.not_found"


def test_wrong_vcek_for_the_request_is_a_mismatch(
    server: FakeVendorServer, amd: list[AmdVector]
) -> None:
    a, b = amd[0], amd[1]
    assert a.hwid != b.hwid
    path = f"/vcek/v1/{a.product}/{a.hwid}"
    server.enqueue(path, FakeResponse(200, b.der, {"Content-Type": "application/octet-stream"}))
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_vcek(product=a.product, chip_id=a.hwid, tcb=_tcb(a), at=AT)
    assert ei.value.code == "collateral.mismatch"


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (
            FakeResponse(200, b"<html>busy</html>", {"Content-Type": "text/html"}),
            "collateral.content_type",
        ),
        (
            FakeResponse(200, b"", {"Content-Type": "application/octet-stream"}),
            "collateral.malformed",
        ),
        (FakeResponse(200, b"\x30\x03\x02\x01\x00", {}), "collateral.malformed"),
    ],
)
def test_bad_vcek_answers(
    server: FakeVendorServer, amd: list[AmdVector], response: FakeResponse, code: str
) -> None:
    a = amd[0]
    server.enqueue(f"/vcek/v1/{a.product}/{a.hwid}", response)
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_vcek(product=a.product, chip_id=a.hwid, tcb=_tcb(a), at=AT)
    assert ei.value.code == code


def test_truncated_vcek(server: FakeVendorServer, amd: list[AmdVector]) -> None:
    a = amd[0]
    server.enqueue(
        f"/vcek/v1/{a.product}/{a.hwid}",
        FakeResponse(200, a.der, {"Content-Type": "application/octet-stream"}, truncate_to=100),
    )
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_vcek(product=a.product, chip_id=a.hwid, tcb=_tcb(a), at=AT)
    assert ei.value.code == "collateral.network"


def test_chain_of_another_product_is_a_mismatch(
    server: FakeVendorServer, amd: list[AmdVector], vectors: Path
) -> None:
    genoa = (vectors / "snp" / "go-sev-guest" / "ask_ark_genoa.pem").read_bytes()
    server.enqueue(
        "/vcek/v1/Milan/cert_chain",
        FakeResponse(200, genoa, {"Content-Type": "application/x-pem-file"}),
    )
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_cert_chain(product="Milan", at=AT)
    assert ei.value.code == "collateral.mismatch"
    # the VLEK chain is not the VCEK chain
    vlek = (vectors / "snp" / "go-sev-guest" / "ask_ark_milan_vlek.pem").read_bytes()
    server.enqueue("/vcek/v1/Milan/cert_chain", FakeResponse(200, vlek, {}))
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_cert_chain(product="Milan", at=AT)
    assert ei.value.code == "collateral.mismatch"


# -- rate limits -----------------------------------------------------------------------------


def test_429_retry_after_is_honoured_then_succeeds(
    server: FakeVendorServer, amd: list[AmdVector]
) -> None:
    path = "/vcek/v1/Milan/cert_chain"
    server.enqueue(
        path,
        FakeResponse(429, b"Too Many Requests", {"Retry-After": "3"}),
        FakeResponse(429, b"Too Many Requests", {"Retry-After": "5"}),
    )
    sleeps = Sleeps()
    with _fetcher(server, sleep=sleeps) as f:
        coll = f.fetch_amd_cert_chain(product="Milan", at=AT)
    assert len(coll.certificates) == 2
    assert sleeps.calls == [3.0, 5.0]
    assert server.count(path) == 3


def test_429_gives_up_after_the_bound(server: FakeVendorServer, amd: list[AmdVector]) -> None:
    path = "/vcek/v1/Genoa/crl"
    server.enqueue(path, *[FakeResponse(429, b"", {"Retry-After": "1"})] * 10)
    sleeps = Sleeps()
    with (
        _fetcher(server, sleep=sleeps, retry=RetryPolicy(max_attempts=3)) as f,
        pytest.raises(CollateralUnavailableError) as ei,
    ):
        f.fetch_amd_crl(product="Genoa", at=AT)
    assert ei.value.code == "collateral.rate_limited"
    assert server.count(path) == 3
    assert sleeps.calls == [1.0, 1.0]


def test_429_with_too_long_retry_after_fails_at_once(
    server: FakeVendorServer, amd: list[AmdVector]
) -> None:
    path = "/vcek/v1/Milan/crl"
    server.enqueue(path, FakeResponse(429, b"", {"Retry-After": "3600"}))
    sleeps = Sleeps()
    with _fetcher(server, sleep=sleeps) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_crl(product="Milan", at=AT)
    assert ei.value.code == "collateral.rate_limited"
    assert "3600" in ei.value.message
    assert sleeps.calls == [] and server.count(path) == 1


def test_429_total_wait_bound(server: FakeVendorServer, amd: list[AmdVector]) -> None:
    path = "/vcek/v1/Milan/crl"
    server.enqueue(path, *[FakeResponse(429, b"", {"Retry-After": "40"})] * 5)
    sleeps = Sleeps()
    with (
        _fetcher(server, sleep=sleeps, retry=RetryPolicy(max_attempts=10, max_total_wait=100)) as f,
        pytest.raises(CollateralUnavailableError),
    ):
        f.fetch_amd_crl(product="Milan", at=AT)
    assert sleeps.calls == [40.0, 40.0]


def test_429_without_retry_after_backs_off_and_http_date_is_understood(
    server: FakeVendorServer, amd: list[AmdVector]
) -> None:
    path = "/vcek/v1/Milan/crl"
    later = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True
    )
    server.enqueue(
        path,
        FakeResponse(429, b""),
        FakeResponse(429, b""),
        FakeResponse(503, b"", {"Retry-After": later}),
    )
    sleeps = Sleeps()
    with _fetcher(server, sleep=sleeps) as f:
        coll = f.fetch_amd_crl(product="Milan", at=AT)
    assert len(coll.crls) == 1
    assert sleeps.calls[:2] == [2.0, 4.0]
    assert 25 <= sleeps.calls[2] <= 30


def test_500_is_not_retried(server: FakeVendorServer, amd: list[AmdVector]) -> None:
    path = "/vcek/v1/Milan/crl"
    server.enqueue(path, FakeResponse(503, b"down"))
    sleeps = Sleeps()
    with _fetcher(server, sleep=sleeps) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_amd_crl(product="Milan", at=AT)
    assert ei.value.code == "collateral.server_error"
    assert sleeps.calls == [] and server.count(path) == 1


async def test_async_rate_limit_under_trio(server: FakeVendorServer, amd: list[AmdVector]) -> None:
    a = next(v for v in amd if v.product == "Turin")
    server.enqueue(f"/vcek/v1/Turin/{a.hwid}", FakeResponse(429, b"", {"Retry-After": "0"}))
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    async with AsyncCollateralFetcher(
        kds_url=server.base_url, cache=False, verify=server.ca_file, sleep=sleep
    ) as f:
        coll = await f.fetch_amd(product="Turin", chip_id=a.hwid, tcb=_tcb(a), at=AT)
    assert coll.certificates[0] == a.der
    assert slept == [0.0]


def test_module_function(server: FakeVendorServer, amd: list[AmdVector]) -> None:
    a = amd[0]
    coll = fetch_amd_vcek(
        product=a.product,
        chip_id=a.hwid,
        tcb=_tcb(a),
        kds_url=server.base_url,
        cache=False,
        verify=server.ca_file,
        at=AT,
    )
    assert coll.certificates == (a.der,)


def test_hwid_for() -> None:
    assert hwid_for("Turin", "AB" * 8 + "00" * 56) == "ab" * 8
    assert hwid_for("Milan-B0", bytes([1]) * 64) == "01" * 64
