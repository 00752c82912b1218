/* tflm-kit AOT runtime: TFLM_DECODE's LUT and PRUNE decoders (converter/aot/decode.py reads the
 * encodings' headers at generation time). The same bytes as TFLM's DecodeStateLut / DecodeStatePrune:
 * values are copied byte for byte (elem_bytes each, little-endian as in the flatbuffer). */
#include "aot_kernels.h"

void aot_decode_lut(const aot_lut_t* p, int8_t* out, void* scratch) {
  const uint32_t bits = (uint32_t)p->bits, mask = (1u << bits) - 1u;
  const int32_t size = p->elem_bytes;
  int32_t i, b, channel = 0, k = 0;
  uint32_t at = 0;  /* bit position of element i's index */
  (void)scratch;
  for (i = 0; i < p->count; ++i, at += bits) {
    const uint8_t* two = p->indices + (at >> 3);
    const uint32_t index = ((((uint32_t)two[0] << 8) | two[1]) >> (16u - (at & 7u) - bits)) & mask;
    const uint8_t* value = p->table + ((uint32_t)channel * (uint32_t)p->stride + index) * (uint32_t)size;
    for (b = 0; b < size; ++b) *out++ = (int8_t)value[b];
    if (++k == p->run) {
      k = 0;
      if (++channel == p->channels) channel = 0;
    }
  }
}

void aot_decode_prune(const aot_prune_t* p, int8_t* out, void* scratch) {
  const uint8_t* value = p->values;
  const int32_t size = p->elem_bytes;
  int32_t i, b, channel = 0, k = 0;
  (void)scratch;
  for (i = 0; i < p->count; ++i) {
    if ((p->mask[i >> 3] >> (7 - (i & 7))) & 1) {
      for (b = 0; b < size; ++b) *out++ = (int8_t)*value++;
    } else {
      *out++ = p->zero_points[channel];  /* int8, or 0 then 0 bytes for wider types (zero point 0) */
      for (b = 1; b < size; ++b) *out++ = 0;
    }
    if (++k == p->run) {
      k = 0;
      if (++channel == p->channels) channel = 0;
    }
  }
}
