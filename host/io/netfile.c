/* Network files: one layer per line, read into the nodes of a graph whose
 * shapes, padding and parameter counts are worked out here, so that
 * everything after parsing can trust them. A layer reads the line before it,
 * or the layers named by input= / inputs=, which must be above it: file
 * order is then a topological order and no cycle can be written. The
 * per-type work is done by the type's module (host/layers/). */
#include "layers/layer.h"

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
/* Keys one line may give: a type's own, input(s)= and name=. */
#define MAX_KEYS 16

/* The key=value options of one line; values[i] belongs to keys[i] and is
 * NULL when the key was not given. */
typedef struct line_options {
    const char *keys[MAX_KEYS];
    const char *values[MAX_KEYS];
} line_options;

struct layer_parser {
    clcnn_context *ctx;
    const char *source_name;
    int line;
    const layer_type *type; /* of the layer on this line, once known */
    line_options options;
};

/* "<source>:<line>: <reason>" */
static clcnn_status line_error(const layer_parser *state, clcnn_status status, const char *format,
                               ...) __attribute__((format(printf, 3, 4)));
static clcnn_status line_error(const layer_parser *state, clcnn_status status, const char *format,
                               ...) {
    char reason[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    return set_error(state->ctx, status, "%s:%d: %s", state->source_name, state->line, reason);
}

clcnn_status parser_error(const layer_parser *state, clcnn_status status, const char *format, ...) {
    char reason[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    return set_error(state->ctx, status, "%s:%d: %s: %s", state->source_name, state->line,
                     state->type ? state->type->name : "layer", reason);
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

static clcnn_status positive_value(const layer_parser *state, const char *key, const char *value,
                                   int *out) {
    int number = 0;
    number_status status = read_number(value, strlen(value), &number);
    if (status == NUMBER_TOO_LARGE)
        return parser_error(state, CLCNN_ERROR_PARSE, "'%s' must be at most %d, got '%s'", key,
                            MAX_DIMENSION, quote(value).text);
    if (status == NUMBER_INVALID || number < 1)
        return parser_error(state, CLCNN_ERROR_PARSE, "'%s' must be a positive integer, got '%s'",
                            key, quote(value).text);
    *out = number;
    return CLCNN_OK;
}

/* Window sizes and strides: "3" or "3x5". */
static clcnn_status positive_pair_value(const layer_parser *state, const char *key,
                                        const char *value, int *first, int *second) {
    int h = 0, w = 0;
    number_status status = read_number_pair(value, &h, &w);
    if (status == NUMBER_TOO_LARGE)
        return parser_error(state, CLCNN_ERROR_PARSE, "'%s' must be at most %d, got '%s'", key,
                            MAX_DIMENSION, quote(value).text);
    if (status == NUMBER_INVALID || h < 1 || w < 1)
        return parser_error(state, CLCNN_ERROR_PARSE,
                            "'%s' must be a positive integer or HxW (e.g. 3 or 3x5), got '%s'", key,
                            quote(value).text);
    *first = h;
    *second = w;
    return CLCNN_OK;
}

/* Padding: "1" or "1x2", and for conv also "same" (*same set, sizes left alone). */
static clcnn_status padding_value(const layer_parser *state, const char *value, int allow_same,
                                  int *same, int *first, int *second) {
    *same = 0;
    if (allow_same && strcmp(value, "same") == 0) {
        *same = 1;
        return CLCNN_OK;
    }
    int h = 0, w = 0;
    number_status status = read_number_pair(value, &h, &w);
    if (status == NUMBER_TOO_LARGE)
        return parser_error(state, CLCNN_ERROR_PARSE, "'pad' must be at most %d, got '%s'",
                            MAX_DIMENSION, quote(value).text);
    if (status == NUMBER_INVALID)
        return parser_error(state, CLCNN_ERROR_PARSE,
                            "'pad' must be a non-negative integer%s, got '%s'",
                            allow_same ? ", HxW or 'same'" : " or HxW", quote(value).text);
    *first = h;
    *second = w;
    return CLCNN_OK;
}

static clcnn_status boolean_value(const layer_parser *state, const char *key, const char *value,
                                  int *out) {
    if (strcmp(value, "true") == 0) {
        *out = 1;
        return CLCNN_OK;
    }
    if (strcmp(value, "false") == 0) {
        *out = 0;
        return CLCNN_OK;
    }
    return parser_error(state, CLCNN_ERROR_PARSE, "'%s' must be true or false, got '%s'", key,
                        quote(value).text);
}

static clcnn_status float_value(const layer_parser *state, const char *key, const char *value,
                                float *out) {
    char *end = NULL;
    double number = strtod(value, &end);
    /* Also refuses values that would become infinite as a float. */
    if (end == value || *end != '\0' || !isfinite(number) || fabs(number) > FLT_MAX)
        return parser_error(state, CLCNN_ERROR_PARSE, "'%s' must be a finite number, got '%s'", key,
                            quote(value).text);
    *out = (float)number;
    return CLCNN_OK;
}

/* ---- options, for the types' parse functions ------------------------------- */

const char *parser_value(const layer_parser *p, const char *key) {
    for (int i = 0; i < MAX_KEYS && p->options.keys[i]; i++)
        if (strcmp(p->options.keys[i], key) == 0)
            return p->options.values[i];
    return NULL;
}

static clcnn_status require_value(const layer_parser *p, const char *key, const char **value) {
    *value = parser_value(p, key);
    if (!*value)
        return parser_error(p, CLCNN_ERROR_PARSE, "missing required key '%s'", key);
    return CLCNN_OK;
}

clcnn_status parse_positive(const layer_parser *p, const char *key, int fallback, int *out) {
    const char *value = parser_value(p, key);
    if (!value && fallback >= 0) {
        *out = fallback;
        return CLCNN_OK;
    }
    clcnn_status status = require_value(p, key, &value);
    return status ? status : positive_value(p, key, value, out);
}

clcnn_status parse_positive_pair(const layer_parser *p, const char *key, int fallback_h,
                                 int fallback_w, int *h, int *w) {
    const char *value = parser_value(p, key);
    if (!value && fallback_h >= 0) {
        *h = fallback_h;
        *w = fallback_w;
        return CLCNN_OK;
    }
    clcnn_status status = require_value(p, key, &value);
    return status ? status : positive_pair_value(p, key, value, h, w);
}

clcnn_status parse_padding(const layer_parser *p, int allow_same, int *same, int *h, int *w) {
    const char *value = parser_value(p, "pad");
    *same = 0;
    *h = *w = 0;
    return value ? padding_value(p, value, allow_same, same, h, w) : CLCNN_OK;
}

clcnn_status parse_padding_sides(const layer_parser *p, int allow_same, int *same, int *top,
                                 int *left, int *bottom, int *right) {
    const char *value = parser_value(p, "pad");
    if (!value || !strchr(value, ',')) {
        int h = 0, w = 0;
        clcnn_status status = parse_padding(p, allow_same, same, &h, &w);
        *top = *bottom = h;
        *left = *right = w;
        return status;
    }
    *same = 0;
    int sides[4] = {0, 0, 0, 0};
    const char *cursor = value;
    for (int i = 0; i < 4; i++) {
        const char *end = i < 3 ? strchr(cursor, ',') : cursor + strlen(cursor);
        number_status status =
            end ? read_number(cursor, (size_t)(end - cursor), &sides[i]) : NUMBER_INVALID;
        if (status == NUMBER_TOO_LARGE)
            return parser_error(p, CLCNN_ERROR_PARSE, "'pad' must be at most %d, got '%s'",
                                MAX_DIMENSION, quote(value).text);
        if (status == NUMBER_INVALID)
            return parser_error(p, CLCNN_ERROR_PARSE,
                                "'pad' with commas must be four non-negative integers "
                                "top,left,bottom,right, got '%s'",
                                quote(value).text);
        cursor = end + 1;
    }
    *top = sides[0];
    *left = sides[1];
    *bottom = sides[2];
    *right = sides[3];
    return CLCNN_OK;
}

clcnn_status parse_boolean(const layer_parser *p, const char *key, int fallback, int *out) {
    const char *value = parser_value(p, key);
    *out = fallback;
    return value ? boolean_value(p, key, value, out) : CLCNN_OK;
}

clcnn_status parse_float(const layer_parser *p, const char *key, float fallback, float *out) {
    const char *value = parser_value(p, key);
    *out = fallback;
    return value ? float_value(p, key, value, out) : CLCNN_OK;
}

/* Names become file names (<name>.weight.npy), hence the small alphabet. */
static clcnn_status check_name(const layer_parser *state, const char *value) {
    size_t length = strlen(value);
    if (length > MAX_NAME_LENGTH)
        return parser_error(state, CLCNN_ERROR_PARSE,
                            "'name' must be at most %d characters long, got '%s'", MAX_NAME_LENGTH,
                            quote(value).text);
    for (size_t i = 0; i < length; i++) {
        char c = value[i];
        int allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.';
        if (!allowed)
            return parser_error(
                state, CLCNN_ERROR_PARSE,
                "'name' may contain only letters, digits, '_', '-' and '.', got '%s'",
                quote(value).text);
    }
    return CLCNN_OK;
}

/* ---- shapes, for the types' infer functions --------------------------------- */

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

clcnn_status check_output_size(const layer_parser *p, int64_t c, int64_t h, int64_t w) {
    int64_t factors[3] = {c, h, w};
    if (bounded_product(factors, 3, MAX_VALUES) < 0)
        return parser_error(p, CLCNN_ERROR_SHAPE,
                            "output %lldx%lldx%lld is too large (more than %lld values per image)",
                            (long long)c, (long long)h, (long long)w, (long long)MAX_VALUES);
    return CLCNN_OK;
}

clcnn_status need_image_input(const layer_parser *p, const layer *input) {
    if (input->out.ndim == 3)
        return CLCNN_OK;
    return parser_error(p, CLCNN_ERROR_SHAPE,
                        "input is a vector of %d values (after %s); %s needs a CxHxW input",
                        input->out.c, input->type->name, p->type->name);
}

clcnn_status count_weights(const layer_parser *p, const int64_t *factors, int count, int64_t *out) {
    *out = bounded_product(factors, count, MAX_VALUES);
    if (*out >= 0)
        return CLCNN_OK;
    char text[96];
    size_t used = 0;
    for (int i = 0; i < count; i++)
        text_append(text, sizeof(text), &used, i ? "x%lld" : "%lld", (long long)factors[i]);
    return parser_error(p, CLCNN_ERROR_SHAPE,
                        "%s weights are too many for one layer (at most %lld)", text,
                        (long long)MAX_VALUES);
}

/* ---- one line ------------------------------------------------------------ */

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

/* The keys a line of this type takes: the type's own, then input= or
 * inputs= (not for the input layer), then name=. */
static void keys_of(const layer_type *type, line_options *options) {
    int n = 0;
    for (int i = 0; type->keys && type->keys[i] && n < MAX_KEYS - 3; i++)
        options->keys[n++] = type->keys[i];
    if (type->max_inputs > 1)
        options->keys[n++] = "inputs";
    options->keys[n++] = "name";
    if (type->max_inputs == 1)
        options->keys[n++] = "input";
}

static clcnn_status read_options(const layer_parser *state, char *cursor, line_options *options) {
    char *word;
    while ((word = next_word(&cursor)) != NULL) {
        char *equals = strchr(word, '=');
        if (!equals)
            return parser_error(state, CLCNN_ERROR_PARSE,
                                "expected key=value (no spaces around '='), got '%s'",
                                quote(word).text);
        if (equals == word)
            return parser_error(state, CLCNN_ERROR_PARSE, "missing key before '=' in '%s'",
                                quote(word).text);
        *equals = '\0';
        const char *key = word;
        const char *value = equals + 1;

        int index = -1;
        for (int i = 0; i < MAX_KEYS && options->keys[i]; i++)
            if (strcmp(options->keys[i], key) == 0)
                index = i;
        if (index < 0) {
            /* input= is listed apart: it is every single-input layer's. */
            char expected[256] = "";
            size_t used = 0;
            for (int i = 0; i < MAX_KEYS && options->keys[i]; i++)
                if (strcmp(options->keys[i], "input") != 0)
                    text_append(expected, sizeof(expected), &used, i ? ", %s" : "%s",
                                options->keys[i]);
            return parser_error(state, CLCNN_ERROR_PARSE, "unknown key '%s' (expected %s)%s",
                                quote(key).text, expected,
                                state->type->max_inputs == 1
                                    ? "; input=LAYER reads another layer than the line before"
                                    : "");
        }
        if (options->values[index])
            return parser_error(state, CLCNN_ERROR_PARSE, "duplicate key '%s'", key);
        if (*value == '\0')
            return parser_error(state, CLCNN_ERROR_PARSE, "missing value for '%s'", key);
        options->values[index] = value;
    }
    return CLCNN_OK;
}

static void expected_types(char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; layer_types[i]; i++)
        text_append(buf, size, &used, "%s%s",
                    i == 0               ? ""
                    : layer_types[i + 1] ? ", "
                                         : " or ",
                    layer_types[i]->name);
}

/* The line after `after` (1-based) that gives name=NAME, or 0: a reference to
 * a layer below is then explained. */
static int later_definition(const char *after, int line, const char *name) {
    size_t length = strlen(name);
    for (const char *p = after; *p; p++) {
        if (*p == '\n')
            line++;
        if (strncmp(p, "name=", 5) == 0 && (p == after || is_blank(p[-1])) &&
            strncmp(p + 5, name, length) == 0 &&
            (p[5 + length] == '\0' || is_blank(p[5 + length]) || p[5 + length] == '\n' ||
             p[5 + length] == '#'))
            return line;
    }
    return 0;
}

int layer_index(const layer *layers, int count, const char *name, size_t length) {
    for (int i = 0; i < count; i++)
        if (strlen(layers[i].name) == length && strncmp(layers[i].name, name, length) == 0)
            return i;
    return -1;
}

/* Resolves input= / inputs= (or the line before) into current->inputs. */
static clcnn_status resolve_inputs(const layer_parser *state, const char *rest_of_text,
                                   const layer *layers, int layer_count, layer *current) {
    const layer_type *type = current->type;
    if (type->max_inputs == 0)
        return CLCNN_OK;
    const char *list = parser_value(state, type->max_inputs > 1 ? "inputs" : "input");
    if (!list) {
        if (type->max_inputs > 1)
            return parser_error(state, CLCNN_ERROR_PARSE,
                                "missing required key 'inputs' (the names of the %d or more "
                                "layers it reads, separated by commas)",
                                type->min_inputs);
        current->input_count = 1;
        current->inputs[0] = layer_count - 1;
        return CLCNN_OK;
    }
    const char *name = list;
    while (1) {
        size_t length = strcspn(name, ",");
        char text[MAX_NAME_LENGTH + 1];
        snprintf(text, sizeof(text), "%.*s",
                 (int)(length < sizeof(text) ? length : sizeof(text) - 1), name);
        if (length == 0)
            return parser_error(state, CLCNN_ERROR_PARSE,
                                "'%s' must name layers separated by commas, got '%s'",
                                type->max_inputs > 1 ? "inputs" : "input", quote(list).text);
        int index = layer_index(layers, layer_count, name, length);
        if (index < 0 && length == strlen(current->name) &&
            strncmp(name, current->name, length) == 0)
            return parser_error(state, CLCNN_ERROR_PARSE,
                                "layer '%s' reads itself: a network has no cycles", current->name);
        if (index < 0) {
            int later = length <= MAX_NAME_LENGTH
                            ? later_definition(rest_of_text, state->line + 1, text)
                            : 0;
            if (later)
                return parser_error(state, CLCNN_ERROR_PARSE,
                                    "layer '%s' is defined below, on line %d: a layer reads "
                                    "only layers above it, so a network has no cycles",
                                    text, later);
            return parser_error(state, CLCNN_ERROR_PARSE, "no layer named '%s' above this line",
                                quote(text).text);
        }
        if (current->input_count == type->max_inputs)
            return parser_error(state, CLCNN_ERROR_PARSE, "reads at most %d layers",
                                type->max_inputs);
        current->inputs[current->input_count++] = index;
        if (name[length] == '\0')
            break;
        name += length + 1;
    }
    if (current->input_count < type->min_inputs)
        return parser_error(state, CLCNN_ERROR_PARSE, "needs at least %d inputs, got %d",
                            type->min_inputs, current->input_count);
    return CLCNN_OK;
}

/* Parses one line (comment already removed) into *current. *is_layer is 0 for
 * a blank line. type_counts numbers the layers of each type for default names. */
static clcnn_status parse_line(layer_parser *state, char *line, const char *rest_of_text,
                               const layer *layers, int layer_count, int *type_counts,
                               layer *current, int *is_layer) {
    *is_layer = 0;
    char *cursor = line;
    char *type_word = next_word(&cursor);
    if (!type_word)
        return CLCNN_OK;

    int type_index = 0;
    while (layer_types[type_index] && strcmp(layer_types[type_index]->name, type_word) != 0)
        type_index++;
    const layer_type *type = layer_types[type_index];
    if (!type) {
        char expected[512];
        expected_types(expected, sizeof(expected));
        return line_error(state, CLCNN_ERROR_PARSE, "unknown layer type '%s' (expected %s)",
                          quote(type_word).text, expected);
    }
    const int is_input = type->max_inputs == 0;
    if (layer_count == 0 && !is_input)
        return line_error(state, CLCNN_ERROR_PARSE, "the first layer must be 'input', got '%s'",
                          type_word);
    if (layer_count > 0 && is_input)
        return line_error(state, CLCNN_ERROR_PARSE,
                          "'input' may only be the first layer (the input is on line %d)",
                          layers[0].line);
    if (layer_count >= MAX_LAYERS)
        return line_error(state, CLCNN_ERROR_PARSE, "too many layers (at most %d)", MAX_LAYERS);
    state->type = type;

    memset(&state->options, 0, sizeof(state->options));
    keys_of(type, &state->options);
    clcnn_status status = read_options(state, cursor, &state->options);
    if (status)
        return status;

    memset(current, 0, sizeof(*current));
    current->named_filter = -1;
    current->type = type;
    current->line = state->line;
    if (type->parse && (status = type->parse(state, current)))
        return status;
    const char *given_name = parser_value(state, "name");
    if (given_name && (status = check_name(state, given_name)))
        return status;

    type_counts[type_index]++;
    if (given_name)
        snprintf(current->name, sizeof(current->name), "%s", given_name);
    else if (is_input)
        snprintf(current->name, sizeof(current->name), "input");
    else
        snprintf(current->name, sizeof(current->name), "%s%d", type->name, type_counts[type_index]);
    int same = layer_index(layers, layer_count, current->name, strlen(current->name));
    if (same >= 0) {
        if (given_name)
            return line_error(state, CLCNN_ERROR_PARSE,
                              "layer name '%s' is already used on line %d", current->name,
                              layers[same].line);
        return line_error(state, CLCNN_ERROR_PARSE,
                          "the default name '%s' of this layer is already used on line %d; "
                          "give this layer a name=",
                          current->name, layers[same].line);
    }

    if ((status = resolve_inputs(state, rest_of_text, layers, layer_count, current)))
        return status;
    const layer *inputs[LAYER_MAX_INPUTS];
    for (int k = 0; k < current->input_count; k++)
        inputs[k] = &layers[current->inputs[k]];
    if (current->input_count > 0)
        current->in = inputs[0]->out;
    if ((status = type->infer(state, current, inputs, current->input_count)))
        return status;
    *is_layer = 1;
    return CLCNN_OK;
}

/* Every layer but the last must be read by another: the last is the output. */
static clcnn_status check_all_used(clcnn_context *ctx, const char *source_name, const layer *layers,
                                   int count) {
    unsigned char *used = calloc((size_t)count, 1);
    if (!used)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", source_name);
    for (int i = 0; i < count; i++)
        for (int k = 0; k < layers[i].input_count; k++)
            used[layers[i].inputs[k]] = 1;
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < count - 1 && status == CLCNN_OK; i++)
        if (!used[i])
            status = set_error(ctx, CLCNN_ERROR_PARSE,
                               "%s:%d: %s: layer '%s' is read by no other layer; only the last "
                               "layer (line %d) is the network's output",
                               source_name, layers[i].line, layers[i].type->name, layers[i].name,
                               layers[count - 1].line);
    free(used);
    return status;
}

/* ---- the whole file ------------------------------------------------------ */

clcnn_status netfile_parse(clcnn_context *ctx, const char *text, const char *source_name,
                           layer **layers, int *layer_count) {
    if (layers)
        *layers = NULL;
    if (layer_count)
        *layer_count = 0;
    if (!text || !layers || !layer_count)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "netfile_parse: NULL argument");

    layer_parser state = {.ctx = ctx, .source_name = source_name ? source_name : "network"};
    layer *parsed = NULL;
    int parsed_count = 0, parsed_capacity = 0;
    int type_counts[64] = {0};
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
        state.type = NULL;
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
        status = parse_line(&state, line, cursor, parsed, parsed_count, type_counts,
                            &parsed[parsed_count], &is_layer);
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
    if ((status = check_all_used(ctx, state.source_name, parsed, parsed_count)))
        goto fail;
    *layers = parsed;
    *layer_count = parsed_count;
    return CLCNN_OK;

fail:
    free(line);
    free(parsed);
    return status;
}
