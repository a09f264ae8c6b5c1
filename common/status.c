/* The status table, expanded from AX_STATUS_MAP, and the per-thread detail. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct status_row {
    const char *name;
    const char *msg;
};

#define AX__STATUS_ROW(name, byte, msg) [byte] = {"AX_" #name, msg},
static const struct status_row status_rows[] = {AX_STATUS_MAP(AX__STATUS_ROW)};
#undef AX__STATUS_ROW

#define STATUS_COUNT (sizeof status_rows / sizeof status_rows[0])

static const struct status_row *status_row_of(ax_status_t s)
{
    long mag = -(long)s;

    if (mag < 0 || (unsigned long)mag >= STATUS_COUNT || status_rows[mag].name == NULL)
        return NULL;
    return &status_rows[mag];
}

const char *ax_status_str(ax_status_t s)
{
    const struct status_row *row = status_row_of(s);

    return row != NULL ? row->msg : status_rows[-AX_EUNKNOWN].msg;
}

const char *ax_status_name(ax_status_t s)
{
    const struct status_row *row = status_row_of(s);

    return row != NULL ? row->name : status_rows[-AX_EUNKNOWN].name;
}

uint8_t ax_status_to_byte(ax_status_t s)
{
    return status_row_of(s) != NULL ? (uint8_t)(-(int)s) : (uint8_t)(-AX_EUNKNOWN);
}

ax_status_t ax_status_from_byte(uint8_t byte)
{
    if (byte >= STATUS_COUNT || status_rows[byte].name == NULL)
        return AX_EUNKNOWN;
    return (ax_status_t)(-(int)byte);
}

/* One detail buffer per thread: errors are reported to the thread that made
 * the failing call, so no synchronisation is needed. */
static _Thread_local char error_detail[256];

ax_status_t ax__error(ax_status_t s, const char *fmt, ...)
{
    char tmp[sizeof error_detail];
    va_list ap;

    /* Through a copy: a caller may wrap the previous detail, passing
     * ax_error_detail() as an argument. */
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(error_detail, tmp, sizeof tmp);
    return s;
}

const char *ax_error_detail(void)
{
    return error_detail;
}

void ax_error_clear(void)
{
    error_detail[0] = '\0';
}
