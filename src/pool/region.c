/*
 * Regions, profile ARNs and `{region}` templates (see region.h). No I/O, no allocation but the caller's buffer.
 */
#include <stdio.h>
#include <string.h>
#include "core/errors.h"
#include "pool/region.h"

const char *const k2a_regions[K2A_NREGIONS] = {"us-east-1", "eu-central-1"};

int k2a_region_index(const char *region)
{
    if (region == NULL)
        return -1;
    for (int i = 0; i < K2A_NREGIONS; ++i)
        if (strcmp(region, k2a_regions[i]) == 0)
            return i;
    return -1;
}

static bool is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int k2a_arn_parse(const char *arn, char region[K2A_REGION_MAX])
{
    static const char prefix[] = "arn:aws:codewhisperer:";
    if (arn == NULL || strncmp(arn, prefix, sizeof(prefix) - 1) != 0)
        return K2A_EINVAL;
    const char *p = arn + sizeof(prefix) - 1, *colon = strchr(p, ':');
    size_t rlen = colon != NULL ? (size_t)(colon - p) : 0;
    if (rlen == 0 || rlen >= K2A_REGION_MAX)
        return K2A_EINVAL;
    for (size_t i = 0; i < rlen; ++i)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
            return K2A_EINVAL;
    char r[K2A_REGION_MAX];
    memcpy(r, p, rlen);
    r[rlen] = '\0';
    const char *acct = colon + 1;
    size_t digits = strspn(acct, "0123456789");
    if (digits != 12 || strncmp(acct + 12, ":profile/", 9) != 0)
        return K2A_EINVAL;
    const char *id = acct + 12 + 9;
    size_t idlen = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
    if (idlen == 0 || idlen > 64 || id[idlen] != '\0')
        return K2A_EINVAL;
    if (k2a_region_index(r) < 0)
        return K2A_EUNSUPPORTED;
    if (region != NULL)
        memcpy(region, r, rlen + 1);
    return 0;
}

const char *k2a_arn_for_generate(k2a_arn_kind_t kind, const char *configured, const char *learned)
{
    if (kind == K2A_ARN_KIND_API_KEY)
        return NULL;
    if (is_set(configured))
        return configured;
    if (is_set(learned))
        return learned;
    return kind == K2A_ARN_KIND_SOCIAL ? K2A_ARN_SOCIAL_DEFAULT : K2A_ARN_BUILDER_ID;
}

const char *k2a_arn_for_rest(k2a_arn_kind_t kind, const char *configured, const char *learned)
{
    const char *arn = k2a_arn_for_generate(kind, configured, learned);
    return arn != NULL && strcmp(arn, K2A_ARN_BUILDER_ID) != 0 ? arn : NULL;
}

const char *k2a_data_region(const char *arn, const char *api_region, const char *region, char buf[K2A_REGION_MAX])
{
    if (is_set(arn) && k2a_arn_parse(arn, buf) == 0)
        return buf;
    if (is_set(api_region))
        return api_region;
    if (is_set(region))
        return region;
    return K2A_REGION_DEFAULT;
}

int k2a_region_fill(const char *tmpl, const char *region, k2a_buf_t *out)
{
    static const char var[] = "{region}";
    int r = 0;
    const char *p = tmpl, *hit;
    while (r == 0 && (hit = strstr(p, var)) != NULL) {
        if ((r = k2a_buf_append(out, p, (size_t)(hit - p))) == 0)
            r = k2a_buf_appendstr(out, region);
        p = hit + sizeof(var) - 1;
    }
    return r != 0 ? r : k2a_buf_appendstr(out, p);
}
