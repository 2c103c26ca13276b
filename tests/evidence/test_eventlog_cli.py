"""``atls eventlog replay`` (the group is tested directly; the lead mounts it in the main CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from atls.cli.eventlog import eventlog_group
from atls.evidence.eventlog import encode_ima_binary, parse_ima


def run(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(eventlog_group, list(args), input=input, catch_exceptions=False)


def registers(*args: str) -> dict[str, Any]:
    r = run("replay", *args, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) == {"registers"}
    regs: dict[str, Any] = out["registers"]
    return regs


@pytest.mark.vectors
def test_tpm_log(vectors: Path) -> None:
    f = vectors / "eventlog/go-tpm-tools/cos-101-amd-sev.bin"
    regs = registers(str(f))
    assert set(regs) == {"sha1", "sha256", "sha384"}
    want = json.loads((vectors / "eventlog/go-tpm-tools/cos-101-amd-sev.expected.json").read_text())
    for bank, pcrs in want["expected_pcrs"].items():
        for i, v in pcrs.items():
            assert regs[bank][f"pcr{i}"] == v
    # --format tcg and --bank select explicitly
    assert registers(str(f), "--format", "tcg", "--bank", "sha256") == {"sha256": regs["sha256"]}


@pytest.mark.vectors
def test_ccel_with_table(vectors: Path) -> None:
    d = vectors / "tdx/go-tdx-guest/ccel"
    quote = (d / "cos-113-tdx-quote.dat").read_bytes()
    want = {f"rtmr{i}": quote[376 + 48 * i : 424 + 48 * i].hex() for i in range(4)}
    assert registers(str(d / "ccel_data.dat")) == {"sha384": want}  # sniffed as CCEL
    assert registers(str(d / "ccel_data.dat"), "--table", str(d / "ccel_table.dat")) == {
        "sha384": want
    }
    assert registers(str(d / "ccel_data.dat"), "--format", "ccel") == {"sha384": want}


@pytest.mark.vectors
def test_dstack_and_ima(vectors: Path, tmp_path: Path) -> None:
    doc = vectors / "tdx/dstack/tdx-lite-getquote.json"
    facts = json.loads((vectors / "tdx/EXPECTED_FACTS.json").read_text())[
        "tdx/dstack/tdx-lite-getquote.quote.bin"
    ]
    assert registers(str(doc)) == {"sha384": {f"rtmr{i}": facts[f"rt_mr{i}"] for i in range(4)}}
    ima = registers(str(vectors / "measure/keylime/ima-log-sha256"))
    assert set(ima) == {"sha1", "sha256"} and set(ima["sha1"]) == {"pcr10"}
    # stdin
    r = run(
        "replay",
        "-",
        "--json",
        "--format",
        "ima",
        input=(vectors / "measure/keylime/ima-log-sha256").read_bytes(),
    )
    assert json.loads(r.stdout)["registers"] == ima
    # the same list in binary form is sniffed as IMA too
    binary = tmp_path / "binary_runtime_measurements"
    binary.write_bytes(
        encode_ima_binary(parse_ima((vectors / "measure/keylime/ima-log-sha256").read_bytes()))
    )
    assert registers(str(binary)) == ima


def test_rejections_and_usage(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x07" * 100)
    r = run("replay", str(junk), "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error"]["code"] == "eventlog.parse"
    r = run("replay", str(junk))
    assert r.exit_code == 1 and "rejected" in r.stderr
    r = run("replay", str(junk), "--format", "ima", "--json")
    assert r.exit_code == 1 and "IMA" in json.loads(r.stdout)["error"]["message"]
    r = run("replay", str(junk), "--bank", "md5", "--format", "dstack", "--json")
    assert r.exit_code == 1
    r = run("replay", str(tmp_path / "missing"))
    assert r.exit_code == 2
    r = run("replay", str(junk), "--format", "xml")
    assert r.exit_code == 2
    r = run("replay", str(junk), "--format", "tcg", "--table", str(junk))
    assert r.exit_code == 2
    bad_json = tmp_path / "log.json"
    bad_json.write_text('[{"imr": 3, "event_type": 134217729, "digest": "' + "00" * 48 + '"}]')
    r = run("replay", str(bad_json), "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error"]["code"] == "eventlog.dstack.digest_mismatch"


def test_human_output(tmp_path: Path) -> None:
    f = tmp_path / "log.json"
    f.write_text('[{"imr": 3, "event_type": 134217729, "event": "app-id", "event_payload": "01"}]')
    r = run("replay", str(f))
    assert r.exit_code == 0 and "rtmr3" in r.stdout and "sha384" in r.stdout
