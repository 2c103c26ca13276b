"""Shared fixtures. Real evidence is read from the shared test-vector folder, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "vectors"


def vectors_dir() -> Path | None:
    p = Path(os.environ.get("ATLS_TEST_VECTORS", str(_DEFAULT)))
    return p if p.is_dir() else None


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The test-vector folder (``$ATLS_TEST_VECTORS`` or ``../shared/vectors``)."""
    p = vectors_dir()
    if p is None:
        pytest.skip(
            "test vectors not found: set ATLS_TEST_VECTORS (CI fails when they are missing)"
        )
    return p
