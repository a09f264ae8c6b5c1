/*
 * Loading a system configuration from libconfig text: every key of the
 * schema, precedence over values already set, and the errors a user gets
 * for bad input (each naming file:line and the key, with nothing applied).
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axon/config.h"

/* The schema's example, with network.buffer_config filled in and the
 * encode_buf_min_free_space alias used there. */
static const char full_config[] =
    "axon = {\n"
    "  threads = 2;\n"
    "  throughput = 50;\n"
    "  timer_tick_us = 1000;\n"
    "  buffer_config = {\n"
    "    chunk_size = \"256KiB\";\n"
    "    initial_chunk_count = 3;\n"
    "    max_chunk_count = 4;\n"
    "    encode_min_remaining = \"20B\";\n"
    "  };\n"
    "  network = {\n"
    "    listen = \"127.0.0.1:0\";\n"
    "    buffer_config = {\n"
    "      chunk_size = \"1 MiB\";\n"
    "      initial_chunk_count = 1;\n"
    "      max_chunk_count = 8;\n"
    "      encode_buf_min_free_space = 128;\n"
    "    };\n"
    "    max_frame_size = \"16MiB\";\n"
    "    peer_queue = 1024;\n"
    "    max_retries = 5;\n"
    "    backoff_initial_ms = 50;\n"
    "    backoff_max_ms = 2000;\n"
    "    flush_timeout_ms = 2000;\n"
    "    tcp_congestion = \"cubic\";\n"
    "    tcp_congestion_loopback = \"\";\n"
    "    io_uring = false;\n"
    "  };\n"
    "};\n";

/* A valid config in which every field differs from both the defaults and
 * full_config, so that loading full_config over it proves each key lands. */
static ax_config_t sentinel_config(void)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.threads = 7;
    cfg.throughput = 9;
    cfg.timer_tick_us = 333;
    cfg.buffer_config = (ax_buffer_config_t){
        .chunk_size = 4096, .initial_chunk_count = 0, .max_chunk_count = 77,
        .encode_buf_min_free_space = 99};
    strcpy(cfg.network.listen, "[::1]:4000");
    cfg.network.buffer_config = (ax_buffer_config_t){
        .chunk_size = 8192, .initial_chunk_count = 5, .max_chunk_count = 55,
        .encode_buf_min_free_space = 11};
    cfg.network.max_frame_size = 1000;
    cfg.network.peer_queue = 3;
    cfg.network.max_retries = 1;
    cfg.network.backoff_initial_ms = 7;
    cfg.network.backoff_max_ms = 70;
    cfg.network.flush_timeout_ms = 700;
    cfg.network.path_ids = 17;
    cfg.network.max_remote_refs = 4321;
    strcpy(cfg.network.tcp_congestion, "reno");
    strcpy(cfg.network.tcp_congestion_loopback, "bbr");
    cfg.network.io_uring = true;
    cr_assert_eq(ax_config_validate(&cfg), AX_OK, "%s", ax_error_detail());
    return cfg;
}

static void assert_full_config(const ax_config_t *cfg)
{
    cr_assert_eq(cfg->threads, 2);
    cr_assert_eq(cfg->throughput, 50);
    cr_assert_eq(cfg->timer_tick_us, 1000);
    cr_assert_eq(cfg->buffer_config.chunk_size, 256 * 1024);
    cr_assert_eq(cfg->buffer_config.initial_chunk_count, 3);
    cr_assert_eq(cfg->buffer_config.max_chunk_count, 4);
    cr_assert_eq(cfg->buffer_config.encode_buf_min_free_space, 20);
    cr_assert_str_eq(cfg->network.listen, "127.0.0.1:0");
    cr_assert(!cfg->network.client_only, "a system listens unless told otherwise");
    cr_assert_eq(cfg->network.buffer_config.chunk_size, 1024 * 1024);
    cr_assert_eq(cfg->network.buffer_config.initial_chunk_count, 1);
    cr_assert_eq(cfg->network.buffer_config.max_chunk_count, 8);
    cr_assert_eq(cfg->network.buffer_config.encode_buf_min_free_space, 128);
    cr_assert_eq(cfg->network.max_frame_size, 16 * 1024 * 1024);
    cr_assert_eq(cfg->network.peer_queue, 1024);
    cr_assert_eq(cfg->network.max_retries, 5);
    cr_assert_eq(cfg->network.backoff_initial_ms, 50);
    cr_assert_eq(cfg->network.backoff_max_ms, 2000);
    cr_assert_eq(cfg->network.flush_timeout_ms, 2000);
    cr_assert_str_eq(cfg->network.tcp_congestion, "cubic");
    cr_assert_str_eq(cfg->network.tcp_congestion_loopback, "", "the kernel's choice on loopback too");
    cr_assert(!cfg->network.io_uring, "io_uring = false did not land");
}

/* Write text to a fresh temporary file; the caller unlinks *path. */
static void write_temp(char *path, size_t size, const char *text)
{
    FILE *f;
    int fd;

    snprintf(path, size, "%s", "/tmp/axon_test_config_XXXXXX");
    fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    f = fdopen(fd, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
}

static void assert_detail_has(const char *needle)
{
    cr_assert(strstr(ax_error_detail(), needle) != NULL, "detail \"%s\" does not mention \"%s\"",
              ax_error_detail(), needle);
}

Test(config_load, defaults_match_the_documented_values)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_eq(cfg.threads, 0);
    cr_assert_eq(cfg.throughput, 50);
    cr_assert_eq(cfg.timer_tick_us, 1000);
    cr_assert_eq(cfg.buffer_config.chunk_size, 128 * 1024);
    cr_assert_eq(cfg.buffer_config.initial_chunk_count, 2);
    cr_assert_eq(cfg.buffer_config.max_chunk_count, 256);
    cr_assert_eq(cfg.buffer_config.encode_buf_min_free_space, 64);
    cr_assert_str_eq(cfg.network.listen, "127.0.0.1:0");
    /* The network's pools keep the buffers module's default: 1000 chunks. */
    cr_assert_eq(memcmp(&cfg.network.buffer_config, &AX_BUFFER_CONFIG_DEFAULT,
                        sizeof cfg.buffer_config), 0);
    cr_assert_eq(cfg.network.buffer_config.max_chunk_count, 1000);
    cr_assert_eq(cfg.network.max_frame_size, 16 * 1024 * 1024);
    cr_assert_eq(cfg.network.peer_queue, 1024);
    cr_assert_eq(cfg.network.max_retries, 5);
    cr_assert_eq(cfg.network.backoff_initial_ms, 50);
    cr_assert_eq(cfg.network.backoff_max_ms, 2000);
    cr_assert_eq(cfg.network.flush_timeout_ms, 2000);
    cr_assert_eq(cfg.spin_us, 20);
    cr_assert_eq(cfg.network.spin_us, 0);
    cr_assert_eq(cfg.network.run_actors_us, 200);
    cr_assert_eq(cfg.network.slow_run_us, 1000);
    cr_assert_eq(cfg.network.path_ids, 1024);
    cr_assert_str_eq(cfg.network.tcp_congestion, "", "the kernel's choice");
    cr_assert_str_eq(cfg.network.tcp_congestion_loopback, "reno", "no pacing on loopback");
    cr_assert(cfg.network.io_uring, "io_uring is on by default");
    cr_assert_eq(ax_config_validate(&cfg), AX_OK);
}

/* Spinning can be turned off, and set up to its bound, from text. */
Test(config_load, spin_keys_turn_spinning_off_and_on)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { spin_us = 0; network = { spin_us = 0; }; };"), AX_OK,
                 "%s", ax_error_detail());
    cr_assert_eq(cfg.spin_us, 0);
    cr_assert_eq(cfg.network.spin_us, 0);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { spin_us = 10000; network = { spin_us = 10000; }; };"),
                 AX_OK, "%s", ax_error_detail());
    cr_assert_eq(cfg.spin_us, 10000);
    cr_assert_eq(cfg.network.spin_us, 10000);
    /* The validator names the member set in code too. */
    cfg.network.spin_us = 10001;
    cr_assert_eq(ax_config_validate(&cfg), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), "network.spin_us") != NULL, "%s", ax_error_detail());
}

/* A microsecond key of axon.network (a uint32_t at offset off in
 * ax_net_config_t): 0 and max load, max + 1 is refused with the key named
 * and nothing changed, from text and from code. */
static void assert_net_key_bounded(const char *key, size_t off, uint32_t max)
{
    ax_config_t cfg;
    char text[128], full[64];
    uint32_t *field = (uint32_t *)(void *)((unsigned char *)&cfg.network + off);

    ax_config_init(&cfg);
    snprintf(full, sizeof full, "network.%s", key);
    snprintf(text, sizeof text, "axon = { network = { %s = 0; }; };", key);
    cr_assert_eq(ax_config_load_string(&cfg, text), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(*field, 0);
    snprintf(text, sizeof text, "axon = { network = { %s = %u; }; };", key, (unsigned)max);
    cr_assert_eq(ax_config_load_string(&cfg, text), AX_OK, "%s", ax_error_detail());
    cr_assert_eq(*field, max);
    snprintf(text, sizeof text, "axon = { network = { %s = %u; }; };", key, (unsigned)max + 1);
    cr_assert_eq(ax_config_load_string(&cfg, text), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), key) != NULL, "%s", ax_error_detail());
    cr_assert_eq(*field, max, "a refused load changed the config");
    *field = max + 1;
    cr_assert_eq(ax_config_validate(&cfg), AX_EINVAL);
    cr_assert(strstr(ax_error_detail(), full) != NULL, "%s", ax_error_detail());
}

/* The network thread's turn of running actors. */
Test(config_load, run_actors_us_is_bounded)
{
    assert_net_key_bounded("run_actors_us", offsetof(ax_net_config_t, run_actors_us), 10000);
}

/* The slow mark's threshold. */
Test(config_load, slow_run_us_is_bounded)
{
    assert_net_key_bounded("slow_run_us", offsetof(ax_net_config_t, slow_run_us), 1000000);
}

Test(config_load, full_string_sets_every_field)
{
    ax_config_t cfg = sentinel_config();

    cr_assert_eq(ax_config_load_string(&cfg, full_config), AX_OK, "%s", ax_error_detail());
    assert_full_config(&cfg);
}

Test(config_load, file_gives_the_same_result_as_the_string)
{
    ax_config_t cfg = sentinel_config();
    char path[64];
    ax_status_t st;

    write_temp(path, sizeof path, full_config);
    st = ax_config_load_file(&cfg, path);
    unlink(path);
    cr_assert_eq(st, AX_OK, "%s", ax_error_detail());
    assert_full_config(&cfg);
}

Test(config_load, absent_settings_keep_their_earlier_values)
{
    ax_config_t cfg, expect;

    ax_config_init(&cfg);
    cr_assert_eq(ax_config_load_string(&cfg,
                                       "axon = { threads = 3;\n"
                                       "  buffer_config = { chunk_size = \"64KiB\"; };\n"
                                       "  network = { peer_queue = 10; }; };"),
                 AX_OK, "%s", ax_error_detail());
    cr_assert_eq(ax_config_load_string(&cfg,
                                       "axon = { throughput = 7;\n"
                                       "  buffer_config = { max_chunk_count = 9; };\n"
                                       "  network = { listen = \"0.0.0.0:9000\"; }; };"),
                 AX_OK, "%s", ax_error_detail());

    /* Only the six keys given differ from the defaults, and the second
     * load did not reset what the first one set. */
    ax_config_init(&expect);
    cr_assert_eq(cfg.threads, 3);
    cr_assert_eq(cfg.throughput, 7);
    cr_assert_eq(cfg.buffer_config.chunk_size, 64 * 1024);
    cr_assert_eq(cfg.buffer_config.max_chunk_count, 9);
    cr_assert_eq(cfg.network.peer_queue, 10);
    cr_assert_str_eq(cfg.network.listen, "0.0.0.0:9000");
    cr_assert_eq(cfg.timer_tick_us, expect.timer_tick_us);
    cr_assert_eq(cfg.buffer_config.initial_chunk_count, expect.buffer_config.initial_chunk_count);
    cr_assert_eq(cfg.buffer_config.encode_buf_min_free_space,
                 expect.buffer_config.encode_buf_min_free_space);
    cr_assert_eq(memcmp(&cfg.network.buffer_config, &expect.network.buffer_config,
                        sizeof expect.network.buffer_config), 0);
    cr_assert_eq(cfg.network.max_frame_size, expect.network.max_frame_size);
    cr_assert_eq(cfg.network.max_retries, expect.network.max_retries);
}

Test(config_load, empty_text_and_empty_groups_change_nothing)
{
    static const char *const texts[] = {"", "# only a comment\n", "axon = {};",
                                        "axon = { buffer_config = {}; network = {}; };"};
    size_t i;

    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ax_config_t cfg = sentinel_config(), before;

        memcpy(&before, &cfg, sizeof cfg);
        cr_assert_eq(ax_config_load_string(&cfg, texts[i]), AX_OK, "%s", ax_error_detail());
        cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0, "text %zu changed the config", i);
    }
}

Test(config_load, sizes_accept_every_unit_and_plain_integers)
{
    static const struct {
        const char *value;
        size_t bytes;
    } cases[] = {
        {"4096", 4096},
        {"\"4096\"", 4096},
        {"\"200B\"", 200},
        {"\"3KB\"", 3000},
        {"\"3kB\"", 3000},
        {"\"3 KiB\"", 3072},
        {"\"2MB\"", 2000000},
        {"\"2MiB\"", 2 << 20},
        {"\"1GB\"", 1000000000},
        {"\"1GiB\"", (size_t)1 << 30},
        {"0x100000", 1 << 20},
        {"2147483648L", (size_t)1 << 31},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ax_config_t cfg;
        char text[128];

        ax_config_init(&cfg);
        snprintf(text, sizeof text, "axon = { network = { max_frame_size = %s; }; };",
                 cases[i].value);
        cr_assert_eq(ax_config_load_string(&cfg, text), AX_OK, "%s: %s", cases[i].value,
                     ax_error_detail());
        cr_assert_eq(cfg.network.max_frame_size, cases[i].bytes, "%s", cases[i].value);
    }
}

Test(config_load, encode_buf_min_free_space_is_an_alias)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { buffer_config = {\n"
                                             "  encode_buf_min_free_space = \"1KiB\"; }; };"),
                 AX_OK, "%s", ax_error_detail());
    cr_assert_eq(cfg.buffer_config.encode_buf_min_free_space, 1024);
}

Test(config_load, wide_integers_fit_the_wide_fields)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_eq(ax_config_load_string(&cfg,
                                       "axon = { network = {\n"
                                       "  max_retries = 4294967295L;\n"
                                       "  backoff_max_ms = 10000000000L;\n"
                                       "  flush_timeout_ms = 0; }; };"),
                 AX_OK, "%s", ax_error_detail());
    cr_assert_eq(cfg.network.max_retries, UINT32_MAX);
    cr_assert_eq(cfg.network.backoff_max_ms, 10000000000ULL);
    cr_assert_eq(cfg.network.flush_timeout_ms, 0);
}

/* ------------------------------------------------------------------ */
/* Bad configs                                                         */
/* ------------------------------------------------------------------ */

typedef struct bad_case_s {
    const char *text;
    const char *key;  /* the detail must name this (a key path) */
    unsigned line;    /* and this line */
    const char *why;  /* and contain this, when not NULL */
} bad_case_t;

/* Thirteen of these make a listen address of 132 bytes, above the 127 that
 * fit in ax_net_config_t.listen. */
#define TEN "0123456789"

static const bad_case_t bad_cases[] = {
    /* unknown keys, at every level */
    {"axon = {};\nextra = 1;\n", "extra", 2, "unknown key"},
    {"axon = {\n  thread = 2;\n};\n", "axon.thread", 2, "unknown key"},
    {"axon = {\n  buffer_config = {\n    chunksize = 1;\n  };\n};\n",
     "axon.buffer_config.chunksize", 3, "unknown key"},
    {"axon = { network = {\n  port = 9000;\n}; };\n", "axon.network.port", 2, "unknown key"},
    {"axon = { network = { buffer_config = {\n\n  max_chunks = 3; }; }; };\n",
     "axon.network.buffer_config.max_chunks", 3, "unknown key"},
    /* wrong types */
    {"axon = {\n  threads = \"2\";\n};\n", "axon.threads", 2, "expected an integer, got a string"},
    {"axon = {\n  threads = 2.0;\n};\n", "axon.threads", 2, "got a float"},
    {"axon = {\n  throughput = true;\n};\n", "axon.throughput", 2, "got a boolean"},
    {"axon = {\n  threads = {};\n};\n", "axon.threads", 2, "got a group"},
    {"axon = 5;\n", "axon", 1, "expected a group, got an integer"},
    {"axon = {\n  buffer_config = \"256KiB\";\n};\n", "axon.buffer_config", 2,
     "expected a group, got a string"},
    {"axon = {\n  network = ( 1, 2 );\n};\n", "axon.network", 2, "got a list"},
    {"axon = {\n  buffer_config = {\n    chunk_size = [ 1, 2 ];\n  };\n};\n",
     "axon.buffer_config.chunk_size", 3, "got an array"},
    {"axon = {\n  buffer_config = {\n    chunk_size = 1.5;\n  };\n};\n",
     "axon.buffer_config.chunk_size", 3, "got a float"},
    {"axon = {\n  buffer_config = {\n    initial_chunk_count = \"3\";\n  };\n};\n",
     "axon.buffer_config.initial_chunk_count", 3, "expected an integer, got a string"},
    {"axon = { network = {\n  listen = 9000;\n}; };\n", "axon.network.listen", 2,
     "expected a string, got an integer"},
    /* integers out of range */
    {"axon = {\n  threads = -1;\n};\n", "axon.threads", 2, "-1"},
    {"axon = {\n  throughput = 0;\n};\n", "axon.throughput", 2, ">= 1"},
    {"axon = {\n  timer_tick_us = 0;\n};\n", "axon.timer_tick_us", 2, ">= 1"},
    {"axon = {\n  buffer_config = {\n    max_chunk_count = 0;\n  };\n};\n",
     "axon.buffer_config.max_chunk_count", 3, ">= 1"},
    {"axon = { network = {\n  max_retries = -1;\n}; };\n", "axon.network.max_retries", 2, "-1"},
    {"axon = { network = {\n  max_retries = 4294967296L;\n}; };\n", "axon.network.max_retries", 2,
     "does not fit"},
    {"axon = {\n  threads = 99999999999999999999L;\n};\n", "axon.threads", 2, "does not fit"},
    /* libconfig would wrap this to 705032704 without the literal check */
    {"axon = { network = {\n  max_frame_size = 5000000000;\n}; };\n",
     "axon.network.max_frame_size", 2, "5000000000L"},
    {"axon = {\n  threads = 4294967298;\n};\n", "axon.threads", 2, "does not fit"},
    /* bad size strings */
    {"axon = {\n  buffer_config = {\n\n    chunk_size = \"12XB\";\n  };\n};\n",
     "axon.buffer_config.chunk_size", 4, "\"12XB\" is not a size (unknown unit \"XB\""},
    {"axon = {\n  buffer_config = {\n    chunk_size = \"-5KiB\";\n  };\n};\n",
     "axon.buffer_config.chunk_size", 3, "is not a size"},
    {"axon = {\n  buffer_config = {\n    encode_min_remaining = \"1.5KiB\";\n  };\n};\n",
     "axon.buffer_config.encode_min_remaining", 3, "is not a size"},
    {"axon = { network = {\n  max_frame_size = \"99999999999GiB\";\n}; };\n",
     "axon.network.max_frame_size", 2, "does not fit"},
    {"axon = { network = {\n  max_frame_size = \"\";\n}; };\n", "axon.network.max_frame_size", 2,
     "is not a size"},
    /* both spellings of one key */
    {"axon = {\n  buffer_config = {\n    encode_min_remaining = 16;\n"
     "    encode_buf_min_free_space = 16;\n  };\n};\n",
     "axon.buffer_config.encode_buf_min_free_space", 4, "encode_min_remaining"},
    {"axon = {\n  network = {\n    listen = \"" TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN
     TEN ":1\";\n  };\n};\n",
     "axon.network.listen", 3, "at most 127"},
    /* rules checked by validation, blamed on the key that broke them */
    {"axon = {\n  buffer_config = {\n    initial_chunk_count = 5;\n    max_chunk_count = 4;\n"
     "  };\n};\n",
     "axon.buffer_config.max_chunk_count", 4, "initial_chunk_count"},
    {"axon = {\n  buffer_config = {\n    initial_chunk_count = 2000;\n  };\n};\n",
     "axon.buffer_config.initial_chunk_count", 3, "max_chunk_count"},
    {"axon = {\n  buffer_config = {\n    chunk_size = \"100B\";\n  };\n};\n",
     "axon.buffer_config.chunk_size", 3, "128"},
    {"axon = {\n  buffer_config = {\n    chunk_size = 256;\n    encode_min_remaining = 256;\n"
     "  };\n};\n",
     "axon.buffer_config.chunk_size", 3, "encode_buf_min_free_space"},
    {"axon = { network = { buffer_config = {\n  chunk_size = \"64B\";\n}; }; };\n",
     "axon.network.buffer_config.chunk_size", 2, "128"},
    {"axon = {\n  threads = 5000;\n};\n", "axon.threads", 2, "1024"},
    {"axon = { network = {\n  max_frame_size = \"32B\";\n}; };\n", "axon.network.max_frame_size",
     2, "64"},
    /* bounds that keep a value from misbehaving later: a budget that would
     * shrink as it doubles, reconnects without a pause, times that wrap when
     * turned into nanoseconds, a ranking larger than /actors may ask for */
    {"axon = {\n  throughput = 1048577;\n};\n", "axon.throughput", 2, "1048576"},
    {"axon = { network = {\n  backoff_initial_ms = 0;\n}; };\n", "axon.network.backoff_initial_ms", 2,
     ">= 1"},
    {"axon = { network = {\n  heartbeat_timeout_ms = 20000000000000L;\n}; };\n",
     "axon.network.heartbeat_timeout_ms", 2, "at most 1000000000000"},
    {"axon = { network = {\n\n  flush_timeout_ms = 1000000000001L;\n}; };\n",
     "axon.network.flush_timeout_ms", 3, "at most 1000000000000"},
    {"axon = { metrics = {\n  top_n = 10001;\n}; };\n", "axon.metrics.top_n", 2, "10000"},
    {"axon = { network = {\n  backoff_initial_ms = 3000;\n}; };\n",
     "axon.network.backoff_initial_ms", 2, "backoff_max_ms"},
    {"axon = { network = {\n  backoff_initial_ms = 10;\n  backoff_max_ms = 5;\n}; };\n",
     "axon.network.backoff_initial_ms", 2, "backoff_max_ms"},
    /* wire version 2: trust and limits, every key */
    {"axon = { network = {\n  cookie = 42;\n}; };\n", "axon.network.cookie", 2, "expected a string"},
    {"axon = { network = {\n\n  cookie_file = true;\n}; };\n", "axon.network.cookie_file", 3,
     "expected a string"},
    {"axon = { network = {\n  cookie = \"a\";\n  cookie_file = \"/x\";\n}; };\n",
     "axon.network.cookie", 2, "both set"},
    {"axon = { network = {\n  allow_unauthenticated = 1;\n}; };\n", "axon.network.allow_unauthenticated",
     2, "expected true or false"},
    {"axon = { network = {\n\n\n  client_only = \"yes\";\n}; };\n", "axon.network.client_only", 4,
     "expected true or false"},
    {"axon = { network = {\n  heartbeat_interval_ms = 0;\n}; };\n", "axon.network.heartbeat_interval_ms",
     2, ">= 1"},
    {"axon = { network = {\n  heartbeat_timeout_ms = \"5s\";\n}; };\n",
     "axon.network.heartbeat_timeout_ms", 2, "expected an integer"},
    {"axon = { network = {\n  heartbeat_timeout_ms = 500;\n}; };\n", "axon.network.heartbeat_timeout_ms",
     2, "heartbeat_interval_ms"},
    {"axon = { network = {\n  handshake_timeout_ms = 0;\n}; };\n", "axon.network.handshake_timeout_ms",
     2, ">= 1"},
    {"axon = { network = {\n  max_connections = -3;\n}; };\n", "axon.network.max_connections", 2, "-3"},
    {"axon = { network = {\n  max_connections = 4294967296L;\n}; };\n", "axon.network.max_connections",
     2, "does not fit"},
    {"axon = { network = {\n  max_pending_handshakes = 0;\n}; };\n",
     "axon.network.max_pending_handshakes", 2, ">= 1"},
    /* path ids (docs/wire.md section 6.1) */
    {"axon = { network = {\n  path_ids = 65537;\n}; };\n", "axon.network.path_ids", 2, "at most 65536"},
    {"axon = { network = {\n\n  path_ids = -1;\n}; };\n", "axon.network.path_ids", 3, "-1"},
    {"axon = { network = {\n  path_ids = \"many\";\n}; };\n", "axon.network.path_ids", 2,
     "expected an integer"},
    /* remote refs (issue 14) */
    {"axon = { network = {\n\n  max_remote_refs = 0;\n}; };\n", "axon.network.max_remote_refs", 3, ">= 1"},
    {"axon = { network = {\n  max_remote_refs = 16777217;\n}; };\n", "axon.network.max_remote_refs", 2,
     "16777216"},
    {"axon = { network = {\n  max_remote_refs = \"many\";\n}; };\n", "axon.network.max_remote_refs", 2,
     "expected an integer"},
    /* the congestion control's name: the kernel's names fit 15 bytes */
    {"axon = { network = {\n  tcp_congestion = \"cubic-but-longer\";\n}; };\n",
     "axon.network.tcp_congestion", 2, "at most 15"},
    {"axon = { network = {\n\n  tcp_congestion = 1;\n}; };\n", "axon.network.tcp_congestion", 3,
     "expected a string"},
    {"axon = { network = {\n  tcp_congestion_loopback = \"cubic-but-longer\";\n}; };\n",
     "axon.network.tcp_congestion_loopback", 2, "at most 15"},
    {"axon = { network = {\n  io_uring = 1;\n}; };\n", "axon.network.io_uring", 2, "expected true or false"},
};

Test(config_load, bad_configs_are_rejected_with_file_line_and_key)
{
    size_t i;

    cr_assert_geq(sizeof bad_cases / sizeof bad_cases[0], 20);
    for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case_t *c = &bad_cases[i];
        ax_config_t cfg = sentinel_config(), before;
        char where[32];

        /* The sentinel differs from every value a text could set, so the
         * memcmp below proves that no field was touched. */
        memcpy(&before, &cfg, sizeof cfg);
        ax_error_clear();
        cr_assert_eq(ax_config_load_string(&cfg, c->text), AX_EINVAL, "case %zu:\n%s", i, c->text);
        snprintf(where, sizeof where, "<string>:%u: ", c->line);
        cr_assert(strncmp(ax_error_detail(), where, strlen(where)) == 0,
                  "case %zu: detail \"%s\" does not start with \"%s\"", i, ax_error_detail(),
                  where);
        cr_assert(strstr(ax_error_detail(), c->key) != NULL,
                  "case %zu: detail \"%s\" does not name \"%s\"", i, ax_error_detail(), c->key);
        if (c->why != NULL)
            cr_assert(strstr(ax_error_detail(), c->why) != NULL,
                      "case %zu: detail \"%s\" does not say \"%s\"", i, ax_error_detail(), c->why);
        cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0, "case %zu changed the config", i);
    }
}

Test(config_load, a_bad_key_after_good_ones_applies_nothing)
{
    ax_config_t cfg = sentinel_config(), before;

    memcpy(&before, &cfg, sizeof cfg);
    cr_assert_eq(ax_config_load_string(&cfg,
                                       "axon = { threads = 1; throughput = 2;\n"
                                       "  buffer_config = { chunk_size = \"1MiB\"; };\n"
                                       "  network = { peer_queue = \"many\"; }; };"),
                 AX_EINVAL);
    cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}

Test(config_load, detail_reads_as_documented)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = {\n  buffer_config = {\n\n"
                                             "    chunk_size = \"12XB\";\n  };\n};\n"),
                 AX_EINVAL);
    cr_assert(strncmp(ax_error_detail(),
                      "<string>:4: axon.buffer_config.chunk_size: \"12XB\" is not a size "
                      "(unknown unit \"XB\"",
                      60) == 0,
              "%s", ax_error_detail());
}

Test(config_load, file_errors_name_the_path_and_line)
{
    static const char text[] = "# peers\n"
                               "axon = {\n"
                               "  network = {\n"
                               "    listen = \"127.0.0.1:0\";\n"
                               "    max_retries = 5;\n"
                               "\n"
                               "    peer_queue = \"many\";\n"
                               "  };\n"
                               "};\n";
    ax_config_t cfg = sentinel_config(), before;
    char path[64], expect[160];
    ax_status_t st;

    memcpy(&before, &cfg, sizeof cfg);
    write_temp(path, sizeof path, text);
    st = ax_config_load_file(&cfg, path);
    unlink(path);
    cr_assert_eq(st, AX_EINVAL);
    snprintf(expect, sizeof expect,
             "%s:7: axon.network.peer_queue: expected an integer, got a string", path);
    cr_assert_str_eq(ax_error_detail(), expect);
    cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}

Test(config_load, missing_file_is_an_io_error)
{
    ax_config_t cfg = sentinel_config(), before;
    const char *path = "/nonexistent/axon-no-such-dir/axon.conf";

    memcpy(&before, &cfg, sizeof cfg);
    cr_assert_eq(ax_config_load_file(&cfg, path), AX_EIO);
    assert_detail_has(path);
    assert_detail_has("No such file or directory");
    cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}

Test(config_load, directory_is_an_io_error)
{
    ax_config_t cfg = sentinel_config(), before;

    memcpy(&before, &cfg, sizeof cfg);
    cr_assert_eq(ax_config_load_file(&cfg, "/tmp"), AX_EIO);
    assert_detail_has("/tmp");
    cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}

Test(config_load, syntax_error_gives_the_line)
{
    ax_config_t cfg = sentinel_config(), before;
    char path[64], expect[80];
    ax_status_t st;

    memcpy(&before, &cfg, sizeof cfg);
    cr_assert_eq(ax_config_load_string(&cfg, "axon = {\n  threads = 2;\n  throughput = ;\n};\n"),
                 AX_EINVAL);
    assert_detail_has("<string>:3:");
    assert_detail_has("syntax error");
    cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);

    /* libconfig itself rejects a key given twice in one group. */
    cr_assert_eq(ax_config_load_string(&cfg, "axon = {\n  threads = 2;\n  threads = 3;\n};\n"),
                 AX_EINVAL);
    assert_detail_has("<string>:3:");

    write_temp(path, sizeof path, "axon = {\n  threads = 2;\n  throughput = = 3;\n};\n");
    st = ax_config_load_file(&cfg, path);
    snprintf(expect, sizeof expect, "%s:3:", path);
    unlink(path);
    cr_assert_eq(st, AX_EINVAL);
    assert_detail_has(expect);
    cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}

Test(config_load, a_nul_byte_in_a_file_is_rejected)
{
    ax_config_t cfg = sentinel_config(), before;
    char path[64];
    FILE *f;
    ax_status_t st;

    memcpy(&before, &cfg, sizeof cfg);
    write_temp(path, sizeof path, "");
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    /* Everything after the NUL would otherwise be ignored silently. */
    cr_assert_eq(fwrite("axon = {};\n\0axon = 5;\n", 1, 23, f), 23);
    cr_assert_eq(fclose(f), 0);
    st = ax_config_load_file(&cfg, path);
    unlink(path);
    cr_assert_eq(st, AX_EINVAL);
    assert_detail_has(":2:");
    cr_assert_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}

Test(config_load, an_invalid_starting_config_is_not_accepted)
{
    ax_config_t cfg;

    /* Loading validates the result, including values the text left alone. */
    ax_config_init(&cfg);
    cfg.throughput = 0;
    cr_assert_eq(ax_config_load_string(&cfg, "axon = { threads = 1; };"), AX_EINVAL);
    assert_detail_has("throughput");
    cr_assert_eq(cfg.threads, 0);
}

Test(config_load, a_config_built_in_code_meets_the_same_bounds)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cfg.network.backoff_initial_ms = 0;
    cr_assert_eq(ax_config_validate(&cfg), AX_EINVAL);
    assert_detail_has("backoff_initial_ms");
    ax_config_init(&cfg);
    cfg.network.handshake_timeout_ms = UINT64_MAX / 1000; /* wraps once turned into nanoseconds */
    cr_assert_eq(ax_config_validate(&cfg), AX_EINVAL);
    assert_detail_has("handshake_timeout_ms");
    ax_config_init(&cfg);
    cfg.throughput = 1u << 21;
    cr_assert_eq(ax_config_validate(&cfg), AX_EINVAL);
    assert_detail_has("throughput");
    ax_config_init(&cfg);
    cfg.metrics.top_n = 10001;
    cr_assert_eq(ax_config_validate(&cfg), AX_EINVAL);
    assert_detail_has("top_n");
    /* The largest values allowed pass. */
    ax_config_init(&cfg);
    cfg.throughput = 1u << 20;
    cfg.metrics.top_n = 10000;
    cfg.network.flush_timeout_ms = 1000000000000ull;
    cfg.network.heartbeat_timeout_ms = 1000000000000ull;
    cr_assert_eq(ax_config_validate(&cfg), AX_OK, "%s", ax_error_detail());
}

Test(config_load, null_arguments_are_rejected)
{
    ax_config_t cfg;

    ax_config_init(&cfg);
    cr_assert_eq(ax_config_load_string(NULL, "axon = {};"), AX_EINVAL);
    cr_assert_eq(ax_config_load_string(&cfg, NULL), AX_EINVAL);
    cr_assert_eq(ax_config_load_file(NULL, "/tmp/x.conf"), AX_EINVAL);
    cr_assert_eq(ax_config_load_file(&cfg, NULL), AX_EINVAL);
}
