"""What a Keras model file is, decided from its bytes, and its stored config read as data.

The file name decides nothing: an HDF5 file named `.keras` is HDF5, and tf_keras would load it
through its legacy HDF5 loader (no safe mode). Every read here is bounded, so a hostile file
cannot make the kit allocate gigabytes before it is refused.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..errors import KitError

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# A Keras config or metadata member: real ones are kilobytes (a ResNet-50 config is about 100 KB).
CONFIG_LIMIT = 16 * 2**20
# All members of a .keras archive together: far above any model a microcontroller can hold.
ARCHIVE_LIMIT = 2 * 2**30


class ModelFormat(Enum):
    KERAS_ZIP = "Keras zip archive (.keras)"
    HDF5 = "HDF5 file (.h5)"
    SAVED_MODEL = "SavedModel directory"


@dataclass(frozen=True)
class StoredModel:
    """A model file as found on disk: its real format, the Keras version that wrote it (if it says),
    and the configs loading would deserialize, as plain JSON data."""
    path: Path
    format: ModelFormat
    keras_version: str | None
    configs: list


def _unreadable(path: Path, what: str) -> KitError:
    return KitError(f"model {path} is a {what} whose Keras config cannot be read, so it cannot be checked for "
                    "code before loading", "re-save the model with tf_keras model.save('model.keras')")


def detect_format(path: Path) -> ModelFormat:
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise KitError(f"directory {path} has no saved_model.pb", "give a SavedModel directory or a .keras/.h5 file")
        if not (path / "variables" / "variables.index").is_file():
            raise KitError(f"SavedModel {path} has no variables/variables.index: its weights are missing",
                           "copy the whole SavedModel directory, including its variables/ folder")
        return ModelFormat.SAVED_MODEL
    if not path.is_file():  # a FIFO or device would block or never end
        raise KitError(f"model {path} is not a regular file or a directory", "give a .keras/.h5 file or a SavedModel")
    import h5py

    try:
        with open(path, "rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
        is_zip, is_hdf5 = head == ZIP_MAGIC, h5py.is_hdf5(str(path))
    except OSError as exc:
        raise KitError(f"model {path} cannot be read ({exc.strerror})", "check the file's permissions") from None
    if is_zip and is_hdf5:  # a polyglot: each loader would see a different model
        raise KitError(f"model {path} is both a zip archive and an HDF5 file", "re-save the model with tf_keras")
    if is_zip:
        return ModelFormat.KERAS_ZIP
    if is_hdf5:
        return ModelFormat.HDF5
    raise KitError(f"model {path} is not a Keras model: neither a .keras zip archive, an HDF5 file nor a "
                   "SavedModel directory (the kit reads the content, not the file name)",
                   "save the model with model.save('model.keras') or give a SavedModel directory")


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """A member's bytes, refusing past CONFIG_LIMIT by its declared size and by what it really inflates to."""
    info = archive.getinfo(name)
    if info.file_size > CONFIG_LIMIT:
        raise KitError(f"model {path}: {name} declares {info.file_size:,} bytes, over the {CONFIG_LIMIT:,} a Keras "
                       "config can need", "re-save the model with tf_keras; the file may be hostile")
    with archive.open(info) as member:
        data = member.read(CONFIG_LIMIT + 1)
    if len(data) > CONFIG_LIMIT:
        raise KitError(f"model {path}: {name} inflates past {CONFIG_LIMIT:,} bytes", "re-save the model with tf_keras")
    return data


def _json(data: bytes | str, path: Path, what: str):
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise _unreadable(path, what) from None


def _read_zip(path: Path) -> tuple[str | None, list]:
    what = ModelFormat.KERAS_ZIP.value
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if sum(info.file_size for info in archive.infolist()) > ARCHIVE_LIMIT:
                raise KitError(f"model {path} inflates to over {ARCHIVE_LIMIT:,} bytes", "re-save the model with tf_keras")
            if "config.json" not in names:
                raise _unreadable(path, what)
            config = _json(_read_member(archive, "config.json", path), path, what)
            metadata = _json(_read_member(archive, "metadata.json", path), path, what) \
                if "metadata.json" in names else {}
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
        raise _unreadable(path, what) from None
    if not isinstance(config, dict) or not isinstance(metadata, dict):
        raise _unreadable(path, what)
    config.pop("compile_config", None)  # optimizer, loss, metrics: the kit loads with compile=False
    version = metadata.get("keras_version")
    return (str(version) if version else None), [config]


def _text(value) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="strict")
    return value if isinstance(value, str) else None


def _read_hdf5(path: Path) -> tuple[str | None, list]:
    import h5py

    what = ModelFormat.HDF5.value
    try:
        with h5py.File(path, "r") as handle:
            config, version = _text(handle.attrs.get("model_config")), handle.attrs.get("keras_version")
            version = _text(version) if version is not None else None
    except (OSError, ValueError, UnicodeDecodeError, KeyError):
        raise _unreadable(path, what) from None
    if config is None:  # weights only (save_weights), or not written by Keras
        raise _unreadable(path, what)
    return version, [_json(config, path, what)]


# tf_keras's legacy loader (saving/legacy/saved_model/load.py) revives these object-graph nodes from the
# JSON in their `user_object.metadata` when keras_metadata.pb is absent: SavedModels written before TF 2.5.
KERAS_IDENTIFIERS = frozenset({"_tf_keras_input_layer", "_tf_keras_layer", "_tf_keras_metric", "_tf_keras_model",
                               "_tf_keras_network", "_tf_keras_rnn_layer", "_tf_keras_sequential"})
# saved_model.pb holds the graphs too: larger than a config, still far below a microcontroller model's worth.
SAVED_MODEL_PB_LIMIT = 256 * 2**20


def _node_configs(nodes, path: Path) -> list:
    """The configs of Keras object nodes (identifier, metadata JSON), metrics left out (compile=False)."""
    configs = []
    for identifier, metadata in nodes:
        if not metadata or identifier == "_tf_keras_metric":
            continue
        config = _json(metadata, path, ModelFormat.SAVED_MODEL.value)
        if isinstance(config, dict):
            config.pop("training_config", None)
        configs.append(config)
    return configs


def _legacy_metadata(path: Path) -> list[tuple[str, str]]:
    """(identifier, metadata) of every Keras node in saved_model.pb's object graph, as tf_keras's legacy
    reader finds them: the pre-TF-2.5 layout, where the layer configs (Lambda code included) live."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    if pb.stat().st_size > SAVED_MODEL_PB_LIMIT:
        raise KitError(f"model {path}: saved_model.pb is {pb.stat().st_size:,} bytes, over the "
                       f"{SAVED_MODEL_PB_LIMIT:,} the kit reads", "re-save the model with tf_keras model.save('model.keras')")
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(pb.read_bytes())
    except (DecodeError, RuntimeError, ValueError):
        raise _unreadable(path, ModelFormat.SAVED_MODEL.value) from None
    return [(node.user_object.identifier, node.user_object.metadata)
            for graph in saved.meta_graphs for node in graph.object_graph_def.nodes
            if node.WhichOneof("kind") == "user_object" and node.user_object.identifier in KERAS_IDENTIFIERS]


def _read_saved_model(path: Path) -> list:
    """The Keras layer graph of a SavedModel: every config tf_keras may deserialize, from keras_metadata.pb
    and from the legacy metadata inside saved_model.pb alike (whichever the loader reads: both are checked).
    Optimizer, loss and metric objects are left out, as they are not the model's code and the kit loads with
    compile=False."""
    from google.protobuf.message import DecodeError
    from tf_keras.protobuf import saved_metadata_pb2

    nodes = _legacy_metadata(path)
    metadata = path / "keras_metadata.pb"
    if metadata.is_file():
        if metadata.stat().st_size > CONFIG_LIMIT:
            raise _unreadable(path, ModelFormat.SAVED_MODEL.value)
        saved = saved_metadata_pb2.SavedMetadata()
        try:
            saved.ParseFromString(metadata.read_bytes())
        except DecodeError:
            raise _unreadable(path, ModelFormat.SAVED_MODEL.value) from None
        nodes += [(node.identifier, node.metadata) for node in saved.nodes]
    elif metadata.exists():  # a folder or a FIFO where tf_keras expects the file
        raise _unreadable(path, ModelFormat.SAVED_MODEL.value)
    return _node_configs(nodes, path)


def read_stored_model(path: Path) -> StoredModel:
    """The model's real format and its stored configs; KitError when either cannot be read."""
    model_format = detect_format(path)
    if model_format is ModelFormat.SAVED_MODEL:
        return StoredModel(path, model_format, None, _read_saved_model(path))
    version, configs = _read_zip(path) if model_format is ModelFormat.KERAS_ZIP else _read_hdf5(path)
    return StoredModel(path, model_format, version, configs)
