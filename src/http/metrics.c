/*
 * Prometheus text rendering of the request metrics (see metrics.h).
 */
#include <string.h>
#include "core/errors.h"
#include "http/metrics.h"

const char *const k2a_metrics_route_names[K2A_METRICS_ROUTES] = {
    "other",  "root",     "static",       "healthz",          "readyz", "metrics",   "api_tokens",
    "models", "messages", "count_tokens", "chat_completions", "admin",  "responses", "responses_get"};

const double k2a_metrics_bucket_bounds[K2A_METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                               0.25,   0.5,   1,      2.5,   5,    10,    30,   120};

void k2a_metrics_init(k2a_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
}

void k2a_metrics_observe(k2a_metrics_t *m, int route, int status, uint64_t bytes_in, uint64_t bytes_out, double seconds)
{
    if (route < 0 || route >= K2A_METRICS_ROUTES)
        route = 0;
    if (status < 100 || status > 599)
        status = 599;
    ++m->requests[route][status - 100];
    m->bytes_in[route] += bytes_in;
    m->bytes_out[route] += bytes_out;
    for (int i = 0; i < K2A_METRICS_BUCKETS; ++i)
        if (seconds <= k2a_metrics_bucket_bounds[i])
            ++m->latency_buckets[route][i];
    m->latency_sum[route] += seconds;
    ++m->latency_count[route];
}

void k2a_metrics_add(k2a_metrics_t *into, const k2a_metrics_t *from)
{
    for (int r = 0; r < K2A_METRICS_ROUTES; ++r) {
        for (int st = 0; st < 500; ++st)
            into->requests[r][st] += from->requests[r][st];
        into->bytes_in[r] += from->bytes_in[r];
        into->bytes_out[r] += from->bytes_out[r];
        for (int b = 0; b < K2A_METRICS_BUCKETS; ++b)
            into->latency_buckets[r][b] += from->latency_buckets[r][b];
        into->latency_sum[r] += from->latency_sum[r];
        into->latency_count[r] += from->latency_count[r];
    }
    into->inflight += from->inflight;
    into->rejected_busy += from->rejected_busy;
    into->write_stalls += from->write_stalls;
    into->conns_refused += from->conns_refused;
    into->conns_limited += from->conns_limited;
    into->buffered_bytes += from->buffered_bytes;
}

int k2a_metrics_render(const k2a_metrics_t *m, k2a_buf_t *out)
{
    int r = 0;
#define OUT(...)                                                                                                                   \
    do {                                                                                                                           \
        if ((r = k2a_buf_appendf(out, __VA_ARGS__)) != 0)                                                                          \
            return r;                                                                                                              \
    } while (0)
    OUT("# HELP k2a_http_requests_total HTTP requests answered, by route and status.\n"
        "# TYPE k2a_http_requests_total counter\n");
    for (int route = 0; route < K2A_METRICS_ROUTES; ++route)
        for (int st = 0; st < 500; ++st)
            if (m->requests[route][st] != 0)
                OUT("k2a_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", k2a_metrics_route_names[route], st + 100,
                    (unsigned long long)m->requests[route][st]);
    OUT("# HELP k2a_http_requests_in_flight Requests being handled now.\n"
        "# TYPE k2a_http_requests_in_flight gauge\n"
        "k2a_http_requests_in_flight %lld\n",
        (long long)m->inflight);
    OUT("# HELP k2a_http_rejected_busy_total Requests refused with 503 because the concurrency limit was reached.\n"
        "# TYPE k2a_http_rejected_busy_total counter\n"
        "k2a_http_rejected_busy_total %llu\n",
        (unsigned long long)m->rejected_busy);
    OUT("# HELP k2a_http_write_stalls_total Responses ended because the client took no bytes for KIRO_WRITE_STALL_TIMEOUT_MS.\n"
        "# TYPE k2a_http_write_stalls_total counter\n"
        "k2a_http_write_stalls_total %llu\n",
        (unsigned long long)m->write_stalls);
    OUT("# HELP k2a_http_connections_refused_total Client connections closed at accept (KIRO_MAX_CONNECTIONS).\n"
        "# TYPE k2a_http_connections_refused_total counter\n"
        "k2a_http_connections_refused_total %llu\n",
        (unsigned long long)m->conns_refused);
    OUT("# HELP k2a_http_connections_limited_total Client connections closed for exceeding a header, buffer or body-time bound.\n"
        "# TYPE k2a_http_connections_limited_total counter\n"
        "k2a_http_connections_limited_total %llu\n",
        (unsigned long long)m->conns_limited);
    OUT("# HELP k2a_http_buffered_bytes Request bytes client connections hold before their handlers run (last scan).\n"
        "# TYPE k2a_http_buffered_bytes gauge\n"
        "k2a_http_buffered_bytes %llu\n",
        (unsigned long long)m->buffered_bytes);
    OUT("# HELP k2a_http_request_bytes_total Request body bytes received, by route.\n"
        "# TYPE k2a_http_request_bytes_total counter\n");
    for (int route = 0; route < K2A_METRICS_ROUTES; ++route)
        if (m->latency_count[route] != 0)
            OUT("k2a_http_request_bytes_total{route=\"%s\"} %llu\n", k2a_metrics_route_names[route],
                (unsigned long long)m->bytes_in[route]);
    OUT("# HELP k2a_http_response_bytes_total Response bytes sent, by route.\n"
        "# TYPE k2a_http_response_bytes_total counter\n");
    for (int route = 0; route < K2A_METRICS_ROUTES; ++route)
        if (m->latency_count[route] != 0)
            OUT("k2a_http_response_bytes_total{route=\"%s\"} %llu\n", k2a_metrics_route_names[route],
                (unsigned long long)m->bytes_out[route]);
    OUT("# HELP k2a_http_request_duration_seconds Time from the request's first byte to the end of the response.\n"
        "# TYPE k2a_http_request_duration_seconds histogram\n");
    for (int route = 0; route < K2A_METRICS_ROUTES; ++route) {
        if (m->latency_count[route] == 0)
            continue;
        const char *name = k2a_metrics_route_names[route];
        for (int i = 0; i < K2A_METRICS_BUCKETS; ++i)
            OUT("k2a_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", name, k2a_metrics_bucket_bounds[i],
                (unsigned long long)m->latency_buckets[route][i]);
        OUT("k2a_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name,
            (unsigned long long)m->latency_count[route]);
        OUT("k2a_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name, m->latency_sum[route]);
        OUT("k2a_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name, (unsigned long long)m->latency_count[route]);
    }
#undef OUT
    return 0;
}
