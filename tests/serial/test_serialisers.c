/*
 * Serialisers end to end inside one system: a sender actor encodes with
 * ax_tell_serialised, a receiver actor decodes the NetMessage with
 * ax_net_msg_deserialise. Every built-in type and a user struct round trip;
 * the zero-copy view types point into the received payload and keep it
 * alive; a wrong type leaves the NetMessage intact; the serialiser registry
 * refuses collisions.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"

/* ---- a user type with its own serialiser ------------------------------ */

/* An order: several fields of different msgpack types and a string. It is
 * packed as the array [id, qty, price, urgent, note]. */
typedef struct order {
    ax_msg_t hdr;
    uint64_t id;
    int64_t qty;
    double price;
    bool urgent;
    char *note; /* owned, NUL-terminated */
} order_t;

#define ORDER_SER_ID (AX_SER_USER_MIN + 7)

static _Atomic uint64_t order_allocs, order_releases;

static void order_release(ax_msg_t *m)
{
    atomic_fetch_add(&order_releases, 1);
    free(((order_t *)m)->note);
    free(m);
}

static size_t order_hint(const ax_msg_t *m)
{
    return 40 + strlen(((const order_t *)m)->note);
}

static ax_status_t order_serialise(const ax_msg_t *m, msgpack_packer *pk)
{
    const order_t *o = (const order_t *)m;
    size_t len = strlen(o->note);
    int rc = msgpack_pack_array(pk, 5);

    rc = rc ? rc : msgpack_pack_uint64(pk, o->id);
    rc = rc ? rc : msgpack_pack_int64(pk, o->qty);
    rc = rc ? rc : msgpack_pack_double(pk, o->price);
    rc = rc ? rc : (o->urgent ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    rc = rc ? rc : msgpack_pack_str(pk, len);
    rc = rc ? rc : msgpack_pack_str_body(pk, o->note, len);
    return rc == 0 ? AX_OK : AX_ENOBUFS;
}

static ax_status_t order_make(uint64_t id, int64_t qty, double price, bool urgent, const char *note,
                              size_t note_len, ax_msg_t **out);

static ax_status_t order_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                     ax_msg_t **out)
{
    const msgpack_object *f = obj->via.array.ptr;
    int64_t qty;

    (void)payload; /* the note is copied: nothing points into the payload */
    if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 5 ||
        f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[2].type != MSGPACK_OBJECT_FLOAT64 ||
        f[3].type != MSGPACK_OBJECT_BOOLEAN || f[4].type != MSGPACK_OBJECT_STR)
        return AX_EPROTO;
    if (f[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        qty = f[1].via.i64;
    else if (f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[1].via.u64 <= INT64_MAX)
        qty = (int64_t)f[1].via.u64;
    else
        return AX_EPROTO;
    return order_make(f[0].via.u64, qty, f[2].via.f64, f[3].via.boolean, f[4].via.str.ptr,
                      f[4].via.str.size, out);
}

static const ax_msg_type_t order_type = {
    .name = "test.order",
    .size = sizeof(order_t),
    .release = order_release,
    .serialiser_id = ORDER_SER_ID,
    .size_hint = order_hint,
    .serialise = order_serialise,
    .deserialise = order_deserialise,
};

static ax_status_t order_make(uint64_t id, int64_t qty, double price, bool urgent, const char *note,
                              size_t note_len, ax_msg_t **out)
{
    ax_msg_t *m;
    order_t *o;
    ax_status_t st = ax_msg_alloc(&order_type, &m);

    if (st != AX_OK)
        return st;
    o = (order_t *)m;
    o->note = malloc(note_len + 1);
    if (o->note == NULL) {
        free(m);
        return AX_ENOMEM;
    }
    memcpy(o->note, note, note_len);
    o->note[note_len] = '\0';
    o->id = id;
    o->qty = qty;
    o->price = price;
    o->urgent = urgent;
    atomic_fetch_add(&order_allocs, 1);
    *out = m;
    return AX_OK;
}

/* Same id, but a deserialiser that wants a map: decodes to AX_EPROTO. */
static ax_status_t order_as_map(const msgpack_object *obj, const ax_payload_t *payload, ax_msg_t **out)
{
    (void)payload;
    (void)out;
    return obj->type == MSGPACK_OBJECT_MAP ? AX_EINVAL : AX_EPROTO;
}

static const ax_msg_type_t order_map_type = {
    .name = "test.order-as-map",
    .size = sizeof(order_t),
    .serialiser_id = ORDER_SER_ID,
    .serialise = order_serialise,
    .deserialise = order_as_map,
};

/* tell_serialised and friends must be called from the actor's handlers:
 * the test sends the actor a job (tests/common.h) and waits until it has
 * run. */

/* ---- a node: runs jobs, decodes what it receives --------------------- */

#define NODE_MAX 16

typedef struct rx_entry {
    ax_status_t st;             /* of the deserialise */
    ax_status_t wrong_st;       /* of a deserialise with node->wrong first */
    ax_msg_t *msg;              /* the decoded message; the test owns it */
    uint64_t serialiser;
    const unsigned char *pl_lo; /* the payload lease's bytes, when one slice */
    const unsigned char *pl_hi;
} rx_entry_t;

typedef struct node {
    const ax_msg_type_t *type;  /* decode as this (NULL: the registered type of the id) */
    const ax_msg_type_t *wrong; /* optional: try this first */
    sem_t got;
    _Atomic uint64_t n;
    rx_entry_t e[NODE_MAX];
} node_t;

typedef struct node_actor {
    ax_actor_t actor;
    node_t *node;
} node_actor_t;

static ax_status_t node_init(ax_actor_t *self, void *arg)
{
    ((node_actor_t *)self)->node = arg;
    return AX_OK;
}

static ax_status_t node_local(ax_actor_t *self, ax_msg_t **msg)
{
    AXT_CHECK(axt_job_run(self, *msg));
    return AX_OK;
}

static ax_status_t node_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    node_t *node = ((node_actor_t *)self)->node;
    uint64_t i = atomic_load(&node->n);
    const ax_msg_type_t *type = node->type;
    rx_entry_t *e;
    ax_lease_t payload;

    AXT_CHECK(i < NODE_MAX);
    if (i >= NODE_MAX)
        return AX_OK;
    e = &node->e[i];
    e->serialiser = ax_net_msg_serialiser(*nm);
    AXT_CHECK(ax_net_msg_payload(*nm, &payload) == AX_OK);
    if (ax_lease_data(&payload) != NULL) {
        e->pl_lo = ax_lease_data(&payload);
        e->pl_hi = e->pl_lo + ax_lease_len(&payload);
    }
    ax_lease_release(&payload);
    if (node->wrong != NULL)
        e->wrong_st = ax_net_msg_deserialise(*nm, node->wrong, &e->msg);
    if (type == NULL)
        AXT_CHECK(ax_serialiser_lookup(ax_actor_system(self), e->serialiser, &type) == AX_OK);
    e->st = type != NULL ? ax_net_msg_deserialise(*nm, type, &e->msg) : AX_ENOTFOUND;
    /* Last: the test reads the entry once it sees the count. */
    atomic_fetch_add(&node->n, 1);
    sem_post(&node->got);
    return AX_OK; /* the runtime releases *nm */
}

static const ax_actor_vtable_t node_vtable = {
    .name = "test.node",
    .size = sizeof(node_actor_t),
    .init = node_init,
    .receive_local = node_local,
    .receive_network = node_network,
};

static node_t *node_new(const ax_msg_type_t *type)
{
    node_t *n = calloc(1, sizeof(*n));

    cr_assert_not_null(n);
    n->type = type;
    sem_init(&n->got, 0, 0);
    return n;
}

static void node_free(node_t *n)
{
    for (size_t i = 0; i < NODE_MAX; i++)
        ax_msg_release(&n->e[i].msg);
    sem_destroy(&n->got);
    free(n);
}

static ax_ref_t node_spawn(ax_system_t *sys, node_t *n)
{
    ax_ref_t r;

    cr_assert_eq(ax_spawn(sys, &node_vtable, n, &r), AX_OK);
    return r;
}

/* ---- sending ---------------------------------------------------------- */

/* A test's cast: a system of 2 workers, a sender and a receiver that
 * decodes as `type`. */
typedef struct pair {
    ax_system_t *sys;
    node_t *snode, *rnode;
    ax_ref_t sender, receiver;
} pair_t;

static pair_t pair_new(const ax_msg_type_t *type)
{
    pair_t p;

    p.sys = axt_system(2);
    p.snode = node_new(NULL);
    p.rnode = node_new(type);
    p.sender = node_spawn(p.sys, p.snode);
    p.receiver = node_spawn(p.sys, p.rnode);
    return p;
}

static void pair_free(pair_t *p)
{
    axt_shutdown(&p->sys);
    node_free(p->snode);
    node_free(p->rnode);
    AXT_ASSERT_NO_BAD();
}

/* Send msg as type from the sender to the receiver; wait until the
 * receiver has handled it and return its entry. */
static rx_entry_t *round_trip(pair_t *p, const ax_msg_type_t *type, const ax_msg_t *msg)
{
    uint64_t i = atomic_load(&p->rnode->n);
    ax_status_t st = axt_tell_serialised_from(p->sender, p->receiver, type, msg);

    cr_assert_eq(st, AX_OK, "tell_serialised: %s (%s)", ax_status_name(st), ax_error_detail());
    AXT_WAIT_SEM(&p->rnode->got);
    cr_assert_eq(atomic_load(&p->rnode->n), i + 1);
    return &p->rnode->e[i];
}

static void release_msg(ax_msg_t *m)
{
    ax_msg_release(&m);
}

/* ---- bytes ------------------------------------------------------------ */

static void check_bytes_round_trip(const ax_msg_type_t *decode_as, size_t len)
{
    pair_t p = pair_new(decode_as);
    unsigned char *data = malloc(len ? len : 1);
    ax_msg_t *m = NULL;
    rx_entry_t *e;
    const ax_bytes_msg_t *b;

    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 8));
    cr_assert_eq(ax_bytes_msg_new(data, len, &m), AX_OK);
    e = round_trip(&p, &ax_bytes_type, m);
    cr_assert_eq(e->serialiser, AX_SER_BYTES);
    cr_assert_eq(e->st, AX_OK, "deserialise: %s", ax_status_name(e->st));
    cr_assert_eq(e->msg->type, decode_as);
    b = (const ax_bytes_msg_t *)e->msg;
    cr_assert_eq(b->len, len);
    cr_assert(len == 0 || memcmp(b->data, data, len) == 0, "the bytes differ");
    release_msg(m);
    free(data);
    pair_free(&p);
}

Test(serialisers, bytes_round_trip)
{
    check_bytes_round_trip(&ax_bytes_type, 100);
}

Test(serialisers, empty_bytes_round_trip)
{
    check_bytes_round_trip(&ax_bytes_type, 0);
}

/* 1 MiB with the default 128 KiB chunks: a chain of leases. */
Test(serialisers, one_mib_bytes_round_trip)
{
    check_bytes_round_trip(&ax_bytes_type, (size_t)1 << 20);
}

Test(serialisers, one_mib_bytes_view_round_trip)
{
    check_bytes_round_trip(&ax_bytes_view_type, (size_t)1 << 20);
}

/* The copying type owns its bytes: nothing points into the payload. */
Test(serialisers, bytes_type_copies_out_of_the_payload)
{
    pair_t p = pair_new(&ax_bytes_type);
    ax_msg_t *m = NULL;
    rx_entry_t *e;
    const ax_bytes_msg_t *b;

    cr_assert_eq(ax_bytes_msg_new("copy me", 7, &m), AX_OK);
    e = round_trip(&p, &ax_bytes_type, m);
    b = (const ax_bytes_msg_t *)e->msg;
    cr_assert_not_null(e->pl_lo);
    cr_assert(b->data < e->pl_lo || b->data >= e->pl_hi, "a copy must not point into the payload");
    cr_assert_eq(b->hold.chunk, NULL, "a copy holds no lease");
    cr_assert_eq(memcmp(b->data, "copy me", 7), 0);
    release_msg(m);
    pair_free(&p);
}

/* ---- the zero-copy views ---------------------------------------------- */

/*
 * A bytes view points into the NetMessage's payload, and holds it: after
 * the runtime released the NetMessage, the sender writes a second message
 * of the same size. Without the hold its chunk would be unleased and the
 * encoder would write over the first message's bytes from the start.
 */
Test(serialisers, bytes_view_points_into_the_payload_and_holds_it)
{
    pair_t p = pair_new(&ax_bytes_view_type);
    static const char first[] = "the first message, kept as a view";
    static const char second[] = "THE SECOND MESSAGE, SAME LENGTH!!";
    ax_msg_t *m1 = NULL, *m2 = NULL, *view;
    rx_entry_t *e;
    const ax_bytes_msg_t *b;

    _Static_assert(sizeof first == sizeof second, "same size");
    cr_assert_eq(ax_bytes_msg_new(first, sizeof first, &m1), AX_OK);
    cr_assert_eq(ax_bytes_msg_new(second, sizeof second, &m2), AX_OK);
    e = round_trip(&p, &ax_bytes_type, m1);
    cr_assert_eq(e->st, AX_OK);
    view = e->msg;
    e->msg = NULL;
    b = (const ax_bytes_msg_t *)view;
    cr_assert_eq(view->type, &ax_bytes_view_type);
    cr_assert_not_null(e->pl_lo, "a small payload is one slice");
    cr_assert(b->data >= e->pl_lo && b->data + b->len <= e->pl_hi,
              "the view's data must point into the payload lease");
    cr_assert_not_null(b->hold.chunk, "the view holds the payload");
    /* A barrier: the receiver's next job runs after the runtime released
     * the NetMessage. */
    axt_flush(p.receiver);

    /* The NetMessage is gone (the runtime released it after the handler);
     * a second message from the same pool must not land on the view. */
    e = round_trip(&p, &ax_bytes_type, m2);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(memcmp(b->data, first, sizeof first), 0, "the held bytes were overwritten");
    cr_assert_eq(memcmp(((const ax_bytes_msg_t *)e->msg)->data, second, sizeof second), 0);
    release_msg(view);
    release_msg(m1);
    release_msg(m2);
    pair_free(&p);
}

/* Once the last view is released, the sender's chunk is unleased again. */
Test(serialisers, releasing_the_view_unleases_the_chunk)
{
    pair_t p = pair_new(&ax_string_view_type);
    ax_msg_t *m = NULL;
    ax_buffer_pool_stats_t ps;
    rx_entry_t *e;
    size_t big = 100 * 1024; /* most of a default 128 KiB chunk */
    char *text = malloc(big + 1);

    memset(text, 'v', big);
    text[big] = '\0';
    cr_assert_eq(ax_string_msg_new(text, &m), AX_OK);
    e = round_trip(&p, &ax_string_type, m);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(((ax_string_msg_t *)e->msg)->len, big);
    cr_assert_eq(memcmp(((ax_string_msg_t *)e->msg)->data, text, big), 0);
    /* A second big message does not fit behind the held one: the first
     * chunk is retired, and leased while the view lives. */
    e = round_trip(&p, &ax_string_type, m);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(axt_buffer_stats(p.sender, &ps), AX_OK);
    cr_assert_eq(ps.chunks_leased, 1, "the first view holds its chunk");
    ax_msg_release(&p.rnode->e[0].msg);
    cr_assert_eq(axt_buffer_stats(p.sender, &ps), AX_OK);
    cr_assert_eq(ps.chunks_leased, 0, "released views leave no lease");
    release_msg(m);
    free(text);
    pair_free(&p);
}

/* ---- strings ---------------------------------------------------------- */

Test(serialisers, string_round_trip)
{
    pair_t p = pair_new(&ax_string_type);
    static const char text[] = "h\xc3\xa9llo, w\xc3\xb6rld";
    ax_msg_t *m = NULL;
    rx_entry_t *e;
    const ax_string_msg_t *s;

    cr_assert_eq(ax_string_msg_new(text, &m), AX_OK);
    e = round_trip(&p, &ax_string_type, m);
    cr_assert_eq(e->serialiser, AX_SER_STRING);
    cr_assert_eq(e->st, AX_OK);
    s = (const ax_string_msg_t *)e->msg;
    cr_assert_eq(s->len, strlen(text));
    cr_assert_eq(memcmp(s->data, text, s->len), 0);
    release_msg(m);
    pair_free(&p);
}

Test(serialisers, empty_string_round_trip)
{
    pair_t p = pair_new(&ax_string_view_type);
    ax_msg_t *m = NULL;
    rx_entry_t *e;

    cr_assert_eq(ax_string_msg_new("", &m), AX_OK);
    e = round_trip(&p, &ax_string_type, m);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(((const ax_string_msg_t *)e->msg)->len, 0);
    release_msg(m);
    pair_free(&p);
}

Test(serialisers, string_view_points_into_the_payload)
{
    pair_t p = pair_new(&ax_string_view_type);
    ax_msg_t *m = NULL;
    rx_entry_t *e;
    const ax_string_msg_t *s;

    cr_assert_eq(ax_string_msg_new("zero copy", &m), AX_OK);
    e = round_trip(&p, &ax_string_type, m);
    cr_assert_eq(e->st, AX_OK);
    s = (const ax_string_msg_t *)e->msg;
    cr_assert_eq(e->msg->type, &ax_string_view_type);
    cr_assert(s->data >= e->pl_lo && s->data + s->len <= e->pl_hi);
    cr_assert_eq(s->len, 9);
    cr_assert_eq(memcmp(s->data, "zero copy", 9), 0);
    release_msg(m);
    pair_free(&p);
}

/* ---- u64 ---------------------------------------------------------------- */

Test(serialisers, u64_round_trip_edges)
{
    static const uint64_t values[] = {0, 1, 127, 128, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    pair_t p = pair_new(&ax_u64_type);

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        ax_msg_t *m = NULL;
        rx_entry_t *e;

        cr_assert_eq(ax_u64_msg_new(values[i], &m), AX_OK);
        e = round_trip(&p, &ax_u64_type, m);
        cr_assert_eq(e->serialiser, AX_SER_U64);
        cr_assert_eq(e->st, AX_OK);
        cr_assert_eq(((ax_u64_msg_t *)e->msg)->value, values[i], "value %zu: got %llu", i,
                     (unsigned long long)((ax_u64_msg_t *)e->msg)->value);
        release_msg(m);
    }
    pair_free(&p);
}

/* ---- any msgpack object ------------------------------------------------- */

/* A nested map with every kind of msgpack value. */
static void pack_sample(msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "axon", 4);
    msgpack_pack_str_with_body(&pk, "blob", 4);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\xff", 3);
    msgpack_pack_str_with_body(&pk, "ints", 4);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_int64(&pk, 0);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_int64(&pk, -129);
    msgpack_pack_int64(&pk, INT64_MIN);
    msgpack_pack_uint64(&pk, 65536);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_str_with_body(&pk, "floats", 6);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_float(&pk, 0.25f);
    msgpack_pack_double(&pk, -1.5e300);
    msgpack_pack_str_with_body(&pk, "flags", 5);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "nested", 6);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "deep", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_map(&pk, 0);
}

/* The object packs back to exactly the bytes it was made from. */
static void assert_packs_to(const msgpack_object *obj, const msgpack_sbuffer *want)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(msgpack_pack_object(&pk, *obj), 0);
    cr_assert_eq(sb.size, want->size);
    cr_assert_eq(memcmp(sb.data, want->data, sb.size), 0, "the object changed on the way");
    msgpack_sbuffer_destroy(&sb);
}

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];

        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    return NULL;
}

static void check_object_round_trip(const ax_msg_type_t *decode_as)
{
    pair_t p = pair_new(decode_as);
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    ax_msg_t *m = NULL;
    rx_entry_t *e;
    const msgpack_object *obj, *v;

    pack_sample(&sb);
    msgpack_unpacked_init(&up);
    cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(ax_object_msg_new(&up.data, &m), AX_OK);
    msgpack_unpacked_destroy(&up); /* the message has its own deep copy */
    e = round_trip(&p, &ax_object_type, m);
    cr_assert_eq(e->serialiser, AX_SER_MSGPACK);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(e->msg->type, decode_as);
    obj = &((const ax_object_msg_t *)e->msg)->obj;
    assert_packs_to(obj, &sb);
    cr_assert_eq(obj->type, MSGPACK_OBJECT_MAP);
    v = map_get(obj, "ints");
    cr_assert(v != NULL && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 6);
    cr_assert_eq(v->via.array.ptr[3].via.i64, INT64_MIN);
    cr_assert_eq(v->via.array.ptr[5].via.u64, UINT64_MAX);
    v = map_get(obj, "floats");
    cr_assert_eq(v->via.array.ptr[0].type, MSGPACK_OBJECT_FLOAT32);
    cr_assert_eq(v->via.array.ptr[1].via.f64, -1.5e300);
    v = map_get(obj, "name");
    cr_assert(v != NULL && v->type == MSGPACK_OBJECT_STR);
    if (decode_as == &ax_object_view_type)
        cr_assert((const unsigned char *)v->via.str.ptr >= e->pl_lo &&
                      (const unsigned char *)v->via.str.ptr < e->pl_hi,
                  "a view's strings point into the payload");
    else
        cr_assert((const unsigned char *)v->via.str.ptr < e->pl_lo ||
                      (const unsigned char *)v->via.str.ptr >= e->pl_hi,
                  "a copy's strings do not point into the payload");
    release_msg(m);
    msgpack_sbuffer_destroy(&sb);
    pair_free(&p);
}

Test(serialisers, msgpack_object_round_trip)
{
    check_object_round_trip(&ax_object_type);
}

Test(serialisers, msgpack_object_view_round_trip)
{
    check_object_round_trip(&ax_object_view_type);
}

/* ---- a user struct ------------------------------------------------------ */

Test(serialisers, user_struct_round_trip)
{
    pair_t p = pair_new(NULL); /* the receiver finds the type by its id */
    ax_msg_t *m = NULL;
    rx_entry_t *e;
    const order_t *o;
    static const char note[] = "leave at the door \xe2\x9c\x93";

    cr_assert_eq(ax_serialiser_register(p.sys, &order_type), AX_OK);
    cr_assert_eq(order_make(42, -7, 19.99, true, note, strlen(note), &m), AX_OK);
    e = round_trip(&p, &order_type, m);
    cr_assert_eq(e->serialiser, ORDER_SER_ID);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(e->msg->type, &order_type);
    o = (const order_t *)e->msg;
    cr_assert_eq(o->id, 42);
    cr_assert_eq(o->qty, -7);
    cr_assert_eq(o->price, 19.99);
    cr_assert(o->urgent);
    cr_assert_str_eq(o->note, note);
    cr_assert_neq(o, (const order_t *)m, "a new message, not the sender's");
    release_msg(m);
    ax_msg_release(&p.rnode->e[0].msg);
    cr_assert_eq(atomic_load(&order_allocs), 2);
    cr_assert_eq(atomic_load(&order_releases), 2);
    pair_free(&p);
}

/* An empty note and extreme values. */
Test(serialisers, user_struct_edges_round_trip)
{
    pair_t p = pair_new(&order_type);
    ax_msg_t *m = NULL;
    const order_t *o;

    cr_assert_eq(order_make(UINT64_MAX, INT64_MIN, -0.0, false, "", 0, &m), AX_OK);
    o = (const order_t *)round_trip(&p, &order_type, m)->msg;
    cr_assert_not_null(o);
    cr_assert_eq(o->id, UINT64_MAX);
    cr_assert_eq(o->qty, INT64_MIN);
    cr_assert(o->price == 0.0 && signbit(o->price));
    cr_assert(!o->urgent);
    cr_assert_str_eq(o->note, "");
    release_msg(m);
    pair_free(&p);
}

/* ---- deserialising with the wrong type -------------------------------- */

/* AX_ETYPE changes nothing: the same NetMessage then decodes as the right
 * type. */
Test(serialisers, wrong_type_then_right_type)
{
    pair_t p = pair_new(&ax_u64_type);
    ax_msg_t *m = NULL;
    rx_entry_t *e;

    p.rnode->wrong = &ax_string_type;
    cr_assert_eq(ax_u64_msg_new(77, &m), AX_OK);
    e = round_trip(&p, &ax_u64_type, m);
    cr_assert_eq(e->wrong_st, AX_ETYPE);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(((ax_u64_msg_t *)e->msg)->value, 77);
    release_msg(m);
    pair_free(&p);
}

/* The view type of another id is also a wrong type. */
Test(serialisers, view_of_another_id_is_the_wrong_type)
{
    pair_t p = pair_new(&ax_string_type);
    ax_msg_t *m = NULL;
    rx_entry_t *e;

    p.rnode->wrong = &ax_bytes_view_type;
    cr_assert_eq(ax_string_msg_new("text, not bytes", &m), AX_OK);
    e = round_trip(&p, &ax_string_type, m);
    cr_assert_eq(e->wrong_st, AX_ETYPE);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(memcmp(((ax_string_msg_t *)e->msg)->data, "text, not bytes", 15), 0);
    release_msg(m);
    pair_free(&p);
}

/* Same id, wrong shape: the deserialiser's AX_EPROTO comes back, and the
 * NetMessage still decodes as the right type afterwards. */
Test(serialisers, wrong_shape_then_right_type)
{
    pair_t p = pair_new(&order_type);
    ax_msg_t *m = NULL;
    rx_entry_t *e;

    p.rnode->wrong = &order_map_type;
    cr_assert_eq(order_make(1, 2, 3.0, false, "x", 1, &m), AX_OK);
    e = round_trip(&p, &order_type, m);
    cr_assert_eq(e->wrong_st, AX_EPROTO);
    cr_assert_eq(e->st, AX_OK);
    cr_assert_eq(((order_t *)e->msg)->id, 1);
    release_msg(m);
    pair_free(&p);
}

/* A type that cannot serialise is refused before anything is written. */
Test(serialisers, tell_serialised_refuses_a_local_only_type)
{
    pair_t p = pair_new(&ax_u64_type);
    ax_msg_t *m = NULL;

    cr_assert_eq(ax_msg_alloc(&axt_job_type, &m), AX_OK);
    cr_assert_eq(axt_tell_serialised_from(p.sender, p.receiver, &axt_job_type, m), AX_EINVAL);
    axt_flush(p.receiver); /* a barrier: nothing reached it */
    cr_assert_eq(atomic_load(&p.rnode->n), 0);
    release_msg(m);
    pair_free(&p);
}

/* ---- the serialiser registry ------------------------------------------ */

static ax_status_t no_deserialise(const msgpack_object *obj, const ax_payload_t *payload, ax_msg_t **out)
{
    (void)obj;
    (void)payload;
    (void)out;
    return AX_EPROTO;
}

Test(registry, builtins_are_registered)
{
    ax_system_t *sys = axt_system(1);
    const ax_msg_type_t *t = NULL;

    cr_assert_eq(ax_serialiser_lookup(sys, AX_SER_BYTES, &t), AX_OK);
    cr_assert_eq(t, &ax_bytes_type);
    cr_assert_eq(ax_serialiser_lookup(sys, AX_SER_STRING, &t), AX_OK);
    cr_assert_eq(t, &ax_string_type);
    cr_assert_eq(ax_serialiser_lookup(sys, AX_SER_U64, &t), AX_OK);
    cr_assert_eq(t, &ax_u64_type);
    cr_assert_eq(ax_serialiser_lookup(sys, AX_SER_MSGPACK, &t), AX_OK);
    cr_assert_eq(t, &ax_object_type);
    axt_shutdown(&sys);
}

Test(registry, lookup_of_an_unknown_id_is_not_found)
{
    ax_system_t *sys = axt_system(1);
    const ax_msg_type_t *t = &order_type;

    cr_assert_eq(ax_serialiser_lookup(sys, 0, &t), AX_ENOTFOUND);
    cr_assert_eq(ax_serialiser_lookup(sys, 5, &t), AX_ENOTFOUND);
    cr_assert_eq(ax_serialiser_lookup(sys, ORDER_SER_ID, &t), AX_ENOTFOUND);
    cr_assert_eq(ax_serialiser_lookup(sys, UINT64_MAX, &t), AX_ENOTFOUND);
    cr_assert_eq(t, &order_type, "a failed lookup leaves *type alone");
    axt_shutdown(&sys);
}

Test(registry, user_type_registers_and_is_found)
{
    ax_system_t *sys = axt_system(1);
    const ax_msg_type_t *t = NULL;

    cr_assert_eq(ax_serialiser_register(sys, &order_type), AX_OK);
    cr_assert_eq(ax_serialiser_lookup(sys, ORDER_SER_ID, &t), AX_OK);
    cr_assert_eq(t, &order_type);
    /* The same type again is not a collision. */
    cr_assert_eq(ax_serialiser_register(sys, &order_type), AX_OK);
    cr_assert_eq(ax_serialiser_register(sys, &ax_bytes_type), AX_OK);
    axt_shutdown(&sys);
}

Test(registry, collision_with_a_user_id_is_eexist)
{
    ax_system_t *sys = axt_system(1);
    const ax_msg_type_t clash = {
        .name = "test.clash", .size = sizeof(order_t), .serialiser_id = ORDER_SER_ID,
        .serialise = order_serialise, .deserialise = no_deserialise};
    const ax_msg_type_t *t = NULL;

    cr_assert_eq(ax_serialiser_register(sys, &order_type), AX_OK);
    cr_assert_eq(ax_serialiser_register(sys, &clash), AX_EEXIST);
    cr_assert_eq(ax_serialiser_lookup(sys, ORDER_SER_ID, &t), AX_OK);
    cr_assert_eq(t, &order_type, "the first type keeps the id");
    axt_shutdown(&sys);
}

Test(registry, collision_with_a_builtin_id_is_eexist)
{
    ax_system_t *sys = axt_system(1);
    const ax_msg_type_t *t = NULL;

    for (uint64_t id = AX_SER_BYTES; id <= AX_SER_MSGPACK; id++) {
        const ax_msg_type_t clash = {
            .name = "test.clash", .size = sizeof(order_t), .serialiser_id = id,
            .serialise = order_serialise, .deserialise = no_deserialise};

        cr_assert_eq(ax_serialiser_register(sys, &clash), AX_EEXIST, "id %llu", (unsigned long long)id);
    }
    /* The views share their ids with the copying types, which own them. */
    cr_assert_eq(ax_serialiser_register(sys, &ax_bytes_view_type), AX_EEXIST);
    cr_assert_eq(ax_serialiser_register(sys, &ax_string_view_type), AX_EEXIST);
    cr_assert_eq(ax_serialiser_register(sys, &ax_object_view_type), AX_EEXIST);
    cr_assert_eq(ax_serialiser_lookup(sys, AX_SER_BYTES, &t), AX_OK);
    cr_assert_eq(t, &ax_bytes_type);
    axt_shutdown(&sys);
}

Test(registry, types_that_cannot_serialise_are_invalid)
{
    ax_system_t *sys = axt_system(1);
    const ax_msg_type_t id0 = {.name = "id0", .size = sizeof(order_t), .serialiser_id = 0,
                               .serialise = order_serialise, .deserialise = no_deserialise};
    const ax_msg_type_t no_ser = {.name = "no-ser", .size = sizeof(order_t),
                                  .serialiser_id = AX_SER_USER_MIN + 1, .deserialise = no_deserialise};
    const ax_msg_type_t no_deser = {.name = "no-deser", .size = sizeof(order_t),
                                    .serialiser_id = AX_SER_USER_MIN + 2, .serialise = order_serialise};
    const ax_msg_type_t *t = NULL;

    cr_assert_eq(ax_serialiser_register(sys, &id0), AX_EINVAL);
    cr_assert_eq(ax_serialiser_register(sys, &no_ser), AX_EINVAL);
    cr_assert_eq(ax_serialiser_register(sys, &no_deser), AX_EINVAL);
    cr_assert_eq(ax_serialiser_register(sys, NULL), AX_EINVAL);
    cr_assert_str_neq(ax_error_detail(), "");
    cr_assert_eq(ax_serialiser_lookup(sys, AX_SER_USER_MIN + 1, &t), AX_ENOTFOUND);
    cr_assert_eq(ax_serialiser_lookup(sys, AX_SER_USER_MIN + 2, &t), AX_ENOTFOUND);
    axt_shutdown(&sys);
}

/* Each system has its own registry. */
Test(registry, registries_are_per_system)
{
    ax_system_t *a = axt_system(1), *b = axt_system(1);
    const ax_msg_type_t clash = {
        .name = "test.clash", .size = sizeof(order_t), .serialiser_id = ORDER_SER_ID,
        .serialise = order_serialise, .deserialise = no_deserialise};
    const ax_msg_type_t *t = NULL;

    cr_assert_eq(ax_serialiser_register(a, &order_type), AX_OK);
    cr_assert_eq(ax_serialiser_lookup(b, ORDER_SER_ID, &t), AX_ENOTFOUND);
    cr_assert_eq(ax_serialiser_register(b, &clash), AX_OK);
    cr_assert_eq(ax_serialiser_lookup(a, ORDER_SER_ID, &t), AX_OK);
    cr_assert_eq(t, &order_type);
    cr_assert_eq(ax_serialiser_lookup(b, ORDER_SER_ID, &t), AX_OK);
    cr_assert_eq(t, &clash);
    axt_shutdown(&a);
    axt_shutdown(&b);
}
