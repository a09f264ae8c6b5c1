/* The asymmetric barrier (barrier.h): membarrier(2) when the kernel has it. */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/barrier.h"

bool ax__barrier_asym;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static long membarrier(int cmd)
{
    return syscall(__NR_membarrier, cmd, 0u, 0);
}

static void setup(void)
{
    long cmds = membarrier(MEMBARRIER_CMD_QUERY);

    /* Both must work: the query (the kernel has the command) and the
     * registration (nothing forbids it), or both sides stay fences. */
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ||
        (cmds & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
        return;
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
        return;
    ax__barrier_asym = true;
}

void ax__barrier_init(void)
{
    pthread_once(&once, setup);
}

void ax__barrier_heavy(void)
{
    /* The fence orders this thread's own store before the call. After a
     * successful registration the command does not fail; if it ever did,
     * the frequent side would have gone unordered, so there is nothing to
     * fall back to here, and the registration is what was checked. */
    ck_pr_fence_memory();
    if (ax__barrier_asym)
        (void)membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}
