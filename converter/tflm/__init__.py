"""TensorFlow Lite Micro as the golden runtime: operator support, runners (TFLM, LiteRT), arena, isolation."""
