/*
 * CLIENT connections (docs/wire.md section 6, "Clients"): an initiator
 * that does not listen says so with the CLIENT flag of its Hello. The
 * acceptor does not know it by the address it announced: it gives the
 * connection a peer of its own, off the peers list, and an id. Messages
 * that come over the connection carry the id (ax_net_msg_t.via), the refs
 * their senders resolve to are bound to it (ax__remote_t.via), and frames
 * to those refs go back over that connection or, once it has ended, to
 * dead letters. So two clients that announce the same address never meet,
 * and a CLIENT replaces nothing and is replaced by nothing.
 *
 * An id is a slot index and the slot's generation: a ref kept after its
 * connection ended finds another generation, never the next connection in
 * the slot, until the generation wraps after 2^32 reuses of that slot.
 * Network thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "dispatch/net_internal.h"

typedef struct ax__client_slot_s {
    ax__peer_t *peer;   /* NULL while free */
    uint32_t gen;       /* never 0 */
    uint32_t next_free; /* the next free slot + 1, 0 for none */
} ax__client_slot_t;

static uint64_t id_of(uint32_t index, uint32_t gen)
{
    return (uint64_t)gen << 32 | ((uint64_t)index + 1);
}

/* A free slot's index, growing the table when none is free; false when
 * out of memory. */
static bool take_slot(ax__net_t *net, uint32_t *index)
{
    ax__client_slot_t *s;
    uint32_t cap;

    if (net->clients_free == 0) {
        cap = net->clients_cap ? net->clients_cap * 2 : 16;
        if (cap <= net->clients_cap || (s = realloc(net->clients, (size_t)cap * sizeof(*s))) == NULL)
            return false;
        /* The new slots go on the free list, lowest first. */
        for (uint32_t i = net->clients_cap; i < cap; i++)
            s[i] = (ax__client_slot_t){NULL, 1, i + 1 < cap ? i + 2 : 0};
        net->clients = s;
        net->clients_free = net->clients_cap + 1;
        net->clients_cap = cap;
    }
    *index = net->clients_free - 1;
    net->clients_free = net->clients[*index].next_free;
    return true;
}

ax__peer_t *ax__client_admit(ax__net_t *net, const ax_addr_t *announced)
{
    ax__peer_t *p = calloc(1, sizeof(*p));
    uint32_t index;

    if (p == NULL)
        return NULL;
    if (!take_slot(net, &index)) {
        free(p);
        return NULL;
    }
    /* Its address is what it announced, for logs and metrics only: the
     * connection is never looked up by it. */
    p->addr = *announced;
    p->state = AX__PEER_IDLE;
    p->via = id_of(index, net->clients[index].gen);
    net->clients[index].peer = p;
    return p;
}

ax__conn_t *ax__client_conn(ax__net_t *net, uint64_t via)
{
    uint64_t index = (via & UINT32_MAX) - 1;

    if ((via & UINT32_MAX) == 0 || index >= net->clients_cap)
        return NULL;
    if (net->clients[index].gen != (uint32_t)(via >> 32) || net->clients[index].peer == NULL)
        return NULL;
    return net->clients[index].peer->conn;
}

void ax__client_forget(ax__net_t *net, ax__peer_t *p)
{
    uint32_t index = (uint32_t)(p->via & UINT32_MAX) - 1;
    ax__client_slot_t *s = &net->clients[index];

    /* A new generation: refs bound to this connection now find nothing. */
    s->peer = NULL;
    s->gen = s->gen == UINT32_MAX ? 1 : s->gen + 1;
    s->next_free = net->clients_free;
    net->clients_free = index + 1;
    ax__nm_fifo_release(&p->pending); /* empty: nothing waits for a client */
    free(p);
}

void ax__clients_free(ax__net_t *net)
{
    /* Every connection has ended by now, and with it its peer. */
    free(net->clients);
    net->clients = NULL;
    net->clients_cap = net->clients_free = 0;
}
