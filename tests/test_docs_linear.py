"""docs/linear.md cannot rot: every ```python block on the page runs, in order, in one namespace."""

from __future__ import annotations

import re

from helpers import ROOT

PAGE = ROOT / "docs" / "linear.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def test_every_code_block_of_docs_linear_runs(capsys) -> None:
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) >= 12  # one per section: a block dropped by a broken fence shows here
    namespace: dict[str, object] = {"__name__": "docs_linear"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"{PAGE}:block{index}", "exec"), namespace)  # noqa: S102 - our own page
    assert re.search(r"w = (9\.9[5-9]|10\.0[0-4])\d, b = (4\.9[5-9]|5\.0[0-4])\d", capsys.readouterr().out)
