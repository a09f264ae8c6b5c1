/* Internal: the ck_malloc for Axon's ck_ht tables. Every table is read
 * under its writers' mutex, so nothing is freed under a reader and ck's
 * deferred frees need no epoch. */
#ifndef AXON_COMMON_HT_ALLOC_H
#define AXON_COMMON_HT_ALLOC_H

#include <ck_malloc.h>

extern struct ck_malloc ax__ht_allocator;

#endif
