/* Reading a batch of images for a network from .npy or IDX files. */
#include "cli.h"
#include "io/image_guards.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb_image.h>
#include <stb_image_resize.h>

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

cli_file_kind cli_file_kind_of(const char *path) {
    unsigned char head[6] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return CLI_FILE_UNREADABLE;
    const size_t n = fread(head, 1, sizeof(head), f);
    fclose(f);
    if (n == 6 && memcmp(head, "\x93NUMPY", 6) == 0)
        return CLI_FILE_NPY;
    if (n >= 4 && head[0] == 0 && head[1] == 0 && head[2] >= 0x08 && head[2] <= 0x0e &&
        head[3] >= 1)
        return CLI_FILE_IDX;
    if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b)
        return CLI_FILE_GZIP;
    if (n >= 2 && head[0] == 'P' && (head[1] == '2' || head[1] == '5'))
        return CLI_FILE_PGM;
    return CLI_FILE_OTHER;
}

static void describe_shape(const clcnn_array *a, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < a->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld",
                                 (long long)a->shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, a->ndim == 1 ? ",)" : ")");
}

int cli_read_images(clcnn_context *ctx, clcnn_net *net, const char *path, float **images,
                    int64_t *count) {
    clcnn_layer_info input;
    clcnn_net_layer_info(net, 0, &input);
    const int C = input.shape[0], H = input.shape[1], W = input.shape[2];
    clcnn_array array;
    /* Told by content, not name, but for text images (.txt), which have no magic bytes. */
    const int is_text = has_suffix(path, ".txt");
    const cli_file_kind kind = is_text ? CLI_FILE_OTHER : cli_file_kind_of(path);
    if (!is_text && kind == CLI_FILE_UNREADABLE)
        return cli_fail("%s: cannot open", path);
    if (!is_text && kind != CLI_FILE_NPY && kind != CLI_FILE_IDX && kind != CLI_FILE_GZIP)
        return cli_fail("%s: neither a .npy array, an IDX image file nor a text image (expected "
                        "the bytes \\x93NUMPY, an IDX magic number 00 00 08..0E or a gzip stream "
                        "at byte offset 0, or a name ending in .txt)",
                        path);
    const int is_npy = is_text || kind == CLI_FILE_NPY;
    if (is_text) {
        /* A text image is one (C, H, W) image, its values as written. */
        if (cli_read_text_image(path, &array) != 0)
            return CLI_FAILURE;
    } else if ((is_npy ? clcnn_npy_read(ctx, path, &array) : clcnn_idx_read(ctx, path, &array)) !=
               CLCNN_OK)
        return cli_fail_context(ctx);

    char shape[128];
    describe_shape(&array, shape, sizeof(shape));
    int64_t n = -1;
    if (is_npy) {
        if (array.dtype != CLCNN_FLOAT32 && array.dtype != CLCNN_FLOAT64) {
            clcnn_array_free(&array);
            return cli_fail("%s: images must be float32 or float64", path);
        }
        if (array.ndim == 4 && array.shape[1] == C && array.shape[2] == H && array.shape[3] == W)
            n = array.shape[0];
        else if (array.ndim == 3 && array.shape[0] == C && array.shape[1] == H &&
                 array.shape[2] == W)
            n = 1;
        if (n < 0) {
            clcnn_array_free(&array);
            return cli_fail("%s: shape %s does not fit the network's input: expected (N, %d, %d, "
                            "%d)",
                            path, shape, C, H, W);
        }
        if (clcnn_array_to_float32(ctx, &array) != CLCNN_OK) {
            clcnn_array_free(&array);
            return cli_fail_context(ctx);
        }
        *images = array.data; /* ownership moves to the caller */
        *count = n;
        return 0;
    }
    /* IDX images are (N, H, W) bytes: one channel, scaled to [0, 1]. */
    if (array.dtype != CLCNN_UINT8 || array.ndim != 3 || C != 1 || array.shape[1] != H ||
        array.shape[2] != W) {
        clcnn_array_free(&array);
        return cli_fail("%s: IDX shape %s does not fit the network's input (%d, %d, %d)", path,
                        shape, C, H, W);
    }
    n = array.shape[0];
    float *values = malloc(sizeof(float) * (size_t)(n * H * W + 1));
    if (!values) {
        clcnn_array_free(&array);
        return cli_fail("out of memory reading %s", path);
    }
    const unsigned char *bytes = array.data;
    for (int64_t i = 0; i < n * H * W; i++)
        values[i] = bytes[i] / 255.0f;
    clcnn_array_free(&array);
    *images = values;
    *count = n;
    return 0;
}

/* Skips whitespace and '#' comments of a PGM header. */
static int pgm_skip(FILE *f) {
    int c = fgetc(f);
    while (c != EOF && (isspace(c) || c == '#')) {
        if (c == '#')
            while (c != EOF && c != '\n')
                c = fgetc(f);
        c = fgetc(f);
    }
    if (c != EOF)
        ungetc(c, f);
    return c;
}

static int pgm_number(FILE *f, long *out) {
    pgm_skip(f);
    return fscanf(f, "%ld", out) == 1 ? 0 : -1;
}

/* Binary (P5) or text (P2) PGM into bytes-per-pixel-scaled floats in [0, 1]. */
int cli_read_pgm(const char *path, float **pixels, int *height, int *width) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_fail("%s: cannot open", path);
    char magic[3] = {0};
    long w, h, maxval;
    int result = 0;
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '2') ||
        pgm_number(f, &w) != 0 || pgm_number(f, &h) != 0 || pgm_number(f, &maxval) != 0 || w < 1 ||
        h < 1 || w > 65536 || h > 65536 || maxval < 1 || maxval > 65535) {
        fclose(f);
        return cli_fail("%s: not a PGM image (expected a P5 or P2 header with width, height and "
                        "maximum value)",
                        path);
    }
    if (magic[1] == '5')
        fgetc(f); /* the single whitespace after maxval */
    /* The pixels must be in the file before their storage is allocated: a
     * header alone can claim 65536 x 65536 (16 GiB of floats). A binary
     * pixel takes 1 or 2 bytes, a text one at least a digit and a space. */
    long here = ftell(f);
    long long need = magic[1] == '2' ? 2LL * w * h - 1 : (maxval < 256 ? 1LL : 2LL) * w * h;
    if (here < 0 || fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return cli_fail("%s: cannot seek", path);
    }
    long long available = (long long)ftell(f) - here;
    if (fseek(f, here, SEEK_SET) != 0 || available < need) {
        fclose(f);
        return cli_fail("%s: a %ldx%ld PGM image needs at least %lld bytes of pixels, the file "
                        "has %lld",
                        path, w, h, need, available < 0 ? 0 : available);
    }
    float *values = malloc(sizeof(float) * (size_t)(w * h));
    if (!values) {
        fclose(f);
        return cli_fail("out of memory");
    }
    for (long i = 0; i < w * h && result == 0; i++) {
        long v = -1;
        if (magic[1] == '2') {
            if (pgm_number(f, &v) != 0)
                v = -1;
        } else if (maxval < 256) {
            int c = fgetc(f);
            v = c;
        } else {
            int hi = fgetc(f), lo = fgetc(f);
            v = hi < 0 || lo < 0 ? -1 : hi * 256 + lo;
        }
        if (v < 0 || v > maxval)
            result = cli_fail("%s: pixel data ends early or is out of range at pixel %ld", path, i);
        else
            values[i] = (float)v / (float)maxval;
    }
    fclose(f);
    if (result != 0) {
        free(values);
        return result;
    }
    *pixels = values;
    *height = (int)h;
    *width = (int)w;
    return 0;
}

/* The most pixels an image read through stb_image may have (4096 x 4096),
 * as for image folders. stb_image accepts a header's size up to 2^24 a side
 * and, for a binary PNM cut short, decodes what is missing as zeros: without
 * a bound of its own a 20-byte file would cost gigabytes. */
enum { CLI_MAX_IMAGE_PIXELS = 1 << 24 };

int cli_read_png(const char *path, int channels, float **pixels, int *height, int *width) {
    int w, h, n;
    const char *refusal = image_refusal(path);
    if (refusal)
        return cli_fail("%s: cannot read the image: %s", path, refusal);
    if (!stbi_info(path, &w, &h, &n))
        return cli_fail("%s: cannot read the image: %s (its first bytes are those of no PNG, JPEG, "
                        "PGM, PPM, .npy or IDX file)",
                        path, stbi_failure_reason());
    if ((long long)w * h > CLI_MAX_IMAGE_PIXELS)
        return cli_fail("%s: the image is %dx%d, more than the %d pixels clcnn reads", path, w, h,
                        CLI_MAX_IMAGE_PIXELS);
    /* Decoded in the file's own channels and converted here: stb_image
     * 2.27 converts a 16-bit PNM's channels with its 8-bit converter and
     * then reads past the result (found by the fuzz corpus under
     * AddressSanitizer). */
    unsigned char *data = stbi_load(path, &w, &h, &n, 0);
    if (!data)
        return cli_fail("%s: cannot read the image: %s (its first bytes are those of no PNG, JPEG, "
                        "PGM, PPM, .npy or IDX file)",
                        path, stbi_failure_reason());
    float *values = malloc(sizeof(float) * (size_t)w * h * channels);
    if (!values) {
        stbi_image_free(data);
        return cli_fail("out of memory");
    }
    /* stb gives interleaved pixels (HWC); the network wants planes (CHW):
     * grey (and grey+alpha) to RGB by repeating it, RGB(A) to grey with
     * stb_image's own weights; alpha kept for a network of 2 or 4 channels
     * (opaque where the image has none), dropped otherwise. */
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < w * h; i++) {
            const unsigned char *p = data + (size_t)i * n;
            int v;
            if ((channels == 2 || channels == 4) && c == channels - 1)
                v = n == 2 || n == 4 ? p[n - 1] : 255;
            else if (n <= 2)
                v = p[0];
            else if (channels <= 2)
                v = (p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8;
            else
                v = p[c];
            values[c * w * h + i] = v / 255.0f;
        }
    stbi_image_free(data);
    *pixels = values;
    *height = h;
    *width = w;
    return 0;
}

/* Planes (C, H, W) resized to (C, height, width), each plane apart. */
static int resize_planes(const char *path, float **pixels, int channels, int h, int w, int height,
                         int width) {
    float *resized = malloc(sizeof(float) * (size_t)channels * height * width);
    if (!resized)
        return cli_fail("out of memory");
    for (int c = 0; c < channels; c++)
        if (!stbir_resize_float(*pixels + (size_t)c * h * w, w, h, 0,
                                resized + (size_t)c * height * width, width, height, 0, 1)) {
            free(resized);
            return cli_fail("%s: cannot resize the image from %dx%d to %dx%d", path, w, h, width,
                            height);
        }
    free(*pixels);
    *pixels = resized;
    return 0;
}

int cli_read_image_for(clcnn_context *ctx, clcnn_net *net, const char *path, float **images,
                       int64_t *count) {
    clcnn_layer_info input;
    clcnn_net_layer_info(net, 0, &input);
    const int C = input.shape[0], H = input.shape[1], W = input.shape[2];
    /* Told by content, not name (text images aside). Batches: .npy, text and
     * IDX image files (Fashion-MNIST's own, for instance; a gzip stream is
     * taken for one). */
    const cli_file_kind kind = cli_file_kind_of(path);
    if (kind == CLI_FILE_UNREADABLE)
        return cli_fail("%s: cannot open", path);
    if (kind == CLI_FILE_NPY || kind == CLI_FILE_IDX || kind == CLI_FILE_GZIP ||
        has_suffix(path, ".txt"))
        return cli_read_images(ctx, net, path, images, count);
    if (C != 1 && C != 3 && C != 4)
        return cli_fail("%s: a picture has 1, 3 or 4 channels, the network takes %d", path, C);
    int h = 0, w = 0, result;
    if (kind == CLI_FILE_PGM) {
        result = cli_read_pgm(path, images, &h, &w);
        /* grey to every channel */
        float *expanded = result == 0 ? realloc(*images, sizeof(float) * C * (size_t)h * w) : NULL;
        if (result == 0 && !expanded) {
            free(*images);
            return cli_fail("out of memory");
        }
        for (int c = 1; result == 0 && c < C; c++)
            memcpy(expanded + (size_t)c * h * w, expanded, sizeof(float) * (size_t)h * w);
        if (result == 0)
            *images = expanded;
    } else {
        /* stb_image converts: grey to RGB by copying, RGB to grey by luminance. */
        result = cli_read_png(path, C, images, &h, &w);
    }
    if (result == 0 && (h != H || w != W))
        result = resize_planes(path, images, C, h, w, H, W);
    if (result != 0) {
        free(*images);
        *images = NULL;
        return result;
    }
    *count = 1;
    return 0;
}

void cli_print_values(FILE *out, const char *label, int ndim, const int *shape,
                      const float *values) {
    const int channels = ndim == 3 ? shape[0] : 1, rows = ndim == 3 ? shape[1] : 1,
              columns = ndim == 3 ? shape[2] : shape[0];
    const int64_t count = (int64_t)channels * rows * columns;
    int width = 1;
    char text[64];
    for (int64_t i = 0; i < count; i++) {
        /* "-0" is printed as "0": the sign of a zero says nothing to a reader. */
        int n = snprintf(text, sizeof(text), "%g", values[i] == 0.0f ? 0.0 : values[i]);
        width = n > width ? n : width;
    }
    if (ndim == 3)
        fprintf(out, "%s: %dx%dx%d\n", label, shape[0], shape[1], shape[2]);
    else
        fprintf(out, "%s: %d\n", label, shape[0]);
    for (int c = 0; c < channels; c++) {
        if (c > 0)
            fputc('\n', out);
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < columns; j++) {
                const float v = values[((int64_t)c * rows + i) * columns + j];
                fprintf(out, "%s%*g", j ? " " : "  ", width, v == 0.0f ? 0.0 : v);
            }
            fputc('\n', out);
        }
    }
}

int cli_read_text_image(const char *path, clcnn_array *out) {
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_fail("%s: cannot open", path);
    size_t capacity = 256, count = 0;
    float *values = malloc(sizeof(float) * capacity);
    int channels = 0, rows = 0, columns = -1, rows_per_channel = -1, in_channel = 0;
    int line_number = 0, result = values ? 0 : cli_fail("out of memory");
    char line[65536];
    while (result == 0) {
        const int more = fgets(line, sizeof(line), f) != NULL;
        line_number++;
        if (more) {
            char *comment = strchr(line, '#');
            if (comment)
                *comment = 0;
        }
        /* A blank line (or the end) closes a channel. */
        char *p = line;
        while (more && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (!more || *p == 0) {
            if (in_channel > 0) {
                if (rows_per_channel >= 0 && in_channel != rows_per_channel)
                    result = cli_fail("%s: channel %d has %d rows, channel 1 has %d", path,
                                      channels + 1, in_channel, rows_per_channel);
                rows_per_channel = in_channel;
                channels++;
                in_channel = 0;
            }
            if (!more)
                break;
            continue;
        }
        int in_row = 0;
        while (*p && result == 0) {
            char *end;
            const float v = strtof(p, &end);
            if (end == p || !isfinite(v)) {
                result = cli_fail("%s:%d: expected numbers, got '%.20s'", path, line_number, p);
                break;
            }
            if (count == capacity) {
                float *grown = realloc(values, sizeof(float) * (capacity *= 2));
                if (!grown) {
                    result = cli_fail("out of memory");
                    break;
                }
                values = grown;
            }
            values[count++] = v;
            in_row++;
            p = end;
            while (isspace((unsigned char)*p) || *p == ',')
                p++;
        }
        if (result == 0 && columns >= 0 && in_row != columns)
            result = cli_fail("%s:%d: %d numbers in the row, the first row has %d", path,
                              line_number, in_row, columns);
        columns = in_row;
        in_channel++;
        rows++;
    }
    fclose(f);
    if (result == 0 && channels == 0)
        result = cli_fail("%s: no numbers", path);
    if (result != 0) {
        free(values);
        return result;
    }
    out->dtype = CLCNN_FLOAT32;
    out->ndim = 3;
    out->shape[0] = channels;
    out->shape[1] = rows_per_channel;
    out->shape[2] = columns;
    out->data = values;
    return 0;
}
