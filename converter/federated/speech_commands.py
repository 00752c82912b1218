"""Speech Commands by speaker: a data builder for federated keyword spotting.

The subset's file names carry the speaker (`yes/5170b77f_nohash_0.wav`, `_unknown_/five_a6f2fd71_nohash_0.wav`):
every speaker's clips go to one client (`partition: by_key, key: speaker`). A seeded share of the
speakers is held out entirely as the eval set, so accuracy is measured on voices no client had.
`_silence_` clips are cut from background-noise recordings and have no speaker: each is its own
owner (dealt to clients like a one-clip speaker) and every third one is held out.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import KitError
from ..inputs.features.kws_mfcc import MODEL_LABELS, default_path, mfcc, to_model_labels


def speaker_of(file_name: str) -> str | None:
    """The speaker id in a Speech Commands file name, or None (background-noise clips)."""
    parts = Path(file_name).name.split("_")
    return parts[parts.index("nohash") - 1] if "nohash" in parts[1:] else None


def load_data(path: str | None = None, eval_speakers: float = 0.3, seed: int = 0) -> dict:
    """MFCC features with a `key_speaker` per training clip; held-out speakers form the eval set."""
    path = Path(os.path.expandvars(str(path))) if path else default_path()
    if not path.is_file():
        raise KitError(f"Speech Commands file {path} does not exist",
                       "point builder_args.path (or TFLM_KIT_SHARED_DATA) at the Speech Commands subset")
    if not 0 < eval_speakers < 1:
        raise KitError(f"eval_speakers {eval_speakers} must be a fraction between 0 and 1",
                       "e.g. 0.3 holds out 30% of the speakers")
    with np.load(path, allow_pickle=False) as archive:
        audio, y, names, files = archive["x"], archive["y"], archive["labels"], archive["files"]
    labels = to_model_labels(y, names)
    owners = np.array([speaker_of(str(f)) or f"noise:{Path(str(f)).name}" for f in files])
    noise = np.array([speaker_of(str(f)) is None for f in files])
    speakers = np.unique(owners[~noise])
    rng = np.random.default_rng(seed)
    held_speakers = set(rng.choice(speakers, size=round(len(speakers) * eval_speakers), replace=False))
    held = np.array([o in held_speakers for o in owners]) | (noise & (np.cumsum(noise) % 3 == 0))
    features = mfcc(audio)
    return {"x_train": features[~held], "y_train": labels[~held], "key_speaker": owners[~held],
            "x_eval": features[held], "y_eval": labels[held], "labels": list(MODEL_LABELS)}
