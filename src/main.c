/*
 * kiro2api: argv, configuration, logging, signals, and the loop. Everything else lives in src/<module>/.
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "core/config.h"
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "http/server.h"
#include "http/gateway.h"

/* Static so that what the loop still references at exit stays reachable (LeakSanitizer). */
static uv_loop_t loop;
static k2a_server_t server;
static k2a_config_t config;

static void usage(FILE *fp)
{
    fprintf(fp, "usage: kiro2api [--config FILE] [PORT]\n"
                "       kiro2api --help | --version\n\n"
                "A gateway that serves the Anthropic Messages API and the OpenAI Chat Completions API\n"
                "with Kiro (AWS CodeWhisperer) accounts behind it.\n\n"
                "Configuration comes from, lowest priority first: defaults, ./.env, --config FILE,\n"
                "the environment. Variables:\n");
    k2a_config_print_help(fp);
}

static bool is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

static int configure_logging(const k2a_config_t *c, char *err, size_t errlen)
{
    k2a_log_level_t level;
    if (k2a_log_parse_level(c->log_level, &level) != 0) {
        snprintf(err, errlen, "LOG_LEVEL: expected debug, info, warn or error, got '%s'", c->log_level);
        return K2A_ECONFIG;
    }
    if (c->debug)
        level = K2A_LOG_DEBUG;
    k2a_log_format_t format = strcmp(c->log_format, "json") == 0 ? K2A_LOG_JSON : K2A_LOG_TEXT;
    if (k2a_log_configure(level, format, c->log_console, c->log_file[0] != '\0' ? c->log_file : NULL) != 0) {
        snprintf(err, errlen, "LOG_FILE: cannot open '%s' for appending", c->log_file);
        return K2A_ECONFIG;
    }
    return 0;
}

static int fail_config(const char *msg)
{
    fprintf(stderr, "kiro2api: configuration error: %s\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *config_file = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("kiro2api %s (h2o %s, libuv %s)\n", K2A_VERSION, H2O_VERSION, uv_version_string());
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    char err[512] = "";
    k2a_config_defaults(&config);
    if (k2a_config_load_file(&config, ".env", true, err, sizeof(err)) != 0)
        return fail_config(err);
    if (config_file != NULL && k2a_config_load_file(&config, config_file, false, err, sizeof(err)) != 0)
        return fail_config(err);
    if (optind < argc) {
        /* kiro2api accepts the port as its first argument; PORT in the environment still wins */
        if (optind + 1 < argc || k2a_config_set(&config, "PORT", argv[optind], err, sizeof(err)) != 0)
            return fail_config(err[0] != '\0' ? err : "too many arguments");
    }
    if (k2a_config_load_env(&config, err, sizeof(err)) != 0 || k2a_config_validate(&config, err, sizeof(err)) != 0 ||
        configure_logging(&config, err, sizeof(err)) != 0)
        return fail_config(err);
    if (config.client_token[0] == '\0') {
        if (!is_loopback(config.host))
            return fail_config("KIRO_CLIENT_TOKEN: required when listening beyond loopback (set it, or KIRO_HOST=127.0.0.1)");
        k2a_warn("KIRO_CLIENT_TOKEN is not set: any client on this machine may use the gateway (listening on loopback only)");
    }

    signal(SIGPIPE, SIG_IGN);
    /* A request's arena and buffers (a few hundred KB for a Claude Code request) would otherwise be handed back to the
     * kernel after every request and faulted in again on the next: measured +30 % conversion time (bench/RESULTS.md). */
    mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    uv_loop_init(&loop);
    k2a_coro_config_t coro_cfg = {.stack_size = (size_t)config.coro_stack_kb * 1024,
                                  .max_live = (size_t)config.max_concurrent + 64};
    k2a_coro_runtime_init(&loop, &coro_cfg);

    int status = 1;
    if (k2a_server_init(&server, &loop, &config, err, sizeof(err)) != 0) {
        status = fail_config(err);
        goto Exit;
    }
    if (k2a_gateway_init(&server, err, sizeof(err)) != 0) {
        status = fail_config(err);
        k2a_gateway_destroy(&server);
        goto Exit;
    }
    if (k2a_server_listen(&server, err, sizeof(err)) != 0) {
        k2a_error("%s", err);
        goto Exit;
    }
    k2a_server_install_signals(&server);
    /* one machine-readable line per listener on stdout (tests and scripts read the port from it), then the log */
    printf("kiro2api listening on http://%s:%d\n", config.host, server.port);
    if (server.tls_port != 0)
        printf("kiro2api listening on https://%s:%d\n", config.host, server.tls_port);
    fflush(stdout);
    k2a_info("kiro2api %s listening on http://%s:%d%s", K2A_VERSION, config.host, server.port,
             server.tls_port != 0 ? " (and TLS)" : "");
    uv_run(&loop, UV_RUN_DEFAULT);
    status = server.exit_status;
    k2a_gateway_destroy(&server);
    /* let the close callbacks of what the modules released run */
    for (int i = 0; i < 8; ++i)
        uv_run(&loop, UV_RUN_NOWAIT);
    k2a_info("kiro2api stopped");

Exit:
    k2a_server_dispose(&server);
    k2a_coro_stats_t cs;
    k2a_coro_get_stats(&cs);
    if (cs.live == 0) {
        k2a_coro_runtime_dispose();
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    k2a_config_dispose(&config);
    k2a_log_close();
    return status;
}
