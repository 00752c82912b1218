"""Load the float Keras 2 model a recipe names, refusing Keras 3 models with a clear reason."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ..system import tf_env
from .builders import load_function
from ..errors import KitError
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the recipe is a higher layer: a type here, not an import
    from ..recipe import Recipe

KERAS3_FIX = ("TF-MOT needs a Keras 2 model: re-save it with tf_keras (TF_USE_LEGACY_KERAS=1), "
              "or rebuild it with tf_keras layers")


def keras_version_of_file(path: Path) -> str | None:
    """The Keras version that wrote a .keras or .h5 file, or None when it does not say."""
    if path.suffix == ".keras" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "metadata.json" in archive.namelist():
                return str(json.loads(archive.read("metadata.json")).get("keras_version", "")) or None
        return None
    if path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as handle:
            version = handle.attrs.get("keras_version")
            return version.decode() if isinstance(version, bytes) else (str(version) if version else None)
    return None


# Wrappers tf_keras writes for functional models and tf.* calls inside them: deserialized by name
# lookup in the TensorFlow API, never from Python code stored in the file.
_SAFE_CLASSES = frozenset({"Functional", "Sequential", "Model", "TFOpLambda", "SlicingOpLambda", "function"})


def _stored_config(path: Path) -> list:
    """The Keras configs stored in a model file or SavedModel, read as data (JSON), without deserializing."""
    if path.is_dir():
        metadata = path / "keras_metadata.pb"
        if not metadata.is_file():
            return []  # a plain SavedModel: restored as TensorFlow graphs, no Python objects are revived
        from tf_keras.protobuf import saved_metadata_pb2

        saved = saved_metadata_pb2.SavedMetadata()
        saved.ParseFromString(metadata.read_bytes())
        return [json.loads(node.metadata) for node in saved.nodes if node.metadata]
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            return [json.loads(archive.read("config.json"))] if "config.json" in archive.namelist() else []
    import h5py

    with h5py.File(path, "r") as handle:
        config = handle.attrs.get("model_config")
    if config is None:
        return []
    return [json.loads(config.decode() if isinstance(config, bytes) else config)]


def _classes(node, found: list) -> list:
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str) and "config" in node:  # not TensorShape, TypeSpec, ...: plain data
            found.append((node["class_name"], node.get("config"), node.get("module")))
        for value in node.values():
            _classes(value, found)
    elif isinstance(node, list):
        for value in node:
            _classes(value, found)
    return found


def _known_class(name: str, module) -> bool:
    keras = tf_env.keras()
    if isinstance(module, str) and not module.startswith(("keras", "tf_keras", "builtins")):
        return False  # a registered custom object from the user's own package
    return name in _SAFE_CLASSES or any(
        hasattr(namespace, name) for namespace in (keras.layers, keras.initializers, keras.regularizers,
                                                   keras.constraints, keras.activations, keras.optimizers))


def check_custom_code(path: Path, trust_custom_code: bool) -> None:
    """Refuse Lambda layers and custom objects BEFORE Keras deserializes anything: an .h5 or
    SavedModel Lambda stores marshalled Python bytecode, which loading would run."""
    if trust_custom_code:
        return
    try:
        configs = _stored_config(path)
    except Exception:  # unreadable: load_model below gives the precise error, still in safe mode
        return
    found = [c for config in configs for c in _classes(config, [])]
    lambdas = sorted({str(cfg.get("name")) if isinstance(cfg, dict) else "?" for name, cfg, _ in found
                      if name == "Lambda"})
    if lambdas:
        raise KitError(f"model {path} has Lambda layer(s) {', '.join(lambdas)}, whose Python code loading "
                       "would run", "rebuild the model without Lambda layers, or set model.trust_custom_code: true "
                       "in the recipe if you trust where the file came from")
    unknown = sorted({name for name, _, module in found if not _known_class(name, module)})
    if unknown:
        raise KitError(f"model {path} uses custom object(s) {', '.join(unknown)}, which loading would import "
                       "and run", "set model.trust_custom_code: true in the recipe if you trust where the file "
                       "came from, or rebuild it from built-in tf_keras layers (or use a model.builder)")


def _check_keras2(model, where: str):
    keras = tf_env.keras()
    if not isinstance(model, keras.Model):
        module = type(model).__module__
        raise KitError(f"{where} is a {module}.{type(model).__name__}, not a Keras 2 (tf_keras) model", KERAS3_FIX)
    return model


def load_file_model(path: Path, trust_custom_code: bool = False):
    keras = tf_env.keras()
    if not path.exists():
        raise KitError(f"model {path} does not exist", "fix model.path in the recipe (relative to the recipe file)")
    if path.is_file() and path.suffix not in (".keras", ".h5", ".hdf5"):
        raise KitError(f"model {path} is not a .keras, .h5 or SavedModel directory",
                       "save the model with model.save('model.keras') or give a SavedModel directory")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise KitError(f"directory {path} has no saved_model.pb", "give a SavedModel directory or a .keras/.h5 file")
    try:
        version = keras_version_of_file(path) if path.is_file() else None
    except Exception:  # unreadable archive: load_model below gives the precise error
        version = None
    if version and version.startswith("3"):
        raise KitError(f"model {path} was saved by Keras {version}", KERAS3_FIX)
    check_custom_code(path, trust_custom_code)
    try:
        if path.suffix == ".keras":
            model = keras.models.load_model(path, compile=False, safe_mode=not trust_custom_code)
        else:
            model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise KitError(f"model {path} could not be loaded by tf_keras: {reason}",
                       "check the file is a Keras 2 model (custom layers need model.trust_custom_code: true)") from None
    return _check_keras2(model, f"model {path}")


def load_model(recipe: Recipe):
    """The float model: from a file, or built (and trained) by a builder function."""
    source = recipe.model
    if source.path is not None:
        return load_file_model(recipe.resolve(source.path), source.trust_custom_code)
    build = load_function(source.builder, recipe.base_dir, "model")
    return _check_keras2(build(**source.builder_args), f"model builder {source.builder} returned an object that")
