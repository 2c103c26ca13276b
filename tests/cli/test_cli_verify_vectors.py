"""``atls verify`` on real evidence files, offline: the pinned vendor root is taken from the
inputs (a quote's PCK chain, a collateral bundle) because its fingerprint is pinned."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from atls.cli import main
from atls.errors import ConfigurationError
from atls.testing.demo import demo_trust_store
from atls.trust import TrustStore


def _verify(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(main, ["verify", "--json", *args], catch_exceptions=False)
    return r.exit_code, json.loads(r.stdout)


def test_raw_tdx_quote_with_dcap_qvl_collateral(vectors):
    d = vectors / "tdx/dcap-qvl"
    code, out = _verify(str(d / "tdx_quote"), "--collateral", str(d / "tdx_quote_collateral.json"),
                        "--at", "1752919234")
    assert code == 0, out["errors"]
    assert out["verdict"] == "accepted" and out["platform"] == "tdx"
    assert out["trust_root"] == "intel-sgx-root" and out["tcb_status"] == "UpToDate"
    # nothing about measurements or binding was checked, and the output says so
    assert any(u.startswith("measurements:") for u in out["unchecked"])
    assert any(u.startswith("binding:") for u in out["unchecked"])


def test_raw_tdx_quote_without_collateral_is_rejected(vectors):
    code, out = _verify(str(vectors / "tdx/dcap-qvl/tdx_quote"), "--at", "1752919234")
    assert code == 1 and out["verdict"] == "rejected"
    assert out["errors"] and out["authentic"] is False


def test_raw_tdx_quote_after_collateral_expiry_is_rejected(vectors):
    d = vectors / "tdx/dcap-qvl"
    code, out = _verify(str(d / "tdx_quote"), "--collateral", str(d / "tdx_quote_collateral.json"),
                        "--at", "2030-01-01")
    assert code == 1 and out["errors"]


def test_real_snp_report_with_vcek_and_chain(vectors):
    ms = vectors / "snp/ms-tee-attestation-verification"
    code, out = _verify(str(ms / "milan_attestation_report.bin"),
                        "--collateral", str(ms / "milan_vcek.pem"),
                        "--collateral", str(vectors / "snp/go-sev-guest/ask_ark_milan.pem"),
                        "--at", "2026-03-01")
    assert code == 0, out["errors"]
    assert out["platform"] == "snp" and out["trust_root"] == "amd-ark-milan"
    assert "crl" in out["unchecked"]  # no CRL given: reported, not silently skipped


def test_pinned_among_takes_only_pinned_roots(vectors):
    root = (vectors / "tdx/dcap-qvl/TrustedRootCA.der").read_bytes()
    sim = demo_trust_store(["snp"]).anchors[0].der
    store = TrustStore.pinned_among([root, sim, b"not a certificate", root])
    assert [a.name for a in store.anchors] == ["intel-sgx-root"]
    assert not store.allow_simulated


def test_simulated_root_in_inputs_is_not_trusted():
    # A simulated root handed over as collateral does not become an anchor without the opt-in.
    sim = demo_trust_store(["snp"]).anchors[0].der
    assert len(TrustStore.pinned_among([sim])) == 0
    with pytest.raises(ConfigurationError):
        TrustStore.from_certificates([sim])


def test_trust_dir_intermediates_are_collateral(vectors, tmp_path):
    # `atls trust fetch` saves the ARK and the ASK: the ASK is used as collateral
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "milan.pem").write_bytes((vectors / "snp/go-sev-guest/ask_ark_milan.pem").read_bytes())
    ms = vectors / "snp/ms-tee-attestation-verification"
    code, out = _verify(str(ms / "milan_attestation_report.bin"), "--trust-dir", str(trust),
                        "--collateral", str(ms / "milan_vcek.pem"), "--at", "2026-03-01")
    assert code == 0, out["errors"]
    assert out["trust_root"] == "amd-ark-milan"


def test_dstack_event_log_becomes_claims_the_policy_pins(vectors, tmp_path):
    import json as _json

    report = vectors / "tdx/dstack/quote-report.json"
    quote = tmp_path / "quote.hex"
    quote.write_text(_json.loads(report.read_text())["quote"])
    coll = str(vectors / "tdx/dcap-qvl/tdx_quote_outdated_collateral.json")
    at = "2026-02-18T10:58:52Z"
    code, out = _verify(str(quote), "--collateral", coll, "--at", at, "--event-log", str(report))
    assert code == 0, out["errors"]
    compose = out["claims"]["events"]["compose-hash"]
    policy = tmp_path / "p.toml"
    policy.write_text(f'version = 1\nname = "app"\n[tdx.events]\ncompose-hash = "{compose}"\n')
    args = ["--collateral", coll, "--at", at, "--policy", str(policy)]
    code, out = _verify(str(quote), *args, "--event-log", str(report))
    assert code == 0, out["errors"]
    # without the log the events rule cannot be met: rejected, and it says why
    code, out = _verify(str(quote), *args)
    assert code == 1 and out["authentic"] is True
    assert out["errors"][0]["code"] == "policy"
    # a log of another machine does not replay to this quote
    other = tmp_path / "other.json"
    log = _json.loads(_json.loads(report.read_text())["event_log"])
    log[0]["digest"] = "11" * 48
    other.write_text(_json.dumps(log))
    code, out = _verify(str(quote), *args, "--event-log", str(other))
    assert code == 1 and out["errors"][0]["code"] == "eventlog.replay_mismatch"
