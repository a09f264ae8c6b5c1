/* System configuration: defaults and validation. */
#include <stddef.h>
#include <string.h>

#include "actor/config_check.h"
#include "actor/metrics.h"
#include "actor/sched.h"
#include "axon/config.h"
#include "common/error.h"

#define MAX_THREADS 1024
_Static_assert(MAX_THREADS <= AX__AWAKE_WORDS * 64, "the awake bitmap (sched.h) has a bit per worker");
/* Spinning longer than this is no longer a short wait before sleeping: a
 * busy core for a scheduler time slice (bench numbers: dispatch/NOTES.md). */
#define MAX_SPIN_US 10000
#define MAX_SLOW_RUN_US 1000000 /* a second: beyond it the mark would never come */
#define MAX_REMOTE_REFS (1u << 24)
/* About 31 years: the network multiplies these by 10^6 into nanoseconds
 * and adds the clock, which must not wrap. */
#define MAX_MS 1000000000000ull

void ax_config_init(ax_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = 0;
    cfg->throughput = 50;
    cfg->buffer_config = AX_BUFFER_CONFIG_DEFAULT;
    /* An actor's eager frames wait in its pool until the network thread
     * writes them: 256 chunks (32 MiB) bound that queue. With 1000, a
     * flood of 64 KiB frames queued 60 MB and every copy missed the cache
     * (dispatch/NOTES.md, "How deep an eager queue may grow"). */
    cfg->buffer_config.max_chunk_count = 256;
    cfg->timer_tick_us = 1000;
    strcpy(cfg->network.listen, "127.0.0.1:0");
    cfg->network.buffer_config = AX_BUFFER_CONFIG_DEFAULT;
    cfg->network.max_frame_size = (size_t)16 << 20;
    cfg->network.peer_queue = 1024;
    cfg->network.dispatch_queue = 65536;
    cfg->network.max_retries = 5;
    cfg->network.backoff_initial_ms = 50;
    cfg->network.backoff_max_ms = 2000;
    cfg->network.flush_timeout_ms = 2000;
    cfg->network.heartbeat_interval_ms = 1000;
    cfg->network.heartbeat_timeout_ms = 5000;
    cfg->network.handshake_timeout_ms = 5000;
    cfg->network.max_connections = 1024;
    cfg->network.max_pending_handshakes = 256;
    cfg->network.path_ids = 1024;
    cfg->network.max_remote_refs = 65536;
    cfg->network.io_uring = true;
    /* No pacing on a connection that stays on this host (dispatch/NOTES.md,
     * "Loopback connections do not pace"). */
    strcpy(cfg->network.tcp_congestion_loopback, "reno");
    cfg->metrics.listen[0] = '\0';
    cfg->metrics.top_n = 50;
    cfg->spin_us = AX__SPIN_US_DEFAULT;
    cfg->network.spin_us = AX__NET_SPIN_US_DEFAULT;
    cfg->network.run_actors_us = AX__NET_RUN_ACTORS_US_DEFAULT;
    cfg->network.slow_run_us = AX__NET_SLOW_RUN_US_DEFAULT;
}

/* Offsets in ax_config_t of the members a rule is about (config_check.h). */
#define C(m) offsetof(ax_config_t, m)
#define N(m) (offsetof(ax_config_t, network) + offsetof(ax_net_config_t, m))
#define NONE AX__NO_MEMBER

/* A failed buffer check, its members moved to where that BufferConfig sits
 * in ax_config_t. */
static ax_status_t blame_buffers(ax__blame_t *blame, size_t base, const ax__blame_t *inner, ax_status_t st)
{
    return ax__blame(blame, inner->first == NONE ? NONE : base + inner->first,
                     inner->second == NONE ? NONE : base + inner->second, st);
}

/* The network's times in milliseconds, each at most MAX_MS. */
static ax_status_t check_ms(const ax_config_t *cfg, ax__blame_t *blame)
{
    static const struct {
        const char *name;
        size_t off;
    } ms[] = {
        {"backoff_initial_ms", N(backoff_initial_ms)},   {"backoff_max_ms", N(backoff_max_ms)},
        {"flush_timeout_ms", N(flush_timeout_ms)},       {"heartbeat_interval_ms", N(heartbeat_interval_ms)},
        {"heartbeat_timeout_ms", N(heartbeat_timeout_ms)}, {"handshake_timeout_ms", N(handshake_timeout_ms)},
    };

    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        uint64_t v;

        memcpy(&v, (const char *)cfg + ms[i].off, sizeof v);
        if (v > MAX_MS)
            return ax__blame(blame, ms[i].off, NONE,
                             ax__error(AX_EINVAL, "config: network.%s (%llu) must be at most %llu "
                                       "(about 31 years)", ms[i].name, (unsigned long long)v, MAX_MS));
    }
    return AX_OK;
}

ax_status_t ax__config_check(const ax_config_t *cfg, ax__blame_t *blame)
{
    ax__blame_t inner;
    ax_status_t st;

    if (cfg == NULL)
        return ax__blame(blame, NONE, NONE, ax__error(AX_EINVAL, "config: NULL"));
    if (cfg->threads > MAX_THREADS)
        return ax__blame(blame, C(threads), NONE,
                         ax__error(AX_EINVAL, "config: threads (%u) must be at most %d", cfg->threads,
                                   MAX_THREADS));
    if (cfg->throughput < 1 || cfg->throughput > AX__RUN_BUDGET_MAX)
        return ax__blame(blame, C(throughput), NONE,
                         ax__error(AX_EINVAL, "config: throughput (%u) must be from 1 to %u", cfg->throughput,
                                   AX__RUN_BUDGET_MAX));
    if (cfg->spin_us > MAX_SPIN_US)
        return ax__blame(blame, C(spin_us), NONE,
                         ax__error(AX_EINVAL, "config: spin_us (%u) must be at most %d", cfg->spin_us,
                                   MAX_SPIN_US));
    if (cfg->network.spin_us > MAX_SPIN_US)
        return ax__blame(blame, N(spin_us), NONE,
                         ax__error(AX_EINVAL, "config: network.spin_us (%u) must be at most %d",
                                   (unsigned)cfg->network.spin_us, MAX_SPIN_US));
    if (cfg->network.run_actors_us > MAX_SPIN_US)
        return ax__blame(blame, N(run_actors_us), NONE,
                         ax__error(AX_EINVAL, "config: network.run_actors_us (%u) must be at most %d",
                                   (unsigned)cfg->network.run_actors_us, MAX_SPIN_US));
    if (cfg->network.slow_run_us > MAX_SLOW_RUN_US)
        return ax__blame(blame, N(slow_run_us), NONE,
                         ax__error(AX_EINVAL, "config: network.slow_run_us (%u) must be at most %d",
                                   (unsigned)cfg->network.slow_run_us, MAX_SLOW_RUN_US));
    if (cfg->timer_tick_us < 1)
        return ax__blame(blame, C(timer_tick_us), NONE,
                         ax__error(AX_EINVAL, "config: timer_tick_us must be at least 1"));
    st = ax__buffer_config_check(&cfg->buffer_config, &inner);
    if (st != AX_OK)
        return blame_buffers(blame, C(buffer_config), &inner, st);
    st = ax__buffer_config_check(&cfg->network.buffer_config, &inner);
    if (st != AX_OK)
        return blame_buffers(blame, N(buffer_config), &inner,
                             ax__error(st, "config: network.%s", ax_error_detail()));
    if (memchr(cfg->network.listen, '\0', sizeof cfg->network.listen) == NULL)
        return ax__blame(blame, N(listen), NONE,
                         ax__error(AX_EINVAL, "config: network.listen is not terminated"));
    if (cfg->network.max_frame_size < 64)
        return ax__blame(blame, N(max_frame_size), NONE,
                         ax__error(AX_EINVAL, "config: network.max_frame_size must be at least 64"));
    if (cfg->network.peer_queue < 1)
        return ax__blame(blame, N(peer_queue), NONE,
                         ax__error(AX_EINVAL, "config: network.peer_queue must be at least 1"));
    if (cfg->network.dispatch_queue < 1)
        return ax__blame(blame, N(dispatch_queue), NONE,
                         ax__error(AX_EINVAL, "config: network.dispatch_queue must be at least 1"));
    if (cfg->network.backoff_initial_ms < 1)
        return ax__blame(blame, N(backoff_initial_ms), NONE,
                         ax__error(AX_EINVAL, "config: network.backoff_initial_ms must be at least 1 "
                                   "(0 would reconnect without a pause)"));
    st = check_ms(cfg, blame);
    if (st != AX_OK)
        return st;
    if (cfg->network.backoff_initial_ms > cfg->network.backoff_max_ms)
        return ax__blame(blame, N(backoff_initial_ms), N(backoff_max_ms),
                         ax__error(AX_EINVAL, "config: network.backoff_initial_ms is above backoff_max_ms"));
    if (memchr(cfg->network.cookie, '\0', sizeof cfg->network.cookie) == NULL ||
        memchr(cfg->network.cookie_file, '\0', sizeof cfg->network.cookie_file) == NULL)
        return ax__blame(blame, N(cookie), N(cookie_file),
                         ax__error(AX_EINVAL, "config: network.cookie or cookie_file is not terminated"));
    if (memchr(cfg->network.tcp_congestion, '\0', sizeof cfg->network.tcp_congestion) == NULL)
        return ax__blame(blame, N(tcp_congestion), NONE,
                         ax__error(AX_EINVAL, "config: network.tcp_congestion is not terminated"));
    if (memchr(cfg->network.tcp_congestion_loopback, '\0', sizeof cfg->network.tcp_congestion_loopback) == NULL)
        return ax__blame(blame, N(tcp_congestion_loopback), NONE,
                         ax__error(AX_EINVAL, "config: network.tcp_congestion_loopback is not terminated"));
    if (cfg->network.cookie[0] != '\0' && cfg->network.cookie_file[0] != '\0')
        return ax__blame(blame, N(cookie), N(cookie_file),
                         ax__error(AX_EINVAL, "config: network.cookie and network.cookie_file are both set; give one"));
    if (cfg->network.heartbeat_interval_ms < 1)
        return ax__blame(blame, N(heartbeat_interval_ms), NONE,
                         ax__error(AX_EINVAL, "config: network.heartbeat_interval_ms must be at least 1"));
    if (cfg->network.heartbeat_timeout_ms <= cfg->network.heartbeat_interval_ms)
        return ax__blame(blame, N(heartbeat_timeout_ms), N(heartbeat_interval_ms),
                         ax__error(AX_EINVAL,
                                   "config: network.heartbeat_timeout_ms must be above heartbeat_interval_ms"));
    if (cfg->network.handshake_timeout_ms < 1)
        return ax__blame(blame, N(handshake_timeout_ms), NONE,
                         ax__error(AX_EINVAL, "config: network.handshake_timeout_ms must be at least 1"));
    if (cfg->network.max_connections < 1)
        return ax__blame(blame, N(max_connections), NONE,
                         ax__error(AX_EINVAL, "config: network.max_connections must be at least 1"));
    if (cfg->network.max_pending_handshakes < 1)
        return ax__blame(blame, N(max_pending_handshakes), NONE,
                         ax__error(AX_EINVAL, "config: network.max_pending_handshakes must be at least 1"));
    if (cfg->network.path_ids > 65536)
        return ax__blame(blame, N(path_ids), NONE,
                         ax__error(AX_EINVAL, "config: network.path_ids (%u) must be at most 65536",
                                   cfg->network.path_ids));
    if (cfg->network.max_remote_refs < 1 || cfg->network.max_remote_refs > MAX_REMOTE_REFS)
        return ax__blame(blame, N(max_remote_refs), NONE,
                         ax__error(AX_EINVAL, "config: network.max_remote_refs (%u) must be from 1 to %u",
                                   cfg->network.max_remote_refs, MAX_REMOTE_REFS));
    if (memchr(cfg->metrics.listen, '\0', sizeof cfg->metrics.listen) == NULL)
        return ax__blame(blame, C(metrics.listen), NONE,
                         ax__error(AX_EINVAL, "config: metrics.listen is not terminated"));
    if (cfg->metrics.top_n < 1 || cfg->metrics.top_n > AX__METRICS_RANK_MAX)
        return ax__blame(blame, C(metrics.top_n), NONE,
                         ax__error(AX_EINVAL, "config: metrics.top_n (%u) must be from 1 to %u",
                                   cfg->metrics.top_n, AX__METRICS_RANK_MAX));
    return AX_OK;
}

ax_status_t ax_config_validate(const ax_config_t *cfg)
{
    return ax__config_check(cfg, NULL);
}
