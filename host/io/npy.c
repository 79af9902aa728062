/* Arrays and NumPy .npy files (format versions 1.0, 2.0 and 3.0).
 *
 * The reader trusts nothing in the file: every length is checked against the
 * real file size before anything is allocated, and the header dict is parsed
 * by a small strict parser rather than by searching for substrings, so that a
 * damaged file is refused with a message that says where and why. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Array data is copied to and from the file as raw bytes, and .npy files
 * store little-endian values. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "clcnn's .npy code assumes a little-endian host"
#endif

enum {
    NPY_MAGIC_SIZE = 6,
    NPY_ALIGNMENT = 64,
    /* NumPy leaves room for the first axis to grow to this many digits. */
    NPY_GROWTH_AXIS_MAX_DIGITS = 21,
    /* Real headers are well under a kilobyte; a larger one is damage. */
    NPY_MAX_HEADER_SIZE = 1 << 20,
};

static const unsigned char npy_magic[NPY_MAGIC_SIZE] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static size_t dtype_size(clcnn_dtype dtype) {
    switch (dtype) {
    case CLCNN_FLOAT32:
        return 4;
    case CLCNN_FLOAT64:
        return 8;
    case CLCNN_INT32:
        return 4;
    case CLCNN_INT64:
        return 8;
    case CLCNN_UINT8:
        return 1;
    }
    return 0;
}

static const char *dtype_descr(clcnn_dtype dtype) {
    switch (dtype) {
    case CLCNN_FLOAT32:
        return "<f4";
    case CLCNN_FLOAT64:
        return "<f8";
    case CLCNN_INT32:
        return "<i4";
    case CLCNN_INT64:
        return "<i8";
    case CLCNN_UINT8:
        return "|u1";
    }
    return NULL;
}

/* Returns -1 for a NULL array, a bad ndim, a negative dimension or an element
 * count that does not fit in int64. */
int64_t clcnn_array_count(const clcnn_array *array) {
    if (!array || array->ndim < 0 || array->ndim > CLCNN_MAX_DIMS)
        return -1;
    int64_t count = 1;
    for (int i = 0; i < array->ndim; i++) {
        int64_t dim = array->shape[i];
        if (dim < 0)
            return -1;
        if (dim != 0 && count > INT64_MAX / dim)
            return -1;
        count *= dim;
    }
    return count;
}

void clcnn_array_free(clcnn_array *array) {
    if (!array)
        return;
    free(array->data);
    memset(array, 0, sizeof(*array));
}

/* "(2, 3)", "(5,)" or "()", as Python prints a tuple. */
static void format_shape(char *buffer, size_t size, int ndim, const int64_t *shape) {
    size_t used = 0;
    int written = snprintf(buffer, size, "(");
    for (int i = 0; i < ndim && written >= 0 && used + (size_t)written < size; i++) {
        used += (size_t)written;
        written =
            snprintf(buffer + used, size - used, i == 0 ? "%lld" : ", %lld", (long long)shape[i]);
    }
    if (written >= 0 && used + (size_t)written < size) {
        used += (size_t)written;
        snprintf(buffer + used, size - used, ndim == 1 ? ",)" : ")");
    }
}

/* ---- header parsing ------------------------------------------------------ */

typedef struct header_parser {
    clcnn_context *ctx;
    const char *path;
    const char *text;
    size_t length;
    size_t position;
    size_t file_offset; /* where text starts in the file, for messages */
} header_parser;

typedef struct npy_header {
    char descr[32];
    int fortran_order;
    int ndim;
    int64_t shape[CLCNN_MAX_DIMS];
} npy_header;

static int at_end(const header_parser *p) {
    return p->position >= p->length;
}

static char current(const header_parser *p) {
    return at_end(p) ? '\0' : p->text[p->position];
}

static void skip_spaces(header_parser *p) {
    while (!at_end(p)) {
        char c = p->text[p->position];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->position++;
    }
}

static clcnn_status malformed(header_parser *p, const char *expected) {
    char found[32];
    unsigned char c = (unsigned char)current(p);
    if (at_end(p))
        snprintf(found, sizeof(found), "the end of the header");
    else if (c == '\'')
        snprintf(found, sizeof(found), "\"'\"");
    else if (c >= 0x20 && c < 0x7f)
        snprintf(found, sizeof(found), "'%c'", c);
    else
        snprintf(found, sizeof(found), "byte 0x%02x", c);
    return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                     "%s: malformed .npy header at byte offset %zu: expected %s, found %s", p->path,
                     p->file_offset + p->position, expected, found);
}

static clcnn_status expect_char(header_parser *p, char wanted, const char *description) {
    skip_spaces(p);
    if (current(p) != wanted)
        return malformed(p, description);
    p->position++;
    return CLCNN_OK;
}

/* A Python string literal without escapes, in single or double quotes. */
static clcnn_status parse_string(header_parser *p, char *out, size_t size, const char *what) {
    skip_spaces(p);
    char quote = current(p);
    if (quote != '\'' && quote != '"')
        return malformed(p, what);
    p->position++;
    size_t used = 0;
    while (!at_end(p) && p->text[p->position] != quote) {
        char c = p->text[p->position];
        if (c == '\\' || c == '\n')
            return malformed(p, "a plain string without escapes");
        if (used + 1 >= size)
            return malformed(p, "a shorter string");
        out[used++] = c;
        p->position++;
    }
    if (at_end(p))
        return malformed(p, "the closing quote of a string");
    p->position++;
    out[used] = '\0';
    return CLCNN_OK;
}

static int starts_with_word(const header_parser *p, const char *word) {
    size_t n = strlen(word);
    return p->length - p->position >= n && memcmp(p->text + p->position, word, n) == 0;
}

static clcnn_status parse_bool(header_parser *p, int *out) {
    skip_spaces(p);
    if (starts_with_word(p, "True")) {
        *out = 1;
        p->position += 4;
    } else if (starts_with_word(p, "False")) {
        *out = 0;
        p->position += 5;
    } else {
        return malformed(p, "True or False for 'fortran_order'");
    }
    return CLCNN_OK;
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* A tuple of non-negative integers: (), (5,), (2, 3) or (2, 3,). */
static clcnn_status parse_shape(header_parser *p, npy_header *header) {
    clcnn_status status = expect_char(p, '(', "'(' to open the shape tuple");
    if (status != CLCNN_OK)
        return status;
    int dims_seen = 0;
    int comma_after_last = 0;
    for (;;) {
        skip_spaces(p);
        if (current(p) == ')') {
            p->position++;
            break;
        }
        if (dims_seen > 0 && !comma_after_last)
            return malformed(p, "',' or ')' in the shape tuple");
        if (current(p) == '-')
            return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                             "%s: negative dimension in the .npy shape at byte offset %zu", p->path,
                             p->file_offset + p->position);
        if (!is_digit(current(p)))
            return malformed(p, "a dimension (a non-negative integer) in the shape tuple");
        size_t start = p->position;
        int64_t value = 0;
        while (is_digit(current(p))) {
            int digit = current(p) - '0';
            if (value > (INT64_MAX - digit) / 10)
                return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                                 "%s: dimension at byte offset %zu of the .npy shape is too "
                                 "large (overflow)",
                                 p->path, p->file_offset + start);
            value = value * 10 + digit;
            p->position++;
        }
        /* NumPy under Python 2 wrote long integers as 3L. */
        if (current(p) == 'L')
            p->position++;
        if (dims_seen < CLCNN_MAX_DIMS)
            header->shape[dims_seen] = value;
        dims_seen++;
        skip_spaces(p);
        comma_after_last = current(p) == ',';
        if (comma_after_last)
            p->position++;
    }
    if (dims_seen == 1 && !comma_after_last)
        return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                         "%s: malformed .npy header: the shape is a number in parentheses, not "
                         "a tuple (a one-dimensional shape is written (n,))",
                         p->path);
    if (dims_seen > CLCNN_MAX_DIMS)
        return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                         "%s: the .npy shape has %d dimensions, at most %d are supported", p->path,
                         dims_seen, CLCNN_MAX_DIMS);
    header->ndim = dims_seen;
    return CLCNN_OK;
}

/* Parses the header dict: exactly the keys 'descr', 'fortran_order' and
 * 'shape', in any order, with any spacing and an optional trailing comma. */
static clcnn_status parse_header(header_parser *p, npy_header *header) {
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    clcnn_status status = expect_char(p, '{', "'{' to open the header dict");
    if (status != CLCNN_OK)
        return status;
    for (;;) {
        skip_spaces(p);
        if (current(p) == '}') {
            p->position++;
            break;
        }
        size_t key_offset = p->file_offset + p->position;
        char key[32];
        status = parse_string(p, key, sizeof(key), "a quoted key or '}'");
        if (status != CLCNN_OK)
            return status;
        status = expect_char(p, ':', "':' after a key");
        if (status != CLCNN_OK)
            return status;
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            skip_spaces(p);
            if (current(p) == '[')
                return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                                 "%s: structured dtypes (a list in 'descr' at byte offset %zu) "
                                 "are not supported",
                                 p->path, p->file_offset + p->position);
            status = parse_string(p, header->descr, sizeof(header->descr),
                                  "a quoted dtype such as '<f4'");
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_fortran;
            status = parse_bool(p, &header->fortran_order);
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            status = parse_shape(p, header);
        } else {
            return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                             "%s: unknown key '%s' in the .npy header at byte offset %zu "
                             "(expected 'descr', 'fortran_order' and 'shape')",
                             p->path, key, key_offset);
        }
        if (status != CLCNN_OK)
            return status;
        if (*seen)
            return set_error(p->ctx, CLCNN_ERROR_FORMAT,
                             "%s: key '%s' appears twice in the .npy header (byte offset %zu)",
                             p->path, key, key_offset);
        *seen = 1;
        skip_spaces(p);
        if (current(p) == ',') {
            p->position++;
            continue;
        }
        if (current(p) != '}')
            return malformed(p, "',' or '}' after a value");
    }
    /* NumPy pads the dict with spaces and ends it with a newline. */
    skip_spaces(p);
    if (!at_end(p))
        return malformed(p, "only spaces after the header dict");
    const char *missing = !seen_descr     ? "descr"
                          : !seen_fortran ? "fortran_order"
                          : !seen_shape   ? "shape"
                                          : NULL;
    if (missing)
        return set_error(p->ctx, CLCNN_ERROR_FORMAT, "%s: the .npy header has no '%s' key", p->path,
                         missing);
    return CLCNN_OK;
}

static clcnn_status dtype_from_descr(clcnn_context *ctx, const char *path, const char *descr,
                                     clcnn_dtype *out) {
    if (strcmp(descr, "<f4") == 0)
        *out = CLCNN_FLOAT32;
    else if (strcmp(descr, "<f8") == 0)
        *out = CLCNN_FLOAT64;
    else if (strcmp(descr, "<i4") == 0)
        *out = CLCNN_INT32;
    else if (strcmp(descr, "<i8") == 0)
        *out = CLCNN_INT64;
    else if (strcmp(descr, "|u1") == 0 || strcmp(descr, "<u1") == 0)
        *out = CLCNN_UINT8;
    else if (descr[0] == '>')
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: big-endian dtype '%s' is not supported (only little-endian '<')",
                         path, descr);
    else
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: unsupported dtype '%s' (supported: '<f4', '<f8', '<i4', '<i8', "
                         "'|u1')",
                         path, descr);
    return CLCNN_OK;
}

/* ---- reading --------------------------------------------------------------- */

static uint32_t little_endian_u32(const unsigned char *bytes) {
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
           (uint32_t)bytes[3] << 24;
}

static clcnn_status read_exactly(clcnn_context *ctx, const char *path, FILE *file, void *buffer,
                                 size_t size, long long offset) {
    if (size == 0 || fread(buffer, 1, size, file) == size)
        return CLCNN_OK;
    if (ferror(file))
        return set_error(ctx, CLCNN_ERROR_IO, "%s: read failed at byte offset %lld: %s", path,
                         offset, strerror(errno));
    return set_error(ctx, CLCNN_ERROR_FORMAT,
                     "%s: the file ended while reading %zu bytes at byte offset %lld (was it "
                     "changed while being read?)",
                     path, size, offset);
}

static clcnn_status read_npy_file(clcnn_context *ctx, const char *path, FILE *file,
                                  long long file_size, clcnn_array *out) {
    unsigned char prefix[12];
    size_t magic_available = file_size < 8 ? (size_t)file_size : 8;
    clcnn_status status = read_exactly(ctx, path, file, prefix, magic_available, 0);
    if (status != CLCNN_OK)
        return status;
    size_t magic_compared = magic_available < NPY_MAGIC_SIZE ? magic_available : NPY_MAGIC_SIZE;
    if (memcmp(prefix, npy_magic, magic_compared) != 0)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: not a .npy file: bad magic at byte offset 0 (expected \\x93NUMPY)",
                         path);
    if (magic_available < 8)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: truncated header: the file has only %lld bytes, the version ends "
                         "at byte offset 8",
                         path, file_size);

    int major = prefix[6], minor = prefix[7];
    if (minor != 0 || major < 1 || major > 3)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: unsupported .npy format version %d.%d at byte offset 6 (expected "
                         "1.0, 2.0 or 3.0)",
                         path, major, minor);
    size_t length_field_size = major == 1 ? 2 : 4;
    size_t prefix_size = 8 + length_field_size;
    if (file_size < (long long)prefix_size)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: truncated header: the file has only %lld bytes, the header length "
                         "field ends at byte offset %zu",
                         path, file_size, prefix_size);
    status = read_exactly(ctx, path, file, prefix + 8, length_field_size, 8);
    if (status != CLCNN_OK)
        return status;
    uint32_t header_size =
        major == 1 ? (uint32_t)prefix[8] | (uint32_t)prefix[9] << 8 : little_endian_u32(prefix + 8);
    if ((long long)header_size > file_size - (long long)prefix_size)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: truncated header: expected %u header bytes from byte offset %zu, "
                         "but only %lld are there",
                         path, header_size, prefix_size, file_size - (long long)prefix_size);
    if (header_size > NPY_MAX_HEADER_SIZE)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: header length %u at byte offset 8 is larger than the limit of %d "
                         "bytes",
                         path, header_size, NPY_MAX_HEADER_SIZE);

    char *header_text = malloc((size_t)header_size + 1);
    if (!header_text)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                         "%s: cannot allocate %u bytes for the header", path, header_size);
    status = read_exactly(ctx, path, file, header_text, header_size, (long long)prefix_size);
    npy_header header;
    memset(&header, 0, sizeof(header));
    if (status == CLCNN_OK) {
        header_text[header_size] = '\0';
        header_parser parser = {ctx, path, header_text, header_size, 0, prefix_size};
        status = parse_header(&parser, &header);
    }
    free(header_text);
    if (status != CLCNN_OK)
        return status;

    clcnn_dtype dtype = CLCNN_FLOAT32;
    status = dtype_from_descr(ctx, path, header.descr, &dtype);
    if (status != CLCNN_OK)
        return status;
    if (header.fortran_order)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: fortran_order True (column-major data) is not supported; save a "
                         "C-ordered array",
                         path);

    clcnn_array array;
    memset(&array, 0, sizeof(array));
    array.dtype = dtype;
    array.ndim = header.ndim;
    memcpy(array.shape, header.shape, sizeof(array.shape));
    char shape_text[256];
    format_shape(shape_text, sizeof(shape_text), array.ndim, array.shape);
    int64_t count = clcnn_array_count(&array);
    size_t element_size = dtype_size(dtype);
    if (count < 0 || count > INT64_MAX / (int64_t)element_size ||
        (uint64_t)count > SIZE_MAX / element_size)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: shape %s has too many elements (the size overflows)", path,
                         shape_text);
    long long data_bytes = (long long)count * (long long)element_size;
    long long data_offset = (long long)prefix_size + header_size;
    long long available = file_size - data_offset;
    if (available < data_bytes)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: truncated data: shape %s of '%s' needs %lld bytes of data from "
                         "byte offset %lld, but only %lld are there",
                         path, shape_text, header.descr, data_bytes, data_offset, available);
    if (available > data_bytes)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: %lld trailing bytes after the data, which ends at byte offset %lld "
                         "(the file has %lld bytes)",
                         path, available - data_bytes, data_offset + data_bytes, file_size);

    /* Never NULL, so that callers need no special case for empty arrays. */
    array.data = malloc(data_bytes > 0 ? (size_t)data_bytes : 1);
    if (!array.data)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %lld bytes of data",
                         path, data_bytes);
    status = read_exactly(ctx, path, file, array.data, (size_t)data_bytes, data_offset);
    if (status != CLCNN_OK) {
        free(array.data);
        return status;
    }
    *out = array;
    return CLCNN_OK;
}

clcnn_status clcnn_npy_read(clcnn_context *ctx, const char *path, clcnn_array *out) {
    if (out)
        memset(out, 0, sizeof(*out));
    if (!path || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_npy_read: path and out are "
                         "required");
    FILE *file = fopen(path, "rb");
    if (!file)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat info;
    clcnn_status status;
    if (fstat(fileno(file), &info) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(info.st_mode))
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: not a regular file", path);
    else
        status = read_npy_file(ctx, path, file, (long long)info.st_size, out);
    fclose(file);
    return status;
}

/* ---- writing ----------------------------------------------------------------- */

/* Builds the version 1.0 prefix and header exactly as NumPy's format module
 * does: the sorted-key dict, room for the first axis to grow, then spaces and
 * a newline up to a multiple of 64 bytes (a full 64 more when it is already
 * aligned, as NumPy does). Returns the total size, or 0 if it does not fit. */
static size_t build_npy_header(const clcnn_array *array, char *buffer, size_t size) {
    char shape_text[256];
    format_shape(shape_text, sizeof(shape_text), array->ndim, array->shape);
    char dict[512];
    int dict_length =
        snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                 dtype_descr(array->dtype), shape_text);
    if (dict_length < 0 || (size_t)dict_length >= sizeof(dict))
        return 0;
    if (array->ndim > 0) {
        char first_axis[32];
        int digits = snprintf(first_axis, sizeof(first_axis), "%lld", (long long)array->shape[0]);
        for (int i = digits;
             i < NPY_GROWTH_AXIS_MAX_DIGITS && (size_t)dict_length + 1 < sizeof(dict); i++)
            dict[dict_length++] = ' ';
        dict[dict_length] = '\0';
    }
    size_t prefix_size = 10;
    size_t text_length = (size_t)dict_length + 1; /* with the final newline */
    size_t padding = NPY_ALIGNMENT - (prefix_size + text_length) % NPY_ALIGNMENT;
    size_t header_size = text_length + padding;
    size_t total = prefix_size + header_size;
    if (total > size || header_size > 0xffff)
        return 0;
    memcpy(buffer, npy_magic, NPY_MAGIC_SIZE);
    buffer[6] = 1;
    buffer[7] = 0;
    buffer[8] = (char)(header_size & 0xff);
    buffer[9] = (char)(header_size >> 8);
    memcpy(buffer + prefix_size, dict, (size_t)dict_length);
    memset(buffer + prefix_size + dict_length, ' ', padding);
    buffer[total - 1] = '\n';
    return total;
}

clcnn_status clcnn_npy_write(clcnn_context *ctx, const char *path, const clcnn_array *array) {
    if (!path || !array)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_npy_write: path and array are required");
    if (!dtype_descr(array->dtype))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "%s: unknown dtype %d", path,
                         (int)array->dtype);
    int64_t count = clcnn_array_count(array);
    size_t element_size = dtype_size(array->dtype);
    if (count < 0 || (uint64_t)count > SIZE_MAX / element_size)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: invalid array shape (ndim %d, negative or too large dimensions)",
                         path, array->ndim);
    size_t data_bytes = (size_t)count * element_size;
    if (data_bytes > 0 && !array->data)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "%s: array has no data", path);

    char header[1024];
    size_t header_size = build_npy_header(array, header, sizeof(header));
    if (header_size == 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "%s: the .npy header does not fit",
                         path);

    /* Written beside the target and renamed over it, so that a crash leaves
     * either the old file or the complete new one. */
    size_t temporary_size = strlen(path) + 32;
    char *temporary = malloc(temporary_size);
    if (!temporary)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(temporary, temporary_size, "%s.tmp-%d", path, (int)getpid());

    clcnn_status status = CLCNN_OK;
    FILE *file = fopen(temporary, "wb");
    if (!file) {
        status =
            set_error(ctx, CLCNN_ERROR_IO, "%s: cannot create: %s", temporary, strerror(errno));
        free(temporary);
        return status;
    }
    if (fwrite(header, 1, header_size, file) != header_size ||
        (data_bytes > 0 && fwrite(array->data, 1, data_bytes, file) != data_bytes))
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: write failed: %s", temporary, strerror(errno));
    else if (fflush(file) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: write failed: %s", temporary, strerror(errno));
    else if (fsync(fileno(file)) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: fsync failed: %s", temporary, strerror(errno));
    if (fclose(file) != 0 && status == CLCNN_OK)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: close failed: %s", temporary, strerror(errno));
    if (status == CLCNN_OK && rename(temporary, path) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: cannot rename %s over it: %s", path, temporary,
                           strerror(errno));
    if (status != CLCNN_OK)
        unlink(temporary);
    free(temporary);
    return status;
}

/* ---- conversion ---------------------------------------------------------------- */

clcnn_status clcnn_array_to_float32(clcnn_context *ctx, clcnn_array *array) {
    if (!array)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_array_to_float32: array is required");
    if (!dtype_descr(array->dtype))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_array_to_float32: unknown dtype %d", (int)array->dtype);
    int64_t count = clcnn_array_count(array);
    if (count < 0 || (uint64_t)count > SIZE_MAX / sizeof(float))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_array_to_float32: invalid array shape");
    if (count > 0 && !array->data)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_array_to_float32: array has no data");
    if (array->dtype == CLCNN_FLOAT32)
        return CLCNN_OK;

    size_t bytes = (size_t)count * sizeof(float);
    float *converted = malloc(bytes > 0 ? bytes : 1);
    if (!converted)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                         "clcnn_array_to_float32: cannot allocate %zu bytes", bytes);
    switch (array->dtype) {
    case CLCNN_FLOAT64:
        for (int64_t i = 0; i < count; i++)
            converted[i] = (float)((const double *)array->data)[i];
        break;
    case CLCNN_INT32:
        for (int64_t i = 0; i < count; i++)
            converted[i] = (float)((const int32_t *)array->data)[i];
        break;
    case CLCNN_INT64:
        for (int64_t i = 0; i < count; i++)
            converted[i] = (float)((const int64_t *)array->data)[i];
        break;
    case CLCNN_UINT8:
        for (int64_t i = 0; i < count; i++)
            converted[i] = (float)((const uint8_t *)array->data)[i];
        break;
    case CLCNN_FLOAT32:
        break;
    }
    free(array->data);
    array->data = converted;
    array->dtype = CLCNN_FLOAT32;
    return CLCNN_OK;
}
