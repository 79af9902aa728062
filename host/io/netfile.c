/* Network files: one layer per line, read into layers whose shapes, padding
 * and parameter counts are worked out here, so that everything after parsing
 * can trust them. The format is described in SPEC.md under "Network files". */
#include "internal.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Filters, units, window sizes, strides, padding and input dimensions. Far
 * beyond any real network, and small enough that sums of two never overflow. */
#define MAX_DIMENSION 1000000
/* Values per image of one layer, and weights of one layer: the kernels index
 * them with int. */
#define MAX_VALUES ((int64_t)INT_MAX)
/* Names are checked for uniqueness against every earlier layer. */
#define MAX_LAYERS 10000
#define MAX_NAME_LENGTH 63
/* Keys of the layer type that takes the most. */
#define MAX_KEYS 8

static const char *const type_names[LAYER_TYPE_COUNT] = {
    [LAYER_INPUT] = "input",     [LAYER_CONV] = "conv",       [LAYER_MAXPOOL] = "maxpool",
    [LAYER_AVGPOOL] = "avgpool", [LAYER_RELU] = "relu",       [LAYER_LEAKY] = "leaky",
    [LAYER_SIGMOID] = "sigmoid", [LAYER_TANH] = "tanh",       [LAYER_FLATTEN] = "flatten",
    [LAYER_DENSE] = "dense",     [LAYER_SOFTMAX] = "softmax",
};

const char *layer_type_name(layer_type type) {
    if ((int)type < 0 || type >= LAYER_TYPE_COUNT)
        return "unknown";
    return type_names[type];
}

/* The keys each layer type takes, "name" last; NULL-terminated. */
static const char *const input_keys[] = {"channels", "height", "width", "name", NULL};
static const char *const conv_keys[] = {"filters", "size", "stride", "pad",
                                        "bias",    "filter", "name", NULL};
static const char *const pool_keys[] = {"size", "stride", "pad", "ceil", "name", NULL};
static const char *const dense_keys[] = {"units", "bias", "name", NULL};
static const char *const leaky_keys[] = {"slope", "name", NULL};
static const char *const name_only_keys[] = {"name", NULL};

static const char *const *keys_of_type(layer_type type) {
    switch (type) {
    case LAYER_INPUT:
        return input_keys;
    case LAYER_CONV:
        return conv_keys;
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL:
        return pool_keys;
    case LAYER_DENSE:
        return dense_keys;
    case LAYER_LEAKY:
        return leaky_keys;
    default:
        return name_only_keys;
    }
}

/* Where the parser is, for error messages. */
typedef struct parse_state {
    clcnn_context *ctx;
    const char *source_name;
    int line;
    layer_type type; /* of the layer on this line, once known */
} parse_state;

/* "<source>:<line>: <reason>" */
static clcnn_status line_error(const parse_state *state, clcnn_status status, const char *format,
                               ...) __attribute__((format(printf, 3, 4)));
static clcnn_status line_error(const parse_state *state, clcnn_status status, const char *format,
                               ...) {
    char reason[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    return set_error(state->ctx, status, "%s:%d: %s", state->source_name, state->line, reason);
}

/* "<source>:<line>: <layer type>: <reason>" */
static clcnn_status layer_error(const parse_state *state, clcnn_status status, const char *format,
                                ...) __attribute__((format(printf, 3, 4)));
static clcnn_status layer_error(const parse_state *state, clcnn_status status, const char *format,
                                ...) {
    char reason[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    return set_error(state->ctx, status, "%s:%d: %s: %s", state->source_name, state->line,
                     layer_type_name(state->type), reason);
}

/* Text from the file shown inside an error message: cut short so that the
 * message stays one readable line, and with every byte that is not printable
 * ASCII shown as '?' so that the message is always valid text. Nothing that
 * the parser accepts is outside ASCII, so nothing useful is hidden. */
typedef struct quoted_text {
    char text[72];
} quoted_text;

static quoted_text quote(const char *text) {
    enum { SHOWN = 60 };
    quoted_text quoted;
    size_t length = strlen(text);
    size_t shown = length <= SHOWN ? length : SHOWN;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)text[i];
        quoted.text[i] = (c < 0x20 || c > 0x7E) ? '?' : (char)c;
    }
    if (shown < length)
        memcpy(quoted.text + shown, "...", 4);
    else
        quoted.text[shown] = '\0';
    return quoted;
}

/* ---- values -------------------------------------------------------------- */

typedef enum number_status { NUMBER_OK, NUMBER_INVALID, NUMBER_TOO_LARGE } number_status;

/* Reads text[0..length) as a decimal number from 0 to MAX_DIMENSION. Only
 * digits are accepted, so signs, spaces, "3.0" and "0x10" are refused. */
static number_status read_number(const char *text, size_t length, int *out) {
    if (length == 0)
        return NUMBER_INVALID;
    long value = 0;
    int too_large = 0;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return NUMBER_INVALID;
        if (!too_large) {
            value = value * 10 + (text[i] - '0');
            too_large = value > MAX_DIMENSION;
        }
    }
    if (too_large)
        return NUMBER_TOO_LARGE;
    *out = (int)value;
    return NUMBER_OK;
}

/* Reads "N" as (N, N) or "HxW" as (H, W). */
static number_status read_number_pair(const char *text, int *first, int *second) {
    const char *separator = strchr(text, 'x');
    if (!separator) {
        number_status status = read_number(text, strlen(text), first);
        *second = *first;
        return status;
    }
    number_status first_status = read_number(text, (size_t)(separator - text), first);
    number_status second_status = read_number(separator + 1, strlen(separator + 1), second);
    if (first_status == NUMBER_INVALID || second_status == NUMBER_INVALID)
        return NUMBER_INVALID;
    if (first_status == NUMBER_TOO_LARGE || second_status == NUMBER_TOO_LARGE)
        return NUMBER_TOO_LARGE;
    return NUMBER_OK;
}

static clcnn_status parse_positive(const parse_state *state, const char *key, const char *value,
                                   int *out) {
    int number = 0;
    number_status status = read_number(value, strlen(value), &number);
    if (status == NUMBER_TOO_LARGE)
        return layer_error(state, CLCNN_ERROR_PARSE, "'%s' must be at most %d, got '%s'", key,
                           MAX_DIMENSION, quote(value).text);
    if (status == NUMBER_INVALID || number < 1)
        return layer_error(state, CLCNN_ERROR_PARSE, "'%s' must be a positive integer, got '%s'",
                           key, quote(value).text);
    *out = number;
    return CLCNN_OK;
}

/* Window sizes and strides: "3" or "3x5". */
static clcnn_status parse_positive_pair(const parse_state *state, const char *key,
                                        const char *value, int *first, int *second) {
    int h = 0, w = 0;
    number_status status = read_number_pair(value, &h, &w);
    if (status == NUMBER_TOO_LARGE)
        return layer_error(state, CLCNN_ERROR_PARSE, "'%s' must be at most %d, got '%s'", key,
                           MAX_DIMENSION, quote(value).text);
    if (status == NUMBER_INVALID || h < 1 || w < 1)
        return layer_error(state, CLCNN_ERROR_PARSE,
                           "'%s' must be a positive integer or HxW (e.g. 3 or 3x5), got '%s'", key,
                           quote(value).text);
    *first = h;
    *second = w;
    return CLCNN_OK;
}

/* Padding: "1" or "1x2", and for conv also "same" (*same set, sizes left alone). */
static clcnn_status parse_padding(const parse_state *state, const char *value, int allow_same,
                                  int *same, int *first, int *second) {
    *same = 0;
    if (allow_same && strcmp(value, "same") == 0) {
        *same = 1;
        return CLCNN_OK;
    }
    int h = 0, w = 0;
    number_status status = read_number_pair(value, &h, &w);
    if (status == NUMBER_TOO_LARGE)
        return layer_error(state, CLCNN_ERROR_PARSE, "'pad' must be at most %d, got '%s'",
                           MAX_DIMENSION, quote(value).text);
    if (status == NUMBER_INVALID)
        return layer_error(state, CLCNN_ERROR_PARSE,
                           "'pad' must be a non-negative integer%s, got '%s'",
                           allow_same ? ", HxW or 'same'" : " or HxW", quote(value).text);
    *first = h;
    *second = w;
    return CLCNN_OK;
}

static clcnn_status parse_boolean(const parse_state *state, const char *key, const char *value,
                                  int *out) {
    if (strcmp(value, "true") == 0) {
        *out = 1;
        return CLCNN_OK;
    }
    if (strcmp(value, "false") == 0) {
        *out = 0;
        return CLCNN_OK;
    }
    return layer_error(state, CLCNN_ERROR_PARSE, "'%s' must be true or false, got '%s'", key,
                       quote(value).text);
}

static clcnn_status parse_slope(const parse_state *state, const char *value, float *out) {
    char *end = NULL;
    double number = strtod(value, &end);
    /* Also refuses values that would become infinite as a float. */
    if (end == value || *end != '\0' || !isfinite(number) || fabs(number) > FLT_MAX)
        return layer_error(state, CLCNN_ERROR_PARSE, "'slope' must be a finite number, got '%s'",
                           quote(value).text);
    *out = (float)number;
    return CLCNN_OK;
}

/* Names become file names (<name>.weight.npy), hence the small alphabet. */
static clcnn_status check_name(const parse_state *state, const char *value) {
    size_t length = strlen(value);
    if (length > MAX_NAME_LENGTH)
        return layer_error(state, CLCNN_ERROR_PARSE,
                           "'name' must be at most %d characters long, got '%s'", MAX_NAME_LENGTH,
                           quote(value).text);
    for (size_t i = 0; i < length; i++) {
        char c = value[i];
        int allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.';
        if (!allowed)
            return layer_error(
                state, CLCNN_ERROR_PARSE,
                "'name' may contain only letters, digits, '_', '-' and '.', got '%s'",
                quote(value).text);
    }
    return CLCNN_OK;
}

/* ---- one line ------------------------------------------------------------ */

/* The key=value options of one line; values[i] belongs to keys[i] and is
 * NULL when the key was not given. */
typedef struct line_options {
    const char *const *keys;
    const char *values[MAX_KEYS];
} line_options;

static const char *option_value(const line_options *options, const char *key) {
    for (int i = 0; options->keys[i]; i++)
        if (strcmp(options->keys[i], key) == 0)
            return options->values[i];
    return NULL;
}

static clcnn_status require_option(const parse_state *state, const line_options *options,
                                   const char *key, const char **value) {
    *value = option_value(options, key);
    if (!*value)
        return layer_error(state, CLCNN_ERROR_PARSE, "missing required key '%s'", key);
    return CLCNN_OK;
}

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The next blank-separated word from *cursor, NUL-terminated in place, or
 * NULL at the end of the line. */
static char *next_word(char **cursor) {
    char *p = *cursor;
    while (is_blank(*p))
        p++;
    if (*p == '\0') {
        *cursor = p;
        return NULL;
    }
    char *word = p;
    while (*p != '\0' && !is_blank(*p))
        p++;
    if (*p != '\0')
        *p++ = '\0';
    *cursor = p;
    return word;
}

static clcnn_status read_options(const parse_state *state, char *cursor, line_options *options) {
    char *word;
    while ((word = next_word(&cursor)) != NULL) {
        char *equals = strchr(word, '=');
        if (!equals)
            return layer_error(state, CLCNN_ERROR_PARSE,
                               "expected key=value (no spaces around '='), got '%s'",
                               quote(word).text);
        if (equals == word)
            return layer_error(state, CLCNN_ERROR_PARSE, "missing key before '=' in '%s'",
                               quote(word).text);
        *equals = '\0';
        const char *key = word;
        const char *value = equals + 1;

        int index = -1;
        for (int i = 0; options->keys[i]; i++)
            if (strcmp(options->keys[i], key) == 0)
                index = i;
        if (index < 0) {
            char expected[128] = "";
            for (int i = 0; options->keys[i]; i++) {
                if (i > 0)
                    strcat(expected, ", ");
                strcat(expected, options->keys[i]);
            }
            return layer_error(state, CLCNN_ERROR_PARSE, "unknown key '%s' (expected %s)",
                               quote(key).text, expected);
        }
        if (options->values[index])
            return layer_error(state, CLCNN_ERROR_PARSE, "duplicate key '%s'", key);
        if (*value == '\0')
            return layer_error(state, CLCNN_ERROR_PARSE, "missing value for '%s'", key);
        options->values[index] = value;
    }
    return CLCNN_OK;
}

/* Fills the layer's options from the line, defaults where a key is absent. */
static clcnn_status apply_options(const parse_state *state, const line_options *options,
                                  layer *current, int *same_padding) {
    clcnn_status status = CLCNN_OK;
    const char *value;
    *same_padding = 0;

    switch (current->type) {
    case LAYER_INPUT: {
        int channels = 0, height = 0, width = 0;
        if ((status = require_option(state, options, "channels", &value)) ||
            (status = parse_positive(state, "channels", value, &channels)) ||
            (status = require_option(state, options, "height", &value)) ||
            (status = parse_positive(state, "height", value, &height)) ||
            (status = require_option(state, options, "width", &value)) ||
            (status = parse_positive(state, "width", value, &width)))
            return status;
        current->out = (shape3){.ndim = 3, .c = channels, .h = height, .w = width};
        current->in = current->out;
        break;
    }
    case LAYER_CONV: {
        const char *filter = option_value(options, "filter");
        if (filter) {
            current->named_filter = named_filter_index(filter);
            if (current->named_filter < 0)
                return layer_error(state, CLCNN_ERROR_PARSE,
                                   "unknown filter '%s' (expected identity, prewitt_v, prewitt_h, "
                                   "sobel_v, sobel_h, laplacian_4, laplacian_8, sharpen, box_blur "
                                   "or gaussian_blur)",
                                   filter);
        }
        if ((status = require_option(state, options, "filters", &value)) ||
            (status = parse_positive(state, "filters", value, &current->filters)))
            return status;
        /* A named filter is 3x3, so its size may go unsaid. */
        current->size_h = current->size_w = 3;
        if (!(filter && !option_value(options, "size")) &&
            ((status = require_option(state, options, "size", &value)) ||
             (status = parse_positive_pair(state, "size", value, &current->size_h,
                                           &current->size_w))))
            return status;
        if (filter && (current->size_h != 3 || current->size_w != 3))
            return layer_error(state, CLCNN_ERROR_PARSE, "filter=%s is 3x3, but size is %dx%d",
                               filter, current->size_h, current->size_w);
        current->stride_h = current->stride_w = 1;
        if ((value = option_value(options, "stride")) &&
            (status = parse_positive_pair(state, "stride", value, &current->stride_h,
                                          &current->stride_w)))
            return status;
        int pad_h = 0, pad_w = 0;
        if ((value = option_value(options, "pad")) &&
            (status = parse_padding(state, value, 1, same_padding, &pad_h, &pad_w)))
            return status;
        current->pad_top = current->pad_bottom = pad_h;
        current->pad_left = current->pad_right = pad_w;
        current->has_bias = 1;
        if ((value = option_value(options, "bias")) &&
            (status = parse_boolean(state, "bias", value, &current->has_bias)))
            return status;
        break;
    }
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL: {
        if ((status = require_option(state, options, "size", &value)) ||
            (status =
                 parse_positive_pair(state, "size", value, &current->size_h, &current->size_w)))
            return status;
        current->stride_h = current->size_h;
        current->stride_w = current->size_w;
        if ((value = option_value(options, "stride")) &&
            (status = parse_positive_pair(state, "stride", value, &current->stride_h,
                                          &current->stride_w)))
            return status;
        int pad_h = 0, pad_w = 0;
        if ((value = option_value(options, "pad")) &&
            (status = parse_padding(state, value, 0, same_padding, &pad_h, &pad_w)))
            return status;
        /* PyTorch's rule: without it a window could lie wholly in the padding. */
        if (pad_h > current->size_h / 2 || pad_w > current->size_w / 2)
            return layer_error(state, CLCNN_ERROR_PARSE,
                               "pad %dx%d is more than half the kernel %dx%d "
                               "(pad must be at most size/2 in each direction)",
                               pad_h, pad_w, current->size_h, current->size_w);
        current->pad_top = current->pad_bottom = pad_h;
        current->pad_left = current->pad_right = pad_w;
        if ((value = option_value(options, "ceil")) &&
            (status = parse_boolean(state, "ceil", value, &current->ceil_mode)))
            return status;
        break;
    }
    case LAYER_DENSE:
        if ((status = require_option(state, options, "units", &value)) ||
            (status = parse_positive(state, "units", value, &current->units)))
            return status;
        current->has_bias = 1;
        if ((value = option_value(options, "bias")) &&
            (status = parse_boolean(state, "bias", value, &current->has_bias)))
            return status;
        break;
    case LAYER_LEAKY:
        current->slope = 0.01f;
        if ((value = option_value(options, "slope")) &&
            (status = parse_slope(state, value, &current->slope)))
            return status;
        break;
    default:
        break;
    }

    if ((value = option_value(options, "name")) && (status = check_name(state, value)))
        return status;
    return CLCNN_OK;
}

/* ---- shapes -------------------------------------------------------------- */

/* The product of factors (each from 1 to 2^31), or -1 when it exceeds limit. */
static int64_t bounded_product(const int64_t *factors, int count, int64_t limit) {
    int64_t product = 1;
    for (int i = 0; i < count; i++) {
        if (factors[i] > limit / product)
            return -1;
        product *= factors[i];
    }
    return product;
}

static clcnn_status check_output_size(const parse_state *state, int64_t c, int64_t h, int64_t w) {
    int64_t factors[3] = {c, h, w};
    if (bounded_product(factors, 3, MAX_VALUES) < 0)
        return layer_error(state, CLCNN_ERROR_SHAPE,
                           "output %lldx%lldx%lld is too large (more than %lld values per image)",
                           (long long)c, (long long)h, (long long)w, (long long)MAX_VALUES);
    return CLCNN_OK;
}

static clcnn_status need_image_input(const parse_state *state, const layer *previous) {
    if (previous->out.ndim == 3)
        return CLCNN_OK;
    return layer_error(state, CLCNN_ERROR_SHAPE,
                       "input is a vector of %d values (after %s); %s needs a CxHxW input",
                       previous->out.c, layer_type_name(previous->type),
                       layer_type_name(state->type));
}

/* 'same' along one axis: as many outputs as ceil(input / stride), the padding
 * split with the odd one after (PyTorch for stride 1, TensorFlow otherwise). */
static void same_padding(int input, int size, int stride, int *before, int *after) {
    int64_t outputs = ((int64_t)input + stride - 1) / stride;
    int64_t total = (outputs - 1) * stride + size - input;
    if (total < 0)
        total = 0;
    *before = (int)(total / 2);
    *after = (int)(total - total / 2);
}

/* Pooling outputs along one axis, as PyTorch counts them. */
static int64_t pool_outputs(int64_t input, int size, int stride, int pad, int ceil_mode) {
    int64_t span = input + 2 * (int64_t)pad - size;
    if (!ceil_mode)
        return span / stride + 1;
    int64_t outputs = (span + stride - 1) / stride + 1;
    /* The last window must start inside the input or its leading padding. */
    if ((outputs - 1) * stride >= input + pad)
        outputs--;
    return outputs;
}

static clcnn_status infer_conv(const parse_state *state, layer *current, int same) {
    shape3 in = current->in;
    if (same) {
        same_padding(in.h, current->size_h, current->stride_h, &current->pad_top,
                     &current->pad_bottom);
        same_padding(in.w, current->size_w, current->stride_w, &current->pad_left,
                     &current->pad_right);
    }
    int64_t padded_h = (int64_t)in.h + current->pad_top + current->pad_bottom;
    int64_t padded_w = (int64_t)in.w + current->pad_left + current->pad_right;
    if (current->size_h > padded_h || current->size_w > padded_w)
        return layer_error(
            state, CLCNN_ERROR_SHAPE, "kernel %dx%d is larger than the padded input %lldx%lld",
            current->size_h, current->size_w, (long long)padded_h, (long long)padded_w);
    int64_t out_h = (padded_h - current->size_h) / current->stride_h + 1;
    int64_t out_w = (padded_w - current->size_w) / current->stride_w + 1;
    clcnn_status status = check_output_size(state, current->filters, out_h, out_w);
    if (status)
        return status;
    current->out = (shape3){.ndim = 3, .c = current->filters, .h = (int)out_h, .w = (int)out_w};

    int64_t factors[4] = {current->filters, in.c, current->size_h, current->size_w};
    current->weight_count = bounded_product(factors, 4, MAX_VALUES);
    if (current->weight_count < 0)
        return layer_error(state, CLCNN_ERROR_SHAPE,
                           "%dx%dx%dx%d weights are too many for one layer (at most %lld)",
                           current->filters, in.c, current->size_h, current->size_w,
                           (long long)MAX_VALUES);
    current->bias_count = current->has_bias ? current->filters : 0;
    return CLCNN_OK;
}

static clcnn_status infer_pool(const parse_state *state, layer *current) {
    shape3 in = current->in;
    int64_t padded_h = (int64_t)in.h + 2 * current->pad_top;
    int64_t padded_w = (int64_t)in.w + 2 * current->pad_left;
    if (current->size_h > padded_h || current->size_w > padded_w)
        return layer_error(
            state, CLCNN_ERROR_SHAPE, "kernel %dx%d is larger than the padded input %lldx%lld",
            current->size_h, current->size_w, (long long)padded_h, (long long)padded_w);
    int64_t out_h = pool_outputs(in.h, current->size_h, current->stride_h, current->pad_top,
                                 current->ceil_mode);
    int64_t out_w = pool_outputs(in.w, current->size_w, current->stride_w, current->pad_left,
                                 current->ceil_mode);
    clcnn_status status = check_output_size(state, in.c, out_h, out_w);
    if (status)
        return status;
    current->out = (shape3){.ndim = 3, .c = in.c, .h = (int)out_h, .w = (int)out_w};
    return CLCNN_OK;
}

static clcnn_status infer_dense(const parse_state *state, layer *current) {
    shape3 in = current->in;
    if (in.ndim != 1)
        return layer_error(state, CLCNN_ERROR_SHAPE, "input is %dx%dx%d, flatten it first", in.c,
                           in.h, in.w);
    int64_t factors[2] = {current->units, in.c};
    current->weight_count = bounded_product(factors, 2, MAX_VALUES);
    if (current->weight_count < 0)
        return layer_error(state, CLCNN_ERROR_SHAPE,
                           "%dx%d weights are too many for one layer (at most %lld)",
                           current->units, in.c, (long long)MAX_VALUES);
    current->bias_count = current->has_bias ? current->units : 0;
    current->out = (shape3){.ndim = 1, .c = current->units, .h = 1, .w = 1};
    return CLCNN_OK;
}

/* Works out the output shape and parameter counts of current, whose input is
 * the output of previous (NULL for the input layer). */
static clcnn_status infer_shape(const parse_state *state, layer *current, const layer *previous,
                                int same) {
    clcnn_status status;
    if (current->type == LAYER_INPUT)
        return check_output_size(state, current->out.c, current->out.h, current->out.w);

    current->in = previous->out;
    switch (current->type) {
    case LAYER_CONV:
        if ((status = need_image_input(state, previous)))
            return status;
        return infer_conv(state, current, same);
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL:
        if ((status = need_image_input(state, previous)))
            return status;
        return infer_pool(state, current);
    case LAYER_DENSE:
        return infer_dense(state, current);
    case LAYER_FLATTEN:
        /* Earlier layers were checked to hold at most MAX_VALUES values. */
        current->out = (shape3){.ndim = 1, .c = (int)shape3_count(current->in), .h = 1, .w = 1};
        return CLCNN_OK;
    default: /* element-wise layers and softmax keep their input's shape */
        current->out = current->in;
        return CLCNN_OK;
    }
}

/* ---- the whole file ------------------------------------------------------ */

/* Parses one line (comment already removed) into *current. *is_layer is 0 for
 * a blank line. type_counts numbers the layers of each type for default names. */
static clcnn_status parse_line(parse_state *state, char *line, const layer *layers, int layer_count,
                               int *type_counts, layer *current, int *is_layer) {
    *is_layer = 0;
    char *cursor = line;
    char *type_word = next_word(&cursor);
    if (!type_word)
        return CLCNN_OK;

    int type = 0;
    while (type < LAYER_TYPE_COUNT && strcmp(type_names[type], type_word) != 0)
        type++;
    if (type == LAYER_TYPE_COUNT)
        return line_error(state, CLCNN_ERROR_PARSE,
                          "unknown layer type '%s' (expected input, conv, maxpool, avgpool, relu, "
                          "leaky, sigmoid, tanh, flatten, dense or softmax)",
                          quote(type_word).text);
    if (layer_count == 0 && type != LAYER_INPUT)
        return line_error(state, CLCNN_ERROR_PARSE, "the first layer must be 'input', got '%s'",
                          type_word);
    if (layer_count > 0 && type == LAYER_INPUT)
        return line_error(state, CLCNN_ERROR_PARSE,
                          "'input' may only be the first layer (the input is on line %d)",
                          layers[0].line);
    if (layer_count >= MAX_LAYERS)
        return line_error(state, CLCNN_ERROR_PARSE, "too many layers (at most %d)", MAX_LAYERS);
    state->type = (layer_type)type;

    line_options options;
    memset(&options, 0, sizeof(options));
    options.keys = keys_of_type(state->type);
    clcnn_status status = read_options(state, cursor, &options);
    if (status)
        return status;

    memset(current, 0, sizeof(*current));
    current->named_filter = -1;
    current->type = state->type;
    current->line = state->line;
    current->weight = NULL;
    current->bias = NULL;
    current->weight_buffer = NULL;
    current->bias_buffer = NULL;
    int same = 0;
    if ((status = apply_options(state, &options, current, &same)))
        return status;

    type_counts[type]++;
    const char *given_name = option_value(&options, "name");
    if (given_name)
        snprintf(current->name, sizeof(current->name), "%s", given_name);
    else if (type == LAYER_INPUT)
        snprintf(current->name, sizeof(current->name), "input");
    else
        snprintf(current->name, sizeof(current->name), "%s%d", type_names[type], type_counts[type]);
    for (int i = 0; i < layer_count; i++) {
        if (strcmp(layers[i].name, current->name) != 0)
            continue;
        if (given_name)
            return line_error(state, CLCNN_ERROR_PARSE,
                              "layer name '%s' is already used on line %d", current->name,
                              layers[i].line);
        return line_error(state, CLCNN_ERROR_PARSE,
                          "the default name '%s' of this layer is already used on line %d; "
                          "give this layer a name=",
                          current->name, layers[i].line);
    }

    if ((status =
             infer_shape(state, current, layer_count > 0 ? &layers[layer_count - 1] : NULL, same)))
        return status;
    *is_layer = 1;
    return CLCNN_OK;
}

clcnn_status netfile_parse(clcnn_context *ctx, const char *text, const char *source_name,
                           layer **layers, int *layer_count) {
    if (layers)
        *layers = NULL;
    if (layer_count)
        *layer_count = 0;
    if (!text || !layers || !layer_count)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "netfile_parse: NULL argument");

    parse_state state = {.ctx = ctx, .source_name = source_name ? source_name : "network"};
    layer *parsed = NULL;
    int parsed_count = 0, parsed_capacity = 0;
    int type_counts[LAYER_TYPE_COUNT] = {0};
    /* A copy of the current line that the parser may cut up; grown to fit,
     * so lines of any length are read whole. */
    char *line = NULL;
    size_t line_capacity = 0;
    clcnn_status status = CLCNN_OK;

    const char *cursor = text;
    while (*cursor != '\0') {
        if (state.line == INT_MAX) {
            status = set_error(ctx, CLCNN_ERROR_PARSE, "%s: too many lines", state.source_name);
            goto fail;
        }
        state.line++;
        const char *end = strchr(cursor, '\n');
        size_t length = end ? (size_t)(end - cursor) : strlen(cursor);
        if (length + 1 > line_capacity) {
            char *grown = realloc(line, length + 1);
            if (!grown) {
                status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                                   "%s:%d: out of memory reading a line of %zu bytes",
                                   state.source_name, state.line, length);
                goto fail;
            }
            line = grown;
            line_capacity = length + 1;
        }
        memcpy(line, cursor, length);
        line[length] = '\0';
        char *comment = strchr(line, '#');
        if (comment)
            *comment = '\0';
        cursor = end ? end + 1 : cursor + length;

        if (parsed_count == parsed_capacity) {
            int capacity = parsed_capacity ? 2 * parsed_capacity : 16;
            layer *grown = realloc(parsed, (size_t)capacity * sizeof(*parsed));
            if (!grown) {
                status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s:%d: out of memory",
                                   state.source_name, state.line);
                goto fail;
            }
            parsed = grown;
            parsed_capacity = capacity;
        }
        int is_layer = 0;
        status = parse_line(&state, line, parsed, parsed_count, type_counts, &parsed[parsed_count],
                            &is_layer);
        if (status)
            goto fail;
        if (is_layer)
            parsed_count++;
    }
    free(line);
    line = NULL;

    if (parsed_count == 0) {
        status =
            set_error(ctx, CLCNN_ERROR_PARSE, "%s: the network has no layers", state.source_name);
        goto fail;
    }
    *layers = parsed;
    *layer_count = parsed_count;
    return CLCNN_OK;

fail:
    free(line);
    free(parsed);
    return status;
}
