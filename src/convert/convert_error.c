/*
 * Conversion errors and decoder limits (see convert_error.h): default limits and the message formatter.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "convert/convert_error.h"

k2a_convert_limits_t k2a_convert_limits_default(void)
{
    k2a_convert_limits_t l;
    l.max_depth = K2A_CONVERT_DEFAULT_MAX_DEPTH;
    l.max_messages = K2A_CONVERT_DEFAULT_MAX_MESSAGES;
    l.max_blocks = K2A_CONVERT_DEFAULT_MAX_BLOCKS;
    l.max_system_blocks = K2A_CONVERT_DEFAULT_MAX_SYSTEM_BLOCKS;
    l.max_tools = K2A_CONVERT_DEFAULT_MAX_TOOLS;
    l.max_stop_sequences = K2A_CONVERT_DEFAULT_MAX_STOP_SEQUENCES;
    l.max_string_bytes = K2A_CONVERT_DEFAULT_MAX_STRING_BYTES;
    l.max_json_value_bytes = K2A_CONVERT_DEFAULT_MAX_JSON_VALUE_BYTES;
    return l;
}

int k2a_convert_error_set(k2a_convert_error_t *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    if (n < 0) {
        err->message[0] = '\0';
    } else if ((size_t)n >= sizeof(err->message)) {
        /* truncated: end on "..." and never in the middle of a UTF-8 sequence */
        size_t end = sizeof(err->message) - 4;
        while (end > 0 && ((unsigned char)err->message[end] & 0xc0) == 0x80)
            --end;
        memcpy(err->message + end, "...", 4);
    }
    return code;
}

void k2a_convert_error_clear(k2a_convert_error_t *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->message[0] = '\0';
}
