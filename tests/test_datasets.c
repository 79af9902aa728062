/* Data sets other than IDX, written here: CIFAR-10 and CIFAR-100 binaries
 * (pixels, labels, class names, every error a damaged file can give) and
 * image folders (PNG written with stb_image_write, PGM and PPM by hand; the
 * grey images of an RGB set expanded; sizes and class lists checked);
 * which format a directory holds; per-channel statistics; and augmentation:
 * flips, crops and rotations of known images, the draws keyed by (seed,
 * epoch, image), and a trainer that augments the same way every time. */
#include "internal.h"
#include "testlib.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>

enum { CIFAR_PIXELS = 3 * 32 * 32, PATH_SIZE = 1400 };

static clcnn_context *ctx;

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

/* ---- files ------------------------------------------------------------------------------ */

static char *path_in(char *buf, const char *name) {
    snprintf(buf, PATH_SIZE, "%s/%s", test_dir(), name);
    return buf;
}

static void make_directory(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
}

static int write_bytes(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = size == 0 || fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The pixel byte of CIFAR image `image`, plane position p: a pattern that
 * differs between images, channels and places. */
static unsigned char cifar_pixel(int image, int p) {
    const int channel = p / 1024, place = p % 1024;
    /* another range per channel, so that the channels' means differ */
    return (unsigned char)((image * 37 + place * 7) % (96 + 64 * channel));
}

/* count records from image `first` on, with labels label(i); label_bytes 1 or 2. */
static unsigned char *cifar_records(int first, int count, int label_bytes, size_t *size) {
    const size_t record = (size_t)label_bytes + CIFAR_PIXELS;
    unsigned char *bytes = malloc(record * (size_t)count);
    for (int r = 0; r < count; r++) {
        unsigned char *p = bytes + record * (size_t)r;
        const int image = first + r;
        if (label_bytes == 2) {
            p[0] = (unsigned char)(image % 20);       /* coarse */
            p[1] = (unsigned char)(image * 13 % 100); /* fine */
        } else {
            p[0] = (unsigned char)(image * 3 % 10);
        }
        for (int i = 0; i < CIFAR_PIXELS; i++)
            p[label_bytes + i] = cifar_pixel(image, i);
    }
    *size = record * (size_t)count;
    return bytes;
}

static int write_cifar_file(const char *dir, const char *name, int first, int count,
                            int label_bytes) {
    char path[PATH_SIZE + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    size_t size;
    unsigned char *bytes = cifar_records(first, count, label_bytes, &size);
    int result = write_bytes(path, bytes, size);
    free(bytes);
    return result;
}

/* CIFAR-10: five training batches of 4 records, a test batch of 6, the names. */
static void write_cifar10(const char *dir, int with_names) {
    make_directory(dir);
    char name[64];
    for (int b = 1; b <= 5; b++) {
        snprintf(name, sizeof(name), "data_batch_%d.bin", b);
        CHECK(write_cifar_file(dir, name, (b - 1) * 4, 4, 1) == 0);
    }
    CHECK(write_cifar_file(dir, "test_batch.bin", 100, 6, 1) == 0);
    if (with_names) {
        char text[512] = "", path[PATH_SIZE + 64];
        for (int i = 0; i < 10; i++) {
            strcat(text, cifar10_names[i]);
            strcat(text, i == 3 ? " \r\n" : "\n"); /* a CR and a blank to ignore */
        }
        strcat(text, "\n");
        snprintf(path, sizeof(path), "%s/batches.meta.txt", dir);
        CHECK(write_text(path, text) == 0);
    }
}

static void check_cifar_images(const clcnn_dataset *d, int first, int label_bytes) {
    int pixels_ok = 1, labels_ok = 1;
    for (int64_t i = 0; i < d->count; i++) {
        const int image = first + (int)i;
        const int label = label_bytes == 2 ? image * 13 % 100 : image * 3 % 10;
        labels_ok &= d->labels[i] == label;
        for (int p = 0; p < CIFAR_PIXELS; p++)
            pixels_ok &= d->images[i * CIFAR_PIXELS + p] == cifar_pixel(image, p) / 255.0f;
    }
    CHECK(pixels_ok);
    CHECK(labels_ok);
}

/* Loading fails with a message holding every NULL-terminated substring. */
static int fails_with(clcnn_status status, const char *const *substrings, int line) {
    int ok = status != CLCNN_OK;
    for (int i = 0; ok && substrings[i]; i++)
        ok = strstr(clcnn_last_error(ctx), substrings[i]) != NULL;
    if (!check_true(ok, "a failure naming what is wrong", __FILE__, line))
        fprintf(stderr, "  status %s, message: %s\n", clcnn_status_name(status),
                clcnn_last_error(ctx));
    return ok;
}
#define FAILS_WITH(call, ...)                                                                      \
    do {                                                                                           \
        const char *const expected_[] = {__VA_ARGS__, NULL};                                       \
        fails_with((call), expected_, __LINE__);                                                   \
    } while (0)

/* ---- CIFAR -------------------------------------------------------------------------------- */

static void test_cifar10(void) {
    char dir[PATH_SIZE];
    path_in(dir, "cifar10");
    write_cifar10(dir, 1);
    clcnn_data_format format = CLCNN_DATA_FOLDERS;
    CHECK_OK(ctx, clcnn_dataset_detect(ctx, dir, &format));
    CHECK(format == CLCNN_DATA_CIFAR10);
    CHECK(strcmp(clcnn_data_format_name(format), "CIFAR-10") == 0);
    clcnn_dataset train = {0}, test = {0};
    if (CHECK_OK(ctx, clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &train))) {
        CHECK(train.count == 20 && train.channels == 3 && train.height == 32 && train.width == 32 &&
              train.classes == 10);
        check_cifar_images(&train, 0, 1);
        if (CHECK(train.class_names != NULL))
            for (int i = 0; i < 10; i++)
                CHECK(strcmp(train.class_names[i], cifar10_names[i]) == 0);
    }
    if (CHECK_OK(ctx, clcnn_dataset_load_cifar(ctx, dir, CLCNN_SPLIT_TEST, &test))) {
        CHECK(test.count == 6);
        check_cifar_images(&test, 100, 1);
    }
    clcnn_dataset_free(&train);
    clcnn_dataset_free(&test);

    /* Without the names file there are none; batches stop at the first gap. */
    char other[PATH_SIZE], path[PATH_SIZE + 64];
    path_in(other, "cifar10-plain");
    write_cifar10(other, 0);
    snprintf(path, sizeof(path), "%s/data_batch_3.bin", other);
    remove(path);
    if (CHECK_OK(ctx, clcnn_dataset_load(ctx, other, CLCNN_SPLIT_TRAIN, &train))) {
        CHECK(train.count == 8 && train.class_names == NULL);
        check_cifar_images(&train, 0, 1);
    }
    clcnn_dataset_free(&train);
}

static void test_cifar100(void) {
    char dir[PATH_SIZE], path[PATH_SIZE + 64];
    path_in(dir, "cifar100");
    make_directory(dir);
    CHECK(write_cifar_file(dir, "train.bin", 0, 9, 2) == 0);
    CHECK(write_cifar_file(dir, "test.bin", 50, 3, 2) == 0);
    char *names = malloc(100 * 40);
    names[0] = 0;
    for (int i = 0; i < 100; i++)
        sprintf(names + strlen(names), "fine_class_%02d\n", i);
    snprintf(path, sizeof(path), "%s/fine_label_names.txt", dir);
    CHECK(write_text(path, names) == 0);
    free(names);
    /* The coarse names are not the classes. */
    snprintf(path, sizeof(path), "%s/coarse_label_names.txt", dir);
    CHECK(write_text(path, "one\ntwo\n") == 0);

    clcnn_data_format format = CLCNN_DATA_IDX;
    CHECK_OK(ctx, clcnn_dataset_detect(ctx, dir, &format));
    CHECK(format == CLCNN_DATA_CIFAR100);
    clcnn_dataset train = {0}, test = {0};
    if (CHECK_OK(ctx, clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &train))) {
        CHECK(train.count == 9 && train.channels == 3 && train.classes == 100);
        check_cifar_images(&train, 0, 2);
        CHECK(train.class_names && strcmp(train.class_names[0], "fine_class_00") == 0 &&
              strcmp(train.class_names[99], "fine_class_99") == 0);
    }
    if (CHECK_OK(ctx, clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TEST, &test))) {
        CHECK(test.count == 3);
        check_cifar_images(&test, 50, 2);
    }
    clcnn_dataset_free(&train);
    clcnn_dataset_free(&test);
}

static void test_cifar_errors(void) {
    char dir[PATH_SIZE], path[PATH_SIZE + 64];
    clcnn_dataset d = {0};
    size_t size;
    unsigned char *bytes;

    /* A size that is not a whole number of records: the last one's offset. */
    path_in(dir, "cifar10-cut");
    write_cifar10(dir, 0);
    snprintf(path, sizeof(path), "%s/test_batch.bin", dir);
    bytes = cifar_records(0, 3, 1, &size);
    CHECK(write_bytes(path, bytes, 2 * 3073 + 100) == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TEST, &d), "test_batch.bin",
               "6246 bytes is not a whole number of 3073-byte CIFAR-10 records",
               "at byte offset 6146", "only 100 bytes");
    CHECK(d.images == NULL && d.count == 0);
    /* CIFAR-100 records under CIFAR-10's names: the message says so. */
    free(bytes);
    bytes = cifar_records(0, 3, 2, &size);
    CHECK(write_bytes(path, bytes, size) == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TEST, &d), "test_batch.bin",
               "fits CIFAR-100's 3074-byte records");
    free(bytes);
    /* An empty file. */
    CHECK(write_bytes(path, "", 0) == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TEST, &d), "test_batch.bin", "empty");
    /* No test batch at all. */
    remove(path);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TEST, &d), "no test_batch.bin");
    CHECK_OK(ctx, clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d));
    clcnn_dataset_free(&d);

    /* A label out of range, in the third record of the second batch. */
    bytes = cifar_records(0, 4, 1, &size);
    bytes[2 * 3073] = 12;
    snprintf(path, sizeof(path), "%s/data_batch_2.bin", dir);
    CHECK(write_bytes(path, bytes, size) == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d), "data_batch_2.bin",
               "record 2 at byte offset 6146", "label 12", "0 to 9");
    free(bytes);

    /* CIFAR-100: a coarse label out of range; a fine one. */
    path_in(dir, "cifar100-bad");
    make_directory(dir);
    snprintf(path, sizeof(path), "%s/train.bin", dir);
    bytes = cifar_records(0, 3, 2, &size);
    bytes[3074] = 20;
    CHECK(write_bytes(path, bytes, size) == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d), "train.bin",
               "record 1 at byte offset 3074", "coarse label 20");
    bytes[3074] = 0;
    bytes[2 * 3074 + 1] = 100;
    CHECK(write_bytes(path, bytes, size) == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d), "train.bin", "byte offset 6149",
               "label 100", "0 to 99");
    /* CIFAR-10 records under CIFAR-100's name. */
    CHECK(write_bytes(path, bytes, 3 * 3073) == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d), "train.bin",
               "3074-byte CIFAR-100 records", "fits CIFAR-10's 3073-byte records");
    free(bytes);

    /* Names files: too few names, a name too long. */
    path_in(dir, "cifar10-names");
    write_cifar10(dir, 0);
    snprintf(path, sizeof(path), "%s/batches.meta.txt", dir);
    CHECK(write_text(path, "a\nb\nc\nd\ne\nf\ng\nh\ni\n") == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d), "batches.meta.txt",
               "9 class names, expected CIFAR-10's 10");
    CHECK(write_text(path, "a\nb\nthis name is far longer than a model keeps\n") == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d), "batches.meta.txt", "line 3",
               "more than the 31");
}

/* ---- image folders ------------------------------------------------------------------------ */

enum { FOLDER_W = 6, FOLDER_H = 5 };

/* Image `n`'s pixel (y, x), channel c. */
static unsigned char folder_pixel(int n, int y, int x, int c) {
    return (unsigned char)(n * 29 + y * 17 + x * 5 + c * 60);
}

/* An RGB (channels 3) or grey (1) PNG of image n. */
static void write_png(const char *path, int n, int channels) {
    unsigned char pixels[FOLDER_W * FOLDER_H * 3];
    for (int y = 0; y < FOLDER_H; y++)
        for (int x = 0; x < FOLDER_W; x++)
            for (int c = 0; c < channels; c++)
                pixels[(y * FOLDER_W + x) * channels + c] = folder_pixel(n, y, x, c);
    CHECK(stbi_write_png(path, FOLDER_W, FOLDER_H, channels, pixels, FOLDER_W * channels) != 0);
}

/* A binary PGM (P5) or PPM (P6) by hand, of the given size. */
static void write_pnm(const char *path, int n, int channels, int width, int height) {
    FILE *f = fopen(path, "wb");
    if (!CHECK(f != NULL))
        return;
    fprintf(f, "%s\n%d %d\n255\n", channels == 3 ? "P6" : "P5", width, height);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < channels; c++)
                fputc(folder_pixel(n, y, x, c), f);
    fclose(f);
}

static void folder_file(char *path, const char *dir, const char *split, const char *class_name,
                        const char *file) {
    char d[PATH_SIZE + 128];
    snprintf(d, sizeof(d), "%s/%s", dir, split);
    make_directory(d);
    snprintf(d, sizeof(d), "%s/%s/%s", dir, split, class_name);
    make_directory(d);
    snprintf(path, PATH_SIZE + 256, "%s/%s", d, file);
}

/* train: cat (RGB PNG 1, grey PNG 2), dog (PPM 3, grey PGM 4), bird (RGB PNG 5),
 * and a text file to skip; test: bird (6), cat (7), dog (8), all RGB PNG. */
static void write_folders(const char *dir) {
    char path[PATH_SIZE + 256];
    make_directory(dir);
    folder_file(path, dir, "train", "cat", "b.png");
    write_png(path, 1, 3);
    folder_file(path, dir, "train", "cat", "c.png");
    write_png(path, 2, 1);
    folder_file(path, dir, "train", "cat", "notes.txt");
    CHECK(write_text(path, "not an image\n") == 0);
    folder_file(path, dir, "train", "dog", "a.ppm");
    write_pnm(path, 3, 3, FOLDER_W, FOLDER_H);
    folder_file(path, dir, "train", "dog", "b.PGM");
    write_pnm(path, 4, 1, FOLDER_W, FOLDER_H);
    folder_file(path, dir, "train", "bird", "z.png");
    write_png(path, 5, 3);
    for (int i = 0; i < 3; i++) {
        static const char *const classes[3] = {"bird", "cat", "dog"};
        folder_file(path, dir, "test", classes[i], "x.png");
        write_png(path, 6 + i, 3);
    }
}

/* Image i of d is image n of the pattern: RGB, or grey expanded when grey. */
static int folder_image_is(const clcnn_dataset *d, int64_t i, int n, int grey) {
    const int plane = FOLDER_W * FOLDER_H;
    for (int c = 0; c < d->channels; c++)
        for (int y = 0; y < FOLDER_H; y++)
            for (int x = 0; x < FOLDER_W; x++)
                if (d->images[i * d->channels * plane + c * plane + y * FOLDER_W + x] !=
                    folder_pixel(n, y, x, grey ? 0 : c) / 255.0f)
                    return 0;
    return 1;
}

static void test_folders(void) {
    char dir[PATH_SIZE];
    path_in(dir, "folders");
    write_folders(dir);
    clcnn_data_format format = CLCNN_DATA_IDX;
    CHECK_OK(ctx, clcnn_dataset_detect(ctx, dir, &format));
    CHECK(format == CLCNN_DATA_FOLDERS);
    clcnn_dataset train = {0}, test = {0};
    if (CHECK_OK(ctx, clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &train))) {
        CHECK(train.count == 5 && train.channels == 3 && train.height == FOLDER_H &&
              train.width == FOLDER_W && train.classes == 3);
        /* Sorted classes, sorted files: bird z; cat b, c; dog a, b. */
        static const int labels[5] = {0, 1, 1, 2, 2}, images[5] = {5, 1, 2, 3, 4},
                         grey[5] = {0, 0, 1, 0, 1};
        for (int i = 0; i < 5 && i < train.count; i++)
            if (!CHECK(train.labels[i] == labels[i] &&
                       folder_image_is(&train, i, images[i], grey[i])))
                fprintf(stderr, "folder image %d is not what was written\n", i);
        if (CHECK(train.class_names != NULL))
            CHECK(strcmp(train.class_names[0], "bird") == 0 &&
                  strcmp(train.class_names[1], "cat") == 0 &&
                  strcmp(train.class_names[2], "dog") == 0);
    }
    if (CHECK_OK(ctx, clcnn_dataset_load_folders(ctx, dir, CLCNN_SPLIT_TEST, &test))) {
        CHECK(test.count == 3 && test.channels == 3 && test.classes == 3);
        for (int i = 0; i < 3 && i < test.count; i++)
            CHECK(test.labels[i] == i && folder_image_is(&test, i, 6 + i, 0));
    }
    clcnn_dataset_free(&train);
    clcnn_dataset_free(&test);

    /* A grey set stays grey: one channel. */
    char grey_dir[PATH_SIZE], path[PATH_SIZE + 256];
    path_in(grey_dir, "folders-grey");
    make_directory(grey_dir);
    folder_file(path, grey_dir, "train", "a", "1.pgm");
    write_pnm(path, 1, 1, FOLDER_W, FOLDER_H);
    folder_file(path, grey_dir, "train", "b", "1.png");
    write_png(path, 2, 1);
    if (CHECK_OK(ctx, clcnn_dataset_load(ctx, grey_dir, CLCNN_SPLIT_TRAIN, &train))) {
        CHECK(train.count == 2 && train.channels == 1 && train.classes == 2);
        CHECK(folder_image_is(&train, 0, 1, 1) && folder_image_is(&train, 1, 2, 1));
    }
    clcnn_dataset_free(&train);
    /* No test/ directory: the test split says so. */
    clcnn_dataset d = {0};
    FAILS_WITH(clcnn_dataset_load(ctx, grey_dir, CLCNN_SPLIT_TEST, &d), "no test/ directory");

    /* An image of another size, in test/: named with both sizes. */
    char bad[PATH_SIZE];
    path_in(bad, "folders-size");
    write_folders(bad);
    folder_file(path, bad, "test", "cat", "y.ppm");
    write_pnm(path, 9, 3, FOLDER_W + 1, FOLDER_H);
    FAILS_WITH(clcnn_dataset_load(ctx, bad, CLCNN_SPLIT_TRAIN, &d), "test/cat/y.ppm",
               "the image is 7x5", "is 6x5", "one size");
    /* A file that is not the image it says. */
    CHECK(write_text(path, "P6 nonsense") == 0);
    folder_file(path, bad, "test", "cat", "y.ppm");
    FAILS_WITH(clcnn_dataset_load(ctx, bad, CLCNN_SPLIT_TEST, &d), "test/cat/y.ppm",
               "cannot read the image");
    remove(path);
    folder_file(path, bad, "train", "dog", "broken.png");
    CHECK(write_text(path, "\x89PNG\r\n\x1a\n but then nothing") == 0);
    FAILS_WITH(clcnn_dataset_load(ctx, bad, CLCNN_SPLIT_TRAIN, &d), "train/dog/broken.png");
    /* A PNG whose image data claims a gigabyte: refused before stb_image
     * would allocate for it. */
    write_png(path, 3, 3);
    unsigned char png[4096];
    FILE *f = fopen(path, "rb");
    const size_t png_size = f ? fread(png, 1, sizeof(png), f) : 0;
    if (f)
        fclose(f);
    size_t idat = 4;
    while (idat + 4 <= png_size && memcmp(png + idat, "IDAT", 4) != 0)
        idat++;
    if (CHECK(idat + 4 <= png_size)) {
        memcpy(png + idat - 4, "\x40\0\0\0", 4);
        CHECK(write_bytes(path, png, png_size) == 0);
        FAILS_WITH(clcnn_dataset_load(ctx, bad, CLCNN_SPLIT_TRAIN, &d), "train/dog/broken.png",
                   "a PNG chunk runs past the end of the file");
    }
    remove(path);
    /* Class lists that differ. */
    folder_file(path, bad, "test", "emu", "x.png");
    write_png(path, 1, 3);
    FAILS_WITH(clcnn_dataset_load(ctx, bad, CLCNN_SPLIT_TRAIN, &d), "same class folders",
               "'emu' is in test/ only");
    remove(path);
    folder_file(path, bad, "test", "emu", "");
    rmdir(path);
    folder_file(path, bad, "train", "ant", "x.png");
    write_png(path, 1, 3);
    FAILS_WITH(clcnn_dataset_load(ctx, bad, CLCNN_SPLIT_TEST, &d), "'ant' is in train/ only");
    CHECK(d.images == NULL);
}

static void test_detect_and_statistics(void) {
    char dir[PATH_SIZE];
    clcnn_data_format format;
    path_in(dir, "empty");
    make_directory(dir);
    FAILS_WITH(clcnn_dataset_detect(ctx, dir, &format), "empty", "no data set");
    clcnn_dataset d = {0};
    FAILS_WITH(clcnn_dataset_load(ctx, dir, CLCNN_SPLIT_TRAIN, &d), "no data set");
    FAILS_WITH(clcnn_dataset_load(ctx, path_in(dir, "no-such-dir"), CLCNN_SPLIT_TRAIN, &d),
               "no-such-dir");
    /* IDX wins over anything else in the directory. */
    path_in(dir, "cifar10");
    char path[PATH_SIZE + 64];
    snprintf(path, sizeof(path), "%s/t10k-images-idx3-ubyte", dir);
    CHECK(write_bytes(path, "\0\0\x08\x01\0\0\0\0", 8) == 0);
    CHECK_OK(ctx, clcnn_dataset_detect(ctx, dir, &format));
    CHECK(format == CLCNN_DATA_IDX);
    remove(path);

    /* Per-channel statistics against sums done here, and the normalisation. */
    clcnn_dataset set = {0};
    if (!CHECK_OK(ctx, clcnn_dataset_load(ctx, path_in(dir, "cifar10"), CLCNN_SPLIT_TEST, &set)))
        return;
    float mean[3], std[3], all_mean, all_std;
    clcnn_dataset_channel_statistics(&set, mean, std);
    for (int c = 0; c < 3; c++) {
        double sum = 0, squares = 0;
        for (int64_t i = 0; i < set.count; i++)
            for (int p = 0; p < 1024; p++) {
                double v = set.images[i * CIFAR_PIXELS + c * 1024 + p];
                sum += v;
                squares += v * v;
            }
        const double n = (double)set.count * 1024, m = sum / n;
        CHECK(fabs(mean[c] - m) < 1e-6 && fabs(std[c] - sqrt(squares / n - m * m)) < 1e-6);
    }
    CHECK(mean[0] != mean[1] && mean[1] != mean[2]);
    clcnn_dataset_normalize_channels(&set, mean, std);
    float after_mean[3], after_std[3];
    clcnn_dataset_channel_statistics(&set, after_mean, after_std);
    for (int c = 0; c < 3; c++)
        CHECK(fabs(after_mean[c]) < 1e-5 && fabs(after_std[c] - 1.0f) < 1e-4);
    /* One channel: the same figures as the whole-set statistics, bit for bit. */
    clcnn_dataset one = set;
    one.channels = 1;
    one.count = set.count * 3;
    clcnn_dataset_channel_statistics(&one, mean, std);
    clcnn_dataset_statistics(&one, &all_mean, &all_std);
    CHECK(memcmp(mean, &all_mean, sizeof(float)) == 0 && memcmp(std, &all_std, sizeof(float)) == 0);
    clcnn_dataset_free(&set);
}

/* ---- augmentation -------------------------------------------------------------------------- */

enum { AUG_C = 2, AUG_H = 5, AUG_W = 5 };

static float aug_source(int c, int y, int x) {
    return 1.0f + (float)(c * 100 + y * 10 + x);
}

static void fill_source(float *src) {
    for (int c = 0; c < AUG_C; c++)
        for (int y = 0; y < AUG_H; y++)
            for (int x = 0; x < AUG_W; x++)
                src[(c * AUG_H + y) * AUG_W + x] = aug_source(c, y, x);
}

/* dst(c, y, x) against expected(c, y, x) (0 outside the source) within tolerance. */
static int transformed_as(const float *dst, double tolerance,
                          void (*where)(int y, int x, int *sy, int *sx)) {
    for (int c = 0; c < AUG_C; c++)
        for (int y = 0; y < AUG_H; y++)
            for (int x = 0; x < AUG_W; x++) {
                int sy, sx;
                where(y, x, &sy, &sx);
                const float want =
                    sy < 0 || sy >= AUG_H || sx < 0 || sx >= AUG_W ? 0.0f : aug_source(c, sy, sx);
                if (fabs(dst[(c * AUG_H + y) * AUG_W + x] - want) > tolerance) {
                    fprintf(stderr, "augmented (%d, %d, %d) is %g, expected %g\n", c, y, x,
                            dst[(c * AUG_H + y) * AUG_W + x], want);
                    return 0;
                }
            }
    return 1;
}

static void identity_map(int y, int x, int *sy, int *sx) {
    *sy = y, *sx = x;
}
static void flip_map(int y, int x, int *sy, int *sx) {
    *sy = y, *sx = AUG_W - 1 - x;
}
/* pad 2, crop at (0, 4): up 2 rows, right 2 columns */
static void crop_map(int y, int x, int *sy, int *sx) {
    *sy = y - 2, *sx = x + 2;
}
/* the crop, then the flip */
static void crop_flip_map(int y, int x, int *sy, int *sx) {
    *sy = y - 2, *sx = AUG_W - 1 - x + 2;
}
/* 90 degrees counter-clockwise: the right column becomes the top row */
static void rotate90_map(int y, int x, int *sy, int *sx) {
    *sy = x, *sx = AUG_W - 1 - y;
}
static void rotate180_map(int y, int x, int *sy, int *sx) {
    *sy = AUG_H - 1 - y, *sx = AUG_W - 1 - x;
}

static void test_augment_image(void) {
    float src[AUG_C * AUG_H * AUG_W], dst[AUG_C * AUG_H * AUG_W];
    fill_source(src);
    augment_draw d = {0, 0, 0, 0.0};
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 0, &d);
    CHECK(transformed_as(dst, 0.0, identity_map));
    d.flip = 1;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 0, &d);
    CHECK(transformed_as(dst, 0.0, flip_map));
    /* Crops from the image padded by 2: the centre one is the image itself. */
    d.flip = 0;
    d.crop_y = 2;
    d.crop_x = 2;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 2, &d);
    CHECK(transformed_as(dst, 0.0, identity_map));
    d.crop_y = 0;
    d.crop_x = 4;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 2, &d);
    CHECK(transformed_as(dst, 0.0, crop_map));
    d.flip = 1;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 2, &d);
    CHECK(transformed_as(dst, 0.0, crop_flip_map));
    /* Rotations by quarter turns land on pixels (up to cos(90°) rounding). */
    d.flip = 0;
    d.crop_y = d.crop_x = 0;
    d.angle = 90.0;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 0, &d);
    CHECK(transformed_as(dst, 1e-4, rotate90_map));
    d.angle = -270.0;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 0, &d);
    CHECK(transformed_as(dst, 1e-4, rotate90_map));
    d.angle = 180.0;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 0, &d);
    CHECK(transformed_as(dst, 1e-4, rotate180_map));
    /* 45 degrees of a constant image: the centre keeps its value, a corner
     * comes from outside (0), and an edge's middle is interpolated. */
    float ones[AUG_H * AUG_W], turned[AUG_H * AUG_W];
    for (int i = 0; i < AUG_H * AUG_W; i++)
        ones[i] = 1.0f;
    d.angle = 45.0;
    augment_image(ones, turned, 1, AUG_H, AUG_W, 0, &d);
    CHECK(fabsf(turned[2 * AUG_W + 2] - 1.0f) < 1e-6f);
    /* (0, 0) samples (2 - 2 sqrt 2, 2) = (-0.83, 2): a weight of 3 - 2 sqrt 2
     * on row 0, the rest on row -1, outside the image: 0. */
    CHECK(fabs(turned[0] - (3.0 - 2.0 * sqrt(2.0))) < 1e-6);
    /* (0, 2) samples (2 - 2 cos45, 2 - 2 sin45) = (0.586, 0.586): inside. */
    CHECK(fabsf(turned[2] - 1.0f) < 1e-6f);
    /* A small rotation moves a pixel by bilinear weights: the centre of an
     * odd image stays put exactly. */
    d.angle = 7.5;
    augment_image(src, dst, AUG_C, AUG_H, AUG_W, 0, &d);
    CHECK(fabsf(dst[2 * AUG_W + 2] - aug_source(0, 2, 2)) < 1e-4f);
    CHECK(dst[2 * AUG_W + 1] != aug_source(0, 2, 1));
}

static void test_augment_draws(void) {
    clcnn_train_config c;
    clcnn_train_config_defaults(&c);
    CHECK(!augment_enabled(&c));
    c.augment_crop_pad = 3;
    c.augment_flip = 1;
    c.augment_rotate_degrees = 12.5;
    CHECK(augment_enabled(&c));
    int flips = 0, crops[7] = {0}, same = 0, repeat = 1;
    double smallest = 1e9, largest = -1e9;
    const int n = 4000;
    for (int i = 0; i < n; i++) {
        augment_draw d = augment_draws(&c, 2, i), again = augment_draws(&c, 2, i);
        augment_draw other_epoch = augment_draws(&c, 3, i);
        repeat &= d.flip == again.flip && d.crop_y == again.crop_y && d.crop_x == again.crop_x &&
                  d.angle == again.angle;
        same += d.flip == other_epoch.flip && d.crop_y == other_epoch.crop_y &&
                d.crop_x == other_epoch.crop_x && d.angle == other_epoch.angle;
        flips += d.flip;
        CHECK(d.crop_y >= 0 && d.crop_y <= 6 && d.crop_x >= 0 && d.crop_x <= 6);
        crops[d.crop_x]++;
        smallest = fmin(smallest, d.angle);
        largest = fmax(largest, d.angle);
    }
    CHECK(repeat);
    CHECK(same < 5); /* another epoch draws anew */
    CHECK(abs(flips - n / 2) < 200);
    for (int k = 0; k < 7; k++)
        CHECK(abs(crops[k] - n / 7) < 150);
    CHECK(smallest >= -12.5 && smallest < -12.0 && largest <= 12.5 && largest > 12.0);
    /* Each kind has its own draw: turning the flip off changes no crop or angle. */
    clcnn_train_config no_flip = c;
    no_flip.augment_flip = 0;
    augment_draw a = augment_draws(&c, 1, 77), b = augment_draws(&no_flip, 1, 77);
    CHECK(b.flip == 0 && a.crop_y == b.crop_y && a.crop_x == b.crop_x && a.angle == b.angle);
    /* Another seed, other draws. */
    clcnn_train_config reseeded = c;
    reseeded.seed = 2;
    int differ = 0;
    for (int i = 0; i < 50; i++) {
        augment_draw x = augment_draws(&c, 0, i), y = augment_draws(&reseeded, 0, i);
        differ += x.angle != y.angle;
    }
    CHECK(differ > 45);
}

/* A trainer with augmentation: the configuration is checked, two runs of
 * the same seed end bit for bit alike, and the augmentation changes what is
 * learned. */
static void train_tiny(const clcnn_dataset *data, const clcnn_train_config *config, float *weights,
                       int64_t count) {
    static const char net_text[] = "input channels=3 height=32 width=32\n"
                                   "conv filters=2 size=5 stride=4\n"
                                   "relu\n"
                                   "flatten\n"
                                   "dense units=10\n"
                                   "softmax\n";
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (CHECK_OK(ctx, clcnn_net_from_string(ctx, net_text, "aug", &net)) &&
        CHECK_OK(ctx, clcnn_net_init_weights(net, 4)) &&
        CHECK_OK(ctx, clcnn_trainer_create(net, config, &trainer))) {
        for (int e = 0; e < 2; e++)
            CHECK_OK(ctx, clcnn_trainer_epoch(trainer, data, NULL, NULL, NULL, NULL));
        CHECK(clcnn_net_parameter_count(net) == count);
        CHECK_OK(ctx, clcnn_net_get_parameter(net, "dense1", "weight", weights, count - 10 - 152));
    }
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
}

static void test_augmented_training(void) {
    char dir[PATH_SIZE];
    clcnn_dataset data = {0};
    if (!CHECK_OK(ctx, clcnn_dataset_load(ctx, path_in(dir, "cifar10"), CLCNN_SPLIT_TRAIN, &data)))
        return;
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = 6;
    config.augment_crop_pad = 4;
    config.augment_flip = 1;
    config.augment_rotate_degrees = 15;
    /* conv 2 x 3 x 5 x 5 + 2, dense 10 x 98 + 10 */
    const int64_t count = 152 + 980 + 10;
    float *a = calloc(count, sizeof(float)), *b = calloc(count, sizeof(float)),
          *plain = calloc(count, sizeof(float));
    train_tiny(&data, &config, a, count);
    train_tiny(&data, &config, b, count);
    clcnn_train_config none = config;
    none.augment_crop_pad = 0;
    none.augment_flip = 0;
    none.augment_rotate_degrees = 0;
    train_tiny(&data, &none, plain, count);
    CHECK(memcmp(a, b, sizeof(float) * 980) == 0);
    CHECK(memcmp(a, plain, sizeof(float) * 980) != 0);
    free(a);
    free(b);
    free(plain);

    /* Settings the trainer refuses. */
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (CHECK_OK(ctx, clcnn_net_from_string(ctx,
                                            "input channels=1 height=4 width=4\nflatten\n"
                                            "dense units=2\n",
                                            "tiny", &net))) {
        clcnn_train_config bad = config;
        bad.augment_crop_pad = -1;
        FAILS_WITH(clcnn_trainer_create(net, &bad, &trainer), "crop padding");
        bad = config;
        bad.augment_flip = 2;
        FAILS_WITH(clcnn_trainer_create(net, &bad, &trainer), "augment_flip");
        bad = config;
        bad.augment_rotate_degrees = 200;
        FAILS_WITH(clcnn_trainer_create(net, &bad, &trainer), "rotation", "0..180");
        bad.augment_rotate_degrees = NAN;
        FAILS_WITH(clcnn_trainer_create(net, &bad, &trainer), "rotation");
    }
    clcnn_net_destroy(net);
    clcnn_dataset_free(&data);
}

int main(void) {
    ctx = clcnn_context_create();
    if (!CHECK(ctx != NULL) ||
        !CHECK_OK(ctx, clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, -1, -1)))
        return test_finish();
    test_cifar10();
    test_cifar100();
    test_cifar_errors();
    test_folders();
    test_detect_and_statistics();
    test_augment_image();
    test_augment_draws();
    test_augmented_training();
    clcnn_context_destroy(ctx);
    return test_finish();
}
