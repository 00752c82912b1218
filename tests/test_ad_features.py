"""The MLPerf Tiny anomaly-detection front-end (log-mel, 5 x 128) and its Speech Commands data builder."""

import numpy as np
import pytest

from converter.errors import KitError
from converter.inputs.features import ad_logmel


def _tone(hz, seconds=1.0, rate=16_000, amplitude=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_slaney_mel_scale():
    assert ad_logmel.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert ad_logmel.hz_to_mel(200.0) == pytest.approx(3.0)
    hz = np.array([0.0, 300.0, 1000.0, 4321.0, 8000.0])
    assert np.allclose(ad_logmel.mel_to_hz(ad_logmel.hz_to_mel(hz)), hz)


def test_filterbank_bands_have_equal_area():
    bank = ad_logmel.mel_filterbank()
    assert bank.shape == (128, 513) and (bank >= 0).all()
    bin_hz = 16_000 / 1024
    # area normalization: every triangle integrates to 1 over Hz (sampled on the FFT bins, so the
    # narrow low bands only on average)
    areas = bank.sum(axis=1) * bin_hz
    assert np.allclose(areas[60:], 1.0, atol=0.03) and np.allclose(areas, 1.0, atol=0.12)
    assert areas.mean() == pytest.approx(1.0, abs=0.01)


def test_a_tone_lands_in_its_mel_band():
    spectrum = ad_logmel.log_mel(_tone(1000.0))
    assert spectrum.shape == (32, 128)  # 1 + 16000 // 512 centered frames
    centers = ad_logmel.mel_to_hz(np.linspace(0, ad_logmel.hz_to_mel(8000.0), 130))[1:-1]
    peak = int(np.median(spectrum.argmax(axis=1)))
    assert abs(centers[peak] - 1000.0) < 60.0


def test_vectors_concatenate_five_consecutive_frames():
    clips = np.stack([_tone(440.0), _tone(2500.0)])
    features = ad_logmel.vectors(clips)
    assert features.shape == (2 * 28, 640) and features.dtype == np.float32
    first = features[:28]
    # vector t+1 starts where vector t's second frame is
    assert np.array_equal(first[1:, :128], first[:-1, 128:256])
    assert np.allclose(ad_logmel.vectors(clips[1]), features[28:])


def _noisy_tone(seed=0):
    return _tone(900.0) + np.random.default_rng(seed).normal(0, 0.05, 16_000).astype(np.float32)


def test_twice_the_amplitude_is_six_db_more():
    quiet, loud = ad_logmel.vectors(_noisy_tone()), ad_logmel.vectors(2 * _noisy_tone())
    assert np.allclose(loud - quiet, 20 * np.log10(2.0), atol=1e-3)


def test_int16_samples_are_scaled_like_librosa_load():
    audio = _noisy_tone()
    as_int16 = np.round(audio * 32768).astype(np.int16)
    assert np.allclose(ad_logmel.vectors(as_int16), ad_logmel.vectors(audio), atol=0.05)


def test_bad_audio_is_refused():
    with pytest.raises(KitError, match="at least 2048 samples"):
        ad_logmel.vectors(np.ones((1, 2047), np.int16))
    assert ad_logmel.vectors(np.ones((1, 2048), np.int16)).shape == (1, 640)  # exactly 5 frames: one vector
    with pytest.raises(KitError, match="numeric"):
        ad_logmel.vectors(np.array([["a"] * 2000]))


def test_real_speech_vectors_split_by_clip(shared_data):
    data = ad_logmel.load_data(clips=20, vectors_per_clip=3)
    assert data["x_train"].shape == (30, 640) and data["x_eval"].shape == (30, 640)
    assert data["x_train"].min() > ad_logmel.DIGITAL_SILENCE_DB  # no zero-padding frames
    train_rows = {row.tobytes() for row in data["x_train"]}
    assert not any(row.tobytes() in train_rows for row in data["x_eval"])
    with pytest.raises(KitError, match="clips must be between"):
        ad_logmel.load_data(clips=1)


def test_an_autoencoder_is_judged_as_regression():
    """AD's 640 outputs reconstruct its 640 inputs: SQNR guards, not top-1 agreement over 640 'classes'."""
    from converter.optimize.guards import CLASSIFIER, REGRESSION, task_of

    inputs = np.random.default_rng(0).normal(size=(16, 640)).astype(np.float32)
    assert task_of(inputs * 0.9, None, inputs) == REGRESSION
    assert task_of(inputs * 0.9, None) == CLASSIFIER  # without the inputs, 640 columns look like scores
    assert task_of(np.eye(16, 4), np.arange(16) % 4, inputs) == CLASSIFIER
