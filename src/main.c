/*
 * kiro2api: argv, configuration, logging; then the gateway (http/gateway.c) runs the worker loops.
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>
#include "h2o.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "doctor/doctor.h"
#include "http/gateway.h"
#include "trace/trace.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: kiro2api [--config FILE] [PORT]\n"
                "       kiro2api doctor [--no-generate] [--probe] [--json] [--trace DIR] [--keep-text] [--config FILE]\n"
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

static int fail_config(k2a_config_t *c, const char *msg)
{
    fprintf(stderr, "kiro2api: configuration error: %s\n", msg);
    k2a_config_dispose(c);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    if (argc > 1 && strcmp(argv[1], "doctor") == 0)
        return k2a_doctor_main(argc - 1, argv + 1); /* checks the accounts; no server */
    static k2a_config_t config;
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
        return fail_config(&config, err);
    if (config_file != NULL && k2a_config_load_file(&config, config_file, false, err, sizeof(err)) != 0)
        return fail_config(&config, err);
    if (optind < argc) {
        /* kiro2api accepts the port as its first argument; PORT in the environment still wins */
        if (optind + 1 < argc || k2a_config_set(&config, "PORT", argv[optind], err, sizeof(err)) != 0)
            return fail_config(&config, err[0] != '\0' ? err : "too many arguments");
    }
    if (k2a_config_load_env(&config, err, sizeof(err)) != 0 || k2a_config_validate(&config, err, sizeof(err)) != 0 ||
        configure_logging(&config, err, sizeof(err)) != 0 || k2a_trace_setup_from(&config, NULL, false, err, sizeof(err)) != 0)
        return fail_config(&config, err);
    if (config.client_token[0] == '\0') {
        /* with KIRO_ADMIN_TOKEN alone every client needs a managed key (created through /api/admin/keys) */
        if (!is_loopback(config.host) && config.admin_token[0] == '\0')
            return fail_config(&config, "KIRO_CLIENT_TOKEN: required when listening beyond loopback (set it, or "
                                        "KIRO_ADMIN_TOKEN to serve managed keys only, or KIRO_HOST=127.0.0.1)");
        /* warned once the gateway is up (k2a_gateway_run): a configuration error stays the one line it promises */
    }

    signal(SIGPIPE, SIG_IGN);
    /* every client and upstream connection is a descriptor: a soft limit of 1024 would turn a thousand idle (or slowloris)
     * connections into refused accepts, so take what the hard limit allows */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            k2a_debug("open-file limit raised from %llu to %llu", (unsigned long long)was, (unsigned long long)rl.rlim_max);
    }
    /* A request's arena and buffers (a few hundred KB for a Claude Code request) would otherwise be handed back to the
     * kernel after every request and faulted in again on the next: measured +30 % conversion time (bench/RESULTS.md). */
    mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);

    int status = k2a_gateway_run(&config);
    k2a_config_dispose(&config);
    k2a_log_close();
    return status;
}
