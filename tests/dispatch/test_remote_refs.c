/*
 * What remote refs make us hold, and what a stale one does.
 *
 * Reply-slot paths. Every remote ask leaves the
 * replier a sender path that was never seen before (the asker's reply
 * slot, with a new generation each time). One million of them, as a
 * replier resolves them, leave the resident set bounded: a reply slot's
 * refs share one entry per slot index, the generation travels in the ref.
 *
 * The bound stated: 1,000,000 distinct reply-slot paths over 64 slot
 * indexes grow RSS by less than 16 MiB (one entry per path, as before,
 * was about 1 KiB each: 1 GiB).
 *
 * Eviction (network.max_remote_refs). Past the cap, a new path takes the
 * entry the clock finds unused; refs to the path it held expire: every
 * use returns AX_ENOTFOUND with a detail, never touches the slot's new
 * path (checked under ASan too). A ref in use, and a message in flight,
 * keep their entry. The million sender paths from a peer are in
 * test_remote_refs_rss.c (its own binary: it tunes ASan's quarantine).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/serial.h"
#include "tests/actor/helpers.h"
#include "tests/dispatch/net_helpers.h"

#define PATHS 1000000u
#define SLOTS 64u
#define RSS_BOUND (16u << 20)

static size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* A reply slot of the system at 127.0.0.1:9 (not ours): docs/wire.md 5.3. */
static ax_path_t reply_path(uint32_t index, uint32_t gen)
{
    ax_path_t p;

    cr_assert_eq(ax_path_parse("tcp://127.0.0.1:9#1", &p), AX_OK);
    p.id = (UINT64_C(1) << 55) | (uint64_t)index << 32 | gen;
    return p;
}

Test(remote_refs, a_million_reply_paths_leave_rss_bounded)
{
    ax_system_t *sys = NULL;
    ax_config_t cfg;
    size_t before, after;
    ax_ref_t first = AX_REF_NULL;

    ax_config_init(&cfg);
    cfg.threads = 1;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_OK);
    /* Warm up the table for the indexes, then measure. */
    for (uint32_t i = 0; i < SLOTS; i++) {
        ax_path_t p = reply_path(i, 1);
        ax_ref_t r;

        cr_assert_eq(ax_ref_from_path(sys, &p, &r), AX_OK);
    }
    before = rss_bytes();
    for (uint32_t n = 0; n < PATHS; n++) {
        ax_path_t p = reply_path(n % SLOTS, 2 + n / SLOTS), back;
        ax_ref_t r;

        cr_assert_eq(ax_ref_from_path(sys, &p, &r), AX_OK, "%s", ax_error_detail());
        if (n == 0)
            first = r;
        /* Each ref still names its own path, generation included. */
        if (n % 9973 == 0) {
            cr_assert_eq(ax_ref_path(r, &back), AX_OK);
            cr_assert_eq(back.id, p.id);
            cr_assert(!ax_ref_eq(r, first) || n == 0, "refs of two generations differ");
        }
    }
    after = rss_bytes();
    cr_assert_lt(after > before ? after - before : 0, RSS_BOUND, "RSS grew by %zu bytes for %u paths",
                 after - before, PATHS);
    ax_system_destroy(&sys);
}

/* ---- eviction ------------------------------------------------------------------ */

/* tcp://127.0.0.1:port/<prefix><i>: a remote path per i. */
static ax_ref_t filler_ref(ax_system_t *sys, uint16_t port, unsigned i)
{
    char name[32];
    ax_ref_t r = AX_REF_NULL;
    ax_path_t p;

    snprintf(name, sizeof name, "filler%u", i);
    cr_assert_eq(nt_port_path(port, name, &p), AX_OK);
    cr_assert_eq(ax_ref_from_path(sys, &p, &r), AX_OK, "filler %u: %s", i, ax_error_detail());
    return r;
}

static ax_system_t *start_with_cap(uint32_t cap)
{
    ax_config_t cfg = nt_config();
    ax_system_t *sys;

    cfg.network.max_remote_refs = cap;
    sys = nt_start(&cfg);
    cr_assert_not_null(sys, "start: %s", ax_error_detail());
    return sys;
}

#define CAP 16u

static uint64_t net_acked(ax_system_t *sys)
{
    ax_net_stats_t ns;

    cr_assert_eq(ax_net_stats(sys, &ns), AX_OK);
    return ns.acked;
}

/*
 * A ref whose entry was evicted: ax_tell, ax_tell_serialised, ax_ask and
 * ax_ref_path return AX_ENOTFOUND with a detail that says what to do, the
 * caller keeps its message, and nothing reaches the actor the ref named,
 * nor the path that took the slot. A new ref from the same path works.
 */
Test(remote_refs, a_stale_ref_returns_enotfound_and_sends_nothing)
{
    ax_system_t *a = start_with_cap(CAP), *b = start_with_cap(CAP);
    nt_node_t x, sender;
    ax_ref_t xref, sref, old, fresh, fillers[4 * CAP];
    ax_path_t p, want;
    ax_future_t *f = NULL;
    ax_system_stats_t st;
    ax_msg_t *m;
    seq_msg_t probe = {.hdr = {.type = &seq_type}, .seq = 99};

    nt_node_setup(&x, NT_SINK);
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &x, &xref), AX_OK);
    cr_assert_eq(ax_register(b, xref, "x"), AX_OK);
    nt_node_setup(&sender, NT_SINK);
    cr_assert_eq(ax_spawn(a, &nt_node_vtable, &sender, &sref), AX_OK);

    old = nt_ref_to(a, nt_port(b), "x");
    cr_assert(!ax_ref_is_null(old));
    cr_assert_eq(nt_send_seq(old, 0), AX_OK);
    WAIT_UNTIL(atomic_load(&x.received) == 1, "the first message did not arrive");
    /* Acked: its frame has been written and released (with its pin). */
    WAIT_UNTIL(net_acked(a) == 1, "the first message was not acked");

    /* 4 x CAP newer paths, never used: the clock goes round and round. */
    for (unsigned i = 0; i < 4 * CAP; i++)
        fillers[i] = filler_ref(a, nt_port(b), i);
    st = axt_stats(a);
    cr_assert_eq(st.remote_refs, CAP, "the table holds %llu entries, cap %u", U(st.remote_refs), CAP);
    cr_assert_geq(st.remote_evicted, 3 * CAP);

    m = seq_new(1);
    ax_error_clear();
    { ax_status_t ts = ax_tell(old, &m, AX_REF_NULL); cr_assert_eq(ts, AX_ENOTFOUND, "%s %s", ax_status_name(ts), ax_error_detail()); }
    cr_assert_not_null(m, "the caller keeps its message");
    cr_assert(strstr(ax_error_detail(), "expired") != NULL && strstr(ax_error_detail(), "ax_ref_from_path") != NULL,
              "detail: %s", ax_error_detail());
    cr_assert_eq(ax_ask(old, &m, 0, &f), AX_ENOTFOUND, "ask: %s", ax_error_detail());
    cr_assert_not_null(m);
    cr_assert_null(f);
    ax_msg_release(&m);
    cr_assert_eq(axt_tell_serialised_from(sref, old, &seq_type, &probe.hdr), AX_ENOTFOUND);
    cr_assert_eq(ax_ref_path(old, &p), AX_ENOTFOUND);

    /* The slots now name the fillers that are still in the table: each
     * live ref still gives its own path, the expired ones say so. */
    for (unsigned i = 0; i < 4 * CAP; i++) {
        char name[32];
        ax_status_t rs = ax_ref_path(fillers[i], &p);

        snprintf(name, sizeof name, "filler%u", i);
        cr_assert_eq(nt_port_path(nt_port(b), name, &want), AX_OK);
        cr_assert(rs == AX_ENOTFOUND || (rs == AX_OK && ax_path_cmp(&p, &want) == 0),
                  "filler %u: %s gave another path", i, ax_status_name(rs));
    }

    /* Asked for again, the path gets a new entry, and it delivers. */
    fresh = nt_ref_to(a, nt_port(b), "x");
    cr_assert(!ax_ref_eq(fresh, old), "a new ref, not the expired one");
    cr_assert_eq(nt_send_seq(fresh, 2), AX_OK);
    WAIT_UNTIL(atomic_load(&x.received) == 2, "the new ref did not deliver");
    axt_sleep_us(100000);
    cr_assert_eq(atomic_load(&x.received), 2, "the stale ref sent something");
    cr_assert_eq(atomic_load(&x.gaps), 1, "seq 1 was refused, 2 came after 0");
    axt_destroy(&a);
    axt_destroy(&b);
}

/*
 * A ref used between evictions keeps its entry: 500 rounds of 8 new
 * paths (250 times the cap of 16) with one send through the same ref in
 * each round; all 500 arrive, in order. A ref made at the start and
 * never used expired meanwhile.
 */
Test(remote_refs, a_ref_in_use_survives_evictions)
{
    ax_system_t *a = start_with_cap(CAP), *b = start_with_cap(CAP);
    const unsigned rounds = 500, per_round = 8;
    nt_node_t x;
    ax_ref_t xref, busy, idle;
    ax_path_t p;
    ax_system_stats_t st;
    unsigned k = 0;

    nt_node_setup(&x, NT_SINK);
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &x, &xref), AX_OK);
    cr_assert_eq(ax_register(b, xref, "x"), AX_OK);
    busy = nt_ref_to(a, nt_port(b), "x");
    idle = nt_ref_to(a, nt_port(b), "idle");
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < per_round; i++)
            filler_ref(a, nt_port(b), k++);
        cr_assert_eq(nt_send_seq(busy, r), AX_OK, "round %u: %s", r, ax_error_detail());
    }
    WAIT_UNTIL(atomic_load(&x.received) == rounds, "%llu of %u arrived", U(atomic_load(&x.received)), rounds);
    cr_assert_eq(atomic_load(&x.gaps) + atomic_load(&x.out_of_order), 0);
    cr_assert_eq(ax_ref_path(idle, &p), AX_ENOTFOUND, "the unused ref should have expired");
    st = axt_stats(a);
    cr_assert_geq(st.remote_evicted, rounds * per_round - CAP);
    cr_assert_leq(st.remote_refs, CAP);
    axt_destroy(&a);
    axt_destroy(&b);
}

/*
 * A handler's lazy sends to one ref travel to the dispatcher in shared
 * envelopes (dispatch/net.c, batch_join), each message with its own pin
 * on the ref's entry. Three handlers of 100 sends each all arrive, in
 * order; once they are acknowledged no pin is left, so churning the
 * table evicts the entry (a pin too many would keep it, one too few
 * would have let it go while frames were in flight).
 */
Test(remote_refs, a_streams_pins_are_all_given_back)
{
    ax_system_t *a = start_with_cap(CAP), *b = start_with_cap(CAP);
    nt_node_t x, sender;
    ax_ref_t xref, sref, busy;
    ax_path_t p;
    seq_stream_t job = {0};

    nt_node_setup(&x, NT_SINK);
    cr_assert_eq(ax_spawn(b, &nt_node_vtable, &x, &xref), AX_OK);
    cr_assert_eq(ax_register(b, xref, "x"), AX_OK);
    nt_node_setup(&sender, NT_SINK);
    cr_assert_eq(ax_spawn(a, &nt_node_vtable, &sender, &sref), AX_OK);
    busy = nt_ref_to(a, nt_port(b), "x");
    for (uint64_t r = 0; r < 3; r++) {
        job.dst = busy;
        job.first = r * 100;
        job.count = 100;
        RUN_ON(sref, seq_stream_send, &job);
    }
    cr_assert_eq(atomic_load(&job.failed), 0, "every send was taken");
    WAIT_UNTIL(atomic_load(&x.received) == 300, "%llu of 300 arrived", U(atomic_load(&x.received)));
    cr_assert_eq(atomic_load(&x.gaps) + atomic_load(&x.out_of_order), 0);
    cr_assert_eq(x.next, 300);
    WAIT_UNTIL(net_acked(a) == 300, "%llu of 300 acknowledged", U(net_acked(a)));
    cr_assert_eq(ax_ref_path(busy, &p), AX_OK, "the entry is still there before the churn");
    for (unsigned i = 0; i < 4 * CAP; i++)
        filler_ref(a, nt_port(b), i);
    cr_assert_eq(ax_ref_path(busy, &p), AX_ENOTFOUND, "a pin was left on the stream's entry");
    axt_destroy(&a);
    axt_destroy(&b);
}

/*
 * Messages in flight pin their entry. Three messages wait for a peer that
 * never answers (nothing listens on its port) while 100 new paths churn a
 * table of 4. When the connection attempts give up, the three reach dead
 * letters with the very ref they were sent to, which still names its path.
 */
Test(remote_refs, messages_in_flight_keep_their_entry)
{
    ax_config_t cfg = nt_config();
    ax_system_t *a;
    nt_dl_t dl = {0};
    ax_ref_t dlr, dead;
    ax_path_t p, want;
    uint16_t port;
    int lfd;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;

    /* A port with nothing behind it: bound, then closed. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    close(lfd);

    cfg.network.max_remote_refs = 4;
    cfg.network.max_retries = 2;
    /* The attempts give up after about 2 s: the churn below runs while the
     * three are still in flight even if this thread is held off the CPU
     * for a while (with 100 ms they gave up after about 0.3 s). */
    cfg.network.backoff_initial_ms = 1000;
    cfg.network.backoff_max_ms = 1000;
    a = nt_start(&cfg);
    cr_assert_not_null(a, "%s", ax_error_detail());
    cr_assert_eq(ax_spawn(a, &nt_dl_vtable, &dl, &dlr), AX_OK);
    ax_set_dead_letter_actor(a, dlr);
    dead = nt_ref_to(a, port, "nobody");
    dl.watch = dead;
    for (uint64_t i = 0; i < 3; i++) {
        ax_status_t st = nt_send_seq(dead, i);

        cr_assert_eq(st, AX_OK, "send %llu: %s: %s", U(i), ax_status_str(st), ax_error_detail());
    }
    for (unsigned i = 0; i < 100; i++)
        filler_ref(a, port, i);
    WAIT_UNTIL(atomic_load(&dl.count) == 3, "%llu dead letters of 3", U(atomic_load(&dl.count)));
    cr_assert_eq(atomic_load(&dl.wrong_recipient), 0, "a dead letter named another ref");
    cr_assert_eq(ax_ref_path(dead, &p), AX_OK, "the entry was evicted while pinned: %s", ax_error_detail());
    cr_assert_eq(nt_port_path(port, "nobody", &want), AX_OK);
    cr_assert_eq(ax_path_cmp(&p, &want), 0);
    cr_assert_eq(nt_dl_status(&dl, AX_ETIMEDOUT) + nt_dl_status(&dl, AX_ECLOSED), 3);
    axt_destroy(&a);
}

/* The key's default, and the loader's checks. */
Test(remote_refs, max_remote_refs_default_and_bounds)
{
    ax_config_t cfg;
    ax_system_t *sys = NULL;

    ax_config_init(&cfg);
    cr_assert_eq(cfg.network.max_remote_refs, 65536, "the documented default");
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { network = {\n  max_remote_refs = 0;\n}; };"), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "<string>:2") != NULL &&
                  strstr(ax_error_detail(), "axon.network.max_remote_refs") != NULL,
              "%s", ax_error_detail());
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { network = { max_remote_refs = 16777217; }; };"),
                 AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "16777216") != NULL, "%s", ax_error_detail());
    cr_assert_eq(cfg.network.max_remote_refs, 65536, "nothing half-applied");
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { network = { max_remote_refs = 1000; }; };"), AX_OK);
    cr_assert_eq(cfg.network.max_remote_refs, 1000);
    cfg.network.max_remote_refs = 0;
    cr_assert_eq(ax_system_create(&cfg, &sys), AX_EINVAL, "a system refuses it too");
    cr_assert_null(sys);
}
