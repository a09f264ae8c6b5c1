/* Internal: asking for a line before it is needed. */
#ifndef AXON_COMMON_PREFETCH_H
#define AXON_COMMON_PREFETCH_H

/*
 * A hint that this thread will soon write the line at p: free lists whose
 * entries were last written on another core (a cell an ending worker gave
 * back, a message a receiver put back in its pool) cost the taker a miss
 * on the entry's link, and the stores that follow then wait behind the
 * next locked instruction. Asked for one take ahead, the line is on its
 * way while the taker does the rest of its work (actor/NOTES.md, "The next
 * free entry, asked for early"). A hint only: p may be NULL or stale, and
 * nothing is read through it.
 */
static inline void ax__prefetch_write(const void *p)
{
    __builtin_prefetch(p, 1, 3);
}

#endif
