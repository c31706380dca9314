/*
 * A small closed-loop HTTP/1.1 load generator that measures what wrk and h2load cannot: the time to the first
 * response byte of every request (h2load's "time to 1st byte" is per connection, and over h2 it is the server's
 * SETTINGS frame). Each of C keep-alive connections sends the same request, reads the whole response (Content-Length
 * or chunked), checks the status and that the body contains an expected string, and sends the next one at once.
 * One thread, epoll, no allocation per request. bench/harness.py drives it; the output is one JSON line.
 *
 *   bench_loadgen -p PORT [-a 127.0.0.1] [-m POST] [-u /path] [-b BODYFILE] [-H 'Name: value']... [-F HEADERFILE]
 *                 [-c CONNS] [-d SECONDS] [-w WARMUP_SECONDS] [-n MAX_REQUESTS] [-e EXPECT] [-s STATUS] [-z STAGGER_MS]
 *
 * -F reads more headers from a file, one "Name: value" per line. -z opens connection i only STAGGER_MS * i after the
 * start (the warm-up begins once all are open): long streams then start spread out instead of in bursts of CONNS, so
 * that the time to first byte is not the wait behind the other CONNS - 1 requests of the same burst.
 *
 * Latency and TTFB are in microseconds, from the request's first write to the first / last response byte; requests
 * that complete during the warm-up are counted apart and left out of the percentiles.
 *
 * Phases: -X 'PATH|BODYFILE|EXPECT' (repeatable) adds another kind of request (same method and headers) to the one of
 * -u/-b/-e, and -P PHASE_MS -C PID makes the connections send one kind at a time, in turn, PHASE_MS each: at the end
 * of a phase no new request starts, the ones in flight finish, and PID's CPU time (clock_getcpuclockid: every thread,
 * to the nanosecond; user and system split from /proc/PID/stat) is read; then the next kind starts on every
 * connection. The run ends with a whole cycle (one phase of each kind) once -d has passed. "phases" in the output lists
 * every phase of the whole cycles after the warm-up: [kind, requests ok, errors, PID's CPU µs, user µs, system µs,
 * wall µs]. Two kinds'
 * CPU per request compared phase by phase see the same machine a fraction of a second apart, which sequential runs of
 * a few seconds each on a shared host do not.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS_BYTES 16384
#define MAX_BODY_KEPT (4u << 20)
#define READ_SIZE 65536
#define MAX_KINDS 8

typedef enum {
    ST_CONNECTING,
    ST_WRITING,
    ST_HEAD,
    ST_BODY_LEN,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_TRAILER,
    ST_DONE
} st_t;

typedef struct st_conn_t {
    int fd;
    st_t st;
    size_t woff;       /* bytes of the request written */
    double t0, tfirst; /* request start, first response byte (0 = none yet) */
    char head[MAX_HEADERS_BYTES];
    size_t headlen;
    int status;
    bool close_after, chunked;
    size_t left;   /* body bytes (Content-Length) or chunk bytes still to read */
    char line[64]; /* chunk-size / trailer line being assembled */
    size_t linelen;
    char *body; /* kept body (for the expect check) */
    size_t bodylen, bodycap;
    int kind;  /* of the request in flight */
    bool busy; /* a request is in flight */
    bool idle; /* phases: waiting for the next phase */
} conn_t;

/* a kind of request: its bytes and the string its answer must contain */
typedef struct st_kind_t {
    char *req;
    size_t reqlen;
    const char *expect;
} kind_t;

/* one phase: [kind, ok, errors, cpu_us, user_us, sys_us, wall_us] */
typedef double phase_rec_t[7];

static struct {
    struct sockaddr_in addr;
    kind_t kinds[MAX_KINDS];
    int nkinds;
    int expect_status;
    double duration, warmup, stagger_ms;
    long max_requests;
    /* results */
    double *ttfb, *lat;
    size_t n, cap;
    long warm, started, errors, bad_status, bad_body, conn_errors;
    unsigned long long bytes;
    double t_begin, t_measure, t_end, t_last;
    bool stopping;
    int epfd;
    long live;
    /* phases (-P, -C) */
    double phase_ms;
    pid_t cpu_pid;
    clockid_t cpu_clock;
    int cur;        /* the kind of this phase */
    bool draining;  /* the phase is over: no new request until the ones in flight finish */
    bool recording; /* phases are kept (from a cycle's first after the warm-up) */
    long inflight;  /* requests in flight */
    long phase_ok, phase_errors;
    double phase_start, phase_end, cpu_at, user_at, sys_at;
    phase_rec_t *phases;
    size_t nphases, phases_cap;
} g;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *msg)
{
    fprintf(stderr, "bench_loadgen: %s\n", msg);
    exit(2);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open a file given with -b or -F");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n)
        die("cannot read a file given with -b or -F");
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void conn_open(conn_t *c);

static void conn_close(conn_t *c, bool error)
{
    if (error)
        ++g.conn_errors;
    if (c->busy) {
        c->busy = false;
        --g.inflight;
        if (error)
            ++g.phase_errors;
    }
    epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    --g.live;
    if (!g.stopping && (g.max_requests == 0 || g.started < g.max_requests))
        conn_open(c);
}

static void start_request(conn_t *c)
{
    if (g.stopping || (g.max_requests > 0 && g.started >= g.max_requests)) {
        conn_close(c, false);
        return;
    }
    if (g.phase_ms > 0 && g.draining) {
        /* the phase is over: this connection waits for the next one */
        c->idle = true;
        struct epoll_event ev = {.events = 0, .data.ptr = c};
        epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    ++g.started;
    c->kind = g.cur;
    c->busy = true;
    ++g.inflight;
    c->st = ST_WRITING;
    c->woff = 0;
    c->t0 = now_us();
    c->tfirst = 0;
    c->headlen = 0;
    c->status = 0;
    c->close_after = c->chunked = false;
    c->bodylen = 0;
    c->linelen = 0;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        die("socket() failed (raise ulimit -n)");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ++g.live;
    c->st = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(g.epfd, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) != 0 && errno != EINPROGRESS) {
        ++g.conn_errors;
        epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        --g.live;
    }
}

static void record(conn_t *c)
{
    double t = now_us();
    bool ok = true;
    const char *expect = g.kinds[c->kind].expect;
    if (c->status != g.expect_status) {
        ++g.bad_status;
        ok = false;
    } else if (expect != NULL && (c->bodylen < strlen(expect) || memmem(c->body, c->bodylen, expect, strlen(expect)) == NULL)) {
        ++g.bad_body;
        ok = false;
    }
    if (!ok)
        ++g.errors;
    c->busy = false;
    --g.inflight;
    if (ok)
        ++g.phase_ok;
    else
        ++g.phase_errors;
    if (c->t0 < g.t_measure) {
        ++g.warm;
    } else if (ok && (t <= g.t_end || g.max_requests > 0)) {
        g.t_last = t;
        if (g.n == g.cap) {
            g.cap = g.cap ? g.cap * 2 : 65536;
            g.ttfb = realloc(g.ttfb, g.cap * sizeof(double));
            g.lat = realloc(g.lat, g.cap * sizeof(double));
            if (g.ttfb == NULL || g.lat == NULL)
                die("out of memory");
        }
        g.ttfb[g.n] = c->tfirst - c->t0;
        g.lat[g.n] = t - c->t0;
        ++g.n;
    }
}

static void keep_body(conn_t *c, const char *p, size_t n)
{
    if (c->bodylen + n > c->bodycap) {
        size_t cap = c->bodycap ? c->bodycap : 8192;
        while (cap < c->bodylen + n && cap < MAX_BODY_KEPT)
            cap *= 2;
        if (cap < c->bodylen + n)
            return; /* beyond what we keep: the expect check sees the beginning only */
        c->body = realloc(c->body, cap);
        if (c->body == NULL)
            die("out of memory");
        c->bodycap = cap;
    }
    memcpy(c->body + c->bodylen, p, n);
    c->bodylen += n;
}

/* Parses the response head in c->head (headlen bytes, ending with CRLFCRLF). Returns false when malformed. */
static bool parse_head(conn_t *c)
{
    c->head[c->headlen] = '\0';
    if (strncmp(c->head, "HTTP/1.", 7) != 0 || c->headlen < 12)
        return false;
    c->status = atoi(c->head + 9);
    c->left = 0;
    bool have_len = false;
    for (char *l = strstr(c->head, "\r\n"); l != NULL && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        char *h = l + 2;
        if (strncasecmp(h, "content-length:", 15) == 0) {
            c->left = strtoull(h + 15, NULL, 10);
            have_len = true;
        } else if (strncasecmp(h, "transfer-encoding:", 18) == 0) {
            c->chunked = strstr(h, "chunked") != NULL && strstr(h, "chunked") < strstr(h, "\r\n");
        } else if (strncasecmp(h, "connection:", 11) == 0) {
            char *e = strstr(h, "\r\n");
            char *cl = strcasestr(h, "close");
            c->close_after = cl != NULL && cl < e;
        }
    }
    if (!c->chunked && !have_len)
        c->close_after = true; /* body runs to the end of the connection: not used by our servers */
    return true;
}

/* Consumes response bytes up to the end of the response (state ST_DONE). Returns the number consumed, or -1 on a
 * protocol error. */
static long consume(conn_t *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        switch (c->st) {
        case ST_HEAD: {
            size_t old = c->headlen, take = n - i;
            if (take > MAX_HEADERS_BYTES - 1 - old)
                take = MAX_HEADERS_BYTES - 1 - old;
            memcpy(c->head + old, p + i, take);
            c->headlen = old + take;
            c->head[c->headlen] = '\0';
            char *end = strstr(c->head + (old >= 3 ? old - 3 : 0), "\r\n\r\n");
            if (end == NULL) {
                if (c->headlen == MAX_HEADERS_BYTES - 1)
                    return -1;
                i += take;
                break;
            }
            c->headlen = (size_t)(end + 4 - c->head);
            i += c->headlen - old;
            if (!parse_head(c))
                return -1;
            c->st = c->chunked ? ST_CHUNK_SIZE : ST_BODY_LEN;
            if (c->st == ST_BODY_LEN && c->left == 0) {
                c->st = ST_DONE;
                return (long)i;
            }
            break;
        }
        case ST_BODY_LEN: {
            size_t take = n - i < c->left ? n - i : c->left;
            keep_body(c, p + i, take);
            i += take;
            c->left -= take;
            if (c->left == 0) {
                c->st = ST_DONE;
                return (long)i;
            }
            break;
        }
        case ST_CHUNK_SIZE:
        case ST_CHUNK_CRLF:
        case ST_TRAILER: {
            char ch = p[i++];
            if (c->linelen >= sizeof(c->line) - 1)
                return -1;
            c->line[c->linelen++] = ch;
            if (ch != '\n')
                break;
            c->line[c->linelen] = '\0';
            size_t len = c->linelen;
            c->linelen = 0;
            if (c->st == ST_CHUNK_CRLF) {
                if (len != 2)
                    return -1;
                c->st = ST_CHUNK_SIZE;
            } else if (c->st == ST_CHUNK_SIZE) {
                char *end;
                c->left = strtoull(c->line, &end, 16);
                if (end == c->line)
                    return -1;
                c->st = c->left == 0 ? ST_TRAILER : ST_CHUNK_DATA;
            } else if (len == 2) { /* the empty line after the last chunk */
                c->st = ST_DONE;
                return (long)i;
            }
            break;
        }
        case ST_CHUNK_DATA: {
            size_t take = n - i < c->left ? n - i : c->left;
            keep_body(c, p + i, take);
            i += take;
            c->left -= take;
            if (c->left == 0)
                c->st = ST_CHUNK_CRLF;
            break;
        }
        default:
            return -1;
        }
    }
    return (long)i;
}

static void on_writable(conn_t *c)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_close(c, true);
            return;
        }
        start_request(c);
        return;
    }
    if (c->st != ST_WRITING)
        return;
    const kind_t *k = &g.kinds[c->kind];
    while (c->woff < k->reqlen) {
        ssize_t w = write(c->fd, k->req + c->woff, k->reqlen - c->woff);
        if (w < 0) {
            if (errno == EAGAIN)
                return;
            conn_close(c, true);
            return;
        }
        c->woff += (size_t)w;
    }
    c->st = ST_HEAD;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_readable(conn_t *c)
{
    static char buf[READ_SIZE];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0 || c->st == ST_CONNECTING || c->st == ST_WRITING) {
            /* closed (or an answer before the request was sent): an error unless no request was outstanding */
            bool mid = n != 0 || c->st != ST_WRITING || c->woff != 0;
            if (mid)
                ++g.errors;
            conn_close(c, mid);
            return;
        }
        if (c->tfirst == 0)
            c->tfirst = now_us();
        g.bytes += (unsigned long long)n;
        long k = consume(c, buf, (size_t)n);
        if (k < 0 || (c->st == ST_DONE && k != n)) {
            /* malformed, or bytes beyond the response (we never pipeline) */
            ++g.errors;
            conn_close(c, true);
            return;
        }
        if (c->st == ST_DONE) {
            record(c);
            if (c->close_after) {
                conn_close(c, false);
            } else {
                start_request(c);
                if (c->fd >= 0 && c->st == ST_WRITING)
                    on_writable(c); /* the next request: write at once */
            }
            return;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_dist(const char *name, double *v, size_t n)
{
    if (n == 0) {
        printf("\"%s\":null", name);
        return;
    }
    qsort(v, n, sizeof(double), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; ++i)
        sum += v[i];
    printf("\"%s\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"min\":%.1f,\"mean\":%.1f}", name, v[n / 2],
           v[(size_t)(n * 0.9)], v[(size_t)(n * 0.99)], v[n - 1], v[0], sum / n);
}

/* The bytes of a request of method to path with the headers and the body in bodyfile (NULL: none) */
static void build_request(kind_t *k, const char *method, const char *path, const char *host, int port, const char *const *headers,
                          int nheaders, const char *bodyfile)
{
    size_t bodylen = 0;
    char *body = bodyfile != NULL ? read_file(bodyfile, &bodylen) : NULL;
    size_t cap = 4096 + strlen(path) + bodylen;
    for (int i = 0; i < nheaders; ++i)
        cap += strlen(headers[i]) + 2;
    if ((k->req = malloc(cap)) == NULL)
        die("out of memory");
    int n = snprintf(k->req, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, path, host, port);
    for (int i = 0; i < nheaders; ++i)
        n += snprintf(k->req + n, cap - n, "%s\r\n", headers[i]);
    if (body != NULL)
        n += snprintf(k->req + n, cap - n, "Content-Length: %zu\r\n", bodylen);
    n += snprintf(k->req + n, cap - n, "\r\n");
    if (body != NULL)
        memcpy(k->req + n, body, bodylen);
    k->reqlen = (size_t)n + bodylen;
    free(body);
}

/* PID's CPU time in µs: all of it (to the nanosecond), and user and system (clock ticks) */
static void read_cpu(double *cpu, double *user, double *sys)
{
    struct timespec ts;
    if (clock_gettime(g.cpu_clock, &ts) != 0)
        die("cannot read the CPU time of -C PID (has it exited?)");
    *cpu = ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)g.cpu_pid);
    FILE *f = fopen(path, "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    /* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        die("cannot read /proc/PID/stat of -C PID");
    double tick = 1e6 / (double)sysconf(_SC_CLK_TCK);
    *user = ut * tick;
    *sys = st * tick;
}

/* The end of a phase, once its requests finished: its numbers kept (after the warm-up), and the next kind started on
 * every waiting connection; after the last kind of a cycle, the run ends if -d has passed. */
static void next_phase(conn_t *cs, int conns, double now)
{
    double cpu, user, sys;
    read_cpu(&cpu, &user, &sys);
    /* kept from the first phase of the first kind after the warm-up: whole cycles */
    g.recording = g.recording || (g.cur == 0 && g.phase_start >= g.t_measure);
    if (g.recording) {
        if (g.nphases == g.phases_cap) {
            g.phases_cap = g.phases_cap ? 2 * g.phases_cap : 1024;
            if ((g.phases = realloc(g.phases, g.phases_cap * sizeof(*g.phases))) == NULL)
                die("out of memory");
        }
        double *r = g.phases[g.nphases++];
        r[0] = g.cur, r[1] = g.phase_ok, r[2] = g.phase_errors, r[3] = cpu - g.cpu_at, r[4] = user - g.user_at;
        r[5] = sys - g.sys_at, r[6] = now - g.phase_start;
    }
    g.cpu_at = cpu, g.user_at = user, g.sys_at = sys;
    g.phase_ok = g.phase_errors = 0;
    g.cur = (g.cur + 1) % g.nkinds;
    if (g.cur == 0 && now >= g.t_end) {
        g.stopping = true;
        return;
    }
    g.draining = false;
    g.phase_start = now;
    g.phase_end = now + g.phase_ms * 1e3;
    for (int i = 0; i < conns; ++i) {
        conn_t *c = &cs[i];
        if (c->fd >= 0 && c->idle) {
            c->idle = false;
            start_request(c);
            if (c->fd >= 0 && c->st == ST_WRITING)
                on_writable(c);
        }
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *method = "POST", *path = "/", *bodyfile = NULL;
    const char *headers[64], *alt[MAX_KINDS - 1];
    char *owned[16 + MAX_KINDS]; /* -F files and -X specs, freed at the end */
    int nheaders = 0, nalt = 0, nowned = 0, port = 0, conns = 1, opt;
    g.duration = 5;
    g.warmup = 0.5;
    g.expect_status = 200;
    while ((opt = getopt(argc, argv, "a:p:m:u:b:H:F:c:d:w:n:e:s:z:X:P:C:")) != -1) {
        switch (opt) {
        case 'a':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'm':
            method = optarg;
            break;
        case 'u':
            path = optarg;
            break;
        case 'b':
            bodyfile = optarg;
            break;
        case 'H':
            if (nheaders == 64)
                die("too many -H");
            headers[nheaders++] = optarg;
            break;
        case 'F': {
            size_t flen;
            if (nowned == 16)
                die("too many -F");
            char *text = read_file(optarg, &flen), *save = NULL;
            owned[nowned++] = text;
            text[flen] = '\0';
            for (char *line = strtok_r(text, "\r\n", &save); line != NULL; line = strtok_r(NULL, "\r\n", &save)) {
                if (nheaders == 64)
                    die("too many headers");
                headers[nheaders++] = line;
            }
            break;
        }
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            g.duration = atof(optarg);
            break;
        case 'w':
            g.warmup = atof(optarg);
            break;
        case 'n':
            g.max_requests = atol(optarg);
            break;
        case 'e':
            g.kinds[0].expect = optarg;
            break;
        case 's':
            g.expect_status = atoi(optarg);
            break;
        case 'z':
            g.stagger_ms = atof(optarg);
            break;
        case 'X':
            if (nalt == MAX_KINDS - 1)
                die("too many -X");
            alt[nalt++] = optarg;
            break;
        case 'P':
            g.phase_ms = atof(optarg);
            break;
        case 'C':
            g.cpu_pid = (pid_t)atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: see the comment at the top of bench/loadgen_bench.c\n");
            return 2;
        }
    }
    if (port <= 0 || conns <= 0)
        die("need -p PORT and -c CONNS > 0");
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &g.addr.sin_addr) != 1)
        die("-a must be an IPv4 literal");

    build_request(&g.kinds[0], method, path, host, port, headers, nheaders, bodyfile);
    g.nkinds = 1;
    for (int i = 0; i < nalt; ++i) {
        /* PATH|BODYFILE|EXPECT */
        char *spec = strdup(alt[i]), *bar1 = strchr(spec, '|'), *bar2 = bar1 != NULL ? strchr(bar1 + 1, '|') : NULL;
        owned[nowned++] = spec;
        if (bar2 == NULL)
            die("-X takes 'PATH|BODYFILE|EXPECT'");
        *bar1 = *bar2 = '\0';
        build_request(&g.kinds[g.nkinds], method, spec, host, port, headers, nheaders, bar1[1] != '\0' ? bar1 + 1 : NULL);
        g.kinds[g.nkinds++].expect = bar2[1] != '\0' ? bar2 + 1 : NULL;
    }
    if ((g.phase_ms > 0) != (g.cpu_pid > 0) || (nalt > 0 && g.phase_ms <= 0) || (g.max_requests > 0 && g.phase_ms > 0))
        die("-P and -C go together (and not with -n); -X needs them");
    if (g.phase_ms > 0 && clock_getcpuclockid(g.cpu_pid, &g.cpu_clock) != 0)
        die("no CPU clock for -C PID");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    g.epfd = epoll_create1(0);
    conn_t *cs = calloc((size_t)conns, sizeof(conn_t));
    if (cs == NULL)
        die("out of memory");
    g.t_begin = now_us();
    g.t_measure = g.t_begin + (g.warmup + g.stagger_ms / 1e3 * conns) * 1e6;
    g.t_end = g.t_measure + g.duration * 1e6;
    int opened = 0;
    if (g.phase_ms > 0) {
        read_cpu(&g.cpu_at, &g.user_at, &g.sys_at);
        g.phase_start = g.t_begin;
        g.phase_end = g.t_measure > g.t_begin ? g.t_measure : g.t_begin + g.phase_ms * 1e3;
    }

    struct epoll_event evs[256];
    for (;;) {
        double now = now_us();
        int wait_ms = 50;
        if (g.phase_ms > 0 && !g.stopping) {
            /* the phase ends on time; the next starts once its requests finished (10 s at most: stuck, an error) */
            if (!g.draining && now >= g.phase_end)
                g.draining = true;
            if (g.draining && g.inflight == 0)
                next_phase(cs, opened, now);
            else if (g.draining && now >= g.phase_end + 10e6)
                die("requests of a phase did not finish within 10 s");
            if (!g.draining && g.phase_end - now < wait_ms * 1e3)
                wait_ms = (int)((g.phase_end - now) / 1e3) + 1;
            if (g.stopping)
                break;
        }
        while (opened < conns && !g.stopping) {
            double at = g.t_begin + g.stagger_ms * 1e3 * opened;
            if (now < at) {
                wait_ms = (int)((at - now) / 1e3) + 1;
                break;
            }
            conn_open(&cs[opened++]);
        }
        if (!g.stopping && g.phase_ms <= 0 && (now >= g.t_end || (g.max_requests > 0 && g.started >= g.max_requests)))
            g.stopping = true;
        /* -d: requests in flight at the end are abandoned; -n: wait for them (at most 10 s past the duration) */
        if (g.stopping && (g.max_requests == 0 || g.live == 0 || now >= g.t_end + 10e6))
            break;
        int k = epoll_wait(g.epfd, evs, 256, wait_ms < 50 ? wait_ms : 50);
        for (int i = 0; i < k; ++i) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                on_writable(c);
        }
    }
    double measured = (g.max_requests > 0 ? g.t_last : (g.t_end < now_us() ? g.t_end : now_us())) - g.t_measure;
    printf("{\"connections\":%d,\"duration_s\":%.3f,\"requests\":%zu,\"warmup_requests\":%ld,\"errors\":%ld,"
           "\"bad_status\":%ld,\"bad_body\":%ld,\"conn_errors\":%ld,\"bytes\":%llu,\"rps\":%.1f,",
           conns, measured / 1e6, g.n, g.warm, g.errors, g.bad_status, g.bad_body, g.conn_errors, g.bytes,
           measured > 0 ? g.n / (measured / 1e6) : 0.0);
    print_dist("ttfb_us", g.ttfb, g.n);
    printf(",");
    print_dist("latency_us", g.lat, g.n);
    if (g.phase_ms > 0) {
        printf(",\"kinds\":%d,\"phase_ms\":%.1f,\"phases\":[", g.nkinds, g.phase_ms);
        for (size_t i = 0; i < g.nphases; ++i) {
            const double *r = g.phases[i];
            printf("%s[%d,%.0f,%.0f,%.1f,%.0f,%.0f,%.0f]", i ? "," : "", (int)r[0], r[1], r[2], r[3], r[4], r[5], r[6]);
        }
        printf("]");
    }
    printf("}\n");
    /* everything let go (the sanitizer builds run this too) */
    for (int i = 0; i < conns; ++i) {
        if (cs[i].fd >= 0 && i < opened)
            close(cs[i].fd);
        free(cs[i].body);
    }
    free(cs);
    for (int i = 0; i < g.nkinds; ++i)
        free(g.kinds[i].req);
    for (int i = 0; i < nowned; ++i)
        free(owned[i]);
    free(g.phases);
    free(g.ttfb);
    free(g.lat);
    close(g.epfd);
    return 0;
}
