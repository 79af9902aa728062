/* Network files: parsing, default names, shape inference, parameter counts
 * and the error messages for malformed files. No device is needed. */
#include "layers/layer.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const lenet_text = "# LeNet-5 style network for 28x28 grayscale images\n"
                                      "input   channels=1 height=28 width=28\n"
                                      "conv    filters=6 size=5 pad=2\n"
                                      "relu\n"
                                      "maxpool size=2\n"
                                      "conv    filters=16 size=5\n"
                                      "relu\n"
                                      "maxpool size=2\n"
                                      "flatten\n"
                                      "dense   units=120\n"
                                      "relu\n"
                                      "dense   units=84\n"
                                      "relu\n"
                                      "dense   units=10\n"
                                      "softmax\n";

/* Parses text that must be valid; on failure prints why and returns 0. */
static int parse_ok(clcnn_context *ctx, const char *text, layer **layers, int *count,
                    int test_line) {
    clcnn_status status = netfile_parse(ctx, text, "net.txt", layers, count);
    if (status != CLCNN_OK) {
        fprintf(stderr, "test line %d: parse failed (%s): %s\n", test_line,
                clcnn_status_name(status), clcnn_last_error(ctx));
        *layers = NULL;
        *count = 0;
    }
    return CHECK(status == CLCNN_OK);
}

static int shape_is(shape3 shape, int ndim, int c, int h, int w) {
    return shape.ndim == ndim && shape.c == c && shape.h == h && shape.w == w;
}

static void test_lenet(clcnn_context *ctx) {
    layer *layers;
    int count;
    if (!parse_ok(ctx, lenet_text, &layers, &count, __LINE__))
        return;
    static const char *const names[] = {"input",  "conv1",    "relu1",    "maxpool1", "conv2",
                                        "relu2",  "maxpool2", "flatten1", "dense1",   "relu3",
                                        "dense2", "relu4",    "dense3",   "softmax1"};
    static const char *const types[] = {"input", "conv",    "relu",    "maxpool", "conv",
                                        "relu",  "maxpool", "flatten", "dense",   "relu",
                                        "dense", "relu",    "dense",   "softmax"};
    CHECK(count == 14);
    for (int i = 0; i < count && i < 14; i++) {
        if (!CHECK(strcmp(layers[i].name, names[i]) == 0))
            fprintf(stderr, "  layer %d is named '%s', expected '%s'\n", i, layers[i].name,
                    names[i]);
        CHECK(layers[i].type == layer_type_find(types[i]));
        CHECK(strcmp(layers[i].type->name, types[i]) == 0);
        CHECK(layers[i].line == i + 2); /* the comment is line 1 */
        /* Tensors belong to a network, not to a parsed file. */
        CHECK(layers[i].first_tensor == 0 && layers[i].tensor_count == 0);
        if (i > 0)
            CHECK(memcmp(&layers[i].in, &layers[i - 1].out, sizeof(shape3)) == 0);
        if (i > 0)
            CHECK(layers[i].input_count == 1 && layers[i].inputs[0] == i - 1);
    }
    if (count == 14) {
        CHECK(shape_is(layers[0].in, 3, 1, 28, 28) && shape_is(layers[0].out, 3, 1, 28, 28));
        CHECK(shape_is(layers[1].out, 3, 6, 28, 28));
        CHECK(shape_is(layers[2].out, 3, 6, 28, 28));
        CHECK(shape_is(layers[3].out, 3, 6, 14, 14));
        CHECK(shape_is(layers[4].out, 3, 16, 10, 10));
        CHECK(shape_is(layers[6].out, 3, 16, 5, 5));
        CHECK(shape_is(layers[7].out, 1, 400, 1, 1));
        CHECK(shape_is(layers[8].out, 1, 120, 1, 1));
        CHECK(shape_is(layers[10].out, 1, 84, 1, 1));
        CHECK(shape_is(layers[12].out, 1, 10, 1, 1));
        CHECK(shape_is(layers[13].out, 1, 10, 1, 1));
        CHECK(layers[1].weight_count == 150 && layers[1].bias_count == 6);
        CHECK(layers[1].pad_top == 2 && layers[1].pad_bottom == 2 && layers[1].pad_left == 2 &&
              layers[1].pad_right == 2);
        CHECK(layers[1].stride_h == 1 && layers[1].stride_w == 1 && layers[1].has_bias);
        CHECK(layers[3].size_h == 2 && layers[3].stride_h == 2 && layers[3].stride_w == 2);
        CHECK(layers[3].ceil_mode == 0 && layers[3].pad_top == 0);
        CHECK(layers[4].weight_count + layers[4].bias_count == 2416);
        CHECK(layers[8].weight_count + layers[8].bias_count == 48120);
        CHECK(layers[10].weight_count + layers[10].bias_count == 10164);
        CHECK(layers[12].weight_count + layers[12].bias_count == 850);
        CHECK(layers[12].weight_count == 840 && layers[12].bias_count == 10);
    }
    int64_t total = 0;
    for (int i = 0; i < count; i++)
        total += layers[i].weight_count + layers[i].bias_count;
    CHECK(total == 61706);
    free(layers);
}

/* README.md's worked example 5. */
static void test_spec_parameter_counts(clcnn_context *ctx) {
    layer *layers;
    int count;
    const char *convs = "input channels=3 height=28 width=28\n"
                        "conv filters=8 size=3 pad=same\n"
                        "relu\n"
                        "conv filters=16 size=3 pad=1\n";
    if (parse_ok(ctx, convs, &layers, &count, __LINE__)) {
        CHECK(count == 4);
        CHECK(layers[1].weight_count + layers[1].bias_count == 224);
        CHECK(layers[3].weight_count + layers[3].bias_count == 1168);
        CHECK(shape_is(layers[3].out, 3, 16, 28, 28));
        free(layers);
    }
    const char *denses = "input channels=8 height=14 width=14\n"
                         "flatten\n"
                         "dense units=128\n"
                         "relu\n"
                         "dense units=10\n";
    if (parse_ok(ctx, denses, &layers, &count, __LINE__)) {
        CHECK(count == 5);
        CHECK(shape_is(layers[1].out, 1, 1568, 1, 1));
        CHECK(layers[2].weight_count == 200704 && layers[2].bias_count == 128);
        CHECK(layers[2].weight_count + layers[2].bias_count == 200832);
        CHECK(layers[4].weight_count + layers[4].bias_count == 1290);
        free(layers);
    }
    const char *no_bias = "input channels=3 height=28 width=28\n"
                          "conv filters=8 size=3 bias=false\n"
                          "conv filters=16 size=3 bias=true\n"
                          "flatten\n"
                          "dense units=10 bias=false\n";
    if (parse_ok(ctx, no_bias, &layers, &count, __LINE__)) {
        CHECK(layers[1].weight_count == 216 && layers[1].bias_count == 0 && !layers[1].has_bias);
        CHECK(layers[2].weight_count == 1152 && layers[2].bias_count == 16 && layers[2].has_bias);
        CHECK(shape_is(layers[3].out, 1, 16 * 24 * 24, 1, 1));
        CHECK(layers[4].weight_count == 10 * 16 * 24 * 24 && layers[4].bias_count == 0);
        free(layers);
    }
}

static void test_rectangular(clcnn_context *ctx) {
    layer *layers;
    int count;
    const char *text = "input channels=2 height=10 width=12\n"
                       "conv filters=4 size=3x5 stride=2x1\n"
                       "conv filters=3 size=1 name=pointwise\n"
                       "conv filters=2 size=3x5 stride=2x1 pad=1x2\n"
                       "maxpool size=2x3 stride=1x2\n";
    if (!parse_ok(ctx, text, &layers, &count, __LINE__))
        return;
    const layer *conv = &layers[1];
    CHECK(conv->size_h == 3 && conv->size_w == 5 && conv->stride_h == 2 && conv->stride_w == 1);
    CHECK(shape_is(conv->out, 3, 4, 4, 8)); /* (10-3)/2+1, (12-5)/1+1 */
    CHECK(conv->weight_count == 4 * 2 * 3 * 5 && conv->bias_count == 4);
    const layer *pointwise = &layers[2];
    CHECK(strcmp(pointwise->name, "pointwise") == 0);
    CHECK(shape_is(pointwise->out, 3, 3, 4, 8) && pointwise->weight_count == 12);
    const layer *padded = &layers[3];
    CHECK(padded->pad_top == 1 && padded->pad_bottom == 1);
    CHECK(padded->pad_left == 2 && padded->pad_right == 2);
    CHECK(shape_is(padded->out, 3, 2, 2, 8)); /* (4+2-3)/2+1, (8+4-5)/1+1 */
    CHECK(strcmp(padded->name, "conv3") == 0);
    const layer *pool = &layers[4];
    CHECK(pool->size_h == 2 && pool->size_w == 3 && pool->stride_h == 1 && pool->stride_w == 2);
    CHECK(shape_is(pool->out, 3, 2, 1, 3)); /* (2-2)/1+1, (8-3)/2+1 */
    CHECK(pool->weight_count == 0 && pool->bias_count == 0);
    free(layers);
}

/* One conv layer with pad=same on an input of height x width; checks the
 * resolved padding and output. */
static void check_same(clcnn_context *ctx, int height, int width, const char *size,
                       const char *stride, int top, int bottom, int left, int right, int out_h,
                       int out_w) {
    char text[256];
    snprintf(text, sizeof(text),
             "input channels=1 height=%d width=%d\nconv filters=1 size=%s stride=%s pad=same\n",
             height, width, size, stride);
    layer *layers;
    int count;
    if (!parse_ok(ctx, text, &layers, &count, __LINE__))
        return;
    const layer *conv = &layers[1];
    int ok = conv->pad_top == top && conv->pad_bottom == bottom && conv->pad_left == left &&
             conv->pad_right == right && shape_is(conv->out, 3, 1, out_h, out_w);
    if (!CHECK(ok))
        fprintf(stderr,
                "  same padding of %dx%d, size %s, stride %s: pads %d,%d,%d,%d out %dx%d; "
                "expected %d,%d,%d,%d out %dx%d\n",
                height, width, size, stride, conv->pad_top, conv->pad_bottom, conv->pad_left,
                conv->pad_right, conv->out.h, conv->out.w, top, bottom, left, right, out_h, out_w);
    free(layers);
}

static void test_same_padding(clcnn_context *ctx) {
    check_same(ctx, 7, 7, "3", "1", 1, 1, 1, 1, 7, 7); /* odd kernel: symmetric */
    check_same(ctx, 7, 7, "4", "1", 1, 2, 1, 2, 7, 7); /* even kernel: extra after */
    check_same(ctx, 7, 7, "5", "1", 2, 2, 2, 2, 7, 7);
    check_same(ctx, 6, 6, "3x4", "1", 1, 1, 1, 2, 6, 6); /* rectangular */
    check_same(ctx, 7, 7, "3", "2", 1, 1, 1, 1, 4, 4);   /* stride 2: ceil(7/2) */
    check_same(ctx, 8, 8, "3", "2", 0, 1, 0, 1, 4, 4);   /* TensorFlow puts the odd one after */
    check_same(ctx, 8, 8, "1", "2", 0, 0, 0, 0, 4, 4);   /* no padding needed */
    check_same(ctx, 2, 2, "5", "1", 2, 2, 2, 2, 2, 2);   /* kernel larger than the input */
    check_same(ctx, 9, 10, "3", "3x2", 0, 0, 0, 1, 3, 5);
    check_same(ctx, 1, 1, "1", "1", 0, 0, 0, 0, 1, 1);
}

/* One pooling layer on a 1 x height x height input. */
static void check_pool(clcnn_context *ctx, const char *type, int height, const char *options,
                       int expected) {
    char text[256];
    snprintf(text, sizeof(text), "input channels=3 height=%d width=%d\n%s %s\n", height, height,
             type, options);
    layer *layers;
    int count;
    if (!parse_ok(ctx, text, &layers, &count, __LINE__))
        return;
    int ok = shape_is(layers[1].out, 3, 3, expected, expected);
    if (!CHECK(ok))
        fprintf(stderr, "  %s of %d with '%s' gives %dx%d, expected %d\n", type, height, options,
                layers[1].out.h, layers[1].out.w, expected);
    CHECK(layers[1].pad_bottom == layers[1].pad_top && layers[1].pad_right == layers[1].pad_left);
    free(layers);
}

/* One pooling layer on a 2 x 9 x 10 input with pad=T,L,B,R (and count_pad). */
static void check_pool_sides(clcnn_context *ctx, const char *line, int exclude_pad, int top,
                             int left, int bottom, int right, int out_h, int out_w) {
    char text[256];
    snprintf(text, sizeof(text), "input channels=2 height=9 width=10\n%s\n", line);
    layer *layers;
    int count;
    if (!parse_ok(ctx, text, &layers, &count, __LINE__))
        return;
    const layer *p = &layers[1];
    if (!CHECK(p->pad_top == top && p->pad_left == left && p->pad_bottom == bottom &&
               p->pad_right == right && p->exclude_pad == exclude_pad &&
               shape_is(p->out, 3, 2, out_h, out_w)))
        fprintf(stderr, "  '%s': pads %d,%d,%d,%d, exclude_pad %d, out %dx%d\n", line, p->pad_top,
                p->pad_left, p->pad_bottom, p->pad_right, p->exclude_pad, p->out.h, p->out.w);
    free(layers);
}

static void test_pool(clcnn_context *ctx) {
    check_pool(ctx, "maxpool", 6, "size=2", 3);
    check_pool(ctx, "maxpool", 5, "size=2", 2);
    check_pool(ctx, "maxpool", 5, "size=2 stride=1", 4); /* overlapping */
    check_pool(ctx, "maxpool", 5, "size=2 stride=2 ceil=true", 3);
    check_pool(ctx, "maxpool", 5, "size=2 stride=2 ceil=false", 2);
    check_pool(ctx, "avgpool", 6, "size=3 stride=2 pad=1 ceil=true", 4);
    check_pool(ctx, "avgpool", 6, "size=3 stride=2 pad=1", 3);
    /* ceil would give 4, but the last window would start in the right padding */
    check_pool(ctx, "maxpool", 5, "size=2 stride=2 pad=1 ceil=true", 3);
    check_pool(ctx, "maxpool", 3, "size=2 stride=2 pad=1 ceil=true", 2);
    check_pool(ctx, "maxpool", 8, "size=3 stride=2 ceil=true", 4);
    check_pool(ctx, "maxpool", 8, "size=3 stride=2", 3);
    check_pool(ctx, "maxpool", 7, "size=3 stride=2 ceil=true", 3);
    check_pool(ctx, "avgpool", 4, "size=4", 1);
    check_pool(ctx, "maxpool", 1, "size=2 pad=1", 1);
    check_pool(ctx, "maxpool", 1, "size=2 stride=1 pad=1", 2);
    check_pool(ctx, "maxpool", 112, "size=3 stride=2 pad=1", 56); /* ResNet's stem */

    /* each side on its own: T,L,B,R */
    check_pool_sides(ctx, "maxpool size=3 stride=2 pad=1,0,0,1", 0, 1, 0, 0, 1, 4, 5);
    check_pool_sides(ctx, "avgpool size=2 stride=1 pad=0,1,1,0 count_pad=false", 1, 0, 1, 1, 0, 9,
                     10);
    /* ceil: the last window may start in the leading padding only */
    check_pool_sides(ctx, "maxpool size=3 stride=3 pad=0,0,1,1 ceil=true", 0, 0, 0, 1, 1, 3, 4);

    layer *layers;
    int count;
    const char *text = "input channels=2 height=9 width=10\n"
                       "avgpool size=3x2 pad=1x0 ceil=true\n";
    if (parse_ok(ctx, text, &layers, &count, __LINE__)) {
        const layer *pool = &layers[1];
        CHECK(pool->stride_h == 3 && pool->stride_w == 2 && pool->ceil_mode == 1);
        CHECK(pool->pad_top == 1 && pool->pad_bottom == 1 && pool->pad_left == 0);
        CHECK(shape_is(pool->out, 3, 2, 4, 5)); /* ceil((9+2-3)/3)+1 = 4; 10/2 = 5 */
        CHECK(strcmp(pool->name, "avgpool1") == 0);
        free(layers);
    }
}

static void test_names_and_layout(clcnn_context *ctx) {
    layer *layers;
    int count;
    const char *text = "\r\n"
                       "   # a comment line\r\n"
                       "input channels=1 height=8 width=8 name=image   # trailing comment\r\n"
                       "\r\n"
                       "\tconv\tfilters=2\tsize=3 name=first.conv-A_1\r\n"
                       "conv filters=2 size=3\r\n"
                       "leaky\r\n"
                       "leaky slope=0.2 # steeper\r\n"
                       "leaky slope=-0.5 name=odd\r\n"
                       "sigmoid\r\n"
                       "tanh\r\n"
                       "softmax\r\n"
                       "flatten\r\n"
                       "flatten\r\n"
                       "relu\r\n"
                       "softmax   ";
    if (!parse_ok(ctx, text, &layers, &count, __LINE__))
        return;
    static const char *const names[] = {
        "image", "first.conv-A_1", "conv2",    "leaky1",   "leaky2", "odd",     "sigmoid1",
        "tanh1", "softmax1",       "flatten1", "flatten2", "relu1",  "softmax2"};
    static const int lines[] = {3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    CHECK(count == 13);
    for (int i = 0; i < count && i < 13; i++) {
        if (!CHECK(strcmp(layers[i].name, names[i]) == 0))
            fprintf(stderr, "  layer %d is named '%s', expected '%s'\n", i, layers[i].name,
                    names[i]);
        CHECK(layers[i].line == lines[i]);
    }
    if (count == 13) {
        CHECK(shape_is(layers[2].out, 3, 2, 4, 4));
        CHECK(layers[3].slope == 0.01f && layers[4].slope == 0.2f && layers[5].slope == -0.5f);
        CHECK(shape_is(layers[8].out, 3, 2, 4, 4)); /* softmax keeps a 3-D shape */
        CHECK(shape_is(layers[9].out, 1, 32, 1, 1));
        CHECK(shape_is(layers[10].out, 1, 32, 1, 1)); /* flatten of a vector */
        CHECK(shape_is(layers[12].out, 1, 32, 1, 1));
        CHECK(layers[12].weight_count == 0);
    }
    free(layers);

    /* An input-only network is valid; so is a line far longer than any buffer. */
    size_t long_length = 200000;
    char *long_text = malloc(long_length + 100);
    if (!CHECK(long_text != NULL))
        return;
    strcpy(long_text, "input channels=1 height=2 width=2");
    size_t used = strlen(long_text);
    memset(long_text + used, ' ', long_length);
    strcpy(long_text + used + long_length, "name=x # end\n");
    if (parse_ok(ctx, long_text, &layers, &count, __LINE__)) {
        CHECK(count == 1 && strcmp(layers[0].name, "x") == 0);
        free(layers);
    }
    free(long_text);

    /* Names up to 63 characters. */
    char named[256];
    snprintf(named, sizeof(named), "input channels=1 height=1 width=1 name=%063d\n", 7);
    if (parse_ok(ctx, named, &layers, &count, __LINE__)) {
        CHECK(strlen(layers[0].name) == 63);
        free(layers);
    }
    CHECK(strcmp(layer_type_find("avgpool")->name, "avgpool") == 0);
    CHECK(strcmp(layer_type_find("softmax")->name, "softmax") == 0);
    CHECK(strcmp(layer_type_find("input")->name, "input") == 0);
    CHECK(layer_type_find("Conv") == NULL && layer_type_find("") == NULL);
}

static int error_cases_checked;

/* Stands for "not yet written" in *layers, to see the parser reset it. */
static layer unset_layers;

/* Parses text that must fail with status and a message containing expected. */
static void expect_error(clcnn_context *ctx, const char *text, clcnn_status expected_status,
                         const char *expected, int test_line) {
    layer *layers = &unset_layers;
    int count = -1;
    clcnn_status status = netfile_parse(ctx, text, "net.txt", &layers, &count);
    const char *message = clcnn_last_error(ctx);
    int ok = status == expected_status && strstr(message, expected) != NULL && layers == NULL &&
             count == 0 && strchr(message, '\n') == NULL;
    if (!CHECK(ok)) {
        fprintf(stderr, "  test line %d: got %s \"%s\", expected %s containing \"%s\"\n", test_line,
                clcnn_status_name(status), message, clcnn_status_name(expected_status), expected);
        if (status == CLCNN_OK)
            free(layers);
    }
    error_cases_checked++;
}

#define IN "input channels=1 height=5 width=5\n"

static void test_errors(clcnn_context *ctx) {
    const clcnn_status parse = CLCNN_ERROR_PARSE, shape = CLCNN_ERROR_SHAPE;
    error_cases_checked = 0;

    /* the layer type */
    expect_error(ctx, IN "relu\n\nconvv filters=3 size=3\n", parse,
                 "net.txt:4: unknown layer type 'convv'", __LINE__);
    /* padding each side on its own */
    expect_error(ctx, IN "conv filters=1 size=3 pad=1,1,1\n", parse,
                 "net.txt:2: conv: 'pad' with commas must be four non-negative integers "
                 "top,left,bottom,right, got '1,1,1'",
                 __LINE__);
    expect_error(ctx, IN "conv filters=1 size=3 pad=1,1,1,1,1\n", parse,
                 "'pad' with commas must be four", __LINE__);
    expect_error(ctx, IN "maxpool size=2 pad=0,0,2,0\n", parse,
                 "net.txt:2: maxpool: pad 2x0 is more than half the kernel 2x2", __LINE__);
    expect_error(ctx, IN "maxpool size=2 count_pad=false\n", parse,
                 "net.txt:2: maxpool: unknown key 'count_pad'", __LINE__);
    expect_error(ctx, IN "avgpool size=2 count_pad=no\n", parse,
                 "'count_pad' must be true or false, got 'no'", __LINE__);
    expect_error(ctx, IN "Conv filters=3 size=3\n", parse, "net.txt:2: unknown layer type 'Conv'",
                 __LINE__);
    expect_error(ctx, IN "filters=3 size=3\n", parse, "net.txt:2: unknown layer type 'filters=3'",
                 __LINE__);
    expect_error(ctx, "conv filters=3 size=3\n", parse,
                 "net.txt:1: the first layer must be 'input', got 'conv'", __LINE__);
    expect_error(ctx, "# only a comment\n\nrelu\n", parse,
                 "net.txt:3: the first layer must be 'input'", __LINE__);
    expect_error(ctx, IN "relu\ninput channels=1 height=5 width=5\n", parse,
                 "net.txt:3: 'input' may only be the first layer (the input is on line 1)",
                 __LINE__);
    expect_error(ctx, "", parse, "net.txt: the network has no layers", __LINE__);
    expect_error(ctx, "# nothing\n   \n\t\r\n", parse, "net.txt: the network has no layers",
                 __LINE__);

    /* keys and values */
    expect_error(ctx, IN "relu\n\nconv filtres=3 size=3\n", parse,
                 "net.txt:4: conv: unknown key 'filtres' (expected filters, size, stride, pad, "
                 "bias, filter, dilation, groups, name)",
                 __LINE__);
    expect_error(ctx, IN "relu\n\nconv filter=3 size=3\n", parse,
                 "net.txt:4: conv: unknown filter '3' (expected identity", __LINE__);
    expect_error(ctx, IN "relu slope=0.1\n", parse,
                 "net.txt:2: relu: unknown key 'slope' (expected name)", __LINE__);
    expect_error(ctx, IN "maxpool size=2 bias=false\n", parse,
                 "net.txt:2: maxpool: unknown key 'bias' (expected size, stride, pad, ceil, name)",
                 __LINE__);
    expect_error(ctx, IN "conv filters=3 size=\n", parse,
                 "net.txt:2: conv: missing value for 'size'", __LINE__);
    expect_error(ctx, IN "conv filters=x size=3\n", parse,
                 "net.txt:2: conv: 'filters' must be a positive integer, got 'x'", __LINE__);
    expect_error(ctx, IN "conv filters=+3 size=3\n", parse,
                 "net.txt:2: conv: 'filters' must be a positive integer, got '+3'", __LINE__);
    expect_error(ctx, IN "conv filters=3.0 size=3\n", parse,
                 "net.txt:2: conv: 'filters' must be a positive integer, got '3.0'", __LINE__);
    expect_error(ctx, IN "conv filters=2000000 size=3\n", parse,
                 "net.txt:2: conv: 'filters' must be at most 1000000, got '2000000'", __LINE__);
    expect_error(ctx, IN "conv filters=99999999999999999999999 size=3\n", parse,
                 "net.txt:2: conv: 'filters' must be at most 1000000", __LINE__);
    expect_error(ctx, IN "conv size=3 filters=3 size=3\n", parse,
                 "net.txt:2: conv: duplicate key 'size'", __LINE__);
    expect_error(ctx, IN "conv size=3\n", parse, "net.txt:2: conv: missing required key 'filters'",
                 __LINE__);
    expect_error(ctx, IN "conv filters=3\n", parse, "net.txt:2: conv: missing required key 'size'",
                 __LINE__);
    expect_error(ctx, "input channels=1 height=5\n", parse,
                 "net.txt:1: input: missing required key 'width'", __LINE__);
    expect_error(ctx, "input channels=0 height=5 width=5\n", parse,
                 "net.txt:1: input: 'channels' must be a positive integer, got '0'", __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3 stride=0\n", parse,
                 "net.txt:2: conv: 'stride' must be a positive integer", __LINE__);
    expect_error(ctx, IN "maxpool size=2 stride=1x0\n", parse,
                 "net.txt:2: maxpool: 'stride' must be a positive integer", __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3x\n", parse,
                 "net.txt:2: conv: 'size' must be a positive integer or HxW (e.g. 3 or 3x5), got "
                 "'3x'",
                 __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3x3x3\n", parse,
                 "net.txt:2: conv: 'size' must be a positive integer or HxW", __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3X3\n", parse,
                 "net.txt:2: conv: 'size' must be a positive integer or HxW", __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3 pad=-1\n", parse,
                 "net.txt:2: conv: 'pad' must be a non-negative integer, HxW or 'same', got '-1'",
                 __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3 pad=valid\n", parse,
                 "net.txt:2: conv: 'pad' must be a non-negative integer, HxW or 'same', got "
                 "'valid'",
                 __LINE__);
    expect_error(ctx, IN "maxpool size=3 pad=same\n", parse,
                 "net.txt:2: maxpool: 'pad' must be a non-negative integer or HxW, got 'same'",
                 __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3 bias=yes\n", parse,
                 "net.txt:2: conv: 'bias' must be true or false, got 'yes'", __LINE__);
    expect_error(ctx, IN "dense units=3 bias=True\n", parse,
                 "net.txt:2: dense: 'bias' must be true or false, got 'True'", __LINE__);
    expect_error(ctx, IN "avgpool size=2 ceil=1\n", parse,
                 "net.txt:2: avgpool: 'ceil' must be true or false, got '1'", __LINE__);
    expect_error(ctx, IN "leaky slope=abc\n", parse,
                 "net.txt:2: leaky: 'slope' must be a finite number, got 'abc'", __LINE__);
    expect_error(ctx, IN "leaky slope=0.1x\n", parse,
                 "net.txt:2: leaky: 'slope' must be a finite number, got '0.1x'", __LINE__);
    expect_error(ctx, IN "leaky slope=nan\n", parse,
                 "net.txt:2: leaky: 'slope' must be a finite number, got 'nan'", __LINE__);
    expect_error(ctx, IN "leaky slope=1e300\n", parse,
                 "net.txt:2: leaky: 'slope' must be a finite number, got '1e300'", __LINE__);
    expect_error(ctx, IN "conv filters=3 size=3 pad\n", parse,
                 "net.txt:2: conv: expected key=value (no spaces around '='), got 'pad'", __LINE__);
    expect_error(ctx, IN "conv filters=3 size = 3\n", parse,
                 "net.txt:2: conv: expected key=value (no spaces around '='), got 'size'",
                 __LINE__);
    expect_error(ctx, IN "conv filters=3 =3\n", parse, "net.txt:2: conv: missing key before '='",
                 __LINE__);
    expect_error(ctx, IN "maxpool size=2 pad=2\n", parse,
                 "net.txt:2: maxpool: pad 2x2 is more than half the kernel 2x2", __LINE__);
    expect_error(ctx, IN "avgpool size=3x4 pad=1x3\n", parse,
                 "net.txt:2: avgpool: pad 1x3 is more than half the kernel 3x4", __LINE__);

    /* names */
    expect_error(ctx, IN "relu name=a\nrelu name=a\n", parse,
                 "net.txt:3: layer name 'a' is already used on line 2", __LINE__);
    expect_error(ctx, IN "relu name=relu2\nrelu\n", parse,
                 "net.txt:3: the default name 'relu2' of this layer is already used on line 2",
                 __LINE__);
    expect_error(ctx, IN "relu name=input\n", parse,
                 "net.txt:2: layer name 'input' is already used on line 1", __LINE__);
    expect_error(ctx, IN "relu name=a/b\n", parse,
                 "net.txt:2: relu: 'name' may contain only letters, digits, '_', '-' and '.', got "
                 "'a/b'",
                 __LINE__);
    expect_error(ctx, IN "relu name=x name=y\n", parse, "net.txt:2: relu: duplicate key 'name'",
                 __LINE__);
    char long_name[256];
    snprintf(long_name, sizeof(long_name), IN "relu name=%064d\n", 1);
    expect_error(ctx, long_name, parse,
                 "net.txt:2: relu: 'name' must be at most 63 characters long", __LINE__);

    /* shapes */
    expect_error(ctx, IN "relu\n\n\nconv filters=2 size=7\n", shape,
                 "net.txt:5: conv: kernel 7x7 is larger than the padded input 5x5", __LINE__);
    expect_error(ctx, IN "conv filters=2 size=9x3 pad=1\n", shape,
                 "net.txt:2: conv: kernel 9x3 is larger than the padded input 7x7", __LINE__);
    expect_error(ctx, IN "maxpool size=6\n", shape,
                 "net.txt:2: maxpool: kernel 6x6 with stride 6x6 and pad 0x0 leaves no output for "
                 "the 5x5 input (ceil=true would give one, as PyTorch)",
                 __LINE__);
    expect_error(ctx, "input channels=16 height=5 width=5\nrelu\ndense units=10\n", shape,
                 "net.txt:3: dense: input is 16x5x5, flatten it first", __LINE__);
    expect_error(ctx, "input channels=16 height=5 width=5\nflatten\nconv filters=2 size=1\n", shape,
                 "net.txt:3: conv: input is a vector of 400 values (after flatten); conv needs a "
                 "CxHxW input",
                 __LINE__);
    expect_error(ctx, IN "flatten\ndense units=4\nrelu\navgpool size=2\n", shape,
                 "net.txt:5: avgpool: input is a vector of 4 values (after relu); avgpool needs a "
                 "CxHxW input",
                 __LINE__);
    expect_error(ctx, "input channels=1000000 height=1000000 width=1000000\n", shape,
                 "net.txt:1: input: output 1000000x1000000x1000000 is too large (more than "
                 "2147483647 values per image)",
                 __LINE__);
    expect_error(ctx, "input channels=1 height=1 width=1\nconv filters=1000 size=1 pad=1000000\n",
                 shape, "net.txt:2: conv: output 1000x2000001x2000001 is too large", __LINE__);
    expect_error(ctx, "input channels=1 height=1000 width=1000\nflatten\ndense units=1000000\n",
                 shape, "net.txt:3: dense: 1000000x1000000 weights are too many for one layer",
                 __LINE__);
    expect_error(ctx,
                 "input channels=1000 height=1000 width=1\n"
                 "conv filters=1000000 size=1000x1 pad=0\n",
                 shape, "net.txt:2: conv: 1000000x1000x1000x1 weights are too many", __LINE__);

    /* the source name, and the earliest error wins */
    expect_error(ctx, IN "conv filters=3 size=3 bogus=1\nconvv\n", parse,
                 "net.txt:2: conv: unknown key 'bogus'", __LINE__);

    CHECK(error_cases_checked >= 25);

    /* Long and unprintable text is shown cut short on one line. */
    char garbage[400];
    memset(garbage, 'z', sizeof(garbage));
    garbage[0] = '\x01';
    memcpy(garbage + sizeof(garbage) - 1, "", 1);
    char text[600];
    snprintf(text, sizeof(text), IN "%s\n", garbage);
    layer *layers = NULL;
    int count = 0;
    CHECK(netfile_parse(ctx, text, "net.txt", &layers, &count) == CLCNN_ERROR_PARSE);
    CHECK(strstr(clcnn_last_error(ctx), "unknown layer type '?zzz") != NULL);
    CHECK(strstr(clcnn_last_error(ctx), "...'") != NULL);
    CHECK(strlen(clcnn_last_error(ctx)) < 300);

    /* Bad arguments. */
    CHECK(netfile_parse(ctx, NULL, "net.txt", &layers, &count) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(layers == NULL && count == 0);
    CHECK(netfile_parse(ctx, IN, NULL, &layers, &count) == CLCNN_OK);
    free(layers);
    CHECK(netfile_parse(ctx, "relu\n", NULL, &layers, &count) == CLCNN_ERROR_PARSE);
    CHECK(strstr(clcnn_last_error(ctx), ":1: the first layer") != NULL);
}

/* Random edits of a valid file must give a network or a clean error, never
 * a crash or a leak (run under valgrind). */
static void test_mutations(clcnn_context *ctx) {
    static const char alphabet[] = "0123456789xX=#\n\r\t -.abcdefghijklmnopqrstuvwxyz_";
    const char *base = "input channels=2 height=12 width=11\n"
                       "conv filters=4 size=3x2 stride=1x2 pad=same bias=false\n"
                       "leaky slope=0.1 name=act\n"
                       "maxpool size=2 stride=2 pad=1 ceil=true\n"
                       "avgpool size=2 stride=1\n"
                       "conv filters=3 size=1 pad=0x1\n"
                       "flatten # to a vector\n"
                       "dense units=7 bias=true\n"
                       "sigmoid\n"
                       "tanh\n"
                       "dense units=3\n"
                       "softmax\n";
    size_t base_length = strlen(base);
    test_rng rng = {12345};
    int bad = 0, succeeded = 0, parse_errors = 0, shape_errors = 0;
    char *text = malloc(base_length + 64);
    if (!CHECK(text != NULL))
        return;
    for (int iteration = 0; iteration < 4000; iteration++) {
        memcpy(text, base, base_length + 1);
        size_t length = base_length;
        int edits = test_rand_int(&rng, 1, 4);
        for (int e = 0; e < edits; e++) {
            int kind = test_rand_int(&rng, 0, 3);
            size_t at = (size_t)test_rand_int(&rng, 0, (int)length - 1);
            char c = test_rand_int(&rng, 0, 9) == 0
                         ? (char)test_rand_int(&rng, 1, 255)
                         : alphabet[test_rand_int(&rng, 0, (int)sizeof(alphabet) - 2)];
            if (kind == 0 && length > 1) { /* delete */
                memmove(text + at, text + at + 1, length - at);
                length--;
            } else if (kind == 1) { /* insert */
                memmove(text + at + 1, text + at, length - at + 1);
                text[at] = c;
                length++;
            } else if (kind == 2) { /* replace */
                text[at] = c;
            } else if (text[at] >= '0' && text[at] <= '9') {
                /* Keeps most files valid while changing their shapes. */
                text[at] = (char)('0' + test_rand_int(&rng, 0, 9));
            }
        }
        layer *layers = &unset_layers;
        int count = -1;
        clcnn_status status = netfile_parse(ctx, text, "net.txt", &layers, &count);
        const char *message = clcnn_last_error(ctx);
        int ok;
        if (status == CLCNN_OK) {
            succeeded++;
            ok = layers != NULL && count >= 1 && layers[0].type == layer_type_find("input");
            for (int i = 1; ok && i < count; i++)
                ok = memcmp(&layers[i].in, &layers[i - 1].out, sizeof(shape3)) == 0 &&
                     layers[i].out.c >= 1 && layers[i].out.h >= 1 && layers[i].out.w >= 1 &&
                     layers[i].name[0] != '\0';
            free(layers);
        } else {
            parse_errors += status == CLCNN_ERROR_PARSE;
            shape_errors += status == CLCNN_ERROR_SHAPE;
            if (getenv("SHOW_MUTATIONS"))
                printf("%s\n", message);
            ok = (status == CLCNN_ERROR_PARSE || status == CLCNN_ERROR_SHAPE) && layers == NULL &&
                 count == 0 && strncmp(message, "net.txt:", 8) == 0 && strlen(message) > 10 &&
                 strchr(message, '\n') == NULL;
        }
        if (!ok && bad++ < 3)
            fprintf(stderr, "  mutation %d: status %s, message \"%s\", text:\n%s\n", iteration,
                    clcnn_status_name(status), message, text);
    }
    free(text);
    CHECK(bad == 0);
    /* Both outcomes should be common, or the mutations test little. */
    CHECK(succeeded > 100 && parse_errors > 100 && shape_errors > 10);
    printf("mutations: %d parsed, %d parse errors, %d shape errors\n", succeeded, parse_errors,
           shape_errors);
}

int main(void) {
    clcnn_context *ctx = clcnn_context_create();
    if (!CHECK(ctx != NULL))
        return test_finish();
    test_lenet(ctx);
    test_spec_parameter_counts(ctx);
    test_rectangular(ctx);
    test_same_padding(ctx);
    test_pool(ctx);
    test_names_and_layout(ctx);
    test_errors(ctx);
    test_mutations(ctx);
    clcnn_context_destroy(ctx);
    return test_finish();
}
