"""Loading collateral from files and directories (the I/O edge)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from atls.collateral._bundle import Collateral, collateral_from_bytes
from atls.errors import ConfigurationError

__all__ = ["MAX_COLLATERAL_FILE", "load_collateral"]

MAX_COLLATERAL_FILE = 8 << 20


def _files(p: Path) -> Iterable[Path]:
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                yield f
    elif p.is_file():
        yield p
    else:
        raise ConfigurationError(f"collateral path {p} does not exist", code="collateral.no_path")


def load_collateral(paths: Iterable[str | os.PathLike[str]]) -> Collateral:
    """Read files and directories (recursively) and sniff each file by content.

    Files that hold nothing recognisable are skipped; a named file that holds nothing is
    an error, so a typo'd path never silently means "no collateral".
    """
    out = Collateral()
    for raw in paths:
        p = Path(raw)
        for f in _files(p):
            if f.stat().st_size > MAX_COLLATERAL_FILE:
                if f == p:
                    raise ConfigurationError(
                        f"{f}: larger than {MAX_COLLATERAL_FILE} bytes", code="collateral.too_large"
                    )
                continue
            found = collateral_from_bytes(f.read_bytes(), source=str(f))
            if not found and f == p:
                raise ConfigurationError(
                    f"{f}: no certificates, CRLs or collateral documents found",
                    code="collateral.unrecognised",
                )
            out = out.merged(found)
    return out
