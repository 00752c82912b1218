"""Fuzz the .tflite entry points: every input must end in success or a KitError.

Phase 1 (coverage-guided, atheris/libFuzzer, in-process): read_model, read_graph and
check_deployable on mutated and truncated flatbuffers. Any other exception, a crash or a
hang is a finding; libFuzzer writes the input to --artifacts.
Phase 2 (--runtime): inputs the structural checks accept go through the child-process smoke
run (converter.isolation), and those that pass it through validate_model in this process,
which must then not crash either. The input being run is written to --artifacts/current.tflite
first, so a crash of this process leaves it behind.

    pip install atheris
    python tools/fuzz_tflite.py parse --seconds 300 --artifacts build/fuzz/tflite SEED.tflite...
    python tools/fuzz_tflite.py runtime --seconds 300 --artifacts build/fuzz/tflite SEED.tflite...

Counts are printed as one JSON line at the end (docs/robustness.md has the last campaign's).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

COUNTS = {"cases": 0, "accepted": 0, "clear_errors": 0, "other_exceptions": 0}
COUNTS_FILE: list[Path] = []  # libFuzzer leaves with os._exit, past atexit: counts go to a file as we go


def _record_counts() -> None:
    if COUNTS_FILE and COUNTS["cases"] % 100 == 0:
        COUNTS_FILE[0].write_text(json.dumps(COUNTS) + "\n")


def parse_target(data: bytes, KitError, read_model, read_graph, check_deployable) -> bool:
    COUNTS["cases"] += 1
    _record_counts()
    try:
        read_model(data)
        read_graph(data)
        check_deployable(data)
    except KitError as error:
        COUNTS["clear_errors"] += 1
        if "\n" in str(error):
            raise AssertionError(f"multi-line error: {error!r}") from None
        return False
    COUNTS["accepted"] += 1
    return True


def run_parse(args) -> None:
    import atheris

    with atheris.instrument_imports(include=["converter", "flatbuffers", "tflite_micro.tensorflow"]):
        from converter import KitError, check_deployable, read_graph, read_model

    corpus = Path(args.artifacts) / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        shutil.copy(seed, corpus / Path(seed).name)
    COUNTS_FILE.append(Path(args.artifacts) / "parse_counts.json")
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={args.seconds}", "-timeout=10",
                   f"-artifact_prefix={args.artifacts}/", "-max_len=400000", "-rss_limit_mb=4096",
                   "-print_final_stats=1"],
                  lambda data: parse_target(data, KitError, read_model, read_graph, check_deployable))
    atheris.Fuzz()


def mutate(data: bytearray, rng: random.Random) -> bytes:
    """Byte flips, interesting 32-bit values, truncation and block copies: flatbuffer offsets break in all of them."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        kind = rng.random()
        pos = rng.randrange(len(out)) if out else 0
        if kind < 0.35 and out:
            out[pos] ^= 1 << rng.randrange(8)
        elif kind < 0.6 and len(out) > 4:
            pos = min(pos, len(out) - 4) & ~3
            value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, len(out), len(out) + 4))
            out[pos:pos + 4] = value.to_bytes(4, "little")
        elif kind < 0.75:
            out = out[:rng.randrange(len(out) + 1)]
        elif kind < 0.9 and len(out) > 8:
            start, length = rng.randrange(len(out)), rng.randrange(1, 64)
            dest = rng.randrange(len(out))
            out[dest:dest + length] = out[start:start + length]
        elif out:
            out[pos] = rng.randrange(256)
    return bytes(out)


def run_runtime(args) -> None:
    """Mutants through validate's path; --cases N stops after N (else --seconds). Each case is timed."""
    artifacts = Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    seeds = [bytearray(Path(s).read_bytes()) for s in args.seeds]
    counts = {"cases": 0, "structurally_refused": 0, "reached_child": 0, "child_clear_errors": 0,
              "child_crashes_contained": 0, "child_hangs": 0, "validated_in_process": 0,
              "in_process_clear_errors": 0, "other_exceptions": 0, "over_60_s": 0, "slowest_s": 0.0}
    kinds: dict[str, int] = {}  # KitError.kind of every refusal, structural or in a child: the outcome classes
    current = artifacts / "current.tflite"
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and (args.cases is None or counts["cases"] < args.cases):
        data = mutate(rng.choice(seeds), rng)
        counts["cases"] += 1
        started = time.monotonic()
        try:
            _runtime_case(data, counts, kinds, artifacts, current, args)
        finally:
            took = time.monotonic() - started
            counts["slowest_s"] = round(max(counts["slowest_s"], took), 1)
            if took > 60:
                counts["over_60_s"] += 1
                (artifacts / f"slow-{counts['cases']}.tflite").write_bytes(data)
        if counts["cases"] % 50 == 0:
            (artifacts / "runtime_counts.json").write_text(json.dumps({**counts, "kinds": kinds}) + "\n")
    current.unlink(missing_ok=True)
    print(json.dumps({"phase": "runtime", **counts, "kinds": dict(sorted(kinds.items()))}), flush=True)


def _runtime_case(data: bytes, counts: dict, kinds: dict, artifacts: Path, current: Path, args) -> None:
    """One mutant through the structural checks, the isolated smoke run and validate_model."""
    from converter import KitError, check_deployable, check_runs_safely, read_graph, read_model, validate_model

    def refused(error) -> None:
        kinds[error.kind] = kinds.get(error.kind, 0) + 1
        if "\n" in str(error):
            raise AssertionError(f"multi-line error: {error!r}")

    try:
        read_model(data)
        read_graph(data)
        check_deployable(data)
    except KitError as error:
        refused(error)
        counts["structurally_refused"] += 1
        return
    counts["reached_child"] += 1
    current.write_bytes(data)
    try:
        check_runs_safely(data, timeout=args.child_timeout)
    except KitError as error:
        refused(error)
        counts["child_clear_errors"] += 1
        if "crashed" in str(error):
            counts["child_crashes_contained"] += 1
            (artifacts / f"child-crash-{counts['cases']}.tflite").write_bytes(data)
        if "hang" in str(error):
            counts["child_hangs"] += 1
            (artifacts / f"child-hang-{counts['cases']}.tflite").write_bytes(data)
        return
    except Exception:
        counts["other_exceptions"] += 1
        (artifacts / f"other-{counts['cases']}.tflite").write_bytes(data)
        return
    path = artifacts / "validate.tflite"
    path.write_bytes(data)
    try:
        validate_model(path, vectors=args.vectors, log=lambda _: None)
        counts["validated_in_process"] += 1
    except KitError as error:
        refused(error)
        counts["in_process_clear_errors"] += 1
    except Exception as exc:
        counts["other_exceptions"] += 1
        (artifacts / f"other-{counts['cases']}.tflite").write_bytes(data)
        print(f"case {counts['cases']}: {type(exc).__name__}: {exc}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("parse", "runtime"))
    parser.add_argument("seeds", nargs="+")
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--artifacts", default="build/fuzz/tflite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child-timeout", type=float, default=30)
    parser.add_argument("--cases", type=int, default=None, help="runtime: stop after this many mutants")
    parser.add_argument("--vectors", type=int, default=2, help="runtime: vectors per validate_model run")
    args = parser.parse_args()
    Path(args.artifacts).mkdir(parents=True, exist_ok=True)
    (run_parse if args.phase == "parse" else run_runtime)(args)


if __name__ == "__main__":
    main()


def outcome(data: bytes, child: bool) -> str:
    """'ok' or the KitError's kind (stable when a message is reworded): what the regression test replays."""
    from converter import KitError, check_deployable, check_runs_safely, read_graph, read_model

    try:
        read_model(data)
        read_graph(data)
        check_deployable(data)
        if child:
            check_runs_safely(data, timeout=30)
    except KitError as error:
        return error.kind
    return "ok"


def build_corpus(seeds: list[str], out: Path, tries: int, seed: int = 0) -> dict:
    """Keep the smallest mutant for each distinct outcome (plus every runtime crash the child contained)."""
    rng = random.Random(seed)
    sources = [bytearray(Path(s).read_bytes()) for s in seeds]
    best: dict[str, bytes] = {}
    for _ in range(tries):
        data = mutate(rng.choice(sources), rng)
        key = outcome(data, child=False)
        if key == "ok":
            key = outcome(data, child=True)
        if key not in best or len(data) < len(best[key]):
            best[key] = data
    out.mkdir(parents=True, exist_ok=True)
    expected = {}
    for number, (key, data) in enumerate(sorted(best.items())):
        name = f"case{number:03d}.tflite"
        (out / name).write_bytes(data)
        expected[name] = key
    return expected
