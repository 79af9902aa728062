/* Image folders (host/io/folders.c). The input describes a directory:
 *   byte 0        bits 0-1: classes - 1 (1 to 4); bit 2: a test/ split too;
 *                 bit 3: test/ has a class train/ has not; bit 4: an empty
 *                 class folder in train/
 *   the rest      image files separated by the line "--": file i goes to
 *                 class i % classes, of test/ when i is odd and there is a
 *                 test/ split, else of train/, named i.png, i.pgm, i.ppm or
 *                 i.jpg by i % 4 (stb_image goes by the content, not the name)
 * and both splits are loaded from it, as `clcnn train --data DIR` does. */
#include "fuzz.h"

#include <stdio.h>
#include <string.h>

static const uint8_t *find_separator(const uint8_t *data, size_t size) {
    for (size_t i = 0; i + 4 <= size; i++)
        if (memcmp(data + i, "\n--\n", 4) == 0)
            return data + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    clcnn_context *ctx = fuzz_context();
    const int flags = data[0];
    const int classes = 1 + (flags & 3), with_test = flags & 4;
    data++;
    size--;
    fuzz_clear();
    const char *dir = fuzz_path("folders");
    fuzz_mkdir(dir);
    char path[4096];
    static const char *const splits[2] = {"train", "test"};
    for (int s = 0; s < (with_test ? 2 : 1); s++) {
        snprintf(path, sizeof(path), "%s/%s", dir, splits[s]);
        fuzz_mkdir(path);
        for (int c = 0; c < classes; c++) {
            snprintf(path, sizeof(path), "%s/%s/class%d", dir, splits[s], c);
            fuzz_mkdir(path);
        }
    }
    if (with_test && (flags & 8)) {
        snprintf(path, sizeof(path), "%s/test/extra", dir);
        fuzz_mkdir(path);
    }
    if (flags & 16) {
        snprintf(path, sizeof(path), "%s/train/empty", dir);
        fuzz_mkdir(path);
    }
    static const char *const suffixes[4] = {"png", "pgm", "ppm", "jpg"};
    for (int i = 0; size > 0 && i < 64; i++) {
        const uint8_t *end = find_separator(data, size);
        size_t length = end ? (size_t)(end - data) : size;
        const char *split = with_test && i % 2 ? "test" : "train";
        snprintf(path, sizeof(path), "%s/%s/class%d/%d.%s", dir, split, i % classes, i,
                 suffixes[i % 4]);
        fuzz_write(path, data, length);
        if (!end)
            break;
        data += length + 4;
        size -= length + 4;
    }
    for (int split = 0; split < 2; split++) {
        clcnn_dataset set;
        if (clcnn_dataset_load_folders(ctx, dir, split == 0 ? CLCNN_SPLIT_TRAIN : CLCNN_SPLIT_TEST,
                                       &set) == CLCNN_OK)
            clcnn_dataset_free(&set);
    }
    return 0;
}
