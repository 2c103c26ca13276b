"""The round trip of issue #6: `atls measure` -> `atls policy init --from-artifacts` -> verify
evidence from a simulated TEE launched with the same values (accepted) and with other
values (rejected)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from test_measure_cli import _synthetic_firmware

from atls.attest import SimulatedAttester
from atls.cli import main
from atls.pipeline import judge
from atls.policy import load_policy
from atls.testing.snp import DEFAULT_AT


def _run(*args: str):
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def _judge(attester: SimulatedAttester, policy_path) -> list[str]:
    verdict = judge(
        attester.attest(b"\x42" * 64),
        trust=attester.trust_store(),
        collateral=attester.collateral(),
        at=DEFAULT_AT,
        policy=load_policy(str(policy_path)),
        allow_simulated=True,
    )
    assert verdict.authentic
    return [e.code for e in verdict.errors]


def test_tdx_round_trip(tmp_path):
    fw = _synthetic_firmware(tmp_path)
    measured = tmp_path / "m.json"
    r = _run("measure", "tdx", "--ovmf", str(fw), "--page-order", "single-pass", "--json")
    measured.write_text(r.stdout)
    mr_td = json.loads(r.stdout)["mr_td"]
    policy = tmp_path / "p.toml"
    _run("policy", "init", "--from-artifacts", str(measured), "-o", str(policy))
    assert _judge(SimulatedAttester("tdx", mr_td=bytes.fromhex(mr_td)), policy) == []
    assert _judge(SimulatedAttester("tdx", mr_td=b"\x01" * 48), policy) == ["policy"]


def test_snp_round_trip(tmp_path):
    import uuid

    from test_measure_cli import FOOTER

    size = 0x10000
    fw = bytearray(size)
    meta = b"ASEV" + (40).to_bytes(4, "little") + (1).to_bytes(4, "little")
    meta += (2).to_bytes(4, "little")
    meta += b"".join(
        x.to_bytes(4, "little") for x in (0x800000, 0x1000, 1, 0x801000, 0x1000, 0x10)
    )
    fw[0x8000 : 0x8000 + len(meta)] = meta
    entries = [
        ("dc886566-984a-4798-a75e-5585a7bf67cc", (size - 0x8000).to_bytes(4, "little")),
        ("00f771de-1a7e-4fcb-890e-68c77e2fb44e", (0x80B004).to_bytes(4, "little")),
    ]
    body = b"".join(
        d + (len(d) + 18).to_bytes(2, "little") + uuid.UUID(g).bytes_le for g, d in entries
    )
    table = body + (len(body) + 18).to_bytes(2, "little") + uuid.UUID(FOOTER).bytes_le
    fw[size - 32 - len(table) : size - 32] = table
    (tmp_path / "fw").write_bytes(bytes(fw))
    r = _run("measure", "snp", "--ovmf", str(tmp_path / "fw"), "--vcpus", "4",
             "--vcpu-type", "EPYC-Milan", "--json")  # fmt: skip
    measured = tmp_path / "m.json"
    measured.write_text(r.stdout)
    measurement = json.loads(r.stdout)["measurement"]
    policy = tmp_path / "p.toml"
    _run("policy", "init", "--from-artifacts", str(measured), "-o", str(policy))
    good = SimulatedAttester("snp", measurement=bytes.fromhex(measurement))
    assert _judge(good, policy) == []
    assert _judge(SimulatedAttester("snp", measurement=b"\x02" * 48), policy) == ["policy"]
