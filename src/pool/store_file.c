/*
 * Snapshot JSON encoding and the file store (see store.h). The encode runs on the loop (a few hundred
 * bytes per account); the blocking part, write + fsync + rename + fsync(dir), runs on libuv's thread pool
 * (uv_queue_work), so a slow disk never stalls a request. A crash at any point leaves either the old or
 * the new file, never a torn one, because the rename is the commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/store.h"

#define MAX_STATE_FILE (64 * 1024 * 1024)

void k2a_pool_snapshot_dispose(k2a_pool_snapshot_t *s)
{
    for (size_t i = 0; i < s->n; ++i) {
        free(s->accounts[i].refresh_token);
        free(s->accounts[i].access_token);
        free(s->accounts[i].profile_arn);
        free(s->accounts[i].reason);
        free(s->accounts[i].catalog);
    }
    free(s->accounts);
    s->accounts = NULL;
    s->n = 0;
}

const k2a_account_snapshot_t *k2a_pool_snapshot_find(const k2a_pool_snapshot_t *s, const char *key)
{
    for (size_t i = 0; i < s->n; ++i)
        if (strcmp(s->accounts[i].key, key) == 0)
            return &s->accounts[i];
    return NULL;
}

static void put_str(k2a_buf_t *out, const char *key, const char *v)
{
    if (v == NULL)
        return;
    k2a_buf_appendf(out, ",\"%s\":\"", key);
    k2a_buf_append_json_escaped(out, v, strlen(v));
    k2a_buf_appendstr(out, "\"");
}

int k2a_pool_snapshot_encode(const k2a_pool_snapshot_t *s, k2a_buf_t *out)
{
    k2a_buf_appendf(out, "{\"version\":1,\"saved_at\":%lld,\"accounts\":[", (long long)s->saved_at_ms);
    for (size_t i = 0; i < s->n; ++i) {
        const k2a_account_snapshot_t *a = &s->accounts[i];
        k2a_buf_appendf(out, "%s\n{\"key\":\"%s\"", i ? "," : "", a->key);
        put_str(out, "refresh_token", a->refresh_token);
        put_str(out, "access_token", a->access_token);
        put_str(out, "profile_arn", a->profile_arn);
        k2a_buf_appendf(out, ",\"expires_at\":%lld,\"expires_in\":%lld,\"refreshed_at\":%lld", (long long)a->expires_at_ms,
                        (long long)a->expires_in_s, (long long)a->refreshed_at_ms);
        put_str(out, "state", a->state);
        k2a_buf_appendf(out, ",\"until\":%lld", (long long)a->until_ms);
        put_str(out, "reason", a->reason);
        k2a_buf_appendf(out,
                        ",\"usage_known\":%s,\"credits_remaining\":%.17g,\"credits_limit\":%.17g,\"credits_consumed\":%.17g,"
                        "\"next_reset\":%lld,\"requests\":%llu,\"errors\":%llu,\"in_tokens\":%lld,\"out_tokens\":%lld,"
                        "\"last_used\":%lld",
                        a->usage_known ? "true" : "false", a->credits_remaining, a->credits_limit, a->credits_consumed,
                        (long long)a->next_reset_ms, (unsigned long long)a->requests, (unsigned long long)a->errors,
                        (long long)a->in_tokens, (long long)a->out_tokens, (long long)a->last_used_ms);
        if (a->rt_version != 0)
            k2a_buf_appendf(out, ",\"rt_version\":%llu", (unsigned long long)a->rt_version);
        put_str(out, "catalog", a->catalog);
        k2a_buf_appendstr(out, "}");
    }
    return k2a_buf_appendstr(out, "\n]}\n");
}

static const char *str_of(yajl_val v)
{
    const char *s = v != NULL && YAJL_IS_STRING(v) ? v->u.string : NULL;
    return s != NULL ? s : "";
}

static yajl_val get(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static int64_t get_i64(yajl_val obj, const char *key)
{
    yajl_val v = get(obj, key);
    if (v == NULL || !YAJL_IS_NUMBER(v))
        return 0;
    return YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : (int64_t)YAJL_GET_DOUBLE(v);
}

static double get_dbl(yajl_val obj, const char *key)
{
    yajl_val v = get(obj, key);
    if (v == NULL || !YAJL_IS_NUMBER(v))
        return 0;
    return YAJL_IS_DOUBLE(v) ? YAJL_GET_DOUBLE(v) : (double)YAJL_GET_INTEGER(v);
}

static char *get_strdup(yajl_val obj, const char *key)
{
    yajl_val v = get(obj, key);
    return v != NULL && YAJL_IS_STRING(v) ? strdup(str_of(v)) : NULL;
}

int k2a_pool_snapshot_decode(const char *json, size_t len, k2a_pool_snapshot_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return K2A_ENOMEM;
    memcpy(copy, json, len);
    copy[len] = '\0';
    char ybuf[128] = "";
    yajl_val root = yajl_tree_parse(copy, ybuf, sizeof(ybuf));
    free(copy);
    int ret = K2A_ECONFIG;
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        char *nl = strchr(ybuf, '\n');
        if (nl != NULL)
            *nl = '\0';
        snprintf(err, errlen, "not a JSON object%s%s", ybuf[0] ? ": " : "", ybuf);
        goto Exit;
    }
    if (get_i64(root, "version") != 1) {
        snprintf(err, errlen, "unknown version (expected 1)");
        goto Exit;
    }
    yajl_val list = get(root, "accounts");
    if (list == NULL || !YAJL_IS_ARRAY(list)) {
        snprintf(err, errlen, "\"accounts\" is not an array");
        goto Exit;
    }
    out->saved_at_ms = get_i64(root, "saved_at");
    if (list->u.array.len > 0 && (out->accounts = calloc(list->u.array.len, sizeof(*out->accounts))) == NULL) {
        ret = K2A_ENOMEM;
        goto Exit;
    }
    for (size_t i = 0; i < list->u.array.len; ++i) {
        yajl_val a = list->u.array.values[i];
        if (!YAJL_IS_OBJECT(a))
            continue;
        yajl_val key = get(a, "key"), rt = get(a, "refresh_token");
        if (key == NULL || !YAJL_IS_STRING(key) || strlen(str_of(key)) != 64 || rt == NULL || !YAJL_IS_STRING(rt) ||
            str_of(rt)[0] == '\0')
            continue;
        k2a_account_snapshot_t *s = &out->accounts[out->n++];
        memcpy(s->key, str_of(key), 65);
        s->refresh_token = strdup(str_of(rt));
        s->access_token = get_strdup(a, "access_token");
        s->profile_arn = get_strdup(a, "profile_arn");
        s->reason = get_strdup(a, "reason");
        s->expires_at_ms = get_i64(a, "expires_at");
        s->expires_in_s = get_i64(a, "expires_in");
        s->refreshed_at_ms = get_i64(a, "refreshed_at");
        yajl_val st = get(a, "state");
        snprintf(s->state, sizeof(s->state), "%s", st != NULL && YAJL_IS_STRING(st) ? str_of(st) : "ok");
        s->until_ms = get_i64(a, "until");
        yajl_val uk = get(a, "usage_known");
        s->usage_known = uk != NULL && YAJL_IS_TRUE(uk);
        s->credits_remaining = get_dbl(a, "credits_remaining");
        s->credits_limit = get_dbl(a, "credits_limit");
        s->credits_consumed = get_dbl(a, "credits_consumed");
        s->next_reset_ms = get_i64(a, "next_reset");
        s->requests = (uint64_t)get_i64(a, "requests");
        s->errors = (uint64_t)get_i64(a, "errors");
        s->in_tokens = get_i64(a, "in_tokens");
        s->out_tokens = get_i64(a, "out_tokens");
        s->last_used_ms = get_i64(a, "last_used");
        int64_t rv = get_i64(a, "rt_version");
        s->rt_version = rv > 0 ? (uint64_t)rv : 0;
        s->catalog = get_strdup(a, "catalog");
        if (s->refresh_token == NULL) {
            ret = K2A_ENOMEM;
            goto Exit;
        }
    }
    ret = 0;
Exit:
    yajl_tree_free(root);
    if (ret != 0)
        k2a_pool_snapshot_dispose(out);
    return ret;
}

/* ---- atomic file write ---- */

static int mkdir_parents(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; ++p) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int k2a_pool_write_file_atomic(const char *path, const char *data, size_t len)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 64];
    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
        errno = ENAMETOOLONG;
        return K2A_EIO;
    }
    char *d = dirname(dir);
    struct stat st;
    if (stat(d, &st) != 0 && mkdir_parents(d) != 0)
        return K2A_EIO;
    static unsigned seq;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%u", path, (int)getpid(), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return K2A_EIO;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto Fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0)
        goto Fail;
    if (close(fd) != 0) {
        fd = -1;
        goto Fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto Fail;
    int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* makes the rename durable; some file systems refuse it, which is not an error */
        close(dfd);
    }
    return 0;
Fail : {
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
    return K2A_EIO;
}
}

/* ---- the file store ---- */

typedef struct st_file_store_t {
    k2a_pool_store_t super;
    uv_loop_t *loop;
    char *path;
} file_store_t;

typedef struct st_save_job_t {
    uv_work_t work;
    file_store_t *fs;
    k2a_buf_t json;
    int result, saved_errno;
    k2a_pool_store_saved_cb cb;
    void *data;
} save_job_t;

static int fs_load(k2a_pool_store_t *st, k2a_pool_snapshot_t *out, char *err, size_t errlen)
{
    file_store_t *fs = (file_store_t *)st;
    memset(out, 0, sizeof(*out));
    int fd = open(fs->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return K2A_ENOTFOUND;
        snprintf(err, errlen, "KIRO_STATE_FILE: cannot open %s: %s", fs->path, strerror(errno));
        return K2A_EIO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > MAX_STATE_FILE) {
        close(fd);
        snprintf(err, errlen, "KIRO_STATE_FILE: %s is not a regular file of at most 64 MiB", fs->path);
        return K2A_EIO;
    }
    if ((sb.st_mode & 077) != 0)
        k2a_warn("KIRO_STATE_FILE: %s is readable by others (mode %03o); it holds refresh tokens", fs->path,
                 (unsigned)(sb.st_mode & 0777));
    char *buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return K2A_ENOMEM;
    }
    size_t off = 0;
    while (off < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)sb.st_size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    char why[200];
    int r = k2a_pool_snapshot_decode(buf, off, out, why, sizeof(why));
    free(buf);
    if (r == K2A_ECONFIG) {
        /* Keep the bytes for manual recovery (they may hold the only copy of a rotated token); start without them. */
        char aside[PATH_MAX + 64];
        snprintf(aside, sizeof(aside), "%s.corrupt-%lld", fs->path, (long long)time(NULL));
        bool moved = rename(fs->path, aside) == 0;
        snprintf(err, errlen, "KIRO_STATE_FILE: %s is corrupt (%s); %s%s", fs->path, why,
                 moved ? "moved aside to " : "left in place", moved ? aside : "");
    }
    return r;
}

static void on_save_work(uv_work_t *w)
{
    save_job_t *job = w->data;
    job->result = k2a_pool_write_file_atomic(job->fs->path, job->json.base != NULL ? job->json.base : "", job->json.len);
    job->saved_errno = errno;
}

static void on_save_done(uv_work_t *w, int status)
{
    save_job_t *job = w->data;
    int result = status == 0 ? job->result : K2A_ECANCELED;
    if (result != 0)
        k2a_warn("KIRO_STATE_FILE: cannot write %s: %s", job->fs->path, strerror(job->saved_errno));
    k2a_buf_dispose(&job->json);
    k2a_pool_store_saved_cb cb = job->cb;
    void *data = job->data;
    free(job);
    cb(data, result);
}

static int fs_save(k2a_pool_store_t *st, k2a_buf_t *json, k2a_pool_store_saved_cb on_saved, void *data)
{
    file_store_t *fs = (file_store_t *)st;
    save_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        k2a_buf_dispose(json);
        return K2A_ENOMEM;
    }
    job->fs = fs;
    job->json = *json;
    *json = (k2a_buf_t)K2A_BUF_INIT(0);
    job->cb = on_saved;
    job->data = data;
    job->work.data = job;
    if (uv_queue_work(fs->loop, &job->work, on_save_work, on_save_done) != 0) {
        k2a_buf_dispose(&job->json);
        free(job);
        return K2A_EIO;
    }
    return 0;
}

static int fs_save_sync(k2a_pool_store_t *st, const k2a_buf_t *json)
{
    file_store_t *fs = (file_store_t *)st;
    int r = k2a_pool_write_file_atomic(fs->path, json->base != NULL ? json->base : "", json->len);
    if (r != 0)
        k2a_warn("KIRO_STATE_FILE: cannot write %s: %s", fs->path, strerror(errno));
    return r;
}

static void fs_destroy(k2a_pool_store_t *st)
{
    file_store_t *fs = (file_store_t *)st;
    free(fs->path);
    free(fs);
}

k2a_pool_store_t *k2a_pool_file_store_create(uv_loop_t *loop, const char *path)
{
    file_store_t *fs = calloc(1, sizeof(*fs));
    if (fs == NULL || (fs->path = strdup(path)) == NULL) {
        free(fs);
        return NULL;
    }
    fs->loop = loop;
    fs->super.name = "file";
    fs->super.load = fs_load;
    fs->super.save = fs_save;
    fs->super.save_sync = fs_save_sync;
    fs->super.destroy = fs_destroy;
    return &fs->super;
}
