/*
 * farm: a supervisor farms jobs out to a pool of workers (after
 * ChrysaLisp's Farm) and gets every job done although workers fail, hang
 * and get killed.
 *
 *   - The farm spawns its workers as children with a restart policy: a
 *     worker whose handler fails restarts with the same ref, and the farm
 *     is told with an ax_child_event_t.
 *   - Each job handed out gets a deadline, a one-shot timer to the farm.
 *     An answer cancels it. A worker that misses its deadline is killed.
 *   - The job of a worker that failed, ended or missed its deadline goes
 *     back to the front of the queue, and the farm spawns a replacement
 *     when a worker has ended.
 *   - A worker thought dead can still answer (it was killed while busy):
 *     the farm remembers which jobs are done and ignores a second answer.
 *   - A chaos thread kills random workers meanwhile.
 *
 *     ./farm [jobs]       (default 300)
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, pthread, semaphores */

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "axon/axon.h"

#define WORKERS 4
#define SLOTS 64            /* room for retired workers' slots to be reused */
#define DEADLINE AX_MS(100)

/* The work: a known answer for each input, so the result can be checked. */
static uint64_t compute(uint64_t x)
{
    for (int i = 0; i < 100; i++)
        x = (x ^ (x >> 31)) * 0x9e3779b97f4a7c15ull + 1;
    return x;
}

static uint64_t hash(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    return x ^ (x >> 33);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* One message type for everything the farm and its workers say. */
enum { JOB, ANSWER, TIMEOUT, START };

typedef struct farm_msg {
    ax_msg_t hdr;
    int kind;
    uint32_t job, attempt;
    uint64_t value; /* the input of a JOB, the result of an ANSWER */
} farm_msg_t;

static const ax_msg_type_t farm_msg_type = {.name = "farm.msg", .size = sizeof(farm_msg_t)};

static ax_msg_t *farm_msg(int kind, uint32_t job, uint32_t attempt, uint64_t value)
{
    ax_msg_t *m;

    if (ax_msg_alloc(&farm_msg_type, &m) != AX_OK)
        return NULL;
    ((farm_msg_t *)m)->kind = kind;
    ((farm_msg_t *)m)->job = job;
    ((farm_msg_t *)m)->attempt = attempt;
    ((farm_msg_t *)m)->value = value;
    return m;
}

/* ---- a worker: no state, so a restart loses nothing ---------------------- */

static ax_status_t worker_receive(ax_actor_t *self, ax_msg_t **msg)
{
    farm_msg_t *job = (farm_msg_t *)*msg;
    uint64_t luck = hash((uint64_t)job->job << 8 | job->attempt);
    ax_msg_t *answer;

    if (luck % 20 == 0)
        return AX_EIO;            /* a failure: the farm hears of it */
    if (job->job % 50 == 3 && job->attempt == 1)
        sleep_ms(150);            /* too slow: it will miss its deadline */
    answer = farm_msg(ANSWER, job->job, job->attempt, compute(job->value));
    if (answer != NULL && ax_tell(job->hdr.sender, &answer, ax_self(self)) != AX_OK)
        ax_msg_release(&answer);
    return AX_OK;
}

static const ax_actor_vtable_t worker_vtable = {
    .name = "farm.worker",
    .size = sizeof(ax_actor_t),
    .receive_local = worker_receive,
};

/* ---- the farm ---------------------------------------------------------------- */

typedef struct shared {
    uint32_t njobs;
    uint32_t *answers;        /* per job: answers accepted (must end at 1) */
    uint64_t *results;
    uint32_t duplicates, failures, deadline_kills;
    sem_t done;
    /* The live workers, for the chaos thread. */
    pthread_mutex_t lock;
    ax_ref_t live[SLOTS];
    unsigned nlive;
    int finished;             /* under lock */
} shared_t;

typedef struct job {
    bool done, running;
    uint32_t attempt;
    int slot;                 /* who runs it */
    ax_timer_t deadline;
} job_t;

typedef struct farm {
    ax_actor_t actor;
    shared_t *sh;
    job_t *jobs;
    uint32_t *queue;          /* pending jobs: a ring, retries in front */
    uint32_t qhead, qlen;
    uint32_t ndone;
    struct {
        ax_ref_t ref;
        bool live;
        int job;              /* -1: idle */
    } slot[SLOTS];
} farm_t;

static ax_status_t farm_init(ax_actor_t *self, void *arg)
{
    farm_t *f = (farm_t *)self;

    f->sh = arg;
    f->jobs = calloc(f->sh->njobs, sizeof(*f->jobs));
    f->queue = calloc(f->sh->njobs, sizeof(*f->queue));
    return f->jobs && f->queue ? AX_OK : AX_ENOMEM;
}

static void farm_destroy(ax_actor_t *self)
{
    farm_t *f = (farm_t *)self;

    free(f->jobs);
    free(f->queue);
}

static void queue_front(farm_t *f, uint32_t j)
{
    f->qhead = (f->qhead + f->sh->njobs - 1) % f->sh->njobs;
    f->queue[f->qhead] = j;
    f->qlen++;
}

/* Take job j back from its worker: cancel its deadline (the timer's
 * message is then never delivered, even if it was already queued) and put
 * it first in line. */
static void take_back(farm_t *f, uint32_t j)
{
    if (!f->jobs[j].running)
        return;
    ax_cancel_timer(&f->actor, f->jobs[j].deadline);
    f->jobs[j].running = false;
    queue_front(f, j);
}

/* Keep the chaos thread's list of live workers up to date. */
static void publish(farm_t *f)
{
    shared_t *sh = f->sh;

    pthread_mutex_lock(&sh->lock);
    sh->nlive = 0;
    for (int i = 0; i < SLOTS; i++)
        if (f->slot[i].live)
            sh->live[sh->nlive++] = f->slot[i].ref;
    pthread_mutex_unlock(&sh->lock);
}

static void hire(farm_t *f)
{
    /* Restart a failed worker after 1-8 ms. The limit is far away: over
     * it, the failure would escalate and fail the farm itself. */
    ax_spawn_opts_t opts = {
        .parent = &f->actor,
        .restart = {.mode = AX_RESTART_BACKOFF, .max_restarts = 1000, .window_ns = AX_MS(1000),
                    .backoff_initial_ns = AX_MS(1), .backoff_max_ns = AX_MS(8)},
    };

    for (int i = 0; i < SLOTS; i++) {
        if (!f->slot[i].live &&
            ax_spawn_opts(ax_actor_system(&f->actor), &worker_vtable, NULL, &opts,
                          &f->slot[i].ref) == AX_OK) {
            f->slot[i].live = true;
            f->slot[i].job = -1;
            return;
        }
    }
}

/* The next job in the queue that still needs doing (a requeued job may
 * have been answered meanwhile by the worker we gave up on). */
static bool next_pending(farm_t *f, uint32_t *j)
{
    while (f->qlen > 0) {
        *j = f->queue[f->qhead];
        f->qhead = (f->qhead + 1) % f->sh->njobs;
        f->qlen--;
        if (!f->jobs[*j].done)
            return true;
    }
    return false;
}

/* Keep WORKERS workers and give each idle one the next pending job. */
static void dispatch(farm_t *f)
{
    unsigned live = 0;

    if (f->ndone == f->sh->njobs)
        return;
    for (int i = 0; i < SLOTS; i++)
        live += f->slot[i].live;
    for (; live < WORKERS; live++)
        hire(f);
    publish(f);
    for (int i = 0; i < SLOTS; i++) {
        uint32_t j;

        if (!f->slot[i].live || f->slot[i].job >= 0)
            continue;
        if (!next_pending(f, &j))
            return;
        job_t *job = &f->jobs[j];
        ax_msg_t *m = farm_msg(JOB, j, ++job->attempt, j + 1);
        ax_msg_t *d = farm_msg(TIMEOUT, j, job->attempt, 0);

        if (m == NULL || d == NULL) {
            ax_msg_release(&m);
            ax_msg_release(&d);
            queue_front(f, j);
            return;
        }
        /* A worker that has just ended gets it as a dead letter (AX_OK);
         * its end event brings the job back. Any other status: not sent,
         * the message is still ours, and the job waits for the next event. */
        if (ax_tell(f->slot[i].ref, &m, ax_self(&f->actor)) != AX_OK) {
            ax_msg_release(&m);
            ax_msg_release(&d);
            queue_front(f, j);
            return;
        }
        job->running = true;
        job->slot = i;
        f->slot[i].job = (int)j;
        if (ax_schedule_once(&f->actor, DEADLINE, &d, &job->deadline) != AX_OK)
            ax_msg_release(&d);
    }
}

static int slot_of(farm_t *f, ax_ref_t ref)
{
    for (int i = 0; i < SLOTS; i++)
        if (f->slot[i].live && ax_ref_eq(f->slot[i].ref, ref))
            return i;
    return -1;
}

static void on_answer(farm_t *f, const farm_msg_t *a)
{
    job_t *job = &f->jobs[a->job];
    int i = slot_of(f, a->hdr.sender);

    if (i >= 0 && f->slot[i].job == (int)a->job)
        f->slot[i].job = -1;  /* free for the next job */
    if (job->done) {
        f->sh->duplicates++;  /* a second answer: already counted */
        return;
    }
    if (job->running)
        ax_cancel_timer(&f->actor, job->deadline);
    job->done = true;
    job->running = false;
    f->sh->answers[a->job]++;
    f->sh->results[a->job] = a->value;
    if (++f->ndone == f->sh->njobs) {
        pthread_mutex_lock(&f->sh->lock);
        f->sh->finished = 1;
        pthread_mutex_unlock(&f->sh->lock);
        sem_post(&f->sh->done);
    }
}

static void on_deadline(farm_t *f, const farm_msg_t *d)
{
    job_t *job = &f->jobs[d->job];

    if (!job->running || job->attempt != d->attempt)
        return;               /* cannot happen: every answer cancels it */
    /* Too late: give up on this worker. It may still answer. */
    f->sh->deadline_kills++;
    ax_kill(f->slot[job->slot].ref);
    f->slot[job->slot].live = false;
    job->running = false;
    queue_front(f, d->job);
}

static void on_child(farm_t *f, const ax_child_event_t *e)
{
    int i = slot_of(f, e->child);

    if (i < 0)
        return;               /* a worker we gave up on already */
    if (f->slot[i].job >= 0 && f->jobs[f->slot[i].job].slot == i)
        take_back(f, (uint32_t)f->slot[i].job);
    f->slot[i].job = -1;
    if (e->kind == AX_CHILD_FAILED)
        f->sh->failures++;    /* it restarts, same ref, ready for more */
    else
        f->slot[i].live = false; /* ended: dispatch hires a new one */
}

static ax_status_t farm_receive(ax_actor_t *self, ax_msg_t **msg)
{
    farm_t *f = (farm_t *)self;

    if ((*msg)->type == &ax_child_event_type) {
        on_child(f, (const ax_child_event_t *)*msg);
    } else if ((*msg)->type == &farm_msg_type) {
        const farm_msg_t *m = (const farm_msg_t *)*msg;

        if (m->kind == START) {
            for (uint32_t j = 0; j < f->sh->njobs; j++)
                f->queue[j] = j;
            f->qlen = f->sh->njobs;
        } else if (m->kind == ANSWER) {
            on_answer(f, m);
        } else if (m->kind == TIMEOUT) {
            on_deadline(f, m);
        }
    }
    dispatch(f);
    return AX_OK;
}

static const ax_actor_vtable_t farm_vtable = {
    .name = "farm",
    .size = sizeof(farm_t),
    .init = farm_init,
    .receive_local = farm_receive,
    .destroy = farm_destroy,
};

/* ---- chaos: kill a random worker every few milliseconds --------------------- */

static void *chaos(void *arg)
{
    shared_t *sh = arg;
    uint64_t rng = 1;
    unsigned kills = 0;

    for (;;) {
        ax_ref_t victim = AX_REF_NULL;

        pthread_mutex_lock(&sh->lock);
        if (sh->finished) {
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        rng = hash(rng);
        if (sh->nlive > 0)
            victim = sh->live[rng % sh->nlive];
        pthread_mutex_unlock(&sh->lock);
        /* ax_kill works from any thread; AX_ENOTFOUND if it ended already. */
        if (!ax_ref_is_null(victim) && ax_kill(victim) == AX_OK)
            kills++;
        sleep_ms(3);
    }
    printf("chaos killed %u workers\n", kills);
    return NULL;
}

int main(int argc, char **argv)
{
    shared_t sh = {.njobs = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 300};
    ax_system_t *sys;
    ax_ref_t farm;
    ax_msg_t *start;
    pthread_t chaos_thread;
    int bad = 0;

    if (sh.njobs == 0)
        sh.njobs = 1;
    sh.answers = calloc(sh.njobs, sizeof(*sh.answers));
    sh.results = calloc(sh.njobs, sizeof(*sh.results));
    sem_init(&sh.done, 0, 0);
    pthread_mutex_init(&sh.lock, NULL);
    if (sh.answers == NULL || sh.results == NULL || ax_system_create(NULL, &sys) != AX_OK) {
        fprintf(stderr, "farm: cannot start\n");
        return 1;
    }
    if (ax_spawn(sys, &farm_vtable, &sh, &farm) != AX_OK ||
        (start = farm_msg(START, 0, 0, 0)) == NULL) {
        fprintf(stderr, "farm: %s\n", ax_error_detail());
        ax_system_destroy(&sys);
        return 1;
    }
    pthread_create(&chaos_thread, NULL, chaos, &sh);
    ax_tell(farm, &start, AX_REF_NULL);
    sem_wait(&sh.done);
    pthread_join(chaos_thread, NULL);

    /* Stop everything; the farm's fields are safe to read once it ended. */
    ax_system_shutdown(sys);
    ax_system_await_termination(sys);
    for (uint32_t j = 0; j < sh.njobs; j++)
        bad += sh.answers[j] != 1 || sh.results[j] != compute(j + 1);
    printf("%u jobs done, %d wrong; %u worker failures, %u killed for missing the deadline, "
           "%u duplicate answers ignored\n",
           sh.njobs, bad, sh.failures, sh.deadline_kills, sh.duplicates);
    ax_system_destroy(&sys);
    free(sh.answers);
    free(sh.results);
    sem_destroy(&sh.done);
    pthread_mutex_destroy(&sh.lock);
    return bad == 0 ? 0 : 1;
}
