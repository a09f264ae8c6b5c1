/*
 * serialised_local: two actors exchange serialised messages in one system.
 *
 * A sensor sends three readings to a logger with ax_tell_serialised; the
 * logger decodes each one and answers with a serialised count. The sensor
 * has its own small BufferConfig, set in on_start.
 *
 * Which send to use:
 *   ax_tell             moves the message by pointer. To a local actor it is
 *                       the cheapest send there is: nothing is copied or
 *                       encoded. Use it by default. To a remote ref the
 *                       network dispatcher serialises the message later.
 *   ax_tell_serialised  encodes the message now, on the sender's thread,
 *                       into the sender's own buffer pool; the receiver gets
 *                       a NetMessage and decodes it only if and when it
 *                       wants to. Use it to keep encoding work off the
 *                       dispatcher, to bound what an actor may have in
 *                       flight (its BufferConfig), or to encode once and send
 *                       to many (ax_preserialise). Locally it costs an encode
 *                       and a decode that ax_tell would not.
 */
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include "axon/axon.h"

/* ---- a message type with its own serialiser ---------------------------- */

/* A reading travels as the msgpack array [seq, sensor, celsius]. */
typedef struct reading {
    ax_msg_t hdr;
    uint64_t seq;
    char sensor[32];
    double celsius;
} reading_t;

/* User serialiser ids start at AX_SER_USER_MIN (1024); 1..1023 are Axon's. */
#define READING_ID (AX_SER_USER_MIN + 1)

static ax_status_t reading_serialise(const ax_msg_t *msg, msgpack_packer *pk)
{
    const reading_t *r = (const reading_t *)msg;
    int rc = msgpack_pack_array(pk, 3);

    rc = rc ? rc : msgpack_pack_uint64(pk, r->seq);
    rc = rc ? rc : msgpack_pack_str_with_body(pk, r->sensor, strlen(r->sensor));
    rc = rc ? rc : msgpack_pack_double(pk, r->celsius);
    return rc == 0 ? AX_OK : AX_ENOBUFS; /* a pack fails only when the pool is full */
}

static ax_status_t reading_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                       ax_msg_t **out);

static const ax_msg_type_t reading_type = {
    .name = "example.reading",
    .size = sizeof(reading_t),
    .serialiser_id = READING_ID,
    .serialise = reading_serialise,
    .deserialise = reading_deserialise,
};

/* Runs on the receiver's thread, when it asks. obj's strings point into
 * the received bytes, valid during this call only: copy what you keep. */
static ax_status_t reading_deserialise(const msgpack_object *obj, const ax_payload_t *payload,
                                       ax_msg_t **out)
{
    const msgpack_object *f = obj->via.array.ptr;
    reading_t *r;
    ax_status_t st;

    (void)payload;
    if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 3 ||
        f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].type != MSGPACK_OBJECT_STR ||
        f[1].via.str.size >= sizeof r->sensor || f[2].type != MSGPACK_OBJECT_FLOAT64)
        return AX_EPROTO;
    st = ax_msg_alloc(&reading_type, out); /* zeroed, so the string ends in NUL */
    if (st != AX_OK)
        return st;
    r = (reading_t *)*out;
    r->seq = f[0].via.u64;
    memcpy(r->sensor, f[1].via.str.ptr, f[1].via.str.size);
    r->celsius = f[2].via.f64;
    return AX_OK;
}

/* ---- the logger: decodes readings, answers with a count ---------------- */

typedef struct logger {
    ax_actor_t actor;
    uint64_t logged;
} logger_t;

static ax_status_t logger_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    logger_t *lg = (logger_t *)self;
    ax_msg_t *msg = NULL, *count = NULL;
    ax_ref_t from;
    const reading_t *r;

    /* Decoding happens here, on the logger's thread. AX_ETYPE would mean
     * another serialiser id: the NetMessage is untouched, try another. */
    if (ax_net_msg_deserialise(*nm, &reading_type, &msg) != AX_OK)
        return AX_EPROTO;
    r = (const reading_t *)msg;
    printf("logger: reading %llu from %s: %.1f C\n", (unsigned long long)r->seq, r->sensor,
           r->celsius);
    ax_msg_release(&msg);

    /* Answer whoever sent it, with the built-in u64 type. The logger has
     * no BufferConfig of its own: its pool comes from the system's. */
    lg->logged++;
    if (ax_net_msg_sender(self, *nm, &from) == AX_OK && ax_u64_msg_new(lg->logged, &count) == AX_OK) {
        ax_status_t st = ax_tell_serialised(self, from, &ax_u64_type, count);

        if (st != AX_OK)
            fprintf(stderr, "logger: reply: %s\n", ax_status_str(st));
        ax_msg_release(&count); /* tell_serialised only read it */
    }
    return AX_OK; /* the runtime releases *nm and with it the sender's bytes */
}

static const ax_actor_vtable_t logger_vtable = {
    .name = "logger",
    .size = sizeof(logger_t),
    .receive_network = logger_network,
};

/* ---- the sensor: its own pool, sends readings, counts the answers -------- */

#define READINGS 3

typedef struct sensor_args {
    ax_ref_t logger;
    sem_t done; /* posted when every reading was answered, or on failure */
    int failed;
} sensor_args_t;

typedef struct sensor {
    ax_actor_t actor;
    sensor_args_t *args;
} sensor_t;

static ax_status_t sensor_init(ax_actor_t *self, void *arg)
{
    ((sensor_t *)self)->args = arg;
    return AX_OK;
}

static void print_pool(ax_actor_t *self, const char *when)
{
    ax_buffer_pool_stats_t st;

    if (ax_actor_buffer_stats(self, &st) == AX_OK)
        printf("sensor pool %s: %zu chunks (%zu bytes), %zu free, %zu writing, %zu leased\n", when,
               st.chunks_allocated, st.bytes_allocated, st.chunks_free, st.chunks_active,
               st.chunks_leased);
}

static void sensor_start(ax_actor_t *self)
{
    sensor_t *s = (sensor_t *)self;
    /* A small pool of its own: 4 KiB chunks, at most 4 of them. What the
     * sensor may have in flight is bounded by this, whatever the system's
     * configuration says. It must come before the first tell_serialised. */
    const ax_buffer_config_t cfg = {
        .chunk_size = 4096, .initial_chunk_count = 1, .max_chunk_count = 4,
        .encode_buf_min_free_space = 64,
    };
    ax_status_t st = ax_actor_init_buffers(self, &cfg);

    if (st != AX_OK) {
        fprintf(stderr, "sensor: init_buffers: %s\n", ax_status_str(st));
        s->args->failed = 1;
        sem_post(&s->args->done);
        return;
    }
    for (uint64_t i = 1; i <= READINGS; i++) {
        /* The message may live on the stack: tell_serialised encodes it now
         * and leaves it with the caller. */
        reading_t r = {.seq = i, .celsius = 20.0 + 0.5 * (double)i};

        ax_msg_init(&r.hdr, &reading_type);
        snprintf(r.sensor, sizeof r.sensor, "greenhouse-%llu", (unsigned long long)i % 2);
        st = ax_tell_serialised(self, s->args->logger, &reading_type, &r.hdr);
        if (st != AX_OK) { /* AX_ENOBUFS: the pool is full, retry later */
            fprintf(stderr, "sensor: send %llu: %s\n", (unsigned long long)i, ax_status_str(st));
            s->args->failed = 1;
            sem_post(&s->args->done);
            return;
        }
    }
    print_pool(self, "after sending");
}

static ax_status_t sensor_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    sensor_t *s = (sensor_t *)self;
    ax_msg_t *msg = NULL;
    uint64_t n;

    if (ax_net_msg_deserialise(*nm, &ax_u64_type, &msg) != AX_OK)
        return AX_EPROTO;
    n = ((ax_u64_msg_t *)msg)->value;
    ax_msg_release(&msg);
    printf("sensor: the logger has logged %llu\n", (unsigned long long)n);
    if (n == READINGS) {
        /* The readings were small: they share the chunk still being
         * written. Each chunk is reused once every NetMessage pointing
         * into it has been released, on whatever thread. */
        print_pool(self, "at the end");
        sem_post(&s->args->done);
    }
    return AX_OK;
}

static const ax_actor_vtable_t sensor_vtable = {
    .name = "sensor",
    .size = sizeof(sensor_t),
    .init = sensor_init,
    .on_start = sensor_start,
    .receive_network = sensor_network,
};

int main(void)
{
    ax_system_t *sys = NULL;
    sensor_args_t args = {.failed = 0};
    ax_ref_t sensor;
    ax_status_t st;

    sem_init(&args.done, 0, 0);
    st = ax_system_create(NULL, &sys);
    /* Registering lets a receiver find the type by the id in a message
     * (ax_serialiser_lookup) and refuses a second type with the same id. */
    if (st == AX_OK)
        st = ax_serialiser_register(sys, &reading_type);
    if (st == AX_OK)
        st = ax_spawn(sys, &logger_vtable, NULL, &args.logger);
    if (st == AX_OK)
        st = ax_spawn(sys, &sensor_vtable, &args, &sensor);
    if (st != AX_OK) {
        fprintf(stderr, "setup: %s (%s)\n", ax_status_str(st), ax_error_detail());
        ax_system_destroy(&sys);
        return 1;
    }
    sem_wait(&args.done);
    ax_system_shutdown(sys);
    ax_system_await_termination(sys);
    ax_system_destroy(&sys);
    sem_destroy(&args.done);
    return args.failed;
}
