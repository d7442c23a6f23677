from __future__ import annotations

import importlib.util
import marshal
import sys

import pytest

from imagetool.debian.bytecode import BytecodeError, bytecode_members
from imagetool.debian.tree import Tree, regular_file

MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
TAG = sys.implementation.cache_tag


def test_unchecked_hash_pycs_beside_the_modules() -> None:
    tree = Tree()
    source = b"ANSWER = 6 * 7\n"
    tree.add(regular_file(f"usr/lib/python{MINOR}/answer.py", source), owner="test")
    tree.add(
        regular_file(f"usr/lib/python{MINOR}/lib2to3/tests/py2.py", b"print 'old'\n"), owner="test"
    )
    tree.add(regular_file(f"usr/lib/python{MINOR}/README.txt", b"not a module"), owner="test")
    members = {info.name: data for info, data in bytecode_members(tree, f"{MINOR}.2")}
    assert set(members) == {
        f"usr/lib/python{MINOR}/__pycache__",
        f"usr/lib/python{MINOR}/__pycache__/answer.{TAG}.pyc",
    }
    pyc = members[f"usr/lib/python{MINOR}/__pycache__/answer.{TAG}.pyc"]
    assert pyc is not None
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, not checked
    assert pyc[8:16] == importlib.util.source_hash(source)
    code = marshal.loads(pyc[16:])
    assert code.co_filename == f"/usr/lib/python{MINOR}/answer.py"
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["ANSWER"] == 42


def test_another_python_minor_is_refused() -> None:
    with pytest.raises(
        BytecodeError, match=r"The base's Python is 2.7.18, but this tool runs on Python"
    ):
        list(bytecode_members(Tree(), "2.7.18"))
