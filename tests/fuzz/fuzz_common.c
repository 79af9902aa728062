#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[1024];

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *entry;
        while ((entry = readdir(d)) != NULL) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
                continue;
            char child[2048];
            snprintf(child, sizeof(child), "%s/%s", path, entry->d_name);
            remove_tree(child);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void remove_scratch(void) {
    if (scratch[0])
        remove_tree(scratch);
}

const char *fuzz_dir(void) {
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof(scratch), "%s/clcnn-fuzz-%d", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid());
        remove_tree(scratch);
        if (mkdir(scratch, 0700) != 0) {
            perror(scratch);
            abort();
        }
        atexit(remove_scratch);
    }
    return scratch;
}

const char *fuzz_path(const char *name) {
    static char paths[4][2048];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, sizeof(paths[0]), "%s/%s", fuzz_dir(), name);
    return path;
}

void fuzz_write(const char *path, const void *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    if ((size > 0 && fwrite(bytes, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

void fuzz_mkdir(const char *path) {
    if (mkdir(path, 0700) != 0) {
        perror(path);
        abort();
    }
}

void fuzz_clear(void) {
    const char *dir = fuzz_dir();
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char child[2048];
        snprintf(child, sizeof(child), "%s/%s", dir, entry->d_name);
        remove_tree(child);
    }
    closedir(d);
}

static clcnn_context *context;

static void destroy_context(void) {
    clcnn_context_destroy(context);
    context = NULL;
}

clcnn_context *fuzz_context(void) {
    if (!context) {
        context = clcnn_context_create();
        if (!context ||
            clcnn_context_select_device(context, CLCNN_DEVICE_REFERENCE, -1, -1) != CLCNN_OK) {
            fprintf(stderr, "fuzz: cannot create a reference context\n");
            abort();
        }
        atexit(destroy_context);
    }
    return context;
}
