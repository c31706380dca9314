/*
 * Web search conversions (see web_search.h): the JSON-RPC body, the bounded parser of the MCP answer (yajl trees over a
 * body already bounded by pool/mcp.c, every kept string capped), and the renderings of the results.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>
#include "convert/web_search.h"
#include "core/errors.h"

static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* The length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        --n;
    return n;
}

int k2a_ws_rpc_body(k2a_buf_t *out, k2a_str_t query, int64_t now_ms, k2a_random_cb random, void *random_ctx)
{
    uint8_t rnd[30];
    char a[23], b[9];
    random(random_ctx, rnd, sizeof(rnd));
    for (int i = 0; i < 22; ++i)
        a[i] = alnum[rnd[i] % 62];
    a[22] = '\0';
    for (int i = 0; i < 8; ++i)
        b[i] = alnum[26 + rnd[22 + i] % 36];
    b[8] = '\0';
    size_t qn = utf8_cut(query.base != NULL ? query.base : "", query.len, K2A_WS_MAX_QUERY);
    int r;
    if ((r = k2a_buf_appendf(out, "{\"id\":\"web_search_tooluse_%s_%lld_%s\",\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",", a,
                             (long long)now_ms, b)) != 0 ||
        (r = k2a_buf_appendstr(out, "\"params\":{\"name\":\"web_search\",\"arguments\":{\"query\":\"")) != 0 ||
        (r = k2a_buf_append_json_escaped(out, query.base != NULL ? query.base : "", qn)) != 0 ||
        (r = k2a_buf_appendstr(out, "\"}}}")) != 0)
        return r;
    return 0;
}

static yajl_val get(yajl_val v, const char *key, yajl_type t)
{
    const char *path[] = {key, NULL};
    return v != NULL ? yajl_tree_get(v, path, t) : NULL;
}

/* The text of a string node ("" for anything else). */
static const char *sval(yajl_val v)
{
    const char *s = v != NULL && YAJL_IS_STRING(v) ? v->u.string : NULL;
    return s != NULL ? s : "";
}

static k2a_str_t keep(k2a_arena_t *arena, const char *s, size_t max)
{
    size_t n = utf8_cut(s, strlen(s), max);
    char *p = k2a_arena_strndup(arena, s, n);
    return p != NULL ? k2a_str(p, n) : K2A_STR_NULL;
}

/* The results document inside result.content[0].text. */
static int parse_inner(const char *text, k2a_arena_t *arena, k2a_ws_results_t *out, char *err, size_t errsz)
{
    char ebuf[128];
    yajl_val doc = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    if (doc == NULL || !YAJL_IS_OBJECT(doc)) {
        yajl_tree_free(doc);
        snprintf(err, errsz, "the MCP result text is not the expected JSON document");
        return K2A_EUPSTREAM_EVENT;
    }
    int r = 0;
    yajl_val e = get(doc, "error", yajl_t_any);
    yajl_val results = get(doc, "results", yajl_t_array);
    if (e != NULL && !YAJL_IS_NULL(e) && (results == NULL || YAJL_GET_ARRAY(results)->len == 0)) {
        snprintf(err, errsz, "the search backend reported an error");
        r = K2A_EUPSTREAM_EXCEPTION;
    } else if (results != NULL) {
        yajl_val *v = YAJL_GET_ARRAY(results)->values;
        size_t n = YAJL_GET_ARRAY(results)->len;
        for (size_t i = 0; i < n && out->n < K2A_WS_MAX_RESULTS; ++i) {
            yajl_val t = get(v[i], "title", yajl_t_string), u = get(v[i], "url", yajl_t_string),
                     s = get(v[i], "snippet", yajl_t_string), d = get(v[i], "publishedDate", yajl_t_number);
            if (u == NULL || sval(u)[0] == '\0' || strlen(sval(u)) > K2A_WS_MAX_URL)
                continue; /* a result without a usable URL is no result */
            k2a_ws_result_t *res = &out->items[out->n];
            res->url = keep(arena, sval(u), K2A_WS_MAX_URL);
            res->title = keep(arena, t != NULL ? sval(t) : sval(u), K2A_WS_MAX_TITLE);
            res->snippet = keep(arena, s != NULL ? sval(s) : "", K2A_WS_MAX_SNIPPET);
            res->published_ms = d != NULL && YAJL_IS_INTEGER(d) && YAJL_GET_INTEGER(d) > 0 ? YAJL_GET_INTEGER(d) : 0;
            if (res->url.base == NULL || res->title.base == NULL || res->snippet.base == NULL) {
                r = K2A_ENOMEM;
                break;
            }
            ++out->n;
        }
    }
    yajl_tree_free(doc);
    return r;
}

int k2a_ws_parse(const char *body, size_t len, k2a_arena_t *arena, k2a_ws_results_t *out, char *err, size_t errsz)
{
    out->n = 0;
    err[0] = '\0';
    if (body == NULL || len == 0 || memchr(body, '\0', len) != NULL) {
        snprintf(err, errsz, "empty or binary MCP answer");
        return K2A_EUPSTREAM_EVENT;
    }
    char *copy = k2a_arena_strndup(arena, body, len); /* yajl_tree_parse wants a NUL-terminated text */
    if (copy == NULL)
        return K2A_ENOMEM;
    char ebuf[128];
    yajl_val doc = yajl_tree_parse(copy, ebuf, sizeof(ebuf));
    if (doc == NULL || !YAJL_IS_OBJECT(doc)) {
        yajl_tree_free(doc);
        snprintf(err, errsz, "the MCP answer is not a JSON object");
        return K2A_EUPSTREAM_EVENT;
    }
    int r = 0;
    yajl_val e = get(doc, "error", yajl_t_object), result = get(doc, "result", yajl_t_object);
    if (e != NULL) {
        yajl_val code = get(e, "code", yajl_t_number);
        snprintf(err, errsz, "MCP error %lld", code != NULL && YAJL_IS_INTEGER(code) ? (long long)YAJL_GET_INTEGER(code) : 0LL);
        r = K2A_EUPSTREAM_EXCEPTION;
    } else if (result == NULL) {
        snprintf(err, errsz, "the MCP answer has neither result nor error");
        r = K2A_EUPSTREAM_EVENT;
    } else if (YAJL_IS_TRUE(get(result, "isError", yajl_t_any))) {
        snprintf(err, errsz, "the MCP tool reported an error");
        r = K2A_EUPSTREAM_EXCEPTION;
    } else {
        yajl_val content = get(result, "content", yajl_t_array);
        size_t n = content != NULL ? YAJL_GET_ARRAY(content)->len : 0;
        for (size_t i = 0; i < n && r == 0; ++i) {
            yajl_val c = YAJL_GET_ARRAY(content)->values[i];
            yajl_val type = get(c, "type", yajl_t_string), text = get(c, "text", yajl_t_string);
            if (type == NULL || strcmp(sval(type), "text") != 0 || text == NULL)
                continue;
            r = parse_inner(sval(text), arena, out, err, errsz);
        }
    }
    yajl_tree_free(doc);
    return r;
}

void k2a_ws_tool_id(char *out, k2a_random_cb random, void *random_ctx)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t rnd[16];
    random(random_ctx, rnd, sizeof(rnd));
    memcpy(out, "srvtoolu_", 9);
    for (int i = 0; i < 16; ++i) {
        out[9 + 2 * i] = hex[rnd[i] >> 4];
        out[10 + 2 * i] = hex[rnd[i] & 15];
    }
    out[K2A_WS_ID_LEN] = '\0';
}

void k2a_ws_page_age(int64_t ms, char *out, size_t outsz)
{
    static const char *const months[] = {"January", "February", "March",     "April",   "May",      "June",
                                         "July",    "August",   "September", "October", "November", "December"};
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
        if (outsz > 0)
            out[0] = '\0';
        return;
    }
    snprintf(out, outsz, "%s %d, %d", months[tm.tm_mon], tm.tm_mday, tm.tm_year + 1900);
}

int k2a_ws_results_json(k2a_buf_t *out, const k2a_ws_results_t *res)
{
    int r = k2a_buf_appendstr(out, "[");
    for (size_t i = 0; i < res->n && r == 0; ++i) {
        const k2a_ws_result_t *x = &res->items[i];
        char age[48];
        k2a_ws_page_age(x->published_ms, age, sizeof(age));
        if ((r = k2a_buf_appendstr(out, i ? ",{\"type\":\"web_search_result\",\"title\":\""
                                          : "{\"type\":\"web_search_result\",\"title\":\"")) != 0 ||
            (r = k2a_buf_append_json_escaped(out, x->title.base, x->title.len)) != 0 ||
            (r = k2a_buf_appendstr(out, "\",\"url\":\"")) != 0 ||
            (r = k2a_buf_append_json_escaped(out, x->url.base, x->url.len)) != 0 ||
            (r = k2a_buf_appendstr(out, "\",\"encrypted_content\":\"")) != 0 ||
            (r = k2a_buf_append_json_escaped(out, x->snippet.base, x->snippet.len)) != 0)
            return r;
        if (age[0] != '\0')
            r = k2a_buf_appendf(out, "\",\"page_age\":\"%s\"}", age);
        else
            r = k2a_buf_appendstr(out, "\",\"page_age\":null}");
    }
    return r != 0 ? r : k2a_buf_appendstr(out, "]");
}

int k2a_ws_context_text(k2a_buf_t *out, k2a_str_t query, const k2a_ws_results_t *res, const char *failure)
{
    int r;
    if ((r = k2a_buf_appendstr(out, "Web search results for the query \"")) != 0 ||
        (r = k2a_buf_append(out, query.base != NULL ? query.base : "", query.len)) != 0 ||
        (r = k2a_buf_appendstr(out, "\":\n")) != 0)
        return r;
    if (res == NULL || res->n == 0) {
        if (failure != NULL && failure[0] != '\0')
            return k2a_buf_appendf(out,
                                   "The web search failed (%s): no results are available. Tell the user so and answer "
                                   "from what you know.\n",
                                   failure);
        return k2a_buf_appendstr(out, "The web search returned no results. Tell the user so and answer from what you know.\n");
    }
    for (size_t i = 0; i < res->n; ++i) {
        const k2a_ws_result_t *x = &res->items[i];
        char age[48];
        k2a_ws_page_age(x->published_ms, age, sizeof(age));
        if ((r = k2a_buf_appendf(out, "\n[%zu] ", i + 1)) != 0 || (r = k2a_buf_append(out, x->title.base, x->title.len)) != 0 ||
            (r = k2a_buf_appendstr(out, "\nURL: ")) != 0 || (r = k2a_buf_append(out, x->url.base, x->url.len)) != 0 ||
            (age[0] != '\0' && (r = k2a_buf_appendf(out, "\nPublished: %s", age)) != 0) ||
            (x->snippet.len != 0 &&
             ((r = k2a_buf_appendstr(out, "\n")) != 0 || (r = k2a_buf_append(out, x->snippet.base, x->snippet.len)) != 0)) ||
            (r = k2a_buf_appendstr(out, "\n")) != 0)
            return r;
    }
    return k2a_buf_appendstr(out, "\nAnswer the user's request using these results and cite the URLs you rely on.\n");
}

k2a_str_t k2a_ws_query_from_ir(const k2a_ir_request_t *ir)
{
    for (size_t i = 0; i < ir->nmessages; ++i) {
        const k2a_ir_message_t *m = &ir->messages[i];
        if (m->role != K2A_ROLE_USER)
            continue;
        for (size_t j = 0; j < m->nblocks; ++j) {
            if (m->blocks[j].kind != K2A_BLOCK_TEXT)
                continue;
            const char *s = m->blocks[j].text.base;
            size_t n = m->blocks[j].text.len;
            if (s == NULL)
                continue;
            size_t plen = sizeof(K2A_WS_PREFIX) - 1;
            if (n >= plen && memcmp(s, K2A_WS_PREFIX, plen) == 0) {
                s += plen;
                n -= plen;
            }
            while (n > 0 && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')) {
                ++s;
                --n;
            }
            while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                --n;
            if (n > 0)
                return k2a_str(s, utf8_cut(s, n, K2A_WS_MAX_QUERY));
        }
        break; /* only the first user message */
    }
    return K2A_STR_NULL;
}
