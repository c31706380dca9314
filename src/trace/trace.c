/*
 * Traces of upstream exchanges (trace.h): the process-wide settings, the record of one exchange (the request redacted
 * when it is sent, a bounded copy of the response bytes), the sampling decision and the write on libuv's thread pool
 * (open O_EXCL mode 0600, write, close), so the loop of the request never waits for the disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "trace/trace.h"

#define MAX_PENDING 64 /* writes queued at once; more are skipped and counted */
#define HEAD_MAX (64 * 1024)

static struct {
    bool on;
    char dir[4096];
    unsigned sample;
    size_t max_bytes;
    unsigned max_files;
    bool keep_text;
    atomic_uint_fast64_t files; /* in the directory, counting the reserved ones */
    atomic_uint_fast64_t written, skipped, seq, sampled, pending;
} g;

struct st_k2a_trace_rec_t {
    char account[160];
    k2a_buf_t request;  /* the JSON of the request part (method, url, headers) */
    k2a_buf_t req_body; /* redacted */
    int status;         /* 0 = no response */
    k2a_buf_t response; /* the JSON of the response headers */
    k2a_buf_t body;     /* raw response bytes, bounded by max_bytes */
    bool cut;
};

int k2a_trace_setup(const k2a_trace_config_t *cfg, char *err, size_t errlen)
{
    g.on = false;
    if (cfg->dir == NULL || cfg->dir[0] == '\0')
        return 0;
    if (strlen(cfg->dir) >= sizeof(g.dir) - 64) {
        snprintf(err, errlen, "KIRO_TRACE_DIR: path too long");
        return K2A_ECONFIG;
    }
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "KIRO_TRACE_DIR: cannot create '%s': %s", cfg->dir, strerror(errno));
        return K2A_ECONFIG;
    }
    struct stat st;
    if (stat(cfg->dir, &st) != 0 || !S_ISDIR(st.st_mode) || chmod(cfg->dir, 0700) != 0) {
        snprintf(err, errlen, "KIRO_TRACE_DIR: '%s' is not a directory this user owns", cfg->dir);
        return K2A_ECONFIG;
    }
    uint64_t n = 0;
    DIR *d = opendir(cfg->dir);
    if (d == NULL) {
        snprintf(err, errlen, "KIRO_TRACE_DIR: cannot read '%s': %s", cfg->dir, strerror(errno));
        return K2A_ECONFIG;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, "trace-", 6) == 0)
            ++n;
    closedir(d);
    snprintf(g.dir, sizeof(g.dir), "%s", cfg->dir);
    g.sample = cfg->sample;
    g.max_bytes = cfg->max_bytes;
    g.max_files = cfg->max_files;
    g.keep_text = cfg->keep_text;
    atomic_store(&g.files, n);
    g.on = true;
    return 0;
}

int k2a_trace_setup_from(const k2a_config_t *c, const char *dir, bool keep_text, char *err, size_t errlen)
{
    k2a_trace_config_t tc = {.dir = dir != NULL ? dir : c->trace_dir,
                             .sample = (unsigned)c->trace_sample,
                             .max_bytes = (size_t)c->trace_max_bytes,
                             .max_files = (unsigned)c->trace_max_files,
                             .keep_text = keep_text || c->trace_keep_text};
    return k2a_trace_setup(&tc, err, errlen);
}

uint64_t k2a_trace_pending(void)
{
    return atomic_load(&g.pending);
}

bool k2a_trace_enabled(void)
{
    return g.on;
}

void k2a_trace_counts(uint64_t *written, uint64_t *skipped)
{
    *written = atomic_load(&g.written);
    *skipped = atomic_load(&g.skipped);
}

static void gen_str(yajl_gen gen, const char *s, size_t len)
{
    yajl_gen_string(gen, (const unsigned char *)s, len);
}

static void gen_cstr(yajl_gen gen, const char *s)
{
    gen_str(gen, s, strlen(s));
}

/* [[name, masked value], ...] */
static void gen_headers(yajl_gen gen, const k2a_http_header_t *h, size_t n)
{
    k2a_buf_t v = K2A_BUF_INIT(0);
    yajl_gen_array_open(gen);
    for (size_t i = 0; i < n; ++i) {
        k2a_buf_reset(&v);
        k2a_trace_mask_header(&v, h[i].name.base, h[i].name.len, h[i].value.base, h[i].value.len);
        yajl_gen_array_open(gen);
        gen_str(gen, h[i].name.base, h[i].name.len);
        gen_str(gen, v.base != NULL ? v.base : "", v.len);
        yajl_gen_array_close(gen);
    }
    yajl_gen_array_close(gen);
    k2a_buf_dispose(&v);
}

static int take_gen(yajl_gen gen, k2a_buf_t *out)
{
    const unsigned char *buf;
    size_t len;
    int r = yajl_gen_get_buf(gen, &buf, &len) == yajl_gen_status_ok ? k2a_buf_append(out, buf, len) : K2A_ENOMEM;
    yajl_gen_free(gen);
    return r;
}

void k2a_trace_discard(k2a_trace_rec_t **prec)
{
    k2a_trace_rec_t *rec = *prec;
    if (rec == NULL)
        return;
    *prec = NULL;
    k2a_buf_dispose(&rec->request);
    k2a_buf_dispose(&rec->req_body);
    k2a_buf_dispose(&rec->response);
    k2a_buf_dispose(&rec->body);
    free(rec);
}

k2a_trace_rec_t *k2a_trace_begin(const char *account, const char *method, const k2a_url_t *url, const k2a_http_header_t *headers,
                                 size_t nheaders, const uv_buf_t *body, size_t nbody)
{
    if (!g.on)
        return NULL;
    k2a_trace_rec_t *rec = calloc(1, sizeof(*rec));
    if (rec == NULL)
        return NULL;
    snprintf(rec->account, sizeof(rec->account), "%s", account != NULL ? account : "");
    k2a_buf_init(&rec->request, HEAD_MAX);
    k2a_buf_init(&rec->req_body, 0);
    k2a_buf_init(&rec->response, HEAD_MAX);
    k2a_buf_init(&rec->body, 0);
    yajl_gen gen = yajl_gen_alloc(NULL);
    if (gen == NULL) {
        k2a_trace_discard(&rec);
        return NULL;
    }
    yajl_gen_map_open(gen);
    gen_cstr(gen, "method");
    gen_cstr(gen, method);
    gen_cstr(gen, "url");
    k2a_buf_t u = K2A_BUF_INIT(0), masked = K2A_BUF_INIT(0);
    k2a_buf_append(&u, url->scheme.base, url->scheme.len);
    k2a_buf_appendstr(&u, "://");
    k2a_buf_append(&u, url->host.base, url->host.len);
    char port[16];
    snprintf(port, sizeof(port), ":%u", url->port);
    k2a_buf_appendstr(&u, port);
    k2a_buf_append(&u, url->path.base, url->path.len);
    k2a_trace_mask_text(&masked, u.base != NULL ? u.base : "", u.len);
    gen_str(gen, masked.base != NULL ? masked.base : "", masked.len);
    k2a_buf_dispose(&u);
    k2a_buf_dispose(&masked);
    gen_cstr(gen, "headers");
    gen_headers(gen, headers, nheaders);
    yajl_gen_map_close(gen);
    int r = take_gen(gen, &rec->request);
    k2a_buf_t raw = K2A_BUF_INIT(0);
    for (size_t i = 0; i < nbody && r == 0; ++i)
        r = k2a_buf_append(&raw, body[i].base, body[i].len);
    if (r == 0)
        r = k2a_trace_redact_json(&rec->req_body, raw.base != NULL ? raw.base : "", raw.len, g.keep_text);
    k2a_buf_dispose(&raw);
    if (r != 0)
        k2a_trace_discard(&rec);
    return rec;
}

void k2a_trace_response_head(k2a_trace_rec_t *rec, const k2a_http_response_t *resp)
{
    if (rec == NULL)
        return;
    rec->status = resp->status;
    yajl_gen gen = yajl_gen_alloc(NULL);
    if (gen == NULL)
        return;
    k2a_buf_reset(&rec->response);
    gen_headers(gen, resp->headers, resp->nheaders);
    take_gen(gen, &rec->response);
}

void k2a_trace_capture(k2a_trace_rec_t *rec, const void *data, size_t len)
{
    if (rec == NULL || rec->cut)
        return;
    size_t room = g.max_bytes > rec->body.len ? g.max_bytes - rec->body.len : 0;
    if (len > room) {
        len = room;
        rec->cut = true;
    }
    if (len > 0 && k2a_buf_append(&rec->body, data, len) != 0)
        rec->cut = true;
}

/* ---- the write ---- */

typedef struct st_write_job_t {
    uv_work_t work;
    char path[4200];
    k2a_buf_t data;
    int err;
} write_job_t;

static void do_write(uv_work_t *w)
{
    write_job_t *j = w->data;
    int fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        j->err = errno;
        return;
    }
    size_t off = 0;
    while (off < j->data.len) {
        ssize_t n = write(fd, j->data.base + off, j->data.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            j->err = errno != 0 ? errno : EIO;
            break;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 && j->err == 0)
        j->err = errno;
}

static void after_write(uv_work_t *w, int status)
{
    write_job_t *j = w->data;
    atomic_fetch_sub(&g.pending, 1);
    if (status != 0 || j->err != 0) {
        atomic_fetch_add(&g.skipped, 1);
        k2a_warn("trace: cannot write %s: %s", j->path, strerror(j->err != 0 ? j->err : ECANCELED));
    } else {
        atomic_fetch_add(&g.written, 1);
    }
    k2a_buf_dispose(&j->data);
    free(j);
}

static bool is_eventstream(const k2a_trace_rec_t *rec)
{
    return rec->response.base != NULL && memmem(rec->response.base, rec->response.len, "vnd.amazon.eventstream", 22) != NULL;
}

/* The file: the first line, the JSON line, the request body, the response body. */
static int compose(k2a_trace_rec_t *rec, bool failed, int transport_err, const char *outcome, k2a_buf_t *out)
{
    k2a_buf_t resp = K2A_BUF_INIT(0);
    int r = 0;
    if (rec->req_body.len > g.max_bytes / 4) { /* the file stays within KIRO_TRACE_MAX_BYTES (plus its head) */
        char note[96];
        snprintf(note, sizeof(note), "<%zu bytes of redacted request body, over a quarter of KIRO_TRACE_MAX_BYTES>",
                 rec->req_body.len);
        k2a_buf_reset(&rec->req_body);
        k2a_buf_appendstr(&rec->req_body, note);
        rec->cut = true;
    }
    if (rec->body.len > 0) {
        if (is_eventstream(rec))
            r = k2a_trace_redact_eventstream(&resp, rec->body.base, rec->body.len, g.keep_text);
        else
            k2a_trace_mask_text(&resp, rec->body.base, rec->body.len); /* Kiro's error bodies: kept as they are */
        if (r != 0 && r != K2A_ENOMEM)
            r = 0; /* what decoded is kept; the rest was not a valid frame */
    }
    yajl_gen gen = yajl_gen_alloc(NULL);
    if (r != 0 || gen == NULL) {
        if (gen != NULL)
            yajl_gen_free(gen);
        k2a_buf_dispose(&resp);
        return K2A_ENOMEM;
    }
    char when[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    yajl_gen_map_open(gen);
    gen_cstr(gen, "time");
    gen_cstr(gen, when);
    gen_cstr(gen, "account");
    gen_cstr(gen, rec->account);
    gen_cstr(gen, "outcome");
    gen_cstr(gen, outcome != NULL ? outcome : "");
    gen_cstr(gen, "failed");
    yajl_gen_bool(gen, failed);
    gen_cstr(gen, "transport_error");
    if (transport_err != 0)
        gen_cstr(gen, k2a_errname(transport_err));
    else
        yajl_gen_null(gen);
    gen_cstr(gen, "request");
    yajl_gen_number(gen, rec->request.base, rec->request.len); /* already JSON */
    gen_cstr(gen, "response");
    if (rec->status != 0) {
        yajl_gen_map_open(gen);
        gen_cstr(gen, "status");
        yajl_gen_integer(gen, rec->status);
        gen_cstr(gen, "headers");
        yajl_gen_number(gen, rec->response.base != NULL ? rec->response.base : "[]",
                        rec->response.base != NULL ? rec->response.len : 2);
        yajl_gen_map_close(gen);
    } else {
        yajl_gen_null(gen);
    }
    gen_cstr(gen, "request_body_bytes");
    yajl_gen_integer(gen, (long long)rec->req_body.len);
    gen_cstr(gen, "response_body_bytes");
    yajl_gen_integer(gen, (long long)resp.len);
    gen_cstr(gen, "truncated");
    yajl_gen_bool(gen, rec->cut);
    gen_cstr(gen, "text_kept");
    yajl_gen_bool(gen, g.keep_text);
    yajl_gen_map_close(gen);
    k2a_buf_appendstr(out, "kiro2api-trace 1\n");
    r = take_gen(gen, out);
    k2a_buf_appendstr(out, "\n");
    k2a_buf_append(out, rec->req_body.base != NULL ? rec->req_body.base : "", rec->req_body.len);
    k2a_buf_appendstr(out, "\n");
    if (r == 0)
        r = k2a_buf_append(out, resp.base != NULL ? resp.base : "", resp.len);
    k2a_buf_dispose(&resp);
    return r;
}

void k2a_trace_end(k2a_trace_rec_t **prec, uv_loop_t *loop, bool failed, int transport_err, const char *outcome)
{
    k2a_trace_rec_t *rec = *prec;
    if (rec == NULL)
        return;
    if (!failed && (g.sample == 0 || atomic_fetch_add(&g.sampled, 1) % g.sample != 0)) {
        k2a_trace_discard(prec);
        return;
    }
    if (atomic_fetch_add(&g.files, 1) >= g.max_files) {
        atomic_fetch_sub(&g.files, 1);
        if (atomic_fetch_add(&g.skipped, 1) == 0)
            k2a_warn("trace: %s holds KIRO_TRACE_MAX_FILES=%u traces: further traces are skipped (and counted)", g.dir,
                     g.max_files);
        k2a_trace_discard(prec);
        return;
    }
    if (atomic_fetch_add(&g.pending, 1) >= MAX_PENDING) {
        atomic_fetch_sub(&g.pending, 1);
        atomic_fetch_sub(&g.files, 1);
        atomic_fetch_add(&g.skipped, 1);
        k2a_trace_discard(prec);
        return;
    }
    write_job_t *j = calloc(1, sizeof(*j));
    if (j != NULL) {
        k2a_buf_init(&j->data, 0);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(j->path, sizeof(j->path), "%s/trace-%lld%03ld-%d-%llu-%d.k2at", g.dir, (long long)ts.tv_sec, ts.tv_nsec / 1000000,
                 (int)getpid(), (unsigned long long)atomic_fetch_add(&g.seq, 1), rec->status);
        j->work.data = j;
    }
    if (j == NULL || compose(rec, failed, transport_err, outcome, &j->data) != 0 ||
        uv_queue_work(loop, &j->work, do_write, after_write) != 0) {
        if (j != NULL) {
            k2a_buf_dispose(&j->data);
            free(j);
        }
        atomic_fetch_sub(&g.pending, 1);
        atomic_fetch_sub(&g.files, 1);
        atomic_fetch_add(&g.skipped, 1);
    }
    k2a_trace_discard(prec);
}
