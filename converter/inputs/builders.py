"""Load a user function named 'file.py:function' (relative to the recipe) or 'module:function'.

A builder file is loaded under a name made from its resolved path, so two files with the same
name in different folders (two model.py) never replace each other.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from ..errors import KitError
from ..system.paths import resolve_path


def _module_from_file(path: Path):
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    module_name = f"_tflm_kit_builder_{path.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module


def builder_file(spec: str, base_dir: Path) -> Path | None:
    """The .py file a 'file.py:function' spec names (relative to the recipe), or None for 'module:function'."""
    target = spec.rpartition(":")[0]
    if not target.endswith(".py"):
        return None
    return resolve_path(target, base_dir).resolve()


def load_function(spec: str, base_dir: Path, what: str) -> Callable:
    target, sep, func_name = spec.rpartition(":")
    if not sep or not target or not func_name:
        raise KitError(f"{what} builder '{spec}' is not of the form 'file.py:function' or 'module:function'",
                       "write the builder as e.g. ../digits.py:build_model")
    if target.endswith(".py"):
        path = builder_file(spec, base_dir)
        if not path.is_file():
            raise KitError(f"{what} builder file {path} does not exist", "fix the path (relative to the recipe file)")
        module = _module_from_file(path)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise KitError(f"{what} builder module '{target}' cannot be imported ({exc})",
                           "install it or give a file path like ../builder.py:function") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise KitError(f"{what} builder '{spec}' has no function '{func_name}'", "name a function the file defines")
    return func
