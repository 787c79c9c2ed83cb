"""Every ```python block of the user guide runs, page by page, top to bottom."""
import pathlib
import re

import pytest

pytest.importorskip("torch")

GUIDE = pathlib.Path(__file__).parent.parent / "docs" / "guide"
PAGES = sorted(p for p in GUIDE.glob("*.md") if "```python" in p.read_text())


def test_the_guide_has_examples():
    assert len(PAGES) >= 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)
