"""The registered stages. A new stage is one module in this folder plus its name below; the recipe
schema (converter/recipe.py), the convert flow and the report all read the stages from here.

Importing a stage module registers it (the `@register` decorator in stages/base.py); stage modules
import TensorFlow only inside functions, so this loads without it.
"""
from __future__ import annotations

import importlib

from .base import Stage, registered

# Order matters only for error messages and docs: Keras stages, the converter, flatbuffer stages.
STAGE_MODULES = ("train", "prune", "cluster", "int4_finetune", "qat", "distill", "federated", "quantize", "compress")


def stages() -> dict[str, Stage]:
    for module in STAGE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return registered()


def list_stages() -> dict[str, Stage]:
    """The stages a recipe's `stages:` list may name: all but those that are the recipe's own sections
    (quantize, compress)."""
    return {name: stage for name, stage in stages().items() if not stage.section}


def get(name: str) -> Stage:
    return stages()[name]
