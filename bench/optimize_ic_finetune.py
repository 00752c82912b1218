"""Why compression loses agreement on the MLPerf Tiny IC ResNet-8: the fine-tuning experiments of
docs/optimize.md ("Fine-tuning that keeps the teacher's behaviour"), on the Keras (float) model.

Each variant runs one of the kit's stages (cluster, int4_finetune) on the float model, fine-tuning on
the 4,660 original-pixel CIFAR-10 training images with the float model's probabilities as targets
(as `optimize` does), and reports top-1 agreement with the float model and accuracy on the 1,000
JPEG-re-encoded test images (the optimize bench's selection set). Float only: the int8 model on
TFLM loses more (plain int8 alone keeps 95.2% agreement).

    TFLM_KIT_SHARED_DATA=../shared/data python -m bench.optimize_ic_finetune \
        cluster:16:0 cluster:16:1:bn-train cluster:16:1 int4:all:1 int4:large:2:3e-5

A variant is KIND:WHAT:EPOCHS[:LEARNING_RATE][:bn-train]; KIND cluster (WHAT = clusters per channel)
or int4 (WHAT = all, or large: conv2d_4, conv2d_6, conv2d_7, 82% of the weights).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

LARGE = ["conv2d_4", "conv2d_6", "conv2d_7"]


def _data():
    from converter import Dataset

    shared = Path(os.environ.get("TFLM_KIT_SHARED_DATA", "../shared/data"))
    with np.load(shared / "cifar10/cifar10_exact_train_subset.npz") as exact, \
            np.load(shared / "cifar10/cifar10_jpeg.npz") as jpeg:
        x_fit = exact["x_train"].astype(np.float32)
        x_sel, y_sel = jpeg["x_test"][:1000].astype(np.float32), jpeg["y_test"][:1000].astype(np.int64)
    return shared / "mlperf_tiny/image_classification/pretrainedResnet.h5", x_fit, x_sel, y_sel, Dataset


def run_variant(spec: str, model_path: Path, x_fit, x_sel, y_sel, dataset_type) -> dict:
    from converter import ClusterSettings, Int4FineTuneSettings, run_stage, tf_env

    def predict(model, x):  # the teacher's and the candidate's class scores, as the stages compute them
        return np.asarray(model.predict(x, batch_size=256, verbose=0))

    keras = tf_env.keras()
    parts = spec.split(":")
    kind, what, epochs = parts[0], parts[1], int(parts[2])
    rate = next((float(p) for p in parts[3:] if p[0].isdigit()), 1e-4)
    freeze = "bn-train" not in parts
    teacher = keras.models.load_model(model_path, compile=False)
    targets = predict(teacher, x_fit)
    data = dataset_type(x_fit, targets, x_fit[:10], None, None, None)
    student = keras.models.load_model(model_path, compile=False)
    fit = {"epochs": epochs, "learning_rate": rate, "loss": "categorical_crossentropy", "freeze_batch_norm": freeze}
    if kind == "cluster":
        # per layer, as optimize's candidates name them (TF-MOT's whole-model call takes another path)
        layers = {layer.name: int(what) for layer in student.layers if hasattr(layer, "kernel")}
        settings = ClusterSettings(clusters=int(what), per_layer=layers, per_channel=True, preserve_sparsity=False,
                                   **fit)
    else:
        settings = Int4FineTuneSettings(layers=LARGE if what == "large" else None, **fit)
    started = time.perf_counter()
    model = run_stage(kind if kind == "cluster" else "int4_finetune", student, settings, data).model
    teacher_top1, top1 = predict(teacher, x_sel).argmax(1), predict(model, x_sel).argmax(1)
    return {"variant": spec, "agreement": float(np.mean(top1 == teacher_top1)), "accuracy": float(np.mean(top1 == y_sel)),
            "float_accuracy": float(np.mean(teacher_top1 == y_sel)), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    loaded = _data()
    print("| variant | top-1 agreement with float | accuracy (float) | s |\n|---|---|---|---|")
    for spec in args.variants:
        row = run_variant(spec, *loaded)
        print(f"| {row['variant']} | {row['agreement']:.1%} | {row['accuracy']:.1%} ({row['float_accuracy']:.1%}) "
              f"| {row['seconds']} |", flush=True)


if __name__ == "__main__":
    main()
