"""Every file and folder a recipe reads: what an output folder must never contain."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .builders import builder_file


if TYPE_CHECKING:  # the recipe is a higher layer; only its type is named here
    from ..recipe import Recipe


def recipe_inputs(recipe: Recipe) -> tuple[Path, ...]:
    """The recipe's own folder (so the recipe itself, and whatever sits beside it), the model file or
    SavedModel, the data .npz, and the .py files of the model, data and distill student builders."""
    paths = [recipe.base_dir]
    torch = recipe.model.torch
    for relative in (recipe.model.path, recipe.data.npz, torch.exported if torch else None):
        if relative is not None:
            paths.append(recipe.resolve(relative))
    specs = [recipe.model.builder, recipe.data.builder, torch.builder if torch else None]
    specs += [stage.settings.student_builder for stage in recipe.stages if stage.kind == "distill"]
    paths += [builder_file(spec, recipe.base_dir) for spec in specs if spec is not None]
    return tuple(path for path in paths if path is not None)
