/* The training commands of `clcnn` end to end: train (progress lines, the
 * per-epoch test line and checkpoint), eval (loss, accuracy, confusion
 * matrix), resuming through the command line bit for bit, checkpoints that
 * survive failed runs and a killed process, predict on .npy, PGM, PNG and IDX
 * images, export/import, and the errors: each exits non-zero with exactly
 * one line on stderr that names the problem.
 *
 * Data: tiny MNIST-format directories written here (64 training and 32 test
 * images, gzip and raw, plus damaged copies) and, where a real run is
 * wanted, the first few hundred images of /usr/share/datasets/fashion-mnist.
 * 3-channel data written here too: CIFAR-10 and CIFAR-100 binaries and image
 * folders (PNG through stb_image_write), trained, evaluated and predicted
 * on through the command line, with augmentation resumed bit for bit. */
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <stb_image_write.h>

enum {
    SIDE = 28,
    IMAGE_SIZE = SIDE * SIDE,
    TINY_TRAIN = 64,
    TINY_TEST = 32,
    CLASSES = 10,
    OUTPUT_LIMIT = 1 << 17,
    PATH_SIZE = 1400,
};

static const char fashion_dir[] = "/usr/share/datasets/fashion-mnist";
static const char *const fashion_names[CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* A small network so that every run takes a fraction of a second:
 * conv 4 filters 5x5 stride 2 -> 4x12x12, max pooling -> 4x6x6, dense 144 -> 10. */
static const char small_net_text[] = "# a small network for the training command tests\n"
                                     "input channels=1 height=28 width=28\n"
                                     "conv filters=4 size=5 stride=2\n"
                                     "relu\n"
                                     "maxpool size=2\n"
                                     "flatten\n"
                                     "dense units=10\n"
                                     "softmax\n";

static clcnn_context *api; /* the reference device, for reading files and checking results */
static char net_path[PATH_SIZE], tiny_dir[PATH_SIZE], tiny_raw_dir[PATH_SIZE];
static int have_fashion;

/* The tiny data set's pixels and labels, as written. */
static unsigned char tiny_train_pixels[TINY_TRAIN * IMAGE_SIZE],
    tiny_test_pixels[TINY_TEST * IMAGE_SIZE];
static unsigned char tiny_train_labels[TINY_TRAIN], tiny_test_labels[TINY_TEST];

/* Models trained by check_train_eval, used by the later checks. */
static char fashion_model[PATH_SIZE], tiny_model[PATH_SIZE];

/* ---- files ------------------------------------------------------------------------------ */

static char *path_in(char *buf, const char *name) {
    snprintf(buf, PATH_SIZE, "%s/%s", test_dir(), name);
    return buf;
}

static int make_directory(const char *path) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
    return -1;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file (malloc'd, *size bytes), or NULL. */
static unsigned char *read_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *data = NULL;
    size_t used = 0, capacity = 0;
    for (;;) {
        if (used == capacity) {
            capacity = capacity ? capacity * 2 : 65536;
            unsigned char *grown = realloc(data, capacity);
            if (!grown) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t n = fread(data + used, 1, capacity - used, f);
        used += n;
        if (n == 0)
            break;
    }
    fclose(f);
    *size = used;
    return data;
}

static int write_bytes(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_gzip(const char *path, const void *data, size_t size) {
    gzFile f = gzopen(path, "wb");
    if (!f)
        return -1;
    int ok = gzwrite(f, data, (unsigned)size) == (int)size;
    return gzclose(f) == Z_OK && ok ? 0 : -1;
}

/* 1 when both files exist and hold the same bytes. */
static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *da = read_bytes(a, &na), *db = read_bytes(b, &nb);
    int same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

/* 1 when the file holds exactly these bytes. */
static int file_holds(const char *path, const unsigned char *bytes, size_t size) {
    size_t n = 0;
    unsigned char *data = read_bytes(path, &n);
    int same = data && n == size && memcmp(data, bytes, size) == 0;
    free(data);
    return same;
}

/* An IDX file: magic 0 0 8 ndim, big-endian sizes, then the bytes. */
static int write_idx(const char *path, int gzip, const int *dims, int ndim,
                     const unsigned char *values, size_t count) {
    size_t size = 4 + 4 * (size_t)ndim + count;
    unsigned char *data = malloc(size);
    if (!data)
        return -1;
    data[0] = 0;
    data[1] = 0;
    data[2] = 8;
    data[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++)
            data[4 + 4 * d + b] = (unsigned char)((unsigned)dims[d] >> (24 - 8 * b));
    memcpy(data + 4 + 4 * ndim, values, count);
    int result = gzip ? write_gzip(path, data, size) : write_bytes(path, data, size);
    free(data);
    return result;
}

/* An MNIST-format directory: train-* and t10k-* images and labels. */
static int write_dataset(const char *dir, int gzip, const unsigned char *train_pixels,
                         const unsigned char *train_labels, int train_count,
                         const unsigned char *test_pixels, const unsigned char *test_labels,
                         int test_count) {
    char path[PATH_SIZE + 64];
    const char *gz = gzip ? ".gz" : "";
    int image_dims[3] = {train_count, SIDE, SIDE}, label_dims[1] = {train_count};
    if (make_directory(dir) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte%s", dir, gz);
    if (write_idx(path, gzip, image_dims, 3, train_pixels, (size_t)train_count * IMAGE_SIZE) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/train-labels-idx1-ubyte%s", dir, gz);
    if (write_idx(path, gzip, label_dims, 1, train_labels, (size_t)train_count) != 0)
        return -1;
    image_dims[0] = label_dims[0] = test_count;
    snprintf(path, sizeof(path), "%s/t10k-images-idx3-ubyte%s", dir, gz);
    if (write_idx(path, gzip, image_dims, 3, test_pixels, (size_t)test_count * IMAGE_SIZE) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/t10k-labels-idx1-ubyte%s", dir, gz);
    return write_idx(path, gzip, label_dims, 1, test_labels, (size_t)test_count);
}

/* An image showing class pattern: noise and a dim 5x5 square whose place
 * depends on the class, so that the classes can be learned, though not
 * perfectly in a few epochs. */
static void make_image(test_rng *rng, int pattern, unsigned char *pixels) {
    for (int p = 0; p < IMAGE_SIZE; p++)
        pixels[p] = (unsigned char)test_rand_int(rng, 0, 110);
    int top = 3 + (pattern / 5) * 12 + test_rand_int(rng, 0, 2);
    int left = 1 + (pattern % 5) * 5 + test_rand_int(rng, 0, 1);
    for (int y = top; y < top + 5; y++)
        for (int x = left; x < left + 5; x++)
            pixels[y * SIDE + x] = (unsigned char)test_rand_int(rng, 90, 200);
}

static int make_tiny_data(void) {
    /* Every fourth image shows another class's pattern: no model gets all
     * right, so the confusion matrix has entries off its diagonal. */
    test_rng rng = {777};
    for (int i = 0; i < TINY_TRAIN; i++) {
        int label = (i * 7 + 3) % CLASSES;
        tiny_train_labels[i] = (unsigned char)label;
        make_image(&rng, i % 4 == 3 ? (label + 3) % CLASSES : label,
                   tiny_train_pixels + i * IMAGE_SIZE);
    }
    for (int i = 0; i < TINY_TEST; i++) {
        int label = i % CLASSES;
        tiny_test_labels[i] = (unsigned char)label;
        make_image(&rng, i % 4 == 3 ? (label + 3) % CLASSES : label,
                   tiny_test_pixels + i * IMAGE_SIZE);
    }
    path_in(tiny_dir, "tiny");
    path_in(tiny_raw_dir, "tiny-raw");
    return write_dataset(tiny_dir, 1, tiny_train_pixels, tiny_train_labels, TINY_TRAIN,
                         tiny_test_pixels, tiny_test_labels, TINY_TEST) == 0 &&
           write_dataset(tiny_raw_dir, 0, tiny_train_pixels, tiny_train_labels, TINY_TRAIN,
                         tiny_test_pixels, tiny_test_labels, TINY_TEST) == 0;
}

/* A PNG written by hand: signature, IHDR (8-bit grayscale), one IDAT of
 * zlib-compressed scanlines each led by filter byte 0, IEND; every chunk
 * with its CRC-32 over type and data. */
static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int put_chunk(FILE *f, const char *type, const unsigned char *data, uint32_t length) {
    unsigned char header[8], trailer[4];
    put_u32(header, length);
    memcpy(header + 4, type, 4);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)type, 4);
    if (length)
        crc = crc32(crc, data, length);
    put_u32(trailer, (uint32_t)crc);
    return fwrite(header, 1, 8, f) == 8 && (length == 0 || fwrite(data, 1, length, f) == length) &&
                   fwrite(trailer, 1, 4, f) == 4
               ? 0
               : -1;
}

static int write_png(const char *path, const unsigned char *pixels, int width, int height) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13];
    put_u32(ihdr, (uint32_t)width);
    put_u32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 0;  /* grayscale */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    size_t raw_size = (size_t)height * (width + 1);
    unsigned char *raw = malloc(raw_size);
    uLongf packed_size = compressBound((uLong)raw_size);
    unsigned char *packed = malloc(packed_size);
    int result = -1;
    if (raw && packed) {
        for (int y = 0; y < height; y++) {
            raw[(size_t)y * (width + 1)] = 0; /* filter: none */
            memcpy(raw + (size_t)y * (width + 1) + 1, pixels + (size_t)y * width, (size_t)width);
        }
        FILE *f = fopen(path, "wb");
        if (f && compress2(packed, &packed_size, raw, (uLong)raw_size, 9) == Z_OK &&
            fwrite(signature, 1, 8, f) == 8 && put_chunk(f, "IHDR", ihdr, 13) == 0 &&
            put_chunk(f, "IDAT", packed, (uint32_t)packed_size) == 0 &&
            put_chunk(f, "IEND", NULL, 0) == 0)
            result = 0;
        if (f && fclose(f) != 0)
            result = -1;
    }
    free(raw);
    free(packed);
    return result;
}

/* A binary PGM (P5) with a comment in its header. */
static int write_pgm(const char *path, const unsigned char *pixels, int width, int height) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fprintf(f, "P5\n# written by test_train_cli\n%d %d\n255\n", width, height);
    int ok = fwrite(pixels, 1, (size_t)width * height, f) == (size_t)width * height;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Bytes / 255 as float32 (count, 1, 28, 28). */
static int write_images_npy(const char *path, const unsigned char *pixels, int count) {
    float *values = malloc(sizeof(float) * (size_t)count * IMAGE_SIZE);
    if (!values)
        return 0;
    for (int i = 0; i < count * IMAGE_SIZE; i++)
        values[i] = pixels[i] / 255.0f;
    clcnn_array array = {0};
    array.dtype = CLCNN_FLOAT32;
    array.ndim = 4;
    array.shape[0] = count;
    array.shape[1] = 1;
    array.shape[2] = SIDE;
    array.shape[3] = SIDE;
    array.data = values;
    int ok = CHECK_OK(api, clcnn_npy_write(api, path, &array));
    free(values);
    return ok;
}

/* ---- running clcnn ---------------------------------------------------------------------- */

typedef struct run_result {
    int status;
    char out[OUTPUT_LIMIT], err[OUTPUT_LIMIT];
} run_result;

static run_result run_buffer; /* large: kept out of the stack */

/* Runs clcnn with the arguments, stdout and stderr apart. */
static run_result *run_clcnn(const char *arguments) {
    run_result *r = &run_buffer;
    char command[8192], stderr_path[PATH_SIZE];
    path_in(stderr_path, "stderr.txt");
    /* The parentheses keep stderr in the file despite run_command's 2>&1. */
    snprintf(command, sizeof(command), "( '%s' %s 2>'%s' )", clcnn_bin(), arguments, stderr_path);
    r->status = run_command(command, r->out, sizeof(r->out));
    r->err[0] = 0;
    FILE *f = fopen(stderr_path, "r");
    if (f) {
        size_t n = fread(r->err, 1, sizeof(r->err) - 1, f);
        r->err[n] = 0;
        fclose(f);
    }
    return r;
}

/* Runs clcnn and requires exit status 0 and nothing on stderr. */
static run_result *run_ok(const char *arguments) {
    run_result *r = run_clcnn(arguments);
    if (!CHECK(r->status == 0) || !CHECK(r->err[0] == 0))
        fprintf(stderr, "clcnn %s\nexited with %d, stdout:\n%s\nstderr:\n%s\n", arguments,
                r->status, r->out, r->err);
    return r;
}

/* Requires a failure: non-zero exit status, exactly one line on stderr
 * holding every NULL-terminated substring, and (when quiet) nothing on stdout. */
static void expect_failure(const char *what, const char *arguments, int quiet,
                           const char *const *substrings) {
    run_result *r = run_clcnn(arguments);
    const char *newline = strchr(r->err, '\n');
    int one_line = r->err[0] != 0 && r->err[0] != '\n' && newline && newline[1] == 0;
    int ok = CHECK(r->status != 0) && CHECK(!quiet || r->out[0] == 0) && CHECK(one_line);
    for (int i = 0; substrings[i]; i++)
        if (!CHECK(strstr(r->err, substrings[i]) != NULL)) {
            fprintf(stderr, "%s: the message lacks '%s'\n", what, substrings[i]);
            ok = 0;
        }
    if (!ok)
        fprintf(stderr, "%s: clcnn %s\nexited with %d, stdout:\n%s\nstderr:\n%s\n", what, arguments,
                r->status, r->out, r->err);
}

/* The line that starts with prefix (copied into line), or 0. */
static int find_line(const char *text, const char *prefix, char *line, size_t size) {
    size_t length = strlen(prefix);
    for (const char *start = text; start && *start;) {
        const char *end = strchr(start, '\n');
        size_t line_length = end ? (size_t)(end - start) : strlen(start);
        if (line_length >= length && strncmp(start, prefix, length) == 0) {
            size_t copied = line_length < size - 1 ? line_length : size - 1;
            memcpy(line, start, copied);
            line[copied] = 0;
            return 1;
        }
        start = end ? end + 1 : NULL;
    }
    return 0;
}

static int count_lines_starting(const char *text, const char *prefix) {
    int count = 0;
    size_t length = strlen(prefix);
    for (const char *start = text; start && *start;) {
        if (strncmp(start, prefix, length) == 0)
            count++;
        const char *end = strchr(start, '\n');
        start = end ? end + 1 : NULL;
    }
    return count;
}

/* ---- train and eval --------------------------------------------------------------------- */

/* What train printed for one epoch: "epoch E/T: train loss L acc A% | test
 * loss L acc A% | S s, R images/s | saved PATH". */
typedef struct epoch_line {
    double train_loss, train_accuracy, test_loss, test_accuracy;
    char test_loss_text[32], test_accuracy_text[32];
} epoch_line;

static int parse_epoch_line(const char *out, int epoch, int epochs, const char *model,
                            epoch_line *e) {
    char prefix[64], line[2048];
    snprintf(prefix, sizeof(prefix), "epoch %d/%d:", epoch, epochs);
    if (!CHECK(find_line(out, prefix, line, sizeof(line)))) {
        fprintf(stderr, "no line '%s' in:\n%s\n", prefix, out);
        return 0;
    }
    const char *test = strstr(line, "test loss ");
    int ok = CHECK(sscanf(line + strlen(prefix), " train loss %lf acc %lf%%", &e->train_loss,
                          &e->train_accuracy) == 2) &&
             CHECK(test != NULL) &&
             CHECK(sscanf(test, "test loss %31s acc %31[0-9.]%%", e->test_loss_text,
                          e->test_accuracy_text) == 2) &&
             CHECK(strstr(line, "images/s") != NULL);
    char saved[PATH_SIZE + 16];
    snprintf(saved, sizeof(saved), "saved %s", model);
    const char *at = strstr(line, saved);
    ok = ok && CHECK(at != NULL && at[strlen(saved)] == 0);
    if (!ok) {
        fprintf(stderr, "unexpected epoch line: %s\n", line);
        return 0;
    }
    e->test_loss = atof(e->test_loss_text);
    e->test_accuracy = atof(e->test_accuracy_text);
    CHECK(e->train_loss > 0 && isfinite(e->train_loss));
    CHECK(e->train_accuracy >= 0 && e->train_accuracy <= 100);
    CHECK(e->test_loss > 0 && e->test_accuracy >= 0 && e->test_accuracy <= 100);
    return 1;
}

/* The progress lines of one epoch: "epoch E/T batch B/N loss L acc A% R img/s ETA m:ss". */
static void check_progress_lines(const char *out, int epoch, int epochs, int batches,
                                 int expected_lines) {
    char prefix[64], line[1024];
    snprintf(prefix, sizeof(prefix), "epoch %d/%d batch ", epoch, epochs);
    int lines = count_lines_starting(out, prefix);
    if (!CHECK(lines == expected_lines))
        fprintf(stderr, "%d progress lines for epoch %d, expected %d:\n%s\n", lines, epoch,
                expected_lines, out);
    /* Every line has the numbers; the last is batch N/N. */
    int previous = 0;
    for (const char *start = out; start && *start;) {
        const char *end = strchr(start, '\n');
        if (strncmp(start, prefix, strlen(prefix)) == 0) {
            size_t n = end ? (size_t)(end - start) : strlen(start);
            snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1),
                     start);
            int batch = 0, total = 0;
            double loss = -1, accuracy = -1, rate = -1;
            int ok = CHECK(sscanf(line + strlen(prefix), "%d/%d loss %lf acc %lf%% %lf img/s ETA",
                                  &batch, &total, &loss, &accuracy, &rate) == 5) &&
                     CHECK(total == batches) && CHECK(batch > previous && batch <= batches) &&
                     CHECK(loss > 0 && isfinite(loss)) && CHECK(accuracy >= 0 && accuracy <= 100) &&
                     CHECK(rate > 0) && CHECK(strstr(line, "ETA ") != NULL);
            if (!ok)
                fprintf(stderr, "unexpected progress line: %s\n", line);
            previous = batch;
        }
        start = end ? end + 1 : NULL;
    }
    CHECK(previous == batches);
}

/* eval's output: "N test images on DEVICE: loss L, accuracy A%", the
 * confusion matrix header, a row of column numbers and one row per class:
 * "%2d %-11.11s" then the counts. Checks the rows against the labels of the
 * first count test images of dir and the names against class_names (NULL:
 * none). Fills the loss and accuracy texts. */
static void check_eval_output(const char *out, const char *dir, int64_t count,
                              const char *const *class_names, char *loss_text,
                              char *accuracy_text) {
    loss_text[0] = accuracy_text[0] = 0;
    long long images = -1;
    const char *newline = strchr(out, '\n');
    const char *loss_at = strstr(out, ": loss ");
    if (!CHECK(sscanf(out, "%lld test images on ", &images) == 1 && images == count) ||
        !CHECK(loss_at != NULL && newline != NULL && loss_at < newline) ||
        !CHECK(sscanf(loss_at, ": loss %31[0-9.], accuracy %31[0-9.]%%", loss_text,
                      accuracy_text) == 2)) {
        fprintf(stderr, "unexpected eval output:\n%s\n", out);
        return;
    }
    /* The true classes of the test images: the row sums. */
    int64_t class_count[CLASSES] = {0};
    clcnn_dataset test = {0};
    if (!CHECK_OK(api, clcnn_dataset_load_idx(api, dir, "t10k", &test)) ||
        !CHECK(test.count >= count))
        return;
    for (int64_t i = 0; i < count; i++)
        if (test.labels[i] >= 0 && test.labels[i] < CLASSES)
            class_count[test.labels[i]]++;
    clcnn_dataset_free(&test);

    const char *matrix = strstr(out, "confusion matrix");
    if (!CHECK(matrix != NULL)) {
        fprintf(stderr, "eval printed no confusion matrix:\n%s\n", out);
        return;
    }
    const char *row = strchr(matrix, '\n');
    row = row ? strchr(row + 1, '\n') : NULL; /* past the column numbers */
    int64_t total = 0, diagonal = 0;
    for (int i = 0; i < CLASSES; i++) {
        if (!CHECK(row != NULL))
            return;
        row++;
        const char *end = strchr(row, '\n');
        size_t length = end ? (size_t)(end - row) : strlen(row);
        char name[16] = "";
        int index = -1;
        if (!CHECK(length > 14 && sscanf(row, "%2d", &index) == 1 && index == i)) {
            fprintf(stderr, "confusion row %d: %.*s\n", i, (int)length, row);
            return;
        }
        /* The name field: columns 3 to 13, padded with blanks. */
        memcpy(name, row + 3, 11);
        name[11] = 0;
        for (int k = 10; k >= 0 && name[k] == ' '; k--)
            name[k] = 0;
        if (!CHECK(strcmp(name, class_names ? class_names[i] : "") == 0))
            fprintf(stderr, "confusion row %d is named '%s'\n", i, name);
        const char *p = row + 14;
        int64_t row_sum = 0;
        for (int j = 0; j < CLASSES; j++) {
            char *next;
            long long v = strtoll(p, &next, 10);
            if (!CHECK(next != p && v >= 0)) {
                fprintf(stderr, "confusion row %d: %.*s\n", i, (int)length, row);
                return;
            }
            row_sum += v;
            if (i == j)
                diagonal += v;
            p = next;
        }
        CHECK(*p == '\n' || *p == 0);
        if (!CHECK(row_sum == class_count[i]))
            fprintf(stderr, "confusion row %d sums to %lld, %lld test images have that class\n", i,
                    (long long)row_sum, (long long)class_count[i]);
        total += row_sum;
        row = end;
    }
    CHECK(total == count);
    /* The accuracy is the diagonal's share. */
    char expected[32];
    snprintf(expected, sizeof(expected), "%.2f", 100.0 * (double)diagonal / (double)count);
    if (!CHECK(strcmp(expected, accuracy_text) == 0))
        fprintf(stderr, "eval accuracy %s%%, the confusion diagonal gives %s%%\n", accuracy_text,
                expected);
}

/* train NET on a device for 2 epochs, then eval the model on the same test
 * images: the last epoch's test loss and accuracy are eval's. */
static void train_and_eval(const char *device, const char *dir, const char *limits,
                           const char *extra, int64_t train_count, int64_t test_count, int batches,
                           int progress_lines, const char *const *class_names, const char *model) {
    char arguments[8192];
    snprintf(arguments, sizeof(arguments),
             "--device %s train '%s' --data '%s' --epochs 2 %s %s --save '%s'", device, net_path,
             dir, limits, extra, model);
    run_result *r = run_ok(arguments);
    if (r->status != 0)
        return;
    char header[1024], expected[128];
    CHECK(strchr(r->out, '\r') == NULL);
    if (CHECK(find_line(r->out, "training ", header, sizeof(header)))) {
        snprintf(expected, sizeof(expected), ": %lld images, %lld test images, 2 epochs",
                 (long long)train_count, (long long)test_count);
        if (!CHECK(strstr(header, expected) != NULL))
            fprintf(stderr, "train header '%s' lacks '%s'\n", header, expected);
    }
    for (int epoch = 1; epoch <= 2; epoch++)
        check_progress_lines(r->out, epoch, 2, batches, progress_lines);
    epoch_line first, last;
    if (!parse_epoch_line(r->out, 1, 2, model, &first) ||
        !parse_epoch_line(r->out, 2, 2, model, &last))
        return;
    /* The epoch lines come after their progress lines. */
    CHECK(strstr(r->out, "epoch 1/2:") < strstr(r->out, "epoch 2/2 batch"));
    CHECK(file_exists(model));

    char eval_loss[32], eval_accuracy[32];
    char eval_limit[64];
    snprintf(eval_limit, sizeof(eval_limit), "--limit %lld", (long long)test_count);
    snprintf(arguments, sizeof(arguments), "--device %s eval '%s' --data '%s' %s", device, model,
             dir, eval_limit);
    r = run_ok(arguments);
    if (r->status != 0)
        return;
    check_eval_output(r->out, dir, test_count, class_names, eval_loss, eval_accuracy);
    if (!CHECK(strcmp(eval_accuracy, last.test_accuracy_text) == 0) ||
        !CHECK(strcmp(eval_loss, last.test_loss_text) == 0))
        fprintf(stderr,
                "%s: eval gives loss %s accuracy %s%%, train's last epoch printed test loss %s "
                "accuracy %s%%\n",
                device, eval_loss, eval_accuracy, last.test_loss_text, last.test_accuracy_text);
}

static void check_train_eval(void) {
    char model[PATH_SIZE], raw_model[PATH_SIZE];
    if (have_fashion) {
        /* 256 images in batches of 64: four batches, a line for each. */
        path_in(fashion_model, "fashion-reference.model");
        train_and_eval("reference", fashion_dir, "--limit 256 --test-limit 128", "", 256, 128, 4, 4,
                       fashion_names, fashion_model);
        train_and_eval("opencl", fashion_dir, "--limit 256 --test-limit 128", "", 256, 128, 4, 4,
                       fashion_names, path_in(model, "fashion-opencl.model"));
    }
    /* The tiny set in batches of 2: 32 batches, but only a line every tenth
     * of an epoch (10 lines). The directory is not called fashion: no names. */
    path_in(tiny_model, "tiny.model");
    train_and_eval("reference", tiny_dir, "", "--batch 2", TINY_TRAIN, TINY_TEST, 32, 10, NULL,
                   tiny_model);
    /* The same data as raw IDX files gives the same model, byte for byte. */
    path_in(raw_model, "tiny-raw.model");
    train_and_eval("reference", tiny_raw_dir, "", "--batch 2", TINY_TRAIN, TINY_TEST, 32, 10, NULL,
                   raw_model);
    if (!CHECK(same_file(tiny_model, raw_model)))
        fprintf(stderr, "training on raw and on gzip IDX files gave different models\n");
}

/* ---- resume ---------------------------------------------------------------------------- */

/* train --epochs 1 --save A; train --resume A --epochs 2 --save B; and
 * train --epochs 2 --save C: B and C are the same bytes, A is untouched. */
static void check_resume(const char *device, const char *dir, const char *data_options,
                         const char *train_options, const char *name) {
    char a[PATH_SIZE], b[PATH_SIZE], c[PATH_SIZE], file[128], arguments[8192];
    snprintf(file, sizeof(file), "resume-%s-A.model", name);
    path_in(a, file);
    snprintf(file, sizeof(file), "resume-%s-B.model", name);
    path_in(b, file);
    snprintf(file, sizeof(file), "resume-%s-C.model", name);
    path_in(c, file);
    snprintf(arguments, sizeof(arguments),
             "--device %s train '%s' --data '%s' %s %s --epochs 1 --save '%s'", device, net_path,
             dir, data_options, train_options, a);
    if (run_ok(arguments)->status != 0)
        return;
    size_t a_size = 0;
    unsigned char *a_bytes = read_bytes(a, &a_size);
    if (!CHECK(a_bytes != NULL))
        return;
    /* The optimizer settings come from the checkpoint: only --epochs is new. */
    snprintf(arguments, sizeof(arguments),
             "--device %s train --resume '%s' --data '%s' %s --epochs 2 --save '%s'", device, a,
             dir, data_options, b);
    run_result *r = run_ok(arguments);
    if (r->status == 0) {
        CHECK(strstr(r->out, "resuming after epoch 1") != NULL);
        CHECK(strstr(r->out, "epoch 1/2") == NULL);
        CHECK(strstr(r->out, "epoch 2/2:") != NULL);
    }
    snprintf(arguments, sizeof(arguments),
             "--device %s train '%s' --data '%s' %s %s --epochs 2 --save '%s'", device, net_path,
             dir, data_options, train_options, c);
    run_ok(arguments);
    if (!CHECK(same_file(b, c)))
        fprintf(stderr, "%s: the resumed run %s differs from the uninterrupted run %s\n", device, b,
                c);
    CHECK(!same_file(a, c)); /* the second epoch changed something */
    if (!CHECK(file_holds(a, a_bytes, a_size)))
        fprintf(stderr, "%s: resuming with --save elsewhere changed the checkpoint %s\n", device,
                a);
    free(a_bytes);
}

static void check_resumes(void) {
    if (have_fashion) {
        check_resume("reference", fashion_dir, "--limit 256 --test-limit 64", "", "ref-sgd");
        check_resume("opencl", fashion_dir, "--limit 256 --test-limit 64", "", "ocl-sgd");
    }
    /* Adam's moments, weight decay, a cosine schedule and a last batch of 4. */
    check_resume("reference", tiny_dir, "--limit 60",
                 "--batch 8 --optimizer adam --lr 0.003 --weight-decay 0.001 --schedule cosine "
                 "--seed 9",
                 "ref-adam");
    check_resume("opencl", tiny_dir, "--limit 60",
                 "--batch 8 --optimizer adam --lr 0.003 --weight-decay 0.001 --schedule cosine "
                 "--seed 9",
                 "ocl-adam");
}

/* ---- the residual example -------------------------------------------------------------- */

/* examples/resnet.net (a graph: three residual stages with batchnorm,
 * projection shortcuts, global average pooling) trains from the command line on both devices, its
 * last test figures are eval's, and a resumed run is the uninterrupted one
 * byte for byte. */
static void check_residual_example(void) {
    const char *source = getenv("CLCNN_SOURCE_DIR");
    if (!have_fashion || !source) {
        test_skip("the residual example needs Fashion-MNIST and CLCNN_SOURCE_DIR");
        return;
    }
    char saved[PATH_SIZE], model[PATH_SIZE];
    memcpy(saved, net_path, sizeof(saved));
    snprintf(net_path, sizeof(net_path), "%s/examples/resnet.net", source);
    /* The reference device is slow on it: one batch of 32. */
    train_and_eval("reference", fashion_dir, "--limit 32 --test-limit 16", "", 32, 16, 1, 1,
                   fashion_names, path_in(model, "resnet-reference.model"));
    /* A kernel cache of its own, so that every program is built in this
     * run: what the compiler says (PoCL's "N warnings generated." on CPUs
     * without AVX-512) must not reach stderr, which run_ok requires empty. */
    const char *shared_cache = getenv("POCL_CACHE_DIR");
    char kept_cache[PATH_SIZE] = "", own_cache[PATH_SIZE];
    if (shared_cache)
        snprintf(kept_cache, sizeof(kept_cache), "%s", shared_cache);
    CHECK(make_directory(path_in(own_cache, "pocl-cache")) == 0);
    setenv("POCL_CACHE_DIR", own_cache, 1);
    train_and_eval("opencl", fashion_dir, "--limit 256 --test-limit 128", "", 256, 128, 4, 4,
                   fashion_names, path_in(model, "resnet-opencl.model"));
    if (shared_cache)
        setenv("POCL_CACHE_DIR", kept_cache, 1);
    else
        unsetenv("POCL_CACHE_DIR");
    check_resume("reference", fashion_dir, "--limit 32 --test-limit 16", "", "resnet-ref");
    check_resume("opencl", fashion_dir, "--limit 256 --test-limit 64", "", "resnet-ocl");
    memcpy(net_path, saved, sizeof(saved));
}

/* ---- checkpoints survive --------------------------------------------------------------- */

/* No temporary files (NAME.tmp-PID) left beside the models. */
static int temporary_files_left(void) {
    DIR *d = opendir(test_dir());
    int found = 0;
    if (!d)
        return 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL)
        if (strstr(entry->d_name, ".tmp")) {
            fprintf(stderr, "temporary file left: %s\n", entry->d_name);
            found++;
        }
    closedir(d);
    return found;
}

/* Writes a copy of the tiny set whose training images file is damaged by
 * damage(bytes, &size) after it was written (gzip or raw). */
static int write_damaged_set(const char *dir, int gzip, void (*damage)(unsigned char *, size_t *)) {
    char path[PATH_SIZE + 64];
    if (write_dataset(dir, gzip, tiny_train_pixels, tiny_train_labels, TINY_TRAIN, tiny_test_pixels,
                      tiny_test_labels, TINY_TEST) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte%s", dir, gzip ? ".gz" : "");
    size_t size = 0;
    unsigned char *bytes = read_bytes(path, &size);
    if (!bytes)
        return -1;
    damage(bytes, &size);
    int result = write_bytes(path, bytes, size);
    free(bytes);
    return result;
}

/* 64 bytes of the deflate stream in the middle of the file inverted. */
static void invert_middle(unsigned char *bytes, size_t *size) {
    for (size_t i = *size / 2; i < *size / 2 + 64 && i < *size; i++)
        bytes[i] ^= 0xff;
}
static void cut_in_half(unsigned char *bytes, size_t *size) {
    *size /= 2;
}

static char bad_gzip_dir[PATH_SIZE], short_gzip_dir[PATH_SIZE], short_raw_dir[PATH_SIZE],
    bad_label_dir[PATH_SIZE];

static int make_damaged_sets(void) {
    path_in(bad_gzip_dir, "damaged-gzip");
    path_in(short_gzip_dir, "truncated-gzip");
    path_in(short_raw_dir, "truncated-raw");
    path_in(bad_label_dir, "label-out-of-range");
    unsigned char labels[TINY_TRAIN];
    memcpy(labels, tiny_train_labels, sizeof(labels));
    labels[5] = 12; /* the network has 10 classes */
    return write_damaged_set(bad_gzip_dir, 1, invert_middle) == 0 &&
           write_damaged_set(short_gzip_dir, 1, cut_in_half) == 0 &&
           write_damaged_set(short_raw_dir, 0, cut_in_half) == 0 &&
           write_dataset(bad_label_dir, 1, tiny_train_pixels, labels, TINY_TRAIN, tiny_test_pixels,
                         tiny_test_labels, TINY_TEST) == 0;
}

/* A model after one completed epoch; then runs that fail must leave it as it was. */
static void check_checkpoint_survives_failures(void) {
    char model[PATH_SIZE], arguments[8192], missing[PATH_SIZE];
    path_in(model, "checkpoint.model");
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --batch 16 --save '%s'",
             net_path, tiny_dir, model);
    if (run_ok(arguments)->status != 0)
        return;
    size_t size = 0;
    unsigned char *before = read_bytes(model, &size);
    if (!CHECK(before != NULL))
        return;
    const char *const images_file[] = {"train-images-idx3-ubyte", NULL};
    const char *const learning_rate[] = {"learning rate", NULL};

    /* A fresh run onto the same path with damaged data. */
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 2 --save '%s'", net_path,
             bad_gzip_dir, model);
    expect_failure("train on damaged gzip data over a checkpoint", arguments, 1, images_file);
    CHECK(file_holds(model, before, size));
    /* Resuming it (saving to the same file) from truncated data. */
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' "
             "--epochs 2",
             model, short_raw_dir);
    expect_failure("resume on truncated raw data", arguments, 1, images_file);
    CHECK(file_holds(model, before, size));
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 2", model,
             short_gzip_dir);
    expect_failure("resume on truncated gzip data", arguments, 1, images_file);
    CHECK(file_holds(model, before, size));
    /* An invalid learning rate. */
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --lr 0 --epochs 2 --save '%s'", net_path,
             tiny_dir, model);
    expect_failure("--lr 0 over a checkpoint", arguments, 1, learning_rate);
    CHECK(file_holds(model, before, size));
    /* Saving into a directory that does not exist: one line naming it,
     * before an epoch is spent (nothing on stdout). */
    path_in(missing, "no-such-directory/resumed.model");
    const char *const missing_directory[] = {"no-such-directory", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 2 --save '%s'", model,
             tiny_dir, missing);
    expect_failure("--save into a missing directory", arguments, 1, missing_directory);
    CHECK(!file_exists(missing));
    CHECK(file_holds(model, before, size));
    CHECK(temporary_files_left() == 0);
    /* The checkpoint still resumes. */
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 2", model, tiny_dir);
    run_result *r = run_ok(arguments);
    if (r->status == 0)
        CHECK(strstr(r->out, "resuming after epoch 1") != NULL);
    free(before);
}

/* train killed (SIGKILL) in the middle of writing its third checkpoint:
 * the test-only CLCNN_TEST_SAVE_STOP (host/internal.h) stops the process
 * there, with part of the temporary file written, so the kill hits the
 * write every time. The model file is the second checkpoint, whole, and
 * resuming it gives what an uninterrupted run of as many epochs gives.
 * (tests/test_crash.c kills at random moments and at the other points.) */
static void check_checkpoint_survives_kill(void) {
    char model[PATH_SIZE], resumed[PATH_SIZE], straight[PATH_SIZE], arguments[8192];
    char temporary[PATH_SIZE + 32];
    path_in(model, "killed.model");
    path_in(resumed, "killed-resumed.model");
    path_in(straight, "killed-straight.model");
    int pipe_fds[2];
    if (!CHECK(pipe(pipe_fds) == 0))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipe_fds[1], STDOUT_FILENO);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        setenv("CLCNN_TEST_SAVE_STOP", "3:partial", 1);
        execl(clcnn_bin(), clcnn_bin(), "--device", "reference", "train", net_path, "--data",
              tiny_dir, "--epochs", "2000", "--batch", "16", "--save", model, (char *)NULL);
        _exit(127);
    }
    close(pipe_fds[1]);
    if (!CHECK(pid > 0)) {
        close(pipe_fds[0]);
        return;
    }
    FILE *out = fdopen(pipe_fds[0], "r");
    char line[2048];
    int saved = 0;
    while (out && saved < 2 && fgets(line, sizeof(line), out))
        saved += strstr(line, "| saved ") != NULL;
    int status = 0;
    waitpid(pid, &status, WUNTRACED);
    const int stopped = WIFSTOPPED(status);
    /* Stopped inside the third save: part of its temporary file is written. */
    snprintf(temporary, sizeof(temporary), "%s.tmp-%d", model, (int)pid);
    struct stat partial;
    CHECK(stat(temporary, &partial) == 0 && partial.st_size > 0);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (out)
        fclose(out);
    else
        close(pipe_fds[0]);
    if (!CHECK(saved == 2) || !CHECK(stopped) || !CHECK(WIFSIGNALED(status))) {
        fprintf(stderr, "train printed %d saved lines before the kill (status %d)\n", saved,
                status);
        return;
    }
    /* The file loads with its training state: the second checkpoint. */
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    int epochs = 0;
    if (CHECK_OK(api, clcnn_model_load(api, model, &net, &trainer, NULL)) && CHECK(trainer != NULL))
        epochs = clcnn_trainer_epochs_done(trainer);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    if (!CHECK(epochs == 2))
        return;
    snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s'", model,
             tiny_dir);
    run_ok(arguments);
    /* One more epoch from the checkpoint against a straight run. */
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs %d --save '%s'", model,
             tiny_dir, epochs + 1, resumed);
    run_ok(arguments);
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs %d --batch 16 --save '%s'",
             net_path, tiny_dir, epochs + 1, straight);
    run_ok(arguments);
    if (!CHECK(same_file(resumed, straight)))
        fprintf(stderr, "resuming the killed run after epoch %d differs from a straight run\n",
                epochs);
    /* Clear the temporary file the kill may have left, for the later checks. */
    char command[PATH_SIZE * 2];
    snprintf(command, sizeof(command), "rm -f '%s'.tmp*", model);
    CHECK(system(command) == 0);
}

/* ---- predict ---------------------------------------------------------------------------- */

/* One predicted class: index, name and percentage. */
typedef struct prediction {
    int label;
    char name[96];
    double percent;
} prediction;

/* Parses "LABEL: c [name] p%, c [name] p%, ..." after the colon; returns the
 * number of entries (at most max), or -1. */
static int parse_predictions(const char *text, prediction *p, int max) {
    int n = 0;
    const char *s = text;
    while (*s && n < max) {
        while (*s == ' ')
            s++;
        char *end;
        long label = strtol(s, &end, 10);
        if (end == s)
            return -1;
        const char *stop = strchr(end, ',');
        size_t length = stop ? (size_t)(stop - end) : strlen(end);
        char entry[96];
        snprintf(entry, sizeof(entry), "%.*s", (int)(length < 95 ? length : 95), end);
        char *percent_sign = strrchr(entry, '%');
        char *space = strrchr(entry, ' ');
        if (!percent_sign || !space || percent_sign[1] != 0)
            return -1;
        *percent_sign = 0;
        p[n].label = (int)label;
        p[n].percent = strtod(space + 1, &end);
        if (*end != 0)
            return -1;
        *space = 0;
        snprintf(p[n].name, sizeof(p[n].name), "%s", entry[0] == ' ' ? entry + 1 : entry);
        n++;
        s = stop ? stop + 1 : s + strlen(s);
    }
    return *s ? -1 : n;
}

/* The model's probabilities for images (count x 784 bytes), computed through
 * the API on the reference device with the model's normalisation. */
static float *model_probabilities(const char *model, const unsigned char *pixels, int count,
                                  clcnn_model_info *info) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(api, clcnn_model_load(api, model, &net, NULL, info)))
        return NULL;
    float *images = malloc(sizeof(float) * (size_t)count * IMAGE_SIZE);
    float *probabilities = malloc(sizeof(float) * (size_t)count * CLASSES);
    if (images && probabilities) {
        for (int i = 0; i < count * IMAGE_SIZE; i++)
            images[i] = pixels[i] / 255.0f;
        clcnn_model_info_normalize(info, images, count, 1, IMAGE_SIZE);
        if (!CHECK_OK(api, clcnn_net_forward(net, images, count, probabilities, NULL, NULL))) {
            free(probabilities);
            probabilities = NULL;
        }
    }
    free(images);
    clcnn_net_destroy(net);
    return probabilities;
}

/* Checks predict's output for image_path against the probabilities: the
 * lines "PATH[n]: ..." (or "PATH: ..." for one image) with the top three
 * classes in order, their names and percentages within tolerance. */
static void check_predict_lines(const char *out, const char *image_path, int count,
                                const float *probabilities, const clcnn_model_info *info,
                                double tolerance) {
    char prefix[PATH_SIZE + 32], line[2048];
    for (int n = 0; n < count; n++) {
        if (count > 1)
            snprintf(prefix, sizeof(prefix), "%s[%d]: ", image_path, n);
        else
            snprintf(prefix, sizeof(prefix), "%s: ", image_path);
        if (!CHECK(find_line(out, prefix, line, sizeof(line)))) {
            fprintf(stderr, "predict printed no line '%s':\n%s\n", prefix, out);
            continue;
        }
        prediction p[4];
        int entries = parse_predictions(line + strlen(prefix), p, 4);
        if (!CHECK(entries == 3)) {
            fprintf(stderr, "predict line with %d entries: %s\n", entries, line);
            continue;
        }
        const float *probability = probabilities + n * CLASSES;
        double sum = 0;
        for (int k = 0; k < 3; k++) {
            int ok = CHECK(p[k].label >= 0 && p[k].label < CLASSES) &&
                     CHECK(k == 0 || p[k].percent <= p[k - 1].percent) &&
                     CHECK(fabs(p[k].percent - 100.0 * probability[p[k].label]) <= tolerance) &&
                     CHECK(strcmp(p[k].name, p[k].label < info->class_count
                                                 ? info->class_names[p[k].label]
                                                 : "") == 0);
            /* Nothing left out ranks above the third shown. */
            for (int j = 0; ok && j < CLASSES; j++)
                if (j != p[0].label && j != p[1].label && j != p[2].label)
                    ok = CHECK(100.0 * probability[j] <= p[2].percent + tolerance);
            if (!ok)
                fprintf(stderr, "predict entry %d of '%s' is wrong\n", k, line);
            sum += p[k].percent;
        }
        CHECK(p[0].label != p[1].label && p[1].label != p[2].label && p[0].label != p[2].label);
        CHECK(sum <= 100.0 + 0.015);
    }
    /* Exactly count lines for this image file. */
    char start[PATH_SIZE + 8];
    snprintf(start, sizeof(start), "%s%s", image_path, count > 1 ? "[" : ":");
    CHECK(count_lines_starting(out, start) == count);
}

static void check_predict(void) {
    const char *model = have_fashion ? fashion_model : tiny_model;
    if (!file_exists(model))
        return;
    clcnn_model_info info;
    float *probabilities = model_probabilities(model, tiny_test_pixels, 4, &info);
    if (!probabilities)
        return;
    CHECK(info.class_count == (have_fashion ? CLASSES : 0));
    CHECK(info.channels == 1);
    char npy[PATH_SIZE], pgm[PATH_SIZE], png[PATH_SIZE], arguments[8192];
    path_in(npy, "four.npy");
    path_in(pgm, "second.pgm");
    path_in(png, "third.png");
    CHECK(write_images_npy(npy, tiny_test_pixels, 4));
    CHECK(write_pgm(pgm, tiny_test_pixels + IMAGE_SIZE, SIDE, SIDE) == 0);
    CHECK(write_png(png, tiny_test_pixels + 2 * IMAGE_SIZE, SIDE, SIDE) == 0);

    /* .npy (4, 1, 28, 28): four lines; and a PGM and a PNG of images 1 and 2. */
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' '%s' '%s'", model,
             npy, pgm, png);
    run_result *r = run_ok(arguments);
    if (r->status == 0) {
        check_predict_lines(r->out, npy, 4, probabilities, &info, 0.006);
        check_predict_lines(r->out, pgm, 1, probabilities + CLASSES, &info, 0.006);
        check_predict_lines(r->out, png, 1, probabilities + 2 * CLASSES, &info, 0.006);
        CHECK(count_lines_starting(r->out, "") == 6);
        CHECK(strchr(r->out, '\n') && r->out[strlen(r->out) - 1] == '\n');
    }
    /* The same on the OpenCL device, to within float rounding. */
    snprintf(arguments, sizeof(arguments), "--device opencl predict '%s' '%s'", model, npy);
    r = run_ok(arguments);
    if (r->status == 0)
        check_predict_lines(r->out, npy, 4, probabilities, &info, 0.05);

    /* IDX images (gzip) with --limit 3: the first three of the file. */
    char idx[PATH_SIZE + 64];
    snprintf(idx, sizeof(idx), "%s/t10k-images-idx3-ubyte.gz", tiny_dir);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' --limit 3", model,
             idx);
    r = run_ok(arguments);
    if (r->status == 0) {
        check_predict_lines(r->out, idx, 3, probabilities, &info, 0.006);
        CHECK(count_lines_starting(r->out, "") == 3);
    }
    /* Fashion-MNIST's own test file: three lines with Fashion-MNIST names. */
    if (have_fashion) {
        snprintf(idx, sizeof(idx), "%s/t10k-images-idx3-ubyte.gz", fashion_dir);
        snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' --limit 3",
                 model, idx);
        r = run_ok(arguments);
        if (r->status == 0 && CHECK(count_lines_starting(r->out, idx) == 3)) {
            char line[2048], prefix[PATH_SIZE + 80];
            snprintf(prefix, sizeof(prefix), "%s[0]: ", idx);
            prediction p[4];
            if (CHECK(find_line(r->out, prefix, line, sizeof(line))) &&
                CHECK(parse_predictions(line + strlen(prefix), p, 4) == 3))
                for (int k = 0; k < 3; k++)
                    CHECK(p[k].label >= 0 && p[k].label < CLASSES &&
                          strcmp(p[k].name, fashion_names[p[k].label]) == 0);
        }
    }
    free(probabilities);
    clcnn_model_info_free(&info);

    /* Another size is resized: a uniform picture stays uniform, so a 20x20
     * black PGM predicts as a 28x28 one; a 28x27 PNG predicts at all. */
    unsigned char small[20 * 20] = {0}, black[SIDE * SIDE] = {0};
    char path[PATH_SIZE], same_size[PATH_SIZE], prefix[PATH_SIZE + 4];
    CHECK(write_pgm(path_in(path, "small.pgm"), small, 20, 20) == 0);
    CHECK(write_pgm(path_in(same_size, "black.pgm"), black, SIDE, SIDE) == 0);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' '%s'", model, path,
             same_size);
    r = run_ok(arguments);
    char small_line[2048], black_line[2048];
    snprintf(prefix, sizeof(prefix), "%s: ", path);
    int have_small = CHECK(find_line(r->out, prefix, small_line, sizeof(small_line)));
    snprintf(prefix, sizeof(prefix), "%s: ", same_size);
    if (have_small && CHECK(find_line(r->out, prefix, black_line, sizeof(black_line))))
        CHECK(strcmp(small_line + strlen(path), black_line + strlen(same_size)) == 0);

    CHECK(write_png(path_in(path, "wide.png"), tiny_test_pixels, SIDE, SIDE - 1) == 0);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", model, path);
    r = run_ok(arguments);
    prediction wide[3];
    snprintf(prefix, sizeof(prefix), "%s: ", path);
    if (CHECK(find_line(r->out, prefix, small_line, sizeof(small_line))))
        CHECK(parse_predictions(small_line + strlen(prefix), wide, 3) == 3);

    CHECK(write_text(path_in(path, "notes.txt"), "these are notes, not an image\n") == 0);
    const char *const not_image[] = {"notes.txt", NULL};
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", model, path);
    expect_failure("predict a text file", arguments, 1, not_image);

    CHECK(write_text(path_in(path, "fake.png"), "not a PNG at all\n") == 0);
    const char *const fake_png[] = {"fake.png", NULL};
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", model, path);
    expect_failure("predict a text file named .png", arguments, 1, fake_png);

    CHECK(write_text(path_in(path, "fake.pgm"), "P7 nonsense\n") == 0);
    const char *const fake_pgm[] = {"fake.pgm", "PGM", NULL};
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", model, path);
    expect_failure("predict a text file named .pgm", arguments, 1, fake_pgm);

    /* A PGM whose pixels stop early. */
    FILE *f = fopen(path_in(path, "short.pgm"), "wb");
    if (CHECK(f != NULL)) {
        fprintf(f, "P5 28 28 255\n");
        fwrite(tiny_test_pixels, 1, 300, f);
        fclose(f);
    }
    const char *const short_pgm[] = {"short.pgm", NULL};
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", model, path);
    expect_failure("predict a truncated PGM", arguments, 1, short_pgm);

    const char *const usage[] = {"IMAGE", NULL};
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s'", model);
    expect_failure("predict without images", arguments, 1, usage);
}

/* ---- export and import ----------------------------------------------------------------- */

static const char *const parameter_files[] = {"conv1.weight.npy", "conv1.bias.npy",
                                              "dense1.weight.npy", "dense1.bias.npy"};
static const int64_t parameter_counts[] = {4 * 1 * 5 * 5, 4, 10 * 144, 10};

/* export writes network.net, the model's parameters and its metadata;
 * import of those gives a model with the same normalisation, whose export is
 * the same files and whose eval and predict print exactly what the
 * original's do. Imported with --mean 0 --std 1 instead, the model on images
 * normalised by hand predicts what the original model (which normalises with
 * its own mean and std) predicts on the raw images. */
static void check_export_import(char *imported) {
    char dir[PATH_SIZE], again[PATH_SIZE], arguments[8192], path[PATH_SIZE + 64],
        other[PATH_SIZE + 64];
    path_in(dir, "exported");
    path_in(again, "exported-again");
    path_in(imported, "imported.model");
    snprintf(arguments, sizeof(arguments), "export '%s' '%s'", tiny_model, dir);
    if (run_ok(arguments)->status != 0)
        return;
    snprintf(path, sizeof(path), "%s/network.net", dir);
    CHECK(file_exists(path));

    /* The exported files hold the model's parameters exactly. */
    clcnn_net *net = NULL;
    clcnn_model_info info;
    if (!CHECK_OK(api, clcnn_model_load(api, tiny_model, &net, NULL, &info)))
        return;
    CHECK(strstr(clcnn_net_text(net), "conv filters=4 size=5 stride=2") != NULL);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, parameter_files[i]);
        clcnn_array array;
        if (!CHECK_OK(api, clcnn_npy_read(api, path, &array)))
            continue;
        int64_t count = parameter_counts[i];
        float *want = malloc(sizeof(float) * (size_t)count);
        char layer[16];
        snprintf(layer, sizeof(layer), "%.*s", (int)strcspn(parameter_files[i], "."),
                 parameter_files[i]);
        if (CHECK(array.dtype == CLCNN_FLOAT32 && clcnn_array_count(&array) == count) &&
            CHECK(want != NULL) &&
            CHECK_OK(api, clcnn_net_get_parameter(
                              net, layer, strstr(parameter_files[i], ".bias") ? "bias" : "weight",
                              want, count)))
            CHECK(memcmp(array.data, want, sizeof(float) * (size_t)count) == 0);
        if (strstr(parameter_files[i], "weight"))
            CHECK(array.ndim == (i == 0 ? 4 : 2));
        free(want);
        clcnn_array_free(&array);
    }
    clcnn_net_destroy(net);

    /* import, and its export gives the same files */
    snprintf(path, sizeof(path), "%s/network.net", dir);
    snprintf(arguments, sizeof(arguments), "import '%s' '%s' '%s'", path, dir, imported);
    if (run_ok(arguments)->status != 0)
        return;
    snprintf(arguments, sizeof(arguments), "export '%s' '%s'", imported, again);
    if (run_ok(arguments)->status == 0)
        for (int i = 0; i < 6; i++) {
            const char *name = i < 4 ? parameter_files[i] : i == 4 ? "network.net" : "metadata.txt";
            snprintf(path, sizeof(path), "%s/%s", dir, name);
            snprintf(other, sizeof(other), "%s/%s", again, name);
            if (!CHECK(same_file(path, other)))
                fprintf(stderr, "%s differs after export, import and export\n", name);
        }

    /* The imported model normalises as the original and names its classes
     * alike: eval prints the same loss, accuracy and confusion matrix. */
    clcnn_model_info imported_info;
    clcnn_net *imported_net = NULL;
    if (CHECK_OK(api, clcnn_model_load(api, imported, &imported_net, NULL, &imported_info))) {
        CHECK(imported_info.channels == 1 && info.channels == 1 &&
              imported_info.mean[0] == info.mean[0] && imported_info.std[0] == info.std[0]);
        CHECK(info.std[0] != 1.0f); /* else these checks would prove nothing */
        CHECK(imported_info.class_count == info.class_count);
    }
    clcnn_model_info_free(&imported_info);
    clcnn_net_destroy(imported_net);
    static char original_eval[OUTPUT_LIMIT];
    snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s'", tiny_model,
             tiny_dir);
    run_result *r = run_ok(arguments);
    memcpy(original_eval, r->status == 0 ? r->out : "", r->status == 0 ? sizeof(r->out) : 1);
    snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s'", imported,
             tiny_dir);
    r = run_ok(arguments);
    const char *imported_eval = r->status == 0 ? r->out : "";
    const char *a = strstr(original_eval, " test images on "),
               *b = strstr(imported_eval, " test images on ");
    if (!CHECK(a && b && strcmp(a, b) == 0))
        fprintf(stderr, "eval of the original:\n%s\neval of the imported:\n%s\n", original_eval,
                imported_eval);

    /* Imported with --mean 0 --std 1: a model of raw pixels. */
    char raw_model[PATH_SIZE];
    path_in(raw_model, "imported-raw.model");
    snprintf(arguments, sizeof(arguments), "import '%s/network.net' '%s' '%s' --mean 0 --std 1",
             dir, dir, raw_model);
    if (run_ok(arguments)->status != 0)
        return;
    imported_net = NULL;
    if (CHECK_OK(api, clcnn_model_load(api, raw_model, &imported_net, NULL, &imported_info)))
        CHECK(imported_info.channels == 0);
    clcnn_model_info_free(&imported_info);
    clcnn_net_destroy(imported_net);
    float *normalised = malloc(sizeof(float) * 4 * IMAGE_SIZE);
    char raw_npy[PATH_SIZE], normalised_npy[PATH_SIZE];
    path_in(raw_npy, "export-raw.npy");
    path_in(normalised_npy, "export-normalised.npy");
    if (!CHECK(normalised != NULL) || !write_images_npy(raw_npy, tiny_test_pixels, 4)) {
        free(normalised);
        return;
    }
    for (int i = 0; i < 4 * IMAGE_SIZE; i++)
        normalised[i] = (tiny_test_pixels[i] / 255.0f - info.mean[0]) / info.std[0];
    clcnn_model_info_free(&info);
    clcnn_array array = {0};
    array.dtype = CLCNN_FLOAT32;
    array.ndim = 4;
    array.shape[0] = 4;
    array.shape[1] = 1;
    array.shape[2] = SIDE;
    array.shape[3] = SIDE;
    array.data = normalised;
    CHECK_OK(api, clcnn_npy_write(api, normalised_npy, &array));
    free(normalised);
    static char original_out[OUTPUT_LIMIT], imported_out[OUTPUT_LIMIT];
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", tiny_model,
             raw_npy);
    r = run_ok(arguments);
    memcpy(original_out, r->status == 0 ? r->out : "", r->status == 0 ? sizeof(r->out) : 1);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", raw_model,
             normalised_npy);
    r = run_ok(arguments);
    memcpy(imported_out, r->status == 0 ? r->out : "", r->status == 0 ? sizeof(r->out) : 1);
    for (int n = 0; n < 4; n++) {
        char a_prefix[PATH_SIZE + 16], b_prefix[PATH_SIZE + 16], a[1024], b[1024];
        snprintf(a_prefix, sizeof(a_prefix), "%s[%d]: ", raw_npy, n);
        snprintf(b_prefix, sizeof(b_prefix), "%s[%d]: ", normalised_npy, n);
        if (CHECK(find_line(original_out, a_prefix, a, sizeof(a))) &&
            CHECK(find_line(imported_out, b_prefix, b, sizeof(b))) &&
            !CHECK(strcmp(a + strlen(a_prefix), b + strlen(b_prefix)) == 0))
            fprintf(stderr, "original model: %s\nimported model: %s\n", a, b);
    }
}

/* Each tensor file of the export (parameter_files), its name's .npy
 * replaced by suffix, the same in dir_a as in dir_b. */
static void check_same_tensor_files(const char *dir_a, const char *dir_b, const char *suffix) {
    for (int i = 0; i < 4; i++) {
        char a[PATH_SIZE + 64], b[PATH_SIZE + 64];
        const int stem = (int)(strlen(parameter_files[i]) - strlen(".npy"));
        snprintf(a, sizeof(a), "%s/%.*s%s", dir_a, stem, parameter_files[i], suffix);
        snprintf(b, sizeof(b), "%s/%.*s%s", dir_b, stem, parameter_files[i], suffix);
        if (!CHECK(same_file(a, b)))
            fprintf(stderr, "%s and %s differ\n", a, b);
    }
}

/* A model file where a command takes a network brings its weights: forward,
 * grad and summary of the model print and write what those of its export
 * (the network file with --weights) do, and train starts from its parameters: at
 * a learning rate of 1e-30 a step moves none of the trained model's nonzero
 * parameters by half a unit in the last place, so they stay as they were.
 * check_export_import made the export and the raw images. */
static void check_model_as_network(void) {
    char dir[PATH_SIZE], images_npy[PATH_SIZE], labels_npy[PATH_SIZE], trained[PATH_SIZE],
        trained_dir[PATH_SIZE], arguments[8192];
    path_in(dir, "exported");
    path_in(images_npy, "export-raw.npy");
    path_in(labels_npy, "export-labels.npy");
    int32_t labels[4];
    for (int i = 0; i < 4; i++)
        labels[i] = tiny_test_labels[i];
    clcnn_array array = {.dtype = CLCNN_INT32, .ndim = 1, .shape = {4}, .data = labels};
    if (!CHECK_OK(api, clcnn_npy_write(api, labels_npy, &array)))
        return;

    /* forward and grad of the model and of its export; forward prints its
     * speed on stderr. */
    char networks[2][3 * PATH_SIZE], outputs[2][PATH_SIZE], gradients[2][PATH_SIZE];
    snprintf(networks[0], sizeof(networks[0]), "'%s'", tiny_model);
    snprintf(networks[1], sizeof(networks[1]), "'%s/network.net' --weights '%s'", dir, dir);
    path_in(outputs[0], "forward-model.npy");
    path_in(outputs[1], "forward-export.npy");
    path_in(gradients[0], "grad-model");
    path_in(gradients[1], "grad-export");
    int ran = 1;
    for (int k = 0; k < 2; k++) {
        snprintf(arguments, sizeof(arguments),
                 "--device reference forward %s --input '%s' --output '%s'", networks[k],
                 images_npy, outputs[k]);
        ran = CHECK(run_clcnn(arguments)->status == 0) && ran;
        snprintf(arguments, sizeof(arguments),
                 "--device reference grad %s --input '%s' --labels '%s' --output '%s'",
                 networks[k], images_npy, labels_npy, gradients[k]);
        ran = CHECK(run_clcnn(arguments)->status == 0) && ran;
    }
    if (ran) {
        CHECK(same_file(outputs[0], outputs[1]));
        check_same_tensor_files(gradients[0], gradients[1], ".grad.npy");
    }

    static char summary_of_model[OUTPUT_LIMIT];
    snprintf(arguments, sizeof(arguments), "summary '%s'", tiny_model);
    run_result *r = run_ok(arguments);
    memcpy(summary_of_model, r->status == 0 ? r->out : "", r->status == 0 ? sizeof(r->out) : 1);
    snprintf(arguments, sizeof(arguments), "summary '%s/network.net'", dir);
    r = run_ok(arguments);
    if (!CHECK(r->status == 0 && strstr(r->out, "total parameters") &&
               strcmp(r->out, summary_of_model) == 0))
        fprintf(stderr, "summary of the model:\n%s\nof its export:\n%s\n", summary_of_model,
                r->out);

    /* Trained from at a learning rate of 1e-30: the export's parameters. */
    path_in(trained, "trained-from-model.model");
    path_in(trained_dir, "trained-from-model");
    snprintf(
        arguments, sizeof(arguments),
        "--device reference train '%s' --data '%s' --epochs 1 --batch 2 --lr 1e-30 --save '%s'",
        tiny_model, tiny_dir, trained);
    if (run_ok(arguments)->status != 0)
        return;
    snprintf(arguments, sizeof(arguments), "export '%s' '%s'", trained, trained_dir);
    if (run_ok(arguments)->status == 0)
        check_same_tensor_files(dir, trained_dir, ".npy");
}

/* ---- errors ------------------------------------------------------------------------------- */

static void check_errors(const char *imported) {
    char arguments[8192], path[PATH_SIZE];
    const char *base = "--device reference train";

    const char *const missing_data[] = {"no-such-data", NULL};
    snprintf(arguments, sizeof(arguments), "%s '%s' --data '%s' --epochs 1 --save '%s'", base,
             net_path, path_in(path, "no-such-data"), test_path("never.model"));
    expect_failure("train with a missing data directory", arguments, 1, missing_data);

    const char *const images_file[] = {"train-images-idx3-ubyte", NULL};
    snprintf(arguments, sizeof(arguments), "%s '%s' --data '%s' --epochs 1 --save '%s'", base,
             net_path, bad_gzip_dir, test_path("never.model"));
    expect_failure("train on a corrupt gzip IDX file", arguments, 1, images_file);
    snprintf(arguments, sizeof(arguments), "%s '%s' --data '%s' --epochs 1 --save '%s'", base,
             net_path, short_gzip_dir, test_path("never.model"));
    expect_failure("train on a truncated gzip IDX file", arguments, 1, images_file);

    const char *const label[] = {"label-out-of-range", "label 12 of image 5 ", NULL};
    snprintf(arguments, sizeof(arguments), "%s '%s' --data '%s' --epochs 1 --save '%s'", base,
             net_path, bad_label_dir, test_path("never.model"));
    expect_failure("train with a label out of range", arguments, 1, label);

    const char *const optimizer[] = {"--optimizer", "bogus", NULL};
    snprintf(arguments, sizeof(arguments), "%s '%s' --data '%s' --optimizer bogus", base, net_path,
             tiny_dir);
    expect_failure("--optimizer bogus", arguments, 1, optimizer);

    const char *const batch[] = {"--batch", NULL};
    snprintf(arguments, sizeof(arguments), "%s '%s' --data '%s' --batch 0", base, net_path,
             tiny_dir);
    expect_failure("--batch 0", arguments, 1, batch);

    const char *const epochs[] = {"--epochs", "'x'", NULL};
    snprintf(arguments, sizeof(arguments), "%s '%s' --data '%s' --epochs x", base, net_path,
             tiny_dir);
    expect_failure("--epochs x", arguments, 1, epochs);

    const char *const no_state[] = {"imported.model", "training state", NULL};
    snprintf(arguments, sizeof(arguments), "%s --resume '%s' --data '%s' --epochs 2", base,
             imported, tiny_dir);
    if (file_exists(imported))
        expect_failure("--resume of an imported model", arguments, 1, no_state);

    const char *const missing_model[] = {"no-such.model", NULL};
    snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s'",
             test_path("no-such.model"), tiny_dir);
    expect_failure("eval of a missing model", arguments, 1, missing_model);

    /* A model with one byte flipped: in its parameters, then in the CRC itself. */
    size_t size = 0;
    unsigned char *bytes = read_bytes(tiny_model, &size);
    if (CHECK(bytes != NULL && size > 1000)) {
        const char *const checksum[] = {"corrupt.model", "checksum", NULL};
        size_t places[2] = {size - 200, size - 1};
        for (int i = 0; i < 2; i++) {
            bytes[places[i]] ^= 0x10;
            CHECK(write_bytes(path_in(path, "corrupt.model"), bytes, size) == 0);
            bytes[places[i]] ^= 0x10;
            snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s'", path,
                     tiny_dir);
            expect_failure("eval of a corrupt model", arguments, 1, checksum);
            snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", path,
                     test_path("four.npy"));
            expect_failure("predict with a corrupt model", arguments, 1, checksum);
        }
    }
    free(bytes);
}

/* ---- 3-channel data sets: CIFAR-10, CIFAR-100, image folders ------------------------- */

enum { CIFAR_SIDE = 32, CIFAR_PLANE = CIFAR_SIDE * CIFAR_SIDE, CIFAR_IMAGE = 3 * CIFAR_PLANE };

/* conv 4 filters 5x5 stride 2 -> 4x14x14, max pooling -> 4x7x7, dense 196 -> units. */
static const char color_net_format[] = "input channels=3 height=%d width=%d\n"
                                       "conv filters=4 size=5 stride=2\n"
                                       "relu\n"
                                       "maxpool size=2\n"
                                       "flatten\n"
                                       "dense units=%d\n"
                                       "softmax\n";

static char color_net[PATH_SIZE], color100_net[PATH_SIZE], folder_net[PATH_SIZE];
static char cifar10_dir[PATH_SIZE], cifar100_dir[PATH_SIZE], folder_dir[PATH_SIZE];

/* A colour image of class k (of classes): noise, and a bright square whose
 * place and colour follow the class. Pixels are planes (C, H, W). */
static void make_color_image(test_rng *rng, int k, int classes, int side, unsigned char *planes) {
    const int plane = side * side;
    for (int p = 0; p < 3 * plane; p++)
        planes[p] = (unsigned char)test_rand_int(rng, 0, 90);
    const int square = side / 4, places = (side - square) / 2;
    const int top = (k % 3) * places / 2 + test_rand_int(rng, 0, 1);
    const int left = (k / 3 % 3) * places / 2 + test_rand_int(rng, 0, 1);
    for (int c = 0; c < 3; c++)
        for (int y = top; y < top + square; y++)
            for (int x = left; x < left + square; x++)
                planes[c * plane + y * side + x] =
                    (unsigned char)(c == k % 3 || k >= classes / 2 ? 230 : 120);
}

/* CIFAR records (label bytes, then the planes) of count images from rng. */
static unsigned char *color_records(test_rng *rng, int count, int classes, int label_bytes,
                                    size_t *size) {
    const size_t record = (size_t)label_bytes + CIFAR_IMAGE;
    unsigned char *bytes = malloc(record * (size_t)count);
    for (int i = 0; bytes && i < count; i++) {
        unsigned char *r = bytes + record * (size_t)i;
        const int k = test_rand_int(rng, 0, classes - 1);
        if (label_bytes == 2)
            r[0] = (unsigned char)(k / 5);
        r[label_bytes - 1] = (unsigned char)k;
        make_color_image(rng, k, classes, CIFAR_SIDE, r + label_bytes);
    }
    *size = record * (size_t)count;
    return bytes;
}

static int write_cifar(const char *dir, int classes) {
    test_rng rng = {(uint64_t)classes * 1000 + 7};
    char path[PATH_SIZE + 64];
    if (make_directory(dir) != 0)
        return -1;
    size_t size;
    unsigned char *bytes;
    int ok = 1;
    if (classes == 10) {
        for (int b = 1; b <= 5 && ok; b++) {
            bytes = color_records(&rng, 8, 10, 1, &size);
            snprintf(path, sizeof(path), "%s/data_batch_%d.bin", dir, b);
            ok = bytes && write_bytes(path, bytes, size) == 0;
            free(bytes);
        }
        bytes = color_records(&rng, 20, 10, 1, &size);
        snprintf(path, sizeof(path), "%s/test_batch.bin", dir);
        ok = ok && bytes && write_bytes(path, bytes, size) == 0;
        free(bytes);
        snprintf(path, sizeof(path), "%s/batches.meta.txt", dir);
        ok = ok && write_text(path, "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\n"
                                    "ship\ntruck\n\n") == 0;
    } else {
        bytes = color_records(&rng, 50, 100, 2, &size);
        snprintf(path, sizeof(path), "%s/train.bin", dir);
        ok = bytes && write_bytes(path, bytes, size) == 0;
        free(bytes);
        bytes = color_records(&rng, 10, 100, 2, &size);
        snprintf(path, sizeof(path), "%s/test.bin", dir);
        ok = ok && bytes && write_bytes(path, bytes, size) == 0;
        free(bytes);
        char names[2048] = "";
        for (int i = 0; i < 100; i++)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "fine-%d\n", i);
        snprintf(path, sizeof(path), "%s/fine_label_names.txt", dir);
        ok = ok && write_text(path, names) == 0;
    }
    return ok ? 0 : -1;
}

/* Planes (C, H, W) to an interleaved PNG of 3 channels (or 1: the first plane). */
static int write_color_png(const char *path, const unsigned char *planes, int side, int channels) {
    unsigned char *pixels = malloc((size_t)side * side * channels);
    if (!pixels)
        return -1;
    for (int p = 0; p < side * side; p++)
        for (int c = 0; c < channels; c++)
            pixels[p * channels + c] = planes[c * side * side + p];
    int ok = stbi_write_png(path, side, side, channels, pixels, side * channels) != 0;
    free(pixels);
    return ok ? 0 : -1;
}

static const char *const folder_classes[3] = {"circle", "square", "triangle"};

/* train/<class>/NN.png: 8 images of each of three classes, every fourth grey;
 * test/<class>/: 3 each. 16 x 16 pixels. */
static int write_folder_set(const char *dir) {
    test_rng rng = {99};
    unsigned char planes[3 * 16 * 16];
    char path[PATH_SIZE + 128];
    if (make_directory(dir) != 0)
        return -1;
    static const char *const splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof(path), "%s/%s", dir, splits[s]);
        if (make_directory(path) != 0)
            return -1;
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof(path), "%s/%s/%s", dir, splits[s], folder_classes[k]);
            if (make_directory(path) != 0)
                return -1;
            for (int i = 0; i < (s == 0 ? 8 : 3); i++) {
                make_color_image(&rng, k, 3, 16, planes);
                snprintf(path, sizeof(path), "%s/%s/%s/%02d.png", dir, splits[s], folder_classes[k],
                         i);
                if (write_color_png(path, planes, 16, i % 4 == 3 ? 1 : 3) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int make_color_sets(void) {
    char text[1024];
    snprintf(text, sizeof(text), color_net_format, CIFAR_SIDE, CIFAR_SIDE, 10);
    if (write_text(path_in(color_net, "color10.net"), text) != 0)
        return 0;
    snprintf(text, sizeof(text), color_net_format, CIFAR_SIDE, CIFAR_SIDE, 100);
    if (write_text(path_in(color100_net, "color100.net"), text) != 0)
        return 0;
    snprintf(text, sizeof(text), color_net_format, 16, 16, 3);
    if (write_text(path_in(folder_net, "folders.net"), text) != 0)
        return 0;
    return write_cifar(path_in(cifar10_dir, "cifar10"), 10) == 0 &&
           write_cifar(path_in(cifar100_dir, "cifar100"), 100) == 0 &&
           write_folder_set(path_in(folder_dir, "folders")) == 0;
}

/* train NET --data DIR for 2 epochs on the reference device, then eval: the
 * last epoch's test figures are eval's, and the confusion rows carry the
 * class names. Checks the model's normalisation (the training set's
 * statistics per channel) and class names. */
static void train_eval_color(const char *net, const char *dir, int64_t train_count,
                             int64_t test_count, const char *const *names, int classes,
                             const char *model) {
    char arguments[8192];
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 2 --batch 8 --save '%s'", net, dir,
             model);
    run_result *r = run_ok(arguments);
    if (r->status != 0)
        return;
    char header[1024], expected[128];
    snprintf(expected, sizeof(expected), ": %lld images, %lld test images, 2 epochs",
             (long long)train_count, (long long)test_count);
    CHECK(find_line(r->out, "training ", header, sizeof(header)) && strstr(header, expected));
    epoch_line last;
    if (!parse_epoch_line(r->out, 2, 2, model, &last))
        return;

    clcnn_net *loaded = NULL;
    static clcnn_model_info info;
    clcnn_dataset train = {0};
    if (CHECK_OK(api, clcnn_model_load(api, model, &loaded, NULL, &info)) &&
        CHECK_OK(api, clcnn_dataset_load(api, dir, CLCNN_SPLIT_TRAIN, &train))) {
        float mean[3], std[3];
        clcnn_dataset_channel_statistics(&train, mean, std);
        CHECK(info.channels == 3 && memcmp(info.mean, mean, sizeof(mean)) == 0 &&
              memcmp(info.std, std, sizeof(std)) == 0);
        CHECK(mean[0] != mean[1] || mean[1] != mean[2]);
        CHECK(info.class_count == classes);
        for (int i = 0; i < classes && i < info.class_count; i++)
            if (!CHECK(strcmp(info.class_names[i], names[i]) == 0))
                fprintf(stderr, "class %d is named '%s', expected '%s'\n", i, info.class_names[i],
                        names[i]);
    }
    clcnn_dataset_free(&train);
    clcnn_model_info_free(&info);
    clcnn_net_destroy(loaded);
    size_t size = 0;
    unsigned char *bytes = read_bytes(model, &size);
    CHECK(bytes && size > 12 && bytes[8] == 2); /* per-channel statistics need version 2 */
    free(bytes);

    snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s'", model, dir);
    r = run_ok(arguments);
    if (r->status != 0)
        return;
    char loss[32] = "", accuracy[32] = "";
    long long images = -1;
    const char *loss_at = strstr(r->out, ": loss ");
    if (!CHECK(sscanf(r->out, "%lld test images on ", &images) == 1 && images == test_count) ||
        !CHECK(loss_at &&
               sscanf(loss_at, ": loss %31[0-9.], accuracy %31[0-9.]%%", loss, accuracy) == 2)) {
        fprintf(stderr, "unexpected eval output:\n%s\n", r->out);
        return;
    }
    if (!CHECK(strcmp(loss, last.test_loss_text) == 0 &&
               strcmp(accuracy, last.test_accuracy_text) == 0))
        fprintf(stderr, "eval gives loss %s accuracy %s%%, training's last epoch %s and %s%%\n",
                loss, accuracy, last.test_loss_text, last.test_accuracy_text);
    char row[64];
    snprintf(row, sizeof(row), "\n%2d %-11.11s", classes - 1, names[classes - 1]);
    CHECK(strstr(r->out, row) != NULL);
}

/* The first test image of a CIFAR-10 directory, as planes of bytes. */
static int first_cifar_test_image(unsigned char *planes) {
    char path[PATH_SIZE + 64];
    snprintf(path, sizeof(path), "%s/test_batch.bin", cifar10_dir);
    size_t size = 0;
    unsigned char *bytes = read_bytes(path, &size);
    int ok = bytes && size >= 1 + CIFAR_IMAGE;
    if (ok)
        memcpy(planes, bytes + 1, CIFAR_IMAGE);
    free(bytes);
    return ok;
}

static void check_color_predict(const char *model) {
    unsigned char planes[CIFAR_IMAGE];
    if (!CHECK(first_cifar_test_image(planes)))
        return;
    /* The same image as an RGB PNG and as a .npy of [0, 1] floats: one answer. */
    char png[PATH_SIZE], npy[PATH_SIZE], arguments[8192], line[2048], prefix[PATH_SIZE + 8];
    CHECK(write_color_png(path_in(png, "color.png"), planes, CIFAR_SIDE, 3) == 0);
    float *values = malloc(sizeof(float) * CIFAR_IMAGE);
    if (!CHECK(values != NULL))
        return;
    for (int i = 0; i < CIFAR_IMAGE; i++)
        values[i] = planes[i] / 255.0f;
    clcnn_array array = {0};
    array.dtype = CLCNN_FLOAT32;
    array.ndim = 3;
    array.shape[0] = 3;
    array.shape[1] = CIFAR_SIDE;
    array.shape[2] = CIFAR_SIDE;
    array.data = values;
    CHECK_OK(api, clcnn_npy_write(api, path_in(npy, "color.npy"), &array));
    free(values);
    static char png_out[OUTPUT_LIMIT];
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", model, png);
    run_result *r = run_ok(arguments);
    snprintf(png_out, sizeof(png_out), "%s", r->status == 0 ? r->out : "");
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", model, npy);
    r = run_ok(arguments);
    char png_line[2048];
    snprintf(prefix, sizeof(prefix), "%s: ", png);
    int have_png = CHECK(find_line(png_out, prefix, png_line, sizeof(png_line)));
    snprintf(prefix, sizeof(prefix), "%s: ", npy);
    if (have_png && CHECK(find_line(r->out, prefix, line, sizeof(line)))) {
        prediction p[4];
        CHECK(parse_predictions(line + strlen(prefix), p, 4) == 3);
        CHECK(strcmp(line + strlen(prefix), png_line + strlen(png) + 2) == 0);
    }
    /* A grey PNG and a PGM get their grey level in all three channels. */
    char grey[PATH_SIZE], pgm[PATH_SIZE];
    CHECK(write_color_png(path_in(grey, "grey.png"), planes, CIFAR_SIDE, 1) == 0);
    CHECK(write_pgm(path_in(pgm, "grey.pgm"), planes, CIFAR_SIDE, CIFAR_SIDE) == 0);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' '%s'", model, grey,
             pgm);
    r = run_ok(arguments);
    char grey_line[2048], pgm_line[2048];
    snprintf(prefix, sizeof(prefix), "%s: ", grey);
    int have_grey = CHECK(find_line(r->out, prefix, grey_line, sizeof(grey_line)));
    snprintf(prefix, sizeof(prefix), "%s: ", pgm);
    if (have_grey && CHECK(find_line(r->out, prefix, pgm_line, sizeof(pgm_line))))
        CHECK(strcmp(grey_line + strlen(grey), pgm_line + strlen(pgm)) == 0);
    /* Another size is resized: a uniform 30x30 picture predicts as a 32x32 one. */
    unsigned char small[3 * 30 * 30] = {0}, black[3 * 32 * 32] = {0};
    char same_size[PATH_SIZE];
    CHECK(write_color_png(path_in(png, "small-color.png"), small, 30, 3) == 0);
    CHECK(write_color_png(path_in(same_size, "black-color.png"), black, 32, 3) == 0);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' '%s'", model, png,
             same_size);
    r = run_ok(arguments);
    char small_line[2048], black_line[2048];
    snprintf(prefix, sizeof(prefix), "%s: ", png);
    int have_small = CHECK(find_line(r->out, prefix, small_line, sizeof(small_line)));
    snprintf(prefix, sizeof(prefix), "%s: ", same_size);
    if (have_small && CHECK(find_line(r->out, prefix, black_line, sizeof(black_line))))
        CHECK(strcmp(small_line + strlen(png), black_line + strlen(same_size)) == 0);
}

static void check_color_datasets(void) {
    static const char *const cifar10_names[10] = {
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
    char model[PATH_SIZE], arguments[8192];
    train_eval_color(color_net, cifar10_dir, 40, 20, cifar10_names, 10,
                     path_in(model, "cifar10.model"));
    check_color_predict(model);

    static char names100[100][24];
    const char *names100_list[100];
    for (int i = 0; i < 100; i++) {
        snprintf(names100[i], sizeof(names100[i]), "fine-%d", i);
        names100_list[i] = names100[i];
    }
    train_eval_color(color100_net, cifar100_dir, 50, 10, names100_list, 100,
                     path_in(model, "cifar100.model"));
    train_eval_color(folder_net, folder_dir, 24, 9, folder_classes, 3,
                     path_in(model, "folders.model"));
    /* predict on one of the folder set's own images names its class */
    char image[PATH_SIZE + 64];
    snprintf(image, sizeof(image), "%s/test/square/00.png", folder_dir);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' --top 3", model,
             image);
    run_result *r = run_ok(arguments);
    if (r->status == 0)
        CHECK(strstr(r->out, " circle ") && strstr(r->out, " square ") &&
              strstr(r->out, " triangle "));

    /* Errors: a CIFAR file cut inside a record, an image of another size, a
     * network of another shape, bad --augment values. */
    char bad[PATH_SIZE], path[PATH_SIZE + 64];
    path_in(bad, "cifar10-cut");
    CHECK(write_cifar(bad, 10) == 0);
    snprintf(path, sizeof(path), "%s/data_batch_4.bin", bad);
    CHECK(truncate(path, 3073 * 3 + 5) == 0);
    const char *const cut[] = {"data_batch_4.bin", "byte offset 9219", "3073-byte", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --save '%s'", color_net, bad,
             test_path("never.model"));
    expect_failure("train on a truncated CIFAR-10 batch", arguments, 1, cut);
    path_in(bad, "folders-odd-size");
    CHECK(write_folder_set(bad) == 0);
    unsigned char planes[3 * 20 * 20] = {0};
    snprintf(path, sizeof(path), "%s/train/circle/99.png", bad);
    CHECK(write_color_png(path, planes, 20, 3) == 0);
    const char *const odd[] = {"train/circle/99.png", "20x20", "16x16", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --save '%s'", folder_net, bad,
             test_path("never.model"));
    expect_failure("train on image folders with an odd size", arguments, 1, odd);
    const char *const shape[] = {"3x32x32", "1x28x28", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --save '%s'", net_path,
             cifar10_dir, test_path("never.model"));
    expect_failure("train a 1-channel network on CIFAR-10", arguments, 0, shape);
    const char *const augment[] = {"--augment", "'spin'", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' "
             "--augment flip,spin",
             color_net, cifar10_dir);
    expect_failure("--augment flip,spin", arguments, 1, augment);
    const char *const crop[] = {"--augment", "crop=P", "'crop=-1'", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' "
             "--augment crop=-1",
             color_net, cifar10_dir);
    expect_failure("--augment crop=-1", arguments, 1, crop);
}

/* Augmented training through the command line: the checkpoint keeps the
 * augmentation, a resumed run is the uninterrupted one byte for byte, and
 * augmentation changes the model. */
static void check_augmented_resume(void) {
    char saved[PATH_SIZE], arguments[8192], plain[PATH_SIZE];
    memcpy(saved, net_path, sizeof(saved));
    memcpy(net_path, color_net, sizeof(net_path));
    const char *const options = "--batch 8 --seed 3 --augment crop=4,flip,rotate=15";
    check_resume("reference", cifar10_dir, "--limit 24 --test-limit 8", options, "ref-augment");
    char c[PATH_SIZE];
    path_in(c, "resume-ref-augment-C.model");
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (CHECK_OK(api, clcnn_model_load(api, c, &net, &trainer, NULL)) && CHECK(trainer != NULL)) {
        const clcnn_train_config *config = clcnn_trainer_config(trainer);
        CHECK(config->augment_crop_pad == 4 && config->augment_flip == 1 &&
              config->augment_rotate_degrees == 15.0);
    }
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --limit 24 --test-limit 8 --batch 8 "
             "--seed 3 --epochs 2 --save '%s'",
             net_path, cifar10_dir, path_in(plain, "unaugmented.model"));
    if (run_ok(arguments)->status == 0)
        CHECK(!same_file(c, plain));
    memcpy(net_path, saved, sizeof(net_path));
}

int main(void) {
    api = clcnn_context_create();
    if (!CHECK(api != NULL) ||
        !CHECK_OK(api, clcnn_context_select_device(api, CLCNN_DEVICE_REFERENCE, -1, -1)))
        return test_finish();
    CHECK(write_text(path_in(net_path, "small.net"), small_net_text) == 0);
    if (!CHECK(make_tiny_data()) || !CHECK(make_damaged_sets()))
        return test_finish();
    char path[PATH_SIZE + 64];
    snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte.gz", fashion_dir);
    have_fashion = file_exists(path);
    if (!have_fashion)
        test_skip("%s is missing: the Fashion-MNIST runs did not run", fashion_dir);

    char imported[PATH_SIZE] = "";
    check_train_eval();
    check_resumes();
    check_residual_example();
    check_checkpoint_survives_failures();
    check_checkpoint_survives_kill();
    check_predict();
    check_export_import(imported);
    check_model_as_network();
    check_errors(imported);
    if (CHECK(make_color_sets())) {
        check_color_datasets();
        check_augmented_resume();
    }

    clcnn_context_destroy(api);
    return test_finish();
}
