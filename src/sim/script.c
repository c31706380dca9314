/*
 * kiro-sim's reply script: parses the [[sim:NAME key=value ...]] directives of the last user message into a plan,
 * then produces the EventStream frames of the reply one at a time (k2a_sim_next_frame), so a stream of a million
 * frames costs no more memory than a stream of three. Everything is deterministic: frame splits, tool ids and
 * input cut points come from a PRNG seeded with a hash of the user text, so the same request gives the same bytes.
 *
 * Values: bare words run to the next space or "]]"; values starting with '{' or '[' run to the matching bracket
 * (JSON strings inside are skipped, so `input={"a":"]]"}` works); values starting with '"' are JSON-style
 * strings with \" \\ \n \t \uXXXX escapes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "sim/internal.h"
#include "core/rand.h"

#define MAX_PARAMS 8
#define MAX_FRAMES 10000000u
#define MAX_FRAME_SIZE 1048576u
#define MAX_PIECES 100000u
#define MAX_DELAY_MS 600000u
#define DEFAULT_THINKING "The user wants a short answer. I will reply directly."
#define GENTEXT_PHRASE "lorem ipsum dolor sit amet, consectetur adipiscing elit. "

typedef struct st_param_t {
    char key[16];
    char *value; /* owned, NUL-terminated (raw values may contain any byte but NUL) */
    size_t len;
} param_t;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static char *dup_mem(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int fail(char *err, size_t errsz, const char *fmt, const char *arg)
{
    snprintf(err, errsz, fmt, arg);
    return K2A_EINVAL;
}

/* Parses one value starting at *p (end = text end). Returns the owned value or NULL (syntax error). */
static char *parse_value(const char **pp, const char *end, size_t *vlen)
{
    const char *p = *pp, *start = p;
    if (p < end && (*p == '{' || *p == '[')) {
        int depth = 0;
        bool in_str = false;
        for (; p < end; ++p) {
            if (in_str) {
                if (*p == '\\')
                    ++p;
                else if (*p == '"')
                    in_str = false;
            } else if (*p == '"') {
                in_str = true;
            } else if (*p == '{' || *p == '[') {
                ++depth;
            } else if ((*p == '}' || *p == ']') && --depth == 0) {
                ++p;
                break;
            }
        }
        if (depth != 0 || p > end)
            return NULL;
        *pp = p;
        *vlen = p - start;
        return dup_mem(start, p - start);
    }
    if (p < end && *p == '"') {
        char *out = malloc(end - p + 1);
        size_t n = 0;
        if (out == NULL)
            return NULL;
        for (++p; p < end && *p != '"'; ++p) {
            if (*p != '\\') {
                out[n++] = *p;
                continue;
            }
            if (++p == end)
                break;
            switch (*p) {
            case 'n':
                out[n++] = '\n';
                break;
            case 't':
                out[n++] = '\t';
                break;
            case 'r':
                out[n++] = '\r';
                break;
            case 'u': {
                unsigned cp = 0;
                if (end - p < 5 || sscanf(p + 1, "%4x", &cp) != 1 || cp == 0) {
                    free(out);
                    return NULL;
                }
                p += 4;
                if (cp < 0x80) {
                    out[n++] = (char)cp;
                } else if (cp < 0x800) {
                    out[n++] = (char)(0xc0 | (cp >> 6));
                    out[n++] = (char)(0x80 | (cp & 0x3f));
                } else {
                    out[n++] = (char)(0xe0 | (cp >> 12));
                    out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    out[n++] = (char)(0x80 | (cp & 0x3f));
                }
                break;
            }
            default:
                out[n++] = *p;
            }
        }
        if (p >= end) {
            free(out);
            return NULL;
        }
        *pp = p + 1;
        out[n] = '\0';
        *vlen = n;
        return out;
    }
    while (p < end && *p != ' ' && *p != '\t' && *p != '\n' && !(*p == ']' && p + 1 < end && p[1] == ']'))
        ++p;
    *pp = p;
    *vlen = p - start;
    return dup_mem(start, p - start);
}

static const param_t *find_param(const param_t *params, size_t n, const char *key)
{
    for (size_t i = 0; i < n; ++i)
        if (strcmp(params[i].key, key) == 0)
            return &params[i];
    return NULL;
}

static int get_uint(const param_t *params, size_t n, const char *key, uint32_t def, uint32_t max, uint32_t *out, char *err,
                    size_t errsz)
{
    const param_t *p = find_param(params, n, key);
    char *endp;
    if (p == NULL) {
        *out = def;
        return 0;
    }
    unsigned long v = strtoul(p->value, &endp, 10);
    if (p->len == 0 || *endp != '\0' || v > max)
        return fail(err, errsz, "kiro-sim: bad value for %s", key);
    *out = (uint32_t)v;
    return 0;
}

static int get_double(const param_t *params, size_t n, const char *key, double *out, bool *have, char *err, size_t errsz)
{
    const param_t *p = find_param(params, n, key);
    char *endp;
    if (p == NULL)
        return 0;
    double v = strtod(p->value, &endp);
    if (p->len == 0 || *endp != '\0' || !isfinite(v) || v < 0)
        return fail(err, errsz, "kiro-sim: bad value for %s", key);
    *out = v;
    *have = true;
    return 0;
}

static char *take_param(param_t *params, size_t n, const char *key, const char *def, size_t *len)
{
    for (size_t i = 0; i < n; ++i) {
        if (strcmp(params[i].key, key) == 0) {
            char *v = params[i].value;
            params[i].value = NULL;
            if (len != NULL)
                *len = params[i].len;
            return v;
        }
    }
    if (def == NULL)
        return NULL;
    if (len != NULL)
        *len = strlen(def);
    return strdup(def);
}

static k2a_sim_step_t *add_step(k2a_sim_plan_t *plan, k2a_sim_step_kind_t kind)
{
    if (plan->nsteps == K2A_SIM_MAX_STEPS)
        return NULL;
    if (plan->nsteps == plan->capsteps) {
        size_t cap = plan->capsteps ? plan->capsteps * 2 : 2;
        k2a_sim_step_t *steps = realloc(plan->steps, cap * sizeof(*steps));
        if (steps == NULL)
            return NULL;
        plan->steps = steps;
        plan->capsteps = cap;
    }
    k2a_sim_step_t *s = &plan->steps[plan->nsteps++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    return s;
}

static int add_text_step(k2a_sim_plan_t *plan, const char *prefix, const char *text, size_t len, const char *suffix)
{
    k2a_sim_step_t *s = add_step(plan, K2A_SIM_STEP_TEXT);
    if (s == NULL)
        return K2A_ETOOBIG;
    size_t plen = strlen(prefix), slen = strlen(suffix);
    if ((s->text = malloc(plen + len + slen + 1)) == NULL)
        return K2A_ENOMEM;
    memcpy(s->text, prefix, plen);
    memcpy(s->text + plen, text, len);
    memcpy(s->text + plen + len, suffix, slen + 1);
    s->text_len = plen + len + slen;
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Chooses the cut points of a tool input: `pieces` pieces of at least one byte each. When the input holds a multi-byte
 * UTF-8 sequence and there are at least two pieces, the first cut is placed inside the first such sequence, so that
 * one piece ends with a partial character; the other cuts are uniformly random. */
static int plan_tool_cuts(k2a_sim_step_t *s, uint32_t pieces, uint64_t *rng)
{
    size_t len = s->text_len;
    if (pieces > len)
        pieces = (uint32_t)len;
    s->pieces = pieces;
    if (pieces < 2)
        return 0;
    size_t ncand = len - 1, forced = 0;
    size_t *cand = malloc(ncand * sizeof(*cand));
    if (cand == NULL || (s->cuts = malloc((pieces - 1) * sizeof(*s->cuts))) == NULL) {
        free(cand);
        return K2A_ENOMEM;
    }
    for (size_t i = 0; i < ncand; ++i)
        cand[i] = i + 1;
    for (size_t i = 0; i + 1 < len; ++i) {
        if (((unsigned char)s->text[i] & 0xc0) == 0xc0 && ((unsigned char)s->text[i + 1] & 0xc0) == 0x80) {
            forced = i + 1;
            break;
        }
    }
    size_t k = 0;
    if (forced != 0) {
        /* cand[forced - 1] == forced: move it to the front */
        cand[forced - 1] = cand[0];
        cand[0] = forced;
        k = 1;
    }
    for (; k < pieces - 1; ++k) {
        size_t j = k + k2a_splitmix64(rng) % (ncand - k);
        size_t t = cand[k];
        cand[k] = cand[j];
        cand[j] = t;
    }
    memcpy(s->cuts, cand, (pieces - 1) * sizeof(*s->cuts));
    free(cand);
    qsort(s->cuts, pieces - 1, sizeof(*s->cuts), cmp_size);
    return 0;
}

static void make_tool_id(char *id, uint64_t *rng)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t r = 0;
    memcpy(id, "tooluse_", 8);
    for (int i = 0; i < 22; ++i) {
        if (i % 10 == 0)
            r = k2a_splitmix64(rng);
        id[8 + i] = b64[r & 63];
        r >>= 6;
    }
    id[30] = '\0';
}

static int apply_directive(k2a_sim_plan_t *plan, const char *name, param_t *params, size_t np, uint64_t *rng, char *err,
                           size_t errsz)
{
    int r;
    uint32_t after = 0;
    if (strcmp(name, "text") == 0) {
        k2a_sim_step_t *s = add_step(plan, K2A_SIM_STEP_GENTEXT);
        if (s == NULL)
            return fail(err, errsz, "kiro-sim: too many directives%s", "");
        if ((r = get_uint(params, np, "frames", 3, MAX_FRAMES, &s->frames, err, errsz)) != 0 ||
            (r = get_uint(params, np, "size", 8, MAX_FRAME_SIZE, &s->size, err, errsz)) != 0)
            return r;
        if (s->size == 0)
            return fail(err, errsz, "kiro-sim: %s must be at least 1", "size");
        return 0;
    }
    if (strcmp(name, "tool") == 0 || strcmp(name, "cuttool") == 0) {
        uint32_t pieces;
        if ((r = get_uint(params, np, "pieces", 3, MAX_PIECES, &pieces, err, errsz)) != 0)
            return r;
        size_t tlen;
        char *text = take_param(params, np, "text", NULL, &tlen);
        if (text != NULL) {
            r = add_text_step(plan, "", text, tlen, "");
            free(text);
            if (r != 0)
                return fail(err, errsz, "kiro-sim: too many directives%s", "");
        }
        k2a_sim_step_t *s = add_step(plan, K2A_SIM_STEP_TOOL);
        if (s == NULL)
            return fail(err, errsz, "kiro-sim: too many directives%s", "");
        s->name = take_param(params, np, "name", "tool", NULL);
        s->text = take_param(params, np, "input", "{}", &s->text_len);
        if (s->name == NULL || s->text == NULL)
            return K2A_ENOMEM;
        make_tool_id(s->id, rng);
        if (name[0] == 'c') /* the answer ends here: input pieces without the last one, no stop, no metering */
            s->cut = plan->cut_end = true;
        return plan_tool_cuts(s, pieces, rng);
    }
    if (strcmp(name, "websearch") == 0) {
        /* the model asks for a web search: a toolUse named web_search (or name=...) with {"query": ...} */
        size_t qlen;
        char *query = take_param(params, np, "query", NULL, &qlen);
        if (query == NULL || qlen == 0) {
            free(query);
            return fail(err, errsz, "kiro-sim: %s needs query=...", "websearch");
        }
        k2a_buf_t in = K2A_BUF_INIT(0);
        r = k2a_buf_appendstr(&in, "{\"query\":\"");
        if (r == 0)
            r = k2a_buf_append_json_escaped(&in, query, qlen);
        if (r == 0)
            r = k2a_buf_appendstr(&in, "\"}");
        free(query);
        k2a_sim_step_t *s = r == 0 ? add_step(plan, K2A_SIM_STEP_TOOL) : NULL;
        if (s == NULL) {
            k2a_buf_dispose(&in);
            return fail(err, errsz, "kiro-sim: too many directives%s", "");
        }
        s->name = take_param(params, np, "name", "web_search", NULL);
        s->text = dup_mem(in.base, in.len);
        s->text_len = in.len;
        k2a_buf_dispose(&in);
        if (s->name == NULL || s->text == NULL)
            return K2A_ENOMEM;
        make_tool_id(s->id, rng);
        return plan_tool_cuts(s, 1, rng);
    }
    if (strcmp(name, "reasoning") == 0) {
        k2a_sim_step_t *s = add_step(plan, K2A_SIM_STEP_REASONING);
        if (s == NULL)
            return fail(err, errsz, "kiro-sim: too many directives%s", "");
        s->text = take_param(params, np, "text", "", &s->text_len);
        s->signature = take_param(params, np, "signature", NULL, NULL);
        s->redacted = take_param(params, np, "redacted", NULL, NULL);
        if (s->text == NULL)
            return K2A_ENOMEM;
        return 0;
    }
    if (strcmp(name, "keepopen") == 0) {
        plan->keepopen = true;
        return 0;
    }
    if (strcmp(name, "stop") == 0) {
        free(plan->stop_reason);
        plan->stop_reason = take_param(params, np, "reason", NULL, NULL);
        if (plan->stop_reason == NULL || plan->stop_reason[0] == '\0' || strpbrk(plan->stop_reason, "\"\\") != NULL)
            return fail(err, errsz, "kiro-sim: %s needs reason=NAME", "stop");
        return 0;
    }
    if (strcmp(name, "tokenusage") == 0) {
        plan->have_tokens = true;
        if ((r = get_uint(params, np, "in", 0, UINT32_MAX, &plan->tok_in, err, errsz)) != 0 ||
            (r = get_uint(params, np, "out", 0, UINT32_MAX, &plan->tok_out, err, errsz)) != 0 ||
            (r = get_uint(params, np, "cacheread", 0, UINT32_MAX, &plan->tok_cache_read, err, errsz)) != 0 ||
            (r = get_uint(params, np, "cachewrite", 0, UINT32_MAX, &plan->tok_cache_write, err, errsz)) != 0)
            return r;
        return 0;
    }
    if (strcmp(name, "filtered") == 0) {
        plan->filtered = true;
        return get_uint(params, np, "after", 0, MAX_FRAMES, &plan->filtered_after, err, errsz);
    }
    if (strcmp(name, "thinking") == 0) {
        size_t tlen;
        char *text = take_param(params, np, "text", DEFAULT_THINKING, &tlen);
        if (text == NULL)
            return K2A_ENOMEM;
        r = add_text_step(plan, "<thinking>", text, tlen, "</thinking>\n\n");
        free(text);
        return r != 0 ? fail(err, errsz, "kiro-sim: too many directives%s", "") : 0;
    }
    if (strcmp(name, "exception") == 0 || strcmp(name, "cut") == 0 || strcmp(name, "badcrc") == 0 || strcmp(name, "end") == 0) {
        if ((r = get_uint(params, np, "after", 0, MAX_FRAMES, &after, err, errsz)) != 0)
            return r;
        plan->fault_after = after;
        if (name[0] == 'e' && name[1] == 'x') {
            plan->fault = K2A_SIM_FAULT_EXCEPTION;
            free(plan->exception_type);
            free(plan->exception_message);
            plan->exception_type = take_param(params, np, "type", "ContentLengthExceededException", NULL);
            plan->exception_message = take_param(params, np, "message", NULL, NULL);
        } else {
            plan->fault = name[0] == 'c' ? K2A_SIM_FAULT_CUT : name[0] == 'b' ? K2A_SIM_FAULT_BADCRC : K2A_SIM_FAULT_END;
        }
        return 0;
    }
    if (strcmp(name, "status") == 0) {
        uint32_t code;
        if ((r = get_uint(params, np, "code", 0, 599, &code, err, errsz)) != 0)
            return r;
        if (code < 200)
            return fail(err, errsz, "kiro-sim: %s needs code=200..599", "status");
        plan->status = (int)code;
        free(plan->status_message);
        plan->status_message = take_param(params, np, "message", NULL, NULL);
        return 0;
    }
    if (strcmp(name, "stall") == 0)
        return get_uint(params, np, "ms", 1000, MAX_DELAY_MS, &plan->stall_ms, err, errsz);
    if (strcmp(name, "drip") == 0)
        return get_uint(params, np, "ms", 100, MAX_DELAY_MS, &plan->drip_ms, err, errsz);
    if (strcmp(name, "replay") == 0) {
        free(plan->replay_file);
        plan->replay_file = take_param(params, np, "file", NULL, NULL);
        if (plan->replay_file == NULL || plan->replay_file[0] == '\0')
            return fail(err, errsz, "kiro-sim: %s needs file=PATH", "replay");
        return 0;
    }
    if (strcmp(name, "usage") == 0) {
        if ((r = get_double(params, np, "credits", &plan->credits, &plan->have_credits, err, errsz)) != 0 ||
            (r = get_double(params, np, "context", &plan->context_pct, &plan->have_context, err, errsz)) != 0)
            return r;
        return 0;
    }
    return fail(err, errsz, "kiro-sim: unknown directive \"%.40s\"", name);
}

int k2a_sim_plan_parse(k2a_sim_plan_t *plan, const char *text, size_t len, char *err, size_t errsz)
{
    const char *end = text + len, *p = text;
    k2a_buf_t stripped = K2A_BUF_INIT(0);
    bool has_content = false;
    int r = 0;

    memset(plan, 0, sizeof(*plan));
    plan->seed = fnv1a(text, len);
    uint64_t rng = plan->seed;
    err[0] = '\0';

    while (p < end) {
        const char *d = memmem(p, end - p, "[[sim:", 6);
        if (d == NULL) {
            k2a_buf_append(&stripped, p, end - p);
            break;
        }
        k2a_buf_append(&stripped, p, d - p);
        p = d + 6;
        char name[16];
        size_t nl = 0;
        while (p < end && ((*p >= 'a' && *p <= 'z') || *p == '_') && nl < sizeof(name) - 1)
            name[nl++] = *p++;
        name[nl] = '\0';
        param_t params[MAX_PARAMS];
        size_t np = 0;
        for (;;) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
                ++p;
            if (end - p >= 2 && p[0] == ']' && p[1] == ']') {
                p += 2;
                break;
            }
            size_t kl = 0;
            char key[16];
            while (p < end && ((*p >= 'a' && *p <= 'z') || *p == '_') && kl < sizeof(key) - 1)
                key[kl++] = *p++;
            key[kl] = '\0';
            if (kl == 0 || p == end || *p != '=' || np == MAX_PARAMS) {
                r = fail(err, errsz, "kiro-sim: malformed directive \"%.40s\"", name);
                break;
            }
            ++p;
            memcpy(params[np].key, key, kl + 1);
            if ((params[np].value = parse_value(&p, end, &params[np].len)) == NULL) {
                r = fail(err, errsz, "kiro-sim: malformed value of %.15s", key);
                break;
            }
            ++np;
        }
        if (r == 0) {
            r = apply_directive(plan, name, params, np, &rng, err, errsz);
            if (strcmp(name, "text") == 0 || strcmp(name, "tool") == 0 || strcmp(name, "websearch") == 0)
                if (strcmp(name, "text") == 0 || strcmp(name, "tool") == 0 || strcmp(name, "cuttool") == 0)
                    has_content = true;
        }
        for (size_t i = 0; i < np; ++i)
            free(params[i].value);
        if (r != 0)
            goto Exit;
    }

    /* No text/tool directive: the reply is "echo: " + the first 200 code points of the user text, directives removed
     * and surrounding whitespace trimmed. */
    if (!has_content) {
        const char *s = stripped.base != NULL ? stripped.base : "";
        size_t n = stripped.len, b = 0, chars = 0, e;
        while (b < n && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r'))
            ++b;
        while (n > b && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
            --n;
        for (e = b; e < n; ++e) {
            if (((unsigned char)s[e] & 0xc0) != 0x80 && chars++ == K2A_SIM_ECHO_MAX_CHARS)
                break;
        }
        if ((r = add_text_step(plan, "echo: ", s + b, e - b, "")) != 0)
            fail(err, errsz, "kiro-sim: too many directives%s", "");
    }
Exit:
    k2a_buf_dispose(&stripped);
    if (r != 0)
        k2a_sim_plan_dispose(plan);
    return r;
}

void k2a_sim_plan_dispose(k2a_sim_plan_t *plan)
{
    for (size_t i = 0; i < plan->nsteps; ++i) {
        free(plan->steps[i].text);
        free(plan->steps[i].name);
        free(plan->steps[i].cuts);
        free(plan->steps[i].signature);
        free(plan->steps[i].redacted);
    }
    free(plan->steps);
    plan->steps = NULL;
    plan->nsteps = plan->capsteps = 0;
    free(plan->exception_type);
    free(plan->exception_message);
    free(plan->status_message);
    free(plan->replay_file);
    free(plan->stop_reason);
    plan->exception_type = plan->exception_message = plan->status_message = plan->replay_file = plan->stop_reason = NULL;
}

void k2a_sim_cursor_init(k2a_sim_cursor_t *cur, const k2a_sim_plan_t *plan)
{
    cur->step = 0;
    cur->pos = 0;
    cur->rng = plan->seed ^ 0x5bd1e995ULL;
    cur->text_frames = 0;
}

int k2a_sim_append_raw_json(k2a_buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int r = 0;
    size_t run = 0;
    for (size_t i = 0; i < n && r == 0; ++i) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        if ((r = k2a_buf_append(out, s + run, i - run)) != 0)
            break;
        run = i + 1;
        char esc[6] = {'\\', (char)ch, 0, 0, 0, 0};
        size_t elen = 2;
        if (ch == '\n')
            esc[1] = 'n';
        else if (ch == '\t')
            esc[1] = 't';
        else if (ch == '\r')
            esc[1] = 'r';
        else if (ch < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
        }
        r = k2a_buf_append(out, esc, elen);
    }
    if (r == 0)
        r = k2a_buf_append(out, s + run, n - run);
    return r;
}

static int content_frame(k2a_buf_t *out, k2a_buf_t *payload, const char *text, size_t len)
{
    int r;
    if ((r = k2a_buf_appendstr(payload, "{\"content\":\"")) != 0 || (r = k2a_buf_append_json_escaped(payload, text, len)) != 0 ||
        (r = k2a_buf_appendstr(payload, "\"}")) != 0)
        return r;
    return k2a_es_encode_event(out, "assistantResponseEvent", payload->base, payload->len);
}

static int tool_frame(k2a_buf_t *out, k2a_buf_t *payload, const k2a_sim_step_t *s, const char *piece, size_t plen, bool stop)
{
    int r;
    if ((r = k2a_buf_appendstr(payload, "{\"name\":\"")) != 0 ||
        (r = k2a_buf_append_json_escaped(payload, s->name, strlen(s->name))) != 0 ||
        (r = k2a_buf_appendf(payload, "\",\"toolUseId\":\"%s\"", s->id)) != 0)
        return r;
    if (piece != NULL) {
        if ((r = k2a_buf_appendstr(payload, ",\"input\":\"")) != 0 || (r = k2a_sim_append_raw_json(payload, piece, plen)) != 0 ||
            (r = k2a_buf_appendstr(payload, "\"")) != 0)
            return r;
    }
    if ((r = k2a_buf_appendstr(payload, stop ? ",\"stop\":true}" : "}")) != 0)
        return r;
    return k2a_es_encode_event(out, "toolUseEvent", payload->base, payload->len);
}

/* reasoningContentEvent {"<key>":"<value>"} */
static int reasoning_frame(k2a_buf_t *out, k2a_buf_t *payload, const char *key, const char *value, size_t len)
{
    int r;
    if ((r = k2a_buf_appendf(payload, "{\"%s\":\"", key)) != 0 || (r = k2a_buf_append_json_escaped(payload, value, len)) != 0 ||
        (r = k2a_buf_appendstr(payload, "\"}")) != 0)
        return r;
    return k2a_es_encode_event(out, "reasoningContentEvent", payload->base, payload->len);
}

/* The end of 1..8 code points of text from pos (a frame's worth). */
static size_t text_piece_end(const char *text, size_t len, size_t pos, uint64_t *rng)
{
    size_t want = 1 + k2a_splitmix64(rng) % 8, e = pos;
    for (size_t chars = 0; e < len && chars < want; ++chars) {
        ++e;
        while (e < len && ((unsigned char)text[e] & 0xc0) == 0x80)
            ++e;
    }
    return e;
}

/* Produces the frame of step s at cur->pos; returns 1 (frame), 0 (step exhausted) or < 0. */
static int step_frame(const k2a_sim_step_t *s, k2a_sim_cursor_t *cur, k2a_buf_t *out, k2a_buf_t *payload)
{
    switch (s->kind) {
    case K2A_SIM_STEP_TEXT: {
        if (cur->pos >= s->text_len)
            return 0;
        size_t e = text_piece_end(s->text, s->text_len, cur->pos, &cur->rng);
        int r = content_frame(out, payload, s->text + cur->pos, e - cur->pos);
        cur->pos = e;
        return r < 0 ? r : 1;
    }
    case K2A_SIM_STEP_GENTEXT: {
        static const char phrase[] = GENTEXT_PHRASE;
        const size_t plen = sizeof(phrase) - 1;
        if (cur->pos >= s->frames)
            return 0;
        char *chunk = malloc(s->size);
        if (chunk == NULL)
            return K2A_ENOMEM;
        uint64_t base = (uint64_t)cur->pos * s->size;
        for (size_t j = 0; j < s->size; ++j)
            chunk[j] = phrase[(base + j) % plen];
        int r = content_frame(out, payload, chunk, s->size);
        free(chunk);
        ++cur->pos;
        return r < 0 ? r : 1;
    }
    case K2A_SIM_STEP_TOOL: {
        size_t phase = cur->pos++;
        if (phase == 0)
            return tool_frame(out, payload, s, NULL, 0, false) < 0 ? K2A_ENOMEM : 1;
        if (phase <= s->pieces && !(s->cut && phase == s->pieces)) {
            size_t i = phase - 1;
            size_t from = i == 0 ? 0 : s->cuts[i - 1], to = i + 1 == s->pieces ? s->text_len : s->cuts[i];
            return tool_frame(out, payload, s, s->text + from, to - from, false) < 0 ? K2A_ENOMEM : 1;
        }
        if (phase == s->pieces + 1 && !s->cut)
            return tool_frame(out, payload, s, NULL, 0, true) < 0 ? K2A_ENOMEM : 1;
        return 0;
    }
    case K2A_SIM_STEP_REASONING: {
        if (cur->pos < s->text_len) {
            size_t e = text_piece_end(s->text, s->text_len, cur->pos, &cur->rng);
            int r = reasoning_frame(out, payload, "text", s->text + cur->pos, e - cur->pos);
            cur->pos = e;
            return r < 0 ? r : 1;
        }
        if (cur->pos == s->text_len) {
            ++cur->pos;
            if (s->signature != NULL)
                return reasoning_frame(out, payload, "signature", s->signature, strlen(s->signature)) < 0 ? K2A_ENOMEM : 1;
        }
        if (cur->pos == s->text_len + 1) {
            ++cur->pos;
            if (s->redacted != NULL)
                return reasoning_frame(out, payload, "redactedContent", s->redacted, strlen(s->redacted)) < 0 ? K2A_ENOMEM : 1;
        }
        return 0;
    }
    }
    return 0;
}

/* The stopReason of metadataEvent: the directive's, else what the content implies. */
static const char *stop_reason(const k2a_sim_plan_t *plan)
{
    if (plan->stop_reason != NULL)
        return plan->stop_reason;
    if (plan->filtered)
        return "CONTENT_FILTERED";
    for (size_t i = 0; i < plan->nsteps; ++i)
        if (plan->steps[i].kind == K2A_SIM_STEP_TOOL)
            return "TOOL_USE";
    return "END_TURN";
}

int k2a_sim_next_frame(const k2a_sim_plan_t *plan, k2a_sim_cursor_t *cur, k2a_buf_t *out, bool *in_tail)
{
    k2a_buf_t payload = K2A_BUF_INIT(0);
    int r = 0;
    while (cur->step < plan->nsteps) {
        const k2a_sim_step_t *s = &plan->steps[cur->step];
        bool text = s->kind == K2A_SIM_STEP_TEXT || s->kind == K2A_SIM_STEP_GENTEXT;
        if (plan->filtered && text && cur->text_frames >= plan->filtered_after) {
            cur->step = plan->nsteps; /* the content filter stopped the answer here */
            break;
        }
        if ((r = step_frame(s, cur, out, &payload)) != 0) {
            if (r == 1 && text)
                ++cur->text_frames;
            goto Exit;
        }
        ++cur->step;
        cur->pos = 0;
        if (s->cut) {
            cur->step = plan->nsteps + 3; /* a cut tool call: nothing after it */
            break;
        }
    }
    if (in_tail != NULL)
        *in_tail = true;
    if (cur->step == plan->nsteps) {
        k2a_buf_appendf(&payload, "{\"stopReason\":\"%s\"", stop_reason(plan));
        if (plan->have_tokens) {
            uint64_t total = (uint64_t)plan->tok_in + plan->tok_out + plan->tok_cache_read + plan->tok_cache_write;
            k2a_buf_appendf(&payload,
                            ",\"tokenUsage\":{\"uncachedInputTokens\":%u,\"cacheReadInputTokens\":%u,\"cacheWriteInputTokens\":%u,"
                            "\"outputTokens\":%u,\"totalTokens\":%llu}",
                            plan->tok_in, plan->tok_cache_read, plan->tok_cache_write, plan->tok_out, (unsigned long long)total);
        }
        k2a_buf_appendstr(&payload, "}");
        r = k2a_es_encode_event(out, "metadataEvent", payload.base, payload.len) < 0 ? K2A_ENOMEM : 1;
    } else if (cur->step == plan->nsteps + 1) {
        k2a_buf_appendf(&payload, "{\"contextUsagePercentage\":%.10g}", plan->context_pct);
        r = k2a_es_encode_event(out, "contextUsageEvent", payload.base, payload.len) < 0 ? K2A_ENOMEM : 1;
    } else if (cur->step == plan->nsteps + 2) {
        /* Kiro's last frame, exactly this shape (KRA events/metering.rs) */
        double credits = plan->have_credits ? plan->credits : K2A_SIM_DEFAULT_CREDITS;
        k2a_buf_appendf(&payload, "{\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":%.10g}", credits);
        r = k2a_es_encode_event(out, "meteringEvent", payload.base, payload.len) < 0 ? K2A_ENOMEM : 1;
    } else {
        r = 0;
    }
    if (r == 1)
        ++cur->step;
Exit:
    if (r == 1 && in_tail != NULL)
        *in_tail = cur->step > plan->nsteps;
    k2a_buf_dispose(&payload);
    return r;
}

int k2a_sim_exception_frame(const k2a_sim_plan_t *plan, k2a_buf_t *out)
{
    k2a_buf_t payload = K2A_BUF_INIT(0);
    const char *type = plan->exception_type != NULL ? plan->exception_type : "InternalServerException";
    int r = k2a_buf_appendstr(&payload, "{\"message\":\"");
    if (plan->exception_message != NULL)
        k2a_buf_append_json_escaped(&payload, plan->exception_message, strlen(plan->exception_message));
    else
        k2a_buf_appendf(&payload, "kiro-sim injected %s", type);
    k2a_buf_appendstr(&payload, "\"}");
    if (r == 0)
        r = k2a_es_encode_exception(out, type, payload.base, payload.len) < 0 ? K2A_ENOMEM : 0;
    k2a_buf_dispose(&payload);
    return r;
}
