/* Serialiser ids: one type per id, per system. */
#include <stdlib.h>

#include "axon/serial.h"
#include "common/error.h"
#include "common/ht_alloc.h"
#include "serial/registry.h"


ax_status_t ax__ser_registry_init(ax__ser_registry_t *r)
{
    static const ax_msg_type_t *const builtins[] = {&ax_bytes_type, &ax_string_type, &ax_u64_type,
                                                    &ax_object_type};

    if (!ck_ht_init(&r->by_id, CK_HT_MODE_DIRECT, NULL, &ax__ht_allocator, 16, 0x6a09e667f3bcc909ull))
        return ax__error(AX_ENOMEM, "serialiser registry: out of memory");
    pthread_mutex_init(&r->lock, NULL);
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        ax_status_t st = ax__ser_register(r, builtins[i]);

        if (st != AX_OK) {
            ax__ser_registry_destroy(r);
            return st;
        }
    }
    return AX_OK;
}

void ax__ser_registry_destroy(ax__ser_registry_t *r)
{
    ck_ht_destroy(&r->by_id);
    pthread_mutex_destroy(&r->lock);
}

ax_status_t ax__ser_register(ax__ser_registry_t *r, const ax_msg_type_t *type)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;
    ax_status_t st = AX_OK;

    if (type == NULL || type->serialiser_id == 0 || type->serialise == NULL ||
        type->deserialise == NULL || type->size < sizeof(ax_msg_t))
        return ax__error(AX_EINVAL, "serialiser \"%s\": needs a non-zero id, serialise, deserialise "
                                    "and a size that holds ax_msg_t",
                         type != NULL && type->name != NULL ? type->name : "?");
    /* ck_ht reserves the key UINTPTR_MAX in direct mode. */
    if (type->serialiser_id == UINT64_MAX)
        return ax__error(AX_EINVAL, "serialiser \"%s\": id %llu is reserved", type->name,
                         (unsigned long long)type->serialiser_id);
    pthread_mutex_lock(&r->lock);
    ck_ht_hash_direct(&h, &r->by_id, (uintptr_t)type->serialiser_id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)type->serialiser_id);
    if (ck_ht_get_spmc(&r->by_id, h, &e)) {
        const ax_msg_type_t *have = (const ax_msg_type_t *)ck_ht_entry_value_direct(&e);

        if (have != type)
            st = ax__error(AX_EEXIST, "serialiser id %llu: \"%s\" has it already, \"%s\" cannot",
                           (unsigned long long)type->serialiser_id, have->name, type->name);
    } else {
        ck_ht_entry_set_direct(&e, h, (uintptr_t)type->serialiser_id, (uintptr_t)type);
        if (!ck_ht_put_spmc(&r->by_id, h, &e))
            st = ax__error(AX_ENOMEM, "serialiser registry: out of memory");
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}

const ax_msg_type_t *ax__ser_lookup(ax__ser_registry_t *r, uint64_t id)
{
    const ax_msg_type_t *type = NULL;
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    if (id == 0 || id == UINT64_MAX)
        return NULL;
    pthread_mutex_lock(&r->lock);
    ck_ht_hash_direct(&h, &r->by_id, (uintptr_t)id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)id);
    if (ck_ht_get_spmc(&r->by_id, h, &e))
        type = (const ax_msg_type_t *)ck_ht_entry_value_direct(&e);
    pthread_mutex_unlock(&r->lock);
    return type;
}
