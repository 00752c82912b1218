"""The MLPerf Tiny anomaly-detection front-end: audio -> 640-value log-mel vectors (5 frames x 128 mels).

Follows `file_to_vector_array` in mlcommons/tiny's anomaly-detection training code (the DCASE 2020
task 2 baseline, librosa 0.6 in its requirements), written here with numpy:

1. audio as float in [-1, 1) (librosa.load of 16-bit PCM divides by 32768), mono;
2. power spectrogram: STFT with a periodic Hann window of n_fft 1024, hop 512, the signal centered
   (reflect-padded by n_fft/2 on both sides, librosa 0.6's `center=True`), |X|^2 (power 2.0);
3. 128 mel bands from 0 Hz to sr/2, the Slaney mel scale and area-normalized triangles (librosa's
   defaults: htk=False, norm=1);
4. 10*log10(mel + machine epsilon) (the code's 20/power*log10);
5. 5 consecutive frames concatenated, oldest first: vector t = frames t..t+4, so a clip of F frames
   gives F-4 vectors of 640.

The v0.1 code also keeps only frames 50..250 of its 10 s ToyADMOS clips; the 1 s clips this kit has
give 32 frames in all, so nothing is cropped. No ToyADMOS machine sounds ship with the kit: the recipe
feeds real Speech Commands audio through this, the model's own feature pipeline — realistic
log-mel statistics, not the machine sounds the autoencoder was trained on.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import KitError

N_FFT = 1024
HOP = 512
MELS = 128
FRAMES = 5
POWER = 2.0
SAMPLE_RATE = 16_000
DIGITAL_SILENCE_DB = -100.0
MIN_SAMPLES = (FRAMES - 1) * HOP    # centered frames: 1 + samples // HOP >= FRAMES
LOG_STEP = np.log(6.4) / 27.0       # Slaney: mels per log-Hz step above 1 kHz
SUBSET = "speech_commands/speech_commands_v0.02_test_subset.npz"


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa htk=False): linear below 1 kHz (3 mels per 200 Hz), log above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / LOG_STEP, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp(LOG_STEP * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, mels: int = MELS) -> np.ndarray:
    """(mels, n_fft/2+1) triangles between mels+2 points evenly spaced in mel from 0 to sr/2, each
    scaled by 2/(its width in Hz) so every band has the same area (Slaney normalization)."""
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, np.newaxis] - bin_hz[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, np.newaxis]
    weights.setflags(write=False)  # cached: shared by every call
    return weights


def log_mel(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One clip (samples,) as float in [-1, 1) -> (frames, 128) log-mel energies in dB."""
    if len(audio) < MIN_SAMPLES:
        raise KitError(f"an AD clip needs at least {MIN_SAMPLES} samples ({FRAMES} STFT frames, one vector), "
                       f"got {len(audio)}", f"give clips of at least {MIN_SAMPLES / SAMPLE_RATE:.3f} s at 16 kHz")
    padded = np.pad(np.asarray(audio, dtype=np.float64), N_FFT // 2, mode="reflect")
    count = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:count]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann (fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** POWER
    mel = power @ mel_filterbank(sample_rate).T
    return 20.0 / POWER * np.log10(mel + sys.float_info.epsilon)


def vectors(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(clips, samples) int16 or float audio -> (clips * (frames-4), 640) float32 model inputs, each clip's
    vectors in time order."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[np.newaxis]
    if audio.ndim != 2 or not np.issubdtype(audio.dtype, np.number):
        raise KitError(f"AD audio must be numeric (clips, samples), got {audio.dtype} shape {audio.shape}",
                       "give mono clips, one per row, as int16 or float samples")
    scale = 32768.0 if np.issubdtype(audio.dtype, np.integer) else 1.0
    out = []
    for clip in audio:
        spectrum = log_mel(clip / scale, sample_rate)
        count = len(spectrum) - FRAMES + 1
        out.append(np.concatenate([spectrum[t:t + count] for t in range(FRAMES)], axis=1))
    return np.concatenate(out).astype(np.float32)


def load_data(path: str | None = None, clips: int = 120, vectors_per_clip: int = 4, seed: int = 0) -> dict:
    """A recipe data builder: log-mel vectors of real Speech Commands clips, unlabeled (an autoencoder).

    `clips` clips in a seeded order over the 12 classes, `vectors_per_clip` vectors each, evenly spaced
    in time among those without digital silence. The first half of the clips calibrate and fine-tune,
    the other half are the eval set: no eval vector shares a clip with a calibration vector.
    """
    root = os.environ.get("TFLM_KIT_SHARED_DATA")
    if not path and not root:
        raise KitError("no Speech Commands file given and TFLM_KIT_SHARED_DATA is not set",
                       f"pass builder_args: {{path: .../{SUBSET}}} or export TFLM_KIT_SHARED_DATA")
    path = Path(os.path.expandvars(str(path))) if path else Path(root) / SUBSET
    if not path.is_file():
        raise KitError(f"Speech Commands file {path} does not exist",
                       f"point builder_args.path (or TFLM_KIT_SHARED_DATA) at {SUBSET}")
    with np.load(path, allow_pickle=False) as archive:
        audio = archive["x"]
    if not 2 <= clips <= len(audio):
        raise KitError(f"clips must be between 2 and {len(audio)}, got {clips}", "choose fewer clips")
    order = np.random.default_rng(seed).permutation(len(audio))
    picked = []
    for index in order:  # clip by clip, in the seeded order, until enough clips qualify
        clip_vectors = vectors(audio[index])
        if not 1 <= vectors_per_clip <= len(clip_vectors):
            raise KitError(f"vectors_per_clip must be between 1 and {len(clip_vectors)}, got {vectors_per_clip}",
                           "choose fewer vectors per clip")
        # Clips shorter than 1 s are zero-padded in the file: frames of digital silence (log of epsilon,
        # -156 dB) no microphone produces. Only vectors without them are kept.
        live = np.flatnonzero(clip_vectors.min(axis=1) > DIGITAL_SILENCE_DB)
        if len(live) >= vectors_per_clip:
            picked.append(clip_vectors[live[np.linspace(0, len(live) - 1, vectors_per_clip).round().astype(int)]])
        if len(picked) == clips:
            break
    else:
        raise KitError(f"only {len(picked)} clips have {vectors_per_clip} vectors without digital silence",
                       "ask for fewer clips or fewer vectors per clip")
    features = np.stack(picked)
    half = clips // 2
    train = features[:half].reshape(-1, FRAMES * MELS)
    return {"x_train": train, "x_calibration": train, "x_eval": features[half:].reshape(-1, FRAMES * MELS)}
