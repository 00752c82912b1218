"""The search space: per-layer cluster counts (LUT index widths), and the recipe a candidate is.

Each layer with a kernel gets one choice: 0 leaves it unclustered (its tensor stays int8, no LUT,
no decoded copy in the arena), or 2/4/8/16 clusters per channel, which the compress step stores as
1/2/3/4-bit LUT indices. Counts between powers of two cost the same index bits, so they are not
offered. Pruning joins the space when the compress step can store sparsity (a `prune` compress
setting: TFLM DECODE's PRUNE encoding); without it sparse weights take the same flash as dense ones,
so it is no lever. Packed int4 filters join it when the compress step has an `int4` setting.
With `--objective ram` every candidate also carries an offline memory plan (`compress.memory_plan:
offline`): it costs no quality and the compress step keeps it only when TFLM's measured arena shrinks,
so it is a fixed setting (one choice), not a dimension to search.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..recipe import CompressSettings, Recipe

CLUSTER_CHOICES = (0, 2, 4, 8, 16)
SPARSITY_CHOICES = (0.0, 0.5, 0.7, 0.9)
SENSITIVITY_CLUSTERS = 4
MIN_LAYER_WEIGHTS = 64     # smaller kernels cannot save enough to pay for a DECODE operator


@dataclass(frozen=True)
class FineTune:
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-4


@dataclass(frozen=True)
class Space:
    layers: tuple[str, ...]                 # Keras layer names with a kernel worth compressing
    layer_weights: dict = field(default_factory=dict)   # layer -> kernel elements (for steering)
    prune: bool = False                     # whether sparsity is a lever (PRUNE encoding available)
    int4: bool = False                      # whether packed int4 filters are a lever
    memory_plan: bool = False               # every candidate gets an offline memory plan (objective ram);
    #                                         keep it the last field and pass it by name

    def parameter_names(self) -> list[str]:
        return [f"clusters:{layer}" for layer in self.layers] + (["sparsity"] if self.prune else []) + \
            (["int4"] if self.int4 else []) + (["memory_plan"] if self.memory_plan else [])

    def choices(self, name: str) -> tuple:
        return {"sparsity": SPARSITY_CHOICES, "int4": (False, True), "memory_plan": (True,)}.get(name, CLUSTER_CHOICES)

    def reference(self) -> dict:
        """Nothing compressed: post-training quantization of the float model (metadata stripped)."""
        return {name: self.choices(name)[0] for name in self.parameter_names()}

    def only(self, layer: str, clusters: int = SENSITIVITY_CLUSTERS) -> dict:
        """One layer compressed, for its sensitivity."""
        return self.reference() | {f"clusters:{layer}": clusters}

    def as_dict(self) -> dict:
        return {"layers": list(self.layers), "layer_weights": self.layer_weights, "prune": self.prune,
                "int4": self.int4,
                "choices": {name: list(self.choices(name)) for name in self.parameter_names()}} | \
            ({"memory_plan": True} if self.memory_plan else {})  # absent when off: earlier searches resume


def prune_encoder_available() -> bool:
    return "prune" in CompressSettings.model_fields


def int4_available() -> bool:
    return "int4" in CompressSettings.model_fields


def memory_plan_available() -> bool:
    return "memory_plan" in CompressSettings.model_fields


def space_for(model, objective: str = "flash") -> Space:
    from ..stages.weights import weight_stats

    rows = [row for row in weight_stats(model) if row["weights"] >= MIN_LAYER_WEIGHTS]
    return Space(tuple(row["layer"] for row in rows), {row["layer"]: row["weights"] for row in rows},
                 prune_encoder_available(), int4_available(),
                 memory_plan=objective == "ram" and memory_plan_available())


def cluster_counts(params: dict) -> dict[str, int]:
    return {name.split(":", 1)[1]: int(value) for name, value in params.items() if name.startswith("clusters:")}


def candidate_recipe(base: Recipe, params: dict, fine_tune: FineTune, loss: str, selection_size: int,
                     separate_calibration: bool = False, teacher: str = "../teacher.h5",
                     data: str = "../data.npz") -> dict:
    """The recipe (a YAML mapping) that builds this candidate from the saved float model and the split
    data, with paths relative to a folder one level below the search directory (trials/, best/).
    `loss` fits the distillation targets stored as y_train (categorical_crossentropy or mse);
    `separate_calibration`: the npz holds calibration inputs of their own (else x_train calibrates)."""
    counts = cluster_counts(params)
    sparsity = float(params.get("sparsity", 0.0))
    fit = {"epochs": fine_tune.epochs, "batch_size": fine_tune.batch_size,
           "learning_rate": fine_tune.learning_rate, "loss": loss}
    stages = []
    if sparsity > 0:
        stages.append({"prune": {"final_sparsity": sparsity, "initial_sparsity": 0.0, **fit,
                                 "learning_rate": max(fine_tune.learning_rate, 1e-3)}})
    if any(counts.values()):
        stages.append({"cluster": {"clusters": max(counts.values()), "per_layer": counts, "per_channel": True,
                                   "preserve_sparsity": sparsity > 0, **fit}})
    # Every candidate, the plain int8 reference too, drops what TFLM never reads (names, signatures,
    # converter metadata): a free saving of its own, so it must not be credited to compression.
    compress = {"lut": bool(stages), "strip_metadata": True, "verify_samples": min(100, selection_size)}
    if sparsity > 0:
        compress["prune"] = True
    if params.get("int4"):
        compress["int4"] = True
    if params.get("memory_plan"):
        compress["memory_plan"] = "offline"
    recipe = {
        "name": base.name,
        "seed": base.seed,
        "eval_samples": selection_size,
        "arena_margin": base.arena_margin,
        "model": {"path": teacher},
        "data": {"npz": data, **({"x_calibration": "x_calibration"} if separate_calibration else {})},
        "stages": stages,
        "quantize": base.quantize.model_dump(mode="json"),
        "golden": base.golden.model_dump(mode="json"),
    }
    recipe["compress"] = compress
    return recipe


def describe(params: dict) -> str:
    """One short line: 'conv:4 logits:16 sparsity 0.5' (unclustered layers left out)."""
    parts = [f"{layer}:{count}" for layer, count in cluster_counts(params).items() if count]
    if params.get("sparsity"):
        parts.append(f"sparsity {params['sparsity']}")
    if params.get("int4"):
        parts.append("int4")
    return " ".join(parts) or "plain int8"
