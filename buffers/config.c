/* BufferConfig validation and byte-size strings. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "axon/buffers.h"
#include "buffers/config_check.h"
#include "common/error.h"

#define B(m) offsetof(ax_buffer_config_t, m)
#define NONE AX__NO_MEMBER

ax_status_t ax__buffer_config_check(const ax_buffer_config_t *cfg, ax__blame_t *blame)
{
    if (cfg == NULL)
        return ax__blame(blame, NONE, NONE, ax__error(AX_EINVAL, "buffer_config: NULL config"));
    if (cfg->chunk_size < AX_BUFFER_MIN_CHUNK_SIZE)
        return ax__blame(blame, B(chunk_size), NONE,
                         ax__error(AX_EINVAL, "buffer_config: chunk_size (%zu) must be >= %zu",
                                   cfg->chunk_size, AX_BUFFER_MIN_CHUNK_SIZE));
    if (cfg->chunk_size > AX_BUFFER_MAX_CHUNK_SIZE)
        return ax__blame(blame, B(chunk_size), NONE,
                         ax__error(AX_EINVAL, "buffer_config: chunk_size (%zu) must be <= %zu",
                                   cfg->chunk_size, AX_BUFFER_MAX_CHUNK_SIZE));
    if (cfg->chunk_size <= cfg->encode_buf_min_free_space)
        return ax__blame(blame, B(chunk_size), B(encode_buf_min_free_space),
                         ax__error(AX_EINVAL,
                                   "buffer_config: chunk_size (%zu) must be > encode_buf_min_free_space (%zu)",
                                   cfg->chunk_size, cfg->encode_buf_min_free_space));
    if (cfg->max_chunk_count < 1)
        return ax__blame(blame, B(max_chunk_count), NONE,
                         ax__error(AX_EINVAL, "buffer_config: max_chunk_count must be >= 1"));
    if (cfg->max_chunk_count < cfg->initial_chunk_count)
        return ax__blame(blame, B(max_chunk_count), B(initial_chunk_count),
                         ax__error(AX_EINVAL,
                                   "buffer_config: max_chunk_count (%zu) must be >= initial_chunk_count (%zu)",
                                   cfg->max_chunk_count, cfg->initial_chunk_count));
    if (cfg->max_chunk_count > SIZE_MAX / cfg->chunk_size)
        return ax__blame(blame, B(chunk_size), B(max_chunk_count),
                         ax__error(AX_EINVAL,
                                   "buffer_config: chunk_size (%zu) * max_chunk_count (%zu) overflows",
                                   cfg->chunk_size, cfg->max_chunk_count));
    return AX_OK;
}

ax_status_t ax_buffer_config_validate(const ax_buffer_config_t *cfg)
{
    return ax__buffer_config_check(cfg, NULL);
}

static const struct {
    const char *suffix;
    size_t factor;
} size_units[] = {
    {"B", 1},
    {"KB", 1000},
    {"kB", 1000},
    {"KiB", (size_t)1 << 10},
    {"MB", 1000 * 1000},
    {"MiB", (size_t)1 << 20},
    {"GB", (size_t)1000 * 1000 * 1000},
    {"GiB", (size_t)1 << 30},
};

ax_status_t ax_parse_size(const char *text, size_t *out)
{
    size_t value = 0, factor = 1;
    const char *p = text;

    if (text == NULL || out == NULL)
        return ax__error(AX_EINVAL, "size: NULL argument");
    if (!isdigit((unsigned char)*p))
        return ax__error(AX_EINVAL, "size \"%s\": must start with a digit (no sign, no space)", text);
    for (; isdigit((unsigned char)*p); p++) {
        size_t digit = (size_t)(*p - '0');

        if (value > (SIZE_MAX - digit) / 10)
            return ax__error(AX_EINVAL, "size \"%s\": does not fit in %zu bytes", text, sizeof(size_t));
        value = value * 10 + digit;
    }
    if (*p == ' ')
        p++;
    if (*p != '\0') {
        size_t i, n = sizeof size_units / sizeof size_units[0];

        for (i = 0; i < n; i++)
            if (strcmp(p, size_units[i].suffix) == 0)
                break;
        if (i == n)
            return ax__error(AX_EINVAL,
                             "size \"%s\": unknown unit \"%s\" (use B, KB, KiB, MB, MiB, GB or GiB)",
                             text, p);
        factor = size_units[i].factor;
    } else if (p[-1] == ' ') {
        return ax__error(AX_EINVAL, "size \"%s\": trailing space", text);
    }
    if (value > SIZE_MAX / factor)
        return ax__error(AX_EINVAL, "size \"%s\": does not fit in %zu bytes", text, sizeof(size_t));
    *out = value * factor;
    return AX_OK;
}
