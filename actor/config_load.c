/*
 * Loading a system configuration with libconfig (schema: docs/config.md).
 *
 * The schema is a table of fields per group, so one walker checks every key,
 * type and range the same way: a new key is one more entry in its group's
 * table. Details name "file:line: key.path" from libconfig's own API
 * (config_setting_source_file/line, and the path built from
 * config_setting_name/parent); a broken cross-field rule is blamed on the
 * key of the member the validator names (actor/config_check.h), never by
 * reading the message. Everything is parsed into a copy of the
 * caller's config and validated there; the caller's config is written only
 * when the whole text is good, so a failure never leaves it half-applied.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "actor/config_check.h"
#include "axon/config.h"
#include "common/error.h"

/* Counts and sizes are stored through a uint32_t or a uint64_t of the
 * member's width; these are the only widths the schema uses. */
_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "unsigned is 32 bits");
_Static_assert(sizeof(size_t) == sizeof(uint32_t) || sizeof(size_t) == sizeof(uint64_t),
               "size_t is 32 or 64 bits");

/* The name used in details for text that did not come from a file. */
#define STRING_SOURCE "<string>"

/* Room for one key path, such as "axon.network.buffer_config.chunk_size". */
#define PATH_MAX_LEN 128

typedef enum field_kind_e {
    FIELD_COUNT, /* a non-negative integer */
    FIELD_SIZE,  /* a byte count: a size string ("256KiB") or an integer */
    FIELD_TEXT,  /* a string that must fit, terminated, in a char array */
    FIELD_BOOL,  /* true or false, into a bool */
    FIELD_GROUP, /* a nested group with its own schema */
} field_kind_t;

typedef struct group_schema_s group_schema_t;

typedef struct field_s {
    const char *key;    /* the name in the text */
    field_kind_t kind;
    const char *member; /* the struct member, as the validators name it */
    size_t offset;      /* of the member in the struct its group fills */
    size_t width;       /* sizeof the member */
    uint64_t min;       /* smallest integer accepted (counts) */
    const char *alias_of;          /* another spelling of this key, or NULL */
    const group_schema_t *group;   /* FIELD_GROUP: the nested schema */
} field_t;

struct group_schema_s {
    const field_t *fields;
    size_t count;
};

#define MEMBER(type, m) #m, offsetof(type, m), sizeof(((type *)0)->m)
#define SCHEMA(table) {table, sizeof table / sizeof table[0]}

#define BUF(m) MEMBER(ax_buffer_config_t, m)
static const field_t buffer_fields[] = {
    {"chunk_size", FIELD_SIZE, BUF(chunk_size), 0, NULL, NULL},
    {"initial_chunk_count", FIELD_COUNT, BUF(initial_chunk_count), 0, NULL, NULL},
    {"max_chunk_count", FIELD_COUNT, BUF(max_chunk_count), 1, NULL, NULL},
    {"encode_min_remaining", FIELD_SIZE, BUF(encode_buf_min_free_space), 0, NULL, NULL},
    /* The member's own name, accepted as a second spelling. */
    {"encode_buf_min_free_space", FIELD_SIZE, BUF(encode_buf_min_free_space), 0,
     "encode_min_remaining", NULL},
};
static const group_schema_t buffer_schema = SCHEMA(buffer_fields);

#define NET(m) MEMBER(ax_net_config_t, m)
static const field_t network_fields[] = {
    {"listen", FIELD_TEXT, NET(listen), 0, NULL, NULL},
    {"client_only", FIELD_BOOL, NET(client_only), 0, NULL, NULL},
    {"buffer_config", FIELD_GROUP, NET(buffer_config), 0, NULL, &buffer_schema},
    {"max_frame_size", FIELD_SIZE, NET(max_frame_size), 0, NULL, NULL},
    {"peer_queue", FIELD_COUNT, NET(peer_queue), 1, NULL, NULL},
    {"dispatch_queue", FIELD_COUNT, NET(dispatch_queue), 1, NULL, NULL},
    {"max_retries", FIELD_COUNT, NET(max_retries), 0, NULL, NULL},
    {"backoff_initial_ms", FIELD_COUNT, NET(backoff_initial_ms), 1, NULL, NULL},
    {"backoff_max_ms", FIELD_COUNT, NET(backoff_max_ms), 0, NULL, NULL},
    {"flush_timeout_ms", FIELD_COUNT, NET(flush_timeout_ms), 0, NULL, NULL},
    {"cookie", FIELD_TEXT, NET(cookie), 0, NULL, NULL},
    {"cookie_file", FIELD_TEXT, NET(cookie_file), 0, NULL, NULL},
    {"allow_unauthenticated", FIELD_BOOL, NET(allow_unauthenticated), 0, NULL, NULL},
    {"heartbeat_interval_ms", FIELD_COUNT, NET(heartbeat_interval_ms), 1, NULL, NULL},
    {"heartbeat_timeout_ms", FIELD_COUNT, NET(heartbeat_timeout_ms), 1, NULL, NULL},
    {"handshake_timeout_ms", FIELD_COUNT, NET(handshake_timeout_ms), 1, NULL, NULL},
    {"max_connections", FIELD_COUNT, NET(max_connections), 1, NULL, NULL},
    {"max_pending_handshakes", FIELD_COUNT, NET(max_pending_handshakes), 1, NULL, NULL},
    {"spin_us", FIELD_COUNT, NET(spin_us), 0, NULL, NULL},
    {"run_actors_us", FIELD_COUNT, NET(run_actors_us), 0, NULL, NULL},
    {"slow_run_us", FIELD_COUNT, NET(slow_run_us), 0, NULL, NULL},
    {"path_ids", FIELD_COUNT, NET(path_ids), 0, NULL, NULL},
    {"max_remote_refs", FIELD_COUNT, NET(max_remote_refs), 1, NULL, NULL},
    {"tcp_congestion", FIELD_TEXT, NET(tcp_congestion), 0, NULL, NULL},
    {"tcp_congestion_loopback", FIELD_TEXT, NET(tcp_congestion_loopback), 0, NULL, NULL},
    {"io_uring", FIELD_BOOL, NET(io_uring), 0, NULL, NULL},
};
static const group_schema_t network_schema = SCHEMA(network_fields);

#define MET(m) MEMBER(ax_metrics_config_t, m)
static const field_t metrics_fields[] = {
    {"listen", FIELD_TEXT, MET(listen), 0, NULL, NULL},
    {"top_n", FIELD_COUNT, MET(top_n), 1, NULL, NULL},
};
static const group_schema_t metrics_schema = SCHEMA(metrics_fields);

#define TOP(m) MEMBER(ax_config_t, m)
static const field_t axon_fields[] = {
    {"threads", FIELD_COUNT, TOP(threads), 0, NULL, NULL},
    {"throughput", FIELD_COUNT, TOP(throughput), 1, NULL, NULL},
    {"timer_tick_us", FIELD_COUNT, TOP(timer_tick_us), 1, NULL, NULL},
    {"spin_us", FIELD_COUNT, TOP(spin_us), 0, NULL, NULL},
    {"buffer_config", FIELD_GROUP, TOP(buffer_config), 0, NULL, &buffer_schema},
    {"network", FIELD_GROUP, TOP(network), 0, NULL, &network_schema},
    {"metrics", FIELD_GROUP, TOP(metrics), 0, NULL, &metrics_schema},
};
static const group_schema_t axon_schema = SCHEMA(axon_fields);

/* The whole text is one group whose only key is `axon`; it fills the
 * ax_config_t itself, at offset 0. */
static const field_t root_fields[] = {
    {"axon", FIELD_GROUP, "axon", 0, sizeof(ax_config_t), 0, NULL, &axon_schema},
};
static const group_schema_t root_schema = SCHEMA(root_fields);

typedef struct loader_s {
    const char *name; /* the file name for details: the path or "<string>" */
    const char *text; /* the source, to re-read integer literals */
} loader_t;

/* libconfig names the file of settings that came from an @include; the
 * others are from the text being loaded. */
static const char *source_name(const loader_t *ld, const config_setting_t *s)
{
    const char *file = s != NULL ? config_setting_source_file(s) : NULL;

    return file != NULL ? file : ld->name;
}

/*
 * The key path of a setting, such as "axon.network.peer_queue", from
 * libconfig's own names and parents (the root has no name and adds
 * nothing). Truncated, never overflowing, at PATH_MAX_LEN.
 */
static void setting_path(const config_setting_t *s, char *out)
{
    const config_setting_t *parent;
    size_t len;

    out[0] = '\0';
    if (s == NULL || config_setting_is_root(s))
        return;
    parent = config_setting_parent(s);
    setting_path(parent, out);
    len = strlen(out);
    snprintf(out + len, PATH_MAX_LEN - len, "%s%s", len > 0 ? "." : "",
             config_setting_name(s) != NULL ? config_setting_name(s) : "[]");
}

/* Record "file:line: path: message" for setting s and return AX_EINVAL;
 * without a setting (the text set nothing the message is about), the
 * place is the whole text and the top group, "axon". The message is
 * formatted first into a local buffer because its arguments may point into
 * the thread's detail buffer that ax__error() overwrites. */
__attribute__((format(printf, 3, 4))) static ax_status_t
fail_at(const loader_t *ld, const config_setting_t *s, const char *fmt, ...)
{
    char msg[256], path[PATH_MAX_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s == NULL || config_setting_is_root(s))
        return ax__error(AX_EINVAL, "%s: axon: %s", ld->name, msg);
    setting_path(s, path);
    return ax__error(AX_EINVAL, "%s:%u: %s: %s", source_name(ld, s),
                     (unsigned)config_setting_source_line(s), path, msg);
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "an unknown type";
    }
}

/* ------------------------------------------------------------------ */
/* Integer literals                                                    */
/* ------------------------------------------------------------------ */

/*
 * libconfig 1.5 (Debian 12) keeps an integer written without an L suffix
 * in an int and wraps a wider one silently (5000000000 reads back as
 * 705032704, CONFIG_TYPE_INT), and it saturates an L literal that does not
 * fit in 64 bits. Its API shows neither: the setting's type, value and
 * format are those of the wrapped number. Accepting it would configure a
 * value the user never wrote, so for these versions only, the literal on
 * the setting's line (config_setting_source_line) is compared with what
 * libconfig stored. This is the one place that reads the source text;
 * later libconfig versions promote wide literals themselves, and the check
 * compiles away.
 */
#if LIBCONFIG_VER_MAJOR == 1 && LIBCONFIG_VER_MINOR <= 5
#define AX_CHECK_LITERALS 1
#else
#define AX_CHECK_LITERALS 0
#endif

#if AX_CHECK_LITERALS

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '*';
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Read an integer literal as libconfig writes one: an optional sign, decimal
 * digits or 0x and hex digits, then an optional L or LL. Returns 0 when p
 * holds no integer literal. *fits is 0 when the value is outside long long. */
static int read_literal(const char *p, const char **end, long long *value, int *fits, int *wide)
{
    unsigned long long mag = 0;
    unsigned base = 10;
    int neg = 0, over = 0;

    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && isxdigit((unsigned char)p[2])) {
        base = 16;
        p += 2;
    }
    if (!(base == 16 ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p)))
        return 0;
    for (; base == 16 ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p); p++) {
        int c = tolower((unsigned char)*p);
        unsigned digit = isdigit(c) ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);

        if (mag > (ULLONG_MAX - digit) / base)
            over = 1;
        else
            mag = mag * base + digit;
    }
    *wide = *p == 'L';
    if (*p == 'L' && *++p == 'L')
        p++;
    /* "1.5" or "1e3" is a float, not an integer literal. */
    if (is_name_char(*p) || *p == '.')
        return 0;
    *end = p;
    /* A negative literal may reach one further than a positive one. */
    *fits = !over && mag <= (unsigned long long)LLONG_MAX + (neg ? 1u : 0u);
    if (!*fits)
        *value = 0;
    else if (neg)
        *value = mag == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)mag;
    else
        *value = (long long)mag;
    return 1;
}

/*
 * Look on the setting's line for `name = <literal>` (or `name : ...`). When
 * none of them reads back as value and one is a literal libconfig cannot
 * hold, libconfig changed the number: report that literal. When no literal
 * is found (a setting from an @include, a comment between name and value),
 * nothing can be checked and libconfig's value stands.
 */
static ax_status_t check_literal(const loader_t *ld, const config_setting_t *s,
                                 long long value)
{
    const char *name = config_setting_name(s);
    const char *line = ld->text, *eol, *q;
    const char *bad = NULL, *bad_end = NULL;
    int bad_wide = 0;
    size_t nlen = strlen(name);
    unsigned n;

    if (config_setting_source_file(s) != NULL || ld->text == NULL)
        return AX_OK;
    for (n = 1; n < config_setting_source_line(s) && line != NULL; n++) {
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    if (line == NULL)
        return AX_OK;
    eol = strchr(line, '\n');
    if (eol == NULL)
        eol = line + strlen(line);
    for (q = line; q + nlen <= eol; q++) {
        const char *v, *end;
        long long lit;
        int fits, wide;

        if (strncmp(q, name, nlen) != 0 || (q > line && is_name_char(q[-1])) ||
            is_name_char(q[nlen]))
            continue;
        v = skip_space(q + nlen);
        if (*v != '=' && *v != ':')
            continue;
        v = skip_space(v + 1);
        if (!read_literal(v, &end, &lit, &fits, &wide))
            continue;
        if (fits && lit == value)
            return AX_OK;
        /* Only a literal libconfig cannot hold can explain a different
         * value; another setting of the same name on this line cannot. */
        if (fits && (wide || (lit >= INT_MIN && lit <= INT_MAX)))
            continue;
        if (bad == NULL) {
            bad = v;
            bad_end = end;
            bad_wide = wide;
        }
    }
    if (bad == NULL)
        return AX_OK;
    if (bad_wide)
        return fail_at(ld, s, "%.*s does not fit in a 64-bit integer", (int)(bad_end - bad),
                       bad);
    return fail_at(ld, s,
                   "%.*s does not fit in a 32-bit integer (write %.*sL for a 64-bit one)",
                   (int)(bad_end - bad), bad, (int)(bad_end - bad), bad);
}

#else
static ax_status_t check_literal(const loader_t *ld, const config_setting_t *s, long long value)
{
    (void)ld;
    (void)s;
    (void)value;
    return AX_OK;
}
#endif

/* ------------------------------------------------------------------ */
/* Scalars                                                             */
/* ------------------------------------------------------------------ */

static uint64_t width_max(size_t width)
{
    return width == sizeof(uint32_t) ? UINT32_MAX : UINT64_MAX;
}

/* Store through an integer of the member's own width, so the same code fills
 * unsigned, uint32_t, uint64_t and size_t members. */
static void store_uint(void *member, size_t width, uint64_t v)
{
    if (width == sizeof(uint32_t)) {
        uint32_t narrow = (uint32_t)v;

        memcpy(member, &narrow, sizeof narrow);
    } else {
        memcpy(member, &v, sizeof v);
    }
}

static ax_status_t read_count(const loader_t *ld, const config_setting_t *s,
                              const field_t *f, uint64_t *out)
{
    long long v;
    ax_status_t st;

    if (config_setting_type(s) == CONFIG_TYPE_INT)
        v = config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(s);
    else
        return fail_at(ld, s, "expected an integer, got %s",
                       type_name(config_setting_type(s)));
    st = check_literal(ld, s, v);
    if (st != AX_OK)
        return st;
    if (v < 0 || (uint64_t)v < f->min)
        return fail_at(ld, s, "expected an integer >= %llu, got %lld",
                       (unsigned long long)f->min, v);
    if ((uint64_t)v > width_max(f->width))
        return fail_at(ld, s, "%lld does not fit (at most %llu)", v,
                       (unsigned long long)width_max(f->width));
    *out = (uint64_t)v;
    return AX_OK;
}

static ax_status_t read_size(const loader_t *ld, const config_setting_t *s,
                             const field_t *f, uint64_t *out)
{
    const char *text, *why;
    size_t size, tlen;

    if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64)
        return read_count(ld, s, f, out);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(ld, s,
                       "expected a size (a string such as \"256KiB\", or an integer), got %s",
                       type_name(config_setting_type(s)));
    text = config_setting_get_string(s);
    if (ax_parse_size(text, &size) == AX_OK) {
        *out = size;
        return AX_OK;
    }
    /* ax_parse_size() says `size "<text>": <why>`; the text is already in
     * our own message, so keep only the why. */
    why = ax_error_detail();
    tlen = strlen(text);
    if (strncmp(why, "size \"", 6) == 0 && strncmp(why + 6, text, tlen) == 0 &&
        strncmp(why + 6 + tlen, "\": ", 3) == 0)
        why += 6 + tlen + 3;
    return fail_at(ld, s, "\"%s\" is not a size (%s)", text, why);
}

static ax_status_t read_text(const loader_t *ld, const config_setting_t *s,
                             const field_t *f, char *member)
{
    const char *text;
    size_t len;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(ld, s, "expected a string, got %s", type_name(config_setting_type(s)));
    text = config_setting_get_string(s);
    len = strlen(text);
    if (len >= f->width)
        return fail_at(ld, s, "is %zu bytes long; at most %zu fit", len, f->width - 1);
    /* Clear the whole array so that equal configs are equal byte for byte. */
    memset(member, 0, f->width);
    memcpy(member, text, len);
    return AX_OK;
}

/* ------------------------------------------------------------------ */
/* Groups                                                              */
/* ------------------------------------------------------------------ */

static const field_t *find_field(const group_schema_t *schema, const char *key)
{
    size_t i;

    for (i = 0; i < schema->count; i++)
        if (strcmp(schema->fields[i].key, key) == 0)
            return &schema->fields[i];
    return NULL;
}

/* The other spelling of f's key, if it has one. */
static const char *partner_key(const group_schema_t *schema, const field_t *f)
{
    size_t i;

    if (f->alias_of != NULL)
        return f->alias_of;
    for (i = 0; i < schema->count; i++)
        if (schema->fields[i].alias_of != NULL && strcmp(schema->fields[i].alias_of, f->key) == 0)
            return schema->fields[i].key;
    return NULL;
}

static ax_status_t load_group(const loader_t *ld, const config_setting_t *group,
                              const group_schema_t *schema, unsigned char *base);

static ax_status_t load_field(const loader_t *ld, const config_setting_t *group,
                              const config_setting_t *s,
                              const group_schema_t *schema, const field_t *f, unsigned char *base)
{
    const char *partner = partner_key(schema, f);
    unsigned char *member = base + f->offset;
    uint64_t v;
    ax_status_t st;

    if (partner != NULL) {
        const config_setting_t *other = config_setting_get_member(group, partner);

        /* Both spellings set the same member: blame whichever comes second. */
        if (other != NULL && config_setting_index(other) < config_setting_index(s))
            return fail_at(ld, s, "is another name for %s (line %u); give only one",
                           partner, (unsigned)config_setting_source_line(other));
    }
    switch (f->kind) {
    case FIELD_GROUP:
        return load_group(ld, s, f->group, member);
    case FIELD_TEXT:
        return read_text(ld, s, f, (char *)member);
    case FIELD_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return fail_at(ld, s, "expected true or false, got %s", type_name(config_setting_type(s)));
        *(bool *)member = config_setting_get_bool(s) != 0;
        return AX_OK;
    case FIELD_SIZE:
        st = read_size(ld, s, f, &v);
        break;
    case FIELD_COUNT:
    default:
        st = read_count(ld, s, f, &v);
        break;
    }
    if (st == AX_OK)
        store_uint(member, f->width, v);
    return st;
}

static ax_status_t load_group(const loader_t *ld, const config_setting_t *group,
                              const group_schema_t *schema, unsigned char *base)
{
    int i, n;

    if (!config_setting_is_group(group))
        return fail_at(ld, group, "expected a group, got %s",
                       type_name(config_setting_type(group)));
    n = config_setting_length(group);
    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *key = config_setting_name(s);
        const field_t *f = find_field(schema, key);
        ax_status_t st;

        if (f == NULL)
            return fail_at(ld, s, "unknown key");
        st = load_field(ld, group, s, schema, f, base);
        if (st != AX_OK)
            return st;
    }
    return AX_OK;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

/* Where the text set a member of the config: the setting (NULL when the
 * text left it alone) and the innermost group of the text on the way to it. */
typedef struct found_s {
    const config_setting_t *setting;
    const config_setting_t *group;
} found_t;

/*
 * Walk the schema of group (which fills the struct at byte base of
 * ax_config_t) to the member at byte target, following only the groups the
 * text has. Both spellings of a key lead to the same member; the load has
 * refused a text that gives both.
 */
static void find_member(const config_setting_t *group, const group_schema_t *schema, size_t base,
                        size_t target, found_t *out)
{
    size_t i;

    out->group = group;
    for (i = 0; i < schema->count; i++) {
        const field_t *f = &schema->fields[i];
        const config_setting_t *s = config_setting_get_member(group, f->key);
        size_t off = base + f->offset;

        if (f->kind == FIELD_GROUP) {
            if (s != NULL && config_setting_is_group(s) && target >= off && target < off + f->width)
                find_member(s, f->group, off, target, out);
        } else if (off == target && s != NULL) {
            out->setting = s;
        }
    }
}

/*
 * The copy broke a rule of ax_config_validate: blame the key, set in this
 * text, of the member the rule constrains, else of the member it compares
 * with ("max_chunk_count (3) must be >= initial_chunk_count (5)" set by
 * initial_chunk_count alone). When the text set neither, the broken value
 * came from *cfg as it was before: point at the innermost group of the text
 * on the way to the member.
 */
static ax_status_t validate_copy(const loader_t *ld, const config_t *lc, const ax_config_t *copy)
{
    ax__blame_t blame = {AX__NO_MEMBER, AX__NO_MEMBER};
    found_t first = {NULL, NULL}, second = {NULL, NULL};
    const config_setting_t *root = config_root_setting(lc), *at;
    const char *rule;

    if (ax__config_check(copy, &blame) == AX_OK)
        return AX_OK;
    rule = ax_error_detail();
    /* The validators prefix their details with the struct they checked;
     * the key path printed in front says it better. */
    if (strncmp(rule, "config: ", 8) == 0)
        rule += 8;
    if (strncmp(rule, "network.", 8) == 0)
        rule += 8;
    if (strncmp(rule, "buffer_config: ", 15) == 0)
        rule += 15;
    if (blame.first != AX__NO_MEMBER)
        find_member(root, &root_schema, 0, blame.first, &first);
    if (blame.second != AX__NO_MEMBER)
        find_member(root, &root_schema, 0, blame.second, &second);
    at = first.setting != NULL ? first.setting : second.setting != NULL ? second.setting : first.group;
    if (at == NULL) /* no member named: the top group, if the text has it */
        at = config_setting_get_member(root, "axon");
    return fail_at(ld, at, "%s", rule);
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

static ax_status_t load_text(ax_config_t *cfg, const char *text, const char *name)
{
    const loader_t ld = {name, text};
    config_t lc;
    ax_config_t copy;
    ax_status_t st;

    config_init(&lc);
    if (config_read_string(&lc, text) != CONFIG_TRUE) {
        const char *file = config_error_file(&lc);

        st = ax__error(AX_EINVAL, "%s:%d: %s", file != NULL ? file : name, config_error_line(&lc),
                       config_error_text(&lc));
        config_destroy(&lc);
        return st;
    }
    memcpy(&copy, cfg, sizeof copy);
    st = load_group(&ld, config_root_setting(&lc), &root_schema, (unsigned char *)&copy);
    if (st == AX_OK)
        st = validate_copy(&ld, &lc, &copy);
    config_destroy(&lc);
    if (st == AX_OK)
        memcpy(cfg, &copy, sizeof copy);
    return st;
}

ax_status_t ax_config_load_string(ax_config_t *cfg, const char *text)
{
    if (cfg == NULL || text == NULL)
        return ax__error(AX_EINVAL, "config: NULL argument");
    return load_text(cfg, text, STRING_SOURCE);
}

/* Read the whole file, so that every I/O failure is reported here with its
 * errno, and the parser and literal checks see one string either way. */
static ax_status_t read_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ax_status_t st = AX_OK;

    if (f == NULL)
        return ax__error(AX_EIO, "%s: cannot open: %s", path, strerror(errno));
    for (;;) {
        size_t n;

        if (cap - len < 2) {
            size_t ncap = cap == 0 ? 4096 : cap * 2;
            char *nbuf = realloc(buf, ncap);

            if (nbuf == NULL) {
                st = ax__error(AX_ENOMEM, "%s: no memory to read the file", path);
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                st = ax__error(AX_EIO, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (st != AX_OK) {
        free(buf);
        return st;
    }
    buf[len] = '\0';
    /* The parser would stop at a NUL and silently ignore the rest. */
    if (memchr(buf, '\0', len) != NULL) {
        const char *nul = buf + strlen(buf), *p;
        unsigned line = 1;

        for (p = buf; p < nul; p++)
            line += *p == '\n';
        free(buf);
        return ax__error(AX_EINVAL, "%s:%u: the file contains a NUL byte", path, line);
    }
    *out = buf;
    return AX_OK;
}

ax_status_t ax_config_load_file(ax_config_t *cfg, const char *path)
{
    char *text = NULL;
    ax_status_t st;

    if (cfg == NULL || path == NULL)
        return ax__error(AX_EINVAL, "config: NULL argument");
    st = read_file(path, &text);
    if (st != AX_OK)
        return st;
    st = load_text(cfg, text, path);
    free(text);
    return st;
}
