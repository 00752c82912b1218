/* tflm-kit AOT runtime: the CMSIS-NN back-end. Compiled only with -DAOT_CMSIS_NN and
 * -I$CMSIS_NN_ROOT/Include; each kernel calls the CMSIS-NN function TFLM's cmsis_nn kernel calls,
 * with the parameters the generator precomputed (scratch: planned in the static buffer). */
#ifdef AOT_CMSIS_NN
#include "arm_nnfunctions.h"
#include "aot_kernels.h"

void aot_add_reference_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out);
void aot_dwconv_reference(const aot_conv_t* p, const int8_t* in, int8_t* out, int s4);
void aot_mul_reference_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out);

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

static void aot_cmsis_conv(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch, int s4) {
  const cmsis_nn_context ctx = aot_ctx(scratch);
  cmsis_nn_conv_params cp;
  cmsis_nn_per_channel_quant_params qp;
  const cmsis_nn_dims in_dims = aot_dims(p->batches, p->in_h, p->in_w, p->in_c);
  const cmsis_nn_dims f_dims = aot_dims(p->out_c, p->k_h, p->k_w, p->filter_in_c);
  const cmsis_nn_dims b_dims = aot_dims(1, 1, 1, p->out_c);
  const cmsis_nn_dims out_dims = aot_dims(p->batches, p->out_h, p->out_w, p->out_c);
  cp.input_offset = p->input_offset;
  cp.output_offset = p->output_offset;
  cp.stride.h = p->stride_h;
  cp.stride.w = p->stride_w;
  cp.padding.h = p->pad_h;
  cp.padding.w = p->pad_w;
  cp.dilation.h = p->dil_h;
  cp.dilation.w = p->dil_w;
  cp.activation.min = p->act_min;
  cp.activation.max = p->act_max;
  qp.multiplier = (int32_t*)p->mult;
  qp.shift = (int32_t*)p->shift;
  if (s4)
    (void)arm_convolve_wrapper_s4(&ctx, &cp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias, &out_dims, out);
  else
    (void)arm_convolve_wrapper_s8(&ctx, &cp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias, &out_dims, out);
}

static void aot_cmsis_dwconv(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch, int s4) {
  const cmsis_nn_context ctx = aot_ctx(scratch);
  cmsis_nn_dw_conv_params dp;
  cmsis_nn_per_channel_quant_params qp;
  const cmsis_nn_dims in_dims = aot_dims(p->batches, p->in_h, p->in_w, p->in_c);
  const cmsis_nn_dims f_dims = aot_dims(1, p->k_h, p->k_w, p->out_c);
  const cmsis_nn_dims b_dims = aot_dims(1, 1, 1, p->out_c);
  const cmsis_nn_dims out_dims = aot_dims(p->batches, p->out_h, p->out_w, p->out_c);
  dp.input_offset = p->input_offset;
  dp.output_offset = p->output_offset;
  dp.ch_mult = p->depth_mult;
  dp.stride.h = p->stride_h;
  dp.stride.w = p->stride_w;
  dp.padding.h = p->pad_h;
  dp.padding.w = p->pad_w;
  dp.dilation.h = p->dil_h;
  dp.dilation.w = p->dil_w;
  dp.activation.min = p->act_min;
  dp.activation.max = p->act_max;
  qp.multiplier = (int32_t*)p->mult;
  qp.shift = (int32_t*)p->shift;
  if (s4)
    (void)arm_depthwise_conv_wrapper_s4(&ctx, &dp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias, &out_dims,
                                        out);
  else
    (void)arm_depthwise_conv_wrapper_s8(&ctx, &dp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias, &out_dims,
                                        out);
}

void aot_conv_s8(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_cmsis_conv(p, in, out, scratch, 0);
}
void aot_conv_s4(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_cmsis_conv(p, in, out, scratch, 1);
}
void aot_dwconv_s8(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_cmsis_dwconv(p, in, out, scratch, 0);
}
void aot_dwconv_s4(const aot_conv_t* p, const int8_t* in, int8_t* out, void* scratch) {
  /* CMSIS-NN's generic int4 depthwise kernel (the wrapper's path unless depth multiplier 1, one batch,
   * no dilation) gives other bytes than TFLM's reference kernel for odd channel counts (measured:
   * tests/test_aot.py); only its optimized path is used, the rest runs TFLM's reference arithmetic. */
  if (p->depth_mult == 1 && p->batches == 1 && p->dil_h == 1 && p->dil_w == 1)
    aot_cmsis_dwconv(p, in, out, scratch, 1);
  else
    aot_dwconv_reference(p, in, out, 1);
}

static void aot_cmsis_fc(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch, int s4) {
  const cmsis_nn_context ctx = aot_ctx(scratch);
  cmsis_nn_fc_params fp;
  const cmsis_nn_dims in_dims = aot_dims(p->batches, 1, 1, p->accum_depth);
  const cmsis_nn_dims f_dims = aot_dims(p->accum_depth, 1, 1, p->out_c);
  const cmsis_nn_dims b_dims = aot_dims(1, 1, 1, p->out_c);
  const cmsis_nn_dims out_dims = aot_dims(p->batches, 1, 1, p->out_c);
  fp.input_offset = p->input_offset;
  fp.filter_offset = p->filter_offset;
  fp.output_offset = p->output_offset;
  fp.activation.min = p->act_min;
  fp.activation.max = p->act_max;
  if (s4) {
    cmsis_nn_per_tensor_quant_params qp;
    qp.multiplier = p->mult[0];
    qp.shift = p->shift[0];
    (void)arm_fully_connected_s4(&ctx, &fp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias, &out_dims, out);
    return;
  }
#if defined(ARM_MATH_MVEI)
  /* TFLM computes these kernel sums once in Prepare; with constant weights they could be precomputed too */
  (void)arm_vector_sum_s8((int32_t*)scratch, p->accum_depth, p->out_c, p->filter, p->input_offset, p->filter_offset,
                          p->bias);
#endif
  if (p->per_channel) {
    cmsis_nn_per_channel_quant_params qp;
    qp.multiplier = (int32_t*)p->mult;
    qp.shift = (int32_t*)p->shift;
    (void)arm_fully_connected_per_channel_s8(&ctx, &fp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias,
                                             &out_dims, out);
  } else {
    cmsis_nn_per_tensor_quant_params qp;
    qp.multiplier = p->mult[0];
    qp.shift = p->shift[0];
    (void)arm_fully_connected_s8(&ctx, &fp, &qp, &in_dims, in, &f_dims, p->filter, &b_dims, p->bias, &out_dims, out);
  }
}

void aot_fc_s8(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_cmsis_fc(p, in, out, scratch, 0);
}
void aot_fc_s4(const aot_fc_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_cmsis_fc(p, in, out, scratch, 1);
}

static void aot_cmsis_pool(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch, int average) {
  const cmsis_nn_context ctx = aot_ctx(scratch);
  cmsis_nn_pool_params pp;
  const cmsis_nn_dims in_dims = aot_dims(p->batches, p->in_h, p->in_w, p->ch);
  const cmsis_nn_dims f_dims = aot_dims(1, p->k_h, p->k_w, 1);
  const cmsis_nn_dims out_dims = aot_dims(p->batches, p->out_h, p->out_w, p->ch);
  pp.stride.h = p->stride_h;
  pp.stride.w = p->stride_w;
  pp.padding.h = p->pad_h;
  pp.padding.w = p->pad_w;
  pp.activation.min = p->act_min;
  pp.activation.max = p->act_max;
  if (average)
    (void)arm_avgpool_s8(&ctx, &pp, &in_dims, in, &f_dims, &out_dims, out);
  else
    (void)arm_max_pool_s8(&ctx, &pp, &in_dims, in, &f_dims, &out_dims, out);
}

void aot_avgpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_cmsis_pool(p, in, out, scratch, 1);
}
void aot_maxpool_s8(const aot_pool_t* p, const int8_t* in, int8_t* out, void* scratch) {
  aot_cmsis_pool(p, in, out, scratch, 0);
}

void aot_softmax_s8(const aot_softmax_t* p, const int8_t* in, int8_t* out, void* scratch) {
  (void)scratch;
  arm_softmax_s8(in, p->rows, p->depth, p->mult, p->left_shift, p->diff_min, out);
}

void aot_add_s8(const aot_add_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  if (p->dims != 0) { /* broadcast: TFLM's cmsis_nn ADD falls back to its reference code too */
    aot_add_reference_s8(p, in1, in2, out);
    return;
  }
  (void)arm_elementwise_add_s8(in1, in2, p->in1_offset, p->m1, p->s1, p->in2_offset, p->m2, p->s2, p->left_shift, out,
                               p->out_offset, p->mo, p->so, p->act_min, p->act_max, p->size);
}

void aot_mul_s8(const aot_mul_t* p, const int8_t* in1, const int8_t* in2, int8_t* out, void* scratch) {
  (void)scratch;
  if (p->dims != 0) { /* broadcast: TFLM's cmsis_nn MUL uses its reference code too */
    aot_mul_reference_s8(p, in1, in2, out);
    return;
  }
  (void)arm_elementwise_mul_s8(in1, in2, p->in1_offset, p->in2_offset, out, p->out_offset, p->mult, p->shift,
                               p->act_min, p->act_max, p->size);
}
#endif /* AOT_CMSIS_NN */
