/* Allocation fault injection (common/fault.h). */
#include "common/fault.h"

#ifdef AXON_FAULT_INJECT
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under one mutex: only fault-injection builds pay for it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static char armed_site[64];
static bool armed, any_site;
static uint64_t skip, left, hits;

static void arm_locked(const char *site, uint64_t nth, uint64_t count)
{
    armed = count > 0 && nth > 0;
    any_site = site == NULL;
    snprintf(armed_site, sizeof armed_site, "%s", site != NULL ? site : "");
    skip = nth > 0 ? nth - 1 : 0;
    left = count;
}

static void from_env(void)
{
    const char *e = getenv("AXON_FAULT_ALLOC");
    char site[64];
    unsigned long long nth = 0, count = 1;

    if (e == NULL || sscanf(e, "%63[^:]:%llu:%llu", site, &nth, &count) < 2)
        return;
    pthread_mutex_lock(&lock);
    arm_locked(strcmp(site, "*") == 0 ? NULL : site, nth, count);
    pthread_mutex_unlock(&lock);
}

bool ax__fault(const char *site)
{
    bool fail = false;

    pthread_once(&env_once, from_env);
    pthread_mutex_lock(&lock);
    if (armed && left > 0 && (any_site || (site != NULL && strcmp(site, armed_site) == 0))) {
        if (skip > 0) {
            skip--;
        } else {
            left--;
            hits++;
            fail = true;
        }
    }
    pthread_mutex_unlock(&lock);
    return fail;
}

bool ax__fault_arm(const char *site, uint64_t nth, uint64_t count)
{
    pthread_once(&env_once, from_env);
    pthread_mutex_lock(&lock);
    arm_locked(site, nth, count);
    pthread_mutex_unlock(&lock);
    return true;
}

uint64_t ax__fault_hits(void)
{
    uint64_t h;

    pthread_mutex_lock(&lock);
    h = hits;
    pthread_mutex_unlock(&lock);
    return h;
}

#else

bool ax__fault_arm(const char *site, uint64_t nth, uint64_t count)
{
    (void)site;
    (void)nth;
    (void)count;
    return false;
}

uint64_t ax__fault_hits(void)
{
    return 0;
}

#endif
