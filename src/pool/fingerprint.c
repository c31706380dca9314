/*
 * The Kiro IDE's user-agent strings (see fingerprint.h), built per call from the version and the machineId, the only
 * inputs. The streaming pair is built on every generate attempt, so it is concatenated by hand (snprintf cost ~900
 * instructions a string there); the control-plane ones use snprintf.
 */
#include <stdio.h>
#include <string.h>
#include "pool/fingerprint.h"

/* out = a + b + "-" + c, cut to out_size - 1 bytes. */
static void cat_ua(char *out, size_t out_size, const char *a, size_t alen, const char *b, const char *c)
{
    size_t n = 0, bl = strlen(b), cl = strlen(c);
    if (out_size == 0)
        return;
#define PUT(s, l)                                                                                                                  \
    do {                                                                                                                           \
        size_t k_ = (l) < out_size - 1 - n ? (l) : out_size - 1 - n;                                                               \
        memcpy(out + n, (s), k_);                                                                                                  \
        n += k_;                                                                                                                   \
    } while (0)
    PUT(a, alen);
    PUT(b, bl);
    PUT("-", 1);
    PUT(c, cl);
#undef PUT
    out[n] = '\0';
}

void k2a_fp_streaming_ua(const char *version, const char *machine_id, char *xamz, size_t xamz_size, char *ua, size_t ua_size)
{
    static const char x[] = "aws-sdk-js/1.0.34 KiroIDE-";
    static const char u[] = "aws-sdk-js/1.0.34 ua/2.1 os/" K2A_FP_OS " lang/js md/nodejs#" K2A_FP_NODE
                            " api/codewhispererstreaming#1.0.34 m/E KiroIDE-";
    cat_ua(xamz, xamz_size, x, sizeof(x) - 1, version, machine_id);
    cat_ua(ua, ua_size, u, sizeof(u) - 1, version, machine_id);
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
