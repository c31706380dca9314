/*
 * URL parsing, NO_PROXY matching and the client's configuration (defaults and environment). The URL
 * parser is deliberately strict and small: http/https only, slices borrow from the input, no
 * normalisation beyond defaulting the port and the path.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/errors.h"
#include "core/log.h"
#include "upstream/upstream.h"

int k2a_url_parse(const char *url, size_t len, k2a_url_t *out)
{
    const char *p = url, *end = url + len;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < len; ++i)
        if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
            return K2A_EBAD_URL;
    if (len >= 8 && strncasecmp(p, "https://", 8) == 0) {
        out->scheme = k2a_str(p, 5);
        out->tls = true;
        out->port = 443;
        p += 8;
    } else if (len >= 7 && strncasecmp(p, "http://", 7) == 0) {
        out->scheme = k2a_str(p, 4);
        out->port = 80;
        p += 7;
    } else {
        return K2A_EBAD_URL;
    }
    /* authority ends at the first '/', '?' or '#' */
    const char *auth = p;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
        ++p;
    const char *auth_end = p;
    const char *at = NULL;
    for (const char *q = auth; q < auth_end; ++q)
        if (*q == '@')
            at = q;
    const char *h = auth;
    if (at != NULL) {
        out->userinfo = k2a_str(auth, at - auth);
        h = at + 1;
    }
    const char *port_start = NULL;
    if (h < auth_end && *h == '[') {
        const char *rb = memchr(h, ']', auth_end - h);
        if (rb == NULL || rb == h + 1)
            return K2A_EBAD_URL;
        out->host = k2a_str(h + 1, rb - h - 1);
        for (size_t i = 0; i < out->host.len; ++i)
            if (!isxdigit((unsigned char)out->host.base[i]) && out->host.base[i] != ':' && out->host.base[i] != '.')
                return K2A_EBAD_URL;
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return K2A_EBAD_URL;
            port_start = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', auth_end - h);
        const char *host_end = colon != NULL ? colon : auth_end;
        out->host = k2a_str(h, host_end - h);
        for (size_t i = 0; i < out->host.len; ++i) {
            unsigned char c = out->host.base[i];
            if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
                return K2A_EBAD_URL;
        }
        if (colon != NULL)
            port_start = colon + 1;
    }
    if (out->host.len == 0 || out->host.len > 253)
        return K2A_EBAD_URL;
    if (port_start != NULL) {
        if (port_start == auth_end || auth_end - port_start > 5)
            return K2A_EBAD_URL;
        unsigned long port = 0;
        for (const char *q = port_start; q < auth_end; ++q) {
            if (!isdigit((unsigned char)*q))
                return K2A_EBAD_URL;
            port = port * 10 + (unsigned long)(*q - '0');
        }
        if (port == 0 || port > 65535)
            return K2A_EBAD_URL;
        out->port = (uint16_t)port;
    }
    const char *path = p;
    const char *frag = memchr(p, '#', end - p);
    const char *path_end = frag != NULL ? frag : end;
    if (path == path_end) {
        out->path = K2A_STRLIT("/");
    } else if (*path == '?') {
        /* "https://h?q" has an empty path; HTTP needs "/?q", which cannot be a slice: reject rather than allocate */
        return K2A_EBAD_URL;
    } else {
        out->path = k2a_str(path, path_end - path);
    }
    return 0;
}

static bool host_matches_entry(k2a_str_t host, const char *e, size_t elen)
{
    /* strip a ":port" (but not from a bare IPv6 literal) and IPv6 brackets */
    if (elen > 0 && e[0] == '[') {
        const char *rb = memchr(e, ']', elen);
        if (rb != NULL) {
            elen = rb - e - 1;
            e += 1;
        }
    } else {
        const char *colon = memchr(e, ':', elen);
        if (colon != NULL && memchr(colon + 1, ':', elen - (colon + 1 - e)) == NULL)
            elen = colon - e;
    }
    if (elen == 1 && e[0] == '*')
        return true;
    if (elen > 0 && e[0] == '.') {
        ++e;
        --elen;
    } else if (elen > 1 && e[0] == '*' && e[1] == '.') {
        e += 2;
        elen -= 2;
    }
    if (elen == 0)
        return false;
    if (host.len == elen)
        return strncasecmp(host.base, e, elen) == 0;
    if (host.len > elen)
        return host.base[host.len - elen - 1] == '.' && strncasecmp(host.base + host.len - elen, e, elen) == 0;
    return false;
}

bool k2a_no_proxy_match(const char *no_proxy, k2a_str_t host)
{
    if (no_proxy == NULL || host.len == 0)
        return false;
    /* a trailing dot on the host does not change the name */
    if (host.base[host.len - 1] == '.')
        --host.len;
    const char *p = no_proxy;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ' || *p == '\t')
            ++p;
        const char *e = p;
        while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
            ++p;
        if (p > e && host_matches_entry(host, e, p - e))
            return true;
    }
    return false;
}

void k2a_upstream_config_init(k2a_upstream_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->connect_timeout_ms = 10000;
    cfg->first_byte_timeout_ms = 120000;
    cfg->idle_timeout_ms = 300000;
    cfg->dns_timeout_ms = 5000;
    cfg->dns_max_ttl_s = 60;
    cfg->dns_cache_max = 256;
    cfg->max_conns_per_origin = 256;
    cfg->max_idle_per_origin = 32;
    cfg->max_idle_per_affinity = 32;
    cfg->pool_idle_timeout_ms = 30000;
    cfg->max_header_bytes = 64 * 1024;
    cfg->max_headers = 100;
}

static int env_u32(const char *name, uint32_t *out)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || !isdigit((unsigned char)s[0]) || v > UINT32_MAX) {
        k2a_error("invalid %s=%s: expected an unsigned integer", name, s);
        return K2A_ECONFIG;
    }
    *out = (uint32_t)v;
    return 0;
}

static const char *env_str(const char *name)
{
    const char *s = getenv(name);
    return s != NULL && *s != '\0' ? s : NULL;
}

int k2a_upstream_config_from_env(k2a_upstream_config_t *cfg)
{
    static const struct {
        const char *name;
        size_t off;
    } nums[] = {
        {"KIRO_CONNECT_TIMEOUT_MS", offsetof(k2a_upstream_config_t, connect_timeout_ms)},
        {"KIRO_FIRST_BYTE_TIMEOUT_MS", offsetof(k2a_upstream_config_t, first_byte_timeout_ms)},
        {"KIRO_IDLE_TIMEOUT_MS", offsetof(k2a_upstream_config_t, idle_timeout_ms)},
        {"KIRO_DNS_TIMEOUT_MS", offsetof(k2a_upstream_config_t, dns_timeout_ms)},
        {"KIRO_DNS_MAX_TTL", offsetof(k2a_upstream_config_t, dns_max_ttl_s)},
        {"KIRO_DNS_CACHE_MAX", offsetof(k2a_upstream_config_t, dns_cache_max)},
        {"KIRO_UPSTREAM_MAX_CONNS", offsetof(k2a_upstream_config_t, max_conns_per_origin)},
        {"KIRO_UPSTREAM_MAX_IDLE", offsetof(k2a_upstream_config_t, max_idle_per_origin)},
        {"KIRO_UPSTREAM_POOL_IDLE_MS", offsetof(k2a_upstream_config_t, pool_idle_timeout_ms)},
        {"KIRO_UPSTREAM_MAX_IDLE_PER_ACCOUNT", offsetof(k2a_upstream_config_t, max_idle_per_affinity)},
    };
    int r;
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); ++i)
        if ((r = env_u32(nums[i].name, (uint32_t *)((char *)cfg + nums[i].off))) != 0)
            return r;
    const char *s;
    if ((s = env_str("KIRO_DNS_SERVERS")) != NULL)
        cfg->dns_servers = s;
    if ((s = env_str("KIRO_CA_FILE")) != NULL)
        cfg->ca_file = s;
    if ((s = env_str("KIRO_TLS_INSECURE")) != NULL)
        cfg->tls_insecure = strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0;
    if ((s = env_str("KIRO_UPSTREAM_PROXY")) != NULL || (s = env_str("HTTPS_PROXY")) != NULL ||
        (s = env_str("https_proxy")) != NULL)
        cfg->proxy = s;
    if ((s = env_str("NO_PROXY")) != NULL || (s = env_str("no_proxy")) != NULL)
        cfg->no_proxy = s;
    if ((s = env_str("KIRO_UPSTREAM_REUSE")) != NULL) {
        if (strcasecmp(s, "account") != 0 && strcasecmp(s, "never") != 0) {
            k2a_error("invalid KIRO_UPSTREAM_REUSE=%s: expected account or never", s);
            return K2A_ECONFIG;
        }
        cfg->reuse_never = strcasecmp(s, "never") == 0;
    }
    return 0;
}

const char *k2a_upstream_outcome_name(k2a_upstream_outcome_t o)
{
    static const char *names[K2A_UPSTREAM_OUTCOME_MAX] = {"ok",    "http_4xx", "http_5xx", "dns",      "connect",  "tls",
                                                          "proxy", "timeout",  "reset",    "protocol", "canceled", "other"};
    return (unsigned)o < K2A_UPSTREAM_OUTCOME_MAX ? names[o] : "unknown";
}
