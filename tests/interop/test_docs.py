"""The Python code blocks of docs/interop/*.md run as written (in order, one namespace per
page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "interop"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", ["dstack.md", "cocos.md", "secretvm.md"])
def test_code_blocks_run(page, capsys):
    text = (DOCS / page).read_text()
    blocks = _BLOCK.findall(text)
    assert blocks, f"{page} has no python examples"
    ns: dict[str, object] = {"__name__": f"docs_{page}"}
    for code in blocks:
        exec(compile(code, f"{page}", "exec"), ns)
    out = capsys.readouterr().out
    assert out.strip(), "the examples print what they show"
