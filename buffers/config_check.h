/*
 * Internal: configuration checks that also say which member broke the
 * rule, so that a loader can point at the key that set it (actor/
 * config_load.c) without reading the message text.
 */
#ifndef AXON_BUFFERS_CONFIG_CHECK_H
#define AXON_BUFFERS_CONFIG_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "axon/buffers.h"

#define AX__NO_MEMBER SIZE_MAX

/* The members a broken rule is about, as byte offsets in the checked
 * struct: first is the one the rule constrains, second the one it is
 * compared with (AX__NO_MEMBER when none). */
typedef struct ax__blame_s {
    size_t first, second;
} ax__blame_t;

/* Record the members of a broken rule (blame may be NULL) and return st. */
static inline ax_status_t ax__blame(ax__blame_t *blame, size_t first, size_t second, ax_status_t st)
{
    if (blame != NULL) {
        blame->first = first;
        blame->second = second;
    }
    return st;
}

/* ax_buffer_config_validate, and on failure the members in *blame
 * (offsets in ax_buffer_config_t; blame may be NULL). */
ax_status_t ax__buffer_config_check(const ax_buffer_config_t *cfg, ax__blame_t *blame);

#endif
