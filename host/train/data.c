/* Data sets: which format a directory holds, MNIST-format IDX directories
 * into float images and int labels, and the statistics and normalisation
 * of a set. CIFAR binaries are read in io/cifar.c, image folders in
 * io/folders.c. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* <dir>/<prefix>-<kind>, preferring the gzip-compressed file. */
static int find_idx_file(const char *dir, const char *prefix, const char *kind, char *path,
                         size_t size) {
    struct stat st;
    snprintf(path, size, "%s/%s-%s.gz", dir, prefix, kind);
    if (stat(path, &st) == 0)
        return 1;
    snprintf(path, size, "%s/%s-%s", dir, prefix, kind);
    return stat(path, &st) == 0;
}

clcnn_status clcnn_dataset_load_idx(clcnn_context *ctx, const char *dir, const char *prefix,
                                    clcnn_dataset *out) {
    if (!ctx || !dir || !prefix || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_dataset_load_idx: NULL argument");
    memset(out, 0, sizeof(*out));
    char images_path[4096], labels_path[4096];
    if (!find_idx_file(dir, prefix, "images-idx3-ubyte", images_path, sizeof(images_path)))
        return set_error(ctx, CLCNN_ERROR_IO, "%s: no %s-images-idx3-ubyte(.gz) in it", dir,
                         prefix);
    if (!find_idx_file(dir, prefix, "labels-idx1-ubyte", labels_path, sizeof(labels_path)))
        return set_error(ctx, CLCNN_ERROR_IO, "%s: no %s-labels-idx1-ubyte(.gz) in it", dir,
                         prefix);
    clcnn_array images = {0}, labels = {0};
    clcnn_status status = clcnn_idx_read(ctx, images_path, &images);
    if (status == CLCNN_OK)
        status = clcnn_idx_read(ctx, labels_path, &labels);
    if (status != CLCNN_OK)
        goto done;
    if (images.ndim != 3) {
        status = set_error(ctx, CLCNN_ERROR_FORMAT, "%s: expected 3 dimensions (N, H, W), got %d",
                           images_path, images.ndim);
        goto done;
    }
    if (labels.ndim != 1 || labels.shape[0] != images.shape[0]) {
        status = set_error(ctx, CLCNN_ERROR_FORMAT, "%s: expected %lld labels, one per image of %s",
                           labels_path, (long long)images.shape[0], images_path);
        goto done;
    }
    const int64_t count = images.shape[0];
    const int64_t pixels = images.shape[1] * images.shape[2];
    out->images = malloc(sizeof(float) * (size_t)(count * pixels + 1));
    out->labels = malloc(sizeof(int32_t) * (size_t)(count + 1));
    if (!out->images || !out->labels) {
        clcnn_dataset_free(out);
        status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for %lld images",
                           (long long)count);
        goto done;
    }
    const unsigned char *pixel = images.data;
    for (int64_t i = 0; i < count * pixels; i++)
        out->images[i] = pixel[i] / 255.0f;
    const unsigned char *label = labels.data;
    int classes = 0;
    for (int64_t i = 0; i < count; i++) {
        out->labels[i] = label[i];
        if (label[i] + 1 > classes)
            classes = label[i] + 1;
    }
    out->count = count;
    out->channels = 1;
    out->height = (int)images.shape[1];
    out->width = (int)images.shape[2];
    out->classes = classes;
done:
    clcnn_array_free(&images);
    clcnn_array_free(&labels);
    return status;
}

const char *clcnn_data_format_name(clcnn_data_format format) {
    switch (format) {
    case CLCNN_DATA_IDX:
        return "IDX";
    case CLCNN_DATA_CIFAR10:
        return "CIFAR-10";
    case CLCNN_DATA_CIFAR100:
        return "CIFAR-100";
    case CLCNN_DATA_FOLDERS:
        return "image folders";
    }
    return "unknown";
}

static int file_in(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int directory_in(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

clcnn_status clcnn_dataset_detect(clcnn_context *ctx, const char *dir, clcnn_data_format *out) {
    if (!dir || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "clcnn_dataset_detect: NULL argument");
    struct stat st;
    if (stat(dir, &st) != 0)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open the data directory: %s", dir,
                         strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return set_error(ctx, CLCNN_ERROR_IO, "%s: the data set must be a directory", dir);
    /* The first format whose files are there wins: a directory holds one. */
    if (file_in(dir, "train-images-idx3-ubyte.gz") || file_in(dir, "train-images-idx3-ubyte") ||
        file_in(dir, "t10k-images-idx3-ubyte.gz") || file_in(dir, "t10k-images-idx3-ubyte"))
        *out = CLCNN_DATA_IDX;
    else if (file_in(dir, "data_batch_1.bin") || file_in(dir, "test_batch.bin"))
        *out = CLCNN_DATA_CIFAR10;
    else if (file_in(dir, "train.bin") || file_in(dir, "test.bin"))
        *out = CLCNN_DATA_CIFAR100;
    else if (directory_in(dir, "train") || directory_in(dir, "test"))
        *out = CLCNN_DATA_FOLDERS;
    else
        return set_error(ctx, CLCNN_ERROR_IO,
                         "%s: no data set in it: expected MNIST IDX files "
                         "(train-images-idx3-ubyte[.gz], ...), CIFAR-10 (data_batch_1.bin, "
                         "test_batch.bin), CIFAR-100 (train.bin, test.bin) or image folders "
                         "(train/<class>/, test/<class>/)",
                         dir);
    return CLCNN_OK;
}

clcnn_status clcnn_dataset_load(clcnn_context *ctx, const char *dir, clcnn_split split,
                                clcnn_dataset *out) {
    if (!ctx || !dir || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "clcnn_dataset_load: NULL argument");
    memset(out, 0, sizeof(*out));
    clcnn_data_format format = CLCNN_DATA_IDX;
    clcnn_status status = clcnn_dataset_detect(ctx, dir, &format);
    if (status != CLCNN_OK)
        return status;
    switch (format) {
    case CLCNN_DATA_IDX:
        return clcnn_dataset_load_idx(ctx, dir, split == CLCNN_SPLIT_TRAIN ? "train" : "t10k", out);
    case CLCNN_DATA_CIFAR10:
    case CLCNN_DATA_CIFAR100:
        return clcnn_dataset_load_cifar(ctx, dir, split, out);
    case CLCNN_DATA_FOLDERS:
        return clcnn_dataset_load_folders(ctx, dir, split, out);
    }
    return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "unknown data format %d", (int)format);
}

void clcnn_dataset_normalize(clcnn_dataset *data, float mean, float std) {
    const int64_t n = data->count * data->channels * data->height * data->width;
    for (int64_t i = 0; i < n; i++)
        data->images[i] = (data->images[i] - mean) / std;
}

void clcnn_dataset_statistics(const clcnn_dataset *data, float *mean, float *std) {
    const int64_t n = data->count * data->channels * data->height * data->width;
    double sum = 0.0, squares = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += data->images[i];
        squares += (double)data->images[i] * data->images[i];
    }
    double m = n ? sum / n : 0.0;
    double variance = n ? squares / n - m * m : 1.0;
    *mean = (float)m;
    *std = variance > 1e-12 ? (float)sqrt(variance) : 1.0f;
}

void clcnn_dataset_normalize_channels(clcnn_dataset *data, const float *mean, const float *std) {
    const int64_t plane = (int64_t)data->height * data->width;
    float *pixel = data->images;
    for (int64_t i = 0; i < data->count; i++)
        for (int c = 0; c < data->channels; c++)
            for (int64_t p = 0; p < plane; p++, pixel++)
                *pixel = (*pixel - mean[c]) / std[c];
}

/* In the same order as clcnn_dataset_statistics, so that one channel gives
 * its figures bit for bit. */
void clcnn_dataset_channel_statistics(const clcnn_dataset *data, float *mean, float *std) {
    const int64_t plane = (int64_t)data->height * data->width;
    for (int c = 0; c < data->channels; c++) {
        double sum = 0.0, squares = 0.0;
        for (int64_t i = 0; i < data->count; i++) {
            const float *pixel = data->images + (i * data->channels + c) * plane;
            for (int64_t p = 0; p < plane; p++) {
                sum += pixel[p];
                squares += (double)pixel[p] * pixel[p];
            }
        }
        const int64_t n = data->count * plane;
        double m = n ? sum / n : 0.0;
        double variance = n ? squares / n - m * m : 1.0;
        mean[c] = (float)m;
        std[c] = variance > 1e-12 ? (float)sqrt(variance) : 1.0f;
    }
}

clcnn_dataset clcnn_dataset_head(const clcnn_dataset *data, int64_t count) {
    clcnn_dataset head = *data;
    if (count >= 0 && count < data->count)
        head.count = count;
    return head;
}

void clcnn_dataset_free(clcnn_dataset *data) {
    if (!data)
        return;
    free(data->images);
    free(data->labels);
    free(data->class_names);
    memset(data, 0, sizeof(*data));
}
