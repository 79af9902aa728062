/* The replay driver: runs the harness it is linked with once on every file
 * named on the command line, and on every file of every directory named.
 * Fails when it ran on no file, so an emptied corpus does not pass. */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int replayed;

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t capacity = 1 << 16, size = 0;
    unsigned char *data = malloc(capacity);
    size_t n;
    while (data && (n = fread(data + size, 1, capacity - size, f)) > 0) {
        size += n;
        if (size == capacity) {
            capacity *= 2;
            unsigned char *bigger = realloc(data, capacity);
            if (!bigger)
                free(data);
            data = bigger;
        }
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "%s: out of memory\n", path);
        return 1;
    }
    /* An exact-size copy, so that reading past the input is caught by
     * AddressSanitizer as it is under libFuzzer. */
    unsigned char *exact = malloc(size ? size : 1);
    if (!exact) {
        free(data);
        return 1;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    replayed++;
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_directory(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    int count = 0, capacity = 0, failures = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 64;
            char **bigger = realloc(names, sizeof(char *) * (size_t)capacity);
            if (!bigger)
                abort();
            names = bigger;
        }
        names[count++] = strdup(entry->d_name);
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof(char *), compare_names);
    for (int i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            failures += replay_file(path);
        free(names[i]);
    }
    free(names);
    return failures;
}

int main(int argc, char **argv) {
    int failures = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            failures++;
        } else if (S_ISDIR(st.st_mode)) {
            failures += replay_directory(argv[i]);
        } else {
            failures += replay_file(argv[i]);
        }
    }
    printf("%d replayed, %d failed\n", replayed, failures);
    return failures == 0 && replayed > 0 ? 0 : 1;
}
