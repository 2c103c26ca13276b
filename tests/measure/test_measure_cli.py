"""``atls measure`` and ``atls policy init --from-artifacts`` through click."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

import atls.cli.measure as cli_measure
from atls.cli import main as atls_main
from atls.cli.measure import parse_size
from atls.policy import load_policy

FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"


def _cli() -> click.Group:
    return atls_main


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(_cli(), list(args), catch_exceptions=False)

    return invoke


def _synthetic_firmware(tmp_path):
    """The TDVF + SEV image of test_measure_errors, rebuilt here (no shared test modules)."""
    import uuid

    size = 0x40000
    fw = bytearray(hashlib.shake_256(b"fw").digest(size))
    secs = [(0x10000, 0x30000, 0xFFFD0000, 0x30000, 0, 1), (0, 0x10000, 0xFFFC0000, 0x10000, 1, 0),
            (0, 0, 0x800000, 0x6000, 3, 0), (0, 0, 0x809000, 0x2000, 2, 0)]
    desc = b"TDVF" + (16 + 32 * len(secs)).to_bytes(4, "little") + (1).to_bytes(4, "little")
    desc += len(secs).to_bytes(4, "little")
    for off, raw, gpa, mem, typ, attr in secs:
        desc += (off.to_bytes(4, "little") + raw.to_bytes(4, "little") + gpa.to_bytes(8, "little")
                 + mem.to_bytes(8, "little") + typ.to_bytes(4, "little")
                 + attr.to_bytes(4, "little"))
    fw[0xF000 : 0xF000 + len(desc)] = desc
    entries = [("e47a6535-984a-4798-865e-4685a7bf8ec2", (size - 0xF000).to_bytes(4, "little"))]
    body = b"".join(d + (len(d) + 18).to_bytes(2, "little") + uuid.UUID(g).bytes_le
                    for g, d in entries)
    table = body + (len(body) + 18).to_bytes(2, "little") + uuid.UUID(FOOTER).bytes_le
    fw[size - 32 - len(table) : size - 32] = table
    p = tmp_path / "fw.fd"
    p.write_bytes(bytes(fw))
    return p


def test_parse_size():
    assert parse_size("2048") == 2 << 30
    assert parse_size("2G") == parse_size("2GiB") == 2 << 30
    assert parse_size("512M") == 512 << 20
    with pytest.raises(ValueError):
        parse_size("lots")


def test_help(run):
    for cmd in ("tdx", "snp", "rtmr3", "secretvm"):
        r = run("measure", cmd, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output


def test_tdx_json_candidates_and_claims(run, tmp_path):
    fw = _synthetic_firmware(tmp_path)
    r = run("measure", "tdx", "--ovmf", str(fw), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) == {"candidates"} and set(out["candidates"]["mr_td"]) == {"two-pass",
                                                                               "single-pass"}
    r = run("measure", "tdx", "--ovmf", str(fw), "--qemu-version", "8.2.2", "--json")
    assert json.loads(r.output) == {"mr_td": out["candidates"]["mr_td"]["two-pass"]}
    r = run("measure", "tdx", "--ovmf", str(fw), "--page-order", "single-pass", "--memory", "1G",
            "--acpi-digests", ",".join(["00" * 48] * 3), "--json", "--components")
    got = json.loads(r.output)
    assert got["mr_td"] == out["candidates"]["mr_td"]["single-pass"]
    assert re.fullmatch("[0-9a-f]{96}", got["rtmr0"])
    assert len(got["components"]["rtmr0_events"]) == 13


def test_tdx_human_output(run, tmp_path):
    r = run("measure", "tdx", "--ovmf", str(_synthetic_firmware(tmp_path)))
    assert r.exit_code == 0 and "mr_td" in r.output and "two-pass" in r.output


@pytest.mark.parametrize(("args", "code"), [
    (["--kernel", "KERNEL"], "measure.pe.not_pe"),
    (["--memory", "lots"], "usage.size"),
    (["--acpi-digests", "00"], "usage.acpi"),
    (["--memory", "8M", "--acpi-digests", ",".join(["00" * 48] * 3)],
     "measure.memory_too_small"),
])
def test_tdx_errors(run, tmp_path, args, code):
    fw = _synthetic_firmware(tmp_path)
    (tmp_path / "KERNEL").write_bytes(b"#!/bin/sh\n")
    args = [str(tmp_path / a) if a == "KERNEL" else a for a in args]
    r = run("measure", "tdx", "--ovmf", str(fw), "--page-order", "two-pass", *args, "--json")
    assert r.exit_code == 2
    assert json.loads(r.stdout)["errors"][0]["code"] == code


def test_missing_file(run, tmp_path):
    r = run("measure", "tdx", "--ovmf", str(tmp_path / "nope"), "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["errors"][0]["code"] == "usage.file"
    r = run("measure", "tdx", "--ovmf", str(tmp_path))
    assert r.exit_code == 2


def test_progress_only_on_a_terminal(run, tmp_path, monkeypatch):
    fw = _synthetic_firmware(tmp_path)
    r = run("measure", "tdx", "--ovmf", str(fw), "--json")
    assert "reading" not in r.stderr and "MRTD" not in r.stderr
    buf = io.StringIO()
    monkeypatch.setattr(cli_measure, "_err", Console(file=buf, force_terminal=True, width=100))
    r = run("measure", "tdx", "--ovmf", str(fw), "--page-order", "two-pass", "--json")
    assert r.exit_code == 0 and "mr_td" in json.loads(r.stdout)
    assert "reading firmware" in buf.getvalue()


@pytest.mark.vectors
def test_snp_launch_inputs_dstack(run, vectors):
    doc = vectors / "measure/dstack/sev_snp_real_measurement_doc.json"
    expected = json.loads((vectors / "measure/expected.json").read_text())
    r = run("measure", "snp", "--launch-inputs", str(doc), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"measurement": expected["dstack_snp_real"]["measurement"]}


@pytest.mark.vectors
def test_snp_secretvm_compose(run, vectors, tmp_path):
    d = vectors / "snp/secretvm-verify"
    report = base64.b64decode((d / "amd_cpu_docker_check_quote.txt").read_text().strip())
    entry = next(e for e in json.loads((d / "sev.json").read_text())
                 if e["vm_type"] == "prod" and e["artifacts_ver"] == "v0.0.25")
    inputs = tmp_path / "entry.json"
    inputs.write_text(json.dumps(entry))
    r = run("measure", "snp", "--launch-inputs", str(inputs), "--vcpus", "1",
            "--secretvm-compose", str(d / "amd_cpu_docker_check_compose.yaml"),
            "--rootfs-hash", entry["rootfs_hash"], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"measurement": report[0x90:0xC0].hex()}


def test_snp_ovmf_matches_oracle(run, tmp_path):
    guest = pytest.importorskip("sevsnpmeasure.guest")
    import uuid

    from sevsnpmeasure.sev_mode import SevMode
    from sevsnpmeasure.vmm_types import VMMType

    size = 0x10000
    fw = bytearray(size)
    meta = b"ASEV" + (40).to_bytes(4, "little") + (1).to_bytes(4, "little") + (2).to_bytes(4,
                                                                                         "little")
    meta += b"".join(x.to_bytes(4, "little") for x in (0x800000, 0x1000, 1, 0x801000, 0x1000,
                                                         0x10))
    fw[0x8000 : 0x8000 + len(meta)] = meta
    entries = [("dc886566-984a-4798-a75e-5585a7bf67cc", (size - 0x8000).to_bytes(4, "little")),
               ("00f771de-1a7e-4fcb-890e-68c77e2fb44e", (0x80B004).to_bytes(4, "little")),
               ("7255371f-3a3b-4b04-927b-1da6efa8d454", (0x801C00).to_bytes(4, "little")
                + (0x400).to_bytes(4, "little"))]
    body = b"".join(dd + (len(dd) + 18).to_bytes(2, "little") + uuid.UUID(g).bytes_le
                    for g, dd in entries)
    table = body + (len(body) + 18).to_bytes(2, "little") + uuid.UUID(FOOTER).bytes_le
    fw[size - 32 - len(table) : size - 32] = table
    (tmp_path / "fw").write_bytes(bytes(fw))
    (tmp_path / "k").write_bytes(b"kernel bytes")
    (tmp_path / "i").write_bytes(b"initrd bytes")
    want = guest.calc_launch_digest(SevMode.SEV_SNP, 2, 0xA00F11, str(tmp_path / "fw"),
                                    str(tmp_path / "k"), str(tmp_path / "i"), "ro quiet", 0x21,
                                    "", VMMType.QEMU)
    r = run("measure", "snp", "--ovmf", str(tmp_path / "fw"), "--vcpus", "2", "--vcpu-type",
            "EPYC-Milan", "--kernel", str(tmp_path / "k"), "--initrd", str(tmp_path / "i"),
            "--append", "ro quiet", "--guest-features", "0x21", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"measurement": want.hex()}
    r = run("measure", "snp", "--ovmf", str(tmp_path / "fw"), "--vcpus", "2", "--vcpu-family",
            "25", "--vcpu-model", "1", "--vcpu-stepping", "1", "--kernel", str(tmp_path / "k"),
            "--initrd", str(tmp_path / "i"), "--append", "ro quiet", "--guest-features", "21",
            "--json")
    assert json.loads(r.output) == {"measurement": want.hex()}
    r = run("measure", "snp", "--ovmf", str(tmp_path / "fw"), "--vcpus", "2", "--vcpu-type",
            "Pentium", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["errors"][0]["code"] == "measure.vcpu_type"


@pytest.mark.vectors
def test_rtmr3_dstack_and_secretvm(run, vectors):
    expected = json.loads((vectors / "measure/expected.json").read_text())
    r = run("measure", "rtmr3", "--dstack-event-log",
            str(vectors / "measure/dstack/tdx-lite-getquote.json"), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["rtmr3"] == expected["dstack_tdx_lite"]["quote"]["rtmr3"]
    d = vectors / "tdx/secretvm-verify"
    quote = (d / "tdx_cpu_docker_check_quote.bin").read_bytes()
    row = next(r for r in csv.DictReader((d / "tdx.csv").read_text().splitlines())
               if (r["template_name"], r["vm_type"], r["artifacts_ver"])
               == ("small", "prod", "v0.0.25"))
    r = run("measure", "rtmr3", "--compose", str(d / "tdx_cpu_docker_check_compose.yaml"),
            "--rootfs-hash", row["rootfs_data"], "--json")
    assert json.loads(r.output) == {"rtmr3": quote[520:568].hex()}
    r = run("measure", "rtmr3", "--compose", str(d / "tdx_cpu_docker_check_compose.yaml"),
            "--json")
    assert r.exit_code == 2


@pytest.mark.vectors
def test_secretvm_aggregates(run, vectors, tmp_path):
    s = json.loads((vectors / "measure/expected.json").read_text())["secretvm_docs_sample"]
    r = run("measure", "secretvm", "--mrtd", s["mrtd"], "--rtmr0", s["rtmr0"], "--rtmr1",
            s["rtmr1"], "--rtmr2", s["rtmr2"], "--rtmr3", s["rtmr3"], "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["mr_aggregated"] == s["mr_aggregated"] and out["mr_image"] == s["mr_image"]
    regs = tmp_path / "regs.json"
    regs.write_text(json.dumps({"claims": {"mr_td": s["mrtd"], "rtmr0": s["rtmr0"],
                                           "rtmr1": s["rtmr1"], "rtmr2": s["rtmr2"],
                                           "rtmr3": s["rtmr3"]}}))
    r = run("measure", "secretvm", "--registers", str(regs), "--key-provider", "none", "--json")
    assert json.loads(r.output)["mr_image"] == s["mr_image"]
    assert json.loads(r.output)["mr_aggregated"] != s["mr_aggregated"]
    r = run("measure", "secretvm", "--mrtd", s["mrtd"], "--json")
    assert r.exit_code == 2


def test_policy_from_artifacts(run, tmp_path):
    fw = _synthetic_firmware(tmp_path)
    m = tmp_path / "m.json"
    r = run("measure", "tdx", "--ovmf", str(fw), "--json")
    m.write_text(r.output)
    out = tmp_path / "p.toml"
    r = run("policy", "init", "--from-artifacts", str(m), "-o", str(out))
    assert r.exit_code == 2  # MRTD undetermined
    r = run("policy", "init", "--from-artifacts", str(m), "-o", str(out), "--allow-candidates",
            "--name", "fw")
    assert r.exit_code == 0, r.output
    pol = load_policy(str(out))
    assert pol.name == "fw" and "tdx" in pol.platforms
    text = out.read_text()
    for v in json.loads(m.read_text())["candidates"]["mr_td"].values():
        assert v in text
    snp = tmp_path / "s.json"
    snp.write_text(json.dumps({"measurement": "ab" * 48}))
    r = run("policy", "init", "--from-artifacts", str(snp), "--from-artifacts", str(m),
            "--allow-candidates", "-o", str(out))
    assert r.exit_code == 0
    assert {"snp", "tdx"} <= set(load_policy(str(out)).platforms)
