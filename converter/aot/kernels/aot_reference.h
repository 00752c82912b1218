/* tflm-kit AOT runtime: helpers of the reference kernels (filter element access, requantization). */
#ifndef AOT_REFERENCE_H_
#define AOT_REFERENCE_H_

#include "aot_fixedpoint.h"
#include "aot_kernels.h"

/* Element i of a filter: int8, or int4 packed two per byte, low nibble first. */
static inline int32_t aot_filter_at(const int8_t* f, int32_t i, int s4) {
  if (s4) {
    const uint8_t b = (uint8_t)f[i >> 1];
    return (i & 1) ? (int32_t)((int8_t)b >> 4) : (int32_t)((int8_t)(uint8_t)(b << 4) >> 4);
  }
  return f[i];
}

static inline int8_t aot_requantize(const aot_conv_t* p, int32_t acc, int32_t ch) {
  if (p->bias) acc += p->bias[ch];
  acc = aot_mbqm(acc, p->mult[ch], p->shift[ch]) + p->output_offset;
  return (int8_t)aot_clamp(acc, p->act_min, p->act_max);
}

#endif /* AOT_REFERENCE_H_ */
