/*
 * axon/status.h: the single error vocabulary of Axon.
 *
 * Every fallible call returns an ax_status_t. AX_OK is 0; every failure is a
 * negative code. Each code also has a one-byte wire value (its magnitude), so
 * a status can travel in a Status frame and map back one to one. An unknown
 * wire byte maps to AX_EUNKNOWN.
 *
 * When a call fails on bad input it also records a human-readable detail for
 * the calling thread ("buffer_config.chunk_size: 100 is below the minimum of
 * 128"), readable with ax_error_detail() until the next failing call on the
 * same thread.
 */
#ifndef AXON_STATUS_H
#define AXON_STATUS_H

#include "axon/api.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * X(name, wire byte, message). The wire byte is the code's magnitude; it is
 * part of the wire protocol (docs/wire.md) and must never change once
 * published. New codes take the next free byte.
 */
#define AX_STATUS_MAP(X)                                                     \
    X(OK, 0, "ok")                                                           \
    X(EINVAL, 1, "invalid argument")                                         \
    X(ENOMEM, 2, "out of memory")                                            \
    X(ENOBUFS, 3, "buffer pool exhausted")                                   \
    X(ECLOSED, 4, "closed")                                                  \
    X(ESHUTDOWN, 5, "system is shutting down")                               \
    X(ETIMEDOUT, 6, "timed out")                                             \
    X(ENOTFOUND, 7, "not found")                                             \
    X(EEXIST, 8, "already exists")                                           \
    X(EPROTO, 9, "protocol error")                                           \
    X(ETOOBIG, 10, "too big")                                                \
    X(EUNKNOWN, 11, "unknown status")                                        \
    X(EAGAIN, 12, "try again")                                               \
    X(ESTATE, 13, "not allowed in the current state")                        \
    X(ETYPE, 14, "wrong message type or serialiser id")                      \
    X(EIO, 15, "input/output error")                                         \
    X(ECANCELED, 16, "canceled")                                             \
    X(EFAILED, 17, "actor failed")                                           \
    X(EFULL, 18, "mailbox full")

typedef enum ax_status_e {
#define AX__STATUS_ENUM(name, byte, msg) AX_##name = -(byte),
    AX_STATUS_MAP(AX__STATUS_ENUM)
#undef AX__STATUS_ENUM
} ax_status_t;

/* A static, never-NULL message for s ("unknown status" for a value outside
 * the table). */
AX_API const char *ax_status_str(ax_status_t s);

/* The status's short name, such as "AX_ENOBUFS". */
AX_API const char *ax_status_name(ax_status_t s);

/* The one-byte wire value of s. A value outside the table maps to the byte
 * of AX_EUNKNOWN. */
AX_API uint8_t ax_status_to_byte(ax_status_t s);

/* The status for a wire byte; a byte that names no status is AX_EUNKNOWN. */
AX_API ax_status_t ax_status_from_byte(uint8_t byte);

/*
 * The detail of the last failure recorded on the calling thread, or "" when
 * there is none. The string is owned by the thread and valid until the next
 * Axon call on that thread that records a failure.
 */
AX_API const char *ax_error_detail(void);

/* Forget the calling thread's recorded detail. */
AX_API void ax_error_clear(void);

#ifdef __cplusplus
}
#endif

#endif /* AXON_STATUS_H */
