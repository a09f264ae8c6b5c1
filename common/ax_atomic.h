/*
 * Internal: the one include for Concurrency Kit atomics.
 *
 * With CK_USE_CC_BUILTINS=1 (the TSan build) ck's read-modify-write
 * operations become __sync builtins that ThreadSanitizer understands, but
 * ck_pr_load_* / ck_pr_store_* stay plain volatile accesses ordered by ck's
 * fences, and TSan does not model fences. In that build only, loads become
 * acquire and stores release, which is at least as strong as every fence
 * pairing Axon and ck rely on, so TSan sees the real happens-before edges.
 * Normal builds use ck unchanged.
 */
#ifndef AXON_COMMON_ATOMIC_H
#define AXON_COMMON_ATOMIC_H

#include <ck_pr.h>

#if defined(AXON_TSAN)
#define AX__TSAN_LD(T, p) __atomic_load_n((T *)(p), __ATOMIC_ACQUIRE)
#define AX__TSAN_ST(T, p, v) __atomic_store_n((T *)(p), (T)(v), __ATOMIC_RELEASE)
#undef ck_pr_load_ptr
#define ck_pr_load_ptr(p) AX__TSAN_LD(void *const, p)
#undef ck_pr_store_ptr
#define ck_pr_store_ptr(p, v) AX__TSAN_ST(void *, p, (void *)(uintptr_t)(v))
#undef ck_pr_load_uint
#define ck_pr_load_uint(p) AX__TSAN_LD(const unsigned int, p)
#undef ck_pr_store_uint
#define ck_pr_store_uint(p, v) AX__TSAN_ST(unsigned int, p, v)
#undef ck_pr_load_int
#define ck_pr_load_int(p) AX__TSAN_LD(const int, p)
#undef ck_pr_store_int
#define ck_pr_store_int(p, v) AX__TSAN_ST(int, p, v)
#undef ck_pr_load_8
#define ck_pr_load_8(p) AX__TSAN_LD(const uint8_t, p)
#undef ck_pr_store_8
#define ck_pr_store_8(p, v) AX__TSAN_ST(uint8_t, p, v)
#undef ck_pr_load_16
#define ck_pr_load_16(p) AX__TSAN_LD(const uint16_t, p)
#undef ck_pr_store_16
#define ck_pr_store_16(p, v) AX__TSAN_ST(uint16_t, p, v)
#undef ck_pr_load_32
#define ck_pr_load_32(p) AX__TSAN_LD(const uint32_t, p)
#undef ck_pr_store_32
#define ck_pr_store_32(p, v) AX__TSAN_ST(uint32_t, p, v)
#undef ck_pr_load_64
#define ck_pr_load_64(p) AX__TSAN_LD(const uint64_t, p)
#undef ck_pr_store_64
#define ck_pr_store_64(p, v) AX__TSAN_ST(uint64_t, p, v)

/* ck implements these as CAS loops that read through ck_pr_md_load_*,
 * which the macros above cannot reach. Defined as macros here, before any
 * other ck header is included, they also cover ck's own inline code
 * (ck_spinlock, ck_ring). */
#define ck_pr_fas_ptr(p, v) __atomic_exchange_n((void **)(p), (void *)(v), __ATOMIC_SEQ_CST)
#define ck_pr_fas_uint(p, v) __atomic_exchange_n((unsigned int *)(p), (v), __ATOMIC_SEQ_CST)
#define ck_pr_fas_int(p, v) __atomic_exchange_n((int *)(p), (v), __ATOMIC_SEQ_CST)
#define ck_pr_fas_32(p, v) __atomic_exchange_n((uint32_t *)(p), (v), __ATOMIC_SEQ_CST)
#define ck_pr_fas_64(p, v) __atomic_exchange_n((uint64_t *)(p), (v), __ATOMIC_SEQ_CST)
#define ck_pr_dec_32_zero(p, z) \
    (*(z) = __atomic_sub_fetch((uint32_t *)(p), 1, __ATOMIC_SEQ_CST) == 0)
#define ck_pr_dec_64_zero(p, z) \
    (*(z) = __atomic_sub_fetch((uint64_t *)(p), 1, __ATOMIC_SEQ_CST) == 0)
#endif

/* Every other ck header comes through here, after the overrides. */
#include <ck_ring.h>
#include <ck_spinlock.h>

#endif
