"""Compression of a quantized flatbuffer's constant tensors, decoded by TFLM.

- candidates.py: which constant tensors may be compressed at all, and why others may not;
- lut.py: LUT planning (index width, layout, bytes) and encoding with TFLM's own compressor;
- prune.py: the PRUNE encoder (bitmask + kept values) for TFLM's DECODE PRUNE decoder;
- int4.py: 4-bit requantization of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED filters and
  packing them as INT4 tensors;
- decode_insert.py: the DECODE container: encoded + ancillary tensors and a TFLM_DECODE operator
  in front of each consumer;
- plan.py: per tensor, the smallest enabled encoding.

Verification (TFLM outputs byte-identical before and after) runs in stages/compress.py: it needs
the TFLM runner, a layer above this one.
"""
