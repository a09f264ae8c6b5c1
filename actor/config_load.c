/*
 * Loading a system configuration with libconfig (schema: docs/config.md).
 *
 * The schema is a table of fields per group, so one walker checks every key,
 * type and range the same way. Everything is parsed into a copy of the
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
    {"buffer_config", FIELD_GROUP, NET(buffer_config), 0, NULL, &buffer_schema},
    {"max_frame_size", FIELD_SIZE, NET(max_frame_size), 0, NULL, NULL},
    {"peer_queue", FIELD_COUNT, NET(peer_queue), 1, NULL, NULL},
    {"dispatch_queue", FIELD_COUNT, NET(dispatch_queue), 1, NULL, NULL},
    {"max_retries", FIELD_COUNT, NET(max_retries), 0, NULL, NULL},
    {"backoff_initial_ms", FIELD_COUNT, NET(backoff_initial_ms), 0, NULL, NULL},
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
};
static const group_schema_t network_schema = SCHEMA(network_fields);

#define TOP(m) MEMBER(ax_config_t, m)
static const field_t axon_fields[] = {
    {"threads", FIELD_COUNT, TOP(threads), 0, NULL, NULL},
    {"throughput", FIELD_COUNT, TOP(throughput), 1, NULL, NULL},
    {"timer_tick_us", FIELD_COUNT, TOP(timer_tick_us), 1, NULL, NULL},
    {"buffer_config", FIELD_GROUP, TOP(buffer_config), 0, NULL, &buffer_schema},
    {"network", FIELD_GROUP, TOP(network), 0, NULL, &network_schema},
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

/* Record "file:line: path: message" and return AX_EINVAL. The message is
 * formatted first into a local buffer because its arguments may point into
 * the thread's detail buffer that ax__error() overwrites. */
__attribute__((format(printf, 4, 5))) static ax_status_t
fail_at(const loader_t *ld, const config_setting_t *s, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s == NULL)
        return ax__error(AX_EINVAL, "%s: %s: %s", ld->name, path, msg);
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

static void join_path(char *out, const char *parent, const char *key)
{
    if (parent[0] == '\0')
        snprintf(out, PATH_MAX_LEN, "%s", key);
    else
        snprintf(out, PATH_MAX_LEN, "%s.%s", parent, key);
}

/* ------------------------------------------------------------------ */
/* Integer literals                                                    */
/* ------------------------------------------------------------------ */

/*
 * libconfig 1.5 keeps an integer written without an L suffix in an int and
 * wraps a wider one silently (5000000000 reads back as 705032704), and it
 * saturates an L literal that does not fit in 64 bits. Neither is visible
 * in the parsed setting, so the literal is read again from the source line
 * and compared with what libconfig stored.
 */

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
static ax_status_t check_literal(const loader_t *ld, const config_setting_t *s, const char *path,
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
        return fail_at(ld, s, path, "%.*s does not fit in a 64-bit integer", (int)(bad_end - bad),
                       bad);
    return fail_at(ld, s, path,
                   "%.*s does not fit in a 32-bit integer (write %.*sL for a 64-bit one)",
                   (int)(bad_end - bad), bad, (int)(bad_end - bad), bad);
}

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

static ax_status_t read_count(const loader_t *ld, const config_setting_t *s, const char *path,
                              const field_t *f, uint64_t *out)
{
    long long v;
    ax_status_t st;

    if (config_setting_type(s) == CONFIG_TYPE_INT)
        v = config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(s);
    else
        return fail_at(ld, s, path, "expected an integer, got %s",
                       type_name(config_setting_type(s)));
    st = check_literal(ld, s, path, v);
    if (st != AX_OK)
        return st;
    if (v < 0 || (uint64_t)v < f->min)
        return fail_at(ld, s, path, "expected an integer >= %llu, got %lld",
                       (unsigned long long)f->min, v);
    if ((uint64_t)v > width_max(f->width))
        return fail_at(ld, s, path, "%lld does not fit (at most %llu)", v,
                       (unsigned long long)width_max(f->width));
    *out = (uint64_t)v;
    return AX_OK;
}

static ax_status_t read_size(const loader_t *ld, const config_setting_t *s, const char *path,
                             const field_t *f, uint64_t *out)
{
    const char *text, *why;
    size_t size, tlen;

    if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64)
        return read_count(ld, s, path, f, out);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(ld, s, path,
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
    return fail_at(ld, s, path, "\"%s\" is not a size (%s)", text, why);
}

static ax_status_t read_text(const loader_t *ld, const config_setting_t *s, const char *path,
                             const field_t *f, char *member)
{
    const char *text;
    size_t len;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(ld, s, path, "expected a string, got %s", type_name(config_setting_type(s)));
    text = config_setting_get_string(s);
    len = strlen(text);
    if (len >= f->width)
        return fail_at(ld, s, path, "is %zu bytes long; at most %zu fit", len, f->width - 1);
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

static ax_status_t load_group(const loader_t *ld, const config_setting_t *group, const char *path,
                              const group_schema_t *schema, unsigned char *base);

static ax_status_t load_field(const loader_t *ld, const config_setting_t *group,
                              const config_setting_t *s, const char *path,
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
            return fail_at(ld, s, path, "is another name for %s (line %u); give only one",
                           partner, (unsigned)config_setting_source_line(other));
    }
    switch (f->kind) {
    case FIELD_GROUP:
        return load_group(ld, s, path, f->group, member);
    case FIELD_TEXT:
        return read_text(ld, s, path, f, (char *)member);
    case FIELD_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return fail_at(ld, s, path, "expected true or false, got %s",
                           type_name(config_setting_type(s)));
        *(bool *)member = config_setting_get_bool(s) != 0;
        return AX_OK;
    case FIELD_SIZE:
        st = read_size(ld, s, path, f, &v);
        break;
    case FIELD_COUNT:
    default:
        st = read_count(ld, s, path, f, &v);
        break;
    }
    if (st == AX_OK)
        store_uint(member, f->width, v);
    return st;
}

static ax_status_t load_group(const loader_t *ld, const config_setting_t *group, const char *path,
                              const group_schema_t *schema, unsigned char *base)
{
    int i, n;

    if (!config_setting_is_group(group))
        return fail_at(ld, group, path, "expected a group, got %s",
                       type_name(config_setting_type(group)));
    n = config_setting_length(group);
    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *key = config_setting_name(s);
        const field_t *f = find_field(schema, key);
        char child[PATH_MAX_LEN];
        ax_status_t st;

        join_path(child, path, key);
        if (f == NULL)
            return fail_at(ld, s, child, "unknown key");
        st = load_field(ld, group, s, child, schema, f, base);
        if (st != AX_OK)
            return st;
    }
    return AX_OK;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

/* One group of the text that a broken rule may be blamed on. */
typedef struct scope_s {
    const config_setting_t *setting; /* the group in the text, or NULL */
    const char *path;
    const group_schema_t *schema;
} scope_t;

/* Where `word` first occurs in s as a whole name, or NULL. */
static const char *find_word(const char *s, const char *word)
{
    size_t len = strlen(word);
    const char *p;

    for (p = strstr(s, word); p != NULL; p = strstr(p + 1, word))
        if ((p == s || !is_name_char(p[-1])) && !is_name_char(p[len]))
            return p;
    return NULL;
}

/*
 * A validator failed with `detail`, which names the members involved. Blame
 * the key, set in this text, whose member the detail names first: that is
 * the one the rule is about ("max_chunk_count (3) must be >= ..."). When the
 * text set none of them, the broken value came from *cfg as it was before,
 * and the innermost group present in the text is the best place to point.
 */
static ax_status_t blame(const loader_t *ld, const scope_t *scopes, size_t nscopes,
                         const char *detail)
{
    const config_setting_t *at = NULL, *fallback = NULL;
    const char *at_pos = NULL, *fallback_path = "axon";
    char rule[256], path[PATH_MAX_LEN];
    size_t i, j;

    /* The validators prefix their details with the struct they checked;
     * the key path printed in front replaces that prefix. */
    if (strncmp(detail, "config: ", 8) == 0)
        detail += 8;
    if (strncmp(detail, "network.", 8) == 0)
        detail += 8;
    if (strncmp(detail, "buffer_config: ", 15) == 0)
        detail += 15;
    snprintf(rule, sizeof rule, "%s", detail);
    for (i = 0; i < nscopes; i++) {
        const scope_t *sc = &scopes[i];

        if (sc->setting == NULL)
            continue;
        if (fallback == NULL) {
            fallback = sc->setting;
            fallback_path = sc->path;
        }
        for (j = 0; j < sc->schema->count; j++) {
            const field_t *f = &sc->schema->fields[j];
            const config_setting_t *s = config_setting_get_member(sc->setting, f->key);
            const char *pos = find_word(rule, f->member);

            if (f->group != NULL || s == NULL || pos == NULL)
                continue;
            if (at_pos == NULL || pos < at_pos) {
                at = s;
                at_pos = pos;
                join_path(path, sc->path, f->key);
            }
        }
    }
    if (at != NULL)
        return fail_at(ld, at, path, "%s", rule);
    return fail_at(ld, fallback, fallback_path, "%s", rule);
}

static const config_setting_t *member_or_null(const config_setting_t *group, const char *key)
{
    return group != NULL ? config_setting_get_member(group, key) : NULL;
}

/* Validate the loaded copy one group at a time, so each broken rule can be
 * traced to the group, and the key, that set it. */
static ax_status_t validate_copy(const loader_t *ld, const config_t *lc, const ax_config_t *copy)
{
    const config_setting_t *axon = member_or_null(config_root_setting(lc), "axon");
    const config_setting_t *net = member_or_null(axon, "network");
    const scope_t buffers = {member_or_null(axon, "buffer_config"), "axon.buffer_config",
                             &buffer_schema};
    const scope_t net_buffers = {member_or_null(net, "buffer_config"),
                                 "axon.network.buffer_config", &buffer_schema};
    /* Innermost first, so that the fallback names the most specific group. */
    const scope_t top[] = {
        {net, "axon.network", &network_schema},
        {axon, "axon", &axon_schema},
    };
    const scope_t buffers_scopes[] = {buffers, top[1]};
    const scope_t net_buffers_scopes[] = {net_buffers, top[0], top[1]};

    if (ax_buffer_config_validate(&copy->buffer_config) != AX_OK)
        return blame(ld, buffers_scopes, 2, ax_error_detail());
    if (ax_buffer_config_validate(&copy->network.buffer_config) != AX_OK)
        return blame(ld, net_buffers_scopes, 3, ax_error_detail());
    if (ax_config_validate(copy) != AX_OK)
        return blame(ld, top, 2, ax_error_detail());
    return AX_OK;
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
    st = load_group(&ld, config_root_setting(&lc), "", &root_schema, (unsigned char *)&copy);
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
