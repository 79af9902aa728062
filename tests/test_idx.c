/* IDX reading, raw and gzip: round trips, truncation and damage, and the
 * real Fashion-MNIST test set when it is installed. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static clcnn_context *ctx;

static const char *fashion_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
static const char *fashion_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

/* An IDX file in memory. */
typedef struct idx_bytes {
    unsigned char *bytes;
    size_t size;
} idx_bytes;

/* Builds an IDX file of unsigned bytes with the given dims and the pattern
 * (i * 31 + i / 7) & 0xff as its data; extra adds that many bytes of data
 * beyond what the dims call for (or removes them when negative). */
static idx_bytes make_idx(int type, int ndim, const uint32_t *dims, long extra) {
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= dims[i];
    size_t data_size = (size_t)((long)count + extra);
    idx_bytes file;
    file.size = 4 + 4 * (size_t)ndim + data_size;
    file.bytes = malloc(file.size);
    file.bytes[0] = 0;
    file.bytes[1] = 0;
    file.bytes[2] = (unsigned char)type;
    file.bytes[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        unsigned char *field = file.bytes + 4 + 4 * i;
        field[0] = (unsigned char)(dims[i] >> 24);
        field[1] = (unsigned char)(dims[i] >> 16);
        field[2] = (unsigned char)(dims[i] >> 8);
        field[3] = (unsigned char)dims[i];
    }
    unsigned char *data = file.bytes + 4 + 4 * ndim;
    for (size_t i = 0; i < data_size; i++)
        data[i] = (unsigned char)(i * 31 + i / 7);
    return file;
}

static int write_raw(const char *path, const unsigned char *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = size == 0 || fwrite(bytes, 1, size, f) == size;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int write_gzip(const char *path, const unsigned char *bytes, size_t size) {
    gzFile f = gzopen(path, "wb");
    if (!f)
        return -1;
    int ok = 1;
    /* gzwrite takes an unsigned int length: write in pieces. */
    for (size_t done = 0; done < size && ok;) {
        unsigned piece = size - done > (1u << 20) ? (1u << 20) : (unsigned)(size - done);
        ok = gzwrite(f, bytes + done, piece) == (int)piece;
        done += piece;
    }
    return (gzclose(f) == Z_OK && ok) ? 0 : -1;
}

static long read_file(const char *path, unsigned char **out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(size > 0 ? (size_t)size : 1);
    long got = (long)fread(*out, 1, (size_t)size, f);
    fclose(f);
    return got;
}

static int is_zeroed(const clcnn_array *array) {
    clcnn_array zero;
    memset(&zero, 0, sizeof(zero));
    return memcmp(array, &zero, sizeof(zero)) == 0;
}

/* Expects a read of path to fail with status and a message containing the
 * fragments (when not NULL), with *out left zeroed. */
static void expect_refused(const char *label, const char *path, clcnn_status expected,
                           const char *fragment1, const char *fragment2) {
    clcnn_array out;
    clcnn_status status = clcnn_idx_read(ctx, path, &out);
    const char *message = clcnn_last_error(ctx);
    int ok = CHECK(status == expected);
    ok &= CHECK(is_zeroed(&out));
    if (fragment1)
        ok &= CHECK(strstr(message, fragment1) != NULL);
    if (fragment2)
        ok &= CHECK(strstr(message, fragment2) != NULL);
    if (!ok)
        fprintf(stderr, "  in case '%s': status %s, message: %s\n", label,
                clcnn_status_name(status), message);
    clcnn_array_free(&out);
}

/* Reads path and compares it with the IDX file it was made from. */
static void expect_same(const char *label, const char *path, const idx_bytes *file) {
    clcnn_array array;
    if (!CHECK_OK(ctx, clcnn_idx_read(ctx, path, &array))) {
        fprintf(stderr, "  in case '%s'\n", label);
        return;
    }
    int ndim = file->bytes[3];
    size_t header_size = 4 + 4 * (size_t)ndim;
    int ok = CHECK(array.dtype == CLCNN_UINT8);
    ok &= CHECK(array.ndim == ndim);
    for (int i = 0; i < ndim && ok; i++) {
        const unsigned char *field = file->bytes + 4 + 4 * i;
        int64_t dim = (int64_t)field[0] << 24 | field[1] << 16 | field[2] << 8 | field[3];
        ok &= CHECK(array.shape[i] == dim);
    }
    ok &= CHECK(clcnn_array_count(&array) == (int64_t)(file->size - header_size));
    ok &= CHECK(array.data != NULL &&
                memcmp(array.data, file->bytes + header_size, file->size - header_size) == 0);
    if (!ok)
        fprintf(stderr, "  in case '%s'\n", label);
    clcnn_array_free(&array);
}

static void test_round_trips(void) {
    const char *raw_path = test_path("data-idx-ubyte");
    const char *gzip_path = test_path("data-idx-ubyte.gz");

    uint32_t image_dims[3] = {3, 4, 5};
    idx_bytes images = make_idx(0x08, 3, image_dims, 0);
    CHECK(write_raw(raw_path, images.bytes, images.size) == 0);
    CHECK(write_gzip(gzip_path, images.bytes, images.size) == 0);
    expect_same("raw images", raw_path, &images);
    expect_same("gzip images", gzip_path, &images);
    free(images.bytes);

    uint32_t label_dims[1] = {7};
    idx_bytes labels = make_idx(0x08, 1, label_dims, 0);
    CHECK(write_raw(raw_path, labels.bytes, labels.size) == 0);
    CHECK(write_gzip(gzip_path, labels.bytes, labels.size) == 0);
    expect_same("raw labels", raw_path, &labels);
    expect_same("gzip labels", gzip_path, &labels);
    free(labels.bytes);

    /* Four dimensions, the most IDX readers here accept. */
    uint32_t dims4[4] = {2, 3, 1, 2};
    idx_bytes four = make_idx(0x08, 4, dims4, 0);
    CHECK(write_gzip(gzip_path, four.bytes, four.size) == 0);
    expect_same("gzip 4-d", gzip_path, &four);
    free(four.bytes);

    /* Larger than the reader's input buffer and its first data allocation,
     * so both have to refill and grow. */
    uint32_t big_dims[3] = {1500, 28, 28};
    idx_bytes big = make_idx(0x08, 3, big_dims, 0);
    CHECK(write_raw(raw_path, big.bytes, big.size) == 0);
    CHECK(write_gzip(gzip_path, big.bytes, big.size) == 0);
    expect_same("raw 1500x28x28", raw_path, &big);
    expect_same("gzip 1500x28x28", gzip_path, &big);

    /* Two gzip members one after the other are one valid gzip stream. */
    size_t half = big.size / 2;
    const char *part_path = test_path("part.gz");
    unsigned char *first = NULL, *second = NULL;
    CHECK(write_gzip(part_path, big.bytes, half) == 0);
    long first_size = read_file(part_path, &first);
    CHECK(write_gzip(part_path, big.bytes + half, big.size - half) == 0);
    long second_size = read_file(part_path, &second);
    if (CHECK(first_size > 0 && second_size > 0)) {
        unsigned char *joined = malloc((size_t)(first_size + second_size));
        memcpy(joined, first, (size_t)first_size);
        memcpy(joined + first_size, second, (size_t)second_size);
        CHECK(write_raw(gzip_path, joined, (size_t)(first_size + second_size)) == 0);
        expect_same("two gzip members", gzip_path, &big);
        free(joined);
    }
    free(first);
    free(second);
    free(big.bytes);
}

static void test_truncated(void) {
    uint32_t dims[3] = {10, 28, 28};
    idx_bytes file = make_idx(0x08, 3, dims, 0);
    const char *path = test_path("truncated-idx3-ubyte");

    /* Raw, cut inside the magic, the dims and the data. */
    static const long raw_lengths[] = {0, 2, 4, 9, 16, 17, 100, 7839};
    for (size_t i = 0; i < sizeof(raw_lengths) / sizeof(raw_lengths[0]); i++) {
        CHECK(write_raw(path, file.bytes, (size_t)raw_lengths[i]) == 0);
        expect_refused("raw truncated", path, CLCNN_ERROR_FORMAT, "truncated at byte offset", NULL);
    }
    write_raw(path, file.bytes, 100);
    expect_refused("raw truncated data", path, CLCNN_ERROR_FORMAT,
                   "truncated at byte offset 100, expected 7840 bytes of data", NULL);
    write_raw(path, file.bytes, 10);
    expect_refused("raw truncated dims", path, CLCNN_ERROR_FORMAT,
                   "truncated at byte offset 10, expected a header of 16 bytes", NULL);

    /* Gzip, cut at several places of the compressed file: inside the gzip
     * header, the deflate data and the CRC/length trailer. */
    const char *gzip_path = test_path("truncated-idx3-ubyte.gz");
    CHECK(write_gzip(gzip_path, file.bytes, file.size) == 0);
    unsigned char *compressed = NULL;
    long compressed_size = read_file(gzip_path, &compressed);
    CHECK(compressed_size > 40);
    long gzip_lengths[] = {3,
                           10,
                           12,
                           20,
                           compressed_size / 2,
                           compressed_size - 9,
                           compressed_size - 8,
                           compressed_size - 4,
                           compressed_size - 1};
    for (size_t i = 0; i < sizeof(gzip_lengths) / sizeof(gzip_lengths[0]); i++) {
        if (gzip_lengths[i] <= 0 || gzip_lengths[i] >= compressed_size)
            continue;
        CHECK(write_raw(gzip_path, compressed, (size_t)gzip_lengths[i]) == 0);
        expect_refused("gzip truncated", gzip_path, CLCNN_ERROR_FORMAT, "truncated", NULL);
    }
    /* Cut in the middle of the data: the message says where and how much. */
    CHECK(write_raw(gzip_path, compressed, (size_t)(compressed_size / 2)) == 0);
    expect_refused("gzip truncated in the data", gzip_path, CLCNN_ERROR_FORMAT,
                   "truncated at byte offset", "expected 7840 bytes of data");
    /* Every byte of the data is there but the trailer is cut. */
    CHECK(write_raw(gzip_path, compressed, (size_t)(compressed_size - 4)) == 0);
    expect_refused("gzip without trailer", gzip_path, CLCNN_ERROR_FORMAT, "truncated gzip stream",
                   NULL);

    /* A gzip file with damage in the deflate data or the CRC. */
    unsigned char *damaged = malloc((size_t)compressed_size);
    memcpy(damaged, compressed, (size_t)compressed_size);
    damaged[compressed_size - 6] ^= 0x55; /* inside the CRC */
    CHECK(write_raw(gzip_path, damaged, (size_t)compressed_size) == 0);
    expect_refused("gzip bad CRC", gzip_path, CLCNN_ERROR_FORMAT, "corrupt gzip data",
                   "incorrect data check");
    memcpy(damaged, compressed, (size_t)compressed_size);
    damaged[3] = 0xe0; /* reserved gzip flag bits */
    CHECK(write_raw(gzip_path, damaged, (size_t)compressed_size) == 0);
    expect_refused("gzip bad flags", gzip_path, CLCNN_ERROR_FORMAT, "corrupt gzip data", NULL);

    /* Random damage anywhere in the compressed file fails cleanly or, if
     * it happens to leave a valid stream, reads the right size. */
    test_rng rng = {777};
    int clean = 1;
    for (int iteration = 0; iteration < 200; iteration++) {
        memcpy(damaged, compressed, (size_t)compressed_size);
        int position = test_rand_int(&rng, 0, (int)compressed_size - 1);
        damaged[position] ^= (unsigned char)(1u << test_rand_int(&rng, 0, 7));
        write_raw(gzip_path, damaged, (size_t)compressed_size);
        clcnn_array out;
        clcnn_status status = clcnn_idx_read(ctx, gzip_path, &out);
        if (status == CLCNN_OK)
            clean &= CHECK(clcnn_array_count(&out) == 7840);
        else
            clean &= CHECK(status == CLCNN_ERROR_FORMAT && is_zeroed(&out));
        clcnn_array_free(&out);
    }
    CHECK(clean);
    free(damaged);
    free(compressed);
    free(file.bytes);
}

static void test_malformed(void) {
    const char *path = test_path("bad-idx-ubyte");
    const char *gzip_path = test_path("bad-idx-ubyte.gz");
    uint32_t dims[2] = {3, 4};
    idx_bytes file;

    file = make_idx(0x08, 2, dims, 0);
    file.bytes[0] = 0x01;
    write_raw(path, file.bytes, file.size);
    expect_refused("bad magic", path, CLCNN_ERROR_FORMAT, "bad magic", "bad-idx-ubyte");
    write_gzip(gzip_path, file.bytes, file.size);
    expect_refused("bad magic, gzip", gzip_path, CLCNN_ERROR_FORMAT, "bad magic", NULL);
    free(file.bytes);

    file = make_idx(0x0D, 2, dims, 0);
    write_raw(path, file.bytes, file.size);
    expect_refused("float type", path, CLCNN_ERROR_FORMAT, "type 0x0d", "only 0x08");
    free(file.bytes);
    file = make_idx(0x42, 2, dims, 0);
    write_gzip(gzip_path, file.bytes, file.size);
    expect_refused("unknown type", gzip_path, CLCNN_ERROR_FORMAT, "type 0x42", NULL);
    free(file.bytes);

    file = make_idx(0x08, 0, dims, 1);
    write_raw(path, file.bytes, file.size);
    expect_refused("no dimensions", path, CLCNN_ERROR_FORMAT, "number of dimensions 0", NULL);
    free(file.bytes);
    uint32_t five[5] = {1, 1, 1, 1, 2};
    file = make_idx(0x08, 5, five, 0);
    write_raw(path, file.bytes, file.size);
    expect_refused("five dimensions", path, CLCNN_ERROR_FORMAT, "number of dimensions 5", NULL);
    free(file.bytes);

    uint32_t zero_dims[3] = {5, 0, 28};
    file = make_idx(0x08, 3, zero_dims, 0);
    write_raw(path, file.bytes, file.size);
    expect_refused("zero dim", path, CLCNN_ERROR_FORMAT, "dimension 1 is 0", NULL);
    write_gzip(gzip_path, file.bytes, file.size);
    expect_refused("zero dim, gzip", gzip_path, CLCNN_ERROR_FORMAT, "dimension 1 is 0", NULL);
    free(file.bytes);

    /* Data beyond what the header calls for. */
    file = make_idx(0x08, 2, dims, 3);
    write_raw(path, file.bytes, file.size);
    expect_refused("trailing data", path, CLCNN_ERROR_FORMAT, "3 trailing bytes", NULL);
    write_gzip(gzip_path, file.bytes, file.size);
    expect_refused("trailing data, gzip", gzip_path, CLCNN_ERROR_FORMAT, "trailing data",
                   "byte offset 24");
    free(file.bytes);

    /* Bytes after the end of a valid gzip stream. */
    file = make_idx(0x08, 2, dims, 0);
    write_gzip(gzip_path, file.bytes, file.size);
    unsigned char *compressed = NULL;
    long compressed_size = read_file(gzip_path, &compressed);
    unsigned char *padded = malloc((size_t)compressed_size + 4);
    memcpy(padded, compressed, (size_t)compressed_size);
    memset(padded + compressed_size, 0, 4);
    write_raw(gzip_path, padded, (size_t)compressed_size + 4);
    expect_refused("garbage after gzip", gzip_path, CLCNN_ERROR_FORMAT,
                   "trailing bytes after the end of the gzip stream", NULL);
    free(padded);
    free(compressed);
    free(file.bytes);

    /* A header claiming 60000 28x28 images on a file of a few bytes is
     * refused as too short, without allocating 47 MB; the same on a gzip
     * file costs at most the first chunk before it is found short. */
    uint32_t huge[3] = {60000, 28, 28};
    file = make_idx(0x08, 3, huge, -(60000L * 28 * 28 - 10));
    write_raw(path, file.bytes, file.size);
    expect_refused("huge claim", path, CLCNN_ERROR_FORMAT, "truncated at byte offset 26",
                   "too short");
    write_gzip(gzip_path, file.bytes, file.size);
    expect_refused("huge claim, gzip", gzip_path, CLCNN_ERROR_FORMAT, "truncated at byte offset 26",
                   "expected 47040000 bytes of data");
    free(file.bytes);

    /* More than 2^31 elements is refused from the header alone. */
    uint32_t too_many[2] = {65536, 65536};
    file = make_idx(0x08, 2, too_many, -(65536L * 65536));
    write_raw(path, file.bytes, file.size);
    expect_refused("over 2^31 elements", path, CLCNN_ERROR_FORMAT, "more than 2^31", NULL);
    free(file.bytes);

    expect_refused("missing file", test_path("no-such-file.gz"), CLCNN_ERROR_IO, "cannot open",
                   "No such file or directory");
    expect_refused("directory", test_dir(), CLCNN_ERROR_IO, "not a regular file", NULL);

    clcnn_array out;
    CHECK(clcnn_idx_read(ctx, NULL, &out) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_idx_read(ctx, path, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
}

static void test_fashion_mnist(void) {
    FILE *probe = fopen(fashion_labels, "rb");
    if (!probe) {
        test_skip("%s is absent: the Fashion-MNIST checks did not run", fashion_labels);
        return;
    }
    fclose(probe);

    clcnn_array labels;
    if (CHECK_OK(ctx, clcnn_idx_read(ctx, fashion_labels, &labels))) {
        CHECK(labels.dtype == CLCNN_UINT8);
        CHECK(labels.ndim == 1 && labels.shape[0] == 10000);
        int in_range = 1;
        int seen[10] = {0};
        for (int64_t i = 0; i < clcnn_array_count(&labels); i++) {
            uint8_t label = ((const uint8_t *)labels.data)[i];
            if (label >= 10)
                in_range = 0;
            else
                seen[label]++;
        }
        CHECK(in_range);
        /* The test set is balanced: 1000 images of each class. */
        for (int c = 0; c < 10; c++)
            CHECK(seen[c] == 1000);
        clcnn_array_free(&labels);
    }

    probe = fopen(fashion_images, "rb");
    if (!probe) {
        test_skip("%s is absent: the Fashion-MNIST image check did not run", fashion_images);
        return;
    }
    fclose(probe);
    clcnn_array images;
    if (CHECK_OK(ctx, clcnn_idx_read(ctx, fashion_images, &images))) {
        CHECK(images.dtype == CLCNN_UINT8);
        CHECK(images.ndim == 3);
        CHECK(images.shape[0] == 10000 && images.shape[1] == 28 && images.shape[2] == 28);
        /* Real pictures: not all one value. */
        const uint8_t *pixels = images.data;
        int varied = 0;
        for (int64_t i = 1; i < 28 * 28 && !varied; i++)
            varied = pixels[i] != pixels[0];
        CHECK(varied);
        clcnn_array_free(&images);
    }
}

int main(void) {
    ctx = clcnn_context_create();
    if (!CHECK(ctx != NULL))
        return test_finish();
    test_round_trips();
    test_truncated();
    test_malformed();
    test_fashion_mnist();
    clcnn_context_destroy(ctx);
    return test_finish();
}
