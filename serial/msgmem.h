/*
 * Internal to serial/: the memory of messages (ax_msg_alloc, and pools of
 * types without a release function).
 *
 * A message is allocated on one thread and freed, most of the time, on
 * another: the receiver's worker. glibc's malloc pays for that with its
 * arena locks, so messages come from an allocator built for it. The one
 * in use is chosen when Axon is built (AXON_MSG_ALLOCATOR, see
 * actor/NOTES.md for the numbers behind the default):
 *
 *   mimalloc  mimalloc's own mi_ API (the program's malloc is untouched);
 *             a cross-thread free is one atomic push onto the owning
 *             page's list.
 *   pool      per-thread size-class caches of malloc'd blocks; a thread
 *             that frees more than it allocates hands a batch of blocks to
 *             a global list that allocating threads take batches from.
 *   libc      calloc and free, for comparison.
 *
 * Which allocator a message's memory came from is in its header (see
 * serial/message.c): mimalloc's own ownership test, mi_is_in_heap_region,
 * only knows memory below 40 TiB, and under ASan mmap places mimalloc's
 * segments above that.
 */
#ifndef AXON_SERIAL_MSGMEM_H
#define AXON_SERIAL_MSGMEM_H

#include <stdbool.h>
#include <stddef.h>

/* size zeroed bytes, or NULL. */
void *ax__msgmem_alloc(size_t size);

/* Free p, from ax__msgmem_alloc (the pool backend also takes any malloc
 * block: it checks malloc_usable_size); size is what was asked for. NULL
 * does nothing. */
void ax__msgmem_free(void *p, size_t size);

/* True when the calling thread has allocated message memory since it last
 * called ax__msgmem_collect (always false where collecting does nothing). */
bool ax__msgmem_collect_due(void);

/* How many times the calling thread has allocated message memory (0
 * where collecting does nothing): a thread that sees it unchanged for a
 * while has stopped allocating. */
unsigned long ax__msgmem_allocs(void);

/* Give the free message memory of the calling thread's heap back to the
 * system (mimalloc keeps emptied pages for reuse until its owner thread
 * collects). For a thread about to sleep: it costs a walk of the heap. */
void ax__msgmem_collect(void);

/* The allocator's name: "mimalloc", "pool" or "libc". */
const char *ax__msgmem_name(void);

#endif
