"""The documentation's examples run:

- every ```python block of the user guide, page by page, top to bottom (one namespace a page);
- every ```python block of README.md, each on its own (each is a self-contained snippet);
- every docstring example (``>>>``) of the ransform package, through doctest.
"""
import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

pytest.importorskip("torch")

import ransform  # noqa: E402

ROOT = pathlib.Path(__file__).parent.parent
GUIDE = ROOT / "docs" / "guide"
PAGES = sorted(p for p in GUIDE.glob("*.md") if "```python" in p.read_text())


def python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_the_guide_has_examples():
    assert len(PAGES) >= 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    namespace = {}
    for i, block in enumerate(python_blocks(page)):
        exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)


# --------------------------------------------------------------------------- README.md

README = ROOT / "README.md"

def readme_cases():
    return [pytest.param(i, block, id=f"README.md[block {i}]") for i, block in enumerate(python_blocks(README))]


def test_the_readme_has_examples():
    assert len(python_blocks(README)) >= 2


@pytest.mark.parametrize("index, block", readme_cases())
def test_readme_examples_run(index, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    exec(compile(block, f"README.md[block {index}]", "exec"), {})


# --------------------------------------------------------------------------- docstrings


def package_modules():
    """(modules, {name: import error}) of every module of the ransform package."""
    modules, errors = [], {}
    for info in pkgutil.walk_packages(ransform.__path__, "ransform."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it would be running the CLI
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as exc:  # noqa: BLE001 - reported by test_every_module_imports
            errors[info.name] = f"{type(exc).__name__}: {exc}"
    return [ransform] + modules, errors


MODULES, IMPORT_ERRORS = package_modules()
DOCTESTS = sorted((t for m in MODULES for t in doctest.DocTestFinder().find(m) if t.examples),
                  key=lambda t: t.name)


def test_every_module_imports():
    assert len(MODULES) > 10 and not IMPORT_ERRORS, IMPORT_ERRORS


@pytest.mark.parametrize("test", DOCTESTS or [None], ids=lambda t: t.name if t else "none")
def test_docstring_examples(test, tmp_path, monkeypatch):
    if test is None:
        pytest.skip("no docstring in the ransform package has a >>> example")
    monkeypatch.chdir(tmp_path)
    out = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=out.append, clear_globs=False)
    assert result.failed == 0, "".join(out)
