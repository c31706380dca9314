/*
 * GET / (the dashboard) and GET /static/<file> from the assets directory, through h2o's file
 * sender (content types, conditional requests, HEAD). Paths with dot segments or hidden files are
 * refused rather than normalised.
 */
#include <limits.h>
#include <string.h>
#include "http/handlers.h"
#include "http/respond.h"

int k2a_h_static(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_server_t *s = k2a_server_of(req);
    h2o_iovec_t file = rc->route == K2A_ROUTE_ROOT ? h2o_iovec_init(H2O_STRLIT("index.html")) : rc->subpath;
    bool ok = file.len > 0 && file.len < 256;
    for (size_t i = 0; ok && i < file.len; ++i) {
        char c = file.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == '/'))
            ok = false;
        if ((c == '.' || c == '/') && (i == 0 || file.base[i - 1] == '/' || file.base[i - 1] == '.'))
            ok = false; /* no "..", no hidden files, no "//" */
    }
    if (!ok) {
        k2a_http_send_error(req, rc->dialect, K2A_ENOTFOUND, "no such file");
        return 0;
    }
    char path[PATH_MAX + 300];
    snprintf(path, sizeof(path), "%s/%.*s", s->static_dir, (int)file.len, file.base);
    const char *dot = memrchr(file.base, '.', file.len);
    h2o_iovec_t ext = dot != NULL ? h2o_iovec_init(dot + 1, file.base + file.len - dot - 1) : h2o_iovec_init(NULL, 0);
    h2o_mimemap_type_t *type = h2o_mimemap_get_type_by_extension(s->mimemap, ext);
    h2o_iovec_t mime = type != NULL && type->type == H2O_MIMEMAP_TYPE_MIMETYPE
                           ? type->data.mimetype
                           : h2o_iovec_init(H2O_STRLIT("application/octet-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    if (h2o_file_send(req, 200, "OK", path, mime, 0) != 0)
        k2a_http_send_error(req, rc->dialect, K2A_ENOTFOUND, "no such file");
    return 0;
}
