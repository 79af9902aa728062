/* CIFAR-10 and CIFAR-100 in their binary form.
 *
 * A file is a run of fixed-size records with no header: CIFAR-10's are 3073
 * bytes (a label byte, then 1024 red, 1024 green and 1024 blue bytes of a
 * 32 x 32 image, row by row), CIFAR-100's 3074 (a coarse label byte, a fine
 * label byte, then the same planes). The planes are already the channel-first
 * layout the networks take, so a record becomes an image by scaling alone.
 *
 * Which of the two a directory holds is told by the file names (CIFAR-10:
 * data_batch_N.bin and test_batch.bin; CIFAR-100: train.bin and test.bin);
 * every file's size must then be a whole number of that layout's records,
 * checked before anything is allocated. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    CIFAR_SIDE = 32,
    CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE,
    CIFAR_MAX_FILES = 64,               /* data_batch_1.bin .. data_batch_64.bin at most */
    CIFAR_MAX_NAMES_BYTES = 1 << 20,    /* a class names file larger than this is not one */
    CIFAR_MAX_RECORD = CIFAR_PIXELS + 2 /* CIFAR-100's */
};

/* What tells the two layouts apart. */
typedef struct cifar_layout {
    const char *name;       /* "CIFAR-10" */
    int label_bytes;        /* 1, or 2 (coarse, fine) */
    int classes;            /* of the label used */
    int coarse_classes;     /* CIFAR-100's coarse labels, checked too */
    const char *names_file; /* one class name per line */
} cifar_layout;

static const cifar_layout cifar10 = {"CIFAR-10", 1, 10, 0, "batches.meta.txt"};
static const cifar_layout cifar100 = {"CIFAR-100", 2, 100, 20, "fine_label_names.txt"};

static int record_size(const cifar_layout *layout) {
    return layout->label_bytes + CIFAR_PIXELS;
}

static int regular_file(const char *path, long long *size) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    *size = (long long)st.st_size;
    return 1;
}

/* The files of a split and their sizes, each checked to be whole records. */
typedef struct cifar_files {
    int count;
    char paths[CIFAR_MAX_FILES][4096];
    long long sizes[CIFAR_MAX_FILES];
    int64_t records;
} cifar_files;

static clcnn_status list_files(clcnn_context *ctx, const char *dir, const cifar_layout *layout,
                               clcnn_split split, cifar_files *files) {
    files->count = 0;
    files->records = 0;
    if (layout == &cifar10 && split == CLCNN_SPLIT_TRAIN) {
        /* data_batch_1.bin, data_batch_2.bin, ... as long as they go on */
        for (int n = 1; n <= CIFAR_MAX_FILES; n++) {
            char *path = files->paths[files->count];
            snprintf(path, sizeof(files->paths[0]), "%s/data_batch_%d.bin", dir, n);
            if (!regular_file(path, &files->sizes[files->count]))
                break;
            files->count++;
        }
        if (files->count == 0)
            return set_error(ctx, CLCNN_ERROR_IO,
                             "%s: no data_batch_1.bin in it (CIFAR-10's first training batch)",
                             dir);
    } else {
        const char *name = layout == &cifar10           ? "test_batch.bin"
                           : split == CLCNN_SPLIT_TRAIN ? "train.bin"
                                                        : "test.bin";
        snprintf(files->paths[0], sizeof(files->paths[0]), "%s/%s", dir, name);
        if (!regular_file(files->paths[0], &files->sizes[0]))
            return set_error(ctx, CLCNN_ERROR_IO, "%s: no %s in it (%s's %s split)", dir, name,
                             layout->name, split == CLCNN_SPLIT_TRAIN ? "training" : "test");
        files->count = 1;
    }
    const long long size = record_size(layout);
    const long long other = layout == &cifar10 ? record_size(&cifar100) : record_size(&cifar10);
    for (int i = 0; i < files->count; i++) {
        const long long bytes = files->sizes[i];
        if (bytes == 0)
            return set_error(ctx, CLCNN_ERROR_FORMAT,
                             "%s: the file is empty, expected %lld-byte %s records",
                             files->paths[i], size, layout->name);
        if (bytes % size != 0)
            return set_error(
                ctx, CLCNN_ERROR_FORMAT,
                "%s: %lld bytes is not a whole number of %lld-byte %s records: the last record, "
                "at byte offset %lld, has only %lld bytes%s",
                files->paths[i], bytes, size, layout->name, bytes - bytes % size, bytes % size,
                bytes % other == 0
                    ? (layout == &cifar10 ? " (the size fits CIFAR-100's 3074-byte records)"
                                          : " (the size fits CIFAR-10's 3073-byte records)")
                    : "");
        files->records += bytes / size;
    }
    if (files->records > INT32_MAX)
        return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: %lld records are too many", dir,
                         (long long)files->records);
    return CLCNN_OK;
}

/* Reads one file's records into images and labels from image `first` on. */
static clcnn_status read_records(clcnn_context *ctx, const char *path, long long size,
                                 const cifar_layout *layout, clcnn_dataset *out, int64_t first) {
    FILE *file = fopen(path, "rb");
    if (!file)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    const int bytes = record_size(layout);
    const int64_t records = size / bytes;
    unsigned char record[CIFAR_MAX_RECORD];
    clcnn_status status = CLCNN_OK;
    for (int64_t r = 0; r < records && status == CLCNN_OK; r++) {
        const long long offset = (long long)r * bytes;
        size_t got = fread(record, 1, (size_t)bytes, file);
        if (got < (size_t)bytes) {
            status = ferror(file) ? set_error(ctx, CLCNN_ERROR_IO, "%s: read failed: %s", path,
                                              strerror(errno))
                                  : set_error(ctx, CLCNN_ERROR_FORMAT,
                                              "%s: truncated at byte offset %lld, inside record "
                                              "%lld (was the file changed while being read?)",
                                              path, offset + (long long)got, (long long)r);
            break;
        }
        const int label = record[layout->label_bytes - 1];
        if (layout->coarse_classes && record[0] >= layout->coarse_classes)
            status = set_error(ctx, CLCNN_ERROR_FORMAT,
                               "%s: record %lld at byte offset %lld: coarse label %d is not one "
                               "of %s's %d (0 to %d)",
                               path, (long long)r, offset, record[0], layout->name,
                               layout->coarse_classes, layout->coarse_classes - 1);
        else if (label >= layout->classes)
            status = set_error(ctx, CLCNN_ERROR_FORMAT,
                               "%s: record %lld at byte offset %lld: label %d is not one of "
                               "%s's %d classes (0 to %d)",
                               path, (long long)r, offset + layout->label_bytes - 1, label,
                               layout->name, layout->classes, layout->classes - 1);
        if (status != CLCNN_OK)
            break;
        out->labels[first + r] = label;
        float *image = out->images + (first + r) * CIFAR_PIXELS;
        const unsigned char *pixels = record + layout->label_bytes;
        for (int p = 0; p < CIFAR_PIXELS; p++)
            image[p] = pixels[p] / 255.0f;
    }
    fclose(file);
    return status;
}

/* The class names file: one name per line (blank lines skipped, trailing
 * blanks and a CR dropped), exactly as many names as classes. */
static clcnn_status read_class_names(clcnn_context *ctx, const char *path,
                                     const cifar_layout *layout, clcnn_dataset *out) {
    long long size = 0;
    if (!regular_file(path, &size))
        return CLCNN_OK; /* the names are optional */
    if (size > CIFAR_MAX_NAMES_BYTES)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: %lld bytes is too large for a file of %d class names", path, size,
                         layout->classes);
    FILE *file = fopen(path, "rb");
    if (!file)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = malloc((size_t)size + 1);
    out->class_names = calloc((size_t)layout->classes, sizeof(*out->class_names));
    clcnn_status status = CLCNN_OK;
    if (!text || !out->class_names)
        status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    else if (fread(text, 1, (size_t)size, file) != (size_t)size)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: read failed or the file changed size", path);
    fclose(file);
    int names = 0, line = 0;
    for (long long at = 0; status == CLCNN_OK && at < size; line++) {
        const char *start = text + at;
        const char *end = memchr(start, '\n', (size_t)(size - at));
        size_t length = end ? (size_t)(end - start) : (size_t)(size - at);
        at += (long long)length + 1;
        if (memchr(start, 0, length))
            status =
                set_error(ctx, CLCNN_ERROR_FORMAT, "%s: line %d holds a NUL byte", path, line + 1);
        while (length > 0 &&
               (start[length - 1] == '\r' || start[length - 1] == ' ' || start[length - 1] == '\t'))
            length--;
        if (status != CLCNN_OK || length == 0)
            continue;
        if (length > CLCNN_CLASS_NAME_SIZE - 1)
            status =
                set_error(ctx, CLCNN_ERROR_FORMAT,
                          "%s: line %d: the class name '%.*s' is %zu bytes long, more than "
                          "the %d a model keeps",
                          path, line + 1, (int)length, start, length, CLCNN_CLASS_NAME_SIZE - 1);
        else if (names == layout->classes)
            status =
                set_error(ctx, CLCNN_ERROR_FORMAT, "%s: line %d: more than %s's %d class names",
                          path, line + 1, layout->name, layout->classes);
        else
            memcpy(out->class_names[names++], start, length);
    }
    if (status == CLCNN_OK && names != layout->classes)
        status = set_error(ctx, CLCNN_ERROR_FORMAT,
                           "%s: %d class names, expected %s's %d (one per line)", path, names,
                           layout->name, layout->classes);
    free(text);
    return status;
}

clcnn_status clcnn_dataset_load_cifar(clcnn_context *ctx, const char *dir, clcnn_split split,
                                      clcnn_dataset *out) {
    if (!ctx || !dir || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_dataset_load_cifar: NULL argument");
    memset(out, 0, sizeof(*out));
    if (split != CLCNN_SPLIT_TRAIN && split != CLCNN_SPLIT_TEST)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "unknown split %d", (int)split);
    char path[4096];
    long long size;
    const cifar_layout *layout = NULL;
    snprintf(path, sizeof(path), "%s/data_batch_1.bin", dir);
    if (regular_file(path, &size))
        layout = &cifar10;
    snprintf(path, sizeof(path), "%s/test_batch.bin", dir);
    if (!layout && regular_file(path, &size))
        layout = &cifar10;
    snprintf(path, sizeof(path), "%s/train.bin", dir);
    if (!layout && regular_file(path, &size))
        layout = &cifar100;
    snprintf(path, sizeof(path), "%s/test.bin", dir);
    if (!layout && regular_file(path, &size))
        layout = &cifar100;
    if (!layout)
        return set_error(ctx, CLCNN_ERROR_IO,
                         "%s: no CIFAR files in it (CIFAR-10: data_batch_1.bin ... and "
                         "test_batch.bin; CIFAR-100: train.bin and test.bin)",
                         dir);

    /* The file list is large (paths): keep it off the stack. */
    cifar_files *files = malloc(sizeof(*files));
    if (!files)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", dir);
    clcnn_status status = list_files(ctx, dir, layout, split, files);
    if (status == CLCNN_OK) {
        const int64_t count = files->records;
        out->images = malloc(sizeof(float) * (size_t)(count * CIFAR_PIXELS));
        out->labels = malloc(sizeof(int32_t) * (size_t)count);
        if (!out->images || !out->labels)
            status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory for %lld images",
                               dir, (long long)count);
    }
    int64_t first = 0;
    for (int i = 0; status == CLCNN_OK && i < files->count; i++) {
        status = read_records(ctx, files->paths[i], files->sizes[i], layout, out, first);
        first += files->sizes[i] / record_size(layout);
    }
    if (status == CLCNN_OK) {
        snprintf(path, sizeof(path), "%s/%s", dir, layout->names_file);
        status = read_class_names(ctx, path, layout, out);
    }
    if (status == CLCNN_OK) {
        out->count = files->records;
        out->channels = 3;
        out->height = CIFAR_SIDE;
        out->width = CIFAR_SIDE;
        out->classes = layout->classes;
    } else {
        clcnn_dataset_free(out);
    }
    free(files);
    return status;
}
