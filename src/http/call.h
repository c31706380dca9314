/*
 * A call is one request served by a coroutine (DESIGN.md §2). The call owns a private copy of the
 * request body and of the headers the handler needs, so nothing it uses dies with the h2o request
 * when the client goes away. Responses are written into a pair of buffers: one is in flight in h2o
 * (h2o allows one send at a time, the next after proceed), the other fills; proceed sends whatever
 * filled meanwhile without waking the coroutine, and a writer that gets more than a high-water
 * mark ahead of the client parks until the client catches up (backpressure).
 *
 * Lifetime: the call is freed when both the coroutine has finished and h2o has disposed of the
 * request. When the client disappears first (generator stop / request disposal), the coroutine is
 * canceled: every await returns K2A_ECANCELED, and writes become no-ops that return K2A_ECANCELED.
 */
#ifndef K2A_HTTP_CALL_H
#define K2A_HTTP_CALL_H

#include <stdbool.h>
#include "h2o.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/coro.h"
#include "core/str.h"
#include "convert/dialect.h"
#include "http/server.h"

typedef struct st_k2a_call_t k2a_call_t;
typedef void (*k2a_call_fn)(k2a_call_t *call);

struct st_k2a_call_t {
    k2a_server_t *server;
    k2a_call_t *prev, *next;   /* server->calls while the coroutine runs */
    k2a_call_t *sprev, *snext; /* server->sending while an h2o_send awaits proceed (write-stall watch) */
    k2a_call_t *qprev, *qnext; /* server->send_queue while flushed bytes wait for the end of the loop's I/O */
    h2o_req_t *req;            /* NULL once the client is gone or the response is complete */
    h2o_generator_t generator;
    k2a_coro_t *co;
    k2a_call_fn fn;
    k2a_route_t route;
    const k2a_dialect_t *dialect; /* the route's: the shape of its errors (and, for a chat route, of everything) */
    k2a_arena_t arena;            /* request-lifetime allocations of the handler */
    char *body;                   /* private copy of the request body (NUL-terminated), in the arena */
    size_t body_len;
    char request_id[72];
    /* request facts copied at start (arena strings, empty when absent) */
    k2a_str_t user_agent;
    k2a_str_t client_ip;
    k2a_str_t session_id_header;      /* x-claude-code-session-id */
    uint64_t client_key_id;           /* the presented client key hashed (pool/sticky.h k2a_sticky_client_key), 0 = none */
    k2a_str_t conversation_id_header; /* x-conversation-id */
    k2a_str_t continuation_id_header; /* x-agent-continuation-id */
    /* response state */
    k2a_buf_t out[2];
    int filling;            /* index of the buffer being filled */
    size_t high_water;      /* bytes queued before the writer parks */
    uint64_t bytes_written; /* response body bytes handed to h2o */
    uint64_t last_write_at; /* loop time of the last write, for pings */
    uint64_t send_since;    /* loop time the send in flight was handed to h2o, or the client last took bytes */
    int last_outq;          /* the client socket's unsent bytes at the last stall check */
    unsigned started : 1;   /* h2o_start_response was called */
    unsigned in_flight : 1; /* an h2o_send awaits proceed */
    unsigned queued : 1;    /* on server->send_queue */
    unsigned final_queued : 1;
    unsigned final_sent : 1;
    unsigned req_gone : 1; /* generator stopped or request disposed */
    unsigned co_done : 1;
    unsigned waiting_drain : 1;
    unsigned stalled : 1;      /* ended by the write-stall timeout */
    unsigned key_admitted : 1; /* admitted by its client key (http/keys_gate.h) */
    unsigned key_released : 1; /* and the key's concurrency slot given back */
    unsigned key_shared : 1;   /* also admitted by the shared limits (KIRO_REDIS_URL; pool/store_redis_keys.h) */
    char key_slot[40];         /* the shared concurrency slot to give back ("" = none) */
    int status;                /* the response status, once begun */
    struct st_k2a_key_t *key;  /* the managed client key that authorised the request, NULL when none */
};

/* Starts a coroutine for req running fn. Copies the body and the headers of interest first. On failure (no coroutine slot:
 * answers 503 itself) returns K2A_EBUSY. Call from the h2o handler. */
int k2a_call_start(h2o_req_t *req, k2a_route_t route, const k2a_dialect_t *dialect, const char *request_id, k2a_call_fn fn);

/* Ends every response whose client has taken no bytes for KIRO_WRITE_STALL_TIMEOUT_MS: its coroutine is cancelled (the
 * upstream call, the request slot and the account's concurrency slot are released) and the client connection is shut
 * down. Returns how many were ended. Run from the server's stall timer. */
size_t k2a_call_end_stalled(k2a_server_t *server, uint64_t now, uint64_t stall_ms);

/* The server's send queue (see k2a_call_flush): started with the listeners; stopped at shutdown (what is queued goes out
 * at once, later flushes send at once). */
void k2a_call_send_queue_start(k2a_server_t *server);
void k2a_call_send_queue_stop(k2a_server_t *server);

/* Cancels every running call of the server (shutdown past its grace period). Returns how many were still running. */
size_t k2a_call_cancel_all(k2a_server_t *server);

/* True when the client went away (or the response was completed): the handler should unwind. */
static inline bool k2a_call_gone(const k2a_call_t *call)
{
    return call->req_gone;
}

/* Response head: status and content type plus optional extra header pairs (name, value, name, value, ..., NULL). Returns 0
 * or K2A_ECANCELED. Nothing is sent before the first flush. */
int k2a_call_begin(k2a_call_t *call, int status, const char *content_type, ...);
/* Appends body bytes (no I/O). Returns 0, K2A_ECANCELED, or K2A_ENOMEM. */
int k2a_call_write(k2a_call_t *call, const void *data, size_t len);
/* k2a_call_write of b's bytes, leaving b empty. When nothing is waiting to be sent the two buffers exchange their
 * allocations instead of copying (each keeps its own bound): a stream's staged events reach h2o without a copy. */
int k2a_call_write_buf(k2a_call_t *call, k2a_buf_t *b);
/* The buffer being filled, for writers that append directly (then call k2a_call_flush). NULL when the client is gone. */
k2a_buf_t *k2a_call_buffer(k2a_call_t *call);
/* Hands the filled bytes to h2o when nothing is in flight: at the end of the loop iteration's I/O, together with whatever
 * else the call writes before it (the end of the response included, so that a response complete in one upstream read
 * leaves in one send); parks while more than high_water bytes wait (backpressure). Returns 0 or K2A_ECANCELED. Coroutine
 * only. */
int k2a_call_flush(k2a_call_t *call);
/* Like flush but never parks: usable from loop callbacks (ping timers). */
void k2a_call_flush_nowait(k2a_call_t *call);
/* Queues the end of the response; the call sends it (with the bytes flushed before it) at the end of the loop iteration's
 * I/O, or as soon as h2o is ready. */
void k2a_call_finish(k2a_call_t *call);
/* A complete JSON response in one go (begin + write + finish). */
int k2a_call_respond_json(k2a_call_t *call, int status, const char *json, size_t len);
/* A K2A_E* error in the call's dialect, as a complete response (only before k2a_call_begin); NULL or empty message:
 * k2a_strerror(err). */
int k2a_call_respond_error(k2a_call_t *call, int err, const char *message);

#endif
