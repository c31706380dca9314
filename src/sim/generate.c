/*
 * kiro-sim's generateAssistantResponse: bearer check, strict validation (validate.c), the account's fault, the
 * directives (script.c), then the reply, streamed by a small state machine on h2o's generator protocol: at most one
 * h2o_send in flight, the next frame is produced only when h2o calls proceed, so a slow client costs one frame of
 * memory. Stalls and drips use one uv_timer per stream; the stream is heap-allocated and freed in the timer's close
 * callback. A ref-counted guard in the request's pool tells the stream when h2o disposes of the request, which also
 * covers a client that goes away while the response has not started yet (stall), when no generator is registered.
 *
 * Order of the checks of a generate call: the bearer (403; ksk_ keys need tokentype API_KEY, external_idp tokens
 * tokentype EXTERNAL_IDP), the fingerprint headers (2026 mode: warnings, or 400 under --strict-headers), the body
 * (validate.c, with the account as the caller), then the account's scripted state:
 *   sim-exhausted-  402 {"message":"You have reached the limit of requests for this month.","reason":"MONTHLY_REQUEST_COUNT"}
 *   sim-overage-    402 (--overage-status 400) {"__type":"com.amazon.aws.codewhisperer#ServiceQuotaExceededException",
 *                   "message":"You have reached the limit for overages.","reason":"OVERAGE_REQUEST_LIMIT_EXCEEDED"}
 *   sim-429-        429 {"message":"Too many requests, please wait before trying again.","reason":null}
 *   sim-suspicious- 429 {"message":"Due to suspicious activity, ... your account (d-sim.<name>) ...","reason":null}
 *   sim-suspended-  403 {"message":"Your User ID is temporarily suspended. ...","reason":"TEMPORARILY_SUSPENDED"}
 *   sim-403-        403 bearer invalid (2026: {"message":"The bearer token included in the request is invalid."})
 *   sim-capacity-   429 (--capacity-status 400) {"__type":"com.amazon.aws.codewhisperer#ThrottlingException",
 *                   "message":"I am experiencing high traffic, please try again shortly.","reason":"INSUFFICIENT_MODEL_CAPACITY"}
 *   sim-423-        423 {"message":"Your account is locked.","reason":null} (the doc knows the status only)
 *   sim-500-        500 internal error
 * The __type prefixes the doc elides are completed as com.amazon.aws.codewhisperer#..., like its ThrottlingException.
 * [[sim:keepopen]] puts the end of a complete body off by K2A_SIM_KEEPOPEN_MS (the same timer), as Kiro often does after
 * its last frame (meteringEvent).
 * A reply with none of the pacing, fault, status, replay or keep-open directives (and no --chunk / --frame-writes) is
 * encoded whole once, cached by its user text (fastreply.c) and written in one piece: the same bytes, one write.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "sim/internal.h"

#define MAX_REPLAY_BYTES (16u << 20)
#define BODY_THROTTLED "{\"message\":\"Too many requests, please wait before trying again.\",\"reason\":null}"
#define BODY_MONTHLY "{\"message\":\"You have reached the limit of requests for this month.\",\"reason\":\"MONTHLY_REQUEST_COUNT\"}"
#define BODY_INTERNAL                                                                                                              \
    "{\"message\":\"Encountered an unexpected error when processing the request, please try again.\",\"reason\":null}"
#define BODY_MALFORMED "{\"message\":\"Improperly formed request.\",\"reason\":null}"
#define BODY_OVERAGE                                                                                                               \
    "{\"__type\":\"com.amazon.aws.codewhisperer#ServiceQuotaExceededException\",\"message\":\"You have reached the limit for "     \
    "overages.\",\"reason\":\"OVERAGE_REQUEST_LIMIT_EXCEEDED\"}"
#define BODY_CAPACITY                                                                                                              \
    "{\"__type\":\"com.amazon.aws.codewhisperer#ThrottlingException\",\"message\":\"I am experiencing high traffic, please try "   \
    "again shortly.\",\"reason\":\"INSUFFICIENT_MODEL_CAPACITY\"}"
#define BODY_SUSPENDED                                                                                                             \
    "{\"message\":\"Your User ID is temporarily suspended. We detected unusual user activity and locked it as a security "         \
    "precaution. To restore access, please contact our support team to verify your identity: "                                     \
    "https://support.aws.amazon.com/#/contacts/kiro\",\"reason\":\"TEMPORARILY_SUSPENDED\"}"
#define BODY_LOCKED "{\"message\":\"Your account is locked.\",\"reason\":null}"
#define SUSPICIOUS_1 "{\"message\":\"Due to suspicious activity, we are imposing temporary limits on how frequently your account ("
#define SUSPICIOUS_2                                                                                                               \
    ") can send a request to Kiro while we investigate. If you need assistance, please contact support at "                        \
    "https://app.kiro.dev/account/usage?support_form.\",\"reason\":null}"

#define RESPOND_LITERAL(srv, req, status, lit) k2a_sim_respond_json((srv), (req), (status), (lit), sizeof(lit) - 1, 0)

struct st_sim_stream_t;

typedef struct st_sim_guard_t {
    struct st_sim_stream_t *stream;
} sim_guard_t;

typedef struct st_sim_stream_t {
    h2o_generator_t super;
    k2a_sim_server_t *srv;
    h2o_req_t *req; /* NULL once h2o is done with it */
    sim_guard_t *guard;
    uv_timer_t timer;
    bool timer_init, started, inflight, eof, in_pump, dead, tick, flush, counted, fault_done;
    bool held, holding; /* [[sim:keepopen]]: the body's end was put off (once), and the timer has not fired yet */
    /* a delayed JSON answer */
    int inline_status;
    char *inline_body;
    size_t inline_len;
    /* an EventStream reply */
    k2a_sim_plan_t plan;
    k2a_sim_cursor_t cur;
    char *replay;
    size_t replay_len, replay_off;
    k2a_buf_t out;
    size_t out_off, last_sent, chunk;
    uint64_t frames;
    h2o_send_state_t end_state;
} sim_stream_t;

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 423:
        return "Locked";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static void send_json_now(k2a_sim_server_t *srv, h2o_req_t *req, int status, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    k2a_sim_add_common_headers(srv, req, "application/json");
    h2o_send_inline(req, body, len);
}

static void on_timer_close(uv_handle_t *h)
{
    free(h->data);
}

static void release(sim_stream_t *s)
{
    if (s->guard != NULL) {
        s->guard->stream = NULL;
        s->guard = NULL;
    }
    if (s->counted)
        --s->srv->stats.open_streams;
    k2a_sim_plan_dispose(&s->plan);
    k2a_buf_dispose(&s->out);
    free(s->replay);
    free(s->inline_body);
    if (s->timer_init)
        uv_close((uv_handle_t *)&s->timer, on_timer_close);
    else
        free(s);
}

/* h2o is done with the request (stop callback or pool disposal): never touch req again. */
static void on_req_gone(sim_stream_t *s)
{
    s->req = NULL;
    s->dead = true;
    if (!s->in_pump)
        release(s);
}

static void on_guard_dispose(void *p)
{
    sim_guard_t *g = p;
    if (g->stream != NULL) {
        g->stream->guard = NULL;
        on_req_gone(g->stream);
    }
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    on_req_gone((sim_stream_t *)gen);
}

/* Takes the request away from the stream before a final h2o call, which may dispose of it synchronously. */
static h2o_req_t *detach(sim_stream_t *s)
{
    h2o_req_t *req = s->req;
    s->req = NULL;
    s->dead = true;
    if (s->guard != NULL) {
        s->guard->stream = NULL;
        s->guard = NULL;
    }
    return req;
}

static void pump(sim_stream_t *s);

static void on_timer(uv_timer_t *t)
{
    sim_stream_t *s = t->data;
    if (s->dead)
        return;
    if (!s->started) {
        s->started = true;
        if (s->inline_body != NULL) {
            send_json_now(s->srv, detach(s), s->inline_status, s->inline_body, s->inline_len);
            release(s);
            return;
        }
        s->req->res.status = 200;
        s->req->res.reason = "OK";
        k2a_sim_add_common_headers(s->srv, s->req, "application/vnd.amazon.eventstream");
        h2o_start_response(s->req, &s->super);
    } else {
        s->tick = true;
        s->holding = false;
    }
    pump(s);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    sim_stream_t *s = (sim_stream_t *)gen;
    s->inflight = false;
    s->out_off += s->last_sent;
    pump(s);
}

static sim_stream_t *stream_create(k2a_sim_server_t *srv, h2o_req_t *req)
{
    sim_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->srv = srv;
    s->req = req;
    s->super.proceed = on_proceed;
    s->super.stop = on_stop;
    s->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*s->guard), on_guard_dispose);
    s->guard->stream = s;
    s->end_state = H2O_SEND_STATE_FINAL;
    k2a_buf_init(&s->out, 0);
    return s;
}

static void start_timer(sim_stream_t *s, uint32_t ms)
{
    if (!s->timer_init) {
        uv_timer_init(s->srv->loop, &s->timer);
        s->timer.data = s;
        s->timer_init = true;
    }
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

void k2a_sim_respond_json(k2a_sim_server_t *srv, h2o_req_t *req, int status, const char *body, size_t len, uint32_t delay_ms)
{
    sim_stream_t *s = NULL;
    if (delay_ms == 0 || (s = stream_create(srv, req)) == NULL || (s->inline_body = malloc(len + 1)) == NULL) {
        if (delay_ms != 0 && s != NULL)
            release(s);
        send_json_now(srv, req, status, body, len);
        return;
    }
    memcpy(s->inline_body, body, len);
    s->inline_len = len;
    s->inline_status = status;
    start_timer(s, delay_ms);
}

/* A frame used when a fault must corrupt or cut "the next frame" but the reply has none left. */
static int dummy_frame(k2a_buf_t *out)
{
    static const char payload[] = "{\"content\":\"(kiro-sim fault frame)\"}";
    return k2a_es_encode_event(out, "assistantResponseEvent", payload, sizeof(payload) - 1);
}

/* Appends the next frame (or the fault) to s->out, or sets s->eof. */
static void produce(sim_stream_t *s)
{
    const k2a_sim_plan_t *plan = &s->plan;
    size_t mark = s->out.len;
    bool tail = false;
    int r;

    if (s->replay != NULL) {
        /* Verbatim replay, one frame per produce when the prelude looks sane, else the rest in one piece. */
        size_t left = s->replay_len - s->replay_off, n = left;
        if (left == 0) {
            s->eof = true;
            return;
        }
        if (left >= 12) {
            const unsigned char *p = (const unsigned char *)s->replay + s->replay_off;
            size_t total = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
            if (total >= 16 && total <= left)
                n = total;
        }
        k2a_buf_append(&s->out, s->replay + s->replay_off, n);
        s->replay_off += n;
        ++s->frames;
        return;
    }

    bool fault_now = plan->fault != K2A_SIM_FAULT_NONE && !s->fault_done && s->frames == plan->fault_after;
    if (fault_now && plan->fault == K2A_SIM_FAULT_END) {
        s->fault_done = s->eof = true;
        return;
    }
    if (fault_now && plan->fault == K2A_SIM_FAULT_EXCEPTION) {
        s->fault_done = s->eof = true;
        if (k2a_sim_exception_frame(plan, &s->out) != 0)
            s->end_state = H2O_SEND_STATE_ERROR;
        return;
    }
    r = k2a_sim_next_frame(plan, &s->cur, &s->out, &tail);
    if (r < 0) {
        s->eof = true;
        s->end_state = H2O_SEND_STATE_ERROR;
        return;
    }
    bool pending = plan->fault != K2A_SIM_FAULT_NONE && plan->fault != K2A_SIM_FAULT_END && !s->fault_done;
    /* An exception whose `after` lies beyond the content fires right after the content (before metering). */
    if (pending && plan->fault == K2A_SIM_FAULT_EXCEPTION && (r == 0 || tail)) {
        s->out.len = mark;
        s->fault_done = s->eof = true;
        if (k2a_sim_exception_frame(plan, &s->out) != 0)
            s->end_state = H2O_SEND_STATE_ERROR;
        return;
    }
    /* cut / badcrc fire on the frame after `after` frames, or at the very end on an extra frame. */
    if (pending && (fault_now || r == 0) && plan->fault != K2A_SIM_FAULT_EXCEPTION) {
        if (r == 0 && dummy_frame(&s->out) < 0) {
            s->eof = true;
            s->end_state = H2O_SEND_STATE_ERROR;
            return;
        }
        size_t flen = s->out.len - mark;
        s->fault_done = true;
        if (plan->fault == K2A_SIM_FAULT_CUT) {
            /* Half of the frame (at least its 4-byte length and a bit more), then a broken body. */
            s->out.len = mark + (flen / 2 > 6 ? flen / 2 : 6);
            s->eof = true;
            s->end_state = H2O_SEND_STATE_ERROR;
        } else {
            s->out.base[s->out.len - 1] ^= 0x5a; /* message CRC no longer matches */
            ++s->frames;
        }
        return;
    }
    if (r == 0) {
        s->eof = true;
        return;
    }
    ++s->frames;
}

static void pump(sim_stream_t *s)
{
    if (s->in_pump)
        return; /* a synchronous proceed inside h2o_send: the outer loop carries on */
    s->in_pump = true;
    while (!s->dead && !s->inflight) {
        size_t unsent = s->out.len - s->out_off;
        if (unsent > 0 && (s->eof || s->flush || (s->chunk != 0 && unsent >= s->chunk))) {
            size_t n = s->chunk != 0 && unsent > s->chunk ? s->chunk : unsent;
            h2o_iovec_t iov = h2o_iovec_init(s->out.base + s->out_off, n);
            s->inflight = true;
            s->last_sent = n;
            h2o_send(s->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
            continue;
        }
        if (unsent == 0)
            s->flush = false;
        if (s->out_off != 0) {
            k2a_buf_consume(&s->out, s->out_off);
            s->out_off = 0;
        }
        if (s->eof) {
            if (s->holding)
                break;
            if (s->plan.keepopen && !s->held && s->end_state == H2O_SEND_STATE_FINAL && s->plan.fault == K2A_SIM_FAULT_NONE &&
                !s->plan.cut_end && s->replay == NULL) {
                /* as Kiro often does: every frame sent, metering last, and the body does not end; the client closes it */
                s->held = s->holding = true;
                start_timer(s, K2A_SIM_KEEPOPEN_MS);
                break;
            }
            h2o_send(detach(s), NULL, 0, s->end_state);
            break;
        }
        if (s->plan.drip_ms != 0 && s->frames > 0 && !s->tick) {
            start_timer(s, s->plan.drip_ms);
            break;
        }
        s->tick = false;
        produce(s);
        if (s->chunk == 0 || s->plan.drip_ms != 0)
            s->flush = true;
    }
    s->in_pump = false;
    if (s->dead)
        release(s);
}

/* A whole cached reply in one write (chunked on HTTP/1.1, as a stream's frames are); the bytes are copied into the
 * request's pool, so the cache entry may be replaced while the write is in flight. */
static void send_whole(k2a_sim_server_t *srv, h2o_req_t *req, k2a_sim_account_t *acct, const k2a_sim_fast_entry_t *e)
{
    ++srv->stats.streams_total;
    if (srv->stats.open_streams + 1 > srv->stats.max_open_streams)
        srv->stats.max_open_streams = srv->stats.open_streams + 1;
    ++acct->c.generate_ok;
    acct->used_credits += e->credits;
    req->res.status = 200;
    req->res.reason = "OK";
    k2a_sim_add_common_headers(srv, req, "application/vnd.amazon.eventstream");
    h2o_send_inline(req, e->bytes, e->len);
}

/* Reads a replay file below the fixtures directory. Small fixture files only (16 MiB cap); a blocking read is
 * acceptable in the simulator. Returns 0 or a message in err. */
static int read_replay(k2a_sim_server_t *srv, const char *file, char **data, size_t *len, char *err, size_t errsz)
{
    char path[4096];
    if (file[0] == '/' || strstr(file, "..") != NULL) {
        snprintf(err, errsz, "kiro-sim: replay file must be relative to the fixtures dir, without \"..\"");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", srv->cfg.fixtures_dir != NULL ? srv->cfg.fixtures_dir : ".", file);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errsz, "kiro-sim: cannot open replay file %.100s", file);
        return -1;
    }
    *data = malloc(MAX_REPLAY_BYTES);
    *len = *data != NULL ? fread(*data, 1, MAX_REPLAY_BYTES, fp) : 0;
    fclose(fp);
    if (*data == NULL || *len == 0) {
        free(*data);
        *data = NULL;
        snprintf(err, errsz, "kiro-sim: replay file %.100s is empty or unreadable", file);
        return -1;
    }
    return 0;
}

/* The JSON answer of [[sim:status code=N]]: Kiro's body for the statuses Kiro is known to send, else a generic one. */
static void status_body(int code, const char *message, k2a_buf_t *out)
{
    const char *msg = message, *reason = NULL;
    switch (code) {
    case 400:
        msg = msg ? msg : "Improperly formed request.";
        break;
    case 402:
        msg = msg ? msg : "You have reached the limit of requests for this month.";
        reason = "MONTHLY_REQUEST_COUNT";
        break;
    case 403:
        msg = msg ? msg : "The bearer token included in the request is invalid.";
        break;
    case 429:
        msg = msg ? msg : "Too many requests, please wait before trying again.";
        break;
    case 500:
        msg = msg ? msg : "Encountered an unexpected error when processing the request, please try again.";
        break;
    default:
        msg = msg ? msg : reason_phrase(code);
    }
    k2a_buf_appendstr(out, "{\"message\":\"");
    k2a_buf_append_json_escaped(out, msg, strlen(msg));
    if (reason != NULL)
        k2a_buf_appendf(out, "\",\"reason\":\"%s\"}", reason);
    else
        k2a_buf_appendstr(out, "\",\"reason\":null}");
}

/* The answer of an account's scripted state, or 0 when the account answers normally. */
static int state_answer(k2a_sim_server_t *srv, k2a_sim_token_t *tok, k2a_buf_t *out)
{
    k2a_sim_account_t *acct = tok->account;
    switch (acct->kind) {
    case K2A_SIM_KIND_EXHAUSTED:
        k2a_buf_appendstr(out, BODY_MONTHLY);
        return 402;
    case K2A_SIM_KIND_OVERAGE:
        k2a_buf_appendstr(out, BODY_OVERAGE);
        return srv->cfg.overage_status;
    case K2A_SIM_KIND_429:
        k2a_buf_appendstr(out, BODY_THROTTLED);
        return 429;
    case K2A_SIM_KIND_SUSPICIOUS:
        k2a_buf_appendstr(out, SUSPICIOUS_1 "d-sim.");
        k2a_buf_append_json_escaped(out, acct->name, strlen(acct->name));
        k2a_buf_appendstr(out, SUSPICIOUS_2);
        return 429;
    case K2A_SIM_KIND_SUSPENDED:
        k2a_buf_appendstr(out, BODY_SUSPENDED);
        return 403;
    case K2A_SIM_KIND_CAPACITY:
        k2a_buf_appendstr(out, BODY_CAPACITY);
        return srv->cfg.capacity_status;
    case K2A_SIM_KIND_LOCKED:
        k2a_buf_appendstr(out, BODY_LOCKED);
        return 423;
    case K2A_SIM_KIND_403:
        k2a_buf_appendstr(out, k2a_sim_body_bearer_invalid(srv));
        return 403;
    case K2A_SIM_KIND_500:
        k2a_buf_appendstr(out, BODY_INTERNAL);
        return 500;
    case K2A_SIM_KIND_403ONCE:
        /* The first generate trips the account: that token (and older ones) answer 403; tokens issued after it work. */
        if (!acct->tripped || tok->seq <= acct->tripped_seq) {
            if (!acct->tripped) {
                acct->tripped = true;
                acct->tripped_seq = tok->seq;
            }
            k2a_buf_appendstr(out, k2a_sim_body_bearer_invalid(srv));
            return 403;
        }
        return 0;
    default:
        return 0;
    }
}

/* Starts the account's last_request record of this generate call (its status is filled in as it is answered). */
static k2a_sim_last_request_t *note_last_request(h2o_req_t *req, const k2a_sim_route_t *route, k2a_sim_account_t *acct,
                                                 uint64_t header_warnings)
{
    k2a_sim_last_request_t *last = &acct->last;
    memset(last, 0, sizeof(*last));
    last->seen = true;
    last->region = route->region;
    size_t plen = req->query_at != SIZE_MAX && req->query_at < req->path.len ? req->query_at : req->path.len;
    /* snprintf's "%.*s" without the format machinery: cut at the buffer or a NUL; last is zeroed above */
    memcpy(last->path, req->path.base, strnlen(req->path.base, plen < sizeof(last->path) ? plen : sizeof(last->path) - 1));
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("tokentype"), -1);
    if (i >= 0) {
        const h2o_iovec_t *tv = &req->headers.entries[i].value;
        memcpy(last->tokentype, tv->base,
               strnlen(tv->base, tv->len < sizeof(last->tokentype) ? tv->len : sizeof(last->tokentype) - 1));
    }
    last->header_warnings = header_warnings > UINT32_MAX ? UINT32_MAX : (uint32_t)header_warnings;
    return last;
}

int k2a_sim_handle_generate(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route)
{
    k2a_sim_token_t *tok = k2a_sim_require_bearer(srv, req);
    if (tok == NULL)
        return 0;
    k2a_sim_account_t *acct = tok->account;
    ++acct->c.generates;
    /* Headers (2026): warnings counted in /sim/stats, or a 400 under --strict-headers. */
    const char *bad_header = NULL;
    uint64_t warnings_before = srv->stats.header_warnings;
    if (!srv->cfg.legacy)
        bad_header = k2a_sim_check_headers(srv, req);
    k2a_sim_last_request_t *last = note_last_request(req, route, acct, srv->stats.header_warnings - warnings_before);
    if (bad_header != NULL && srv->cfg.strict_headers) {
        k2a_sim_stats_reject(&srv->stats, "bad_header");
        last->status = 400;
        RESPOND_LITERAL(srv, req, 400, BODY_MALFORMED);
        return 0;
    }

    const char *body = req->entity.base != NULL ? req->entity.base : "";
    size_t len = req->entity.base != NULL ? req->entity.len : 0;
    k2a_sim_note_generate(acct, body, len);
    /* kept for GET /sim/last-request: tests compare what two dialects made the gateway send */
    k2a_buf_reset(&srv->last_generate);
    k2a_buf_append(&srv->last_generate, body, len);
    k2a_sim_validation_t v;
    k2a_buf_t text = K2A_BUF_INIT(0);
    k2a_sim_caller_t caller = {
        .account_arn = acct->auth == K2A_SIM_AUTH_APIKEY ? NULL : acct->arn,
        .enterprise = acct->auth == K2A_SIM_AUTH_IDC || acct->auth == K2A_SIM_AUTH_EXTIDP,
        .free_tier = acct->free_tier,
        .host_region = route->region,
    };
    int verdict = k2a_sim_validate_request_caller(body, len, &srv->cfg.limits, &caller, &v, &text);
    memcpy(last->model, v.model_id, sizeof(last->model));
    memcpy(last->profile_arn, v.profile_arn, sizeof(last->profile_arn));
    last->status = verdict;
    if (verdict != 200) {
        k2a_sim_stats_reject(&srv->stats, v.rule);
        fprintf(stderr, "kiro-sim: %d %s: %s\n", v.status, v.rule, v.detail);
        k2a_sim_respond_json(srv, req, v.status, v.body, strlen(v.body), 0);
        k2a_buf_dispose(&text);
        return 0;
    }

    k2a_buf_t state = K2A_BUF_INIT(0);
    int state_status = state_answer(srv, tok, &state);
    if (state_status != 0) {
        last->status = state_status;
        k2a_sim_respond_json(srv, req, state_status, state.base, state.len, 0);
        k2a_buf_dispose(&state);
        goto Done;
    }
    k2a_buf_dispose(&state);

    /* Default contextUsagePercentage: the body's share of a 200k-token window at 4 bytes per token, 2 decimals. */
    double default_pct = round((double)len / 8000.0 * 100.0) / 100.0;
    const char *utext = text.base != NULL ? text.base : "";
    bool fast = !srv->cfg.frame_writes && srv->cfg.chunk == 0 && text.len <= K2A_SIM_FAST_MAX_TEXT;
    const k2a_sim_fast_entry_t *whole = fast ? k2a_sim_fast_find(&srv->fast, utext, text.len, default_pct) : NULL;
    if (whole != NULL) {
        send_whole(srv, req, acct, whole);
        goto Done;
    }

    k2a_sim_plan_t plan;
    char err[160];
    if (k2a_sim_plan_parse(&plan, utext, text.len, err, sizeof(err)) != 0) {
        k2a_buf_t out = K2A_BUF_INIT(0);
        k2a_buf_appendstr(&out, "{\"message\":\"");
        k2a_buf_append_json_escaped(&out, err, strlen(err));
        k2a_buf_appendstr(&out, "\",\"reason\":\"SIM_DIRECTIVE\"}");
        k2a_sim_respond_json(srv, req, 400, out.base, out.len, 0);
        k2a_buf_dispose(&out);
        goto Done;
    }
    if (plan.status != 0) {
        last->status = plan.status;
        k2a_buf_t out = K2A_BUF_INIT(0);
        status_body(plan.status, plan.status_message, &out);
        k2a_sim_respond_json(srv, req, plan.status, out.base, out.len, plan.stall_ms);
        k2a_buf_dispose(&out);
        k2a_sim_plan_dispose(&plan);
        goto Done;
    }
    char *replay = NULL;
    size_t replay_len = 0;
    if (plan.replay_file != NULL && read_replay(srv, plan.replay_file, &replay, &replay_len, err, sizeof(err)) != 0) {
        k2a_buf_t out = K2A_BUF_INIT(0);
        k2a_buf_appendstr(&out, "{\"message\":\"");
        k2a_buf_append_json_escaped(&out, err, strlen(err));
        k2a_buf_appendstr(&out, "\",\"reason\":\"SIM_DIRECTIVE\"}");
        k2a_sim_respond_json(srv, req, 400, out.base, out.len, 0);
        k2a_buf_dispose(&out);
        k2a_sim_plan_dispose(&plan);
        goto Done;
    }
    if (!plan.have_context)
        plan.context_pct = default_pct;
    if (fast && k2a_sim_fast_eligible(&plan) &&
        (whole = k2a_sim_fast_build(&srv->fast, utext, text.len, default_pct, &plan)) != NULL) {
        k2a_sim_plan_dispose(&plan);
        send_whole(srv, req, acct, whole);
        goto Done;
    }

    sim_stream_t *s = stream_create(srv, req);
    if (s == NULL) {
        free(replay);
        k2a_sim_plan_dispose(&plan);
        k2a_sim_respond_json(srv, req, 500, BODY_INTERNAL, sizeof(BODY_INTERNAL) - 1, 0);
        goto Done;
    }
    s->plan = plan;
    s->replay = replay;
    s->replay_len = replay_len;
    s->chunk = srv->cfg.chunk;
    k2a_sim_cursor_init(&s->cur, &s->plan);
    s->counted = true;
    ++srv->stats.streams_total;
    if (++srv->stats.open_streams > srv->stats.max_open_streams)
        srv->stats.max_open_streams = srv->stats.open_streams;
    ++acct->c.generate_ok;
    acct->used_credits += plan.have_credits ? plan.credits : K2A_SIM_DEFAULT_CREDITS;
    if (plan.stall_ms != 0) {
        start_timer(s, plan.stall_ms);
    } else {
        s->started = true;
        req->res.status = 200;
        req->res.reason = "OK";
        k2a_sim_add_common_headers(srv, req, "application/vnd.amazon.eventstream");
        h2o_start_response(req, &s->super);
        pump(s);
    }
Done:
    k2a_buf_dispose(&text);
    return 0;
}
