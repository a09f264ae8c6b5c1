/* Message headers: init, alloc, release. */
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "serial/message_internal.h"
#include "serial/msgmem.h"
#include "common/error.h"

void ax_msg_init(ax_msg_t *msg, const ax_msg_type_t *type)
{
    msg->link.next = NULL;
    msg->type = type;
    msg->sender = AX_REF_NULL;
    msg->to = 0;
    msg->pool = NULL;
}

/* The pool of a message from the message allocator: an address no pool
 * has. A message from ax_msg_alloc carries it, so releasing the message
 * sends it back to the message allocator and nowhere else; every other
 * message (a pool's, or one a user allocated) is freed with free(). */
static char msg_heap_tag;
#define MSG_HEAP ((ax_msg_pool_t *)(void *)&msg_heap_tag)

ax_status_t ax_msg_alloc(const ax_msg_type_t *type, ax_msg_t **out)
{
    ax_msg_t *msg;

    if (type == NULL || out == NULL)
        return ax__error(AX_EINVAL, "msg_alloc: NULL argument");
    if (type->size < sizeof(ax_msg_t))
        return ax__error(AX_EINVAL, "msg_alloc \"%s\": size %zu is smaller than ax_msg_t (%zu)",
                         type->name ? type->name : "?", type->size, sizeof(ax_msg_t));
    /* A type with release frees its messages itself, with free(). */
    msg = ax__fault(type->name) ? NULL
          : type->release != NULL ? calloc(1, type->size) : ax__msgmem_alloc(type->size);
    if (msg == NULL)
        return ax__error(AX_ENOMEM, "msg_alloc \"%s\": out of memory", type->name);
    /* Both allocators zero the memory: of ax_msg_init's fields only these
     * two are not zero. */
    msg->type = type;
    if (type->release == NULL)
        msg->pool = MSG_HEAP;
    *out = msg;
    return AX_OK;
}

void ax_msg_free(ax_msg_t *msg)
{
    if (msg == NULL)
        return;
    if (msg->pool == MSG_HEAP)
        ax__msgmem_free(msg, msg->type->size);
    else
        free(msg);
}

void ax__msg_discard(ax_msg_t *msg)
{
    if (msg->type != NULL && msg->type->release != NULL)
        msg->type->release(msg);
    else
        ax_msg_free(msg);
}

void ax_msg_release(ax_msg_t **msgp)
{
    ax_msg_t *msg;

    if (msgp == NULL || (msg = *msgp) == NULL)
        return;
    *msgp = NULL;
    if (msg->pool == MSG_HEAP) {
        /* From ax_msg_alloc, whose types have no release: most messages. */
        if (msg->type->reset != NULL)
            msg->type->reset(msg);
        ax__msgmem_free(msg, msg->type->size);
    } else if (msg->pool != NULL) {
        ax_msg_put(msg->pool, &msg);
    } else if (msg->type != NULL && msg->type->release != NULL) {
        msg->type->release(msg);
    } else {
        /* Without release, reset drops what the message holds. */
        if (msg->type != NULL && msg->type->reset != NULL)
            msg->type->reset(msg);
        ax_msg_free(msg);
    }
}
