/*
 * ActorPath: parse, format, compare, hash, and the msgpack wire codec.
 *
 * The text grammar is deliberately strict: numbers have no sign and no
 * leading zero, IPv4 literals are exactly four dotted decimal parts, and a
 * name is taken byte for byte. Apart from the spelling of IPv6 literals
 * (inet_pton accepts several, inet_ntop writes one), every accepted string
 * is therefore already canonical, so two paths are equal exactly when their
 * texts are, and strings can serve as keys in logs and configuration.
 */
#include "axon/serial.h"
#include "common/error.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PATH_SCHEME "tcp://"
#define PATH_SCHEME_LEN 6
#define PATH_ID_MAX ((UINT64_C(1) << 56) - 1)
#define PORT_MAX 65535u

/* Longest IPv6 literal inet_pton can accept ("ffff:...:255.255.255.255"). */
#define IPV6_TEXT_MAX 45

/* Wire flags: each field owns its bits, so no value of one can alias
 * another (Kompact's overlapping fields broke IPv6). */
#define FLAG_KIND_SHIFT 0
#define FLAG_FAMILY_SHIFT 2
#define FLAG_PROTO_SHIFT 4
#define FLAG_FIELD_MASK 3u
#define FLAG_FAMILY_V4 0u
#define FLAG_FAMILY_V6 1u
#define FLAG_PROTO_TCP 0u
#define FLAG_KNOWN_MASK 0x3fu

/* ------------------------------------------------------------------ */
/* Error details                                                       */
/* ------------------------------------------------------------------ */

/* Where a parse is, for the detail. The per-thread detail buffer holds 255
 * characters, so a detail quotes at most the first QUOTE_MAX bytes of the
 * input and its message stays short, and the offset at the end survives. */
typedef struct parse_ctx_s {
    const char *what; /* "path" or "address" */
    const char *text;
} parse_ctx_t;

#define QUOTE_MAX 56

/* Copy text into out as a C-like quoted body: the input may hold any byte
 * (it comes from users and from fuzzers), and a detail must stay one
 * printable line. */
static void quote_text(const char *text, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; text[i] != '\0'; i++) {
        unsigned char c = (unsigned char)text[i];
        char esc[5];
        size_t n;

        if (i >= QUOTE_MAX) {
            snprintf(out + o, cap - o, "...");
            return;
        }
        if (c == '"' || c == '\\')
            n = (size_t)snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
        else
            n = (size_t)snprintf(esc, sizeof esc, "%c", c);
        if (o + n + 4 > cap) { /* keep room for "..." and the NUL */
            snprintf(out + o, cap - o, "...");
            return;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
}

/* A character as a detail shows it: 'x', or its value when it would not print. */
static const char *char_desc(int ch, char buf[12])
{
    unsigned char c = (unsigned char)ch;

    if (c == '\0')
        return "the end of the text";
    if (c == ' ')
        return "a space";
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, 12, "'%c'", c);
    else
        snprintf(buf, 12, "byte 0x%02x", c);
    return buf;
}

static ax_status_t parse_fail(const parse_ctx_t *ctx, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ax_status_t parse_fail(const parse_ctx_t *ctx, size_t at, const char *fmt, ...)
{
    char quoted[QUOTE_MAX + 8];
    char msg[160];
    va_list ap;

    quote_text(ctx->text, quoted, sizeof quoted);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ax__error(AX_EINVAL, "%s \"%s\": %s (at offset %zu)", ctx->what, quoted, msg, at);
}

/* ------------------------------------------------------------------ */
/* Shared validation                                                   */
/* ------------------------------------------------------------------ */

/*
 * Check a name against the rules of serial.h. Text parsing and wire
 * decoding share this, so a name that one accepts the other accepts too.
 * On failure *at is the offset of the fault within the name.
 */
static bool name_check(const char *s, size_t len, size_t *at, char *why, size_t why_len)
{
    char cd[12];

    if (len == 0) {
        *at = 0;
        snprintf(why, why_len, "the name is empty");
        return false;
    }
    if (len > AX_PATH_NAME_MAX) {
        *at = AX_PATH_NAME_MAX;
        snprintf(why, why_len, "the name is %zu bytes, longer than the maximum of %d", len,
                 AX_PATH_NAME_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x21 || c > 0x7e || c == '#') {
            *at = i;
            snprintf(why, why_len,
                     "%s is not allowed in a name (printable ASCII other than space and '#')",
                     c == '\0' ? "byte 0x00" : char_desc(c, cd));
            return false;
        }
        if (c == '/' && (i == 0 || s[i - 1] == '/')) {
            *at = i;
            snprintf(why, why_len, "the name has an empty segment");
            return false;
        }
    }
    if (s[len - 1] == '/') {
        *at = len - 1;
        snprintf(why, why_len, "the name ends with '/'");
        return false;
    }
    return true;
}

static size_t ip_len(uint8_t family)
{
    return family == 6 ? 16 : 4;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ------------------------------------------------------------------ */
/* Text parsing                                                        */
/* ------------------------------------------------------------------ */

/*
 * An unsigned decimal at text[*pos], for ports and ids: at least one digit,
 * no sign, no leading zero (so the text of a number is unique). The value
 * saturates at UINT64_MAX; *ndigits says how long the run was, and the
 * caller compares against its own limit.
 */
static ax_status_t parse_decimal(const parse_ctx_t *ctx, size_t *pos, const char *field,
                                 uint64_t *value, size_t *ndigits)
{
    const char *t = ctx->text;
    size_t start = *pos;
    size_t i = start;
    uint64_t v = 0;
    char cd[12];

    if (!is_digit(t[i])) {
        if (t[i] == '-' || t[i] == '+')
            return parse_fail(ctx, i, "the %s must be a decimal number without a sign", field);
        return parse_fail(ctx, i, "expected the %s (a decimal number), found %s", field,
                          char_desc(t[i], cd));
    }
    for (; is_digit(t[i]); i++) {
        unsigned d = (unsigned)(t[i] - '0');

        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    if (t[start] == '0' && i - start > 1)
        return parse_fail(ctx, start, "the %s \"%.*s\" has a leading zero", field,
                          (int)(i - start > 20 ? 20 : i - start), t + start);
    *pos = i;
    *value = v;
    *ndigits = i - start;
    return AX_OK;
}

/* Dotted-quad IPv4 in text[start, end). inet_pton has the final word; the
 * checks before it are there to say precisely what is wrong. */
static ax_status_t parse_ipv4(const parse_ctx_t *ctx, size_t start, size_t end, ax_addr_t *a)
{
    const char *t = ctx->text;
    char buf[16];
    size_t parts = 0;
    size_t i = start;
    char cd[12];

    for (size_t j = start; j < end; j++) {
        char c = t[j];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_')
            return parse_fail(ctx, start,
                              "host \"%.*s\" is not a numeric IP address; names are not resolved",
                              (int)(end - start > 40 ? 40 : end - start), t + start);
        if (!is_digit(c) && c != '.')
            return parse_fail(ctx, j, "%s is not allowed in an IPv4 address", char_desc(c, cd));
    }
    for (;;) {
        size_t ps = i;
        unsigned v = 0;

        while (i < end && is_digit(t[i])) {
            if (v <= 255)
                v = v * 10 + (unsigned)(t[i] - '0');
            i++;
        }
        if (i == ps)
            return parse_fail(ctx, ps, "empty part in IPv4 address");
        if (t[ps] == '0' && i - ps > 1)
            return parse_fail(ctx, ps, "IPv4 part \"%.*s\" has a leading zero",
                              (int)(i - ps > 8 ? 8 : i - ps), t + ps);
        if (v > 255)
            return parse_fail(ctx, ps, "IPv4 part \"%.*s\" is above 255",
                              (int)(i - ps > 8 ? 8 : i - ps), t + ps);
        parts++;
        if (i == end)
            break;
        i++; /* the '.' */
        if (parts == 4)
            return parse_fail(ctx, start, "IPv4 address has more than 4 parts");
    }
    if (parts != 4)
        return parse_fail(ctx, start, "IPv4 address \"%.*s\" has %zu parts, expected 4",
                          (int)(end - start), t + start, parts);

    memcpy(buf, t + start, end - start); /* at most 15 bytes after the checks */
    buf[end - start] = '\0';
    if (inet_pton(AF_INET, buf, a->ip) != 1)
        return parse_fail(ctx, start, "\"%s\" is not a valid IPv4 address", buf);
    a->family = 4;
    return AX_OK;
}

/* "[v6]" at text[*pos] == '['. */
static ax_status_t parse_ipv6(const parse_ctx_t *ctx, size_t *pos, ax_addr_t *a)
{
    const char *t = ctx->text;
    size_t open = *pos;
    size_t start = open + 1;
    size_t i = start;
    char buf[IPV6_TEXT_MAX + 1];
    char cd[12];

    /* Find the ']' first: a missing one is the likelier mistake than
     * whatever character the scan would stumble on. */
    while (t[i] != ']' && t[i] != '\0')
        i++;
    if (t[i] != ']')
        return parse_fail(ctx, open, "'[' without a closing ']'");
    for (size_t j = start; j < i; j++)
        if (!is_hex(t[j]) && t[j] != ':' && t[j] != '.')
            return parse_fail(ctx, j, "%s is not allowed in an IPv6 address", char_desc(t[j], cd));
    if (i == start)
        return parse_fail(ctx, start, "empty IPv6 address");
    if (i - start > IPV6_TEXT_MAX)
        return parse_fail(ctx, start, "IPv6 address is longer than %d characters", IPV6_TEXT_MAX);
    memcpy(buf, t + start, i - start);
    buf[i - start] = '\0';
    if (inet_pton(AF_INET6, buf, a->ip) != 1)
        return parse_fail(ctx, start, "\"%s\" is not a valid IPv6 address", buf);
    a->family = 6;
    *pos = i + 1;
    return AX_OK;
}

/* "host:port" at text[*pos]; stops after the port. */
static ax_status_t parse_addr_at(const parse_ctx_t *ctx, size_t *pos, ax_addr_t *a)
{
    const char *t = ctx->text;
    size_t i = *pos;
    uint64_t port;
    size_t nd;
    ax_status_t s;
    char cd[12];

    if (t[i] == '[') {
        s = parse_ipv6(ctx, &i, a);
        if (s != AX_OK)
            return s;
    } else {
        size_t end = i;
        size_t colons = 0;

        /* The host runs to the port's ':'. Count the colons up to the
         * id or name, to recognise an IPv6 literal that lacks brackets. */
        while (t[end] != '\0' && t[end] != ':' && t[end] != '/' && t[end] != '#')
            end++;
        for (size_t j = end; t[j] != '\0' && t[j] != '/' && t[j] != '#'; j++)
            colons += t[j] == ':';
        if (colons > 1)
            return parse_fail(ctx, i, "an IPv6 address must be in brackets, as in [::1]:9000");
        if (end == i)
            return parse_fail(ctx, i, "missing host before the port");
        s = parse_ipv4(ctx, i, end, a);
        if (s != AX_OK)
            return s;
        i = end;
    }
    if (t[i] != ':')
        return parse_fail(ctx, i, "expected ':' and a port after the host, found %s",
                          char_desc(t[i], cd));
    i++;
    s = parse_decimal(ctx, &i, "port", &port, &nd);
    if (s != AX_OK)
        return s;
    if (port > PORT_MAX)
        return parse_fail(ctx, i - nd, "port %.*s%s is above %u", (int)(nd > 20 ? 20 : nd),
                          t + i - nd, nd > 20 ? "..." : "", PORT_MAX);
    a->port = (uint16_t)port;
    *pos = i;
    return AX_OK;
}

static ax_status_t parse_id(const parse_ctx_t *ctx, size_t *pos, ax_path_t *p)
{
    const char *t = ctx->text;
    size_t i = *pos;
    uint64_t id;
    size_t nd;
    ax_status_t s;
    char cd[12];

    s = parse_decimal(ctx, &i, "id", &id, &nd);
    if (s != AX_OK)
        return s;
    if (id == 0)
        return parse_fail(ctx, *pos, "id 0 is not allowed; ids start at 1");
    if (id > PATH_ID_MAX)
        return parse_fail(ctx, *pos, "id %.*s%s is above 2^56-1 (%llu)", (int)(nd > 24 ? 24 : nd),
                          t + *pos, nd > 24 ? "..." : "", (unsigned long long)PATH_ID_MAX);
    if (t[i] != '\0')
        return parse_fail(ctx, i, "unexpected %s after the id", char_desc(t[i], cd));
    p->kind = AX_PATH_UNIQUE;
    p->id = id;
    *pos = i;
    return AX_OK;
}

static ax_status_t parse_name(const parse_ctx_t *ctx, size_t *pos, ax_path_t *p)
{
    const char *name = ctx->text + *pos;
    size_t len = strlen(name);
    size_t at;
    char why[128];

    if (!name_check(name, len, &at, why, sizeof why))
        return parse_fail(ctx, *pos + at, "%s", why);
    p->kind = AX_PATH_NAMED;
    memcpy(p->name, name, len);
    p->name[len] = '\0';
    p->name_len = (uint16_t)len;
    *pos += len;
    return AX_OK;
}

/* The scheme, with a detail that names a wrong scheme when there is one. */
static ax_status_t parse_scheme(const parse_ctx_t *ctx)
{
    const char *t = ctx->text;
    size_t n = 0;

    if (strncmp(t, PATH_SCHEME, PATH_SCHEME_LEN) == 0)
        return AX_OK;
    if (t[0] == '\0')
        return parse_fail(ctx, 0, "empty path");
    while (n < 16 && ((t[n] >= 'a' && t[n] <= 'z') || (t[n] >= 'A' && t[n] <= 'Z') || t[n] == '+'
                      || t[n] == '-' || t[n] == '.' || (n > 0 && is_digit(t[n]))))
        n++;
    if (n > 0 && strncmp(t + n, "://", 3) == 0)
        return parse_fail(ctx, 0, "unsupported scheme \"%.*s\"; only \"tcp://\" is supported",
                          (int)n, t);
    return parse_fail(ctx, 0, "missing \"tcp://\" at the start");
}

ax_status_t ax_path_parse(const char *text, ax_path_t *out)
{
    parse_ctx_t ctx = {.what = "path", .text = text};
    ax_path_t p;
    size_t pos = PATH_SCHEME_LEN;
    ax_status_t s;
    char cd[12];

    if (text == NULL)
        return ax__error(AX_EINVAL, "path: the text is NULL");
    if (out == NULL)
        return ax__error(AX_EINVAL, "path: the output is NULL");
    s = parse_scheme(&ctx);
    if (s != AX_OK)
        return s;

    /* Built aside and zeroed, so that *out is untouched on failure and the
     * bytes no field uses are zero rather than stale. */
    memset(&p, 0, sizeof p);
    s = parse_addr_at(&ctx, &pos, &p.addr);
    if (s != AX_OK)
        return s;
    if (text[pos] == '#') {
        pos++;
        s = parse_id(&ctx, &pos, &p);
    } else if (text[pos] == '/') {
        pos++;
        s = parse_name(&ctx, &pos, &p);
    } else if (text[pos] == '\0') {
        s = parse_fail(&ctx, pos, "missing \"#<id>\" or \"/<name>\" after the port");
    } else {
        s = parse_fail(&ctx, pos, "unexpected %s after the port; expected '#' or '/'",
                       char_desc(text[pos], cd));
    }
    if (s != AX_OK)
        return s;
    *out = p;
    return AX_OK;
}

ax_status_t ax_addr_parse(const char *text, ax_addr_t *out)
{
    parse_ctx_t ctx = {.what = "address", .text = text};
    ax_addr_t a;
    size_t pos = 0;
    ax_status_t s;
    char cd[12];

    if (text == NULL)
        return ax__error(AX_EINVAL, "address: the text is NULL");
    if (out == NULL)
        return ax__error(AX_EINVAL, "address: the output is NULL");
    if (text[0] == '\0')
        return parse_fail(&ctx, 0, "empty address");
    memset(&a, 0, sizeof a);
    s = parse_addr_at(&ctx, &pos, &a);
    if (s != AX_OK)
        return s;
    if (text[pos] != '\0')
        return parse_fail(&ctx, pos, "unexpected %s after the port", char_desc(text[pos], cd));
    *out = a;
    return AX_OK;
}

/* ------------------------------------------------------------------ */
/* Formatting                                                          */
/* ------------------------------------------------------------------ */

/* Longest address text: "[" 45 "]:" 5 digits, and the NUL. */
#define ADDR_TEXT_MAX 56

size_t ax_addr_format(const ax_addr_t *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    int n;

    if (len > 0)
        buf[0] = '\0';
    if (a == NULL)
        return 0;
    /* An address never made by the parser or the decoder still formats,
     * as text that neither accepts, rather than reading past ip[]. */
    if (a->family == 4 && inet_ntop(AF_INET, a->ip, ip, sizeof ip) != NULL)
        n = snprintf(buf, len, "%s:%u", ip, (unsigned)a->port);
    else if (a->family == 6 && inet_ntop(AF_INET6, a->ip, ip, sizeof ip) != NULL)
        n = snprintf(buf, len, "[%s]:%u", ip, (unsigned)a->port);
    else
        n = snprintf(buf, len, "<bad-family-%u>:%u", (unsigned)a->family, (unsigned)a->port);
    return n < 0 ? 0 : (size_t)n;
}

size_t ax_path_format(const ax_path_t *p, char *buf, size_t len)
{
    char addr[ADDR_TEXT_MAX];
    int n;

    if (len > 0)
        buf[0] = '\0';
    if (p == NULL)
        return 0;
    ax_addr_format(&p->addr, addr, sizeof addr);
    if (p->kind == AX_PATH_NAMED) {
        int nl = p->name_len > AX_PATH_NAME_MAX ? AX_PATH_NAME_MAX : (int)p->name_len;

        n = snprintf(buf, len, PATH_SCHEME "%s/%.*s", addr, nl, p->name);
    } else {
        n = snprintf(buf, len, PATH_SCHEME "%s#%llu", addr, (unsigned long long)p->id);
    }
    return n < 0 ? 0 : (size_t)n;
}

/* ------------------------------------------------------------------ */
/* Compare and hash                                                    */
/* ------------------------------------------------------------------ */

/* Only the bytes a field uses take part: IPv4 ignores ip[4..15], a unique
 * path its name, a named path its id. */

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

int ax_addr_cmp(const ax_addr_t *a, const ax_addr_t *b)
{
    int c = cmp_u64(a->family, b->family);

    if (c == 0)
        c = memcmp(a->ip, b->ip, ip_len(a->family));
    if (c == 0)
        c = cmp_u64(a->port, b->port);
    return c < 0 ? -1 : c > 0;
}

static size_t name_len_of(const ax_path_t *p)
{
    return p->name_len > AX_PATH_NAME_MAX ? AX_PATH_NAME_MAX : p->name_len;
}

int ax_path_cmp(const ax_path_t *a, const ax_path_t *b)
{
    int c = ax_addr_cmp(&a->addr, &b->addr);

    if (c == 0)
        c = cmp_u64((uint64_t)a->kind, (uint64_t)b->kind);
    if (c != 0)
        return c;
    if (a->kind != AX_PATH_NAMED)
        return cmp_u64(a->id, b->id);

    size_t la = name_len_of(a);
    size_t lb = name_len_of(b);

    c = memcmp(a->name, b->name, la < lb ? la : lb);
    if (c == 0)
        c = cmp_u64(la, lb);
    return c < 0 ? -1 : c > 0;
}

bool ax_addr_eq(const ax_addr_t *a, const ax_addr_t *b)
{
    return ax_addr_cmp(a, b) == 0;
}

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

static uint64_t fnv_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *b = data;

    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t ax_path_hash(const ax_path_t *p)
{
    uint64_t h = FNV_OFFSET;

    h = fnv_u64(h, p->addr.family);
    h = fnv_bytes(h, p->addr.ip, ip_len(p->addr.family));
    h = fnv_u64(h, p->addr.port);
    h = fnv_u64(h, (uint64_t)p->kind);
    if (p->kind == AX_PATH_NAMED) {
        size_t n = name_len_of(p);

        h = fnv_u64(h, n);
        h = fnv_bytes(h, p->name, n);
    } else {
        h = fnv_u64(h, p->id);
    }
    /* FNV-1a's low bits mix poorly; a final avalanche (the splitmix64
     * finaliser) makes every bit usable for power-of-two tables. */
    h ^= h >> 30;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h *= UINT64_C(0x94d049bb133111eb);
    h ^= h >> 31;
    return h;
}

/* ------------------------------------------------------------------ */
/* msgpack codec                                                       */
/* ------------------------------------------------------------------ */

/* Whether p is a path the decoder would accept. */
static bool path_valid(const ax_path_t *p)
{
    size_t at;
    char why[128];

    if (p->addr.family != 4 && p->addr.family != 6)
        return false;
    if (p->kind == AX_PATH_UNIQUE)
        return p->id != 0 && p->id <= PATH_ID_MAX;
    return p->kind == AX_PATH_NAMED && name_check(p->name, p->name_len, &at, why, sizeof why);
}

int ax_path_pack(const ax_path_t *p, msgpack_packer *pk)
{
    unsigned family;
    uint8_t flags;
    int r;

    /* Refuse to put on the wire what the decoder would reject: a path
     * assembled by hand with a bad field fails here, before any byte. */
    if (p == NULL || pk == NULL || !path_valid(p)) {
        ax__error(AX_EINVAL, "path encoding: the path to pack is not valid");
        return -1;
    }

    family = p->addr.family == 6 ? FLAG_FAMILY_V6 : FLAG_FAMILY_V4;
    flags = (uint8_t)(((unsigned)p->kind << FLAG_KIND_SHIFT) | (family << FLAG_FAMILY_SHIFT)
                      | (FLAG_PROTO_TCP << FLAG_PROTO_SHIFT));
    if ((r = msgpack_pack_array(pk, 4)) != 0)
        return r;
    if ((r = msgpack_pack_uint8(pk, flags)) != 0)
        return r;
    if ((r = msgpack_pack_bin(pk, ip_len(p->addr.family))) != 0)
        return r;
    if ((r = msgpack_pack_bin_body(pk, p->addr.ip, ip_len(p->addr.family))) != 0)
        return r;
    if ((r = msgpack_pack_uint16(pk, p->addr.port)) != 0)
        return r;
    if (p->kind == AX_PATH_UNIQUE)
        return msgpack_pack_uint64(pk, p->id);
    if ((r = msgpack_pack_str(pk, p->name_len)) != 0)
        return r;
    return msgpack_pack_str_body(pk, p->name, p->name_len);
}

static const char *obj_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "an unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a str";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "a bin";
    case MSGPACK_OBJECT_EXT: return "an ext";
    }
    return "an unknown object";
}

#define PROTO_FAIL(...) ax__error(AX_EPROTO, "path encoding: " __VA_ARGS__)

/* Element 0; fills kind and family. */
static ax_status_t unpack_flags(const msgpack_object *o, ax_path_t *p)
{
    uint64_t f;
    unsigned kind, family, proto;

    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return PROTO_FAIL("flags (element 0) must be an unsigned integer, not %s",
                          obj_type_name(o->type));
    f = o->via.u64;
    if (f & ~(uint64_t)FLAG_KNOWN_MASK)
        return PROTO_FAIL("flags 0x%llx set unknown bits 0x%llx", (unsigned long long)f,
                          (unsigned long long)(f & ~(uint64_t)FLAG_KNOWN_MASK));
    kind = (unsigned)(f >> FLAG_KIND_SHIFT) & FLAG_FIELD_MASK;
    family = (unsigned)(f >> FLAG_FAMILY_SHIFT) & FLAG_FIELD_MASK;
    proto = (unsigned)(f >> FLAG_PROTO_SHIFT) & FLAG_FIELD_MASK;
    if (kind > AX_PATH_NAMED)
        return PROTO_FAIL("flags 0x%llx: unknown kind %u", (unsigned long long)f, kind);
    if (family > FLAG_FAMILY_V6)
        return PROTO_FAIL("flags 0x%llx: unknown address family %u", (unsigned long long)f, family);
    if (proto != FLAG_PROTO_TCP)
        return PROTO_FAIL("flags 0x%llx: unknown protocol %u", (unsigned long long)f, proto);
    p->kind = (ax_path_kind_t)kind;
    p->addr.family = family == FLAG_FAMILY_V6 ? 6 : 4;
    return AX_OK;
}

/* Elements 1 and 2. */
static ax_status_t unpack_addr(const msgpack_object *ip, const msgpack_object *port, ax_addr_t *a)
{
    size_t want = ip_len(a->family);

    if (ip->type != MSGPACK_OBJECT_BIN)
        return PROTO_FAIL("ip (element 1) must be a bin, not %s", obj_type_name(ip->type));
    if (ip->via.bin.size != want || ip->via.bin.ptr == NULL)
        return PROTO_FAIL("ip (element 1) is %u bytes, but an IPv%u address has %zu",
                          (unsigned)ip->via.bin.size, (unsigned)a->family, want);
    memcpy(a->ip, ip->via.bin.ptr, want);
    if (port->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return PROTO_FAIL("port (element 2) must be an unsigned integer, not %s",
                          obj_type_name(port->type));
    if (port->via.u64 > PORT_MAX)
        return PROTO_FAIL("port %llu is above %u", (unsigned long long)port->via.u64, PORT_MAX);
    a->port = (uint16_t)port->via.u64;
    return AX_OK;
}

/* Element 3: the id or the name, as flags said. */
static ax_status_t unpack_target(const msgpack_object *o, ax_path_t *p)
{
    if (p->kind == AX_PATH_UNIQUE) {
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return PROTO_FAIL("id (element 3) must be an unsigned integer, not %s",
                              obj_type_name(o->type));
        if (o->via.u64 == 0 || o->via.u64 > PATH_ID_MAX)
            return PROTO_FAIL("id %llu is outside 1 to 2^56-1", (unsigned long long)o->via.u64);
        p->id = o->via.u64;
        return AX_OK;
    }

    size_t at;
    char why[128];

    if (o->type != MSGPACK_OBJECT_STR)
        return PROTO_FAIL("name (element 3) must be a str, not %s", obj_type_name(o->type));
    if (o->via.str.size > 0 && o->via.str.ptr == NULL)
        return PROTO_FAIL("name (element 3) has no bytes");
    if (!name_check(o->via.str.ptr, o->via.str.size, &at, why, sizeof why))
        return PROTO_FAIL("%s (at byte %zu of the name)", why, at);
    memcpy(p->name, o->via.str.ptr, o->via.str.size);
    p->name[o->via.str.size] = '\0';
    p->name_len = (uint16_t)o->via.str.size;
    return AX_OK;
}

ax_status_t ax_path_unpack(const msgpack_object *obj, ax_path_t *out)
{
    const msgpack_object *e;
    ax_path_t p;
    ax_status_t s;

    if (obj == NULL || out == NULL)
        return ax__error(AX_EINVAL, "path encoding: %s is NULL",
                         obj == NULL ? "the object" : "the output");
    if (obj->type != MSGPACK_OBJECT_ARRAY)
        return PROTO_FAIL("expected an array of 4, not %s", obj_type_name(obj->type));
    if (obj->via.array.size != 4 || obj->via.array.ptr == NULL)
        return PROTO_FAIL("expected an array of 4, not of %u", (unsigned)obj->via.array.size);

    /* Decoded aside, so that *out is untouched on failure. */
    memset(&p, 0, sizeof p);
    e = obj->via.array.ptr;
    s = unpack_flags(&e[0], &p);
    if (s == AX_OK)
        s = unpack_addr(&e[1], &e[2], &p.addr);
    if (s == AX_OK)
        s = unpack_target(&e[3], &p);
    if (s != AX_OK)
        return s;
    *out = p;
    return AX_OK;
}
