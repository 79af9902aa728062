/* The classic named 3x3 filters of image processing, for teaching and for
 * filtering images. Written as the convolution layer applies them: a
 * cross-correlation, as PyTorch's conv2d (so "prewitt_v" responds to dark on
 * the left and light on the right with a positive value). */
#include "internal.h"

#include <string.h>

typedef struct named_filter {
    const char *name;
    float weights[9];
} named_filter;

static const named_filter filters[] = {
    {"identity", {0, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"prewitt_v", {-1, 0, 1, -1, 0, 1, -1, 0, 1}},
    {"prewitt_h", {-1, -1, -1, 0, 0, 0, 1, 1, 1}},
    {"sobel_v", {-1, 0, 1, -2, 0, 2, -1, 0, 1}},
    {"sobel_h", {-1, -2, -1, 0, 0, 0, 1, 2, 1}},
    {"laplacian_4", {0, 1, 0, 1, -4, 1, 0, 1, 0}},
    {"laplacian_8", {1, 1, 1, 1, -8, 1, 1, 1, 1}},
    {"sharpen", {0, -1, 0, -1, 5, -1, 0, -1, 0}},
    {"box_blur",
     {1.0f / 9, 1.0f / 9, 1.0f / 9, 1.0f / 9, 1.0f / 9, 1.0f / 9, 1.0f / 9, 1.0f / 9, 1.0f / 9}},
    {"gaussian_blur",
     {1.0f / 16, 2.0f / 16, 1.0f / 16, 2.0f / 16, 4.0f / 16, 2.0f / 16, 1.0f / 16, 2.0f / 16,
      1.0f / 16}},
};

enum { FILTER_COUNT = sizeof(filters) / sizeof(filters[0]) };

int named_filter_index(const char *name) {
    for (int i = 0; i < FILTER_COUNT; i++)
        if (strcmp(filters[i].name, name) == 0)
            return i;
    return -1;
}

const float *named_filter_weights(int index) {
    return index >= 0 && index < FILTER_COUNT ? filters[index].weights : NULL;
}

const char *clcnn_filter_name(int index) {
    return index >= 0 && index < FILTER_COUNT ? filters[index].name : NULL;
}
