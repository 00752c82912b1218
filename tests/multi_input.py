"""The two-input, two-output int8 model in tests/data (two_inputs.tflite, and its float twin
two_inputs.h5): a, b -> (Dense(3)(a + b), Dense(1)(a + b)); operators ADD and FULLY_CONNECTED.

Committed so the default suite does not convert a model; regenerate with
`PYTHONPATH=. python -m tests.multi_input` (TensorFlow's converter may give other bytes).
"""
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
TFLITE, FLOAT_MODEL = DATA / "two_inputs.tflite", DATA / "two_inputs.h5"
SHAPE = (6,)


def write_two_input_model(folder: Path = DATA) -> None:
    from converter.system import tf_env

    keras, tf = tf_env.keras(), tf_env.tensorflow()
    keras.utils.set_random_seed(0)
    a, b = keras.Input(SHAPE, name="a"), keras.Input(SHAPE, name="b")
    total = keras.layers.Add(name="sum")([a, b])
    logits = keras.layers.Dense(3, name="logits")(total)
    mean = keras.layers.Dense(1, name="mean", kernel_initializer="ones", use_bias=False)(total)
    model = keras.Model([a, b], [logits, mean])
    rng = np.random.default_rng(0)

    def calibration():
        for _ in range(32):
            yield [rng.uniform(-1, 1, (1, *SHAPE)).astype(np.float32) for _ in range(2)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (folder / TFLITE.name).write_bytes(converter.convert())
    model.save(folder / FLOAT_MODEL.name)


if __name__ == "__main__":
    write_two_input_model()
