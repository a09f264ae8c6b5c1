/*
 * Internal to actor/: the context switch of coroutines, and what the
 * sanitizers need to hear about it.
 *
 * The switch is Boost.Context's fcontext (libboost_context, Debian's
 * libboost-context-dev): jump_fcontext and make_fcontext are assembly
 * with C linkage, no system call per switch (see actor/NOTES.md for the
 * numbers against PCL, which is swapcontext underneath).
 */
#ifndef AXON_ACTOR_CORO_SWITCH_H
#define AXON_ACTOR_CORO_SWITCH_H

#include <stddef.h>

typedef void *ax__fctx_t;

/* Boost.Context's transfer_t: the context we came from, and a pointer. */
typedef struct ax__transfer_s {
    ax__fctx_t fctx;
    void *data;
} ax__transfer_t;

/* Boost.Context (boost/context/detail/fcontext.hpp), C linkage. */
ax__transfer_t jump_fcontext(ax__fctx_t const to, void *vp);
ax__fctx_t make_fcontext(void *sp, size_t size, void (*fn)(ax__transfer_t));

#if defined(AXON_ASAN) || defined(__SANITIZE_ADDRESS__)
#define AX__CORO_ASAN 1
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(AXON_TSAN)
#define AX__CORO_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
/* Valgrind's client requests cost a few instructions outside Valgrind. */
#define AX__CORO_VALGRIND 1
#include <valgrind/valgrind.h>
#endif
#endif

#endif
