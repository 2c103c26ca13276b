"""``atls verify --platform tpm`` on a TPM quote bundle: the AK is trusted through a pin in
the policy or a certificate chain to a trusted root, never because the bundle carries it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from atls.cli import main
from atls.testing.demo import demo_root_pems
from atls.testing.tpm import DEFAULT_AT, FakeTpm, FakeTpmCa


def _verify(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(main, ["verify", "--platform", "tpm", "--json", *args])
    return r.exit_code, json.loads(r.stdout)


def test_tpm_bundle_trusted_by_policy_pin_or_chain(tmp_path):
    tpm = FakeTpm(label="cli", ca=FakeTpmCa())  # the bundle carries an AK certificate chain
    tpm.measure(4, b"kernel")
    bundle = tmp_path / "bundle.cbor"
    bundle.write_bytes(tpm.attest(b"\x07" * 64))
    at = DEFAULT_AT.isoformat()

    # nothing trusts the AK (its chain leads to no trusted root): rejected
    code, out = _verify(str(bundle), "--at", at)
    assert code == 1 and out["errors"][0]["code"] == "tpm.ak_cert.no_anchor"

    # the policy pins the AK's Name and PCR 4
    pcr4 = tpm.pcrs["sha256"][4].hex()
    policy = tmp_path / "p.toml"
    policy.write_text(
        f'version = 1\nname = "host"\n[tpm]\nak_name = "{tpm.ak_name.hex()}"\n'
        f'[tpm.pcrs.sha256]\n4 = "{pcr4}"\n'
    )
    code, out = _verify(str(bundle), "--at", at, "--policy", str(policy))
    assert code == 0, out["errors"]
    assert out["platform"] == "tpm" and out["trust_root"] == "pinned-ak"
    assert out["claims"]["pcrs"]["sha256"]["4"] == pcr4

    # ... and a PCR the policy does not expect is a rejection
    policy.write_text(policy.read_text().replace(pcr4, "00" * 32))
    code, out = _verify(str(bundle), "--at", at, "--policy", str(policy))
    assert code == 1 and out["authentic"] is True and out["errors"][0]["code"] == "policy"

    # the AK certificate chain to the (simulated) TPM CA root, with the explicit opt-in
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "tpm-root.pem").write_bytes(demo_root_pems()["simulated-tpm-ak-root.pem"])
    code, out = _verify(str(bundle), "--at", at, "--trust-dir", str(trust), "--allow-simulated")
    assert code == 0, out["errors"]
    assert out["simulated"] is True and out["trust_root"].startswith("simulated:")
