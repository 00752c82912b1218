/* tflm-kit AOT runtime: the kernel interface the generated model code calls.
 * Two back-ends implement it: aot_kernels_portable.c (plain C99, the default) and
 * aot_kernels_cmsis.c (direct CMSIS-NN calls, with -DAOT_CMSIS_NN). Every parameter is
 * precomputed by the generator exactly as TFLM's Prepare computes it. */
#ifndef AOT_KERNELS_H_
#define AOT_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define AOT_ALIGN16 __attribute__((aligned(16)))
#else
#define AOT_ALIGN16
#endif

/* CONV_2D and DEPTHWISE_CONV_2D (NHWC input, OHWI / 1HWO filters). */
typedef struct {
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, filter_in_c, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t depth_mult;                      /* depthwise only */
  int32_t input_offset, output_offset, act_min, act_max;
  const int8_t* filter;                    /* int8, or int4 packed two per byte (low nibble first) */
  const int32_t* bias;                     /* NULL when the operator has none */
  const int32_t* mult;                     /* per output channel */
  const int32_t* shift;
} aot_conv_t;

/* FULLY_CONNECTED: rows of accum_depth inputs, out_c outputs each. */
typedef struct {
  int32_t batches, accum_depth, out_c;
  int32_t input_offset, filter_offset, output_offset, act_min, act_max;
  int32_t per_channel;                     /* 0: mult[0], shift[0] for every channel */
  const int8_t* filter;
  const int32_t* bias;
  const int32_t* mult;
  const int32_t* shift;
} aot_fc_t;

/* AVERAGE_POOL_2D and MAX_POOL_2D. */
typedef struct {
  int32_t batches, in_h, in_w, ch, out_h, out_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w;
  int32_t act_min, act_max;
} aot_pool_t;

/* SOFTMAX, int8 in, int8 out (zero point -128, scale 1/256). */
typedef struct {
  int32_t rows, depth, mult, left_shift, diff_min;
} aot_softmax_t;

/* SOFTMAX int16 -> int16 (zero points 0, output scale 1/32768): TFLM's exp and 1/(1+x) tables, 513
 * entries each (the generator computes them as TFLM's Prepare does: converter/aot/lower.py). */
typedef struct {
  int32_t rows, depth, mult, left_shift;
  const int16_t* exp_lut;
  const int16_t* one_by_one_lut;
} aot_softmax16_t;

#define AOT_MAX_DIMS 6
/* ADD (and its broadcast): strides are 0 along broadcast dimensions. */
typedef struct {
  int32_t size, dims;                      /* dims == 0: same shape, elementwise over size */
  int32_t out_shape[AOT_MAX_DIMS], stride1[AOT_MAX_DIMS], stride2[AOT_MAX_DIMS];
  int32_t in1_offset, in2_offset, out_offset, left_shift;
  int32_t m1, s1, m2, s2, mo, so;
  int32_t act_min, act_max;
} aot_add_t;

/* RELU and QUANTIZE (int8 -> int8): out = out_zp + x*(in_scale/out_scale), clamped. */
typedef struct {
  int32_t size, in_zp, out_zp, mult, shift, act_min, act_max;
} aot_requant_t;

/* RELU6 (TFLM clamps in the input's quantization: no rescale). */
typedef struct {
  int32_t size, lo, hi;
} aot_clamp_t;

/* MUL (elementwise or broadcast; strides as aot_add_t). */
typedef struct {
  int32_t size, dims;
  int32_t out_shape[AOT_MAX_DIMS], stride1[AOT_MAX_DIMS], stride2[AOT_MAX_DIMS];
  int32_t in1_offset, in2_offset, out_offset, mult, shift, act_min, act_max;
} aot_mul_t;

/* PAD: output element at index i (per dimension) reads input i - before, or pad_value outside. */
typedef struct {
  int32_t dims, size;
  int32_t out_shape[AOT_MAX_DIMS], in_shape[AOT_MAX_DIMS], before[AOT_MAX_DIMS];
  int32_t pad_value;
} aot_pad_t;

/* CONCATENATION: `outer` rows; each input contributes sizes[k] contiguous bytes per row. */
typedef struct {
  int32_t count, outer;
  const int32_t* sizes;
} aot_concat_t;

/* LOGISTIC int8 (output zero point -128, scale 1/256) and TANH int8 (zero point 0, scale 1/128), gemmlowp
 * fixed point on the input in Q4.27. */
typedef struct {
  int32_t size, in_zp, radius, mult, left_shift;
} aot_logistic_t;

/* HARD_SWISH int8: TFLM's 16-bit fixed-point reference (HardSwishParams). */
typedef struct {
  int32_t size, in_zp, out_zp, out_mult16, out_exp, relu_mult16, relu_exp;
} aot_hard_swish_t;

/* MEAN over some axes (QuantizedMeanOrSum; scratch: one int32 sum per output). */
typedef struct {
  int32_t dims, size, out_size, count, in_zp, out_zp, mult, shift;
  int32_t in_shape[AOT_MAX_DIMS], out_stride[AOT_MAX_DIMS];
} aot_mean_t;

void aot_mean_s8(const aot_mean_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_mean_s16(const aot_mean_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_hard_swish_s8(const aot_hard_swish_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_requant_s8(const aot_requant_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_clamp_s8(const aot_clamp_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_mul_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
void aot_pad_s8(const aot_pad_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_concat_s8(const aot_concat_t* p, const int8_t* const* ins, int8_t* out, void* scratch);
void aot_logistic_s8(const aot_logistic_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_tanh_s8(const aot_logistic_t* p, const int8_t* in, int8_t* out, void* scratch);

void aot_conv_s8(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s4(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s8(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s4(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_fc_s8(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_fc_s4(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_avgpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_maxpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_softmax_s8(const aot_softmax_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_add_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
void aot_copy(const void* from, void* to, size_t bytes);

/* int16x8 (int16 activations, zero point 0; int8 filters; the conv/FC `bias` points to int64 values):
 * the arrays are int16 behind the int8_t pointers the generated code passes. The CMSIS-NN back-end calls
 * what TFLM's cmsis_nn kernels call for int16: arm_convolve_wrapper_s16 (= arm_convolve_s16),
 * arm_depthwise_conv_s16, arm_fully_connected_s16 (per tensor; TFLM's cmsis_nn FULLY_CONNECTED refuses
 * int16 per channel, so that one runs TFLM's reference arithmetic on every back-end), arm_max_pool_s16,
 * arm_avgpool_s16, arm_elementwise_add_s16 (broadcast: TFLM's reference code, as for int8). SOFTMAX runs TFLM's reference arithmetic on both (aot_kernels_common.c says why). */
void aot_conv_s16(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s16(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_fc_s16_per_tensor(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_fc_s16_per_channel(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_avgpool_s16(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_maxpool_s16(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_add_s16_elementwise(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
void aot_add_s16_broadcast(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
void aot_softmax_s16(const aot_softmax16_t* p, const int8_t* in, int8_t* out, void* scratch);

/* Each layer's kernel as the generator chose it (converter/aot/choice.py) with the conditions CMSIS-NN's
 * wrappers test at run time: the CMSIS-NN back-end calls that one function, so only the kernels a model
 * uses are linked; the portable back-end runs its one generic kernel for each. */
void aot_conv_s8_1x1_fast(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s8_1x1(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s8_1xn(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s8_generic(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s4_1x1_fast(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s4_1x1(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s4_1xn(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_conv_s4_generic(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s8_3x3(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s8_opt(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s8_generic(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s4_opt(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dwconv_s4_generic(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_fc_s8_per_tensor(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_fc_s8_per_channel(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_add_s8_elementwise(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
void aot_add_s8_broadcast(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
void aot_mul_s8_elementwise(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
void aot_mul_s8_broadcast(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch);
/* A softmax of a few logits: the kit's fixed-point kernel on every back-end (smaller than CMSIS-NN's). */
void aot_softmax_s8_small(const aot_softmax_t* p, const int8_t* in, int8_t* out, void* scratch);

/* TFLM_DECODE (aot_kernels_decode.c): a compressed constant decoded into the buffer before its consumer.
 * Element i uses table (or zero point) c, which advances every `run` elements and wraps after `channels`. */
typedef struct {
  int32_t count, channels, run, elem_bytes, bits, stride;  /* LUT: bits-wide indices, MSB first */
  const uint8_t* indices;                                  /* packed, plus one zero byte */
  const uint8_t* table;                                    /* channels tables of stride entries */
} aot_lut_t;

typedef struct {
  int32_t count, channels, run, elem_bytes;                /* PRUNE: one bit per element, MSB first */
  const uint8_t* mask;
  const uint8_t* values;                                   /* the kept elements, in order */
  const int8_t* zero_points;                               /* one per channel (int8), else one 0 */
} aot_prune_t;

/* DEQUANTIZE (int8/int16 -> float32) and QUANTIZE (float32 -> int8/int16): the float arrays are read and written
 * byte-wise (no alignment assumed). */
typedef struct {
  int32_t size, zero_point;
  float scale;
} aot_dequantize_t;

void aot_dequantize_s8(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_dequantize_s16(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_quantize_f32(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_quantize_f32_s16(const aot_dequantize_t* p, const int8_t* in, int8_t* out, void* scratch);
void aot_decode_lut(const aot_lut_t* p, int8_t* out, void* scratch);
void aot_decode_prune(const aot_prune_t* p, int8_t* out, void* scratch);

#endif /* AOT_KERNELS_H_ */
