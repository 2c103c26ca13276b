"""TCG log parser, encoder, replay rules and CCEL table on synthetic logs (no vectors needed)."""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.errors import (
    ConfigurationError,
    EvidenceParseError,
    UnsupportedEvidenceError,
    VerificationError,
)
from atls.evidence.eventlog import (
    ALG_IDS,
    CcelTable,
    SpecIdEvent,
    TcgEvent,
    TcgLog,
    check_replay,
    efi_apps,
    encode_ccel_table,
    encode_tcg_log,
    event_data_verified,
    event_type_name,
    parse_ccel,
    parse_ccel_table,
    parse_tcg_log,
    parse_uefi_variable,
    platform_state,
    replay,
    replay_rtmrs,
    rtmr_for_mr_index,
    secure_boot_state,
)
from atls.evidence.eventlog._tcg import MAX_EVENTS

EV_NO_ACTION = 3
EV_SEPARATOR = 4
EV_S_CRTM_VERSION = 8
EV_POST_CODE = 1
EV_EFI_ACTION = 0x80000007
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
SHA1, SHA256, SHA384 = ALG_IDS["sha1"], ALG_IDS["sha256"], ALG_IDS["sha384"]
GLOBAL = bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c")  # EFI_GLOBAL_VARIABLE, mixed-endian


def spec(*banks: str, vendor: bytes = b"") -> SpecIdEvent:
    algs = tuple((ALG_IDS[b], hashlib.new(b).digest_size) for b in banks)
    return SpecIdEvent(0, 0, 2, 0, 2, algs, vendor)


def ev(index: int, etype: int, data: bytes, banks: tuple[str, ...] = ("sha256",)) -> TcgEvent:
    return TcgEvent.measure(index, etype, data, banks)


def ext(reg: bytes, data: bytes, bank: str = "sha256") -> bytes:
    """Independent extend: H(reg || H(data))."""
    return hashlib.new(bank, reg + hashlib.new(bank, data).digest()).digest()


def uefi_var(guid: bytes, name: str, data: bytes) -> bytes:
    n = name.encode("utf-16-le")
    return guid + (len(name)).to_bytes(8, "little") + len(data).to_bytes(8, "little") + n + data


# --- parsing -------------------------------------------------------------------------------


def test_crypto_agile_layout_by_hand() -> None:
    # one Spec ID event (SHA-256) and one separator, built byte by byte from the spec layout
    spec_data = (
        b"Spec ID Event03\x00"
        + (0).to_bytes(4, "little")
        + bytes([0, 2, 0, 2])
        + (1).to_bytes(4, "little")
        + SHA256.to_bytes(2, "little")
        + (32).to_bytes(2, "little")
        + b"\x00"
    )
    header = (0).to_bytes(4, "little") + (3).to_bytes(4, "little") + bytes(20)
    header += len(spec_data).to_bytes(4, "little") + spec_data
    digest = hashlib.sha256(bytes(4)).digest()
    rec = (7).to_bytes(4, "little") + (4).to_bytes(4, "little") + (1).to_bytes(4, "little")
    rec += SHA256.to_bytes(2, "little") + digest + (4).to_bytes(4, "little") + bytes(4)
    log = parse_tcg_log(header + rec)
    assert log.crypto_agile and log.banks == ("sha256",)
    assert log.spec_id == spec("sha256")
    (e,) = log.events
    assert (e.index, e.event_type, e.type_name, e.data) == (7, 4, "EV_SEPARATOR", bytes(4))
    assert e.digest("sha256") == digest and e.digest("sha1") is None and e.offset == len(header)
    assert encode_tcg_log(log) == header + rec
    assert replay(log.events, bank="sha256") == {7: ext(bytes(32), bytes(4))}


def test_legacy_log() -> None:
    d = hashlib.sha1(b"v1").digest()
    rec = (0).to_bytes(4, "little") + (8).to_bytes(4, "little") + d + (2).to_bytes(4, "little")
    log = parse_tcg_log(rec + b"v1")
    assert not log.crypto_agile and log.banks == ("sha1",)
    assert log.events[0].digests == ((SHA1, d),)
    assert replay(log.events, bank="sha1")[0] == ext(bytes(20), b"v1", "sha1")
    with pytest.raises(UnsupportedEvidenceError) as ei:
        replay(log.events, bank="sha256")
    assert ei.value.code == "eventlog.bank"


def test_other_spec_id_versions_are_legacy_logs() -> None:
    data = b"Spec ID Event02\x00" + bytes(8)
    rec = (0).to_bytes(4, "little") + (3).to_bytes(4, "little") + bytes(20)
    log = parse_tcg_log(rec + len(data).to_bytes(4, "little") + data)
    assert not log.crypto_agile and log.events[0].type_name == "EV_NO_ACTION"


def _agile(*events: TcgEvent, banks: tuple[str, ...] = ("sha256",)) -> bytes:
    return encode_tcg_log(TcgLog(spec(*banks), tuple(events)))


def test_padding_ff_and_zero() -> None:
    body = _agile(ev(0, EV_SEPARATOR, bytes(4)))
    for fill in (0x00, 0xFF):
        log = parse_tcg_log(body + bytes([fill]) * 1000)
        assert log.padding == 1000 and len(log.events) == 1
        with pytest.raises(EvidenceParseError, match="padding"):
            parse_tcg_log(body + bytes([fill]) * 3, allow_padding=False)
    # a short tail of fill (less than a header) is padding too
    assert parse_tcg_log(body + b"\xff" * 3).padding == 3
    # padding that is not uniform is parsed as a record and rejected
    with pytest.raises(EvidenceParseError):
        parse_tcg_log(body + b"\xff" * 100 + b"\x01" + b"\xff" * 10)
    with pytest.raises(EvidenceParseError):
        parse_tcg_log(b"\xff" * 64)
    with pytest.raises(EvidenceParseError):
        parse_tcg_log(b"")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        # digestCount larger than the algorithm table
        (lambda b, o: b[: o + 8] + (2**32 - 1).to_bytes(4, "little") + b[o + 12 :], "digestCount"),
        # an algorithm not in the Spec ID table
        (lambda b, o: b[: o + 12] + (0x0012).to_bytes(2, "little") + b[o + 14 :], "algorithmId"),
        # eventSize beyond the end
        (lambda b, o: b[: o + 46] + (2**31).to_bytes(4, "little") + b[o + 50 :], "event"),
        # truncated inside the digest
        (lambda b, o: b[: o + 20], "digest"),
    ],
)
def test_lying_records(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    body = _agile(ev(0, EV_SEPARATOR, bytes(4)))
    off = parse_tcg_log(body).events[0].offset
    with pytest.raises(EvidenceParseError) as ei:
        parse_tcg_log(mutate(body, off))
    assert ei.value.code == "eventlog.parse" and ei.value.field == field


def test_duplicate_digest_algorithm() -> None:
    e = TcgEvent(0, EV_SEPARATOR, ((SHA256, bytes(32)), (SHA256, bytes(32))), bytes(4))
    raw = encode_tcg_log(TcgLog(spec("sha256", "sha384"), (e,)))
    with pytest.raises(EvidenceParseError, match="twice"):
        parse_tcg_log(raw)


@pytest.mark.parametrize(
    ("algs", "match"),
    [
        (((SHA256, 20),), "digest size"),  # known algorithm with a wrong size
        (((0x7777, 0),), "digest size"),
        (((0x7777, 65),), "digest size"),
        (((SHA256, 32), (SHA256, 32)), "declared twice"),
    ],
)
def test_bad_spec_id_tables(algs: tuple[tuple[int, int], ...], match: str) -> None:
    raw = encode_tcg_log(TcgLog(SpecIdEvent(0, 0, 2, 0, 2, algs), ()))
    with pytest.raises(EvidenceParseError, match=match):
        parse_tcg_log(raw)


def test_spec_id_structure_checks() -> None:
    good = encode_tcg_log(TcgLog(spec("sha256"), ()))
    # numberOfAlgorithms absurd (offset: 32-byte header + 16 sig + 8)
    bad = good[:56] + (0x40000000).to_bytes(4, "little") + good[60:]
    with pytest.raises(EvidenceParseError, match="numberOfAlgorithms"):
        parse_tcg_log(bad)
    bad = good[:56] + (0).to_bytes(4, "little") + good[60:]
    with pytest.raises(EvidenceParseError, match="numberOfAlgorithms"):
        parse_tcg_log(bad)
    # uintnSize must be 1 or 2
    bad = good[:55] + b"\x03" + good[56:]
    with pytest.raises(EvidenceParseError, match="uintnSize"):
        parse_tcg_log(bad)
    # trailing bytes inside the Spec ID event (eventSize too large by one)
    size = int.from_bytes(good[28:32], "little")
    bad = good[:28] + (size + 1).to_bytes(4, "little") + good[32:] + b"\x00"
    with pytest.raises(EvidenceParseError):
        parse_tcg_log(bad)
    # the header digest must be zero, its type EV_NO_ACTION
    with pytest.raises(EvidenceParseError, match="SHA-1 digest"):
        parse_tcg_log(good[:8] + b"\x01" + good[9:])
    with pytest.raises(EvidenceParseError, match="EV_NO_ACTION"):
        parse_tcg_log(good[:4] + (1).to_bytes(4, "little") + good[8:])
    # crypto-agile logs are version 2.x
    with pytest.raises(UnsupportedEvidenceError):
        parse_tcg_log(good[:53] + b"\x01" + good[54:])


def test_event_type_names() -> None:
    assert event_type_name(0x80000001) == "EV_EFI_VARIABLE_DRIVER_CONFIG"
    assert event_type_name(3) == "EV_NO_ACTION"
    assert event_type_name(0x12345) == "0x00012345"


# --- replay rules -------------------------------------------------------------------------


def locality_event(loc: int, banks: tuple[str, ...] = ("sha256",)) -> TcgEvent:
    digests = tuple((ALG_IDS[b], bytes(hashlib.new(b).digest_size)) for b in banks)
    return TcgEvent(0, EV_NO_ACTION, digests, b"StartupLocality\x00" + bytes([loc]))


def test_replay_rules() -> None:
    events = [
        locality_event(3, ("sha1", "sha256")),
        ev(0, EV_S_CRTM_VERSION, b"fw", ("sha1", "sha256")),
        ev(0, EV_NO_ACTION, b"not extended", ("sha1", "sha256")),
        ev(7, EV_SEPARATOR, bytes(4), ("sha1", "sha256")),
        ev(7, EV_SEPARATOR, bytes(4), ("sha1", "sha256")),
    ]
    for bank, size in (("sha1", 20), ("sha256", 32)):
        regs = replay(events, bank=bank)
        # PCR0 starts at 0^(n-1) || 3, the EV_NO_ACTION event is skipped
        assert regs[0] == ext(bytes(size - 1) + b"\x03", b"fw", bank)
        assert regs[7] == ext(ext(bytes(size), bytes(4), bank), bytes(4), bank)
        assert set(regs) == {0, 7}
    # a locality alone sets PCR0
    assert replay([locality_event(4)], bank="sha256") == {0: bytes(31) + b"\x04"}


@pytest.mark.parametrize(
    "events",
    [
        [ev(0, EV_S_CRTM_VERSION, b"fw"), locality_event(3)],  # after PCR0 was extended
        [locality_event(3), locality_event(3)],  # twice
        [locality_event(2)],  # locality 2 cannot start PCR0
        [TcgEvent(0, EV_NO_ACTION, ((SHA256, bytes(32)),), b"StartupLocality\x00\x03\x00")],
    ],
)
def test_bad_startup_locality(events: list[TcgEvent]) -> None:
    with pytest.raises(VerificationError) as ei:
        replay(events, bank="sha256")
    assert ei.value.code == "eventlog.locality"


def test_check_replay_names_every_bad_register() -> None:
    events = [ev(0, EV_POST_CODE, b"a"), ev(4, EV_POST_CODE, b"b"), ev(7, EV_POST_CODE, b"c")]
    good = {f"pcr{i}": v for i, v in replay(events, bank="sha256").items()}
    check_replay(events, good)
    check_replay(events, {"pcr9": bytes(32)})  # untouched registers are zero
    bad = dict(good, pcr4=bytes(32), pcr7=b"\x01" * 32)
    with pytest.raises(VerificationError) as ei:
        check_replay(events, bad, bank="sha256")
    assert ei.value.code == "eventlog.replay_mismatch"
    msg = str(ei.value)
    assert "pcr4 (sha256)" in msg and "pcr7 (sha256)" in msg and "pcr0" not in msg
    with pytest.raises(VerificationError):
        check_replay(events, {"pcr9": b"\x01" * 32})


@pytest.mark.parametrize(
    "expected",
    [{}, {"pcr0": bytes(32), "rtmr0": bytes(48)}, {"foo": bytes(32)}, {"pcr0": bytes(7)}],
)
def test_check_replay_argument_errors(expected: dict[str, bytes]) -> None:
    with pytest.raises(ConfigurationError) as ei:
        check_replay([ev(0, EV_POST_CODE, b"a")], expected)
    assert ei.value.code == "eventlog.expected"


def test_ccel_register_mapping() -> None:
    assert [rtmr_for_mr_index(i) for i in (1, 2, 3, 4)] == [0, 1, 2, 3]
    for bad in (0, 5, 0xFFFFFFFF):
        with pytest.raises(VerificationError) as ei:
            rtmr_for_mr_index(bad)
        assert ei.value.code == "eventlog.bad_index"
    events = [ev(1, EV_SEPARATOR, bytes(4), ("sha384",)), ev(4, EV_POST_CODE, b"x", ("sha384",))]
    r = replay_rtmrs(events)
    assert r == {
        0: ext(bytes(48), bytes(4), "sha384"),
        1: bytes(48),
        2: bytes(48),
        3: ext(bytes(48), b"x", "sha384"),
    }
    check_replay(events, {"rtmr0": r[0], "rtmr3": r[3], "rtmr1": bytes(48)})
    # MRTD (index 0) cannot be extended by a log
    raw = encode_tcg_log(TcgLog(spec("sha384"), (ev(0, EV_POST_CODE, b"x", ("sha384",)),), 1))
    with pytest.raises(VerificationError) as ei:
        parse_ccel(raw)
    assert ei.value.code == "eventlog.bad_index"


# --- CCEL table ----------------------------------------------------------------------------

TABLE = CcelTable(1, b"INTEL ", b"EDK2    ", 2, b"    ", 0x01000013, 2, 0, 0x10000, 0xBEDBF000)


def test_ccel_table_round_trip_and_checks() -> None:
    raw = encode_ccel_table(TABLE)
    assert len(raw) == 56 and sum(raw) % 256 == 0
    assert parse_ccel_table(raw) == TABLE
    with pytest.raises(EvidenceParseError, match="checksum"):
        parse_ccel_table(raw[:20] + bytes([raw[20] ^ 1]) + raw[21:])
    with pytest.raises(EvidenceParseError):  # reserved word not zero (checksum kept right)
        b = bytearray(raw)
        b[38] = 1
        b[9] = (b[9] - 1) & 0xFF
        parse_ccel_table(bytes(b))
    # upstream go-eventlog TestParseCCACPITable: bad signature, bad length
    with pytest.raises(EvidenceParseError):
        parse_ccel_table(bytes([ord("A"), ord("B"), ord("C"), ord("D"), 56, 1, 2, 3, 4]))
    with pytest.raises(EvidenceParseError):
        parse_ccel_table(b"CCEL" + bytes([48, 0, 0, 0]))
    with pytest.raises(EvidenceParseError):
        parse_ccel_table(raw + b"\x00")


def test_ccel_table_gates_the_area() -> None:
    log = encode_tcg_log(TcgLog(spec("sha384"), (ev(1, EV_SEPARATOR, bytes(4), ("sha384",)),), 1))
    area = log + b"\xff" * (0x10000 - len(log))
    assert parse_ccel(area, table=encode_ccel_table(TABLE)).padding == 0x10000 - len(log)
    sev = CcelTable(*[*TABLE.__dict__.values()][:6], 1, 0, 0x10000, 0)
    with pytest.raises(UnsupportedEvidenceError):
        parse_ccel(area, table=encode_ccel_table(sev))
    with pytest.raises(EvidenceParseError, match="LAML"):
        parse_ccel(area + b"\xff", table=encode_ccel_table(TABLE))
    legacy = (1).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(20) + bytes(4)
    with pytest.raises(EvidenceParseError, match="crypto-agile"):
        parse_ccel(legacy)


@pytest.mark.vectors
def test_real_ccel_table(vectors: Path) -> None:
    raw = (vectors / "tdx/go-tdx-guest/ccel/ccel_table.dat").read_bytes()
    t = parse_ccel_table(raw)
    assert (t.revision, t.cc_type, t.cc_subtype, t.laml, t.lasa) == (1, 2, 0, 0x40000, 0xBEDBF000)
    assert encode_ccel_table(t) == raw


# --- UEFI event checks -----------------------------------------------------------------------


def test_uefi_variable() -> None:
    v = parse_uefi_variable(uefi_var(GLOBAL, "SecureBoot", b"\x01"))
    assert (str(v.vendor_guid), v.name, v.data) == (
        "8be4df61-93ca-11d2-aa0d-00e098032b8c",
        "SecureBoot",
        b"\x01",
    )
    with pytest.raises(EvidenceParseError):
        parse_uefi_variable(uefi_var(GLOBAL, "X", b"") + b"\x00")
    assert parse_uefi_variable(uefi_var(GLOBAL, "X", b"") + b"\x00", strict=False).name == "X"
    huge = GLOBAL + (2**63).to_bytes(8, "little") + bytes(8)
    with pytest.raises(EvidenceParseError):
        parse_uefi_variable(huge)
    with pytest.raises(EvidenceParseError):
        parse_uefi_variable(GLOBAL + (1).to_bytes(8, "little") + bytes(8) + b"\x00\xd8")


def sb_log(sb_value: bytes, *extra: TcgEvent) -> list[TcgEvent]:
    evs = [ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, uefi_var(GLOBAL, "SecureBoot", sb_value))]
    return [*evs, *extra, ev(7, EV_SEPARATOR, bytes(4))]


def test_secure_boot_state_rules() -> None:
    assert secure_boot_state(sb_log(b"\x01"), bank="sha256").enabled
    assert not secure_boot_state(sb_log(b"\x00"), bank="sha256").enabled
    cases = [
        (sb_log(b""), "length is 0, expected 1"),
        (
            sb_log(
                b"\x01",
                ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, uefi_var(GLOBAL, "SecureBoot", b"\x00")),
            ),
            "measured twice",
        ),
        ([*sb_log(b"\x01"), ev(7, EV_SEPARATOR, bytes(4))], "second separator"),
        (
            [*sb_log(b"\x01"), ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, uefi_var(GLOBAL, "PK", b""))],
            "after the separator",
        ),
        (sb_log(b"\x01", ev(7, EV_EFI_ACTION, b"UEFI Debug Mode")), "debugger"),
        (sb_log(b"\x01", ev(7, 0x800000E0, uefi_var(GLOBAL, "db", b"c"))), "before the separator"),
    ]
    for events, match in cases:
        with pytest.raises(VerificationError, match=match) as ei:
            secure_boot_state(events, bank="sha256")
        assert ei.value.code == "eventlog.secure_boot"
    # the data must match the digest: a relabelled value is refused
    forged = TcgEvent(
        7,
        EV_EFI_VARIABLE_DRIVER_CONFIG,
        ((SHA256, hashlib.sha256(uefi_var(GLOBAL, "SecureBoot", b"\x00")).digest()),),
        uefi_var(GLOBAL, "SecureBoot", b"\x01"),
    )
    with pytest.raises(VerificationError, match="does not match"):
        secure_boot_state([forged], bank="sha256")


def test_separator_lookalike_is_refused() -> None:
    # an event carrying a separator digest under another type (go-attestation's
    # event-log-disclosure attack) is an error, not a silent skip
    fake = TcgEvent(0, EV_POST_CODE, ((SHA256, hashlib.sha256(bytes(4)).digest()),), bytes(4))
    with pytest.raises(VerificationError, match="separator digest") as ei:
        platform_state([fake], bank="sha256")
    assert ei.value.code == "eventlog.event_data"
    bad_data = TcgEvent(
        0, EV_SEPARATOR, ((SHA256, hashlib.sha256(b"\x01" * 4).digest()),), b"\x01" * 4
    )
    with pytest.raises(VerificationError):
        platform_state([bad_data], bank="sha256")


def test_efi_apps_rules() -> None:
    calling = ev(4, EV_EFI_ACTION, b"Calling EFI Application from Boot Option")
    app = TcgEvent(4, EV_EFI_BOOT_SERVICES_APPLICATION, ((SHA256, b"\xaa" * 32),), b"")
    exit_ = ev(5, EV_EFI_ACTION, b"Exit Boot Services Invocation")
    assert efi_apps([calling, app, exit_], bank="sha256") == (b"\xaa" * 32,)
    assert efi_apps([calling, app], bank="sha256") is None  # no ExitBootServices
    # apps after ExitBootServices are not reported
    assert efi_apps([calling, app, exit_, app], bank="sha256") == (b"\xaa" * 32,)
    for events, match in [
        ([app, calling, exit_], "before the CallingEFIApplication"),
        ([calling, calling, exit_], "second CallingEFIApplication"),
        ([ev(4, EV_SEPARATOR, bytes(4)), calling, exit_], "after the separator"),
    ]:
        with pytest.raises(VerificationError, match=match) as ei:
            efi_apps(events, bank="sha256")
        assert ei.value.code == "eventlog.efi_apps"
    relabelled = TcgEvent(4, EV_POST_CODE, calling.digests, calling.data)
    with pytest.raises(VerificationError, match="non-EV_EFI_ACTION"):
        efi_apps([relabelled], bank="sha256")


def test_event_data_verified() -> None:
    assert event_data_verified(ev(0, EV_EFI_ACTION, b"x"), "sha256") is True
    assert event_data_verified(ev(0, EV_POST_CODE, b"x"), "sha256") is None
    forged = TcgEvent(0, EV_EFI_ACTION, ((SHA256, bytes(32)),), b"x")
    assert event_data_verified(forged, "sha256") is False
    # EV_EFI_VARIABLE_BOOT: either H(VariableData) or H(whole structure)
    var = uefi_var(GLOBAL, "Boot0000", b"\x01\x02")
    for pre in (b"\x01\x02", var):
        e = TcgEvent(1, 0x80000002, ((SHA256, hashlib.sha256(pre).digest()),), var)
        assert event_data_verified(e, "sha256") is True
    with pytest.raises(UnsupportedEvidenceError):
        event_data_verified(forged, "sha384")


# --- properties ----------------------------------------------------------------------------

_banks = st.lists(
    st.sampled_from(["sha1", "sha256", "sha384", "sha512", "sm3_256"]),
    min_size=1,
    max_size=4,
    unique=True,
)


@st.composite
def _logs(draw: st.DrawFn) -> TcgLog:
    if draw(st.booleans()):
        events = draw(
            st.lists(
                st.builds(
                    lambda i, t, d, data: TcgEvent(i, t, ((SHA1, d),), data),
                    st.integers(0, 2**32 - 1),
                    st.integers(0, 2**32 - 1),
                    st.binary(min_size=20, max_size=20),
                    st.binary(max_size=40),
                ),
                max_size=6,
            )
        )
        # records whose header looks like fill could be read as padding: keep them apart
        events = [
            TcgEvent(1, 1, e.digests, e.data)
            if {e.index, e.event_type} <= {0} or {e.index, e.event_type} <= {0xFFFFFFFF}
            else e
            for e in events
        ]
        # ... and a first record must not read as a Spec ID event
        events = [e for e in events if e.data[:16] != b"Spec ID Event03\x00"]
        return TcgLog(None, tuple(events)) if events else TcgLog(None, (ev(1, 1, b"", ("sha1",)),))
    banks = draw(_banks)
    algs = tuple(
        (ALG_IDS[b], hashlib.new("sm3" if b == "sm3_256" else b).digest_size) for b in banks
    )
    order = draw(st.permutations(list(algs)))
    events = draw(
        st.lists(
            st.builds(
                lambda i, t, data, seed: TcgEvent(
                    i,
                    t,
                    tuple((a, hashlib.shake_256(seed + bytes([a])).digest(n)) for a, n in order),
                    data,
                ),
                st.integers(0, 30),
                st.integers(0, 2**32 - 1),
                st.binary(max_size=40),
                st.binary(max_size=4),
            ),
            max_size=6,
        )
    )
    s = SpecIdEvent(
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 255)),
        2,
        draw(st.integers(0, 255)),
        draw(st.sampled_from([1, 2])),
        algs,
        draw(st.binary(max_size=10)),
    )
    return TcgLog(s, tuple(events), draw(st.integers(0, 4)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_logs(), st.integers(0, 100), st.sampled_from([0x00, 0xFF]))
def test_encode_parse_round_trip(log: TcgLog, padding: int, fill: int) -> None:
    raw = encode_tcg_log(log, padding=padding, fill=fill)
    parsed = parse_tcg_log(raw)
    assert parsed == log and parsed.padding == padding
    assert encode_tcg_log(parsed) == raw[: len(raw) - parsed.padding]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    try:
        log = parse_tcg_log(data)
    except (EvidenceParseError, UnsupportedEvidenceError) as e:
        assert e.code in ("eventlog.parse", "eventlog.unsupported")
        return
    for bank in log.banks:
        with contextlib.suppress(VerificationError, UnsupportedEvidenceError):
            replay(log.events, bank=bank)


_HEADER = encode_tcg_log(TcgLog(spec("sha1", "sha256"), ()))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_records_after_a_valid_header(tail: bytes) -> None:
    try:
        parse_tcg_log(_HEADER + tail)
    except EvidenceParseError as e:
        assert e.code == "eventlog.parse" and e.offset is not None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_flipped_bytes_never_crash(data: st.DataObject) -> None:
    raw = bytearray(
        _agile(
            ev(0, EV_SEPARATOR, bytes(4), ("sha1", "sha256")),
            ev(7, EV_EFI_ACTION, b"hello", ("sha1", "sha256")),
            banks=("sha1", "sha256"),
        )
    )
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
        parse_tcg_log(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_random_ccel_tables(data: bytes) -> None:
    with contextlib.suppress(EvidenceParseError):
        parse_ccel_table(data)


def test_event_count_and_cost_are_bounded() -> None:
    # records whose headers look like fill must not make the padding check quadratic
    many = tuple(TcgEvent(0, 0, ((SHA1, b"\x01" * 20),), b"") for _ in range(30_000))
    raw = encode_tcg_log(TcgLog(spec("sha1"), many))
    t = time.perf_counter()
    assert len(parse_tcg_log(raw).events) == 30_000
    assert time.perf_counter() - t < 5
    small = TcgEvent(1, 1, ((SHA1, bytes(20)),), b"")
    too_many = encode_tcg_log(TcgLog(spec("sha1"), (small,) * (MAX_EVENTS + 1)))
    with pytest.raises(EvidenceParseError, match="more than"):
        parse_tcg_log(too_many)
