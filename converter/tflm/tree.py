"""Where things are in a user's TFLM checkout (TFLM_ROOT): headers and built libraries."""
from __future__ import annotations

from pathlib import Path

from ..errors import KitError

DOWNLOADS = Path("tensorflow/lite/micro/tools/make/downloads")
# Third-party header roots TFLM's own Makefile adds to the include path.
THIRD_PARTY_INCLUDES = ("flatbuffers/include", "gemmlowp", "ruy", "kissfft")
BUILD_HINT = "cd $TFLM_ROOT && make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite"


def include_dirs(root: Path) -> list[Path]:
    if not (root / "tensorflow/lite/micro/micro_interpreter.h").is_file():
        raise KitError(f"TFLM_ROOT={root} is not a TFLM checkout (no tensorflow/lite/micro/micro_interpreter.h)",
                       "git clone https://github.com/tensorflow/tflite-micro and point TFLM_ROOT at it")
    flatbuffers = root / DOWNLOADS / "flatbuffers/include"
    if not flatbuffers.is_dir():
        raise KitError(f"TFLM's third-party headers are not downloaded yet under {root / DOWNLOADS}",
                       f"build the library once: {BUILD_HINT}")
    return [root] + [root / DOWNLOADS / sub for sub in THIRD_PARTY_INCLUDES if (root / DOWNLOADS / sub).is_dir()]


def port_include_dirs(port: Path, fallback_root: Path | None = None) -> list[Path]:
    """Include path for a board's TFLM copy (Arduino/pico keep it under src/, esp/Zephyr at the top).

    Third-party headers come from the port's own third_party/ (or Zephyr's third_party_static/)
    first, then from a TFLM tree's downloads/ for whatever the port does not bundle.
    """
    root = port / "src" if (port / "src/tensorflow").is_dir() else port
    dirs = [root]
    for bundle in (root / "third_party", root / "third_party_static"):
        for sub in ("flatbuffers/include", "gemmlowp", "ruy", "kissfft"):
            if (bundle / sub).is_dir():
                dirs.append(bundle / sub)
    if fallback_root is not None:
        dirs += [fallback_root / DOWNLOADS / sub for sub in THIRD_PARTY_INCLUDES
                 if (fallback_root / DOWNLOADS / sub).is_dir()]
    return dirs
