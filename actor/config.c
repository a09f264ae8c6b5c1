/* System configuration: defaults and validation. */
#include <string.h>

#include "axon/config.h"
#include "common/error.h"

#define MAX_THREADS 1024

void ax_config_init(ax_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = 0;
    cfg->throughput = 50;
    cfg->buffer_config = AX_BUFFER_CONFIG_DEFAULT;
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
}

ax_status_t ax_config_validate(const ax_config_t *cfg)
{
    ax_status_t st;

    if (cfg == NULL)
        return ax__error(AX_EINVAL, "config: NULL");
    if (cfg->threads > MAX_THREADS)
        return ax__error(AX_EINVAL, "config: threads (%u) must be at most %d", cfg->threads,
                         MAX_THREADS);
    if (cfg->throughput < 1)
        return ax__error(AX_EINVAL, "config: throughput must be at least 1");
    if (cfg->timer_tick_us < 1)
        return ax__error(AX_EINVAL, "config: timer_tick_us must be at least 1");
    st = ax_buffer_config_validate(&cfg->buffer_config);
    if (st != AX_OK)
        return st;
    st = ax_buffer_config_validate(&cfg->network.buffer_config);
    if (st != AX_OK)
        return ax__error(st, "config: network.%s", ax_error_detail());
    if (memchr(cfg->network.listen, '\0', sizeof cfg->network.listen) == NULL)
        return ax__error(AX_EINVAL, "config: network.listen is not terminated");
    if (cfg->network.max_frame_size < 64)
        return ax__error(AX_EINVAL, "config: network.max_frame_size must be at least 64");
    if (cfg->network.peer_queue < 1)
        return ax__error(AX_EINVAL, "config: network.peer_queue must be at least 1");
    if (cfg->network.dispatch_queue < 1)
        return ax__error(AX_EINVAL, "config: network.dispatch_queue must be at least 1");
    if (cfg->network.backoff_initial_ms > cfg->network.backoff_max_ms)
        return ax__error(AX_EINVAL, "config: network.backoff_initial_ms is above backoff_max_ms");
    if (memchr(cfg->network.cookie, '\0', sizeof cfg->network.cookie) == NULL ||
        memchr(cfg->network.cookie_file, '\0', sizeof cfg->network.cookie_file) == NULL)
        return ax__error(AX_EINVAL, "config: network.cookie or cookie_file is not terminated");
    if (cfg->network.cookie[0] != '\0' && cfg->network.cookie_file[0] != '\0')
        return ax__error(AX_EINVAL, "config: network.cookie and network.cookie_file are both set; give one");
    if (cfg->network.heartbeat_interval_ms < 1)
        return ax__error(AX_EINVAL, "config: network.heartbeat_interval_ms must be at least 1");
    if (cfg->network.heartbeat_timeout_ms <= cfg->network.heartbeat_interval_ms)
        return ax__error(AX_EINVAL,
                         "config: network.heartbeat_timeout_ms must be above heartbeat_interval_ms");
    if (cfg->network.handshake_timeout_ms < 1)
        return ax__error(AX_EINVAL, "config: network.handshake_timeout_ms must be at least 1");
    if (cfg->network.max_connections < 1)
        return ax__error(AX_EINVAL, "config: network.max_connections must be at least 1");
    if (cfg->network.max_pending_handshakes < 1)
        return ax__error(AX_EINVAL, "config: network.max_pending_handshakes must be at least 1");
    return AX_OK;
}
