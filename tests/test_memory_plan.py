"""Offline memory plans (compress.memory_plan: offline): lifetimes as TFLM marks them, TFLM's greedy
planner reproduced, tighter placements that never let two live tensors share a byte, the
OfflineMemoryAllocation metadata, and TFLM running the planned model bit-exact in a smaller arena."""

import numpy as np
import pytest

from converter.errors import KitError
from converter.inputs.dataset import Dataset
from converter import CompressSettings, QuantizeSettings
from converter.stages import compress as compress_stage
from converter.stages import run_stage
from converter.stages import quantize as quantize_stage
from converter.tflite.memory_plan import (ONLINE, MemoryPlan, lifetimes, plan_memory, read_offline_plan,
                                          with_offline_plan)
from converter.tflite.model import read_model
from converter.tflite.tflite_model import TfliteModel
from converter.tflm import offline_plan as offline_plan_module
from converter.tflm.arena import measure_arena
from converter.tflm.derived_arena import derive
from converter.tflm.runners import quantize, run_tflm
from tests.conftest import tiny_classifier, tiny_dataset

# MobileNet-like start (the MLPerf VWW pattern at 1/16 scale): input, conv, then depthwise/pointwise pairs.
# TFLM's greedy planner (largest first, equal sizes last-added first) needs 4,608 B for its tensors;
# placing them by first use needs 3,456 B, the most ever live at once.
VWW_LIKE_GREEDY, VWW_LIKE_BEST = 4608, 3456


def _mobilenet_like():
    import tf_keras as keras

    layers = keras.layers
    inputs = keras.Input((24, 24, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(inputs)
    for name, filters, stride in (("b1", 16, 1), ("b2", 32, 2), ("b3", 32, 1)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu", name=f"{name}_dw")(x)
        x = layers.Conv2D(filters, 1, activation="relu", name=f"{name}_pw")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(2, name="logits")(x))


@pytest.fixture(scope="module")
def vww_like():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (96, 24, 24, 3)).astype(np.float32)
    data = Dataset(x_train=x[:64], y_train=np.zeros(64, int), x_calibration=x[:64], x_eval=x[64:],
                   y_eval=np.zeros(32, int), labels=["a", "b"])
    return quantize_stage.convert(_mobilenet_like(), QuantizeSettings(), data), data


@pytest.fixture(scope="module")
def tiny():
    data = tiny_dataset()
    return quantize_stage.convert(tiny_classifier(), QuantizeSettings(), data), data


def _sample(model_bytes: bytes, data: Dataset, count: int = 1) -> list[np.ndarray]:
    return [quantize(data.x_eval[:count], read_model(model_bytes).inputs[0])]


# -- lifetimes --------------------------------------------------------------------------------------
def test_lifetimes_follow_tflm_scopes(tiny):
    model_bytes, _ = tiny
    model = TfliteModel.from_bytes(model_bytes)
    names = [model.operator_name(op) for op in model.operators]
    assert names == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    buffers = {b.key: b for b in lifetimes(model)}
    graph_input, graph_output = int(model.subgraph.inputs[0]), int(model.subgraph.outputs[0])
    # the input is live from scope 0 to its reader (operator 0 opens scope 1); each activation from its
    # writer's scope to its reader's; the output (written by the last operator) to the last scope
    chain = [graph_input] + [int(op.outputs[0]) for op in model.operators]
    assert [(buffers[t].first, buffers[t].last) for t in chain] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 4)]
    assert chain[-1] == graph_output
    # constants (weights, biases, the reshape's shape) live in the flatbuffer, not the arena
    assert set(buffers) == set(chain)
    assert buffers[graph_input].size == 8 * 8 * 4  # int8, already a multiple of 16
    assert buffers[chain[1]].size == 6 * 6 * 8


# -- metadata ---------------------------------------------------------------------------------------
def test_metadata_round_trips_and_replaces_an_earlier_plan(tiny):
    model_bytes, _ = tiny
    plan = plan_memory(model_bytes)
    assert read_offline_plan(model_bytes) is None
    planned = with_offline_plan(model_bytes, plan.offsets())
    assert read_offline_plan(planned) == plan.offsets()
    assert plan.offsets().count(ONLINE) == plan.tensor_count - len(plan.buffers)
    again = with_offline_plan(planned, [ONLINE] * plan.tensor_count)
    model = TfliteModel.from_bytes(again)
    assert [m.name for m in model.root.metadata].count(b"OfflineMemoryAllocation") == 1
    assert read_offline_plan(again) == [ONLINE] * plan.tensor_count
    # the header TFLM reads: version 0, subgraph 0, number of tensors, then the offsets
    entry = [m for m in model.root.metadata if m.name == b"OfflineMemoryAllocation"][0]
    raw = np.frombuffer(bytes(np.asarray(model.buffers[entry.buffer].data, np.uint8)), "<i4")
    assert list(raw[:3]) == [0, 0, plan.tensor_count]
    # every tensor's data is untouched
    before, after = TfliteModel.from_bytes(model_bytes), TfliteModel.from_bytes(again)
    assert [before.data(t) for t in before.tensors] == [after.data(t) for t in after.tensors]
    with pytest.raises(ValueError, match="offsets for a model with"):
        with_offline_plan(model_bytes, [0])


# -- TFLM -------------------------------------------------------------------------------------------
def test_tflm_runs_the_planned_model_bit_exact_in_the_smaller_arena(vww_like):
    model_bytes, data = vww_like
    plan = plan_memory(model_bytes)
    assert (plan.greedy.arena, plan.planned.arena, plan.lower_bound) == (VWW_LIKE_GREEDY, VWW_LIKE_BEST,
                                                                         VWW_LIKE_BEST)
    planned = with_offline_plan(model_bytes, plan.offsets())
    greedy_written = with_offline_plan(model_bytes, [plan.greedy.offsets.get(t, ONLINE)
                                                     for t in range(plan.tensor_count)])
    sample = _sample(model_bytes, data)
    online = measure_arena(model_bytes, sample)
    # TFLM's own plan, written offline, needs the same arena: the reproduction is TFLM's planner
    assert measure_arena(greedy_written, sample) == online
    # no scratch buffers here, so the arena shrinks by exactly the planned saving
    assert measure_arena(planned, sample) == online - plan.saving
    inputs = _sample(model_bytes, data, 32)
    expected = run_tflm(model_bytes, inputs)
    actual = run_tflm(planned, inputs, arena_size=online - plan.saving)
    assert all(np.array_equal(e, a) for e, a in zip(expected, actual))


def test_compress_stage_keeps_a_plan_that_shrinks_the_arena(vww_like):
    model_bytes, data = vww_like
    result = run_stage("compress", model_bytes, CompressSettings(lut=False, memory_plan="offline",
                                                              verify_samples=32), data)
    record = result.record["memory_plan"]
    assert record["kept"] and record["plan"]["planned_bytes"] == VWW_LIKE_BEST
    assert record["arena_with_plan"] == record["arena_without_plan"] - (VWW_LIKE_GREEDY - VWW_LIKE_BEST)
    assert read_offline_plan(result.model) is not None
    verification = result.record["verification"]
    assert verification["equal"] == verification["total"] == 32
    assert "offline memory plan: tensors 4,608 -> 3,456 B" in compress_stage.Compress().report_note(result.record)


def test_no_plan_when_greedy_is_already_optimal(tiny):
    model_bytes, data = tiny
    result = run_stage("compress", model_bytes, CompressSettings(lut=False, memory_plan="offline"), data)
    assert result.model == model_bytes
    record = result.record["memory_plan"]
    assert not record["kept"] and "already the lower bound" in record["note"]
    assert record["arena_with_plan"] is None  # nothing to measure
    assert "already the lower bound" in compress_stage.Compress().report_note(result.record)


def test_no_plan_when_the_measured_arena_does_not_shrink(vww_like, monkeypatch):
    # e.g. kernels' scratch buffers (planned online) fill the gap the plan freed
    model_bytes, data = vww_like
    monkeypatch.setattr(offline_plan_module, "measure_arena", lambda model, sample: 9000)
    result = run_stage("compress", model_bytes, CompressSettings(lut=False, memory_plan="offline"), data)
    record = result.record["memory_plan"]
    assert result.model == model_bytes and not record["kept"]
    assert "TFLM's arena does not shrink (9,000 -> 9,000 B" in record["note"]


def test_a_plan_that_changes_outputs_is_refused(vww_like, monkeypatch):
    model_bytes, data = vww_like
    real = plan_memory(model_bytes)

    def everything_at_zero(model):  # live tensors on top of each other
        plan = MemoryPlan(real.buffers, real.greedy, real.planned, real.lower_bound, real.tensor_count)
        plan.planned = type(real.planned)({k: 0 for k in real.planned.offsets}, 16, "broken")
        return plan

    monkeypatch.setattr(offline_plan_module, "plan_memory", everything_at_zero)
    monkeypatch.setattr(offline_plan_module, "measure_arena", lambda model, sample: 100 if b"Offline" in model
                        else 200)
    with pytest.raises(KitError, match="memory-planned model differs from the uncompressed one on TFLM"):
        run_stage("compress", model_bytes, CompressSettings(lut=False, memory_plan="offline", verify_samples=16), data)


def test_multi_subgraph_models_are_left_to_tflm():
    from converter.tflite.memory_plan import NotPlannable
    from converter.tflite.schema import schema

    model = TfliteModel(schema.ModelT())
    model.root.subgraphs = [schema.SubGraphT(), schema.SubGraphT()]
    with pytest.raises(NotPlannable, match="2 subgraphs"):
        lifetimes(model)


def test_objective_ram_gives_every_candidate_a_memory_plan(tmp_path):
    from converter.optimize.space import FineTune, Space, candidate_recipe, describe
    from converter.recipe import load_recipe, parse_recipe
    from tests.conftest import REPO

    base = load_recipe(REPO / "models/recipes/default.yaml")
    plain = Space(("conv",), {"conv": 72})
    assert "memory_plan" not in plain.parameter_names() and "memory_plan" not in plain.as_dict()
    ram = Space(("conv",), {"conv": 72}, memory_plan=True)
    assert ram.choices("memory_plan") == (True,)  # a fixed setting, not a dimension to search
    for params in (ram.reference(), ram.only("conv")):
        recipe = parse_recipe(candidate_recipe(base, params, FineTune(epochs=1), "mse", 50), base_dir=tmp_path)
        assert recipe.compress.memory_plan == "offline"
    assert "memory_plan" not in candidate_recipe(base, plain.reference(), FineTune(), "mse", 50)["compress"]
    assert describe(ram.reference()) == "plain int8"
    from converter.optimize.space import space_for

    assert space_for(tiny_classifier(), objective="ram").memory_plan
    assert not space_for(tiny_classifier()).memory_plan and not space_for(tiny_classifier(), "flash").memory_plan


def test_recipe_memory_plan_setting_is_checked():
    from converter.recipe import parse_recipe

    base = {"name": "m", "model": {"path": "m.h5"}, "data": {"npz": "d.npz"}}
    assert parse_recipe(base | {"compress": {}}).compress.memory_plan == "none"
    assert parse_recipe(base | {"compress": {"memory_plan": "offline"}}).compress.memory_plan == "offline"
    with pytest.raises(KitError, match=r"compress\.memory_plan"):
        parse_recipe(base | {"compress": {"memory_plan": "greedy"}})


@pytest.mark.slow
def test_convert_writes_the_plan_and_sizes_the_arena_from_it(vww_like, tmp_path):
    """As a user runs it: a .tflite recipe with `compress: {memory_plan: offline}`."""
    import json

    import yaml

    from tests.conftest import run_kit

    model_bytes, _ = vww_like
    (tmp_path / "m.tflite").write_bytes(model_bytes)
    recipe = {"name": "planned", "model": {"path": "m.tflite"}, "data": {"random": {"samples": 20, "low": 0.0,
                                                                                    "high": 1.0}},
              "compress": {"lut": False, "memory_plan": "offline"}, "golden": {"vectors": 4}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_kit("convert", tmp_path / "recipe.yaml", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    record = manifest["stages"][-1]["memory_plan"]
    # the plan is kept on the host's measurement; the reservation is the Cortex-M4's, derived with the plan
    assert record["kept"] and manifest["arena"]["host"]["bytes"] == record["arena_with_plan"] < record["arena_without_plan"]
    planned = (tmp_path / "out" / "model.tflite").read_bytes()
    assert manifest["arena"]["target"]["kind"] == "derived"
    assert manifest["arena_bytes"] == derive(planned, "cortex-m4").needed < derive(model_bytes, "cortex-m4").needed
    assert read_offline_plan((tmp_path / "out" / "model.tflite").read_bytes()) is not None
    assert "offline memory plan: tensors 4,608 -> 3,456 B" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_mlperf_vww_arena_shrinks_by_the_planned_saving(shared_data):
    """The MLPerf Tiny VWW reference: TFLM's greedy needs 73,728 B for its tensors, the plan 55,296 B."""
    model_bytes = (shared_data / "mlperf_tiny/visual_wake_words/vww_96_int8.tflite").read_bytes()
    info = read_model(model_bytes)
    plan = plan_memory(model_bytes)
    assert (plan.greedy.arena, plan.planned.arena, plan.lower_bound) == (73_728, 55_296, 55_296)
    sample = [np.zeros(t.shape, t.dtype) for t in info.inputs]
    greedy_written = with_offline_plan(model_bytes, [plan.greedy.offsets.get(t, ONLINE)
                                                     for t in range(plan.tensor_count)])
    planned = with_offline_plan(model_bytes, plan.offsets())
    online = measure_arena(model_bytes, sample)
    assert measure_arena(greedy_written, sample) == online
    assert measure_arena(planned, sample) == online - 18_432
    inputs = [np.random.default_rng(0).integers(-128, 128, (10, *info.inputs[0].shape[1:])).astype(np.int8)]
    expected, actual = run_tflm(model_bytes, inputs), run_tflm(planned, inputs)
    assert all(np.array_equal(e, a) for e, a in zip(expected, actual))


def test_intermediates_of_a_planned_model_are_read_with_the_plan_set_aside(vww_like):
    """TFLM's keep-every-tensor mode cannot allocate a model whose offline plan shares offsets; the
    consistency check and the op-by-op comparison read intermediates that way (the convert of a recipe
    with `memory_plan: offline` failed there)."""
    from converter.tflm.runners import run_model

    model_bytes, data = vww_like
    planned = with_offline_plan(model_bytes, plan_memory(model_bytes).offsets())
    sample = _sample(model_bytes, data, 2)
    plain, kept = run_model(model_bytes, sample, keep_tensors=True), run_model(planned, sample, keep_tensors=True)
    assert [o.tobytes() for o in kept.outputs] == [o.tobytes() for o in plain.outputs]
    assert kept.tensors is not None and plain.tensors is not None
    assert all(kept.tensors[v].keys() == plain.tensors[v].keys() for v in range(2))
    assert all(np.array_equal(kept.tensors[v][t], plain.tensors[v][t]) for v in range(2) for t in plain.tensors[v])
