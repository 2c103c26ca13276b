"""Real event logs from the shared vectors: every upstream (or collector) assertion recorded in
PROVENANCE.md / measure/PROVENANCE.md for an event log, turned into a test."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from atls.errors import EvidenceParseError, VerificationError
from atls.evidence.eventlog import (
    CcelTable,
    TcgLog,
    check_event_data,
    check_replay,
    efi_apps,
    encode_tcg_log,
    event_data_verified,
    hash_bank,
    parse_ccel,
    parse_ccel_table,
    parse_tcg_log,
    platform_state,
    replay,
    replay_rtmrs,
    secure_boot_state,
)

pytestmark = pytest.mark.vectors

GO_TPM_TOOLS = [
    "arch-linux-workstation",
    "confidential-gke-debug-251000_eventlog",
    "cos-101-amd-sev",
    "cos-85-amd-sev",
    "cos-93-amd-sev",
    "debian-10",
    "eventlogwithsp800155",
    "gdc-host",
    "glinux-alex",
    "rhel8-uefi",
    "ubuntu-1804-amd-sev",
    "ubuntu-2104-no-dbx",
    "ubuntu-2104-no-secure-boot",
    "ubuntu-2404-amd-sevsnp",
]
TPM2_TOOLS = [
    "event-bootorder",
    "event-moklisttrusted",
    "event-postcode",
    "event-sd-boot-fedora37",
    "event-uefi-sha1-log",
]
# trustee deps/eventlog: log -> expected decoding
TRUSTEE = {
    "eventlog/trustee/CCEL_AAEL_alibabacloud": "eventlog/trustee/CCEL_AAEL_alibabacloud_out.json",
    "eventlog/trustee/CCEL_data_csv": "eventlog/trustee/CCEL_data_csv_out.json",
    "eventlog/trustee/CCEL_data_grub": "eventlog/trustee/CCEL_data_grub_out.json",
    "eventlog/trustee/CCEL_data_grub_gke": "eventlog/trustee/CCEL_data_grub_gke_out.json",
    "tdx/trustee/CCEL_data_ovmf": "eventlog/trustee/CCEL_data_ovmf_out.json",
    "tdx/trustee/CCEL_data": "eventlog/trustee/CCEL_data_out.json",
}
TRUSTEE_ALGS = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SM3": "sm3_256"}
# trustee's docs: the event types whose digest it compares with a hash of the event data
TRUSTEE_CHECKED = {
    "EV_EFI_ACTION",
    "EV_SEPARATOR",
    "EV_EFI_VARIABLE_AUTHORITY",
    "EV_EFI_GPT_EVENT",
    "EV_EVENT_TAG",
    "EV_EFI_VARIABLE_DRIVER_CONFIG",
}


def _log(vectors: Path, rel: str) -> TcgLog:
    return parse_tcg_log((vectors / rel).read_bytes())


def _quote_rtmrs(quote: bytes) -> dict[str, bytes]:
    """RTMR0..3 of a TDX quote at their fixed offsets (interop-formats.md section 0: v4 body
    at 48, RTMR0 at 376; v5 bodies move by +6). Not a quote verifier."""
    version = int.from_bytes(quote[:2], "little")
    assert version in (4, 5)
    base = 376 + (6 if version == 5 else 0)
    return {f"rtmr{i}": quote[base + 48 * i : base + 48 * (i + 1)] for i in range(4)}


def _facts_rtmrs(vectors: Path, key: str) -> dict[str, bytes]:
    facts = json.loads((vectors / "tdx/EXPECTED_FACTS.json").read_text())[key]
    return {f"rtmr{i}": bytes.fromhex(facts[f"rt_mr{i}"]) for i in range(4)}


# --- google/go-tpm-tools: 14 real binary_bios_measurements -----------------------------------


@pytest.mark.parametrize("name", GO_TPM_TOOLS)
def test_go_tpm_tools_logs_replay_to_expected_pcrs(vectors: Path, name: str) -> None:
    log = _log(vectors, f"eventlog/go-tpm-tools/{name}.bin")
    expected = json.loads((vectors / f"eventlog/go-tpm-tools/{name}.expected.json").read_text())
    assert expected["expected_pcrs"]
    for bank, pcrs in expected["expected_pcrs"].items():
        check_replay(log.events, {f"pcr{i}": bytes.fromhex(v) for i, v in pcrs.items()}, bank=bank)
        # without bank=, the bank is inferred from the digest size
        check_replay(log.events, {f"pcr{i}": bytes.fromhex(v) for i, v in pcrs.items()})


def test_debian10_is_a_legacy_sha1_log(vectors: Path) -> None:
    log = _log(vectors, "eventlog/go-tpm-tools/debian-10.bin")
    assert not log.crypto_agile and log.spec_id is None and log.banks == ("sha1",)
    assert all(e.banks == ("sha1",) for e in log.events)


def test_debian10_replay_fails_against_a_bad_pcr0(vectors: Path) -> None:
    # upstream TestParseMachineStateReplayFail: PCR0 = 4 zero bytes must fail to replay
    log = _log(vectors, "eventlog/go-tpm-tools/debian-10.bin")
    with pytest.raises(VerificationError) as ei:
        check_replay(log.events, {"pcr0": bytes(4)}, bank="sha1")
    assert ei.value.code == "eventlog.replay_mismatch"
    assert "pcr0" in str(ei.value)


# upstream TestParseEfiState: the EFI application digests per bank, in order
EFI_STATE_LOGS = [
    "rhel8-uefi",
    "ubuntu-1804-amd-sev",
    "ubuntu-2104-no-secure-boot",
    "cos-85-amd-sev",
    "cos-93-amd-sev",
    "cos-101-amd-sev",
]


@pytest.mark.parametrize("name", EFI_STATE_LOGS)
def test_efi_app_digests_match_upstream(vectors: Path, name: str) -> None:
    log = _log(vectors, f"eventlog/go-tpm-tools/{name}.bin")
    expected = json.loads((vectors / f"eventlog/go-tpm-tools/{name}.expected.json").read_text())
    want = expected["expected_efi_app_digests"]
    assert set(want) <= set(log.banks) and want
    for bank, digests in want.items():
        apps = efi_apps(log.events, bank=bank)
        assert apps is not None
        assert [a.hex() for a in apps] == digests


def test_debian10_reports_no_efi_apps_without_exit_boot_services(vectors: Path) -> None:
    # upstream comment: this Debian firmware does not measure ExitBootServices, so the EFI
    # application digests must not be used (later software could have logged anything)
    log = _log(vectors, "eventlog/go-tpm-tools/debian-10.bin")
    assert efi_apps(log.events, bank="sha1") is None
    listed = json.loads((vectors / "eventlog/go-tpm-tools/debian-10.expected.json").read_text())
    logged = [
        e.digest("sha1") for e in log.events if e.type_name == "EV_EFI_BOOT_SERVICES_APPLICATION"
    ]
    assert [d.hex() for d in logged if d] == listed["expected_efi_app_digests"]["sha1"]


# upstream TestParseEventLogs (loader = unsupported): these logs yield a machine state without
# error (the Ubuntu 21.04 errors there are a go-attestation certificate-parsing bug in SbatLevel;
# atls does not parse authority certificates)
CLEAN_STATE_LOGS = [
    "debian-10",
    "rhel8-uefi",
    "ubuntu-1804-amd-sev",
    "ubuntu-2104-no-dbx",
    "ubuntu-2104-no-secure-boot",
    "cos-85-amd-sev",
    "cos-93-amd-sev",
    "cos-101-amd-sev",
]


@pytest.mark.parametrize("name", CLEAN_STATE_LOGS)
def test_firmware_state_extracts_without_error(vectors: Path, name: str) -> None:
    log = _log(vectors, f"eventlog/go-tpm-tools/{name}.bin")
    for bank in log.banks:
        ps = platform_state(log.events, bank=bank)
        assert ps.scrtm_version  # GCE firmware logs a version string
        sb = secure_boot_state(log.events, bank=bank)
        assert set(sb.variables) == {"SecureBoot", "PK", "KEK", "db", "dbx"}


def test_secure_boot_state_values(vectors: Path) -> None:
    # upstream TestParseSecureBootState: the Ubuntu 18.04 SEV log has a populated db
    # (Microsoft certificates); RHEL 8 booted with Secure Boot on, Ubuntu 21.04 off
    ub = _log(vectors, "eventlog/go-tpm-tools/ubuntu-1804-amd-sev.bin")
    sb = secure_boot_state(ub.events, bank="sha256")
    assert b"Microsoft Corporation UEFI CA 2011" in sb.variables["db"]
    assert b"Microsoft Windows Production PCA 2011" in sb.variables["db"]
    rhel = _log(vectors, "eventlog/go-tpm-tools/rhel8-uefi.bin")
    assert secure_boot_state(rhel.events, bank="sha1").enabled
    nosb = _log(vectors, "eventlog/go-tpm-tools/ubuntu-2104-no-secure-boot.bin")
    assert not secure_boot_state(nosb.events, bank="sha256").enabled


def test_old_shim_authority_quirk_is_reported(vectors: Path) -> None:
    # COS 85 ships a shim whose authority event carries one unmeasured byte (go-attestation
    # issue 157); upstream accepts the log, atls too, but says so
    log = _log(vectors, "eventlog/go-tpm-tools/cos-85-amd-sev.bin")
    sb = secure_boot_state(log.events, bank="sha256")
    assert sb.quirks and "shim" in sb.quirks[0]
    assert sb.enabled


def test_arch_linux_rejected_for_its_known_failures(vectors: Path) -> None:
    # upstream archLinuxKnownParsingFailures: "SecureBoot data len is 0, expected 1" and
    # "found EFIBootServicesApplication in PCR4 before CallingEFIApp event"
    log = _log(vectors, "eventlog/go-tpm-tools/arch-linux-workstation.bin")
    for bank in log.banks:
        with pytest.raises(VerificationError) as ei:
            secure_boot_state(log.events, bank=bank)
        assert ei.value.code == "eventlog.secure_boot"
        assert "SecureBoot variable data length is 0, expected 1" in str(ei.value)
        with pytest.raises(VerificationError) as ei:
            efi_apps(log.events, bank=bank)
        assert ei.value.code == "eventlog.efi_apps"
        assert "EFI application before the CallingEFIApplication event" in str(ei.value)


def test_gdc_host_rejected_for_its_scrtm_version_event(vectors: Path) -> None:
    # upstream: GdcHost fails with "invalid SCRTM version event for PCR0"
    log = _log(vectors, "eventlog/go-tpm-tools/gdc-host.bin")
    with pytest.raises(VerificationError) as ei:
        platform_state(log.events, bank="sha256")
    assert ei.value.code == "eventlog.event_data"
    assert "S-CRTM version event in PCR0 does not match its digest" in str(ei.value)
    scrtm = next(e for e in log.events if e.type_name == "EV_S_CRTM_VERSION")
    assert event_data_verified(scrtm, "sha256") is False
    with pytest.raises(VerificationError):
        check_event_data(log.events, bank="sha256")


@pytest.mark.parametrize("name", ["glinux-alex", "gdc-host"])
def test_startup_locality_sets_pcr0(vectors: Path, name: str) -> None:
    # these two logs carry a StartupLocality event: without it PCR0 no longer replays
    log = _log(vectors, f"eventlog/go-tpm-tools/{name}.bin")
    loc = [e for e in log.events if e.data.startswith(b"StartupLocality\x00")]
    assert len(loc) == 1 and loc[0].index == 0 and loc[0].data[-1] in (3, 4)
    expected = json.loads((vectors / f"eventlog/go-tpm-tools/{name}.expected.json").read_text())
    bank = "sha256"
    want = bytes.fromhex(expected["expected_pcrs"][bank]["0"])
    assert replay(log.events, bank=bank)[0] == want
    without = [e for e in log.events if e is not loc[0]]
    assert replay(without, bank=bank)[0] != want


# --- tpm2-software/tpm2-tools: tpm2_eventlog fixtures with expected YAML ---------------------


def _yaml_pcrs(text: str) -> dict[str, dict[str, bytes]]:
    section = text[text.index("\npcrs:") :]
    banks: dict[str, dict[str, bytes]] = {}
    current = ""
    for line in section.splitlines()[1:]:
        if m := re.match(r"^  (\w+):\s*$", line):
            current = m.group(1)
            banks[current] = {}
        elif m := re.match(r"^    (\d+)\s*: 0x([0-9a-fA-F]+)\s*$", line):
            banks[current][f"pcr{m.group(1)}"] = bytes.fromhex(m.group(2))
    return banks


@pytest.mark.parametrize("name", TPM2_TOOLS)
def test_tpm2_tools_fixtures(vectors: Path, name: str) -> None:
    raw = (vectors / f"eventlog/tpm2-tools/{name}.bin").read_bytes()
    text = (vectors / f"eventlog/tpm2-tools/{name}.bin.yaml").read_text()
    log = parse_tcg_log(raw)
    # every event in the tool's output, in order: PCR index, type and digests
    records = ([log.header] if log.header else []) + list(log.events)
    assert [int(x) for x in re.findall(r"^\s*PCRIndex: (\d+)$", text, re.M)] == [
        e.index for e in records if e is not None
    ]
    assert re.findall(r"^\s*EventType: (\w+)$", text, re.M) == [
        e.type_name for e in records if e is not None
    ]
    digests = [bytes.fromhex(d) for d in re.findall(r'^\s*Digest: "([0-9a-f]+)"$', text, re.M)]
    assert digests == [d for e in records if e is not None for _, d in e.digests]
    # and the final pcrs: section
    pcrs = _yaml_pcrs(text)
    assert pcrs
    for bank, regs in pcrs.items():
        check_replay(log.events, regs, bank=bank)


# --- confidential-containers/trustee: CCEL logs with their decodings -----------------------


@pytest.mark.parametrize("log_rel", sorted(TRUSTEE))
def test_trustee_ccel_decodings(vectors: Path, log_rel: str) -> None:
    log = parse_ccel((vectors / log_rel).read_bytes())
    out = json.loads((vectors / TRUSTEE[log_rel]).read_text())["uefi_event_logs"]
    assert len(log.events) == len(out)
    for e, o in zip(log.events, out, strict=True):
        assert e.index == o["index"]
        assert e.type_name == o["type_name"]
        assert e.data == base64.b64decode(o["event"])
        assert [(TRUSTEE_ALGS[d["alg"]], bytes.fromhex(d["digest"])) for d in o["digests"]] == [
            (b, e.digest(b)) for b in e.banks
        ]
        bank = e.banks[0]
        matches = e.type_name in TRUSTEE_CHECKED and hash_bank(bank, e.data) == e.digest(bank)
        assert matches == o["digest_matches_event"]
        # every event whose type binds its data verifies in these logs
        assert event_data_verified(e, bank) is not False


def test_trustee_sm3_log_replays_in_its_bank(vectors: Path) -> None:
    log = parse_ccel((vectors / "eventlog/trustee/CCEL_data_csv").read_bytes())
    assert log.banks == ("sm3_256",)
    rtmrs = replay_rtmrs(log.events, bank="sm3_256")
    assert all(len(v) == 32 for v in rtmrs.values())
    check_replay(log.events, {f"rtmr{i}": v for i, v in rtmrs.items()}, bank="sm3_256")


def test_trustee_ccel_data_matches_the_claims_file(vectors: Path) -> None:
    # parse_tdx_claims_expected.json lists the events parsed from tdx/trustee/CCEL_data
    claims = json.loads((vectors / "tdx/trustee/parse_tdx_claims_expected.json").read_text())
    log = parse_ccel((vectors / "tdx/trustee/CCEL_data").read_bytes())
    assert [base64.b64decode(o["event"]) for o in claims["uefi_event_logs"]] == [
        e.data for e in log.events
    ]
    raw = (vectors / "tdx/trustee/CCEL_data").read_bytes()
    # the re-encoded log is byte-identical to the area before its padding
    assert encode_tcg_log(log) + raw[len(raw) - log.padding :] == raw


# --- google/go-tdx-guest: CCEL + table + quote of one COS-113 TDX VM -------------------------


def test_go_tdx_guest_ccel_replays_to_the_quote(vectors: Path) -> None:
    d = vectors / "tdx/go-tdx-guest/ccel"
    table = parse_ccel_table((d / "ccel_table.dat").read_bytes())
    assert isinstance(table, CcelTable)
    assert table.cc_type == 2 and table.laml == 262144 and table.oem_id == b"INTEL "
    area = (d / "ccel_data.dat").read_bytes()
    log = parse_ccel(area, table=(d / "ccel_table.dat").read_bytes())
    assert len(area) == table.laml and log.padding > 0
    quote = _quote_rtmrs((d / "cos-113-tdx-quote.dat").read_bytes())
    assert quote["rtmr3"] == bytes(48)
    check_replay(log.events, quote)  # ParseCcelWithTdQuote: RTMR0-3 all equal
    # a wrong RTMR is named
    bad = dict(quote, rtmr1=bytes(48))
    with pytest.raises(VerificationError, match="rtmr1") as ei:
        check_replay(log.events, bad)
    assert ei.value.code == "eventlog.replay_mismatch"


def test_go_tdx_guest_log_refuses_a_bigger_area_than_laml(vectors: Path) -> None:
    d = vectors / "tdx/go-tdx-guest/ccel"
    with pytest.raises(EvidenceParseError):
        parse_ccel(
            (d / "ccel_data.dat").read_bytes() + b"\xff", table=(d / "ccel_table.dat").read_bytes()
        )


def test_dstack_ccel_matches_snapshot_and_tappd_quote(vectors: Path) -> None:
    raw = (vectors / "eventlog/dstack/ccel.bin").read_bytes()
    log = parse_ccel(raw)
    # 18 events, 1933 bytes used, rest 0xFF
    assert len(log.events) == 18
    assert log.padding == len(raw) - 1933 and set(raw[1933:]) == {0xFF}
    snap = (vectors / "eventlog/dstack/cc_eventlog__tests__parse_ccel.snap").read_text()
    items = re.findall(
        r'imr_index: (\d+),\s*event_type: (\d+),\s*digests: \[\s*"([0-9a-f]+)",\s*\],'
        r'\s*event: "([0-9a-f]*)"',
        snap,
    )
    assert len(items) == 18
    for (idx, etype, digest, data), e in zip(items, log.events, strict=True):
        assert (int(idx), int(etype), bytes.fromhex(digest), bytes.fromhex(data)) == (
            e.index,
            e.event_type,
            e.digest("sha384"),
            e.data,
        )
    # CC-MR 1 replays to RTMR0 of quote-from-tappd (measure/expected.json ccel_tappd.rtmr0)
    expected = json.loads((vectors / "measure/expected.json").read_text())
    rtmr0 = bytes.fromhex(expected["ccel_tappd"]["rtmr0"])
    quote = _quote_rtmrs((vectors / "tdx/dcap-qvl/quote-from-tappd.bin").read_bytes())
    assert quote == _facts_rtmrs(vectors, "tdx/dcap-qvl/quote-from-tappd.bin")
    assert quote["rtmr0"] == rtmr0
    check_replay(log.events, {"rtmr0": rtmr0})
    # same bytes in the measure/ copy
    assert (vectors / "measure/dstack/ccel.bin").read_bytes() == raw


def test_go_eventlog_cos113_dupe_separator(vectors: Path) -> None:
    raw = (
        vectors / "measure/go-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin"
    ).read_bytes()
    # upstream TestParseAndReplay: unpadded, so it parses with and without padding allowed
    log = parse_ccel(raw)
    assert parse_tcg_log(raw, allow_padding=False) == log and log.padding == 0
    assert len(log.events) == 43
    expected = json.loads((vectors / "measure/expected.json").read_text())
    want = expected["go_eventlog"]["cos113_tdx_rtmr"]
    check_replay(log.events, {f"rtmr{i}": bytes.fromhex(v) for i, v in want.items()})
    # the duplicated separator is replayed as logged (measurement-algorithms.md 10.2 rule 6),
    # but the secure-boot reading of RTMR0 refuses a second separator
    seps = [e for e in log.events if e.index == 1 and e.type_name == "EV_SEPARATOR"]
    assert len(seps) == 2
    with pytest.raises(VerificationError, match="second separator") as ei:
        secure_boot_state(log.events, bank="sha384", index=1)
    assert ei.value.code == "eventlog.secure_boot"


def test_padding_is_refused_on_request(vectors: Path) -> None:
    # upstream: a padded CCEL with AllowPadding=false is an error
    raw = (vectors / "tdx/go-tdx-guest/ccel/ccel_data.dat").read_bytes()
    with pytest.raises(EvidenceParseError, match="padding"):
        parse_tcg_log(raw, allow_padding=False)


@pytest.mark.parametrize(
    "rel",
    [
        "measure/go-eventlog/ubuntu-2104-no-secure-boot.bin",
        "measure/go-eventlog/cos-101-amd-sev.bin",
    ],
)
def test_go_eventlog_tpm_logs(vectors: Path, rel: str) -> None:
    log = _log(vectors, rel)
    want = json.loads((vectors / "measure/expected.json").read_text())["go_eventlog"]["tpm"]
    for bank, pcrs in want[Path(rel).name].items():
        check_replay(log.events, {f"pcr{i}": bytes.fromhex(v) for i, v in pcrs.items()}, bank=bank)


# --- real TPM quotes' PCR values -----------------------------------------------------------


@pytest.mark.parametrize("sample", ["gce-cos-85-no-nonce", "gce-cos-85-nonce9009"])
def test_gce_event_log_replays_to_quoted_pcrs(vectors: Path, sample: str) -> None:
    d = vectors / "tpm/go-tpm-tools" / sample
    log = parse_tcg_log((d / "event_log.bin").read_bytes())
    for bank in ("sha1", "sha256", "sha384"):
        pcrs = json.loads((d / f"pcrs_{bank}.json").read_text())["pcrs"]
        # PCRs 0-9, 11-16 and 23 (PCR10 is IMA, 17-22 are not in the log)
        idx = [*range(10), *range(11, 17), 23]
        check_replay(log.events, {f"pcr{i}": bytes.fromhex(pcrs[str(i)]) for i in idx}, bank=bank)


def test_windows_legacy_log_replays_to_its_pcrs(vectors: Path) -> None:
    base = vectors / "tpm/go-attestation/windows_gcp_shielded_vm"
    log = parse_tcg_log(Path(f"{base}.eventlog.bin").read_bytes())
    assert not log.crypto_agile
    pcrs = json.loads(Path(f"{base}.pcrs.json").read_text())["pcrs"]
    regs = replay(log.events, bank="sha1")
    assert 0 in regs  # PCR0 from locality 0
    check_replay(log.events, {f"pcr{i}": bytes.fromhex(pcrs[str(i)]) for i in regs}, bank="sha1")


def test_dstack_gcp_tpm_log(vectors: Path) -> None:
    # dstack test_decode_gcp_tpm_eventlog / test_filter_by_pcr
    log = _log(vectors, "eventlog/dstack/tpm_eventlog.bin")
    assert log.spec_id is not None and log.spec_id.platform_class == 0
    measured = [e for e in log.events if e.type_name != "EV_NO_ACTION"]
    assert [e for e in measured if e.index == 0]
    pcr2 = [e.digest("sha256") for e in measured if e.index == 2]
    assert [d.hex() for d in pcr2 if d] == [
        "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119",
        "00b8a357e652623798d1bbd16c375ec90fbed802b4269affa3e78e6eb19386cf",
        "9ab14a46f858662a89adc102d2a57a13f52f75c1769d65a4c34edbbfc8855f0f",
        "ade943a0a7a3189a3201ba17d7df778eb380cbd33ce5e361176e974ccf7cdedb",
    ]
    assert not [e for e in measured if e.index == 99]


# --- tampering with real logs --------------------------------------------------------------


def test_flipped_digest_names_the_register(vectors: Path) -> None:
    raw = bytearray((vectors / "eventlog/go-tpm-tools/rhel8-uefi.bin").read_bytes())
    log = parse_tcg_log(bytes(raw))
    target = next(e for e in log.events if e.index == 4 and e.type_name != "EV_NO_ACTION")
    want = {f"pcr{i}": v for i, v in replay(log.events, bank="sha256").items()}
    # the SHA-256 digest sits after index, type, count and the SHA-1 digest (2 + 20)
    pos = target.offset + 12 + 2 + 20 + 2
    assert raw[pos : pos + 32] == target.digest("sha256")
    raw[pos] ^= 1
    tampered = parse_tcg_log(bytes(raw))
    with pytest.raises(VerificationError, match=r"pcr4 \(sha256\)") as ei:
        check_replay(tampered.events, want, bank="sha256")
    assert ei.value.code == "eventlog.replay_mismatch"
    assert "pcr7" not in str(ei.value)


def test_flipped_separator_data_is_caught_by_the_data_check(vectors: Path) -> None:
    raw = bytearray((vectors / "tdx/go-tdx-guest/ccel/ccel_data.dat").read_bytes())
    log = parse_ccel(bytes(raw))
    sep = next(e for e in log.events if e.type_name == "EV_SEPARATOR")
    # event data is the last 4 bytes of the record
    rec_end = sep.offset + 4 + 4 + 4 + 2 + 48 + 4 + len(sep.data)
    raw[rec_end - 1] ^= 0xFF
    tampered = parse_ccel(bytes(raw))
    # the register still replays (the data is not covered) ...
    assert replay_rtmrs(tampered.events) == replay_rtmrs(log.events)
    # ... but the separator no longer matches its digest
    bad = next(e for e in tampered.events if e.offset == sep.offset)
    assert event_data_verified(bad, "sha384") is False
    with pytest.raises(VerificationError) as ei:
        check_event_data(tampered.events, bank="sha384")
    assert ei.value.code == "eventlog.event_data"


def test_lying_sizes_in_real_logs(vectors: Path) -> None:
    raw = (vectors / "eventlog/go-tpm-tools/cos-101-amd-sev.bin").read_bytes()
    log = parse_tcg_log(raw)
    e = log.events[5]
    # digestCount of a record: absurd
    bad = bytearray(raw)
    bad[e.offset + 8 : e.offset + 12] = (0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(EvidenceParseError) as ei:
        parse_tcg_log(bytes(bad))
    assert ei.value.code == "eventlog.parse" and ei.value.offset == e.offset + 8
    # eventSize larger than the rest of the log
    size_at = e.offset + 12 + sum(2 + len(d) for _, d in e.digests)
    bad = bytearray(raw)
    bad[size_at : size_at + 4] = (len(raw)).to_bytes(4, "little")
    with pytest.raises(EvidenceParseError) as ei:
        parse_tcg_log(bytes(bad))
    assert ei.value.code == "eventlog.parse"
    # truncation inside a record
    with pytest.raises(EvidenceParseError):
        parse_tcg_log(raw[: e.offset + 30])
    # garbage after the CCEL's padding has started is not padding
    area = bytearray((vectors / "eventlog/dstack/ccel.bin").read_bytes())
    area[-100] = 0x00
    with pytest.raises(EvidenceParseError):
        parse_ccel(bytes(area))


ALL_TCG_LOGS = [
    *(f"eventlog/go-tpm-tools/{n}.bin" for n in GO_TPM_TOOLS),
    *(f"eventlog/tpm2-tools/{n}.bin" for n in TPM2_TOOLS),
    *TRUSTEE,
    "eventlog/trustee/CCEL_data_gcp",
    "eventlog/dstack/ccel.bin",
    "eventlog/dstack/tpm_eventlog.bin",
    "measure/go-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin",
    "tdx/go-tdx-guest/ccel/ccel_data.dat",
    "tpm/go-tpm-tools/gce-cos-85-no-nonce/event_log.bin",
    "tpm/go-attestation/windows_gcp_shielded_vm.eventlog.bin",
]


@pytest.mark.parametrize("rel", ALL_TCG_LOGS)
def test_real_logs_reencode_byte_for_byte(vectors: Path, rel: str) -> None:
    raw = (vectors / rel).read_bytes()
    log = parse_tcg_log(raw)
    body = encode_tcg_log(log)
    assert body == raw[: len(raw) - log.padding]
    assert set(raw[len(body) :]) <= {0x00} or set(raw[len(body) :]) <= {0xFF}
    assert parse_tcg_log(encode_tcg_log(log, padding=64)) == log
