""".npz files: written byte-reproducibly (numpy.savez stamps each member with the current time), read safely."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..errors import KitError

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH), buffer.getvalue())


def read_npz(path: Path, what: str = "data file", keys=None) -> dict[str, np.ndarray]:
    """The arrays of an .npz (only `keys` that it has, when given), read the one safe way: nothing is
    unpickled (an object array is a pickle, and unpickling runs code), and complex arrays are refused
    rather than cast to real numbers later. The one reader for every .npz the kit is given."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = [name for name in archive.files if keys is None or name in keys]
            arrays = {name: _member(archive, name, path, what) for name in names}
    except KitError:
        raise
    except Exception as exc:  # np.load raises many types for a bad file (and returns an array for an .npy)
        raise KitError(f"{what} {path} is not a readable .npz ({type(exc).__name__})",
                       "save the arrays with numpy.savez") from None
    for name, array in arrays.items():
        if np.iscomplexobj(array):
            raise KitError(f"{what} {path}: array '{name}' is complex ({array.dtype}), and the kit does not drop "
                           "imaginary parts", "store real numbers (e.g. the magnitude, or real and imaginary "
                           "parts as channels)")
    return arrays


def npz_names(path: Path) -> list[str]:
    """The array names an .npz holds (read_npz has checked it is readable)."""
    with np.load(path, allow_pickle=False) as archive:
        return sorted(archive.files)


def _member(archive, name: str, path: Path, what: str) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise KitError(f"{what} {path}: array '{name}' holds Python objects (a pickle), which the kit never loads",
                       "save plain numeric or string arrays with numpy.savez") from None
