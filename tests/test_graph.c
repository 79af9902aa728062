/* Graph networks: residual blocks (every other one with a batchnorm after
 * its first conv), concat branches, squeeze-and-excitation, a layer feeding
 * three others, add with three inputs; the add, concat, mul, globalavgpool
 * and batchnorm layers; the memory plan; and the parser's graph
 * errors.
 *
 * 1. Random graphs (fixed seeds) built from those blocks run forward and
 *    backward on the reference and the OpenCL device with the same weights:
 *    outputs agree within 1e-5 relative and every gradient (parameters and
 *    input) within 1e-4, as tests/test_cli.c and tests/test_grad.c hold
 *    sequential networks to.
 * 2. Finite differences of the loss on the reference device, for graphs of
 *    smooth layers (tanh, sigmoid, average pooling, MSE): central
 *    differences with h = 1e-2 against the backward's gradient of a sample
 *    of parameters and inputs, |fd - g| <= 2e-3 * max(|fd|, 0.1). The loss
 *    is a double mean of float per-image losses, so the differences carry
 *    about 1e-7 / h = 1e-5 of rounding and h^2 terms of about 1e-4 relative:
 *    a wrong accumulation (a gradient overwritten instead of added, a branch
 *    dropped) is off by O(1).
 *    Pooling layers that read a node other layers read too (their backward
 *    adds into its gradient) are compared the same way, in train and eval mode.
 * 3. The memory plan shares storage in inference and never gives a node's
 *    output the storage of a node it still needs.
 * 4. Graph errors name the file and line.
 */
#include "internal.h"
#include "testlib.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RANDOM_GRAPHS = 110, FD_GRAPHS = 12, MAX_TEXT = 16384, MAX_NAMES = 256 };

/* ---- random graph networks ------------------------------------------------------------ */

typedef struct graph_builder {
    char text[MAX_TEXT];
    size_t used;
    int c, h, w; /* shape of the current node */
    char current[64];
    int counter;
    int smooth;    /* tanh/sigmoid and average pooling only, for finite differences */
    int residuals; /* residual blocks so far: every other one normalises its first conv */
} graph_builder;

static void emit(graph_builder *g, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void emit(graph_builder *g, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(g->text + g->used, sizeof(g->text) - g->used, format, args);
    va_end(args);
    if (n > 0 && g->used + (size_t)n < sizeof(g->text))
        g->used += (size_t)n;
}

/* A fresh node name into name. */
static void fresh(graph_builder *g, char *name) {
    snprintf(name, 64, "n%d", g->counter++);
}

static const char *activation(graph_builder *g, test_rng *r) {
    if (g->smooth)
        return test_rand_int(r, 0, 1) ? "tanh" : "sigmoid";
    static const char *const kinds[] = {"relu", "leaky slope=0.1", "tanh", "sigmoid"};
    return kinds[test_rand_int(r, 0, 3)];
}

/* node = layer text reading `input`; the builder moves to it. */
static void layer_from(graph_builder *g, const char *input, const char *layer_text, int c, int h,
                       int w, char *out_name) {
    char name[64];
    fresh(g, name);
    emit(g, "%s input=%s name=%s\n", layer_text, input, name);
    snprintf(g->current, sizeof(g->current), "%s", name);
    g->c = c;
    g->h = h;
    g->w = w;
    if (out_name)
        snprintf(out_name, 64, "%s", name);
}

static void conv_from(graph_builder *g, test_rng *r, const char *input, int filters, int size,
                      char *out_name) {
    char text[96];
    snprintf(text, sizeof(text), "conv filters=%d size=%d pad=%d bias=%s", filters, size, size / 2,
             test_rand_int(r, 0, 3) ? "true" : "false");
    layer_from(g, input, text, filters, g->h, g->w, out_name);
}

/* Multi-input layers are written directly: they name all their inputs. */
static void combine(graph_builder *g, const char *type, const char *inputs, int c, int h, int w) {
    char name[64];
    fresh(g, name);
    emit(g, "%s inputs=%s name=%s\n", type, inputs, name);
    snprintf(g->current, sizeof(g->current), "%s", name);
    g->c = c;
    g->h = h;
    g->w = w;
}

static void residual_block(graph_builder *g, test_rng *r) {
    char x[64], a[64], b[64], shortcut[64];
    snprintf(x, sizeof(x), "%s", g->current);
    const int c = g->c, out_c = test_rand_int(r, 0, 1) ? c : test_rand_int(r, 1, 6);
    conv_from(g, r, x, out_c, 3, a);
    /* conv -> batchnorm -> activation, as ResNet; decided without drawing,
     * so the graphs are otherwise those drawn before batchnorm existed. */
    if (g->residuals++ % 2 == 0)
        layer_from(g, a, "batchnorm", out_c, g->h, g->w, a);
    layer_from(g, a, activation(g, r), out_c, g->h, g->w, a);
    conv_from(g, r, a, out_c, 3, b);
    if (out_c != c)
        conv_from(g, r, x, out_c, 1, shortcut); /* projection shortcut */
    else
        snprintf(shortcut, sizeof(shortcut), "%s", x);
    char inputs[160];
    snprintf(inputs, sizeof(inputs), "%s,%s", b, shortcut);
    combine(g, "add", inputs, out_c, g->h, g->w);
    layer_from(g, g->current, activation(g, r), out_c, g->h, g->w, NULL);
}

static void concat_block(graph_builder *g, test_rng *r) {
    char x[64], inputs[512] = "", name[64];
    snprintf(x, sizeof(x), "%s", g->current);
    const int h = g->h, w = g->w, c = g->c;
    int branches = test_rand_int(r, 2, 4), total = 0;
    size_t used = 0;
    for (int i = 0; i < branches; i++) {
        int kind = test_rand_int(r, 0, 3), out_c = c;
        g->h = h;
        g->w = w;
        if (kind == 0) {
            out_c = test_rand_int(r, 1, 5);
            conv_from(g, r, x, out_c, 1, name);
        } else if (kind == 1) {
            out_c = test_rand_int(r, 1, 5);
            conv_from(g, r, x, out_c, 3, name);
        } else if (kind == 2 && !g->smooth) {
            layer_from(g, x, "maxpool size=3 stride=1 pad=1", c, h, w, name);
        } else {
            layer_from(g, x, "avgpool size=3 stride=1 pad=1", c, h, w, name);
        }
        total += out_c;
        text_append(inputs, sizeof(inputs), &used, i ? ",%s" : "%s", name);
    }
    combine(g, "concat", inputs, total, h, w);
}

static void se_block(graph_builder *g, test_rng *r) {
    char x[64], s[64], inputs[160];
    snprintf(x, sizeof(x), "%s", g->current);
    const int c = g->c, h = g->h, w = g->w, reduced = test_rand_int(r, 1, 3);
    layer_from(g, x, "globalavgpool", c, 1, 1, s);
    conv_from(g, r, s, reduced, 1, s);
    layer_from(g, s, g->smooth ? "tanh" : "relu", reduced, 1, 1, s);
    conv_from(g, r, s, c, 1, s);
    layer_from(g, s, "sigmoid", c, 1, 1, s);
    snprintf(inputs, sizeof(inputs), "%s,%s", x, s);
    combine(g, "mul", inputs, c, h, w);
}

/* x read by three layers whose results are added (three inputs) or concatenated. */
static void fan_out_block(graph_builder *g, test_rng *r) {
    char x[64], a[64], b[64], d[64], inputs[256];
    snprintf(x, sizeof(x), "%s", g->current);
    const int c = g->c, h = g->h, w = g->w;
    layer_from(g, x, activation(g, r), c, h, w, a);
    conv_from(g, r, x, c, 3, b);
    layer_from(g, x, "avgpool size=3 stride=1 pad=1", c, h, w, d);
    snprintf(inputs, sizeof(inputs), "%s,%s,%s", a, b, d);
    if (test_rand_int(r, 0, 1))
        combine(g, "add", inputs, c, h, w);
    else
        combine(g, "concat", inputs, 3 * c, h, w);
}

/* A random graph network for batch images of channels x size x size. */
static void random_graph(graph_builder *g, test_rng *r, int smooth) {
    memset(g, 0, sizeof(*g));
    g->smooth = smooth;
    g->c = test_rand_int(r, 1, 3);
    g->h = g->w = test_rand_int(r, 4, 9);
    emit(g, "input channels=%d height=%d width=%d\n", g->c, g->h, g->w);
    snprintf(g->current, sizeof(g->current), "input");
    conv_from(g, r, "input", test_rand_int(r, 2, 5), 3, NULL);
    int blocks = test_rand_int(r, 2, 4);
    for (int i = 0; i < blocks; i++) {
        switch (test_rand_int(r, 0, 3)) {
        case 0:
            residual_block(g, r);
            break;
        case 1:
            concat_block(g, r);
            break;
        case 2:
            se_block(g, r);
            break;
        default:
            fan_out_block(g, r);
            break;
        }
        if (g->h >= 6 && test_rand_int(r, 0, 2) == 0)
            layer_from(g, g->current, smooth ? "avgpool size=2" : "maxpool size=2", g->c, g->h / 2,
                       g->w / 2, NULL);
    }
    if (test_rand_int(r, 0, 1)) {
        layer_from(g, g->current, "globalavgpool", g->c, 1, 1, NULL);
        emit(g, "flatten\n");
    } else {
        emit(g, "flatten\n");
    }
    emit(g, "dense units=%d\n", smooth ? 3 : test_rand_int(r, 2, 5));
    if (!smooth)
        emit(g, "softmax\n");
}

/* ---- running a network on a device -------------------------------------------------- */

typedef struct run_result {
    float *output;
    double loss;
    float *gradients; /* every parameter's, concatenated in tensor order, then the input's */
    int64_t gradient_count;
} run_result;

static void free_result(run_result *r) {
    free(r->output);
    free(r->gradients);
    memset(r, 0, sizeof(*r));
}

/* mode: CLCNN_MODE_TRAIN or CLCNN_MODE_EVAL for both passes, or -1 for the defaults
 * (forward in eval mode, backward in train mode). */
static int run(clcnn_context *ctx, const char *text, uint64_t seed, int batch, const float *input,
               const int32_t *labels, const float *targets, int mode, run_result *out) {
    memset(out, 0, sizeof(*out));
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "graph.net", &net))) {
        fprintf(stderr, "%s", text);
        return 0;
    }
    int ok = CHECK_OK(ctx, clcnn_net_init_weights(net, seed));
    if (mode >= 0)
        ok = ok && CHECK_OK(ctx, clcnn_net_set_mode(net, (clcnn_mode)mode));
    if (targets)
        ok = ok && CHECK_OK(ctx, clcnn_net_set_loss(net, CLCNN_LOSS_MSE));
    const int64_t out_size = clcnn_net_output_size(net), in_size = clcnn_net_input_size(net);
    out->output = malloc(sizeof(float) * (size_t)(batch * out_size));
    int64_t count = batch * in_size;
    for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        if (info.kind == CLCNN_TENSOR_PARAMETER) /* state (running statistics) has no gradient */
            count += info.count;
    }
    out->gradients = malloc(sizeof(float) * (size_t)count);
    out->gradient_count = count;
    ok = ok && out->output && out->gradients &&
         CHECK_OK(ctx, clcnn_net_forward(net, input, batch, out->output, NULL, NULL)) &&
         CHECK_OK(ctx, clcnn_net_backward(net, input, batch, labels, targets, &out->loss));
    int64_t used = 0;
    for (int i = 0; ok && i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        if (info.kind != CLCNN_TENSOR_PARAMETER)
            continue;
        ok = CHECK_OK(
            ctx, clcnn_net_get_tensor_gradient(net, info.name, out->gradients + used, info.count));
        used += info.count;
    }
    ok = ok && CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, "input", out->gradients + used,
                                                           batch * in_size));
    clcnn_net_destroy(net);
    return ok;
}

static void random_input(test_rng *r, float *values, int64_t count) {
    for (int64_t i = 0; i < count; i++)
        values[i] = test_rand_float(r, -1.0f, 1.0f);
}

/* ---- 1. OpenCL against the reference on random graphs ------------------------------- */

static void test_random_graphs(clcnn_context *reference, clcnn_context *opencl) {
    test_rng r = {20261130};
    double worst_output = 0.0, worst_gradient = 0.0;
    int compared = 0;
    static graph_builder g;
    for (int index = 0; index < RANDOM_GRAPHS; index++) {
        random_graph(&g, &r, 0);
        const int batch = test_rand_int(&r, 1, 4);
        clcnn_net *probe = NULL;
        if (!CHECK_OK(reference, clcnn_net_from_string(reference, g.text, "graph.net", &probe))) {
            fprintf(stderr, "graph %d:\n%s", index, g.text);
            continue;
        }
        const int64_t in_size = clcnn_net_input_size(probe);
        const int classes = (int)clcnn_net_output_size(probe);
        clcnn_net_destroy(probe);
        float *input = malloc(sizeof(float) * (size_t)(batch * in_size));
        int32_t labels[4];
        random_input(&r, input, batch * in_size);
        for (int i = 0; i < batch; i++)
            labels[i] = test_rand_int(&r, 0, classes - 1);
        run_result want, got;
        if (run(reference, g.text, 7 + index, batch, input, labels, NULL, -1, &want) &&
            run(opencl, g.text, 7 + index, batch, input, labels, NULL, -1, &got)) {
            double out_error = max_relative_error(got.output, want.output, batch * classes, 1.0);
            double grad_error =
                max_relative_error(got.gradients, want.gradients, want.gradient_count, 1.0);
            double loss_error = fabs(got.loss - want.loss) / fmax(fabs(want.loss), 1e-30);
            if (!CHECK(out_error <= 1e-5 && grad_error <= 1e-4 && loss_error <= 1e-5))
                fprintf(stderr, "graph %d (batch %d): output %.3g, gradients %.3g, loss %.3g\n%s",
                        index, batch, out_error, grad_error, loss_error, g.text);
            worst_output = fmax(worst_output, out_error);
            worst_gradient = fmax(worst_gradient, grad_error);
            compared++;
        }
        free_result(&want);
        free_result(&got);
        free(input);
    }
    CHECK(compared == RANDOM_GRAPHS);
    printf("random graphs: %d compared, worst output %.3g, worst gradient %.3g\n", compared,
           worst_output, worst_gradient);
}

/* Pooling layers reading a node that other layers read too, so that their backward adds
 * into a gradient another layer wrote first (and into the input's, which
 * clcnn_net_backward asks for): OpenCL against the reference in train and eval mode, as
 * the random graphs are compared. Max pooling's backward on the device reads the choices
 * its forward kept in either mode. */
static void test_pooling_fan_out(clcnn_context *reference, clcnn_context *opencl) {
    static const char *const texts[] = {
        "input channels=2 height=7 width=7\n"
        "conv filters=3 size=3 pad=1 name=x\n"
        "maxpool size=3 stride=2 pad=1 input=x name=a\n"
        "maxpool size=2 stride=2 ceil=true input=x name=b\n"
        "avgpool size=3 stride=2 pad=1 input=x name=c\n"
        "concat inputs=a,b,c\n"
        "maxpool size=2 stride=1\n"
        "flatten\n"
        "dense units=3\n"
        "softmax\n",
        "input channels=3 height=8 width=6\n"
        "maxpool size=3 stride=1 pad=1 input=input name=a\n"
        "conv filters=3 size=3 pad=1 input=input name=b\n"
        "maxpool size=2x3 stride=1x2 pad=0,1,1,1 input=input name=c\n"
        "avgpool size=2x3 stride=1x2 pad=0,1,1,1 input=b name=d\n"
        "concat inputs=c,d name=e\n"
        "add inputs=a,b\n"
        "maxpool size=2\n"
        "flatten\n"
        "dense units=4 name=f\n"
        "flatten input=e\n"
        "dense units=4 name=g\n"
        "add inputs=f,g\n"
        "softmax\n",
    };
    test_rng r = {4242};
    int compared = 0;
    for (int t = 0; t < 2; t++)
        for (int mode = CLCNN_MODE_EVAL; mode <= CLCNN_MODE_TRAIN; mode++) {
            clcnn_net *probe = NULL;
            if (!CHECK_OK(reference,
                          clcnn_net_from_string(reference, texts[t], "graph.net", &probe))) {
                fprintf(stderr, "%s", texts[t]);
                continue;
            }
            const int64_t in_size = clcnn_net_input_size(probe);
            const int classes = (int)clcnn_net_output_size(probe);
            clcnn_net_destroy(probe);
            const int batch = 3;
            float *input = malloc(sizeof(float) * (size_t)(batch * in_size));
            int32_t labels[3];
            random_input(&r, input, batch * in_size);
            for (int i = 0; i < batch; i++)
                labels[i] = test_rand_int(&r, 0, classes - 1);
            run_result want, got;
            if (run(reference, texts[t], 11 + t, batch, input, labels, NULL, mode, &want) &&
                run(opencl, texts[t], 11 + t, batch, input, labels, NULL, mode, &got)) {
                const double grad_error =
                    max_relative_error(got.gradients, want.gradients, want.gradient_count, 1.0);
                const double loss_error = fabs(got.loss - want.loss) / fmax(fabs(want.loss), 1e-30);
                if (!CHECK(grad_error <= 1e-4 && loss_error <= 1e-5))
                    fprintf(stderr, "pooling fan-out %d, %s mode: gradients %.3g, loss %.3g\n%s", t,
                            mode == CLCNN_MODE_TRAIN ? "train" : "eval", grad_error, loss_error,
                            texts[t]);
                compared++;
            }
            free_result(&want);
            free_result(&got);
            free(input);
        }
    CHECK(compared == 4);
    printf("pooling fan-out: %d compared\n", compared);
}

/* ---- 2. finite differences on the reference device ---------------------------------- */

static double loss_of(clcnn_context *ctx, clcnn_net *net, const float *input, int batch,
                      const float *targets) {
    double loss = NAN;
    CHECK_OK(ctx, clcnn_net_backward(net, input, batch, NULL, targets, &loss));
    return loss;
}

static void test_finite_differences(clcnn_context *ctx) {
    test_rng r = {777};
    static graph_builder g;
    const double h = 1e-2;
    int checked = 0, failed = 0;
    double worst = 0.0;
    for (int index = 0; index < FD_GRAPHS; index++) {
        random_graph(&g, &r, 1);
        clcnn_net *net = NULL;
        if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, g.text, "graph.net", &net)))
            continue;
        CHECK_OK(ctx, clcnn_net_init_weights(net, 100 + index));
        CHECK_OK(ctx, clcnn_net_set_loss(net, CLCNN_LOSS_MSE));
        const int batch = 2;
        const int64_t in_size = clcnn_net_input_size(net), out_size = clcnn_net_output_size(net);
        float *input = malloc(sizeof(float) * (size_t)(batch * in_size));
        float *targets = malloc(sizeof(float) * (size_t)(batch * out_size));
        float *grad_input = malloc(sizeof(float) * (size_t)(batch * in_size));
        random_input(&r, input, batch * in_size);
        random_input(&r, targets, batch * out_size);
        loss_of(ctx, net, input, batch, targets);
        CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, "input", grad_input, batch * in_size));
        /* inputs */
        for (int s = 0; s < 6; s++) {
            int64_t i = test_rand_int(&r, 0, (int)(batch * in_size - 1));
            float keep = input[i];
            input[i] = (float)(keep + h);
            double plus = loss_of(ctx, net, input, batch, targets);
            input[i] = (float)(keep - h);
            double minus = loss_of(ctx, net, input, batch, targets);
            input[i] = keep;
            double fd = (plus - minus) / (2 * h), error = fabs(fd - grad_input[i]);
            double bound = 2e-3 * fmax(fabs(fd), 0.1);
            worst = fmax(worst, error / fmax(fabs(fd), 0.1));
            checked++;
            if (error > bound) {
                failed++;
                fprintf(stderr, "graph %d input %lld: fd %.6g backward %.6g\n%s", index,
                        (long long)i, fd, grad_input[i], g.text);
            }
        }
        /* parameters: a few values of every tensor */
        loss_of(ctx, net, input, batch, targets);
        for (int t = 0; t < clcnn_net_tensor_count(net); t++) {
            clcnn_tensor_info info;
            clcnn_net_tensor_info(net, t, &info);
            if (info.kind != CLCNN_TENSOR_PARAMETER)
                continue;
            float *values = malloc(sizeof(float) * (size_t)info.count);
            float *grads = malloc(sizeof(float) * (size_t)info.count);
            loss_of(ctx, net, input, batch, targets);
            CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, info.name, grads, info.count));
            CHECK_OK(ctx, clcnn_net_get_tensor(net, info.name, values, info.count));
            for (int s = 0; s < 2; s++) {
                int64_t i = test_rand_int(&r, 0, (int)(info.count - 1));
                float keep = values[i];
                values[i] = (float)(keep + h);
                clcnn_net_set_tensor(net, info.name, values, info.count);
                double plus = loss_of(ctx, net, input, batch, targets);
                values[i] = (float)(keep - h);
                clcnn_net_set_tensor(net, info.name, values, info.count);
                double minus = loss_of(ctx, net, input, batch, targets);
                values[i] = keep;
                clcnn_net_set_tensor(net, info.name, values, info.count);
                double fd = (plus - minus) / (2 * h), error = fabs(fd - grads[i]);
                worst = fmax(worst, error / fmax(fabs(fd), 0.1));
                checked++;
                if (error > 2e-3 * fmax(fabs(fd), 0.1)) {
                    failed++;
                    fprintf(stderr, "graph %d %s[%lld]: fd %.6g backward %.6g\n%s", index,
                            info.name, (long long)i, fd, grads[i], g.text);
                }
            }
            free(values);
            free(grads);
        }
        free(input);
        free(targets);
        free(grad_input);
        clcnn_net_destroy(net);
    }
    CHECK(failed == 0);
    CHECK(checked >= FD_GRAPHS * 10);
    printf("finite differences: %d values on %d graphs, worst %.3g of max(|fd|, 0.1)\n", checked,
           FD_GRAPHS, worst);
}

/* ---- 3. the memory plan ------------------------------------------------------------- */

static void test_memory_plan(clcnn_context *ctx) {
    /* A chain of 12 element-wise layers needs two activation slots in
     * inference (plus the input's), and all of them in training. */
    char text[2048] = "input channels=2 height=4 width=4\n";
    size_t used = strlen(text);
    for (int i = 0; i < 12; i++)
        text_append(text, sizeof(text), &used, i % 2 ? "tanh\n" : "relu\n");
    text_append(text, sizeof(text), &used, "flatten\ndense units=3\n");
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "chain.net", &net)))
        return;
    CHECK_OK(ctx, clcnn_net_init_weights(net, 1));
    float input[2 * 32], output[2 * 3];
    test_rng r = {5};
    random_input(&r, input, 64);
    CHECK_OK(ctx, clcnn_net_forward(net, input, 2, output, NULL, NULL));
    CHECK(net->plan.slot_count <= 3);
    for (int i = 1; i < net->layer_count; i++)
        for (int k = 0; k < net->layers[i].input_count; k++) {
            int input_node = net->layers[i].inputs[k];
            if (net->plan.root[input_node] != net->plan.root[i])
                CHECK(net->plan.out_slot[input_node] != net->plan.out_slot[i]);
        }
    double loss;
    float targets[6] = {0};
    CHECK_OK(ctx, clcnn_net_backward(net, input, 2, NULL, targets, &loss));
    CHECK(net->plan.slot_count == net->layer_count - 1); /* flatten shares */
    /* Gradients of a chain reuse two slots. */
    CHECK(net->plan.grad_slot_count <= 3);
    /* A chain has no fan-out: no gradient temporary. */
    CHECK(!net->plan.grad_temporary.mem && !net->plan.grad_temporary.host);
    clcnn_net_destroy(net);

    /* A fan-out needs the temporary only where a reader cannot add into the
     * gradient another reader wrote: batchnorm and add can, sigmoid cannot. */
    static const struct {
        const char *second_reader;
        int needs_temporary;
    } fan_outs[] = {{"batchnorm", 0}, {"sigmoid", 1}};
    for (int f = 0; f < 2; f++) {
        char fan_out[512];
        snprintf(fan_out, sizeof(fan_out),
                 "input channels=2 height=4 width=4\ntanh name=t\n%s name=s\n"
                 "add inputs=s,t\nflatten\ndense units=3\n",
                 fan_outs[f].second_reader);
        net = NULL;
        if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, fan_out, "fan_out.net", &net)))
            return;
        CHECK_OK(ctx, clcnn_net_init_weights(net, 1));
        CHECK_OK(ctx, clcnn_net_backward(net, input, 2, NULL, targets, &loss));
        const buf temporary = net->plan.grad_temporary;
        CHECK((temporary.mem || temporary.host) == fan_outs[f].needs_temporary);
        clcnn_net_destroy(net);
    }
}

/* ---- 4. graph errors ---------------------------------------------------------------- */

static void expect_error(clcnn_context *ctx, const char *text, const char *expected, int line) {
    clcnn_net *net = NULL;
    clcnn_status status = clcnn_net_from_string(ctx, text, "g.net", &net);
    int ok = status != CLCNN_OK && net == NULL && strstr(clcnn_last_error(ctx), expected);
    if (!CHECK(ok))
        fprintf(stderr, "test line %d: expected '%s', got '%s'\n", line, expected,
                status == CLCNN_OK ? "success" : clcnn_last_error(ctx));
    clcnn_net_destroy(net);
}

#define IN "input channels=2 height=6 width=6\n"

static void test_errors(clcnn_context *ctx) {
    expect_error(ctx, IN "relu name=a\nrelu input=b name=b\nadd inputs=a,b\n",
                 "g.net:3: relu: layer 'b' reads itself: a network has no cycles", __LINE__);
    expect_error(ctx, IN "relu input=c name=a\nrelu name=b\nrelu name=c\nadd inputs=a,c\n",
                 "g.net:2: relu: layer 'c' is defined below, on line 4", __LINE__);
    expect_error(ctx, IN "relu input=nothing\n", "g.net:2: relu: no layer named 'nothing' above",
                 __LINE__);
    expect_error(ctx, IN "relu name=a\nadd inputs=a\n", "g.net:3: add: needs at least 2 inputs",
                 __LINE__);
    expect_error(ctx, IN "relu name=a\nadd input=a\n", "g.net:3: add: unknown key 'input'",
                 __LINE__);
    expect_error(ctx, IN "relu name=a\nadd\n", "g.net:3: add: missing required key 'inputs'",
                 __LINE__);
    expect_error(ctx, IN "relu name=a\nadd inputs=a,,a\n", "g.net:3: add: 'inputs' must name",
                 __LINE__);
    expect_error(ctx, IN "conv filters=3 size=1 name=a\nadd inputs=a,input\n",
                 "g.net:3: add: 'input' gives 2x6x6 but 'a' gives 3x6x6", __LINE__);
    expect_error(ctx, IN "maxpool size=2 name=a\nconcat inputs=a,input\n",
                 "g.net:3: concat: 'input' gives 2x6x6 but 'a' gives 2x3x3", __LINE__);
    expect_error(ctx, IN "globalavgpool name=g\nconv filters=3 size=1\nmul inputs=input,conv1\n",
                 "g.net:4: mul: 'conv1' gives 3x1x1, which is neither", __LINE__);
    expect_error(ctx, IN "relu name=a\nrelu name=b input=input\ntanh\n",
                 "g.net:2: relu: layer 'a' is read by no other layer", __LINE__);
    expect_error(ctx, IN "flatten\nglobalavgpool\n",
                 "g.net:3: globalavgpool: input is a vector of 72 values", __LINE__);
    expect_error(ctx, IN "relu name=a\nmul inputs=a,a,a\n", "g.net:3: mul: reads at most 2",
                 __LINE__);
    /* Valid: a layer read twice by one add, an input= that is not the line before. */
    clcnn_net *net = NULL;
    CHECK_OK(ctx,
             clcnn_net_from_string(ctx, IN "relu name=a\ntanh input=input\nadd inputs=a,a,tanh1\n",
                                   "g.net", &net));
    clcnn_net_destroy(net);
}

/* ---- 5. the tensor table and modes through the public API -------------------------- */

static void test_tensor_api(clcnn_context *ctx) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx,
                                             IN "conv filters=3 size=3 name=c1\n"
                                                "conv filters=3 size=1 bias=false input=c1\n"
                                                "add inputs=c1,conv2\nflatten\ndense units=4\n",
                                             "t.net", &net)))
        return;
    static const char *const names[] = {"c1.weight", "c1.bias", "conv2.weight", "dense1.weight",
                                        "dense1.bias"};
    static const int64_t counts[] = {54, 3, 9, 192, 4};
    CHECK(clcnn_net_tensor_count(net) == 5);
    for (int i = 0; i < 5 && i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        CHECK_OK(ctx, clcnn_net_tensor_info(net, i, &info));
        CHECK(strcmp(info.name, names[i]) == 0 && info.count == counts[i] &&
              info.kind == CLCNN_TENSOR_PARAMETER);
    }
    clcnn_tensor_info info;
    CHECK_OK(ctx, clcnn_net_tensor_info(net, 0, &info));
    CHECK(info.ndim == 4 && info.shape[0] == 3 && info.shape[1] == 2 && info.shape[2] == 3 &&
          strcmp(info.layer, "c1") == 0);
    CHECK(clcnn_net_tensor_info(net, 5, &info) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_net_parameter_count(net) == 54 + 3 + 9 + 192 + 4);

    float values[192];
    for (int i = 0; i < 192; i++)
        values[i] = (float)i;
    CHECK_OK(ctx, clcnn_net_set_tensor(net, "dense1.weight", values, 192));
    float back[192] = {0};
    CHECK_OK(ctx, clcnn_net_get_parameter(net, "dense1", "weight", back, 192));
    CHECK(memcmp(values, back, sizeof(back)) == 0);
    CHECK(clcnn_net_set_tensor(net, "dense1.weight", values, 191) == CLCNN_ERROR_SHAPE);
    CHECK(strstr(clcnn_last_error(ctx), "dense1.weight has 192 values, not 191") != NULL);
    CHECK(clcnn_net_set_tensor(net, "dense1.running_mean", values, 4) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_net_get_parameter(net, "conv2", "bias", values, 3) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(clcnn_last_error(ctx), "layer conv2 has no bias") != NULL);
    CHECK(clcnn_net_get_tensor_gradient(net, "input", values, 72) == CLCNN_ERROR_INVALID_ARGUMENT);

    /* No layer here differs between the modes: train and eval give the same outputs. */
    CHECK_OK(ctx, clcnn_net_init_weights(net, 3));
    float input[2 * 72], eval_out[8], train_out[8];
    test_rng r = {9};
    random_input(&r, input, 144);
    CHECK_OK(ctx, clcnn_net_forward(net, input, 2, eval_out, NULL, NULL));
    CHECK_OK(ctx, clcnn_net_set_mode(net, CLCNN_MODE_TRAIN));
    CHECK_OK(ctx, clcnn_net_forward(net, input, 2, train_out, NULL, NULL));
    CHECK(memcmp(eval_out, train_out, sizeof(eval_out)) == 0);
    CHECK(clcnn_net_set_mode(net, (clcnn_mode)7) == CLCNN_ERROR_INVALID_ARGUMENT);

    clcnn_layer_info layer;
    CHECK_OK(ctx, clcnn_net_layer_info(net, 3, &layer));
    CHECK(strcmp(layer.type, "add") == 0 && layer.input_count == 2 && layer.inputs[0] == 1 &&
          layer.inputs[1] == 2);
    clcnn_net_destroy(net);
}

/* ---- 6. device limits are checked when planning, before allocating ----------------- */

static void test_device_limits(clcnn_context *ctx) {
    /* 1000 x 1000 x 1000 floats per image: 4 GB in one layer's output. */
    const char *text = "input channels=1 height=1000 width=1000\n"
                       "conv filters=1000 size=1\nrelu\nrelu\nrelu\n";
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "big.net", &net)))
        return;
    const uint64_t per_image = sizeof(float) * 1000000000ULL;
    const int64_t batch = (int64_t)(ctx->max_alloc_bytes / per_image) + 1;
    float *input = calloc((size_t)batch * 1000000, sizeof(float));
    double loss;
    float target = 0.0f;
    if (input && batch <= 16) {
        /* Refused by the buffer limit or, where that is above 2^31 floats,
         * by the kernels' int indexing: either way before any allocation. */
        clcnn_status status = clcnn_net_backward(net, input, batch, NULL, &target, &loss);
        CHECK(status != CLCNN_OK);
        const char *message = clcnn_last_error(ctx);
        if (!CHECK((strstr(message, "layer conv1: its outputs for") &&
                    strstr(message, "CL_DEVICE_MAX_MEM_ALLOC_SIZE")) ||
                   strstr(message, "too large for one pass")))
            fprintf(stderr, "got: %s\n", message);
    }
    /* Buffers that each fit but together exceed the device's memory. */
    const int64_t fitting = (int64_t)(ctx->max_alloc_bytes / per_image);
    if (input && fitting >= 1 && (uint64_t)fitting * per_image * 4 > ctx->global_mem_bytes) {
        clcnn_status status = clcnn_net_backward(net, input, fitting, NULL, &target, &loss);
        CHECK(status == CLCNN_ERROR_OUT_OF_MEMORY);
        if (!CHECK(strstr(clcnn_last_error(ctx), "CL_DEVICE_GLOBAL_MEM_SIZE") != NULL))
            fprintf(stderr, "got: %s\n", clcnn_last_error(ctx));
    }
    clcnn_net_destroy(net);
    free(input);

    /* A forward pass of more images than the device holds at once runs in
     * chunks that fit and gives what a device without those limits gives.
     * 100 x 100 x 10 floats per image: 400,000 bytes per activation. */
    const char *chunked = "input channels=1 height=100 width=100\n"
                          "conv filters=10 size=3 pad=1\nrelu\nrelu\n";
    enum { IMAGES = 37, PER_IMAGE = 100000 };
    float *images = malloc(sizeof(float) * IMAGES * 10000);
    float *want = malloc(sizeof(float) * IMAGES * PER_IMAGE);
    float *got = malloc(sizeof(float) * IMAGES * PER_IMAGE);
    test_rng r = {5};
    int32_t labels[IMAGES] = {0};
    double want_loss = 0.0, want_accuracy = 0.0;
    if (CHECK(images && want && got)) {
        random_input(&r, images, IMAGES * 10000);
        for (int i = 0; i < IMAGES; i++)
            labels[i] = (i * 7919) % PER_IMAGE;
        if (CHECK_OK(ctx, clcnn_net_from_string(ctx, chunked, "chunked.net", &net))) {
            CHECK_OK(ctx, clcnn_net_init_weights(net, 7));
            CHECK_OK(ctx, clcnn_net_forward(net, images, IMAGES, want, NULL, NULL));
            clcnn_dataset data = {IMAGES, 1, 100, 100, PER_IMAGE, images, labels, NULL};
            CHECK_OK(ctx, clcnn_net_evaluate(net, &data, &want_loss, &want_accuracy, NULL));
            clcnn_net_destroy(net);
        }
        /* 10 images per buffer; 8 MB of memory, 7 usable: 2 slots x 10 images do not fit. */
        const cl_ulong max_alloc = ctx->max_alloc_bytes, global = ctx->global_mem_bytes;
        ctx->max_alloc_bytes = 4000000;
        ctx->global_mem_bytes = 8000000;
        if (CHECK_OK(ctx, clcnn_net_from_string(ctx, chunked, "chunked.net", &net))) {
            CHECK_OK(ctx, clcnn_net_init_weights(net, 7));
            for (int64_t i = 0; i < (int64_t)IMAGES * PER_IMAGE; i++)
                got[i] = NAN;
            if (CHECK_OK(ctx, clcnn_net_forward(net, images, IMAGES, got, NULL, NULL))) {
                CHECK(net->plan.capacity >= 1 && net->plan.capacity <= 5);
                CHECK(memcmp(got, want, sizeof(float) * IMAGES * PER_IMAGE) == 0);
            }
            clcnn_net_destroy(net);
        }
        /* Evaluation too, from a fresh network: the same loss and accuracy. */
        if (CHECK_OK(ctx, clcnn_net_from_string(ctx, chunked, "chunked.net", &net))) {
            CHECK_OK(ctx, clcnn_net_init_weights(net, 7));
            clcnn_dataset data = {IMAGES, 1, 100, 100, PER_IMAGE, images, labels, NULL};
            double loss = -1.0, accuracy = -1.0;
            if (CHECK_OK(ctx, clcnn_net_evaluate(net, &data, &loss, &accuracy, NULL))) {
                CHECK(net->plan.capacity >= 1 && net->plan.capacity <= 5);
                CHECK(loss == want_loss && accuracy == want_accuracy);
            }
            clcnn_net_destroy(net);
        }
        /* One image's layer output beyond one buffer: refused, naming the layer and the limit. */
        ctx->max_alloc_bytes = 100000;
        if (CHECK_OK(ctx, clcnn_net_from_string(ctx, chunked, "chunked.net", &net))) {
            CHECK(clcnn_net_forward(net, images, 1, got, NULL, NULL) == CLCNN_ERROR_OUT_OF_MEMORY);
            if (!CHECK(strstr(clcnn_last_error(ctx), "layer conv1: the output of one image") &&
                       strstr(clcnn_last_error(ctx), "CL_DEVICE_MAX_MEM_ALLOC_SIZE")))
                fprintf(stderr, "got: %s\n", clcnn_last_error(ctx));
            clcnn_net_destroy(net);
        }
        ctx->max_alloc_bytes = max_alloc;
        ctx->global_mem_bytes = global;
    }
    free(images);
    free(want);
    free(got);

    /* The network still works at a size that fits: nothing was left half made. */
    CHECK_OK(ctx, clcnn_net_from_string(ctx, "input channels=1 height=2 width=2\nrelu\n", "s.net",
                                        &net));
    float small_in[4] = {-1, 2, -3, 4}, small_out[4];
    CHECK_OK(ctx, clcnn_net_forward(net, small_in, 1, small_out, NULL, NULL));
    CHECK(small_out[0] == 0.0f && small_out[3] == 4.0f);
    clcnn_net_destroy(net);
}

int main(void) {
    clcnn_context *reference = clcnn_context_create();
    clcnn_context *opencl = test_opencl_context();
    if (!reference || !opencl)
        return 1;
    CHECK_OK(reference, clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, 0, 0));
    test_errors(reference);
    test_tensor_api(reference);
    test_tensor_api(opencl);
    test_memory_plan(reference);
    test_memory_plan(opencl);
    test_device_limits(opencl);
    test_finite_differences(reference);
    test_random_graphs(reference, opencl);
    test_pooling_fan_out(reference, opencl);
    clcnn_context_destroy(reference);
    clcnn_context_destroy(opencl);
    return test_finish();
}
