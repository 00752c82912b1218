"""Issue 9: hostile and careless inputs. Each bad input ends in one line `error: <problem> — fix: <fix>`,
exit 2 (130 on Ctrl-C), runs no code from the input, and leaves --out as it was.

Every expected message fragment below is also listed in docs/robustness.md (checked at the end).
"""
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from converter.errors import KitError

from .conftest import REPO, tiny_classifier
from .test_robustness import lambda_model


def documented(fragment: str) -> str:
    """Marks an expected message fragment that docs/robustness.md must quote (test_docs_quote_every_message)."""
    return fragment


def assert_one_line(error: KitError, expected: str):
    text = str(error)
    assert expected in text and "\n" not in text and " — fix: " in text, text


# --- 1. safe loading decides the format from the content, never the name ------------------------

@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    """The same Lambda model in each format tf_keras writes; the marker is where its code would write."""
    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "ran.txt"
    model = lambda_model(marker)
    files = {"zip": folder / "m.keras", "hdf5": folder / "m.h5", "savedmodel": folder / "m_savedmodel"}
    for path in files.values():
        model.save(path)
    marker.unlink(missing_ok=True)  # building and saving ran it
    return files, marker


SUFFIXES = [".keras", ".h5", ".hdf5", ".zip", ".bin", ""]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", ["zip", "hdf5", "savedmodel"])
def test_lambda_models_are_refused_whatever_their_name(lambda_files, tmp_path, kind, suffix):
    from converter.inputs.keras_model import load_file_model

    files, marker = lambda_files
    renamed = tmp_path / f"model{suffix}"
    (shutil.copytree if files[kind].is_dir() else shutil.copyfile)(files[kind], renamed)
    with pytest.raises(KitError) as error:
        load_file_model(renamed)
    assert_one_line(error.value, documented("has Lambda layer(s) evil, whose Python code loading would run"))
    assert not marker.exists(), "the Lambda's code ran"


def test_validate_float_model_goes_through_the_same_door(lambda_files, tmp_path):
    from .conftest import run_kit

    files, marker = lambda_files
    disguised = tmp_path / "float.keras"  # an HDF5 file under a .keras name
    shutil.copyfile(files["hdf5"], disguised)
    result = run_kit("validate", REPO / "tests/data/not_this_model.tflite", "--float-model", disguised,
                     "--vectors", "2")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Lambda layer(s) evil" in errors[0], result.stderr[-2000:]
    assert not marker.exists(), "the Lambda's code ran"


@pytest.mark.parametrize("content, expected", [
    (b"", documented("is not a Keras model: neither a .keras zip archive, an HDF5 file nor a SavedModel")),
    (b"PK\x03\x04 truncated zip", documented("whose Keras config cannot be read, so it cannot be checked")),
])
def test_unreadable_model_files_are_refused_before_loading(tmp_path, content, expected):
    from converter.inputs.keras_model import load_file_model

    path = tmp_path / "m.keras"
    path.write_bytes(content)
    with pytest.raises(KitError) as error:
        load_file_model(path)
    assert_one_line(error.value, expected)


def test_hdf5_without_a_model_config_is_refused(tmp_path):
    from converter.inputs.keras_model import load_file_model

    path = tmp_path / "weights.h5"
    tiny_classifier().save_weights(path)
    with pytest.raises(KitError) as error:
        load_file_model(path)
    assert_one_line(error.value, "HDF5 file (.h5) whose Keras config cannot be read")


def test_a_keras_archive_under_another_name_loads(tmp_path):
    from converter.inputs.keras_model import load_file_model

    path = tmp_path / "m.keras"
    tiny_classifier().save(path)
    renamed = tmp_path / "model.bin"
    shutil.copyfile(path, renamed)
    assert load_file_model(renamed).count_params() == tiny_classifier().count_params()


# --- 7. compiled models are not custom code; a SavedModel without variables/ says so -------------

def compiled_savedmodel(folder: Path) -> Path:
    model = tiny_classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.zeros((4, 8, 8, 4), np.float32), np.zeros(4), verbose=0)  # builds optimizer and metrics
    path = folder / "compiled_savedmodel"
    model.save(path)
    return path


def test_compiled_savedmodel_loads_and_without_variables_says_so(tmp_path):
    from converter.inputs.keras_model import load_file_model

    path = compiled_savedmodel(tmp_path)
    assert len(load_file_model(path).layers) == 4  # optimizer/metric objects (Custom>Adam, Mean) are not model code
    shutil.rmtree(path / "variables")
    with pytest.raises(KitError) as error:
        load_file_model(path)
    assert_one_line(error.value, documented("has no variables/variables.index: its weights are missing"))


# --- 8. resource exhaustion: inflating .keras members ------------------------------------------

def test_keras_archive_whose_config_inflates_hugely_is_refused_cheaply(tmp_path):
    from converter.inputs.keras_model import load_file_model

    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", '{"keras_version": "2.21.0"}')
        with archive.open("config.json", "w", force_zip64=True) as member:
            block = b" " * 2**20
            for _ in range(20):  # 20 MB of JSON whitespace, about 20 KB on disk
                member.write(block)
        archive.writestr("model.weights.h5", b"")
    assert path.stat().st_size < 2**20
    with pytest.raises(KitError) as error:  # refused on the declared size, before inflating a byte
        load_file_model(path)
    assert_one_line(error.value, documented("config.json declares 20,971,520 bytes, over the 16,777,216"))


# --- 4. labels and tensor names are escaped in model_settings.h ---------------------------------

HOSTILE_LABELS = ["c\n#error injected", "back\\slash", 'quo"te', "tab\there\r", "tri??=graph", "bell\x07\x1b[0m",
                  "ünïcode ✓", "\u00e9" + "123abc", "\\", "end\\", "x\x7f", "*/ /* //"]


def test_hostile_labels_and_tensor_names_compile_to_the_same_bytes(tmp_path):
    import subprocess

    from converter.emit.sources import render_all
    from converter.tflite.model import read_model

    from .conftest import cxx
    from .test_robustness import edited, set_tensor

    model_bytes = edited(set_tensor(0, name=b"in\n#error from a tensor name\\"))
    info = read_model(model_bytes)
    x = np.zeros((1, 12), np.int8)
    sources = render_all("hostile", "model.tflite", model_bytes, "0" * 64, info, 100, 112, 0.1, HOSTILE_LABELS,
                         [x], [np.zeros((1, *info.outputs[0].shape[1:]), np.int8)], host="x86_64")
    (tmp_path / "model_settings.h").write_text(sources["model_settings.h"])
    (tmp_path / "main.cc").write_text(
        '#include <cstdio>\n#include <cstring>\n#include "model_settings.h"\n'
        "int main() { for (int i = 0; i < hostile_model::kLabelCount; ++i) {\n"
        "  const char* s = hostile_model::kLabels[i];\n"
        '  for (size_t j = 0; j < std::strlen(s); ++j) std::printf("%02x", (unsigned char)s[j]);\n'
        '  std::printf("\\n"); } }\n')
    for std in ("-std=c++11", "-std=c++17"):  # c++11 still has trigraphs
        build = subprocess.run([cxx(), std, "-Werror", "-Wall", "-o", tmp_path / "labels", tmp_path / "main.cc"],
                               capture_output=True, text=True)
        assert build.returncode == 0, build.stderr
        printed = subprocess.run([tmp_path / "labels"], capture_output=True, text=True, check=True).stdout.split()
        assert printed == [label.encode().hex() for label in HOSTILE_LABELS]


def test_a_label_with_a_nul_is_refused_before_training(tmp_path):
    from converter.inputs.dataset import load_data
    from converter.recipe import parse_recipe

    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 3), np.float32), labels=np.array(["a", "b\x00c"]))
    recipe = parse_recipe({"name": "x", "model": {"path": "m.keras"}, "data": {"npz": "d.npz"}}, base_dir=tmp_path)
    with pytest.raises(KitError) as error:
        load_data(recipe, (3,))
    assert_one_line(error.value, documented("contains a NUL character or a lone surrogate, which no C string can hold"))


# --- 5. --force never deletes inputs or files the kit did not write ------------------------------

def kit(*args):
    from .test_robustness import kit as in_process_kit

    return in_process_kit(*args)


def assert_cli_error(result, expected: str):
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and expected in errors[0], (result.stderr, result.exception)
    assert " — fix: " in errors[0]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def recipe_folder(folder: Path, **data) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "d.npz", x_train=np.zeros((4, 8, 8, 4), np.float32))
    (folder / "notes.txt").write_text("the user's own notes")
    (folder / "builder.py").write_text("def build():\n    raise AssertionError('must not run')\n")
    recipe = {"name": "x", "model": {"builder": "builder.py:build"}, "data": {"npz": "d.npz", **data}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return folder / "recipe.yaml"


@pytest.mark.parametrize("out_name", [".", "..", "sub"])
def test_force_refuses_an_out_holding_any_recipe_input(tmp_path, out_name):
    project = tmp_path / "project"
    recipe = recipe_folder(project)
    sub = project / "sub"
    if out_name == "sub":  # the data lives in the output folder
        sub.mkdir()
        np.savez(sub / "d.npz", x_train=np.zeros((4, 8, 8, 4), np.float32))
        recipe.write_text(recipe.read_text().replace("npz: d.npz", "npz: sub/d.npz"))
    before = snapshot(tmp_path)
    assert_cli_error(kit("convert", recipe, "--out", project / out_name, "--force"),
                     documented("contains the input"))
    assert snapshot(tmp_path) == before


def test_force_replaces_only_a_folder_the_kit_wrote(tmp_path):
    from converter.system.outdir import check_output_path
    from converter.system import out_lock

    recipe = recipe_folder(tmp_path / "project")
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "a web app manifest"}')  # a common file name, not the kit's
    (out / "index.html").write_text("<p>mine</p>")
    assert_cli_error(kit("convert", recipe, "--out", out, "--force"),
                     documented("is not a tflm-kit firmware project, conversion, golden or validation output"))
    (out / "golden.json").write_text('{"model_sha256": "0", "vectors": 1, "tools": {"tflm-kit": "0.1.0"}}')
    (out / "golden.npz").write_bytes(b"")
    (out / "manifest.json").unlink()
    assert_cli_error(kit("convert", recipe, "--out", out, "--force"),
                     documented("holds files the kit did not write (index.html)"))
    assert (out / "index.html").read_text() == "<p>mine</p>"
    (out / "index.html").unlink()
    check_output_path(out, force=True)  # now only what `golden record` writes: replaceable
    out_lock.release(out)


# --- 9. one run at a time per output folder -----------------------------------------------------

def test_a_second_run_into_the_same_out_is_refused_while_the_first_holds_it(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from converter.system.outdir import check_output_path; check_output_path(Path(sys.argv[1]), False); "
         "print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = kit("convert", recipe_folder(tmp_path / "project"), "--out", out)
        assert_cli_error(result, documented("another tflm-kit run is writing"))
    finally:
        holder.kill()
        holder.wait()
    from converter.system.outdir import check_output_path
    from converter.system import out_lock

    check_output_path(out, force=False)  # the kernel dropped the dead holder's lock
    out_lock.release(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"], "lock file left behind"


# --- 11. output folders get the user's umask, not mkdtemp's 0700 --------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o027, 0o750), (0o077, 0o700)])
def test_output_folders_follow_the_umask(tmp_path, umask, mode):
    import os

    from converter.system.outdir import staged_output

    previous = os.umask(umask)
    try:
        with staged_output(tmp_path / "out") as staging:
            (staging / "model.tflite").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "out").stat().st_mode & 0o777 == mode


# --- 6. a full disk is a one-line error, and nothing is left behind -----------------------------

def test_disk_full_while_writing_keeps_the_previous_output(tmp_path, monkeypatch):
    import errno

    from converter.flows import golden

    tiny = REPO / "tests/data/not_this_model.tflite"
    out = tmp_path / "goldens"
    assert kit("golden", "record", tiny, "--out", out, "--vectors", "2").exit_code == 0
    before = snapshot(out)

    def full_disk(path, inputs, outputs):
        Path(path).write_bytes(b"half an npz")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(golden, "save_vectors", full_disk)
    result = kit("golden", "record", tiny, "--out", out, "--vectors", "3", "--force")
    assert_cli_error(result, documented("no space left while writing"))
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["goldens"], "staging or lock left behind"


# --- 6. Ctrl-C while TensorFlow's native libraries load: exit 130, no traceback -----------------

def test_sigint_during_the_native_import_exits_130_without_a_traceback(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-P", "-m", "converter", "validate", REPO / "tests/data/not_this_model.tflite",
                              "--out", tmp_path / "out"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                             env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    maps = Path(f"/proc/{child.pid}/maps")
    deadline = time.monotonic() + 120
    while "tensorflow" not in maps.read_text() and time.monotonic() < deadline:  # a native import under way
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert "interrupted: nothing was written" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "output, staging or lock left behind"


# --- 3. every check passes before anything is moved into --out ----------------------------------

def tiny_recipe(folder: Path, **fields):
    from converter.recipe import parse_recipe

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "tiny.keras").exists():
        tiny_classifier().save(folder / "tiny.keras")
    recipe = {"name": "tiny", "model": {"path": "tiny.keras"}, "data": {"random": {"samples": 8}},
              "quantize": {"calibration_samples": 8}, "golden": {"vectors": 2}, **fields}
    return parse_recipe(recipe, base_dir=folder)


@pytest.fixture(scope="module")
def tiny_output(tmp_path_factory) -> Path:
    from converter.flows.convert import convert

    folder = tmp_path_factory.mktemp("tiny")
    convert(tiny_recipe(folder / "project"), folder / "out", log=lambda _: None)
    return folder / "out"


def test_a_failed_check_leaves_the_previous_output_byte_identical(tiny_output, tmp_path, monkeypatch):
    from converter.flows import convert as flow

    out = tmp_path / "out"
    shutil.copytree(tiny_output, out)
    before = snapshot(out)
    real_validate = flow.validate_artifacts

    def one_vector_differs(*args, **kwargs):
        validation = real_validate(*args, **kwargs)
        return validation | {"tflm_vs_c_array": {**validation["tflm_vs_c_array"], "equal": 1, "total": 2}}

    monkeypatch.setattr(flow, "validate_artifacts", one_vector_differs)
    with pytest.raises(KitError) as error:
        flow.convert(tiny_recipe(tmp_path / "project"), out, force=True, log=lambda _: None)
    assert_one_line(error.value, documented("vectors equal); ") and "was left as it was")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "project") == ["out"], "staging left behind"


def test_the_compression_check_is_one_of_the_checks_before_the_move(tmp_path):
    from converter.flows.convert_output import check_validation as _check_bit_exact

    same = {"equal": 2, "total": 2}
    _check_bit_exact({"tflm_vs_c_array": same}, tmp_path)  # no compression: nothing more to check
    with pytest.raises(KitError, match="LUT-compressed model gave different TFLM outputs .*1/2 vectors equal"):
        _check_bit_exact({"tflm_vs_c_array": same, "tflm_vs_tflm_uncompressed": {"equal": 1, "total": 2}}, tmp_path)


# --- 6 and 12. bad values at the boundary: one line from the recipe, the data or the labels ------

RECIPE_CASES = {
    "seed too big": ("seed: 100000000000000000000000", documented("recipe field 'seed' = 100000000000000000000000: "
                                                                  "must be from 0 to 4294967295")),
    "seed negative": ("seed: -1", "recipe field 'seed' = -1"),
    "infinite learning rate": ("stages: [{train: {learning_rate: .inf}}]",
                               documented("recipe field 'stages[0].train.learning_rate' = inf: must be a finite number")),
    "nan sparsity": ("stages: [{prune: {final_sparsity: .nan}}]",
                     "'stages[0].prune.final_sparsity' = nan: must be a finite number"),
    "inf in builder args": ("data: {builder: 'd.py:load', builder_args: {scale: [1, -.inf]}}",
                            "'data.builder_args.scale[1]' = -inf: must be a finite number"),
    "reserved name": ("name: __x", documented("would make reserved C++ identifiers")),
    "leading underscore": ("name: _Model", "would make reserved C++ identifiers"),
    "trailing underscore": ("name: model_", "would make reserved C++ identifiers"),
}


@pytest.mark.parametrize("case", RECIPE_CASES)
def test_bad_recipe_values_are_one_line_errors(tmp_path, case):
    line, expected = RECIPE_CASES[case]
    name = "" if line.startswith("name:") else "name: x\n"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"{name}model: {{path: m.keras}}\ndata: {{random: {{}}}}\n{line}\n")
    out = tmp_path / "out"
    assert_cli_error(kit("convert", recipe, "--out", out), expected)
    assert not out.exists()


def test_yaml_alias_bomb_is_refused_before_expanding(tmp_path):
    import signal

    from converter.recipe import load_recipe

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}]" for i in range(1, 10)]  # 10^10 values
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: x\nmodel:\n  builder: m.py:build\n  builder_args:\n"
                      + "".join(f"    {line}\n" for line in lines) + "data: {random: {}}\n")

    def hang(*_):
        raise AssertionError("still expanding the aliases after 60 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)  # a guard against hanging the suite, not a speed check
    try:
        with pytest.raises(KitError) as error:
            load_recipe(recipe)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert_one_line(error.value, documented("over 100,000 values once its aliases are expanded"))
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("name: x\nmodel: {builder: 'm.py:build', builder_args: {a: &a [*a]}}\ndata: {random: {}}\n")
    with pytest.raises(KitError, match="not valid YAML|an alias that contains itself"):
        load_recipe(recursive)


def data_recipe(folder: Path, stages: str = "", **arrays) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tiny_classifier().save(folder / "tiny.keras")
    np.savez(folder / "d.npz", **arrays)
    recipe = folder / "recipe.yaml"
    recipe.write_text(f"name: x\nmodel: {{path: tiny.keras}}\ndata: {{npz: d.npz}}\n{stages}\n")
    return recipe


X = np.zeros((4, 8, 8, 4), np.float32)
DATA_CASES = {
    "object labels": (dict(x_train=X, y_train=np.array([0, 1, None, "a"], dtype=object)), "",
                      documented("array 'y_train' holds Python objects (a pickle), which the kit never loads")),
    "complex inputs": (dict(x_train=X + 1j), "", documented("array 'x_train' is complex (")),
    "label 99": (dict(x_train=X, y_train=np.array([0, 1, 2, 99])), "stages: [{train: {epochs: 1}}]",
                 documented("training labels must be class indices 0 to 2 for the model's 3 outputs, but y_train "
                            "holds 99")),
    "label -7": (dict(x_train=X, y_train=np.array([0, -7, 2, 1])), "stages: [{prune: {}}]", "holds -7"),
    "fractional label": (dict(x_train=X, y_train=np.array([0, 0.5, 2, 1])), "stages: [{qat: {}}]", "holds 0.5"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_is_a_one_line_error_before_training(tmp_path, case):
    arrays, stages, expected = DATA_CASES[case]
    out = tmp_path / "out"
    result = kit("convert", data_recipe(tmp_path / "project", stages, **arrays), "--out", out)
    assert_cli_error(result, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"], "output, staging or lock left behind"


def test_docs_quote_every_message():
    """docs/robustness.md lists each bad-input class with its message: every fragment these tests expect
    (the `documented(...)` calls in this file, found by reading it) must be quoted there verbatim."""
    import ast

    tree = ast.parse(Path(__file__).read_text())
    fragments = [ast.literal_eval(node.args[0]) for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "documented"
                 and node.args and isinstance(node.args[0], ast.Constant)]
    assert len(fragments) >= 15
    doc = (REPO / "docs/robustness.md").read_text()
    missing = [fragment for fragment in fragments if fragment not in doc]
    assert not missing, missing


@pytest.mark.parametrize("command", [("validate",), ("golden", "record")])
def test_force_refuses_an_out_holding_the_data(tmp_path, command):
    tiny = REPO / "tests/data/not_this_model.tflite"
    out = tmp_path / "out"
    assert kit("golden", "record", tiny, "--out", out, "--vectors", "2").exit_code == 0
    before = snapshot(out)  # a kit output, so --force may replace it, but not while its golden.npz is the data
    assert_cli_error(kit(*command, tiny, "--data", out / "golden.npz", "--out", out, "--force"), "contains the input")
    assert snapshot(out) == before


@pytest.mark.parametrize("module", ["keras_evil.layers", "kerasx", "os"])
def test_objects_from_modules_outside_keras_are_custom_code(tmp_path, module):
    from converter.inputs.keras_model import check_custom_code

    path = tmp_path / "m.keras"
    layer = {"module": module, "class_name": "Dense", "config": {"units": 2}, "registered_name": None}
    with zipfile.ZipFile(path, "w") as archive:  # tf_keras would import_module(module) to find the class
        archive.writestr("config.json", __import__("json").dumps(
            {"module": "keras", "class_name": "Sequential", "config": {"layers": [layer]}}))
    with pytest.raises(KitError) as error:
        check_custom_code(path, trust_custom_code=False)
    assert_one_line(error.value, "uses custom object(s) Dense")


def test_files_added_to_out_during_the_run_are_not_deleted(tmp_path):
    from converter.system.outdir import check_output_path, staged_output

    out = tmp_path / "out"
    check_output_path(out, force=False)
    with pytest.raises(KitError) as error:
        with staged_output(out) as staging:
            (staging / "report.json").write_text("{}")
            out.mkdir()
            (out / "notes.txt").write_text("written by the user while the kit worked")
    assert_one_line(error.value, "is not a tflm-kit firmware project, conversion, golden or validation output")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "staging or lock left behind"


def test_a_failed_run_into_a_new_nested_out_leaves_no_folders(tmp_path):
    recipe = tmp_path / "project" / "recipe.yaml"
    recipe.parent.mkdir()
    recipe.write_text("name: x\nmodel: {path: missing.keras}\ndata: {random: {}}\n")
    assert_cli_error(kit("convert", recipe, "--out", tmp_path / "new" / "deeper" / "out"), "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"], "folders made for the lock were left"


def test_a_folder_that_turns_read_only_is_a_one_line_error(tmp_path, monkeypatch):
    import errno

    from converter.system.outdir import staged_output

    with pytest.raises(KitError) as error:
        with staged_output(tmp_path / "out") as staging:
            raise PermissionError(errno.EROFS, "Read-only file system", str(staging / "model.tflite"))
    assert_one_line(error.value, documented("Read-only file system); nothing was written"))
    assert list(tmp_path.iterdir()) == []
