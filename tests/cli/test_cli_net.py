"""``atls demo``, and ``atls serve`` + ``atls policy init --from`` + ``atls connect`` as real
processes on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from atls.cli import main
from atls.testing.tpm import swtpm_unavailable_reason, tpm2_pytss_unavailable_reason

ATLS = [sys.executable, "-m", "atls.cli"]


@pytest.mark.parametrize("platform", ["snp", "tdx"])
@pytest.mark.parametrize("mode", ["fresh", "static"])
def test_demo(platform, mode):
    r = CliRunner().invoke(main, ["demo", "--platform", platform, "--mode", mode, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["accepted"]["platform"] == platform and out["accepted"]["simulated"] is True
    assert out["echo"] == "hello from an attested client"
    assert out["rejected"]["code"] == "policy"
    assert "SIMULATED TEE" in r.stderr


def test_demo_with_a_real_software_tpm():
    reason = swtpm_unavailable_reason() or tpm2_pytss_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the swtpm demo: {reason}")
        pytest.skip(reason)
    r = CliRunner().invoke(main, ["demo", "--attester", "tpm", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    accepted = out["accepted"]
    assert accepted["platform"] == "tpm" and accepted["simulated"] is False
    assert accepted["trust_root"] == "pinned-ak"
    assert "pcrs.sha256.4" in out["rejected"]["message"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(request):
    port = _free_port()
    extra = getattr(request, "param", [])
    proc = subprocess.Popen(
        [*ATLS, "serve", "--listen", f"127.0.0.1:{port}", "--echo", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("atls serve did not start listening")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def _atls(*args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ATLS, *args], input=input, capture_output=True, timeout=60)


def test_serve_policy_init_connect(server, tmp_path: Path):
    policy = tmp_path / "server.toml"
    r = _atls("policy", "init", "--from", server, "--allow-simulated", "-o", str(policy))
    assert r.returncode == 0, r.stderr.decode()
    assert "measurement" in policy.read_text()

    # the pinned policy: the bytes go through and come back
    r = _atls("connect", server, "--allow-simulated", "--policy", str(policy), input=b"ping\n")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"ping\n"

    # another measurement: refused, nothing echoed (so nothing was sent)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('version = 1\nname = "wrong"\n[snp]\nmeasurement = "' + "00" * 48 + '"\n')
    r = _atls("connect", server, "--allow-simulated", "--policy", str(wrong), input=b"secret\n")
    assert r.returncode == 1 and r.stdout == b""
    assert b"measurement" in r.stderr

    # simulated evidence without the explicit opt-in: refused
    r = _atls("connect", server, "--policy", str(policy), input=b"secret\n")
    assert r.returncode == 1 and r.stdout == b""


@pytest.mark.parametrize(
    "server", [["--profile", "cocos", "--platform", "tdx"]], indirect=True
)
def test_cocos_profile_end_to_end(server, tmp_path: Path):
    # a Cocos-format server is verified by a client speaking the Cocos profile ...
    r = _atls("connect", server, "--profile", "cocos", "--allow-simulated", input=b"hi\n")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"hi\n"
    # ... and refused by a native client (no atls evidence extension): nothing sent
    r = _atls("connect", server, "--allow-simulated", input=b"secret\n")
    assert r.returncode == 1 and r.stdout == b""
    # a profile that cannot honour the requested binding is a usage error
    r = _atls("connect", server, "--profile", "cocos", "--static", input=b"x")
    assert r.returncode == 2


def test_serve_profile_cocos_needs_tdx_evidence():
    r = _atls("serve", "--listen", "127.0.0.1:0", "--echo", "--profile", "cocos")
    assert r.returncode == 2 and b"needs TDX evidence" in r.stderr.replace(b"\n", b" ")


def test_serve_staple_fetch_lets_a_client_without_collateral_verify(tmp_path: Path):
    from atls.pipeline import AttestationVerifier
    from atls.policy import Policy
    from atls.testing.demo import demo_attester, demo_trust_store
    from atls.testing.fake_pcs import FakeVendorServer, add_fake_intel
    from atls.tls.sync import connect

    with FakeVendorServer() as pcs:
        add_fake_intel(pcs, demo_attester("tdx").hierarchy)
        port = _free_port()
        proc = subprocess.Popen(
            [*ATLS, "serve", "--listen", f"127.0.0.1:{port}", "--echo", "--platform", "tdx",
             "--staple-fetch", "--pcs-url", pcs.base_url, "--ca-bundle", str(pcs.ca_file),
             "--cache-dir", str(tmp_path / "cache")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            fetched = len(pcs.requests)
            assert fetched == 4  # TCB info, QE identity, PCK CRL, root CA CRL, once
            # a client with no collateral at all: the stapled collateral is enough
            verifier = AttestationVerifier(
                policy=Policy.default(), trust=demo_trust_store(["tdx"]), allow_simulated=True
            )
            for _ in range(2):
                with connect("127.0.0.1", port, verifier=verifier) as conn:
                    assert conn.attestation is not None
                    assert conn.attestation.verified.tcb_status == "UpToDate"
                    conn.sendall(b"ping")
                    assert conn.recv(4) == b"ping"
            assert len(pcs.requests) == fetched  # no fetch per handshake
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stderr:
                proc.stderr.close()


@pytest.mark.parametrize(
    "server", [["--profile", "cocos", "--platform", "tdx"]], indirect=True
)
def test_policy_init_from_a_cocos_server(server, tmp_path: Path):
    policy = tmp_path / "agent.toml"
    r = _atls("policy", "init", "--from", server, "--profile", "cocos", "--allow-simulated",
              "-o", str(policy))  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    assert "mr_td" in policy.read_text()
    r = _atls("connect", server, "--profile", "cocos", "--allow-simulated", "--policy",
              str(policy), input=b"ok\n")  # fmt: skip
    assert r.returncode == 0 and r.stdout == b"ok\n"
