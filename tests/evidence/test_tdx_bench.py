"""``python -m atls.bench verify-tdx`` (atls.bench.verify_tdx.main) on a real quote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from atls.bench.verify_tdx import main, parse_at, read_evidence


@pytest.mark.vectors
@pytest.mark.parametrize("cold", [False, True])
def test_verify_tdx_benchmark(
    vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], cold: bool
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(vectors / "tdx/dcap-qvl/TrustedRootCA.der", trust / "intel.der")
    argv = [
        "--evidence", str(vectors / "tdx/dcap-qvl/tdx_quote"),
        "--collateral", str(vectors / "tdx/dcap-qvl/tdx_quote_collateral.json"),
        "--at", "1752919234",
        "--trust-dir", str(trust),
        "--repeat", "3",
        "--json",
    ] + (["--cold"] if cold else [])  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["median_s"] > 0 and out["tcb_status"] == "UpToDate"
    assert out["mode"] == ("cold" if cold else "warm") and out["format"] == "tdx-quote"
    # A collateral window that does not hold: an error, exit status 1.
    argv[argv.index("1752919234")] = "2030-01-01T00:00:00Z"
    assert main(argv) == 1
    assert "expired" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.vectors
def test_evidence_as_hex_text(vectors: Path) -> None:
    assert (
        read_evidence(str(vectors / "tdx/dcap-qvl/tdx-quote.hex"))
        == (vectors / "tdx/dcap-qvl/tdx-quote.bin").read_bytes()
    )
    raw = vectors / "tdx/dcap-qvl/tdx_quote"
    assert read_evidence(str(raw)) == raw.read_bytes()
    assert parse_at("1752919234") == parse_at("2025-07-19T10:00:34Z")
