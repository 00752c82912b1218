"""The MLPerf Tiny keyword-spotting front-end: 1 s of 16 kHz audio -> 49x10 MFCC.

Matches `get_preprocess_audio_func` in mlcommons/tiny benchmark/training/keyword_spotting/
get_dataset.py (feature_type "mfcc", the defaults of kws_util.py) step for step, with tf.signal:

1. audio as float, divided by its largest sample value (`wav / tf.reduce_max(wav)`; not the
   absolute peak), zero-padded to 16,000 samples; the test-time "time shift" (pad 2, slice from 2)
   is the identity and is left out;
2. STFT: 30 ms Hann window (480 samples), 20 ms stride (320), FFT length 512 -> 49 frames x 257 bins;
   magnitude;
3. 40 mel bins from 20 Hz to 4 kHz (tf.signal.linear_to_mel_weight_matrix), log(mel + 1e-6);
4. tf.signal.mfccs_from_log_mel_spectrograms, first 10 coefficients -> (49, 10, 1).

Firmware must compute the same features (the model expects them, float, before its int8 input
quantization). Labels follow the order the model was trained with (TFDS speech_commands).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import KitError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 16_000
WINDOW_SAMPLES = SAMPLE_RATE * 30 // 1000      # 480
STRIDE_SAMPLES = SAMPLE_RATE * 20 // 1000      # 320
MEL_BINS = 40
LOWER_HZ, UPPER_HZ = 20.0, 4000.0
COEFFICIENTS = 10
FRAMES = 1 + (CLIP_SAMPLES - WINDOW_SAMPLES) // STRIDE_SAMPLES   # 49
# The DS-CNN's output order (TFDS speech_commands label ids), as in the MLPerf Tiny training code.
MODEL_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
SUBSET = "speech_commands/speech_commands_v0.02_test_subset.npz"


def mfcc(audio: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, 16000) or (16000,) audio samples (int16 or float) -> (N, 49, 10, 1) float32 features."""
    from ...system import tf_env

    tf = tf_env.tensorflow()
    audio = np.asarray(audio)
    single = audio.ndim == 1
    audio = audio[np.newaxis] if single else audio
    if audio.ndim != 2 or audio.shape[1] > CLIP_SAMPLES or audio.shape[1] == 0:
        raise KitError(f"KWS audio must be (clips, up to {CLIP_SAMPLES} samples), got shape {audio.shape}",
                       "give 1 s clips of 16 kHz mono audio, one per row")
    if not np.issubdtype(audio.dtype, np.number):
        raise KitError(f"KWS audio must be numeric, got dtype {audio.dtype}", "store the samples as int16 or float")
    peaks = audio.max(axis=1)
    if np.any(peaks <= 0):
        raise KitError(f"{int(np.sum(peaks <= 0))} clip(s) have no positive sample; the MLPerf front-end "
                       "divides by the largest sample", "drop silent (all-zero) clips")
    mel = tf.signal.linear_to_mel_weight_matrix(MEL_BINS, 512 // 2 + 1, SAMPLE_RATE, LOWER_HZ, UPPER_HZ)
    out = []
    for start in range(0, len(audio), batch_size):
        wav = tf.cast(audio[start:start + batch_size], tf.float32)
        wav = wav / tf.reduce_max(wav, axis=-1, keepdims=True)
        wav = tf.pad(wav, [[0, 0], [0, CLIP_SAMPLES - wav.shape[-1]]])
        stfts = tf.signal.stft(wav, frame_length=WINDOW_SAMPLES, frame_step=STRIDE_SAMPLES, fft_length=None,
                               window_fn=tf.signal.hann_window)
        spectrograms = tf.abs(stfts)
        log_mel = tf.math.log(tf.tensordot(spectrograms, mel, 1) + 1e-6)
        coefficients = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :COEFFICIENTS]
        out.append(coefficients.numpy().reshape(-1, FRAMES, COEFFICIENTS, 1))
    features = np.concatenate(out).astype(np.float32)
    return features[0] if single else features


def default_path() -> Path:
    root = os.environ.get("TFLM_KIT_SHARED_DATA")
    if not root:
        raise KitError("no Speech Commands file given and TFLM_KIT_SHARED_DATA is not set",
                       f"pass builder_args: {{path: .../{SUBSET}}} or export TFLM_KIT_SHARED_DATA")
    return Path(root) / SUBSET


def to_model_labels(y: np.ndarray, names) -> np.ndarray:
    """Map a file's label ids (named by `names`) to the model's output order."""
    names = [str(n) for n in names]
    unknown = sorted(set(names) - set(MODEL_LABELS))
    if unknown:
        raise KitError(f"labels {unknown} are not among the KWS model's {list(MODEL_LABELS)}",
                       "use the 12-class Speech Commands labels")
    lookup = np.array([MODEL_LABELS.index(n) for n in names])
    return lookup[np.asarray(y, dtype=int)]


def load_data(path: str | None = None, calibration_per_class: int = 10) -> dict:
    """A recipe data builder: MFCC features of Speech Commands clips (x, y, labels in an .npz).

    The first `calibration_per_class` clips of each class calibrate (and may fine-tune); the rest
    are the eval set, so quality is never scored on a calibration clip.
    """
    path = Path(os.path.expandvars(str(path))) if path else default_path()
    if not path.is_file():
        raise KitError(f"Speech Commands file {path} does not exist",
                       f"point builder_args.path (or TFLM_KIT_SHARED_DATA) at {SUBSET}")
    with np.load(path, allow_pickle=False) as archive:
        audio, y, names = archive["x"], archive["y"], archive["labels"]
    labels = to_model_labels(y, names)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        held[np.flatnonzero(labels == c)[:calibration_per_class]] = True
    features = mfcc(audio)
    return {"x_train": features[held], "y_train": labels[held], "x_calibration": features[held],
            "x_eval": features[~held], "y_eval": labels[~held], "labels": list(MODEL_LABELS)}
