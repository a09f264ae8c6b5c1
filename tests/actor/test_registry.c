/* Named actors: register, lookup, unregister, and release when they end. */
#include <stdio.h>

#include "helpers.h"

static ax_ref_t spawn_probe(ax_system_t *sys, probe_t *p)
{
    ax_ref_t ref;

    probe_init(p);
    cr_assert_eq(ax_spawn(sys, &probe_vtable, p, &ref), AX_OK);
    return ref;
}

Test(registry, register_then_lookup_finds_the_actor)
{
    ax_system_t *sys = axt_system(1);
    probe_t p;
    ax_ref_t ref = spawn_probe(sys, &p), found = AX_REF_NULL;
    char name[] = "counter";

    cr_assert_eq(ax_register(sys, ref, name), AX_OK);
    name[0] = 'X'; /* the registry copied the name */
    cr_assert_eq(ax_lookup(sys, "counter", &found), AX_OK);
    cr_assert(ax_ref_eq(found, ref));
    num_tell(found, 0, 0, 0);
    AXT_WAIT_COUNT(p.received, 1);
    axt_shutdown(&sys);
}

Test(registry, a_taken_name_is_eexist)
{
    ax_system_t *sys = axt_system(1);
    probe_t a, b;
    ax_ref_t ra = spawn_probe(sys, &a), rb = spawn_probe(sys, &b), found;

    cr_assert_eq(ax_register(sys, ra, "svc"), AX_OK);
    cr_assert_eq(ax_register(sys, rb, "svc"), AX_EEXIST);
    cr_assert_eq(ax_register(sys, ra, "svc"), AX_EEXIST);
    cr_assert_eq(ax_lookup(sys, "svc", &found), AX_OK);
    cr_assert(ax_ref_eq(found, ra), "the first owner keeps the name");
    axt_shutdown(&sys);
}

Test(registry, an_actor_has_at_most_one_name)
{
    ax_system_t *sys = axt_system(1);
    probe_t a;
    ax_ref_t ra = spawn_probe(sys, &a), found;

    cr_assert_eq(ax_register(sys, ra, "first"), AX_OK);
    cr_assert_eq(ax_register(sys, ra, "second"), AX_EEXIST);
    cr_assert_eq(ax_lookup(sys, "second", &found), AX_ENOTFOUND);
    cr_assert_eq(ax_lookup(sys, "first", &found), AX_OK);
    axt_shutdown(&sys);
}

Test(registry, the_name_is_released_when_the_actor_ends)
{
    ax_system_t *sys = axt_system(2);
    probe_t a, b, c;
    ax_ref_t ra = spawn_probe(sys, &a), rb, rc, found;

    cr_assert_eq(ax_register(sys, ra, "worker"), AX_OK);
    cr_assert_eq(ax_stop(ra), AX_OK);
    AXT_WAIT_SEM(&a.ended);
    cr_assert_eq(ax_lookup(sys, "worker", &found), AX_ENOTFOUND);
    cr_assert_eq(ax_register(sys, ra, "again"), AX_ENOTFOUND, "an ended actor cannot be named");

    rb = spawn_probe(sys, &b);
    cr_assert_eq(ax_register(sys, rb, "worker"), AX_OK, "the name can be taken again");
    cr_assert_eq(ax_lookup(sys, "worker", &found), AX_OK);
    cr_assert(ax_ref_eq(found, rb));

    /* Killed, or never started: the same. */
    cr_assert_eq(ax_kill(rb), AX_OK);
    AXT_WAIT_SEM(&b.ended);
    cr_assert_eq(ax_lookup(sys, "worker", &found), AX_ENOTFOUND);
    probe_init(&c);
    cr_assert_eq(ax_create(sys, &probe_vtable, &c, &rc), AX_OK);
    cr_assert_eq(ax_register(sys, rc, "worker"), AX_OK);
    cr_assert_eq(ax_stop(rc), AX_OK);
    AXT_WAIT_SEM(&c.ended);
    cr_assert_eq(ax_lookup(sys, "worker", &found), AX_ENOTFOUND);
    axt_shutdown(&sys);
}

Test(registry, unregister_releases_the_name_early)
{
    ax_system_t *sys = axt_system(1);
    probe_t a, b;
    ax_ref_t ra = spawn_probe(sys, &a), rb = spawn_probe(sys, &b), found;

    cr_assert_eq(ax_register(sys, ra, "svc"), AX_OK);
    cr_assert_eq(ax_unregister(sys, "svc"), AX_OK);
    cr_assert_eq(ax_lookup(sys, "svc", &found), AX_ENOTFOUND);
    cr_assert_eq(ax_unregister(sys, "svc"), AX_ENOTFOUND);
    cr_assert_eq(ax_register(sys, rb, "svc"), AX_OK);
    cr_assert_eq(ax_register(sys, ra, "other"), AX_OK, "ra has no name any more");
    cr_assert_eq(ax_lookup(sys, "svc", &found), AX_OK);
    cr_assert(ax_ref_eq(found, rb));
    /* ra ends: its new name goes, rb's stays. */
    cr_assert_eq(ax_stop(ra), AX_OK);
    AXT_WAIT_SEM(&a.ended);
    cr_assert_eq(ax_lookup(sys, "other", &found), AX_ENOTFOUND);
    cr_assert_eq(ax_lookup(sys, "svc", &found), AX_OK);
    axt_shutdown(&sys);
}

Test(registry, bad_names_are_einval)
{
    ax_system_t *sys = axt_system(1);
    probe_t a;
    ax_ref_t ra = spawn_probe(sys, &a), found;
    char longest[256], too_long[257];

    memset(longest, 'n', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memset(too_long, 'n', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';

    cr_assert_eq(ax_register(sys, ra, ""), AX_EINVAL);
    cr_assert_eq(ax_register(sys, ra, NULL), AX_EINVAL);
    cr_assert_eq(ax_register(sys, ra, too_long), AX_EINVAL);
    cr_assert_eq(ax_lookup(sys, "", &found), AX_EINVAL);
    cr_assert_eq(ax_lookup(sys, too_long, &found), AX_EINVAL);
    cr_assert_eq(ax_unregister(sys, ""), AX_EINVAL);
    cr_assert_eq(ax_register(sys, AX_REF_NULL, "x"), AX_EINVAL);
    cr_assert_eq(ax_register(sys, ra, longest), AX_OK, "255 bytes is allowed");
    cr_assert_eq(ax_lookup(sys, longest, &found), AX_OK);
    axt_shutdown(&sys);
}

Test(registry, names_belong_to_their_system)
{
    ax_system_t *s1 = axt_system(1), *s2 = axt_system(1);
    probe_t a, b;
    ax_ref_t ra = spawn_probe(s1, &a), rb = spawn_probe(s2, &b), found;

    cr_assert_eq(ax_register(s1, ra, "same"), AX_OK);
    cr_assert_eq(ax_register(s2, rb, "same"), AX_OK);
    cr_assert_eq(ax_register(s2, ra, "foreign"), AX_EINVAL, "ra is not an actor of s2");
    cr_assert_eq(ax_lookup(s1, "same", &found), AX_OK);
    cr_assert(ax_ref_eq(found, ra));
    cr_assert_eq(ax_lookup(s2, "same", &found), AX_OK);
    cr_assert(ax_ref_eq(found, rb));
    axt_shutdown(&s1);
    axt_shutdown(&s2);
}

Test(registry, many_names)
{
    ax_system_t *sys = axt_system(2);
    enum { N = 2000 };
    probe_t *p = calloc(N, sizeof(*p));
    ax_ref_t refs[N], found;
    char name[32];

    cr_assert_not_null(p);
    for (int i = 0; i < N; i++) {
        refs[i] = spawn_probe(sys, &p[i]);
        snprintf(name, sizeof name, "actor-%d", i);
        cr_assert_eq(ax_register(sys, refs[i], name), AX_OK);
    }
    for (int i = 0; i < N; i += 2)
        cr_assert_eq(ax_stop(refs[i]), AX_OK);
    for (int i = 0; i < N; i += 2)
        AXT_WAIT_SEM(&p[i].ended);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "actor-%d", i);
        ax_status_t st = ax_lookup(sys, name, &found);

        if (i % 2 == 0) {
            cr_assert_eq(st, AX_ENOTFOUND, "%s", name);
        } else {
            cr_assert_eq(st, AX_OK, "%s", name);
            cr_assert(ax_ref_eq(found, refs[i]));
        }
    }
    axt_shutdown(&sys);
    free(p);
}

/* Regression: a register racing with the actor's end. If ax_register
 * returned AX_OK, the name must be gone once the actor has ended; a lost
 * race used to leave it registered for good (and the name unusable). */
Test(registry, a_name_registered_while_the_actor_ends_is_still_released)
{
    ax_system_t *sys = axt_system(2);
    uint64_t rounds = axt_scaled(50000), registered = 0;

    for (uint64_t i = 0; i < rounds; i++) {
        probe_t p;
        ax_ref_t r, found;
        ax_status_t st;

        probe_init(&p);
        cr_assert_eq(ax_spawn(sys, &probe_vtable, &p, &r), AX_OK);
        cr_assert_eq(ax_kill(r), AX_OK); /* ends on a worker, now */
        st = ax_register(sys, r, "racy");
        cr_assert(st == AX_OK || st == AX_ENOTFOUND, "round %llu: %s", (unsigned long long)i,
                  ax_status_name(st));
        AXT_WAIT_SEM(&p.ended);
        if (st == AX_OK) {
            registered++;
            cr_assert_eq(ax_lookup(sys, "racy", &found), AX_ENOTFOUND,
                         "round %llu: the ended actor kept its name", (unsigned long long)i);
        }
        sem_destroy(&p.started);
        sem_destroy(&p.ended);
        sem_destroy(&p.in_handler);
        sem_destroy(&p.gate);
    }
    cr_log_info("%llu of %llu registrations won the race", (unsigned long long)registered,
                (unsigned long long)rounds);
    axt_shutdown(&sys);
}
