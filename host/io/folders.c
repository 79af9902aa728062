/* Image folders: dir/train/<class>/<image> and dir/test/<class>/<image>,
 * decoded with stb_image (PNG, JPEG, binary PGM and PPM).
 *
 * Two passes. The first lists both splits and reads only each image's
 * header (stbi_info): the classes of train/ and test/ must agree, every
 * image must have one size, and the set is RGB when any image has colour.
 * Deciding over both splits means that the training and the test images of
 * a set always come out alike, whichever split is loaded. The second pass
 * decodes the requested split into the channel count decided, stb_image
 * expanding grey to RGB where needed. */
#include "internal.h"
#include "io/image_guards.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <stb_image.h>

/* The most pixels an image of a set may have (4096 x 4096). A damaged header
 * can claim any size up to stb_image's own limit of 2^24 a side; without a
 * bound of its own the set's storage would be allocated for that claim
 * (gigabytes from a file of 100 bytes) before decoding finds the data
 * missing. */
enum { FOLDERS_MAX_PIXELS = 1 << 24 };

/* Class folders a set may have. */
#define FOLDERS_MAX_CLASSES 1000

/* A growing list of malloc'd strings. */
typedef struct string_list {
    char **items;
    int count, capacity;
} string_list;

static int list_add(string_list *l, const char *text) {
    if (l->count == l->capacity) {
        int capacity = l->capacity ? l->capacity * 2 : 16;
        char **bigger = realloc(l->items, sizeof(char *) * (size_t)capacity);
        if (!bigger)
            return -1;
        l->items = bigger;
        l->capacity = capacity;
    }
    l->items[l->count] = strdup(text);
    return l->items[l->count++] ? 0 : -1;
}

static void list_free(string_list *l) {
    for (int i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name) {
    static const char *const suffixes[] = {".png", ".jpg", ".jpeg", ".pgm", ".ppm"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t m = strlen(suffixes[i]);
        if (n > m && strcasecmp(name + n - m, suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

/* The sorted names in dir of subdirectories (want_directories) or of image
 * files; names starting with '.' are skipped. */
static clcnn_status list_entries(clcnn_context *ctx, const char *dir, int want_directories,
                                 string_list *out) {
    DIR *d = opendir(dir);
    if (!d)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", dir, strerror(errno));
    clcnn_status status = CLCNN_OK;
    struct dirent *entry;
    char path[4096];
    while (status == CLCNN_OK && (entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        int wanted = want_directories ? S_ISDIR(st.st_mode)
                                      : S_ISREG(st.st_mode) && is_image_name(entry->d_name);
        if (wanted && list_add(out, entry->d_name) != 0)
            status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", dir);
    }
    closedir(d);
    if (status == CLCNN_OK && out->count > 1)
        qsort(out->items, (size_t)out->count, sizeof(char *), compare_strings);
    return status;
}

/* One split's images: the paths and each one's class. */
typedef struct split_listing {
    int present;
    string_list classes;
    string_list paths;
    int *labels;
} split_listing;

static void listing_free(split_listing *s) {
    list_free(&s->classes);
    list_free(&s->paths);
    free(s->labels);
    memset(s, 0, sizeof(*s));
}

static clcnn_status list_split(clcnn_context *ctx, const char *dir, const char *split,
                               split_listing *out) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, split);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return CLCNN_OK; /* not present */
    out->present = 1;
    clcnn_status status = list_entries(ctx, path, 1, &out->classes);
    if (status != CLCNN_OK)
        return status;
    if (out->classes.count == 0)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: no class folders in it (expected %s/<class>/<image>)", path, split);
    if (out->classes.count > FOLDERS_MAX_CLASSES)
        return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: %d class folders, more than the %d allowed",
                         path, out->classes.count, FOLDERS_MAX_CLASSES);
    for (int c = 0; c < out->classes.count; c++) {
        const char *name = out->classes.items[c];
        if (strlen(name) > CLCNN_CLASS_NAME_SIZE - 1)
            return set_error(ctx, CLCNN_ERROR_FORMAT,
                             "%s/%s: a class folder's name is its class name, at most %d bytes",
                             path, name, CLCNN_CLASS_NAME_SIZE - 1);
        char class_dir[4096 + CLCNN_CLASS_NAME_SIZE + 8];
        snprintf(class_dir, sizeof(class_dir), "%s/%s", path, name);
        string_list files = {0};
        status = list_entries(ctx, class_dir, 0, &files);
        int *labels =
            status == CLCNN_OK
                ? realloc(out->labels, sizeof(int) * (size_t)(out->paths.count + files.count + 1))
                : NULL;
        if (status == CLCNN_OK && !labels)
            status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", class_dir);
        if (labels)
            out->labels = labels;
        for (int i = 0; status == CLCNN_OK && i < files.count; i++) {
            char file[4096 + 256];
            snprintf(file, sizeof(file), "%s/%s", class_dir, files.items[i]);
            out->labels[out->paths.count] = c;
            if (list_add(&out->paths, file) != 0)
                status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", class_dir);
        }
        list_free(&files);
        if (status != CLCNN_OK)
            return status;
    }
    return CLCNN_OK;
}

/* The shape of the set, from every image's header. */
typedef struct set_shape {
    int width, height, channels;
    const char *first; /* the image the size was taken from */
} set_shape;

static clcnn_status probe_split(clcnn_context *ctx, const split_listing *s, set_shape *shape) {
    for (int i = 0; i < s->paths.count; i++) {
        const char *path = s->paths.items[i];
        int w, h, n;
        const char *refusal = image_refusal(path);
        if (refusal)
            return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: cannot read the image: %s", path,
                             refusal);
        if (!stbi_info(path, &w, &h, &n))
            return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: cannot read the image: %s", path,
                             stbi_failure_reason());
        /* stb_image can accept a damaged header's size of 0. */
        if (w < 1 || h < 1)
            return set_error(ctx, CLCNN_ERROR_FORMAT,
                             "%s: cannot read the image: its header gives a size of %dx%d", path, w,
                             h);
        if ((int64_t)w * h > FOLDERS_MAX_PIXELS)
            return set_error(ctx, CLCNN_ERROR_FORMAT,
                             "%s: the image is %dx%d, more than the %d pixels an image of a set "
                             "may have",
                             path, w, h, FOLDERS_MAX_PIXELS);
        if (!shape->first) {
            shape->first = path;
            shape->width = w;
            shape->height = h;
        } else if (w != shape->width || h != shape->height) {
            return set_error(ctx, CLCNN_ERROR_SHAPE,
                             "%s: the image is %dx%d but %s is %dx%d: every image of a set must "
                             "have one size",
                             path, w, h, shape->first, shape->width, shape->height);
        }
        /* 1 grey, 2 grey and alpha, 3 RGB, 4 RGB and alpha */
        if (n >= 3)
            shape->channels = 3;
    }
    return CLCNN_OK;
}

/* Decodes the listed images into out (allocated for them). */
static clcnn_status decode_split(clcnn_context *ctx, const split_listing *s, const set_shape *shape,
                                 clcnn_dataset *out) {
    const int C = shape->channels, H = shape->height, W = shape->width;
    const int64_t image_size = (int64_t)C * H * W;
    const int64_t count = s->paths.count;
    for (int64_t i = 0; i < count; i++) {
        const char *path = s->paths.items[i];
        int w, h, n;
        /* In the file's own channels, converted below: stb_image 2.27
         * converts a 16-bit PNM's channels with its 8-bit converter and then
         * reads past the result. */
        unsigned char *pixels = stbi_load(path, &w, &h, &n, 0);
        if (!pixels)
            return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: cannot decode the image: %s", path,
                             stbi_failure_reason());
        /* The set's storage once the first image has decoded, so that a
         * header alone never decides an allocation. */
        if (i == 0) {
            out->images = malloc(sizeof(float) * (size_t)(count * image_size + 1));
            out->labels = malloc(sizeof(int32_t) * (size_t)(count + 1));
            if (!out->images || !out->labels) {
                stbi_image_free(pixels);
                return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                                 "out of memory for %lld images of %dx%dx%d", (long long)count, C,
                                 H, W);
            }
        }
        if (w != W || h != H) {
            stbi_image_free(pixels);
            return set_error(ctx, CLCNN_ERROR_SHAPE,
                             "%s: the image is %dx%d but was %dx%d a moment ago (changed while "
                             "being read?)",
                             path, w, h, W, H);
        }
        /* stb gives interleaved pixels (HWC); the networks take planes (CHW). */
        float *image = out->images + i * image_size;
        /* Grey (and grey+alpha) to RGB by repeating it, alpha dropped
         * (C is 3 when any image of the set has colour, so an RGB image never
         * goes to grey). */
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++) {
                const unsigned char *px = pixels + (size_t)p * n;
                image[c * H * W + p] = (n <= 2 ? px[0] : px[c]) / 255.0f;
            }
        stbi_image_free(pixels);
        out->labels[i] = s->labels[i];
    }
    return CLCNN_OK;
}

clcnn_status clcnn_dataset_load_folders(clcnn_context *ctx, const char *dir, clcnn_split split,
                                        clcnn_dataset *out) {
    if (!ctx || !dir || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_dataset_load_folders: NULL argument");
    memset(out, 0, sizeof(*out));
    if (split != CLCNN_SPLIT_TRAIN && split != CLCNN_SPLIT_TEST)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "unknown split %d", (int)split);
    static const char *const names[2] = {"train", "test"};
    split_listing splits[2];
    memset(splits, 0, sizeof(splits));
    clcnn_status status = list_split(ctx, dir, names[0], &splits[0]);
    if (status == CLCNN_OK)
        status = list_split(ctx, dir, names[1], &splits[1]);
    const split_listing *wanted = &splits[split];
    if (status == CLCNN_OK && !wanted->present)
        status = set_error(ctx, CLCNN_ERROR_IO,
                           "%s: no %s/ directory in it (image folders: %s/<class>/<image>)", dir,
                           names[split], names[split]);
    /* The same classes, in the same order, on both sides. */
    if (status == CLCNN_OK && splits[0].present && splits[1].present) {
        const string_list *a = &splits[0].classes, *b = &splits[1].classes;
        for (int i = 0, j = 0; status == CLCNN_OK && (i < a->count || j < b->count);) {
            int order = i == a->count ? 1 : j == b->count ? -1 : strcmp(a->items[i], b->items[j]);
            if (order < 0)
                status = set_error(ctx, CLCNN_ERROR_FORMAT,
                                   "%s: train/ and test/ must hold the same class folders, but "
                                   "'%s' is in train/ only",
                                   dir, a->items[i]);
            else if (order > 0)
                status = set_error(ctx, CLCNN_ERROR_FORMAT,
                                   "%s: train/ and test/ must hold the same class folders, but "
                                   "'%s' is in test/ only",
                                   dir, b->items[j]);
            i++;
            j++;
        }
    }
    set_shape shape = {0, 0, 1, NULL};
    for (int s = 0; s < 2 && status == CLCNN_OK; s++)
        status = probe_split(ctx, &splits[s], &shape);
    if (status == CLCNN_OK && wanted->paths.count == 0)
        status = set_error(ctx, CLCNN_ERROR_FORMAT,
                           "%s/%s: no images in its class folders (.png, .jpg, .jpeg, .pgm or "
                           ".ppm files)",
                           dir, names[split]);
    if (status == CLCNN_OK)
        status = decode_split(ctx, wanted, &shape, out);
    if (status == CLCNN_OK) {
        const int classes = wanted->classes.count;
        out->class_names = calloc((size_t)classes, sizeof(*out->class_names));
        if (!out->class_names)
            status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", dir);
        for (int c = 0; status == CLCNN_OK && c < classes; c++)
            snprintf(out->class_names[c], sizeof(out->class_names[c]), "%s",
                     wanted->classes.items[c]);
        out->count = wanted->paths.count;
        out->channels = shape.channels;
        out->height = shape.height;
        out->width = shape.width;
        out->classes = classes;
    }
    if (status != CLCNN_OK)
        clcnn_dataset_free(out);
    listing_free(&splits[0]);
    listing_free(&splits[1]);
    return status;
}
