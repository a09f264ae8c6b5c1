/*
 * criterion_tsan_arena.c: lets Criterion run under ThreadSanitizer.
 *
 * Loaded with LD_PRELOAD by `./dev test --sanitize=thread` (built into
 * build-tsan/), and nowhere else.
 *
 * Why: at start-up Criterion's sandbox library (BoxFort, linked into
 * libcriterion.so) maps its shared "inheritable arena" at a random 16 MiB
 * step in [0x200000000000, 0x600000000000), drawing the step with rand_r()
 * and giving up after 10 tries that land on mapped pages. Under TSan almost
 * all of that range is TSan's own shadow, metadata or protected gaps; only
 * the application range 0x550000000000-0x568000000000 is free, so Criterion
 * aborts with "Could not initialize inheritable arena" (or crashes when a
 * try lands badly) nearly every time. Upstream: Snaipe/Criterion issue 274.
 *
 * What: rand_r() called from libcriterion returns steps that land inside
 * that free application range, a different one on each call so that
 * BoxFort's own "is it mapped?" retry still works. rand_r() from anywhere
 * else (the tests included) is the real one. Nothing else changes, so TSan
 * still sees every access the tests make.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* BoxFort: base = 0x200000000000 + (rand_r() & 0x3fffff) * 16 MiB. Steps
 * 0x358000..0x367fff give 0x558000000000..0x567fff000000. */
#define ARENA_STEP_FIRST 0x358000u
#define ARENA_STEP_COUNT 0x010000u
#define ARENA_BASE 0x200000000000ul
#define ARENA_STEP_BYTES (16ul << 20)

/*
 * Whether [lo, hi) overlaps anything this process has mapped. TSan loads a
 * PIE program in the same free range; once, an arena placed over the end of
 * the test program's mapping replaced its code, and the first test jumped
 * into the arena (CI, TSan stage: "PC is at a non-executable region" at
 * 0x5580000042ae, the first step of the range). BoxFort's own check did not
 * see the program there, so the steps handed out here skip every mapping.
 */
static int overlaps_mapping(unsigned long lo, unsigned long hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long a, b;
    char line[512];
    int hit = 0;

    if (f == NULL)
        return 0; /* no view of the maps: BoxFort's check is all there is */
    while (!hit && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && lo < b)
            hit = 1;
    fclose(f);
    return hit;
}

int rand_r(unsigned int *seed);

static int called_from_criterion(const void *caller)
{
    Dl_info info;
    return dladdr(caller, &info) != 0 && info.dli_fname != NULL &&
           strstr(info.dli_fname, "libcriterion") != NULL;
}

int rand_r(unsigned int *seed)
{
    static unsigned int calls;
    static int (*real_rand_r)(unsigned int *);

    if (called_from_criterion(__builtin_return_address(0))) {
        /* Start-up only, before any test thread exists. A large odd
         * stride spreads the retries across the free range; steps whose
         * 16 MiB overlap a mapping are passed over. */
        unsigned int step = 0;

        for (unsigned int tries = 0; tries < ARENA_STEP_COUNT; tries++) {
            unsigned long lo;

            step = ARENA_STEP_FIRST + (calls++ * 0x9e37u) % ARENA_STEP_COUNT;
            lo = ARENA_BASE + (unsigned long)step * ARENA_STEP_BYTES;
            if (!overlaps_mapping(lo, lo + ARENA_STEP_BYTES))
                break;
        }
        return (int)step;
    }
    if (real_rand_r == NULL)
        *(void **)&real_rand_r = dlsym(RTLD_NEXT, "rand_r");
    return real_rand_r(seed);
}
