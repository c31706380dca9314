/*
 * kiro2api doctor: the results as a table a person reads at a glance, or as JSON (yajl) for scripts. Both hold the
 * same facts; neither holds a secret (ARNs are masked by doctor_check.c).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include "doctor/doctor_check.h"

static void format_date(int64_t ms, char *out, size_t outsz)
{
    if (ms <= 0) {
        snprintf(out, outsz, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outsz, "%Y-%m-%d", &tm);
}

static void cell(const k2a_doctor_step_t *s, char *out, size_t outsz)
{
    if (!s->ran)
        snprintf(out, outsz, "-");
    else if (s->status != 0)
        snprintf(out, outsz, "%s %d %lldms", s->ok ? "ok" : "FAIL", s->status, (long long)s->ms);
    else
        snprintf(out, outsz, "%s %lldms", s->ok ? "ok" : "FAIL", (long long)s->ms);
}

void k2a_doctor_print_table(const k2a_doctor_account_t *acc, size_t n)
{
    printf("%-16s %-12s %-13s %-11s %-6s %-14s %-18s %-16s %-16s %-18s %s\n", "ACCOUNT", "KIND", "REGION", "ARN", "MODELS",
           "CREDITS LEFT", "REFRESH", "MODELS CALL", "USAGE", "GENERATE", "VERDICT");
    for (size_t i = 0; i < n; ++i) {
        const k2a_doctor_account_t *a = &acc[i];
        char r[32], m[32], u[32], g[32], credits[32], models[16];
        cell(&a->refresh, r, sizeof(r));
        cell(&a->models, m, sizeof(m));
        cell(&a->usage, u, sizeof(u));
        cell(&a->generate, g, sizeof(g));
        if (a->usage_known)
            snprintf(credits, sizeof(credits), "%.1f/%.0f", a->credits_left, a->credits_limit);
        else
            snprintf(credits, sizeof(credits), "-");
        if (a->models.ok)
            snprintf(models, sizeof(models), "%zu", a->nmodels);
        else
            snprintf(models, sizeof(models), "-");
        printf("%-16.16s %-12s %-13s %-11s %-6s %-14s %-18s %-16s %-16s %-18s %s\n", a->name, a->kind, a->region, a->arn_source,
               models, credits, r, m, u, g,
               a->disabled ? "skipped"
               : a->ok     ? "ok"
                           : "failed");
    }
    printf("\n");
    for (size_t i = 0; i < n; ++i) {
        const k2a_doctor_account_t *a = &acc[i];
        char reset[16];
        format_date(a->next_reset_ms, reset, sizeof(reset));
        printf("account %s: %s, region %s (from %s, auth %s), profileArn %s (%s), usage resets %s\n", a->name, a->kind, a->region,
               a->region_source, a->auth_region, a->arn[0] ? a->arn : "-", a->arn_source, reset);
        if (a->models.ok && a->nmodels > 0)
            printf("  models: %s%s%s%s%s%s\n", a->model_ids[0], a->model_ids[1][0] ? ", " : "", a->model_ids[1],
                   a->model_ids[2][0] ? ", " : "", a->model_ids[2], a->nmodels > K2A_DOCTOR_IDS ? ", ..." : "");
        const k2a_doctor_step_t *steps[] = {&a->refresh, &a->models, &a->usage, &a->generate};
        const char *names[] = {"refresh", "models", "usage", "generate"};
        for (size_t k = 0; k < 4; ++k)
            if (steps[k]->ran && !steps[k]->ok)
                printf("  %s: %s\n", names[k], steps[k]->detail);
        if (!a->ok || a->disabled)
            printf("  fix: %s\n", a->hint);
        for (size_t k = 0; k < a->nprobes; ++k) {
            char c[32];
            cell(&a->probes[k].step, c, sizeof(c));
            printf("  probe %-11s %-60.60s %-18s %s\n", a->probes[k].shape, a->probes[k].base, c, a->probes[k].step.detail);
        }
    }
}

static void str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void kv(yajl_gen g, const char *k, const char *v)
{
    str(g, k);
    if (v != NULL)
        str(g, v);
    else
        yajl_gen_null(g);
}

static void step(yajl_gen g, const char *name, const k2a_doctor_step_t *s)
{
    str(g, name);
    yajl_gen_map_open(g);
    str(g, "ran");
    yajl_gen_bool(g, s->ran);
    str(g, "ok");
    yajl_gen_bool(g, s->ok);
    str(g, "status");
    yajl_gen_integer(g, s->status);
    str(g, "latency_ms");
    yajl_gen_integer(g, s->ms);
    kv(g, "detail", s->detail);
    yajl_gen_map_close(g);
}

int k2a_doctor_print_json(const k2a_doctor_account_t *acc, size_t n, bool all_ok)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL)
        return -1;
    yajl_gen_map_open(g);
    str(g, "ok");
    yajl_gen_bool(g, all_ok);
    str(g, "accounts");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; ++i) {
        const k2a_doctor_account_t *a = &acc[i];
        char reset[16];
        format_date(a->next_reset_ms, reset, sizeof(reset));
        yajl_gen_map_open(g);
        str(g, "index");
        yajl_gen_integer(g, (long long)a->index);
        kv(g, "name", a->name);
        kv(g, "kind", a->kind);
        kv(g, "region", a->region);
        kv(g, "region_source", a->region_source);
        kv(g, "auth_region", a->auth_region);
        kv(g, "profile_arn", a->arn[0] ? a->arn : NULL);
        kv(g, "arn_source", a->arn_source);
        str(g, "models");
        if (a->models.ok)
            yajl_gen_integer(g, (long long)a->nmodels);
        else
            yajl_gen_null(g);
        str(g, "model_ids");
        yajl_gen_array_open(g);
        for (size_t k = 0; k < K2A_DOCTOR_IDS && a->model_ids[k][0]; ++k)
            str(g, a->model_ids[k]);
        yajl_gen_array_close(g);
        str(g, "credits_left");
        if (a->usage_known)
            yajl_gen_double(g, a->credits_left);
        else
            yajl_gen_null(g);
        kv(g, "usage_resets", a->next_reset_ms > 0 ? reset : NULL);
        kv(g, "generate_model", a->generate.ran ? a->model : NULL);
        step(g, "refresh", &a->refresh);
        step(g, "models_call", &a->models);
        step(g, "usage", &a->usage);
        step(g, "generate", &a->generate);
        str(g, "probe");
        yajl_gen_array_open(g);
        for (size_t k = 0; k < a->nprobes; ++k) {
            yajl_gen_map_open(g);
            kv(g, "base", a->probes[k].base);
            kv(g, "shape", a->probes[k].shape);
            str(g, "status");
            yajl_gen_integer(g, a->probes[k].step.status);
            str(g, "ok");
            yajl_gen_bool(g, a->probes[k].step.ok);
            str(g, "latency_ms");
            yajl_gen_integer(g, a->probes[k].step.ms);
            kv(g, "detail", a->probes[k].step.detail);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        kv(g, "verdict", a->disabled ? "skipped" : a->ok ? "ok" : "failed");
        kv(g, "hint", a->hint[0] ? a->hint : NULL);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    fwrite(buf, 1, len, stdout);
    fputc('\n', stdout);
    yajl_gen_free(g);
    return 0;
}
