/*
 * Structured logging: one line per event to the console (stderr) and/or a file, as text or as one JSON
 * object per line (timestamp, level, message, request_id, then fields). Secrets never reach the
 * output: every secret registered with k2a_log_add_secret() is replaced by its masked form
 * ("****" + last 4 characters) in every line, whichever code path formatted it. Thread-safe.
 */
#ifndef K2A_CORE_LOG_H
#define K2A_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum en_k2a_log_level_t { K2A_LOG_DEBUG = 0, K2A_LOG_INFO, K2A_LOG_WARN, K2A_LOG_ERROR } k2a_log_level_t;
typedef enum en_k2a_log_format_t { K2A_LOG_TEXT = 0, K2A_LOG_JSON } k2a_log_format_t;

typedef struct st_k2a_log_field_t {
    const char *key;
    const char *str; /* string value, or NULL to use num */
    double num;
} k2a_log_field_t;

#define K2A_LF_STR(k, v) ((k2a_log_field_t){(k), (v), 0})
#define K2A_LF_NUM(k, v) ((k2a_log_field_t){(k), NULL, (double)(v)})

/* Configures the sinks. file may be NULL. Returns 0 or K2A_EIO when the file cannot be opened. */
int k2a_log_configure(k2a_log_level_t level, k2a_log_format_t format, bool console, const char *file);
void k2a_log_close(void);
k2a_log_level_t k2a_log_get_level(void);
static inline bool k2a_log_enabled(k2a_log_level_t level)
{
    return level >= k2a_log_get_level();
}
/* Registers a secret (copied) that must never appear in the output. Strings shorter than 6 bytes are ignored (too
 * likely to collide with ordinary text; such a secret is not a real token anyway). */
void k2a_log_add_secret(const char *secret, size_t len);
void k2a_log_remove_secret(const char *secret, size_t len);
/* Writes "****" + last 4 characters of secret into out (always NUL-terminated). "****" for short secrets. */
void k2a_mask_secret(const char *secret, size_t len, char *out, size_t outsz);

void k2a_log_fields(k2a_log_level_t level, const char *request_id, const k2a_log_field_t *fields, size_t nfields, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
void k2a_vlog_fields(k2a_log_level_t level, const char *request_id, const k2a_log_field_t *fields, size_t nfields, const char *fmt,
                     va_list ap);

#define K2A_LOG(level, rid, ...)                                                                                                   \
    do {                                                                                                                           \
        if (k2a_log_enabled(level))                                                                                                \
            k2a_log_fields((level), (rid), NULL, 0, __VA_ARGS__);                                                                  \
    } while (0)
#define k2a_debug(...) K2A_LOG(K2A_LOG_DEBUG, NULL, __VA_ARGS__)
#define k2a_info(...) K2A_LOG(K2A_LOG_INFO, NULL, __VA_ARGS__)
#define k2a_warn(...) K2A_LOG(K2A_LOG_WARN, NULL, __VA_ARGS__)
#define k2a_error(...) K2A_LOG(K2A_LOG_ERROR, NULL, __VA_ARGS__)

/* Parses "debug|info|warn|warning|error" (case-insensitive). Returns 0 or K2A_EINVAL. */
int k2a_log_parse_level(const char *s, k2a_log_level_t *out);

#endif
