/*
 * Name resolution with c-ares on the libuv loop, and a small TTL cache in front of it. c-ares tells us
 * which sockets to watch through ARES_OPT_SOCK_STATE_CB (one uv_poll_t per socket) and when to retry
 * through ares_timeout (one uv_timer_t); /etc/hosts is consulted first (lookups "fb"). Lookups of the
 * same name share one query; each waiter has its own deadline, enforced by one timer per query.
 *
 * Pitfalls handled here (docs/feasibility.md §0.9-0.10): c-ares may complete a query synchronously
 * inside ares_getaddrinfo (so waiters are always woken with k2a_coro_wake, never resumed directly), and
 * a socket's uv_poll_t is stopped synchronously in sock_state_cb and never reused once closing.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/errors.h"
#include "core/log.h"
#include "upstream/internal.h"

typedef struct st_dns_poll_t {
    uv_poll_t poll;
    dns_t *d;
    ares_socket_t fd;
    struct st_dns_poll_t *next;
} dns_poll_t;

typedef struct st_dns_entry_t {
    char *name;
    dns_addrs_t addrs;
    uint64_t expires; /* uv_now() milliseconds */
} dns_entry_t;

typedef struct st_dns_query_t dns_query_t;

typedef struct st_dns_waiter_t {
    struct st_dns_waiter_t *next, *prev;
    dns_query_t *q;
    k2a_coro_t *co;
    uint64_t deadline;
    dns_addrs_t *out;
    uint16_t port;
} dns_waiter_t;

struct st_dns_query_t {
    uv_timer_t timer; /* fires at the earliest waiter deadline */
    dns_t *d;
    dns_query_t *next, *prev;
    char *name;
    dns_waiter_t *waiters;
    bool done;
};

struct st_dns_t {
    uv_loop_t *loop;
    ares_channel ch;
    uv_timer_t *timer;
    dns_poll_t *polls;
    dns_query_t *queries;
    dns_entry_t *cache;
    size_t ncache, cache_max;
    uint32_t max_ttl_s;
    k2a_upstream_stats_t *stats;
    bool destroying;
};

/* ---- c-ares <-> libuv ---- */

static void rearm_ares_timer(dns_t *d);

static void on_poll(uv_poll_t *h, int status, int events)
{
    dns_poll_t *p = h->data;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0) {
        rfd = wfd = p->fd; /* let c-ares find the error on the socket */
    } else {
        if (events & UV_READABLE)
            rfd = p->fd;
        if (events & UV_WRITABLE)
            wfd = p->fd;
    }
    dns_t *d = p->d;
    ares_process_fd(d->ch, rfd, wfd);
    rearm_ares_timer(d);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_t *d = data;
    dns_poll_t **pp = &d->polls, *p;
    while ((p = *pp) != NULL && p->fd != fd)
        pp = &p->next;
    if (readable || writable) {
        if (p == NULL) {
            if ((p = calloc(1, sizeof(*p))) == NULL)
                return; /* c-ares times the query out */
            if (uv_poll_init_socket(d->loop, &p->poll, fd) != 0) {
                free(p);
                return;
            }
            p->d = d;
            p->fd = fd;
            p->poll.data = p;
            p->next = d->polls;
            d->polls = p;
        }
        uv_poll_start(&p->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
    } else if (p != NULL) {
        /* c-ares closes the fd right after this returns: stop now, and never reuse this closing handle */
        *pp = p->next;
        uv_poll_stop(&p->poll);
        uv_close((uv_handle_t *)&p->poll, (uv_close_cb)free);
    }
}

static void on_ares_timer(uv_timer_t *t)
{
    dns_t *d = t->data;
    ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_ares_timer(d);
}

static void rearm_ares_timer(dns_t *d)
{
    struct timeval tv, *tvp;
    if (d->destroying)
        return;
    if ((tvp = ares_timeout(d->ch, NULL, &tv)) == NULL) {
        uv_timer_stop(d->timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)(tvp->tv_usec + 999) / 1000;
    uv_timer_start(d->timer, on_ares_timer, ms, 0);
}

/* ---- cache ---- */

static dns_entry_t *cache_find(dns_t *d, const char *name)
{
    for (size_t i = 0; i < d->ncache; ++i)
        if (strcasecmp(d->cache[i].name, name) == 0)
            return &d->cache[i];
    return NULL;
}

static void cache_remove(dns_t *d, dns_entry_t *e)
{
    free(e->name);
    *e = d->cache[--d->ncache];
}

static void cache_put(dns_t *d, const char *name, const dns_addrs_t *addrs, uint32_t ttl_s)
{
    if (d->cache_max == 0 || d->max_ttl_s == 0 || ttl_s == 0)
        return;
    if (ttl_s > d->max_ttl_s)
        ttl_s = d->max_ttl_s;
    uint64_t expires = uv_now(d->loop) + (uint64_t)ttl_s * 1000;
    dns_entry_t *e = cache_find(d, name);
    if (e == NULL) {
        if (d->ncache == d->cache_max) {
            /* full: evict the entry that expires first (expired ones go first) */
            dns_entry_t *victim = &d->cache[0];
            for (size_t i = 1; i < d->ncache; ++i)
                if (d->cache[i].expires < victim->expires)
                    victim = &d->cache[i];
            cache_remove(d, victim);
        }
        char *copy = strdup(name);
        if (copy == NULL)
            return;
        e = &d->cache[d->ncache++];
        e->name = copy;
    }
    e->addrs = *addrs;
    e->expires = expires;
}

/* ---- queries ---- */

static void copy_addrs(dns_addrs_t *out, const dns_addrs_t *in, uint16_t port)
{
    *out = *in;
    for (size_t i = 0; i < out->n; ++i) {
        if (out->addr[i].sa.sa_family == AF_INET)
            out->addr[i].in.sin_port = htons(port);
        else
            out->addr[i].in6.sin6_port = htons(port);
    }
}

static void waiter_unlink(dns_waiter_t *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        w->q->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->q = NULL;
}

static void on_query_timer(uv_timer_t *t);

static void rearm_query_timer(dns_query_t *q)
{
    if (q->done)
        return;
    uint64_t min = UINT64_MAX;
    for (dns_waiter_t *w = q->waiters; w != NULL; w = w->next)
        if (w->deadline < min)
            min = w->deadline;
    if (min == UINT64_MAX) {
        uv_timer_stop(&q->timer);
        return;
    }
    uint64_t now = uv_now(q->d->loop);
    uv_timer_start(&q->timer, on_query_timer, min > now ? min - now : 0, 0);
}

static void on_query_timer(uv_timer_t *t)
{
    dns_query_t *q = t->data;
    uint64_t now = uv_now(q->d->loop);
    dns_waiter_t *w = q->waiters;
    while (w != NULL) {
        dns_waiter_t *next = w->next;
        if (w->deadline <= now) {
            waiter_unlink(w);
            k2a_coro_wake(w->co, K2A_EDNS_TIMEOUT);
        }
        w = next;
    }
    /* the query itself goes on: its answer still fills the cache, and c-ares ends it after about dns_timeout_ms */
    rearm_query_timer(q);
}

static void on_query_closed(uv_handle_t *h)
{
    dns_query_t *q = h->data;
    free(q->name);
    free(q);
}

static int map_ares_status(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ETIMEOUT:
        return K2A_EDNS_TIMEOUT;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return K2A_ECANCELED;
    case ARES_ENOMEM:
        return K2A_ENOMEM;
    default:
        return K2A_EDNS;
    }
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    dns_query_t *q = arg;
    dns_t *d = q->d;
    dns_addrs_t addrs;
    uint32_t ttl = UINT32_MAX;
    int result = map_ares_status(status);
    addrs.n = 0;
    if (res != NULL) {
        for (struct ares_addrinfo_node *n = res->nodes; n != NULL && addrs.n < K2A_DNS_MAX_ADDRS; n = n->ai_next) {
            k2a_sockaddr_t *a = &addrs.addr[addrs.n];
            memset(a, 0, sizeof(*a));
            if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in))
                memcpy(&a->in, n->ai_addr, sizeof(a->in));
            else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(struct sockaddr_in6))
                memcpy(&a->in6, n->ai_addr, sizeof(a->in6));
            else
                continue;
            ++addrs.n;
            uint32_t node_ttl = n->ai_ttl > 0 ? (uint32_t)n->ai_ttl : 0;
            if (node_ttl < ttl)
                ttl = node_ttl;
        }
        ares_freeaddrinfo(res);
    }
    if (result == 0 && addrs.n == 0)
        result = K2A_EDNS;
    if (d->destroying)
        result = K2A_ECANCELED;
    else if (result == 0)
        cache_put(d, q->name, &addrs, ttl);
    k2a_debug("dns: %s -> %s (%zu addresses, ttl %u)", q->name, result == 0 ? "ok" : k2a_errname(result), addrs.n,
              result == 0 ? ttl : 0);

    q->done = true;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        d->queries = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    while (q->waiters != NULL) {
        dns_waiter_t *w = q->waiters;
        waiter_unlink(w);
        if (result == 0)
            copy_addrs(w->out, &addrs, w->port);
        /* never a direct resume: this may run inside ares_getaddrinfo, on the caller's coroutine */
        k2a_coro_wake(w->co, result);
    }
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, on_query_closed);
}

static void on_resolve_cancel(k2a_coro_t *co, void *data)
{
    dns_waiter_t *w = data;
    if (w->q != NULL) {
        dns_query_t *q = w->q;
        waiter_unlink(w);
        rearm_query_timer(q);
    }
    k2a_coro_wake(co, K2A_ECANCELED);
}

bool k2a_up_dns_parse_literal(const char *host, uint16_t port, k2a_sockaddr_t *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, &out->in.sin_addr) == 1) {
        out->in.sin_family = AF_INET;
        out->in.sin_port = htons(port);
        return true;
    }
    if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) == 1) {
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = htons(port);
        return true;
    }
    return false;
}

int k2a_up_dns_resolve(dns_t *d, const char *host, uint16_t port, dns_addrs_t *out, uint32_t timeout_ms)
{
    if (k2a_up_dns_parse_literal(host, port, &out->addr[0])) {
        out->n = 1;
        return 0;
    }
    k2a_coro_t *co = k2a_coro_current();
    if (co == NULL)
        return K2A_EINVAL;
    if (k2a_coro_canceled(co))
        return K2A_ECANCELED;
    uv_update_time(d->loop);
    uint64_t now = uv_now(d->loop);
    dns_entry_t *e = cache_find(d, host);
    if (e != NULL) {
        if (e->expires > now) {
            ++d->stats->dns_cache_hits;
            copy_addrs(out, &e->addrs, port);
            return 0;
        }
        cache_remove(d, e);
    }
    ++d->stats->dns_cache_misses;

    dns_query_t *q;
    for (q = d->queries; q != NULL; q = q->next)
        if (strcasecmp(q->name, host) == 0)
            break;
    bool start = false;
    if (q == NULL) {
        if ((q = calloc(1, sizeof(*q))) == NULL || (q->name = strdup(host)) == NULL) {
            free(q);
            return K2A_ENOMEM;
        }
        q->d = d;
        uv_timer_init(d->loop, &q->timer);
        q->timer.data = q;
        q->next = d->queries;
        if (d->queries != NULL)
            d->queries->prev = q;
        d->queries = q;
        start = true;
    }
    dns_waiter_t w = {.q = q, .co = co, .deadline = now + timeout_ms, .out = out, .port = port};
    w.next = q->waiters;
    if (q->waiters != NULL)
        q->waiters->prev = &w;
    q->waiters = &w;
    rearm_query_timer(q);
    if (start) {
        struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        ++d->stats->dns_queries;
        ares_getaddrinfo(d->ch, host, NULL, &hints, on_addrinfo, q); /* may complete right here (/etc/hosts) */
        rearm_ares_timer(d);
    }
    return (int)k2a_coro_park(on_resolve_cancel, &w);
}

/* ---- lifetime ---- */

int k2a_up_dns_create(uv_loop_t *loop, const k2a_upstream_config_t *cfg, k2a_upstream_stats_t *stats, dns_t **out)
{
    dns_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return K2A_ENOMEM;
    d->loop = loop;
    d->stats = stats;
    d->max_ttl_s = cfg->dns_max_ttl_s;
    d->cache_max = cfg->dns_cache_max;
    if (d->cache_max > 0 && (d->cache = calloc(d->cache_max, sizeof(*d->cache))) == NULL)
        goto nomem;
    if ((d->timer = malloc(sizeof(*d->timer))) == NULL)
        goto nomem;
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        free(d->timer);
        free(d->cache);
        free(d);
        return K2A_EDNS;
    }
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = d;
    o.lookups = (char *)"fb";
    /* c-ares waits timeout, then 2 x timeout on its second try: about dns_timeout_ms in all */
    o.timeout = (int)(cfg->dns_timeout_ms / 3 > 100 ? cfg->dns_timeout_ms / 3 : 100);
    o.tries = 2;
    int r = ares_init_options(&d->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (r != ARES_SUCCESS) {
        k2a_error("dns: c-ares init failed: %s", ares_strerror(r));
        ares_library_cleanup();
        free(d->timer);
        free(d->cache);
        free(d);
        return K2A_EDNS;
    }
    if (cfg->dns_servers != NULL && (r = ares_set_servers_ports_csv(d->ch, cfg->dns_servers)) != ARES_SUCCESS) {
        k2a_error("dns: invalid DNS server list \"%s\": %s", cfg->dns_servers, ares_strerror(r));
        ares_destroy(d->ch);
        ares_library_cleanup();
        free(d->timer);
        free(d->cache);
        free(d);
        return K2A_ECONFIG;
    }
    uv_timer_init(loop, d->timer);
    d->timer->data = d;
    *out = d;
    return 0;
nomem:
    free(d->cache);
    free(d);
    return K2A_ENOMEM;
}

void k2a_up_dns_destroy(dns_t *d)
{
    if (d == NULL)
        return;
    d->destroying = true;
    ares_destroy(d->ch); /* calls every pending query back with ARES_EDESTRUCTION and reports its sockets closed */
    ares_library_cleanup();
    while (d->polls != NULL) {
        dns_poll_t *p = d->polls;
        d->polls = p->next;
        uv_poll_stop(&p->poll);
        uv_close((uv_handle_t *)&p->poll, (uv_close_cb)free);
    }
    uv_close((uv_handle_t *)d->timer, (uv_close_cb)free);
    for (size_t i = 0; i < d->ncache; ++i)
        free(d->cache[i].name);
    free(d->cache);
    free(d);
}
