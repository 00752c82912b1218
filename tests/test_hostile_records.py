"""Issue 18 (High 2-3, Medium 4, 7): files the kit reads back, flash's commands, the one output guard and
stale locks. Each bad input ends in one line `error: ... — fix: ...`, exit 2, and touches nothing.

No TensorFlow conversion here: the records, projects and folders are written by the tests themselves.
"""
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converter.errors import KitError

from .conftest import REPO
from .test_security import assert_cli_error, kit, recipe_folder, snapshot

# --- Medium 4 / 7: one guarded reader for YAML and JSON --------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("name: !!binary aGVsbG8=\n", "tagged !!binary"),
    ("name: x\nseed: " + "9" * 5000 + "\n", "integer of 5,000 digits"),
    ("name: x\nwhen: 2024-01-01\n", "tagged !!timestamp"),
    ("name: !!python/name:os.system x\n", "tagged !!python/name:os.system"),
    ("name: x\nstages: " + "[" * 300 + "]" * 300 + "\n", "nests deeper than 100 levels"),
])
def test_recipe_yaml_tags_huge_integers_and_nesting_are_one_line_errors(tmp_path, text, expected):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    result = kit("convert", recipe, "--out", tmp_path / "out")
    assert_cli_error(result, expected)
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def _golden_folder(folder: Path, lock_text: str) -> Path:
    folder.mkdir()
    (folder / "golden.json").write_text(lock_text)
    np.savez(folder / "golden.npz", input_0=np.zeros((1, 2), np.int8), output_0=np.zeros((1, 2), np.int8))
    return folder


@pytest.mark.parametrize("lock_text, expected", [
    ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    ('{"vectors": ' + "[" * 150 + "]" * 150 + "}", "nests deeper than 100 levels"),
    ('{"vectors": ' + "7" * 5000 + "}", "integer of 5,000 digits"),
    ('{"vectors": 1, "model_sha2', "is not valid JSON"),
])
def test_a_hostile_golden_json_is_a_one_line_error(tmp_path, lock_text, expected):
    result = kit("golden", "check", _golden_folder(tmp_path / "g", lock_text))
    assert_cli_error(result, expected)
    assert "Traceback" not in result.output


def test_a_deeply_nested_search_json_is_refused_when_a_search_resumes(tmp_path):
    from converter.optimize.store import SearchStore

    (tmp_path / "search.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(KitError, match="search record .* nests too deeply"):
        SearchStore.open(tmp_path, {})


def test_a_manifest_with_a_huge_integer_is_refused_by_firmware(tmp_path):
    from converter.runtimes.facts import MODEL_SOURCES, read_model_dir

    for name in MODEL_SOURCES:
        (tmp_path / name).write_text("")
    (tmp_path / "manifest.json").write_text('{"name": "m", "tensor_arena_size": ' + "1" * 5000 + "}")
    with pytest.raises(KitError, match="manifest .* integer of 5,000 digits"):
        read_model_dir(tmp_path)


# --- High 2: flash builds argument lists from a checked record, in the folder the user named --------

FAKE_TOOL = """#!/bin/sh
echo "${0##*/} $*" >> "$FLASH_LOG"
"""


def _project(folder: Path, board: str, name: str) -> Path:
    folder.mkdir(parents=True)
    record = {"board": board, "project": str(folder), "name": name, "model_subdir": "model", "files": []}
    (folder / ".tflm-kit-firmware.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """cmake, picotool and st-flash that only log their arguments: a shell would run what a record injects."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cmake", "picotool", "st-flash"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FLASH_LOG", str(log))
    return log


@pytest.mark.parametrize("board", ["stm32", "pico"])
def test_an_injected_record_name_runs_no_shell_command(tmp_path, fake_tools, board):
    marker = tmp_path / "marker"
    project = _project(tmp_path / "fw", board, f"x_fw.bin; echo pwned >> {marker}; #")
    result = kit("flash", project)
    assert_cli_error(result, "has a model name that is not a C identifier")
    assert not marker.exists() and not fake_tools.exists()


@pytest.mark.parametrize("field, value, expected", [
    ("board", "../../host", "names no known board"),
    ("model_subdir", "../../elsewhere", "not one plain folder name"),
])
def test_record_fields_that_would_reach_a_path_are_checked(tmp_path, field, value, expected):
    project = _project(tmp_path / "fw", "host", "m")
    record = json.loads((project / ".tflm-kit-firmware.json").read_text())
    (project / ".tflm-kit-firmware.json").write_text(json.dumps({**record, field: value}))
    assert_cli_error(kit("flash", project), expected)


def test_a_truncated_firmware_record_is_a_one_line_error(tmp_path):
    project = _project(tmp_path / "fw", "host", "m")
    (project / ".tflm-kit-firmware.json").write_text('{"board": "ho')
    assert_cli_error(kit("flash", project), "firmware record")


def test_a_copied_project_builds_itself_with_argument_lists(tmp_path, fake_tools):
    import shutil

    original = _project(tmp_path / "with space; $(x)", "pico", "digits")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    result = kit("flash", copy)
    assert result.exit_code == 0, result.output
    calls = fake_tools.read_text().splitlines()
    assert calls[0].startswith(f"cmake -S {copy} -B {copy}/build"), calls
    assert calls[-1] == f"picotool load -x {copy}/build/digits_fw.uf2"
    assert str(original) not in fake_tools.read_text()


def test_flash_board_option_is_a_name_not_a_path(tmp_path):
    project = _project(tmp_path / "fw", "host", "m")
    result = kit("flash", project, "--board", "../../host")
    assert_cli_error(result, "--board names no known board profile")
    assert "../../host" not in result.stderr


# --- High 3: one output guard, before anything is touched ------------------------------------------

def test_optimize_out_onto_its_own_recipe_folder_is_refused_and_touches_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    np.savez(folder / "data.npz", x_train=np.zeros((4, 8), np.float32), y_train=np.zeros(4, np.int64))
    (folder / "recipe.yaml").write_text("name: m\nmodel: {builder: b.py:build}\ndata: {npz: data.npz}\n")
    (folder / "b.py").write_text("def build():\n    raise AssertionError('must not run')\n")
    before = snapshot(tmp_path)
    monkeypatch.chdir(folder)
    assert_cli_error(kit("optimize", "recipe.yaml", "--board", "host", "--out", "."), "contains the input")
    assert snapshot(tmp_path) == before


def test_optimize_does_not_take_a_folder_for_a_search_by_its_file_names(tmp_path):
    project = tmp_path / "project"
    recipe = recipe_folder(project)
    out = tmp_path / "elsewhere"
    out.mkdir()
    np.savez(out / "data.npz", mine=np.arange(3))  # the user's own data.npz, not a search's
    before = snapshot(tmp_path)
    assert_cli_error(kit("optimize", recipe, "--board", "host", "--out", out), "has no search record")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["firmware", "partition", "golden", "convert", "validate"])
def test_every_command_that_writes_a_folder_refuses_an_out_holding_its_input(tmp_path, command):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "model.tflite").write_bytes(b"not read: the guard comes first")
    np.savez(inputs / "x.npz", x=np.zeros((2, 4), np.float32))
    (inputs / "manifest.json").write_text('{"tools": {"tflm-kit": "0"}, "artifacts": []}')  # a kit output: --force
    args = {
        "firmware": ["firmware", "--board", "host", "--model-dir", inputs],
        "partition": ["partition", inputs / "model.tflite", "--devices", "a:m4@100,b:m4@100", "--link", "uart:115200",
                      "--cut", "t", "--data", inputs / "x.npz"],
        "golden": ["golden", "record", inputs / "model.tflite", "--data", inputs / "x.npz"],
        "convert": ["convert", recipe_folder(inputs / "r")],
        "validate": ["validate", inputs / "model.tflite", "--data", inputs / "x.npz"],
    }[command]
    before = snapshot(tmp_path)
    assert_cli_error(kit(*args, "--out", inputs, "--force"), "contains the input")
    assert snapshot(tmp_path) == before


# --- Medium 7: a killed run's lock neither blocks nor litters --------------------------------------

def test_a_sigkilled_holder_leaves_no_lock_beside_the_output_and_does_not_block(tmp_path):
    from converter.system import out_lock
    from converter.system.outdir import check_output_path

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-P", "-c", "import sys, time; from pathlib import Path; "
         "from converter.system.outdir import check_output_path, staged_output; "
         "check_output_path(Path(sys.argv[1]), False); s = staged_output(Path(sys.argv[1])); s.__enter__(); "
         "print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert_cli_error(kit("golden", "record", tmp_path / "m.tflite", "--out", out), "another tflm-kit run")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".lock")], "lock file beside the output"
    check_output_path(out, force=False)  # the dead holder's lock does not block, its staging folder is swept
    out_lock.release(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not list(out_lock.lock_dir().glob(f"{out_lock.lock_path(out).name}"))


def test_a_lock_file_with_a_dead_pid_is_swept(tmp_path):
    from converter.system import out_lock

    stale = out_lock.lock_dir() / "0123456789abcdef0123456789abcdef.lock"
    stale.write_text("999999999\n/nowhere\n")
    out_lock.sweep_stale()
    assert not stale.exists()
    assert stat.S_IMODE(out_lock.lock_dir().stat().st_mode) == 0o700


# --- Medium 5: a dimension mutant ends in one line, before any runtime ----------------------------

def test_validate_refuses_a_dimension_mutant_before_running_it(tmp_path):
    from .unit.test_declared_shapes import mutants

    name, data = next(m for m in mutants((REPO / "tests/data/two_inputs.tflite").read_bytes())
                      if m[0].endswith("= 100000"))
    (tmp_path / "m.tflite").write_bytes(data)
    result = kit("validate", tmp_path / "m.tflite", "--vectors", "4")
    assert_cli_error(result, "declares")
    assert "running" not in result.stderr, "a runtime was started"


def test_a_manifest_name_that_is_no_c_identifier_never_reaches_a_template(tmp_path):
    from converter.runtimes.facts import MODEL_SOURCES

    for name in MODEL_SOURCES:
        (tmp_path / name).write_text("")
    manifest = {"name": "x $(touch pwned)", "model": {"bytes": 1, "inputs": [], "outputs": [], "operators": {}},
                "summary": {"golden_vectors": 1}, "tensor_arena_size": 16, "arena_bytes": 16}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert_cli_error(kit("firmware", "--board", "host", "--model-dir", tmp_path, "--out", tmp_path.parent / "fw"),
                     "has a model name that is not a C identifier")
    assert not (tmp_path.parent / "fw").exists()


def test_optimize_resuming_a_deeply_nested_search_json_is_a_one_line_error(tmp_path):
    recipe = recipe_folder(tmp_path / "project")
    out = tmp_path / "search"
    out.mkdir()
    (out / "search.json").write_text("[" * 100_000 + "]" * 100_000)
    result = kit("optimize", recipe, "--board", "host", "--out", out)
    assert_cli_error(result, "not a search")
    assert "Traceback" not in result.output


def test_a_missing_tool_of_a_later_step_is_a_one_line_error(tmp_path, fake_tools, monkeypatch):
    (tmp_path / "bin" / "cmake").unlink()  # picotool is there, cmake (its first step) is not
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # not the machine's own cmake either
    project = _project(tmp_path / "fw", "pico", "digits")
    assert_cli_error(kit("flash", project), "cmake is not on PATH")
