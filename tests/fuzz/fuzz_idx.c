/* IDX files, raw or gzip (host/io/idx.c): the input is the file. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clcnn_context *ctx = fuzz_context();
    const char *path = fuzz_path("input-idx3-ubyte");
    fuzz_write(path, data, size);
    clcnn_array array;
    if (clcnn_idx_read(ctx, path, &array) == CLCNN_OK)
        clcnn_array_free(&array);
    return 0;
}
