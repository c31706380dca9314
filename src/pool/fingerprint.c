/*
 * The Kiro IDE's user-agent strings (see fingerprint.h). Formatted per call: two snprintf calls cost far
 * less than the TLS write that follows, and the version and machineId stay the only inputs.
 */
#include <stdio.h>
#include "pool/fingerprint.h"

void k2a_fp_streaming_ua(const char *version, const char *machine_id, char *xamz, size_t xamz_size, char *ua, size_t ua_size)
{
    snprintf(xamz, xamz_size, "aws-sdk-js/1.0.34 KiroIDE-%s-%s", version, machine_id);
    snprintf(ua, ua_size,
             "aws-sdk-js/1.0.34 ua/2.1 os/" K2A_FP_OS " lang/js md/nodejs#" K2A_FP_NODE
             " api/codewhispererstreaming#1.0.34 m/E KiroIDE-%s-%s",
             version, machine_id);
}

void k2a_fp_rest_ua(const char *version, const char *machine_id, char *xamz, size_t xamz_size, char *ua, size_t ua_size)
{
    snprintf(xamz, xamz_size, "aws-sdk-js/1.0.0 KiroIDE-%s-%s", version, machine_id);
    snprintf(ua, ua_size,
             "aws-sdk-js/1.0.0 ua/2.1 os/" K2A_FP_OS " lang/js md/nodejs#" K2A_FP_NODE
             " api/codewhispererruntime#1.0.0 m/N,E KiroIDE-%s-%s",
             version, machine_id);
}

void k2a_fp_social_ua(const char *version, const char *machine_id, char *ua, size_t ua_size)
{
    snprintf(ua, ua_size, "KiroIDE-%s-%s", version, machine_id);
}
