/* tflm-kit AOT runtime: pieces both back-ends use (copies, broadcast ADD, softmax). */
#include "aot_fixedpoint.h"
#include "aot_kernels.h"
#include "aot_reference.h"

void aot_dwconv_reference(const aot_conv_t* p, const int8_t* in, int8_t* out, int s4);
void aot_fc_reference_s16(const aot_fc_t* p, const int16_t* in, int16_t* out);
void aot_add_reference_s16(const aot_add_t* p, const int16_t* in1, const int16_t* in2, int16_t* out);

/* TFLM's reference DEPTHWISE_CONV_2D (int8 or packed int4 filters). */
void aot_dwconv_reference(const aot_conv_t* p, const int8_t* in, int8_t* out, int s4) {
  int32_t b, oy, ox, ic, m, ky, kx;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox)
        for (ic = 0; ic < p->in_c; ++ic)
          for (m = 0; m < p->depth_mult; ++m) {
            const int32_t oc = m + ic * p->depth_mult;
            int32_t acc = 0;
            for (ky = 0; ky < p->k_h; ++ky) {
              const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * ky;
              if (iy < 0 || iy >= p->in_h) continue;
              for (kx = 0; kx < p->k_w; ++kx) {
                const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * kx;
                if (ix < 0 || ix >= p->in_w) continue;
                acc += aot_filter_at(p->filter, (ky * p->k_w + kx) * p->out_c + oc, s4) *
                       (in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic] + p->input_offset);
              }
            }
            out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = aot_requantize(p, acc, oc);
          }
}

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

/* The broadcast walk of ADD and MUL (aot_broadcast_next: PAD too): the offsets into in1 and in2 of the output element
   at `index`, then the next index in row-major order. */
static void aot_broadcast_offsets(int32_t dims, const int32_t* index, const int32_t* stride1, const int32_t* stride2,
                                  int32_t* o1, int32_t* o2) {
  int32_t d;
  *o1 = 0;
  *o2 = 0;
  for (d = 0; d < dims; ++d) {
    *o1 += index[d] * stride1[d];
    *o2 += index[d] * stride2[d];
  }
}

static void aot_broadcast_next(int32_t dims, const int32_t* shape, int32_t* index) {
  int32_t d;
  for (d = dims - 1; d >= 0; --d) {
    if (++index[d] < shape[d]) break;
    index[d] = 0;
  }
}

/* TFLM's reference ADD, elementwise or broadcast over up to six dimensions. */
void aot_add_reference_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out) {
  int32_t index[AOT_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  int32_t i;
  if (p->dims == 0) {
    for (i = 0; i < p->size; ++i) out[i] = aot_add_one(p, in1[i], in2[i]);
    return;
  }
  for (i = 0; i < p->size; ++i) {
    int32_t o1, o2;
    aot_broadcast_offsets(p->dims, index, p->stride1, p->stride2, &o1, &o2);
    out[i] = aot_add_one(p, in1[o1], in2[o2]);
    aot_broadcast_next(p->dims, p->out_shape, index);
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

static int16_t aot_add_one_s16(const aot_add_t* p, int16_t a, int16_t b) {
  const int32_t x1 = (int32_t)((uint32_t)(p->in1_offset + a) << p->left_shift);
  const int32_t x2 = (int32_t)((uint32_t)(p->in2_offset + b) << p->left_shift);
  const int32_t sum = aot_mbqm_small(x1, p->m1, p->s1) + aot_mbqm_small(x2, p->m2, p->s2);
  return (int16_t)aot_clamp(aot_mbqm_small(sum, p->mo, p->so) + p->out_offset, p->act_min, p->act_max);
}

/* TFLM's reference int16 ADD (AddGeneralParamScale: the int8 arithmetic with left shift 15), elementwise or
 * broadcast (BroadcastAdd4DSlow). */
void aot_add_reference_s16(const aot_add_t* p, const int16_t* in1, const int16_t* in2, int16_t* out) {
  int32_t index[AOT_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  int32_t i;
  if (p->dims == 0) {
    for (i = 0; i < p->size; ++i) out[i] = aot_add_one_s16(p, in1[i], in2[i]);
    return;
  }
  for (i = 0; i < p->size; ++i) {
    int32_t o1, o2;
    aot_broadcast_offsets(p->dims, index, p->stride1, p->stride2, &o1, &o2);
    out[i] = aot_add_one_s16(p, in1[o1], in2[o2]);
    aot_broadcast_next(p->dims, p->out_shape, index);
  }
}

void aot_add_s16_broadcast(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch; /* TFLM's cmsis_nn ADD broadcasts on its reference code too */
  aot_add_reference_s16(p, (const int16_t*)(const void*)in1, (const int16_t*)(const void*)in2, (int16_t*)(void*)out);
}

static int8_t aot_mul_one(const aot_mul_t* p, int8_t a, int8_t b) {
  const int32_t product = (p->in1_offset + a) * (p->in2_offset + b);
  return (int8_t)aot_clamp(p->out_offset + aot_mbqm(product, p->mult, p->shift), p->act_min, p->act_max);
}

/* TFLM's reference int8 MUL, elementwise or broadcast. */
void aot_mul_reference_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out) {
  int32_t index[AOT_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  int32_t i;
  if (p->dims == 0) {
    for (i = 0; i < p->size; ++i) out[i] = aot_mul_one(p, in1[i], in2[i]);
    return;
  }
  for (i = 0; i < p->size; ++i) {
    int32_t o1, o2;
    aot_broadcast_offsets(p->dims, index, p->stride1, p->stride2, &o1, &o2);
    out[i] = aot_mul_one(p, in1[o1], in2[o2]);
    aot_broadcast_next(p->dims, p->out_shape, index);
  }
}

void aot_requant_s8(const aot_requant_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i)
    out[i] = (int8_t)aot_clamp(p->out_zp + aot_mbqm(in[i] - p->in_zp, p->mult, p->shift), p->act_min, p->act_max);
}

void aot_clamp_s8(const aot_clamp_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) out[i] = (int8_t)aot_clamp(in[i], p->lo, p->hi);
}

void aot_pad_s8(const aot_pad_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t index[AOT_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  int32_t i, d;
  (void)scratch;
  for (i = 0; i < p->size; ++i) {
    int32_t offset = 0, inside = 1;
    for (d = 0; d < p->dims; ++d) {
      const int32_t at = index[d] - p->before[d];
      if (at < 0 || at >= p->in_shape[d]) inside = 0;
      offset = offset * p->in_shape[d] + at;
    }
    out[i] = inside ? in[offset] : (int8_t)p->pad_value;
    aot_broadcast_next(p->dims, p->out_shape, index);
  }
}

void aot_concat_s8(const aot_concat_t* p, const int8_t* const* ins, int8_t* out, void* scratch) {
  int32_t row, k, j;
  (void)scratch;
  for (row = 0; row < p->outer; ++row)
    for (k = 0; k < p->count; ++k) {
      const int8_t* from = ins[k] + row * p->sizes[k];
      for (j = 0; j < p->sizes[k]; ++j) *out++ = from[j];
    }
}

/* TFLM's reference int8 LOGISTIC. */
void aot_logistic_s8(const aot_logistic_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    if (x <= -p->radius) {
      out[i] = -128;
    } else if (x >= p->radius) {
      out[i] = 127;
    } else {
      const int32_t q4 = aot_mbqm(x, p->mult, p->left_shift);
      const int32_t q23 = aot_rdpot(aot_logistic_q4(q4), 23) - 128;
      out[i] = (int8_t)aot_clamp(q23, -128, 127);
    }
  }
}

/* TFLM's reference int8 TANH. */
void aot_tanh_s8(const aot_logistic_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    if (x <= -p->radius) {
      out[i] = -128;
    } else if (x >= p->radius) {
      out[i] = 127;
    } else {
      const int32_t q4 = aot_mbqm(x, p->mult, p->left_shift);
      out[i] = (int8_t)aot_clamp(aot_rdpot(aot_tanh_q4(q4), 24), -128, 127);
    }
  }
}

/* 16-bit gemmlowp pieces of TFLM's reference HARD_SWISH. */
static int16_t aot_srdhm16(int16_t a, int16_t b) {
  const int32_t ab = (int32_t)a * (int32_t)b;
  if (a == b && a == INT16_MIN) return INT16_MAX;
  return (int16_t)((ab + (ab >= 0 ? (1 << 14) : (1 - (1 << 14)))) / (1 << 15));
}

static int16_t aot_sdhm16(int16_t a, int16_t b) {  /* no rounding */
  if (a == b && a == INT16_MIN) return INT16_MAX;
  return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static int16_t aot_sat_shl16(int16_t v, int amount) {
  const int64_t r = (int64_t)v * ((int64_t)1 << amount);
  return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

void aot_hard_swish_s8(const aot_hard_swish_t* p, const int8_t* in, int8_t* out, void* scratch) {
  int32_t i;
  (void)scratch;
  for (i = 0; i < p->size; ++i) {
    const int16_t x = (int16_t)(in[i] - p->in_zp);
    const int16_t hires = (int16_t)(x * (1 << 7));
    const int16_t preshift = aot_srdhm16(hires, (int16_t)p->out_mult16);
    int16_t relu = hires, value;
    if (p->relu_exp > 0) relu = aot_sat_shl16(relu, p->relu_exp - 1);
    relu = aot_srdhm16(relu, (int16_t)p->relu_mult16);
    if (p->relu_exp > 0) relu = aot_sat_shl16(relu, 1);
    if (p->relu_exp < 0) relu = (int16_t)aot_rdpot(relu, -p->relu_exp);
    relu = (int16_t)((relu + (1 << 15)) >> 1);
    value = (int16_t)aot_rdpot(aot_sdhm16(relu, preshift), -p->out_exp);
    value = (int16_t)(value + p->out_zp);
    out[i] = (int8_t)aot_clamp(value, -128, 127);
  }
}

/* TFLM's reference MEAN (QuantizedMeanOrSum<int8_t or int16_t, int32_t>): sums per output in scratch, then one
 * rescale with 1/count folded into the multiplier, clamped to the type's range. */
static void aot_mean(const aot_mean_t* p, const void* in, int s16, void* out, int32_t* sums) {
  int32_t index[AOT_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  int32_t i, d;
  for (i = 0; i < p->out_size; ++i) sums[i] = 0;
  for (i = 0; i < p->size; ++i) {
    int32_t o = 0;
    for (d = 0; d < p->dims; ++d) o += index[d] * p->out_stride[d];
    sums[o] += s16 ? ((const int16_t*)in)[i] : ((const int8_t*)in)[i];
    for (d = p->dims - 1; d >= 0; --d) {
      if (++index[d] < p->in_shape[d]) break;
      index[d] = 0;
    }
  }
  for (i = 0; i < p->out_size; ++i) {
    const int32_t v = aot_mbqm(sums[i] - p->in_zp * p->count, p->mult, p->shift) + p->out_zp;
    if (s16)
      ((int16_t*)out)[i] = (int16_t)aot_clamp(v, -32768, 32767);
    else
      ((int8_t*)out)[i] = (int8_t)aot_clamp(v, -128, 127);
  }
}

void aot_mean_s8(const aot_mean_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_mean(p, in, 0, out, (int32_t*)scratch);
}

void aot_mean_s16(const aot_mean_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_mean(p, in, 1, out, (int32_t*)scratch);
}

/* int16x8 FULLY_CONNECTED, TFLM's reference (FullyConnected / FullyConnectedPerChannel with int64 biases):
 * int64 accumulator, the 64-bit MultiplyByQuantizedMultiplier. Per channel the filter offset is not applied
 * (TFLM's per-channel reference ignores it; it is 0). Both back-ends run it per channel: TFLM's cmsis_nn
 * FULLY_CONNECTED refuses int16 per channel at Prepare, CMSIS-NN has no such kernel. */
void aot_fc_reference_s16(const aot_fc_t* p, const int16_t* in, int16_t* out) {
  const int64_t* bias = (const int64_t*)(const void*)p->bias;
  int32_t b, oc, d;
  for (b = 0; b < p->batches; ++b)
    for (oc = 0; oc < p->out_c; ++oc) {
      const int32_t q = p->per_channel ? oc : 0;
      const int32_t filter_offset = p->per_channel ? 0 : p->filter_offset;
      int64_t acc = 0;
      for (d = 0; d < p->accum_depth; ++d)
        acc += (int64_t)((p->filter[oc * p->accum_depth + d] + filter_offset) *
                         ((int32_t)in[b * p->accum_depth + d] + p->input_offset));
      if (bias) acc += bias[oc];
      out[b * p->out_c + oc] =
          (int16_t)aot_clamp(aot_mbqm64(acc, p->mult[q], p->shift[q]) + p->output_offset, p->act_min, p->act_max);
    }
}

void aot_fc_s16_per_channel(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_fc_reference_s16(p, (const int16_t*)(const void*)in, (int16_t*)(void*)out);
}

/* LUTLookup: 9 bits index the table, 7 interpolate. */
static int16_t aot_lut16(int16_t value, const int16_t* lut) {
  const uint16_t index = (uint16_t)(256 + (value >> 7));
  const int16_t offset = (int16_t)(value & 0x7f);
  const int16_t base = lut[index];
  const int16_t slope = (int16_t)(lut[index + 1] - lut[index]);
  const int32_t delta = (slope * offset + 64) >> 7;
  return (int16_t)(base + delta);
}

static int16_t aot_sat16(int32_t v) {
  return (int16_t)aot_clamp(v, -32768, 32767);
}

/* reference_ops::SoftmaxInt16: exp and 1/(1+x) through the tables, exps cached in the output row. Both
 * back-ends run it: CMSIS-NN's arm_softmax_s16 (TFLM's cmsis_nn SOFTMAX for int16) does not clamp its result,
 * so a probability that rounds to 1.0 (32768) wraps to -32768 (measured: a one-element row, or one logit far
 * above the others), where TFLM's reference kernel, the golden vectors' runtime, gives 32767. */
void aot_softmax_s16(const aot_softmax16_t* p, const int8_t* in8, int8_t* out8, void* scratch) {
  const int16_t* in = (const int16_t*)(const void*)in8;
  int16_t* out = (int16_t*)(void*)out8;
  int32_t r, c;
  (void)scratch;
  for (r = 0; r < p->rows; ++r) {
    const int16_t* row = in + r * p->depth;
    int16_t* exps = out + r * p->depth;
    int32_t max_in_row = -32768, sum = 0, shifted, right_shift;
    int headroom = 0;
    int16_t reciprocal;
    for (c = 0; c < p->depth; ++c) max_in_row = row[c] > max_in_row ? row[c] : max_in_row;
    for (c = 0; c < p->depth; ++c) {
      const int32_t scaled = aot_mbqm((int32_t)row[c] - max_in_row, p->mult, p->left_shift);
      exps[c] = aot_lut16(aot_sat16(scaled + 32767), p->exp_lut);
      sum += exps[c];
    }
    while (headroom < 32 && !(((uint32_t)sum << headroom) & 0x80000000u)) ++headroom;  /* CountLeadingZeros */
    shifted = (int32_t)((((int64_t)sum << (headroom - 1)) + (1 << 13)) >> 14);
    reciprocal = aot_lut16(aot_sat16(shifted - ((1 << 15) + (1 << 16))), p->one_by_one_lut);
    right_shift = 31 - headroom;
    for (c = 0; c < p->depth; ++c) {
      const int64_t round = (int64_t)1 << (right_shift - 1);
      const int32_t result = (int32_t)(((int64_t)exps[c] * (int64_t)reciprocal + round) >> right_shift);
      exps[c] = (int16_t)aot_clamp(result, 0, 32767);
    }
  }
}
