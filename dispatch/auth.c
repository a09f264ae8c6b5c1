/* The shared secret and the handshake's HMAC proofs, with libsodium. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "dispatch/auth.h"

#define PROOF_LABEL "axon-auth-2"

static ax_status_t take(ax__secret_t *out, const char *text, size_t len, const char *what)
{
    while (len > 0 && isspace((unsigned char)text[0])) {
        text++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    if (len == 0)
        return ax__error(AX_EINVAL, "net: %s holds no secret (it is empty or white space)", what);
    if (len > AX__SECRET_MAX)
        return ax__error(AX_EINVAL, "net: %s is longer than %u bytes", what, AX__SECRET_MAX);
    memcpy(out->bytes, text, len);
    out->len = len;
    return AX_OK;
}

static ax_status_t read_cookie_file(const char *path, ax__secret_t *out)
{
    char buf[AX__SECRET_MAX + 2];
    struct stat st;
    ssize_t n;
    size_t got = 0;
    ax_status_t rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return ax__error(AX_EIO, "net: network.cookie_file %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ax__error(AX_EINVAL, "net: network.cookie_file %s is not a regular file", path);
    }
    if (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        close(fd);
        return ax__error(AX_EINVAL,
                         "net: network.cookie_file %s must belong to this user and be readable by "
                         "its owner only (mode 0400 or 0600; it is %04o)",
                         path, (unsigned)(st.st_mode & 07777));
    }
    while (got < sizeof buf && (n = read(fd, buf + got, sizeof buf - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;

            close(fd);
            sodium_memzero(buf, sizeof buf);
            return ax__error(AX_EIO, "net: network.cookie_file %s: %s", path, strerror(err));
        }
        got += (size_t)n;
    }
    close(fd);
    rc = got == sizeof buf ? ax__error(AX_EINVAL, "net: network.cookie_file %s is longer than %u bytes",
                                       path, AX__SECRET_MAX)
                           : take(out, buf, got, "network.cookie_file");
    sodium_memzero(buf, sizeof buf);
    return rc;
}

ax_status_t ax__secret_load(const ax_net_config_t *cfg, bool listen_is_loopback, ax__secret_t *out)
{
    ax_status_t st = AX_OK;

    memset(out, 0, sizeof(*out));
    if (sodium_init() < 0)
        return ax__error(AX_EIO, "net: libsodium failed to initialise");
    if (cfg->cookie[0] != '\0')
        st = take(out, cfg->cookie, strlen(cfg->cookie), "network.cookie");
    else if (cfg->cookie_file[0] != '\0')
        st = read_cookie_file(cfg->cookie_file, out);
    if (st != AX_OK)
        return st;
    if (out->len == 0 && !listen_is_loopback && !cfg->allow_unauthenticated)
        return ax__error(AX_EINVAL,
                         "net: network.listen %s is not a loopback address and no secret is set: "
                         "set network.cookie or network.cookie_file, or network.allow_unauthenticated "
                         "= true to accept anyone who can reach the port",
                         cfg->listen);
    return AX_OK;
}

void ax__secret_wipe(ax__secret_t *s)
{
    sodium_memzero(s, sizeof(*s));
}

void ax__nonce_fill(unsigned char nonce[AX__NONCE_SIZE])
{
    randombytes_buf(nonce, AX__NONCE_SIZE);
}

void ax__proof_make(const ax__secret_t *secret, enum ax__proof_role role, const void *hello_i,
                    size_t hello_i_len, const void *hello_a, size_t hello_a_len,
                    unsigned char out[AX__PROOF_SIZE])
{
    crypto_auth_hmacsha256_state st;
    unsigned char r = (unsigned char)role;

    crypto_auth_hmacsha256_init(&st, secret->bytes, secret->len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)PROOF_LABEL, sizeof PROOF_LABEL - 1);
    crypto_auth_hmacsha256_update(&st, &r, 1);
    crypto_auth_hmacsha256_update(&st, hello_i, hello_i_len);
    crypto_auth_hmacsha256_update(&st, hello_a, hello_a_len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

bool ax__proof_check(const ax__secret_t *secret, enum ax__proof_role role, const void *hello_i,
                     size_t hello_i_len, const void *hello_a, size_t hello_a_len,
                     const unsigned char *proof, size_t proof_len)
{
    unsigned char want[AX__PROOF_SIZE];
    bool ok;

    if (proof_len != AX__PROOF_SIZE)
        return false;
    ax__proof_make(secret, role, hello_i, hello_i_len, hello_a, hello_a_len, want);
    ok = sodium_memcmp(want, proof, AX__PROOF_SIZE) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
}
