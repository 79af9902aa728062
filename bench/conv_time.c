/* The three operations of one convolution (3x3, pad 1 unless told), timed through the
 * library's internal entry points with the context's defaults (tuning file,
 * autotuning), for A/B comparisons of two builds (bench/RESULTS.md):
 *
 *   cc -O2 -Ihost -Iinclude -Ibuild bench/conv_time.c build/libclcnn_internal.a \
 *      -lOpenCL -lz -lm -lpthread -lstb -lprotobuf-c -lplplot -lmpi
 *   ./a.out IN_CHANNELS OUT_CHANNELS SIZE BATCH [STRIDE [GROUPS [KERNEL [PAD]]]]
 *
 * GROUPS = IN_CHANNELS = OUT_CHANNELS is a depthwise convolution. Random
 * data; 17 calls of each operation (each followed by clFinish), the first
 * two not counted; prints the medians (kernel plus launch), GFLOP/s and the
 * fastest call (on a shared machine the least disturbed),
 * then the device time per kernel over all the calls. On PoCL run it with
 * POCL_AFFINITY=1, or medians may be twice the fastest call (bench/README.md). */
#include "harness.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct conv_layer {
    conv2d_params p;
    conv2d_plan plan;
    cl_mem input, weight, bias, output, grad_input, grad_weight, grad_bias, scratch;
} conv_layer;

static clcnn_status run(clcnn_context *ctx, int op, void *layer) {
    const conv_layer *l = layer;
    if (op == 0)
        return conv2d_forward_planned(ctx, &l->plan, &l->p, l->input, l->weight, l->bias, l->output,
                                      NULL, NULL);
    if (op == 1)
        return conv2d_backward_data_planned(ctx, &l->plan, &l->p, l->output, l->weight,
                                            l->grad_input);
    return conv2d_backward_weights_planned(ctx, &l->plan, &l->p, l->input, l->output,
                                           l->grad_weight, l->grad_bias, l->scratch, NULL);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s IN_CHANNELS OUT_CHANNELS SIZE BATCH [STRIDE [GROUPS [KERNEL [PAD]]]]\n",
                argv[0]);
        return 2;
    }
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx || clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1) != CLCNN_OK) {
        fprintf(stderr, "no OpenCL device\n");
        return 1;
    }
    conv2d_params p = {0};
    p.in_channels = atoi(argv[1]);
    p.out_channels = atoi(argv[2]);
    p.in_height = p.in_width = atoi(argv[3]);
    p.batch = atoi(argv[4]);
    p.stride_h = p.stride_w = argc > 5 ? atoi(argv[5]) : 1;
    p.groups = argc > 6 ? atoi(argv[6]) : 1;
    p.kernel_h = p.kernel_w = argc > 7 ? atoi(argv[7]) : 3;
    p.pad_top = p.pad_left = argc > 8 ? atoi(argv[8]) : 1;
    p.out_height = p.out_width = (p.in_height + 2 * p.pad_top - p.kernel_h) / p.stride_h + 1;
    p.has_bias = 1;
    const size_t inputs = (size_t)p.batch * p.in_channels * p.in_height * p.in_width;
    const size_t outputs = (size_t)p.batch * p.out_channels * p.out_height * p.out_width;
    const size_t taps = (size_t)p.kernel_h * p.kernel_w;
    const size_t weights = (size_t)p.out_channels * (p.in_channels / p.groups) * taps;
    cl_mem input = random_buffer(ctx, inputs, -0.5f), weight = random_buffer(ctx, weights, -0.5f);
    cl_mem bias = random_buffer(ctx, (size_t)p.out_channels, -0.5f);
    cl_mem output = random_buffer(ctx, outputs, -0.5f),
           grad_input = random_buffer(ctx, inputs, -0.5f);
    cl_mem grad_weight = random_buffer(ctx, weights, -0.5f);
    cl_mem grad_bias = random_buffer(ctx, (size_t)p.out_channels, -0.5f);
    const conv2d_plan plan = conv2d_plan_for(ctx, &p);
    cl_mem scratch =
        random_buffer(ctx, conv2d_backward_weights_scratch_bytes(&plan, &p) / 4 + 1, -0.5f);
    if (!input || !weight || !bias || !output || !grad_input || !grad_weight || !grad_bias ||
        !scratch) {
        fprintf(stderr, "%s\n", clcnn_last_error(ctx));
        return 1;
    }
    conv_layer layer = {p,      plan,       input,       weight,    bias,
                        output, grad_input, grad_weight, grad_bias, scratch};
    static const char *const names[3] = {"forward", "backward-data", "backward-weights"};
    double times[3][TIMED];
    if (time_operations(ctx, names, run, &layer, times))
        return 1;
    printf("%dx%d pad %d, %d -> %d channels in %d groups, %dx%d, batch %d, stride %d:", p.kernel_h,
           p.kernel_w, p.pad_top, p.in_channels, p.out_channels, p.groups, p.in_height, p.in_width,
           p.batch, p.stride_h);
    const double flops = 2.0 * (double)outputs * (p.in_channels / p.groups) * (double)taps;
    for (int op = 0; op < 3; op++) {
        const double median = times[op][TIMED / 2];
        printf(" %s %.2f ms (%.1f GFLOP/s, fastest %.2f ms)%s", names[op], 1e3 * median,
               1e-9 * flops / median, 1e3 * times[op][0], op < 2 ? "," : "\n");
    }
    print_profile(ctx);
    buffer_release(&input);
    buffer_release(&weight);
    buffer_release(&bias);
    buffer_release(&output);
    buffer_release(&grad_input);
    buffer_release(&grad_weight);
    buffer_release(&grad_bias);
    buffer_release(&scratch);
    clcnn_context_destroy(ctx);
    return 0;
}
