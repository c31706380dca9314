/*
 * libFuzzer target for the MCP answer parser (src/convert/web_search.c, k2a_ws_parse) and the renderings of what it
 * accepts. Invariants: it returns 0 or an upstream/memory error code; on 0 it keeps at most K2A_WS_MAX_RESULTS results,
 * each with a non-empty URL of at most K2A_WS_MAX_URL bytes and a title and snippet within their caps; on an error no
 * result is kept; the web_search_tool_result content it renders is valid JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "convert/web_search.h"
#include "core/errors.h"

#define CHECK(c)                                                                                                                   \
    do {                                                                                                                           \
        if (!(c)) {                                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                                                  \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    k2a_ws_results_t res;
    char err[160];
    int r = k2a_ws_parse((const char *)data, size, &arena, &res, err, sizeof(err));
    CHECK(r == 0 || r == K2A_EUPSTREAM_EVENT || r == K2A_EUPSTREAM_EXCEPTION || r == K2A_ENOMEM);
    if (r == 0) {
        CHECK(res.n <= K2A_WS_MAX_RESULTS);
        for (size_t i = 0; i < res.n; ++i) {
            CHECK(res.items[i].url.len > 0 && res.items[i].url.len <= K2A_WS_MAX_URL);
            CHECK(res.items[i].title.len <= K2A_WS_MAX_TITLE);
            CHECK(res.items[i].snippet.len <= K2A_WS_MAX_SNIPPET);
        }
        k2a_buf_t out = K2A_BUF_INIT(0);
        CHECK(k2a_ws_results_json(&out, &res) == 0);
        char ebuf[64];
        char *copy = strndup(out.base, out.len);
        yajl_val doc = yajl_tree_parse(copy, ebuf, sizeof(ebuf));
        CHECK(doc != NULL && YAJL_IS_ARRAY(doc) && YAJL_GET_ARRAY(doc)->len == res.n);
        yajl_tree_free(doc);
        free(copy);
        k2a_buf_reset(&out);
        CHECK(k2a_ws_context_text(&out, K2A_STRLIT("q"), &res, NULL) == 0);
        k2a_buf_dispose(&out);
    } else {
        CHECK(res.n == 0 || r == K2A_ENOMEM);
    }
    k2a_arena_dispose(&arena);
    return 0;
}
