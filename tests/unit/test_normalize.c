/*
 * Normalizer rules, one test (or more) per rule of src/convert/normalize_rules.h, plus the driver's promise
 * that the request IR is left untouched and the payload-budget rule. Requests are written as Anthropic JSON
 * and decoded, which keeps the cases readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/errors.h"
#include "convert/anthropic_req.h"
#include "convert/kiro_req.h"
#include "convert/normalize_rules.h"
#include "sim/validate.h"

typedef struct st_fx_t {
    k2a_arena_t arena;
    k2a_ir_request_t req; /* decoded */
    k2a_ir_request_t w;   /* working copy (own messages array) */
    k2a_normalize_config_t cfg;
    k2a_convert_error_t err;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    k2a_arena_init(&f->arena, 0);
    f->cfg = k2a_normalize_config_default();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    k2a_arena_dispose(&f->arena);
    free(f);
    return 0;
}

/* Decodes a request (messages given as the JSON array text) into f->req and a working copy f->w. */
static void load(fx_t *f, const char *json)
{
    char *copy = k2a_arena_strndup(&f->arena, json, strlen(json)); /* the body must outlive the IR */
    int r = k2a_anthropic_decode(copy, strlen(copy), NULL, &f->arena, &f->req, &f->err);
    if (r != 0) {
        print_error("decode: %s\n", f->err.message);
        fail();
    }
    f->w = f->req;
    f->w.messages = k2a_arena_alloc(&f->arena, (f->req.nmessages + 1) * sizeof(k2a_ir_message_t));
    if (f->req.nmessages != 0)
        memcpy(f->w.messages, f->req.messages, f->req.nmessages * sizeof(k2a_ir_message_t));
}

#define REQ(msgs) "{\"model\":\"m\",\"messages\":" msgs "}"

static void assert_str(k2a_str_t s, const char *lit)
{
    if (!k2a_str_eq_lit(s, lit)) {
        print_error("expected \"%s\", got \"%.*s\"\n", lit, (int)s.len, s.base != NULL ? s.base : "(null)");
        fail();
    }
}

/* role letters of the working copy, e.g. "uau" */
static const char *roles(const k2a_ir_request_t *w)
{
    static char buf[64];
    size_t i;
    for (i = 0; i < w->nmessages && i < sizeof(buf) - 1; ++i)
        buf[i] = w->messages[i].role == K2A_ROLE_USER ? 'u' : w->messages[i].role == K2A_ROLE_ASSISTANT ? 'a' : 's';
    buf[i] = '\0';
    return buf;
}

/* 1x1 PNG and a minimal JPEG, base64 */
#define PNG64 "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
#define JPG64 "/9j/4AAQSkZJRgABAQAAAQABAAD/2Q=="
#define IMG(data, mt) "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"" mt "\",\"data\":\"" data "\"}}"

/* ---------- 1. old images ---------- */

static void test_old_images(void **state)
{
    fx_t *f = *state;
    load(f, REQ("[{\"role\":\"user\",\"content\":[" IMG(
                PNG64,
                "image/png") ",{\"type\":\"text\",\"text\":\"old\"}]},"
                             "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Read\",\"input\":"
                             "{}}]},"
                             "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":[" IMG(
                                 PNG64, "image/png") "]}]},"
                                                     "{\"role\":\"system\",\"content\":\"sys does not count\"},"
                                                     "{\"role\":\"assistant\",\"content\":\"a\"},"
                                                     "{\"role\":\"user\",\"content\":[" IMG(
                                                         PNG64, "image/png") "]},"
                                                                             "{\"role\":\"assistant\",\"content\":\"prefill\"}]"));
    f->cfg.image_history_messages = 2;
    assert_int_equal(k2a_norm_old_images(&f->w, &f->cfg, &f->arena), 0);
    /* messages[0] is 4 non-system messages before the current one: placeholder; messages[2] is 2 before: kept */
    assert_int_equal(f->w.messages[0].blocks[0].kind, K2A_BLOCK_TEXT);
    assert_str(f->w.messages[0].blocks[0].text, "[image]");
    assert_int_equal(f->w.messages[2].blocks[0].content[0].kind, K2A_BLOCK_IMAGE);
    assert_int_equal(f->w.messages[5].blocks[0].kind, K2A_BLOCK_IMAGE);
    /* copy-on-write: the decoded request still has its image */
    assert_int_equal(f->req.messages[0].blocks[0].kind, K2A_BLOCK_IMAGE);

    f->w = f->req;
    f->cfg.image_history_messages = 1;
    k2a_ir_message_t *copy = k2a_arena_alloc(&f->arena, f->req.nmessages * sizeof(*copy));
    memcpy(copy, f->req.messages, f->req.nmessages * sizeof(*copy));
    f->w.messages = copy;
    assert_int_equal(k2a_norm_old_images(&f->w, &f->cfg, &f->arena), 0);
    assert_str(f->w.messages[2].blocks[0].content[0].text, "[image]"); /* inside a tool_result too */
    assert_int_equal(f->req.messages[2].blocks[0].content[0].kind, K2A_BLOCK_IMAGE);
}

/* ---------- 2. image validation ---------- */

static int check(const char *mt, const char *data, size_t max)
{
    char why[200];
    return k2a_norm_check_image(k2a_cstr(mt), k2a_cstr(data), max, why, sizeof(why));
}

static void test_check_image(void **state)
{
    size_t max = 20 * 1024 * 1024;
    assert_int_equal(check("image/png", PNG64, max), 0);
    assert_int_equal(check("image/jpeg", JPG64, max), 0);
    assert_int_equal(check("image/gif", "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7", max), 0);
    assert_int_equal(check("image/webp", "UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==", max), 0);
    assert_int_equal(check("image/jpeg", PNG64, max), K2A_EIMAGE_INVALID); /* magic says png */
    assert_int_equal(check("image/png", "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7", max), K2A_EIMAGE_INVALID);
    assert_int_equal(check("image/png", "AAAAAAAAAAAAAAAAAAAAAAAA", max), 0); /* unknown magic: accepted */
    assert_int_equal(check("image/png", "/9j/", max), 0);                     /* under 12 bytes: undetectable */
    assert_int_equal(check("image/png", "", max), K2A_EIMAGE_INVALID);
    assert_int_equal(check("image/png", "abc", max), K2A_EIMAGE_INVALID);  /* length % 4 */
    assert_int_equal(check("image/png", "ab=c", max), K2A_EIMAGE_INVALID); /* '=' inside */
    assert_int_equal(check("image/png", "ab\ncd==", max), K2A_EIMAGE_INVALID);
    assert_int_equal(check("image/png", "a===", max), K2A_EIMAGE_INVALID);
    assert_int_equal(check("image/png", "ab-_", max), K2A_EIMAGE_INVALID); /* base64url is not standard */
    assert_int_equal(check("image/png", "AAAAAAAA", 6), 0);                /* exactly 6 bytes */
    assert_int_equal(check("image/png", "AAAAAAAA", 5), K2A_EIMAGE_INVALID);
    assert_int_equal(check("image/png", "AAAAAA==", 4), 0); /* padding counted */
    char why[200];
    k2a_norm_check_image(K2A_STRLIT("image/jpeg"), k2a_cstr(PNG64), max, why, sizeof(why));
    assert_non_null(strstr(why, "declared as image/jpeg but its data is image/png"));
}

static void test_validate_images_names_message(void **state)
{
    fx_t *f = *state;
    load(f, REQ("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
                "\"name\":\"R\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\","
                "\"content\":[" IMG(PNG64, "image/png") "," IMG(JPG64, "image/png") "]}]}]"));
    assert_int_equal(k2a_norm_validate_images(&f->w, &f->cfg, &f->err), K2A_EIMAGE_INVALID);
    assert_non_null(strstr(f->err.message, "messages[2]: image #2 (in a tool_result): image declared as image/png"));
    f->cfg.max_image_bytes = 10;
    load(f, REQ("[{\"role\":\"user\",\"content\":[" IMG(PNG64, "image/png") "]}]"));
    assert_int_equal(k2a_norm_validate_images(&f->w, &f->cfg, &f->err), K2A_EIMAGE_INVALID);
    assert_non_null(strstr(f->err.message, "messages[0]: image #1: image of 69 bytes exceeds the limit of 10 bytes"));
}

/* ---------- 3. system ---------- */

static void test_fold_system(void **state)
{
    fx_t *f = *state;
    k2a_str_t sys;
    load(f, "{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\",\"text\":\"\"},{\"type\":\"text\","
            "\"text\":\"B\"}],\"messages\":[{\"role\":\"system\",\"content\":\"C\"},{\"role\":\"user\",\"content\":\"u\"},"
            "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"D\",\"cache_control\":{\"type\":\"ephemeral\"}}]},"
            "{\"role\":\"assistant\",\"content\":\"a\"}]}");
    assert_int_equal(k2a_norm_fold_system(&f->w, &f->arena, &sys), 0);
    assert_str(sys, "A\nB\nC\nD");
    assert_string_equal(roles(&f->w), "ua");
    assert_int_equal(f->req.nmessages, 4);

    load(f, "{\"model\":\"m\",\"system\":\" \\n \",\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}");
    assert_int_equal(k2a_norm_fold_system(&f->w, &f->arena, &sys), 0);
    assert_int_equal(sys.len, 0); /* blank is no system prompt */
    load(f, REQ("[{\"role\":\"user\",\"content\":\"u\"}]"));
    assert_int_equal(k2a_norm_fold_system(&f->w, &f->arena, &sys), 0);
    assert_null(sys.base);
}

/* ---------- 4. thinking ---------- */

static const char *thinking_prefix(fx_t *f, const char *json, bool forced, const char *system, bool *on)
{
    static char out[512];
    load(f, json);
    k2a_str_t sys = k2a_cstr(system), native;
    assert_int_equal(k2a_norm_thinking_prefix(&f->w, &f->cfg, forced, &f->arena, &sys, on, &native), 0);
    assert_int_equal(native.len, 0); /* f->cfg.native_effort is false */
    snprintf(out, sizeof(out), "%.*s", (int)sys.len, sys.base != NULL ? sys.base : "");
    return out;
}

static void test_thinking_prefix(void **state)
{
    fx_t *f = *state;
    bool on;
#define M ",\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}"
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":4096}" M, false, "S", &on),
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>4096</max_thinking_length>\nS");
    assert_true(on);
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":99999}" M, false, NULL, &on),
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>24576</max_thinking_length>");
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":10}" M, false, NULL, &on),
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>1024</max_thinking_length>");
    assert_string_equal(thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"enabled\"}" M, false, NULL, &on),
                        "<thinking_mode>enabled</thinking_mode><max_thinking_length>20000</max_thinking_length>");
    assert_string_equal(thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"adaptive\"}" M, false, "S", &on),
                        "<thinking_mode>adaptive</thinking_mode><thinking_effort>high</thinking_effort>\nS");
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{\"effort\":\"low\"}" M, false,
                        NULL, &on),
        "<thinking_mode>adaptive</thinking_mode><thinking_effort>low</thinking_effort>");
    assert_string_equal(thinking_prefix(f,
                                        "{\"model\":\"m\",\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{\"effort\":"
                                        "\"</thinking_effort>\"}" M,
                                        false, NULL, &on),
                        "<thinking_mode>adaptive</thinking_mode><thinking_effort>high</thinking_effort>");
    /* forced by the model name, even over "disabled" */
    assert_string_equal(thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"disabled\"}" M, true, NULL, &on),
                        "<thinking_mode>enabled</thinking_mode><max_thinking_length>20000</max_thinking_length>");
    assert_true(on);
    /* off */
    assert_string_equal(thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"disabled\"}" M, false, "S", &on), "S");
    assert_false(on);
    assert_string_equal(thinking_prefix(f, "{\"model\":\"m\"" M, false, "S", &on), "S");
    assert_false(on);
    /* the client already wrote the tags */
    assert_string_equal(thinking_prefix(f, "{\"model\":\"m\",\"thinking\":{\"type\":\"adaptive\"}" M, false,
                                        "<thinking_mode>enabled</thinking_mode> mine", &on),
                        "<thinking_mode>enabled</thinking_mode> mine");
    assert_true(on);
#undef M
}

/* kiro-protocol-2026.md §7: no thinking below max_tokens 512 (Claude Code's 64..512-token side requests came back empty),
 * the budget at most 3/4 of max_tokens, adaptive effort sent natively when the model takes it (and then no tags). */
static void test_thinking_max_tokens_guards(void **state)
{
    fx_t *f = *state;
    bool on;
#define M ",\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}"
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"max_tokens\":64,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":4096}" M, false,
                        "S", &on),
        "S");
    assert_false(on);
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"max_tokens\":511,\"thinking\":{\"type\":\"adaptive\"}" M, false, "S", &on), "S");
    assert_false(on);
    /* forced by a -thinking model name: the same guard */
    assert_string_equal(thinking_prefix(f, "{\"model\":\"m\",\"max_tokens\":100" M, true, "S", &on), "S");
    assert_false(on);
    /* 512 is enough; the budget is cut to 3/4 of max_tokens (below the 1024 floor: the cap wins) */
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"max_tokens\":512,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":4096}" M,
                        false, NULL, &on),
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>384</max_thinking_length>");
    assert_true(on);
    /* Claude Code: max_tokens 32000, budget_tokens 31999 */
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"max_tokens\":32000,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":31999}" M,
                        false, NULL, &on),
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>24000</max_thinking_length>");
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"max_tokens\":8000,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":7999}" M,
                        false, NULL, &on),
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>6000</max_thinking_length>");
    /* adaptive has no budget: max_tokens only gates it */
    assert_string_equal(
        thinking_prefix(f, "{\"model\":\"m\",\"max_tokens\":600,\"thinking\":{\"type\":\"adaptive\"}" M, false, NULL, &on),
        "<thinking_mode>adaptive</thinking_mode><thinking_effort>high</thinking_effort>");
    /* native effort: no tags, the effort is handed back */
    load(f, "{\"model\":\"m\",\"max_tokens\":64000,\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{\"effort\":\"max\"}" M);
    f->cfg.native_effort = true;
    k2a_str_t sys = K2A_STRLIT("S"), native;
    assert_int_equal(k2a_norm_thinking_prefix(&f->w, &f->cfg, false, &f->arena, &sys, &on, &native), 0);
    assert_str(sys, "S");
    assert_str(native, "max");
    assert_true(on);
    /* enabled thinking keeps its tags even then (the native field carries an effort, not a budget) */
    load(f, "{\"model\":\"m\",\"max_tokens\":64000,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}" M);
    assert_int_equal(k2a_norm_thinking_prefix(&f->w, &f->cfg, false, &f->arena, &sys, &on, &native), 0);
    assert_int_equal(native.len, 0);
    assert_true(strstr(sys.base, "<max_thinking_length>2048<") != NULL);
    f->cfg.native_effort = false;
#undef M
}

/* ---------- 5-7. message shape ---------- */

static void test_drop_prefill(void **state)
{
    fx_t *f = *state;
    load(f, REQ("[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"},{\"role\":\"assistant\","
                "\"content\":\"{\"}]"));
    assert_int_equal(k2a_norm_drop_prefill(&f->w, &f->err), 0);
    assert_string_equal(roles(&f->w), "u");
    load(f, REQ("[{\"role\":\"assistant\",\"content\":\"a\"}]"));
    assert_int_equal(k2a_norm_drop_prefill(&f->w, &f->err), K2A_EEMPTY_MESSAGES);
    assert_non_null(strstr(f->err.message, "at least one user message"));
    load(f, REQ("[]"));
    assert_int_equal(k2a_norm_drop_prefill(&f->w, &f->err), K2A_EEMPTY_MESSAGES);
}

static void test_merge_same_role(void **state)
{
    fx_t *f = *state;
    load(
        f,
        REQ("[{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"u2\"},"
            "{\"type\":\"text\",\"text\":\"u3\"}]},{\"role\":\"assistant\",\"content\":\"a1\"},{\"role\":\"assistant\",\"content\":"
            "\"a2\"},{\"role\":\"assistant\",\"content\":\"a3\"},{\"role\":\"user\",\"content\":\"u4\"}]"));
    assert_int_equal(k2a_norm_merge_same_role(&f->w, &f->arena), 0);
    assert_string_equal(roles(&f->w), "uau");
    assert_int_equal(f->w.messages[0].nblocks, 3);
    assert_str(f->w.messages[0].blocks[2].text, "u3");
    assert_int_equal(f->w.messages[1].nblocks, 3);
    assert_str(f->w.messages[1].blocks[1].text, "a2");
    assert_int_equal(f->req.messages[0].nblocks, 1); /* the request's own arrays are untouched */
}

static void test_leading_assistant(void **state)
{
    fx_t *f = *state;
    load(f, REQ("[{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\":\"user\",\"content\":\"u\"}]"));
    assert_int_equal(k2a_norm_leading_assistant(&f->w, &f->arena), 0);
    assert_string_equal(roles(&f->w), "uau");
    assert_str(f->w.messages[0].blocks[0].text, "Continue.");
    load(f, REQ("[{\"role\":\"user\",\"content\":\"u\"}]"));
    assert_int_equal(k2a_norm_leading_assistant(&f->w, &f->arena), 0);
    assert_string_equal(roles(&f->w), "u");
}

/* ---------- 8-10. tool pairing ---------- */

#define TU(id) "{\"type\":\"tool_use\",\"id\":\"" id "\",\"name\":\"T\",\"input\":{}}"
#define TR(id) "{\"type\":\"tool_result\",\"tool_use_id\":\"" id "\",\"content\":\"r-" id "\"}"

static size_t count(const k2a_ir_message_t *m, k2a_ir_block_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nblocks; ++i)
        n += m->blocks[i].kind == kind;
    return n;
}

static void test_dedupe_tool_ids(void **state)
{
    fx_t *f = *state;
    load(f, REQ("[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":[" TU("a") "," TU("a") "," TU(
                "b") "]},"
                     "{\"role\":\"user\",\"content\":[" TR("a") "," TR("b") "," TR("a") ",{\"type\":\"text\",\"text\":\"t\"}]}]"));
    assert_int_equal(k2a_norm_dedupe_tool_results(&f->w, &f->arena), 0);
    assert_int_equal(count(&f->w.messages[1], K2A_BLOCK_TOOL_USE), 2);
    assert_int_equal(count(&f->w.messages[2], K2A_BLOCK_TOOL_RESULT), 2);
    assert_str(f->w.messages[2].blocks[0].tool_use_id, "a");
    assert_str(f->w.messages[2].blocks[0].content[0].text, "r-a"); /* the first one is kept */
    assert_int_equal(f->w.messages[2].nblocks, 3);
    assert_int_equal(f->req.messages[2].nblocks, 4);
}

static void test_drop_unanswered_tool_uses(void **state)
{
    fx_t *f = *state;
    load(f, REQ("[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}"
                "," TU("a") "," TU("b") "]},{\"role\":\"user\",\"content\":[" TR("b") "]},{\"role\":\"assistant\",\"content\":[" TU(
                    "c") "]},"
                         "{\"role\":\"user\",\"content\":\"no results\"}]"));
    assert_int_equal(k2a_norm_drop_unanswered_tool_uses(&f->w, &f->arena), 0);
    assert_int_equal(f->w.messages[1].nblocks, 2);
    assert_str(f->w.messages[1].blocks[1].id, "b");
    assert_int_equal(f->w.messages[3].nblocks, 0);
}

static void test_drop_orphan_tool_results(void **state)
{
    fx_t *f = *state;
    load(f,
         REQ("[{\"role\":\"user\",\"content\":[" TR("x") ",{\"type\":\"text\",\"text\":\"hi\"}]},{\"role\":\"assistant\","
                                                         "\"content\":[" TU("a") "]},{\"role\":\"user\",\"content\":[" TR(
                                                             "a") "," TR("zz") "]},{\"role\":\"assistant\",\"content\":\"plain\"},"
                                                                               "{\"role\":\"user\",\"content\":[" TR("a") "]}]"));
    assert_int_equal(k2a_norm_drop_orphan_tool_results(&f->w, &f->arena), 0);
    assert_int_equal(f->w.messages[0].nblocks, 1); /* no previous assistant */
    assert_int_equal(f->w.messages[2].nblocks, 1);
    assert_str(f->w.messages[2].blocks[0].tool_use_id, "a");
    assert_int_equal(f->w.messages[4].nblocks, 0); /* "a" was answered already: not by the previous assistant */
}

/* ---------- 11-13. tools ---------- */

static void test_tool_name(void **state)
{
    fx_t *f = *state;
    k2a_tool_names_t names = {0};
    k2a_str_t out;
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'b', 65);
    n65[65] = '\0';
    assert_int_equal(k2a_norm_tool_name(k2a_cstr(n64), &names, &f->arena, &out), 0);
    assert_int_equal(out.len, 64);
    assert_int_equal(names.n, 0);
    assert_int_equal(k2a_norm_tool_name(k2a_cstr(n65), &names, &f->arena, &out), 0);
    assert_int_equal(out.len, 64);
    assert_int_equal(names.n, 1);
    assert_memory_equal(out.base, n65, 51);
    assert_int_equal(out.base[51], '_');
    /* sha256("b" x 65) starts with these 12 hex digits */
    assert_true(k2a_str_eq(k2a_tool_names_to_client(&names, out), k2a_cstr(n65)));
    k2a_str_t again;
    assert_int_equal(k2a_norm_tool_name(k2a_cstr(n65), &names, &f->arena, &again), 0);
    assert_true(k2a_str_eq(again, out));
    assert_int_equal(names.n, 1);
    /* unknown names map to themselves */
    assert_str(k2a_tool_names_to_client(&names, K2A_STRLIT("Bash")), "Bash");
    assert_str(k2a_tool_names_to_client(NULL, K2A_STRLIT("Bash")), "Bash");
    /* characters outside [a-zA-Z0-9_-] become '_' (a UTF-8 character counts as one): 50 ASCII bytes then 3-byte characters */
    char utf[200];
    memset(utf, 'x', 50);
    strcpy(utf + 50, "\xe5\x90\x8d\xe5\x90\x8d\xe5\x90\x8d\xe5\x90\x8d\xe5\x90\x8d");
    assert_int_equal(k2a_norm_tool_name(k2a_cstr(utf), &names, &f->arena, &out), 0);
    assert_int_equal(out.len, 64);
    assert_int_equal(out.base[50], '_');
    assert_true(k2a_norm_tool_name_ok(out));
    /* two long names with the same prefix differ */
    char n70a[71], n70b[71];
    memset(n70a, 'c', 70);
    n70a[70] = '\0';
    memcpy(n70b, n70a, 71);
    n70b[69] = 'd';
    k2a_str_t oa, ob;
    k2a_norm_tool_name(k2a_cstr(n70a), &names, &f->arena, &oa);
    k2a_norm_tool_name(k2a_cstr(n70b), &names, &f->arena, &ob);
    assert_false(k2a_str_eq(oa, ob));
    assert_str(k2a_tool_names_to_client(&names, ob), n70b);
    /* the names of Kiro's web search server tool travel rewritten (fuzz_responses_req finding: a history function_call
     * named "websearch" got a stub spec of that name, which Kiro refuses), and come back as the client's */
    const char *reserved[] = {"websearch", "web_search"};
    for (size_t i = 0; i < 2; ++i) {
        assert_false(k2a_norm_tool_name_ok(k2a_cstr(reserved[i])));
        assert_int_equal(k2a_norm_tool_name(k2a_cstr(reserved[i]), &names, &f->arena, &out), 0);
        assert_true(k2a_norm_tool_name_ok(out));
        assert_false(k2a_str_eq(out, k2a_cstr(reserved[i])));
        assert_int_equal(out.len, strlen(reserved[i]) + 13);
        assert_str(k2a_tool_names_to_client(&names, out), reserved[i]);
    }
    assert_true(k2a_norm_tool_name_ok(K2A_STRLIT("WebSearch")));
    assert_true(k2a_norm_tool_name_ok(K2A_STRLIT("web_search_tool")));
}

static void test_tool_description(void **state)
{
    assert_str(k2a_norm_tool_description(K2A_STRLIT("abcdef"), K2A_STRLIT("t"), 4), "abcd");
    assert_str(k2a_norm_tool_description(K2A_STRLIT("abc"), K2A_STRLIT("t"), 4), "abc");
    /* "é" is 2 bytes, "名" 3: never cut inside */
    assert_str(k2a_norm_tool_description(K2A_STRLIT("a\xc3\xa9\xe5\x90\x8d"), K2A_STRLIT("t"), 2), "a");
    assert_str(k2a_norm_tool_description(K2A_STRLIT("a\xc3\xa9\xe5\x90\x8d"), K2A_STRLIT("t"), 5), "a\xc3\xa9");
    assert_str(k2a_norm_tool_description(K2A_STRLIT("a\xc3\xa9\xe5\x90\x8d"), K2A_STRLIT("t"), 6), "a\xc3\xa9\xe5\x90\x8d");
    assert_str(k2a_norm_tool_description(K2A_STRLIT(""), K2A_STRLIT("MyTool"), 100), "MyTool");
    assert_str(k2a_norm_tool_description(K2A_STRLIT(" \n"), K2A_STRLIT("MyTool"), 100), "MyTool");
    assert_str(k2a_norm_tool_description(K2A_STRLIT("\xe5\x90\x8d"), K2A_STRLIT("MyTool"), 2), "MyTool"); /* never empty */
}

/* Finding of fuzz_anthropic_req: a tool without a description got its name as description uncut, so a tool whose name is
 * longer than MAX_TOOL_DESCRIPTION_LENGTH produced a description Kiro rejects (kiro-sim rule tool_description_too_long). */
static void test_tool_description_from_a_long_name_is_cut(void **state)
{
    assert_str(k2a_norm_tool_description(K2A_STRLIT(""), K2A_STRLIT("VeryLongToolName"), 8), "VeryLong");
    assert_str(k2a_norm_tool_description(K2A_STRLIT(" "), K2A_STRLIT("\xe5\x90\x8d\xe5\x90\x8d"), 4), "\xe5\x90\x8d");
    /* end to end: a 20 000-byte tool name without a description */
    fx_t *f = *state;
    k2a_model_map_t *map = NULL;
    assert_int_equal(k2a_model_map_create(NULL, 0, &map, &f->err), 0);
    k2a_buf_t body;
    k2a_buf_init(&body, 0);
    k2a_buf_appendstr(&body,
                      "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                      "\"tools\":[{\"name\":\"");
    for (int i = 0; i < 20000; ++i)
        k2a_buf_append(&body, "n", 1);
    k2a_buf_appendstr(&body, "\",\"input_schema\":{\"type\":\"object\"}}]}");
    /* and (fuzz_anthropic_req) a tool whose name and description are both blank: the description is its Kiro name */
    static const char *const blank = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\","
                                     "\"content\":\"x\"}],\"tools\":[{\"name\":\"  \",\"description\":\"  \",\"input_schema\":"
                                     "{\"type\":\"object\"}}]}";
    const char *bodies[2] = {body.base, blank};
    size_t lens[2] = {body.len, strlen(blank)};
    for (int i = 0; i < 2; ++i) {
        k2a_ir_request_t req;
        assert_int_equal(k2a_anthropic_decode(bodies[i], lens[i], NULL, &f->arena, &req, &f->err), 0);
        k2a_kiro_build_params_t p;
        k2a_kiro_build_params_init(&p, map);
        k2a_buf_t out;
        k2a_buf_init(&out, 1 << 20);
        k2a_kiro_build_result_t res;
        assert_int_equal(k2a_kiro_build_request(&req, &p, &f->arena, &out, &res, &f->err), 0);
        k2a_sim_validation_t val;
        k2a_sim_limits_t limits; /* Kiro as it is now: the 2026 rules (tool_description_empty among them) */
        k2a_sim_limits_init(&limits);
        limits.modern = true;
        if (k2a_sim_validate_request_ex(out.base, out.len, &limits, &val, NULL) != 200)
            fail_msg("%s: %s", val.rule, val.detail);
        k2a_buf_dispose(&out);
    }
    k2a_buf_dispose(&body);
    k2a_model_map_destroy(map);
}

static void test_tool_schema(void **state)
{
    fx_t *f = *state;
    k2a_str_t out;
    assert_int_equal(k2a_norm_tool_schema(K2A_STR_NULL, K2A_TOOL_SCHEMA_STRICT, &f->arena, &out), 0);
    assert_str(out, "{\"type\":\"object\",\"properties\":{}}");
    k2a_str_t keep =
        K2A_STRLIT("{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}}}");
    assert_int_equal(k2a_norm_tool_schema(keep, K2A_TOOL_SCHEMA_STRICT, &f->arena, &out), 0);
    assert_ptr_equal(out.base, keep.base); /* already compliant: untouched, zero-copy */
    k2a_str_t mcp = K2A_STRLIT("{\"$schema\":\"x\",\"type\":\"object\",\"anyOf\":[{}],\"additionalProperties\":false}");
    assert_int_equal(k2a_norm_tool_schema(mcp, K2A_TOOL_SCHEMA_STRICT, &f->arena, &out), 0);
    assert_str(out, "{\"type\":\"object\",\"properties\":{}}");
    assert_int_equal(k2a_norm_tool_schema(mcp, K2A_TOOL_SCHEMA_MINIMAL, &f->arena, &out), 0);
    assert_str(out, "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}");
    assert_int_equal(
        k2a_norm_tool_schema(K2A_STRLIT("{\"type\":\"object\",\"cache_control\":{\"type\":\"ephemeral\"},\"properties\":{"
                                        "\"cache_control\":{\"type\":\"string\",\"cache_control\":1},\"p\":{\"items\":{"
                                        "\"cache_control\":[1,{\"a\":2}],\"type\":\"string\"}}},\"$defs\":{"
                                        "\"cache_control\":{\"type\":\"null\"}}}"),
                             K2A_TOOL_SCHEMA_STRICT, &f->arena, &out),
        0);
    assert_str(out,
               "{\"type\":\"object\",\"properties\":{\"cache_control\":{\"type\":\"string\"},\"p\":{\"items\":{\"type\":\"string\"}"
               "}},\"$defs\":{\"cache_control\":{\"type\":\"null\"}}}");
}

static void test_tools_rule(void **state)
{
    fx_t *f = *state;
    load(f, "{\"model\":\"m\",\"messages\":[],\"tools\":[{\"name\":\"Read\",\"description\":\"r\"},{\"name\":\"read\","
            "\"description\":\"dup\"},{\"name\":\"W\",\"input_schema\":{\"type\":\"object\"}}]}");
    k2a_tool_names_t names = {0};
    k2a_kiro_tool_spec_t *tools;
    size_t n;
    assert_int_equal(k2a_norm_tools(&f->w, &f->cfg, &names, &f->arena, &tools, &n, &f->err), 0);
    assert_int_equal(n, 2); /* "read" repeats "Read" for Kiro (case-insensitive) */
    assert_str(tools[0].schema, "{\"type\":\"object\",\"properties\":{}}");
    assert_str(tools[1].name, "W");
    assert_str(tools[1].description, "W");
    assert_str(tools[1].schema, "{\"type\":\"object\"}");
}

/* ---------- 14-16. rendering ---------- */

static void test_inline_thinking(void **state)
{
    fx_t *f = *state;
    assert_str(k2a_norm_inline_thinking(K2A_STRLIT("T"), K2A_STRLIT("text"), &f->arena), "<thinking>T</thinking>\n\ntext");
    assert_str(k2a_norm_inline_thinking(K2A_STRLIT("T"), K2A_STRLIT(""), &f->arena), "<thinking>T</thinking>");
    assert_str(k2a_norm_inline_thinking(K2A_STRLIT(""), K2A_STRLIT("text"), &f->arena), "text");
}

static void test_render_user(void **state)
{
    fx_t *f = *state;
    load(f,
         REQ("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\",\"text\":\"\"},"
             "{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"is_error\":true,\"content\":[{\"type\":\"text\",\"text\":\"l1\"}"
             "," IMG(PNG64, "image/png") ",{\"type\":\"text\",\"text\":\"l2\"}]},{\"type\":\"tool_result\",\"tool_use_id\":\"t2\","
                                         "\"content\":\"\"},{\"type\":\"tool_result\",\"tool_use_id\":\"t3\"}," IMG(
                                             JPG64, "image/jpeg") ","
                                                                  "{\"type\":\"document\",\"title\":\"T\",\"source\":{\"type\":"
                                                                  "\"text\",\"media_type\":\"text/plain\",\"data\":\"doc\"}},"
                                                                  "{\"type\":\"text\",\"text\":\"two\"}]}]"));
    k2a_kiro_turn_t t;
    assert_int_equal(k2a_norm_render_user(&f->w.messages[0], NULL, &f->arena, &t), 0);
    assert_false(t.assistant);
    assert_str(t.content, "one\n[document: T]\ndoc\ntwo");
    assert_int_equal(t.nresults, 3);
    assert_str(t.results[0].tool_use_id, "t1");
    assert_true(t.results[0].is_error);
    assert_str(t.results[0].text, "l1\n[image]\nl2");
    assert_str(t.results[1].text, "Tool executed with no output");
    assert_str(t.results[2].text, "Tool executed with no output");
    assert_int_equal(t.nimages, 2); /* the tool result's image and the message's */
    assert_str(t.images[0].format, "png");
    assert_str(t.images[1].format, "jpeg");
    assert_str(t.images[1].data, JPG64);
}

static void test_render_assistant(void **state)
{
    fx_t *f = *state;
    k2a_tool_names_t names = {0};
    load(f,
         REQ("[{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"think1\",\"signature\":\"s\"},"
             "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"mcp__a_very_long_name_that_goes_on_"
             "and_on_and_on_beyond_sixty_four_bytes\",\"input\":{\"k\":1}},{\"type\":\"redacted_thinking\",\"data\":\"x\"},"
             "{\"type\":\"thinking\",\"thinking\":\"think2\"},{\"type\":\"text\",\"text\":\"b\"}]}]"));
    k2a_kiro_turn_t t;
    assert_int_equal(k2a_norm_render_assistant(&f->w.messages[0], true, &names, &f->arena, &t), 0);
    assert_true(t.assistant);
    assert_str(t.content, "<thinking>think1\nthink2</thinking>\n\na\nb");
    assert_int_equal(t.nuses, 1);
    assert_int_equal(t.uses[0].name.len, 64);
    assert_str(t.uses[0].input, "{\"k\":1}");
    assert_int_equal(names.n, 1);
    assert_str(t.redacted, "x"); /* redacted thinking is kept for reasoningContent */
    assert_int_equal(k2a_norm_render_assistant(&f->w.messages[0], false, &names, &f->arena, &t), 0);
    assert_str(t.content, "a\nb"); /* inline_thinking false (the normalizer itself always inlines) */
}

static void test_fill_empty(void **state)
{
    k2a_kiro_turn_t t = {0};
    k2a_norm_fill_empty(&t);
    assert_str(t.content, "Continue.");
    t.content = K2A_STRLIT(" \n");
    k2a_norm_fill_empty(&t);
    assert_str(t.content, "Continue.");
    k2a_kiro_tool_result_t r = {0};
    t.content = K2A_STRLIT("");
    t.results = &r;
    t.nresults = 1;
    k2a_norm_fill_empty(&t);
    assert_str(t.content, ""); /* a tool-result turn may be empty (the IDE sends "") */
    k2a_kiro_turn_t a = {.assistant = true};
    k2a_kiro_tool_use_t use = {.id = K2A_STRLIT("t1"), .name = K2A_STRLIT("f"), .input = K2A_STRLIT("{}")};
    a.uses = &use;
    a.nuses = 1;
    k2a_norm_fill_empty(&a);
    assert_str(a.content, " "); /* next to tool uses (kiro.rs) */
    a.content = K2A_STRLIT("x");
    k2a_norm_fill_empty(&a);
    assert_str(a.content, "x");
}

/* Finding of fuzz_anthropic_req / fuzz_openai_req: an assistant turn whose text is empty or blank and that has no tool
 * uses was sent as " ", which kiro-sim's validator (like Kiro) rejects with 400 "Improperly formed request." */
static void test_fill_empty_blank_assistant_without_tool_uses(void **state)
{
    const char *blank[] = {"", " ", " \n\t "};
    for (size_t i = 0; i < sizeof(blank) / sizeof(blank[0]); ++i) {
        k2a_kiro_turn_t a = {.assistant = true, .content = k2a_cstr(blank[i])};
        k2a_norm_fill_empty(&a);
        assert_str(a.content, K2A_NORM_EMPTY_ASSISTANT_TEXT);
    }
    /* end to end: a blank assistant message between two user messages */
    k2a_model_map_t *map = NULL;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &map, &err), 0);
    static const char body[] = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":"
                               "\"hi\"},{\"role\":\"assistant\",\"content\":\" \"},{\"role\":\"user\",\"content\":\"again\"}]}";
    k2a_arena_t arena;
    k2a_arena_init(&arena, 1 << 20);
    k2a_ir_request_t req;
    assert_int_equal(k2a_anthropic_decode(body, sizeof(body) - 1, NULL, &arena, &req, &err), 0);
    k2a_kiro_build_params_t p;
    k2a_kiro_build_params_init(&p, map);
    k2a_buf_t out;
    k2a_buf_init(&out, 1 << 20);
    k2a_kiro_build_result_t res;
    assert_int_equal(k2a_kiro_build_request(&req, &p, &arena, &out, &res, &err), 0);
    k2a_sim_validation_t val;
    assert_int_equal(k2a_sim_validate_request(out.base, out.len, &val), 200);
    assert_non_null(strstr(k2a_buf_cstr(&out), "\"assistantResponseMessage\":{\"content\":\"OK\"}"));
    k2a_buf_dispose(&out);
    k2a_arena_dispose(&arena);
    k2a_model_map_destroy(map);
}

/* ---------- 17. stubs ---------- */

static void test_stub_tools(void **state)
{
    fx_t *f = *state;
    k2a_kiro_tool_spec_t tools[1] = {{K2A_STRLIT("Read"), K2A_STRLIT("r"), K2A_STRLIT("{}")}};
    k2a_kiro_tool_use_t uses[3] = {{K2A_STRLIT("1"), K2A_STRLIT("read"), K2A_STRLIT("{}")},
                                   {K2A_STRLIT("2"), K2A_STRLIT("Gone"), K2A_STRLIT("{}")},
                                   {K2A_STRLIT("3"), K2A_STRLIT("GONE"), K2A_STRLIT("{}")}};
    k2a_kiro_turn_t hist[2] = {{0}, {.assistant = true, .uses = uses, .nuses = 3}};
    k2a_kiro_conv_t c = {.history = hist, .nhistory = 2, .tools = tools, .ntools = 1};
    assert_int_equal(k2a_norm_stub_tools(&c, &f->arena), 0);
    assert_int_equal(c.ntools, 2);
    assert_str(c.tools[0].name, "Read");
    assert_str(c.tools[1].name, "Gone");
    assert_str(c.tools[1].description, "Tool used in conversation history");
    assert_str(c.tools[1].schema, "{\"type\":\"object\",\"properties\":{}}"); /* the shape of a sanitized schema */
}

/* ---------- the driver ---------- */

static void test_normalize_leaves_request_untouched(void **state)
{
    fx_t *f = *state;
    load(f, "{\"model\":\"m\",\"system\":\"S\",\"thinking\":{\"type\":\"adaptive\"},\"tools\":[{\"name\":\"T\"}],\"messages\":["
            "{\"role\":\"assistant\",\"content\":\"lead\"},{\"role\":\"user\",\"content\":[" IMG(
                PNG64, "image/png") "]},"
                                    "{\"role\":\"user\",\"content\":\"u2\"},{\"role\":\"system\",\"content\":\"S2\"},"
                                    "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"th\"}," TU(
                                        "a") "," TU("b") "]},"
                                                         "{\"role\":\"user\",\"content\":[" TR("a") "," TR("a") "," TR(
                                                             "zz") "]},{\"role\":\"assistant\",\"content\":\"prefill\"}]}");
    k2a_ir_request_t before = f->req;
    size_t nblocks[16];
    for (size_t i = 0; i < before.nmessages; ++i)
        nblocks[i] = before.messages[i].nblocks;
    k2a_kiro_conv_t c;
    f->cfg.image_history_messages = 0;
    assert_int_equal(k2a_normalize_for_kiro(&f->req, &f->cfg, false, &f->arena, &c, &f->err), 0);
    assert_memory_equal(&before, &f->req, sizeof(before));
    assert_int_equal(f->req.nmessages, 7);
    for (size_t i = 0; i < before.nmessages; ++i)
        assert_int_equal(f->req.messages[i].nblocks, nblocks[i]);
    assert_int_equal(f->req.messages[1].blocks[0].kind, K2A_BLOCK_IMAGE);
    assert_int_equal(f->req.messages[0].role, K2A_ROLE_ASSISTANT);
    /* and the conversation: [sys, OK, Continue., lead, [image]\nu2, <thinking>th</thinking> + use a] + current (result a) */
    assert_true(c.thinking);
    assert_int_equal(c.nsystem, 2);
    assert_int_equal(c.nhistory, 6);
    assert_str(c.history[0].content, "<thinking_mode>adaptive</thinking_mode><thinking_effort>high</thinking_effort>\nS\nS2");
    assert_str(c.history[1].content, "OK");
    assert_str(c.history[2].content, "Continue.");
    assert_str(c.history[3].content, "lead");
    assert_str(c.history[4].content, "[image]\nu2");
    assert_int_equal(c.history[4].nimages, 0);
    assert_str(c.history[5].content, "<thinking>th</thinking>");
    assert_int_equal(c.history[5].nuses, 1);
    assert_str(c.history[5].uses[0].id, "a");
    assert_int_equal(c.current.nresults, 1);
    assert_str(c.current.results[0].tool_use_id, "a");
    assert_int_equal(c.ntools, 1);
    for (size_t i = 0; i < c.nhistory; ++i)
        assert_int_equal(c.history[i].assistant, i % 2 == 1);
}

static void test_payload_drop_oldest(void **state)
{
    fx_t *f = *state;
    load(f, "{\"model\":\"m\",\"system\":\"S\",\"messages\":[{\"role\":\"user\",\"content\":\"u0\"},{\"role\":\"assistant\","
            "\"content\":[" TU("a") "]},{\"role\":\"user\",\"content\":[" TR("a") "]},{\"role\":\"assistant\",\"content\":[" TU(
                "b") "]},"
                     "{\"role\":\"user\",\"content\":[" TR("b") "]},{\"role\":\"assistant\",\"content\":[" TU(
                         "c") "]},"
                              "{\"role\":\"user\",\"content\":[" TR("c") "]}]}");
    k2a_kiro_conv_t c;
    assert_int_equal(k2a_normalize_for_kiro(&f->req, &f->cfg, false, &f->arena, &c, &f->err), 0);
    assert_int_equal(c.nhistory, 2 + 6);
    assert_int_equal(k2a_normalize_droppable_pairs(&c), 2); /* the pair the current message answers stays */
    assert_int_equal(k2a_normalize_drop_oldest(&c, 1), 2);
    assert_int_equal(c.nhistory, 6);
    assert_str(c.history[0].content, "S"); /* the system pair stays */
    assert_str(c.history[1].content, "OK");
    /* the first remaining user turn answered the dropped assistant: its result went with it */
    assert_int_equal(c.history[2].nresults, 0);
    assert_str(c.history[2].content, "Continue.");
    assert_str(c.history[3].uses[0].id, "b");
    assert_int_equal(k2a_normalize_drop_oldest(&c, 99), 2);
    assert_int_equal(c.nhistory, 4);
    assert_str(c.history[3].uses[0].id, "c");
    assert_int_equal(k2a_normalize_droppable_pairs(&c), 0);
    assert_int_equal(k2a_normalize_drop_oldest(&c, 1), 0);
    assert_int_equal(c.current.nresults, 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_old_images),
        T(test_check_image),
        T(test_validate_images_names_message),
        T(test_fold_system),
        T(test_thinking_prefix),
        T(test_thinking_max_tokens_guards),
        T(test_drop_prefill),
        T(test_merge_same_role),
        T(test_leading_assistant),
        T(test_dedupe_tool_ids),
        T(test_drop_unanswered_tool_uses),
        T(test_drop_orphan_tool_results),
        T(test_tool_name),
        T(test_tool_description),
        T(test_tool_description_from_a_long_name_is_cut),
        T(test_tool_schema),
        T(test_tools_rule),
        T(test_inline_thinking),
        T(test_render_user),
        T(test_render_assistant),
        T(test_fill_empty),
        T(test_fill_empty_blank_assistant_without_tool_uses),
        T(test_stub_tools),
        T(test_normalize_leaves_request_untouched),
        T(test_payload_drop_oldest),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
