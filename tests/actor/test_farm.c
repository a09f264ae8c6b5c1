/*
 * The Farm (after ChrysaLisp's lib/task/farm.inc): a supervisor hands
 * jobs to a pool of worker children, one at a time each, with a deadline
 * timer per job. Workers fail at random (a handler error or ax_fail),
 * some are slower than the deadline, and a chaos thread kills random
 * workers. The supervisor puts the job of a worker that failed, ended or
 * missed its deadline (it is killed) back at the front of the queue, and
 * keeps the pool full. Every job must complete exactly once with its
 * right result: a worker thought dead may still answer, and that second
 * answer must be ignored, not counted.
 */
#include "helpers.h"

#define FARM_WORKERS 8
#define SLOT_MAX 64           /* worker slots, live and retired */
#define DEADLINE AX_MS(50)
#define SLOW_SLEEP_US 70000   /* a slow job: longer than the deadline */

/* The computation: a known result for each input. */
static uint64_t job_fn(uint64_t x)
{
    for (int i = 0; i < 200; i++)
        x = (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ull + 0x9e3779b97f4a7c15ull;
    return x;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* ---- messages ------------------------------------------------------------ */

enum { F_JOB, F_ANSWER, F_DEADLINE, F_GO };

typedef struct fmsg {
    ax_msg_t hdr;
    int kind;
    uint32_t job;
    uint32_t attempt;
    uint64_t value; /* the input (F_JOB) or the result (F_ANSWER) */
} fmsg_t;

static _Atomic uint64_t fmsg_allocs, fmsg_releases;

static void fmsg_release(ax_msg_t *m)
{
    atomic_fetch_add(&fmsg_releases, 1);
    free(m);
}

static const ax_msg_type_t fmsg_type = {.name = "test.farm", .size = sizeof(fmsg_t),
                                        .release = fmsg_release};

static ax_msg_t *fmsg_new(int kind, uint32_t job, uint32_t attempt, uint64_t value)
{
    ax_msg_t *m = NULL;

    if (ax_msg_alloc(&fmsg_type, &m) != AX_OK)
        return NULL;
    atomic_fetch_add(&fmsg_allocs, 1);
    ((fmsg_t *)m)->kind = kind;
    ((fmsg_t *)m)->job = job;
    ((fmsg_t *)m)->attempt = attempt;
    ((fmsg_t *)m)->value = value;
    return m;
}

/* ---- what the test, the supervisor, the workers and chaos share ---------- */

typedef struct farm {
    uint64_t njobs;
    uint64_t *input;
    _Atomic uint32_t *completions; /* per job: answers accepted */
    uint64_t *results;
    /* The live workers, for the chaos thread to pick from. */
    pthread_mutex_t lock;
    ax_ref_t live[SLOT_MAX];
    unsigned nlive;
    /* Written by the supervisor only; read once the system has ended. */
    uint64_t done, duplicates, wrong, stale_deadlines, late_kills, failed_events, ended_events;
    uint64_t spawned, requeued;
    _Atomic uint64_t sup_stops; /* on_stop: the farm ended by a stop, not a failure */
    sem_t all_done;
    _Atomic uint64_t finished;
    _Atomic uint64_t chaos_kills;
} farm_t;

static void live_set(farm_t *f, const ax_ref_t *refs, unsigned n)
{
    pthread_mutex_lock(&f->lock);
    memcpy(f->live, refs, n * sizeof(*refs));
    f->nlive = n;
    pthread_mutex_unlock(&f->lock);
}

/* ---- the worker ---------------------------------------------------------- */

typedef struct fworker {
    ax_actor_t actor;
    farm_t *f;
} fworker_t;

static ax_status_t fw_init(ax_actor_t *self, void *arg)
{
    ((fworker_t *)self)->f = arg;
    return AX_OK;
}

static ax_status_t fw_receive(ax_actor_t *self, ax_msg_t **msg)
{
    fmsg_t *m = (fmsg_t *)*msg;
    uint64_t h = mix((uint64_t)m->job * 131 + m->attempt);
    ax_msg_t *answer;

    AXT_CHECK((*msg)->type == &fmsg_type && m->kind == F_JOB);
    if ((*msg)->type != &fmsg_type || m->kind != F_JOB)
        return AX_OK;
    /* About 1 in 29 attempts fails, half each way. */
    if (h % 29 == 0)
        return AX_EIO;
    if (h % 29 == 1) {
        ax_fail(self, AX_EPROTO);
        return AX_OK;
    }
    /* A few jobs are slow on their first attempt: the deadline passes,
     * the supervisor kills this worker, and the answer still goes out
     * when the handler returns (a kill takes effect before the next
     * message, not in the middle of this one). */
    if (m->job % 250 == 7 && m->attempt == 1)
        axt_sleep_us(SLOW_SLEEP_US);
    answer = fmsg_new(F_ANSWER, m->job, m->attempt, job_fn(m->value));
    AXT_CHECK(answer != NULL);
    if (answer != NULL)
        AXT_CHECK(ax_tell((*msg)->sender, &answer, ax_self(self)) == AX_OK);
    return AX_OK;
}

static const ax_actor_vtable_t fworker_vtable = {
    .name = "test.farm-worker",
    .size = sizeof(fworker_t),
    .init = fw_init,
    .receive_local = fw_receive,
};

/* ---- the supervisor -------------------------------------------------------- */

enum { J_PENDING, J_RUNNING, J_DONE };

typedef struct job {
    int state;
    uint32_t attempt;
    int slot;          /* the worker slot running it (J_RUNNING) */
    ax_timer_t timer;  /* its deadline (J_RUNNING) */
} job_t;

typedef struct slot {
    ax_ref_t ref;
    bool live;
    int64_t job;       /* the job it runs, or -1 */
} slot_t;

typedef struct fsup {
    ax_actor_t actor;
    farm_t *f;
    job_t *jobs;
    uint32_t *dq;      /* a deque of pending job numbers */
    size_t dq_cap, dq_head, dq_len;
    slot_t slots[SLOT_MAX];
} fsup_t;

static void dq_push_back(fsup_t *s, uint32_t j)
{
    s->dq[(s->dq_head + s->dq_len++) % s->dq_cap] = j;
}

/* Retries go first: a requeued job should not wait behind the rest. */
static void dq_push_front(fsup_t *s, uint32_t j)
{
    s->dq_head = (s->dq_head + s->dq_cap - 1) % s->dq_cap;
    s->dq[s->dq_head] = j;
    s->dq_len++;
}

static bool dq_pop(fsup_t *s, uint32_t *j)
{
    if (s->dq_len == 0)
        return false;
    *j = s->dq[s->dq_head];
    s->dq_head = (s->dq_head + 1) % s->dq_cap;
    s->dq_len--;
    return true;
}

static ax_status_t fs_init(ax_actor_t *self, void *arg)
{
    fsup_t *s = (fsup_t *)self;

    s->f = arg;
    s->jobs = calloc(s->f->njobs, sizeof(*s->jobs));
    /* Each job is queued once, and again only after it left the queue:
     * never more than njobs entries at once. */
    s->dq_cap = s->f->njobs + 1;
    s->dq = calloc(s->dq_cap, sizeof(*s->dq));
    return s->jobs != NULL && s->dq != NULL ? AX_OK : AX_ENOMEM;
}

static void fs_stop(ax_actor_t *self)
{
    atomic_fetch_add(&((fsup_t *)self)->f->sup_stops, 1);
}

static void fs_destroy(ax_actor_t *self)
{
    fsup_t *s = (fsup_t *)self;

    free(s->jobs);
    free(s->dq);
}

static void publish_live(fsup_t *s)
{
    ax_ref_t refs[SLOT_MAX];
    unsigned n = 0;

    for (int i = 0; i < SLOT_MAX; i++)
        if (s->slots[i].live)
            refs[n++] = s->slots[i].ref;
    live_set(s->f, refs, n);
}

static int slot_of(fsup_t *s, ax_ref_t ref)
{
    for (int i = 0; i < SLOT_MAX; i++)
        if (s->slots[i].live && ax_ref_eq(s->slots[i].ref, ref))
            return i;
    return -1;
}

static void spawn_worker(fsup_t *s)
{
    /* Workers restart after a failure; a worker that keeps failing would
     * escalate and fail the farm, so the limit is far away. */
    ax_spawn_opts_t opts = {
        .parent = &s->actor,
        .restart = {.mode = AX_RESTART_BACKOFF, .max_restarts = 1000, .window_ns = AX_MS(1000),
                    .backoff_initial_ns = AX_MS(1), .backoff_max_ns = AX_MS(4)},
    };

    for (int i = 0; i < SLOT_MAX; i++) {
        if (s->slots[i].live)
            continue;
        AXT_CHECK(ax_spawn_opts(ax_actor_system(&s->actor), &fworker_vtable, s->f, &opts,
                                &s->slots[i].ref) == AX_OK);
        s->slots[i].live = true;
        s->slots[i].job = -1;
        s->f->spawned++;
        return;
    }
    AXT_CHECK(false); /* no free slot */
}

static unsigned live_count(fsup_t *s)
{
    unsigned n = 0;

    for (int i = 0; i < SLOT_MAX; i++)
        n += s->slots[i].live;
    return n;
}

/* Take job j back from whatever ran it: its deadline is cancelled (a
 * cancelled timer's message is never delivered, even if queued). */
static void requeue(fsup_t *s, uint32_t j)
{
    job_t *job = &s->jobs[j];

    if (job->state != J_RUNNING)
        return;
    AXT_CHECK(ax_cancel_timer(&s->actor, job->timer) == AX_OK);
    job->state = J_PENDING;
    dq_push_front(s, j);
    s->f->requeued++;
}

/* Stop counting on a worker: its job (if any) goes back to the queue. */
static void retire(fsup_t *s, int i)
{
    if (s->slots[i].job >= 0 && s->jobs[s->slots[i].job].slot == i)
        requeue(s, (uint32_t)s->slots[i].job);
    s->slots[i].live = false;
}

static void dispatch(fsup_t *s)
{
    if (s->f->done == s->f->njobs)
        return;
    while (live_count(s) < FARM_WORKERS)
        spawn_worker(s);
    publish_live(s);
    for (int i = 0; i < SLOT_MAX; i++) {
        slot_t *sl = &s->slots[i];
        uint32_t j;

        if (!sl->live || sl->job >= 0)
            continue;
        do {
            if (!dq_pop(s, &j))
                return;
        } while (s->jobs[j].state != J_PENDING); /* answered while queued */
        job_t *job = &s->jobs[j];
        ax_msg_t *m = fmsg_new(F_JOB, j, ++job->attempt, s->f->input[j]);
        ax_msg_t *d = fmsg_new(F_DEADLINE, j, job->attempt, 0);

        job->state = J_RUNNING;
        job->slot = i;
        sl->job = j;
        AXT_CHECK(m != NULL && d != NULL);
        /* To an ended worker this goes to dead letters; its end event
         * brings the job back. */
        AXT_CHECK(ax_tell(sl->ref, &m, ax_self(&s->actor)) == AX_OK);
        AXT_CHECK(ax_schedule_once(&s->actor, DEADLINE, &d, &job->timer) == AX_OK);
    }
}

static void on_answer(fsup_t *s, const fmsg_t *a, ax_ref_t from)
{
    farm_t *f = s->f;
    job_t *job = &s->jobs[a->job];
    int i = slot_of(s, from);

    if (job->state == J_DONE) {
        f->duplicates++; /* answered already: ignore it */
    } else {
        if (a->value != job_fn(f->input[a->job]))
            f->wrong++;
        if (job->state == J_RUNNING)
            AXT_CHECK(ax_cancel_timer(&s->actor, job->timer) == AX_OK);
        /* If another worker is on it now, that worker stays busy until it
         * answers; its answer will be the duplicate. */
        job->state = J_DONE;
        f->results[a->job] = a->value;
        atomic_fetch_add(&f->completions[a->job], 1);
        if (++f->done == f->njobs) {
            atomic_store(&f->finished, 1);
            sem_post(&f->all_done);
        }
    }
    if (i >= 0 && s->slots[i].job == (int64_t)a->job)
        s->slots[i].job = -1;
}

static void on_deadline(fsup_t *s, const fmsg_t *d)
{
    job_t *job = &s->jobs[d->job];
    int i = job->slot;

    /* Every path that settles a job cancels its deadline first. */
    if (job->state != J_RUNNING || job->attempt != d->attempt) {
        s->f->stale_deadlines++;
        return;
    }
    /* Too slow: count it as dead and kill it. It may still answer. */
    s->f->late_kills++;
    ax_kill(s->slots[i].ref);
    job->state = J_PENDING;
    dq_push_front(s, d->job);
    s->f->requeued++;
    s->slots[i].live = false;
}

static void on_child(fsup_t *s, const ax_child_event_t *e)
{
    int i = slot_of(s, e->child);

    if (e->kind == AX_CHILD_FAILED) {
        s->f->failed_events++;
        AXT_CHECK(e->action == AX_SUPERVISE_RESTART);
        /* It restarts with the same ref and takes new jobs after its
         * back-off; the job it failed on is not handed to it again. */
        if (i >= 0 && s->slots[i].job >= 0) {
            if (s->jobs[s->slots[i].job].slot == i)
                requeue(s, (uint32_t)s->slots[i].job);
            s->slots[i].job = -1;
        }
    } else if (e->kind == AX_CHILD_ENDED) {
        s->f->ended_events++;
        if (i >= 0)
            retire(s, i);
    }
}

static ax_status_t fs_receive(ax_actor_t *self, ax_msg_t **msg)
{
    fsup_t *s = (fsup_t *)self;

    if ((*msg)->type == &ax_child_event_type) {
        on_child(s, (const ax_child_event_t *)*msg);
    } else if ((*msg)->type == &fmsg_type) {
        const fmsg_t *m = (const fmsg_t *)*msg;

        if (m->kind == F_GO) {
            for (uint32_t j = 0; j < s->f->njobs; j++)
                dq_push_back(s, j);
        } else if (m->kind == F_ANSWER) {
            on_answer(s, m, (*msg)->sender);
        } else if (m->kind == F_DEADLINE) {
            on_deadline(s, m);
        }
    }
    dispatch(s);
    return AX_OK;
}

static const ax_actor_vtable_t fsup_vtable = {
    .name = "test.farm",
    .size = sizeof(fsup_t),
    .init = fs_init,
    .on_stop = fs_stop,
    .receive_local = fs_receive,
    .destroy = fs_destroy,
};

/* ---- chaos ------------------------------------------------------------------- */

static void *chaos_main(void *arg)
{
    farm_t *f = arg;
    uint64_t rng = 0x5eed;

    while (!atomic_load(&f->finished)) {
        ax_ref_t victim = AX_REF_NULL;

        rng = mix(rng + 1);
        pthread_mutex_lock(&f->lock);
        if (f->nlive > 0)
            victim = f->live[rng % f->nlive];
        pthread_mutex_unlock(&f->lock);
        /* Any thread may kill; a worker that ended already is AX_ENOTFOUND. */
        if (!ax_ref_is_null(victim) && ax_kill(victim) == AX_OK)
            atomic_fetch_add(&f->chaos_kills, 1);
        axt_sleep_us(2000);
    }
    return NULL;
}

Test(farm, every_job_completes_exactly_once_while_workers_fail_and_are_killed)
{
    ax_system_t *sys = axt_system(2);
    static farm_t f;
    ax_system_stats_t st;
    ax_ref_t sup;
    ax_msg_t *go;
    pthread_t chaos;

    f.njobs = axt_scaled(2000);
    f.input = calloc(f.njobs, sizeof(*f.input));
    f.results = calloc(f.njobs, sizeof(*f.results));
    f.completions = calloc(f.njobs, sizeof(*f.completions));
    cr_assert(f.input != NULL && f.results != NULL && f.completions != NULL);
    for (uint64_t j = 0; j < f.njobs; j++)
        f.input[j] = mix(j + 1);
    pthread_mutex_init(&f.lock, NULL);
    sem_init(&f.all_done, 0, 0);

    cr_assert_eq(ax_spawn(sys, &fsup_vtable, &f, &sup), AX_OK);
    cr_assert_eq(pthread_create(&chaos, NULL, chaos_main, &f), 0);
    go = fmsg_new(F_GO, 0, 0, 0);
    cr_assert_eq(ax_tell(sup, &go, AX_REF_NULL), AX_OK);
    AXT_WAIT_SEM(&f.all_done);
    pthread_join(chaos, NULL);

    ax_system_shutdown(sys);
    cr_assert_eq(axt_await(sys), AX_OK);
    ax_system_stats(sys, &st);
    axt_destroy(&sys);

    for (uint64_t j = 0; j < f.njobs; j++) {
        cr_assert_eq(atomic_load(&f.completions[j]), 1, "job %llu completed %u times",
                     (unsigned long long)j, atomic_load(&f.completions[j]));
        cr_assert_eq(f.results[j], job_fn(f.input[j]), "job %llu: wrong result",
                     (unsigned long long)j);
    }
    cr_log_info("%llu jobs, %llu workers spawned; %llu worker failures, %llu killed by chaos, %llu "
                "killed for missing the deadline, %llu requeued, %llu duplicate answers ignored",
                (unsigned long long)f.njobs, (unsigned long long)f.spawned,
                (unsigned long long)f.failed_events,
                (unsigned long long)atomic_load(&f.chaos_kills),
                (unsigned long long)f.late_kills, (unsigned long long)f.requeued,
                (unsigned long long)f.duplicates);
    cr_assert_eq(f.done, f.njobs);
    cr_assert_eq(f.wrong, 0);
    cr_assert_eq(f.stale_deadlines, 0, "a cancelled deadline was delivered");
    /* The farm itself never failed: it ended by the shutdown's stop. A
     * worker busy with a duplicate may still fail after the last job, and
     * its event is dropped once the farm has stopped taking mail: the
     * runtime may count more failures than the farm saw, never fewer. */
    cr_assert_eq(atomic_load(&f.sup_stops), 1);
    cr_assert_geq(st.failures, f.failed_events);
    cr_assert_leq(st.restarts, st.failures);
    /* The chaos really happened: otherwise the test proves nothing. */
    cr_assert_gt(f.failed_events, 0);
    cr_assert_gt(atomic_load(&f.chaos_kills), 0);
    cr_assert_gt(f.late_kills, 0, "the slow jobs miss their deadline");
    cr_assert_gt(f.duplicates, 0, "a slow worker's late answer is a duplicate");
    AXT_ASSERT_NO_BAD();
    cr_assert_eq(atomic_load(&fmsg_releases), atomic_load(&fmsg_allocs));
    pthread_mutex_destroy(&f.lock);
    free(f.input);
    free(f.results);
    free((void *)f.completions);
}
