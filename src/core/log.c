/*
 * Structured logging (see log.h). A line is formatted into a stack buffer, every registered secret is
 * replaced by its mask in the message and in each field before escaping, then the line is written with
 * one write() per sink under a mutex, so concurrent loops never interleave lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "core/buf.h"
#include "core/errors.h"
#include "core/log.h"

#define MAX_SECRETS 4096

static struct {
    pthread_mutex_t mutex;
    k2a_log_level_t level;
    k2a_log_format_t format;
    bool console;
    int file_fd;
    char **secrets;
    size_t *secret_lens;
    size_t nsecrets;
} logger = {PTHREAD_MUTEX_INITIALIZER, K2A_LOG_INFO, K2A_LOG_TEXT, true, -1, NULL, NULL, 0};

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int k2a_log_parse_level(const char *s, k2a_log_level_t *out)
{
    if (strcasecmp(s, "debug") == 0)
        *out = K2A_LOG_DEBUG;
    else if (strcasecmp(s, "info") == 0)
        *out = K2A_LOG_INFO;
    else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        *out = K2A_LOG_WARN;
    else if (strcasecmp(s, "error") == 0)
        *out = K2A_LOG_ERROR;
    else
        return K2A_EINVAL;
    return 0;
}

int k2a_log_configure(k2a_log_level_t level, k2a_log_format_t format, bool console, const char *file)
{
    int fd = -1;
    if (file != NULL && file[0] != '\0') {
        if ((fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) == -1)
            return K2A_EIO;
    }
    pthread_mutex_lock(&logger.mutex);
    if (logger.file_fd != -1)
        close(logger.file_fd);
    logger.level = level;
    logger.format = format;
    logger.console = console || fd == -1;
    logger.file_fd = fd;
    pthread_mutex_unlock(&logger.mutex);
    return 0;
}

void k2a_log_close(void)
{
    pthread_mutex_lock(&logger.mutex);
    if (logger.file_fd != -1)
        close(logger.file_fd);
    logger.file_fd = -1;
    for (size_t i = 0; i < logger.nsecrets; ++i)
        free(logger.secrets[i]);
    free(logger.secrets);
    free(logger.secret_lens);
    logger.secrets = NULL;
    logger.secret_lens = NULL;
    logger.nsecrets = 0;
    pthread_mutex_unlock(&logger.mutex);
}

k2a_log_level_t k2a_log_get_level(void)
{
    return __atomic_load_n(&logger.level, __ATOMIC_RELAXED);
}

void k2a_mask_secret(const char *secret, size_t len, char *out, size_t outsz)
{
    if (outsz == 0)
        return;
    if (len <= 8) {
        snprintf(out, outsz, "****");
        return;
    }
    snprintf(out, outsz, "****%.*s", 4, secret + len - 4);
}

void k2a_log_add_secret(const char *secret, size_t len)
{
    if (secret == NULL || len < 6)
        return;
    pthread_mutex_lock(&logger.mutex);
    for (size_t i = 0; i < logger.nsecrets; ++i) {
        if (logger.secret_lens[i] == len && memcmp(logger.secrets[i], secret, len) == 0)
            goto Exit;
    }
    if (logger.nsecrets == MAX_SECRETS) {
        /* forget the oldest (a rotated-away token) rather than refuse the newest */
        free(logger.secrets[0]);
        memmove(logger.secrets, logger.secrets + 1, (logger.nsecrets - 1) * sizeof(char *));
        memmove(logger.secret_lens, logger.secret_lens + 1, (logger.nsecrets - 1) * sizeof(size_t));
        --logger.nsecrets;
    }
    char **ns = realloc(logger.secrets, (logger.nsecrets + 1) * sizeof(char *));
    if (ns == NULL)
        goto Exit;
    logger.secrets = ns;
    size_t *nl = realloc(logger.secret_lens, (logger.nsecrets + 1) * sizeof(size_t));
    if (nl == NULL)
        goto Exit;
    logger.secret_lens = nl;
    char *copy = malloc(len);
    if (copy == NULL)
        goto Exit;
    memcpy(copy, secret, len);
    logger.secrets[logger.nsecrets] = copy;
    logger.secret_lens[logger.nsecrets] = len;
    ++logger.nsecrets;
Exit:
    pthread_mutex_unlock(&logger.mutex);
}

void k2a_log_remove_secret(const char *secret, size_t len)
{
    pthread_mutex_lock(&logger.mutex);
    for (size_t i = 0; i < logger.nsecrets; ++i) {
        if (logger.secret_lens[i] == len && memcmp(logger.secrets[i], secret, len) == 0) {
            free(logger.secrets[i]);
            memmove(logger.secrets + i, logger.secrets + i + 1, (logger.nsecrets - i - 1) * sizeof(char *));
            memmove(logger.secret_lens + i, logger.secret_lens + i + 1, (logger.nsecrets - i - 1) * sizeof(size_t));
            --logger.nsecrets;
            break;
        }
    }
    pthread_mutex_unlock(&logger.mutex);
}

/* Appends s to out with every registered secret masked, then JSON-escaped (json) or raw. Called with the mutex held. */
/* The text format is one line per record whatever the message holds: a client-supplied string (a model name, a path)
 * with CR/LF would forge log lines and an ANSI escape would drive the operator's terminal. Control bytes and DEL are
 * written as \n, \r, \t or \xNN, a backslash as \\; everything else (UTF-8 included) as is. */
static void append_text_escaped(k2a_buf_t *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '\\')
            continue;
        k2a_buf_append(out, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '\n':
            k2a_buf_appendstr(out, "\\n");
            break;
        case '\r':
            k2a_buf_appendstr(out, "\\r");
            break;
        case '\t':
            k2a_buf_appendstr(out, "\\t");
            break;
        case '\\':
            k2a_buf_appendstr(out, "\\\\");
            break;
        default:
            k2a_buf_appendf(out, "\\x%02x", c);
            break;
        }
    }
    k2a_buf_append(out, s + run, n - run);
}

static void append_scrubbed(k2a_buf_t *out, const char *s, size_t n, bool json)
{
    k2a_buf_t tmp = K2A_BUF_INIT(0);
    const char *src = s;
    size_t srclen = n;
    for (size_t i = 0; i < logger.nsecrets; ++i) {
        const char *sec = logger.secrets[i];
        size_t sl = logger.secret_lens[i];
        if (memmem(src, srclen, sec, sl) == NULL)
            continue;
        char mask[16];
        k2a_mask_secret(sec, sl, mask, sizeof(mask));
        k2a_buf_t next = K2A_BUF_INIT(0);
        const char *p = src, *end = src + srclen, *hit;
        while ((hit = memmem(p, end - p, sec, sl)) != NULL) {
            k2a_buf_append(&next, p, hit - p);
            k2a_buf_appendstr(&next, mask);
            p = hit + sl;
        }
        k2a_buf_append(&next, p, end - p);
        k2a_buf_dispose(&tmp);
        tmp = next;
        src = tmp.base != NULL ? tmp.base : "";
        srclen = tmp.len;
    }
    if (json)
        k2a_buf_append_json_escaped(out, src, srclen);
    else
        append_text_escaped(out, src, srclen);
    k2a_buf_dispose(&tmp);
}

void k2a_vlog_fields(k2a_log_level_t level, const char *request_id, const k2a_log_field_t *fields, size_t nfields, const char *fmt,
                     va_list ap)
{
    if (level < k2a_log_get_level())
        return;
    int saved_errno = errno;
    char msgbuf[2048];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(msgbuf, sizeof(msgbuf), fmt, ap2);
    va_end(ap2);
    char *msg = msgbuf;
    if (n < 0) {
        n = 0;
        msgbuf[0] = '\0';
    } else if ((size_t)n >= sizeof(msgbuf)) {
        if ((msg = malloc((size_t)n + 1)) == NULL) {
            msg = msgbuf;
            n = sizeof(msgbuf) - 1;
        } else {
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
        }
    }

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    k2a_buf_t line = K2A_BUF_INIT(0);
    pthread_mutex_lock(&logger.mutex);
    if (logger.format == K2A_LOG_JSON) {
        k2a_buf_appendf(&line, "{\"timestamp\":\"%s\",\"level\":\"%s\",\"message\":\"", ts, level_names[level]);
        append_scrubbed(&line, msg, (size_t)n, true);
        k2a_buf_appendstr(&line, "\"");
        if (request_id != NULL) {
            k2a_buf_appendstr(&line, ",\"request_id\":\"");
            append_scrubbed(&line, request_id, strlen(request_id), true);
            k2a_buf_appendstr(&line, "\"");
        }
        for (size_t i = 0; i < nfields; ++i) {
            k2a_buf_appendstr(&line, ",\"");
            k2a_buf_append_json_escaped(&line, fields[i].key, strlen(fields[i].key));
            k2a_buf_appendstr(&line, "\":");
            if (fields[i].str != NULL) {
                k2a_buf_appendstr(&line, "\"");
                append_scrubbed(&line, fields[i].str, strlen(fields[i].str), true);
                k2a_buf_appendstr(&line, "\"");
            } else {
                k2a_buf_appendf(&line, "%.17g", fields[i].num);
            }
        }
        k2a_buf_appendstr(&line, "}\n");
    } else {
        k2a_buf_appendf(&line, "%s %-5s ", ts, level_names[level]);
        if (request_id != NULL) {
            k2a_buf_appendstr(&line, "[");
            append_scrubbed(&line, request_id, strlen(request_id), false);
            k2a_buf_appendstr(&line, "] ");
        }
        append_scrubbed(&line, msg, (size_t)n, false);
        for (size_t i = 0; i < nfields; ++i) {
            k2a_buf_appendf(&line, " %s=", fields[i].key);
            if (fields[i].str != NULL)
                append_scrubbed(&line, fields[i].str, strlen(fields[i].str), false);
            else
                k2a_buf_appendf(&line, "%.17g", fields[i].num);
        }
        k2a_buf_appendstr(&line, "\n");
    }
    if (line.base != NULL) {
        if (logger.console) {
            ssize_t w = write(STDERR_FILENO, line.base, line.len);
            (void)w;
        }
        if (logger.file_fd != -1) {
            ssize_t w = write(logger.file_fd, line.base, line.len);
            (void)w;
        }
    }
    pthread_mutex_unlock(&logger.mutex);
    k2a_buf_dispose(&line);
    if (msg != msgbuf)
        free(msg);
    errno = saved_errno;
}

void k2a_log_fields(k2a_log_level_t level, const char *request_id, const k2a_log_field_t *fields, size_t nfields, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    k2a_vlog_fields(level, request_id, fields, nfields, fmt, ap);
    va_end(ap);
}
