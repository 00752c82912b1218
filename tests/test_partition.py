"""tflm-kit partition: every cut composes bit-exactly on TFLM, auto picks the measured minimum,
the two-QEMU pair reproduces the whole model and catches a corrupted frame, bad input is refused."""
import json
import os

import numpy as np
import pytest

from converter.errors import KitError
from converter.partition import graph, plan, profiles
from converter.partition.cost import CutCost, PartCost, choose
from converter.partition.extract import graph_view, with_extra_outputs
from converter.tflite.model import read_model
from converter.tflm.runners import quantize, run_tflm

from .conftest import run_kit
from .firmware_tools import need_tools, sdk, tflm_root

DEVICES = "nano33:cortex-m4@64MHz,h7:cortex-m7@280MHz"


def _tensor(model: bytes, name: str):
    return next(t for t in read_model(model).inputs + read_model(model).outputs if t.name == name)


def _check_every_cut(model: bytes, inputs: list) -> list:
    view = plan.load(model)
    golden = run_tflm(model, inputs)
    cuts = graph.enumerate_cuts(view)
    for cut in cuts:
        result = plan.split(model, view, cut, inputs, golden)
        plan.verify(result, golden)  # raises on the first differing byte
        assert [x.tobytes() for x in result.tail_outputs] == [x.tobytes() for x in golden]
        for t in cut.tensors:  # the interface keeps the whole model's quantization on both sides
            name = view.tensor_names[t]
            whole = read_model(with_extra_outputs(model, view, (t,))).outputs[-1]
            assert _tensor(result.head, name) == whole == _tensor(result.tail, name)
    return cuts


def test_every_demo_cut_is_bit_exact(demo_dir):
    with np.load(demo_dir / "golden.npz") as golden:
        inputs = [golden["input_0"]]
    cuts = _check_every_cut((demo_dir / "model.tflite").read_bytes(), inputs)
    assert len(cuts) == 6  # a chain of 7 operators


@pytest.mark.parametrize("model", ["image_classification/pretrainedResnet_quant.tflite",
                                   "keyword_spotting/kws_ref_model.tflite"])
def test_every_mlperf_cut_is_bit_exact(shared_data, model):
    model_bytes = (shared_data / "mlperf_tiny" / model).read_bytes()
    tensor = read_model(model_bytes).inputs[0]
    if "image" in model:  # real CIFAR-10 test images (0-255 pixels, as the ResNet-8 takes them)
        with np.load(shared_data / "cifar10" / "cifar10_jpeg.npz") as cifar:
            x = quantize(cifar["x_test"][::1250].astype(np.float32), tensor)
    else:
        x = np.random.default_rng(0).integers(-128, 128, (8, *tensor.shape[1:])).astype(np.int8)
    cuts = _check_every_cut(model_bytes, [x])
    if "image" in model:  # residual blocks: cuts across a branch carry two tensors
        assert sum(len(c.tensors) == 2 for c in cuts) == 12 and len(cuts) == 19


def test_a_cut_through_a_residual_branch_must_name_both_tensors(shared_data):
    model = (shared_data / "mlperf_tiny/image_classification/pretrainedResnet_quant.tflite").read_bytes()
    view = graph_view(model)
    # ADD #3 reads tensors 22 (the shortcut) and 24: 24 alone leaves 22 crossing too.
    with pytest.raises(KitError, match="does not separate the graph.*part 1 also needs"):
        graph.cut_at(view, [24])
    assert graph.cut_at(view, [22, 24]).tensors == (22, 24)
    with pytest.raises(KitError, match="unknown tensor 'nope'"):
        graph.resolve_tensor(view, "nope")


def test_profiles_refuse_missing_fields():
    with pytest.raises(KitError, match="device profile 'board9' has no flash_bytes, ram_bytes"):
        profiles.parse_devices("board9:cortex-m4@64MHz,h7:cortex-m7@280MHz", {})
    with pytest.raises(KitError, match="link profile 'can' has no overhead_bytes"):
        profiles.parse_link("can", {"can": {"bytes_per_s": 125000}})
    with pytest.raises(KitError, match="not uart:BAUD"):
        profiles.parse_link("uart:", {})
    device = profiles.parse_device("x:cortex-m4@48MHz/512K/128K", {})
    assert (device.flash_bytes, device.ram_bytes) == (512 * 1024, 128 * 1024)
    assert profiles.parse_link("uart:921600", {}).seconds(100) == pytest.approx(112 / 92160)


def _row(label, tensors, ms, flash=100, ram=100, budget=1000):
    parts = tuple(PartCost("d", 1, 10, flash, ram, 1, 1, m, budget, budget) for m in ms)
    return CutCost(label, tensors, tuple(map(str, tensors)), 0, 10, 1.0, parts)


def test_choice_is_the_minimum_within_budgets_and_names_the_failing_budget():
    rows = [_row("cut 0", (1,), (5, 5)), _row("cut 1", (2,), (1, 1), ram=1500), _row("cut 2", (3,), (3, 4))]
    assert choose(rows, "latency").label == "cut 2"
    assert choose(rows, "balance").label == "cut 2"
    with pytest.raises(KitError, match=r"best cut by latency \(cut 1, 2\) exceeds d RAM by 500 bytes"):
        choose([_row("cut 1", (2,), (1, 1), ram=1500)], "latency")


def test_non_int8_model_is_refused(shared_data, tmp_path):
    # The MLPerf KWS "float32" file is really hybrid: int8 weights, float activations.
    hybrid = shared_data / "mlperf_tiny/keyword_spotting/kws_ref_model_float32.tflite"
    out = tmp_path / "out"
    result = run_kit("partition", hybrid, "--devices", DEVICES, "--link", "uart:921600", "--out", out)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(lines) == 1 and "float operators left in an int8 model" in lines[0], \
        result.stderr[-2000:]
    assert not out.exists()


def test_auto_without_qemu_says_what_is_missing_and_an_explicit_cut_still_splits(demo_dir, tmp_path):
    out = tmp_path / "out"
    args = ["partition", demo_dir, "--devices", DEVICES, "--link", "uart:921600", "--out", out]
    refused = run_kit(*args, env={"TFLM_ROOT": ""})
    assert refused.returncode == 2 and "--cut auto needs instructions measured on QEMU" in refused.stderr
    assert not out.exists()
    done = run_kit(*args, "--cut", "#15", env={"TFLM_ROOT": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "costs not measured: TFLM_ROOT is not set" in done.stdout
    record = json.loads((out / "partition.json").read_text())
    assert record["costs"] == [] and len(record["cuts"]) == 6
    with np.load(out / "part1" / "golden.npz") as part1, np.load(demo_dir / "golden.npz") as whole:
        assert part1["output_0"].tobytes() == whole["output_0"].tobytes()


def _qemu_or_skip() -> str:
    from converter.partition.qemu import missing_tools

    root = str(tflm_root())
    why = missing_tools(root)
    if why:
        pytest.skip(f"the two-QEMU pair needs the Arm toolchain, qemu-system-arm and TFLM_ROOT: {why}")
    return root


@pytest.fixture(scope="module")
def demo_split(demo_dir, tmp_path_factory):
    """`tflm-kit partition --cut auto --pair` on the demo, as a user runs it."""
    _qemu_or_skip()
    out = tmp_path_factory.mktemp("partition") / "digits-split"
    result = run_kit("partition", demo_dir, "--devices", DEVICES, "--link", "uart:921600", "--out", out, "--pair")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_demo_pair_passes_and_auto_is_the_table_minimum(demo_split):
    out, result = demo_split
    record = json.loads((out / "partition.json").read_text())
    assert "pair on two QEMU: PASS 10/10" in result.stdout
    assert record["pair"]["pass"] and record["pair"]["passed"] == record["pair"]["total"] == 10
    cuts = [c for c in record["costs"] if c["tensors"] and c["fits"]]
    assert record["chosen"]["latency_ms"] == min(c["latency_ms"] for c in cuts)
    for k in (0, 1):
        assert {"model.tflite", "model_data.cc", "model_ops.h", "model_settings.h", "golden.npz",
                "manifest.json"} <= {p.name for p in (out / f"part{k}").iterdir()}
    assert (out / "partition.png").stat().st_size > 0 and "| cut 0 |" in (out / "report.md").read_text()
    from converter.system.kit_outputs import foreign_files

    assert foreign_files(out) == []  # partition.json names every file: --force may replace this output
    for k in (0, 1):  # each part renders as any converted model does
        rendered = run_kit("firmware", "--board", "cortex-m-qemu", "--model-dir", out / f"part{k}",
                           "--out", out.parent / f"fw{k}")
        assert rendered.returncode == 0, rendered.stderr[-2000:]
    # measured instructions of the real parts are close to the per-operator sums the search used
    for measured, summed in zip(record["pair"]["instructions_measured"], record["pair"]["instructions_summed"]):
        assert abs(measured - summed) <= 0.05 * summed + 2000


def test_a_corrupted_frame_is_detected_not_computed_on(demo_split, tmp_path):
    from converter.partition import qemu
    from converter.partition.pair import run_pair

    out, _ = demo_split
    root = _qemu_or_skip()
    elves = [qemu.build(qemu.render_project(out / f"part{k}", tmp_path / f"fw{k}", f"part{k}"), core, root)
             for k, core in enumerate(("cortex-m4", "cortex-m7"))]
    payload = read_model((out / "part0" / "model.tflite").read_bytes()).outputs[0].nbytes
    result = run_pair(tuple(elves), ("cortex-m4", "cortex-m7"), payload, out / "part1" / "golden.npz", corrupt_frame=1)
    assert not result.ok and result.passed == 9 and result.total == 10
    assert any("ERROR frame 1: CRC-32 mismatch" in e and "not run" in e for e in result.errors), result.errors
    assert "OUT 1 " not in result.logs[1]  # vector 1 was never computed


@pytest.fixture(scope="module")
def aot_split(demo_dir, tmp_path_factory):
    """`tflm-kit partition --runtime aot --pair` (--cut auto) on the demo: the interpreter-free whole model profiled
    per operator on both cores, the parts on two QEMUs. TFLM_ROOT is emptied, as for a user with CMSIS-NN and no
    TFLM build: nothing of the AOT runtime's needs TFLM's library."""
    need_tools("arm-none-eabi-gcc", "qemu-system-arm", "make")
    cmsis = os.environ.get("CMSIS_NN_ROOT") or str(sdk("cmsis-nn"))
    out = tmp_path_factory.mktemp("partition-aot") / "digits-split"
    cache = str(tmp_path_factory.mktemp("cmsis-nn"))  # CMSIS-NN compiled once per core for the module
    result = run_kit("partition", demo_dir, "--devices", DEVICES, "--link", "uart:921600", "--out", out, "--pair",
                     "--runtime", "aot",
                     env={"TFLM_ROOT": "", "CMSIS_NN_ROOT": cmsis, "CMSIS_NN_CACHE": cache})
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, {"CMSIS_NN_ROOT": cmsis, "CMSIS_NN_CACHE": cache}


def test_aot_parts_pass_on_two_qemus_bit_identical(aot_split, demo_dir):
    out, result, _ = aot_split
    record = json.loads((out / "partition.json").read_text())
    assert record["runtime"] == "aot" and "pair on two QEMU: PASS 10/10 (aot runtime)" in result.stdout
    assert record["pair"]["pass"] and record["pair"]["passed"] == record["pair"]["total"] == 10
    with np.load(out / "part1" / "golden.npz") as part1, np.load(demo_dir / "golden.npz") as whole:
        assert part1["output_0"].tobytes() == whole["output_0"].tobytes()  # the pair compared with these bytes
    for k in (0, 1):
        manifest = json.loads((out / f"part{k}" / "manifest.json").read_text())
        assert manifest["runtime"] == "aot" and manifest["aot"]["bit_exact"]
        assert (out / f"part{k}" / "aot" / "aot_model.c").is_file()
        core = ("cortex-m4", "cortex-m7")[k]  # the generator's planned buffer is in the firmware's static RAM
        assert record["pair"]["images"][k]["static_ram"] >= manifest["aot"]["buffer_bytes"][core]
    # priced with the AOT runtime's own figures: its buffer (+ the stack reserve, + the receive buffer on part 1)
    # as RAM, never TFLM's arena; instructions from its own per-operator profile, close to the real parts'
    for k, part in enumerate(record["chosen"]["parts"]):
        manifest = json.loads((out / f"part{k}" / "manifest.json").read_text())
        core = ("cortex-m4", "cortex-m7")[k]
        assert part["runtime"] == "aot" and "buffer planned" in part["memory_source"]
        arrays = sum(t["shape"][-1] * int(np.prod(t["shape"][:-1])) for t in manifest["model"]["outputs"] +
                     manifest["model"]["inputs"])  # int8: the part's input (part 1: the receive buffer) and outputs
        assert part["ram_bytes"] == manifest["aot"]["buffer_bytes"][core] + arrays + 16384
    for measured, summed in zip(record["pair"]["instructions_measured"], record["pair"]["instructions_summed"]):
        assert abs(measured - summed) <= 0.05 * summed + 2000
    assert record["operator_instructions"]["cortex-m4"][4] == {"index": 4, "op": "RESHAPE", "instructions": 0}
    from converter.system.kit_outputs import foreign_files

    assert foreign_files(out) == []


def test_a_broken_aot_tail_is_reported_by_the_pair(aot_split, tmp_path):
    """The tail's generated code with a wrong softmax parameter (a plausible generator bug) must fail the pair."""
    import re

    from converter.partition import qemu
    from converter.partition.pair import run_pair

    out, _, cmsis = aot_split
    projects = [qemu.render_project(out / f"part{k}", tmp_path / f"fw{k}", f"part{k}", "aot") for k in (0, 1)]
    generated = projects[1] / "model" / "aot" / "aot_model.c"
    text, count = re.subn(r"\.left_shift = (\d+)", lambda m: f".left_shift = {int(m.group(1)) - 3}",
                          generated.read_text(), count=1)
    assert count == 1
    generated.write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in cmsis.items():
            patch.setenv(name, value)
        elves = [qemu.build(project, core, None) for project, core in zip(projects, ("cortex-m4", "cortex-m7"))]
    payload = read_model((out / "part0" / "model.tflite").read_bytes()).outputs[0].nbytes
    result = run_pair(tuple(elves), ("cortex-m4", "cortex-m7"), payload, out / "part1" / "golden.npz")
    assert not result.ok and result.passed < result.total == 10, result.logs[1][-2000:]
    assert result.golden_differences and any(e.startswith("part 1: FAIL vector") for e in result.errors), result.errors
    assert "PASS 10/10" in result.logs[0]  # the head was fine: the mismatch is the tail's


@pytest.mark.slow  # 14 s, mostly partition's own TFLM checks of every cut; the pair's failure test is default
def test_a_part_whose_generated_code_differs_on_the_host_is_refused_and_nothing_written(demo_dir, tmp_path,
                                                                                       monkeypatch):
    """The host check before anything is written: the portable max pool broken, the tail (MAX_POOL_2D onwards) differs."""
    from converter.flows.partition import Request, partition

    from .aot_models import break_maxpool_kernel

    break_maxpool_kernel(monkeypatch)
    monkeypatch.setenv("TFLM_ROOT", "")      # an explicit cut, nothing measured: the host check alone
    monkeypatch.delenv("CMSIS_NN_ROOT", raising=False)   # the portable kernels are the broken ones
    out = tmp_path / "out"
    with pytest.raises(KitError) as refused:  # cut 0: part 0 is the first conv, part 1 holds the max pool
        partition(Request(demo_dir, DEVICES, "uart:921600", out, cut="#10", runtime="aot"))
    assert refused.value.code == "aot-differs" and "--runtime tflm" in refused.value.fix
    assert not out.exists()


def test_aot_costs_are_the_generated_codes_not_tflms_arena(demo_dir):
    """Under --runtime aot a part's RAM is the buffer the generator planned (+ the board's stack reserve), its flash
    the AOT price: never TFLM's arena."""
    from converter.aot import generate
    from converter.partition import pricing
    from converter.partition.measure import CoreMeasurement
    from converter.runtimes.boards import load_board
    from converter.runtimes.registry import get_runtime

    model = (demo_dir / "model.tflite").read_bytes()
    with np.load(demo_dir / "golden.npz") as golden:
        inputs = [golden["input_0"]]
    view = plan.load(model)
    cut = graph.enumerate_cuts(view)[2]  # after the pointwise conv: the head holds the three convolutions
    split = plan.split(model, view, cut, inputs, run_tflm(model, inputs))
    board = load_board("cortex-m-qemu")
    arena = 40_000  # far above the AOT buffer: it must not appear in the AOT figures
    memory = pricing.runtime_memory(get_runtime("aot"), CoreMeasurement("cortex-m4", (), 0, None), split.head,
                                    [], arena)
    head = read_model(split.head)
    assert memory.runtime == "aot"
    assert memory.ram_bytes == generate(split.head).buffer_bytes("cortex-m4") + board["reserve_ram_bytes"] + \
        head.inputs[0].nbytes + head.outputs[0].nbytes  # the caller's arrays: the AOT buffer holds neither
    deployed = get_runtime("aot").price(split.head, None, "cortex-m4")
    assert memory.flash_bytes == deployed.flash.bytes + board["platform_flash_bytes"]
    assert pricing.deployed_ram(get_runtime("aot"), split.head, arena, "cortex-m4") < pricing.arena_size(arena)


def test_a_part_the_aot_generator_cannot_compile_is_one_line_and_writes_nothing(tmp_path):
    from .aot_models import ModelBuilder
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    b = ModelBuilder()
    x, y, z = (b.activation((1, 8), 0.05, 3) for _ in range(3))
    b.op("RELU", (x,), (y,))
    leaky = schema.LeakyReluOptionsT()
    leaky.alpha = 0.125
    b.op("LEAKY_RELU", (y,), (z,), leaky, "LeakyReluOptions")
    b.io((x,), (z,))
    model = tmp_path / "leaky.tflite"
    model.write_bytes(b.to_bytes())
    out = tmp_path / "out"
    result = run_kit("partition", model, "--devices", DEVICES, "--link", "uart:921600", "--out", out, "--cut", "#1",
                     "--runtime", "aot", env={"TFLM_ROOT": ""})
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "LEAKY_RELU" in lines[0] and "fix: run partition with --runtime tflm" in lines[0], lines[0]
    assert not out.exists()
    done = run_kit("partition", model, "--devices", DEVICES, "--link", "uart:921600", "--out", out, "--cut", "#1",
                   env={"TFLM_ROOT": ""})
    assert done.returncode == 0, done.stderr[-2000:]  # the way out works


def test_an_aot_pair_without_cmsis_nn_is_refused_before_any_work(demo_dir, tmp_path):
    need_tools("arm-none-eabi-gcc", "qemu-system-arm", "make")
    out = tmp_path / "out"
    result = run_kit("partition", demo_dir, "--devices", DEVICES, "--link", "uart:921600", "--out", out, "--pair",
                     "--runtime", "aot", env={"CMSIS_NN_ROOT": "", "TFLM_ROOT": ""})
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "--pair runs both parts' aot firmware on QEMU, but CMSIS_NN_ROOT is not set" in lines[0]
    assert "set CMSIS_NN_ROOT, or drop --pair" in lines[0]
    assert not out.exists() and "[tflm-kit]" not in result.stderr  # refused before splitting anything


def test_cli_bad_cuts_and_budgets_write_nothing(demo_dir, tmp_path):
    out = tmp_path / "out"
    cases = [(["--cut", "no_such_tensor"], "unknown tensor 'no_such_tensor'"),
             (["--cut", "#13,#14"], "does not separate the graph"),
             (["--devices", "a:cortex-m4@64MHz,h7:cortex-m7@280MHz"], "device profile 'a' has no flash_bytes"),
             (["--devices", "a:cortex-m4@64MHz/64K/8K,b:cortex-m7@280MHz/64K/8K"],
              "no cut fits both devices' budgets: even by model and tensor arena alone")]
    for extra, message in cases:
        args = ["partition", demo_dir, "--devices", DEVICES, "--link", "uart:921600", "--out", out, *extra]
        if "--devices" in extra:
            args[2:4] = []
        result = run_kit(*args)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0] and " — fix: " in lines[0], result.stderr[-2000:]
        assert not out.exists()


@pytest.mark.parametrize("model", ["image_classification/pretrainedResnet_quant.tflite",
                                   "keyword_spotting/kws_ref_model.tflite"])
def test_vela_compiles_the_mlperf_models(shared_data, model):
    from converter.partition.vela import ETHOS_U_OP, compile_part

    estimate = compile_part((shared_data / "mlperf_tiny" / model).read_bytes(), "ethos-u55-64")
    assert estimate.cycles_total >= estimate.cycles_npu > 0 and estimate.sram_bytes > 0 and estimate.flash_bytes > 0
    assert read_model(estimate.model).operators == (ETHOS_U_OP,) and estimate.cpu_operators == ()
    faster = compile_part((shared_data / "mlperf_tiny" / model).read_bytes(), "ethos-u55-256")
    assert faster.cycles_npu < estimate.cycles_npu  # more MACs per cycle: fewer cycles


@pytest.mark.slow
def test_npu_head_estimates_appear_in_the_report(shared_data, tmp_path):
    _qemu_or_skip()
    out = tmp_path / "kws-npu"
    result = run_kit("partition", shared_data / "mlperf_tiny/keyword_spotting/kws_ref_model.tflite",
                     "--devices", "npu:ethos-u55-128@400MHz/2M/1M,h7:cortex-m7@280MHz", "--link", "spi:8000000",
                     "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "report.md").read_text()
    assert "## Ethos-U (Vela estimates)" in text and "NPU outputs are not executed here" in text
    record = json.loads((out / "partition.json").read_text())
    assert all(e["cycles_total"] > 0 for e in record["npu"]["estimates"])
    assert "AddEthosU" in (out / "part0" / "model_ops.h").read_text()


def test_channel_split_of_every_per_channel_conv_is_bit_exact(demo_dir):
    from converter.partition.channels import candidates, split_channels

    model = (demo_dir / "model.tflite").read_bytes()
    with np.load(demo_dir / "golden.npz") as golden:
        inputs, outputs = [golden["input_0"]], [golden["output_0"]]
    names = {op.index: op.name for op in graph_view(model).ops}
    found = candidates(model, names)
    assert [c.operator for c in found] == [0, 2]  # the two CONV_2D (not the depthwise one)
    for c in found:
        for first in (1, c.channels // 2):
            rewritten = split_channels(model, c.operator, first)
            counts = read_model(rewritten).operator_counts
            assert counts["CONV_2D"] == 3 and counts["CONCATENATION"] == 1
            got = run_tflm(rewritten, inputs)
            assert got[0].tobytes() == outputs[0].tobytes()
