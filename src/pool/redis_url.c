/*
 * Pure helpers of the shared store (store_redis.h): the KIRO_REDIS_URL parser and the rule that decides what another
 * replica's record replaces in this replica's copy of an account. No I/O here, so both are unit-tested directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "pool/store_redis.h"

static int fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "KIRO_REDIS_URL: %s (expected redis://[:password@]host:port/db)", why);
    return K2A_ECONFIG;
}

static int parse_uint(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 6)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int k2a_redis_url_parse(const char *url, k2a_redis_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    static const char scheme[] = "redis://";
    if (url == NULL || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return fail(err, errlen, "not a redis:// URL");
    const char *s = url + sizeof(scheme) - 1;
    size_t len = strlen(s);
    if (len > 1024)
        return fail(err, errlen, "too long");
    const char *end = s + len;
    /* authority ends at the first '/' after the userinfo (a password may hold '/': the last '@' ends the userinfo) */
    const char *at = NULL;
    for (const char *q = s; q < end; ++q)
        if (*q == '@')
            at = q;
    const char *host = s;
    if (at != NULL) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon == NULL)
            return fail(err, errlen, "the userinfo needs a password after ':'");
        size_t pl = (size_t)(at - colon - 1);
        if (pl == 0)
            return fail(err, errlen, "empty password");
        if (pl >= sizeof(out->password))
            return fail(err, errlen, "password too long");
        memcpy(out->password, colon + 1, pl);
        host = at + 1;
    }
    const char *slash = memchr(host, '/', (size_t)(end - host));
    const char *hend = slash != NULL ? slash : end;
    const char *port = NULL;
    if (host < hend && *host == '[') {
        const char *rb = memchr(host, ']', (size_t)(hend - host));
        if (rb == NULL)
            return fail(err, errlen, "unclosed '[' in the host");
        if ((size_t)(rb - host - 1) >= sizeof(out->host) || rb == host + 1)
            return fail(err, errlen, "bad host");
        memcpy(out->host, host + 1, (size_t)(rb - host - 1));
        if (rb + 1 < hend) {
            if (rb[1] != ':')
                return fail(err, errlen, "junk after the host");
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(hend - host));
        const char *he = colon != NULL ? colon : hend;
        if (he == host)
            return fail(err, errlen, "no host");
        if ((size_t)(he - host) >= sizeof(out->host))
            return fail(err, errlen, "host too long");
        for (const char *q = host; q < he; ++q)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '.' || *q == '-' ||
                  *q == '_'))
                return fail(err, errlen, "bad character in the host");
        memcpy(out->host, host, (size_t)(he - host));
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL) {
        long v;
        if (parse_uint(port, (size_t)(hend - port), 65535, &v) != 0 || v == 0)
            return fail(err, errlen, "bad port");
        out->port = (int)v;
    }
    if (slash != NULL && slash + 1 < end) {
        long v;
        if (parse_uint(slash + 1, (size_t)(end - slash - 1), 15, &v) != 0)
            return fail(err, errlen, "bad database number (0-15)");
        out->db = (int)v;
    }
    return 0;
}

unsigned k2a_redis_merge(uint64_t my_rtv, uint64_t their_rtv, int64_t my_atexp, int64_t their_atexp, int64_t my_stts,
                         int64_t their_stts, int64_t now)
{
    unsigned take = 0;
    if (their_rtv > my_rtv)
        take |= K2A_REDIS_TAKE_RT;
    if (their_atexp > now && their_atexp > my_atexp)
        take |= K2A_REDIS_TAKE_AT;
    if (their_stts > my_stts)
        take |= K2A_REDIS_TAKE_STATE;
    return take;
}
