/* Internal: recording a failure's detail for ax_error_detail(). */
#ifndef AXON_COMMON_ERROR_H
#define AXON_COMMON_ERROR_H

#include "axon/status.h"

/* Record a printf-style detail for the calling thread and return s, so that
 * a failing path reads `return ax__error(AX_EINVAL, "...", ...);`. The
 * arguments may include ax_error_detail() to wrap the previous detail. */
ax_status_t ax__error(ax_status_t s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
