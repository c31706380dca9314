/*
 * The file backend of the key store: the snapshot is one JSON file (mode 0600) replaced atomically (temp file,
 * fsync, rename, fsync of the directory: the pool's state file writer), so a crash leaves the old or the new
 * file, never a torn one. Writes block and therefore run off the loop (libuv's thread pool) or at shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/errors.h"
#include "keys/keys.h"
#include "pool/store.h"

#define MAX_KEYS_FILE (64 * 1024 * 1024)

typedef struct st_file_backend_t {
    k2a_keys_backend_t super;
    char *path;
} file_backend_t;

static int fb_load(k2a_keys_backend_t *b, k2a_buf_t *out, char *err, size_t errlen)
{
    file_backend_t *fb = (file_backend_t *)b;
    int fd = open(fb->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return K2A_ENOTFOUND;
        snprintf(err, errlen, "KIRO_KEYS_FILE: cannot open %s: %s", fb->path, strerror(errno));
        return K2A_EIO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > MAX_KEYS_FILE) {
        close(fd);
        snprintf(err, errlen, "KIRO_KEYS_FILE: %s is not a regular file of at most 64 MiB", fb->path);
        return K2A_EIO;
    }
    int r = 0;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "KIRO_KEYS_FILE: cannot read %s: %s", fb->path, strerror(errno));
            r = K2A_EIO;
            break;
        }
        if (n == 0)
            break;
        if ((r = k2a_buf_append(out, chunk, (size_t)n)) != 0) {
            snprintf(err, errlen, "KIRO_KEYS_FILE: %s is too large", fb->path);
            break;
        }
    }
    close(fd);
    return r;
}

static int fb_save(k2a_keys_backend_t *b, const char *json, size_t len)
{
    file_backend_t *fb = (file_backend_t *)b;
    return k2a_pool_write_file_atomic(fb->path, json, len);
}

static void fb_destroy(k2a_keys_backend_t *b)
{
    file_backend_t *fb = (file_backend_t *)b;
    free(fb->path);
    free(fb);
}

k2a_keys_backend_t *k2a_keys_file_backend_create(const char *path)
{
    file_backend_t *fb = calloc(1, sizeof(*fb));
    if (fb == NULL || (fb->path = strdup(path)) == NULL) {
        free(fb);
        return NULL;
    }
    fb->super.name = "file";
    fb->super.load = fb_load;
    fb->super.save = fb_save;
    fb->super.destroy = fb_destroy;
    return &fb->super;
}
