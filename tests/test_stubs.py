"""The hand-written stub ransform/_core.pyi lists exactly what the native module exports."""
import ast
import pathlib

import ransform
from ransform import _core

STUB = pathlib.Path(ransform.__file__).with_name("_core.pyi")


def _stub_names():
    tree = ast.parse(STUB.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        if isinstance(node, ast.AnnAssign):  # constants, e.g. FORMAT_VERSION: int
            top.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return top, members


def test_stub_lists_every_public_name_of_the_module():
    top, _ = _stub_names()
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public == top


def test_stub_lists_every_public_method_of_each_class():
    _, members = _stub_names()
    for cls_name, stub_names in members.items():
        cls = getattr(_core, cls_name)
        public = {n for n in vars(cls) if not n.startswith("_")}
        assert public == {n for n in stub_names if not n.startswith("_")}, cls_name
