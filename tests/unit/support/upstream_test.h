/*
 * Helpers for the upstream client's tests: start the python loopback servers of
 * tests/unit/upstream_servers/ (posix_spawn, they print "PORT n" and take commands on stdin), generate a
 * throw-away test CA with the openssl CLI, run a coroutine on a loop until it finishes, and fetch a URL
 * recording everything a test asserts on afterwards (never assert inside the coroutine).
 */
#ifndef K2A_TESTS_UPSTREAM_TEST_H
#define K2A_TESTS_UPSTREAM_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>
#include "core/buf.h"
#include "core/coro.h"
#include "upstream/upstream.h"

typedef struct st_ut_proc_t {
    pid_t pid;
    int in_fd;
    FILE *out;
    int port;
    bool term_first; /* stop with SIGTERM instead of closing stdin (kiro-sim) */
} ut_proc_t;

/* Starts `python3 tests/unit/upstream_servers/<script> args...` (args NULL-terminated) and reads its port. Returns 0 or -1. */
int ut_proc_start(ut_proc_t *p, const char *script, const char *const *args);
/* Starts argv[0] (a path) and reads its first stdout line, which must start with `prefix` and end with ":PORT". */
int ut_proc_start_argv(ut_proc_t *p, const char *const *argv, const char *prefix);
/* The kiro-sim binary next to this test's build tree ($K2A_SIM, else <build>/kiro-sim), or NULL when absent. */
const char *ut_sim_path(void);
/* Sends a command line and returns the value of `key` in the stats line it prints (-1 when absent). */
long ut_proc_cmd(ut_proc_t *p, const char *cmd, const char *key);
long ut_proc_stat(ut_proc_t *p, const char *key);
/* Waits (at most 10 s, in the server) until key >= min; returns its value. */
long ut_proc_wait(ut_proc_t *p, const char *key, long min);
void ut_proc_stop(ut_proc_t *p);

/* Test certificates in a fresh temp dir: ca.pem, server.pem/server.key (SAN IP:127.0.0.1, DNS:upstream.test, signed by
 * ca.pem) and other-ca.pem (an unrelated CA). Returns 0 or -1. */
int ut_make_certs(char *dir, size_t dirsz);
void ut_remove_dir(const char *dir);

/* Spawns fn as a coroutine and runs the loop until it returns (other handles may stay active). */
void ut_run(uv_loop_t *loop, k2a_coro_fn fn, void *arg);
uint64_t ut_now_ms(void);

typedef struct st_ut_result_t {
    int rc; /* k2a_upstream_request */
    int status;
    int body_rc; /* 0 when the body was read to its end, else the k2a_upstream_read error */
    k2a_buf_t body;
    int pieces;
    uint64_t elapsed_ms; /* request start to the end of the body (or the error) */
    bool reused, retried, tls_resumed;
    int64_t content_length;
} ut_result_t;

/* In a coroutine: method url (body may be NULL), reading the whole body (at most 1 MiB) piece by piece. `tmpl` (may be NULL)
 * supplies timeouts and headers. */
void ut_fetch(k2a_upstream_t *up, const char *method, const char *url, const uv_buf_t *body, size_t nbody,
              const k2a_http_request_t *tmpl, ut_result_t *res);
void ut_result_dispose(ut_result_t *res);

/* A listening socket on 127.0.0.1 with a full accept queue: connects to it hang (SYNs are dropped). Returns its fd and
 * fills *port; the filler sockets go to fillers[0..1]. */
int ut_full_backlog_listener(int *port, int fillers[2]);
/* A loopback port with nothing listening (bound then closed). */
int ut_closed_port(void);

#endif
