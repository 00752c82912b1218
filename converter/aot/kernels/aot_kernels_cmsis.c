/* tflm-kit AOT runtime: the CMSIS-NN back-end. Compiled only with -DAOT_CMSIS_NN and
 * -I$CMSIS_NN_ROOT/Include; each kernel calls the CMSIS-NN function TFLM's cmsis_nn kernel calls,
 * with the parameters the generator precomputed (scratch: planned in the static buffer).
 * The generated code calls the specialised entry points (aot_conv_s8_1x1_fast, aot_fc_s8_per_tensor, ...):
 * the generator chose each layer's kernel with the conditions CMSIS-NN's *_wrapper_* functions test at run
 * time (converter/aot/choice.py), so the linker keeps only the kernels the model uses. The unsuffixed
 * entry points (aot_conv_s8, aot_fc_s8, ...) take any shape and dispatch at run time, as the wrappers do. */
#ifdef AOT_CMSIS_NN
#include "arm_nnfunctions.h"
#include "aot_kernels.h"

void aot_add_reference_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out);
void aot_dwconv_reference(const aot_conv_t* p, const int8_t* in, int8_t* out, int s4);
void aot_mul_reference_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out);
void aot_softmax_reference_s8(const aot_softmax_t* p, const int8_t* in, int8_t* out);

static cmsis_nn_dims aot_dims(int32_t n, int32_t h, int32_t w, int32_t c) {
  cmsis_nn_dims d;
  d.n = n;
  d.h = h;
  d.w = w;
  d.c = c;
  return d;
}

static cmsis_nn_context aot_ctx(void* scratch) {
  cmsis_nn_context ctx;
  ctx.buf = scratch;
  ctx.size = 0;
  return ctx;
}

/* Every CMSIS-NN convolution takes the same arguments: filled by one function, passed to the kernel. */
typedef struct {
  cmsis_nn_context ctx;
  cmsis_nn_conv_params cp;
  cmsis_nn_dw_conv_params dp;
  cmsis_nn_per_channel_quant_params qp;
  cmsis_nn_dims in, f, b, out;
} aot_conv_args_t;

static void aot_conv_args(const aot_conv_t* p, void* scratch, int depthwise, aot_conv_args_t* a) {
  a->ctx = aot_ctx(scratch);
  a->in = aot_dims(p->batches, p->in_h, p->in_w, p->in_c);
  a->f = depthwise ? aot_dims(1, p->k_h, p->k_w, p->out_c) : aot_dims(p->out_c, p->k_h, p->k_w, p->filter_in_c);
  a->b = aot_dims(1, 1, 1, p->out_c);
  a->out = aot_dims(p->batches, p->out_h, p->out_w, p->out_c);
  a->cp.input_offset = a->dp.input_offset = p->input_offset;
  a->cp.output_offset = a->dp.output_offset = p->output_offset;
  a->dp.ch_mult = p->depth_mult;
  a->cp.stride.h = a->dp.stride.h = p->stride_h;
  a->cp.stride.w = a->dp.stride.w = p->stride_w;
  a->cp.padding.h = a->dp.padding.h = p->pad_h;
  a->cp.padding.w = a->dp.padding.w = p->pad_w;
  a->cp.dilation.h = a->dp.dilation.h = p->dil_h;
  a->cp.dilation.w = a->dp.dilation.w = p->dil_w;
  a->cp.activation.min = a->dp.activation.min = p->act_min;
  a->cp.activation.max = a->dp.activation.max = p->act_max;
  a->qp.multiplier = (int32_t*)p->mult;
  a->qp.shift = (int32_t*)p->shift;
}

/* One entry point NAME: fill the arguments, call the CMSIS-NN function FN with the PARAMS (cp or dp). */
#define AOT_CONV_KERNEL(name, depthwise, params, fn)                                           \
  void name(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {                \
    aot_conv_args_t a;                                                                          \
    aot_conv_args(p, scratch, depthwise, &a);                                                   \
    (void)fn(&a.ctx, &a.params, &a.qp, &a.in, in, &a.f, p->filter, &a.b, p->bias, &a.out, out); \
  }

/* arm_convolve_s8 takes upscale dimensions too (transposed convolution only; NULL here). */
static arm_cmsis_nn_status aot_arm_convolve_s8(const cmsis_nn_context* ctx, const cmsis_nn_conv_params* cp,
                                               const cmsis_nn_per_channel_quant_params* qp,
                                               const cmsis_nn_dims* in_dims, const int8_t* in,
                                               const cmsis_nn_dims* f_dims, const int8_t* filter,
                                               const cmsis_nn_dims* b_dims, const int32_t* bias,
                                               const cmsis_nn_dims* out_dims, int8_t* out) {
  return arm_convolve_s8(ctx, cp, qp, in_dims, in, f_dims, filter, b_dims, bias, NULL, out_dims, out);
}

/* Any shape: CMSIS-NN's wrappers choose at run time (and link every kernel they may choose). */
AOT_CONV_KERNEL(aot_conv_s8, 0, cp, arm_convolve_wrapper_s8)
AOT_CONV_KERNEL(aot_conv_s4, 0, cp, arm_convolve_wrapper_s4)
AOT_CONV_KERNEL(aot_dwconv_s8, 1, dp, arm_depthwise_conv_wrapper_s8)
void aot_dwconv_s4(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  /* CMSIS-NN's generic int4 depthwise kernel (the wrapper's path unless depth multiplier 1, one batch,
   * no dilation) gives other bytes than TFLM's reference kernel for odd channel counts (measured:
   * tests/test_aot.py); only its optimized path is used, the rest runs TFLM's reference arithmetic. */
  if (p->depth_mult == 1 && p->batches == 1 && p->dil_h == 1 && p->dil_w == 1)
    aot_dwconv_s4_opt(p, in, out, scratch);
  else
    aot_dwconv_s4_generic(p, in, out, scratch);
}

/* The kernel the wrapper would choose for the layer, called directly. */
AOT_CONV_KERNEL(aot_conv_s8_1x1_fast, 0, cp, arm_convolve_1x1_s8_fast)
AOT_CONV_KERNEL(aot_conv_s8_1x1, 0, cp, arm_convolve_1x1_s8)
AOT_CONV_KERNEL(aot_conv_s8_1xn, 0, cp, arm_convolve_1_x_n_s8)
AOT_CONV_KERNEL(aot_conv_s8_generic, 0, cp, aot_arm_convolve_s8)
AOT_CONV_KERNEL(aot_conv_s4_1x1_fast, 0, cp, arm_convolve_1x1_s4_fast)
AOT_CONV_KERNEL(aot_conv_s4_1x1, 0, cp, arm_convolve_1x1_s4)
AOT_CONV_KERNEL(aot_conv_s4_1xn, 0, cp, arm_convolve_1_x_n_s4)
AOT_CONV_KERNEL(aot_dwconv_s4_opt, 1, dp, arm_depthwise_conv_s4_opt)
#if defined(ARM_MATH_MVEI)
/* On MVE the wrappers route some of these shapes elsewhere (even-depth int4 convolution, one-input-channel
 * depthwise as a convolution, no 3x3 depthwise kernel): there the wrapper itself keeps TFLM's choice. */
AOT_CONV_KERNEL(aot_conv_s4_generic, 0, cp, arm_convolve_wrapper_s4)
AOT_CONV_KERNEL(aot_dwconv_s8_3x3, 1, dp, arm_depthwise_conv_wrapper_s8)
AOT_CONV_KERNEL(aot_dwconv_s8_opt, 1, dp, arm_depthwise_conv_wrapper_s8)
AOT_CONV_KERNEL(aot_dwconv_s8_generic, 1, dp, arm_depthwise_conv_wrapper_s8)
#else
AOT_CONV_KERNEL(aot_conv_s4_generic, 0, cp, arm_convolve_s4)
AOT_CONV_KERNEL(aot_dwconv_s8_3x3, 1, dp, arm_depthwise_conv_3x3_s8)
AOT_CONV_KERNEL(aot_dwconv_s8_opt, 1, dp, arm_depthwise_conv_s8_opt)
AOT_CONV_KERNEL(aot_dwconv_s8_generic, 1, dp, arm_depthwise_conv_s8)
#endif
void aot_dwconv_s4_generic(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch; /* TFLM's reference arithmetic: see aot_dwconv_s4 */
  aot_dwconv_reference(p, in, out, 1);
}

typedef struct {
  cmsis_nn_context ctx;
  cmsis_nn_fc_params fp;
  cmsis_nn_per_tensor_quant_params tq;
  cmsis_nn_per_channel_quant_params cq;
  cmsis_nn_dims in, f, b, out;
} aot_fc_args_t;

static void aot_fc_args(const aot_fc_t* p, void* scratch, aot_fc_args_t* a) {
  a->ctx = aot_ctx(scratch);
  a->in = aot_dims(p->batches, 1, 1, p->accum_depth);
  a->f = aot_dims(p->accum_depth, 1, 1, p->out_c);
  a->b = aot_dims(1, 1, 1, p->out_c);
  a->out = aot_dims(p->batches, 1, 1, p->out_c);
  a->fp.input_offset = p->input_offset;
  a->fp.filter_offset = p->filter_offset;
  a->fp.output_offset = p->output_offset;
  a->fp.activation.min = p->act_min;
  a->fp.activation.max = p->act_max;
  a->tq.multiplier = p->mult[0];
  a->tq.shift = p->shift[0];
  a->cq.multiplier = (int32_t*)p->mult;
  a->cq.shift = (int32_t*)p->shift;
#if defined(ARM_MATH_MVEI)
  /* TFLM computes these kernel sums once in Prepare; with constant weights they could be precomputed too */
  (void)arm_vector_sum_s8((int32_t*)scratch, p->accum_depth, p->out_c, p->filter, p->input_offset, p->filter_offset,
                          p->bias);
#endif
}

/* int16: arm_fully_connected_s16 needs no kernel sums (its buffer size is 0 on every core). */
static void aot_fc_args_s16(const aot_fc_t* p, void* scratch, aot_fc_args_t* a) {
  a->ctx = aot_ctx(scratch);
  a->in = aot_dims(p->batches, 1, 1, p->accum_depth);
  a->f = aot_dims(p->accum_depth, 1, 1, p->out_c);
  a->b = aot_dims(1, 1, 1, p->out_c);
  a->out = aot_dims(p->batches, 1, 1, p->out_c);
  a->fp.input_offset = p->input_offset;
  a->fp.filter_offset = p->filter_offset;
  a->fp.output_offset = p->output_offset;
  a->fp.activation.min = p->act_min;
  a->fp.activation.max = p->act_max;
  a->tq.multiplier = p->mult[0];
  a->tq.shift = p->shift[0];
}

void aot_fc_s8_per_tensor(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_fc_args_t a;
  aot_fc_args(p, scratch, &a);
  (void)arm_fully_connected_s8(&a.ctx, &a.fp, &a.tq, &a.in, in, &a.f, p->filter, &a.b, p->bias, &a.out, out);
}
void aot_fc_s8_per_channel(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_fc_args_t a;
  aot_fc_args(p, scratch, &a);
  (void)arm_fully_connected_per_channel_s8(&a.ctx, &a.fp, &a.cq, &a.in, in, &a.f, p->filter, &a.b, p->bias, &a.out,
                                           out);
}
void aot_fc_s8(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  if (p->per_channel)
    aot_fc_s8_per_channel(p, in, out, scratch);
  else
    aot_fc_s8_per_tensor(p, in, out, scratch);
}
void aot_fc_s4(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  cmsis_nn_fc_params fp;
  cmsis_nn_per_tensor_quant_params qp;
  const cmsis_nn_context ctx = aot_ctx(scratch);
  const cmsis_nn_dims in_dims = aot_dims(p->batches, 1, 1, p->accum_depth);
  const cmsis_nn_dims f_dims = aot_dims(p->accum_depth, 1, 1, p->out_c);
  const cmsis_nn_dims b_dims = aot_dims(1, 1, 1, p->out_c);
  const cmsis_nn_dims out_dims = aot_dims(p->batches, 1, 1, p->out_c);
  fp.input_offset = p->input_offset;
  fp.filter_offset = p->filter_offset;
  fp.output_offset = p->output_offset;
  fp.activation.min = p->act_min;
  fp.activation.max = p->act_max;
  qp.multiplier = p->mult[0];
  qp.shift = p->shift[0];
  (void)arm_fully_connected_s4(&ctx, &fp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias, &out_dims, out);
}

typedef struct {
  cmsis_nn_context ctx;
  cmsis_nn_pool_params pp;
  cmsis_nn_dims in, f, out;
} aot_pool_args_t;

static void aot_pool_args(const aot_pool_t* p, void* scratch, aot_pool_args_t* a) {
  a->ctx = aot_ctx(scratch);
  a->in = aot_dims(p->batches, p->in_h, p->in_w, p->ch);
  a->f = aot_dims(1, p->k_h, p->k_w, 1);
  a->out = aot_dims(p->batches, p->out_h, p->out_w, p->ch);
  a->pp.stride.h = p->stride_h;
  a->pp.stride.w = p->stride_w;
  a->pp.padding.h = p->pad_h;
  a->pp.padding.w = p->pad_w;
  a->pp.activation.min = p->act_min;
  a->pp.activation.max = p->act_max;
}

void aot_avgpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_pool_args_t a;
  aot_pool_args(p, scratch, &a);
  (void)arm_avgpool_s8(&a.ctx, &a.pp, &a.in, in, &a.f, &a.out, out);
}
void aot_maxpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_pool_args_t a;
  aot_pool_args(p, scratch, &a);
  (void)arm_max_pool_s8(&a.ctx, &a.pp, &a.in, in, &a.f, &a.out, out);
}

void aot_softmax_s8(const aot_softmax_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  arm_softmax_s8(in, p->rows, p->depth, p->mult, p->left_shift, p->diff_min, out);
}
void aot_softmax_s8_small(const aot_softmax_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch; /* converter/aot/choice.py: a few logits, where CMSIS-NN's 3.7 KB kernel does not pay */
  aot_softmax_reference_s8(p, in, out);
}

void aot_add_s8_elementwise(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  (void)arm_elementwise_add_s8(in1, in2, p->in1_offset, p->m1, p->s1, p->in2_offset, p->m2, p->s2, p->left_shift, out,
                               p->out_offset, p->mo, p->so, p->act_min, p->act_max, p->size);
}
void aot_add_s8_broadcast(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch; /* TFLM's cmsis_nn ADD falls back to its reference code too */
  aot_add_reference_s8(p, in1, in2, out);
}
void aot_add_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  if (p->dims != 0)
    aot_add_s8_broadcast(p, in1, in2, out, scratch);
  else
    aot_add_s8_elementwise(p, in1, in2, out, scratch);
}

void aot_mul_s8_elementwise(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  (void)arm_elementwise_mul_s8(in1, in2, p->in1_offset, p->in2_offset, out, p->out_offset, p->mult, p->shift,
                               p->act_min, p->act_max, p->size);
}
void aot_mul_s8_broadcast(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch; /* TFLM's cmsis_nn MUL uses its reference code too */
  aot_mul_reference_s8(p, in1, in2, out);
}
void aot_mul_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  if (p->dims != 0)
    aot_mul_s8_broadcast(p, in1, in2, out, scratch);
  else
    aot_mul_s8_elementwise(p, in1, in2, out, scratch);
}

/* ---- int16x8: what TFLM's cmsis_nn kernels call for int16 activations (int64 biases) ---- */
void aot_fc_reference_s16(const aot_fc_t* p, const int16_t* in, int16_t* out);

void aot_conv_s16(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  const cmsis_nn_bias_data bias = {(const void*)p->bias, false};   /* int64 values */
  aot_conv_args_t a;
  aot_conv_args(p, scratch, 0, &a);
  /* arm_convolve_wrapper_s16 calls arm_convolve_s16 on every core */
  (void)arm_convolve_s16(&a.ctx, &a.cp, &a.qp, &a.in, (const int16_t*)(const void*)in, &a.f, p->filter, &a.b, &bias,
                         &a.out, (int16_t*)(void*)out);
}

void aot_dwconv_s16(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_conv_args_t a;
  aot_conv_args(p, scratch, 1, &a);
  (void)arm_depthwise_conv_s16(&a.ctx, &a.dp, &a.qp, &a.in, (const int16_t*)(const void*)in, &a.f, p->filter, &a.b,
                               (const int64_t*)(const void*)p->bias, &a.out, (int16_t*)(void*)out);
}

void aot_fc_s16_per_tensor(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_fc_args_t a;
  aot_fc_args_s16(p, scratch, &a);
  (void)arm_fully_connected_s16(&a.ctx, &a.fp, &a.tq, &a.in, (const int16_t*)(const void*)in, &a.f, p->filter, &a.b,
                                (const int64_t*)(const void*)p->bias, &a.out, (int16_t*)(void*)out);
}

void aot_add_s16_elementwise(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  (void)arm_elementwise_add_s16((const int16_t*)(const void*)in1, (const int16_t*)(const void*)in2, p->in1_offset, p->m1,
                                p->s1, p->in2_offset, p->m2, p->s2, p->left_shift, (int16_t*)(void*)out, p->out_offset,
                                p->mo, p->so, p->act_min, p->act_max, p->size);
}

void aot_avgpool_s16(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_pool_args_t a;
  aot_pool_args(p, scratch, &a);
  (void)arm_avgpool_s16(&a.ctx, &a.pp, &a.in, (const int16_t*)(const void*)in, &a.f, &a.out, (int16_t*)(void*)out);
}
void aot_maxpool_s16(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_pool_args_t a;
  aot_pool_args(p, scratch, &a);
  (void)arm_max_pool_s16(&a.ctx, &a.pp, &a.in, (const int16_t*)(const void*)in, &a.f, &a.out, (int16_t*)(void*)out);
}

#endif /* AOT_CMSIS_NN */
