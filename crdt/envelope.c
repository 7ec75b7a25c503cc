/*
 * crdt/envelope.c - signed change envelopes and bundles.
 *
 * Envelope (docs/format.md; a layout change adds a format version and
 * needs new vectors under test/vectors/):
 *
 *   version (1 byte, 1 or 2) | author (32) | body length (u32 BE) | body |
 *   signature (64)
 *
 * The signature is plain Ed25519 (crypto_sign_detached) over the 16-byte
 * context "shoal-change-vN\0" (N the version) followed by every envelope
 * byte before the signature.  A version-2 body is the version-1 body plus
 * one item (crdt/change.c); shoal__envelope_decode checks that the body's
 * item count agrees with the version byte.  The context keeps a change signature from ever being valid
 * as a signature of any other shoal message made with the same key.  The
 * author key is in the fixed header, so the signature is checked before any
 * MessagePack decoder sees a byte of the body.
 *
 * Ed25519 has no streaming interface (its prehashed variant, Ed25519ph, is a
 * different signature), so the signed message must be contiguous:
 *   - seal writes context | header | body into the output buffer, signs it
 *     in place, then slides header | body down over the context: no
 *     allocation beyond the output itself;
 *   - open copies context | header | body into a stack buffer when it fits
 *     (most changes are small) and into one heap buffer otherwise.
 *
 * Bundle: "SHOALBN1" | count (u32 BE) | count envelopes back to back.
 * Splitting one verifies every signature and rejects the whole bundle at
 * the first bad envelope.
 */
#include "crdt.h"

#include <sodium.h>
#include <string.h>

/* The signature context of each format version (same length). */
static const char *const contexts[] = { NULL, "shoal-change-v1", "shoal-change-v2" };
enum {
    CONTEXT_BYTES = sizeof "shoal-change-v1", /* with its NUL */
    STACK_MSG = 4096
};

static const uint8_t bundle_magic[8] = { 'S', 'H', 'O', 'A', 'L', 'B', 'N', '1' };

int
shoal__envelope_seal(const uint8_t *body, size_t body_len, const uint8_t pk[SHOAL_KEY_BYTES],
                     const uint8_t sk[SHOAL__SK_BYTES], shoal__buf *out)
{
    if (body_len > SHOAL__MAX_BODY)
        return SHOAL_ETOOBIG;
    /* A libsodium secret key is seed | public key: refuse a mismatched pair
     * rather than publish changes nobody can verify. */
    if (memcmp(sk + SHOAL__SK_BYTES - SHOAL_KEY_BYTES, pk, SHOAL_KEY_BYTES) != 0)
        return SHOAL_EINVAL;
    if (sodium_init() < 0)
        return SHOAL_ENOMEM;
    size_t signed_len = SHOAL__ENV_HEADER + body_len;
    int err = shoal__buf_reserve(out, CONTEXT_BYTES + signed_len + SHOAL__SIG_BYTES);
    if (err)
        return err;
    uint8_t *msg = out->p + out->len; /* context | header | body */
    uint8_t *hdr = msg + CONTEXT_BYTES;
    /* The version follows the body: a version-2 body is a 9- or 10-item array. */
    uint8_t version =
        body_len && (body[0] == 0x99 || body[0] == 0x9a) /* 9 or 10 items */ ? SHOAL__FORMAT_V2
                                                                             : SHOAL__FORMAT_V1;
    memcpy(msg, contexts[version], CONTEXT_BYTES);
    hdr[0] = version;
    memcpy(hdr + 1, pk, SHOAL_KEY_BYTES);
    shoal__be32_put(hdr + 33, (uint32_t)body_len);
    if (body_len)
        memcpy(hdr + SHOAL__ENV_HEADER, body, body_len);
    uint8_t sig[SHOAL__SIG_BYTES];
    if (crypto_sign_detached(sig, NULL, msg, CONTEXT_BYTES + signed_len, sk) != 0)
        return SHOAL_EINVAL;
    memmove(msg, hdr, signed_len);
    memcpy(msg + signed_len, sig, SHOAL__SIG_BYTES);
    out->len += signed_len + SHOAL__SIG_BYTES;
    return SHOAL_OK;
}

int
shoal__envelope_parse(const uint8_t *p, size_t n, size_t *env_len, const uint8_t **body,
                      size_t *body_len)
{
    if (n < 1)
        return SHOAL_ETRUNC;
    if (p[0] != SHOAL__FORMAT_V1 && p[0] != SHOAL__FORMAT_V2)
        return SHOAL_EVERSION;
    if (n < SHOAL__ENV_HEADER)
        return SHOAL_ETRUNC;
    uint32_t blen = shoal__be32_get(p + 33);
    if (blen > SHOAL__MAX_BODY)
        return SHOAL_ETOOBIG;
    size_t total = (size_t)SHOAL__ENV_HEADER + blen + SHOAL__SIG_BYTES;
    if (n < total)
        return SHOAL_ETRUNC;
    *env_len = total;
    *body = p + SHOAL__ENV_HEADER;
    *body_len = blen;
    return SHOAL_OK;
}

int
shoal__envelope_decode(const uint8_t *env, size_t n, shoal__change *c)
{
    size_t total, blen;
    const uint8_t *body;
    memset(c, 0, sizeof *c);
    int err = shoal__envelope_parse(env, n, &total, &body, &blen);
    if (err)
        return err;
    memcpy(c->author, env + 1, SHOAL_KEY_BYTES);
    err = shoal__change_decode(body, blen, c);
    if (err)
        return err;
    /* The body's item count says its version: it must be the envelope's. */
    if (c->version != env[0]) {
        shoal__change_clear(c);
        return SHOAL_EPROTO;
    }
    return SHOAL_OK;
}

int
shoal__envelope_open(const uint8_t *p, size_t n, size_t *env_len, const uint8_t **body,
                     size_t *body_len)
{
    size_t total, blen;
    const uint8_t *b;
    int err = shoal__envelope_parse(p, n, &total, &b, &blen);
    if (err)
        return err;
    if (sodium_init() < 0)
        return SHOAL_ENOMEM;
    size_t signed_len = total - SHOAL__SIG_BYTES;
    size_t msg_len = CONTEXT_BYTES + signed_len;
    uint8_t stack[STACK_MSG];
    uint8_t *msg = stack;
    if (msg_len > sizeof stack) {
        msg = shoal__malloc(msg_len);
        if (!msg)
            return SHOAL_ENOMEM;
    }
    memcpy(msg, contexts[p[0]], CONTEXT_BYTES);
    memcpy(msg + CONTEXT_BYTES, p, signed_len);
    int rc = crypto_sign_verify_detached(p + signed_len, msg, msg_len, p + 1);
    if (msg != stack)
        shoal__free(msg);
    if (rc != 0)
        return SHOAL_EBADSIG;
    *env_len = total;
    *body = b;
    *body_len = blen;
    return SHOAL_OK;
}

const uint8_t *
shoal__envelope_author(const uint8_t *env)
{
    return env + 1;
}

void
shoal__change_id(const uint8_t *env, size_t env_len, uint8_t out[SHOAL__ID_BYTES])
{
    size_t signed_len = env_len >= SHOAL__ENV_MIN ? env_len - SHOAL__SIG_BYTES : env_len;
    crypto_generichash(out, SHOAL__ID_BYTES, env, signed_len, NULL, 0);
}

/* ---------------------------------------------------------------- bundles */

int
shoal__bundle_begin(shoal__buf *out)
{
    if (out->len != 0)
        return SHOAL_EINVAL; /* finish patches the count at offset 8 */
    uint8_t hdr[SHOAL__BUNDLE_HEADER];
    memcpy(hdr, bundle_magic, 8);
    shoal__be32_put(hdr + 8, 0);
    return shoal__buf_append(out, hdr, sizeof hdr);
}

int
shoal__bundle_add(shoal__buf *out, const uint8_t *env, size_t env_len)
{
    return shoal__buf_append(out, env, env_len);
}

void
shoal__bundle_finish(shoal__buf *out, uint32_t count)
{
    if (out->len >= SHOAL__BUNDLE_HEADER)
        shoal__be32_put(out->p + 8, count);
}

int
shoal__bundle_add_disc(shoal__buf *out, uint8_t g, const uint8_t *p, size_t n)
{
    if (out->len < SHOAL__BUNDLE_HEADER)
        return SHOAL_EINVAL;
    out->p[7] = '2';
    return shoal__disc_append(out, g, p, n);
}

int
shoal__bundle_header(const uint8_t *p, size_t n, uint32_t *count)
{
    *count = 0;
    /* Magic: judge whatever prefix is present before complaining that the
     * input is short, so a foreign file is EPROTO, not ETRUNC. */
    size_t m = n < 8 ? n : 8;
    if (memcmp(p, bundle_magic, m < 7 ? m : 7) != 0)
        return SHOAL_EPROTO;
    if (m == 8 && p[7] != bundle_magic[7] && p[7] != '2')
        return p[7] >= '0' && p[7] <= '9' ? SHOAL_EVERSION : SHOAL_EPROTO;
    if (n < SHOAL__BUNDLE_HEADER)
        return SHOAL_ETRUNC;
    uint32_t cnt = shoal__be32_get(p + 8);
    if (cnt > SHOAL__MAX_BUNDLE_CHANGES)
        return SHOAL_ETOOBIG;
    if (cnt > (n - SHOAL__BUNDLE_HEADER) / SHOAL__ENV_MIN)
        return SHOAL_ETRUNC;
    *count = cnt;
    return SHOAL_OK;
}

int
shoal__bundle_split(const uint8_t *p, size_t n, shoal__span **envs, size_t *count)
{
    *envs = NULL;
    *count = 0;
    uint32_t cnt;
    int err = shoal__bundle_header(p, n, &cnt);
    if (err)
        return err;
    size_t off = SHOAL__BUNDLE_HEADER;
    shoal__span *s = NULL;
    if (cnt) {
        s = shoal__calloc(cnt, sizeof *s);
        if (!s)
            return SHOAL_ENOMEM;
    }
    for (uint32_t i = 0; i < cnt; i++) {
        size_t len, blen;
        const uint8_t *body;
        err = shoal__envelope_open(p + off, n - off, &len, &body, &blen);
        if (err) {
            shoal__free(s);
            return err;
        }
        s[i].off = off;
        s[i].len = len;
        off += len;
        /* version 2: disclosures after the envelope (not checked here) */
        size_t dl = 0, dc = 0;
        err = shoal__disc_scan(p + off, n - off, &dl, NULL, &dc);
        if (!err && dc && p[7] != '2')
            err = SHOAL_EPROTO;
        if (err) {
            shoal__free(s);
            return err;
        }
        off += dl;
    }
    if (off != n) {
        shoal__free(s);
        return SHOAL_EPROTO;
    }
    *envs = s;
    *count = cnt;
    return SHOAL_OK;
}

/* ------------------------------------------------------------ disclosures */

int
shoal__disc_append(shoal__buf *out, uint8_t g, const uint8_t *p, size_t n)
{
    if (n > SHOAL__MAX_BODY)
        return SHOAL_ETOOBIG;
    uint8_t h[SHOAL__DISC_HEADER];
    h[0] = SHOAL__DISC_MARK;
    h[1] = g;
    shoal__be32_put(h + 2, (uint32_t)n);
    int err = shoal__buf_append(out, h, sizeof h);
    if (!err)
        err = shoal__buf_append(out, p, n);
    return err;
}

int
shoal__disc_scan(const uint8_t *p, size_t n, size_t *len, shoal__disc_view *discs, size_t *count)
{
    size_t off = 0, k = 0;
    bool seen[256] = { false };
    *len = 0;
    *count = 0;
    while (off < n && p[off] == SHOAL__DISC_MARK) {
        if (n - off < SHOAL__DISC_HEADER)
            return SHOAL_ETRUNC;
        uint8_t g = p[off + 1];
        uint32_t gl = shoal__be32_get(p + off + 2);
        if (gl > SHOAL__MAX_BODY || k == SHOAL__MAX_SEALS)
            return SHOAL_ETOOBIG;
        if (seen[g])
            return SHOAL_EPROTO;
        seen[g] = true;
        if (n - off - SHOAL__DISC_HEADER < gl)
            return SHOAL_ETRUNC;
        if (discs) {
            discs[k].g = g;
            discs[k].p = p + off + SHOAL__DISC_HEADER;
            discs[k].n = gl;
        }
        k++;
        off += SHOAL__DISC_HEADER + gl;
    }
    *len = off;
    *count = k;
    return SHOAL_OK;
}

bool
shoal__envelope_sealed(const uint8_t *env, size_t len)
{
    return len > SHOAL__ENV_HEADER && env[SHOAL__ENV_HEADER] == 0x9a; /* array of 10 */
}
