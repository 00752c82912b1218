"""The one rule for paths written in a recipe: $VARIABLES expanded, ~ expanded, then relative to
the recipe's folder. Model and data files, builder files and student builders all resolve here."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import KitError


def resolve_path(relative: str, base_dir: Path) -> Path:
    for variable in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", relative):
        if variable not in os.environ:
            raise KitError(f"recipe path '{relative}' uses ${variable}, which is not set",
                           f"export {variable}=<folder> (for the MLPerf Tiny recipes: the shared data folder)")
    path = Path(os.path.expandvars(relative)).expanduser()
    return path if path.is_absolute() else (Path(base_dir) / path)
