/*
 * Tool schema sanitizer (see tool_schema.h). Schemas are small and bounded (K2A_TOOL_SCHEMA_MAX_BYTES, depth
 * checked on the text before parsing), so the input is parsed with yajl_tree and the output written straight into the
 * caller's bounded buffer (strings escaped by k2a_buf_append_json_escaped, numbers as their original text). The walk
 * knows which positions hold schemas (so keywords are only removed there) and which hold user-chosen names (properties,
 * $defs, definitions) or plain values (enum, const, default).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/json_text.h"
#include "convert/tool_schema.h"

#define MAX_FLATTEN_DEPTH 4     /* combinators inside root combinator variants, $refs to $refs */
#define MAX_FLATTEN_VISITS 4096 /* variant schemas merged into one root (a $ref may name the same one many times) */
#define MAX_FLATTEN_NAMES 65536 /* property and required names collected, repeats included */

#define MAX_OUT_DEPTH (K2A_TOOL_SCHEMA_MAX_DEPTH + 4)

typedef struct st_level_t {
    bool first;      /* nothing written yet in this container */
    bool map;        /* an object: keys and values alternate */
    bool want_value; /* (map) a key was written: the next item is its value */
} level_t;

typedef struct st_ctx_t {
    k2a_buf_t *out;
    int err;
    k2a_tool_schema_strip_t mode;
    k2a_tool_schema_info_t *info;
    yajl_val root;
    size_t visits; /* merge_schema calls */
    unsigned depth;
    level_t lv[MAX_OUT_DEPTH + 1];
} ctx_t;

/* ---------- a minimal JSON writer over the bounded buffer (yajl_gen's print callback per token cost as much as the
 * parse) ---------- */

static void put(ctx_t *c, const char *s, size_t n)
{
    if (c->err == 0)
        c->err = k2a_buf_append(c->out, s, n);
}

/* The separator before an item: ',' between items, ':' between a key and its value. */
static void pre(ctx_t *c)
{
    level_t *l = &c->lv[c->depth];
    if (c->depth == 0)
        return;
    if (l->map && l->want_value) {
        put(c, ":", 1);
        l->want_value = false;
        return;
    }
    if (!l->first)
        put(c, ",", 1);
    l->first = false;
    if (l->map)
        l->want_value = true;
}

static void w_open(ctx_t *c, bool map)
{
    pre(c);
    put(c, map ? "{" : "[", 1);
    if (c->depth >= MAX_OUT_DEPTH) {
        if (c->err == 0)
            c->err = K2A_EJSON_DEPTH;
        return;
    }
    level_t *l = &c->lv[++c->depth];
    l->first = true;
    l->map = map;
    l->want_value = false;
}

static void w_close(ctx_t *c, bool map)
{
    put(c, map ? "}" : "]", 1);
    if (c->depth > 0)
        --c->depth;
}

static void w_str(ctx_t *c, const char *s)
{
    pre(c);
    put(c, "\"", 1);
    if (c->err == 0)
        c->err = k2a_buf_append_json_escaped(c->out, s, strlen(s));
    put(c, "\"", 1);
}

static void w_raw(ctx_t *c, const char *s)
{
    pre(c);
    put(c, s, strlen(s));
}

/* ---------- keyword classes ---------- */

enum {
    KW_ALWAYS = 1, /* removed in every mode: $schema, cache_control */
    KW_STRICT = 2, /* removed in strict mode (the list of tool_schema.h) */
    KW_MAP = 4,    /* value: an object of name -> schema */
    KW_ARRAY = 8,  /* value: an array of schemas */
    KW_ONE = 16,   /* value: one schema */
    KW_ITEMS = 32, /* value: one schema or an array of schemas */
};

/* The class of a schema keyword (KW_* flags), 0 for any other key: a switch on the length, then at most a few compares. */
static unsigned kw_class(const char *k)
{
    size_t n = strlen(k);
    switch (n) {
    case 2:
        if (memcmp(k, "if", 2) == 0)
            return KW_STRICT | KW_ONE;
        break;
    case 3:
        if (memcmp(k, "not", 3) == 0)
            return KW_ONE;
        break;
    case 4:
        if (memcmp(k, "else", 4) == 0)
            return KW_STRICT | KW_ONE;
        if (memcmp(k, "then", 4) == 0)
            return KW_STRICT | KW_ONE;
        break;
    case 5:
        if (memcmp(k, "$defs", 5) == 0)
            return KW_MAP;
        if (memcmp(k, "allOf", 5) == 0)
            return KW_ARRAY;
        if (memcmp(k, "anyOf", 5) == 0)
            return KW_ARRAY;
        if (memcmp(k, "items", 5) == 0)
            return KW_ITEMS;
        if (memcmp(k, "oneOf", 5) == 0)
            return KW_ARRAY;
        break;
    case 6:
        if (memcmp(k, "format", 6) == 0)
            return KW_STRICT;
        break;
    case 7:
        if (memcmp(k, "$schema", 7) == 0)
            return KW_ALWAYS;
        if (memcmp(k, "maximum", 7) == 0)
            return KW_STRICT;
        if (memcmp(k, "minimum", 7) == 0)
            return KW_STRICT;
        if (memcmp(k, "pattern", 7) == 0)
            return KW_STRICT;
        break;
    case 8:
        if (memcmp(k, "contains", 8) == 0)
            return KW_STRICT | KW_ONE;
        if (memcmp(k, "maxItems", 8) == 0)
            return KW_STRICT;
        if (memcmp(k, "minItems", 8) == 0)
            return KW_STRICT;
        break;
    case 9:
        if (memcmp(k, "encrypted", 9) == 0)
            return KW_STRICT;
        if (memcmp(k, "maxLength", 9) == 0)
            return KW_STRICT;
        if (memcmp(k, "minLength", 9) == 0)
            return KW_STRICT;
        break;
    case 10:
        if (memcmp(k, "multipleOf", 10) == 0)
            return KW_STRICT;
        if (memcmp(k, "properties", 10) == 0)
            return KW_MAP;
        break;
    case 11:
        if (memcmp(k, "definitions", 11) == 0)
            return KW_MAP;
        if (memcmp(k, "maxContains", 11) == 0)
            return KW_STRICT;
        if (memcmp(k, "minContains", 11) == 0)
            return KW_STRICT;
        if (memcmp(k, "prefixItems", 11) == 0)
            return KW_ARRAY;
        if (memcmp(k, "uniqueItems", 11) == 0)
            return KW_STRICT;
        break;
    case 12:
        if (memcmp(k, "dependencies", 12) == 0)
            return KW_STRICT;
        break;
    case 13:
        if (memcmp(k, "cache_control", 13) == 0)
            return KW_ALWAYS;
        if (memcmp(k, "maxProperties", 13) == 0)
            return KW_STRICT;
        if (memcmp(k, "minProperties", 13) == 0)
            return KW_STRICT;
        if (memcmp(k, "propertyNames", 13) == 0)
            return KW_STRICT | KW_ONE;
        break;
    case 15:
        if (memcmp(k, "additionalItems", 15) == 0)
            return KW_ONE;
        break;
    case 16:
        if (memcmp(k, "dependentSchemas", 16) == 0)
            return KW_STRICT | KW_MAP;
        if (memcmp(k, "exclusiveMaximum", 16) == 0)
            return KW_STRICT;
        if (memcmp(k, "exclusiveMinimum", 16) == 0)
            return KW_STRICT;
        if (memcmp(k, "unevaluatedItems", 16) == 0)
            return KW_STRICT | KW_ONE;
        break;
    case 17:
        if (memcmp(k, "dependentRequired", 17) == 0)
            return KW_STRICT;
        if (memcmp(k, "patternProperties", 17) == 0)
            return KW_STRICT | KW_MAP;
        break;
    case 20:
        if (memcmp(k, "additionalProperties", 20) == 0)
            return KW_STRICT | KW_ONE;
        break;
    case 21:
        if (memcmp(k, "unevaluatedProperties", 21) == 0)
            return KW_STRICT | KW_ONE;
        break;
    default:
        break;
    }
    return strncmp(k, "content", 7) == 0 && k[7] >= 'A' && k[7] <= 'Z' ? KW_STRICT : 0; /* contentMediaType... */
}

static bool removed(ctx_t *c, unsigned cls, const char *k, yajl_val v)
{
    if ((cls & KW_ALWAYS) != 0)
        return true;
    if (c->mode != K2A_TOOL_SCHEMA_STRICT)
        return false;
    if ((cls & KW_STRICT) != 0)
        return true;
    return strcmp(k, "required") == 0 && YAJL_IS_ARRAY(v) && v->u.array.len == 0;
}

/* ---------- generic output ---------- */

static void gen_value(ctx_t *c, yajl_val v)
{
    if (c->err != 0)
        return;
    switch (v->type) {
    case yajl_t_string:
        w_str(c, v->u.string);
        break;
    case yajl_t_number:
        w_raw(c, v->u.number.r);
        break;
    case yajl_t_true:
    case yajl_t_false:
        w_raw(c, v->type == yajl_t_true ? "true" : "false");
        break;
    case yajl_t_null:
        w_raw(c, "null");
        break;
    case yajl_t_object:
        w_open(c, true);
        for (size_t i = 0; i < v->u.object.len; ++i) {
            w_str(c, v->u.object.keys[i]);
            gen_value(c, v->u.object.values[i]);
        }
        w_close(c, true);
        break;
    case yajl_t_array:
        w_open(c, false);
        for (size_t i = 0; i < v->u.array.len; ++i)
            gen_value(c, v->u.array.values[i]);
        w_close(c, false);
        break;
    default:
        w_raw(c, "null");
        break;
    }
}

/* "required": the string entries, each once. Returns how many were written (nothing is written when none). */
static size_t count_required(yajl_val v)
{
    size_t n = 0;
    if (YAJL_IS_ARRAY(v))
        for (size_t i = 0; i < v->u.array.len; ++i)
            n += YAJL_IS_STRING(v->u.array.values[i]);
    return n;
}

static void gen_schema(ctx_t *c, yajl_val v);

static void gen_member(ctx_t *c, unsigned cls, yajl_val v)
{
    if ((cls & KW_MAP) != 0 && YAJL_IS_OBJECT(v)) {
        w_open(c, true);
        for (size_t i = 0; i < v->u.object.len; ++i) {
            w_str(c, v->u.object.keys[i]);
            gen_schema(c, v->u.object.values[i]);
        }
        w_close(c, true);
    } else if ((cls & (KW_ARRAY | KW_ITEMS)) != 0 && YAJL_IS_ARRAY(v)) {
        w_open(c, false);
        for (size_t i = 0; i < v->u.array.len; ++i)
            gen_schema(c, v->u.array.values[i]);
        w_close(c, false);
    } else if ((cls & (KW_ONE | KW_ITEMS)) != 0) {
        gen_schema(c, v);
    } else {
        gen_value(c, v); /* type, description, enum, const, default, $ref, title, unknown keywords: as they are */
    }
}

/* One member of a schema object, unless it is removed. */
static void schema_member(ctx_t *c, const char *k, yajl_val v)
{
    unsigned cls = kw_class(k);
    if (removed(c, cls, k, v)) {
        if (c->info != NULL)
            ++c->info->removed;
        return;
    }
    w_str(c, k);
    gen_member(c, cls, v);
}

/* A value at a schema position: objects are walked, anything else (true/false schemas, or junk) is copied. */
static void gen_schema(ctx_t *c, yajl_val v)
{
    if (c->err != 0)
        return;
    if (!YAJL_IS_OBJECT(v)) {
        gen_value(c, v);
        return;
    }
    w_open(c, true);
    for (size_t i = 0; i < v->u.object.len; ++i)
        schema_member(c, v->u.object.keys[i], v->u.object.values[i]);
    w_close(c, true);
}

/* ---------- the root ---------- */

static yajl_val member(yajl_val obj, const char *k)
{
    if (!YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], k) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* 1: "object" (or no type at all), 0: a type that does not allow an object */
static bool type_allows_object(yajl_val t)
{
    if (t == NULL)
        return true;
    if (YAJL_IS_STRING(t))
        return strcmp(t->u.string, "object") == 0;
    if (YAJL_IS_ARRAY(t)) {
        for (size_t i = 0; i < t->u.array.len; ++i)
            if (YAJL_IS_STRING(t->u.array.values[i]) && strcmp(t->u.array.values[i]->u.string, "object") == 0)
                return true;
    }
    return false;
}

static bool is_combinator(const char *k)
{
    return strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0 || strcmp(k, "allOf") == 0;
}

/* A local "$ref" ("#/$defs/X" or "#/definitions/X") resolved in the root; NULL when it is anything else. */
static yajl_val resolve_ref(ctx_t *c, yajl_val ref)
{
    if (!YAJL_IS_STRING(ref))
        return NULL;
    const char *s = ref->u.string, *name;
    yajl_val defs;
    if (strncmp(s, "#/$defs/", 8) == 0) {
        defs = member(c->root, "$defs");
        name = s + 8;
    } else if (strncmp(s, "#/definitions/", 14) == 0) {
        defs = member(c->root, "definitions");
        name = s + 14;
    } else {
        return NULL;
    }
    if (strchr(name, '/') != NULL || strchr(name, '~') != NULL)
        return NULL;
    return member(defs, name);
}

/* What a flattened root collects: pointers into the tree. */
typedef struct st_prop_t {
    const char *key;
    yajl_val val;
} prop_t;

typedef struct st_flat_t {
    prop_t *props;
    size_t np, capp;
    const char **req;
    size_t nreq, capreq;
    yajl_val description;
} flat_t;

static bool grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t nc = *cap != 0 ? *cap * 2 : 16;
    void *nv = realloc(*v, nc * elem);
    if (nv == NULL)
        return false;
    *v = nv;
    *cap = nc;
    return true;
}

/* Names are collected with repeats; dedupe() keeps the first of each (sorting, so that hostile inputs stay n log n). */
static int add_property(flat_t *f, const char *k, yajl_val v)
{
    if (!grow((void **)&f->props, &f->capp, f->np, sizeof(*f->props)))
        return K2A_ENOMEM;
    f->props[f->np].key = k;
    f->props[f->np].val = v;
    ++f->np;
    return 0;
}

static int add_required(flat_t *f, yajl_val req)
{
    if (!YAJL_IS_ARRAY(req))
        return 0;
    for (size_t i = 0; i < req->u.array.len; ++i) {
        yajl_val e = req->u.array.values[i];
        if (!YAJL_IS_STRING(e))
            continue;
        if (!grow((void **)&f->req, &f->capreq, f->nreq, sizeof(*f->req)))
            return K2A_ENOMEM;
        f->req[f->nreq++] = e->u.string;
    }
    return 0;
}

typedef struct st_ikey_t {
    const char *key;
    size_t index;
} ikey_t;

static int cmp_ikey(const void *a, const void *b)
{
    const ikey_t *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    return r != 0 ? r : x->index < y->index ? -1 : x->index > y->index;
}

/* Marks in keep[] the first occurrence of every key of keys[0..n). */
static int first_of_each(const char *const *keys, size_t stride, size_t n, bool *keep)
{
    if (n == 0)
        return 0;
    ikey_t *v = malloc(n * sizeof(*v));
    if (v == NULL)
        return K2A_ENOMEM;
    for (size_t i = 0; i < n; ++i) {
        v[i].key = *(const char *const *)((const char *)keys + i * stride);
        v[i].index = i;
        keep[i] = false;
    }
    qsort(v, n, sizeof(*v), cmp_ikey);
    for (size_t i = 0; i < n; ++i)
        if (i == 0 || strcmp(v[i].key, v[i - 1].key) != 0)
            keep[v[i].index] = true;
    free(v);
    return 0;
}

/* Merges an object schema (the root or a variant) into f. with_required: its "required" counts (the root, allOf). */
static int merge_schema(ctx_t *c, flat_t *f, yajl_val s, bool with_required, unsigned depth)
{
    int r;
    if (depth > MAX_FLATTEN_DEPTH || !YAJL_IS_OBJECT(s))
        return 0;
    if (++c->visits > MAX_FLATTEN_VISITS || f->np + f->nreq > MAX_FLATTEN_NAMES)
        return K2A_ETOOBIG;
    yajl_val ref = member(s, "$ref"), target = resolve_ref(c, ref);
    if (target != NULL && target != s && (r = merge_schema(c, f, target, with_required, depth + 1)) != 0)
        return r;
    if (!type_allows_object(member(s, "type")))
        return 0; /* a variant that is a string, an array...: nothing to merge */
    if (f->description == NULL) {
        yajl_val d = member(s, "description");
        if (YAJL_IS_STRING(d))
            f->description = d;
    }
    yajl_val props = member(s, "properties");
    if (YAJL_IS_OBJECT(props))
        for (size_t i = 0; i < props->u.object.len; ++i)
            if ((r = add_property(f, props->u.object.keys[i], props->u.object.values[i])) != 0)
                return r;
    if (with_required && (r = add_required(f, member(s, "required"))) != 0)
        return r;
    for (size_t i = 0; i < s->u.object.len; ++i) {
        const char *k = s->u.object.keys[i];
        yajl_val v = s->u.object.values[i];
        if (!is_combinator(k) || !YAJL_IS_ARRAY(v))
            continue;
        bool all = strcmp(k, "allOf") == 0;
        for (size_t j = 0; j < v->u.array.len; ++j)
            if ((r = merge_schema(c, f, v->u.array.values[j], with_required && all, depth + 1)) != 0)
                return r;
    }
    return 0;
}

static void flat_free(flat_t *f)
{
    free(f->props);
    free(f->req);
}

/* Keys of the root that the flattened form writes itself (or drops). */
static bool flat_own_key(const char *k)
{
    return strcmp(k, "type") == 0 || strcmp(k, "properties") == 0 || strcmp(k, "required") == 0 || strcmp(k, "description") == 0 ||
           strcmp(k, "$ref") == 0 || is_combinator(k);
}

static int gen_flattened(ctx_t *c, yajl_val root)
{
    flat_t f;
    memset(&f, 0, sizeof(f));
    int r = merge_schema(c, &f, root, true, 0);
    if (r != 0) {
        flat_free(&f);
        return r;
    }
    bool *pkeep = malloc((f.np + f.nreq + 1) * sizeof(*pkeep)), *rkeep = pkeep + f.np;
    if (pkeep == NULL || (r = first_of_each(f.np != 0 ? &f.props[0].key : NULL, sizeof(*f.props), f.np, pkeep)) != 0 ||
        (r = first_of_each(f.req, sizeof(*f.req), f.nreq, rkeep)) != 0) {
        free(pkeep);
        flat_free(&f);
        return r != 0 ? r : K2A_ENOMEM;
    }
    if (c->info != NULL)
        c->info->flattened = true;
    w_open(c, true);
    w_str(c, "type");
    w_str(c, "object");
    if (f.description != NULL) {
        w_str(c, "description");
        gen_value(c, f.description);
    }
    w_str(c, "properties");
    w_open(c, true);
    for (size_t i = 0; i < f.np; ++i) {
        if (!pkeep[i])
            continue; /* the first definition of a name wins */
        w_str(c, f.props[i].key);
        gen_schema(c, f.props[i].val);
    }
    w_close(c, true);
    if (f.nreq != 0) {
        w_str(c, "required");
        w_open(c, false);
        for (size_t i = 0; i < f.nreq; ++i)
            if (rkeep[i])
                w_str(c, f.req[i]);
        w_close(c, false);
    }
    for (size_t i = 0; i < root->u.object.len; ++i)
        if (!flat_own_key(root->u.object.keys[i]))
            schema_member(c, root->u.object.keys[i], root->u.object.values[i]);
    w_close(c, true);
    free(pkeep);
    flat_free(&f);
    return 0;
}

static void gen_replacement(ctx_t *c, yajl_val root)
{
    if (c->info != NULL)
        c->info->root_replaced = true;
    w_open(c, true);
    w_str(c, "type");
    w_str(c, "object");
    yajl_val d = member(root, "description");
    if (YAJL_IS_STRING(d)) {
        w_str(c, "description");
        gen_value(c, d);
    }
    w_str(c, "properties");
    w_open(c, true);
    w_close(c, true);
    w_close(c, true);
}

static int gen_root(ctx_t *c, yajl_val root)
{
    if (!YAJL_IS_OBJECT(root) || !type_allows_object(member(root, "type"))) {
        gen_replacement(c, root);
        return 0;
    }
    bool flatten = resolve_ref(c, member(root, "$ref")) != NULL;
    for (size_t i = 0; i < root->u.object.len && !flatten; ++i)
        flatten = is_combinator(root->u.object.keys[i]);
    if (flatten)
        return gen_flattened(c, root);
    yajl_val type = member(root, "type");
    w_open(c, true);
    if (type == NULL) {
        w_str(c, "type");
        w_str(c, "object");
        if (c->info != NULL)
            c->info->root_typed = true;
    }
    for (size_t i = 0; i < root->u.object.len; ++i) {
        const char *k = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        if (strcmp(k, "type") == 0) {
            if (v != type)
                continue; /* a second "type" member */
            if (!YAJL_IS_STRING(v) && c->info != NULL)
                c->info->root_typed = true; /* ["object","null"] */
            w_str(c, "type");
            w_str(c, "object");
            continue;
        }
        if (strcmp(k, "required") == 0 && YAJL_IS_ARRAY(v) && count_required(v) != v->u.array.len) {
            /* entries that are not names are dropped; an array left empty goes too */
            if (count_required(v) == 0 && c->mode == K2A_TOOL_SCHEMA_STRICT) {
                if (c->info != NULL)
                    ++c->info->removed;
                continue;
            }
            w_str(c, "required");
            w_open(c, false);
            for (size_t j = 0; j < v->u.array.len; ++j)
                if (YAJL_IS_STRING(v->u.array.values[j]))
                    gen_value(c, v->u.array.values[j]);
            w_close(c, false);
            continue;
        }
        schema_member(c, k, v);
    }
    w_close(c, true);
    return 0;
}

/* ---------- entry point ---------- */

int k2a_tool_schema_sanitize(const char *json, size_t len, k2a_tool_schema_strip_t mode, k2a_buf_t *out,
                             k2a_tool_schema_info_t *info)
{
    if (info != NULL)
        memset(info, 0, sizeof(*info));
    if (len == 0)
        return k2a_buf_appendstr(out, "{\"type\":\"object\",\"properties\":{}}");
    if (len > K2A_TOOL_SCHEMA_MAX_BYTES)
        return K2A_ETOOBIG;
    if (k2a_json_text_depth(json, len, K2A_TOOL_SCHEMA_MAX_DEPTH, NULL) > K2A_TOOL_SCHEMA_MAX_DEPTH)
        return K2A_EJSON_DEPTH;
    if (memchr(json, '\0', len) != NULL)
        return K2A_EJSON_SYNTAX;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return K2A_ENOMEM;
    memcpy(copy, json, len);
    copy[len] = '\0';
    char errbuf[128];
    yajl_val root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (root == NULL)
        return strstr(errbuf, "memory") != NULL ? K2A_ENOMEM : K2A_EJSON_SYNTAX;

    ctx_t c;
    memset(&c, 0, sizeof(c));
    c.out = out;
    c.mode = mode;
    c.info = info;
    c.root = root;
    size_t start = out->len;
    int r = gen_root(&c, root);
    if (r == 0)
        r = c.err;
    yajl_tree_free(root);
    if (r != 0)
        out->len = start;
    return r;
}

/* ---------- the cache ---------- */

/* Clients send the same tool list with every request (Claude Code: 24 schemas, 15 KB): the sanitized form of recent
 * schemas is kept in a small direct-mapped table shared by every worker loop (a mutex around each lookup and store; the
 * output is copied while it is held). Only successes of inputs up to CACHE_MAX_INPUT bytes are kept, at most
 * CACHE_SLOTS of them: ~25 MB in the worst case, a few hundred KB for real clients. */
#define CACHE_SLOTS 128
#define CACHE_MAX_INPUT ((size_t)64 * 1024)

typedef struct st_cache_slot_t {
    uint64_t hash;
    k2a_tool_schema_strip_t mode;
    char *in, *out; /* one allocation: in[0..in_len) then out[0..out_len) */
    size_t in_len, out_len;
    k2a_tool_schema_info_t info;
} cache_slot_t;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_slot_t cache[CACHE_SLOTS];

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    while (n > 0) {
        h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
        --n;
    }
    h ^= h >> 29;
    return h * 0xc4ceb9fe1a85ec53ull;
}

int k2a_tool_schema_sanitize_cached(const char *json, size_t len, k2a_tool_schema_strip_t mode, k2a_buf_t *out,
                                    k2a_tool_schema_info_t *info)
{
    if (len == 0 || len > CACHE_MAX_INPUT)
        return k2a_tool_schema_sanitize(json, len, mode, out, info);
    uint64_t h = hash_bytes(json, len) ^ (uint64_t)mode;
    cache_slot_t *s = &cache[h % CACHE_SLOTS];
    pthread_mutex_lock(&cache_lock);
    if (s->in != NULL && s->hash == h && s->mode == mode && s->in_len == len && memcmp(s->in, json, len) == 0) {
        int r = k2a_buf_append(out, s->out, s->out_len); /* nothing is appended when it fails */
        if (info != NULL)
            *info = s->info;
        pthread_mutex_unlock(&cache_lock);
        return r;
    }
    pthread_mutex_unlock(&cache_lock);
    k2a_tool_schema_info_t mine;
    size_t start = out->len;
    int r = k2a_tool_schema_sanitize(json, len, mode, out, &mine);
    if (info != NULL)
        *info = mine;
    if (r != 0)
        return r;
    size_t olen = out->len - start;
    char *copy = malloc(len + olen);
    if (copy == NULL)
        return 0; /* not kept: the answer is still right */
    memcpy(copy, json, len);
    memcpy(copy + len, out->base + start, olen);
    pthread_mutex_lock(&cache_lock);
    free(s->in);
    s->hash = h;
    s->mode = mode;
    s->in = copy;
    s->out = copy + len;
    s->in_len = len;
    s->out_len = olen;
    s->info = mine;
    pthread_mutex_unlock(&cache_lock);
    return 0;
}
