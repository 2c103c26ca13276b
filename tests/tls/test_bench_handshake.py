"""``python -m atls.bench handshake`` runs and reports its contract (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from atls.bench.handshake import main


@pytest.mark.parametrize("mode", ["static", "fresh"])
def test_handshake_benchmark_reports_ratios(mode, capsys):
    assert main(["--mode", mode, "--seconds", "0.3", "--rounds", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == mode
    for side in ("attested_per_s", "attested_full_per_s", "plain_per_s"):
        assert out[side] > 0
    assert out["ratio"] == pytest.approx(out["attested_per_s"] / out["plain_per_s"], rel=0.01)
    assert out["full_ratio"] == pytest.approx(
        out["attested_full_per_s"] / out["plain_per_s"], rel=0.01
    )
