/* tflm-kit AOT runtime: the integer arithmetic TFLM's reference kernels use (double rounding,
 * TFLITE_SINGLE_ROUNDING off), written out in C99 so both back-ends share one definition. */
#ifndef AOT_FIXEDPOINT_H_
#define AOT_FIXEDPOINT_H_

#include <stdint.h>

/* Round-to-nearest doubling high multiply; saturates the one overflowing case. */
static inline int32_t aot_srdhm(int32_t a, int32_t b) {
  int64_t ab;
  int64_t nudge;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* Divide by 2^exponent, rounding half away from zero. */
static inline int32_t aot_rdpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier (shift > 0: left). */
static inline int32_t aot_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return aot_rdpot(aot_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* MultiplyByQuantizedMultiplier for an int64 accumulator (int16x8 layers with int64 biases): TFLM's
 * common.cc reduces the multiplier to 16 bits, then one rounding shift (CMSIS-NN's REDUCE_MULTIPLIER and
 * arm_nn_requantize_s64 are the same arithmetic). */
static inline int32_t aot_mbqm64(int64_t x, int32_t multiplier, int32_t shift) {
  const int32_t reduced = multiplier < 0x7FFF0000 ? ((multiplier + (1 << 15)) >> 16) : 0x7FFF;
  const int total_shift = 15 - shift;
  x = x * (int64_t)reduced + ((int64_t)1 << (total_shift - 1));
  return (int32_t)(x >> total_shift);
}

/* MultiplyByQuantizedMultiplierSmallerThanOneExp. */
static inline int32_t aot_mbqm_small(int32_t x, int32_t multiplier, int32_t shift) {
  return aot_rdpot(aot_srdhm(x, multiplier), -shift);
}

/* Saturating x * 2^exponent for 0 < exponent < 31, with gemmlowp's thresholds. */
static inline int32_t aot_sat_shl(int32_t x, int exponent) {
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out. */
static inline int32_t aot_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668;   /* exp(-1/8) */
  const int32_t one_third = 715827883;
  const int32_t x = a + (1 << 28);            /* a + 1/8 */
  const int32_t x2 = aot_srdhm(x, x);
  const int32_t x3 = aot_srdhm(x2, x);
  const int32_t x4 = aot_srdhm(x2, x2);
  const int32_t x4_over_4 = aot_rdpot(x4, 2);
  const int32_t poly = aot_rdpot(aot_srdhm(x4_over_4 + x3, one_third) + x2, 1);
  return constant_term + aot_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given with `integer_bits` integer bits (1..5); Q0.31 result. */
static inline int32_t aot_exp_negative_bits(int32_t a, int integer_bits) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int fractional_bits = 31 - integer_bits;
  const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod = (a & mask) - one_quarter;
  int32_t result = aot_exp_quarter(aot_sat_shl(a_mod, integer_bits));
  const int32_t remainder = a_mod - a;
  int k;
  for (k = 0; k < 7 && k - 2 < integer_bits; ++k) {  /* exponents -2 .. integer_bits - 1 */
    if (remainder & ((int32_t)1 << (fractional_bits - 2 + k))) result = aot_srdhm(result, multipliers[k]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* exp(a) for a <= 0 given in Q5.26 (softmax); Q0.31 result. */
static inline int32_t aot_exp_negative(int32_t a) {
  return aot_exp_negative_bits(a, 5);
}

/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out (Newton-Raphson in Q2.29). */
static inline int32_t aot_one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = 1515870810 + aot_srdhm(half_denominator, -1010580540);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t hdx = aot_srdhm(half_denominator, x);
    const int32_t one_minus = (1 << 29) - hdx;
    x = x + aot_sat_shl(aot_srdhm(x, one_minus), 2);
  }
  return aot_sat_shl(x, 1);
}

/* GetReciprocal: 1/x for x with x_integer_digits integer bits. */
static inline int32_t aot_reciprocal(int32_t x, int x_integer_digits, int* num_bits_over_unit) {
  int headroom_plus_one = 0;
  uint32_t ux = (uint32_t)x;
  int32_t shifted_minus_one;
  while (headroom_plus_one < 32 && !(ux & 0x80000000u)) {
    ux <<= 1;
    ++headroom_plus_one;
  }
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  shifted_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
  return aot_one_over_one_plus_x(shifted_minus_one);
}

/* (1 - x) / (1 + x) for x in [0, 1), Q0.31 in and out (Newton-Raphson in Q2.29). */
static inline int32_t aot_one_minus_x_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = 1515870810 + aot_srdhm(half_denominator, -1010580540);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus = (1 << 29) - aot_srdhm(half_denominator, x);
    x = x + aot_sat_shl(aot_srdhm(x, one_minus), 2);
  }
  return aot_sat_shl(x - (1 << 29), 2);
}

/* gemmlowp's tanh for a in Q4.27; Q0.31 result. */
static inline int32_t aot_tanh_q4(int32_t a) {
  int32_t t;
  if (a == 0) return 0;
  t = aot_one_minus_x_over_one_plus_x(aot_exp_negative_bits(a < 0 ? a : -a, 5));  /* exp(2 * -|a|) */
  return a < 0 ? -t : t;
}

/* gemmlowp's logistic for a in Q4.27; Q0.31 result. */
static inline int32_t aot_logistic_q4(int32_t a) {
  int32_t positive;
  if (a == 0) return 1 << 30;
  positive = aot_one_over_one_plus_x(aot_exp_negative_bits(a > 0 ? -a : a, 4));
  return a > 0 ? positive : INT32_MAX - positive;
}

static inline int32_t aot_clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

#endif /* AOT_FIXEDPOINT_H_ */
