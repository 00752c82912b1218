/* tflm-kit AOT runtime: portable C99 kernels, bit-exact to TFLM's reference kernels.
 * Compiled unless AOT_CMSIS_NN is defined. */
#ifndef AOT_CMSIS_NN
#include "aot_fixedpoint.h"
#include "aot_kernels.h"
#include "aot_reference.h"

void aot_add_reference_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out);
void aot_softmax_reference_s8(const aot_softmax_t* p, const int8_t* in, int8_t* out);
void aot_mul_reference_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out);
void aot_dwconv_reference(const aot_conv_t* p, const int8_t* in, int8_t* out, int s4);

static void aot_conv(const aot_conv_t* p, const int8_t* in, int8_t* out, int s4) {
  const int32_t groups = p->in_c / p->filter_in_c;
  const int32_t per_group = p->out_c / groups;
  int32_t b, oy, ox, oc, ky, kx, ic;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox)
        for (oc = 0; oc < p->out_c; ++oc) {
          const int32_t g = oc / per_group;
          int32_t acc = 0;
          for (ky = 0; ky < p->k_h; ++ky) {
            const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * ky;
            if (iy < 0 || iy >= p->in_h) continue;
            for (kx = 0; kx < p->k_w; ++kx) {
              const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * kx;
              const int8_t* px;
              int32_t f0;
              if (ix < 0 || ix >= p->in_w) continue;
              px = in + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c + g * p->filter_in_c;
              f0 = ((oc * p->k_h + ky) * p->k_w + kx) * p->filter_in_c;
              for (ic = 0; ic < p->filter_in_c; ++ic)
                acc += aot_filter_at(p->filter, f0 + ic, s4) * (px[ic] + p->input_offset);
            }
          }
          out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = aot_requantize(p, acc, oc);
        }
}

static void aot_fc(const aot_fc_t* p, const int8_t* in, int8_t* out, int s4) {
  int32_t b, oc, d;
  for (b = 0; b < p->batches; ++b)
    for (oc = 0; oc < p->out_c; ++oc) {
      const int32_t q = p->per_channel ? oc : 0;
      int32_t acc = 0;
      for (d = 0; d < p->accum_depth; ++d)
        acc += (aot_filter_at(p->filter, oc * p->accum_depth + d, s4) + p->filter_offset) *
               (in[b * p->accum_depth + d] + p->input_offset);
      if (p->bias) acc += p->bias[oc];
      acc = aot_mbqm(acc, p->mult[q], p->shift[q]) + p->output_offset;
      out[b * p->out_c + oc] = (int8_t)aot_clamp(acc, p->act_min, p->act_max);
    }
}

void aot_conv_s8(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_conv(p, in, out, 0);
}
void aot_conv_s4(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_conv(p, in, out, 1);
}
void aot_dwconv_s8(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_dwconv_reference(p, in, out, 0);
}
void aot_dwconv_s4(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_dwconv_reference(p, in, out, 1);
}
void aot_fc_s8(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_fc(p, in, out, 0);
}
void aot_fc_s4(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_fc(p, in, out, 1);
}

/* Window of output (oy, ox) clipped to the image: [*y0, *y1) x [*x0, *x1) in filter coordinates. */
static void aot_window(const aot_pool_t* p, int32_t oy, int32_t ox, int32_t* y0, int32_t* y1, int32_t* x0,
                       int32_t* x1) {
  const int32_t iy = oy * p->stride_h - p->pad_h, ix = ox * p->stride_w - p->pad_w;
  *y0 = iy < 0 ? -iy : 0;
  *y1 = p->k_h < p->in_h - iy ? p->k_h : p->in_h - iy;
  *x0 = ix < 0 ? -ix : 0;
  *x1 = p->k_w < p->in_w - ix ? p->k_w : p->in_w - ix;
}

/* reference_integer_ops::AveragePool / MaxPool, one body for both widths: T is int8_t or int16_t, LOWEST its
 * minimum (max pool's starting value). */
#define AOT_POOL(NAME, T, LOWEST)                                                                                  \
  static void NAME(const aot_pool_t* p, const T* in, T* out, int average) {                                     \
    int32_t b, oy, ox, c, y, x, y0, y1, x0, x1;                                                                   \
    for (b = 0; b < p->batches; ++b)                                                                              \
      for (oy = 0; oy < p->out_h; ++oy)                                                                           \
        for (ox = 0; ox < p->out_w; ++ox) {                                                                       \
          const int32_t iy = oy * p->stride_h - p->pad_h, ix = ox * p->stride_w - p->pad_w;                       \
          aot_window(p, oy, ox, &y0, &y1, &x0, &x1);                                                              \
          for (c = 0; c < p->ch; ++c) {                                                                           \
            int32_t acc = average ? 0 : (LOWEST), count = 0;                                                      \
            for (y = y0; y < y1; ++y)                                                                             \
              for (x = x0; x < x1; ++x) {                                                                         \
                const int32_t v = in[((b * p->in_h + iy + y) * p->in_w + ix + x) * p->ch + c];                   \
                if (average) acc += v;                                                                            \
                else acc = v > acc ? v : acc;                                                                     \
                ++count;                                                                                          \
              }                                                                                                   \
            if (average) {                                                                                        \
              if (count == 0) return; /* TFLM's reference kernel stops here too */                                \
              acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;                              \
            }                                                                                                     \
            out[((b * p->out_h + oy) * p->out_w + ox) * p->ch + c] = (T)aot_clamp(acc, p->act_min, p->act_max); \
          }                                                                                                       \
        }                                                                                                         \
  }

AOT_POOL(aot_pool, int8_t, -128)

void aot_avgpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_pool(p, in, out, 1);
}
void aot_maxpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_pool(p, in, out, 0);
}
void aot_softmax_s8(const aot_softmax_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_softmax_reference_s8(p, in, out);
}
void aot_add_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  aot_add_reference_s8(p, in1, in2, out);
}
void aot_mul_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  aot_mul_reference_s8(p, in1, in2, out);
}
/* The per-layer entry points the generator chooses for CMSIS-NN (aot_kernels.h): here every one runs the
 * same generic kernel, so a generated model builds on either back-end. */
#define AOT_PORTABLE_AS(name, type, generic) \
  void name(const type* p, const int8_t* in, int8_t* out, void* scratch) { generic(p, in, out, scratch); }
AOT_PORTABLE_AS(aot_conv_s8_1x1_fast, aot_conv_t, aot_conv_s8)
AOT_PORTABLE_AS(aot_conv_s8_1x1, aot_conv_t, aot_conv_s8)
AOT_PORTABLE_AS(aot_conv_s8_1xn, aot_conv_t, aot_conv_s8)
AOT_PORTABLE_AS(aot_conv_s8_generic, aot_conv_t, aot_conv_s8)
AOT_PORTABLE_AS(aot_conv_s4_1x1_fast, aot_conv_t, aot_conv_s4)
AOT_PORTABLE_AS(aot_conv_s4_1x1, aot_conv_t, aot_conv_s4)
AOT_PORTABLE_AS(aot_conv_s4_1xn, aot_conv_t, aot_conv_s4)
AOT_PORTABLE_AS(aot_conv_s4_generic, aot_conv_t, aot_conv_s4)
AOT_PORTABLE_AS(aot_dwconv_s8_3x3, aot_conv_t, aot_dwconv_s8)
AOT_PORTABLE_AS(aot_dwconv_s8_opt, aot_conv_t, aot_dwconv_s8)
AOT_PORTABLE_AS(aot_dwconv_s8_generic, aot_conv_t, aot_dwconv_s8)
AOT_PORTABLE_AS(aot_dwconv_s4_opt, aot_conv_t, aot_dwconv_s4)
AOT_PORTABLE_AS(aot_dwconv_s4_generic, aot_conv_t, aot_dwconv_s4)
AOT_PORTABLE_AS(aot_fc_s8_per_tensor, aot_fc_t, aot_fc_s8)
AOT_PORTABLE_AS(aot_fc_s8_per_channel, aot_fc_t, aot_fc_s8)
AOT_PORTABLE_AS(aot_softmax_s8_small, aot_softmax_t, aot_softmax_s8)
void aot_add_s8_elementwise(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  aot_add_s8(p, in1, in2, out, scratch);
}
void aot_add_s8_broadcast(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  aot_add_s8(p, in1, in2, out, scratch);
}
void aot_mul_s8_elementwise(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  aot_mul_s8(p, in1, in2, out, scratch);
}
void aot_mul_s8_broadcast(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  aot_mul_s8(p, in1, in2, out, scratch);
}

/* ---- int16x8: TFLM's reference kernels (int64 accumulators and biases, 64-bit requantization) ---- */
void aot_fc_reference_s16(const aot_fc_t* p, const int16_t* in, int16_t* out);

static int16_t aot_requantize_s16(const aot_conv_t* p, int64_t acc, int32_t ch) {
  const int64_t* bias = (const int64_t*)(const void*)p->bias;
  if (bias) acc += bias[ch];
  return (int16_t)aot_clamp(aot_mbqm64(acc, p->mult[ch], p->shift[ch]) + p->output_offset, p->act_min, p->act_max);
}

/* reference_integer_ops::ConvPerChannel<int64_t> (int16 input; grouped convolutions are refused). */
void aot_conv_s16(const aot_conv_t* p, const int8_t* in8, int8_t* out8, void* scratch) {
  const int16_t* in = (const int16_t*)(const void*)in8;
  int16_t* out = (int16_t*)(void*)out8;
  int32_t b, oy, ox, oc, ky, kx, ic;
  (void)scratch;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox)
        for (oc = 0; oc < p->out_c; ++oc) {
          int64_t acc = 0;
          for (ky = 0; ky < p->k_h; ++ky) {
            const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * ky;
            if (iy < 0 || iy >= p->in_h) continue;
            for (kx = 0; kx < p->k_w; ++kx) {
              const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * kx;
              const int16_t* px;
              const int8_t* f;
              if (ix < 0 || ix >= p->in_w) continue;
              px = in + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c;
              f = p->filter + ((oc * p->k_h + ky) * p->k_w + kx) * p->filter_in_c;
              for (ic = 0; ic < p->filter_in_c; ++ic) acc += (int64_t)((int32_t)f[ic] * (int32_t)px[ic]);
            }
          }
          out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = aot_requantize_s16(p, acc, oc);
        }
}

/* reference_integer_ops::DepthwiseConvPerChannel (int16 input, int64 bias). */
void aot_dwconv_s16(const aot_conv_t* p, const int8_t* in8, int8_t* out8, void* scratch) {
  const int16_t* in = (const int16_t*)(const void*)in8;
  int16_t* out = (int16_t*)(void*)out8;
  int32_t b, oy, ox, ic, m, ky, kx;
  (void)scratch;
  for (b = 0; b < p->batches; ++b)
    for (oy = 0; oy < p->out_h; ++oy)
      for (ox = 0; ox < p->out_w; ++ox)
        for (ic = 0; ic < p->in_c; ++ic)
          for (m = 0; m < p->depth_mult; ++m) {
            const int32_t oc = m + ic * p->depth_mult;
            int64_t acc = 0;
            for (ky = 0; ky < p->k_h; ++ky) {
              const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * ky;
              if (iy < 0 || iy >= p->in_h) continue;
              for (kx = 0; kx < p->k_w; ++kx) {
                const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * kx;
                if (ix < 0 || ix >= p->in_w) continue;
                acc += (int64_t)((int32_t)p->filter[(ky * p->k_w + kx) * p->out_c + oc] *
                                 (int32_t)in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic]);
              }
            }
            out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = aot_requantize_s16(p, acc, oc);
          }
}

void aot_add_reference_s16(const aot_add_t* p, const int16_t* in1, const int16_t* in2, int16_t* out);
void aot_add_s16_elementwise(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  aot_add_reference_s16(p, (const int16_t*)(const void*)in1, (const int16_t*)(const void*)in2, (int16_t*)(void*)out);
}

void aot_fc_s16_per_tensor(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_fc_reference_s16(p, (const int16_t*)(const void*)in, (int16_t*)(void*)out);
}

AOT_POOL(aot_pool_s16, int16_t, -32768)

void aot_avgpool_s16(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_pool_s16(p, (const int16_t*)(const void*)in, (int16_t*)(void*)out, 1);
}
void aot_maxpool_s16(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  aot_pool_s16(p, (const int16_t*)(const void*)in, (int16_t*)(void*)out, 0);
}

#endif /* AOT_CMSIS_NN */
