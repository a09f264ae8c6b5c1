/* Names and id tables (ck_ht, serialised by one mutex). */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_run.h"
#include "actor/system.h"
#include "common/error.h"
#include "common/ht_alloc.h"

#define NAME_MAX_LEN 255

struct name_entry {
    ax_ref_t ref;
    uint16_t len;
    char name[];
};


ax_status_t ax__registry_init(ax__registry_t *r)
{
    memset(r, 0, sizeof(*r));
    if (!ck_ht_init(&r->names, CK_HT_MODE_BYTESTRING, NULL, &ax__ht_allocator, 64, 0x9e3779b97f4a7c15ull))
        return ax__error(AX_ENOMEM, "registry: out of memory");
    if (!ck_ht_init(&r->by_id, CK_HT_MODE_DIRECT, NULL, &ax__ht_allocator, 64, 0x51ed270b2c6a4f3dull)) {
        ck_ht_destroy(&r->names);
        return ax__error(AX_ENOMEM, "registry: out of memory");
    }
    if (!ck_ht_init(&r->cells, CK_HT_MODE_DIRECT, NULL, &ax__ht_allocator, 64, 0x2545f4914f6cdd1dull)) {
        ck_ht_destroy(&r->names);
        ck_ht_destroy(&r->by_id);
        return ax__error(AX_ENOMEM, "registry: out of memory");
    }
    pthread_mutex_init(&r->lock, NULL);
    return AX_OK;
}

void ax__registry_destroy(ax__registry_t *r)
{
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;

    while (ck_ht_next(&r->names, &it, &e))
        free(ck_ht_entry_value(e));
    ck_ht_destroy(&r->names);
    ck_ht_destroy(&r->by_id);
    ck_ht_destroy(&r->cells);
    pthread_mutex_destroy(&r->lock);
}

/* Remove an entry from both name tables and free it; with the lock. */
static void drop_entry(ax__registry_t *r, struct name_entry *ne)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    ck_ht_hash(&h, &r->names, ne->name, ne->len);
    ck_ht_entry_key_set(&e, ne->name, ne->len);
    ck_ht_remove_spmc(&r->names, h, &e);
    ck_ht_hash_direct(&h, &r->by_id, (uintptr_t)ne->ref.id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)ne->ref.id);
    ck_ht_remove_spmc(&r->by_id, h, &e);
    free(ne);
    /* Release: the removal is visible to whoever sees the new epoch. The
     * lock serialises writers. */
    ck_pr_fence_release();
    ck_pr_store_64(&r->names_epoch, ck_pr_load_64(&r->names_epoch) + 1);
}

static ax_status_t check_name(const char *name, size_t *len)
{
    if (name == NULL || name[0] == '\0')
        return ax__error(AX_EINVAL, "register: empty name");
    *len = strlen(name);
    if (*len > NAME_MAX_LEN)
        return ax__error(AX_EINVAL, "register: name of %zu bytes is longer than %d", *len,
                         NAME_MAX_LEN);
    return AX_OK;
}

static struct name_entry *find_name(ax__registry_t *r, const char *name, size_t len)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    ck_ht_hash(&h, &r->names, name, (uint16_t)len);
    ck_ht_entry_key_set(&e, name, (uint16_t)len);
    return ck_ht_get_spmc(&r->names, h, &e) ? ck_ht_entry_value(&e) : NULL;
}

ax_status_t ax_register(ax_system_t *sys, ax_ref_t ref, const char *name)
{
    ax__registry_t *r;
    ax__cell_t *c = ref.target;
    struct name_entry *ne;
    ck_ht_entry_t e;
    ck_ht_hash_t h;
    ax_status_t st = AX_OK;
    size_t len = 0;

    if (sys == NULL || c == NULL || c->sys != sys)
        return ax__error(AX_EINVAL, "register: not a local actor of this system");
    /* A name others can look up is an effect too: the tells this thread's
     * actor still holds go first (actor.c, "tell"). */
    ax__deferred_end();
    st = check_name(name, &len);
    if (st != AX_OK)
        return st;
    ne = malloc(sizeof(*ne) + len + 1);
    if (ne == NULL)
        return ax__error(AX_ENOMEM, "register: out of memory");
    ne->ref = ref;
    ne->len = (uint16_t)len;
    memcpy(ne->name, name, len + 1);

    r = &sys->registry;
    pthread_mutex_lock(&r->lock);
    /* NAMED goes up before ENDED is read, both with full barriers; the
     * actor's end sets ENDED and then reads NAMED. So either we see ENDED
     * here, or the end sees NAMED and releases the name under this lock,
     * after we put it. (Setting NAMED only after the puts let an actor end
     * between our check and the flag, leaving its name registered for
     * good.) A NAMED left by a failed register costs its end one lookup. */
    ck_pr_or_32(&c->lflags, AX__L_NAMED);
    if ((ck_pr_load_64(&c->word) >> AX__W_ID_SHIFT) != ref.id ||
        (ck_pr_load_64(&c->word) & AX__W_ENDED) != 0) {
        st = ax__error(AX_ENOTFOUND, "register \"%s\": the actor has ended", name);
    } else if (find_name(r, name, len) != NULL) {
        st = ax__error(AX_EEXIST, "register \"%s\": the name is taken", name);
    } else {
        ck_ht_hash_direct(&h, &r->by_id, (uintptr_t)ref.id);
        ck_ht_entry_set_direct(&e, h, (uintptr_t)ref.id, (uintptr_t)ne);
        if (!ck_ht_put_spmc(&r->by_id, h, &e)) {
            st = ax__error(AX_EEXIST, "register \"%s\": the actor already has a name", name);
        } else {
            ck_ht_hash(&h, &r->names, ne->name, ne->len);
            ck_ht_entry_set(&e, h, ne->name, ne->len, ne);
            if (!ck_ht_put_spmc(&r->names, h, &e)) {
                ck_ht_entry_key_set_direct(&e, (uintptr_t)ref.id);
                ck_ht_hash_direct(&h, &r->by_id, (uintptr_t)ref.id);
                ck_ht_remove_spmc(&r->by_id, h, &e);
                st = ax__error(AX_ENOMEM, "register \"%s\": out of memory", name);
            } else {
                ne = NULL;
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
    free(ne);
    return st;
}

ax_status_t ax_lookup(ax_system_t *sys, const char *name, ax_ref_t *ref)
{
    struct name_entry *ne;
    ax_status_t st;
    size_t len = 0;

    if (sys == NULL || ref == NULL)
        return ax__error(AX_EINVAL, "lookup: NULL argument");
    st = check_name(name, &len);
    if (st != AX_OK)
        return st;
    pthread_mutex_lock(&sys->registry.lock);
    ne = find_name(&sys->registry, name, len);
    if (ne != NULL)
        *ref = ne->ref;
    pthread_mutex_unlock(&sys->registry.lock);
    if (ne == NULL)
        return ax__error(AX_ENOTFOUND, "lookup \"%s\": no actor has this name", name);
    return AX_OK;
}

ax_status_t ax_unregister(ax_system_t *sys, const char *name)
{
    struct name_entry *ne;
    ax_status_t st;
    size_t len = 0;

    if (sys == NULL)
        return ax__error(AX_EINVAL, "unregister: NULL system");
    ax__deferred_end(); /* as in ax_register */
    st = check_name(name, &len);
    if (st != AX_OK)
        return st;
    pthread_mutex_lock(&sys->registry.lock);
    ne = find_name(&sys->registry, name, len);
    if (ne != NULL)
        drop_entry(&sys->registry, ne);
    pthread_mutex_unlock(&sys->registry.lock);
    if (ne == NULL)
        return ax__error(AX_ENOTFOUND, "unregister \"%s\": not registered", name);
    return AX_OK;
}

void ax__registry_release_id(ax__registry_t *r, uint64_t id)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    pthread_mutex_lock(&r->lock);
    ck_ht_hash_direct(&h, &r->by_id, (uintptr_t)id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)id);
    if (ck_ht_get_spmc(&r->by_id, h, &e))
        drop_entry(r, (struct name_entry *)ck_ht_entry_value_direct(&e));
    pthread_mutex_unlock(&r->lock);
}

ax_status_t ax__registry_publish(ax__registry_t *r, ax__cell_t *c, uint64_t id)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;
    bool ok;

    pthread_mutex_lock(&r->lock);
    ck_ht_hash_direct(&h, &r->cells, (uintptr_t)id);
    ck_ht_entry_set_direct(&e, h, (uintptr_t)id, (uintptr_t)c);
    ok = ck_ht_put_spmc(&r->cells, h, &e) || ck_ht_get_spmc(&r->cells, h, &e);
    pthread_mutex_unlock(&r->lock);
    return ok ? AX_OK : ax__error(AX_ENOMEM, "registry: out of memory");
}

void ax__registry_unpublish(ax__registry_t *r, uint64_t id)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    pthread_mutex_lock(&r->lock);
    ck_ht_hash_direct(&h, &r->cells, (uintptr_t)id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)id);
    ck_ht_remove_spmc(&r->cells, h, &e);
    pthread_mutex_unlock(&r->lock);
}

ax__cell_t *ax__registry_cell(ax__registry_t *r, uint64_t id)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;
    ax__cell_t *c = NULL;

    pthread_mutex_lock(&r->lock);
    ck_ht_hash_direct(&h, &r->cells, (uintptr_t)id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)id);
    if (ck_ht_get_spmc(&r->cells, h, &e))
        c = (ax__cell_t *)ck_ht_entry_value_direct(&e);
    pthread_mutex_unlock(&r->lock);
    return c;
}

void ax__registry_name_of(ax__registry_t *r, uint64_t id, char *buf, size_t size)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    if (size == 0)
        return;
    buf[0] = '\0';
    pthread_mutex_lock(&r->lock);
    ck_ht_hash_direct(&h, &r->by_id, (uintptr_t)id);
    ck_ht_entry_key_set_direct(&e, (uintptr_t)id);
    if (ck_ht_get_spmc(&r->by_id, h, &e)) {
        const struct name_entry *ne = (const struct name_entry *)ck_ht_entry_value_direct(&e);
        size_t n = ne->len < size - 1 ? ne->len : size - 1;

        memcpy(buf, ne->name, n);
        buf[n] = '\0';
    }
    pthread_mutex_unlock(&r->lock);
}
