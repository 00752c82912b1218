"""The KWS MFCC front-end (MLPerf Tiny settings) and its Speech Commands data builder."""

import numpy as np
import pytest

from converter.errors import KitError
from converter.inputs.features import kws_mfcc


def _chirp(seconds=1.0, rate=16_000, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.05, t.size)
    return (np.sin(2 * np.pi * (200 + 1500 * t) * t) * 8000 + noise * 8000).astype(np.int16)


def test_shape_and_batching():
    clips = np.stack([_chirp(seed=0), _chirp(seed=1)])
    features = kws_mfcc.mfcc(clips)
    assert features.shape == (2, 49, 10, 1) and features.dtype == np.float32
    assert np.allclose(kws_mfcc.mfcc(clips[1]), features[1], atol=1e-4)
    assert not np.allclose(features[0], features[1])


def test_peak_normalization_makes_loudness_irrelevant():
    clip = _chirp()
    quiet = (clip.astype(np.float32) * 0.25)
    assert np.allclose(kws_mfcc.mfcc(clip), kws_mfcc.mfcc(quiet), atol=1e-3)


def test_short_clips_are_zero_padded():
    clip = _chirp()
    short = clip[:12_000]
    padded = np.concatenate([short, np.zeros(4000, np.int16)])
    assert np.allclose(kws_mfcc.mfcc(short), kws_mfcc.mfcc(padded), atol=1e-4)


def test_bad_audio_is_refused():
    with pytest.raises(KitError, match="no positive sample"):
        kws_mfcc.mfcc(np.zeros((1, 16_000), np.int16))
    with pytest.raises(KitError, match="up to 16000 samples"):
        kws_mfcc.mfcc(np.ones((1, 20_000), np.int16))


def test_labels_map_to_the_model_order():
    names = ["_silence_", "_unknown_", "yes", "no"]
    assert kws_mfcc.to_model_labels(np.array([0, 1, 2, 3]), names).tolist() == [10, 11, 9, 3]
    with pytest.raises(KitError, match="maybe"):
        kws_mfcc.to_model_labels(np.array([0]), ["maybe"])


def test_reference_kws_model_recognizes_real_speech(shared_data):
    """If the features match the MLPerf Tiny training front-end, the float DS-CNN scores ~92% here."""
    import tf_keras as keras

    data = kws_mfcc.load_data()
    assert len(data["x_calibration"]) == 120 and len(data["x_eval"]) == 1080
    assert set(np.bincount(data["y_train"])) == {10}
    model = keras.models.load_model(shared_data / "mlperf_tiny/keyword_spotting/kws_ref_model", compile=False)
    predictions = model.predict(data["x_eval"], verbose=0).argmax(axis=1)
    accuracy = float(np.mean(predictions == data["y_eval"]))
    assert accuracy >= 0.88, accuracy  # measured 0.917 (MLPerf Tiny reports ~0.92 on the full test set)
    # the same clips with the frames reversed in time must not be recognized as well
    reversed_time = model.predict(data["x_eval"][:, ::-1], verbose=0).argmax(axis=1)
    assert float(np.mean(reversed_time == data["y_eval"])) < accuracy - 0.2
