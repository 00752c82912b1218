/* tflm-kit AOT runtime: pieces both back-ends use (copies, broadcast ADD, softmax). */
#include "aot_fixedpoint.h"
#include "aot_kernels.h"

void aot_copy(const void* from, void* to, size_t bytes) {
  const uint8_t* src = (const uint8_t*)from;
  uint8_t* dst = (uint8_t*)to;
  size_t i;
  if (src == dst) return;
  for (i = 0; i < bytes; ++i) dst[i] = src[i];
}

static int8_t aot_add_one(const aot_add_t* p, int8_t a, int8_t b) {
  const int32_t x1 = (int32_t)((uint32_t)(p->in1_offset + a) << p->left_shift);
  const int32_t x2 = (int32_t)((uint32_t)(p->in2_offset + b) << p->left_shift);
  const int32_t sum = aot_mbqm_small(x1, p->m1, p->s1) + aot_mbqm_small(x2, p->m2, p->s2);
  const int32_t out = aot_mbqm_small(sum, p->mo, p->so) + p->out_offset;
  return (int8_t)aot_clamp(out, p->act_min, p->act_max);
}

/* TFLM's reference ADD, elementwise or broadcast over up to six dimensions. */
void aot_add_reference_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out) {
  int32_t index[AOT_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  int32_t i, d;
  if (p->dims == 0) {
    for (i = 0; i < p->size; ++i) out[i] = aot_add_one(p, in1[i], in2[i]);
    return;
  }
  for (i = 0; i < p->size; ++i) {
    int32_t o1 = 0, o2 = 0;
    for (d = 0; d < p->dims; ++d) {
      o1 += index[d] * p->stride1[d];
      o2 += index[d] * p->stride2[d];
    }
    out[i] = aot_add_one(p, in1[o1], in2[o2]);
    for (d = p->dims - 1; d >= 0; --d) {
      if (++index[d] < p->out_shape[d]) break;
      index[d] = 0;
    }
  }
}

/* TFLM's reference int8 softmax (gemmlowp fixed point, Q5.26 differences, Q12.19 sums). */
void aot_softmax_reference_s8(const aot_softmax_t* p, const int8_t* in, int8_t* out) {
  int32_t r, c;
  for (r = 0; r < p->rows; ++r) {
    const int8_t* row = in + r * p->depth;
    int8_t* orow = out + r * p->depth;
    int32_t max_in_row = -128, sum = 0, scale;
    int bits_over_unit, exponent;
    for (c = 0; c < p->depth; ++c) max_in_row = row[c] > max_in_row ? row[c] : max_in_row;
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)row[c] - max_in_row;
      if (diff >= p->diff_min) {
        sum += aot_rdpot(aot_exp_negative(aot_mbqm(diff, p->mult, p->left_shift)), 12);
      }
    }
    scale = aot_reciprocal(sum, 12, &bits_over_unit);
    exponent = bits_over_unit + 31 - 8;
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)row[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t e = aot_exp_negative(aot_mbqm(diff, p->mult, p->left_shift));
        const int32_t v = aot_rdpot(aot_srdhm(scale, e), exponent) - 128;
        orow[c] = (int8_t)aot_clamp(v, -128, 127);
      } else {
        orow[c] = -128;
      }
    }
  }
}
