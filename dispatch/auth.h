/*
 * Internal to dispatch/: the shared secret and the handshake's proofs
 * (docs/wire.md section 7). libsodium does every cryptographic step:
 * random nonces, HMAC-SHA-256 and the constant-time comparison. Nothing
 * here is hand-written cryptography.
 *
 * The secret never leaves this module in a log line or an error detail:
 * details name the key or the file, never its contents.
 */
#ifndef AXON_DISPATCH_AUTH_H
#define AXON_DISPATCH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/config.h"
#include "axon/status.h"

#define AX__NONCE_SIZE 32u
#define AX__PROOF_SIZE 32u /* HMAC-SHA-256 */
#define AX__SECRET_MAX 255u

/* Who is proving: the initiator proves first, the acceptor second. */
enum ax__proof_role {
    AX__PROOF_INITIATOR = 1,
    AX__PROOF_ACCEPTOR = 2,
};

typedef struct ax__secret_s {
    unsigned char bytes[AX__SECRET_MAX];
    size_t len; /* 0: no secret */
} ax__secret_t;

/* Read the secret of cfg (cookie, or cookie_file: a regular file of the
 * current user, readable by its owner only; surrounding white space is
 * dropped) into *out; len 0 when neither is set. AX_EINVAL or AX_EIO with
 * a detail naming the key or file (never the secret). Also checks the
 * secure default: without a secret, `listen_is_loopback` must hold unless
 * cfg->allow_unauthenticated. */
ax_status_t ax__secret_load(const ax_net_config_t *cfg, bool listen_is_loopback, ax__secret_t *out);

/* Overwrite the secret (sodium_memzero). */
void ax__secret_wipe(ax__secret_t *s);

/* A fresh random nonce (libsodium's randombytes). */
void ax__nonce_fill(unsigned char nonce[AX__NONCE_SIZE]);

/* out = HMAC-SHA-256(secret, "axon-auth-2" || role || hello_i || hello_a),
 * where hello_i and hello_a are the Hello bodies of the initiator and the
 * acceptor, byte for byte as sent. */
void ax__proof_make(const ax__secret_t *secret, enum ax__proof_role role, const void *hello_i,
                    size_t hello_i_len, const void *hello_a, size_t hello_a_len,
                    unsigned char out[AX__PROOF_SIZE]);

/* Whether proof is right, compared in constant time. */
bool ax__proof_check(const ax__secret_t *secret, enum ax__proof_role role, const void *hello_i,
                     size_t hello_i_len, const void *hello_a, size_t hello_a_len,
                     const unsigned char *proof, size_t proof_len);

#endif
