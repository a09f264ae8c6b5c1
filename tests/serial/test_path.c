/* ActorPath: parsing good and bad text, canonical formatting, ordering and
 * hashing, and the msgpack wire encoding with its strict decoder. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "axon/serial.h"

#define ID_MAX ((UINT64_C(1) << 56) - 1)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* A path whose every byte is a marker, to show that a failing call left
 * its output alone. */
static ax_path_t sentinel_path(void)
{
    ax_path_t p;

    memset(&p, 0xa5, sizeof p);
    return p;
}

static bool is_sentinel(const ax_path_t *p)
{
    ax_path_t s = sentinel_path();

    return memcmp(p, &s, sizeof s) == 0;
}

static ax_path_t must_parse(const char *text)
{
    ax_path_t p;
    ax_status_t s = ax_path_parse(text, &p);

    cr_assert_eq(s, AX_OK, "parse \"%s\": %s: %s", text, ax_status_name(s), ax_error_detail());
    return p;
}

/* Pack p into sb (reset first) and unpack it again into *out. */
static ax_status_t pack_round_trip(const ax_path_t *p, msgpack_sbuffer *sb, ax_path_t *out)
{
    msgpack_packer pk;
    msgpack_unpacked u;
    size_t off = 0;
    ax_status_t s;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    cr_assert_eq(ax_path_pack(p, &pk), 0);
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, sb->size, "the encoding is exactly one object");
    s = ax_path_unpack(&u.data, out);
    msgpack_unpacked_destroy(&u);
    return s;
}

/* ------------------------------------------------------------------ */
/* Good paths                                                          */
/* ------------------------------------------------------------------ */

struct good_path {
    const char *text;
    ax_path_kind_t kind;
    uint8_t family;
    uint8_t ip[16];
    uint16_t port;
    uint64_t id;
    const char *name;
};

static const struct good_path good_paths[] = {
    {"tcp://127.0.0.1:9000#42", AX_PATH_UNIQUE, 4, {127, 0, 0, 1}, 9000, 42, NULL},
    {"tcp://127.0.0.1:9000/a", AX_PATH_NAMED, 4, {127, 0, 0, 1}, 9000, 0, "a"},
    {"tcp://127.0.0.1:9000/a/b", AX_PATH_NAMED, 4, {127, 0, 0, 1}, 9000, 0, "a/b"},
    {"tcp://10.1.2.3:1/user/x-1/y_2/~z.w", AX_PATH_NAMED, 4, {10, 1, 2, 3}, 1, 0, "user/x-1/y_2/~z.w"},
    {"tcp://0.0.0.0:0#1", AX_PATH_UNIQUE, 4, {0}, 0, 1, NULL},
    {"tcp://255.255.255.255:65535#72057594037927935", AX_PATH_UNIQUE, 4, {255, 255, 255, 255},
     65535, ID_MAX, NULL},
    {"tcp://[::1]:9000/a", AX_PATH_NAMED, 6, {[15] = 1}, 9000, 0, "a"},
    {"tcp://[::1]:9000#42", AX_PATH_UNIQUE, 6, {[15] = 1}, 9000, 42, NULL},
    {"tcp://[::]:0#7", AX_PATH_UNIQUE, 6, {0}, 0, 7, NULL},
    {"tcp://[2001:db8::1]:65535/svc/echo", AX_PATH_NAMED, 6,
     {0x20, 0x01, 0x0d, 0xb8, [15] = 1}, 65535, 0, "svc/echo"},
    {"tcp://[::ffff:1.2.3.4]:80#9", AX_PATH_UNIQUE, 6,
     {[10] = 0xff, [11] = 0xff, [12] = 1, [13] = 2, [14] = 3, [15] = 4}, 80, 9, NULL},
    {"tcp://[fe80::1:2:3:4]:5/!\"$%&'()*+,-.:;<=>?@[\\]^_`{|}~", AX_PATH_NAMED, 6,
     {0xfe, 0x80, [9] = 1, [11] = 2, [13] = 3, [15] = 4}, 5, 0,
     "!\"$%&'()*+,-.:;<=>?@[\\]^_`{|}~"},
};

Test(path, good_paths_parse_to_their_fields)
{
    for (size_t i = 0; i < sizeof good_paths / sizeof good_paths[0]; i++) {
        const struct good_path *g = &good_paths[i];
        ax_path_t p = must_parse(g->text);

        cr_expect_eq(p.kind, g->kind, "%s", g->text);
        cr_expect_eq(p.addr.family, g->family, "%s", g->text);
        cr_expect_arr_eq(p.addr.ip, g->ip, g->family == 6 ? 16 : 4, "%s", g->text);
        cr_expect_eq(p.addr.port, g->port, "%s", g->text);
        if (g->kind == AX_PATH_UNIQUE) {
            cr_expect_eq(p.id, g->id, "%s", g->text);
        } else {
            cr_expect_eq(p.name_len, strlen(g->name), "%s", g->text);
            cr_expect_str_eq(p.name, g->name, "%s", g->text);
        }
    }
}

Test(path, canonical_text_round_trips_through_format)
{
    for (size_t i = 0; i < sizeof good_paths / sizeof good_paths[0]; i++) {
        const char *text = good_paths[i].text;
        ax_path_t p = must_parse(text), q;
        char buf[AX_PATH_STR_MAX];
        size_t n = ax_path_format(&p, buf, sizeof buf);

        cr_expect_eq(n, strlen(text), "%s", text);
        cr_expect_str_eq(buf, text);
        cr_assert_eq(ax_path_parse(buf, &q), AX_OK, "%s", buf);
        cr_expect_eq(ax_path_cmp(&p, &q), 0, "%s", text);
    }
}

Test(path, round_trips_through_pack_and_unpack)
{
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    for (size_t i = 0; i < sizeof good_paths / sizeof good_paths[0]; i++) {
        ax_path_t p = must_parse(good_paths[i].text);
        ax_path_t q = sentinel_path();
        char buf[AX_PATH_STR_MAX];

        cr_assert_eq(pack_round_trip(&p, &sb, &q), AX_OK, "%s: %s", good_paths[i].text,
                     ax_error_detail());
        cr_expect_eq(ax_path_cmp(&p, &q), 0, "%s", good_paths[i].text);
        cr_expect_eq(ax_path_hash(&p), ax_path_hash(&q), "%s", good_paths[i].text);
        ax_path_format(&q, buf, sizeof buf);
        cr_expect_str_eq(buf, good_paths[i].text);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* IPv6 has many spellings; the parser takes them all and the formatter
 * writes the one inet_ntop gives. */
Test(path, ipv6_spellings_format_canonically)
{
    static const char *const pairs[][2] = {
        {"tcp://[0:0:0:0:0:0:0:1]:1#1", "tcp://[::1]:1#1"},
        {"tcp://[2001:0DB8:0000::0001]:2/a", "tcp://[2001:db8::1]:2/a"},
        {"tcp://[::FFFF:1.2.3.4]:3#3", "tcp://[::ffff:1.2.3.4]:3#3"},
        {"tcp://[::ffff:0102:0304]:3#3", "tcp://[::ffff:1.2.3.4]:3#3"},
    };

    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        ax_path_t p = must_parse(pairs[i][0]), q = must_parse(pairs[i][1]);
        char buf[AX_PATH_STR_MAX];

        ax_path_format(&p, buf, sizeof buf);
        cr_expect_str_eq(buf, pairs[i][1]);
        cr_expect_eq(ax_path_cmp(&p, &q), 0, "%s", pairs[i][0]);
    }
}

Test(path, longest_paths_fit_in_str_max)
{
    char text[AX_PATH_STR_MAX + 64];
    char name[AX_PATH_NAME_MAX + 1];
    char buf[AX_PATH_STR_MAX];
    ax_path_t p;

    memset(name, 'n', AX_PATH_NAME_MAX);
    name[AX_PATH_NAME_MAX] = '\0';
    snprintf(text, sizeof text, "tcp://[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535/%s", name);
    p = must_parse(text);
    cr_expect_eq(p.name_len, AX_PATH_NAME_MAX);
    cr_expect_lt(ax_path_format(&p, buf, sizeof buf), (size_t)AX_PATH_STR_MAX);
    cr_expect_str_eq(buf, text);
}

Test(path, format_truncates_like_snprintf)
{
    ax_path_t p = must_parse("tcp://127.0.0.1:9000/a/b");
    char buf[10];

    memset(buf, 'x', sizeof buf);
    cr_expect_eq(ax_path_format(&p, buf, sizeof buf), strlen("tcp://127.0.0.1:9000/a/b"));
    cr_expect_str_eq(buf, "tcp://127");
    cr_expect_eq(ax_path_format(&p, NULL, 0), strlen("tcp://127.0.0.1:9000/a/b"));
    memset(buf, 'x', sizeof buf);
    cr_expect_eq(ax_path_format(&p, buf, 1), strlen("tcp://127.0.0.1:9000/a/b"));
    cr_expect_eq(buf[0], '\0');
}

/* ------------------------------------------------------------------ */
/* Bad paths                                                           */
/* ------------------------------------------------------------------ */

/* Each bad input with a piece of the detail it must produce: the detail
 * says what is wrong and where, and a user reads it. */
struct bad_path {
    const char *text;
    const char *detail;
    int at; /* the offset the detail must end with, or -1 */
};

static const struct bad_path bad_paths[] = {
    {"", "empty path", 0},
    {"127.0.0.1:9000#1", "missing \"tcp://\" at the start", 0},
    {"udp://127.0.0.1:9000#1", "unsupported scheme \"udp\"; only \"tcp://\" is supported", 0},
    {"TCP://127.0.0.1:9000#1", "unsupported scheme \"TCP\"", 0},
    {"tcp:/127.0.0.1:9000#1", "missing \"tcp://\"", 0},
    {"tcp://", "missing host before the port", 6},
    {"tcp://:9000#1", "missing host before the port", 6},
    {"tcp://127.0.0.1#1", "expected ':' and a port after the host, found '#'", 15},
    {"tcp://127.0.0.1/a", "expected ':' and a port after the host, found '/'", 15},
    {"tcp://127.0.0.1", "found the end of the text", 15},
    {"tcp://127.0.0.1:#1", "expected the port (a decimal number), found '#'", 16},
    {"tcp://1.2.3.4:99999#1", "port 99999 is above 65535", 14},
    {"tcp://1.2.3.4:65536#1", "port 65536 is above 65535", 14},
    {"tcp://1.2.3.4:123456789012345678901234567890#1", "is above 65535", 14},
    {"tcp://1.2.3.4:-1#1", "port must be a decimal number without a sign", 14},
    {"tcp://1.2.3.4:+80#1", "without a sign", 14},
    {"tcp://1.2.3.4:080#1", "port \"080\" has a leading zero", 14},
    {"tcp://1.2.3:9000#1", "IPv4 address \"1.2.3\" has 3 parts, expected 4", 6},
    {"tcp://1.2.3.4.5:9000#1", "more than 4 parts", 6},
    {"tcp://256.1.1.1:9000#1", "IPv4 part \"256\" is above 255", 6},
    {"tcp://1.2.3.1000:9000#1", "IPv4 part \"1000\" is above 255", 12},
    {"tcp://1..3.4:9000#1", "empty part in IPv4 address", 8},
    {"tcp://1.2.3.:9000#1", "empty part in IPv4 address", 12},
    {"tcp://01.2.3.4:9000#1", "IPv4 part \"01\" has a leading zero", 6},
    {"tcp://localhost:9000#1", "host \"localhost\" is not a numeric IP address; names are not resolved", 6},
    {"tcp://example.com:9000/a", "host \"example.com\" is not a numeric IP address", 6},
    {"tcp://1.2.3.4 :9000#1", "a space is not allowed in an IPv4 address", 13},
    {"tcp://::1:9000#1", "an IPv6 address must be in brackets", 6},
    {"tcp://[::1:9000#1", "'[' without a closing ']'", 6},
    {"tcp://[::1", "'[' without a closing ']'", 6},
    {"tcp://[]:9000#1", "empty IPv6 address", 7},
    {"tcp://[::1]#1", "expected ':' and a port after the host, found '#'", 11},
    {"tcp://[::1]9000#1", "expected ':' and a port after the host, found '9'", 11},
    {"tcp://[1:2:3:4:5:6:7:8:9]:1#1", "is not a valid IPv6 address", 7},
    {"tcp://[::1::2]:1#1", "\"::1::2\" is not a valid IPv6 address", 7},
    {"tcp://[fe80::1%eth0]:1#1", "'%' is not allowed in an IPv6 address", 14},
    {"tcp://[1.2.3.4]:1#1", "\"1.2.3.4\" is not a valid IPv6 address", 7},
    {"tcp://[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:1#1", "IPv6 address is longer than 45 characters", 7},
    {"tcp://127.0.0.1:9000", "missing \"#<id>\" or \"/<name>\" after the port", 20},
    {"tcp://127.0.0.1:9000x", "unexpected 'x' after the port; expected '#' or '/'", 20},
    {"tcp://127.0.0.1:9000#", "expected the id (a decimal number), found the end of the text", 21},
    {"tcp://127.0.0.1:9000#0", "id 0 is not allowed; ids start at 1", 21},
    {"tcp://127.0.0.1:9000#-1", "id must be a decimal number without a sign", 21},
    {"tcp://127.0.0.1:9000#+1", "id must be a decimal number without a sign", 21},
    {"tcp://127.0.0.1:9000#012", "id \"012\" has a leading zero", 21},
    {"tcp://127.0.0.1:9000#12x", "unexpected 'x' after the id", 23},
    {"tcp://127.0.0.1:9000#1/a", "unexpected '/' after the id", 22},
    {"tcp://127.0.0.1:9000#72057594037927936", "id 72057594037927936 is above 2^56-1", 21},
    {"tcp://127.0.0.1:9000#18446744073709551616", "is above 2^56-1", 21},
    {"tcp://127.0.0.1:9000/", "the name is empty", 21},
    {"tcp://127.0.0.1:9000//a", "the name has an empty segment", 21},
    {"tcp://127.0.0.1:9000/a//b", "the name has an empty segment", 23},
    {"tcp://127.0.0.1:9000/a/", "the name ends with '/'", 22},
    {"tcp://127.0.0.1:9000/a b", "a space is not allowed in a name", 22},
    {"tcp://127.0.0.1:9000/a#1", "'#' is not allowed in a name", 22},
    {"tcp://127.0.0.1:9000/a\tb", "byte 0x09 is not allowed in a name", 22},
    {"tcp://127.0.0.1:9000/caf\xc3\xa9", "byte 0xc3 is not allowed in a name", 24},
    {"tcp://127.0.0.1:9000/a\x7f", "byte 0x7f is not allowed in a name", 22},
};

static bool ends_with_offset(const char *detail, int at)
{
    char tail[32];
    size_t n = (size_t)snprintf(tail, sizeof tail, " (at offset %d)", at);
    size_t len = strlen(detail);

    return at < 0 || (len >= n && strcmp(detail + len - n, tail) == 0);
}

Test(path, bad_paths_are_einval_with_a_precise_detail)
{
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        const struct bad_path *b = &bad_paths[i];
        ax_path_t p = sentinel_path();
        ax_status_t s;

        ax_error_clear();
        s = ax_path_parse(b->text, &p);
        cr_expect_eq(s, AX_EINVAL, "\"%s\" gave %s", b->text, ax_status_name(s));
        cr_expect(is_sentinel(&p), "\"%s\" changed *out", b->text);
        cr_expect(strstr(ax_error_detail(), b->detail) != NULL,
                  "\"%s\": detail \"%s\" lacks \"%s\"", b->text, ax_error_detail(), b->detail);
        cr_expect(ends_with_offset(ax_error_detail(), b->at), "\"%s\": \"%s\" is not at offset %d",
                  b->text, ax_error_detail(), b->at);
    }
}

Test(path, detail_quotes_the_input)
{
    ax_path_t p;

    cr_assert_eq(ax_path_parse("tcp://1.2.3.4:99999#1", &p), AX_EINVAL);
    cr_expect_str_eq(ax_error_detail(),
                     "path \"tcp://1.2.3.4:99999#1\": port 99999 is above 65535 (at offset 14)");
    /* Bytes that would not print are escaped, so a detail is one line. */
    cr_assert_eq(ax_path_parse("tcp://1.2.3.4:1/a\nb", &p), AX_EINVAL);
    cr_expect(strstr(ax_error_detail(), "\"tcp://1.2.3.4:1/a\\x0ab\"") != NULL, "%s",
              ax_error_detail());
}

Test(path, overlong_names_are_rejected)
{
    char text[AX_PATH_STR_MAX + 64];
    ax_path_t p = sentinel_path();

    memcpy(text, "tcp://1.2.3.4:1/", 16);
    memset(text + 16, 'n', AX_PATH_NAME_MAX + 1);
    text[16 + AX_PATH_NAME_MAX + 1] = '\0';
    cr_assert_eq(ax_path_parse(text, &p), AX_EINVAL);
    cr_expect(is_sentinel(&p));
    cr_expect(strstr(ax_error_detail(), "the name is 256 bytes, longer than the maximum of 255")
                  != NULL,
              "%s", ax_error_detail());
}

Test(path, null_arguments_are_einval)
{
    ax_path_t p = sentinel_path();

    ax_error_clear();
    cr_expect_eq(ax_path_parse(NULL, &p), AX_EINVAL);
    cr_expect(is_sentinel(&p));
    cr_expect_neq(ax_error_detail()[0], '\0');
    ax_error_clear();
    cr_expect_eq(ax_path_parse("tcp://1.2.3.4:1#1", NULL), AX_EINVAL);
    cr_expect_neq(ax_error_detail()[0], '\0');
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

Test(addr, parse_and_format)
{
    static const char *const good[] = {"127.0.0.1:0", "0.0.0.0:65535", "[::1]:9000",
                                       "[2001:db8::1]:1", "[::ffff:10.0.0.1]:80"};
    ax_addr_t a, b;
    char buf[64];

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert_eq(ax_addr_parse(good[i], &a), AX_OK, "%s: %s", good[i], ax_error_detail());
        cr_expect_eq(ax_addr_format(&a, buf, sizeof buf), strlen(good[i]));
        cr_expect_str_eq(buf, good[i]);
        cr_assert_eq(ax_addr_parse(buf, &b), AX_OK);
        cr_expect(ax_addr_eq(&a, &b), "%s", good[i]);
    }
    cr_assert_eq(ax_addr_parse("[::1]:9000", &a), AX_OK);
    cr_expect_eq(a.family, 6);
    cr_expect_eq(a.port, 9000);
}

Test(addr, bad_addresses)
{
    static const struct bad_path bad[] = {
        {"", "empty address", 0},
        {"127.0.0.1", "expected ':' and a port after the host", 9},
        {"127.0.0.1:", "expected the port", 10},
        {"127.0.0.1:70000", "port 70000 is above 65535", 10},
        {"localhost:80", "not a numeric IP address", 0},
        {"tcp://127.0.0.1:80", "not a numeric IP address", 0},
        {"127.0.0.1:80#1", "unexpected '#' after the port", 12},
        {"127.0.0.1:80/a", "unexpected '/' after the port", 12},
        {"[::1]", "expected ':' and a port", 5},
        {"::1:80", "must be in brackets", 0},
    };
    ax_addr_t a;

    memset(&a, 0xa5, sizeof a);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(ax_addr_parse(bad[i].text, &a), AX_EINVAL, "%s", bad[i].text);
        cr_expect_eq(a.family, 0xa5, "\"%s\" changed *out", bad[i].text);
        cr_expect(strstr(ax_error_detail(), bad[i].detail) != NULL, "\"%s\": \"%s\" lacks \"%s\"",
                  bad[i].text, ax_error_detail(), bad[i].detail);
        cr_expect(strncmp(ax_error_detail(), "address ", 8) == 0, "%s", ax_error_detail());
        cr_expect(ends_with_offset(ax_error_detail(), bad[i].at), "\"%s\": \"%s\" is not at offset %d",
                  bad[i].text, ax_error_detail(), bad[i].at);
    }
    cr_expect_eq(ax_addr_parse(NULL, &a), AX_EINVAL);
}

/* ------------------------------------------------------------------ */
/* Compare and hash                                                    */
/* ------------------------------------------------------------------ */

Test(path, equal_paths_compare_equal_and_hash_equal)
{
    ax_path_t a = must_parse("tcp://1.2.3.4:9000/a/b");
    ax_path_t b;
    ax_path_t u = must_parse("tcp://1.2.3.4:9000#5");
    ax_path_t v;

    /* The same paths built by hand, with junk in the bytes no field uses:
     * they still compare and hash equal. */
    memset(&b, 0x5a, sizeof b);
    b.addr.family = 4;
    memcpy(b.addr.ip, (uint8_t[]){1, 2, 3, 4}, 4);
    b.addr.port = 9000;
    b.kind = AX_PATH_NAMED;
    b.name_len = 3;
    memcpy(b.name, "a/b", 4);
    cr_expect_eq(ax_path_cmp(&a, &b), 0);
    cr_expect_eq(ax_path_hash(&a), ax_path_hash(&b));

    memset(&v, 0x77, sizeof v);
    v.addr = u.addr;
    memset(v.addr.ip + 4, 0xee, 12);
    v.kind = AX_PATH_UNIQUE;
    v.id = 5;
    cr_expect_eq(ax_path_cmp(&u, &v), 0);
    cr_expect_eq(ax_path_hash(&u), ax_path_hash(&v));
    cr_expect(ax_addr_eq(&u.addr, &v.addr));
}

Test(path, paths_differing_in_one_field_differ)
{
    /* Each differs from the first in exactly one field. */
    static const char *const texts[] = {
        "tcp://1.2.3.4:9000#5",
        "tcp://1.2.3.5:9000#5",          /* ip */
        "tcp://[::ffff:1.2.3.4]:9000#5", /* family (same IPv4 inside) */
        "tcp://1.2.3.4:9001#5",          /* port */
        "tcp://1.2.3.4:9000#6",          /* id */
        "tcp://1.2.3.4:9000/5",          /* kind */
        "tcp://1.2.3.4:9000/a",
        "tcp://1.2.3.4:9000/a/b", /* longer name with the same prefix */
        "tcp://1.2.3.4:9000/b",
        "tcp://[::1]:9000#5",
        "tcp://[::2]:9000#5",
    };
    enum { N = sizeof texts / sizeof texts[0] };
    ax_path_t p[N];

    for (size_t i = 0; i < N; i++)
        p[i] = must_parse(texts[i]);
    for (size_t i = 0; i < N; i++) {
        cr_expect_eq(ax_path_cmp(&p[i], &p[i]), 0);
        for (size_t j = 0; j < N; j++) {
            if (i == j)
                continue;
            int c = ax_path_cmp(&p[i], &p[j]);

            cr_expect_neq(c, 0, "%s vs %s", texts[i], texts[j]);
            cr_expect_eq(c, -ax_path_cmp(&p[j], &p[i]), "antisymmetric: %s vs %s", texts[i],
                         texts[j]);
            cr_expect_neq(ax_path_hash(&p[i]), ax_path_hash(&p[j]), "%s vs %s", texts[i], texts[j]);
        }
    }
    cr_expect(!ax_addr_eq(&p[0].addr, &p[1].addr));
    cr_expect(!ax_addr_eq(&p[0].addr, &p[2].addr));
    cr_expect(!ax_addr_eq(&p[0].addr, &p[3].addr));
    cr_expect(ax_addr_eq(&p[0].addr, &p[4].addr));
}

Test(path, cmp_is_a_total_order)
{
    static const char *const texts[] = {
        "tcp://9.9.9.9:1#1", "tcp://1.2.3.4:2/a", "tcp://[::1]:1#1", "tcp://1.2.3.4:1/b",
        "tcp://1.2.3.4:1#9", "tcp://1.2.3.4:1/a/b", "tcp://1.2.3.4:1/a",
    };
    enum { N = sizeof texts / sizeof texts[0] };
    ax_path_t p[N];

    for (size_t i = 0; i < N; i++)
        p[i] = must_parse(texts[i]);
    /* Transitivity over every triple. */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            for (size_t k = 0; k < N; k++)
                if (ax_path_cmp(&p[i], &p[j]) < 0 && ax_path_cmp(&p[j], &p[k]) < 0)
                    cr_expect_lt(ax_path_cmp(&p[i], &p[k]), 0, "%s < %s < %s", texts[i], texts[j],
                                 texts[k]);
}

/* ------------------------------------------------------------------ */
/* Wire encoding                                                       */
/* ------------------------------------------------------------------ */

/* The exact bytes, so that the encoding cannot drift from docs/wire.md. */
Test(wire, encoding_bytes_are_fixed)
{
    static const uint8_t unique_v4[] = {0x94, 0x00, 0xc4, 0x04, 127, 0,    0,    1,
                                        0xcd, 0x23, 0x28, 0x2a};
    static const uint8_t named_v6[] = {0x94, 0x05, 0xc4, 0x10, 0, 0, 0, 0, 0, 0,    0,    0,
                                       0,    0,    0,    0,    0, 0, 0, 1, 0xcd, 0x23, 0x28,
                                       0xa3, 'a',  '/',  'b'};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ax_path_t p;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    p = must_parse("tcp://127.0.0.1:9000#42");
    cr_assert_eq(ax_path_pack(&p, &pk), 0);
    cr_assert_eq(sb.size, sizeof unique_v4);
    cr_expect_arr_eq(sb.data, unique_v4, sizeof unique_v4);

    msgpack_sbuffer_clear(&sb);
    p = must_parse("tcp://[::1]:9000/a/b");
    cr_assert_eq(ax_path_pack(&p, &pk), 0);
    cr_assert_eq(sb.size, sizeof named_v6);
    cr_expect_arr_eq(sb.data, named_v6, sizeof named_v6);
    msgpack_sbuffer_destroy(&sb);
}

/* Another implementation may pick wider integer encodings; the decoder
 * checks values, not widths. */
Test(wire, wide_integer_encodings_are_accepted)
{
    static const uint8_t wide[] = {0x94, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0,    0xc4, 0x04, 10,   0,
                                   0,    1,    0xce, 0, 0, 0, 80, 0xd3, 0, 0,    0,    0,
                                   0,    0,    0,    7};
    msgpack_unpacked u;
    size_t off = 0;
    ax_path_t p;
    char buf[AX_PATH_STR_MAX];

    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, (const char *)wide, sizeof wide, &off),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(ax_path_unpack(&u.data, &p), AX_OK, "%s", ax_error_detail());
    ax_path_format(&p, buf, sizeof buf);
    cr_expect_str_eq(buf, "tcp://10.0.0.1:80#7");
    msgpack_unpacked_destroy(&u);
}

/* A malformed encoding, built with the packer. */
struct bad_wire {
    const char *what;
    void (*build)(msgpack_packer *pk);
    const char *detail;
};

static void head(msgpack_packer *pk, uint64_t flags, const void *ip, size_t iplen, uint64_t port)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, flags);
    msgpack_pack_bin(pk, iplen);
    msgpack_pack_bin_body(pk, ip, iplen);
    msgpack_pack_uint64(pk, port);
}

static const uint8_t v4[4] = {1, 2, 3, 4};
static const uint8_t v6[16] = {[15] = 1};

static void w_nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }
static void w_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
static void w_int(msgpack_packer *pk) { msgpack_pack_uint8(pk, 0); }
static void w_str(msgpack_packer *pk) { msgpack_pack_str_with_body(pk, "tcp://1.2.3.4:1#1", 17); }
static void w_array0(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
static void w_array3(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_bin_with_body(pk, v4, 4);
    msgpack_pack_uint16(pk, 1);
}
static void w_array5_hdr(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_bin_with_body(pk, v4, 4);
    msgpack_pack_uint16(pk, 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
}
static void w_flags_str(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_str_with_body(pk, "0", 1);
    msgpack_pack_bin_with_body(pk, v4, 4);
    msgpack_pack_uint16(pk, 1);
    msgpack_pack_uint8(pk, 1);
}
static void w_flags_neg(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_int8(pk, -1);
    msgpack_pack_bin_with_body(pk, v4, 4);
    msgpack_pack_uint16(pk, 1);
    msgpack_pack_uint8(pk, 1);
}
static void w_flags_bit6(msgpack_packer *pk) { head(pk, 0x40, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_flags_bit7(msgpack_packer *pk) { head(pk, 0x80, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_flags_high(msgpack_packer *pk) { head(pk, 1ull << 40, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_kind2(msgpack_packer *pk) { head(pk, 2, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_kind3(msgpack_packer *pk) { head(pk, 3, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_family2(msgpack_packer *pk) { head(pk, 2 << 2, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_family3(msgpack_packer *pk) { head(pk, 3 << 2, v6, 16, 1); msgpack_pack_uint8(pk, 1); }
static void w_proto1(msgpack_packer *pk) { head(pk, 1 << 4, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_v4_ip16(msgpack_packer *pk) { head(pk, 0, v6, 16, 1); msgpack_pack_uint8(pk, 1); }
static void w_v6_ip4(msgpack_packer *pk) { head(pk, 1 << 2, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_ip0(msgpack_packer *pk) { head(pk, 0, v4, 0, 1); msgpack_pack_uint8(pk, 1); }
static void w_ip_str(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_str_with_body(pk, "1234", 4);
    msgpack_pack_uint16(pk, 1);
    msgpack_pack_uint8(pk, 1);
}
static void w_port_big(msgpack_packer *pk) { head(pk, 0, v4, 4, 65536); msgpack_pack_uint8(pk, 1); }
static void w_port_neg(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_bin_with_body(pk, v4, 4);
    msgpack_pack_int32(pk, -80);
    msgpack_pack_uint8(pk, 1);
}
static void w_port_float(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_bin_with_body(pk, v4, 4);
    msgpack_pack_double(pk, 80.0);
    msgpack_pack_uint8(pk, 1);
}
static void w_id0(msgpack_packer *pk) { head(pk, 0, v4, 4, 1); msgpack_pack_uint8(pk, 0); }
static void w_id_big(msgpack_packer *pk) { head(pk, 0, v4, 4, 1); msgpack_pack_uint64(pk, ID_MAX + 1); }
static void w_id_neg(msgpack_packer *pk) { head(pk, 0, v4, 4, 1); msgpack_pack_int8(pk, -1); }
static void w_id_str(msgpack_packer *pk) { head(pk, 0, v4, 4, 1); msgpack_pack_str_with_body(pk, "a", 1); }
static void w_name_int(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_uint8(pk, 1); }
static void w_name_bin(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_bin_with_body(pk, "a", 1); }
static void w_name_empty(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_str_with_body(pk, "", 0); }
static void w_name_space(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_str_with_body(pk, "a b", 3); }
static void w_name_hash(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_str_with_body(pk, "a#1", 3); }
static void w_name_nul(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_str_with_body(pk, "a\0b", 3); }
static void w_name_dslash(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_str_with_body(pk, "a//b", 4); }
static void w_name_lead(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_str_with_body(pk, "/a", 2); }
static void w_name_trail(msgpack_packer *pk) { head(pk, 1, v4, 4, 1); msgpack_pack_str_with_body(pk, "a/", 2); }
static void w_name_long(msgpack_packer *pk)
{
    char name[AX_PATH_NAME_MAX + 1];

    memset(name, 'n', sizeof name);
    head(pk, 1, v4, 4, 1);
    msgpack_pack_str_with_body(pk, name, sizeof name);
}

static const struct bad_wire bad_wires[] = {
    {"nil", w_nil, "expected an array of 4, not nil"},
    {"map", w_map, "expected an array of 4, not a map"},
    {"integer", w_int, "expected an array of 4, not an unsigned integer"},
    {"text path", w_str, "expected an array of 4, not a str"},
    {"empty array", w_array0, "not of 0"},
    {"array of 3", w_array3, "not of 3"},
    {"array of 5", w_array5_hdr, "not of 5"},
    {"flags str", w_flags_str, "flags (element 0) must be an unsigned integer, not a str"},
    {"flags negative", w_flags_neg, "not a negative integer"},
    {"flags bit 6", w_flags_bit6, "unknown bits 0x40"},
    {"flags bit 7", w_flags_bit7, "unknown bits 0x80"},
    {"flags bit 40", w_flags_high, "unknown bits 0x10000000000"},
    {"kind 2", w_kind2, "unknown kind 2"},
    {"kind 3", w_kind3, "unknown kind 3"},
    {"family 2", w_family2, "unknown address family 2"},
    {"family 3", w_family3, "unknown address family 3"},
    {"protocol 1", w_proto1, "unknown protocol 1"},
    {"IPv4 with 16 bytes", w_v4_ip16, "ip (element 1) is 16 bytes, but an IPv4 address has 4"},
    {"IPv6 with 4 bytes", w_v6_ip4, "ip (element 1) is 4 bytes, but an IPv6 address has 16"},
    {"ip empty", w_ip0, "is 0 bytes"},
    {"ip str", w_ip_str, "ip (element 1) must be a bin, not a str"},
    {"port 65536", w_port_big, "port 65536 is above 65535"},
    {"port negative", w_port_neg, "port (element 2) must be an unsigned integer"},
    {"port float", w_port_float, "not a float"},
    {"id 0", w_id0, "id 0 is outside 1 to 2^56-1"},
    {"id 2^56", w_id_big, "id 72057594037927936 is outside"},
    {"id negative", w_id_neg, "id (element 3) must be an unsigned integer, not a negative integer"},
    {"id str", w_id_str, "id (element 3) must be an unsigned integer, not a str"},
    {"name int", w_name_int, "name (element 3) must be a str, not an unsigned integer"},
    {"name bin", w_name_bin, "name (element 3) must be a str, not a bin"},
    {"name empty", w_name_empty, "the name is empty"},
    {"name space", w_name_space, "a space is not allowed in a name"},
    {"name '#'", w_name_hash, "'#' is not allowed"},
    {"name NUL", w_name_nul, "byte 0x00 is not allowed"},
    {"name a//b", w_name_dslash, "empty segment (at byte 2 of the name)"},
    {"name /a", w_name_lead, "empty segment (at byte 0 of the name)"},
    {"name a/", w_name_trail, "ends with '/'"},
    {"name 256 bytes", w_name_long, "the name is 256 bytes"},
};

Test(wire, malformed_encodings_are_eproto)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < sizeof bad_wires / sizeof bad_wires[0]; i++) {
        const struct bad_wire *b = &bad_wires[i];
        msgpack_unpacked u;
        size_t off = 0;
        ax_path_t p = sentinel_path();
        ax_status_t s;

        msgpack_sbuffer_clear(&sb);
        b->build(&pk);
        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS,
                     "%s", b->what);
        ax_error_clear();
        s = ax_path_unpack(&u.data, &p);
        cr_expect_eq(s, AX_EPROTO, "%s gave %s", b->what, ax_status_name(s));
        cr_expect(is_sentinel(&p), "%s changed *out", b->what);
        cr_expect(strstr(ax_error_detail(), b->detail) != NULL, "%s: \"%s\" lacks \"%s\"", b->what,
                  ax_error_detail(), b->detail);
        msgpack_unpacked_destroy(&u);
    }
    msgpack_sbuffer_destroy(&sb);
    cr_expect_eq(ax_path_unpack(NULL, &(ax_path_t){0}), AX_EINVAL);
}

static int failing_write(void *data, const char *buf, size_t len)
{
    (void)data;
    (void)buf;
    (void)len;
    return -7;
}

Test(wire, pack_reports_the_packer_failure)
{
    msgpack_packer pk;
    ax_path_t p = must_parse("tcp://[::1]:1/a");

    msgpack_packer_init(&pk, NULL, failing_write);
    cr_expect_neq(ax_path_pack(&p, &pk), 0);
}

Test(wire, pack_refuses_an_invalid_path)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ax_path_t p = must_parse("tcp://1.2.3.4:1#1");
    ax_path_t q;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    q = p;
    q.addr.family = 5;
    cr_expect_neq(ax_path_pack(&q, &pk), 0);
    q = p;
    q.id = 0;
    cr_expect_neq(ax_path_pack(&q, &pk), 0);
    q = p;
    q.id = ID_MAX + 1;
    cr_expect_neq(ax_path_pack(&q, &pk), 0);
    q = p;
    q.kind = (ax_path_kind_t)7;
    cr_expect_neq(ax_path_pack(&q, &pk), 0);
    q = must_parse("tcp://1.2.3.4:1/a");
    q.name_len = 0;
    cr_expect_neq(ax_path_pack(&q, &pk), 0);
    q.name_len = AX_PATH_NAME_MAX + 1;
    cr_expect_neq(ax_path_pack(&q, &pk), 0);
    memcpy(q.name, "a b", 4);
    q.name_len = 3;
    cr_expect_neq(ax_path_pack(&q, &pk), 0);
    cr_expect_eq(sb.size, 0, "nothing was written");
    msgpack_sbuffer_destroy(&sb);
}
