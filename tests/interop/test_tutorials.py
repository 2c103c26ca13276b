"""The ```python blocks of docs/tutorials/*.md run as written (in order, one namespace per
page), from a working directory that has the test vectors at ../shared/vectors as the
tutorials assume. Long-running stand-in servers are ```py blocks and are not run here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tutorials"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", ["dstack.md", "secretvm.md", "cocos.md"])
def test_tutorial_code_blocks_run(page, vectors, tmp_path, monkeypatch, capsys):
    (tmp_path / "shared").symlink_to(vectors.parent)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    blocks = _BLOCK.findall((DOCS / page).read_text())
    assert blocks, f"{page} has no python examples"
    ns: dict[str, object] = {"__name__": f"tutorial_{page}"}
    for code in blocks:
        exec(compile(code, page, "exec"), ns)
    assert capsys.readouterr().out.strip(), "the examples print what they show"
