"""Fuzz the recipe loader with mutated YAML: every input must load or end in a one-line KitError.

Coverage-guided (atheris/libFuzzer) on the bytes of a recipe file, seeded with the bundled
recipes. The loader reads the file from disk as `tflm-kit convert` does (load_recipe), so
encoding errors, YAML errors and schema errors all go the same way as for a user.

    pip install atheris
    python tools/fuzz_recipe.py --seconds 180 --artifacts build/fuzz/recipe models/recipes/*.yaml
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COUNTS = {"cases": 0, "loaded": 0, "clear_errors": 0}


def main() -> None:
    import atheris

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="+")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--artifacts", default="build/fuzz/recipe")
    args = parser.parse_args()
    artifacts = Path(args.artifacts)
    corpus = artifacts / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        shutil.copy(seed, corpus / Path(seed).name)
    counts_file = artifacts / "recipe_counts.json"

    with atheris.instrument_imports(include=["converter", "yaml", "pydantic"]):
        from converter import KitError, load_recipe

    path = Path(tempfile.mkdtemp(prefix="fuzz-recipe-")) / "recipe.yaml"

    def target(data: bytes) -> None:
        COUNTS["cases"] += 1
        if COUNTS["cases"] % 100 == 0:
            counts_file.write_text(json.dumps(COUNTS) + "\n")
        path.write_bytes(data)
        try:
            load_recipe(path)
        except KitError as error:
            COUNTS["clear_errors"] += 1
            if "\n" in str(error):
                raise AssertionError(f"multi-line error: {error!r}") from None
            return
        COUNTS["loaded"] += 1

    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={args.seconds}", "-timeout=10",
                   f"-artifact_prefix={artifacts}/", "-max_len=8192", "-print_final_stats=1"], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
