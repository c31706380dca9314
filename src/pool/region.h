/*
 * Regions, profile ARNs and endpoint templates of Kiro accounts (kiro-protocol-2026 §2, §4.3, §11), as pure
 * functions without I/O so that they are unit-tested as tables: which regions exist, what a well-formed
 * profileArn is, which ARN an account sends on generateAssistantResponse and which on REST calls, which
 * region its data plane is in, and how a `{region}` URL template is filled in.
 */
#ifndef K2A_POOL_REGION_H
#define K2A_POOL_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include "core/buf.h"

/* The regions Kiro serves (§4.1: us-east-1 and eu-central-1). */
#define K2A_REGION_DEFAULT "us-east-1"
#define K2A_REGION_MAX 24 /* bytes of a region name, NUL included */
extern const char *const k2a_regions[];
#define K2A_NREGIONS 2

/* The fixed ARNs of §2.2. */
#define K2A_ARN_SOCIAL_DEFAULT "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
#define K2A_ARN_BUILDER_ID "arn:aws:codewhisperer:us-east-1:638616132270:profile/AAAACCCCXXXX"

/* The index of a known region in k2a_regions, or -1. */
int k2a_region_index(const char *region);

/* Parses "arn:aws:codewhisperer:<region>:<12 digits>:profile/<id>" (id: 1..64 of [A-Za-z0-9_-]; the region must be a known
 * one). Copies the region into region (K2A_REGION_MAX bytes) when not NULL. Returns 0, or K2A_EINVAL (malformed) or
 * K2A_EUNSUPPORTED (well-formed, but in a region Kiro does not serve). */
int k2a_arn_parse(const char *arn, char region[K2A_REGION_MAX]);

/* The credential kinds an ARN rule depends on (a mirror of pool.h's k2a_auth_kind_t, kept here so that this file has no
 * dependency on the pool). */
typedef enum en_k2a_arn_kind_t {
    K2A_ARN_KIND_SOCIAL = 0,
    K2A_ARN_KIND_IDC,
    K2A_ARN_KIND_BUILDER_ID,
    K2A_ARN_KIND_API_KEY,
    K2A_ARN_KIND_EXTERNAL_IDP,
} k2a_arn_kind_t;

/* The ARN sent at the body root of generateAssistantResponse, first that applies: none for API keys; the configured one;
 * the learned one (a refresh answer, ListAvailableProfiles, the state file); the Social default for Social; the Builder ID
 * placeholder for everything else (Builder ID, and IdC/external_idp accounts without a profile). configured and learned
 * may be NULL or "". */
const char *k2a_arn_for_generate(k2a_arn_kind_t kind, const char *configured, const char *learned);
/* The ARN of REST calls (getUsageLimits, ListAvailableModels): the same order, but never the Builder ID placeholder (REST
 * answers it with 403 "Invalid token"). NULL when there is none. */
const char *k2a_arn_for_rest(k2a_arn_kind_t kind, const char *configured, const char *learned);

/* The data-plane region (§4.3): the ARN's region (when arn parses), else api_region, else region, else us-east-1. The
 * strings may be NULL or "". Returns one of its arguments' bytes or the default: copy it if it must outlive them. */
const char *k2a_data_region(const char *arn, const char *api_region, const char *region, char buf[K2A_REGION_MAX]);

/* Appends tmpl to out with every "{region}" replaced by region. Returns 0 or a K2A_E* of the buffer. */
int k2a_region_fill(const char *tmpl, const char *region, k2a_buf_t *out);

#endif
