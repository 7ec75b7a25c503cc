/*
 * tools/json.c - JSON forms of shoal values, documents, version vectors and
 * the per-peer state.
 *
 * JSON has no binary strings and no NaN or infinities, so those travel as
 * one-key objects ({"$bytes": base64}, {"$float": "nan"}); every other
 * object is refused on input, so a reader never confuses a value with a
 * structure.  Integers stay int64 and reals stay doubles (jansson keeps the
 * two apart and keeps the sign of -0.0), so a value read back from `get`
 * output is the value that was written.  Hex and base64 come from
 * encode.c (libsodium).
 */
#include "json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"

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
    case SHOAL_T_REDACTED: return json_pack("{s:b}", "$redacted", 1);
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
        if (e == SHOAL_EPERM) { /* sealed increments: REDACTED */
            e = SHOAL_OK;
            j = json_pack("{s:b}", "$redacted", 1);
        }
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
        if (shoal__hex_decode(key, strlen(key), author, SHOAL_KEY_BYTES) != 0) {
            snprintf(err, errlen, "version vector key is not hex");
            return -1;
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
        { "last_seen_ms", SHOAL_PS_LAST_SEEN_MS },
        { "sent", SHOAL_PS_SENT },
        { "received", SHOAL_PS_RECEIVED },
        { "lag", SHOAL_PS_LAG },
        { "rejected", SHOAL_PS_REJECTED },
        { "connects", SHOAL_PS_CONNECTS },
        { "refused", SHOAL_PS_REFUSED },
        { "equivocations", SHOAL_PS_EQUIVOCATIONS },
        { "view_docs", SHOAL_PS_VIEW_DOCS },
        { "sent_bytes", SHOAL_PS_SENT_BYTES },
        { "received_bytes", SHOAL_PS_RECEIVED_BYTES },
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
        json_t *sj = json_string(shoal_peers_subscriptions(p, i));
        if (sj == NULL)
            sj = json_string("(not UTF-8)");
        bad = bad || json_object_set_new(o, "subscriptions", sj) != 0;
        if (bad || json_array_append_new(a, o) != 0) {
            if (bad)
                json_decref(o);
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
