/*
 * libFuzzer target for the tool schema sanitizer (src/convert/tool_schema.c). Byte 0 picks the mode (bit 0: minimal),
 * the rest is the schema text. Checks: no crash, leak or sanitizer report; an accepted schema gives valid JSON whose
 * root is an object with "type":"object" and no anyOf/oneOf/allOf, no larger than k2a_tool_schema_max_output of the
 * input; sanitizing the output again gives it back unchanged (idempotent), and the cached entry point gives the same
 * bytes; a refusal leaves the buffer as it was.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "core/errors.h"
#include "convert/tool_schema.h"

static void check_root(const k2a_buf_t *out)
{
    char *text = malloc(out->len + 1);
    if (text == NULL)
        abort();
    memcpy(text, out->base, out->len);
    text[out->len] = '\0';
    char err[128];
    yajl_val v = yajl_tree_parse(text, err, sizeof(err));
    free(text);
    if (v == NULL || !YAJL_IS_OBJECT(v))
        abort();
    bool typed = false;
    for (size_t i = 0; i < v->u.object.len; ++i) {
        const char *k = v->u.object.keys[i];
        yajl_val x = v->u.object.values[i];
        if (strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0 || strcmp(k, "allOf") == 0 || strcmp(k, "$schema") == 0)
            abort();
        if (strcmp(k, "type") == 0) {
            if (!YAJL_IS_STRING(x) || strcmp(x->u.string, "object") != 0)
                abort();
            typed = true;
        }
    }
    if (!typed)
        abort();
    yajl_tree_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    k2a_tool_schema_strip_t mode = (data[0] & 1) ? K2A_TOOL_SCHEMA_MINIMAL : K2A_TOOL_SCHEMA_STRICT;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    size_t max = k2a_tool_schema_max_output(len);
    k2a_buf_t out, again;
    k2a_buf_init(&out, max);
    k2a_buf_init(&again, max);
    int r = k2a_tool_schema_sanitize(in, len, mode, &out, NULL);
    if (r != 0) {
        if (out.len != 0)
            abort();
        if (r != K2A_EJSON_SYNTAX && r != K2A_EJSON_DEPTH && r != K2A_ETOOBIG && r != K2A_ENOMEM)
            abort();
    } else {
        if (out.len > max)
            abort();
        check_root(&out);
        if (k2a_tool_schema_sanitize(out.base, out.len, mode, &again, NULL) != 0 || again.len != out.len ||
            memcmp(again.base, out.base, out.len) != 0)
            abort();
        /* the cached entry point answers the same bytes */
        k2a_buf_reset(&again);
        if (k2a_tool_schema_sanitize_cached(in, len, mode, &again, NULL) != 0 || again.len != out.len ||
            memcmp(again.base, out.base, out.len) != 0)
            abort();
    }
    k2a_buf_dispose(&out);
    k2a_buf_dispose(&again);
    return 0;
}
