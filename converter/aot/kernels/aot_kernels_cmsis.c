/* tflm-kit AOT runtime: the CMSIS-NN back-end (direct calls of the functions TFLM's cmsis_nn kernels call).
 * Compiled only with -DAOT_CMSIS_NN. */
#ifdef AOT_CMSIS_NN
#error "the CMSIS-NN back-end of the AOT runtime is not in this version yet: build without -DAOT_CMSIS_NN"
#endif
