"""The examples run as tests, as a user would run them (a separate Python process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_trio_echo():
    out = run("trio_echo.py")
    assert "echo: hello, attested world" in out
    assert "server measurement: " + "5a" * 48 in out


def test_sync_echo():
    assert "echo: hello over blocking sockets" in run("sync_echo.py")


def test_confidential_upload_goes_only_to_the_verified_server():
    import trio

    sys.path.insert(0, str(EXAMPLES))
    try:
        import confidential_upload as ex
    finally:
        sys.path.remove(str(EXAMPLES))
    receipt, good, evil = trio.run(ex.main)
    assert good == [ex.PAYLOAD]
    assert evil == []
    assert receipt.startswith("sha256:")


def test_smpc_upload_sends_inputs_only_to_the_verified_agent():
    import hashlib

    import trio

    out = run("smpc_upload.py")  # as a user runs it
    assert "agent verified, inputs uploaded" in out
    assert "refused the impostor agent before sending anything: policy" in out
    sys.path.insert(0, str(EXAMPLES))
    try:
        import smpc_upload as ex
    finally:
        sys.path.remove(str(EXAMPLES))
    receipt, good, evil, refused = trio.run(ex.main)
    assert good == [(ex.ALGORITHM, ex.DATASET)]
    assert evil == []  # the impostor received nothing at all
    assert refused == "policy"
    assert receipt.endswith(hashlib.sha256(ex.ALGORITHM + ex.DATASET).hexdigest())
