/*
 * The wire format of docs/wire.md (version 2), checked three ways:
 *   - the doc's hex vectors, its status table and its frame-type table
 *     equal the constants here and the library's own tables (the doc is
 *     read at run time, so the two cannot drift apart unnoticed);
 *   - the library's encoders produce exactly those bytes, and its decoders
 *     (frame header, envelope, path, DecodeBuffer) read them back field by
 *     field. Control frames (Hello, Auth, Ack, Status, Bye, Heartbeat) are
 *     built by static functions of the network thread, so they are built
 *     here with msgpack-c exactly as the doc says, and the handshake's
 *     HMAC-SHA-256 proofs are computed here with libsodium directly: an
 *     independent codec, which the library's proof functions must match;
 *   - a live system, fed those raw bytes over a plain socket, answers as
 *     the doc says: its Hello carries all nine fields, its Auth is the
 *     proof computed here, its Status, Ack, Bye and Heartbeat frames are
 *     byte-identical to the vectors, bad input closes only its own
 *     connection (before the handshake without any reply), and the
 *     simultaneous-connect, replacement and restart rules pick the
 *     connection the doc says they pick.
 *
 * Every wait is bounded: a missing frame fails the test, it never hangs.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "axon/axon.h"
#include "dispatch/net_internal.h"
#include "serial/frame.h"
#include "serial/pathtab.h"
#include "tests/actor/helpers.h"

#ifndef AXON_WIRE_MD
#error "AXON_WIRE_MD must be the path of docs/wire.md (set by tests/dispatch/CMakeLists.txt)"
#endif

/* Seconds one network step may take before the test fails: every wait
 * ends as soon as its outcome is there, so only a failing test waits this
 * long, and a loaded machine under the sanitizers must not decide. */
#define NET_WAIT_S 30.0
#define FRAME_MAX 4096

/* ---- the vectors of docs/wire.md ----------------------------------------- */

typedef struct vector_s {
    const char *name;
    const char *hex;
} vector_t;

/* The same bytes as the doc's hex blocks; vectors_in_the_doc_equal_the_constants keeps them equal. */
static const vector_t vectors[] = {
    {"hello", "00 00 00 4d 01 00 00 00"
              "99 a4 61 78 6f 6e 02 93 00 c4 04 7f 00 00 01 cd 23 29"
              "cf 01 23 45 67 89 ab cd ef cf 11 22 33 44 55 66 77 88"
              "00 ce 01 00 00 00"
              "c4 20 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
              "10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 00"},
    {"hello_auth", "00 00 00 4d 01 00 00 00"
                   "99 a4 61 78 6f 6e 02 93 00 c4 04 7f 00 00 01 cd 23 29"
                   "cf 01 23 45 67 89 ab cd ef cf 11 22 33 44 55 66 77 88"
                   "01 ce 01 00 00 00"
                   "c4 20 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
                   "10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 00"},
    {"hello_server_auth", "00 00 00 4d 01 00 00 00"
                          "99 a4 61 78 6f 6e 02 93 00 c4 04 7f 00 00 01 cd 23 28"
                          "cf fe dc ba 98 76 54 32 10 cf 11 22 33 44 55 66 77 88"
                          "01 ce 01 00 00 00"
                          "c4 20 20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f"
                          "30 31 32 33 34 35 36 37 38 39 3a 3b 3c 3d 3e 3f 00"},
    {"hello_client", "00 00 00 4b 01 00 00 00"
                     "99 a4 61 78 6f 6e 02 93 00 c4 04 00 00 00 00 00"
                     "cf 01 23 45 67 89 ab cd ef cf 11 22 33 44 55 66 77 88"
                     "02 ce 01 00 00 00"
                     "c4 20 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
                     "10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 00"},
    {"auth_initiator", "00 00 00 22 07 00 00 00 c4 20"
                       "3e 42 7e 52 4a d9 e5 4b 7c e1 1d 03 57 57 14 d4"
                       "f9 b8 7a 6b 74 c3 19 f0 1b 83 3c 77 73 4a 55 b0"},
    {"auth_acceptor", "00 00 00 22 07 00 00 00 c4 20"
                      "0e 90 44 a6 08 10 2a f9 90 b0 ca e2 3d 07 4f b7"
                      "6a ed 44 ad 1f cc bc 92 1d a4 3d c2 6a f9 a4 41"},
    {"data_u64", "00 00 00 1f 02 00 00 00 93"
                 "94 01 c4 04 7f 00 00 01 cd 23 28 a4 65 63 68 6f"
                 "94 00 c4 04 7f 00 00 01 cd 23 29 07 03 29"},
    {"data_u64_nil_sender", "00 00 00 14 02 00 00 00 93"
                            "94 01 c4 04 7f 00 00 01 cd 23 28 a4 65 63 68 6f c0 03 29"},
    {"data_to_nobody", "00 00 00 21 02 00 00 00 93"
                       "94 01 c4 04 7f 00 00 01 cd 23 28 a6 6e 6f 62 6f 64 79"
                       "94 00 c4 04 7f 00 00 01 cd 23 29 07 03 29"},
    {"hello_ids", "00 00 00 4f 01 00 00 00"
                  "99 a4 61 78 6f 6e 02 93 00 c4 04 7f 00 00 01 cd 23 29"
                  "cf 01 23 45 67 89 ab cd ef cf 11 22 33 44 55 66 77 88"
                  "00 ce 01 00 00 00"
                  "c4 20 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
                  "10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f cd 04 00"},
    {"data_u64_def", "00 00 00 23 02 00 00 00 93"
                     "92 00 94 01 c4 04 7f 00 00 01 cd 23 28 a4 65 63 68 6f"
                     "92 01 94 00 c4 04 7f 00 00 01 cd 23 29 07 03 29"},
    {"data_u64_ref", "00 00 00 05 02 00 00 00 93 00 01 03 29"},
    {"status_notfound", "00 00 00 25 03 00 07 00 92 03 c4 21 93"
                        "94 01 c4 04 7f 00 00 01 cd 23 28 a6 6e 6f 62 6f 64 79"
                        "94 00 c4 04 7f 00 00 01 cd 23 29 07 03 29"},
    {"ack", "00 00 00 01 06 00 00 00 03"},
    {"status_toobig", "00 00 00 02 03 00 0a 00 91 00"},
    {"bye", "00 00 00 00 04 00 00 00"},
    {"heartbeat", "00 00 00 00 05 00 00 00"},
    {"path_unique_ipv4", "94 00 c4 04 c0 a8 01 14 cd 23 28 2a"},
    {"path_named_ipv6", "94 05 c4 10 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01"
                        "cd 23 28 a4 65 63 68 6f"},
};

#define NVECTORS (sizeof vectors / sizeof vectors[0])

/* The Data frame encoders with unpacked paths: only these tests use them,
 * so they live here; the library sends with packed paths. src may be
 * NULL (sent from outside any actor). */
static ax_status_t pack_paths(const ax_path_t *dst, const ax_path_t *src, ax__packed_path_t *d,
                              ax__packed_path_t *s, const ax__packed_path_t **srcp)
{
    ax_status_t st = ax__path_packed(dst, d);

    *srcp = src != NULL ? s : NULL;
    if (st == AX_OK && src != NULL)
        st = ax__path_packed(src, s);
    return st;
}

static ax_status_t frame_encode_data(ax_encode_buffer_t *eb, const ax_path_t *dst, const ax_path_t *src,
                                     const ax_msg_type_t *type, const ax_msg_t *msg, ax_lease_t *frame,
                                     uint32_t *payload_off)
{
    ax__packed_path_t d, s;
    const ax__packed_path_t *sp;
    ax__packed_env_t env;
    ax_status_t st = pack_paths(dst, src, &d, &s, &sp);

    if (st == AX_OK)
        st = ax__envelope_packed(&d, sp, type->serialiser_id, &env);
    return st != AX_OK ? st : ax__frame_encode_data_env(eb, &env, type, msg, frame, payload_off);
}

static ax_status_t frame_encode_head(ax_encode_buffer_t *eb, const ax_path_t *dst, const ax_path_t *src,
                                     uint64_t serialiser_id, size_t payload_len, ax_lease_t *head)
{
    ax__packed_path_t d, s;
    const ax__packed_path_t *sp;
    ax_status_t st = pack_paths(dst, src, &d, &s, &sp);

    return st != AX_OK ? st : ax__frame_encode_head_packed(eb, &d, sp, serialiser_id, payload_len, head);
}

/* The fields the vectors were made from. */
#define V_SERVER "tcp://127.0.0.1:9000/echo"
#define V_NOBODY "tcp://127.0.0.1:9000/nobody"
#define V_CLIENT "tcp://127.0.0.1:9001#7"
#define V_INCARNATION UINT64_C(0x0123456789abcdef)
#define V_SESSION UINT64_C(0x1122334455667788)
#define V_SERVER_ADDR "127.0.0.1:9000"
#define V_SERVER_INCARNATION UINT64_C(0xfedcba9876543210)
#define V_MAX_FRAME UINT64_C(0x01000000) /* 16 MiB, the default limit */
#define V_COOKIE "axon-test-cookie"
/* The v1 Hello of the earlier version of the doc: refused since version 2. */
#define V1_HELLO                                                                                   \
    "00 00 00 24 01 00 00 00 95 a4 61 78 6f 6e 01 93 00 c4 04 7f 00 00 01 cd 23 29"               \
    "cf 01 23 45 67 89 ab cd ef cf 11 22 33 44 55 66 77 88"

typedef struct bytes_s {
    unsigned char b[FRAME_MAX];
    size_t n;
} bytes_t;

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex pairs in text[0, len), whitespace anywhere between them. False on
 * anything else, so a typo in the doc fails loudly. */
static bool hex_decode(const char *text, size_t len, bytes_t *out)
{
    out->n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')
            continue;
        if (i + 1 >= len || (hi = hex_digit(text[i])) < 0 || (lo = hex_digit(text[i + 1])) < 0 ||
            out->n == sizeof out->b)
            return false;
        out->b[out->n++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    return true;
}

static bytes_t vec(const char *name)
{
    bytes_t v;

    for (size_t i = 0; i < NVECTORS; i++) {
        if (strcmp(vectors[i].name, name) == 0) {
            cr_assert(hex_decode(vectors[i].hex, strlen(vectors[i].hex), &v), "bad hex in %s", name);
            return v;
        }
    }
    cr_assert_fail("no vector %s", name);
    return v;
}

/* Hex written in the test itself. */
static bytes_t hexb(const char *hex)
{
    bytes_t b;

    cr_assert(hex_decode(hex, strlen(hex), &b), "bad hex: %s", hex);
    return b;
}

static void dump(const char *what, const unsigned char *b, size_t n)
{
    fprintf(stderr, "%s (%zu bytes):", what, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02x", b[i]);
    fprintf(stderr, "\n");
}

static void expect_bytes(const char *what, const unsigned char *got, size_t n, const bytes_t *want)
{
    if (n != want->n || memcmp(got, want->b, n) != 0) {
        dump("got ", got, n);
        dump("want", want->b, want->n);
        cr_assert_fail("%s: bytes differ from the vector", what);
    }
}

static char *read_doc(void)
{
    FILE *f = fopen(AXON_WIRE_MD, "rb");
    char *text;
    long len;

    cr_assert_not_null(f, "cannot open %s", AXON_WIRE_MD);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    cr_assert_gt(len, 0);
    rewind(f);
    text = malloc((size_t)len + 1);
    cr_assert_not_null(text);
    cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
    text[len] = '\0';
    fclose(f);
    return text;
}

/* The text of section "## <number>." up to the next "## ". */
static const char *doc_section(const char *doc, const char *heading, size_t *len)
{
    const char *s = strstr(doc, heading);
    const char *e;

    cr_assert_not_null(s, "docs/wire.md has no \"%s\"", heading);
    e = strstr(s + 1, "\n## ");
    *len = e != NULL ? (size_t)(e - s) : strlen(s);
    return s;
}

/* ---- small encoders -------------------------------------------------------- */

static void header(unsigned char out[AX__FRAME_HEADER_SIZE], uint8_t type, ax_status_t st, size_t body)
{
    ax__frame_header_write(out, &(ax__frame_header_t){(uint32_t)body, type, 0, ax_status_to_byte(st)});
}

/* A frame of `type` whose body is what the sbuffer holds (NULL: empty). */
static bytes_t frame_of(uint8_t type, ax_status_t st, const msgpack_sbuffer *body)
{
    bytes_t f;
    size_t n = body != NULL ? body->size : 0;

    cr_assert_leq(n + AX__FRAME_HEADER_SIZE, sizeof f.b);
    header(f.b, type, st, n);
    if (n > 0)
        memcpy(f.b + AX__FRAME_HEADER_SIZE, body->data, n);
    f.n = AX__FRAME_HEADER_SIZE + n;
    return f;
}

static int pack_address(msgpack_packer *pk, const ax_addr_t *a)
{
    size_t n = a->family == 6 ? 16 : 4;

    return msgpack_pack_array(pk, 3) || msgpack_pack_uint64(pk, a->family == 6 ? 0x04 : 0x00) ||
           msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, a->ip, n) ||
           msgpack_pack_uint64(pk, a->port);
}

#define NONCE_SIZE 32u
#define PROOF_SIZE 32u

/* The nine fields of a Hello (section 7), to build one or as parsed. */
typedef struct hello_s {
    const char *magic;
    uint64_t version;
    ax_addr_t addr;
    uint64_t incarnation, session, flags, max_frame;
    unsigned char nonce[NONCE_SIZE];
    size_t nonce_len;
    uint64_t path_ids;
    uint32_t fields; /* 9; another count only on purpose */
} hello_t;

static ax_addr_t addr_of(const char *text);

/* A well-formed version 2 Hello from `addr`, with the vectors' nonce
 * 00..1f and limit; callers change what a case needs. */
static hello_t hello_of(const char *addr, uint64_t incarnation, uint64_t session, uint64_t flags)
{
    hello_t h = {.magic = "axon", .version = 2, .addr = addr_of(addr), .incarnation = incarnation,
                 .session = session, .flags = flags, .max_frame = V_MAX_FRAME, .nonce_len = NONCE_SIZE,
                 .path_ids = 0, .fields = 9};

    for (unsigned i = 0; i < NONCE_SIZE; i++)
        h.nonce[i] = (unsigned char)i;
    return h;
}

/* A Hello frame packed with msgpack-c exactly as section 7 says; up to
 * h->fields of the nine fields are written, then nils beyond nine. */
static bytes_t hello_frame(const hello_t *h)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bytes_t f;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc = msgpack_pack_array(&pk, h->fields);
    for (uint32_t i = 0; i < h->fields && rc == 0; i++) {
        switch (i) {
        case 0:
            rc = msgpack_pack_str(&pk, strlen(h->magic)) || msgpack_pack_str_body(&pk, h->magic, strlen(h->magic));
            break;
        case 1:
            rc = msgpack_pack_uint64(&pk, h->version);
            break;
        case 2:
            rc = pack_address(&pk, &h->addr);
            break;
        case 3:
            rc = msgpack_pack_uint64(&pk, h->incarnation);
            break;
        case 4:
            rc = msgpack_pack_uint64(&pk, h->session);
            break;
        case 5:
            rc = msgpack_pack_uint64(&pk, h->flags);
            break;
        case 6:
            rc = msgpack_pack_uint64(&pk, h->max_frame);
            break;
        case 7:
            rc = msgpack_pack_bin(&pk, h->nonce_len) || msgpack_pack_bin_body(&pk, h->nonce, h->nonce_len);
            break;
        case 8:
            rc = msgpack_pack_uint64(&pk, h->path_ids);
            break;
        default:
            rc = msgpack_pack_nil(&pk);
            break;
        }
    }
    cr_assert_eq(rc, 0);
    f = frame_of(AX__FRAME_HELLO, AX_OK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return f;
}

/* HMAC-SHA-256(secret, "axon-auth-2" || role || hello_i || hello_a), the
 * proof of section 7, computed here with libsodium directly: an
 * independent check of the library's proofs and of the doc's vectors.
 * The Hello arguments are whole frames; the proof covers their bodies. */
static void proof_of(const char *secret, uint8_t role, const bytes_t *hello_i, const bytes_t *hello_a,
                     unsigned char out[PROOF_SIZE])
{
    crypto_auth_hmacsha256_state st;

    cr_assert_eq(crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret)), 0);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"axon-auth-2", 11);
    crypto_auth_hmacsha256_update(&st, &role, 1);
    crypto_auth_hmacsha256_update(&st, hello_i->b + AX__FRAME_HEADER_SIZE, hello_i->n - AX__FRAME_HEADER_SIZE);
    crypto_auth_hmacsha256_update(&st, hello_a->b + AX__FRAME_HEADER_SIZE, hello_a->n - AX__FRAME_HEADER_SIZE);
    crypto_auth_hmacsha256_final(&st, out);
}

/* An Auth frame: bin 32, the proof. */
static bytes_t auth_frame(const unsigned char *proof, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bytes_t f;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(msgpack_pack_bin(&pk, len) || msgpack_pack_bin_body(&pk, proof, len), 0);
    f = frame_of(AX__FRAME_AUTH, AX_OK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return f;
}

static bytes_t ack_frame(uint64_t count)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bytes_t f;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(msgpack_pack_uint64(&pk, count), 0);
    f = frame_of(AX__FRAME_ACK, AX_OK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return f;
}

/* A Status frame: [seq] or, with a returned Data frame, [seq, bin(its body)]. */
static bytes_t status_frame(ax_status_t why, uint64_t seq, const bytes_t *returned)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bytes_t f;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (returned == NULL) {
        rc = msgpack_pack_array(&pk, 1) || msgpack_pack_uint64(&pk, seq);
    } else {
        size_t n = returned->n - AX__FRAME_HEADER_SIZE;

        rc = msgpack_pack_array(&pk, 2) || msgpack_pack_uint64(&pk, seq) || msgpack_pack_bin(&pk, n) ||
             msgpack_pack_bin_body(&pk, returned->b + AX__FRAME_HEADER_SIZE, n);
    }
    cr_assert_eq(rc, 0);
    f = frame_of(AX__FRAME_STATUS, why, &sb);
    msgpack_sbuffer_destroy(&sb);
    return f;
}

static ax_path_t path(const char *text)
{
    ax_path_t p;

    cr_assert_eq(ax_path_parse(text, &p), AX_OK, "%s: %s", text, ax_error_detail());
    return p;
}

static ax_addr_t addr_of(const char *text)
{
    ax_addr_t a;

    cr_assert_eq(ax_addr_parse(text, &a), AX_OK, "%s: %s", text, ax_error_detail());
    return a;
}

static ax_encode_buffer_t *encoder(void)
{
    ax_buffer_config_t bc = AX_BUFFER_CONFIG_DEFAULT;
    ax_encode_buffer_t *eb = NULL;

    bc.chunk_size = 16 * 1024;
    bc.initial_chunk_count = 1;
    bc.max_chunk_count = 8;
    cr_assert_eq(ax_encode_buffer_create(&bc, &eb), AX_OK);
    return eb;
}

static size_t lease_bytes(const ax_lease_t *l, unsigned char *out, size_t cap)
{
    size_t n = ax_lease_len(l);

    cr_assert_leq(n, cap, "a frame of %zu bytes", n);
    cr_assert_eq(ax_lease_copy_out(l, 0, out, n), n);
    return n;
}

/* A Data frame carrying a u64, made by the library's own encoder. */
static bytes_t data_frame(ax_encode_buffer_t *eb, const char *dst, const char *src, uint64_t value,
                          uint32_t *payload_off)
{
    ax_path_t d = path(dst), s;
    ax_msg_t *m = NULL;
    ax_lease_t frame;
    uint32_t off = 0;
    bytes_t f;

    if (src != NULL)
        s = path(src);
    cr_assert_eq(ax_u64_msg_new(value, &m), AX_OK);
    cr_assert_eq(frame_encode_data(eb, &d, src != NULL ? &s : NULL, &ax_u64_type, m, &frame, &off),
                 AX_OK);
    f.n = lease_bytes(&frame, f.b, sizeof f.b);
    ax_lease_release(&frame);
    ax_msg_release(&m);
    if (payload_off != NULL)
        *payload_off = off;
    return f;
}

/* Unpack exactly one msgpack object from b[0, n) into zone. */
static msgpack_object unpack_one(const unsigned char *b, size_t n, msgpack_zone *zone)
{
    msgpack_object o;
    size_t off = 0;

    cr_assert_eq(msgpack_unpack((const char *)b, n, &off, zone, &o), MSGPACK_UNPACK_SUCCESS,
                 "not exactly one msgpack object");
    return o;
}

/* ---- the doc agrees with the code ------------------------------------------------ */

Test(wire_doc, vectors_in_the_doc_equal_the_constants)
{
    char *doc = read_doc();
    bool seen[NVECTORS] = {false};
    const char *at = doc;
    size_t blocks = 0;

    while ((at = strstr(at, "<!-- vector: ")) != NULL) {
        char name[64];
        const char *open, *body, *close;
        size_t i;
        bytes_t got, want;

        cr_assert_eq(sscanf(at, "<!-- vector: %63s -->", name), 1);
        for (i = 0; i < NVECTORS && strcmp(vectors[i].name, name) != 0; i++)
            ;
        cr_assert_lt(i, NVECTORS, "docs/wire.md has a vector \"%s\" the test does not know", name);
        cr_assert(!seen[i], "vector %s appears twice in docs/wire.md", name);
        seen[i] = true;
        /* The block must follow its marker directly, so that a marker
         * cannot silently name some other block further down. */
        open = strstr(at, "-->\n```hex\n");
        cr_assert(open != NULL && open == strstr(at, "-->"), "vector %s: no ```hex block right after it",
                  name);
        body = open + strlen("-->\n```hex\n");
        close = strstr(body, "```");
        cr_assert_not_null(close);
        cr_assert(hex_decode(body, (size_t)(close - body), &got), "vector %s: bad hex in the doc", name);
        want = vec(name);
        expect_bytes(name, got.b, got.n, &want);
        blocks++;
        at = close;
    }
    for (size_t i = 0; i < NVECTORS; i++)
        cr_assert(seen[i], "vector %s is missing from docs/wire.md", vectors[i].name);
    cr_assert_eq(blocks, NVECTORS);
    free(doc);
}

#define COUNT_STATUS(name, byte, msg) +1
enum { N_STATUS = 0 AX_STATUS_MAP(COUNT_STATUS) };
#undef COUNT_STATUS

Test(wire_doc, status_table_is_the_status_map)
{
    char *doc = read_doc();
    size_t len, rows = 0;
    const char *sec = doc_section(doc, "## 10. Status codes", &len);
    char *copy = strndup(sec, len);
    bool seen[N_STATUS] = {false};

    for (char *line = strtok(copy, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        unsigned byte;
        char name[64], msg[128];
        size_t ml;

        if (sscanf(line, "| %u | %63s | %127[^|]|", &byte, name, msg) != 3)
            continue;
        for (ml = strlen(msg); ml > 0 && msg[ml - 1] == ' '; ml--)
            msg[ml - 1] = '\0';
        cr_assert_lt(byte, N_STATUS, "the doc lists byte %u, which is not in AX_STATUS_MAP", byte);
        cr_assert(!seen[byte], "byte %u twice", byte);
        seen[byte] = true;
        rows++;
        cr_assert_str_eq(name, ax_status_name(ax_status_from_byte((uint8_t)byte)), "byte %u", byte);
        cr_assert_str_eq(msg, ax_status_str(ax_status_from_byte((uint8_t)byte)), "byte %u", byte);
        cr_assert_eq(ax_status_to_byte(ax_status_from_byte((uint8_t)byte)), byte);
    }
    cr_assert_eq(rows, N_STATUS, "the doc lists %zu statuses, AX_STATUS_MAP has %d", rows, N_STATUS);
    /* "Bytes 19 to 255 are unassigned": the doc names the first free byte. */
    cr_assert_eq(N_STATUS, 19, "update section 10 of docs/wire.md: the first free byte moved");
    for (unsigned b = N_STATUS; b <= 255; b++)
        cr_assert_eq(ax_status_from_byte((uint8_t)b), AX_EUNKNOWN, "byte %u", b);
    free(copy);
    free(doc);
}

Test(wire_doc, frame_type_table_is_the_enum)
{
    static const struct {
        const char *name;
        unsigned type;
    } types[] = {
        {"Hello", AX__FRAME_HELLO},         {"Data", AX__FRAME_DATA}, {"Status", AX__FRAME_STATUS},
        {"Bye", AX__FRAME_BYE},             {"Heartbeat", AX__FRAME_HEARTBEAT},
        {"Ack", AX__FRAME_ACK},             {"Auth", AX__FRAME_AUTH},
    };
    char *doc = read_doc();
    size_t len, rows = 0;
    const char *sec = doc_section(doc, "## 4. Frame types", &len);
    char *copy = strndup(sec, len);

    for (char *line = strtok(copy, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        unsigned type;
        char name[32];
        size_t i;

        if (sscanf(line, "| %u | %31s |", &type, name) != 2)
            continue;
        for (i = 0; i < sizeof types / sizeof types[0] && strcmp(types[i].name, name) != 0; i++)
            ;
        cr_assert_lt(i, sizeof types / sizeof types[0], "unknown frame type %s in the doc", name);
        cr_assert_eq(type, types[i].type, "%s is %u in the doc and %u in serial/frame.h", name, type,
                     types[i].type);
        rows++;
    }
    cr_assert_eq(rows, sizeof types / sizeof types[0]);
    /* Types outside the table are refused (section 3). */
    for (unsigned t = 0; t <= 255; t++) {
        unsigned char h[AX__FRAME_HEADER_SIZE] = {0, 0, 0, 0, (unsigned char)t, 0, 0, 0};
        ax__frame_header_t fh;
        bool known = t >= AX__FRAME_HELLO && t <= AX__FRAME_AUTH;

        cr_assert_eq(ax__frame_header_read(h, &fh), known ? AX_OK : AX_EPROTO, "type %u", t);
    }
    free(copy);
    free(doc);
}

/* ---- the library produces and parses the vectors ------------------------------------- */

static bytes_t packed_path(const ax_path_t *p)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bytes_t b;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(ax_path_pack(p, &pk), 0);
    cr_assert_leq(sb.size, sizeof b.b);
    memcpy(b.b, sb.data, sb.size);
    b.n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return b;
}

Test(wire_codec, path_vectors)
{
    static const struct {
        const char *vector, *text;
    } cases[] = {
        {"path_unique_ipv4", "tcp://192.168.1.20:9000#42"},
        {"path_named_ipv6", "tcp://[2001:db8::1]:9000/echo"},
    };
    msgpack_zone *zone = msgpack_zone_new(1024);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ax_path_t p = path(cases[i].text), back;
        bytes_t want = vec(cases[i].vector), got = packed_path(&p);
        char text[AX_PATH_STR_MAX];
        msgpack_object o;

        expect_bytes(cases[i].vector, got.b, got.n, &want);
        o = unpack_one(want.b, want.n, zone);
        cr_assert_eq(ax_path_unpack(&o, &back), AX_OK, "%s", ax_error_detail());
        cr_assert_eq(ax_path_cmp(&p, &back), 0);
        ax_path_format(&back, text, sizeof text);
        cr_assert_str_eq(text, cases[i].text);
        msgpack_zone_clear(zone);
    }
    msgpack_zone_free(zone);
}

/* Section 5.2: the four valid flags values, and every other bit refused. */
Test(wire_codec, path_flag_bits)
{
    static const struct {
        const char *text;
        uint64_t flags;
    } valid[] = {
        {"tcp://10.0.0.1:1#5", 0x00},
        {"tcp://10.0.0.1:1/a", 0x01},
        {"tcp://[::1]:1#5", 0x04},
        {"tcp://[::1]:1/a", 0x05},
    };
    msgpack_zone *zone = msgpack_zone_new(1024);

    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        ax_path_t p = path(valid[i].text), back;
        bytes_t b = packed_path(&p);
        msgpack_object o = unpack_one(b.b, b.n, zone);

        cr_assert_eq(o.via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        cr_assert_eq(o.via.array.ptr[0].via.u64, valid[i].flags, "%s", valid[i].text);
        cr_assert_eq(b.b[1], valid[i].flags, "flags are one positive fixint");
        /* Every other value of the flags element is refused, whatever the rest. */
        for (uint64_t f = 0; f < 0x200; f++) {
            /* The other three valid values disagree with this path's ip
             * length or target type, so they are refused too. */
            if (f == valid[i].flags)
                continue;
            o.via.array.ptr[0].via.u64 = f;
            cr_assert_eq(ax_path_unpack(&o, &back), AX_EPROTO, "flags 0x%llx accepted",
                         (unsigned long long)f);
        }
        o.via.array.ptr[0].via.u64 = valid[i].flags;
        cr_assert_eq(ax_path_unpack(&o, &back), AX_OK);
        cr_assert_eq(ax_path_cmp(&p, &back), 0);
        msgpack_zone_clear(zone);
    }
    msgpack_zone_free(zone);
}

Test(wire_codec, data_vectors)
{
    static const struct {
        const char *vector, *dst, *src;
        uint32_t payload_off;
    } cases[] = {
        {"data_u64", V_SERVER, V_CLIENT, 38},
        {"data_u64_nil_sender", V_SERVER, NULL, 27},
        {"data_to_nobody", V_NOBODY, V_CLIENT, 40},
    };
    ax_encode_buffer_t *eb = encoder();
    msgpack_zone *zone = msgpack_zone_new(1024);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes_t want = vec(cases[i].vector), got;
        uint32_t poff = 0;
        ax_path_t d = path(cases[i].dst), s;
        ax__frame_header_t h;
        ax__envelope_t env;
        ax_lease_t head, frame;
        msgpack_object o;
        size_t taken = 0;
        ax_decode_buffer_t *db = NULL;
        ax_buffer_config_t bc = AX_BUFFER_CONFIG_DEFAULT;

        /* Encoded whole, as a lazy or eager send does. */
        got = data_frame(eb, cases[i].dst, cases[i].src, 41, &poff);
        expect_bytes(cases[i].vector, got.b, got.n, &want);
        cr_assert_eq(poff, cases[i].payload_off);

        /* Head and payload apart, as a preserialised send does. */
        if (cases[i].src != NULL)
            s = path(cases[i].src);
        cr_assert_eq(frame_encode_head(eb, &d, cases[i].src ? &s : NULL, AX_SER_U64, 1, &head), AX_OK);
        got.n = lease_bytes(&head, got.b, sizeof got.b);
        ax_lease_release(&head);
        cr_assert_eq(got.n, (size_t)cases[i].payload_off);
        got.b[got.n++] = 0x29;
        expect_bytes(cases[i].vector, got.b, got.n, &want);

        /* Parsed back the way the network thread does: DecodeBuffer, header, envelope. */
        bc.chunk_size = 4096;
        cr_assert_eq(ax_decode_buffer_create(&bc, &(ax_frame_format_t){AX__FRAME_HEADER_SIZE, 1 << 20}, &db),
                     AX_OK);
        cr_assert_eq(ax_decode_buffer_feed(db, want.b, want.n, &taken), AX_OK);
        cr_assert_eq(ax_decode_buffer_next(db, &frame), AX_OK);
        cr_assert_eq(ax_lease_len(&frame), want.n);
        cr_assert_eq(ax__frame_header_read(want.b, &h), AX_OK);
        cr_assert_eq(h.body_len, want.n - AX__FRAME_HEADER_SIZE);
        cr_assert_eq(h.type, AX__FRAME_DATA);
        cr_assert_eq(h.flags, 0);
        cr_assert_eq(h.status, 0);
        cr_assert_eq(ax__envelope_read(&frame, AX__FRAME_HEADER_SIZE, &env), AX_OK, "%s", ax_error_detail());
        cr_assert_eq(ax_path_cmp(&env.dst, &d), 0);
        cr_assert_eq(env.has_src, cases[i].src != NULL);
        if (cases[i].src != NULL)
            cr_assert_eq(ax_path_cmp(&env.src, &s), 0);
        cr_assert_eq(env.serialiser_id, AX_SER_U64);
        cr_assert_eq(env.payload_off, cases[i].payload_off);
        o = unpack_one(want.b + env.payload_off, want.n - env.payload_off, zone);
        cr_assert_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        cr_assert_eq(o.via.u64, 41);
        msgpack_zone_clear(zone);
        ax_lease_release(&frame);
        ax_decode_buffer_destroy(&db);
    }
    msgpack_zone_free(zone);
    ax_encode_buffer_destroy(&eb);
}

static void count_lent(void *arg)
{
    (*(int *)arg)++;
}

/*
 * A lazy send's large bytes or string body is lent to its frame, not
 * copied (serial/frame.h): the bytes on the wire are the same as the
 * copied frame's, byte for byte, the body is written from the message's
 * own memory, and the message is released only when the frame's last
 * lease goes. Below AX__FRAME_LEND_MIN, and for other types, the frame is
 * a copy and the caller keeps the message.
 */
Test(wire_codec, a_large_body_is_lent_to_its_frame_and_sent_as_copied)
{
    static const struct {
        const ax_msg_type_t *type;
        size_t len;
        bool lent;
    } cases[] = {
        {&ax_bytes_type, 65536, true},
        {&ax_string_type, AX__FRAME_LEND_MIN, true},
        {&ax_bytes_view_type, 100000, true},
        {&ax_bytes_type, AX__FRAME_LEND_MIN - 1, false},
        {&ax_u64_type, 0, false},
    };
    ax_encode_buffer_t *eb = encoder();
    ax_path_t d = path(V_SERVER), src = path(V_CLIENT);
    ax__packed_path_t pd, ps;
    const ax__packed_path_t *psp;

    cr_assert_eq(pack_paths(&d, &src, &pd, &ps, &psp), AX_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ax_msg_type_t *type = cases[i].type;
        unsigned char *body = malloc(cases[i].len + 1);
        ax_bytes_msg_t bm = {.data = body, .len = cases[i].len};
        ax_u64_msg_t um = {.value = 77};
        ax_msg_t *m = type == &ax_u64_type ? &um.hdr : &bm.hdr;
        ax__packed_env_t env;
        ax_lease_t copied, lent_frame = AX_LEASE_EMPTY;
        uint32_t off_c = 0, off_l = 0;
        size_t n;
        unsigned char *a, *b;
        struct iovec iov[8];
        bool lent = !cases[i].lent;
        int released = 0;

        for (size_t k = 0; k < cases[i].len; k++)
            body[k] = (unsigned char)('a' + k % 26);
        ax_msg_init(m, type);
        cr_assert_eq(ax__envelope_packed(&pd, psp, type->serialiser_id, &env), AX_OK);
        cr_assert_eq(ax__frame_encode_data_env(eb, &env, type, m, &copied, &off_c), AX_OK);
        cr_assert_eq(ax__frame_encode_data_lent(eb, &env, type, m, count_lent, &released, &lent_frame, &off_l,
                                                &lent),
                     AX_OK, "case %zu: %s", i, ax_error_detail());
        cr_assert_eq(lent, cases[i].lent, "case %zu: lent %d", i, lent);
        cr_assert_eq(off_l, off_c, "case %zu: the payload starts where the copy's does", i);
        n = ax_lease_len(&copied);
        cr_assert_eq(ax_lease_len(&lent_frame), n, "case %zu", i);
        a = malloc(n);
        b = malloc(n);
        cr_assert_eq(ax_lease_copy_out(&copied, 0, a, n), n);
        cr_assert_eq(ax_lease_copy_out(&lent_frame, 0, b, n), n);
        cr_assert_eq(memcmp(a, b, n), 0, "case %zu: the lent frame's bytes differ from the copy's", i);
        if (lent) {
            size_t k = ax_lease_iovec(&lent_frame, 0, iov, 8);

            cr_assert_eq(iov[k - 1].iov_base, body, "case %zu: the body was copied", i);
            cr_assert_eq(iov[k - 1].iov_len, cases[i].len);
        }
        ax_lease_release(&copied);
        cr_assert_eq(released, 0, "case %zu: released before its frame", i);
        ax_lease_release(&lent_frame);
        cr_assert_eq(released, lent ? 1 : 0, "case %zu: released %d times", i, released);
        free(a);
        free(b);
        free(body);
    }
    ax_encode_buffer_destroy(&eb);
}

Test(wire_codec, control_vectors)
{
    ax_encode_buffer_t *eb = encoder();
    bytes_t nobody = data_frame(eb, V_NOBODY, V_CLIENT, 41, NULL);
    bytes_t got, want;
    msgpack_zone *zone = msgpack_zone_new(1024);
    ax__frame_header_t h;
    msgpack_object o;

    got = ack_frame(3);
    want = vec("ack");
    expect_bytes("ack", got.b, got.n, &want);
    cr_assert_eq(ax__frame_header_read(want.b, &h), AX_OK);
    cr_assert_eq(h.type, AX__FRAME_ACK);
    o = unpack_one(want.b + 8, want.n - 8, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(o.via.u64, 3);

    got = frame_of(AX__FRAME_BYE, AX_OK, NULL);
    want = vec("bye");
    expect_bytes("bye", got.b, got.n, &want);
    cr_assert_eq(ax__frame_header_read(want.b, &h), AX_OK);
    cr_assert_eq(h.type, AX__FRAME_BYE);
    cr_assert_eq(h.body_len, 0);

    /* The returned frame is the library's own encoding of data_to_nobody. */
    want = vec("data_to_nobody");
    expect_bytes("data_to_nobody", nobody.b, nobody.n, &want);
    got = status_frame(AX_ENOTFOUND, 3, &nobody);
    want = vec("status_notfound");
    expect_bytes("status_notfound", got.b, got.n, &want);
    cr_assert_eq(ax__frame_header_read(want.b, &h), AX_OK);
    cr_assert_eq(h.type, AX__FRAME_STATUS);
    cr_assert_eq(ax_status_from_byte(h.status), AX_ENOTFOUND);
    o = unpack_one(want.b + 8, want.n - 8, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o.via.array.size, 2);
    cr_assert_eq(o.via.array.ptr[0].via.u64, 3);
    cr_assert_eq(o.via.array.ptr[1].type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(o.via.array.ptr[1].via.bin.size, nobody.n - 8);
    cr_assert_eq(memcmp(o.via.array.ptr[1].via.bin.ptr, nobody.b + 8, nobody.n - 8), 0);
    msgpack_zone_clear(zone);

    got = status_frame(AX_ETOOBIG, 0, NULL);
    want = vec("status_toobig");
    expect_bytes("status_toobig", got.b, got.n, &want);
    cr_assert_eq(ax__frame_header_read(want.b, &h), AX_OK);
    cr_assert_eq(ax_status_from_byte(h.status), AX_ETOOBIG);
    o = unpack_one(want.b + 8, want.n - 8, zone);
    cr_assert_eq(o.via.array.size, 1);
    cr_assert_eq(o.via.array.ptr[0].via.u64, 0);

    got = frame_of(AX__FRAME_HEARTBEAT, AX_OK, NULL);
    want = vec("heartbeat");
    expect_bytes("heartbeat", got.b, got.n, &want);
    cr_assert_eq(ax__frame_header_read(want.b, &h), AX_OK);
    cr_assert_eq(h.type, AX__FRAME_HEARTBEAT);
    cr_assert_eq(h.body_len, 0);

    msgpack_zone_free(zone);
    ax_encode_buffer_destroy(&eb);
}

/* A Hello vector read back field by field against section 7. */
static void check_hello_vector(const char *name, const hello_t *want)
{
    bytes_t v = vec(name);
    msgpack_zone *zone = msgpack_zone_new(1024);
    ax__frame_header_t h;
    msgpack_object o, *f, *a;

    cr_assert_eq(ax__frame_header_read(v.b, &h), AX_OK);
    cr_assert_eq(h.type, AX__FRAME_HELLO);
    cr_assert_eq(h.body_len, v.n - AX__FRAME_HEADER_SIZE);
    cr_assert_leq(v.n, AX__HANDSHAKE_FRAME_MAX, "a Hello fits the limit before the handshake");
    o = unpack_one(v.b + 8, v.n - 8, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o.via.array.size, 9);
    f = o.via.array.ptr;
    cr_assert_eq(f[0].type, MSGPACK_OBJECT_STR);
    cr_assert_eq(f[0].via.str.size, 4);
    cr_assert_eq(memcmp(f[0].via.str.ptr, "axon", 4), 0);
    cr_assert_eq(f[1].via.u64, 2);
    cr_assert_eq(f[2].type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(f[2].via.array.size, 3);
    a = f[2].via.array.ptr;
    cr_assert_eq(a[0].via.u64, 0);
    cr_assert_eq(a[1].type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(a[1].via.bin.size, 4);
    cr_assert_eq(memcmp(a[1].via.bin.ptr, want->addr.ip, 4), 0);
    cr_assert_eq(a[2].via.u64, want->addr.port);
    cr_assert_eq(f[3].via.u64, want->incarnation);
    cr_assert_eq(f[4].via.u64, want->session);
    cr_assert_eq(f[5].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(f[5].via.u64, want->flags);
    cr_assert_eq(f[6].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(f[6].via.u64, V_MAX_FRAME);
    cr_assert_eq(f[7].type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(f[7].via.bin.size, NONCE_SIZE);
    cr_assert_eq(memcmp(f[7].via.bin.ptr, want->nonce, NONCE_SIZE), 0);
    cr_assert_eq(f[8].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(f[8].via.u64, 0);
    msgpack_zone_free(zone);
}

/* The Hello, Auth and Heartbeat vectors of section 7: built here with
 * msgpack-c, the proofs with libsodium's HMAC-SHA-256 directly, and the
 * library's own proof functions must agree with both. */
Test(wire_codec, handshake_vectors)
{
    hello_t ci = hello_of("127.0.0.1:9001", V_INCARNATION, V_SESSION, 0);
    hello_t ca = hello_of("127.0.0.1:9001", V_INCARNATION, V_SESSION, AX__HELLO_AUTH);
    hello_t sa = hello_of(V_SERVER_ADDR, V_SERVER_INCARNATION, V_SESSION, AX__HELLO_AUTH);
    hello_t cc = hello_of("0.0.0.0:0", V_INCARNATION, V_SESSION, AX__HELLO_CLIENT);
    bytes_t got, want, hi, ha;
    unsigned char p[PROOF_SIZE], lib[PROOF_SIZE];
    ax__secret_t secret = {.len = strlen(V_COOKIE)};
    static const struct {
        const char *vector;
        uint8_t role;
    } proofs[] = {{"auth_initiator", AX__PROOF_INITIATOR}, {"auth_acceptor", AX__PROOF_ACCEPTOR}};

    cr_assert_eq(sodium_init() < 0, false);
    for (unsigned i = 0; i < NONCE_SIZE; i++)
        sa.nonce[i] = (unsigned char)(0x20 + i);
    got = hello_frame(&ci);
    want = vec("hello");
    expect_bytes("hello", got.b, got.n, &want);
    check_hello_vector("hello", &ci);
    got = hello_frame(&ca);
    want = vec("hello_auth");
    expect_bytes("hello_auth", got.b, got.n, &want);
    check_hello_vector("hello_auth", &ca);
    got = hello_frame(&sa);
    want = vec("hello_server_auth");
    expect_bytes("hello_server_auth", got.b, got.n, &want);
    check_hello_vector("hello_server_auth", &sa);
    got = hello_frame(&cc);
    want = vec("hello_client");
    expect_bytes("hello_client", got.b, got.n, &want);
    check_hello_vector("hello_client", &cc);
    cr_assert_eq(AX__HELLO_CLIENT, 2u, "CLIENT is bit 1 of the Hello's flags");

    hi = vec("hello_auth");
    ha = vec("hello_server_auth");
    memcpy(secret.bytes, V_COOKIE, secret.len);
    for (size_t k = 0; k < sizeof proofs / sizeof proofs[0]; k++) {
        const bytes_t *I = &hi, *A = &ha;

        proof_of(V_COOKIE, proofs[k].role, I, A, p);
        got = auth_frame(p, sizeof p);
        want = vec(proofs[k].vector);
        expect_bytes(proofs[k].vector, got.b, got.n, &want);
        cr_assert_leq(want.n, AX__HANDSHAKE_FRAME_MAX);
        /* The library computes the same proof, accepts it for its role
         * only, and refuses it with one bit changed or one byte short. */
        ax__proof_make(&secret, proofs[k].role, I->b + 8, I->n - 8, A->b + 8, A->n - 8, lib);
        cr_assert_eq(memcmp(lib, p, PROOF_SIZE), 0, "%s: the library's proof differs", proofs[k].vector);
        cr_assert(ax__proof_check(&secret, proofs[k].role, I->b + 8, I->n - 8, A->b + 8, A->n - 8, p,
                                  PROOF_SIZE));
        cr_assert(!ax__proof_check(&secret, 3 - proofs[k].role, I->b + 8, I->n - 8, A->b + 8, A->n - 8,
                                   p, PROOF_SIZE),
                  "a proof for one role is refused for the other");
        cr_assert(!ax__proof_check(&secret, proofs[k].role, I->b + 8, I->n - 8, A->b + 8, A->n - 8, p,
                                   PROOF_SIZE - 1));
        p[PROOF_SIZE - 1] ^= 1;
        cr_assert(!ax__proof_check(&secret, proofs[k].role, I->b + 8, I->n - 8, A->b + 8, A->n - 8, p,
                                   PROOF_SIZE));
    }
    /* The proofs cover both nonces: another server nonce, another proof. */
    sa.nonce[0] ^= 1;
    ha = hello_frame(&sa);
    proof_of(V_COOKIE, AX__PROOF_INITIATOR, &hi, &ha, p);
    want = vec("auth_initiator");
    cr_assert_neq(memcmp(p, want.b + 10, PROOF_SIZE), 0);
}

/* All frame vectors back to back, as they would follow each other on a
 * stream: the DecodeBuffer splits them exactly at the vector boundaries. */
Test(wire_codec, vectors_as_one_stream)
{
    static const char *const frames[] = {"hello_auth",     "hello_server_auth", "auth_initiator",
                                         "auth_acceptor",  "data_u64",          "data_u64_nil_sender",
                                         "data_to_nobody", "status_notfound",   "ack",
                                         "status_toobig",  "heartbeat",         "bye"};
    static const uint8_t types[] = {AX__FRAME_HELLO, AX__FRAME_HELLO,  AX__FRAME_AUTH,   AX__FRAME_AUTH,
                                    AX__FRAME_DATA,  AX__FRAME_DATA,   AX__FRAME_DATA,   AX__FRAME_STATUS,
                                    AX__FRAME_ACK,   AX__FRAME_STATUS, AX__FRAME_HEARTBEAT, AX__FRAME_BYE};
    ax_buffer_config_t bc = AX_BUFFER_CONFIG_DEFAULT;
    ax_decode_buffer_t *db = NULL;
    ax_lease_t frame;

    bc.chunk_size = 4096;
    cr_assert_eq(ax_decode_buffer_create(&bc, &(ax_frame_format_t){AX__FRAME_HEADER_SIZE, 16u << 20}, &db),
                 AX_OK);
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        bytes_t v = vec(frames[i]);
        size_t taken = 0;

        cr_assert_eq(ax_decode_buffer_feed(db, v.b, v.n, &taken), AX_OK);
        cr_assert_eq(taken, v.n);
    }
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        bytes_t v = vec(frames[i]), got;
        ax__frame_header_t h;

        cr_assert_eq(ax_decode_buffer_next(db, &frame), AX_OK, "%s", frames[i]);
        got.n = lease_bytes(&frame, got.b, sizeof got.b);
        expect_bytes(frames[i], got.b, got.n, &v);
        cr_assert_eq(ax__frame_header_read(got.b, &h), AX_OK);
        cr_assert_eq(h.type, types[i], "%s", frames[i]);
        ax_lease_release(&frame);
    }
    cr_assert_eq(ax_decode_buffer_next(db, &frame), AX_EAGAIN);
    ax_decode_buffer_destroy(&db);
}

/* ---- a live system with an echo actor --------------------------------------------- */

static _Atomic uint64_t echo_seen;

typedef struct echo_s {
    ax_actor_t actor;
} echo_t;

/* As examples/echo_server.c: the same serialiser id and payload back to
 * the sender, u64 values plus one. */
static ax_status_t echo_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    const ax_msg_type_t *type;
    ax_msg_t *reply = NULL;
    ax_ref_t from;

    atomic_fetch_add(&echo_seen, 1);
    if (ax_net_msg_sender(self, *nm, &from) != AX_OK ||
        ax_serialiser_lookup(ax_actor_system(self), ax_net_msg_serialiser(*nm), &type) != AX_OK ||
        ax_net_msg_deserialise(*nm, type, &reply) != AX_OK)
        return AX_OK;
    if (type == &ax_u64_type)
        ((ax_u64_msg_t *)reply)->value++;
    if (ax_tell(from, &reply, ax_self(self)) != AX_OK)
        ax_msg_release(&reply);
    return AX_OK;
}

static const ax_actor_vtable_t echo_vtable = {
    .name = "test.echo",
    .size = sizeof(echo_t),
    .receive_network = echo_network,
};

typedef struct server_s {
    ax_system_t *sys;
    ax_addr_t addr;
    ax_ref_t echo;
    const char *cookie; /* the server's secret; NULL: none */
    uint64_t max_frame; /* the limit its Hello must announce */
} server_t;

typedef struct server_opts_s {
    const char *listen;
    size_t max_frame;
    uint64_t flush_ms;
    const char *cookie;           /* NULL: no secret */
    uint64_t heartbeat_interval_ms; /* 0: the default */
    uint64_t heartbeat_timeout_ms;  /* 0: the default */
    size_t chunk_size;            /* 0: the default receive pool */
    size_t max_chunk_count;
    bool no_path_ids;             /* network.path_ids = 0 */
} server_opts_t;

static void server_start_opts(server_t *s, const server_opts_t *o)
{
    ax_config_t cfg;
    size_t pool_max;

    ax_config_init(&cfg);
    cfg.threads = 2;
    snprintf(cfg.network.listen, sizeof cfg.network.listen, "%s", o->listen);
    cfg.network.max_frame_size = o->max_frame;
    cfg.network.flush_timeout_ms = o->flush_ms;
    /* Replies to made-up addresses whose connection is gone end in dead
     * letters quickly instead of retrying for seconds. */
    cfg.network.max_retries = 1;
    cfg.network.backoff_initial_ms = 10;
    if (o->cookie != NULL)
        snprintf(cfg.network.cookie, sizeof cfg.network.cookie, "%s", o->cookie);
    if (o->heartbeat_interval_ms > 0)
        cfg.network.heartbeat_interval_ms = o->heartbeat_interval_ms;
    if (o->heartbeat_timeout_ms > 0)
        cfg.network.heartbeat_timeout_ms = o->heartbeat_timeout_ms;
    if (o->no_path_ids)
        cfg.network.path_ids = 0;
    if (o->chunk_size > 0) {
        cfg.network.buffer_config.chunk_size = o->chunk_size;
        cfg.network.buffer_config.max_chunk_count = o->max_chunk_count;
    }
    /* Section 15: the limit a Hello announces. */
    pool_max = cfg.network.buffer_config.chunk_size * (cfg.network.buffer_config.max_chunk_count - 1);
    s->max_frame = o->max_frame < pool_max ? o->max_frame : pool_max;
    s->cookie = o->cookie;
    cr_assert_eq(ax_system_create(&cfg, &s->sys), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_net_start(s->sys), AX_OK, "%s", ax_error_detail());
    ax_system_address(s->sys, &s->addr);
    cr_assert_eq(ax_spawn(s->sys, &echo_vtable, NULL, &s->echo), AX_OK);
    cr_assert_eq(ax_register(s->sys, s->echo, "echo"), AX_OK);
}

static void server_start(server_t *s, const char *listen, size_t max_frame, uint64_t flush_ms)
{
    server_start_opts(s, &(server_opts_t){.listen = listen, .max_frame = max_frame, .flush_ms = flush_ms});
}

/* A server with the secret V_COOKIE, on 127.0.0.1. */
static void server_start_auth(server_t *s)
{
    server_start_opts(s, &(server_opts_t){.listen = "127.0.0.1:0", .max_frame = 16u << 20, .flush_ms = 500,
                                          .cookie = V_COOKIE});
}

static void server_stop(server_t *s)
{
    axt_destroy(&s->sys);
}

#define WAIT_STATS(s, st, cond)                                                      \
    do {                                                                             \
        double end_ = axt_now() + NET_WAIT_S;                                        \
        for (;;) {                                                                   \
            cr_assert_eq(ax_net_stats((s)->sys, &(st)), AX_OK);                      \
            if (cond)                                                                \
                break;                                                               \
            cr_assert(axt_now() < end_, "timed out waiting for stats: " #cond);      \
            axt_sleep_us(1000);                                                      \
        }                                                                            \
    } while (0)

/* ---- a raw connection: a socket and the library's DecodeBuffer ------------------------ */

typedef struct wire_conn_s {
    int fd;
    ax_decode_buffer_t *db;
    /* Past the handshake: Heartbeats the server may send when we are
     * quiet (section 13) are skipped by expect_frame and expect_closed,
     * unless keep_heartbeats. */
    bool open, keep_heartbeats;
} wire_conn_t;

static socklen_t sockaddr_of(const ax_addr_t *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a->ip, 16);
        s6->sin6_port = htons(a->port);
        return sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a->ip, 4);
    s4->sin_port = htons(a->port);
    return sizeof(*s4);
}

static wire_conn_t conn_wrap(int fd)
{
    wire_conn_t c = {fd, NULL, false, false};
    ax_buffer_config_t bc = AX_BUFFER_CONFIG_DEFAULT;
    int one = 1;

    bc.chunk_size = 16 * 1024;
    bc.initial_chunk_count = 1;
    bc.max_chunk_count = 8;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    cr_assert_eq(ax_decode_buffer_create(&bc, &(ax_frame_format_t){AX__FRAME_HEADER_SIZE, FRAME_MAX}, &c.db),
                 AX_OK);
    return c;
}

static wire_conn_t conn_open(const ax_addr_t *to)
{
    struct sockaddr_storage ss;
    socklen_t sl = sockaddr_of(to, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&ss, sl), 0, "connect: %s", strerror(errno));
    return conn_wrap(fd);
}

static void conn_close(wire_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ax_decode_buffer_destroy(&c->db);
}

static void conn_send(wire_conn_t *c, const bytes_t *f)
{
    size_t off = 0;

    while (off < f->n) {
        ssize_t n = send(c->fd, f->b + off, f->n - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_gt(n, 0, "send: %s", strerror(errno));
        off += (size_t)n;
    }
}

/* The next frame within timeout_s: 1 with *f filled, 0 when the peer
 * closed the connection, -1 on timeout. */
static int conn_read(wire_conn_t *c, bytes_t *f, double timeout_s)
{
    double end = axt_now() + timeout_s;

    for (;;) {
        ax_lease_t frame;
        ax_status_t st = ax_decode_buffer_next(c->db, &frame);
        struct pollfd pfd = {c->fd, POLLIN, 0};
        double left = end - axt_now();
        void *p;
        size_t room;
        ssize_t n;

        if (st == AX_OK) {
            f->n = lease_bytes(&frame, f->b, sizeof f->b);
            ax_lease_release(&frame);
            return 1;
        }
        cr_assert_eq(st, AX_EAGAIN, "decode: %s", ax_error_detail());
        if (left <= 0)
            return -1;
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        cr_assert_eq(ax_decode_buffer_space(c->db, &p, &room), AX_OK);
        n = read(c->fd, p, room);
        if (n > 0)
            ax_decode_buffer_commit(c->db, (size_t)n);
        else if (n == 0 || errno == ECONNRESET)
            return 0;
        else
            cr_assert(errno == EINTR, "read: %s", strerror(errno));
    }
}

static uint8_t frame_type(const bytes_t *f)
{
    ax__frame_header_t h;

    cr_assert_eq(ax__frame_header_read(f->b, &h), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(h.body_len, f->n - AX__FRAME_HEADER_SIZE);
    return h.type;
}

/* As conn_read, skipping the Heartbeats of an open connection. */
static int conn_next(wire_conn_t *c, bytes_t *f, double timeout_s)
{
    double end = axt_now() + timeout_s;
    int r;

    do {
        double left = end - axt_now();

        r = conn_read(c, f, left > 0 ? left : 0);
    } while (r == 1 && c->open && !c->keep_heartbeats && f->n >= AX__FRAME_HEADER_SIZE &&
             f->b[4] == AX__FRAME_HEARTBEAT);
    return r;
}

static bytes_t expect_frame(wire_conn_t *c, const char *what)
{
    bytes_t f;
    int r = conn_next(c, &f, NET_WAIT_S);

    cr_assert_eq(r, 1, "%s: %s", what, r == 0 ? "the connection was closed" : "timed out");
    return f;
}

/* The server must close the connection without sending anything. */
static void expect_closed(wire_conn_t *c, const char *what)
{
    bytes_t f;
    int r = conn_next(c, &f, NET_WAIT_S);

    cr_assert_neq(r, 1, "%s: expected a close, got a frame of type %u", what, f.b[4]);
    cr_assert_eq(r, 0, "%s: expected a close, the connection stayed open", what);
}

static uint64_t ack_count(const bytes_t *f)
{
    msgpack_zone *zone = msgpack_zone_new(256);
    msgpack_object o;
    uint64_t n;

    cr_assert_eq(frame_type(f), AX__FRAME_ACK);
    o = unpack_one(f->b + 8, f->n - 8, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    n = o.via.u64;
    msgpack_zone_free(zone);
    return n;
}

/* A Hello from the server, checked field by field against section 7. */
static hello_t hello_parse(const bytes_t *f)
{
    msgpack_zone *zone = msgpack_zone_new(256);
    msgpack_object o, *e, *a;
    ax__frame_header_t h;
    hello_t r = {.magic = "axon", .fields = 9};

    cr_assert_eq(frame_type(f), AX__FRAME_HELLO);
    cr_assert_eq(ax__frame_header_read(f->b, &h), AX_OK);
    cr_assert_eq(h.status, 0);
    cr_assert_leq(f->n, AX__HANDSHAKE_FRAME_MAX);
    o = unpack_one(f->b + 8, f->n - 8, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o.via.array.size, 9);
    e = o.via.array.ptr;
    cr_assert(e[0].type == MSGPACK_OBJECT_STR && e[0].via.str.size == 4 &&
              memcmp(e[0].via.str.ptr, "axon", 4) == 0);
    cr_assert(e[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[1].via.u64 == 2);
    r.version = 2;
    cr_assert(e[2].type == MSGPACK_OBJECT_ARRAY && e[2].via.array.size == 3);
    a = e[2].via.array.ptr;
    cr_assert(a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && (a[0].via.u64 == 0 || a[0].via.u64 == 4));
    r.addr.family = a[0].via.u64 == 4 ? 6 : 4;
    cr_assert(a[1].type == MSGPACK_OBJECT_BIN && a[1].via.bin.size == (r.addr.family == 6 ? 16u : 4u));
    memcpy(r.addr.ip, a[1].via.bin.ptr, a[1].via.bin.size);
    cr_assert(a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[2].via.u64 <= 65535);
    r.addr.port = (uint16_t)a[2].via.u64;
    cr_assert(e[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[3].via.u64 != 0);
    cr_assert(e[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[4].via.u64 != 0);
    r.incarnation = e[3].via.u64;
    r.session = e[4].via.u64;
    cr_assert(e[5].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[5].via.u64 <= AX__HELLO_AUTH,
              "flags: only bit 0 (AUTH) is defined");
    r.flags = e[5].via.u64;
    cr_assert(e[6].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[6].via.u64 >= 64);
    r.max_frame = e[6].via.u64;
    cr_assert(e[7].type == MSGPACK_OBJECT_BIN && e[7].via.bin.size == NONCE_SIZE, "a nonce of 32 bytes");
    memcpy(r.nonce, e[7].via.bin.ptr, NONCE_SIZE);
    r.nonce_len = NONCE_SIZE;
    cr_assert(e[8].type == MSGPACK_OBJECT_POSITIVE_INTEGER, "path ids: a uint (section 7)");
    r.path_ids = e[8].via.u64;
    msgpack_zone_free(zone);
    return r;
}

/* The server's Auth must be exactly the proof for `role` over both Hellos. */
static void expect_auth(wire_conn_t *c, const char *secret, uint8_t role, const bytes_t *hello_i,
                        const bytes_t *hello_a, const char *what)
{
    unsigned char p[PROOF_SIZE];
    bytes_t f = expect_frame(c, what), want;

    proof_of(secret, role, hello_i, hello_a, p);
    want = auth_frame(p, sizeof p);
    expect_bytes(what, f.b, f.n, &want);
}

static bytes_t auth_of(const char *secret, uint8_t role, const bytes_t *hello_i, const bytes_t *hello_a)
{
    unsigned char p[PROOF_SIZE];

    proof_of(secret, role, hello_i, hello_a, p);
    return auth_frame(p, sizeof p);
}

/*
 * Our side of the handshake as the initiator, from raw bytes: our Hello
 * `mine`, the server's Hello (same session, its address, flags and limit
 * as configured), then, when both sides have a secret, our Auth (proved
 * with `secret`) and the server's, checked byte for byte. Returns the
 * server's Hello; *sent, when not NULL, receives the Auth we sent.
 */
static hello_t initiate(wire_conn_t *c, const server_t *s, const hello_t *mine, const char *secret, bytes_t *sent)
{
    bytes_t hi = hello_frame(mine), ha;
    hello_t h;

    conn_send(c, &hi);
    ha = expect_frame(c, "the server's Hello");
    h = hello_parse(&ha);
    cr_assert_eq(h.session, mine->session, "the acceptor answers with the initiator's session");
    cr_assert(ax_addr_eq(&h.addr, &s->addr), "the Hello carries the server's address");
    cr_assert_eq(h.flags, s->cookie != NULL ? AX__HELLO_AUTH : 0u, "AUTH says whether the server has a secret");
    cr_assert_eq(h.max_frame, s->max_frame, "the Hello announces the server's effective limit");
    if (secret != NULL && h.flags != 0) {
        bytes_t a = auth_of(secret, AX__PROOF_INITIATOR, &hi, &ha);

        conn_send(c, &a);
        if (sent != NULL)
            *sent = a;
        expect_auth(c, secret, AX__PROOF_ACCEPTOR, &hi, &ha, "the server's Auth");
    }
    c->open = true;
    return h;
}

/* The usual handshake: a fresh nonce, AUTH and the proofs when the
 * server has a secret. */
static hello_t handshake(wire_conn_t *c, const server_t *s, const char *me, uint64_t incarnation,
                         uint64_t session)
{
    hello_t mine = hello_of(me, incarnation, session, s->cookie != NULL ? AX__HELLO_AUTH : 0);

    randombytes_buf(mine.nonce, NONCE_SIZE);
    return initiate(c, s, &mine, s->cookie, NULL);
}

/* Our side as the acceptor of a connection the server opened, whose
 * Hello (the frame `theirs`) we read: our Hello `mine` with their session,
 * then, with a secret, their Auth checked and ours sent. */
static void accept_handshake(wire_conn_t *c, const bytes_t *theirs, hello_t mine, const char *secret)
{
    hello_t h = hello_parse(theirs);
    bytes_t ha;

    mine.session = h.session;
    randombytes_buf(mine.nonce, NONCE_SIZE);
    ha = hello_frame(&mine);
    conn_send(c, &ha);
    if (secret != NULL) {
        bytes_t a = auth_of(secret, AX__PROOF_ACCEPTOR, theirs, &ha);

        expect_auth(c, secret, AX__PROOF_INITIATOR, theirs, &ha, "the server's Auth as initiator");
        conn_send(c, &a);
    }
    c->open = true;
}

/* An echo reply: u64 `value` for dst, from the echo actor's unique path. */
static void check_reply(const bytes_t *f, const server_t *s, const char *dst, uint64_t value)
{
    ax_buffer_config_t bc = AX_BUFFER_CONFIG_DEFAULT;
    ax_decode_buffer_t *db = NULL;
    msgpack_zone *zone = msgpack_zone_new(256);
    ax_path_t want = path(dst);
    ax__envelope_t env;
    ax_lease_t frame;
    msgpack_object o;
    size_t taken;

    cr_assert_eq(frame_type(f), AX__FRAME_DATA);
    bc.chunk_size = 4096;
    cr_assert_eq(ax_decode_buffer_create(&bc, &(ax_frame_format_t){8, FRAME_MAX}, &db), AX_OK);
    cr_assert_eq(ax_decode_buffer_feed(db, f->b, f->n, &taken), AX_OK);
    cr_assert_eq(ax_decode_buffer_next(db, &frame), AX_OK);
    cr_assert_eq(ax__envelope_read(&frame, AX__FRAME_HEADER_SIZE, &env), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_path_cmp(&env.dst, &want), 0, "the reply goes to the sender path");
    cr_assert(env.has_src);
    cr_assert_eq(env.src.kind, AX_PATH_UNIQUE);
    cr_assert(ax_addr_eq(&env.src.addr, &s->addr));
    cr_assert_eq(env.src.id, ax_ref_id(s->echo));
    cr_assert_eq(env.serialiser_id, AX_SER_U64);
    o = unpack_one(f->b + env.payload_off, f->n - env.payload_off, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(o.via.u64, value);
    ax_lease_release(&frame);
    ax_decode_buffer_destroy(&db);
    msgpack_zone_free(zone);
}

/* Read until the echo reply and an Ack of `acks` have both arrived, in
 * either order. */
static void expect_reply_and_ack(wire_conn_t *c, const server_t *s, const char *dst, uint64_t value,
                                 uint64_t acks)
{
    bool replied = false, acked = false;

    while (!replied || !acked) {
        bytes_t f = expect_frame(c, "an echo reply and an Ack");

        if (frame_type(&f) == AX__FRAME_DATA) {
            cr_assert(!replied, "two replies to one message");
            check_reply(&f, s, dst, value);
            replied = true;
        } else {
            uint64_t n = ack_count(&f);

            cr_assert_leq(n, acks);
            acked = n == acks;
        }
    }
}

static void expect_vector(wire_conn_t *c, const char *name)
{
    bytes_t f = expect_frame(c, name), want = vec(name);

    expect_bytes(name, f.b, f.n, &want);
}

static void send_vector(wire_conn_t *c, const char *name)
{
    bytes_t v = vec(name);

    conn_send(c, &v);
}

/* ---- the live system answers the vectors --------------------------------------- */

/* The session of the doc's last section, byte for byte where the doc gives bytes. */
Test(wire_live, session_of_the_doc)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;
    bytes_t f;
    hello_t h;

    server_start(&s, "127.0.0.1:0", 16u << 20, 2000);
    c = conn_open(&s.addr);

    /* 1. Hello, exactly the vector; the answer carries our session. */
    send_vector(&c, "hello");
    f = expect_frame(&c, "the server's Hello");
    h = hello_parse(&f);
    cr_assert_eq(h.session, V_SESSION);
    cr_assert(ax_addr_eq(&h.addr, &s.addr));
    cr_assert_eq(h.flags, 0);
    cr_assert_eq(h.max_frame, V_MAX_FRAME);
    cr_assert_eq(h.path_ids, 1024, "Axon offers network.path_ids, 1024 by default (section 6.1)");
    c.open = true;

    /* 2. The u64 to echo: 42 comes back on this connection, to our path. */
    send_vector(&c, "data_u64");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    f = ack_frame(1);
    conn_send(&c, &f);

    /* 3. No sender: delivered, acknowledged, no reply. */
    send_vector(&c, "data_u64_nil_sender");
    f = expect_frame(&c, "Ack 2");
    cr_assert_eq(ack_count(&f), 2, "only an Ack, no reply to a message without a sender");

    /* 4. To nobody: the Status returns the frame, then the Ack counts it. */
    send_vector(&c, "data_to_nobody");
    expect_vector(&c, "status_notfound");
    expect_vector(&c, "ack");

    /* 5. Bye is answered with Bye; our half-close ends the connection. */
    send_vector(&c, "bye");
    expect_vector(&c, "bye");
    cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
    expect_closed(&c, "after the Bye exchange");
    conn_close(&c);

    cr_assert(axt_wait_at_least(&echo_seen, 2, NET_WAIT_S));
    WAIT_STATS(&s, st, st.connections == 0);
    cr_assert_eq(st.frames_received, 3);
    cr_assert_eq(st.frames_sent, 1);
    cr_assert_eq(st.acked, 1, "our Ack acknowledged the reply");
    cr_assert_eq(st.malformed, 0);
    cr_assert_eq(st.dead_lettered, 0);
    cr_assert_eq(atomic_load(&echo_seen), 2);
    server_stop(&s);
}

/* Section 15: the frames before an oversized header are processed, then
 * Status AX_ETOOBIG [0], then the connection closes. */
Test(wire_live, oversized_frame)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;
    bytes_t two = vec("data_u64");

    server_start(&s, "127.0.0.1:0", 1024, 500);
    c = conn_open(&s.addr);
    handshake(&c, &s, "127.0.0.1:9001", V_INCARNATION, 101);
    /* One write: a valid Data frame, then the header of a frame of 8 + 2000
     * bytes, above the maximum of 1024. */
    header(two.b + two.n, AX__FRAME_DATA, AX_OK, 2000);
    two.n += AX__FRAME_HEADER_SIZE;
    conn_send(&c, &two);
    expect_vector(&c, "status_toobig");
    expect_closed(&c, "after the oversized header");
    conn_close(&c);
    cr_assert(axt_wait_at_least(&echo_seen, 1, NET_WAIT_S),
              "the frame before the oversized one was delivered");
    WAIT_STATS(&s, st, st.malformed == 1);
    cr_assert_eq(st.frames_received, 1);
    server_stop(&s);
}

/* Section 14: each kind of bad input closes its own connection without a
 * reply, and a bystander connection keeps working. Before the handshake
 * nothing at all is answered: not even an oversized header gets a Status. */
Test(wire_live, bad_input_closes_only_its_connection)
{
    struct bad {
        const char *what;
        bool after_handshake;
        bytes_t bytes;
    } cases[48];
    size_t n = 0;
    server_t s;
    wire_conn_t bystander;
    ax_net_stats_t st;
    bytes_t v;
    hello_t h;

#define BAD(w, hs, b) (cases[n++] = (struct bad){(w), (hs), (b)})
#define BAD_HELLO(w, change)                                                     \
    do {                                                                         \
        h = hello_of("127.0.0.1:9001", V_INCARNATION, 7, 0);                     \
        change;                                                                  \
        BAD(w, false, hello_frame(&h));                                          \
    } while (0)
    /* Before the handshake: only a well-formed Hello is taken. */
    BAD("Data before Hello", false, vec("data_u64"));
    BAD("Heartbeat before Hello", false, vec("heartbeat"));
    BAD("Bye before Hello", false, vec("bye"));
    BAD("Ack before Hello", false, vec("ack"));
    BAD("Status before Hello", false, vec("status_toobig"));
    BAD("Auth before Hello", false, vec("auth_initiator"));
    BAD("a version 1 Hello", false, hexb(V1_HELLO));
    BAD_HELLO("Hello with version 3", h.version = 3);
    BAD_HELLO("Hello with version 1 and nine fields", h.version = 1);
    BAD_HELLO("Hello with another magic", h.magic = "axom");
    BAD_HELLO("Hello with 10 elements", h.fields = 10);
    BAD_HELLO("Hello with 8 elements", h.fields = 8);
    BAD_HELLO("Hello with an unknown flag bit", h.flags = 4);
    BAD_HELLO("Hello with AUTH and an unknown flag bit", h.flags = 5);
    BAD_HELLO("Hello with CLIENT and an unknown flag bit", h.flags = 6);
    BAD_HELLO("Hello with flag bit 63", h.flags = UINT64_C(1) << 63);
    BAD_HELLO("Hello with a 31-byte nonce", h.nonce_len = 31);
    BAD_HELLO("Hello with no nonce", h.nonce_len = 0);
    BAD_HELLO("Hello with a maximum frame of 63", h.max_frame = 63);
    BAD_HELLO("Hello with session 0", h.session = 0);
    v = vec("hello"); /* address flags 1: a kind bit */
    v.b[16] = 0x01;
    BAD("Hello with address flags 1", false, v);
    v = vec("hello"); /* the path-id offer as nil */
    v.b[v.n - 1] = 0xc0;
    BAD("Hello whose path-id offer is not a uint", false, v);
    BAD("Hello with an empty body", false, hexb("00 00 00 00 01 00 00 00"));
    BAD("a Hello header above 256 bytes", false, hexb("00 00 00 f9 01 00 00 00"));
    BAD("a Data header above 256 bytes", false, hexb("00 00 07 d0 02 00 00 00"));
    BAD("frame type 8 before Hello", false, hexb("00 00 00 00 08 00 00 00"));
    BAD("frame type 0 before Hello", false, hexb("00 00 00 00 00 00 00 00"));
    v = vec("hello"); /* flags byte of the header */
    v.b[5] = 0x01;
    BAD("Hello with a non-zero flags byte", false, v);
    v = vec("hello");
    v.b[7] = 0x01;
    BAD("Hello with a non-zero reserved byte", false, v);
    /* After it. */
    BAD("frame type 8", true, hexb("00 00 00 00 08 00 00 00"));
    BAD("non-zero flags byte", true, hexb("00 00 00 01 06 01 00 00 01"));
    BAD("non-zero reserved byte", true, hexb("00 00 00 01 06 00 00 01 01"));
    BAD("a second Hello", true, vec("hello"));
    BAD("an Auth after the handshake", true, vec("auth_initiator"));
    BAD("Ack with a byte after its object", true, hexb("00 00 00 02 06 00 00 00 01 01"));
    BAD("Ack that is not a uint", true, hexb("00 00 00 01 06 00 00 00 c0"));
    BAD("Status that is not an array", true, hexb("00 00 00 01 03 00 07 00 03"));
    BAD("Data with an envelope of 2 elements", true, hexb("00 00 00 03 02 00 00 00 92 01 02"));
    v = vec("data_u64"); /* receiver path flags 0x41: bit 6 */
    v.b[10] = 0x41;
    BAD("Data with an unknown path flag bit", true, v);
#undef BAD_HELLO
#undef BAD
    cr_assert_leq(n, sizeof cases / sizeof cases[0]);

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    bystander = conn_open(&s.addr);
    handshake(&bystander, &s, "127.0.0.1:9002", V_INCARNATION, 99);
    for (size_t i = 0; i < n; i++) {
        wire_conn_t c = conn_open(&s.addr);

        if (cases[i].after_handshake)
            handshake(&c, &s, "127.0.0.1:9001", V_INCARNATION, 1000 + i);
        conn_send(&c, &cases[i].bytes);
        expect_closed(&c, cases[i].what);
        conn_close(&c);
        WAIT_STATS(&s, st, st.malformed == i + 1);
    }
    cr_assert_eq(st.auth_failures, 0);
    cr_assert_eq(st.replace_refused, 0);
    /* The bystander is still served. */
    {
        ax_encode_buffer_t *eb = encoder();
        bytes_t f = data_frame(eb, V_SERVER, "tcp://127.0.0.1:9002#7", 41, NULL);

        conn_send(&bystander, &f);
        expect_reply_and_ack(&bystander, &s, "tcp://127.0.0.1:9002#7", 42, 1);
        ax_encode_buffer_destroy(&eb);
    }
    conn_close(&bystander);
    server_stop(&s);
}

/* Section 13: after the handshake, Heartbeats are dropped and not counted
 * (a body, which a sender must not give them, is skipped too). */
Test(wire_live, heartbeat_is_ignored)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;
    bytes_t v;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    c = conn_open(&s.addr);
    handshake(&c, &s, "127.0.0.1:9001", V_INCARNATION, 5);
    send_vector(&c, "heartbeat");
    v = hexb("00 00 00 03 05 00 00 00 ff ff ff");
    conn_send(&c, &v);
    send_vector(&c, "data_u64");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    WAIT_STATS(&s, st, st.frames_received == 1);
    cr_assert_eq(st.malformed, 0);
    conn_close(&c);
    server_stop(&s);
}

/* Section 13: a quiet server sends Heartbeats; a silent peer is lost after
 * heartbeat_timeout_ms, one that sends Heartbeats is kept. */
Test(wire_live, heartbeats_and_silence)
{
    server_t s;
    wire_conn_t quiet, silent, alive;
    ax_net_stats_t st;
    bytes_t f;
    double end;

    server_start_opts(&s, &(server_opts_t){.listen = "127.0.0.1:0", .max_frame = 16u << 20, .flush_ms = 500,
                                           .heartbeat_interval_ms = 50, .heartbeat_timeout_ms = 1000});
    /* The server has nothing to say: its next frame is a Heartbeat. */
    quiet = conn_open(&s.addr);
    handshake(&quiet, &s, "127.0.0.1:9001", V_INCARNATION, 11);
    quiet.keep_heartbeats = true;
    f = expect_frame(&quiet, "a Heartbeat from a quiet server");
    {
        bytes_t want = vec("heartbeat");

        expect_bytes("the server's Heartbeat", f.b, f.n, &want);
    }
    conn_close(&quiet);

    /* We say nothing: lost to silence, closed. */
    silent = conn_open(&s.addr);
    handshake(&silent, &s, "127.0.0.1:9002", V_INCARNATION, 12);
    expect_closed(&silent, "a silent peer");
    conn_close(&silent);
    WAIT_STATS(&s, st, st.heartbeat_timeouts == 1);

    /* We send a Heartbeat every 100 ms for over two timeouts: still served. */
    alive = conn_open(&s.addr);
    handshake(&alive, &s, "127.0.0.1:9003", V_INCARNATION, 13);
    end = axt_now() + 2.5;
    while (axt_now() < end) {
        send_vector(&alive, "heartbeat");
        axt_sleep_us(100 * 1000);
    }
    {
        ax_encode_buffer_t *eb = encoder();

        f = data_frame(eb, V_SERVER, "tcp://127.0.0.1:9003#7", 41, NULL);
        conn_send(&alive, &f);
        expect_reply_and_ack(&alive, &s, "tcp://127.0.0.1:9003#7", 42, 1);
        ax_encode_buffer_destroy(&eb);
    }
    WAIT_STATS(&s, st, st.frames_received == 1);
    cr_assert_eq(st.heartbeat_timeouts, 1, "the connection that sent Heartbeats was kept");
    conn_close(&alive);
    server_stop(&s);
}

/* Section 1: integers in any unsigned or non-negative signed form, and
 * strings in a longer form than needed, are accepted. */
Test(wire_live, longer_msgpack_forms_are_accepted)
{
    server_t s;
    wire_conn_t c;
    bytes_t v;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    c = conn_open(&s.addr);
    handshake(&c, &s, "127.0.0.1:9001", V_INCARNATION, 6);
    /* data_u64 with the receiver's port as uint 64, its name as str 8, the
     * serialiser id as int 64 and the payload as uint 8. */
    v = hexb("00 00 00 2f 02 00 00 00 93"
             "94 01 c4 04 7f 00 00 01 cf 00 00 00 00 00 00 23 28 d9 04 65 63 68 6f"
             "94 00 c4 04 7f 00 00 01 cd 23 29 07"
             "d3 00 00 00 00 00 00 00 03 cc 29");
    cr_assert_eq(v.n, 8 + 0x2f);
    conn_send(&c, &v);
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    conn_close(&c);
    server_stop(&s);
}

/* IPv6 end to end: the Hello address with flags 0x04 and 16 ip bytes,
 * paths with the family bit, the reply routed by the announced address. */
Test(wire_live, ipv6_session)
{
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    ax_encode_buffer_t *eb;
    server_t s;
    wire_conn_t c;
    bytes_t f;

    if (probe < 0 || bind(probe, (struct sockaddr *)&lo, sizeof lo) != 0) {
        if (probe >= 0)
            close(probe);
        cr_skip_test("no IPv6 loopback here");
    }
    close(probe);
    server_start(&s, "[::1]:0", 16u << 20, 500);
    cr_assert_eq(s.addr.family, 6);
    c = conn_open(&s.addr);
    handshake(&c, &s, "[::1]:9001", V_INCARNATION, 66);
    eb = encoder();
    f = data_frame(eb, "tcp://[::1]:9000/echo", "tcp://[::1]:9001#7", 41, NULL);
    cr_assert_eq(f.b[10], 0x05, "receiver path flags: named, IPv6");
    conn_send(&c, &f);
    expect_reply_and_ack(&c, &s, "tcp://[::1]:9001#7", 42, 1);
    ax_encode_buffer_destroy(&eb);
    conn_close(&c);
    server_stop(&s);
}

/* ---- section 11: simultaneous connects and restarts ------------------------------- */

static int listener_open(const char *ip, ax_addr_t *bound)
{
    char text[64];
    ax_addr_t a;
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, one = 1;

    snprintf(text, sizeof text, "%s:0", ip);
    a = addr_of(text);
    sl = sockaddr_of(&a, &ss);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, sl), 0, "bind %s: %s", text, strerror(errno));
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    a.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *bound = a;
    return fd;
}

static wire_conn_t listener_accept(int lfd)
{
    struct pollfd pfd = {lfd, POLLIN, 0};
    int fd;

    cr_assert_eq(poll(&pfd, 1, (int)(NET_WAIT_S * 1000)), 1, "the server did not connect to us");
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fd, 0);
    return conn_wrap(fd);
}

typedef struct sim_s {
    server_t s;
    int lfd;
    ax_addr_t me;       /* the address we listen on and announce */
    char me_path[96];   /* tcp://<me>#7 */
    wire_conn_t c1;     /* ours, announcing 127.0.0.1:9001 */
    wire_conn_t c2;     /* the server's, to our listener */
    bytes_t c2_frame;   /* its Hello, as received */
    hello_t c2_hello;
    ax_encode_buffer_t *eb;
} sim_t;

/* Accept the server's next connection to our listener and read its Hello. */
static void sim_accept(sim_t *x, const char *what)
{
    x->c2 = listener_accept(x->lfd);
    x->c2_frame = expect_frame(&x->c2, what);
    x->c2_hello = hello_parse(&x->c2_frame);
    cr_assert(ax_addr_eq(&x->c2_hello.addr, &x->s.addr));
    cr_assert_eq(x->c2_hello.flags, x->s.cookie != NULL ? AX__HELLO_AUTH : 0u);
    cr_assert_eq(x->c2_hello.max_frame, x->s.max_frame);
}

/* The server listens on server_ip, we on my_ip. We make the server connect
 * to us: a message from tcp://<me>#7 to echo, whose reply needs a
 * connection to <me>. The server's connection (c2) is left waiting for
 * our Hello. With a cookie, the server has that secret. */
static void sim_setup(sim_t *x, const char *server_ip, const char *my_ip, const char *cookie)
{
    char listen[64], me[64];
    bytes_t f;

    snprintf(listen, sizeof listen, "%s:0", server_ip);
    server_start_opts(&x->s, &(server_opts_t){.listen = listen, .max_frame = 16u << 20, .flush_ms = 500,
                                              .cookie = cookie});
    x->lfd = listener_open(my_ip, &x->me);
    ax_addr_format(&x->me, me, sizeof me);
    snprintf(x->me_path, sizeof x->me_path, "tcp://%s#7", me);
    x->eb = encoder();
    x->c1 = conn_open(&x->s.addr);
    handshake(&x->c1, &x->s, "127.0.0.1:9001", V_INCARNATION, 1);
    f = data_frame(x->eb, V_SERVER, x->me_path, 41, NULL);
    conn_send(&x->c1, &f);
    f = expect_frame(&x->c1, "Ack 1");
    cr_assert_eq(ack_count(&f), 1);
    sim_accept(x, "the server's Hello as initiator");
}

static void sim_teardown(sim_t *x)
{
    conn_close(&x->c1);
    conn_close(&x->c2);
    close(x->lfd);
    ax_encode_buffer_destroy(&x->eb);
    server_stop(&x->s);
}

/* Our Hello announcing `me`, AUTH when the server has a secret. */
static hello_t sim_hello(const sim_t *x, uint64_t incarnation, uint64_t session)
{
    hello_t h = hello_of("127.0.0.1:1", incarnation, session, x->s.cookie != NULL ? AX__HELLO_AUTH : 0);

    h.addr = x->me;
    randombytes_buf(h.nonce, NONCE_SIZE);
    return h;
}

Test(wire_live, lower_address_wins_server_lower)
{
    sim_t x;
    wire_conn_t c3, c4, c5, c6;
    ax_net_stats_t st;
    bytes_t f;
    hello_t h;

    /* The server at 127.0.0.1 is lower than us at 127.0.0.2. */
    sim_setup(&x, "127.0.0.1", "127.0.0.2", NULL);

    /* Its own connection is still waiting for our Hello: it wins, ours
     * is closed without a reply. */
    c3 = conn_open(&x.s.addr);
    h = sim_hello(&x, 0xa1, 3);
    f = hello_frame(&h);
    conn_send(&c3, &f);
    expect_closed(&c3, "our connection from the higher address");
    conn_close(&c3);

    /* As the initiator, it refuses a Hello with another session, then
     * tries again after its backoff. */
    h = sim_hello(&x, 0xa1, x.c2_hello.session + 1);
    f = hello_frame(&h);
    conn_send(&x.c2, &f);
    expect_closed(&x.c2, "our Hello with the wrong session");
    conn_close(&x.c2);
    {
        uint64_t first = x.c2_hello.session;

        sim_accept(&x, "the server's Hello on its second attempt");
        cr_assert_neq(x.c2_hello.session, first, "a new connection has a new session");
    }

    /* We complete its connection; the waiting reply comes over it. */
    accept_handshake(&x.c2, &x.c2_frame, sim_hello(&x, 0xa1, 0), NULL);
    f = expect_frame(&x.c2, "the echo reply on the server's connection");
    check_reply(&f, &x.s, x.me_path, 42);
    f = ack_frame(1);
    conn_send(&x.c2, &f);

    /* Open, same incarnation, no proof: refused (section 11). */
    c4 = conn_open(&x.s.addr);
    h = sim_hello(&x, 0xa1, 4);
    f = hello_frame(&h);
    conn_send(&c4, &f);
    expect_closed(&c4, "a second connection with the same incarnation");
    conn_close(&c4);
    WAIT_STATS(&x.s, st, st.replace_refused == 1);

    /* A new incarnation (we "restarted") without a secret cannot replace
     * the open connection either: anybody could claim to be us. */
    c5 = conn_open(&x.s.addr);
    h = sim_hello(&x, 0xa2, 5);
    f = hello_frame(&h);
    conn_send(&c5, &f);
    expect_closed(&c5, "an unauthenticated restart while the old connection is open");
    conn_close(&c5);
    WAIT_STATS(&x.s, st, st.replace_refused == 2);

    /* Once the old connection is seen closed, the restarted peer gets in. */
    conn_close(&x.c2);
    WAIT_STATS(&x.s, st, st.connections == 1); /* c1 only */
    c6 = conn_open(&x.s.addr);
    h = sim_hello(&x, 0xa2, 6);
    initiate(&c6, &x.s, &h, NULL, NULL);

    /* Replies to <me> now take the new connection, whichever connection
     * the message came in on. */
    f = data_frame(x.eb, V_SERVER, x.me_path, 41, NULL);
    conn_send(&x.c1, &f);
    f = expect_frame(&c6, "the echo reply on the new connection");
    check_reply(&f, &x.s, x.me_path, 42);
    conn_close(&c6);
    cr_assert_eq(st.malformed, 1, "only the wrong session was malformed");
    sim_teardown(&x);
}

Test(wire_live, lower_address_wins_client_lower)
{
    sim_t x;
    wire_conn_t c3;
    bytes_t f;
    hello_t h, mine;

    /* The server at 127.0.0.2 is higher than us at 127.0.0.1. */
    sim_setup(&x, "127.0.0.2", "127.0.0.1", NULL);

    /* Ours, opened by the lower address, wins: the server answers it,
     * closes its own, and sends the waiting reply over ours. */
    c3 = conn_open(&x.s.addr);
    mine = sim_hello(&x, 0xb1, 3);
    h = initiate(&c3, &x.s, &mine, NULL, NULL);
    cr_assert_eq(h.session, 3);
    cr_assert_eq(h.incarnation, x.c2_hello.incarnation);
    expect_closed(&x.c2, "the server's own connection, which lost");
    f = expect_frame(&c3, "the echo reply on the winning connection");
    check_reply(&f, &x.s, x.me_path, 42);
    conn_close(&c3);
    sim_teardown(&x);
}

/* Section 11 without secrets, from one address: a second Hello for an
 * address with an open connection is refused whatever its incarnation,
 * the first keeps working, and once it is closed the newcomer gets in. */
Test(wire_live, unauthenticated_hello_cannot_replace)
{
    server_t s;
    wire_conn_t c1, c2, c3;
    ax_net_stats_t st;
    bytes_t f;
    hello_t h;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    c1 = conn_open(&s.addr);
    handshake(&c1, &s, "127.0.0.1:9001", V_INCARNATION, 21);
    c2 = conn_open(&s.addr);
    h = hello_of("127.0.0.1:9001", V_INCARNATION + 1, 22, 0);
    f = hello_frame(&h);
    conn_send(&c2, &f);
    expect_closed(&c2, "a Hello for an address with an open connection");
    conn_close(&c2);
    WAIT_STATS(&s, st, st.replace_refused == 1);
    cr_assert_eq(st.malformed, 0);
    send_vector(&c1, "data_u64");
    expect_reply_and_ack(&c1, &s, V_CLIENT, 42, 1);
    conn_close(&c1);
    WAIT_STATS(&s, st, st.connections == 0);
    c3 = conn_open(&s.addr);
    handshake(&c3, &s, "127.0.0.1:9001", V_INCARNATION + 1, 23);
    send_vector(&c3, "data_u64");
    expect_reply_and_ack(&c3, &s, V_CLIENT, 42, 1);
    conn_close(&c3);
    server_stop(&s);
}

/* ---- section 6, "Clients": the CLIENT flag ------------------------------------------ */

/* The sender path of a CLIENT that announces 0.0.0.0 port 0. */
#define V_ANY_CLIENT "tcp://0.0.0.0:0#7"

/* Our Hello as a CLIENT announcing `me`, AUTH when the server has a secret. */
static hello_t client_hello(const server_t *s, const char *me, uint64_t session)
{
    hello_t h = hello_of(me, V_INCARNATION, session,
                         AX__HELLO_CLIENT | (s->cookie != NULL ? AX__HELLO_AUTH : 0u));

    randombytes_buf(h.nonce, NONCE_SIZE);
    return h;
}

/* The next `n` echo replies on c, to `dst`, carrying first+1, first+2, ...
 * in order; Acks and Heartbeats in between are skipped. */
static void expect_replies(wire_conn_t *c, const server_t *s, const char *dst, uint64_t first, unsigned n)
{
    for (unsigned i = 0; i < n;) {
        bytes_t f = expect_frame(c, "an echo reply");

        if (frame_type(&f) != AX__FRAME_DATA)
            continue;
        check_reply(&f, s, dst, first + i + 1);
        i++;
    }
}

/* The session of the doc with hello_client: the reply to tcp://0.0.0.0:0#7
 * comes back on this connection, and Bye closes it as usual. */
Test(wire_live, client_session)
{
    server_t s;
    wire_conn_t c;
    ax_encode_buffer_t *eb = encoder();
    ax_net_stats_t st;
    bytes_t f;
    hello_t h;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    c = conn_open(&s.addr);
    send_vector(&c, "hello_client");
    f = expect_frame(&c, "the server's Hello to a CLIENT");
    h = hello_parse(&f);
    cr_assert_eq(h.session, V_SESSION);
    cr_assert_eq(h.flags, 0, "an acceptor never sets CLIENT");
    c.open = true;
    f = data_frame(eb, V_SERVER, V_ANY_CLIENT, 41, NULL);
    conn_send(&c, &f);
    expect_reply_and_ack(&c, &s, V_ANY_CLIENT, 42, 1);
    f = ack_frame(1);
    conn_send(&c, &f);
    send_vector(&c, "bye");
    expect_vector(&c, "bye");
    cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
    expect_closed(&c, "after the Bye exchange");
    conn_close(&c);
    WAIT_STATS(&s, st, st.connections == 0);
    cr_assert_eq(st.frames_sent, 1);
    cr_assert_eq(st.acked, 1);
    cr_assert_eq(st.malformed, 0);
    cr_assert_eq(st.dead_lettered, 0);
    cr_assert_eq(st.reconnects, 0);
    ax_encode_buffer_destroy(&eb);
    server_stop(&s);
}

/*
 * Two CLIENTs at once with the same address, session and sender path,
 * without and with a secret: neither refuses nor replaces the other, their
 * messages interleave, and each gets exactly its own replies, in order.
 * One leaves; the other is still served.
 */
Test(wire_live, two_clients_one_address)
{
    enum { ROUNDS = 20 };

    for (int with_secret = 0; with_secret <= 1; with_secret++) {
        server_t s;
        wire_conn_t a, b;
        ax_encode_buffer_t *eb = encoder();
        ax_net_stats_t st;
        hello_t ha, hb;
        bytes_t f;

        if (with_secret)
            server_start_auth(&s);
        else
            server_start(&s, "127.0.0.1:0", 16u << 20, 500);
        ha = client_hello(&s, "0.0.0.0:0", 77);
        hb = client_hello(&s, "0.0.0.0:0", 77);
        a = conn_open(&s.addr);
        initiate(&a, &s, &ha, s.cookie, NULL);
        b = conn_open(&s.addr);
        initiate(&b, &s, &hb, s.cookie, NULL);
        for (uint64_t i = 0; i < ROUNDS; i++) {
            f = data_frame(eb, V_SERVER, V_ANY_CLIENT, 1000 + i, NULL);
            conn_send(&a, &f);
            f = data_frame(eb, V_SERVER, V_ANY_CLIENT, 2000 + i, NULL);
            conn_send(&b, &f);
        }
        expect_replies(&b, &s, V_ANY_CLIENT, 2000, ROUNDS);
        expect_replies(&a, &s, V_ANY_CLIENT, 1000, ROUNDS);
        WAIT_STATS(&s, st, st.connections == 2 && st.frames_sent == 2 * ROUNDS);
        cr_assert_eq(st.replace_refused, 0, "a CLIENT is never refused for its address");
        cr_assert_eq(st.malformed, 0);
        cr_assert_eq(st.auth_failures, 0);
        conn_close(&a);
        WAIT_STATS(&s, st, st.connections == 1);
        f = data_frame(eb, V_SERVER, V_ANY_CLIENT, 3000, NULL);
        conn_send(&b, &f);
        expect_replies(&b, &s, V_ANY_CLIENT, 3000, 1);
        conn_close(&b);
        WAIT_STATS(&s, st, st.connections == 0);
        ax_encode_buffer_destroy(&eb);
        server_stop(&s);
    }
}

/* A CLIENT that announces the address of a connected peer replaces
 * nothing, and that peer keeps its own replies; the CLIENT gets its own. */
Test(wire_live, client_never_replaces)
{
    server_t s;
    wire_conn_t peer, cl;
    ax_encode_buffer_t *eb = encoder();
    ax_net_stats_t st;
    hello_t h;
    bytes_t f;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    peer = conn_open(&s.addr);
    handshake(&peer, &s, "127.0.0.1:9001", V_INCARNATION, 31);
    cl = conn_open(&s.addr);
    h = client_hello(&s, "127.0.0.1:9001", 32);
    initiate(&cl, &s, &h, NULL, NULL);
    f = data_frame(eb, V_SERVER, V_CLIENT, 10, NULL);
    conn_send(&cl, &f);
    expect_replies(&cl, &s, V_CLIENT, 10, 1);
    send_vector(&peer, "data_u64");
    expect_reply_and_ack(&peer, &s, V_CLIENT, 42, 1);
    WAIT_STATS(&s, st, st.connections == 2);
    cr_assert_eq(st.replace_refused, 0);
    conn_close(&cl);
    conn_close(&peer);
    ax_encode_buffer_destroy(&eb);
    server_stop(&s);
}

/* The keeper: keeps the sender ref of the first message it gets, and
 * answers it at once. */
static pthread_mutex_t keeper_lock = PTHREAD_MUTEX_INITIALIZER;
static ax_ref_t keeper_ref;
static _Atomic int keeper_has;

static ax_status_t keeper_network(ax_actor_t *self, ax_net_msg_t **nm)
{
    ax_ref_t from;
    ax_msg_t *reply = NULL;

    if (ax_net_msg_sender(self, *nm, &from) != AX_OK || ax_u64_msg_new(1, &reply) != AX_OK)
        return AX_OK;
    pthread_mutex_lock(&keeper_lock);
    keeper_ref = from;
    pthread_mutex_unlock(&keeper_lock);
    atomic_store(&keeper_has, 1);
    if (ax_tell(from, &reply, ax_self(self)) != AX_OK)
        ax_msg_release(&reply);
    return AX_OK;
}

static const ax_actor_vtable_t keeper_vtable = {
    .name = "test.keeper",
    .size = sizeof(echo_t),
    .receive_network = keeper_network,
};

/* Dead letters, by status, with their recipient. */
static _Atomic uint64_t client_dl_count, client_dl_closed;
static pthread_mutex_t client_dl_lock = PTHREAD_MUTEX_INITIALIZER;
static ax_ref_t client_dl_recipient;

static ax_status_t client_dl_receive(ax_actor_t *self, ax_msg_t **msg)
{
    const ax_dead_letter_t *d = (const ax_dead_letter_t *)*msg;

    (void)self;
    if ((*msg)->type != &ax_dead_letter_type)
        return AX_OK;
    pthread_mutex_lock(&client_dl_lock);
    client_dl_recipient = d->recipient;
    pthread_mutex_unlock(&client_dl_lock);
    if (d->status == AX_ECLOSED)
        atomic_fetch_add(&client_dl_closed, 1);
    atomic_fetch_add(&client_dl_count, 1);
    return AX_OK;
}

static const ax_actor_vtable_t client_dl_vtable = {
    .name = "test.dead-letters",
    .size = sizeof(echo_t),
    .receive_local = client_dl_receive,
};

/*
 * A reply made after the CLIENT's connection closed goes to dead letters
 * with AX_ECLOSED, for the ref it was sent to, and nothing connects to the
 * address the CLIENT announced, though something listens there: a CLIENT
 * is never connected to. The ref's path is the one the client sent.
 */
Test(wire_live, client_reply_after_close)
{
    server_t s;
    wire_conn_t c;
    ax_encode_buffer_t *eb = encoder();
    ax_net_stats_t st;
    ax_addr_t me;
    ax_path_t kept_path;
    ax_ref_t keeper, dl, kept;
    ax_msg_t *m = NULL;
    char me_text[64], me_path[96], keeper_path[96], server_text[64];
    struct pollfd pfd;
    int lfd;
    hello_t h;
    bytes_t f;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    cr_assert_eq(ax_spawn(s.sys, &keeper_vtable, NULL, &keeper), AX_OK);
    cr_assert_eq(ax_register(s.sys, keeper, "keeper"), AX_OK);
    cr_assert_eq(ax_spawn(s.sys, &client_dl_vtable, NULL, &dl), AX_OK);
    ax_set_dead_letter_actor(s.sys, dl);
    /* We listen where we say we are: a connection there would show. */
    lfd = listener_open("127.0.0.1", &me);
    ax_addr_format(&me, me_text, sizeof me_text);
    snprintf(me_path, sizeof me_path, "tcp://%s#7", me_text);
    ax_addr_format(&s.addr, server_text, sizeof server_text);
    snprintf(keeper_path, sizeof keeper_path, "tcp://%s/keeper", server_text);

    c = conn_open(&s.addr);
    h = client_hello(&s, me_text, 41);
    initiate(&c, &s, &h, NULL, NULL);
    f = data_frame(eb, keeper_path, me_path, 5, NULL);
    conn_send(&c, &f);
    for (;;) {
        f = expect_frame(&c, "the keeper's answer");
        if (frame_type(&f) == AX__FRAME_DATA)
            break;
    }
    cr_assert_eq(atomic_load(&keeper_has), 1);
    pthread_mutex_lock(&keeper_lock);
    kept = keeper_ref;
    pthread_mutex_unlock(&keeper_lock);
    cr_assert_eq(ax_ref_path(kept, &kept_path), AX_OK);
    cr_assert(ax_addr_eq(&kept_path.addr, &me), "the ref's path holds the announced address");

    /* The answer acknowledged (an unacknowledged one would be a dead
     * letter of its own), then gone without a Bye. */
    f = ack_frame(1);
    conn_send(&c, &f);
    WAIT_STATS(&s, st, st.acked == 1);
    conn_close(&c);
    WAIT_STATS(&s, st, st.connections == 0);
    cr_assert_eq(atomic_load(&client_dl_count), 0);
    cr_assert_eq(ax_u64_msg_new(2, &m), AX_OK);
    cr_assert_eq(ax_tell(kept, &m, AX_REF_NULL), AX_OK);
    cr_assert(axt_wait_at_least(&client_dl_count, 1, NET_WAIT_S), "the late reply was not dead-lettered");
    cr_assert_eq(atomic_load(&client_dl_closed), 1, "dead-lettered with AX_ECLOSED");
    pthread_mutex_lock(&client_dl_lock);
    cr_assert(ax_ref_eq(client_dl_recipient, kept), "the dead letter names the ref it was sent to");
    pthread_mutex_unlock(&client_dl_lock);
    WAIT_STATS(&s, st, st.dead_lettered == 1);
    pfd = (struct pollfd){lfd, POLLIN, 0};
    cr_assert_eq(poll(&pfd, 1, 300), 0, "the server connected to the address a CLIENT announced");
    cr_assert_eq(st.connections, 0);
    close(lfd);
    ax_set_dead_letter_actor(s.sys, AX_REF_NULL);
    ax_encode_buffer_destroy(&eb);
    server_stop(&s);
}

/* Section 7.1: only an initiator is a CLIENT. The server, connecting to us
 * to deliver a reply, closes on our Hello with CLIENT, counts it
 * malformed, and delivers on its next attempt. */
Test(wire_live, acceptor_hello_with_client_closes)
{
    sim_t x;
    ax_net_stats_t st;
    hello_t h;
    bytes_t f;

    sim_setup(&x, "127.0.0.1", "127.0.0.2", NULL);
    h = sim_hello(&x, 0xc2, 0);
    h.session = x.c2_hello.session;
    h.flags = AX__HELLO_CLIENT;
    f = hello_frame(&h);
    conn_send(&x.c2, &f);
    expect_closed(&x.c2, "an acceptor's Hello with CLIENT");
    WAIT_STATS(&x.s, st, st.malformed == 1);
    conn_close(&x.c2);
    sim_accept(&x, "the server's Hello on its second attempt");
    accept_handshake(&x.c2, &x.c2_frame, sim_hello(&x, 0xc2, 0), x.s.cookie);
    f = expect_frame(&x.c2, "the echo reply on the server's connection");
    check_reply(&f, &x.s, x.me_path, 42);
    sim_teardown(&x);
}

/* ---- section 7: authentication ------------------------------------------------------ */

/* Both sides prove the secret; then the session runs as without one. */
Test(wire_live, auth_handshake)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;
    hello_t mine;

    server_start_auth(&s);
    c = conn_open(&s.addr);
    /* The doc's client Hello, byte for byte (the server's nonce differs
     * from the vector's, so the proofs are computed here). */
    mine = hello_of("127.0.0.1:9001", V_INCARNATION, V_SESSION, AX__HELLO_AUTH);
    initiate(&c, &s, &mine, V_COOKIE, NULL);
    send_vector(&c, "data_u64");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    send_vector(&c, "bye");
    expect_vector(&c, "bye");
    expect_closed(&c, "after the Bye exchange");
    conn_close(&c);
    WAIT_STATS(&s, st, st.connections == 0);
    cr_assert_eq(st.auth_failures, 0);
    cr_assert_eq(st.malformed, 0);
    server_stop(&s);
}

/* A wrong proof closes without a reply: no Auth comes back. */
Test(wire_live, auth_wrong_secret)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;
    hello_t mine = hello_of("127.0.0.1:9001", V_INCARNATION, 31, AX__HELLO_AUTH);
    bytes_t hi = hello_frame(&mine), ha, a;

    server_start_auth(&s);
    c = conn_open(&s.addr);
    conn_send(&c, &hi);
    ha = expect_frame(&c, "the server's Hello");
    cr_assert_eq(hello_parse(&ha).flags, AX__HELLO_AUTH);
    a = auth_of("axon-test-cookiE", AX__PROOF_INITIATOR, &hi, &ha);
    conn_send(&c, &a);
    expect_closed(&c, "a proof with the wrong secret");
    conn_close(&c);
    WAIT_STATS(&s, st, st.auth_failures == 1);
    cr_assert_eq(st.frames_received, 0);
    server_stop(&s);
}

/* A secret on one side only: the side that sees it closes, without a
 * reply, and counts an auth failure. */
Test(wire_live, auth_secret_on_one_side_only)
{
    server_t s, open_s;
    wire_conn_t c;
    ax_net_stats_t st;
    hello_t mine;
    bytes_t f;

    /* The server has a secret, we claim none: closed before its Hello. */
    server_start_auth(&s);
    c = conn_open(&s.addr);
    mine = hello_of("127.0.0.1:9001", V_INCARNATION, 41, 0);
    f = hello_frame(&mine);
    conn_send(&c, &f);
    expect_closed(&c, "a Hello without AUTH to a server with a secret");
    conn_close(&c);
    WAIT_STATS(&s, st, st.auth_failures == 1);
    server_stop(&s);

    /* We claim a secret, the server has none: closed too. */
    server_start(&open_s, "127.0.0.1:0", 16u << 20, 500);
    c = conn_open(&open_s.addr);
    send_vector(&c, "hello_auth");
    expect_closed(&c, "a Hello with AUTH to a server without a secret");
    conn_close(&c);
    WAIT_STATS(&open_s, st, st.auth_failures == 1);
    cr_assert_eq(st.malformed, 0);
    server_stop(&open_s);
}

/* The same with Axon as the initiator: its Hello is answered by a Hello
 * with the other AUTH flag, and it closes and counts. */
Test(wire_live, auth_mismatch_as_initiator)
{
    for (int with_secret = 0; with_secret <= 1; with_secret++) {
        sim_t x;
        ax_net_stats_t st;
        hello_t h;
        bytes_t f;

        sim_setup(&x, "127.0.0.1", "127.0.0.2", with_secret ? V_COOKIE : NULL);
        h = sim_hello(&x, 0xc1, 0);
        h.session = x.c2_hello.session;
        h.flags = with_secret ? 0 : AX__HELLO_AUTH;
        f = hello_frame(&h);
        conn_send(&x.c2, &f);
        expect_closed(&x.c2, with_secret ? "our Hello without AUTH" : "our Hello with AUTH");
        WAIT_STATS(&x.s, st, st.auth_failures == 1);
        conn_close(&x.c2);
        /* Its second attempt, answered right, carries the reply. */
        sim_accept(&x, "the server's Hello on its second attempt");
        accept_handshake(&x.c2, &x.c2_frame, sim_hello(&x, 0xc1, 0), x.s.cookie);
        f = expect_frame(&x.c2, "the echo reply on the server's connection");
        check_reply(&f, &x.s, x.me_path, 42);
        sim_teardown(&x);
    }
}

/* An Auth recorded on one connection proves nothing on the next: the
 * server's fresh nonce changes the transcript. */
Test(wire_live, auth_replay_is_refused)
{
    server_t s;
    wire_conn_t c1, c2;
    ax_net_stats_t st;
    hello_t mine = hello_of("127.0.0.1:9001", V_INCARNATION, 51, AX__HELLO_AUTH);
    bytes_t recorded, hi = hello_frame(&mine), ha;

    server_start_auth(&s);
    c1 = conn_open(&s.addr);
    initiate(&c1, &s, &mine, V_COOKIE, &recorded);
    conn_close(&c1);
    WAIT_STATS(&s, st, st.connections == 0);

    /* The same Hello, byte for byte, then the recorded Auth. */
    c2 = conn_open(&s.addr);
    conn_send(&c2, &hi);
    ha = expect_frame(&c2, "the server's Hello");
    (void)hello_parse(&ha);
    conn_send(&c2, &recorded);
    expect_closed(&c2, "a replayed Auth");
    conn_close(&c2);
    WAIT_STATS(&s, st, st.auth_failures == 1);
    server_stop(&s);
}

/* Before both proofs, only the expected Auth is taken: anything else
 * (Data, a Heartbeat, a second Hello, an Auth that is not a bin) closes
 * the connection without a reply. */
Test(wire_live, auth_frames_out_of_turn)
{
    static const char *const what[] = {"Data before the Auth", "a Heartbeat before the Auth",
                                       "a second Hello", "an Auth that is not a bin"};
    server_t s;
    ax_net_stats_t st;

    server_start_auth(&s);
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        wire_conn_t c = conn_open(&s.addr);
        hello_t mine = hello_of("127.0.0.1:9001", V_INCARNATION, 60 + i, AX__HELLO_AUTH);
        bytes_t hi = hello_frame(&mine), ha, bad;

        conn_send(&c, &hi);
        ha = expect_frame(&c, "the server's Hello");
        cr_assert_eq(hello_parse(&ha).flags, AX__HELLO_AUTH);
        switch (i) {
        case 0:
            bad = vec("data_u64");
            break;
        case 1:
            bad = vec("heartbeat");
            break;
        case 2:
            bad = hi;
            break;
        default:
            bad = hexb("00 00 00 01 07 00 00 00 c0");
            break;
        }
        conn_send(&c, &bad);
        expect_closed(&c, what[i]);
        conn_close(&c);
        WAIT_STATS(&s, st, st.malformed == i + 1);
    }
    cr_assert_eq(st.auth_failures, 0);
    server_stop(&s);
}

/* Section 11 with secrets: a restarted peer's authenticated Hello
 * replaces its open connection at once. */
Test(wire_live, auth_restart_replaces_at_once)
{
    server_t s;
    wire_conn_t c1, c2;
    ax_net_stats_t st;

    server_start_auth(&s);
    c1 = conn_open(&s.addr);
    handshake(&c1, &s, "127.0.0.1:9001", V_INCARNATION, 71);
    c2 = conn_open(&s.addr);
    handshake(&c2, &s, "127.0.0.1:9001", V_INCARNATION + 1, 72);
    expect_closed(&c1, "the connection of the old incarnation");
    conn_close(&c1);
    send_vector(&c2, "data_u64");
    expect_reply_and_ack(&c2, &s, V_CLIENT, 42, 1);
    WAIT_STATS(&s, st, st.frames_received == 1);
    cr_assert_eq(st.replace_refused, 0);
    cr_assert_eq(st.auth_failures, 0);
    conn_close(&c2);
    server_stop(&s);
}

/* ---- section 15: each side's limit ------------------------------------------------ */

/* The Hello announces min(max_frame_size, chunk_size * (max_chunk_count - 1)),
 * and a reply above the limit we announced is dead-lettered by the server
 * (too_big), which keeps the connection. */
Test(wire_live, frame_limits_in_the_hello)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;
    ax_encode_buffer_t *eb;
    hello_t mine;
    bytes_t f;

    server_start_opts(&s, &(server_opts_t){.listen = "127.0.0.1:0", .max_frame = 16u << 20, .flush_ms = 500,
                                           .chunk_size = 4096, .max_chunk_count = 5});
    cr_assert_eq(s.max_frame, 4 * 4096);
    c = conn_open(&s.addr);
    mine = hello_of("127.0.0.1:9001", V_INCARNATION, 81, 0);
    mine.max_frame = 100;
    initiate(&c, &s, &mine, NULL, NULL); /* checks the announced 16384 */

    /* 200 bytes to echo: its reply of about 240 bytes is above our 100. */
    eb = encoder();
    {
        ax_path_t d = path(V_SERVER), src = path(V_CLIENT);
        unsigned char blob[200];
        ax_msg_t *m = NULL;
        ax_lease_t frame;
        uint32_t off;

        memset(blob, 0x5a, sizeof blob);
        cr_assert_eq(ax_bytes_msg_new(blob, sizeof blob, &m), AX_OK);
        cr_assert_eq(frame_encode_data(eb, &d, &src, &ax_bytes_type, m, &frame, &off), AX_OK);
        f.n = lease_bytes(&frame, f.b, sizeof f.b);
        ax_lease_release(&frame);
        ax_msg_release(&m);
    }
    conn_send(&c, &f);
    f = expect_frame(&c, "the Ack of the bytes message");
    cr_assert_eq(ack_count(&f), 1, "an Ack, and no reply above our limit");
    WAIT_STATS(&s, st, st.too_big == 1);
    /* The connection stays: a small message still gets its reply. */
    send_vector(&c, "data_u64");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 2);
    cr_assert_eq(st.malformed, 0);
    ax_encode_buffer_destroy(&eb);
    conn_close(&c);
    server_stop(&s);
}

/* ---- section 12: graceful close ---------------------------------------------------- */

static void *stop_system(void *arg)
{
    ax_system_shutdown(arg);
    ax_system_await_termination(arg);
    return NULL;
}

/*
 * A server that shuts down says Bye; a peer that answers Bye and waits for
 * the end of the stream must see it promptly, not after flush_timeout_ms.
 */
Test(wire_live, graceful_close_after_bye_exchange)
{
    server_t s;
    wire_conn_t c;
    pthread_t t;
    double t0, waited;

    /* A flush timeout far beyond any scheduling stall: closing on the Bye
     * exchange takes far less than half of it, waiting for it takes all. */
    server_start(&s, "127.0.0.1:0", 16u << 20, 120000);
    c = conn_open(&s.addr);
    handshake(&c, &s, "127.0.0.1:9001", V_INCARNATION, 8);
    cr_assert_eq(pthread_create(&t, NULL, stop_system, s.sys), 0);
    expect_vector(&c, "bye");
    send_vector(&c, "bye");
    t0 = axt_now();
    expect_closed(&c, "after answering the server's Bye");
    waited = axt_now() - t0;
    pthread_join(t, NULL);
    conn_close(&c);
    server_stop(&s);
    cr_assert_lt(waited, 60.0, "the server closed %.2f s after the Bye exchange: it waited for "
                 "flush_timeout_ms (120 s)", waited);
}

/* ---- path ids (section 6.1) ------------------------------------------------------ */

/* The vector `name` as a lease, as the network thread holds a frame. */
static ax_lease_t vector_lease(ax_encode_buffer_t *eb, const char *name)
{
    bytes_t v = vec(name);
    ax_lease_t l;

    cr_assert_eq(ax_encode_begin(eb, v.n), AX_OK);
    cr_assert_eq(ax_encode_write(eb, v.b, v.n), AX_OK);
    cr_assert_eq(ax_encode_end(eb, &l), AX_OK);
    return l;
}

/* What the sender writes for frame: its compact head and its payload. */
static bytes_t compacted(ax__pathtab_t *t, const ax_lease_t *frame, uint32_t payload_off)
{
    unsigned char head[AX__COMPACT_HEAD_MAX];
    size_t len = 0, flen = ax_lease_len(frame);
    bytes_t out;

    cr_assert_eq(ax__pathtab_compact(t, frame, payload_off, head, sizeof head, &len), AX_OK);
    memcpy(out.b, head, len);
    out.n = len + ax_lease_copy_out(frame, payload_off, out.b + len, flen - payload_off);
    return out;
}

/* The envelope of vector `name` read with table t (binding). */
static ax_status_t view_of(const char *name, ax__pathtab_t *t, ax__env_view_t *v)
{
    bytes_t f = vec(name);
    static bytes_t keep; /* the view points into it */

    keep = f;
    return ax__env_view_read(keep.b + 8, keep.n - 8, t, true, v);
}

Test(wire_codec, path_id_vectors)
{
    ax_encode_buffer_t *eb = encoder();
    ax_lease_t full = vector_lease(eb, "data_u64");
    bytes_t want_env = vec("data_u64"), got, want;
    ax__pathtab_t *tx = ax__pathtab_new(1024, true), *rx = ax__pathtab_new(1024, false), *small;
    unsigned char env[AX__ENVELOPE_MAX];
    ax__env_view_t v;

    /* The sender: a definition for each path the first time, then ids. */
    got = compacted(tx, &full, 38);
    want = vec("data_u64_def");
    expect_bytes("data_u64_def", got.b, got.n, &want);
    got = compacted(tx, &full, 38);
    want = vec("data_u64_ref");
    expect_bytes("data_u64_ref", got.b, got.n, &want);
    cr_assert_eq(tx->used, 2);

    /* The receiver: both read back as data_u64's envelope, paths in full. */
    cr_assert_eq(view_of("data_u64_def", rx, &v), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(v.p[0].form, AX__PATH_DEF);
    cr_assert_eq(v.p[1].form, AX__PATH_DEF);
    cr_assert_eq(v.serialiser_id, AX_SER_U64);
    cr_assert_eq(v.len, 35 - 1, "the payload follows the envelope");
    cr_assert_eq(ax__env_view_full(&v, env), 38u - 8);
    cr_assert_eq(memcmp(env, want_env.b + 8, 38 - 8), 0, "the definitions stand for data_u64's paths");
    cr_assert_eq(view_of("data_u64_ref", rx, &v), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(v.p[0].form, AX__PATH_REF);
    cr_assert_eq(v.p[1].form, AX__PATH_REF);
    cr_assert_eq(ax__env_view_full(&v, env), 38u - 8);
    cr_assert_eq(memcmp(env, want_env.b + 8, 38 - 8), 0, "the references stand for the same paths");

    /* Malformed: a second definition of a bound id, a reference on a
     * fresh table, any id without a table, an id at or above n. */
    cr_assert_eq(view_of("data_u64_def", rx, &v), AX_EPROTO);
    ax__pathtab_free(rx);
    rx = ax__pathtab_new(1024, false);
    cr_assert_eq(view_of("data_u64_ref", rx, &v), AX_EPROTO, "a reference before its definition");
    cr_assert_eq(view_of("data_u64_ref", NULL, &v), AX_EPROTO);
    cr_assert_eq(view_of("data_u64_def", NULL, &v), AX_EPROTO);
    small = ax__pathtab_new(1, false);
    cr_assert_eq(view_of("data_u64_def", small, &v), AX_EPROTO, "id 1 of an offer of 1");
    cr_assert(strstr(ax_error_detail(), "at or above") != NULL, "%s", ax_error_detail());
    ax__pathtab_free(small);

    /* A full table: the first path keeps id 0, the next goes in full. */
    small = ax__pathtab_new(1, true);
    got = compacted(small, &full, 38);
    cr_assert_eq(got.b[8], 0x93);
    cr_assert_eq(got.b[9], 0x92, "the receiver is defined");
    cr_assert_eq(got.b[10], 0x00);
    cr_assert_eq(memcmp(got.b + 11, want_env.b + 9, 16), 0);
    cr_assert_eq(got.b[27], 0x94, "the sender goes in full");
    got = compacted(small, &full, 38);
    cr_assert_eq(got.b[9], 0x00, "then the receiver is id 0");
    cr_assert_eq(got.b[10], 0x94, "and the sender still in full");
    ax__pathtab_free(small);

    ax__pathtab_free(rx);
    ax__pathtab_free(tx);
    ax_lease_release(&full);
    ax_encode_buffer_destroy(&eb);
}

/* Send a Hello vector, take the server's Hello: a session is open. */
static void open_session(wire_conn_t *c, const char *hello_vector)
{
    send_vector(c, hello_vector);
    (void)expect_frame(c, "the server's Hello");
    c->open = true;
}

/* Reconnect from the same address once the server has seen the old
 * connection go. */
static void reconnect(wire_conn_t *c, server_t *s)
{
    ax_net_stats_t st;

    conn_close(c);
    WAIT_STATS(s, st, st.connections == 0);
    *c = conn_open(&s->addr);
}

/* A peer may send ids to Axon, which offers them; a new connection starts
 * a fresh table, where a reference before its definition closes it. */
Test(wire_live, path_ids_to_axon)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    c = conn_open(&s.addr);
    open_session(&c, "hello");
    send_vector(&c, "data_u64_def");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    send_vector(&c, "data_u64_ref");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 2);

    /* A new connection: id 0 and 1 mean nothing yet. */
    reconnect(&c, &s);
    send_vector(&c, "hello");
    (void)expect_frame(&c, "the server's Hello");
    send_vector(&c, "data_u64_ref");
    expect_closed(&c, "a reference before its definition");
    WAIT_STATS(&s, st, st.malformed == 1);

    /* And defined again, the ids work on the next one. */
    reconnect(&c, &s);
    send_vector(&c, "hello");
    (void)expect_frame(&c, "the server's Hello");
    send_vector(&c, "data_u64_def");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    send_vector(&c, "data_u64_ref");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 2);
    conn_close(&c);
    cr_assert(axt_wait_at_least(&echo_seen, 4, NET_WAIT_S));
    WAIT_STATS(&s, st, st.connections == 0);
    cr_assert_eq(st.malformed, 1);
    server_stop(&s);
}

/* With network.path_ids = 0 Axon offers none, and both forms are malformed. */
Test(wire_live, path_ids_off)
{
    server_t s;
    wire_conn_t c;
    ax_net_stats_t st;
    hello_t h;
    bytes_t f;

    server_start_opts(&s, &(server_opts_t){.listen = "127.0.0.1:0", .max_frame = 16u << 20, .flush_ms = 500,
                                          .no_path_ids = true});
    c = conn_open(&s.addr);
    send_vector(&c, "hello_ids");
    f = expect_frame(&c, "the server's Hello");
    h = hello_parse(&f);
    cr_assert_eq(h.path_ids, 0);
    c.open = true;
    /* We offered ids, but it uses none: the reply comes with full paths. */
    send_vector(&c, "data_u64");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    send_vector(&c, "data_u64_def");
    expect_closed(&c, "a definition towards a system that offered no ids");
    conn_close(&c);
    WAIT_STATS(&s, st, st.malformed == 1 && st.connections == 0);
    server_stop(&s);
}

/* The reply's envelope read with our table: it goes to V_CLIENT from the
 * echo actor; forms[i] is how each path came. */
static void check_reply_ids(const bytes_t *f, const server_t *s, ax__pathtab_t *rx, const uint8_t forms[2],
                            uint64_t value)
{
    ax__env_view_t v;
    ax_path_t dst, src, want = path(V_CLIENT);
    msgpack_zone *zone = msgpack_zone_new(256);
    msgpack_object o;

    cr_assert_eq(frame_type(f), AX__FRAME_DATA);
    cr_assert_eq(ax__env_view_read(f->b + 8, f->n - 8, rx, true, &v), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(v.p[0].form, forms[0], "receiver form %u, want %u", v.p[0].form, forms[0]);
    cr_assert_eq(v.p[1].form, forms[1], "sender form %u, want %u", v.p[1].form, forms[1]);
    cr_assert_eq(ax__path_read(v.p[0].bytes, v.p[0].len, &dst), AX_OK);
    cr_assert_eq(ax__path_read(v.p[1].bytes, v.p[1].len, &src), AX_OK);
    cr_assert_eq(ax_path_cmp(&dst, &want), 0);
    cr_assert_eq(src.kind, AX_PATH_UNIQUE);
    cr_assert_eq(src.id, ax_ref_id(s->echo));
    o = unpack_one(f->b + 8 + v.len, f->n - 8 - v.len, zone);
    cr_assert_eq(o.via.u64, value);
    msgpack_zone_free(zone);
}

/* Read the reply and the Ack `acks`, in either order; the reply's bytes. */
static bytes_t reply_and_ack(wire_conn_t *c, uint64_t acks)
{
    bytes_t reply = {.n = 0};
    bool acked = false;

    while (reply.n == 0 || !acked) {
        bytes_t f = expect_frame(c, "an echo reply and an Ack");

        if (frame_type(&f) == AX__FRAME_DATA)
            reply = f;
        else
            acked = ack_count(&f) == acks;
    }
    return reply;
}

/* Towards a peer that offers ids Axon defines each path once, then sends
 * its id; on a new connection it defines them again. With an offer of 1
 * only the first path gets an id. */
Test(wire_live, path_ids_from_axon)
{
    static const uint8_t defs[2] = {AX__PATH_DEF, AX__PATH_DEF}, refs[2] = {AX__PATH_REF, AX__PATH_REF},
                         one_def[2] = {AX__PATH_DEF, AX__PATH_FULL}, one_ref[2] = {AX__PATH_REF, AX__PATH_FULL};
    server_t s;
    wire_conn_t c;
    ax__pathtab_t *rx;
    hello_t mine = hello_of("127.0.0.1:9001", V_INCARNATION, V_SESSION, 0);
    bytes_t f;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    for (int round = 0; round < 2; round++) {
        c = conn_open(&s.addr);
        open_session(&c, "hello_ids");
        rx = ax__pathtab_new(1024, false);
        send_vector(&c, "data_u64");
        f = reply_and_ack(&c, 1);
        check_reply_ids(&f, &s, rx, defs, 42);
        send_vector(&c, "data_u64");
        f = reply_and_ack(&c, 2);
        check_reply_ids(&f, &s, rx, refs, 42);
        cr_assert_eq(f.n, 13u, "a reply of references is 13 bytes: header, 93 00 01 03 2a");
        cr_assert_eq(memcmp(f.b + 8, "\x93\x00\x01\x03\x2a", 5), 0);
        ax__pathtab_free(rx);
        /* The next round is a new connection: a fresh table each side. */
        reconnect(&c, &s);
        conn_close(&c);
    }

    mine.path_ids = 1;
    c = conn_open(&s.addr);
    f = hello_frame(&mine);
    conn_send(&c, &f);
    (void)expect_frame(&c, "the server's Hello");
    c.open = true;
    rx = ax__pathtab_new(1, false);
    send_vector(&c, "data_u64");
    f = reply_and_ack(&c, 1);
    check_reply_ids(&f, &s, rx, one_def, 42);
    send_vector(&c, "data_u64");
    f = reply_and_ack(&c, 2);
    check_reply_ids(&f, &s, rx, one_ref, 42);
    ax__pathtab_free(rx);
    conn_close(&c);
    server_stop(&s);
}

/* A Data frame from V_CLIENT with u64 41 whose receiver is the unique path
 * of `to` on the server: defined as id 0 (def) or referenced. */
static bytes_t data_to_unique(const server_t *s, ax_ref_t to, bool def)
{
    unsigned char tail[] = {0x94, 0x00, 0xc4, 0x04, 0x7f, 0x00, 0x00, 0x01, 0xcd, 0x23, 0x29, 0x07, 0x03, 0x29};
    ax_path_t p;
    ax__packed_path_t pp;
    bytes_t f = {.n = 8};

    cr_assert_eq(ax_ref_path(to, &p), AX_OK);
    p.addr = s->addr;
    cr_assert_eq(ax__path_packed(&p, &pp), AX_OK);
    f.b[f.n++] = 0x93;
    if (def) {
        f.b[f.n++] = 0x92;
        f.b[f.n++] = 0x00;
        memcpy(f.b + f.n, pp.bytes, pp.len);
        f.n += pp.len;
    } else {
        f.b[f.n++] = 0x00;
    }
    memcpy(f.b + f.n, tail, sizeof tail);
    f.n += sizeof tail;
    header(f.b, AX__FRAME_DATA, AX_OK, f.n - 8);
    return f;
}

/* The actor an id resolved to is remembered only while the ref checks
 * out: a reference to a unique path whose actor ended is returned as
 * AX_ENOTFOUND; a name that moved to another actor is followed. */
Test(wire_live, path_ids_follow_the_actors)
{
    server_t s;
    wire_conn_t c;
    ax_ref_t first, second, r;
    ax_net_stats_t st;
    ax_path_t p;
    bytes_t f;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    c = conn_open(&s.addr);
    open_session(&c, "hello");

    /* By name: echo answers, then the name moves to another echo. */
    send_vector(&c, "data_u64_def");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    first = s.echo;
    cr_assert_eq(ax_unregister(s.sys, "echo"), AX_OK);
    cr_assert_eq(ax_spawn(s.sys, &echo_vtable, NULL, &second), AX_OK);
    cr_assert_eq(ax_register(s.sys, second, "echo"), AX_OK);
    s.echo = second; /* check_reply: the reply's sender is the new one */
    send_vector(&c, "data_u64_ref");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 2);
    conn_close(&c);
    WAIT_STATS(&s, st, st.connections == 0);

    /* By unique id: the first echo answers while it lives; once it has
     * ended, the same id is an unknown recipient. */
    c = conn_open(&s.addr);
    open_session(&c, "hello");
    s.echo = first;
    f = data_to_unique(&s, first, true);
    conn_send(&c, &f);
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    cr_assert_eq(ax_ref_path(first, &p), AX_OK);
    cr_assert_eq(ax_stop(first), AX_OK);
    for (double end = axt_now() + NET_WAIT_S; ax_ref_from_path(s.sys, &p, &r) == AX_OK && axt_now() < end;)
        axt_sleep_us(1000);
    cr_assert_eq(ax_ref_from_path(s.sys, &p, &r), AX_ENOTFOUND, "the first echo has ended");
    f = data_to_unique(&s, first, false);
    conn_send(&c, &f);
    f = expect_frame(&c, "a Status for the ended actor");
    cr_assert_eq(frame_type(&f), AX__FRAME_STATUS);
    cr_assert_eq(f.b[6], ax_status_to_byte(AX_ENOTFOUND));
    conn_close(&c);
    server_stop(&s);
}
