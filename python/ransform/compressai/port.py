"""Points a CompressAI-based code base at ransform: every ``import compressai...`` and
``from compressai... import`` line becomes ``ransform.compressai...``; nothing else changes.

    python -m ransform.compressai.port SRC_DIR DST_DIR     # a copy of SRC_DIR, its imports ported
    python -m ransform.compressai.port FILE.py             # the ported file on stdout
"""
from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import sys

_FROM = re.compile(r"^(\s*from\s+)compressai(?=[.\s])", re.M)
_IMPORT = re.compile(r"^(\s*)import\s+compressai((?:\.\w+)*)(\s+as\s+\w+)?[ \t]*$", re.M)


def _ported_import(match: re.Match) -> str:
    indent, submodules, alias = match.group(1), match.group(2), match.group(3)
    if alias:
        return f"{indent}import ransform.compressai{submodules}{alias}"
    if not submodules:
        return f"{indent}import ransform.compressai as compressai"
    # `import compressai.ans` binds the name compressai: bind it to the ported package
    return f"{indent}import ransform.compressai{submodules}; from ransform import compressai"


def port_source(text: str) -> str:
    """The source with its CompressAI imports pointed at ``ransform.compressai``, binding
    the same names (``import compressai`` becomes ``import ransform.compressai as
    compressai``)."""
    return _IMPORT.sub(_ported_import, _FROM.sub(r"\1ransform.compressai", text))


def port_tree(source: pathlib.Path, target: pathlib.Path) -> list[pathlib.Path]:
    """Copies ``source`` to ``target`` (``.git`` left out), its .py files ported; returns the
    files whose imports changed. ``target`` must not exist yet (nothing is overwritten)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git"))
    changed = []
    for path in sorted(target.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        ported = port_source(text)
        if ported != text:
            path.write_text(ported, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ransform.compressai.port", description=__doc__.split("\n")[0])
    parser.add_argument("source", type=pathlib.Path, help="a .py file, or a folder")
    parser.add_argument("target", type=pathlib.Path, nargs="?", help="new folder for the ported copy of SOURCE")
    args = parser.parse_args(argv)
    try:
        if args.source.is_file() and args.target is None:
            sys.stdout.write(port_source(args.source.read_text(encoding="utf-8")))
            return 0
        if not args.source.is_dir() or args.target is None:
            parser.error("give a .py file, or a folder and a new target folder")
        changed = port_tree(args.source, args.target)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"ransform.compressai.port: {exc}", file=sys.stderr)
        return 2
    print(f"{len(changed)} files ported into {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
