/*
 * Tool schema sanitizer (src/convert/tool_schema.c, kiro-protocol-2026.md §6): every real tool schema of
 * tests/fixtures/clients comes out valid, idempotent, and equal to its input but for $schema (minimal mode) and the
 * stripped keywords (strict mode); MCP-style schemas with root combinators, $ref roots, non-object roots, $schema at
 * depth, deep nesting and hostile sizes.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "core/errors.h"
#include "convert/tool_schema.h"
#include "resp_support.h"

/* ---------- helpers ---------- */

static char *sanitize_mode(const char *in, k2a_tool_schema_strip_t mode, int *rc, k2a_tool_schema_info_t *info)
{
    k2a_buf_t b;
    k2a_buf_init(&b, k2a_tool_schema_max_output(strlen(in)));
    *rc = k2a_tool_schema_sanitize(in, strlen(in), mode, &b, info);
    char *s = strndup(b.base != NULL ? b.base : "", b.len);
    k2a_buf_dispose(&b);
    return s;
}

/* strict output, asserting success, validity, the root rules and idempotence */
static char *check(const char *in, k2a_tool_schema_strip_t mode)
{
    int rc;
    k2a_tool_schema_info_t info;
    char *out = sanitize_mode(in, mode, &rc, &info);
    assert_int_equal(rc, 0);
    char err[128];
    yajl_val v = yajl_tree_parse(out, err, sizeof(err));
    assert_non_null(v);
    assert_true(YAJL_IS_OBJECT(v));
    const char *tp[] = {"type", NULL};
    yajl_val t = yajl_tree_get(v, tp, yajl_t_string);
    assert_non_null(t);
    assert_string_equal(t->u.string, "object");
    for (size_t i = 0; i < v->u.object.len; ++i) {
        const char *k = v->u.object.keys[i];
        assert_true(strcmp(k, "anyOf") != 0 && strcmp(k, "oneOf") != 0 && strcmp(k, "allOf") != 0);
    }
    assert_null(strstr(out, "\"$schema\""));
    yajl_tree_free(v);
    char *again = sanitize_mode(out, mode, &rc, NULL);
    assert_int_equal(rc, 0);
    assert_string_equal(again, out); /* idempotent */
    free(again);
    return out;
}

static void expect(const char *in, k2a_tool_schema_strip_t mode, const char *want)
{
    char *out = check(in, mode);
    assert_string_equal(out, want);
    free(out);
}

/* path -> scalar text, for structural comparisons */
typedef struct st_flat_t {
    char **paths;
    size_t n, cap;
} flat_t;

static void flat_add(flat_t *f, const char *path, yajl_val v)
{
    char val[64];
    if (YAJL_IS_STRING(v))
        snprintf(val, sizeof(val), "s:%.50s", v->u.string);
    else if (YAJL_IS_NUMBER(v))
        snprintf(val, sizeof(val), "n:%s", v->u.number.r);
    else if (YAJL_IS_OBJECT(v))
        snprintf(val, sizeof(val), "{}");
    else if (YAJL_IS_ARRAY(v))
        snprintf(val, sizeof(val), "[]");
    else
        snprintf(val, sizeof(val), "%d", (int)v->type);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->paths = realloc(f->paths, f->cap * sizeof(*f->paths));
        assert_non_null(f->paths);
    }
    size_t len = strlen(path) + strlen(val) + 2;
    f->paths[f->n] = malloc(len);
    snprintf(f->paths[f->n++], len, "%s=%s", path, val);
}

static void flatten(flat_t *f, const char *path, yajl_val v)
{
    char sub[2048];
    flat_add(f, path, v);
    if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; ++i) {
            snprintf(sub, sizeof(sub), "%s/%s", path, v->u.object.keys[i]);
            flatten(f, sub, v->u.object.values[i]);
        }
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; ++i) {
            snprintf(sub, sizeof(sub), "%s/%zu", path, i);
            flatten(f, sub, v->u.array.values[i]);
        }
    }
}

static bool flat_has(const flat_t *f, const char *entry)
{
    for (size_t i = 0; i < f->n; ++i)
        if (strcmp(f->paths[i], entry) == 0)
            return true;
    return false;
}

static void flat_free(flat_t *f)
{
    for (size_t i = 0; i < f->n; ++i)
        free(f->paths[i]);
    free(f->paths);
}

static const char *const stripped[] = {"pattern",
                                       "format",
                                       "minLength",
                                       "maxLength",
                                       "minimum",
                                       "maximum",
                                       "exclusiveMinimum",
                                       "exclusiveMaximum",
                                       "multipleOf",
                                       "minItems",
                                       "maxItems",
                                       "uniqueItems",
                                       "minProperties",
                                       "maxProperties",
                                       "propertyNames",
                                       "additionalProperties",
                                       "patternProperties",
                                       "required",
                                       NULL};

/* entry (path=value) lies under one of the keywords strict mode strips */
static bool under_stripped(const char *entry)
{
    char copy[2048];
    snprintf(copy, sizeof(copy), "%s", entry);
    char *eq = strchr(copy, '=');
    if (eq != NULL)
        *eq = '\0';
    /* the path components, skipping user-named keys under properties */
    char *save = NULL;
    bool names = false;
    for (char *c = strtok_r(copy, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
        if (names) {
            names = false;
            continue;
        }
        if (strcmp(c, "properties") == 0 || strcmp(c, "$defs") == 0) {
            names = true;
            continue;
        }
        for (const char *const *s = stripped; *s != NULL; ++s)
            if (strcmp(c, *s) == 0)
                return true;
    }
    return false;
}

/* the real schemas: Anthropic tools[].input_schema and OpenAI tools[].function.parameters */
static void fixture_schema(const char *name, const char *tool, yajl_val schema, size_t *count)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    rs_json_emit(g, schema);
    const unsigned char *text;
    size_t len;
    yajl_gen_get_buf(g, &text, &len);
    char *in = strndup((const char *)text, len);
    yajl_gen_free(g);

    char *minimal = check(in, K2A_TOOL_SCHEMA_MINIMAL);
    char *strict = check(in, K2A_TOOL_SCHEMA_STRICT);
    /* the cached entry point answers the same, first from the sanitizer, then from the cache */
    for (int k = 0; k < 2; ++k) {
        k2a_buf_t b;
        k2a_buf_init(&b, 0);
        assert_int_equal(k2a_tool_schema_sanitize_cached(in, strlen(in), K2A_TOOL_SCHEMA_STRICT, &b, NULL), 0);
        assert_int_equal(b.len, strlen(strict));
        assert_memory_equal(b.base, strict, b.len);
        k2a_buf_dispose(&b);
    }
    char err[128];
    yajl_val vi = yajl_tree_parse(in, err, sizeof(err)), vm = yajl_tree_parse(minimal, err, sizeof(err)),
             vs = yajl_tree_parse(strict, err, sizeof(err));
    assert_non_null(vi);
    assert_non_null(vm);
    assert_non_null(vs);
    flat_t fi = {0}, fm = {0}, fs = {0};
    flatten(&fi, "", vi);
    flatten(&fm, "", vm);
    flatten(&fs, "", vs);
    /* minimal: the input without $schema, nothing else changed */
    for (size_t i = 0; i < fi.n; ++i) {
        bool schema_kw = strstr(fi.paths[i], "/$schema") != NULL;
        if (flat_has(&fm, fi.paths[i]) == schema_kw) {
            print_error("%s tool %s: minimal output %s %s\n", name, tool, schema_kw ? "keeps" : "lost", fi.paths[i]);
            fail();
        }
    }
    for (size_t i = 0; i < fm.n; ++i)
        assert_true(flat_has(&fi, fm.paths[i]));
    /* strict: a subset of minimal; what is missing lies under a stripped keyword */
    for (size_t i = 0; i < fs.n; ++i)
        assert_true(flat_has(&fm, fs.paths[i]));
    for (size_t i = 0; i < fm.n; ++i) {
        if (!flat_has(&fs, fm.paths[i]) && !under_stripped(fm.paths[i])) {
            print_error("%s tool %s: strict output lost %s\n", name, tool, fm.paths[i]);
            fail();
        }
    }
    /* properties named like keywords survive (Claude Code's Grep tool has a "pattern" property) */
    if (strstr(in, "\"properties\":{\"pattern\"") != NULL)
        assert_non_null(strstr(strict, "\"properties\":{\"pattern\""));
    flat_free(&fi);
    flat_free(&fm);
    flat_free(&fs);
    yajl_tree_free(vi);
    yajl_tree_free(vm);
    yajl_tree_free(vs);
    free(in);
    free(minimal);
    free(strict);
    ++*count;
}

static void test_fixture_schemas(void **state)
{
    (void)state;
    DIR *dir = opendir(K2A_FIXTURES_DIR "/clients");
    assert_non_null(dir);
    size_t count = 0, files = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/clients/%s", K2A_FIXTURES_DIR, de->d_name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        char *text = malloc((size_t)size + 1);
        assert_int_equal(fread(text, 1, (size_t)size, fp), (size_t)size);
        text[size] = '\0';
        fclose(fp);
        char err[128];
        yajl_val root = yajl_tree_parse(text, err, sizeof(err));
        assert_non_null(root);
        const char *tp[] = {"body", "tools", NULL};
        yajl_val tools = yajl_tree_get(root, tp, yajl_t_array);
        for (size_t i = 0; tools != NULL && i < tools->u.array.len; ++i) {
            yajl_val t = tools->u.array.values[i];
            const char *sp[] = {"input_schema", NULL}, *fp2[] = {"function", "parameters", NULL}, *np[] = {"name", NULL},
                       *fnp[] = {"function", "name", NULL};
            yajl_val s = yajl_tree_get(t, sp, yajl_t_object);
            if (s == NULL)
                s = yajl_tree_get(t, fp2, yajl_t_object);
            yajl_val nm = yajl_tree_get(t, np, yajl_t_string);
            if (nm == NULL)
                nm = yajl_tree_get(t, fnp, yajl_t_string);
            if (s != NULL)
                fixture_schema(de->d_name, nm != NULL ? nm->u.string : "?", s, &count);
        }
        ++files;
        yajl_tree_free(root);
        free(text);
    }
    closedir(dir);
    assert_true(files >= 10);
    assert_true(count >= 100); /* 24 Claude Code tools in each of 6 captures, and the SDK ones */
}

/* ---------- shapes ---------- */

static void test_compliant_unchanged(void **state)
{
    (void)state;
    const char *in = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"enum\":[\"x\",\"y\"]},\"b\":{\"anyOf\":[{"
                     "\"type\":\"string\"},{\"type\":\"null\"}]}},\"required\":[\"a\"],\"description\":\"d\"}";
    expect(in, K2A_TOOL_SCHEMA_STRICT, in);
    expect(in, K2A_TOOL_SCHEMA_MINIMAL, in);
    /* numbers keep their text */
    expect("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\",\"default\":1.50e3}}}", K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\",\"default\":1.50e3}}}");
}

static void test_root_type(void **state)
{
    (void)state;
    expect("{\"properties\":{\"a\":{}}}", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\",\"properties\":{\"a\":{}}}");
    expect("{\"type\":[\"object\",\"null\"],\"properties\":{}}", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\",\"properties\":{}}");
    /* a root that cannot be an object is replaced, its description kept */
    expect("{\"type\":\"string\",\"description\":\"a path\",\"minLength\":1}", K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"description\":\"a path\",\"properties\":{}}");
    expect("[1,2]", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\",\"properties\":{}}");
    expect("\"x\"", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\",\"properties\":{}}");
    expect("true", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\",\"properties\":{}}");
    expect("null", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\",\"properties\":{}}");
    expect("{}", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\"}");
    k2a_tool_schema_info_t info;
    int rc;
    free(sanitize_mode("{\"type\":\"array\"}", K2A_TOOL_SCHEMA_STRICT, &rc, &info));
    assert_true(info.root_replaced);
    /* empty input: the default schema */
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    assert_int_equal(k2a_tool_schema_sanitize("", 0, K2A_TOOL_SCHEMA_STRICT, &b, NULL), 0);
    assert_int_equal(b.len, strlen("{\"type\":\"object\",\"properties\":{}}"));
    k2a_buf_dispose(&b);
}

static void test_root_combinators(void **state)
{
    (void)state;
    /* MCP: a union of two shapes. Properties merged (first definition wins), anyOf's required not required */
    expect("{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"anyOf\":[{\"type\":\"object\",\"description\":\"by id\","
           "\"properties\":{\"id\":{\"type\":\"string\"}},\"required\":[\"id\"]},{\"type\":\"object\",\"properties\":{\"name\":{"
           "\"type\":\"string\"},\"id\":{\"type\":\"number\"}},\"required\":[\"name\"]}]}",
           K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"description\":\"by id\",\"properties\":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":"
           "\"string\"}}}");
    /* allOf: required is the union; the root's own members first */
    expect("{\"type\":\"object\",\"description\":\"root\",\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"],"
           "\"allOf\":[{\"properties\":{\"b\":{\"type\":\"integer\",\"minimum\":0}},\"required\":[\"b\",\"a\"]},{\"type\":"
           "\"string\"}],"
           "\"title\":\"T\"}",
           K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"description\":\"root\",\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":"
           "\"integer\"}},\"required\":[\"a\",\"b\"],\"title\":\"T\"}");
    /* oneOf of non-objects only: an empty object */
    expect("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"properties\":{}}");
    /* nested combinators inside variants are flattened too; nested ones inside properties are kept */
    expect("{\"anyOf\":[{\"allOf\":[{\"properties\":{\"x\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}},\"required\":"
           "[\"x\"]}]}]}",
           K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"properties\":{\"x\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}}}");
    /* pydantic: a root $ref into $defs */
    expect("{\"$ref\":\"#/$defs/Args\",\"$defs\":{\"Args\":{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}},"
           "\"required\":[\"q\"],\"additionalProperties\":false}}}",
           K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}},\"required\":[\"q\"],\"$defs\":{\"Args\":{\"type\":"
           "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}},\"required\":[\"q\"]}}}");
    /* minimal mode flattens the same way, keeping the validation keywords */
    expect("{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\",\"pattern\":\"^a\"}},"
           "\"additionalProperties\":false}]}",
           K2A_TOOL_SCHEMA_MINIMAL, "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\",\"pattern\":\"^a\"}}}");
    k2a_tool_schema_info_t info;
    int rc;
    free(sanitize_mode("{\"allOf\":[]}", K2A_TOOL_SCHEMA_STRICT, &rc, &info));
    assert_int_equal(rc, 0);
    assert_true(info.flattened);
}

static void test_stripping(void **state)
{
    (void)state;
    const char *in = "{\"type\":\"object\",\"$schema\":\"s\",\"additionalProperties\":false,\"required\":[],\"properties\":{"
                     "\"pattern\":{\"type\":\"string\",\"pattern\":\"^x\",\"format\":\"uri\",\"minLength\":1,\"maxLength\":9},"
                     "\"n\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9,\"exclusiveMinimum\":0,\"multipleOf\":2},"
                     "\"l\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"$schema\":\"s\",\"format\":\"x\"},\"minItems\":1,"
                     "\"maxItems\":3,\"uniqueItems\":true,\"contains\":{}},"
                     "\"m\":{\"type\":\"object\",\"propertyNames\":{\"type\":\"string\"},\"patternProperties\":{\"^a\":{}},"
                     "\"minProperties\":1,\"maxProperties\":2,\"additionalProperties\":{\"type\":\"string\"},"
                     "\"dependentRequired\":{},\"if\":{},\"then\":{},\"else\":{},\"unevaluatedProperties\":false,"
                     "\"contentMediaType\":\"text/plain\",\"contentEncoding\":\"base64\",\"required\":[]},"
                     "\"e\":{\"enum\":[{\"pattern\":1,\"minimum\":2}],\"default\":{\"format\":\"kept\"}}}}";
    expect(in, K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},\"n\":{\"type\":\"integer\"},\"l\":{\"type\":"
           "\"array\",\"items\":{\"type\":\"string\"}},\"m\":{\"type\":\"object\"},\"e\":{\"enum\":[{\"pattern\":1,\"minimum\":2}],"
           "\"default\":{\"format\":\"kept\"}}}}");
    /* minimal: $schema only */
    char *out = check(in, K2A_TOOL_SCHEMA_MINIMAL);
    assert_non_null(strstr(out, "\"additionalProperties\":false"));
    assert_non_null(strstr(out, "\"pattern\":\"^x\""));
    assert_non_null(strstr(out, "\"required\":[]"));
    assert_non_null(strstr(out, "\"enum\":[{\"pattern\":1,\"minimum\":2}]")); /* values are not schemas */
    free(out);
    /* cache_control goes in every mode, but not a property of that name */
    expect("{\"type\":\"object\",\"cache_control\":{\"type\":\"ephemeral\"},\"properties\":{\"cache_control\":{\"type\":"
           "\"string\"}}}",
           K2A_TOOL_SCHEMA_MINIMAL, "{\"type\":\"object\",\"properties\":{\"cache_control\":{\"type\":\"string\"}}}");
    /* required entries that are not names are dropped */
    expect("{\"type\":\"object\",\"required\":[\"a\",1,null]}", K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"required\":[\"a\"]}");
    expect("{\"type\":\"object\",\"required\":[1]}", K2A_TOOL_SCHEMA_STRICT, "{\"type\":\"object\"}");
    /* tuple items and $defs are walked as schemas */
    expect("{\"type\":\"object\",\"$defs\":{\"format\":{\"type\":\"string\",\"format\":\"x\"}},\"properties\":{\"t\":{\"items\":[{"
           "\"maxLength\":1},true]}}}",
           K2A_TOOL_SCHEMA_STRICT,
           "{\"type\":\"object\",\"$defs\":{\"format\":{\"type\":\"string\"}},\"properties\":{\"t\":{\"items\":[{},true]}}}");
}

static void test_bounds(void **state)
{
    (void)state;
    int rc;
    /* deep nesting: 128 levels pass, 129 do not */
    k2a_buf_t in;
    k2a_buf_init(&in, 0);
    for (int i = 0; i < 64; ++i)
        k2a_buf_appendstr(&in, "{\"properties\":{\"a\":");
    k2a_buf_appendstr(&in, "{}");
    for (int i = 0; i < 64; ++i)
        k2a_buf_appendstr(&in, "}}");
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    /* 64 * 2 + 1 levels: too deep */
    assert_int_equal(k2a_tool_schema_sanitize(in.base, in.len, K2A_TOOL_SCHEMA_STRICT, &out, NULL), K2A_EJSON_DEPTH);
    assert_int_equal(out.len, 0);
    k2a_buf_reset(&in);
    for (int i = 0; i < 63; ++i)
        k2a_buf_appendstr(&in, "{\"properties\":{\"a\":");
    k2a_buf_appendstr(&in, "[{}]"); /* 63 * 2 + 2 = 128 levels */
    for (int i = 0; i < 63; ++i)
        k2a_buf_appendstr(&in, "}}");
    assert_int_equal(k2a_tool_schema_sanitize(in.base, in.len, K2A_TOOL_SCHEMA_STRICT, &out, NULL), 0);
    free(check(k2a_buf_cstr(&in), K2A_TOOL_SCHEMA_STRICT));
    /* brackets inside strings do not count */
    k2a_buf_reset(&in);
    k2a_buf_appendstr(&in, "{\"description\":\"");
    for (int i = 0; i < 1000; ++i)
        k2a_buf_appendstr(&in, "[{\\\"");
    k2a_buf_appendstr(&in, "\"}");
    free(check(k2a_buf_cstr(&in), K2A_TOOL_SCHEMA_STRICT));
    /* over the input limit */
    char *big = malloc(K2A_TOOL_SCHEMA_MAX_BYTES + 2);
    memset(big, ' ', K2A_TOOL_SCHEMA_MAX_BYTES + 1);
    big[0] = '{';
    big[K2A_TOOL_SCHEMA_MAX_BYTES] = '}';
    k2a_buf_reset(&out);
    assert_int_equal(k2a_tool_schema_sanitize(big, K2A_TOOL_SCHEMA_MAX_BYTES + 1, K2A_TOOL_SCHEMA_STRICT, &out, NULL), K2A_ETOOBIG);
    free(big);
    /* output over out->max: an error, nothing left in out */
    k2a_buf_t small;
    k2a_buf_init(&small, 8);
    assert_int_equal(k2a_tool_schema_sanitize("{\"type\":\"object\",\"properties\":{}}", 33, K2A_TOOL_SCHEMA_STRICT, &small, NULL),
                     K2A_ETOOBIG);
    assert_int_equal(small.len, 0);
    k2a_buf_dispose(&small);
    /* not JSON */
    free(sanitize_mode("{\"type\":", K2A_TOOL_SCHEMA_STRICT, &rc, NULL));
    assert_int_equal(rc, K2A_EJSON_SYNTAX);
    free(sanitize_mode("{} {}", K2A_TOOL_SCHEMA_STRICT, &rc, NULL));
    assert_int_equal(rc, K2A_EJSON_SYNTAX);
    /* a $ref amplification: 2000 variants naming a definition that names itself. Bounded, and the output small */
    k2a_buf_reset(&in);
    k2a_buf_appendstr(&in, "{\"$defs\":{\"A\":{\"anyOf\":[");
    for (int i = 0; i < 2000; ++i)
        k2a_buf_appendstr(&in, i ? ",{\"$ref\":\"#/$defs/A\"}" : "{\"$ref\":\"#/$defs/A\"}");
    k2a_buf_appendstr(&in, "],\"properties\":{\"p\":{}}}},\"$ref\":\"#/$defs/A\"}");
    k2a_buf_reset(&out);
    out.max = k2a_tool_schema_max_output(in.len);
    rc = k2a_tool_schema_sanitize(in.base, in.len, K2A_TOOL_SCHEMA_STRICT, &out, NULL);
    assert_true(rc == 0 || rc == K2A_ETOOBIG);
    assert_true(out.len <= out.max);
    /* many variants with many properties: n log n, the first of each name kept */
    k2a_buf_reset(&in);
    k2a_buf_appendstr(&in, "{\"anyOf\":[");
    for (int v = 0; v < 50; ++v) {
        k2a_buf_appendstr(&in, v ? ",{\"properties\":{" : "{\"properties\":{");
        for (int p = 0; p < 400; ++p)
            k2a_buf_appendf(&in, "%s\"p%d\":{\"description\":\"%d\"}", p ? "," : "", p, v);
        k2a_buf_appendstr(&in, "}}");
    }
    k2a_buf_appendstr(&in, "]}");
    char *o = check(k2a_buf_cstr(&in), K2A_TOOL_SCHEMA_STRICT);
    assert_non_null(strstr(o, "\"p399\":{\"description\":\"0\"}"));
    assert_null(strstr(o, "\"description\":\"1\""));
    free(o);
    k2a_buf_dispose(&in);
    k2a_buf_dispose(&out);
}

static void test_cache(void **state)
{
    (void)state;
    const char *in = "{\"$schema\":\"x\",\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^a\"}}}";
    const char *strict = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}";
    const char *minimal = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^a\"}}}";
    k2a_tool_schema_info_t info;
    for (int k = 0; k < 3; ++k) {
        k2a_buf_t b;
        k2a_buf_init(&b, 0);
        k2a_buf_appendstr(&b, "x"); /* appended after what the buffer holds */
        assert_int_equal(k2a_tool_schema_sanitize_cached(in, strlen(in), K2A_TOOL_SCHEMA_STRICT, &b, &info), 0);
        assert_int_equal(info.removed, 2);
        assert_int_equal(b.len, 1 + strlen(strict));
        assert_memory_equal(b.base + 1, strict, strlen(strict));
        /* the mode is part of the key */
        k2a_buf_reset(&b);
        assert_int_equal(k2a_tool_schema_sanitize_cached(in, strlen(in), K2A_TOOL_SCHEMA_MINIMAL, &b, &info), 0);
        assert_int_equal(b.len, strlen(minimal));
        assert_memory_equal(b.base, minimal, b.len);
        k2a_buf_dispose(&b);
    }
    /* a hit still honours the buffer's maximum, and appends nothing then */
    k2a_buf_t small;
    k2a_buf_init(&small, 10);
    assert_int_equal(k2a_tool_schema_sanitize_cached(in, strlen(in), K2A_TOOL_SCHEMA_STRICT, &small, NULL), K2A_ETOOBIG);
    assert_int_equal(small.len, 0);
    k2a_buf_dispose(&small);
    /* failures are not kept */
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    for (int k = 0; k < 2; ++k)
        assert_int_equal(k2a_tool_schema_sanitize_cached("{\"a\":", 5, K2A_TOOL_SCHEMA_STRICT, &b, NULL), K2A_EJSON_SYNTAX);
    assert_int_equal(b.len, 0);
    k2a_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_schemas), cmocka_unit_test(test_compliant_unchanged),
        cmocka_unit_test(test_root_type),       cmocka_unit_test(test_root_combinators),
        cmocka_unit_test(test_stripping),       cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
