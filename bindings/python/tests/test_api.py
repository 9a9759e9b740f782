# SPDX-License-Identifier: MIT
"""The stubs (shmbus.pyi) and the module agree, and everything public has a docstring."""
import ast
import os

import shmbus

STUB = os.path.join(os.path.dirname(__file__), "..", "shmbus.pyi")


def stub_names():
    tree = ast.parse(open(STUB).read())
    top, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top.add(node.name)
            classes[node.name] = {n.name for n in node.body
                                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            classes[node.name] |= {n.target.id for n in node.body
                                   if isinstance(n, ast.AnnAssign)}
        elif isinstance(node, ast.AnnAssign):
            top.add(node.target.id)
        elif isinstance(node, ast.Assign):
            top |= {t.id for t in node.targets}
    return top, classes


def public(names):
    return {n for n in names if not n.startswith("_")}


def test_stubs_match_the_module():
    top, classes = stub_names()
    assert public(dir(shmbus)) == public(top)
    for name in ("Bus", "Publisher", "Reservation", "Subscriber", "Message", "Sink"):
        cls = getattr(shmbus, name)
        assert public(vars(cls)) == public(classes[name]), name
    for name in ("Error", "Timeout", "Exists", "NotFound", "TooBig", "AccessDenied", "Stale",
                 "Unsupported"):
        assert name in classes


def test_everything_has_a_docstring():
    assert shmbus.__doc__
    for name in public(dir(shmbus)):
        obj = getattr(shmbus, name)
        if isinstance(obj, type):
            assert obj.__doc__, name
            for attr, v in vars(obj).items():
                if not attr.startswith("_") or attr in ("__enter__", "__exit__"):
                    assert getattr(v, "__doc__", None), f"{name}.{attr}"


def mypy(*args):
    """Run mypy (python3-mypy) with the stubs' directory on MYPYPATH, in a scratch
    directory (where any cache it writes goes)."""
    import subprocess
    import sys
    import tempfile

    import pytest

    pytest.importorskip("mypy")
    env = dict(os.environ, MYPYPATH=os.path.abspath(os.path.dirname(STUB)),
               PYTHONPATH=os.path.dirname(shmbus.__file__))
    with tempfile.TemporaryDirectory() as scratch:
        return subprocess.run([sys.executable, "-m", *args], env=env, cwd=scratch,
                              capture_output=True, text=True, timeout=120)


def test_stubtest_agrees_with_the_runtime():
    """mypy's stubtest: every signature, attribute and class of the stub against the module."""
    r = mypy("mypy.stubtest", "shmbus")
    assert r.returncode == 0, r.stdout + r.stderr


def test_examples_type_check_strictly():
    examples = os.path.abspath(os.path.join(os.path.dirname(STUB), "examples"))
    r = mypy("mypy", "--strict", "--no-incremental", examples)
    assert r.returncode == 0, r.stdout + r.stderr
