/*
 * Upstream client benchmark: requests/s and latency percentiles of small POSTs (a Social refresh,
 * POST /refreshToken, ~40-byte body, ~300-byte JSON answer) against kiro-sim over TLS, sequential and
 * with 64 coroutines at once, with keep-alive and with a new connection (TCP + TLS handshake, session
 * resumed) for every request; plain HTTP keep-alive rows for reference. kiro-sim runs as its own process
 * (one core), the client on this one. Usage: bench_upstream [requests=1000] [concurrency=64]
 */
#include <spawn.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "upstream/upstream.h"

extern char **environ;

static uv_loop_t loop;
static k2a_upstream_t *up;
static k2a_url_t url;
static size_t total, started, finished;
static double *lat;
static int failures;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void worker(k2a_coro_t *co, void *arg)
{
    static const char body[] = "{\"refreshToken\":\"sim-ok-bench\"}";
    static const k2a_http_header_t hdrs[] = {{K2A_STRLIT("Content-Type"), K2A_STRLIT("application/json")}};
    uv_buf_t b = uv_buf_init((char *)body, sizeof(body) - 1);
    k2a_http_request_t req = {.url = &url, .method = "POST", .headers = hdrs, .nheaders = 1, .body = &b, .nbody = 1};
    while (started < total) {
        size_t i = started++;
        double t0 = now_ms();
        k2a_http_response_t *resp;
        int r = k2a_upstream_request(up, &req, &resp);
        if (r == 0) {
            const char *d;
            intptr_t n;
            while ((n = k2a_upstream_read(resp, &d)) > 0)
                ;
            if (n < 0 || resp->status != 200)
                r = n < 0 ? (int)n : K2A_EHTTP_STATUS;
            k2a_upstream_release(resp);
        }
        if (r != 0 && failures++ < 3)
            fprintf(stderr, "request failed: %s\n", k2a_strerror(r));
        lat[i] = now_ms() - t0;
        ++finished;
    }
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *name, const char *u, const char *ca, bool keepalive, size_t n, size_t conc)
{
    k2a_upstream_config_t cfg;
    k2a_upstream_config_init(&cfg);
    cfg.dns_servers = "127.0.0.1:9"; /* IP literals only */
    cfg.ca_file = ca;
    cfg.max_idle_per_origin = keepalive ? 128 : 0;
    if (k2a_upstream_create(&loop, &cfg, &up) != 0 || k2a_url_parse(u, strlen(u), &url) != 0)
        exit(1);
    lat = calloc(n + 64, sizeof(*lat));
    /* warm-up: connections, TLS session, allocator */
    total = 64;
    started = finished = 0;
    for (size_t i = 0; i < (conc < 64 ? conc : 64); ++i)
        k2a_coro_spawn(worker, NULL);
    while (finished < total)
        uv_run(&loop, UV_RUN_ONCE);
    k2a_upstream_stats_t before, after;
    k2a_upstream_get_stats(up, &before);
    total = n;
    started = finished = 0;
    failures = 0;
    double t0 = now_ms(), c0 = cpu_ms();
    for (size_t i = 0; i < conc; ++i)
        k2a_coro_spawn(worker, NULL);
    while (finished < total)
        uv_run(&loop, UV_RUN_ONCE);
    double elapsed = now_ms() - t0, cpu = cpu_ms() - c0;
    k2a_upstream_get_stats(up, &after);
    if (getenv("BENCH_DEBUG"))
        for (size_t i = 0; i < n; ++i)
            if (lat[i] > 1.0)
                fprintf(stderr, "%s #%zu %.3f ms\n", name, i, lat[i]);
    qsort(lat, n, sizeof(*lat), cmp);
    printf("| %s | %zu | %zu | %.0f | %.3f | %.3f | %.3f | %.1f | %llu | %llu | %d |\n", name, n, conc, n / (elapsed / 1e3),
           lat[n / 2], lat[(size_t)(n * 0.99)], lat[n - 1], cpu * 1e3 / n,
           (unsigned long long)(after.conns_opened - before.conns_opened),
           (unsigned long long)(after.tls_resumptions - before.tls_resumptions), failures);
    fflush(stdout);
    free(lat);
    k2a_upstream_destroy(up);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- kiro-sim and certificates ---- */

static pid_t start_sim(const char *bin, const char *cert, const char *key, int *port)
{
    int out[2];
    if (pipe(out) != 0)
        exit(1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    const char *tls[] = {bin, "--port", "0", "--tls-cert", cert, "--tls-key", key, NULL};
    const char *plain[] = {bin, "--port", "0", NULL};
    pid_t pid;
    if (posix_spawn(&pid, bin, &fa, NULL, (char *const *)(cert != NULL ? tls : plain), environ) != 0)
        exit(1);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[256];
    if (f == NULL || fgets(line, sizeof(line), f) == NULL || strrchr(line, ':') == NULL) {
        fprintf(stderr, "kiro-sim did not start\n");
        exit(1);
    }
    *port = atoi(strrchr(line, ':') + 1);
    fclose(f);
    return pid;
}

static const char *find_sim(void)
{
    static char path[1024];
    const char *env = getenv("K2A_SIM");
    if (env != NULL)
        return env;
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 16);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    for (int i = 0; i < 2; ++i)
        *strrchr(path, '/') = '\0';
    strcat(path, "/kiro-sim"); /* build/bench/bench_upstream -> build/kiro-sim */
    return access(path, X_OK) == 0 ? path : NULL;
}

static int make_certs(char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 1 "
             "-subj /CN=bench-ca && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key "
             "-out server.csr -subj /CN=127.0.0.1 && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 1 -extfile ext.cnf",
             dir);
    char quiet[2100];
    snprintf(quiet, sizeof(quiet), "(%s) >/dev/null 2>&1", cmd);
    return system(quiet);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000, conc = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
    const char *sim = find_sim();
    if (sim == NULL) {
        fprintf(stderr, "kiro-sim not found (build it, or set K2A_SIM)\n");
        return 1;
    }
    char dir[] = "/tmp/k2a-upstream-bench-XXXXXX";
    if (mkdtemp(dir) == NULL || make_certs(dir) != 0) {
        fprintf(stderr, "could not make certificates with the openssl CLI\n");
        return 1;
    }
    char ca[512], cert[512], key[512], tls_url[128], plain_url[128];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/server.pem", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    int tls_port, plain_port;
    pid_t tls_pid = start_sim(sim, cert, key, &tls_port), plain_pid = start_sim(sim, NULL, NULL, &plain_port);
    snprintf(tls_url, sizeof(tls_url), "https://127.0.0.1:%d/refreshToken", tls_port);
    snprintf(plain_url, sizeof(plain_url), "http://127.0.0.1:%d/refreshToken", plain_port);

    k2a_log_configure(K2A_LOG_WARN, K2A_LOG_TEXT, true, NULL);
    uv_loop_init(&loop);
    if (k2a_coro_runtime_init(&loop, NULL) != 0)
        abort();
    printf("| scenario | requests | concurrency | req/s | p50 ms | p99 ms | max ms | client CPU us/req | new connections | "
           "TLS resumptions | failures |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    run("TLS keep-alive, sequential", tls_url, ca, true, n, 1);
    run("TLS keep-alive, 64 at once", tls_url, ca, true, n, conc);
    run("TLS new connection each, sequential", tls_url, ca, false, n, 1);
    run("TLS new connection each, 64 at once", tls_url, ca, false, n, conc);
    run("plain HTTP keep-alive, sequential", plain_url, NULL, true, n, 1);
    run("plain HTTP keep-alive, 64 at once", plain_url, NULL, true, n, conc);

    uv_run(&loop, UV_RUN_DEFAULT);
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    kill(tls_pid, SIGTERM);
    kill(plain_pid, SIGTERM);
    waitpid(tls_pid, NULL, 0);
    waitpid(plain_pid, NULL, 0);
    char rm[256];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    return system(rm) == 0 ? 0 : 1;
}
