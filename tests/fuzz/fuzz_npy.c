/* .npy files (host/io/npy.c): the input is the file; what reads is also
 * converted to float32, as the commands do with images. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clcnn_context *ctx = fuzz_context();
    const char *path = fuzz_path("input.npy");
    fuzz_write(path, data, size);
    clcnn_array array;
    if (clcnn_npy_read(ctx, path, &array) == CLCNN_OK) {
        clcnn_array_to_float32(ctx, &array);
        clcnn_array_free(&array);
    }
    return 0;
}
