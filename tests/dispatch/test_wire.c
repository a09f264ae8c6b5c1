/*
 * The wire format of docs/wire.md, checked three ways:
 *   - the doc's hex vectors, its status table and its frame-type table
 *     equal the constants here and the library's own tables (the doc is
 *     read at run time, so the two cannot drift apart unnoticed);
 *   - the library's encoders produce exactly those bytes, and its decoders
 *     (frame header, envelope, path, DecodeBuffer) read them back field by
 *     field. Control frames (Hello, Ack, Status, Bye) are built by static
 *     functions of the network thread, so they are built here with
 *     msgpack-c exactly as the doc says;
 *   - a live system, fed those raw bytes over a plain socket, answers as
 *     the doc says: its Status, Ack and Bye frames are byte-identical to
 *     the vectors, bad input closes only its own connection, and the
 *     simultaneous-connect and restart rules pick the connection the doc
 *     says they pick.
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

#include "axon/axon.h"
#include "dispatch/net_internal.h"
#include "serial/frame.h"
#include "tests/actor/helpers.h"

#ifndef AXON_WIRE_MD
#error "AXON_WIRE_MD must be the path of docs/wire.md (set by tests/dispatch/CMakeLists.txt)"
#endif

/* Seconds one network step may take before the test fails. */
#define NET_WAIT_S 5.0
#define FRAME_MAX 4096

/* ---- the vectors of docs/wire.md ----------------------------------------- */

typedef struct vector_s {
    const char *name;
    const char *hex;
} vector_t;

/* The same bytes as the doc's hex blocks; vectors_in_the_doc_equal_the_constants keeps them equal. */
static const vector_t vectors[] = {
    {"hello", "00 00 00 24 01 00 00 00"
              "95 a4 61 78 6f 6e 01 93 00 c4 04 7f 00 00 01 cd 23 29"
              "cf 01 23 45 67 89 ab cd ef cf 11 22 33 44 55 66 77 88"},
    {"data_u64", "00 00 00 1f 02 00 00 00 93"
                 "94 01 c4 04 7f 00 00 01 cd 23 28 a4 65 63 68 6f"
                 "94 00 c4 04 7f 00 00 01 cd 23 29 07 03 29"},
    {"data_u64_nil_sender", "00 00 00 14 02 00 00 00 93"
                            "94 01 c4 04 7f 00 00 01 cd 23 28 a4 65 63 68 6f c0 03 29"},
    {"data_to_nobody", "00 00 00 21 02 00 00 00 93"
                       "94 01 c4 04 7f 00 00 01 cd 23 28 a6 6e 6f 62 6f 64 79"
                       "94 00 c4 04 7f 00 00 01 cd 23 29 07 03 29"},
    {"status_notfound", "00 00 00 25 03 00 07 00 92 03 c4 21 93"
                        "94 01 c4 04 7f 00 00 01 cd 23 28 a6 6e 6f 62 6f 64 79"
                        "94 00 c4 04 7f 00 00 01 cd 23 29 07 03 29"},
    {"ack", "00 00 00 01 06 00 00 00 03"},
    {"status_toobig", "00 00 00 02 03 00 0a 00 91 00"},
    {"bye", "00 00 00 00 04 00 00 00"},
    {"path_unique_ipv4", "94 00 c4 04 c0 a8 01 14 cd 23 28 2a"},
    {"path_named_ipv6", "94 05 c4 10 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01"
                        "cd 23 28 a4 65 63 68 6f"},
};

#define NVECTORS (sizeof vectors / sizeof vectors[0])

/* The fields the vectors were made from. */
#define V_SERVER "tcp://127.0.0.1:9000/echo"
#define V_NOBODY "tcp://127.0.0.1:9000/nobody"
#define V_CLIENT "tcp://127.0.0.1:9001#7"
#define V_INCARNATION UINT64_C(0x0123456789abcdef)
#define V_SESSION UINT64_C(0x1122334455667788)

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

/* A Hello as section 7 describes it; magic and version may be wrong on purpose. */
static bytes_t hello_frame(const char *magic, uint64_t version, const ax_addr_t *addr, uint64_t incarnation,
                           uint64_t session)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bytes_t f;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(msgpack_pack_array(&pk, 5) || msgpack_pack_str(&pk, strlen(magic)) ||
                     msgpack_pack_str_body(&pk, magic, strlen(magic)) || msgpack_pack_uint64(&pk, version) ||
                     pack_address(&pk, addr) || msgpack_pack_uint64(&pk, incarnation) ||
                     msgpack_pack_uint64(&pk, session),
                 0);
    f = frame_of(AX__FRAME_HELLO, AX_OK, &sb);
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
    cr_assert_eq(ax__frame_encode_data(eb, &d, src != NULL ? &s : NULL, &ax_u64_type, m, &frame, &off),
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
    /* "Bytes 18 to 255 are unassigned": the doc names the first free byte. */
    cr_assert_eq(N_STATUS, 18, "update section 10 of docs/wire.md: the first free byte moved");
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
        {"Ack", AX__FRAME_ACK},
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
        bool known = t >= AX__FRAME_HELLO && t <= AX__FRAME_ACK;

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
        cr_assert_eq(ax__frame_encode_head(eb, &d, cases[i].src ? &s : NULL, AX_SER_U64, 1, &head), AX_OK);
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

Test(wire_codec, control_vectors)
{
    ax_addr_t client = addr_of("127.0.0.1:9001");
    ax_encode_buffer_t *eb = encoder();
    bytes_t nobody = data_frame(eb, V_NOBODY, V_CLIENT, 41, NULL);
    bytes_t got, want;
    msgpack_zone *zone = msgpack_zone_new(1024);
    ax__frame_header_t h;
    msgpack_object o, *f;

    got = hello_frame(AX__PROTO_MAGIC, AX__PROTO_VERSION, &client, V_INCARNATION, V_SESSION);
    want = vec("hello");
    expect_bytes("hello", got.b, got.n, &want);
    cr_assert_eq(ax__frame_header_read(want.b, &h), AX_OK);
    cr_assert_eq(h.type, AX__FRAME_HELLO);
    cr_assert_eq(h.body_len, want.n - AX__FRAME_HEADER_SIZE);
    o = unpack_one(want.b + 8, want.n - 8, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o.via.array.size, 5);
    f = o.via.array.ptr;
    cr_assert_eq(f[0].type, MSGPACK_OBJECT_STR);
    cr_assert_eq(f[0].via.str.size, 4);
    cr_assert_eq(memcmp(f[0].via.str.ptr, "axon", 4), 0);
    cr_assert_eq(f[1].via.u64, 1);
    cr_assert_eq(f[2].type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(f[2].via.array.size, 3);
    cr_assert_eq(f[2].via.array.ptr[0].via.u64, 0);
    cr_assert_eq(f[2].via.array.ptr[1].type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(memcmp(f[2].via.array.ptr[1].via.bin.ptr, client.ip, 4), 0);
    cr_assert_eq(f[2].via.array.ptr[2].via.u64, 9001);
    cr_assert_eq(f[3].via.u64, V_INCARNATION);
    cr_assert_eq(f[4].via.u64, V_SESSION);
    msgpack_zone_clear(zone);

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

    msgpack_zone_free(zone);
    ax_encode_buffer_destroy(&eb);
}

/* All frame vectors back to back, as they would follow each other on a
 * stream: the DecodeBuffer splits them exactly at the vector boundaries. */
Test(wire_codec, vectors_as_one_stream)
{
    static const char *const frames[] = {"hello", "data_u64", "data_u64_nil_sender", "data_to_nobody",
                                         "status_notfound", "ack", "status_toobig", "bye"};
    static const uint8_t types[] = {AX__FRAME_HELLO, AX__FRAME_DATA, AX__FRAME_DATA, AX__FRAME_DATA,
                                    AX__FRAME_STATUS, AX__FRAME_ACK, AX__FRAME_STATUS, AX__FRAME_BYE};
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
} server_t;

static void server_start(server_t *s, const char *listen, size_t max_frame, uint64_t flush_ms)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 2;
    snprintf(cfg.network.listen, sizeof cfg.network.listen, "%s", listen);
    cfg.network.max_frame_size = max_frame;
    cfg.network.flush_timeout_ms = flush_ms;
    /* Replies to made-up addresses whose connection is gone end in dead
     * letters quickly instead of retrying for seconds. */
    cfg.network.max_retries = 1;
    cfg.network.backoff_initial_ms = 10;
    cr_assert_eq(ax_system_create(&cfg, &s->sys), AX_OK);
    cr_assert_eq(ax_net_start(s->sys), AX_OK, "%s", ax_error_detail());
    ax_system_address(s->sys, &s->addr);
    cr_assert_eq(ax_spawn(s->sys, &echo_vtable, NULL, &s->echo), AX_OK);
    cr_assert_eq(ax_register(s->sys, s->echo, "echo"), AX_OK);
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
    wire_conn_t c = {fd, NULL};
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

static bytes_t expect_frame(wire_conn_t *c, const char *what)
{
    bytes_t f;
    int r = conn_read(c, &f, NET_WAIT_S);

    cr_assert_eq(r, 1, "%s: %s", what, r == 0 ? "the connection was closed" : "timed out");
    return f;
}

/* The server must close the connection without sending anything. */
static void expect_closed(wire_conn_t *c, const char *what)
{
    bytes_t f;
    int r = conn_read(c, &f, NET_WAIT_S);

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

typedef struct hello_s {
    ax_addr_t addr;
    uint64_t incarnation, session;
} hello_t;

/* A Hello from the server, checked field by field against section 7. */
static hello_t hello_parse(const bytes_t *f)
{
    msgpack_zone *zone = msgpack_zone_new(256);
    msgpack_object o, *e, *a;
    ax__frame_header_t h;
    hello_t r = {0};

    cr_assert_eq(frame_type(f), AX__FRAME_HELLO);
    cr_assert_eq(ax__frame_header_read(f->b, &h), AX_OK);
    cr_assert_eq(h.status, 0);
    o = unpack_one(f->b + 8, f->n - 8, zone);
    cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o.via.array.size, 5);
    e = o.via.array.ptr;
    cr_assert(e[0].type == MSGPACK_OBJECT_STR && e[0].via.str.size == 4 &&
              memcmp(e[0].via.str.ptr, "axon", 4) == 0);
    cr_assert(e[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[1].via.u64 == 1);
    cr_assert(e[2].type == MSGPACK_OBJECT_ARRAY && e[2].via.array.size == 3);
    a = e[2].via.array.ptr;
    cr_assert(a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && (a[0].via.u64 == 0 || a[0].via.u64 == 4));
    r.addr.family = a[0].via.u64 == 4 ? 6 : 4;
    cr_assert(a[1].type == MSGPACK_OBJECT_BIN && a[1].via.bin.size == (r.addr.family == 6 ? 16u : 4u));
    memcpy(r.addr.ip, a[1].via.bin.ptr, a[1].via.bin.size);
    cr_assert(a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[2].via.u64 <= 65535);
    r.addr.port = (uint16_t)a[2].via.u64;
    cr_assert(e[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[3].via.u64 != 0);
    cr_assert(e[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    r.incarnation = e[3].via.u64;
    r.session = e[4].via.u64;
    msgpack_zone_free(zone);
    return r;
}

/* Send our Hello and read the server's: same session, the server's address. */
static hello_t handshake(wire_conn_t *c, const server_t *s, const char *me, uint64_t incarnation,
                         uint64_t session)
{
    ax_addr_t a = addr_of(me);
    bytes_t f = hello_frame("axon", 1, &a, incarnation, session);
    hello_t h;

    conn_send(c, &f);
    f = expect_frame(c, "the server's Hello");
    h = hello_parse(&f);
    cr_assert_eq(h.session, session, "the acceptor answers with the initiator's session");
    cr_assert(ax_addr_eq(&h.addr, &s->addr), "the Hello carries the server's address");
    return h;
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
 * reply, and a bystander connection keeps working. */
Test(wire_live, bad_input_closes_only_its_connection)
{
    ax_addr_t client = addr_of("127.0.0.1:9001");
    struct bad {
        const char *what;
        bool after_handshake;
        bytes_t bytes;
    } cases[16];
    size_t n = 0;
    server_t s;
    wire_conn_t bystander;
    ax_net_stats_t st;
    bytes_t v;

#define BAD(w, hs, b) (cases[n++] = (struct bad){(w), (hs), (b)})
    BAD("Data before Hello", false, vec("data_u64"));
    BAD("Hello with version 2", false, hello_frame("axon", 2, &client, V_INCARNATION, 7));
    BAD("Hello with another magic", false, hello_frame("axom", 1, &client, V_INCARNATION, 7));
    v = vec("hello"); /* an array of 6: one element too many */
    v.b[8] = 0x96;
    v.b[v.n++] = 0xc0;
    v.b[3]++;
    BAD("Hello with 6 elements", false, v);
    v = vec("hello"); /* address flags 1: a kind bit */
    v.b[16] = 0x01;
    BAD("Hello with address flags 1", false, v);
    BAD("Hello with an empty body", false, hexb("00 00 00 00 01 00 00 00"));
    BAD("frame type 7", true, hexb("00 00 00 00 07 00 00 00"));
    BAD("non-zero flags byte", true, hexb("00 00 00 01 06 01 00 00 01"));
    BAD("non-zero reserved byte", true, hexb("00 00 00 01 06 00 00 01 01"));
    BAD("a second Hello", true, vec("hello"));
    BAD("Ack with a byte after its object", true, hexb("00 00 00 02 06 00 00 00 01 01"));
    BAD("Ack that is not a uint", true, hexb("00 00 00 01 06 00 00 00 c0"));
    BAD("Status that is not an array", true, hexb("00 00 00 01 03 00 07 00 03"));
    BAD("Data with an envelope of 2 elements", true, hexb("00 00 00 03 02 00 00 00 92 01 02"));
    v = vec("data_u64"); /* receiver path flags 0x41: bit 6 */
    v.b[10] = 0x41;
    BAD("Data with an unknown path flag bit", true, v);
#undef BAD

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

/* Section 13: Heartbeats, with or without a body, are dropped and not counted. */
Test(wire_live, heartbeat_is_ignored)
{
    server_t s;
    wire_conn_t c;
    bytes_t v;

    server_start(&s, "127.0.0.1:0", 16u << 20, 500);
    c = conn_open(&s.addr);
    handshake(&c, &s, "127.0.0.1:9001", V_INCARNATION, 5);
    v = hexb("00 00 00 00 05 00 00 00");
    conn_send(&c, &v);
    v = hexb("00 00 00 03 05 00 00 00 ff ff ff");
    conn_send(&c, &v);
    send_vector(&c, "data_u64");
    expect_reply_and_ack(&c, &s, V_CLIENT, 42, 1);
    conn_close(&c);
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
    hello_t c2_hello;
    ax_encode_buffer_t *eb;
} sim_t;

/* The server listens on server_ip, we on my_ip. We make the server connect
 * to us: a message from tcp://<me>#7 to echo, whose reply needs a
 * connection to <me>. The server's connection (c2) is left waiting for
 * our Hello. */
static void sim_setup(sim_t *x, const char *server_ip, const char *my_ip)
{
    char listen[64], me[64];
    bytes_t f;

    snprintf(listen, sizeof listen, "%s:0", server_ip);
    server_start(&x->s, listen, 16u << 20, 500);
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
    x->c2 = listener_accept(x->lfd);
    f = expect_frame(&x->c2, "the server's Hello as initiator");
    x->c2_hello = hello_parse(&f);
    cr_assert(ax_addr_eq(&x->c2_hello.addr, &x->s.addr));
}

static void sim_teardown(sim_t *x)
{
    conn_close(&x->c1);
    conn_close(&x->c2);
    close(x->lfd);
    ax_encode_buffer_destroy(&x->eb);
    server_stop(&x->s);
}

/* Connect to the server announcing `me`; the Hello bytes, ready to send. */
static bytes_t sim_hello(const sim_t *x, uint64_t incarnation, uint64_t session)
{
    return hello_frame("axon", 1, &x->me, incarnation, session);
}

Test(wire_live, lower_address_wins_server_lower)
{
    sim_t x;
    wire_conn_t c3, c4, c5;
    bytes_t f;
    hello_t h;

    /* The server at 127.0.0.1 is lower than us at 127.0.0.2. */
    sim_setup(&x, "127.0.0.1", "127.0.0.2");

    /* Its own connection is still waiting for our Hello: it wins, ours
     * is closed without a reply. */
    c3 = conn_open(&x.s.addr);
    f = sim_hello(&x, 0xa1, 3);
    conn_send(&c3, &f);
    expect_closed(&c3, "our connection from the higher address");
    conn_close(&c3);

    /* As the initiator, it refuses a Hello with another session, then
     * tries again after its backoff. */
    f = sim_hello(&x, 0xa1, x.c2_hello.session + 1);
    conn_send(&x.c2, &f);
    expect_closed(&x.c2, "our Hello with the wrong session");
    conn_close(&x.c2);
    x.c2 = listener_accept(x.lfd);
    f = expect_frame(&x.c2, "the server's Hello on its second attempt");
    h = hello_parse(&f);
    cr_assert_neq(h.session, x.c2_hello.session, "a new connection has a new session");
    x.c2_hello = h;

    /* We complete its connection; the waiting reply comes over it. */
    f = sim_hello(&x, 0xa1, x.c2_hello.session);
    conn_send(&x.c2, &f);
    f = expect_frame(&x.c2, "the echo reply on the server's connection");
    check_reply(&f, &x.s, x.me_path, 42);
    f = ack_frame(1);
    conn_send(&x.c2, &f);

    /* Open, same incarnation: the server's connection still wins. */
    c4 = conn_open(&x.s.addr);
    f = sim_hello(&x, 0xa1, 4);
    conn_send(&c4, &f);
    expect_closed(&c4, "a second connection with the same incarnation");
    conn_close(&c4);

    /* A new incarnation (we "restarted"): it replaces the open connection. */
    c5 = conn_open(&x.s.addr);
    f = sim_hello(&x, 0xa2, 5);
    conn_send(&c5, &f);
    f = expect_frame(&c5, "the server's Hello to the new incarnation");
    h = hello_parse(&f);
    cr_assert_eq(h.session, 5);
    expect_closed(&x.c2, "the connection to the old incarnation");

    /* Replies to <me> now take the new connection, whichever connection
     * the message came in on. */
    f = data_frame(x.eb, V_SERVER, x.me_path, 41, NULL);
    conn_send(&x.c1, &f);
    f = expect_frame(&c5, "the echo reply on the new connection");
    check_reply(&f, &x.s, x.me_path, 42);
    conn_close(&c5);
    sim_teardown(&x);
}

Test(wire_live, lower_address_wins_client_lower)
{
    sim_t x;
    wire_conn_t c3;
    bytes_t f;
    hello_t h;

    /* The server at 127.0.0.2 is higher than us at 127.0.0.1. */
    sim_setup(&x, "127.0.0.2", "127.0.0.1");

    /* Ours, opened by the lower address, wins: the server answers it,
     * closes its own, and sends the waiting reply over ours. */
    c3 = conn_open(&x.s.addr);
    f = sim_hello(&x, 0xb1, 3);
    conn_send(&c3, &f);
    f = expect_frame(&c3, "the server's Hello");
    h = hello_parse(&f);
    cr_assert_eq(h.session, 3);
    cr_assert_eq(h.incarnation, x.c2_hello.incarnation);
    expect_closed(&x.c2, "the server's own connection, which lost");
    f = expect_frame(&c3, "the echo reply on the winning connection");
    check_reply(&f, &x.s, x.me_path, 42);
    conn_close(&c3);
    sim_teardown(&x);
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

    server_start(&s, "127.0.0.1:0", 16u << 20, 5000);
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
    cr_assert_lt(waited, 1.0, "the server closed %.2f s after the Bye exchange", waited);
}
