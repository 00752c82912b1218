"""A PyTorch module -> PT2E int8 -> .tflite with litert-torch, run as `python -I torch_child.py request.json`.

This file runs in the child process `inputs/torch_model.py` starts, under the Python that has torch and
litert-torch (possibly another environment than the kit's, without the kit): it imports only the standard
library, NumPy, torch, torchao and litert-torch. It reads request.json and the arrays beside it, writes
model.tflite (float interface: litert-torch keeps QUANTIZE/DEQUANTIZE at the edges; the kit makes it
int8) and result.json. Any failure prints one line `error: <text>` on stderr and exits 1.
"""
import importlib
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np


def _builder(spec: str):
    target, _, name = spec.rpartition(":")
    if target.endswith(".py"):
        found = importlib.util.spec_from_file_location("_tflm_kit_torch_builder", target)
        module = importlib.util.module_from_spec(found)
        sys.modules[found.name] = module
        found.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, name)


def _module(request: dict, folder: Path):
    """The user's module in eval mode (an exported program's module has no eval mode: it is traced as it was
    exported); a builder that takes x_train/y_train gets the recipe's training data."""
    import torch

    if request["exported"]:  # the recipe trusts it (model.trust_custom_code): torch.export.load unpickles
        return torch.export.load(request["exported"]).module()
    build = _builder(request["builder"])
    args = dict(request["builder_args"])
    accepted = inspect.signature(build).parameters
    for key in ("x_train", "y_train"):
        if key in accepted and (folder / f"{key}.npy").is_file():
            args[key] = np.load(folder / f"{key}.npy")
    module = build(**args)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"the builder returned a {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def _float_outputs(module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def convert(request: dict, folder: Path) -> dict:
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    started = time.perf_counter()
    torch.manual_seed(request["seed"])
    module = _module(request, folder)
    if request["channels_last"]:  # the data (and the firmware) are N, H, W, C; the module takes N, C, H, W
        # (not .eval(): the wrapper has no layers of its own, and an exported program's module refuses it)
        module = litert_torch.to_channel_last_io(module, args=[0])
    calibration = np.load(folder / "calibration.npy").astype(np.float32)
    sample = (torch.from_numpy(calibration[:1]),)
    built = time.perf_counter()
    if (folder / "eval.npy").is_file():
        x_eval = np.load(folder / "eval.npy").astype(np.float32)  # an exported program keeps its batch of 1
        np.save(folder / "float_outputs.npy", _float_outputs(module, x_eval, 1 if request["exported"] else 256))
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=request["per_channel"]))
    prepared = quantize_pt2e.prepare_pt2e(torch.export.export(module, sample).module(), quantizer)
    with torch.no_grad():
        for x in calibration:
            prepared(torch.from_numpy(x[np.newaxis]))
    quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    edge = litert_torch.convert(quantized, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    (folder / "model.tflite").write_bytes(edge.model_content())
    done = time.perf_counter()
    return {"torch": torch.__version__, "litert_torch": litert_torch.__version__,
            "seconds_build": round(built - started, 2), "seconds_convert": round(done - built, 2),
            "calibration_samples": int(len(calibration))}


def main() -> int:
    request_path = Path(sys.argv[1])
    request = json.loads(request_path.read_text())
    try:
        result = convert(request, request_path.parent)
    except Exception as exc:  # everything goes back to the kit as one line
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}", file=sys.stderr)
        return 1
    (request_path.parent / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
