/* Reading a batch of images for a network from .npy or IDX files. */
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb_image.h>

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
    const cli_file_kind kind = cli_file_kind_of(path);
    if (kind == CLI_FILE_UNREADABLE)
        return cli_fail("%s: cannot open", path);
    if (kind != CLI_FILE_NPY && kind != CLI_FILE_IDX && kind != CLI_FILE_GZIP)
        return cli_fail("%s: neither a .npy array nor an IDX image file (expected the bytes "
                        "\\x93NUMPY, an IDX magic number 00 00 08..0E or a gzip stream at byte "
                        "offset 0)",
                        path);
    const int is_npy = kind == CLI_FILE_NPY;
    if ((is_npy ? clcnn_npy_read(ctx, path, &array) : clcnn_idx_read(ctx, path, &array)) !=
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

/* stb_image 2.27 builds a JPEG Huffman table from 16 code counts without
 * checking that they total at most 256, and writes past the table when they
 * do (found by the image fuzzer): 1 when path is a JPEG with such a table
 * (a DHT segment anywhere in its marker structure), which is then refused
 * before stb_image reads it. Files over 64 MiB are left to stb_image. */
static int jpeg_huffman_overflows(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char start[2];
    long size = -1;
    if (fread(start, 1, 2, f) == 2 && start[0] == 0xff && start[1] == 0xd8 &&
        fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    unsigned char *b = size > 0 && size <= (64L << 20) ? malloc((size_t)size) : NULL;
    int overflows = 0;
    if (b && fseek(f, 0, SEEK_SET) == 0 && fread(b, 1, (size_t)size, f) == (size_t)size) {
        const long n = size;
        long i = 2;
        while (i + 1 < n && !overflows) {
            if (b[i] != 0xff) {
                i++; /* entropy-coded data after a scan */
                continue;
            }
            const int marker = b[i + 1];
            if (marker == 0xff || marker == 0x00 || marker == 0x01 || marker == 0xd8 ||
                (marker >= 0xd0 && marker <= 0xd7)) {
                i += marker == 0xff ? 1 : 2; /* fill, stuffing, markers without a length */
                continue;
            }
            if (marker == 0xd9 || i + 3 >= n)
                break;
            const long length = (long)b[i + 2] << 8 | b[i + 3];
            const long end = i + 2 + length < n ? i + 2 + length : n;
            if (marker == 0xc4) {
                /* Tables of: class and index, 16 counts, that many symbols. */
                for (long p = i + 4; p + 17 <= end && !overflows;) {
                    int total = 0;
                    for (int k = 1; k <= 16; k++)
                        total += b[p + k];
                    overflows = total > 256;
                    p += 17 + total;
                }
            }
            i = end > i + 2 ? end : i + 2;
        }
    }
    free(b);
    fclose(f);
    return overflows;
}

/* stb_image 2.27 reads a binary PNM's (P5, P6) width, height and maximum
 * value into an int with no check for overflow, undefined behaviour that
 * the fuzzer found: 1 when path is such a file with a number of more than 9
 * significant digits in its header (the first 4 KiB), which is then refused
 * before stb_image reads it. */
static int pnm_number_too_long(const char *path) {
    unsigned char header[4096];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    const size_t n = fread(header, 1, sizeof(header), f);
    fclose(f);
    if (n < 2 || header[0] != 'P' || (header[1] != '5' && header[1] != '6'))
        return 0;
    size_t i = 2;
    for (int number = 0; number < 3; number++) {
        while (i < n && (isspace(header[i]) || header[i] == '#')) {
            if (header[i] == '#')
                while (i < n && header[i] != '\n' && header[i] != '\r')
                    i++;
            else
                i++;
        }
        int significant = 0;
        for (; i < n && isdigit(header[i]); i++)
            if (significant > 0 || header[i] != '0')
                if (++significant > 9)
                    return 1;
    }
    return 0;
}

int cli_read_png(const char *path, int channels, float **pixels, int *height, int *width) {
    int w, h, n;
    if (pnm_number_too_long(path))
        return cli_fail("%s: cannot read the image: a number in its PNM header is too large", path);
    if (jpeg_huffman_overflows(path))
        return cli_fail("%s: cannot read the image: a JPEG Huffman table has more than 256 codes",
                        path);
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
     * stb_image's own weights, alpha dropped. */
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < w * h; i++) {
            const unsigned char *p = data + (size_t)i * n;
            int v;
            if (n <= 2)
                v = p[0];
            else if (channels == 1)
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
