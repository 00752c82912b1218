"""convert()'s typed result, read from the manifest it wrote (flows/convert.Conversion)."""
from pathlib import Path

from converter.flows.convert import Agreement, Conversion


def test_a_conversion_lifts_the_figures_a_caller_reads(tmp_path):
    manifest = {"summary": {"model_bytes": 1234, "mode": "int8", "tensor_arena_size": 2048, "arena_measured": 1800,
                            "float_quality": {"accuracy": 0.9}, "quantized_quality": {"accuracy": 0.89}},
                "validation": {"tflm_vs_c_array": {"equal": 8, "total": 8, "max_lsb": 0},
                               "tflm_vs_litert_optimized": {"equal": 7, "total": 8, "max_lsb": 1}}}
    done = Conversion.from_manifest(tmp_path, manifest)
    assert (done.out, done.model_bytes, done.tensor_arena_size, done.arena_measured) == (Path(tmp_path), 1234, 2048, 1800)
    assert done.validation["tflm_vs_c_array"] == Agreement(8, 8, 0) and done.validation["tflm_vs_c_array"].bit_exact
    assert not done.validation["tflm_vs_litert_optimized"].bit_exact
    assert done.deployed is None and done.manifest is manifest
    with_deployed = manifest | {"deployed": {"target": "cortex-m4", "flash_source": "footprint data",
                                             "flash_uncompressed": 90_000, "flash": 80_000, "arena_source": "host x",
                                             "arena_uncompressed": 2000, "arena": 2100}}
    assert Conversion.from_manifest(tmp_path, with_deployed).deployed.flash == 80_000
