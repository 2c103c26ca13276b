"""Print the Nth fenced command of the README's "Quick start" section (1-based)."""

import pathlib
import re
import sys

text = pathlib.Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
start = re.search(r"(?im)^#+\s*quick\s*-?\s*start\s*$", text)
if not start:
    sys.exit("README has no Quick start section")
rest = text[start.end() :]
end = re.search(r"(?m)^#{1,2}\s", rest)
blocks = re.findall(r"```[^\n]*\n(.*?)```", rest[: end.start()] if end else rest, re.S)
if len(blocks) != 2:
    sys.exit(f"Quick start must hold exactly two commands, found {len(blocks)}")
print(blocks[int(sys.argv[1]) - 1].strip())
