"""Federated fine-tuning benchmark: centralised training vs FedAvg vs FedAvg + DP, on the bundled
digits (Dirichlet label skew) and on MLPerf Tiny KWS (Speech Commands, one client per speaker group),
plus the Ray wall time with 1 and 2 workers.

    TFLM_KIT_SHARED_DATA=../shared/data python -m bench.federated [--only digits,kws]

Each case starts from its bundled recipe (models/recipes/federated_<case>.yaml): the same model,
data and federated settings; centralised = the kit's `train` stage on all of x_train; the float
model is scored in Keras and the int8 model (the kit's quantize stage) on TFLM, both on the held-out
eval set. DP needs a federation sized for it (DP_FEDERATION: many clients, Poisson-sampled, a clip
norm matched to the clients' update norms, a pretrained start): it is run twice, without and with
noise, so the cost of DP is the difference of those two rows. Writes bench/federated.md,
bench/federated.json and bench/federated_<case>.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from converter import tf_env  # first: Keras 2 before TensorFlow loads
from converter import (DpSettings, KitError, QuantizeSettings, TrainSettings, load_data, load_model, load_recipe,
                       run_stage)
from converter import write_federated_plot as write_accuracy_plot

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
CENTRAL = {  # centralised baseline: the kit's train stage (Adam) on the union of the clients' data
    "digits": TrainSettings(epochs=6, batch_size=64, learning_rate=0.003),
    "kws": TrainSettings(epochs=4, batch_size=16, learning_rate=0.0001),
}
# The federation DP is run on: the recipe's settings with these changes. clip_norm: near the clients'
# mean update norm measured without clipping (stage record `update_norm`: digits ~0.2, KWS ~0.015). public_pretraining: that many
# training samples are treated as public and train the start model centrally (the digits recipe
# starts from scratch, which DP noise cannot do with a few dozen clients per round); the clients
# hold the rest.
DP_FEDERATION = {
    "digits": {"changes": {"clients": 100, "fraction_fit": 0.2, "rounds": 20},
               "dp": DpSettings(clip_norm=0.2, noise_multiplier=1.0, delta=1e-5), "public_pretraining": 300},
    "kws": {"changes": {"clients": 100, "fraction_fit": 0.2, "rounds": 12},
            "dp": DpSettings(clip_norm=0.02, noise_multiplier=1.0, delta=1e-5), "public_pretraining": 0},
}


def _setup(case: str):
    recipe = load_recipe(REPO / f"models/recipes/federated_{case}.yaml")
    keras = tf_env.keras()
    keras.utils.set_random_seed(recipe.seed)
    tf_env.tensorflow().config.experimental.enable_op_determinism()
    model = load_model(recipe.model, recipe.base_dir)
    data = load_data(recipe.data_spec(), tuple(model.input_shape[1:]))
    return recipe, model, data


def _fresh(model, weights):
    copy = tf_env.keras().models.clone_model(model)
    copy.set_weights(weights)
    return copy


def _row(case: str, training: str, result, data, seconds: float) -> dict:
    record = result.record.as_dict()
    int8 = run_stage("quantize", result.model, QuantizeSettings(calibration_samples=200), data).record["quality_after"]
    privacy = record.get("privacy")
    return {"case": case, "training": training, "rounds": len(record.get("rounds", [])) or None,
            "clients_per_round": (round(float(np.mean([r["clients"] for r in record["rounds"]])), 1)
                                  if record.get("rounds") else None),
            "epsilon": privacy["epsilon"] if privacy else None, "delta": privacy["delta"] if privacy else None,
            "float_accuracy": record["quality_after"].get("eval_accuracy"),
            "int8_accuracy_tflm": int8.get("eval_accuracy"), "before_accuracy": record["quality_before"].get("eval_accuracy"),
            "stage_seconds": round(seconds, 1), "federated_seconds": record.get("federated_seconds"),
            "bytes_exchanged": record.get("bytes_exchanged"), "record": {k: v for k, v in record.items() if k != "layers"},
            "final_weights_digest": float(sum(np.abs(w).astype(np.float64).sum() for w in result.model.get_weights()))}


def _dp_start(case: str, model, data, seed: int):
    """(start model, client data) of the DP federation: with public pretraining, the first samples
    train the start model centrally and the clients hold only the others."""
    public = DP_FEDERATION[case]["public_pretraining"]
    if not public:
        return model, data
    pretrained = run_stage("train", model, CENTRAL[case], dataclasses.replace(
        data, x_train=data.x_train[:public], y_train=data.y_train[:public]), seed).model
    private = dataclasses.replace(data, x_train=data.x_train[public:], y_train=data.y_train[public:],
                                  keys={k: v[public:] for k, v in data.keys.items()})
    return pretrained, private


def run_case(case: str, workers_compare: bool) -> list[dict]:
    recipe, model, data = _setup(case)
    start = model.get_weights()
    federated = next(s.settings for s in recipe.stages if s.kind == "federated")
    profile = DP_FEDERATION[case]
    sized = federated.model_copy(update=profile["changes"])
    dp_model, dp_data = _dp_start(case, _fresh(model, start), data, recipe.seed)
    label = f"{sized.clients} clients, {sized.fraction_fit:g} per round"
    dp = profile["dp"]
    runs = [("centralised", "train", CENTRAL[case], model, data),
            ("FedAvg", "federated", federated, model, data),
            (f"FedAvg ({label})", "federated", sized, dp_model, dp_data),
            (f"FedAvg + DP ({label}, z={dp.noise_multiplier:g}, C={dp.clip_norm:g})", "federated",
             sized.model_copy(update={"dp": dp}), dp_model, dp_data)]
    if workers_compare:
        runs.append(("FedAvg, 1 Ray worker", "federated", federated.model_copy(update={"workers": 1}), model, data))
    rows = []
    for training, kind, settings, begin, run_data in runs:
        print(f"[bench] {case}: {training}", flush=True)
        began = time.perf_counter()
        try:
            result = run_stage(kind, _fresh(begin, begin.get_weights()), settings, run_data, recipe.seed)
        except KitError as refused:  # e.g. DP noise that drives the model to NaN: a result, shown as such
            rows.append({"case": case, "training": training, "failed": str(refused), "epsilon": None,
                         "stage_seconds": round(time.perf_counter() - began, 1), "record": {}})
            continue
        rows.append(_row(case, training, result, data, time.perf_counter() - began))
        rows[-1] |= {"workers": getattr(settings, "workers", None), "load_average": [round(v, 2) for v in os.getloadavg()]}
    write_accuracy_plot({r["training"]: r["record"] for r in rows if r["training"].startswith("FedAvg (")
                         or r["training"].startswith("FedAvg + DP") if not r.get("failed")},
                        BENCH / f"federated_{case}.png")
    return rows


def _load(row: dict) -> str:
    return ", ".join(f"{v:g}" for v in row.get("load_average", [])) or "—"


def _cell(value, fmt="{:.2%}"):
    return "—" if value is None else fmt.format(value)


def render(rows: list[dict]) -> str:
    commands = {r["case"]: r.get("command", "python -m bench.federated") for r in rows}
    measured = "; ".join(f"{case}: `{command}`" for case, command in commands.items())
    lines = ["# Federated fine-tuning: centralised vs FedAvg vs FedAvg + DP", "",
             f"Measured with {measured}, on {platform.machine()}, {os.cpu_count()} cores "
             f"(shared with other jobs: wall times are indicative). Eval sets are held out: digits = the 500 "
             "test images; KWS = the clips of 30% of the speakers (no client has any of their clips).", "",
             "| data | training | rounds | clients/round | ε (δ) | float acc. before → after | int8 acc. on TFLM | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "1 Ray worker" in r["training"]:
            continue
        if r.get("failed"):
            lines.append(f"| {r['case']} | {r['training']} | | | | refused: {r['failed'].split(' — ')[0]} | | "
                         f"{r['stage_seconds']} |")
            continue
        eps = "—" if r["epsilon"] is None else f"{r['epsilon']:.3g} ({r['delta']:g})"
        lines.append(f"| {r['case']} | {r['training']} | {_cell(r['rounds'], '{}')} | "
                     f"{_cell(r['clients_per_round'], '{}')} | {eps} | {_cell(r['before_accuracy'])} → "
                     f"{_cell(r['float_accuracy'])} | {_cell(r['int8_accuracy_tflm'])} | {r['stage_seconds']} |")
    pairs = [(r, next((o for o in rows if o["case"] == r["case"] and o["training"] == "FedAvg"), None))
             for r in rows if "1 Ray worker" in r["training"]]
    if pairs:
        lines += ["", "## Ray workers (same FedAvg run, `workers` = Ray CPUs = clients trained at once)", "",
                  "| data | workers | federated wall s | load average after (1, 5, 15 min) | same final weights as 2 workers |",
                  "|---|---|---|---|---|"]
        for one, two in pairs:
            same = two is not None and one["final_weights_digest"] == two["final_weights_digest"]
            lines.append(f"| {one['case']} | 1 | {one['federated_seconds']} | {_load(one)} | {'yes' if same else 'no'} |")
            if two is not None:
                lines.append(f"| {two['case']} | 2 | {two['federated_seconds']} | {_load(two)} | — |")
    lines += ["", "Notes. Centralised = the kit's `train` stage (Adam) on all clients' data pooled. FedAvg runs the "
              "bundled recipes' federated settings (digits: 10 clients, Dirichlet alpha 0.5, from scratch; KWS: 20 "
              "clients holding whole speakers, fine-tuning the MLPerf model with BatchNorm frozen). The DP pair runs "
              "on a federation sized for DP (DP_FEDERATION in bench/federated.py): 100 clients, each joining a round "
              "with probability 0.2 (Poisson; clients/round is the mean actually drawn), the same settings without "
              "and with noise; digits starts from the CNN trained centrally on 300 training images treated as "
              "public (the clients hold the other 2,700), KWS from the MLPerf model. clip_norm C is set near the "
              "clients' mean update norm measured without clipping (stage record `update_norm`). ε is client-level, "
              "from dp-accounting (RDP, Poisson-sampled Gaussian, add/remove one client) for the sampling rate and "
              "rounds actually run. Wall times include Ray start-up and each client's TensorFlow start, on a machine "
              "shared with other jobs (load averages in bench/federated.json).",
              "Plots: bench/federated_<case>.png (held-out accuracy per round of the DP pair: the same federation "
              "with and without DP)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="digits,kws")
    args = parser.parse_args()
    cases = args.only.split(",")
    saved = BENCH / "federated.json"
    # rows of the cases not re-run this time are kept from the last full run
    rows = [r for r in json.loads(saved.read_text()) if r["case"] not in cases] if saved.exists() else []
    command = "TFLM_KIT_SHARED_DATA=../shared/data python -m bench.federated" + \
        (f" --only {args.only}" if args.only != "digits,kws" else "")
    for case in cases:
        rows += [r | {"command": command} for r in run_case(case, workers_compare=case == "digits")]
    rows.sort(key=lambda r: ["digits", "kws"].index(r["case"]))
    (BENCH / "federated.json").write_text(json.dumps(rows, indent=1))
    (BENCH / "federated.md").write_text(render(rows))
    print(render(rows))


if __name__ == "__main__":
    main()
