"""The search space: per-layer cluster counts (LUT index widths), and the recipe a candidate is.

Each layer with a kernel gets one choice: 0 leaves it unclustered (its tensor stays int8, no LUT,
no decoded copy in the arena), or 2/4/8/16 clusters per channel, which the compress step stores as
1/2/3/4-bit LUT indices. Counts between powers of two cost the same index bits, so they are not
offered. Pruning joins the space when the compress step can store sparsity (a `prune` compress
setting: TFLM DECODE's PRUNE encoding); without it sparse weights take the same flash as dense ones,
so it is no lever. Packed int4 filters join it when the compress step has an `int4` setting: then
each layer also gets `int4:<layer>` (its filter stored as packed int4, fine-tuned on the 4-bit grid
by the int4_finetune stage, which costs no DECODE kernel code; a clustered layer keeps its LUT).
With `--objective ram` every candidate also carries an offline memory plan (`compress.memory_plan:
offline`): it costs no quality and the compress step keeps it only when TFLM's measured arena shrinks,
so it is a fixed setting (one choice), not a dimension to search.

A model the kit cannot retrain (Keras 3, PyTorch: TF-MOT and the tf_keras fine-tuning stages take
tf_keras models only) gets the flatbuffer-level space instead (`base: flatbuffer`): every candidate
starts from the int8 flatbuffer made once (base.tflite); `int4:<filter tensor>` requantizes that
filter to 16 levels after quantization (no fine-tuning) and packs it, `lut` switches the lossless
DECODE encodings (LUT, PRUNE) on, and the memory plan is as above. Which levers a space holds, and why
the others are left out, is `Space.lever_lines()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, cast

from ..recipe import Recipe
from ..stages.compress import CompressSettings

CLUSTER_CHOICES = (0, 2, 4, 8, 16)
SPARSITY_CHOICES = (0.0, 0.5, 0.7, 0.9)
SENSITIVITY_CLUSTERS = 4
MIN_LAYER_WEIGHTS = 64     # smaller kernels cannot save enough to pay for a DECODE operator
KERAS, FLATBUFFER = "keras", "flatbuffer"   # what a space's candidates start from (Space.base)
BASE_MODEL = {KERAS: "teacher.h5", FLATBUFFER: "base.tflite"}   # the file in the search directory


LeverKind = Literal["clusters", "sparsity", "lut", "int4", "memory_plan"]


@dataclass(frozen=True)
class Lever:
    """One searched choice, typed. `param` is how Optuna and search.json spell it ('clusters:<layer>',
    'sparsity', 'lut', 'int4:<layer>', 'memory_plan'; 'int4' alone: the whole-model switch of earlier searches);
    `parse` is the one place that spelling is read."""

    kind: LeverKind
    layer: Optional[str] = None

    @property
    def param(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}:{self.layer}"

    @classmethod
    def parse(cls, param: str) -> "Lever":
        kind, _, layer = param.partition(":")
        # as search.json holds it: an unknown kind is not refused here (its choices default to cluster counts)
        return cls(cast(LeverKind, kind), layer or None)

    @property
    def choices(self) -> tuple:
        return {"sparsity": SPARSITY_CHOICES, "int4": (False, True), "lut": (False, True),
                "memory_plan": (True,)}.get(self.kind, CLUSTER_CHOICES)


def _int4(layer: str) -> str:
    return Lever("int4", layer).param


def _clusters(layer: str) -> str:
    return Lever("clusters", layer).param


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
    # the layers whose filter can be packed int4 (TFLM's FULLY_CONNECTED takes int4 only per tensor, and
    # the kit quantizes Dense per channel): empty means every layer
    int4_candidates: tuple[str, ...] = ()
    memory_plan: bool = False               # every candidate gets an offline memory plan (objective ram);
    #                                         keep it the last field and pass it by name
    # what the candidates are built from: "keras" (the float teacher, retrained by TF-MOT and tf_keras
    # fine-tuning) or "flatbuffer" (the int8 base.tflite: layers are filter tensors, no retraining)
    base: str = KERAS
    lut: bool = False                       # flatbuffer base: the DECODE encodings (LUT/PRUNE) as one switch
    left_out: tuple[str, ...] = ()          # one line per lever this model cannot take, and why

    def levers(self) -> list[Lever]:
        clusters = [Lever("clusters", layer) for layer in self.layers] if self.base == KERAS else []
        return clusters + ([Lever("sparsity")] if self.prune else []) + ([Lever("lut")] if self.lut else []) + \
            [Lever("int4", layer) for layer in (self.int4_layers() if self.int4 else ())] + \
            ([Lever("memory_plan")] if self.memory_plan else [])

    def parameter_names(self) -> list[str]:
        return [lever.param for lever in self.levers()]

    def choices(self, name: str) -> tuple:
        return Lever.parse(name).choices

    def reference(self) -> dict:
        """Nothing compressed: post-training quantization of the float model (metadata stripped)."""
        return {name: self.choices(name)[0] for name in self.parameter_names()}

    def only(self, layer: str, clusters: int = SENSITIVITY_CLUSTERS) -> dict:
        """One layer compressed, for its sensitivity: at `clusters`, or as packed int4 on a flatbuffer base."""
        if self.base == FLATBUFFER:
            return self.reference() | {_int4(layer): True}
        return self.reference() | {_clusters(layer): clusters}

    def greedy(self, safe: set[str]) -> dict:
        """From the sensitivity trials: layers that held the guards alone get 4 clusters, the others 16;
        on a flatbuffer base, the safe layers' filters packed as int4 (and the DECODE encodings on)."""
        if self.base == FLATBUFFER:
            return self.reference() | {_int4(layer): True for layer in self.layers if layer in safe} | \
                ({"lut": True} if self.lut else {})
        return self.reference() | {_clusters(layer): SENSITIVITY_CLUSTERS if layer in safe else 16
                                   for layer in self.layers}

    def uniform(self) -> Optional[dict]:
        """Every layer at 16 clusters (4-bit LUT indices); on a flatbuffer base, the DECODE encodings on
        alone; None when the space has neither."""
        if self.base == KERAS:
            return self.reference() | {_clusters(layer): 16 for layer in self.layers}
        return self.reference() | {"lut": True} if self.lut else None

    def lever_lines(self) -> tuple[list[str], list[str]]:
        """(the levers searched, the levers left out with why), one short phrase each."""
        searched = []
        if self.base == KERAS:
            searched.append(f"clusters per layer ({len(self.layers)} layers; TF-MOT, fine-tuned by distillation)")
        if self.prune:
            searched.append("sparsity (TF-MOT pruning, stored as PRUNE)")
        if self.lut:
            searched.append("LUT/PRUNE encodings (lossless, TFLM DECODE)")
        if self.int4:
            how = "fine-tuned on the 4-bit grid" if self.base == KERAS else "requantized after quantization"
            searched.append(f"packed int4 per filter ({len(self.int4_layers())} of {len(self.layers)}; {how})")
        if self.memory_plan:
            searched.append("offline memory plan (fixed)")
        return searched, list(self.left_out)

    def int4_layers(self) -> tuple[str, ...]:
        return tuple(layer for layer in self.layers if not self.int4_candidates or layer in self.int4_candidates)

    def int4_all(self) -> dict:
        """Every eligible layer's filter as packed int4 (no LUT, so no DECODE kernel)."""
        return self.reference() | {_int4(layer): True for layer in self.int4_layers()}

    def int4_large(self) -> dict:
        """Packed int4 for the layers holding more than their share of the weights (most of the
        bytes); the small, often sensitive, first and last layers stay int8."""
        share = sum(self.layer_weights.values()) / max(len(self.layers), 1)
        return self.reference() | {_int4(layer): True for layer in self.int4_layers()
                                   if self.layer_weights.get(layer, 0) >= share}

    def as_dict(self) -> dict:
        # the flatbuffer base's keys are absent on a Keras base: earlier searches resume (same fingerprint)
        flatbuffer = {"base": self.base, "lut": self.lut} if self.base != KERAS else {}
        return {"layers": list(self.layers), "layer_weights": self.layer_weights, "prune": self.prune,
                "int4": self.int4,
                "choices": {name: list(self.choices(name)) for name in self.parameter_names()}} | \
            ({"memory_plan": True} if self.memory_plan else {}) | flatbuffer


def prune_encoder_available() -> bool:
    return "prune" in CompressSettings.model_fields


def int4_available() -> bool:
    return "int4" in CompressSettings.model_fields


def memory_plan_available() -> bool:
    return "memory_plan" in CompressSettings.model_fields


def space_for(model, objective: str = "flash", per_channel: bool = True) -> Space:
    from ..stages.weights import weight_stats

    rows = [row for row in weight_stats(model) if row["weights"] >= MIN_LAYER_WEIGHTS]
    layers = tuple(row["layer"] for row in rows)
    eligible = _int4_eligible(model, layers, per_channel)
    left_out = [f"int4 for {len(layers) - len(eligible)} layer(s) whose filter TFLM cannot take packed (e.g. Dense "
                "quantized per channel: FULLY_CONNECTED takes int4 per tensor only)"] if len(eligible) < len(layers) else []
    return Space(layers, {row["layer"]: row["weights"] for row in rows}, prune_encoder_available(),
                 int4_available() and bool(eligible), eligible,
                 memory_plan=objective == "ram" and memory_plan_available(), left_out=tuple(left_out))


def flatbuffer_space(model_bytes: bytes, what: str, objective: str = "flash") -> Space:
    """The levers an int8 flatbuffer takes without retraining (`what` names the model for the lines
    saying why the retraining levers are left out): packed int4 per eligible filter tensor of 64+
    weights, the DECODE encodings when some tensor qualifies for one, the memory plan for objective ram."""
    from ..tflite.compression import int4
    from ..stages.compress import plan_encodings

    _, filters = int4.requantize(model_bytes)
    every = [c.name for c in filters]
    named = {c.name: short_name(c.name, every) for c in filters if c.bytes_before >= MIN_LAYER_WEIGHTS}
    names = list(named)
    layers = tuple(short for short in named.values() if short is not None)
    left_out = [f"clusters and sparsity per layer, int4 fine-tuning: TF-MOT and the tf_keras fine-tuning stages "
                f"retrain tf_keras models only, and this is {what}"]
    if len(layers) < len(names):
        left_out.append(f"int4 for {len(names) - len(layers)} filter(s) whose tensor name is part of another's")
    if not int4_available() or not layers:
        left_out.append("packed int4: no CONV_2D, DEPTHWISE_CONV_2D or per-tensor FULLY_CONNECTED filter of "
                        f"{MIN_LAYER_WEIGHTS}+ weights")
    settings = CompressSettings.model_validate({"lut": True, "prune": prune_encoder_available()})
    encodings = plan_encodings(model_bytes, settings).choices
    if not encodings:
        left_out.append("LUT/PRUNE: no tensor of the int8 model has few enough distinct values or zeros to shrink")
    if objective != "ram":
        left_out.append("offline memory plan: only with --objective ram (it changes no flash)")
    weights = {named[c.name]: c.bytes_before for c in filters if named.get(c.name) is not None}
    return Space(layers, weights, int4=int4_available() and bool(layers),
                 memory_plan=objective == "ram" and memory_plan_available(), base=FLATBUFFER,
                 lut=bool(encodings), left_out=tuple(left_out))


def short_name(name: str, every: list[str]) -> Optional[str]:
    """The shortest trailing '/'-part of a filter tensor's name found in no other filter's name (what
    compress.int4_layers matches, by substring): 'conv_1/convolution', 'torch.nn.modules.conv.Conv2d_7;'.
    None when even the whole name is part of another's (it cannot be chosen alone)."""
    parts = name.split("/")
    for start in range(len(parts) - 1, -1, -1):
        suffix = "/".join(parts[start:])
        if sum(suffix in other for other in every) == 1:
            return suffix
    return None


def _int4_eligible(model, layers: tuple[str, ...], per_channel: bool = True) -> tuple[str, ...]:
    """Conv2D and DepthwiseConv2D layers (packed int4 for them needs no extra kernel code in TFLM), and
    Dense layers when the recipe quantizes per tensor: TFLM's FULLY_CONNECTED takes int4 filters only then."""
    from ..stages.int4_finetune import FILTER_LAYERS

    kinds = tuple(kind for kind in FILTER_LAYERS if kind != "Dense" or not per_channel)
    by_name = {layer.name: type(layer).__name__ for layer in model.layers}
    return tuple(layer for layer in layers if by_name.get(layer) in kinds)


@dataclass(frozen=True)
class Candidate:
    """A trial's choices, typed. `params` (flat names: 'clusters:<layer>', 'sparsity', 'int4:<layer>',
    'memory_plan') is how Optuna and search.json spell them; `from_params` reads them through `Lever.parse`."""

    clusters: dict[str, int]                 # layer -> cluster count (0: unclustered), in the space's order
    sparsity: float = 0.0
    int4_chosen: tuple[str, ...] = ()        # layers whose int4 choice is on
    int4: bool = False                       # the whole-model int4 switch of earlier searches
    memory_plan: bool = False

    @classmethod
    def from_params(cls, params: dict) -> "Candidate":
        levers = [(Lever.parse(name), value) for name, value in params.items()]
        clusters = {lever.layer: int(value) for lever, value in levers if lever.kind == "clusters" and lever.layer}
        chosen = tuple(lever.layer for lever, value in levers if lever.kind == "int4" and lever.layer and value)
        return cls(clusters, float(params.get("sparsity", 0.0)), chosen, bool(params.get("int4")),
                   bool(params.get("memory_plan")))

    @property
    def int4_layers(self) -> list[str]:
        """Layers stored as packed int4: int4 chosen and not clustered (a clustered layer keeps its LUT)."""
        return [layer for layer in self.int4_chosen if not self.clusters.get(layer)]


def cluster_counts(params: dict) -> dict[str, int]:
    return Candidate.from_params(params).clusters


def int4_layers(params: dict) -> list[str]:
    return Candidate.from_params(params).int4_layers


def touched_layers(params: dict) -> list[str]:
    """The layers a candidate compresses: clustered ones and those packed as int4."""
    candidate = Candidate.from_params(params)
    return [layer for layer, count in candidate.clusters.items() if count] + candidate.int4_layers


def candidate_recipe(base: Recipe, params: dict, fine_tune: FineTune, loss: str, selection_size: int,
                     separate_calibration: bool = False, teacher: str = "../teacher.h5",
                     data: str = "../data.npz", space_base: str = KERAS) -> dict:
    """The recipe (a YAML mapping) that builds this candidate from the saved float model (or, on a
    flatbuffer base, the saved int8 model) and the split data, with paths relative to a folder one level
    below the search directory (trials/, best/). `loss` fits the distillation targets stored as y_train
    (categorical_crossentropy or mse); `separate_calibration`: the npz holds calibration inputs of their
    own (else x_train calibrates)."""
    if space_base == FLATBUFFER:
        return _flatbuffer_recipe(base, params, selection_size, f"../{BASE_MODEL[FLATBUFFER]}", data)
    candidate = Candidate.from_params(params)
    counts, sparsity = candidate.clusters, candidate.sparsity
    fit = {"epochs": fine_tune.epochs, "batch_size": fine_tune.batch_size,
           "learning_rate": fine_tune.learning_rate, "loss": loss}
    stages = []
    if sparsity > 0:
        stages.append({"prune": {"final_sparsity": sparsity, "initial_sparsity": 0.0, **fit,
                                 "learning_rate": max(fine_tune.learning_rate, 1e-3)}})
        # TF-MOT keeps zeros only with more than 2 clusters; 3 clusters and the kept zero still fit the
        # 2-bit index that 2 clusters plus zero need, so this costs no flash
        counts = {layer: 3 if count == 2 else count for layer, count in counts.items()}
    if any(counts.values()):
        stages.append({"cluster": {"clusters": max(counts.values()), "per_layer": counts, "per_channel": True,
                                   "preserve_sparsity": sparsity > 0, **fit}})
    int4 = candidate.int4_layers
    if int4:  # last, with the other filters held, so clustered and pruned ones keep their values and zeros
        stages.append({"int4_finetune": {"layers": int4, "other_filters_frozen": any(counts.values()) or sparsity > 0,
                                         **fit}})
    # Every candidate, the plain int8 reference too, drops what TFLM never reads (names, signatures,
    # converter metadata): a free saving of its own, so it must not be credited to compression.
    compress = {"lut": any(counts.values()) or sparsity > 0, "strip_metadata": True,
                "verify_samples": min(100, selection_size)}
    if sparsity > 0:
        compress["prune"] = True
    if candidate.int4:
        compress["int4"] = True
    if int4:  # '/name/' matches the layer's own tensors only (conv2d is in conv2d_1's name too)
        compress |= {"int4": True, "int4_layers": [f"/{layer}/" for layer in int4]}
    if candidate.memory_plan:
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


def _flatbuffer_recipe(base: Recipe, params: dict, selection_size: int, model: str, data: str) -> dict:
    """A candidate on a flatbuffer base: the saved int8 model and the compress step alone (no stage
    retrains, no quantize section: the model is already converted)."""
    candidate = Candidate.from_params(params)
    compress: dict = {"lut": bool(params.get("lut")), "strip_metadata": True, "verify_samples": min(100, selection_size)}
    if params.get("lut") and prune_encoder_available():
        compress["prune"] = True   # compress keeps, per tensor, the smaller of LUT and PRUNE
    if candidate.int4_chosen:
        compress |= {"int4": True, "int4_layers": list(candidate.int4_chosen)}
    if candidate.memory_plan:
        compress["memory_plan"] = "offline"
    return {"name": base.name, "seed": base.seed, "eval_samples": selection_size, "arena_margin": base.arena_margin,
            "model": {"path": model}, "data": {"npz": data}, "stages": [],
            "golden": base.golden.model_dump(mode="json"), "compress": compress}


def describe(params: dict) -> str:
    """One short line: 'conv:4 logits:16 sparsity 0.5' (unclustered layers left out)."""
    candidate = Candidate.from_params(params)
    parts = [f"{layer}:{count}" for layer, count in candidate.clusters.items() if count]
    if params.get("sparsity"):  # as stored (Optuna's float, or an int a person wrote)
        parts.append(f"sparsity {params['sparsity']}")
    if candidate.int4:
        parts.append("int4")
    if params.get("lut"):
        parts.append("LUT/PRUNE")
    parts += [f"{layer}:int4" for layer in candidate.int4_layers]
    return " ".join(parts) or "plain int8"
