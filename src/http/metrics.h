/*
 * Request metrics in the Prometheus text format: requests by route and status, in-flight requests,
 * bytes in and out, and a latency histogram per route. Counting happens in an h2o logger hook, which
 * h2o calls once per request when it is disposed, so every response is counted exactly once whoever
 * produced it. Each worker loop counts into its own k2a_metrics_t; /metrics sums snapshots that every
 * worker takes on its own loop, so counters are never shared between threads.
 */
#ifndef K2A_HTTP_METRICS_H
#define K2A_HTTP_METRICS_H

#include <stdint.h>
#include "core/buf.h"

#define K2A_METRICS_ROUTES 14
#define K2A_METRICS_BUCKETS 16
typedef struct st_k2a_metrics_t {
    uint64_t requests[K2A_METRICS_ROUTES][500]; /* by route and status - 100 */
    uint64_t bytes_in[K2A_METRICS_ROUTES];
    uint64_t bytes_out[K2A_METRICS_ROUTES];
    uint64_t latency_buckets[K2A_METRICS_ROUTES][K2A_METRICS_BUCKETS];
    double latency_sum[K2A_METRICS_ROUTES];
    uint64_t latency_count[K2A_METRICS_ROUTES];
    int64_t inflight;
    uint64_t rejected_busy;  /* 503 because every coroutine slot was taken */
    uint64_t write_stalls;   /* responses ended by KIRO_WRITE_STALL_TIMEOUT_MS */
    uint64_t conns_refused;  /* client connections closed at accept (KIRO_MAX_CONNECTIONS) */
    uint64_t conns_limited;  /* client connections closed for holding too much (limits.c) */
    uint64_t buffered_bytes; /* request bytes held before handlers run, at the last scan (gauge) */
} k2a_metrics_t;

extern const char *const k2a_metrics_route_names[K2A_METRICS_ROUTES];
extern const double k2a_metrics_bucket_bounds[K2A_METRICS_BUCKETS];

void k2a_metrics_init(k2a_metrics_t *m);
void k2a_metrics_observe(k2a_metrics_t *m, int route, int status, uint64_t bytes_in, uint64_t bytes_out, double seconds);
/* Adds every counter of `from` into `into` (summing the workers' snapshots). */
void k2a_metrics_add(k2a_metrics_t *into, const k2a_metrics_t *from);
/* Renders the request metrics into out. Returns 0 or K2A_ENOMEM. */
int k2a_metrics_render(const k2a_metrics_t *m, k2a_buf_t *out);

#endif
