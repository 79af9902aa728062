/* Small helpers the whole library shares: the clock, the cache-key hash and
 * the cache directory's creation and the clearing of temporary files that
 * dead processes left. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double clock_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t hash_string(uint64_t h, const char *s) {
    return hash_bytes(h, s, strlen(s) + 1);
}

void make_dirs(const char *path) {
    char partial[4096];
    snprintf(partial, sizeof(partial), "%s", path);
    for (char *p = partial + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(partial, 0755);
            *p = '/';
        }
    }
    mkdir(partial, 0755);
}

void remove_stale_temporaries(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash)
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    else
        snprintf(dir, sizeof(dir), ".");
    const char *base = slash ? slash + 1 : path;
    const size_t base_length = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        const char *name = entry->d_name;
        if (strncmp(name, base, base_length) != 0 || strncmp(name + base_length, ".tmp-", 5) != 0)
            continue;
        const char *digits = name + base_length + 5;
        char *end;
        errno = 0;
        const long pid = strtol(digits, &end, 10);
        if (end == digits || *end != 0 || errno || pid < 1 || pid > INT32_MAX ||
            pid == (long)getpid())
            continue;
        /* kill(pid, 0) fails with ESRCH exactly when no such process exists. */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char stale[8192];
        snprintf(stale, sizeof(stale), "%s/%s", dir, name);
        unlink(stale);
    }
    closedir(d);
}
