/* Outputs are checked before any work is spent on them. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_check_output_file(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return cli_fail("%s: cannot save %s there: it is %s", path, what,
                        S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (stat(dir, &st) != 0)
        return cli_fail("%s: cannot save %s there: %s: %s", path, what, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_fail("%s: cannot save %s there: %s is not a directory", path, what, dir);
    /* A file is written beside its place (a temporary renamed over it) or created there. */
    if (access(dir, W_OK | X_OK) != 0)
        return cli_fail("%s: cannot save %s there: %s: %s", path, what, dir, strerror(errno));
    return 0;
}
