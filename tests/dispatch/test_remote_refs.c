/*
 * What a peer's sender paths make us hold. Every remote ask leaves the
 * replier a sender path that was never seen before (the asker's reply
 * slot, with a new generation each time). One million of them, as a
 * replier resolves them, leave the resident set bounded: a reply slot's
 * refs share one entry per slot index, the generation travels in the ref.
 *
 * The bound stated: 1,000,000 distinct reply-slot paths over 64 slot
 * indexes grow RSS by less than 16 MiB (one entry per path, as before,
 * was about 1 KiB each: 1 GiB).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/config.h"
#include "axon/serial.h"

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
