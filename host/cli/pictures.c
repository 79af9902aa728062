/* Pictures as PNG: clcnn filters MODEL LAYER OUT.png and clcnn features MODEL
 * IMAGE OUT.png. Values become grey levels (or colours for three channels),
 * each filter or map scaled to its own range, enlarged by whole pixels and
 * labelled with stb_easy_font's small stroke font. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-braces"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

enum { TEXT_SCALE = 2, LINE = 10 * TEXT_SCALE, GAP = 4, MARGIN = 8 };

/* ---- a picture being composed --------------------------------------------------------------- */

typedef struct canvas {
    int width, height;
    unsigned char *rgb; /* width * height * 3, white to begin with */
} canvas;

static int canvas_create(canvas *c, int width, int height) {
    c->width = width;
    c->height = height;
    c->rgb = malloc((size_t)width * height * 3);
    if (!c->rgb)
        return cli_fail("out of memory for a %dx%d picture", width, height);
    memset(c->rgb, 255, (size_t)width * height * 3);
    return 0;
}

static void canvas_pixel(canvas *c, int x, int y, unsigned char r, unsigned char g,
                         unsigned char b) {
    if (x < 0 || y < 0 || x >= c->width || y >= c->height)
        return;
    unsigned char *p = c->rgb + ((size_t)y * c->width + x) * 3;
    p[0] = r;
    p[1] = g;
    p[2] = b;
}

/* Text in black with its top-left corner at (x, y), TEXT_SCALE pixels a unit. */
static void canvas_text(canvas *c, int x, int y, const char *text) {
    static char vertices[64 * 1024];
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", text);
    const int quads = stb_easy_font_print(0, 0, copy, NULL, vertices, sizeof(vertices));
    for (int q = 0; q < quads; q++) {
        /* A quad: four vertices of x, y, z floats and four colour bytes. */
        float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
        for (int v = 0; v < 4; v++) {
            float vx, vy;
            memcpy(&vx, vertices + (q * 4 + v) * 16, sizeof(float));
            memcpy(&vy, vertices + (q * 4 + v) * 16 + 4, sizeof(float));
            x0 = fminf(x0, vx);
            y0 = fminf(y0, vy);
            x1 = fmaxf(x1, vx);
            y1 = fmaxf(y1, vy);
        }
        for (int py = (int)(y0 * TEXT_SCALE); py < (int)(y1 * TEXT_SCALE); py++)
            for (int px = (int)(x0 * TEXT_SCALE); px < (int)(x1 * TEXT_SCALE); px++)
                canvas_pixel(c, x + px, y + py, 0, 0, 0);
    }
}

static int text_width(const char *text) {
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", text);
    return stb_easy_font_width(copy) * TEXT_SCALE;
}

int cli_write_png(const char *path, int width, int height, const unsigned char *rgb) {
    if (!stbi_write_png(path, width, height, 3, rgb, width * 3))
        return cli_fail("%s: cannot write the PNG picture", path);
    return 0;
}

/* A tile: `channels` (1: grey, 3: red, green, blue) planes of h x w values
 * `stride` apart, mapped from [lo, hi] to 0..255 (mid-grey when lo == hi)
 * and enlarged `scale` times, with its top-left corner at (x, y). */
static void canvas_tile(canvas *c, int x, int y, const float *values, int channels, int64_t stride,
                        int h, int w, int scale, float lo, float hi) {
    /* A grey frame just outside, so white values stand out from the background. */
    for (int i = -1; i <= w * scale; i++) {
        canvas_pixel(c, x + i, y - 1, 160, 160, 160);
        canvas_pixel(c, x + i, y + h * scale, 160, 160, 160);
    }
    for (int i = -1; i <= h * scale; i++) {
        canvas_pixel(c, x - 1, y + i, 160, 160, 160);
        canvas_pixel(c, x + w * scale, y + i, 160, 160, 160);
    }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            unsigned char level[3];
            for (int k = 0; k < 3; k++) {
                const float v = values[(channels == 3 ? k : 0) * stride + i * w + j];
                const float t = hi > lo ? (v - lo) / (hi - lo) : 0.5f;
                level[k] = (unsigned char)lrintf(255.0f * fminf(fmaxf(t, 0.0f), 1.0f));
            }
            for (int dy = 0; dy < scale; dy++)
                for (int dx = 0; dx < scale; dx++)
                    canvas_pixel(c, x + j * scale + dx, y + i * scale + dy, level[0], level[1],
                                 level[2]);
        }
}

static void value_range(const float *values, int64_t n, float *lo, float *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(values[i]))
            continue;
        *lo = fminf(*lo, values[i]);
        *hi = fmaxf(*hi, values[i]);
    }
    if (*lo > *hi)
        *lo = *hi = 0.0f;
}

/* The whole-pixel enlargement that brings `size` pixels near `target`. */
static int enlargement(int size, int target) {
    int scale = (target + size / 2) / size;
    return scale < 1 ? 1 : scale;
}

/* ---- loading a network --------------------------------------------------------------------- */

/* A model file, or a network file with --weights DIR or --seed S (default 1:
 * named filters keep their values whatever the seed), told apart by their
 * contents. info (initialised by the caller) gets the model's normalisation
 * and class names, none for a network file. */
static int load_network(clcnn_context *ctx, const cli_args *args, const char *path, clcnn_net **net,
                        clcnn_model_info *info) {
    const char *weights = cli_value(args, "--weights");
    int64_t seed = 1;
    int has_parameters = 0;
    if (cli_int_option(args, "--seed", &seed) != 0)
        return CLI_USAGE;
    if (clcnn_net_load(ctx, path, net, info, &has_parameters) != CLCNN_OK)
        return cli_fail_context(ctx);
    if (has_parameters && (weights || cli_given(args, "--seed")))
        return cli_usage(args->command, "%s is a model: --weights and --seed are for network files",
                         path);
    if (!has_parameters && (weights ? clcnn_net_load_weights(*net, weights)
                                    : clcnn_net_init_weights(*net, (uint64_t)seed)) != CLCNN_OK)
        return cli_fail_context(ctx);
    return 0;
}

static int find_layer(const clcnn_net *net, const char *name, clcnn_layer_info *out) {
    for (int i = 0; i < clcnn_net_layer_count(net); i++) {
        clcnn_net_layer_info(net, i, out);
        if (strcmp(out->name, name) == 0)
            return i;
    }
    return -1;
}

/* ---- clcnn filters -------------------------------------------------------------------------- */

/* Filters of 1 or 3 channels are tiles in a grid (3: in colour); others a
 * row per filter, a tile per channel. Each filter has its own range. */
static int draw_filters(const char *out_path, const char *layer, const float *weights,
                        const int64_t *shape) {
    const int K = (int)shape[0], C = (int)shape[1], R = (int)shape[2], S = (int)shape[3];
    const int whole = C == 1 || C == 3;
    const int columns = whole ? (K < 8 ? K : 8) : C;
    const int rows = whole ? (K + columns - 1) / columns : K;
    const int scale = enlargement(R > S ? R : S, whole || C <= 16 ? 48 : 24);
    const int tile_w = S * scale, tile_h = R * scale;
    const int label_w = whole ? 0 : text_width("000") + GAP;
    const int cell_w = (tile_w > text_width("00") ? tile_w : text_width("00")) + GAP;
    const int cell_h = (whole ? LINE : 0) + tile_h + GAP;
    char title[160];
    snprintf(title, sizeof(title), "%s.weight: %d filter%s of %dx%dx%d%s", layer, K,
             K == 1 ? "" : "s", C, R, S, whole ? "" : " (a row per filter, a column per channel)");
    int width = 2 * MARGIN + label_w + columns * cell_w;
    if (width < 3 * MARGIN + text_width(title))
        width = 3 * MARGIN + text_width(title);
    canvas c;
    if (canvas_create(&c, width, 2 * MARGIN + LINE + GAP + rows * cell_h) != 0)
        return 1;
    canvas_text(&c, MARGIN, MARGIN, title);
    const int64_t filter_size = (int64_t)C * R * S;
    for (int k = 0; k < K; k++) {
        const float *filter = weights + k * filter_size;
        float lo, hi;
        value_range(filter, filter_size, &lo, &hi);
        char label[16];
        snprintf(label, sizeof(label), "%d", k);
        const int row = whole ? k / columns : k;
        const int y = MARGIN + LINE + GAP + row * cell_h;
        if (whole) {
            const int x = MARGIN + (k % columns) * cell_w;
            canvas_text(&c, x, y, label);
            canvas_tile(&c, x, y + LINE, filter, C, (int64_t)R * S, R, S, scale, lo, hi);
            continue;
        }
        canvas_text(&c, MARGIN, y + (tile_h - LINE) / 2, label);
        for (int ch = 0; ch < C; ch++)
            canvas_tile(&c, MARGIN + label_w + ch * cell_w, y, filter + (int64_t)ch * R * S, 1, 0,
                        R, S, scale, lo, hi);
    }
    int result = cli_write_png(out_path, c.width, c.height, c.rgb);
    free(c.rgb);
    return result;
}

static int run_filters(const cli_common *common, const cli_args *args) {
    const char *path = args->positional[0], *layer = args->positional[1],
               *out_path = args->positional[2];
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return CLI_FAILURE;
    clcnn_net *net = NULL;
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    float *weights = NULL;
    clcnn_layer_info l;
    int result = load_network(ctx, args, path, &net, &info);
    if (result == 0 && find_layer(net, layer, &l) < 0)
        result = cli_fail("%s: no layer named '%s'", path, layer);
    if (result == 0 && (strcmp(l.type, "conv") != 0 || l.weight_ndim != 4))
        result = cli_fail("%s: layer '%s' is a %s layer, not a conv layer with weights", path,
                          layer, l.type);
    if (result == 0) {
        char name[256];
        snprintf(name, sizeof(name), "%s.weight", layer);
        weights = malloc(sizeof(float) * (size_t)l.weight_count);
        if (!weights)
            result = cli_fail("out of memory");
        else if (clcnn_net_get_tensor(net, name, weights, l.weight_count) != CLCNN_OK)
            result = cli_fail_context(ctx);
    }
    if (result == 0)
        result = draw_filters(out_path, layer, weights, l.weight_shape);
    free(weights);
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

/* ---- clcnn features ------------------------------------------------------------------------- */

enum { MAX_MAPS = 64 };

/* Every layer's output for the one image of the pass. */
typedef struct capture {
    const clcnn_net *net;
    float **layers;
} capture;

static clcnn_status capture_layer(void *user, int layer_index, const float *values, int64_t first,
                                  int64_t count) {
    capture *state = user;
    clcnn_layer_info info;
    clcnn_net_layer_info(state->net, layer_index, &info);
    if (!state->layers[layer_index])
        return CLCNN_OK;
    memcpy(state->layers[layer_index], values, sizeof(float) * (size_t)cli_layer_size(&info));
    return CLCNN_OK;
}

/* One labelled block of maps: the label line, then up to `columns` tiles a row. */
typedef struct block {
    char label[160];
    const float *values; /* maps of h x w */
    int maps, channels;  /* tiles, and planes per tile (3: one colour tile) */
    int h, w, scale, columns;
} block;

static int block_height(const block *b) {
    const int rows = (b->maps + b->columns - 1) / b->columns;
    return LINE + rows * (b->h * b->scale + GAP) + GAP;
}

static int block_width(const block *b) {
    const int tiles = b->maps < b->columns ? b->maps : b->columns;
    const int width = tiles * (b->w * b->scale + GAP);
    return width > text_width(b->label) ? width : text_width(b->label);
}

static void draw_block(canvas *c, int y, const block *b) {
    canvas_text(c, MARGIN, y, b->label);
    const int64_t plane = (int64_t)b->h * b->w;
    for (int m = 0; m < b->maps; m++) {
        const float *map = b->values + (int64_t)m * b->channels * plane;
        float lo, hi;
        value_range(map, b->channels * plane, &lo, &hi);
        canvas_tile(c, MARGIN + (m % b->columns) * (b->w * b->scale + GAP),
                    y + LINE + (m / b->columns) * (b->h * b->scale + GAP), map, b->channels, plane,
                    b->h, b->w, b->scale, lo, hi);
    }
}

/* Which layers to show: --layer A,B,... or every conv layer. */
static int choose_layers(const cli_args *args, const clcnn_net *net, int *chosen, int *count) {
    const char *list = cli_value(args, "--layer");
    *count = 0;
    if (!list) {
        for (int i = 1; i < clcnn_net_layer_count(net); i++) {
            clcnn_layer_info l;
            clcnn_net_layer_info(net, i, &l);
            if (strcmp(l.type, "conv") == 0)
                chosen[(*count)++] = i;
        }
        if (*count == 0)
            return cli_fail("the network has no conv layer: name layers with --layer");
        return 0;
    }
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", list);
    for (char *name = strtok(copy, ","); name; name = strtok(NULL, ",")) {
        clcnn_layer_info l;
        const int index = find_layer(net, name, &l);
        if (index < 0)
            return cli_fail("--layer: the network has no layer named '%s'", name);
        if (l.ndim != 3)
            return cli_fail("--layer: '%s' gives a vector of %d, not feature maps", name,
                            l.shape[0]);
        chosen[(*count)++] = index;
    }
    return 0;
}

static int draw_features(const char *out_path, const clcnn_net *net, const float *image,
                         int64_t index, float **layers, const int *chosen, int chosen_count) {
    block *blocks = calloc((size_t)chosen_count + 1, sizeof(block));
    if (!blocks)
        return cli_fail("out of memory");
    clcnn_layer_info input;
    clcnn_net_layer_info(net, 0, &input);
    const int columns = 8;
    block *b = &blocks[0];
    b->values = image;
    b->channels = input.shape[0] == 3 ? 3 : 1;
    b->maps = input.shape[0] == 3 ? 1 : input.shape[0];
    b->h = input.shape[1];
    b->w = input.shape[2];
    b->scale = enlargement(b->h, 112);
    b->columns = columns;
    snprintf(b->label, sizeof(b->label), "input (image %lld): %dx%dx%d", (long long)index,
             input.shape[0], input.shape[1], input.shape[2]);
    int width = block_width(b), height = block_height(b);
    for (int i = 0; i < chosen_count; i++) {
        clcnn_layer_info l;
        clcnn_net_layer_info(net, chosen[i], &l);
        b = &blocks[i + 1];
        b->values = layers[chosen[i]];
        b->channels = 1;
        b->maps = l.shape[0] < MAX_MAPS ? l.shape[0] : MAX_MAPS;
        b->h = l.shape[1];
        b->w = l.shape[2];
        b->scale = enlargement(b->h, 72);
        b->columns = columns;
        snprintf(b->label, sizeof(b->label), "%s (%s): %d map%s of %dx%d%s", l.name, l.type,
                 l.shape[0], l.shape[0] == 1 ? "" : "s", l.shape[1], l.shape[2],
                 l.shape[0] > MAX_MAPS ? ", the first 64" : "");
        if (block_width(b) > width)
            width = block_width(b);
        height += block_height(b);
    }
    canvas c;
    int result = canvas_create(&c, width + 2 * MARGIN, height + 2 * MARGIN);
    if (result == 0) {
        int y = MARGIN;
        for (int i = 0; i <= chosen_count; i++) {
            draw_block(&c, y, &blocks[i]);
            y += block_height(&blocks[i]);
        }
        result = cli_write_png(out_path, c.width, c.height, c.rgb);
        free(c.rgb);
    }
    free(blocks);
    return result;
}

static int run_features(const cli_common *common, const cli_args *args) {
    const char *path = args->positional[0], *image_path = args->positional[1],
               *out_path = args->positional[2];
    int64_t index = 0;
    if (cli_int_option(args, "--index", &index) != 0)
        return CLI_USAGE;
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return CLI_FAILURE;
    clcnn_net *net = NULL;
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    float *images = NULL, *output = NULL, **layers = NULL;
    int64_t count = 0;
    int *chosen = NULL, chosen_count = 0, layer_count = 0;
    int result = load_network(ctx, args, path, &net, &info);
    if (result == 0)
        result = cli_read_image_for(ctx, net, image_path, &images, &count);
    if (result == 0 && index >= count)
        result = cli_fail("%s: --index %lld, but it holds %lld image%s", image_path,
                          (long long)index, (long long)count, count == 1 ? "" : "s");
    if (result == 0) {
        layer_count = clcnn_net_layer_count(net);
        chosen = calloc((size_t)layer_count, sizeof(int));
        layers = calloc((size_t)layer_count, sizeof(float *));
        output = malloc(sizeof(float) * (size_t)clcnn_net_output_size(net));
        result = chosen && layers && output ? choose_layers(args, net, chosen, &chosen_count)
                                            : cli_fail("out of memory");
    }
    for (int i = 0; result == 0 && i < chosen_count; i++) {
        clcnn_layer_info l;
        clcnn_net_layer_info(net, chosen[i], &l);
        if (!layers[chosen[i]])
            layers[chosen[i]] =
                malloc(sizeof(float) * (size_t)l.shape[0] * l.shape[1] * l.shape[2]);
        if (!layers[chosen[i]])
            result = cli_fail("out of memory");
    }
    if (result == 0) {
        const int64_t size = clcnn_net_input_size(net);
        float *image = images + index * size;
        float *normalized = malloc(sizeof(float) * (size_t)size);
        capture state = {net, layers};
        if (!normalized) {
            result = cli_fail("out of memory");
        } else {
            /* The picture shows the image as read; the network gets it normalised. */
            memcpy(normalized, image, sizeof(float) * (size_t)size);
            clcnn_layer_info input;
            clcnn_net_layer_info(net, 0, &input);
            clcnn_model_info_normalize(&info, normalized, 1, input.shape[0],
                                       (int64_t)input.shape[1] * input.shape[2]);
            if (clcnn_net_forward(net, normalized, 1, output, capture_layer, &state) != CLCNN_OK)
                result = cli_fail_context(ctx);
            free(normalized);
        }
        if (result == 0)
            result = draw_features(out_path, net, image, index, layers, chosen, chosen_count);
    }
    for (int i = 0; layers && i < layer_count; i++)
        free(layers[i]);
    free(layers);
    free(chosen);
    free(output);
    free(images);
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

#define NETWORK_OPTIONS                                                                            \
    {"--weights", "DIR", "with a network file: read the weights from DIR"}, {                      \
        "--seed", "S", "with a network file: initialise the weights from S (default 1)"            \
    }

const cli_command cli_command_filters = {
    "filters",
    "MODEL LAYER OUT.png",
    3,
    3,
    "draw a conv layer's filters as a PNG picture",
    "MODEL is a model file, or a network file whose weights come from --weights or --seed "
    "(named filters keep their values). Filters of 1 or 3 channels are drawn as a grid "
    "(3 channels in colour), others as a row per filter with a tile per channel. Each filter is "
    "scaled to its own range, black its smallest weight and white its largest, and enlarged by "
    "whole pixels.\n",
    (const cli_option[]){NETWORK_OPTIONS, {NULL, NULL, NULL}},
    run_filters};

const cli_command cli_command_features = {
    "features",
    "MODEL IMAGE OUT.png",
    3,
    3,
    "draw an image and its feature maps at each conv layer as a PNG picture",
    "IMAGE is read as predict reads it (pictures converted and resized to the network's input; "
    ".npy and IDX batches, of which --index picks one). The picture shows the image as read, "
    "then, labelled, the output of every conv layer (or of the layers --layer names), each map "
    "scaled to its own range and enlarged by whole pixels (at most 64 maps a layer). A model's "
    "normalisation is applied before the pass.\n",
    (const cli_option[]){{"--layer", "L[,L...]", "show these layers instead of every conv layer"},
                         {"--index", "N", "the image of a batch file to use (default 0)"},
                         NETWORK_OPTIONS,
                         {NULL, NULL, NULL}},
    run_features};
