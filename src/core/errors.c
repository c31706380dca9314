/*
 * Messages and names of the K2A_E* codes, generated from the one X-macro table in errors.h.
 */
#include "core/errors.h"

static const char *const messages[] = {
#define XX(name, msg) msg,
    K2A_ERRNO_MAP(XX)
#undef XX
};

static const char *const names[] = {
#define XX(name, msg) #name,
    K2A_ERRNO_MAP(XX)
#undef XX
};

const char *k2a_strerror(int err)
{
    if (err == 0)
        return "success";
    if (err < 0 && -err - 1 < K2A__EIDX_MAX)
        return messages[-err - 1];
    return "unknown error";
}

const char *k2a_errname(int err)
{
    if (err == 0)
        return "OK";
    if (err < 0 && -err - 1 < K2A__EIDX_MAX)
        return names[-err - 1];
    return "UNKNOWN";
}
