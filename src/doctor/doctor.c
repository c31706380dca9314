/*
 * kiro2api doctor: reads the server's configuration (.env, --config, the environment), builds the account pool on
 * its own libuv loop (no HTTP server, no background jobs), checks every account in one coroutine (doctor_check.c) and
 * prints the table or the JSON (doctor_report.c). Exit status 0 only when every enabled account works.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "core/config.h"
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/xloop.h"
#include "doctor/doctor.h"
#include "doctor/doctor_check.h"
#include "pool/internal.h"
#include "trace/trace.h"
#include "upstream/upstream.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: kiro2api doctor [--no-generate] [--probe] [--json] [--trace DIR] [--keep-text] [--config FILE]\n\n"
                "Checks every account of KIRO_AUTH_TOKEN end to end without starting the server: token refresh (or API\n"
                "key), profileArn and region, model catalog, usage, and one minimal generate call (a one-word prompt;\n"
                "--no-generate skips it). Exit status 0 when every enabled account works, 1 otherwise, 2 on a\n"
                "configuration error. Secrets are never printed.\n"
                "--probe adds the matrix of hosts (KIRO_PROBE_BASES) x request shapes (REST JSON, awsJson, /mcp web search;\n"
                "the Builder ID placeholder for IdC tokens): one more small generate call per cell.\n"
                "--trace DIR writes a redacted trace of every generate call (KIRO_TRACE_DIR; tokens, keys, ARN account\n"
                "numbers and machine ids masked, prompt and answer texts replaced by their lengths unless --keep-text).\n");
}

typedef struct st_run_t {
    k2a_pool_t *pool;
    const k2a_doctor_opts_t *opts;
    k2a_doctor_account_t *acc;
    size_t n;
    bool done;
} run_t;

static void run_main(k2a_coro_t *co, void *arg)
{
    (void)co;
    run_t *r = arg;
    for (size_t i = 0; i < r->n; ++i)
        k2a_doctor_check_account(r->pool, i, r->opts, &r->acc[i]);
    r->done = true;
}

static void upstream_from(k2a_upstream_config_t *uc, const k2a_config_t *c)
{
    k2a_upstream_config_init(uc);
    uc->connect_timeout_ms = (uint32_t)c->connect_timeout_ms;
    uc->first_byte_timeout_ms = (uint32_t)c->first_byte_timeout_ms;
    uc->idle_timeout_ms = (uint32_t)c->idle_timeout_ms;
    uc->dns_timeout_ms = (uint32_t)c->dns_timeout_ms;
    uc->dns_servers = c->dns_servers[0] != '\0' ? c->dns_servers : NULL;
    uc->ca_file = c->ca_file[0] != '\0' ? c->ca_file : NULL;
    uc->tls_insecure = c->tls_insecure;
    const char *proxy = c->upstream_proxy[0] != '\0' ? c->upstream_proxy : c->https_proxy;
    uc->proxy = proxy[0] != '\0' ? proxy : NULL;
    uc->no_proxy = c->no_proxy[0] != '\0' ? c->no_proxy : NULL;
}

static int load_config(k2a_config_t *c, const char *file, char *err, size_t errlen)
{
    k2a_config_defaults(c);
    if (k2a_config_load_file(c, ".env", true, err, errlen) != 0)
        return K2A_ECONFIG;
    if (file != NULL && k2a_config_load_file(c, file, false, err, errlen) != 0)
        return K2A_ECONFIG;
    if (k2a_config_load_env(c, err, errlen) != 0 || k2a_config_validate(c, err, errlen) != 0)
        return K2A_ECONFIG;
    if (c->auth_token[0] == '\0') {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: no accounts configured");
        return K2A_ECONFIG;
    }
    /* the checks speak for themselves: the log says only what went wrong, on stderr */
    k2a_log_level_t level = K2A_LOG_WARN;
    if (c->debug)
        level = K2A_LOG_DEBUG;
    if (k2a_log_configure(level, K2A_LOG_TEXT, true, NULL) != 0) {
        snprintf(err, errlen, "cannot configure logging");
        return K2A_ECONFIG;
    }
    return 0;
}

static int run(const k2a_config_t *c, const k2a_doctor_opts_t *opts)
{
    char err[512] = "";
    uv_loop_t loop;
    uv_loop_init(&loop);
    k2a_coro_config_t cc = {.stack_size = (size_t)c->coro_stack_kb * 1024, .max_live = 64};
    if (k2a_coro_runtime_init(&loop, &cc) != 0) {
        fprintf(stderr, "kiro2api doctor: cannot start the coroutine runtime (out of memory)\n");
        uv_loop_close(&loop);
        return 2;
    }
    k2a_xloop_t *xloop = NULL;
    k2a_xloop_create(&loop, &xloop);
    k2a_upstream_config_t uc;
    upstream_from(&uc, c);
    k2a_upstream_t *up = NULL;
    k2a_pool_t *pool = NULL;
    int status = 2;
    if (k2a_upstream_create(&loop, &uc, &up) != 0) {
        fprintf(stderr, "kiro2api doctor: cannot create the upstream client (check KIRO_CA_FILE, the proxy settings)\n");
        goto Exit;
    }
    k2a_pool_config_t pc;
    if (k2a_pool_config_from(&pc, c, err, sizeof(err)) != 0) {
        fprintf(stderr, "kiro2api doctor: configuration error: %s\n", err);
        goto Exit;
    }
    pc.warmup = false; /* every call is the doctor's, in order */
    pc.usage_poll_interval_s = 0;
    pc.catalog_refresh_s = 0;
    if (k2a_pool_create(&loop, up, &pc, NULL, &pool, err, sizeof(err)) != 0) {
        fprintf(stderr, "kiro2api doctor: configuration error: %s\n", err);
        goto Exit;
    }
    run_t r = {.pool = pool, .opts = opts, .n = k2a_pool_naccounts(pool)};
    r.acc = calloc(r.n, sizeof(*r.acc));
    k2a_coro_t *co = r.acc != NULL ? k2a_coro_create(run_main, &r) : NULL;
    if (co == NULL) {
        fprintf(stderr, "kiro2api doctor: out of memory\n");
        free(r.acc);
        goto Exit;
    }
    if (!opts->json && !opts->no_generate)
        printf("Note: the generate check sends one one-word request per account and uses a little of its quota "
               "(--no-generate skips it).\n");
    if (!opts->json && opts->probe)
        printf("Note: --probe sends a few more one-word requests per account (each host and request shape).\n");
    fflush(stdout);
    k2a_coro_resume(co, 0);
    while (!r.done && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
    bool all_ok = r.done;
    for (size_t i = 0; i < r.n && r.done; ++i)
        if (!r.acc[i].disabled && !r.acc[i].ok)
            all_ok = false;
    if (opts->json)
        k2a_doctor_print_json(r.acc, r.n, all_ok);
    else
        k2a_doctor_print_table(r.acc, r.n);
    free(r.acc);
    status = all_ok ? 0 : 1;
    while (k2a_trace_pending() > 0 && uv_run(&loop, UV_RUN_ONCE) != 0) { /* the traces reach the disk */
    }
    if (k2a_trace_enabled()) {
        uint64_t written, skipped;
        k2a_trace_counts(&written, &skipped);
        fprintf(stderr, "kiro2api doctor: %llu trace(s) written to %s%s\n", (unsigned long long)written,
                opts->trace_dir != NULL ? opts->trace_dir : c->trace_dir,
                skipped > 0 ? " (some skipped: KIRO_TRACE_MAX_FILES reached)" : "");
    }
Exit:
    if (pool != NULL) {
        k2a_pool_shutdown(pool);
        while (!k2a_pool_closed(pool) && uv_run(&loop, UV_RUN_ONCE) != 0) {
        }
        k2a_pool_destroy(pool);
    }
    if (up != NULL)
        k2a_upstream_destroy(up);
    k2a_xloop_close(xloop);
    for (int i = 0; i < 8; ++i)
        uv_run(&loop, UV_RUN_NOWAIT);
    k2a_xloop_free(xloop);
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    return status;
}

int k2a_doctor_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"no-generate", no_argument, NULL, 'n'},  {"json", no_argument, NULL, 'j'},
                                             {"config", required_argument, NULL, 'c'}, {"trace", required_argument, NULL, 't'},
                                             {"probe", no_argument, NULL, 'p'},        {"keep-text", no_argument, NULL, 'k'},
                                             {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    k2a_doctor_opts_t opts = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            opts.no_generate = true;
            break;
        case 'j':
            opts.json = true;
            break;
        case 'c':
            opts.config_file = optarg;
            break;
        case 't':
            opts.trace_dir = optarg;
            break;
        case 'k':
            opts.keep_text = true;
            break;
        case 'p':
            opts.probe = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    static k2a_config_t config;
    char err[512] = "";
    if (load_config(&config, opts.config_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "kiro2api doctor: configuration error: %s\n", err);
        k2a_config_dispose(&config);
        return 2;
    }
    if (k2a_trace_setup_from(&config, opts.trace_dir, opts.keep_text, err, sizeof(err)) != 0) {
        fprintf(stderr, "kiro2api doctor: configuration error: %s\n", err);
        k2a_config_dispose(&config);
        return 2;
    }
    opts.probe_bases = config.probe_bases;
    signal(SIGPIPE, SIG_IGN);
    int status = run(&config, &opts);
    k2a_config_dispose(&config);
    k2a_log_close();
    return status;
}
