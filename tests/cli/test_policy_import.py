"""``atls policy import --rattestation``: GyroidOS expected PCR values -> an atls policy."""

from __future__ import annotations

from click.testing import CliRunner

from atls.cli import main
from atls.policy import load_policy


def _run(*args: str):
    return CliRunner().invoke(main, ["policy", "import", *args], catch_exceptions=False)


def test_rattestation_values_become_the_tpm_pcrs(tmp_path):
    conf = tmp_path / "rattestation.conf"
    conf.write_text(
        'name: "rattestation"\nkmod_sign_cert: "yocto.pem"\natype: BASIC\nhalg: SHA256\n'
        'pcr_values { number: 0 value: "0X' + "AB" * 32 + '" }\n'
        'pcr_values { number: 7 value: "0x' + "cd" * 32 + '" }\n'
    )
    out = tmp_path / "p.toml"
    r = _run("--rattestation", str(conf), "-o", str(out))
    assert r.exit_code == 0, r.output
    pol = load_policy(str(out))
    assert pol.platforms["tpm"].pcrs == {"sha256": {0: "ab" * 32, 7: "cd" * 32}}
    # what the policy cannot express is said, not dropped silently
    assert "not carried over" in r.stderr and "kmod_sign_cert" in r.stderr


def test_rattestation_errors_are_usage_errors(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text('name: "x"\nkmod_sign_cert: "k"\npcr_values { number: 0 value: "0X12" }\n')
    r = _run("--rattestation", str(conf), "-o", str(tmp_path / "p.toml"))
    assert r.exit_code == 2 and "error" in r.stderr
    assert not (tmp_path / "p.toml").exists()
    empty = tmp_path / "empty.conf"
    empty.write_text('name: "x"\nkmod_sign_cert: "k"\n')
    r = _run("--rattestation", str(empty), "-o", str(tmp_path / "p.toml"))
    assert r.exit_code == 2 and "would pin nothing" in r.stderr.replace("\n", " ")


def test_exactly_one_source(tmp_path):
    r = _run("-o", str(tmp_path / "p.toml"))
    assert r.exit_code == 2


def test_cocos_policy_import_is_strict_unless_fields_are_ignored(tmp_path):
    import base64
    import json

    measurement = bytes(range(48))
    doc = {
        "policy": {
            "measurement": base64.b64encode(measurement).decode(),
            "policy": 196608,
            "minimum_build": 8,
        },
        "root_of_trust": {"product_line": "Milan"},
    }
    src = tmp_path / "cocos.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "p.toml"
    r = _run("--cocos", str(src), "-o", str(out))
    assert r.exit_code == 2 and "minimum_build" in r.stderr and not out.exists()
    r = _run("--cocos", str(src), "--ignore", "policy.minimum_build", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "policy.minimum_build" in r.stderr  # the loss is said
    snp = load_policy(str(out)).platforms["snp"]
    assert snp.values["measurement"] == {measurement.hex()}
    # --ignore is for Cocos only
    assert _run("--rattestation", str(src), "--ignore", "x", "-o", str(out)).exit_code == 2
