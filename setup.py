"""Package discovery (the rest of the metadata is in pyproject.toml): every converter sub-package, and
firmware_templates/ (kept at the top of the repository) shipped inside the package."""
from setuptools import find_namespace_packages, setup

TEMPLATES = "converter.firmware_templates"
setup(
    packages=find_namespace_packages(include=["converter", "converter.*"])
    + [TEMPLATES] + [f"{TEMPLATES}.{name}" for name in find_namespace_packages("firmware_templates")],
    package_dir={TEMPLATES: "firmware_templates"},
)
