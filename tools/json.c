/*
 * tools/json.c - JSON forms of shoal values, documents and version vectors.
 *
 * JSON has no binary strings and no NaN or infinities, so those travel as
 * one-key objects ({"$bytes": base64}, {"$float": "nan"}); every other
 * object is refused on input, so a reader never confuses a value with a
 * structure.  Integers stay int64 and reals stay doubles (jansson keeps the
 * two apart and keeps the sign of -0.0), so a value read back from `get`
 * output is the value that was written.
 *
 * Base64 is written here rather than taken from libsodium: the tools link
 * only libshoal and jansson.  The decoder is strict (padding required, no
 * whitespace, zero pad bits) so that one text names one byte string.
 *
 * The last section holds what `shoal serve/sync/peers` and `shoal-relay`
 * share: ENDPOINT@PUBKEY and allow-list parsing, the JSON of the per-peer
 * state, and the stderr logger with levels and UTC timestamps.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <signal.h>

#include <sys/types.h>
#include <unistd.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
shoal__hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *
shoal__base64_encode(const uint8_t *in, size_t n)
{
    size_t out_len = (n + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[w >> 18 & 63];
        out[o++] = b64_alphabet[w >> 12 & 63];
        out[o++] = b64_alphabet[w >> 6 & 63];
        out[o++] = b64_alphabet[w & 63];
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[w >> 18 & 63];
        out[o++] = b64_alphabet[w >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[w >> 18 & 63];
        out[o++] = b64_alphabet[w >> 12 & 63];
        out[o++] = b64_alphabet[w >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int
b64_index(char c)
{
    const char *p = c == '\0' ? NULL : strchr(b64_alphabet, c);
    return p == NULL ? -1 : (int)(p - b64_alphabet);
}

int
shoal__base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    if (len > 0 && in[len - 1] == '=')
        pad = (len > 1 && in[len - 2] == '=') ? 2 : 1;
    size_t n = len / 4 * 3 - pad;
    uint8_t *buf = malloc(n > 0 ? n : 1);
    if (buf == NULL)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        for (size_t k = 0; k < 4; k++) {
            if (last && k >= 4 - pad) {
                v[k] = 0;
                continue;
            }
            v[k] = b64_index(in[i + k]);
            if (v[k] < 0) {
                free(buf);
                return -1;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t keep = last ? 3 - pad : 3;
        /* Bits dropped by the padding must be zero: one text, one value. */
        if (keep == 1 && (w & 0xffff) != 0) {
            free(buf);
            return -1;
        }
        if (keep == 2 && (w & 0xff) != 0) {
            free(buf);
            return -1;
        }
        buf[o++] = (uint8_t)(w >> 16);
        if (keep >= 2)
            buf[o++] = (uint8_t)(w >> 8);
        if (keep == 3)
            buf[o++] = (uint8_t)w;
    }
    *out = buf;
    *out_len = o;
    return 0;
}

/* ------------------------------------------------------------- output */

/* A growing output string. */
typedef struct strbuf {
    char *p;
    size_t len, cap;
    bool failed; /* out of memory: p is dropped */
} strbuf;

static void
sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            free(b->p);
            b->p = NULL;
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
sb_str(strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* A JSON string literal: escapes as jansson does (", \\, control bytes),
 * UTF-8 passed through. */
static void
sb_quoted(strbuf *b, const char *s, size_t n)
{
    sb_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof hex, "\\u%04x", c);
                esc = hex;
            }
        }
        if (esc == NULL)
            continue;
        sb_add(b, s + run, i - run);
        sb_str(b, esc);
        run = i + 1;
    }
    sb_add(b, s + run, n - run);
    sb_add(b, "\"", 1);
}

/* The shortest decimal text that reads back as d (finite), in the style of
 * jansson: a '.' or an exponent always present so it stays a real, no '+'
 * and no leading zeros in the exponent.  jansson itself always prints 17
 * digits (0.1 -> 0.10000000000000001), correct but unkind to read. */
static void
format_real(double d, char *out, size_t outlen)
{
    char e17[40];
    snprintf(e17, sizeof e17, "%.16e", d);
    int exp10 = atoi(strchr(e17, 'e') + 1);
    int p = 1;
    for (; p < 17; p++) {
        snprintf(out, outlen, "%.*g", p, d);
        if (strtod(out, NULL) == d)
            break;
    }
    /* Prefer plain notation while %g allows it (100.0 rather than 1e2). */
    if (exp10 >= p && exp10 < 17)
        p = exp10 + 1;
    snprintf(out, outlen, "%.*g", p, d);
    char *e = strchr(out, 'e');
    if (e != NULL) {
        char *w = e + 1, *r = e + 1;
        if (*r == '+')
            r++;
        else if (*r == '-')
            *w++ = *r++;
        while (*r == '0' && r[1] != '\0')
            r++;
        memmove(w, r, strlen(r) + 1);
    } else if (strchr(out, '.') == NULL) {
        strcat(out, ".0");
    }
}

static int
cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
dump(strbuf *b, const json_t *j)
{
    char num[64];
    switch (json_typeof(j)) {
    case JSON_NULL: sb_str(b, "null"); break;
    case JSON_TRUE: sb_str(b, "true"); break;
    case JSON_FALSE: sb_str(b, "false"); break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        sb_str(b, num);
        break;
    case JSON_REAL:
        format_real(json_real_value(j), num, sizeof num);
        sb_str(b, num);
        break;
    case JSON_STRING: sb_quoted(b, json_string_value(j), json_string_length(j)); break;
    case JSON_ARRAY:
        sb_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i > 0)
                sb_add(b, ",", 1);
            dump(b, json_array_get(j, i));
        }
        sb_add(b, "]", 1);
        break;
    case JSON_OBJECT: {
        size_t n = json_object_size(j), k = 0;
        const char **keys = malloc((n > 0 ? n : 1) * sizeof *keys);
        if (keys == NULL) {
            b->failed = true;
            return;
        }
        const char *key;
        json_t *val;
        json_t *obj = (json_t *)(uintptr_t)j; /* foreach does not modify it */
        json_object_foreach(obj, key, val)
        {
            (void)val;
            keys[k++] = key;
        }
        qsort(keys, n, sizeof *keys, cmp_keys);
        sb_add(b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                sb_add(b, ",", 1);
            sb_quoted(b, keys[i], strlen(keys[i]));
            sb_add(b, ":", 1);
            dump(b, json_object_get(j, keys[i]));
        }
        sb_add(b, "}", 1);
        free(keys);
        break;
    }
    }
}

char *
shoal__json_dumps(const json_t *j)
{
    strbuf b = { NULL, 0, 0, false };
    dump(&b, j);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ------------------------------------------------------------- values */

json_t *
shoal__json_from_value(const shoal_value *v)
{
    switch (v->type) {
    case SHOAL_T_NIL: return json_null();
    case SHOAL_T_BOOL: return json_boolean(v->b);
    case SHOAL_T_INT: return json_integer((json_int_t)v->i);
    case SHOAL_T_DOUBLE:
        if (isfinite(v->d))
            return json_real(v->d);
        return json_pack("{s:s}", "$float", isnan(v->d) ? "nan" : (v->d > 0 ? "inf" : "-inf"));
    case SHOAL_T_STR:
        return json_stringn((const char *)(v->len > 0 ? v->ptr : (const uint8_t *)""), v->len);
    case SHOAL_T_BYTES: {
        char *b64 = shoal__base64_encode(v->ptr, v->len);
        if (b64 == NULL)
            return NULL;
        json_t *o = json_pack("{s:s}", "$bytes", b64);
        free(b64);
        return o;
    }
    }
    return NULL;
}

int
shoal__json_to_scalar(const json_t *j, shoal_json_scalar *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    switch (json_typeof(j)) {
    case JSON_NULL: out->value.type = SHOAL_T_NIL; return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        out->value.type = SHOAL_T_BOOL;
        out->value.b = json_is_true(j);
        return 0;
    case JSON_INTEGER:
        out->value.type = SHOAL_T_INT;
        out->value.i = (int64_t)json_integer_value(j);
        return 0;
    case JSON_REAL:
        out->value.type = SHOAL_T_DOUBLE;
        out->value.d = json_real_value(j);
        return 0;
    case JSON_STRING:
        out->value.type = SHOAL_T_STR;
        out->value.ptr = (const uint8_t *)json_string_value(j);
        out->value.len = json_string_length(j);
        return 0;
    case JSON_ARRAY:
        snprintf(err, errlen, "nested arrays are not supported (values are scalars)");
        return -1;
    case JSON_OBJECT: break;
    }
    /* One-key objects {"$bytes": ...} and {"$float": ...}; nothing else. */
    json_t *s = NULL;
    if (json_object_size(j) == 1 && (s = json_object_get(j, "$bytes")) != NULL) {
        if (!json_is_string(s)) {
            snprintf(err, errlen, "$bytes needs a base64 string");
            return -1;
        }
        uint8_t *buf;
        size_t n;
        if (shoal__base64_decode(json_string_value(s), json_string_length(s), &buf, &n) != 0) {
            snprintf(err, errlen, "$bytes is not valid padded base64");
            return -1;
        }
        out->buf = buf;
        out->value.type = SHOAL_T_BYTES;
        out->value.ptr = buf;
        out->value.len = n;
        return 0;
    }
    if (json_object_size(j) == 1 && (s = json_object_get(j, "$float")) != NULL) {
        const char *t = json_string_value(s);
        out->value.type = SHOAL_T_DOUBLE;
        if (t != NULL && strcmp(t, "nan") == 0)
            out->value.d = NAN;
        else if (t != NULL && strcmp(t, "inf") == 0)
            out->value.d = INFINITY;
        else if (t != NULL && strcmp(t, "-inf") == 0)
            out->value.d = -INFINITY;
        else {
            snprintf(err, errlen, "$float must be \"nan\", \"inf\" or \"-inf\"");
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen,
             "nested objects are not supported (values are scalars; binary is "
             "{\"$bytes\": base64}, non-finite floats {\"$float\": \"nan\"})");
    return -1;
}

static const char *
kind_name(shoal_kind k)
{
    switch (k) {
    case SHOAL_K_REGISTER: return "register";
    case SHOAL_K_COUNTER: return "counter";
    case SHOAL_K_LIST: return "list";
    }
    return "unknown";
}

/* The JSON of field i of d; NULL with err set on failure. */
static json_t *
field_json(const shoal_doc *d, size_t i, char *err, size_t errlen)
{
    shoal_kind kind = shoal_doc_field_kind(d, i);
    shoal_err e = SHOAL_OK;
    json_t *j = NULL;
    if (kind == SHOAL_K_REGISTER) {
        shoal_value v;
        e = shoal_doc_field_value(d, i, &v);
        if (e == SHOAL_OK)
            j = shoal__json_from_value(&v);
    } else if (kind == SHOAL_K_COUNTER) {
        int64_t n;
        e = shoal_doc_field_counter(d, i, &n);
        if (e == SHOAL_OK)
            j = json_integer((json_int_t)n);
    } else if (kind == SHOAL_K_LIST) {
        size_t len;
        e = shoal_doc_field_list_len(d, i, &len);
        if (e == SHOAL_OK)
            j = json_array();
        for (size_t k = 0; j != NULL && k < len; k++) {
            shoal_value v;
            e = shoal_doc_field_list_item(d, i, k, &v);
            json_t *item = e == SHOAL_OK ? shoal__json_from_value(&v) : NULL;
            if (item == NULL || json_array_append_new(j, item) != 0) {
                json_decref(j);
                j = NULL;
            }
        }
    } else {
        snprintf(err, errlen, "field %s has an unknown kind %d", shoal_doc_field_name(d, i),
                 (int)kind);
        return NULL;
    }
    if (e != SHOAL_OK) {
        snprintf(err, errlen, "reading %s field %s: %s", kind_name(kind),
                 shoal_doc_field_name(d, i), shoal_strerror(e));
        return NULL;
    }
    if (j == NULL)
        snprintf(err, errlen,
                 "field %s: value cannot be shown as JSON (out of memory "
                 "or invalid UTF-8)",
                 shoal_doc_field_name(d, i));
    return j;
}

json_t *
shoal__json_from_doc(const shoal_doc *d, char *err, size_t errlen)
{
    json_t *o = json_object();
    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = shoal_doc_field_count(d);
    for (size_t i = 0; i < n; i++) {
        json_t *f = field_json(d, i, err, errlen);
        if (f == NULL || json_object_set_new(o, shoal_doc_field_name(d, i), f) != 0) {
            if (f != NULL)
                snprintf(err, errlen, "field %s cannot be a JSON key", shoal_doc_field_name(d, i));
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *
shoal__json_from_vv(const shoal_vv *vv)
{
    json_t *o = json_object();
    size_t n = shoal_vv_count(vv);
    for (size_t i = 0; o != NULL && i < n; i++) {
        const uint8_t *author;
        uint64_t seq;
        char hex[2 * SHOAL_KEY_BYTES + 1];
        if (shoal_vv_entry(vv, i, &author, &seq) != SHOAL_OK || seq > INT64_MAX) {
            json_decref(o);
            return NULL;
        }
        shoal__hex_encode(author, SHOAL_KEY_BYTES, hex);
        if (json_object_set_new(o, hex, json_integer((json_int_t)seq)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

int
shoal__json_to_vv(const json_t *j, shoal_vv *vv, char *err, size_t errlen)
{
    if (!json_is_object(j)) {
        snprintf(err, errlen, "a version vector is a JSON object {author_hex: seq}");
        return -1;
    }
    const char *key;
    json_t *val;
    /* json_object_foreach takes a non-const object; it does not modify it. */
    json_t *obj = (json_t *)(uintptr_t)j;
    json_object_foreach(obj, key, val)
    {
        uint8_t author[SHOAL_KEY_BYTES];
        if (strlen(key) != 2 * SHOAL_KEY_BYTES) {
            snprintf(err, errlen, "version vector key is not %d hex digits", 2 * SHOAL_KEY_BYTES);
            return -1;
        }
        for (size_t i = 0; i < SHOAL_KEY_BYTES; i++) {
            int hi = hex_nibble(key[2 * i]), lo = hex_nibble(key[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen, "version vector key is not hex");
                return -1;
            }
            author[i] = (uint8_t)(hi << 4 | lo);
        }
        if (!json_is_integer(val) || json_integer_value(val) < 0) {
            snprintf(err, errlen, "version vector seq must be a non-negative integer");
            return -1;
        }
        shoal_err e = shoal_vv_set(vv, author, (uint64_t)json_integer_value(val));
        if (e != SHOAL_OK) {
            snprintf(err, errlen, "version vector: %s", shoal_strerror(e));
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------ network tool helpers */

int
shoal__hex_decode(const char *text, size_t textlen, uint8_t *out, size_t n)
{
    if (textlen != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(text[2 * i]), lo = hex_nibble(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int
shoal__parse_peer(const char *spec, char *endpoint, size_t cap, uint8_t key[SHOAL_KEY_BYTES],
                  char *err, size_t errlen)
{
    const char *at = strrchr(spec, '@');
    if (at == NULL || at == spec) {
        snprintf(err, errlen, "peer '%.200s' is not ENDPOINT@PUBKEY", spec);
        return -1;
    }
    size_t elen = (size_t)(at - spec);
    if (elen >= cap) {
        snprintf(err, errlen, "peer endpoint is longer than %zu bytes", cap - 1);
        return -1;
    }
    if (shoal__hex_decode(at + 1, strlen(at + 1), key, SHOAL_KEY_BYTES) != 0) {
        snprintf(err, errlen, "peer '%.200s': the key after '@' is not %d hex digits", spec,
                 2 * SHOAL_KEY_BYTES);
        return -1;
    }
    memcpy(endpoint, spec, elen);
    endpoint[elen] = '\0';
    return 0;
}

int
shoal__read_allow_file(const char *path, uint8_t **keys, size_t *n, char *err, size_t errlen)
{
    *keys = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "allow-list %.200s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t *out = NULL;
    size_t count = 0, cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    unsigned long lineno = 0;
    int rc = 0;
    ssize_t got;
    while ((got = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        char *p = line;
        while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' ' ||
                           p[len - 1] == '\t'))
            len--;
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        if (len == 0 || *p == '#')
            continue;
        if (count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            uint8_t *nk = realloc(out, ncap * SHOAL_KEY_BYTES);
            if (nk == NULL) {
                snprintf(err, errlen, "allow-list %.200s: out of memory", path);
                rc = -1;
                break;
            }
            out = nk;
            cap = ncap;
        }
        if (shoal__hex_decode(p, len, out + count * SHOAL_KEY_BYTES, SHOAL_KEY_BYTES) != 0) {
            snprintf(err, errlen, "allow-list %.200s line %lu: not a public key (%d hex digits)",
                     path, lineno, 2 * SHOAL_KEY_BYTES);
            rc = -1;
            break;
        }
        count++;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "allow-list %.200s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *keys = out;
    *n = count;
    return 0;
}

/* j[name] = v (a uint64, clamped to the JSON integer range). */
static int
set_u64(json_t *o, const char *name, uint64_t v)
{
    json_int_t i = v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
    return json_object_set_new(o, name, json_integer(i));
}

json_t *
shoal__json_from_peers(const shoal_peers *p)
{
    static const struct {
        const char *name;
        shoal_peer_stat stat;
    } stats[] = {
        { "last_seen_ms", SHOAL_PS_LAST_SEEN_MS }, { "sent", SHOAL_PS_SENT },
        { "received", SHOAL_PS_RECEIVED },         { "lag", SHOAL_PS_LAG },
        { "rejected", SHOAL_PS_REJECTED },         { "connects", SHOAL_PS_CONNECTS },
        { "refused", SHOAL_PS_REFUSED },           { "equivocations", SHOAL_PS_EQUIVOCATIONS },
    };
    json_t *a = json_array();
    size_t n = shoal_peers_count(p);
    for (size_t i = 0; a != NULL && i < n; i++) {
        char hex[2 * SHOAL_KEY_BYTES + 1];
        shoal__hex_encode(shoal_peers_key(p, i), SHOAL_KEY_BYTES, hex);
        json_t *o = json_object();
        int bad = o == NULL;
        bad = bad || json_object_set_new(o, "key", json_string(hex)) != 0;
        bad =
            bad || json_object_set_new(o, "endpoint", json_string(shoal_peers_endpoint(p, i))) != 0;
        bad = bad || json_object_set_new(
                         o, "connected",
                         json_boolean(shoal_peers_stat(p, i, SHOAL_PS_CONNECTED) != 0)) != 0;
        for (size_t k = 0; !bad && k < sizeof stats / sizeof stats[0]; k++)
            bad = set_u64(o, stats[k].name, shoal_peers_stat(p, i, stats[k].stat)) != 0;
        /* last_error is library text; keep it valid JSON even if it is not UTF-8. */
        const char *le = shoal_peers_last_error(p, i);
        json_t *js = json_string(le);
        if (js == NULL)
            js = json_string("(not UTF-8)");
        bad = bad || json_object_set_new(o, "last_error", js) != 0;
        if (bad || json_array_append_new(a, o) != 0) {
            if (bad)
                json_decref(o);
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

int
shoal__log_level_parse(const char *name)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return SHOAL_LOG_ERROR + i;
    if (strcmp(name, "warning") == 0)
        return SHOAL_LOG_WARN;
    return -1;
}

void
shoal__tool_log(void *ctx, int level, const char *msg)
{
    static const char *const names[] = { "?", "ERROR", "WARN", "INFO", "DEBUG" };
    const shoal_tool_log *lg = ctx;
    if (level > lg->max_level)
        return;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    int n =
        snprintf(line, sizeof line - 1, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000L, lg->prog, names[level >= 1 && level <= 4 ? level : 0], msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void
shoal__tool_logf(shoal_tool_log *lg, int level, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    shoal__tool_log(lg, level, msg);
}

void
shoal__endpoint_tidy(char *ep)
{
    static const char prefix[] = "tcp://[::ffff:";
    size_t plen = sizeof prefix - 1;
    if (strncmp(ep, prefix, plen) != 0)
        return;
    char *close = strchr(ep + plen, ']');
    if (close == NULL || close[1] != ':')
        return;
    for (const char *p = ep + plen; p < close; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return; /* not a dotted IPv4 address */
    /* "tcp://" + address + ":port": shift left over "[::ffff:" and "]". */
    size_t alen = (size_t)(close - (ep + plen));
    memmove(ep + 6, ep + plen, alen);
    memmove(ep + 6 + alen, close + 1, strlen(close + 1) + 1);
}

/* ------------------------------------------------------ allow reload */

static bool
key_in(const uint8_t *keys, size_t n, const uint8_t *k)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(keys + i * SHOAL_KEY_BYTES, k, SHOAL_KEY_BYTES) == 0)
            return true;
    return false;
}

int
shoal__allow_reload(shoal_replica *r, const char *path, uint8_t **keys, size_t *n,
                    shoal_tool_log *lg)
{
    uint8_t *nk = NULL;
    size_t nn = 0;
    char err[SHOAL_JSON_ERRLEN + 256];
    if (shoal__read_allow_file(path, &nk, &nn, err, sizeof err) != 0) {
        shoal__tool_logf(lg, SHOAL_LOG_ERROR, "allow-list not reloaded, nothing changed: %s", err);
        return -1;
    }
    size_t added = 0, removed = 0, failed = 0;
    char hex[2 * SHOAL_KEY_BYTES + 1];
    for (size_t i = 0; i < nn; i++) {
        const uint8_t *k = nk + i * SHOAL_KEY_BYTES;
        if (key_in(*keys, *n, k))
            continue;
        shoal__hex_encode(k, SHOAL_KEY_BYTES, hex);
        shoal_err e = shoal_net_allow(r, k);
        if (e != SHOAL_OK) {
            shoal__tool_logf(lg, SHOAL_LOG_ERROR, "allow %s: %s", hex, shoal_strerror(e));
            failed++;
        } else {
            shoal__tool_logf(lg, SHOAL_LOG_INFO, "allowed %s", hex);
            added++;
        }
    }
    for (size_t i = 0; i < *n; i++) {
        const uint8_t *k = *keys + i * SHOAL_KEY_BYTES;
        if (key_in(nk, nn, k))
            continue;
        shoal__hex_encode(k, SHOAL_KEY_BYTES, hex);
        shoal_err e = shoal_net_disallow(r, k);
        if (e != SHOAL_OK) {
            shoal__tool_logf(lg, SHOAL_LOG_ERROR, "disallow %s: %s", hex, shoal_strerror(e));
            failed++;
        } else {
            shoal__tool_logf(lg, SHOAL_LOG_WARN, "disallowed %s", hex);
            removed++;
        }
    }
    free(*keys);
    *keys = nk;
    *n = nn;
    shoal__tool_logf(lg, failed ? SHOAL_LOG_ERROR : SHOAL_LOG_INFO,
                     "allow-list %s reloaded: %zu key(s), %zu added, %zu removed%s", path, nn,
                     added, removed, failed ? ", some changes failed (see above)" : "");
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------ signals */

static int sig_pipe[2] = { -1, -1 };

static void
on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    ssize_t w = write(sig_pipe[1], &c, 1);
    (void)w; /* a full pipe already holds a wake-up */
    errno = saved;
}

int
shoal__signals_install(void)
{
    if (pipe(sig_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(sig_pipe[i], F_GETFL);
        if (fl < 0 || fcntl(sig_pipe[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC) != 0)
            return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int
shoal__signal_fd(void)
{
    return sig_pipe[0];
}
