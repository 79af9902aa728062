/* CIFAR-10/100 binaries (host/io/cifar.c). The input describes a directory:
 *   byte 0        bit 0: CIFAR-100 names (train.bin, test.bin) instead of
 *                 CIFAR-10's (data_batch_1.bin, test_batch.bin); bit 1: the
 *                 data file is the test split's; bit 2: the class names file
 *                 is left out; bit 3: a second, empty training batch
 *                 (data_batch_2.bin) beside the first
 *   bytes 1-2     n, little-endian: the length of the class names file
 *   n bytes       the class names file (batches.meta.txt or fine_label_names.txt)
 *   the rest      the data file
 * and both splits are loaded from it. */
#include "fuzz.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3)
        return 0;
    clcnn_context *ctx = fuzz_context();
    const int flags = data[0];
    size_t names_size = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (names_size > size)
        names_size = size;
    const int cifar100 = flags & 1, test = flags & 2;
    fuzz_clear();
    const char *dir = fuzz_path("cifar");
    fuzz_mkdir(dir);
    char path[4096];
    if (!(flags & 4)) {
        snprintf(path, sizeof(path), "%s/%s", dir,
                 cifar100 ? "fine_label_names.txt" : "batches.meta.txt");
        fuzz_write(path, data, names_size);
    }
    const char *name = cifar100 ? (test ? "test.bin" : "train.bin")
                                : (test ? "test_batch.bin" : "data_batch_1.bin");
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fuzz_write(path, data + names_size, size - names_size);
    if (flags & 8) {
        snprintf(path, sizeof(path), "%s/data_batch_2.bin", dir);
        fuzz_write(path, "", 0);
    }
    for (int split = 0; split < 2; split++) {
        clcnn_dataset set;
        if (clcnn_dataset_load_cifar(ctx, dir, split == 0 ? CLCNN_SPLIT_TRAIN : CLCNN_SPLIT_TEST,
                                     &set) == CLCNN_OK)
            clcnn_dataset_free(&set);
    }
    return 0;
}
