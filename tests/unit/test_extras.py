"""Install what is asked for: the core commands never import an extra's packages, and a command that
needs a missing extra refuses in one line naming the `pip install "tflm-kit[...]"` to run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from converter.errors import KitError
from converter.system import extras

REPO = Path(__file__).resolve().parents[2]
OPTIONAL = ("ray", "flwr", "optuna", "dp_accounting", "ethosu", "torch", "litert_torch")

# Hides the named top-level packages from this interpreter, as if they were not installed.
HIDE = """
import sys
class Hidden:
    names = set(sys.argv.pop(1).split(","))
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hidden())
"""


def run_python(code: str, *args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-P", "-c", code, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def run_cli_without(hidden: tuple[str, ...], *args, cwd=REPO):
    return run_python(HIDE + "from converter.cli import main\nmain()", ",".join(hidden), *args, cwd=cwd)


def test_the_core_commands_import_no_extra():
    """convert, validate, golden, firmware and flash (and the CLI, with every stage registered) load
    without any optional package; what a command needs at run time it imports inside functions."""
    code = ("import sys, converter.cli, converter.flows.convert, converter.flows.validate, converter.flows.golden, "
            "converter.flows.firmware, converter.flows.flash\n"
            "from converter.stages.base import registered\nfrom converter.stages.registry import get\nget('train')\n"
            "from converter.recipe import load_recipe\nload_recipe('models/recipes/federated_digits.yaml')\n"
            f"print(repr((sorted(registered()), [n for n in {OPTIONAL!r} if n in sys.modules])))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    stages, loaded = eval(result.stdout.strip().splitlines()[-1])
    assert "federated" in stages and "prune" in stages
    assert loaded == []


def test_the_extras_match_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    optional = text.split("[project.optional-dependencies]")[1].split("\n[")[0]
    core = text.split("dependencies = [")[1].split("]")[0]
    for extra in extras.EXTRAS:
        assert f"\n{extra} = [" in optional, extra
    for package in ("flwr", "ray", "optuna", "dp-accounting", "ethos-u-vela", "torch", "litert-torch"):
        assert f'"{package}' not in core, f"{package} is in the core dependencies"


def test_require_names_the_pip_install(monkeypatch):
    monkeypatch.setattr(extras, "missing", lambda extra: ["optuna"])
    with pytest.raises(KitError) as error:
        extras.require("optimize", "tflm-kit optimize")
    assert str(error.value) == ('tflm-kit optimize needs optuna, which is not installed — fix: '
                                'pip install "tflm-kit[optimize]"')


def _one_line_refusal(result, extra: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f'pip install "tflm-kit[{extra}]"' in errors[0], result.stderr[-2000:]
    return errors[0]


def test_optimize_without_its_extra_refuses_before_any_work(tmp_path):
    out = tmp_path / "search"
    result = run_cli_without(("optuna", "ray"), "optimize", REPO / "models/recipes/demo.yaml",
                             "--board", "cortex-m-qemu", "--out", out)
    line = _one_line_refusal(result, "optimize")
    assert "tflm-kit optimize needs optuna, ray" in line
    assert not out.exists()


def test_a_federated_stage_without_its_extra_refuses_before_any_work(tmp_path):
    out = tmp_path / "fed"
    result = run_cli_without(("flwr",), "convert", REPO / "models/recipes/federated_digits.yaml", "--out", out)
    assert "stage federated needs flwr" in _one_line_refusal(result, "federated")
    assert not out.exists()


def test_an_ethos_u_device_without_vela_refuses(tmp_path):
    from converter.partition.vela import compile_part

    assert "ethosu" in extras.EXTRAS["npu"]
    hidden = extras.missing
    try:
        extras.missing = lambda extra: ["ethosu"] if extra == "npu" else []
        with pytest.raises(KitError, match=r'pip install "tflm-kit\[npu\]"'):
            compile_part(b"", "ethos-u55-128")
    finally:
        extras.missing = hidden


def test_a_torch_recipe_without_its_extra_refuses(tmp_path):
    (tmp_path / "net.py").write_text("def build():\n    raise AssertionError('must not run')\n")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(
        {"name": "pt", "model": {"torch": {"builder": "net.py:build", "input_shape": [4, 4, 1]}},
         "data": {"random": {}}}))
    out = tmp_path / "out"
    result = run_cli_without(("torch", "litert_torch"), "convert", tmp_path / "recipe.yaml", "--out", out)
    assert "needs torch, litert_torch" in _one_line_refusal(result, "torch")
    assert not out.exists()


def test_optimize_on_a_torch_recipe_without_its_extra_refuses(tmp_path):
    """optimize takes PyTorch recipes (tests/test_torch.py): without torch it refuses as convert does, in one
    line, before the search folder is kept."""
    (tmp_path / "net.py").write_text("def build():\n    raise AssertionError('must not run')\n")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(
        {"name": "pt", "model": {"torch": {"builder": "net.py:build", "input_shape": [4, 4, 1]}},
         "data": {"random": {}}}))
    out = tmp_path / "search"
    result = run_cli_without(("torch", "litert_torch"), "optimize", tmp_path / "recipe.yaml", "--board",
                             "cortex-m-qemu", "--out", out, "--no-device")
    assert "needs torch, litert_torch" in _one_line_refusal(result, "torch")
    assert not out.exists()
