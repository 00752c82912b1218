"""`tflm-kit optimize`: the stored search (resume, crashes) and a real 2-trial search on Ray on a tiny digits
model. Splits, guards and Pareto fronts (pure logic) are tests/unit/test_optimize_logic.py."""
from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import yaml

from converter.errors import KitError
from converter.optimize.guards import CLASSIFIER, Guards
from converter.optimize.space import FineTune, Space
from converter.optimize.store import SearchStore
from converter.optimize.trial import CRASHED, PASSED, TrialResult, TrialSpec
from converter.progress import EventLog, Trial
from converter.progress import describe as describe_event

from .conftest import REPO, run_kit
from .unit.test_optimize_logic import _rows


def _spec(tmp_path, space):
    return TrialSpec(0, "", {}, str(tmp_path), None, Guards.defaults(CLASSIFIER), FineTune(), "mse", 10,
                     {"name": "host"}, False, False)


def _fake_result(spec) -> TrialResult:
    """Cost falls with the clusters chosen; 'b' alone at 4 clusters breaks agreement, so the greedy
    candidate is a:4 b:16, and that one kills its worker."""
    counts = {name.split(":")[1]: v for name, v in spec.params.items()}
    if counts == {"a": 4, "b": 16}:
        os._exit(3)
    flash = 1000 - sum(300 // v for v in counts.values() if v)
    agreement = 0.90 if counts["b"] in (2, 4) else 0.99
    return TrialResult(spec.number, spec.phase, spec.params, PASSED if agreement >= 0.95 else "failed guard",
                       metrics={"top1_agreement": agreement, "sqnr_db": 20.0},
                       constraints={"agreement": 0.95 - agreement},
                       cost={"flash_bytes": flash, "arena_bytes": 500, "model_bytes": flash, "instructions": None})


def test_search_on_ray_records_a_crashed_trial_goes_on_and_resumes(tmp_path):
    import sys

    import ray
    import ray.cloudpickle

    from converter.optimize.search import SearchPlan

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers need not import tests/
    space = Space(("a", "b"), {"a": 100, "b": 100})
    settings = {"space": space.as_dict(), "objective": "flash"}
    # one worker keeps the order fixed (with more, the greedy trial waits for every sensitivity result)
    plan = SearchPlan(space, trials=5, objective="flash", workers=1, cpus_per_trial=1, seed=0,
                      template=_spec(tmp_path, space))
    store, log = SearchStore.open(tmp_path, settings), EventLog()
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # as the search sets it
    ray.init(num_cpus=1, object_store_memory=100 * 2**20, include_dashboard=False, log_to_driver=False)
    try:
        _search_crash_and_resume(plan, store, settings, log)
    finally:
        ray.shutdown()


def _search_crash_and_resume(plan, store, settings, log):
    from converter.optimize.search import run_search

    run_search(plan, store, _fake_result, log)
    phases = {t.number: (t.phase, t.status) for t in store.trials}
    assert [phases[n][0] for n in range(5)] == ["reference", "sensitivity", "sensitivity", "greedy", "tpe"]
    assert phases[3][1] == CRASHED and store.trials[[t.number for t in store.trials].index(3)].reason
    assert phases[1][1] == PASSED and phases[2][1] == "failed guard"
    lines = [describe_event(event) for event in log]
    assert any("running" in line and "best so far" in line for line in lines)
    finished = [event for event in log if isinstance(event, Trial)]  # one typed event per finished trial
    assert sorted(event.n for event in finished) == list(range(5)) and {event.of for event in finished} == {5}
    assert any(event.value is not None for event in finished) and any("crashed" in e.detail for e in finished)
    # resume: a new process reads search.json; a larger budget runs only the missing trials
    reloaded = SearchStore.open(store.folder, settings)
    assert sorted(t.number for t in reloaded.trials) == list(range(5))
    run_search(replace(plan, trials=6), reloaded, _fake_result, log)
    assert sorted(t.number for t in reloaded.trials) == list(range(6))
    best = reloaded.best("flash")
    assert best.passed and all(best.cost["flash_bytes"] <= t.cost["flash_bytes"]
                               for t in reloaded.trials if t.passed)


def test_a_search_directory_with_other_settings_is_refused(tmp_path):
    store = SearchStore.open(tmp_path, {"objective": "flash"})
    store.save()
    with pytest.raises(KitError, match="other settings"):
        SearchStore.open(tmp_path, {"objective": "ram"})


TINY_RECIPE = """
name: tiny
model:
  builder: {builder}
  builder_args: {{filters: 4}}
data:
  npz: tiny.npz
stages:
  - train: {{epochs: 3, batch_size: 64, learning_rate: 0.005}}
quantize: {{calibration_samples: 50}}
golden: {{vectors: 4}}
"""


def test_optimize_runs_a_two_trial_search_on_ray_and_writes_best(tmp_path):
    digits = np.load(REPO / "models/data/digits_subset.npz")
    pixels = lambda key, n: (digits[key][:n] / 255.0)[..., None].astype(np.float32)  # noqa: E731
    np.savez(tmp_path / "tiny.npz", x_train=pixels("x_train", 800), y_train=digits["y_train"][:800].astype(np.int64),
             x_test=pixels("x_test", 120), y_test=digits["y_test"][:120].astype(np.int64))
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE.format(builder=REPO / "models/digits.py:build_model"))
    out = tmp_path / "search"
    result = run_kit("optimize", tmp_path / "tiny.yaml", "--board", "cortex-m-qemu", "--out", out, "--trials", 2,
                     "--epochs", 1, "--workers", 2, "--no-device")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "best: trial" in result.stdout and "deployed flash" in result.stdout
    search = json.loads((out / "search.json").read_text())
    trials = search["trials"]
    assert [t["phase"] for t in trials] == ["reference", "uniform"]  # the tiny model: one layer big enough
    assert all(t["status"] in ("passed", "failed guard") for t in trials), [t["reason"] for t in trials]
    assert all(t["cost"]["flash_bytes"] > 0 and t["cost"]["arena_bytes"] > 0 for t in trials)
    best = trials[search["summary"]["best_trial"]]
    assert best["status"] == "passed" and best["metrics"]["top1_agreement"] >= 0.95
    assert search["summary"]["best_reproduced_bit_exact"] is True
    manifest = json.loads((out / "best/manifest.json").read_text())
    assert manifest["model"]["sha256"] == best["model_sha256"]
    recipe = yaml.safe_load((out / "best/recipe.yaml").read_text())
    assert recipe["model"]["path"] == "../teacher.h5" and recipe["data"]["npz"] == "../data.npz"
    with np.load(out / "data.npz") as data:  # the selection set is held out from fine-tuning and calibration
        calibration = data["x_calibration"] if "x_calibration" in data.files else data["x_train"]
        assert not _rows(data["x_test"]) & (_rows(data["x_train"]) | _rows(calibration))
    assert (out / "search.md").read_text().count("\n| ") >= 3 and (out / "search.png").stat().st_size > 0
    # the same command again: the finished search is resumed in place (nothing to run), best/ rebuilt
    again = run_kit("optimize", tmp_path / "tiny.yaml", "--board", "cortex-m-qemu", "--out", out, "--trials", 2,
                    "--epochs", 1, "--workers", 2, "--no-device")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to run" in again.stdout + again.stderr
    assert json.loads((out / "search.json").read_text())["summary"]["best_reproduced_bit_exact"] is True


def test_candidate_recipes_are_valid_recipes_that_strip_every_candidate(tmp_path):
    from converter.optimize.space import candidate_recipe, describe
    from converter.recipe import load_recipe, parse_recipe

    base = load_recipe(REPO / "models/recipes/default.yaml")
    space = Space(("conv", "logits"), {"conv": 72, "logits": 13520})
    reference = candidate_recipe(base, space.reference(), FineTune(epochs=1), "categorical_crossentropy", 50)
    assert reference["stages"] == [] and reference["compress"] == {"lut": False, "strip_metadata": True,
                                                                   "verify_samples": 50}
    one = candidate_recipe(base, space.only("logits"), FineTune(epochs=1), "categorical_crossentropy", 50)
    parsed = parse_recipe(one, base_dir=tmp_path)
    cluster = parsed.stages[0].settings
    assert cluster.per_layer == {"conv": 0, "logits": 4} and cluster.loss == "categorical_crossentropy"
    assert parsed.compress.lut and parsed.model.path == "../teacher.h5" and parsed.eval_samples == 50
    assert describe(space.only("logits")) == "logits:4" and describe(space.reference()) == "plain int8"
    assert "x_calibration" not in one["data"]  # the fine-tuning inputs calibrate
    own = candidate_recipe(base, space.reference(), FineTune(), "mse", 50, separate_calibration=True)
    assert parse_recipe(own, base_dir=tmp_path).data.x_calibration == "x_calibration"


def test_a_zero_cluster_count_leaves_that_layer_as_it_was():
    from converter.stages.cluster import ClusterSettings  # (its home in both recipe layouts)
    from converter.stages import run_stage

    from .conftest import tiny_classifier, tiny_dataset

    model, data = tiny_classifier(), tiny_dataset(samples=64)
    before = {layer.name: layer.get_weights()[0].copy() for layer in model.layers if layer.weights}
    settings = ClusterSettings(clusters=4, per_layer={"conv": 0, "hidden": 4, "logits": 0}, epochs=0)
    after = {layer.name: layer.get_weights()[0] for layer in run_stage("cluster", model, settings, data).model.layers
             if layer.weights}
    np.testing.assert_array_equal(after["conv"], before["conv"])
    np.testing.assert_array_equal(after["logits"], before["logits"])
    assert max(len(np.unique(channel)) for channel in after["hidden"].T) <= 4
    with pytest.raises(Exception, match="0 \\(leave it unclustered\\) or 2..256"):
        ClusterSettings(per_layer={"conv": 1})


def test_bad_search_directories_and_impossible_objectives_are_refused_before_any_work(tmp_path):
    from converter.flows.optimize import Options, optimize

    recipe = REPO / "models/recipes/default.yaml"
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(KitError, match="not a search"):
        optimize(recipe, tmp_path, Options(board="cortex-m-qemu"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(KitError, match="latency needs instructions"):
        optimize(recipe, tmp_path / "new", Options(board="host", objective="latency"))
    assert not (tmp_path / "new").exists()


def test_int4_finetune_leaves_filters_that_the_compress_step_packs_without_loss():
    """After the int4_finetune stage every chosen filter is on the 4-bit grid, so the compress step's
    requantization to [-7, 7] moves no weight to another level: each moves by at most the int8 model's
    own rounding (half an int8 step, 0.5/127 of the filter's largest), back onto the trained grid."""
    from converter import QuantizeSettings
    from converter.stages import quantize as quantize_stage
    from converter.stages import run_stage
    from converter.stages.int4_finetune import Int4FineTuneSettings

    from .conftest import tiny_classifier, tiny_dataset

    model, data = tiny_classifier(), tiny_dataset(samples=64)
    settings = Int4FineTuneSettings(layers=["conv", "hidden"], epochs=1, batch_size=16)
    result = run_stage("int4_finetune", model, settings, data)
    assert result.record.details["layers"] == ["conv", "hidden"]
    assert all(levels <= 15 for levels in result.record.details["max_levels_per_step"].values())
    model_bytes = quantize_stage.convert(result.model, QuantizeSettings(), data)
    assert _int4_weight_change(model_bytes, ["/conv/"]) <= 0.5 / 127 + 1e-6
    # without the stage the same requantization moves weights: the loss the stage removes
    plain = quantize_stage.convert(tiny_classifier(), QuantizeSettings(), data)
    assert _int4_weight_change(plain, ["/conv/"]) > 0.02   # up to half a 4-bit step (1/14)


def _int4_weight_change(model_bytes: bytes, layers: list[str]) -> float:
    """Largest change of a real-valued filter weight (relative to the filter's largest) that the compress
    step's int4 requantization makes (CONV_2D only: the kit quantizes Dense per channel, which TFLM's
    FULLY_CONNECTED cannot take as int4)."""
    from converter.tflite.compression import int4
    from converter.tflite.tflite_model import TfliteModel

    twin, choices = int4.requantize(model_bytes, layers)
    assert [c.operator for c in choices] == ["CONV_2D"]
    before, after = TfliteModel.from_bytes(model_bytes), TfliteModel.from_bytes(twin)
    worst = 0.0
    for choice in choices:
        real = []
        for model in (before, after):
            tensor = model.tensors[choice.tensor]
            scale, axis = np.asarray(tensor.quantization.scale), int(tensor.quantization.quantizedDimension or 0)
            shape = [-1 if a == axis and len(scale) > 1 else 1 for a in range(len(choice.shape))]
            real.append(model.constant(tensor) * scale.reshape(shape))
        worst = max(worst, float(np.abs(real[0] - real[1]).max() / np.abs(real[0]).max()))
    return worst


def test_int4_candidates_fine_tune_on_the_grid_and_pack_only_their_layers(tmp_path):
    from converter.optimize.space import candidate_recipe, describe, int4_layers
    from converter.recipe import load_recipe, parse_recipe

    base = load_recipe(REPO / "models/recipes/default.yaml")
    space = Space(("conv", "hidden", "logits"), {"conv": 288, "hidden": 3200, "logits": 48}, int4=True)
    assert "int4:conv" in space.parameter_names() and space.choices("int4:conv") == (False, True)
    assert [k for k, v in space.int4_large().items() if v] == ["int4:hidden"]
    params = space.int4_all() | {"clusters:logits": 4}   # a clustered layer keeps its LUT
    assert int4_layers(params) == ["conv", "hidden"] and describe(params) == "logits:4 conv:int4 hidden:int4"
    mapping = candidate_recipe(base, params, FineTune(epochs=1), "categorical_crossentropy", 50)
    parsed = parse_recipe(mapping, base_dir=tmp_path)
    assert [stage.kind for stage in parsed.stages] == ["cluster", "int4_finetune"]
    assert parsed.stages[1].settings.layers == ["conv", "hidden"] and parsed.stages[1].settings.other_filters_frozen
    assert parsed.compress.int4 and parsed.compress.int4_layers == ["/conv/", "/hidden/"] and parsed.compress.lut
    only_int4 = candidate_recipe(base, space.int4_all(), FineTune(epochs=1), "categorical_crossentropy", 50)
    assert only_int4["compress"]["lut"] is False  # no LUT, so no DECODE operator


def test_like_with_like_flash_and_what_the_optimizer_learns():
    from converter.optimize.store import comparable_key, search_value

    def trial(number, flash, source, estimate):
        return TrialResult(number, "tpe", {}, PASSED, cost={"flash_bytes": flash, "flash_source": source,
                                                            "flash_estimate_bytes": estimate})

    linked, estimated = trial(0, 261_000, "linked image", 218_000), trial(1, 207_000, "footprint data", 207_000)
    assert comparable_key([linked, estimated], "flash") == "flash_estimate_bytes"
    assert comparable_key([linked, trial(2, 250_000, "linked image", 210_000)], "flash") == "flash_bytes"
    assert search_value(linked.cost, "flash") == 218_000
    store = SearchStore(folder=None, settings={}, trials=[linked, trial(3, 200_000, "footprint data", 219_000)])
    assert store.best("flash").number == 0  # 218,000 < 219,000 estimated; not 261,000 linked vs 200,000


def test_small_budgets_try_int4_before_clusters():
    from converter.optimize.search import fixed_candidates

    space = Space(("a", "b", "c"), {"a": 100, "b": 1000, "c": 5000}, int4=True, int4_candidates=("a", "b", "c"))
    wanted = fixed_candidates(space, SearchStore(folder=None, settings={}), budget=4)
    assert [phase for phase, _ in wanted] == ["reference", "int4", "int4", "uniform"]
    assert [k for k, v in wanted[1][1].items() if v is True] == ["int4:c"]   # the large layer first
    assert [k for k, v in wanted[2][1].items() if v is True] == ["int4:a", "int4:b", "int4:c"]
    one = Space(("a",), {"a": 100}, int4=True)   # int4 on the large layers is int4 on all: tried once
    assert [phase for phase, _ in fixed_candidates(one, SearchStore(folder=None, settings={}), 1)] == \
        ["reference", "int4", "uniform"]


def test_int4_and_sparsity_trials_build_verified_candidates(tmp_path):
    """The int4 and PRUNE levers as the search runs them (in-process): each trial converts, the compress
    step packs/encodes and checks TFLM gives the same bytes as before, and the trial records it."""
    from converter.optimize.prepare import prepare
    from converter.optimize.space import space_for
    from converter.optimize.trial import run_trial
    from converter.recipe import load_recipe

    digits = np.load(REPO / "models/data/digits_subset.npz")
    pixels = lambda key, n: (digits[key][:n] / 255.0)[..., None].astype(np.float32)  # noqa: E731
    np.savez(tmp_path / "tiny.npz", x_train=pixels("x_train", 300), y_train=digits["y_train"][:300].astype(np.int64),
             x_test=pixels("x_test", 40), y_test=digits["y_test"][:40].astype(np.int64))
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE.format(builder=REPO / "models/digits.py:build_model")
                                        .replace("filters: 4", "filters: 8").replace("epochs: 3", "epochs: 2"))
    recipe = load_recipe(tmp_path / "tiny.yaml")
    prepared = prepare(recipe, tmp_path, 0.0, lambda _: None)
    space = space_for(prepared.model)
    assert space.int4 and space.prune and space.int4_layers() == ("conv", "depthwise", "pointwise")
    # per tensor (make demo's demo.yaml), TFLM's FULLY_CONNECTED takes int4 filters: the Dense layer joins
    assert space_for(prepared.model, per_channel=False).int4_layers() == ("conv", "depthwise", "pointwise", "logits")
    template = TrialSpec(0, "", {}, str(tmp_path), recipe, Guards(CLASSIFIER, min_agreement=0.0, max_accuracy_drop=1.0),
                         FineTune(epochs=1, learning_rate=1e-3), prepared.loss, prepared.selection_size,
                         {"name": "cortex-m-qemu"}, prepared.separate_calibration, False)
    int4_trial = run_trial(replace(template, number=1, phase="int4",
                                   params=space.int4_all() | {"clusters:logits": 0}))
    sparse_trial = run_trial(replace(template, number=2, phase="tpe", params=space.reference() | {"sparsity": 0.7}))
    records = {}
    for trial in (int4_trial, sparse_trial):
        assert trial.status == PASSED, trial.reason
        manifest = json.loads((tmp_path / f"trials/{trial.number:04d}/manifest.json").read_text())
        assert trial.model_sha256 == manifest["model"]["sha256"]
        compress = [stage for stage in manifest["stages"] if stage["stage"] == "compress"][0]
        records[trial.number] = details = compress.get("details", compress)
        assert details["verification"]["equal"] == details["verification"]["total"] > 0  # bit-exact on TFLM
    assert len(records[1]["int4"]["tensors"]) == 3 and records[1]["decode_operators"] == 0
    assert {t["method"] for t in records[2]["tensors"]} == {"prune"}
    for trial in (int4_trial, sparse_trial):  # smaller than the int8 model the compress step started from
        assert trial.cost["model_bytes"] < records[trial.number]["bytes_before"]


def test_two_clusters_with_sparsity_become_three_which_tf_mot_can_keep_zeros_with():
    from converter.optimize.space import candidate_recipe

    base = load_recipe_default()
    space = Space(("conv", "logits"), {"conv": 72, "logits": 13520}, prune=True)
    mapping = candidate_recipe(base, space.reference() | {"clusters:logits": 2, "sparsity": 0.5}, FineTune(epochs=1),
                               "categorical_crossentropy", 50)
    cluster = [stage["cluster"] for stage in mapping["stages"] if "cluster" in stage][0]
    assert cluster["per_layer"] == {"conv": 0, "logits": 3} and cluster["preserve_sparsity"]
    dense = candidate_recipe(base, space.reference() | {"clusters:logits": 2}, FineTune(epochs=1),
                             "categorical_crossentropy", 50)
    assert dense["stages"][0]["cluster"]["per_layer"] == {"conv": 0, "logits": 2}


def load_recipe_default():
    from converter.recipe import load_recipe

    return load_recipe(REPO / "models/recipes/default.yaml")


def test_a_finished_search_directory_is_accepted_for_resuming(tmp_path):
    """A search folder (search.json, trials/, best/) is resumed in place, not refused as a foreign --out."""
    from converter.flows.optimize import _check_out
    from converter.recipe import load_recipe
    from converter.system import out_lock

    recipe_path = REPO / "models/recipes/default.yaml"
    SearchStore(tmp_path, {"objective": "flash"}).save()  # the search record, as a search writes it
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "0000.yaml").write_text("name: x\n")
    (tmp_path / "best").mkdir()
    _check_out(tmp_path, load_recipe(recipe_path), recipe_path)
    out_lock.release(tmp_path)
    (tmp_path / "search.json").unlink()  # issue 18: file names (trials/, data.npz) do not make a search
    (tmp_path / "mine.txt").write_text("not the kit's")
    with pytest.raises(KitError, match="not a search"):
        _check_out(tmp_path, load_recipe(recipe_path), recipe_path)


@pytest.mark.parametrize("kind", ["prune", "int4_finetune"])
def test_fine_tuning_keeps_the_float_models_batch_norm_statistics(kind):
    """Compression fine-tunes with BN in inference mode: its moving statistics stay the float model's
    (in training mode they drift towards the fine-tuning batches; freeze_batch_norm: false shows it)."""
    import tf_keras as keras

    from converter.stages import registry, run_stage

    from .conftest import tiny_dataset

    def model():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.layers.Input((8, 8, 4)), keras.layers.Conv2D(8, 3, name="conv"),
                                 keras.layers.BatchNormalization(name="bn"), keras.layers.Flatten(),
                                 keras.layers.Dense(3, name="logits")])

    data = tiny_dataset(samples=64)
    moved = {}
    for frozen in (True, False):
        float_model = model()
        before = [w.copy() for w in float_model.get_layer("bn").get_weights()]
        settings = registry.get(kind).Settings(epochs=1, batch_size=16, freeze_batch_norm=frozen)
        after = run_stage(kind, float_model, settings, data).model.get_layer("bn")
        moved[frozen] = max(float(np.abs(a - b).max()) for a, b in zip(after.get_weights(), before))
        assert after.trainable  # later stages train BN as usual
    assert moved[True] == 0.0 and moved[False] > 1e-3


def test_a_tflite_recipe_is_refused_in_one_line_it_holds_no_float_model(tmp_path):
    """A .tflite has no float model to judge candidates against: one line, nothing left behind."""
    from converter.flows.optimize import Options, optimize

    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"name": "t", "model": {"path": str(REPO / "tests/data/two_inputs.tflite")},
                                                     "data": {"random": {}}}))
    with pytest.raises(KitError) as error:
        optimize(tmp_path / "t.yaml", tmp_path / "search", Options(board="cortex-m-qemu", device=False))
    assert "a .tflite holds none" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "search").exists()


def test_flatbuffer_candidates_are_compress_only_recipes_on_the_int8_base(tmp_path):
    """A Keras 3 or PyTorch model's candidate: base.tflite plus compress (no stage retrains, no quantize
    section), int4 only on the chosen filters, LUT and PRUNE together when the encodings are on."""
    from converter.optimize.space import FLATBUFFER, candidate_recipe
    from converter.recipe import load_recipe, parse_recipe

    base = load_recipe(REPO / "models/recipes/keras3_digits.yaml")
    space = Space(("conv_1/convolution", "MatMul"), {"conv_1/convolution": 72, "MatMul": 7840}, int4=True,
                  base=FLATBUFFER, lut=True)
    mapping = candidate_recipe(base, space.greedy({"MatMul"}), FineTune(), "mse", 50, space_base=FLATBUFFER)
    parsed = parse_recipe(mapping, base_dir=tmp_path)
    assert parsed.model.path == "../base.tflite" and "quantize" not in mapping
    assert [kind for kind, _ in parsed.pipeline()] == ["compress"]
    assert parsed.compress.lut and parsed.compress.prune and parsed.compress.int4_layers == ["MatMul"]
    reference = parse_recipe(candidate_recipe(base, space.reference(), FineTune(), "mse", 50, space_base=FLATBUFFER),
                             base_dir=tmp_path)
    assert not reference.compress.lut and not reference.compress.int4 and reference.compress.strip_metadata
