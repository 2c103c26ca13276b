"""CLI contract pieces that need no platform: help, usage errors, policy check."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from atls.cli import main


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def test_help_lists_every_command(run):
    out = run("--help").output
    for cmd in COMMANDS:
        assert cmd in out


COMMANDS = ["demo", "serve", "connect", "verify", "inspect", "policy", "eventlog", "measure",
            "collateral", "trust", "secretvm"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_has_help(run, cmd):
    r = run(cmd, "--help")
    assert r.exit_code == 0
    assert "Usage:" in r.output


def test_policy_check(run, tmp_path):
    good = tmp_path / "p.toml"
    good.write_text('version = 1\nname = "svc"\n[snp]\nmeasurement = "' + "ab" * 48 + '"\n')
    r = run("policy", "check", str(good))
    assert r.exit_code == 0 and "valid policy 'svc' for snp" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[snp]\nmeasurment = 'x'\n")
    r = run("policy", "check", str(bad))
    assert r.exit_code == 2
    assert "[snp].measurment" in r.output  # section names survive rich rendering
    assert run("policy", "check", str(tmp_path)).exit_code == 2


def test_verify_usage_errors_exit_2(run, tmp_path):
    assert run("verify", str(tmp_path / "missing.bin")).exit_code == 2
    f = tmp_path / "e.bin"
    f.write_bytes(b"\x00" * 10)
    assert run("verify", str(f), "--at", "not-a-time").exit_code == 2
    assert run("verify", str(f), "--policy", str(tmp_path / "nope.toml")).exit_code == 2


def test_verify_garbage_is_rejected_with_json_contract(run, tmp_path):
    f = tmp_path / "e.bin"
    f.write_bytes(b"\x07" * 100)
    r = run("verify", str(f), "--json")
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["verdict"] == "rejected"
    assert out["authentic"] is False
    assert set(out) >= {"verdict", "platform", "authentic", "tcb_status", "advisory_ids",
                        "claims", "errors"}
    assert out["errors"][0]["code"] == "evidence.unknown"


def test_serve_needs_exactly_one_target(run):
    assert run("serve", "--listen", "127.0.0.1:0").exit_code == 2
    assert run("serve", "--listen", "127.0.0.1:0", "--echo", "--forward", "x:1").exit_code == 2
