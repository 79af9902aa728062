/* Training losses on the OpenCL device: kernels/loss.cl.
 *
 * The labels of softmax_cross_entropy live in a device buffer the host does
 * not read, so an out-of-range label is not reported here: the kernel gives
 * that row loss = NAN and a zero gradient (see kernels/loss.cl). */
#include "ops.h"

/* One work-item per row; rows are few (a batch), so small groups keep every compute unit busy. */
static const size_t rows_per_group = 16;
static const size_t elements_per_group = 64;

clcnn_status softmax_cross_entropy(clcnn_context *ctx, int rows, int classes, cl_mem logits,
                                   cl_mem labels, cl_mem loss, cl_mem grad_logits) {
    if (rows < 0 || classes < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "softmax_cross_entropy: %d rows of %d classes", rows, classes);
    if (rows == 0)
        return CLCNN_OK;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &logits},      {sizeof(cl_mem), &labels}, {sizeof(cl_mem), &loss},
        {sizeof(cl_mem), &grad_logits}, {sizeof(int), &rows},      {sizeof(int), &classes},
    };
    const size_t local[1] = {rows_per_group};
    const size_t global[1] = {(size_t)rows};
    return runtime_run(ctx, "loss", "softmax_cross_entropy", "", "softmax_cross_entropy",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

clcnn_status sigmoid_binary_cross_entropy(clcnn_context *ctx, int rows, cl_mem logits,
                                          cl_mem targets, cl_mem loss, cl_mem grad_logits) {
    if (rows < 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "sigmoid_binary_cross_entropy: %d rows",
                         rows);
    if (rows == 0)
        return CLCNN_OK;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &logits},      {sizeof(cl_mem), &targets}, {sizeof(cl_mem), &loss},
        {sizeof(cl_mem), &grad_logits}, {sizeof(int), &rows},
    };
    const size_t local[1] = {elements_per_group};
    const size_t global[1] = {(size_t)rows};
    return runtime_run(ctx, "loss", "sigmoid_binary_cross_entropy", "",
                       "sigmoid_binary_cross_entropy", sizeof(args) / sizeof(args[0]), args, 1,
                       global, local);
}

clcnn_status mean_squared_error(clcnn_context *ctx, int rows, int columns, cl_mem outputs,
                                cl_mem targets, cl_mem loss, cl_mem grad_outputs) {
    if (rows < 0 || columns < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "mean_squared_error: %d rows of %d columns", rows, columns);
    if (rows == 0)
        return CLCNN_OK;
    /* 2 / (rows * columns) in double, rounded to float once. */
    const float scale = (float)(2.0 / ((double)rows * columns));
    const kernel_arg args[] = {
        {sizeof(cl_mem), &outputs},      {sizeof(cl_mem), &targets}, {sizeof(cl_mem), &loss},
        {sizeof(cl_mem), &grad_outputs}, {sizeof(int), &rows},       {sizeof(int), &columns},
        {sizeof(float), &scale},
    };
    /* A row may be a whole image: groups of one row spread them over every compute unit. */
    const size_t local[1] = {1};
    const size_t global[1] = {(size_t)rows};
    return runtime_run(ctx, "loss", "mean_squared_error", "", "mean_squared_error",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}
