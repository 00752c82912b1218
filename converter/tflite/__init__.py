"""Reading, checking and editing .tflite flatbuffers (the tflite layer: nothing here runs a model).

- tflite_model.TfliteModel: the one reader and editor (schema object API): from_bytes, tensors,
  operators, buffers, constant(), consumers(), copy(), add_buffer/add_tensor/opcode_index, compact(),
  to_bytes(aligned=...);
- verify: structural checks every reader runs first; info: read_model/read_graph and their typed
  records; schema: the schema's names and numbers; strip: metadata stripping;
- compression/: LUT, PRUNE and int4 encodings and DECODE insertion.
The deployability check (TFLM's policy) is converter/tflm/deployable.py.
"""
