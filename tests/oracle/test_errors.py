"""The oracle's errors form one tree: every exception it defines is in oracle/errors.py, under OracleError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import oracle
from oracle.errors import OracleError


def test_every_exception_the_oracle_defines_is_in_its_error_tree():
    """Each module of oracle/ is imported and searched for exception classes defined in it: all of them
    are defined in oracle.errors and derive from OracleError (so `python -m oracle` reports each with its
    message instead of a traceback)."""
    modules = [importlib.import_module(info.name) for info in pkgutil.iter_modules(oracle.__path__, "oracle.")]
    assert len(modules) > 15  # the search saw the package
    defined = {
        (cls.__module__, cls.__name__): cls
        for module in modules
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }
    outside = sorted(f"{module}.{name}" for module, name in defined if module != "oracle.errors")
    assert not outside, f"exceptions defined outside oracle/errors.py: {outside}"
    assert all(issubclass(cls, OracleError) for cls in defined.values())
    documented = inspect.getdoc(importlib.import_module("oracle.errors"))
    assert all(name in documented for _, name in defined), "oracle/errors.py's docstring draws every error"
