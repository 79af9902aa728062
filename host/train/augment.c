/* Augmentation of training images: rotation, padded random crop, flip.
 *
 * The draws are counter-based: an image's come from hashing (seed, epoch,
 * its index in the data set), not from a generator that advances as images
 * go by. So they do not depend on which process gathers the image (sharded
 * training), on where a run was interrupted (resume), or on the batch size;
 * and the trainer's saved state needs nothing more than the configuration.
 *
 * The transform maps every output pixel back to the source, so it writes
 * straight into the staging batch: no temporary image, nothing allocated. */
#include "internal.h"

#include <math.h>

/* splitmix64's finaliser: a bijection of 64-bit values whose outputs for
 * consecutive inputs look independent. */
static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Draw k of a key, uniform in [0, 1). */
static double uniform(uint64_t key, uint64_t k) {
    return (double)(mix64(key + k) >> 11) * (1.0 / 9007199254740992.0);
}

int augment_enabled(const clcnn_train_config *c) {
    return c->augment_crop_pad > 0 || c->augment_flip || c->augment_rotate_degrees > 0.0;
}

augment_draw augment_draws(const clcnn_train_config *c, int epoch, int64_t index) {
    /* "augment" in ASCII keeps these draws apart from any other use of the seed. */
    uint64_t key = mix64(c->seed ^ 0x61756d656e74ULL);
    key = mix64(key ^ (uint64_t)(uint32_t)epoch);
    key = mix64(key ^ (uint64_t)index);
    /* Each kind has its own draw, so turning one on changes no other. */
    augment_draw d;
    const int positions = 2 * c->augment_crop_pad + 1;
    d.flip = c->augment_flip && uniform(key, 0) < 0.5;
    d.crop_y = (int)(uniform(key, 1) * positions);
    d.crop_x = (int)(uniform(key, 2) * positions);
    d.angle = c->augment_rotate_degrees > 0.0
                  ? (2.0 * uniform(key, 3) - 1.0) * c->augment_rotate_degrees
                  : 0.0;
    return d;
}

/* Bilinear sample of one plane at (y, x); 0 outside it. */
static float bilinear(const float *plane, int height, int width, double y, double x) {
    const double fy = floor(y), fx = floor(x);
    const int y0 = (int)fy, x0 = (int)fx;
    const double wy = y - fy, wx = x - fx;
    double sum = 0.0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            const int yy = y0 + dy, xx = x0 + dx;
            if (yy < 0 || yy >= height || xx < 0 || xx >= width)
                continue;
            const double weight = (dy ? wy : 1.0 - wy) * (dx ? wx : 1.0 - wx);
            sum += weight * plane[yy * width + xx];
        }
    return (float)sum;
}

void augment_image(const float *src, float *dst, int channels, int height, int width, int pad,
                   const augment_draw *d) {
    const int64_t plane = (int64_t)height * width;
    const int rotate = d->angle != 0.0;
    const double radians = d->angle * (M_PI / 180.0);
    const double cosine = cos(radians), sine = sin(radians);
    const double cy = (height - 1) / 2.0, cx = (width - 1) / 2.0;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            /* Undo the flip, then the crop: where in the rotated image this pixel lies. */
            const int rx = (d->flip ? width - 1 - x : x) + d->crop_x - pad;
            const int ry = y + d->crop_y - pad;
            const int64_t out = (int64_t)y * width + x;
            if (ry < 0 || ry >= height || rx < 0 || rx >= width) {
                for (int c = 0; c < channels; c++)
                    dst[c * plane + out] = 0.0f; /* the padding */
                continue;
            }
            if (!rotate) {
                for (int c = 0; c < channels; c++)
                    dst[c * plane + out] = src[c * plane + (int64_t)ry * width + rx];
                continue;
            }
            /* Undo the rotation: y grows downwards, so a counter-clockwise
             * turn on screen takes the source point at this rotation. */
            const double dy = ry - cy, dx = rx - cx;
            const double sy = cy + sine * dx + cosine * dy;
            const double sx = cx + cosine * dx - sine * dy;
            for (int c = 0; c < channels; c++)
                dst[c * plane + out] = bilinear(src + c * plane, height, width, sy, sx);
        }
}
