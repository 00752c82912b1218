"""Reading, checking and editing .tflite flatbuffers."""
