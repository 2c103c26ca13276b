"""``atls verify --profile dstack|cocos CERT``: other systems' certificates from the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from atls.attest import SimulatedAttester
from atls.cli import main
from atls.interop import profile_issuance
from atls.testing.tdx import DEFAULT_AT
from atls.tls import AttestedCredentials

RUNTIME = [("app-id", b"\x01" * 20), ("compose-hash", b"\x02" * 32), ("system-ready", b"")]


def _verify(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(
        main, ["verify", "--json", "--allow-simulated", "--at", DEFAULT_AT.isoformat(), *args]
    )
    return r.exit_code, json.loads(r.stdout)


def test_dstack_certificate(tmp_path):
    iss = profile_issuance("dstack", runtime_events=RUNTIME)
    att = SimulatedAttester("tdx", rtmr=(b"\x21" * 48, b"\x22" * 48, b"\x23" * 48, iss.rtmr3))
    creds = AttestedCredentials(att, profile=iss, clock=lambda: DEFAULT_AT)
    cert = tmp_path / "dstack.der"
    cert.write_bytes(creds.static().certificate.public_bytes(Encoding.DER))
    code, out = _verify(str(cert), "--profile", "dstack")
    assert code == 0, out["errors"]
    assert out["profile"] == "dstack" and out["platform"] == "tdx"
    assert out["claims"]["events"]["compose-hash"] == "02" * 32
    # the same certificate read as a native atls certificate carries no atls evidence
    code, out = _verify(str(cert))
    assert code == 1 and out["errors"][0]["code"] == "cert.no_evidence"
    # a policy pinning another compose hash refuses it
    policy = tmp_path / "p.toml"
    policy.write_text('version = 1\nname = "x"\n[tdx.events]\ncompose-hash = "' + "00" * 32 + '"\n')
    code, out = _verify(str(cert), "--profile", "dstack", "--policy", str(policy))
    assert code == 1


def test_cocos_certificate_needs_its_nonce(tmp_path):
    nonce = bytes(range(64))
    iss = profile_issuance("cocos")
    creds = AttestedCredentials(SimulatedAttester("tdx"), profile=iss, mode="fresh",
                                clock=lambda: DEFAULT_AT)  # fmt: skip
    sni = "".join(f"{b:02x}" for b in nonce) + ".nonce"
    cert = tmp_path / "cocos.der"
    cert.write_bytes(creds.select(sni).certificate.public_bytes(Encoding.DER))
    code, out = _verify(str(cert), "--profile", "cocos", "--nonce", nonce.hex())
    assert code == 0, out["errors"]
    code, out = _verify(str(cert), "--profile", "cocos", "--nonce", "00" * 64)
    assert code == 1 and out["authentic"] is False
    # the nonce is required, and of Cocos' size: usage errors, not crashes
    for args in ([], ["--nonce", "abcd"], ["--nonce", "00" * 32]):
        r = CliRunner().invoke(main, ["verify", "--json", "--allow-simulated", str(cert),
                                      "--profile", "cocos", *args])  # fmt: skip
        assert r.exit_code == 2 and "--profile cocos takes 64 bytes" in r.stderr
