/*
 * What the gateway announces to Kiro about itself: the user-agent strings of the Kiro IDE (aws-sdk-js on
 * Node), per call family, with the account's machineId. The fixed parts (SDK versions, OS, Node) are the
 * values peers report from captures (docs/kiro-compat.md "Headers and fingerprint"); the IDE version is
 * KIRO_IDE_VERSION. The header sets and their order are built by the callers (dispatch.c, refresh.c).
 */
#ifndef K2A_POOL_FINGERPRINT_H
#define K2A_POOL_FINGERPRINT_H

#include <stddef.h>

#define K2A_FP_OS "darwin#24.6.0"
#define K2A_FP_NODE "22.22.0"
/* amz-sdk-request "max" of generate calls: the aws-sdk-js default retry budget. An account is tried at most twice per
 * request (the first try and one retry after a token refresh), so attempt=N never exceeds it. */
#define K2A_FP_GENERATE_MAX_ATTEMPTS 3

/* generateAssistantResponse (codewhispererstreaming 1.0.34). */
void k2a_fp_streaming_ua(const char *version, const char *machine_id, char *xamz, size_t xamz_size, char *ua, size_t ua_size);
/* getUsageLimits, ListAvailableModels, ListAvailableProfiles (codewhispererruntime 1.0.0). */
void k2a_fp_rest_ua(const char *version, const char *machine_id, char *xamz, size_t xamz_size, char *ua, size_t ua_size);
/* Social refresh: "KiroIDE-<version>-<machineId>". */
void k2a_fp_social_ua(const char *version, const char *machine_id, char *ua, size_t ua_size);
/* IdC refresh (sso-oidc 3.980.0): fixed strings. */
#define K2A_FP_IDC_X_AMZ_USER_AGENT "aws-sdk-js/3.980.0 KiroIDE"
#define K2A_FP_IDC_USER_AGENT                                                                                                      \
    "aws-sdk-js/3.980.0 ua/2.1 os/" K2A_FP_OS " lang/js md/nodejs#" K2A_FP_NODE " api/sso-oidc#3.980.0 m/E KiroIDE"

#endif
