/*
 * bench_registry: what the name registry's mutex costs a lookup, to decide
 * whether lookups need lock-free readers (actor/NOTES.md).
 *
 *   lookup           ax_lookup of one of 1000 registered names (mutex,
 *                    ck_ht_get_spmc under it), by 1 and by 2 threads at once
 *   bare_ck_ht       baseline: ck_ht_get_spmc on a table of the same 1000
 *                    names with no lock at all (the most a lock-free reader
 *                    could save, before the epoch section it would need)
 *
 * Each line reports ns per lookup per thread, the median of 5 trials.
 * Usage: bench_registry [scale]
 */
#define BENCH_NAME "bench_registry"
#include "bench.h"

#include <pthread.h>
#include <string.h>

#include <ck_ht.h>

#include "common/ht_alloc.h"

#define NAMES 1000
#define TRIALS 5

typedef struct ping {
    ax_actor_t actor;
} ping_t;

static ax_status_t ping_receive(ax_actor_t *self, ax_msg_t **msg)
{
    (void)self;
    (void)msg;
    return AX_OK;
}

static const ax_actor_vtable_t ping_vtable = {
    .name = "bench.named", .size = sizeof(ping_t), .receive_local = ping_receive};

static char names[NAMES][16];
static ax_system_t *sys;
static ck_ht_t bare;
static size_t ops;

typedef struct job {
    int bare;
    unsigned seed;
    double ns;
    pthread_t t;
} job_t;

static void *run(void *arg)
{
    job_t *j = arg;
    unsigned x = j->seed;
    double t0 = bench_now_ns();
    uintptr_t sink = 0;

    for (size_t i = 0; i < ops; i++) {
        const char *name;

        x = x * 1103515245u + 12345u;
        name = names[(x >> 8) % NAMES];
        if (j->bare) {
            ck_ht_entry_t e;
            ck_ht_hash_t h;
            uint16_t len = (uint16_t)strlen(name);

            ck_ht_hash(&h, &bare, name, len);
            ck_ht_entry_key_set(&e, name, len);
            if (!ck_ht_get_spmc(&bare, h, &e))
                bench_die("ck_ht_get_spmc", AX_ENOTFOUND);
            sink += (uintptr_t)ck_ht_entry_value(&e);
        } else {
            ax_ref_t ref;
            ax_status_t st = ax_lookup(sys, name, &ref);

            if (st != AX_OK)
                bench_die("ax_lookup", st);
            sink += ref.id;
        }
    }
    j->ns = (bench_now_ns() - t0) / (double)ops;
    return (void *)sink;
}

/* ns per lookup per thread with n threads at once, the median of TRIALS. */
static double measure(int is_bare, int n)
{
    double v[TRIALS];

    for (int t = 0; t < TRIALS; t++) {
        job_t j[2];
        double sum = 0;

        for (int i = 0; i < n; i++) {
            j[i] = (job_t){.bare = is_bare, .seed = 7u + (unsigned)(i * 31 + t)};
            if (pthread_create(&j[i].t, NULL, run, &j[i]) != 0)
                bench_die("pthread_create", AX_ENOMEM);
        }
        for (int i = 0; i < n; i++) {
            pthread_join(j[i].t, NULL);
            sum += j[i].ns;
        }
        v[t] = sum / n;
    }
    return bench_median(v, TRIALS);
}

int main(int argc, char **argv)
{
    bench_set_scale(argc > 1 ? argv[1] : NULL);
    ops = bench_scaled(2000000);
    sys = bench_system(2);
    if (!ck_ht_init(&bare, CK_HT_MODE_BYTESTRING, NULL, &ax__ht_allocator, 64, 0x9e3779b97f4a7c15ull))
        bench_die("ck_ht_init", AX_ENOMEM);
    for (int i = 0; i < NAMES; i++) {
        ax_ref_t ref;
        ax_status_t st;
        ck_ht_entry_t e;
        ck_ht_hash_t h;
        uint16_t len;

        snprintf(names[i], sizeof names[i], "actor-%d", i);
        len = (uint16_t)strlen(names[i]);
        if ((st = ax_spawn(sys, &ping_vtable, NULL, &ref)) != AX_OK)
            bench_die("ax_spawn", st);
        if ((st = ax_register(sys, ref, names[i])) != AX_OK)
            bench_die("ax_register", st);
        ck_ht_hash(&h, &bare, names[i], len);
        ck_ht_entry_set(&e, h, names[i], len, names[i]);
        if (!ck_ht_put_spmc(&bare, h, &e))
            bench_die("ck_ht_put_spmc", AX_ENOMEM);
    }
    for (int n = 1; n <= 2; n++) {
        double base = measure(1, n), lk = measure(0, n);

        printf("{\"bench\":\"registry\",\"case\":\"bare_ck_ht\",\"baseline\":true,\"threads\":%d,"
               "\"names\":%d,\"ns_per_lookup\":%.1f}\n", n, NAMES, base);
        printf("{\"bench\":\"registry\",\"case\":\"lookup\",\"threads\":%d,\"names\":%d,"
               "\"ns_per_lookup\":%.1f,\"ratio_to_bare\":%.2f}\n", n, NAMES, lk, lk / base);
    }
    ck_ht_destroy(&bare);
    bench_system_end(&sys);
    return 0;
}
