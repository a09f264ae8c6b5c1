/* BufferConfig: the defaults, every validation rule, and byte-size strings. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "axon/buffers.h"

static ax_buffer_config_t small_config(void)
{
    return (ax_buffer_config_t){
        .chunk_size = 1024,
        .initial_chunk_count = 1,
        .max_chunk_count = 4,
        .encode_buf_min_free_space = 64,
    };
}

/* The call must fail with AX_EINVAL and its detail must name `needle`, so a
 * user reading the message knows which field to fix. */
static void assert_rejected(const ax_buffer_config_t *cfg, const char *needle)
{
    ax_error_clear();
    cr_assert_eq(ax_buffer_config_validate(cfg), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), needle) != NULL, "detail \"%s\" does not mention \"%s\"",
              ax_error_detail(), needle);
}

Test(config, defaults_match_the_documented_values)
{
    ax_buffer_config_t cfg = AX_BUFFER_CONFIG_DEFAULT;

    cr_assert_eq(cfg.chunk_size, 128 * 1024);
    cr_assert_eq(cfg.initial_chunk_count, 2);
    cr_assert_eq(cfg.max_chunk_count, 1000);
    cr_assert_eq(cfg.encode_buf_min_free_space, 64);
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
}

Test(config, null_config_is_rejected)
{
    cr_assert_eq(ax_buffer_config_validate(NULL), AX_EINVAL);
}

Test(config, chunk_size_below_minimum_is_rejected)
{
    ax_buffer_config_t cfg = small_config();

    cfg.encode_buf_min_free_space = 0;
    cfg.chunk_size = AX_BUFFER_MIN_CHUNK_SIZE - 1;
    assert_rejected(&cfg, "chunk_size");
    cfg.chunk_size = AX_BUFFER_MIN_CHUNK_SIZE;
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
}

Test(config, chunk_size_above_maximum_is_rejected)
{
    ax_buffer_config_t cfg = small_config();

    cfg.chunk_size = AX_BUFFER_MAX_CHUNK_SIZE + 1;
    assert_rejected(&cfg, "chunk_size");
    cfg.chunk_size = AX_BUFFER_MAX_CHUNK_SIZE;
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
}

Test(config, chunk_size_must_exceed_min_free_space)
{
    ax_buffer_config_t cfg = small_config();

    cfg.encode_buf_min_free_space = cfg.chunk_size;
    assert_rejected(&cfg, "encode_buf_min_free_space");
    cfg.encode_buf_min_free_space = cfg.chunk_size + 1;
    assert_rejected(&cfg, "encode_buf_min_free_space");
    cfg.encode_buf_min_free_space = cfg.chunk_size - 1;
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
}

Test(config, max_chunk_count_must_be_at_least_one)
{
    ax_buffer_config_t cfg = small_config();

    cfg.initial_chunk_count = 0;
    cfg.max_chunk_count = 0;
    assert_rejected(&cfg, "max_chunk_count");
    cfg.max_chunk_count = 1;
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
}

Test(config, max_chunk_count_must_cover_initial_count)
{
    ax_buffer_config_t cfg = small_config();

    cfg.initial_chunk_count = 5;
    cfg.max_chunk_count = 4;
    assert_rejected(&cfg, "initial_chunk_count");
    cfg.max_chunk_count = 5;
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
}

Test(config, total_size_overflow_is_rejected)
{
    ax_buffer_config_t cfg = small_config();

    cfg.chunk_size = AX_BUFFER_MAX_CHUNK_SIZE;
    cfg.max_chunk_count = SIZE_MAX / AX_BUFFER_MAX_CHUNK_SIZE + 1;
    assert_rejected(&cfg, "overflow");
    cfg.max_chunk_count = SIZE_MAX / AX_BUFFER_MAX_CHUNK_SIZE;
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
}

Test(config, constructors_reject_an_invalid_config)
{
    ax_buffer_config_t cfg = small_config();
    ax_frame_format_t fmt = {.header_size = 8, .max_frame_size = 4096};
    ax_buffer_pool_t *pool = NULL;
    ax_encode_buffer_t *eb = NULL;
    ax_decode_buffer_t *db = NULL;

    cfg.chunk_size = 64;
    cr_assert_eq(ax_buffer_pool_create(&cfg, &pool), AX_EINVAL);
    cr_assert_eq(ax_encode_buffer_create(&cfg, &eb), AX_EINVAL);
    cr_assert_eq(ax_decode_buffer_create(&cfg, &fmt, &db), AX_EINVAL);
    cr_assert_null(pool);
    cr_assert_null(eb);
    cr_assert_null(db);
}

Test(config, decode_frame_format_is_validated)
{
    ax_buffer_config_t cfg = small_config();
    ax_decode_buffer_t *db = NULL;

    cr_assert_eq(ax_decode_buffer_create(&cfg, &(ax_frame_format_t){3, 4096}, &db), AX_EINVAL);
    cr_assert_eq(ax_decode_buffer_create(&cfg, &(ax_frame_format_t){cfg.chunk_size + 1, 1 << 20},
                                         &db),
                 AX_EINVAL);
    cr_assert_eq(ax_decode_buffer_create(&cfg, &(ax_frame_format_t){8, 7}, &db), AX_EINVAL);
    cr_assert_null(db);
    cr_assert_eq(ax_decode_buffer_create(&cfg, &(ax_frame_format_t){4, 4}, &db), AX_OK);
    ax_decode_buffer_destroy(&db);
    cr_assert_null(db);
}

/* ---- byte-size strings --------------------------------------------- */

Test(size_string, valid_strings_parse_to_bytes)
{
    static const struct {
        const char *text;
        size_t bytes;
    } cases[] = {
        {"0", 0},
        {"4096", 4096},
        {"20B", 20},
        {"128KB", 128000},
        {"2kB", 2000},
        {"256KiB", 256 * 1024},
        {"1MiB", 1024 * 1024},
        {"3MB", 3000000},
        {"1 KiB", 1024},
        {"64 B", 64},
        {"2GB", (size_t)2000000000},
        {"1GiB", (size_t)1 << 30},
        {"18446744073709551615", SIZE_MAX},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t out = 7;

        cr_assert_eq(ax_parse_size(cases[i].text, &out), AX_OK, "\"%s\": %s", cases[i].text,
                     ax_error_detail());
        cr_assert_eq(out, cases[i].bytes, "\"%s\" gave %zu", cases[i].text, out);
    }
}

Test(size_string, invalid_strings_are_rejected_and_leave_out_unchanged)
{
    static const char *const bad[] = {
        "garbage", "",     "-1",          "+5",   "1.5KiB",
        "12XB",    "KiB",  "99999999999999999999", "18446744073709551615GiB",
        "1 ",      " 1",   "1  KiB",      "1kib", "1KiB ",
        "1 KiBx",  "0x10", "1e3",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t out = 12345;

        ax_error_clear();
        cr_assert_eq(ax_parse_size(bad[i], &out), AX_EINVAL, "\"%s\" was accepted", bad[i]);
        cr_assert_eq(out, 12345, "\"%s\" wrote *out", bad[i]);
        cr_assert(strstr(ax_error_detail(), "size") != NULL, "\"%s\": detail \"%s\"", bad[i],
                  ax_error_detail());
    }
}

Test(size_string, null_arguments_are_rejected)
{
    size_t out = 1;

    cr_assert_eq(ax_parse_size(NULL, &out), AX_EINVAL);
    cr_assert_eq(out, 1);
    cr_assert_eq(ax_parse_size("1KiB", NULL), AX_EINVAL);
}

Test(size_string, parsed_size_feeds_a_valid_config)
{
    ax_buffer_config_t cfg = AX_BUFFER_CONFIG_DEFAULT;

    cr_assert_eq(ax_parse_size("64 KiB", &cfg.chunk_size), AX_OK);
    cr_assert_eq(cfg.chunk_size, 65536);
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_OK);
    cr_assert_eq(ax_parse_size("100B", &cfg.chunk_size), AX_OK);
    cr_assert_eq(ax_buffer_config_validate(&cfg), AX_EINVAL);
}
