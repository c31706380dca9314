/*
 * libFuzzer target for the model catalog parser (src/pool/catalog.c) and the model-name rule
 * (src/convert/model_map.c k2a_model_normalize), both fed by peers: ListAvailableModels pages come from the upstream,
 * model names from clients.
 * Invariants of a parsed page: at most K2A_CATALOG_MAX_MODELS models, each id 1..128 bytes of [A-Za-z0-9._:-] and
 * unique (x and x.0 count as one), names at most K2A_CATALOG_MAX_NAME bytes without control characters, quotes or
 * backslashes, efforts only [a-z_,], a nextToken shorter than K2A_CATALOG_MAX_TOKEN; encoding and decoding gives the
 * same catalog back. Invariants of a normalized name: 1..128 printable bytes, and normalizing it again changes nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "convert/model_map.h"
#include "core/errors.h"
#include "pool/catalog.h"

#define CHECK(c, ...)                                                                                                              \
    do {                                                                                                                           \
        if (!(c)) {                                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c);                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                                          \
            fputc('\n', stderr);                                                                                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

static void check_catalog(const k2a_catalog_t *c)
{
    CHECK(c->n <= K2A_CATALOG_MAX_MODELS, "%zu models", c->n);
    for (size_t i = 0; i < c->n; ++i) {
        const k2a_catalog_model_t *m = &c->models[i];
        size_t n = strlen(m->id);
        CHECK(n >= 1 && n <= K2A_MODEL_ID_MAX &&
                  strspn(m->id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n,
              "id %s", m->id);
        CHECK(strlen(m->name) <= K2A_CATALOG_MAX_NAME, "name length %zu", strlen(m->name));
        for (const char *p = m->name; *p; ++p)
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f && *p != '"' && *p != '\\', "name byte %02x", (unsigned char)*p);
        CHECK(strspn(m->efforts, "abcdefghijklmnopqrstuvwxyz_,") == strlen(m->efforts), "efforts %s", m->efforts);
        for (size_t j = 0; j < i; ++j)
            CHECK(!k2a_model_id_same(c->models[j].id, strlen(c->models[j].id), m->id, n), "duplicate %s", m->id);
    }
}

static void fuzz_catalog(const uint8_t *data, size_t size)
{
    k2a_catalog_t c;
    char next[K2A_CATALOG_MAX_TOKEN], err[128];
    k2a_catalog_init(&c);
    int r = k2a_catalog_parse_page((const char *)data, size, &c, next, sizeof(next), err, sizeof(err));
    CHECK(r == 0 || r == K2A_EUPSTREAM_EVENT || r == K2A_ENOMEM, "r %d", r);
    check_catalog(&c);
    if (r == 0) {
        CHECK(strlen(next) < K2A_CATALOG_MAX_TOKEN, "token");
        k2a_buf_t out = K2A_BUF_INIT(0);
        k2a_catalog_t d;
        CHECK(k2a_catalog_encode(&c, &out) == 0, "encode");
        CHECK(k2a_catalog_decode(out.base, out.len, &d) == 0, "decode %.*s", (int)out.len, out.base);
        CHECK(d.n == c.n, "%zu != %zu", d.n, c.n);
        for (size_t i = 0; i < c.n; ++i) {
            CHECK(strcmp(d.models[i].id, c.models[i].id) == 0 && strcmp(d.models[i].name, c.models[i].name) == 0 &&
                      strcmp(d.models[i].efforts, c.models[i].efforts) == 0 && d.models[i].max_input == c.models[i].max_input &&
                      d.models[i].max_output == c.models[i].max_output && d.models[i].input_types == c.models[i].input_types,
                  "round trip of %s", c.models[i].id);
        }
        k2a_catalog_dispose(&d);
        k2a_buf_dispose(&out);
    }
    k2a_catalog_dispose(&c);
}

static void fuzz_name(const uint8_t *data, size_t size)
{
    char out[K2A_MODEL_ID_MAX + 1], again[K2A_MODEL_ID_MAX + 1];
    bool thinking;
    size_t n = size < 200 ? size : 200;
    if (k2a_model_normalize(k2a_str((const char *)data, n), out, sizeof(out), &thinking) != 0)
        return;
    size_t len = strlen(out);
    CHECK(len >= 1 && len <= K2A_MODEL_ID_MAX, "length %zu", len);
    for (size_t i = 0; i < len; ++i)
        CHECK((unsigned char)out[i] > 0x20 && (unsigned char)out[i] < 0x7f, "byte %02x", (unsigned char)out[i]);
    CHECK(k2a_model_normalize(k2a_cstr(out), again, sizeof(again), &thinking) == 0 && strcmp(again, out) == 0,
          "not idempotent: %s -> %s", out, again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_catalog(data, size);
    fuzz_name(data, size);
    return 0;
}
