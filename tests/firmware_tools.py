"""What the firmware tests need from the machine, each skipping with the exact reason when absent.

In CI the Makefile points TFLM_ROOT at ../shared/tflm and .ci/run installs the Cortex-M
toolchain and QEMU from Debian, so none of these skip there.
"""
import os
import shutil
from pathlib import Path

import pytest

from .conftest import REPO

CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"


def _sdk_root() -> Path:
    """TFLM_KIT_SDK, else ../shared/sdk, else the sdk/ beside TFLM_ROOT (../shared/tflm in CI)."""
    if os.environ.get("TFLM_KIT_SDK"):
        return Path(os.environ["TFLM_KIT_SDK"])
    beside_tflm = Path(os.environ.get("TFLM_ROOT") or DEFAULT_TFLM_ROOT).parent / "sdk"
    return REPO.parent / "shared" / "sdk" if (REPO.parent / "shared" / "sdk").is_dir() else beside_tflm


# What `make test` points TFLM_ROOT at when it exists: a plain `pytest` finds the same tree.
DEFAULT_TFLM_ROOT = REPO.parent / "shared" / "tflm"
HOST_LIB = "linux_x86_64_default_gcc"


def tflm_root(lib_target: str | None = None) -> Path:
    """TFLM_ROOT, else ../shared/tflm beside the repository, with gen/<lib_target>/lib/libtensorflow-microlite.a
    built under it, or skip saying what is missing. The one place tests find TFLM (the `tflm_root` fixture of
    conftest.py calls it); it exports TFLM_ROOT so the kit's own processes use the same tree."""
    root = os.environ.get("TFLM_ROOT")
    if not root and (DEFAULT_TFLM_ROOT / "tensorflow/lite/micro/micro_interpreter.h").is_file():
        root = str(DEFAULT_TFLM_ROOT)
    if not root:
        pytest.skip("needs TFLM_ROOT=<tflite-micro tree with the microlite library built> "
                    f"(or one at {DEFAULT_TFLM_ROOT}, where `make test` looks)")
    if lib_target and not (Path(root) / "gen" / lib_target / "lib/libtensorflow-microlite.a").is_file():
        pytest.skip(f"needs {Path(root) / 'gen' / lib_target / 'lib/libtensorflow-microlite.a'}; "
                    "build TFLM's microlite target for it first")
    os.environ["TFLM_ROOT"] = root
    return Path(root)


def need_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            how = {"qemu-system-arm": "qemu-system-arm", "cmake": "cmake", "make": "make",
                   "g++": "g++"}.get(tool, CROSS_PACKAGES)
            pytest.skip(f"needs {tool} (apt-get install {how})")


def sdk(sub: str) -> Path:
    path = _sdk_root() / sub
    if not path.exists():
        pytest.skip(f"needs the board SDK pieces at {path} (present in CI as ../shared/sdk)")
    return path
