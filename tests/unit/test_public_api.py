"""converter/__init__.py: the public names exist, and importing the package loads nothing else."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import converter

PACKAGE = Path(converter.__file__).parent


def test_importing_the_package_has_no_side_effects():
    code = "import converter, os, sys; print(sorted(m for m in sys.modules if m.startswith('converter')))"
    env_before = "import os; print(sorted(os.environ))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['converter']"
    plain = subprocess.run([sys.executable, "-c", env_before], capture_output=True, text=True, check=True).stdout
    with_package = subprocess.run([sys.executable, "-c", "import converter; " + env_before], capture_output=True,
                                  text=True, check=True).stdout
    assert plain == with_package  # no environment variables set on import


def test_every_public_name_points_at_a_definition():
    for name, target in converter._EXPORTS.items():
        module, _, attribute = target.partition(":")
        path = PACKAGE / (module.replace(".", "/") + ".py")
        path = path if path.exists() else PACKAGE / module.replace(".", "/") / "__init__.py"
        assert path.exists(), f"{name}: no module {module}"
        if attribute:
            tree = ast.parse(path.read_text())
            # module level, and in a module-level `if`/`else` (a runtime definition beside its TYPE_CHECKING view)
            body = tree.body + [n for b in tree.body if isinstance(b, ast.If) for n in b.body + b.orelse]
            defined = {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            defined |= {t.id for n in body if isinstance(n, ast.Assign) for t in n.targets
                        if isinstance(t, ast.Name)}
            assert attribute in defined, f"{name}: {module} defines no {attribute}"
    assert set(converter.__all__) == {"__version__", *converter._EXPORTS}


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no_such_thing"):
        converter.no_such_thing  # noqa: B018 (the attribute access is what is tested)
    assert not hasattr(converter, "no_such_thing")
    # and asking for one loads no module (the lazy table is consulted, nothing is imported to look)
    code = ("import converter, sys\ntry:\n    converter.no_such_thing\nexcept AttributeError:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('converter')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['converter']"
