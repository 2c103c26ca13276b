"""A real TPM: swtpm (Debian ``swtpm``), driven by the TPM attester (tpm2-pytss) and by
tpm2-tools, verified by the pure-Python verifier.

Skips with the reason where swtpm or tpm2-pytss is missing; under CI (``$CI``) it fails
instead (see :func:`atls.testing.tpm.swtpm_fixture`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from atls import binding
from atls.collateral import Collateral
from atls.errors import AttesterError, ConfigurationError, VerificationError
from atls.evidence import Verified
from atls.evidence.eventlog import (
    ALG_IDS,
    ImaEntry,
    SpecIdEvent,
    TcgEvent,
    TcgLog,
    encode_ima_binary,
    encode_tcg_log,
    ima_template_data,
)
from atls.evidence.tpm import (
    TPM_QUOTE,
    TpmQuoteFormat,
    decode_bundle,
    parse_public,
    qualified_name_hierarchy,
    verify_quote,
)
from atls.testing.tpm import DEFAULT_AT, FakeTpmCa, Swtpm, swtpm_fixture
from atls.trust import TrustStore

if os.environ.get("CI"):
    import tpm2_pytss  # noqa: F401 - CI must run these tests: a missing package fails here
else:
    pytest.importorskip("tpm2_pytss", reason="tpm2-pytss is not installed (pip install tpm2-pytss)")

from atls.attest.tpm import TpmAttester

swtpm = swtpm_fixture("function")

SPKI = bytes(range(91))
NONCE = b"\x01" * 32
BANKS = ("sha1", "sha256", "sha384", "sha512")


def _pinned(attester: TpmAttester) -> TpmQuoteFormat:
    return TpmQuoteFormat(pinned_ak_names=[attester.ak_name])


def _verify(fmt: TpmQuoteFormat, ev: bytes, trust: TrustStore | None = None) -> Verified:
    return fmt.verify(ev, trust=trust or TrustStore(), collateral=Collateral(), at=DEFAULT_AT)


@pytest.fixture
def attester(swtpm: Swtpm) -> Iterator[TpmAttester]:
    a = TpmAttester(swtpm.tcti)
    yield a
    a.close()


def test_fresh_quote_binds_the_tls_key_and_nonce(attester: TpmAttester) -> None:
    rd = binding.atls_v1_report_data(SPKI, NONCE)
    v = _verify(_pinned(attester), attester.attest(rd))
    assert v.trust_root == "pinned-ak" and v.platform == "tpm"
    assert v.report_data == rd[:32]  # SHA-256 nameAlg: 32 bytes of qualifying data
    binding.check_atls_v1(v.report_data, SPKI, NONCE)
    with pytest.raises(VerificationError):
        binding.check_atls_v1(v.report_data, SPKI, b"\x02" * 32)
    # PC Client power-on values, independent of atls: PCR 0-16 and 23 zero, 17-22 all ones
    pcrs = v.claims["pcrs"]["sha256"]
    assert [pcrs[str(i)] for i in (0, 16, 23)] == ["00" * 32] * 3
    assert all(pcrs[str(i)] == "ff" * 32 for i in range(17, 23))
    assert v.claims["pcr_selection"] == {"sha256": list(range(24))}
    # the AK is a child of the SRK and its Name is bound through the SRK's Name
    assert v.claims["ak_hierarchy"] == "owner" and len(attester.ak_parents) == 1
    assert v.claims["ak_public"]["type"] == "ecc-nist-p256"
    assert "qualified_signer" in v.checks


def test_extended_pcrs_are_quoted(swtpm: Swtpm, attester: TpmAttester) -> None:
    d256, d1 = hashlib.sha256(b"measured").digest(), hashlib.sha1(b"measured").digest()
    swtpm.extend(16, {"sha256": d256, "sha1": d1})
    v = _verify(_pinned(attester), attester.attest(bytes(64)))
    assert v.claims["pcrs"]["sha256"]["16"] == hashlib.sha256(bytes(32) + d256).hexdigest()
    # a quote from before the extend does not verify against today's values
    old = attester.attest(bytes(64))
    swtpm.extend(16, {"sha256": d256})
    m = cbor2.loads(old)
    m["pcrs"]["sha256"][16] = hashlib.sha256(
        hashlib.sha256(bytes(32) + d256).digest() + d256
    ).digest()
    with pytest.raises(VerificationError) as ei:
        _verify(_pinned(attester), cbor2.dumps(m, canonical=True))
    assert ei.value.code == "tpm.pcr_digest"


def test_ak_certificate_from_a_simulated_ca(attester: TpmAttester) -> None:
    ca = FakeTpmCa()
    with pytest.raises(VerificationError) as ei:
        _verify(TPM_QUOTE, attester.attest(bytes(64)), ca.trust_store())
    assert ei.value.code == "tpm.ak.untrusted"
    key = parse_public(attester.ak_public).public_key()
    attester.use_ak_certificates([ca.issue_ak_cert(key, label="swtpm"), ca.ca_der])
    v = _verify(TPM_QUOTE, attester.attest(bytes(64)), ca.trust_store())
    assert v.simulated and v.trust_root == ca.anchor_name
    assert v.claims["ak_source"] == f"certificate:{ca.anchor_name}"
    # the bundle without the SRK Name cannot bind the certified key's public area
    m = cbor2.loads(attester.attest(bytes(64)))
    del m["akparents"]
    with pytest.raises(VerificationError) as ei:
        _verify(TPM_QUOTE, cbor2.dumps(m, canonical=True), ca.trust_store())
    assert ei.value.code == "tpm.attest.qualified_signer"


def _log_events() -> list[TcgEvent]:
    events = [
        TcgEvent.measure(0, 0x80000008, b"firmware volume", BANKS),
        TcgEvent.measure(0, 0x4, b"\x00\x00\x00\x00", BANKS),
        TcgEvent.measure(7, 0x4, b"\x00\x00\x00\x00", BANKS),
        TcgEvent.measure(4, 0x80000003, b"bootloader image", BANKS),
        TcgEvent.measure(8, 0xD, b"linux /vmlinuz root=/dev/vda1", BANKS),
        TcgEvent.measure(9, 0xD, b"/initrd.img", BANKS),
    ]
    return events


def _spec() -> SpecIdEvent:
    return SpecIdEvent(
        0, 0, 2, 0, 2, tuple((ALG_IDS[b], hashlib.new(b).digest_size) for b in BANKS)
    )


def test_event_log_read_from_a_file_replays(swtpm: Swtpm, tmp_path: Path) -> None:
    events = _log_events()
    swtpm.replay_events(events)
    path = tmp_path / "binary_bios_measurements"
    path.write_bytes(encode_tcg_log(TcgLog(_spec(), tuple(events))))
    with TpmAttester(swtpm.tcti, event_log_path=path) as a:
        v = _verify(_pinned(a), a.attest(bytes(64)))
        el = v.claims["eventlog"]
        assert el["verified_pcrs"] == {"sha256": [0, 4, 7, 8, 9]}
        assert el["secure_boot"] is False and [e["pcr"] for e in el["events"]] == [0, 0, 7, 4, 8, 9]
        # a log event the TPM never saw: the replay no longer matches the quote
        extra = TcgEvent.measure(9, 0xD, b"/initrd-evil.img", BANKS)
        path.write_bytes(encode_tcg_log(TcgLog(_spec(), (*events, extra))))
        with pytest.raises(VerificationError) as ei:
            _verify(_pinned(a), a.attest(bytes(64)))
        assert ei.value.code == "eventlog.replay_mismatch"


def test_unreadable_event_log_is_left_out(swtpm: Swtpm, tmp_path: Path) -> None:
    with TpmAttester(swtpm.tcti, event_log_path=tmp_path / "absent") as a:
        assert "eventlog" not in _verify(_pinned(a), a.attest(bytes(64))).claims


def _ima_entry(path: str, content: bytes) -> ImaEntry:
    fh = hashlib.sha256(content).digest()
    td = ima_template_data("ima-ng", algorithm="sha256", file_hash=fh, path=path)
    th = hashlib.sha1(td).digest()
    return ImaEntry(10, th, "ima-ng", td, "sha256", fh, path)


def test_ima_list_is_cut_to_the_quoted_prefix(swtpm: Swtpm, tmp_path: Path) -> None:
    entries = [_ima_entry(f"/usr/bin/tool{i}", b"v%d" % i) for i in range(4)]
    for e in entries[:3]:
        swtpm.extend(10, {"sha256": hashlib.sha256(e.template_data).digest()})
    # the kernel appended a fourth measurement after the quote's PCR10 value
    path = tmp_path / "binary_runtime_measurements"
    path.write_bytes(encode_ima_binary(entries))
    with TpmAttester(swtpm.tcti, ima_log_path=path) as a:
        ev = a.attest(bytes(64))
        assert decode_bundle(ev).ima_log == encode_ima_binary(entries[:3])
        v = _verify(_pinned(a), ev)
        assert [e["path"] for e in v.claims["ima"]] == [f"/usr/bin/tool{i}" for i in range(3)]
        assert "ima_replay" in v.checks


def test_rsa_ak(swtpm: Swtpm) -> None:
    with TpmAttester(swtpm.tcti, ak_key="rsa", pcrs=[0, 1, 2]) as a:
        v = _verify(_pinned(a), a.attest(b"\x33" * 64))
        assert v.claims["signature"] == {"scheme": "rsassa", "hash": "sha256"}
        assert v.claims["ak_public"]["type"] == "rsa-2048"
        assert v.claims["pcr_selection"] == {"sha256": [0, 1, 2]}


def test_other_banks(swtpm: Swtpm) -> None:
    with TpmAttester(swtpm.tcti, bank="sha384", pcrs=range(8)) as a:
        v = _verify(_pinned(a), a.attest(bytes(64)))
        assert set(v.claims["pcrs"]) == {"sha384"}
        assert len(v.claims["pcrs"]["sha384"]["0"]) == 96


def test_many_attesters_share_a_tpm_without_resource_manager(swtpm: Swtpm) -> None:
    # swtpm has three transient slots: attesters hold none between quotes
    attesters = [TpmAttester(swtpm.tcti, pcrs=[0]) for _ in range(5)]
    try:
        for a in attesters:
            _verify(_pinned(a), a.attest(bytes(64)))
        errors: list[BaseException] = []

        def work(a: TpmAttester) -> None:
            try:
                for _ in range(3):
                    _verify(_pinned(a), a.attest(os.urandom(64)))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(attesters[0],)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert attesters[0].generated == 1 + 12
    finally:
        for a in attesters:
            a.close()


def test_attester_errors(swtpm: Swtpm) -> None:
    with pytest.raises(ConfigurationError):
        TpmAttester(swtpm.tcti, pcrs=[24])
    with pytest.raises(ConfigurationError):
        TpmAttester(swtpm.tcti, bank="md5")
    with pytest.raises(ConfigurationError):
        TpmAttester(swtpm.tcti, ak_cert=b"not DER")
    a = TpmAttester(swtpm.tcti, pcrs=[0])
    with pytest.raises(AttesterError) as ei:
        a.attest(b"")
    assert ei.value.code == "attester.tpm.report_data"
    a.close()
    a.close()  # idempotent
    with pytest.raises(AttesterError) as ei:
        a.attest(bytes(64))
    assert ei.value.code == "attester.tpm.closed"
    assert a.format_name == "tpm-quote-bundle" and not a.collateral()


def test_a_stopped_tpm_is_an_attester_error(swtpm: Swtpm) -> None:
    a = TpmAttester(swtpm.tcti, pcrs=[0])
    swtpm.stop()
    with pytest.raises(AttesterError) as ei:
        a.attest(bytes(64))
    assert ei.value.code == "attester.tpm.quote"
    a.close()
    with pytest.raises(AttesterError) as ei:
        TpmAttester(swtpm.tcti)
    assert ei.value.code in ("attester.tpm.connect", "attester.tpm.ak")


# --- tpm2-tools as an independent producer and checker ----------------------------------------

needs_tools = pytest.mark.skipif(
    shutil.which("tpm2_quote") is None and not os.environ.get("CI"),
    reason="tpm2-tools is not installed (Debian: apt-get install tpm2-tools)",
)


def _tools(swtpm: Swtpm, cwd: Path, *argv: str) -> None:
    env = dict(os.environ, TPM2TOOLS_TCTI=swtpm.tcti)
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"


@needs_tools
def test_tpm2_tools_quote_verifies_in_pure_python(swtpm: Swtpm, tmp_path: Path) -> None:
    t = tmp_path
    _tools(swtpm, t, "tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub")
    _tools(swtpm, t, "tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g",
           "sha256", "-s", "ecdsa", "-u", "ak.pub", "-n", "ak.name")  # fmt: skip
    _tools(swtpm, t, "tpm2_flushcontext", "-t")
    _tools(swtpm, t, "tpm2_flushcontext", "-s")
    _tools(swtpm, t, "tpm2_pcrextend", "16:sha256=" + "11" * 32)
    nonce = bytes.fromhex("abcdef0123456789")
    _tools(swtpm, t, "tpm2_quote", "-c", "ak.ctx", "-l", "sha256:0,1,16", "-q", nonce.hex(),
           "-m", "msg", "-s", "sig", "-g", "sha256")  # fmt: skip
    ak = parse_public((t / "ak.pub").read_bytes())
    # the Name computed here is the one tpm2-tools reports
    assert ak.name() == (t / "ak.name").read_bytes()
    pcr16 = hashlib.sha256(bytes(32) + b"\x11" * 32).digest()
    pcrs = {"sha256": {0: bytes(32), 1: bytes(32), 16: pcr16}}
    msg, sig = (t / "msg").read_bytes(), (t / "sig").read_bytes()
    r = verify_quote(msg, sig, ak=ak, pcrs=pcrs, extra_data=nonce)
    # tpm2_createak makes the AK a child of the EK: its Qualified Name goes through the EK
    ek_name = parse_public((t / "ek.pub").read_bytes()).name()
    assert r.hierarchy is None
    assert qualified_name_hierarchy(r.attest.qualified_signer, ak.name(), [ek_name]) == (
        "endorsement"
    )
    with pytest.raises(VerificationError):
        verify_quote(msg, sig, ak=ak, pcrs={"sha256": {0: bytes(32), 1: bytes(32), 16: bytes(32)}})


@needs_tools
def test_tpm2_checkquote_accepts_the_attester_quote(swtpm: Swtpm, tmp_path: Path) -> None:
    with TpmAttester(swtpm.tcti, pcrs=[0, 1, 16]) as a:
        rd = binding.atls_v1_report_data(SPKI, NONCE)
        ev = decode_bundle(a.attest(rd))
        (tmp_path / "ak.pub").write_bytes(a.ak_public)
    (tmp_path / "msg").write_bytes(ev.attest)
    (tmp_path / "sig").write_bytes(ev.signature)
    # tpm2_checkquote verifies the signature and the nonce (it needs no TPM)
    _tools(swtpm, tmp_path, "tpm2_checkquote", "-u", "ak.pub", "-m", "msg", "-s", "sig",
           "-q", rd[:32].hex(), "-g", "sha256")  # fmt: skip
    env = dict(os.environ, TPM2TOOLS_TCTI=swtpm.tcti)
    bad = subprocess.run(
        ["tpm2_checkquote", "-u", "ak.pub", "-m", "msg", "-s", "sig", "-q", "00" * 32],
        cwd=tmp_path, env=env, capture_output=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0
