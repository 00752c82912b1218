/* tflm-kit AOT runtime: TFLM_DECODE's LUT and PRUNE decoders (converter/aot/decode.py reads the
 * encodings' headers at generation time). The same bytes as TFLM's DecodeStateLut / DecodeStatePrune:
 * values are copied byte for byte (elem_bytes each, little-endian as in the flatbuffer). */
#include "aot_kernels.h"

/* Element i's index: bits [i*bits, (i+1)*bits) of the indices, most significant bit first (at most 14 bits
 * from the byte holding the first one: two bytes, the array ends with a zero byte). */
static uint32_t aot_lut_index(const uint8_t* indices, uint32_t at, uint32_t bits) {
  const uint8_t* two = indices + (at >> 3);
  return ((((uint32_t)two[0] << 8) | two[1]) >> (16u - (at & 7u) - bits)) & ((1u << bits) - 1u);
}

void aot_decode_lut(const aot_lut_t* p, int8_t* out, void* scratch) {
  const uint32_t bits = (uint32_t)p->bits, size = (uint32_t)p->elem_bytes;
  const uint32_t table_bytes = (uint32_t)p->stride * size;
  int32_t i, j;
  uint32_t at = 0, b, channel = 0;
  (void)scratch;
  /* runs of `run` elements share a table: the next channel's (wrapping after the last) */
  for (i = 0; i < p->count; i += p->run) {
    const uint8_t* table = p->table + channel * table_bytes;
    if (size == 1) {
      for (j = 0; j < p->run; ++j, at += bits) *out++ = (int8_t)table[aot_lut_index(p->indices, at, bits)];
    } else {
      for (j = 0; j < p->run; ++j, at += bits) {
        const uint8_t* value = table + aot_lut_index(p->indices, at, bits) * size;
        for (b = 0; b < size; ++b) *out++ = (int8_t)value[b];
      }
    }
    if (++channel == (uint32_t)p->channels) channel = 0;
  }
}

void aot_decode_prune(const aot_prune_t* p, int8_t* out, void* scratch) {
  const uint8_t* value = p->values;
  const int32_t size = p->elem_bytes;
  int32_t i, j, b, channel = 0;
  (void)scratch;
  for (i = 0; i < p->count; i += p->run) {
    const int8_t zero = p->zero_points[channel];  /* int8; wider types have zero point 0 */
    for (j = i; j < i + p->run; ++j) {
      if ((p->mask[j >> 3] >> (7 - (j & 7))) & 1) {
        for (b = 0; b < size; ++b) *out++ = (int8_t)*value++;
      } else {
        *out++ = zero;
        for (b = 1; b < size; ++b) *out++ = 0;
      }
    }
    if (++channel == p->channels) channel = 0;
  }
}

/* DEQUANTIZE: TFLM computes float(double(scale) * (x - zp)); x - zp has at most 17 bits and the scale 24, so
 * the double product is exact and its one rounding to float is float32's correctly rounded product. */
typedef union {
  float f;
  uint8_t b[4];
} aot_float_bytes;

static void aot_put_float(int8_t* out, float value) {
  aot_float_bytes u;
  int k;
  u.f = value;
  for (k = 0; k < 4; ++k) out[k] = (int8_t)u.b[k];
}

void aot_dequantize_s8(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) aot_put_float(out + 4 * i, p->scale * (float)((int32_t)in[i] - p->zero_point));
}

void aot_dequantize_s16(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch) {
  const uint8_t* bytes = (const uint8_t*)in;
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) {
    const int16_t x = (int16_t)(uint16_t)(bytes[2 * i] | (bytes[2 * i + 1] << 8));  /* little-endian */
    aot_put_float(out + 4 * i, p->scale * (float)((int32_t)x - p->zero_point));
  }
}

/* QUANTIZE float32 -> int8/int16 (AffineQuantize): round(x / scale) half away from zero (std::round on a
 * float, without libm: below 2^23 the fraction x - trunc(x) is exact), + zero point, clamped to [lo, hi]. */
static int32_t aot_quantize_one(const aot_dequantize_t* p, const int8_t* in, int32_t lo, int32_t hi) {
  aot_float_bytes u;
  float q;
  int32_t r, k;
  for (k = 0; k < 4; ++k) u.b[k] = (uint8_t)in[k];
  q = u.f / p->scale;
  if (!(q > -2147483648.0f)) {
    r = INT32_MIN;                          /* and NaN: x86's conversion gives the same */
  } else if (q >= 2147483648.0f) {
    r = INT32_MAX;                          /* Cortex-M's conversions saturate */
  } else if (q > -8388608.0f && q < 8388608.0f) {
    const float whole = (float)(int32_t)q;
    r = (int32_t)q;
    if (q - whole >= 0.5f) r += 1;
    if (q - whole <= -0.5f) r -= 1;
  } else {
    r = (int32_t)q;                         /* already an integer */
  }
  r = (r > INT32_MAX - 32768 || r < INT32_MIN + 32768) ? (r < 0 ? lo : hi) : r + p->zero_point;
  return r < lo ? lo : (r > hi ? hi : r);
}

void aot_quantize_f32(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) out[i] = (int8_t)aot_quantize_one(p, in + 4 * i, -128, 127);
}

void aot_quantize_f32_s16(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) {
    const uint16_t v = (uint16_t)(int16_t)aot_quantize_one(p, in + 4 * i, -32768, 32767);
    out[2 * i] = (int8_t)(v & 0xFF);          /* little-endian, no alignment assumed */
    out[2 * i + 1] = (int8_t)(v >> 8);
  }
}
