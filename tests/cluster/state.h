/*
 * state.h: the layout of a cluster peer's state file, an array of
 * little-endian u64 words mapped shared by the peer (peer.c) and read by
 * the driver (run_cluster.py mirrors these constants; change both).
 *
 *   header      CL_HDR words: magic, version, CL_MAX_PEERS, CL_MAX_INC,
 *               msgs, bitmap words W, index, inc, then global counters.
 *   receive     one block per (sender index, sender incarnation), index
 *               major: CL_RECV_HDR counters then W bitmap words (bit seq
 *               set: seq was delivered).
 *   send        one block per destination index: CL_SEND_HDR counters
 *               then W bitmap words (bit seq set: seq came back as a dead
 *               letter with its seq known).
 */
#ifndef AXON_TESTS_CLUSTER_STATE_H
#define AXON_TESTS_CLUSTER_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define CL_MAGIC 0x3154535543584158ull /* "AXCUST1" */
#define CL_VERSION 1
#define CL_MAX_PEERS 17 /* 16 systems and the intruder */
#define CL_MAX_INC 4
#define CL_MAX_MSGS 1000000u

/* header words */
enum {
    CL_H_MAGIC, CL_H_VERSION, CL_H_MAX_PEERS, CL_H_MAX_INC, CL_H_MSGS, CL_H_WORDS, CL_H_INDEX,
    CL_H_INC, CL_H_BAD_RECV, CL_H_FOREIGN_DL, CL_H_UNEXPECTED, CL_H_DONE,
    CL_HDR = 16
};
/* receive block counters */
enum { CL_DELIVERED, CL_DUPS, CL_OOO, CL_LAST_PLUS1, CL_RECV_HDR = 4 };
/* send block counters */
enum {
    CL_SENT, CL_DL_KNOWN, CL_DL_UNKNOWN, CL_DL_OTHER, CL_DL_DUP, CL_ST_CLOSED, CL_ST_TIMEDOUT,
    CL_ST_NOBUFS, CL_ST_NOTFOUND, CL_ST_OTHER, CL_TELL_ERRORS, CL_SEND_HDR = 12
};

static inline uint64_t cl_words(uint64_t msgs)
{
    return (msgs + 63) / 64;
}

static inline uint64_t cl_state_words(uint64_t msgs)
{
    uint64_t w = cl_words(msgs);

    return CL_HDR + (uint64_t)CL_MAX_PEERS * CL_MAX_INC * (CL_RECV_HDR + w) +
           (uint64_t)CL_MAX_PEERS * (CL_SEND_HDR + w);
}

static inline void cl_state_init(uint64_t *st, uint64_t msgs, unsigned index, unsigned inc)
{
    memset(st, 0, cl_state_words(msgs) * sizeof *st);
    st[CL_H_VERSION] = CL_VERSION;
    st[CL_H_MAX_PEERS] = CL_MAX_PEERS;
    st[CL_H_MAX_INC] = CL_MAX_INC;
    st[CL_H_MSGS] = msgs;
    st[CL_H_WORDS] = cl_words(msgs);
    st[CL_H_INDEX] = index;
    st[CL_H_INC] = inc;
    st[CL_H_MAGIC] = CL_MAGIC; /* last: the file is complete */
}

static inline uint64_t *cl_recv(uint64_t *st, unsigned idx, unsigned inc)
{
    return st + CL_HDR + ((uint64_t)idx * CL_MAX_INC + inc) * (CL_RECV_HDR + st[CL_H_WORDS]);
}

static inline uint64_t *cl_recv_bits(uint64_t *st, unsigned idx, unsigned inc)
{
    return cl_recv(st, idx, inc) + CL_RECV_HDR;
}

static inline uint64_t *cl_send(uint64_t *st, unsigned dst)
{
    uint64_t w = st[CL_H_WORDS];

    return st + CL_HDR + (uint64_t)CL_MAX_PEERS * CL_MAX_INC * (CL_RECV_HDR + w) +
           (uint64_t)dst * (CL_SEND_HDR + w);
}

static inline uint64_t *cl_send_bits(uint64_t *st, unsigned dst)
{
    return cl_send(st, dst) + CL_SEND_HDR;
}

/* Set bit i; true when it was set already. */
static inline bool cl_bit_test_set(uint64_t *bits, uint64_t i)
{
    uint64_t m = 1ull << (i % 64);
    bool was = (bits[i / 64] & m) != 0;

    bits[i / 64] |= m;
    return was;
}

/* A message's value: who sent it (index, incarnation) and its seq. */
static inline uint64_t cl_value(unsigned inc, unsigned index, uint64_t seq)
{
    return (uint64_t)inc << 40 | (uint64_t)index << 32 | seq;
}

static inline unsigned cl_value_inc(uint64_t v)
{
    return (unsigned)(v >> 40 & 0xff);
}

static inline unsigned cl_value_idx(uint64_t v)
{
    return (unsigned)(v >> 32 & 0xff);
}

static inline uint64_t cl_value_seq(uint64_t v)
{
    return v & 0xffffffffu;
}

#endif /* AXON_TESTS_CLUSTER_STATE_H */
