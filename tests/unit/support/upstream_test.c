/*
 * Helpers for the upstream client's tests (see upstream_test.h): python servers driven over pipes, a test
 * CA made with the openssl CLI, a coroutine runner, and a fetch that records what the tests assert on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core/errors.h"
#include "upstream_test.h"

#ifndef K2A_SOURCE_DIR
#define K2A_SOURCE_DIR "."
#endif

extern char **environ;

static int spawn(ut_proc_t *p, const char *file, const char *const *argv, bool search_path)
{
    int in[2], out[2];
    p->in_fd = -1;
    p->out = NULL;
    p->pid = 0;
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    int r = search_path ? posix_spawnp(&p->pid, file, &fa, NULL, (char *const *)argv, environ)
                        : posix_spawn(&p->pid, file, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (r != 0) {
        p->pid = 0;
        close(in[1]);
        close(out[0]);
        return -1;
    }
    p->in_fd = in[1];
    p->out = fdopen(out[0], "r");
    return p->out != NULL ? 0 : -1;
}

int ut_proc_start(ut_proc_t *p, const char *script, const char *const *args)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/unit/upstream_servers/%s", K2A_SOURCE_DIR, script);
    const char *argv[32];
    size_t n = 0;
    argv[n++] = "python3";
    argv[n++] = path;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 31; ++i)
        argv[n++] = args[i];
    argv[n] = NULL;
    p->term_first = false;
    char line[256];
    if (spawn(p, "python3", argv, true) != 0 || fgets(line, sizeof(line), p->out) == NULL ||
        sscanf(line, "PORT %d", &p->port) != 1) {
        ut_proc_stop(p);
        return -1;
    }
    return 0;
}

int ut_proc_start_argv(ut_proc_t *p, const char *const *argv, const char *prefix)
{
    char line[512];
    p->term_first = true;
    if (spawn(p, argv[0], argv, false) != 0 || fgets(line, sizeof(line), p->out) == NULL ||
        strncmp(line, prefix, strlen(prefix)) != 0 || strrchr(line, ':') == NULL) {
        ut_proc_stop(p);
        return -1;
    }
    p->port = atoi(strrchr(line, ':') + 1);
    return p->port > 0 ? 0 : -1;
}

const char *ut_sim_path(void)
{
    static char path[1024];
    const char *env = getenv("K2A_SIM");
    if (env != NULL && access(env, X_OK) == 0)
        return env;
    /* tests live in <build>/tests/, the simulator in <build>/ */
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    for (int up = 0; up < 2; ++up) {
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return NULL;
        *slash = '\0';
    }
    snprintf(path, sizeof(path), "%s/kiro-sim", exe);
    return access(path, X_OK) == 0 ? path : NULL;
}

long ut_proc_cmd(ut_proc_t *p, const char *cmd, const char *key)
{
    char line[4096];
    snprintf(line, sizeof(line), "%s\n", cmd);
    if (write(p->in_fd, line, strlen(line)) != (ssize_t)strlen(line))
        return -1;
    if (fgets(line, sizeof(line), p->out) == NULL)
        return -1;
    size_t kl = strlen(key);
    for (char *s = line; (s = strstr(s, key)) != NULL; s += kl) {
        if ((s == line || s[-1] == ' ') && s[kl] == '=')
            return strtol(s + kl + 1, NULL, 10);
    }
    return key[0] == 'q' && key[1] == '_' ? 0 : -1; /* per-name DNS counters appear with the first query */
}

long ut_proc_stat(ut_proc_t *p, const char *key)
{
    return ut_proc_cmd(p, "stats", key);
}

long ut_proc_wait(ut_proc_t *p, const char *key, long min)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "wait %s %ld", key, min);
    return ut_proc_cmd(p, cmd, key);
}

void ut_proc_stop(ut_proc_t *p)
{
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->in_fd = -1;
    if (p->out != NULL)
        fclose(p->out);
    p->out = NULL;
    if (p->pid > 0 && p->term_first)
        kill(p->pid, SIGTERM);
    if (p->pid > 0) {
        /* the python servers exit on stdin EOF, kiro-sim on SIGTERM; make sure they do */
        for (int i = 0; i < 250; ++i) {
            if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
                p->pid = 0;
                return;
            }
            usleep(20 * 1000);
        }
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

static int run_sh(const char *dir, const char *cmd)
{
    char full[2048];
    snprintf(full, sizeof(full), "cd '%s' && %s >/dev/null 2>&1", dir, cmd);
    return system(full) == 0 ? 0 : -1;
}

int ut_make_certs(char *dir, size_t dirsz)
{
    snprintf(dir, dirsz, "/tmp/k2a-upstream-certs-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    FILE *f;
    char path[1024];
    snprintf(path, sizeof(path), "%s/ext.cnf", dir);
    if ((f = fopen(path, "w")) == NULL)
        return -1;
    fputs("subjectAltName=IP:127.0.0.1,DNS:upstream.test\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
          "extendedKeyUsage=serverAuth\n",
          f);
    fclose(f);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj '/CN=k2a test CA'", ec);
    if (run_sh(dir, cmd) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "openssl req %s -keyout server.key -out server.csr -subj '/CN=upstream.test'", ec);
    if (run_sh(dir, cmd) != 0)
        return -1;
    if (run_sh(dir, "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
                    "-extfile ext.cnf") != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "openssl req -x509 %s -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=other CA'", ec);
    return run_sh(dir, cmd);
}

void ut_remove_dir(const char *dir)
{
    char cmd[1100];
    if (strncmp(dir, "/tmp/k2a-upstream-certs-", 24) != 0)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

typedef struct st_run_t {
    k2a_coro_fn fn;
    void *arg;
    int done;
} run_t;

static void run_main(k2a_coro_t *co, void *arg)
{
    run_t *r = arg;
    r->fn(co, r->arg);
    r->done = 1;
}

void ut_run(uv_loop_t *loop, k2a_coro_fn fn, void *arg)
{
    run_t r = {fn, arg, 0};
    if (k2a_coro_spawn(run_main, &r) != 0)
        abort();
    while (!r.done)
        uv_run(loop, UV_RUN_ONCE);
}

uint64_t ut_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ut_fetch(k2a_upstream_t *up, const char *method, const char *url, const uv_buf_t *body, size_t nbody,
              const k2a_http_request_t *tmpl, ut_result_t *res)
{
    memset(res, 0, sizeof(*res));
    k2a_buf_init(&res->body, 1024 * 1024);
    uint64_t start = ut_now_ms();
    k2a_url_t u;
    if ((res->rc = k2a_url_parse(url, strlen(url), &u)) != 0)
        return;
    k2a_http_request_t req;
    if (tmpl != NULL)
        req = *tmpl;
    else
        memset(&req, 0, sizeof(req));
    req.url = &u;
    req.method = method;
    req.body = body;
    req.nbody = nbody;
    k2a_http_response_t *resp;
    res->rc = k2a_upstream_request(up, &req, &resp);
    if (res->rc == 0) {
        res->status = resp->status;
        res->reused = resp->reused;
        res->retried = resp->retried;
        res->tls_resumed = resp->tls_resumed;
        res->content_length = resp->content_length;
        for (;;) {
            const char *d;
            intptr_t n = k2a_upstream_read(resp, &d);
            if (n <= 0) {
                res->body_rc = (int)n;
                break;
            }
            ++res->pieces;
            if (k2a_buf_append(&res->body, d, (size_t)n) != 0) {
                res->body_rc = K2A_ETOOBIG;
                break;
            }
        }
        k2a_upstream_release(resp);
    }
    res->elapsed_ms = ut_now_ms() - start;
}

void ut_result_dispose(ut_result_t *res)
{
    k2a_buf_dispose(&res->body);
}

int ut_full_backlog_listener(int *port, int fillers[2])
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 0) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        return -1;
    *port = ntohs(sin.sin_port);
    /* backlog 0 holds one established connection; once it is queued, the kernel drops further SYNs */
    for (int i = 0; i < 2; ++i) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (i == 1 ? SOCK_NONBLOCK : 0), 0);
        int r = connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
        if (r != 0 && !(i == 1 && errno == EINPROGRESS))
            return -1;
    }
    return fd;
}

int ut_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        return -1;
    close(fd);
    return ntohs(sin.sin_port);
}
