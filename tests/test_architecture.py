"""The layer rule of docs/architecture.md, enforced on every module's imports (read with ast).

A module may import its own layer and the layers below it, never a higher one. Imports inside
functions count (a lazy import is still a dependency), and so do imports under `if TYPE_CHECKING:`
(a type named in a signature is a contract between layers: a lower layer naming a higher one's type
is a cycle at the type level, and `typing.get_type_hints` fails on it).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "converter"

# Lowest first. The sub-package (or top-level module) of `converter` decides a module's layer.
LAYERS = [
    {"errors", "progress", "system"},
    {"inputs", "tflite"},
    {"tflm"},
    {"compare"},
    {"stages", "federated"},            # federated/: the Flower/Ray machinery of stages/federated.py
    {"recipe"},
    {"emit", "reports", "aot"},          # aot/: the interpreter-free runtime's generator (emits C, runs TFLM)
    {"runtimes"},                        # tflm and aot behind one interface; boards, rendering, building, running
    {"optimize", "partition"},          # a search's trials and a split's parts, driven by the flows above
    {"flows"},                          # whole commands: convert, validate, firmware, flash, optimize, partition
    {"cli", "__main__", "pytest_plugin", "__init__"},
]
LAYER_OF = {part: number for number, parts in enumerate(LAYERS) for part in parts}

# Imports that break the rule today, each with its owner and the way out. Keep this list short;
# the test fails when an entry is no longer needed, so it cannot go stale.
# (importer, imported) -> why a layer exception is still needed, and whose it is.
_CLIMB = "optimize reuses the convert flow's phases: they belong below it (issue 22 item 5, not moved yet)"
_RECIPE = "Recipe passed below its layer: each layer takes its own settings type (issue 22 item 1)"
KNOWN: dict[tuple[str, str], str] = {
    ("converter.inputs.dataset", "converter.recipe"): _RECIPE,
    ("converter.inputs.keras_model", "converter.recipe"): _RECIPE,
    ("converter.inputs.recipe_inputs", "converter.recipe"): _RECIPE,
    ("converter.optimize.prepare", "converter.flows.convert"): _CLIMB,
    ("converter.optimize.trial", "converter.flows.convert"): _CLIMB,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Every converter module `path` imports (absolute names): at module level, inside functions and
    under TYPE_CHECKING alike."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "converter"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "converter":
                continue
            if target == "converter":  # `from .. import progress`: the names are modules
                found += [f"converter.{alias.name}" for alias in node.names if alias.name != "__version__"]
            else:
                found.append(target)
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYER_OF[parts[1] if len(parts) > 1 else "__init__"]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = sorted({_module_name(p) for p in MODULES if (_module_name(p).split(".") + ["__init__"])[1] not in LAYER_OF})
    assert not unknown, f"add these to LAYERS in tests/test_architecture.py and docs/architecture.md: {unknown}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_higher_layer(path):
    module = _module_name(path)
    upward = [target for target in _imports(path)
              if _layer(target) > _layer(module) and (module, target) not in KNOWN]
    assert not upward, f"{module} (layer {_layer(module)}) imports higher layers: {upward}"


def test_known_exceptions_are_still_needed():
    for module, target in KNOWN:
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        assert target in _imports(path), f"{module} no longer imports {target}: remove it from KNOWN"


def test_the_checker_sees_lazy_relative_and_type_only_imports(tmp_path):
    module = tmp_path / "converter" / "tflm" / "example.py"
    module.parent.mkdir(parents=True)
    module.write_text("from typing import TYPE_CHECKING\nfrom ..errors import KitError\nfrom . import ops\n"
                      "if TYPE_CHECKING:\n    from ..recipe import Recipe\n"
                      "def f():\n    from ..flows import convert\n    import converter.emit.sources\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "converter"
    try:
        names = _imports(module)
    finally:
        PACKAGE = saved
    assert sorted(names) == sorted(["converter.errors", "converter.tflm", "converter.recipe", "converter.flows",
                                    "converter.emit.sources"])
    assert _layer("converter.flows.convert") > _layer("converter.stages.base") > _layer("converter.tflm.arena")


# bench/ and tools/ drive the kit through converter/__init__.py; these read internals on purpose: they measure
# or regenerate a sub-package's own pieces (the memory planner's algorithm, the operator tables' data).
WHITE_BOX = {"bench/memory_plan.py": "the planner's lifetimes, placement and lower bound",
             "tools/regen_code_size.py": "regenerates tflm/data/ from TFLM's resolver header",
             "tools/regen_aot_code_size.py": "regenerates runtimes/data/ from the AOT kernels",
             "tools/regen_port_ops.py": "regenerates the ports' operator tables from TFLM's headers"}


def _internal_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    found |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return {name for name in found if name.startswith("converter.")}


def test_bench_and_tools_use_the_public_api():
    root = PACKAGE.parent
    for path in sorted([*root.glob("bench/*.py"), *root.glob("tools/*.py")]):
        relative = str(path.relative_to(root))
        internal = _internal_imports(path)
        if relative in WHITE_BOX:
            assert internal, f"{relative} no longer reads internals: remove it from WHITE_BOX"
        else:
            assert not internal, f"{relative} imports {sorted(internal)}: import from `converter` (add the name to " \
                                 "converter/__init__.py's _EXPORTS if it is missing)"
