/* .npy reading and writing: round trips, NumPy's exact header bytes, hand-made
 * files of every format version, malformed files, and damaged files that
 * must fail cleanly. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static clcnn_context *ctx;

static size_t element_size(clcnn_dtype dtype) {
    switch (dtype) {
    case CLCNN_FLOAT64:
    case CLCNN_INT64:
        return 8;
    case CLCNN_FLOAT32:
    case CLCNN_INT32:
        return 4;
    case CLCNN_UINT8:
        return 1;
    }
    return 0;
}

static int write_bytes(const char *path, const void *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = size == 0 || fwrite(bytes, 1, size, f) == size;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Reads a whole file into a malloc'd buffer; returns its size or -1. */
static long read_bytes(const char *path, unsigned char **out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char *buffer = malloc(1 << 20);
    size_t size = fread(buffer, 1, 1 << 20, f);
    fclose(f);
    *out = buffer;
    return (long)size;
}

static int file_exists(const char *path) {
    struct stat info;
    return stat(path, &info) == 0;
}

/* Builds a .npy file from a header dict given as text: the prefix of the
 * given major version, the dict padded with spaces to a multiple of 64 bytes
 * and a newline, then the data. Returns the total size. */
static size_t make_npy(unsigned char *buffer, int major, const char *dict, const void *data,
                       size_t data_size) {
    size_t prefix_size = major == 1 ? 10 : 12;
    size_t text_size = strlen(dict) + 1;
    size_t padding = (64 - (prefix_size + text_size) % 64) % 64;
    size_t header_size = text_size + padding;
    memcpy(buffer, "\x93NUMPY", 6);
    buffer[6] = (unsigned char)major;
    buffer[7] = 0;
    for (size_t i = 0; i < prefix_size - 8; i++)
        buffer[8 + i] = (unsigned char)(header_size >> (8 * i));
    memcpy(buffer + prefix_size, dict, strlen(dict));
    memset(buffer + prefix_size + strlen(dict), ' ', padding);
    buffer[prefix_size + header_size - 1] = '\n';
    if (data_size > 0)
        memcpy(buffer + prefix_size + header_size, data, data_size);
    return prefix_size + header_size + data_size;
}

/* Writes such a file and reads it back. */
static clcnn_status read_made_npy(const char *name, int major, const char *dict, const void *data,
                                  size_t data_size, clcnn_array *out) {
    static unsigned char buffer[8192];
    size_t size = make_npy(buffer, major, dict, data, data_size);
    const char *path = test_path(name);
    if (write_bytes(path, buffer, size) != 0)
        return CLCNN_ERROR_IO;
    return clcnn_npy_read(ctx, path, out);
}

static int is_zeroed(const clcnn_array *array) {
    clcnn_array zero;
    memset(&zero, 0, sizeof(zero));
    return memcmp(array, &zero, sizeof(zero)) == 0;
}

/* Expects a read to fail with status and a message containing each of the
 * given fragments (up to two), with *out left zeroed. */
static void expect_refused(const char *label, clcnn_status status, clcnn_array *out,
                           clcnn_status expected, const char *fragment1, const char *fragment2) {
    const char *message = clcnn_last_error(ctx);
    int ok = CHECK(status == expected);
    ok &= CHECK(is_zeroed(out));
    if (fragment1)
        ok &= CHECK(strstr(message, fragment1) != NULL);
    if (fragment2)
        ok &= CHECK(strstr(message, fragment2) != NULL);
    if (!ok)
        fprintf(stderr, "  in case '%s': status %s, message: %s\n", label,
                clcnn_status_name(status), message);
    clcnn_array_free(out);
}

static void fill_pattern(clcnn_dtype dtype, void *data, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        switch (dtype) {
        case CLCNN_FLOAT32:
            ((float *)data)[i] = (float)i * 0.25f - 3.5f;
            break;
        case CLCNN_FLOAT64:
            ((double *)data)[i] = (double)i * 1e-3 - 1e10;
            break;
        case CLCNN_INT32:
            ((int32_t *)data)[i] = (int32_t)(i * 7919) - 1000000;
            break;
        case CLCNN_INT64:
            ((int64_t *)data)[i] = (int64_t)i * 4000000000LL - 5;
            break;
        case CLCNN_UINT8:
            ((uint8_t *)data)[i] = (uint8_t)(i * 37 + 11);
            break;
        }
    }
}

static void test_round_trips(void) {
    static const clcnn_dtype dtypes[] = {CLCNN_FLOAT32, CLCNN_FLOAT64, CLCNN_INT32, CLCNN_INT64,
                                         CLCNN_UINT8};
    static const struct {
        int ndim;
        int64_t shape[CLCNN_MAX_DIMS];
    } shapes[] = {
        {0, {0}},
        {1, {5}},
        {2, {2, 3}},
        {4, {2, 3, 4, 5}},
        {3, {3, 0, 2}},
        {1, {0}},
        {8, {1, 2, 1, 2, 1, 2, 1, 3}},
        {1, {1000}},
    };
    for (size_t d = 0; d < sizeof(dtypes) / sizeof(dtypes[0]); d++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            clcnn_array array;
            memset(&array, 0, sizeof(array));
            array.dtype = dtypes[d];
            array.ndim = shapes[s].ndim;
            memcpy(array.shape, shapes[s].shape, sizeof(array.shape));
            int64_t count = clcnn_array_count(&array);
            size_t bytes = (size_t)count * element_size(array.dtype);
            array.data = malloc(bytes > 0 ? bytes : 1);
            fill_pattern(array.dtype, array.data, count);

            const char *path = test_path("round.npy");
            CHECK_OK(ctx, clcnn_npy_write(ctx, path, &array));
            clcnn_array back;
            if (CHECK_OK(ctx, clcnn_npy_read(ctx, path, &back))) {
                int same = CHECK(back.dtype == array.dtype);
                same &= CHECK(back.ndim == array.ndim);
                same &= CHECK(memcmp(back.shape, array.shape, sizeof(array.shape)) == 0);
                same &= CHECK(back.data != NULL);
                same &= CHECK(bytes == 0 || memcmp(back.data, array.data, bytes) == 0);
                same &= CHECK(clcnn_array_count(&back) == count);
                if (!same)
                    fprintf(stderr, "  round trip of dtype %d, shape %zu failed\n", (int)dtypes[d],
                            s);
            }
            /* The header is padded to a multiple of 64 and ends in a newline. */
            unsigned char *file_bytes = NULL;
            long size = read_bytes(path, &file_bytes);
            CHECK(size >= 64);
            if (size >= 64) {
                size_t header_end = 10 + (size_t)(file_bytes[8] | file_bytes[9] << 8);
                CHECK(header_end % 64 == 0);
                CHECK(file_bytes[header_end - 1] == '\n');
                CHECK((size_t)size == header_end + bytes);
            }
            free(file_bytes);
            clcnn_array_free(&back);
            clcnn_array_free(&array);
        }
    }
    /* No temporary file is left behind. */
    char temporary[1300];
    snprintf(temporary, sizeof(temporary), "%s.tmp-%d", test_path("round.npy"), (int)getpid());
    CHECK(!file_exists(temporary));
}

static void test_numpy_bytes(void) {
    float values[6] = {1, 2, 3, 4.5f, -5, 6};
    clcnn_array array = {CLCNN_FLOAT32, 2, {2, 3}, values};
    const char *path = test_path("numpy.npy");
    CHECK_OK(ctx, clcnn_npy_write(ctx, path, &array));

    unsigned char expected[128];
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    memcpy(expected, "\x93NUMPY\x01\x00", 8);
    expected[8] = 118;
    expected[9] = 0;
    memset(expected + 10, ' ', sizeof(expected) - 10);
    memcpy(expected + 10, dict, strlen(dict));
    expected[127] = '\n';

    unsigned char *written = NULL;
    long size = read_bytes(path, &written);
    CHECK(size == 128 + 24);
    if (size == 128 + 24) {
        CHECK(memcmp(written, expected, 128) == 0);
        CHECK(memcmp(written + 128, values, 24) == 0);
    }
    free(written);

    /* A 0-d scalar: NumPy adds no growth room after the dict. */
    double scalar = 2.5;
    clcnn_array scalar_array = {CLCNN_FLOAT64, 0, {0}, &scalar};
    path = test_path("scalar.npy");
    CHECK_OK(ctx, clcnn_npy_write(ctx, path, &scalar_array));
    size = read_bytes(path, &written);
    const char *scalar_dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
    CHECK(size == 128 + 8);
    if (size == 128 + 8) {
        CHECK(written[8] == 118 && written[9] == 0);
        CHECK(memcmp(written + 10, scalar_dict, strlen(scalar_dict)) == 0);
        CHECK(written[10 + strlen(scalar_dict)] == ' ');
        CHECK(written[127] == '\n');
        CHECK(memcmp(written + 128, &scalar, 8) == 0);
    }
    free(written);

    /* When the dict and its newline already end on a 64-byte boundary NumPy
     * still pads a full 64 spaces: 128 bytes become 192. */
    clcnn_array aligned = {CLCNN_FLOAT32, 8, {0, 100, 1000, 1000, 1000, 1000, 1000, 1000}, NULL};
    path = test_path("aligned.npy");
    CHECK_OK(ctx, clcnn_npy_write(ctx, path, &aligned));
    size = read_bytes(path, &written);
    CHECK(size == 192);
    if (size == 192) {
        CHECK(written[8] == 182 && written[9] == 0);
        CHECK(written[126] == ' ' && written[127] == ' ' && written[191] == '\n');
    }
    free(written);

    /* uint8 is written as '|u1', a 1-d shape as (n,). */
    uint8_t bytes[3] = {1, 2, 3};
    clcnn_array byte_array = {CLCNN_UINT8, 1, {3}, bytes};
    path = test_path("bytes.npy");
    CHECK_OK(ctx, clcnn_npy_write(ctx, path, &byte_array));
    size = read_bytes(path, &written);
    const char *byte_dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }";
    CHECK(size == 128 + 3);
    if (size > 10)
        CHECK(memcmp(written + 10, byte_dict, strlen(byte_dict)) == 0);
    free(written);
}

static void test_hand_made_headers(void) {
    float values[6] = {0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f};
    clcnn_array array;

    /* Version 2.0 and 3.0 have a 4-byte header length. */
    for (int major = 2; major <= 3; major++) {
        CHECK_OK(ctx, read_made_npy("v2.npy", major,
                                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                                    values, sizeof(values), &array));
        CHECK(array.dtype == CLCNN_FLOAT32 && array.ndim == 2);
        CHECK(array.shape[0] == 2 && array.shape[1] == 3);
        CHECK(array.data && memcmp(array.data, values, sizeof(values)) == 0);
        clcnn_array_free(&array);
    }

    /* Keys in another order, odd spacing, double quotes, no trailing comma. */
    CHECK_OK(ctx, read_made_npy("order.npy", 1,
                                "{ \"shape\" :( 3 ,2 , ) ,'fortran_order':False,\t'descr'  :  "
                                "'<f4'}",
                                values, sizeof(values), &array));
    CHECK(array.ndim == 2 && array.shape[0] == 3 && array.shape[1] == 2);
    CHECK(array.data && memcmp(array.data, values, sizeof(values)) == 0);
    clcnn_array_free(&array);

    /* Python 2 NumPy wrote long integers as 6L. */
    CHECK_OK(ctx, read_made_npy("long.npy", 1,
                                "{'descr': '<f4', 'fortran_order': False, 'shape': (6L,), }",
                                values, sizeof(values), &array));
    CHECK(array.ndim == 1 && array.shape[0] == 6);
    clcnn_array_free(&array);

    /* '<u1' is accepted like '|u1'; a scalar has shape (). */
    uint8_t byte = 200;
    CHECK_OK(ctx,
             read_made_npy("u1.npy", 1, "{'descr': '<u1', 'fortran_order': False, 'shape': ()}",
                           &byte, 1, &array));
    CHECK(array.dtype == CLCNN_UINT8 && array.ndim == 0 && clcnn_array_count(&array) == 1);
    CHECK(array.data && ((uint8_t *)array.data)[0] == 200);
    clcnn_array_free(&array);

    /* A header that is not padded to 64 bytes is still valid. */
    static unsigned char buffer[256];
    const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }\n";
    int32_t one = -7;
    size_t dict_size = strlen(dict);
    memcpy(buffer, "\x93NUMPY\x01\x00", 8);
    buffer[8] = (unsigned char)dict_size;
    buffer[9] = 0;
    memcpy(buffer + 10, dict, dict_size);
    memcpy(buffer + 10 + dict_size, &one, 4);
    const char *path = test_path("unpadded.npy");
    write_bytes(path, buffer, 10 + dict_size + 4);
    CHECK_OK(ctx, clcnn_npy_read(ctx, path, &array));
    CHECK(array.dtype == CLCNN_INT32 && array.data && ((int32_t *)array.data)[0] == -7);
    clcnn_array_free(&array);
}

static void test_malformed(void) {
    float values[6] = {0};
    clcnn_array out;
    clcnn_status status;
    static unsigned char buffer[8192];
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    const char *path = test_path("bad.npy");

    size_t size = make_npy(buffer, 1, good, values, sizeof(values));
    buffer[3] = 'X';
    write_bytes(path, buffer, size);
    status = clcnn_npy_read(ctx, path, &out);
    expect_refused("bad magic", status, &out, CLCNN_ERROR_FORMAT, "magic", "bad.npy");

    write_bytes(path, "hello", 5);
    status = clcnn_npy_read(ctx, path, &out);
    expect_refused("short non-npy file", status, &out, CLCNN_ERROR_FORMAT, "magic", NULL);

    size = make_npy(buffer, 1, good, values, sizeof(values));
    buffer[6] = 4;
    write_bytes(path, buffer, size);
    status = clcnn_npy_read(ctx, path, &out);
    expect_refused("version 4.0", status, &out, CLCNN_ERROR_FORMAT, "version 4.0", NULL);

    size = make_npy(buffer, 1, good, values, sizeof(values));
    write_bytes(path, buffer, 50);
    status = clcnn_npy_read(ctx, path, &out);
    expect_refused("truncated header", status, &out, CLCNN_ERROR_FORMAT, "truncated header", "118");

    write_bytes(path, buffer, 9);
    status = clcnn_npy_read(ctx, path, &out);
    expect_refused("truncated length field", status, &out, CLCNN_ERROR_FORMAT, "truncated header",
                   NULL);

    write_bytes(path, buffer, size - 5);
    status = clcnn_npy_read(ctx, path, &out);
    expect_refused("truncated data", status, &out, CLCNN_ERROR_FORMAT, "truncated data",
                   "needs 24 bytes of data from byte offset 128, but only 19");

    memcpy(buffer + size, "xyz", 3);
    write_bytes(path, buffer, size + 3);
    status = clcnn_npy_read(ctx, path, &out);
    expect_refused("trailing bytes", status, &out, CLCNN_ERROR_FORMAT, "3 trailing bytes", NULL);

    status =
        read_made_npy("bad.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }",
                      values, sizeof(values), &out);
    expect_refused("big-endian", status, &out, CLCNN_ERROR_FORMAT, "big-endian", "'>f4'");

    status =
        read_made_npy("bad.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }",
                      values, 12, &out);
    expect_refused("float16", status, &out, CLCNN_ERROR_FORMAT, "unsupported dtype '<f2'", NULL);

    status =
        read_made_npy("bad.npy", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }",
                      values, sizeof(values), &out);
    expect_refused("complex64", status, &out, CLCNN_ERROR_FORMAT, "unsupported dtype '<c8'", NULL);

    status = read_made_npy(
        "bad.npy", 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (6,), }", values, 6, &out);
    expect_refused("int8", status, &out, CLCNN_ERROR_FORMAT, "'|i1'", NULL);

    status = read_made_npy("bad.npy", 1,
                           "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }",
                           values, sizeof(values), &out);
    expect_refused("structured", status, &out, CLCNN_ERROR_FORMAT, "structured", NULL);

    status =
        read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                      values, sizeof(values), &out);
    expect_refused("fortran order", status, &out, CLCNN_ERROR_FORMAT, "fortran_order", NULL);

    status = read_made_npy("bad.npy", 1,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, "
                           "1, 1, 1), }",
                           values, 4, &out);
    expect_refused("nine dimensions", status, &out, CLCNN_ERROR_FORMAT, "9 dimensions",
                   "at most 8");

    status =
        read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
                      values, sizeof(values), &out);
    expect_refused("garbage in shape", status, &out, CLCNN_ERROR_FORMAT, "malformed",
                   "byte offset 64");

    status =
        read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }",
                      values, sizeof(values), &out);
    expect_refused("missing comma in shape", status, &out, CLCNN_ERROR_FORMAT,
                   "expected ',' or ')'", NULL);

    status = read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }",
                           values, sizeof(values), &out);
    expect_refused("number instead of tuple", status, &out, CLCNN_ERROR_FORMAT, "not a tuple",
                   NULL);

    status =
        read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }",
                      values, sizeof(values), &out);
    expect_refused("negative dimension", status, &out, CLCNN_ERROR_FORMAT, "negative", NULL);

    status = read_made_npy("bad.npy", 1,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': "
                           "(4294967296, 4294967296), }",
                           values, sizeof(values), &out);
    expect_refused("size overflow", status, &out, CLCNN_ERROR_FORMAT, "overflow", NULL);

    status = read_made_npy("bad.npy", 1,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': "
                           "(99999999999999999999,), }",
                           values, sizeof(values), &out);
    expect_refused("dimension overflow", status, &out, CLCNN_ERROR_FORMAT, "overflow", NULL);

    /* A huge claim on a small file is refused before allocating. */
    status = read_made_npy("bad.npy", 1,
                           "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }",
                           values, sizeof(values), &out);
    expect_refused("huge claim", status, &out, CLCNN_ERROR_FORMAT, "truncated data",
                   "8000000000000 bytes");

    status = read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': False}", values,
                           sizeof(values), &out);
    expect_refused("missing shape", status, &out, CLCNN_ERROR_FORMAT, "no 'shape' key", NULL);

    status = read_made_npy("bad.npy", 1,
                           "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': "
                           "(6,)}",
                           values, sizeof(values), &out);
    expect_refused("duplicate key", status, &out, CLCNN_ERROR_FORMAT, "twice", NULL);

    status = read_made_npy("bad.npy", 1,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}",
                           values, sizeof(values), &out);
    expect_refused("unknown key", status, &out, CLCNN_ERROR_FORMAT, "unknown key 'extra'", NULL);

    status =
        read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} junk",
                      values, sizeof(values), &out);
    expect_refused("text after the dict", status, &out, CLCNN_ERROR_FORMAT, "after the header dict",
                   NULL);

    status = read_made_npy("bad.npy", 1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (6,)}",
                           values, sizeof(values), &out);
    expect_refused("bad boolean", status, &out, CLCNN_ERROR_FORMAT, "True or False", NULL);

    status = read_made_npy("bad.npy", 1, "{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}",
                           values, sizeof(values), &out);
    expect_refused("unbalanced quote", status, &out, CLCNN_ERROR_FORMAT, "malformed", NULL);

    status = clcnn_npy_read(ctx, test_path("does-not-exist.npy"), &out);
    expect_refused("missing file", status, &out, CLCNN_ERROR_IO, "cannot open",
                   "No such file or directory");

    status = clcnn_npy_read(ctx, test_dir(), &out);
    expect_refused("directory", status, &out, CLCNN_ERROR_IO, "not a regular file", NULL);
}

static void test_damaged_files(void) {
    float values[6] = {1, 2, 3, 4, 5, 6};
    clcnn_array array = {CLCNN_FLOAT32, 2, {2, 3}, values};
    const char *good_path = test_path("good.npy");
    CHECK_OK(ctx, clcnn_npy_write(ctx, good_path, &array));
    unsigned char *good = NULL;
    long good_size = read_bytes(good_path, &good);
    CHECK(good_size == 152);
    if (good_size != 152) {
        free(good);
        return;
    }
    const char *path = test_path("damaged.npy");
    clcnn_array out;

    /* Every truncation is refused as a format error. */
    int truncations_refused = 1;
    for (long length = 0; length < good_size; length++) {
        write_bytes(path, good, (size_t)length);
        clcnn_status status = clcnn_npy_read(ctx, path, &out);
        if (status != CLCNN_ERROR_FORMAT || !is_zeroed(&out)) {
            truncations_refused = 0;
            fprintf(stderr, "  truncation at %ld: %s: %s\n", length, clcnn_status_name(status),
                    clcnn_last_error(ctx));
        }
        clcnn_array_free(&out);
    }
    CHECK(truncations_refused);

    /* Damaged headers either read as a consistent array or fail cleanly. */
    static const char header_characters[] = "{}()[],:' \"0123456789-<>|fiucLTrueFalse\n\\";
    test_rng rng = {12345};
    unsigned char damaged[152];
    int clean = 1, accepted = 0, refused = 0;
    for (int iteration = 0; iteration < 600; iteration++) {
        memcpy(damaged, good, sizeof(damaged));
        int flips = test_rand_int(&rng, 1, 4);
        for (int f = 0; f < flips; f++) {
            int position = test_rand_int(&rng, 0, 127);
            if (iteration % 2 == 0)
                damaged[position] ^= (unsigned char)(1u << test_rand_int(&rng, 0, 7));
            else
                damaged[position] = (unsigned char)
                    header_characters[test_rand_int(&rng, 0, (int)sizeof(header_characters) - 2)];
        }
        write_bytes(path, damaged, sizeof(damaged));
        clcnn_status status = clcnn_npy_read(ctx, path, &out);
        if (status == CLCNN_OK) {
            accepted++;
            int64_t count = clcnn_array_count(&out);
            size_t size = element_size(out.dtype);
            /* An accepted file must account for exactly its 24 data bytes. */
            if (out.data == NULL || count < 0 || (size_t)count * size != 24) {
                clean = 0;
                fprintf(stderr, "  iteration %d: inconsistent array accepted\n", iteration);
            }
        } else {
            refused++;
            if ((status != CLCNN_ERROR_FORMAT) || !is_zeroed(&out) ||
                strlen(clcnn_last_error(ctx)) == 0) {
                clean = 0;
                fprintf(stderr, "  iteration %d: %s: %s\n", iteration, clcnn_status_name(status),
                        clcnn_last_error(ctx));
            }
        }
        clcnn_array_free(&out);
    }
    CHECK(clean);
    CHECK(refused > 100);
    CHECK(accepted > 0); /* e.g. damage confined to the padding spaces */
    free(good);
}

static void test_conversions(void) {
    clcnn_array array;

    double doubles[3] = {0.1, -2.5, 1e30};
    array = (clcnn_array){CLCNN_FLOAT64, 1, {3}, NULL};
    array.data = malloc(sizeof(doubles));
    memcpy(array.data, doubles, sizeof(doubles));
    CHECK_OK(ctx, clcnn_array_to_float32(ctx, &array));
    CHECK(array.dtype == CLCNN_FLOAT32 && array.ndim == 1 && array.shape[0] == 3);
    CHECK(((float *)array.data)[0] == 0.1f);
    CHECK(((float *)array.data)[1] == -2.5f);
    CHECK(((float *)array.data)[2] == 1e30f);
    clcnn_array_free(&array);

    int32_t ints[4] = {0, -1, 123456, 7};
    array = (clcnn_array){CLCNN_INT32, 2, {2, 2}, NULL};
    array.data = malloc(sizeof(ints));
    memcpy(array.data, ints, sizeof(ints));
    CHECK_OK(ctx, clcnn_array_to_float32(ctx, &array));
    CHECK(array.dtype == CLCNN_FLOAT32 && array.ndim == 2);
    CHECK(((float *)array.data)[1] == -1.0f && ((float *)array.data)[2] == 123456.0f);
    clcnn_array_free(&array);

    int64_t longs[2] = {-9, 1LL << 40};
    array = (clcnn_array){CLCNN_INT64, 1, {2}, NULL};
    array.data = malloc(sizeof(longs));
    memcpy(array.data, longs, sizeof(longs));
    CHECK_OK(ctx, clcnn_array_to_float32(ctx, &array));
    CHECK(((float *)array.data)[0] == -9.0f && ((float *)array.data)[1] == 1099511627776.0f);
    clcnn_array_free(&array);

    uint8_t bytes[3] = {0, 128, 255};
    array = (clcnn_array){CLCNN_UINT8, 1, {3}, NULL};
    array.data = malloc(sizeof(bytes));
    memcpy(array.data, bytes, sizeof(bytes));
    CHECK_OK(ctx, clcnn_array_to_float32(ctx, &array));
    CHECK(((float *)array.data)[1] == 128.0f && ((float *)array.data)[2] == 255.0f);
    clcnn_array_free(&array);

    /* float32 stays as it is; an empty array converts too. */
    float floats[2] = {1.5f, -0.0f};
    array = (clcnn_array){CLCNN_FLOAT32, 1, {2}, NULL};
    array.data = malloc(sizeof(floats));
    memcpy(array.data, floats, sizeof(floats));
    void *before = array.data;
    CHECK_OK(ctx, clcnn_array_to_float32(ctx, &array));
    CHECK(array.data == before && ((float *)array.data)[0] == 1.5f);
    clcnn_array_free(&array);

    array = (clcnn_array){CLCNN_INT64, 2, {0, 4}, NULL};
    array.data = malloc(1);
    CHECK_OK(ctx, clcnn_array_to_float32(ctx, &array));
    CHECK(array.dtype == CLCNN_FLOAT32 && array.data != NULL && clcnn_array_count(&array) == 0);
    clcnn_array_free(&array);

    /* A file read as int64 converts after reading. */
    int64_t labels[4] = {3, 0, 9, 1};
    clcnn_array label_array = {CLCNN_INT64, 1, {4}, labels};
    const char *path = test_path("labels.npy");
    CHECK_OK(ctx, clcnn_npy_write(ctx, path, &label_array));
    CHECK_OK(ctx, clcnn_npy_read(ctx, path, &array));
    CHECK_OK(ctx, clcnn_array_to_float32(ctx, &array));
    CHECK(array.dtype == CLCNN_FLOAT32 && ((float *)array.data)[2] == 9.0f);
    clcnn_array_free(&array);
}

static void test_arrays_and_arguments(void) {
    clcnn_array array;
    memset(&array, 0, sizeof(array));
    CHECK(clcnn_array_count(&array) == 1); /* a zeroed array is a 0-d scalar */
    clcnn_array_free(&array);
    clcnn_array_free(&array);
    clcnn_array_free(NULL);
    CHECK(is_zeroed(&array));

    clcnn_array shaped = {CLCNN_FLOAT32, 3, {2, 0, 5}, NULL};
    CHECK(clcnn_array_count(&shaped) == 0);
    shaped.shape[1] = -1;
    CHECK(clcnn_array_count(&shaped) == -1);
    shaped.ndim = CLCNN_MAX_DIMS + 1;
    CHECK(clcnn_array_count(&shaped) == -1);
    CHECK(clcnn_array_count(NULL) == -1);

    /* Arrays that cannot be written. */
    clcnn_array no_data = {CLCNN_FLOAT32, 1, {4}, NULL};
    CHECK(clcnn_npy_write(ctx, test_path("x.npy"), &no_data) == CLCNN_ERROR_INVALID_ARGUMENT);
    float value = 1;
    clcnn_array negative = {CLCNN_FLOAT32, 1, {-4}, &value};
    CHECK(clcnn_npy_write(ctx, test_path("x.npy"), &negative) == CLCNN_ERROR_INVALID_ARGUMENT);
    clcnn_array bad_dtype = {(clcnn_dtype)99, 1, {1}, &value};
    CHECK(clcnn_npy_write(ctx, test_path("x.npy"), &bad_dtype) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(!file_exists(test_path("x.npy")));

    /* A write into a missing directory fails with an I/O error. */
    clcnn_array one = {CLCNN_FLOAT32, 1, {1}, &value};
    clcnn_status status = clcnn_npy_write(ctx, test_path("missing/x.npy"), &one);
    CHECK(status == CLCNN_ERROR_IO);
    CHECK(strstr(clcnn_last_error(ctx), "No such file or directory") != NULL);

    /* Writing over an existing file replaces it. */
    const char *path = test_path("replace.npy");
    write_bytes(path, "old contents", 12);
    CHECK_OK(ctx, clcnn_npy_write(ctx, path, &one));
    CHECK_OK(ctx, clcnn_npy_read(ctx, path, &array));
    CHECK(array.ndim == 1 && array.shape[0] == 1 && ((float *)array.data)[0] == 1.0f);
    clcnn_array_free(&array);
}

int main(void) {
    ctx = clcnn_context_create();
    if (!CHECK(ctx != NULL))
        return test_finish();
    test_round_trips();
    test_numpy_bytes();
    test_hand_made_headers();
    test_malformed();
    test_damaged_files();
    test_conversions();
    test_arrays_and_arguments();
    clcnn_context_destroy(ctx);
    return test_finish();
}
