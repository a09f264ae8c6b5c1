/*
 * Heartbeats, silence and handshake deadlines (docs/wire.md section 13).
 * One housekeeping pass runs on the network thread every tick:
 *
 * - a connection still in its handshake past handshake_timeout_ms is
 *   closed (an accepted one is counted in handshake_timeouts; an outgoing
 *   one counts as a failed attempt and backs off);
 * - an open connection that has received nothing for heartbeat_timeout_ms
 *   is lost (AX_NET_LOST with AX_ETIMEDOUT), with the same accounting as a
 *   closed socket: unacked frames to dead letters, queued ones kept for the
 *   next connection;
 * - an open connection that has written nothing for heartbeat_interval_ms
 *   sends a Heartbeat, so that the peer's silence timer sees us.
 *
 * The tick is a quarter of the smallest of those periods, within 1 ms and
 * 100 ms: a loss is seen at most a tick after its deadline (the cluster test
 * allows one second for detection, most of which a loaded machine's
 * scheduling may need), and an idle system wakes at most ten times a second,
 * a cost too small to measure.
 */
#include "dispatch/net_internal.h"

#define TICK_MIN_NS (1000u * 1000u)
#define TICK_MAX_NS (100u * 1000u * 1000u)

uint64_t ax__net_tick_period_ns(const ax_net_config_t *cfg)
{
    uint64_t ms = cfg->heartbeat_interval_ms;

    if (cfg->heartbeat_timeout_ms < ms)
        ms = cfg->heartbeat_timeout_ms;
    if (cfg->handshake_timeout_ms < ms)
        ms = cfg->handshake_timeout_ms;
    ms = ms * 1000000u / 4;
    return ms < TICK_MIN_NS ? TICK_MIN_NS : ms > TICK_MAX_NS ? TICK_MAX_NS : ms;
}

static void check_open(ax__conn_t *c, uint64_t now)
{
    const ax_net_config_t *cfg = &c->net->cfg;

    /* A connection that stopped reading for want of buffers is not
     * silent: its bytes wait in the socket. */
    if (c->paused)
        c->last_rx_ns = now;
    if (now - c->last_rx_ns >= cfg->heartbeat_timeout_ms * 1000000u) {
        ax__counter_add(&c->net->c.heartbeat_timeouts, 1);
        ax__conn_end(c, AX_NET_LOST, AX_ETIMEDOUT);
        return;
    }
    if (now - c->last_tx_ns >= cfg->heartbeat_interval_ms * 1000000u && c->wq.head == NULL &&
        ax__queue_control(c, AX__FRAME_HEARTBEAT, AX_OK, NULL, NULL))
        c->last_tx_ns = now; /* queued now, written at the end of this turn */
}

void ax__net_tick(ax__net_t *net, uint64_t now_ns)
{
    /* ax__conn_end only marks a connection DEAD; none is freed or unlinked
     * before the loop turn ends, so walking the list stays safe. */
    for (ax__conn_t *c = net->conns; c != NULL; c = c->next) {
        switch (c->state) {
        case AX__CONN_TCP:
        case AX__CONN_HELLO:
            if (c->hs != NULL && now_ns >= c->hs->deadline_ns) {
                if (!c->outgoing)
                    ax__counter_add(&net->c.handshake_timeouts, 1);
                ax__conn_end(c, AX_NET_LOST, AX_ETIMEDOUT);
            }
            break;
        case AX__CONN_OPEN:
        case AX__CONN_CLOSING:
            check_open(c, now_ns);
            break;
        default:
            break;
        }
    }
}
