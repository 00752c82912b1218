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

DOC_MESSAGES = []  # (fragment of the error message) that docs/robustness.md must quote


def documented(fragment: str) -> str:
    DOC_MESSAGES.append(fragment)
    return fragment


def assert_one_line(error: KitError, expected: str):
    text = str(error)
    assert expected in text and "\n" not in text and " — fix: " in text, text


# --- 1. safe loading decides the format from the content, never the name ------------------------

def lambda_model(marker: Path):
    """A model whose Lambda writes `marker` when it runs: proof of whether loading ran its code."""
    import tf_keras as keras

    path = str(marker)
    return keras.Sequential([keras.layers.Input((4,)),
                             keras.layers.Lambda(lambda x: (open(path, "w").write("ran"), x)[1], name="evil"),
                             keras.layers.Dense(2)])


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
    import resource

    from converter.inputs.keras_model import load_file_model

    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", '{"keras_version": "2.21.0"}')
        with archive.open("config.json", "w", force_zip64=True) as member:
            block = b" " * 2**20
            for _ in range(200):  # 200 MB of JSON whitespace, about 200 KB on disk
                member.write(block)
        archive.writestr("model.weights.h5", b"")
    assert path.stat().st_size < 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(KitError) as error:
        load_file_model(path)
    assert_one_line(error.value, documented("config.json declares 209,715,200 bytes, over the 16,777,216"))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50, f"peak memory grew by {grown_mb:.0f} MB"


# --- 4. labels and tensor names are escaped in model_settings.h ---------------------------------

HOSTILE_LABELS = ["c\n#error injected", "back\\slash", 'quo"te', "tab\there\r", "tri??=graph", "bell\x07\x1b[0m",
                  "ünïcode ✓", "\u00e9" + "123abc", "\\", "end\\", "x\x7f", "*/ /* //"]


def test_hostile_labels_and_tensor_names_compile_to_the_same_bytes(tmp_path):
    import subprocess

    from converter.emit.sources import render_all
    from converter.tflite.model import read_model

    from .conftest import cxx
    from .test_robustness import TINY, edited, set_tensor

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
