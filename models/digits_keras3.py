"""The bundled digit CNN built with Keras 3 (`import keras`, the Keras TensorFlow 2.21 installs).

The same layers as models/digits.py: a Keras 3 model takes the train stage, post-training
quantization and every flatbuffer stage (models/recipes/keras3_digits.yaml); TF-MOT's stages
(prune, cluster, qat) take Keras 2 models only and are refused for it.
"""


def build_model(filters: int = 8):
    """Untrained Keras 3 model: CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX."""
    import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        layers.Conv2D(filters, 3, activation="relu", name="conv"),
        layers.DepthwiseConv2D(3, activation="relu", name="depthwise"),
        layers.Conv2D(2 * filters, 1, activation="relu", name="pointwise"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(10, name="logits"),
        layers.Softmax(name="probabilities"),
    ], name="digits_keras3")
