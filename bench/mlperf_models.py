"""The bench's models: which recipe `tflm-kit optimize` searches, the MLPerf reference file it is
compared with, the issue's goal, and the search budget used for bench/results.md."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from converter import CLASSIFIER, REGRESSION, Guards


@dataclass(frozen=True)
class Goal:
    """The issue's goal for a row: winner flatbuffer <= max_ratio x the reference flatbuffer, and the
    quality thresholds (the optimize guards' fields; the search may have been run with looser ones)."""
    max_ratio: float
    quality: Guards

    def describe(self) -> str:
        return f"<= {self.max_ratio:.2f}x ref, {self.quality.describe()}"


@dataclass(frozen=True)
class BenchModel:
    key: str                   # bench/optimize_runs/<key>.json
    title: str
    recipe: str                # relative to the repository root
    reference: Optional[str]   # MLPerf reference int8 .tflite under $TFLM_KIT_SHARED_DATA/mlperf_tiny/
    inputs: str                # what the selection set is, in words
    goal: Optional[Goal]
    trials: int = 6
    epochs: int = 2
    options: tuple[str, ...] = ()   # extra optimize options (guards that differ from the task defaults)
    note: str = ""             # what the row needs said beside its numbers (no numbers here: they are measured)


CLASSIFIER_GOAL = Goal(0.40, Guards(CLASSIFIER, min_agreement=0.95, max_accuracy_drop=0.01))

MODELS: dict[str, BenchModel] = {m.key: m for m in (
    BenchModel("demo", "demo (digits CNN, make demo)", "models/recipes/demo.yaml", None,
               "MNIST subset (models/data), labeled; the recipe's eval inputs", None, trials=6, epochs=1,
               note="`make demo` ends with int4 filters alone, chosen by `python -m bench.demo_compression` "
                    "(bench/demo_compression.md: guards hold on the held-out images, linked image smaller than "
                    "int8); the search reaches the same storage (int4 on every filter, the Dense one included "
                    "because demo.yaml quantizes per tensor; a 14,600 B flatbuffer), its filters fine-tuned on "
                    "the 4-bit grid where make demo requantizes them after training."),
    BenchModel("ic", "IC (ResNet-8, CIFAR-10)", "bench/optimize_ic.yaml",
               "image_classification/pretrainedResnet_quant.tflite",
               "1,000 CIFAR-10 test images (JPEG re-encoded), labeled; fine-tuned on 4,660 original-pixel "
               "train images",
               CLASSIFIER_GOAL),
    BenchModel("kws", "KWS (DS-CNN, Speech Commands)", "bench/optimize_kws.yaml",
               "keyword_spotting/kws_ref_model.tflite",
               "Speech Commands v0.02 test clips, MFCC by the kit, labeled", CLASSIFIER_GOAL),
    BenchModel("vww", "VWW (MobileNetV1 0.25, 96x96)", "models/recipes/mlperf_vww.yaml",
               "visual_wake_words/vww_96_int8.tflite",
               "no VWW images: 500 real photos (original-pixel CIFAR-10 train images resized to 96x96), unlabeled",
               Goal(0.60, Guards(CLASSIFIER, min_agreement=0.98)), trials=4, epochs=1, options=("--min-agreement", "0.98")),
    BenchModel("ad", "AD (FC autoencoder, ToyADMOS)", "models/recipes/mlperf_ad.yaml",
               "anomaly_detection/ad01_int8.tflite",
               "no ToyADMOS sounds: 240 log-mel vectors (5x128) of 60 real Speech Commands clips through the "
               "model's own feature pipeline, unlabeled", Goal(0.50, Guards(REGRESSION, min_sqnr_db=20.0)), trials=6),
    BenchModel("sww", "SWW (1-D DS-CNN)", "models/recipes/mlperf_sww.yaml",
               "streaming_wakeword/str_ww_ref_model.tflite",
               "the 45 real windows MLPerf ships (a seeded half judges, the other half calibrates), labeled",
               None, trials=4),
)}
