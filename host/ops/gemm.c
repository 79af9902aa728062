/* Strided matrix product on the OpenCL device: kernels/gemm.cl. */
#include "ops.h"

clcnn_status gemm_tiled(clcnn_context *ctx, const tile_config *config, const gemm_params *p,
                        cl_mem a, cl_mem b, cl_mem c, cl_mem bias) {
    clcnn_status status = tile_config_require(ctx, config, "gemm");
    if (status != CLCNN_OK)
        return status;
    char options[256];
    tile_config_options(config, options, sizeof(options));
    const int bias_mode = (int)p->bias;
    cl_mem bias_arg = p->bias != BIAS_NONE ? bias : c;
    const kernel_arg args[] = {
        {sizeof(int), &p->m},
        {sizeof(int), &p->n},
        {sizeof(int), &p->k},
        {sizeof(float), &p->alpha},
        {sizeof(cl_mem), &a},
        {sizeof(int), &p->a_row_stride},
        {sizeof(int), &p->a_col_stride},
        {sizeof(cl_mem), &b},
        {sizeof(int), &p->b_row_stride},
        {sizeof(int), &p->b_col_stride},
        {sizeof(float), &p->beta},
        {sizeof(cl_mem), &c},
        {sizeof(int), &p->c_row_stride},
        {sizeof(cl_mem), &bias_arg},
        {sizeof(int), &bias_mode},
    };
    const size_t local[2] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m)};
    const size_t global[2] = {(size_t)((p->n + config->tile_n - 1) / config->tile_n) * local[0],
                              (size_t)((p->m + config->tile_m - 1) / config->tile_m) * local[1]};
    return runtime_run(ctx, "gemm", "gemm", options, "gemm", sizeof(args) / sizeof(args[0]), args,
                       2, global, local);
}

clcnn_status gemm(clcnn_context *ctx, const gemm_params *p, cl_mem a, cl_mem b, cl_mem c,
                  cl_mem bias) {
    const tile_config config = tile_config_for(ctx, "gemm");
    return gemm_tiled(ctx, &config, p, a, b, c, bias);
}
