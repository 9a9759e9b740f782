# SPDX-License-Identifier: MIT
"""The stubs (shmbus.pyi) and the module agree, and everything public has a docstring."""
import ast
import os

import shmbus

STUB = os.path.join(os.path.dirname(__file__), "..", "shmbus.pyi")
HELPERS = {"Policy", "TopicInfo", "TopicStats", "ReaderInfo", "GroupInfo", "BusStats",
           "DaemonInfo", "Buffer"}


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
    assert public(dir(shmbus)) == public(top) - HELPERS
    for name in ("Bus", "Publisher", "Reservation", "Subscriber", "Message"):
        cls = getattr(shmbus, name)
        assert public(vars(cls)) == public(classes[name]), name
    for name in ("Error", "Timeout", "Exists", "NotFound", "TooBig", "AccessDenied"):
        assert name in classes


def test_everything_has_a_docstring():
    assert shmbus.__doc__
    for name in public(dir(shmbus)):
        obj = getattr(shmbus, name)
        if isinstance(obj, type):
            assert obj.__doc__, name
            for attr, v in vars(obj).items():
                if v is None:
                    continue  # Error.errno, a plain attribute
                if not attr.startswith("_") or attr in ("__enter__", "__exit__"):
                    assert getattr(v, "__doc__", None), f"{name}.{attr}"
