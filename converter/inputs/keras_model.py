"""Load the float Keras 2 model a recipe names, refusing Keras 3 models with a clear reason."""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..system import tf_env
from .builders import load_function
from .model_file import ModelFormat, StoredModel, read_stored_model
from ..errors import KitError, foreign_text
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the recipe is a higher layer: a type here, not an import
    from ..recipe import Recipe

KERAS3_FIX = ("TF-MOT needs a Keras 2 model: re-save it with tf_keras (TF_USE_LEGACY_KERAS=1), "
              "or rebuild it with tf_keras layers")


# Wrappers tf_keras writes for functional models and tf.* calls inside them: deserialized by name
# lookup in the TensorFlow API, never from Python code stored in the file.
_SAFE_CLASSES = frozenset({"Functional", "Sequential", "Model", "TFOpLambda", "SlicingOpLambda", "function"})


def _objects(config) -> list[dict]:
    """Every dict in a stored config (iteratively: a hostile config can nest deeper than the stack)."""
    found, pending = [], [config]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            found.append(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _classes(config) -> list[tuple]:
    """(class name, config, module) of every serialized object; TensorShape, TypeSpec ... are plain data."""
    return [(node["class_name"], node.get("config"), node.get("module")) for node in _objects(config)
            if isinstance(node.get("class_name"), str) and "config" in node]


def _carries_bytecode(node: dict) -> bool:
    """Lambda layers, `__lambda__` objects (.keras) and RNN cell wrappers store marshalled Python code."""
    return node.get("class_name") in ("Lambda", "__lambda__") or any(
        isinstance(key, str) and key.endswith("function_type") and value == "lambda" for key, value in node.items())


def _code_carrier_names(config) -> set[str]:
    names = set()
    for node in _objects(config):
        if _carries_bytecode(node):
            inner = node.get("config")
            names.add(str(inner.get("name", node.get("class_name"))) if isinstance(inner, dict)
                      else str(node.get("name", node.get("class_name"))))
    return names


def _known_class(name: str, module) -> bool:
    keras = tf_env.keras()
    # tf_keras imports any module a config names (`keras_x` becomes `tf_keras_x`): only its own count.
    if isinstance(module, str) and module not in ("keras", "tf_keras", "builtins") \
            and not module.startswith(("keras.", "tf_keras.")):
        return False  # a registered custom object from the user's own package, or any importable module
    return name in _SAFE_CLASSES or any(
        hasattr(namespace, name) for namespace in (keras.layers, keras.initializers, keras.regularizers,
                                                   keras.constraints, keras.activations, keras.optimizers))


def check_custom_code(path: Path | StoredModel, trust_custom_code: bool) -> None:
    """Refuse Lambda layers and custom objects BEFORE Keras deserializes anything: an .h5 or
    SavedModel Lambda stores marshalled Python bytecode, which loading would run. A config that
    cannot be read is refused too (read_stored_model): what cannot be checked is not loaded."""
    if trust_custom_code:
        return
    stored = path if isinstance(path, StoredModel) else read_stored_model(Path(path))
    path = stored.path
    lambdas = sorted({name for config in stored.configs for name in _code_carrier_names(config)})
    if lambdas:
        raise KitError(f"model {path} has Lambda layer(s) {', '.join(lambdas)}, whose Python code loading "
                       "would run", "rebuild the model without Lambda layers, or set model.trust_custom_code: true "
                       "in the recipe if you trust where the file came from")
    found = [c for config in stored.configs for c in _classes(config)]
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


def _load_by_format(stored: StoredModel, trust_custom_code: bool):
    """Call the tf_keras loader for the format the content has, whatever the file is named."""
    keras = tf_env.keras()
    if stored.format is ModelFormat.KERAS_ZIP:
        # tf_keras opens a zip archive only under a .keras name; a link gives it one without copying.
        with tempfile.TemporaryDirectory(prefix="tflm-kit-model-") as folder:
            link = Path(folder) / "model.keras"
            link.symlink_to(stored.path.resolve())
            return keras.models.load_model(link, compile=False, safe_mode=not trust_custom_code)
    from tf_keras.src.saving.legacy import save as legacy_save

    # HDF5 and SavedModel: the legacy loader tells them apart by file vs directory, never by name.
    return legacy_save.load_model(str(stored.path), compile=False)


def load_file_model(path: Path, trust_custom_code: bool = False):
    """A Keras 2 model from a .keras/.h5 file or SavedModel directory; the format is read from the content.
    This is the one door for model files: `convert` and `validate --float-model` both come through it."""
    path = Path(path)
    if not path.exists():
        raise KitError(f"model {path} does not exist", "fix model.path in the recipe (relative to the recipe file)")
    stored = read_stored_model(path)
    if stored.keras_version and stored.keras_version.startswith("3"):
        raise KitError(f"model {path} was saved by Keras {stored.keras_version}", KERAS3_FIX)
    check_custom_code(stored, trust_custom_code)
    try:
        model = _load_by_format(stored, trust_custom_code)
    except Exception as exc:
        reason = foreign_text(exc)
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
