/*
 * Anthropic request decoder: every field into the IR, zero-copy strings, captured tool input and schemas,
 * dropped server tools and unknown blocks, errors that name the JSON path, every limit, 10 000-level nesting,
 * and a real Claude Code request truncated at every byte offset (an error each time, never a crash).
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
#include "golden_support.h"

static bool in_body(k2a_str_t s, const char *body, size_t len)
{
    return s.base >= body && s.base + s.len <= body + len;
}

static void assert_str(k2a_str_t s, const char *lit)
{
    if (!k2a_str_eq_lit(s, lit)) {
        print_error("expected \"%s\", got \"%.*s\"\n", lit, (int)s.len, s.base != NULL ? s.base : "(null)");
        fail();
    }
}

typedef struct st_fixture_t {
    k2a_arena_t arena;
    k2a_ir_request_t req;
    k2a_convert_error_t err;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    k2a_arena_init(&f->arena, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    k2a_arena_dispose(&f->arena);
    free(f);
    return 0;
}

static int decode(fixture_t *f, const char *body)
{
    return k2a_anthropic_decode(body, strlen(body), NULL, &f->arena, &f->req, &f->err);
}

static void test_full_request(void **state)
{
    fixture_t *f = *state;
    static const char body[] =
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":64000,\"stream\":true,\"temperature\":0.7,\"top_p\":1,"
        "\"stop_sequences\":[\"END\",\"STOP\"],"
        "\"system\":[{\"type\":\"text\",\"text\":\"S1\"},{\"type\":\"text\",\"text\":\"S2\",\"cache_control\":{\"type\":"
        "\"ephemeral\"}}],"
        "\"messages\":["
        "{\"role\":\"user\",\"content\":\"hello\"},"
        "{\"content\":[{\"text\":\"thinking...\",\"type\":\"text\"},{\"type\":\"thinking\",\"thinking\":\"T\",\"signature\":"
        "\"SIG\"},"
        "{\"type\":\"redacted_thinking\",\"data\":\"OPAQUE\"},"
        "{\"type\":\"tool_use\",\"id\":\"tu1\",\"name\":\"Bash\",\"input\":{\"command\":\"ls -la\",\"n\":[1,2.5,null,true]}}],"
        "\"role\":\"assistant\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"tu1\",\"is_error\":true,"
        "\"content\":[{\"type\":\"text\",\"text\":\"out\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
        "\"image/png\",\"data\":\"iVBORw0KGgo=\"}}]},"
        "{\"type\":\"document\",\"title\":\"Doc\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\",\"data\":\"D\"}}]},"
        "{\"role\":\"system\",\"content\":\"mid\"}],"
        "\"tools\":[{\"name\":\"Bash\",\"description\":\"Run\",\"input_schema\":{\"type\":\"object\",\"properties\":{}},"
        "\"defer_loading\":true}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"Bash\",\"disable_parallel_tool_use\":true},"
        "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":31999,\"display\":\"omitted\"},"
        "\"output_config\":{\"effort\":\"medium\"},\"context_management\":{\"edits\":[{\"type\":\"clear_thinking_20251015\"}]},"
        "\"metadata\":{\"user_id\":\"user_abc_account__session_0b4445e1-f5be-49e1-87ce-62bbc28ad705\"}}";
    assert_int_equal(decode(f, body), 0);
    k2a_ir_request_t *r = &f->req;
    assert_str(r->model, "claude-sonnet-4-5");
    assert_int_equal(r->max_tokens, 64000);
    assert_true(r->stream);
    assert_true(r->has_temperature && r->temperature == 0.7);
    assert_true(r->has_top_p && r->top_p == 1.0);
    assert_int_equal(r->nstop_sequences, 2);
    assert_str(r->stop_sequences[1], "STOP");
    assert_int_equal(r->nsystem, 2);
    assert_str(r->system[1].text, "S2");
    assert_int_equal(r->nmessages, 4);
    assert_int_equal(r->messages[0].role, K2A_ROLE_USER);
    assert_int_equal(r->messages[0].nblocks, 1);
    assert_int_equal(r->messages[0].blocks[0].kind, K2A_BLOCK_TEXT);
    assert_str(r->messages[0].blocks[0].text, "hello");
    const k2a_ir_message_t *a = &r->messages[1];
    assert_int_equal(a->role, K2A_ROLE_ASSISTANT); /* role after content */
    assert_int_equal(a->nblocks, 4);
    assert_str(a->blocks[0].text, "thinking...");
    assert_int_equal(a->blocks[1].kind, K2A_BLOCK_THINKING);
    assert_str(a->blocks[1].text, "T");
    assert_str(a->blocks[1].signature, "SIG");
    assert_int_equal(a->blocks[2].kind, K2A_BLOCK_REDACTED_THINKING);
    assert_str(a->blocks[2].text, "OPAQUE");
    assert_int_equal(a->blocks[3].kind, K2A_BLOCK_TOOL_USE);
    assert_str(a->blocks[3].id, "tu1");
    assert_str(a->blocks[3].name, "Bash");
    assert_str(a->blocks[3].input, "{\"command\":\"ls -la\",\"n\":[1,2.5,null,true]}");
    assert_true(in_body(a->blocks[3].input, body, sizeof(body) - 1)); /* compact: zero-copy slice */
    const k2a_ir_message_t *u = &r->messages[2];
    assert_int_equal(u->nblocks, 2);
    assert_int_equal(u->blocks[0].kind, K2A_BLOCK_TOOL_RESULT);
    assert_str(u->blocks[0].tool_use_id, "tu1");
    assert_true(u->blocks[0].is_error);
    assert_int_equal(u->blocks[0].ncontent, 2);
    assert_int_equal(u->blocks[0].content[1].kind, K2A_BLOCK_IMAGE);
    assert_str(u->blocks[0].content[1].media_type, "image/png");
    assert_str(u->blocks[0].content[1].data, "iVBORw0KGgo=");
    assert_int_equal(u->blocks[1].kind, K2A_BLOCK_DOCUMENT);
    assert_str(u->blocks[1].text, "D");
    assert_str(u->blocks[1].name, "Doc");
    assert_int_equal(r->messages[3].role, K2A_ROLE_SYSTEM);
    assert_int_equal(r->ntools, 1);
    assert_str(r->tools[0].name, "Bash");
    assert_str(r->tools[0].input_schema, "{\"type\":\"object\",\"properties\":{}}");
    assert_int_equal(r->tool_choice, K2A_TOOL_CHOICE_TOOL);
    assert_str(r->tool_choice_name, "Bash");
    assert_int_equal(r->thinking.mode, K2A_THINKING_ENABLED);
    assert_int_equal(r->thinking.budget_tokens, 31999);
    assert_true(r->thinking.display_omitted);
    assert_str(r->thinking.effort, "medium");
    assert_str(r->session_id, "0b4445e1-f5be-49e1-87ce-62bbc28ad705");
    assert_true(in_body(r->user_id_raw, body, sizeof(body) - 1));
}

static void test_zero_copy_and_escapes(void **state)
{
    fixture_t *f = *state;
    static const char body[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"plain\"},"
        "{\"type\":\"text\",\"text\":\"a\\\"b\\n\\u00e9\\ud83d\\ude00\"}]}]}";
    assert_int_equal(decode(f, body), 0);
    const k2a_ir_block_t *b = f->req.messages[0].blocks;
    assert_true(in_body(b[0].text, body, sizeof(body) - 1));
    assert_false(in_body(b[1].text, body, sizeof(body) - 1));
    assert_str(b[1].text, "a\"b\n\xc3\xa9\xf0\x9f\x98\x80");
    assert_true(in_body(f->req.model, body, sizeof(body) - 1));
}

static void test_system_string_and_nulls(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(decode(f, "{\"model\":\"m\",\"system\":\"Be brief.\",\"tools\":null,\"metadata\":null,\"temperature\":null,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"),
                     0);
    assert_int_equal(f->req.nsystem, 1);
    assert_str(f->req.system[0].text, "Be brief.");
    assert_int_equal(f->req.ntools, 0);
    assert_false(f->req.has_temperature);
    assert_false(f->req.stream);
}

/* fuzz_anthropic_req finding (anthropic_req-crash-74117b62): "system" as a string and then again as an array wrote the
 * array's blocks past the one-block list of the string (heap overflow). A repeated key now replaces the earlier value. */
static void test_repeated_keys_replace_the_earlier_value(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(decode(f,
                            "{\"model\":\"m\",\"system\":\"first\",\"system\":[{\"type\":\"text\",\"text\":\"a\"},"
                            "{\"type\":\"text\",\"text\":\"b\"},{\"type\":\"text\",\"text\":\"c\"}],"
                            "\"tools\":[{\"name\":\"t1\",\"input_schema\":{}}],\"tools\":[{\"name\":\"t2\",\"input_schema\":{}}],"
                            "\"stop_sequences\":[\"x\"],\"stop_sequences\":[\"y\",\"z\"],"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"old\"}],"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"new\"}]}"),
                     0);
    assert_int_equal(f->req.nsystem, 3);
    assert_str(f->req.system[0].text, "a");
    assert_str(f->req.system[2].text, "c");
    assert_int_equal(f->req.ntools, 1);
    assert_str(f->req.tools[0].name, "t2");
    assert_int_equal(f->req.nstop_sequences, 2);
    assert_str(f->req.stop_sequences[0], "y");
    assert_int_equal(f->req.nmessages, 1);
    assert_str(f->req.messages[0].blocks[0].text, "new");
    /* and the other order: array first, then a string */
    assert_int_equal(decode(f,
                            "{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}],"
                            "\"system\":\"last\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"),
                     0);
    assert_int_equal(f->req.nsystem, 1);
    assert_str(f->req.system[0].text, "last");
}

static void test_tool_input_forms(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(decode(f, "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":["
                               "{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"n\"},"
                               "{\"type\":\"tool_use\",\"id\":\"b\",\"name\":\"n\",\"input\":{ \"k\" : [ 1 , \"x y\" ] }},"
                               "{\"type\":\"tool_use\",\"id\":\"c\",\"name\":\"n\",\"input\":{}}]}],"
                               "\"tools\":[{\"name\":\"n\",\"input_schema\":{\"type\" :\"object\"}},{\"name\":\"m2\"}]}"),
                     0);
    const k2a_ir_block_t *b = f->req.messages[0].blocks;
    assert_str(b[0].input, "{}");
    assert_str(b[1].input, "{\"k\":[1,\"x y\"]}"); /* re-serialised compactly */
    assert_str(b[2].input, "{}");
    assert_str(f->req.tools[0].input_schema, "{\"type\":\"object\"}");
    assert_int_equal(f->req.tools[1].input_schema.len, 0);
    assert_str(f->req.tools[1].description, "");
}

static void test_dropped_things(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(
        decode(f, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"tool_reference\",\"tool_name\":\"Bash\"},"
                  "{\"type\":\"search_result\",\"source\":\"https://x\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]},"
                  "{\"type\":\"text\",\"text\":\"kept\",\"citations\":[{\"x\":1}]},"
                  "{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":[{\"type\":\"tool_reference\",\"tool_name\":"
                  "\"X\"},{\"type\":\"thinking\",\"thinking\":\"no\"}]}]}],"
                  "\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\",\"max_uses\":5},"
                  "{\"type\":\"bash_20250124\",\"name\":\"bash\"},{\"type\":\"text_editor_20250728\",\"name\":\"e\"},"
                  "{\"type\":\"code_execution_20250825\",\"name\":\"c\"},{\"type\":\"computer_20250124\",\"name\":\"pc\"},"
                  "{\"name\":\"websearch\"},{\"name\":\"web_search\"},{\"name\":\"keep\",\"defer_loading\":true},"
                  "{\"type\":\"custom\",\"name\":\"keep2\"}],"
                  "\"context_management\":{\"edits\":[]},\"anthropic_beta\":[\"x\"],\"service_tier\":\"auto\"}"),
        0);
    assert_int_equal(f->req.messages[0].nblocks, 2);
    assert_str(f->req.messages[0].blocks[0].text, "kept");
    assert_int_equal(f->req.messages[0].blocks[1].kind, K2A_BLOCK_TOOL_RESULT);
    assert_int_equal(f->req.messages[0].blocks[1].ncontent, 0);
    assert_int_equal(f->req.ntools, 2);
    assert_str(f->req.tools[0].name, "keep");
    assert_str(f->req.tools[1].name, "keep2");
}

/* A client tool whose name ends in a date (lookup_20250101) is an ordinary tool: server tools are told apart by their
 * `type` only (fuzz_anthropic_req finding: the name was taken for a server tool's and the request failed). */
static void test_client_tool_with_a_dated_name_is_kept(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(decode(f, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                               "\"tools\":[{\"type\":\"custom\",\"name\":\"lookup_20250101\",\"input_schema\":{}},"
                               "{\"name\":\"get_20991231\",\"input_schema\":{}},"
                               "{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]}"),
                     0);
    assert_int_equal(f->req.ntools, 2);
    assert_str(f->req.tools[0].name, "lookup_20250101");
    assert_str(f->req.tools[1].name, "get_20991231");
}

/* ---------- errors name the JSON path ---------- */

typedef struct st_error_case_t {
    const char *body;
    int code;
    const char *message;
} error_case_t;

#define MSGS(x) "{\"model\":\"m\",\"messages\":" x "}"

static const error_case_t error_cases[] = {
    {"", K2A_EJSON_SYNTAX, "request body is empty"},
    {"[1,2]", K2A_EJSON_TYPE, "request body: expected a JSON object"},
    {"\"str\"", K2A_EJSON_TYPE, "request body: expected a JSON object"},
    {"42", K2A_EJSON_TYPE, "request body: expected a JSON object"},
    {"{\"model\":\"m\",}", K2A_EJSON_SYNTAX, "malformed JSON at byte"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"]}", K2A_EJSON_SYNTAX, "(in messages[0].content)"},
    {"{\"model\":\"m\",\"messages\":[]} trailing", K2A_EJSON_SYNTAX, "malformed JSON"},
    {"{\"model\":5,\"messages\":[]}", K2A_EJSON_TYPE, "model: expected a string"},
    {"{\"messages\":[]}", K2A_EMISSING_FIELD, "model: missing"},
    {"{\"model\":\"m\"}", K2A_EMISSING_FIELD, "messages: missing"},
    {"{\"model\":\"m\",\"messages\":{}}", K2A_EJSON_TYPE, "messages: expected an array"},
    {"{\"model\":\"m\",\"max_tokens\":\"10\",\"messages\":[]}", K2A_EJSON_TYPE, "max_tokens: expected an integer"},
    {"{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[]}", K2A_EJSON_TYPE, "max_tokens: expected an integer"},
    {"{\"model\":\"m\",\"max_tokens\":-1,\"messages\":[]}", K2A_EBAD_PARAM, "max_tokens: must not be negative"},
    {"{\"model\":\"m\",\"stream\":\"yes\",\"messages\":[]}", K2A_EJSON_TYPE, "stream: expected a boolean"},
    {"{\"model\":\"m\",\"system\":5,\"messages\":[]}", K2A_EJSON_TYPE, "system: expected a string or an array"},
    {"{\"model\":\"m\",\"system\":[\"s\"],\"messages\":[]}", K2A_EJSON_TYPE, "system[0]: expected an object"},
    {"{\"model\":\"m\",\"system\":[{\"type\":\"text\"}],\"messages\":[]}", K2A_EMISSING_FIELD, "system[0].text: missing"},
    {MSGS("[5]"), K2A_EJSON_TYPE, "messages[0]: expected an object"},
    {MSGS("[null]"), K2A_EJSON_TYPE, "messages[0]: expected an object"},
    {MSGS("[{\"content\":\"x\"}]"), K2A_EMISSING_FIELD, "messages[0].role: missing"},
    {MSGS("[{\"role\":\"user\"}]"), K2A_EMISSING_FIELD, "messages[0].content: missing"},
    {MSGS("[{\"role\":\"user\",\"content\":5}]"), K2A_EJSON_TYPE, "messages[0].content: expected a string or an array"},
    {MSGS("[{\"role\":\"tool\",\"content\":\"x\"}]"), K2A_EBAD_PARAM, "messages[0].role: must be"},
    {MSGS("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]"), K2A_EMISSING_FIELD,
     "messages[1].content[0].type: missing"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]"), K2A_EJSON_TYPE,
     "messages[0].content[0].text: expected a string"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]"), K2A_EMISSING_FIELD, "messages[0].content[0].text: missing"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":5}]}]"), K2A_EJSON_TYPE, "messages[0].content[0].type: expected a string"},
    {MSGS("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":"
          "\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":5}}]}]"),
     K2A_EJSON_TYPE, "messages[1].content[1].source.data: expected a string"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":\"x\"}]}]"), K2A_EJSON_TYPE,
     "messages[0].content[0].source: expected an object"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image\"}]}]"), K2A_EMISSING_FIELD,
     "messages[0].content[0].source: missing"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x/y.png\"}}]}]"),
     K2A_EIMAGE_URL, "messages[0].content[0].source: image source type \"url\" is not supported: only base64 image data"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]}]"),
     K2A_EIMAGE_URL, "only base64 image data"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/bmp\","
          "\"data\":\"Qk0=\"}}]}]"),
     K2A_EIMAGE_INVALID, "messages[0].content[0].source.media_type: unsupported image type \"image/bmp\""},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"data\":\"Qk0=\"}}]}]"),
     K2A_EMISSING_FIELD, "messages[0].content[0].source.media_type: missing"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":\"application/"
          "pdf\","
          "\"data\":\"JVBERg==\"}}]}]"),
     K2A_EBAD_PARAM, "messages[0].content[0].source.type: document source \"base64\" is not supported"},
    {MSGS("[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"name\":\"n\"}]}]"), K2A_EMISSING_FIELD,
     "messages[0].content[0].id: missing"},
    {MSGS("[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"i\",\"name\":\"n\",\"input\":\"{}\"}]}]"),
     K2A_EJSON_TYPE, "messages[0].content[0].input: expected an object"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"content\":\"x\"}]}]"), K2A_EMISSING_FIELD,
     "messages[0].content[0].tool_use_id: missing"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"is_error\":\"no\"}]}]"),
     K2A_EJSON_TYPE, "messages[0].content[0].is_error: expected a boolean"},
    {MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":[{\"type\":\"text\","
          "\"text\":[1]}]}]}]"),
     K2A_EJSON_TYPE, "messages[0].content[0].content[0].text: expected a string"},
    {"{\"model\":\"m\",\"messages\":[],\"tools\":[{\"description\":\"d\"}]}", K2A_EMISSING_FIELD, "tools[0].name: missing"},
    {"{\"model\":\"m\",\"messages\":[],\"tools\":[{\"name\":\"a\"},{\"name\":\"b\",\"input_schema\":\"{}\"}]}", K2A_EJSON_TYPE,
     "tools[1].input_schema: expected an object"},
    {"{\"model\":\"m\",\"messages\":[],\"tools\":{}}", K2A_EJSON_TYPE, "tools: expected an array"},
    {"{\"model\":\"m\",\"messages\":[],\"tool_choice\":{\"type\":\"tool\"}}", K2A_EMISSING_FIELD, "tool_choice.name: missing"},
    {"{\"model\":\"m\",\"messages\":[],\"tool_choice\":{\"type\":\"maybe\"}}", K2A_EBAD_PARAM, "tool_choice.type: must be"},
    {"{\"model\":\"m\",\"messages\":[],\"thinking\":{\"type\":\"sometimes\"}}", K2A_EBAD_PARAM, "thinking.type: must be"},
    {"{\"model\":\"m\",\"messages\":[],\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":\"many\"}}", K2A_EJSON_TYPE,
     "thinking.budget_tokens: expected an integer"},
    {"{\"model\":\"m\",\"messages\":[],\"stop_sequences\":[\"a\",3]}", K2A_EJSON_TYPE, "stop_sequences[1]: expected a string"},
    {"{\"model\":\"m\",\"messages\":[],\"metadata\":{\"user_id\":7}}", K2A_EJSON_TYPE, "metadata.user_id: expected a string"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", K2A_EJSON_SYNTAX, "malformed JSON"},
};

static void test_errors_name_paths(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); ++i) {
        const error_case_t *c = &error_cases[i];
        k2a_arena_dispose(&f->arena);
        k2a_arena_init(&f->arena, 0);
        int r = decode(f, c->body);
        if (r != c->code || f->err.code != c->code || strstr(f->err.message, c->message) == NULL) {
            print_error("case %zu %s: got %s \"%s\", expected %s containing \"%s\"\n", i, c->body,
                        r == 0 ? "success" : k2a_errname(r), f->err.message, k2a_errname(c->code), c->message);
            fail();
        }
    }
}

static void test_unknown_block_with_odd_fields_is_fine(void **state)
{
    fixture_t *f = *state;
    /* "source" is a string and "content" an object: wrong for known block types, but this type is unknown */
    assert_int_equal(decode(f, MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"future_block\",\"source\":\"s\",\"input\":\"i\","
                                    "\"content\":{\"a\":1},\"text\":7},{\"type\":\"text\",\"text\":\"ok\"}]}]")),
                     0);
    assert_int_equal(f->req.messages[0].nblocks, 1);
    assert_str(f->req.messages[0].blocks[0].text, "ok");
}

/* ---------- limits ---------- */

static char *nested(size_t depth, const char *prefix, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *b = malloc(pl + 2 * depth + sl + 1), *p = b;
    memcpy(p, prefix, pl);
    p += pl;
    memset(p, '[', depth);
    p += depth;
    memset(p, ']', depth);
    p += depth;
    memcpy(p, suffix, sl + 1);
    return b;
}

static void test_depth_10000_is_a_clean_error(void **state)
{
    fixture_t *f = *state;
    char *b = nested(10000, "{\"model\":\"m\",\"messages\":[],\"unknown\":", "}");
    assert_int_equal(decode(f, b), K2A_EJSON_DEPTH);
    assert_non_null(strstr(f->err.message, "deeper than 128 levels"));
    free(b);
    /* inside a captured tool input */
    b = nested(10000,
               "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"i\","
               "\"name\":\"n\",\"input\":{\"x\":",
               "}}]}]}");
    k2a_arena_dispose(&f->arena);
    k2a_arena_init(&f->arena, 0);
    assert_int_equal(decode(f, b), K2A_EJSON_DEPTH);
    free(b);
    /* objects too */
    size_t depth = 10000;
    char *o = malloc(depth * 6 + 64), *p = o;
    p += sprintf(p, "{\"model\":\"m\",\"messages\":[],\"x\":");
    for (size_t i = 0; i < depth; ++i)
        p += sprintf(p, "{\"a\":");
    *p++ = '1';
    for (size_t i = 0; i < depth; ++i)
        *p++ = '}';
    strcpy(p, "}");
    k2a_arena_dispose(&f->arena);
    k2a_arena_init(&f->arena, 0);
    assert_int_equal(decode(f, o), K2A_EJSON_DEPTH);
    free(o);
}

static void test_depth_limit_boundary(void **state)
{
    fixture_t *f = *state;
    k2a_convert_limits_t l = k2a_convert_limits_default();
    /* root object is level 1: 127 arrays below it make 128 levels */
    char *b = nested(127, "{\"model\":\"m\",\"messages\":[],\"x\":", "}");
    assert_int_equal(k2a_anthropic_decode(b, strlen(b), &l, &f->arena, &f->req, &f->err), 0);
    free(b);
    b = nested(128, "{\"model\":\"m\",\"messages\":[],\"x\":", "}");
    assert_int_equal(k2a_anthropic_decode(b, strlen(b), &l, &f->arena, &f->req, &f->err), K2A_EJSON_DEPTH);
    free(b);
    l.max_depth = 5; /* request, messages, message, content, block */
    const char *ok = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]}";
    assert_int_equal(k2a_anthropic_decode(ok, strlen(ok), &l, &f->arena, &f->req, &f->err), 0);
    l.max_depth = 4;
    assert_int_equal(k2a_anthropic_decode(ok, strlen(ok), &l, &f->arena, &f->req, &f->err), K2A_EJSON_DEPTH);
}

static void expect_limit(fixture_t *f, const k2a_convert_limits_t *l, const char *body, const char *msg)
{
    k2a_arena_dispose(&f->arena);
    k2a_arena_init(&f->arena, 0);
    int r = k2a_anthropic_decode(body, strlen(body), l, &f->arena, &f->req, &f->err);
    if (r != K2A_ETOOBIG || strstr(f->err.message, msg) == NULL) {
        print_error("%s: got %s \"%s\", expected TOOBIG with \"%s\"\n", body, k2a_errname(r), f->err.message, msg);
        fail();
    }
}

static void test_count_and_size_limits(void **state)
{
    fixture_t *f = *state;
    k2a_convert_limits_t l = k2a_convert_limits_default();
    l.max_messages = 2;
    l.max_blocks = 3;
    l.max_tools = 1;
    l.max_system_blocks = 1;
    l.max_stop_sequences = 1;
    l.max_json_value_bytes = 12;
    expect_limit(f, &l, MSGS("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\"}]"),
                 "messages[2]: too many messages (limit 2)");
    expect_limit(
        f, &l,
        MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"tool_result\",\"tool_use_id\":"
             "\"t\",\"content\":[{\"type\":\"text\",\"text\":\"b\"},{\"type\":\"text\",\"text\":\"c\"}]}]}]"),
        "messages[0].content[1].content[1]: too many content blocks (limit 3)");
    expect_limit(f, &l, "{\"model\":\"m\",\"messages\":[],\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}",
                 "tools[1]: too many tools");
    expect_limit(f, &l, "{\"model\":\"m\",\"messages\":[],\"system\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\"}]}",
                 "system[1]: too many system blocks");
    expect_limit(f, &l, "{\"model\":\"m\",\"messages\":[],\"stop_sequences\":[\"a\",\"b\"]}",
                 "stop_sequences[1]: too many stop sequences");
    l.max_string_bytes = 10;
    expect_limit(f, &l, MSGS("[{\"role\":\"user\",\"content\":\"0123456789a\"}]"),
                 "messages[0].content: string of 11 bytes exceeds the limit of 10 bytes");
    expect_limit(f, &l,
                 MSGS("[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"i\",\"name\":\"n\",\"input\":{\"k\":"
                      "\"012345\"}}]}]"),
                 "messages[0].content[0].input: JSON value of 14 bytes exceeds the limit of 12 bytes");
    /* at the limits: fine */
    const char *ok = MSGS("[{\"role\":\"user\",\"content\":\"0123456789\"}]");
    assert_int_equal(k2a_anthropic_decode(ok, strlen(ok), &l, &f->arena, &f->req, &f->err), 0);
}

static void test_arena_limit_is_a_clean_error(void **state)
{
    fixture_t *f = *state;
    k2a_arena_dispose(&f->arena);
    k2a_arena_init(&f->arena, 1024);
    char body[8192];
    size_t n = (size_t)sprintf(body, "{\"model\":\"m\",\"messages\":[");
    for (int i = 0; i < 100; ++i)
        n += (size_t)sprintf(body + n, "%s{\"role\":\"user\",\"content\":\"x\"}", i != 0 ? "," : "");
    strcpy(body + n, "]}");
    assert_int_equal(decode(f, body), K2A_ENOMEM);
    assert_non_null(strstr(f->err.message, "memory limit"));
}

/* ---------- a real Claude Code request, truncated at every byte ---------- */

static void test_truncation_at_every_offset(void **state)
{
    fixture_t *f = *state;
    size_t len;
    char *body = gs_read_file(K2A_SOURCE_DIR "/tests/vectors/convert/client-cc-tool-allowed-3.in.json", &len);
    assert_non_null(body);
    assert_int_equal(decode(f, body), 0);
    assert_int_equal(f->req.nmessages, 4);
    assert_int_equal(f->req.ntools, 24);
    assert_str(f->req.session_id, "25fa4192-69c8-4c80-94e5-abc3f416a4e0");
    for (size_t cut = 0; cut < len; ++cut) {
        k2a_arena_t arena;
        k2a_arena_init(&arena, 0);
        k2a_ir_request_t req;
        k2a_convert_error_t err;
        char *copy = malloc(cut != 0 ? cut : 1); /* exactly cut bytes: ASan catches any read past the end */
        memcpy(copy, body, cut);
        int r = k2a_anthropic_decode(copy, cut, NULL, &arena, &req, &err);
        if (r == 0 || err.code != r || err.message[0] == '\0') {
            print_error("cut at %zu: r=%d message \"%s\"\n", cut, r, err.message);
            fail();
        }
        free(copy);
        k2a_arena_dispose(&arena);
    }
    free(body);
}

static void test_client_fixtures_decode(void **state)
{
    static const char *const names[] = {"cc-image-streaminput-2",
                                        "cc-print-json-2",
                                        "cc-slash-context-13",
                                        "cc-slash-context-2",
                                        "cc-slash-context-4",
                                        "cc-sonnet45-json-2",
                                        "cc-thinking-off-2",
                                        "cc-tool-allowed-2",
                                        "sdk-text-1",
                                        "sdk-text-3",
                                        "sdk-tool-4"};
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        char path[512];
        size_t len;
        snprintf(path, sizeof(path), K2A_SOURCE_DIR "/tests/vectors/convert/client-%s.in.json", names[i]);
        char *body = gs_read_file(path, &len);
        assert_non_null(body);
        k2a_arena_dispose(&f->arena);
        k2a_arena_init(&f->arena, 0);
        int r = k2a_anthropic_decode(body, len, NULL, &f->arena, &f->req, &f->err);
        if (r != 0) {
            print_error("%s: %s\n", names[i], f->err.message);
            fail();
        }
        assert_true(f->req.nmessages >= 1);
        free(body);
    }
}

/* ---------- metadata.user_id ---------- */

static void test_session_from_user_id(void **state)
{
    fixture_t *f = *state;
    k2a_str_t s = k2a_anthropic_session_from_user_id(
        K2A_STRLIT("{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"8ee643ce-c6db-463e-8818-3e80b62a0dbd\"}"),
        &f->arena);
    assert_str(s, "8ee643ce-c6db-463e-8818-3e80b62a0dbd");
    s = k2a_anthropic_session_from_user_id(K2A_STRLIT("user_3f2a_account__session_0b4445e1-f5be-49e1-87ce-62bbc28ad705"),
                                           &f->arena);
    assert_str(s, "0b4445e1-f5be-49e1-87ce-62bbc28ad705");
    /* nested session_id does not count, nor a non-UUID, nor garbage */
    assert_null(k2a_anthropic_session_from_user_id(K2A_STRLIT("{\"x\":{\"session_id\":\"8ee643ce-c6db-463e-8818-3e80b62a0dbd\"}}"),
                                                   &f->arena)
                    .base);
    assert_null(k2a_anthropic_session_from_user_id(K2A_STRLIT("{\"session_id\":\"not-a-uuid\"}"), &f->arena).base);
    assert_null(k2a_anthropic_session_from_user_id(K2A_STRLIT("{\"session_id\":"), &f->arena).base);
    assert_null(k2a_anthropic_session_from_user_id(K2A_STRLIT("sdk-test-user"), &f->arena).base);
    assert_null(k2a_anthropic_session_from_user_id(K2A_STRLIT("user_x_session_0b4445e1"), &f->arena).base);
    assert_null(k2a_anthropic_session_from_user_id(K2A_STR_NULL, &f->arena).base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_copy_and_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_string_and_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_keys_replace_the_earlier_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_input_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_things, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_block_with_odd_fields_is_fine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_10000_is_a_clean_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_and_size_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_limit_is_a_clean_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_at_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_fixtures_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_from_user_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_tool_with_a_dated_name_is_kept, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
