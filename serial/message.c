/* Message headers: init, alloc, release. */
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "serial/message_internal.h"
#include "common/error.h"

void ax_msg_init(ax_msg_t *msg, const ax_msg_type_t *type)
{
    msg->link.next = NULL;
    msg->type = type;
    msg->sender = AX_REF_NULL;
    msg->to = 0;
    msg->pool = NULL;
}

ax_status_t ax_msg_alloc(const ax_msg_type_t *type, ax_msg_t **out)
{
    ax_msg_t *msg;

    if (type == NULL || out == NULL)
        return ax__error(AX_EINVAL, "msg_alloc: NULL argument");
    if (type->size < sizeof(ax_msg_t))
        return ax__error(AX_EINVAL, "msg_alloc \"%s\": size %zu is smaller than ax_msg_t (%zu)",
                         type->name ? type->name : "?", type->size, sizeof(ax_msg_t));
    msg = ax__fault(type->name) ? NULL : calloc(1, type->size);
    if (msg == NULL)
        return ax__error(AX_ENOMEM, "msg_alloc \"%s\": out of memory", type->name);
    ax_msg_init(msg, type);
    *out = msg;
    return AX_OK;
}

void ax__msg_discard(ax_msg_t *msg)
{
    if (msg->type != NULL && msg->type->release != NULL)
        msg->type->release(msg);
    else
        free(msg);
}

void ax_msg_release(ax_msg_t **msgp)
{
    ax_msg_t *msg;

    if (msgp == NULL || (msg = *msgp) == NULL)
        return;
    *msgp = NULL;
    if (msg->pool != NULL)
        ax_msg_put(msg->pool, &msg);
    else
        ax__msg_discard(msg);
}
