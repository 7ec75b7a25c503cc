/*
 * core/policy.c - a policy as people write it (JSON) compiled to its one
 * canonical encoding (crdt/auth.c), and validated there.
 *
 * The JSON form and every key are in docs/permissions.md.  Unknown keys
 * and wrong types are refused here with the path of the offending key;
 * the rules about what a policy may say (where names only guards, guards
 * are queryable, readers read every queryable field) are checked once, by
 * shoal__policy_decode, on the bytes this produces.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core.h"

typedef struct pctx {
    shoal__mpw w;
    char *err;
    size_t errlen;
    int rc;
} pctx;

static void
bad(pctx *x, const char *fmt, ...)
{
    if (x->rc)
        return;
    x->rc = SHOAL_EINVAL;
    if (x->err && x->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err, x->errlen, fmt, ap);
        va_end(ap);
    }
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of object o, sorted bytewise (owned array of Borrowed keys). */
static const char **
sorted_keys(pctx *x, json_t *o, size_t *n)
{
    *n = json_object_size(o);
    const char **k = shoal__calloc(*n ? *n : 1, sizeof *k);
    if (!k) {
        x->rc = x->rc ? x->rc : SHOAL_ENOMEM;
        return NULL;
    }
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) k[i++] = key;
    qsort(k, *n, sizeof *k, str_cmp);
    return k;
}

/* Refuse any key of o not in allowed (NULL-terminated). */
static void
only_keys(pctx *x, json_t *o, const char *const *allowed, const char *where)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            bad(x, "%s: unknown key \"%s\"", where, key);
            return;
        }
    }
}

/* A JSON array of field names, sorted and without duplicates. */
static void
put_names(pctx *x, json_t *a, const char *where)
{
    if (!json_is_array(a)) {
        bad(x, "%s: expected an array of field names", where);
        return;
    }
    size_t n = json_array_size(a);
    if (n > SHOAL__AUTH_MAX_NAMES) {
        bad(x, "%s: more than %d names", where, SHOAL__AUTH_MAX_NAMES);
        return;
    }
    const char **k = shoal__calloc(n ? n : 1, sizeof *k);
    if (!k) {
        x->rc = x->rc ? x->rc : SHOAL_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n && !x->rc; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e) || json_string_length(e) == 0 ||
            json_string_length(e) > SHOAL_MAX_FIELD)
            bad(x, "%s: item %zu is not a field name (1 to 256 bytes)", where, i);
        else
            k[i] = json_string_value(e);
    }
    if (!x->rc) {
        qsort(k, n, sizeof *k, str_cmp);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (m == 0 || strcmp(k[m - 1], k[i]) != 0)
                k[m++] = k[i];
        shoal__mpw_array(&x->w, (uint32_t)m);
        for (size_t i = 0; i < m; i++)
            shoal__mpw_str(&x->w, k[i], strlen(k[i]));
    }
    shoal__free(k);
}

/* "*" | [names] | {"except": [names]} (except only for read). */
static void
put_fset(pctx *x, json_t *v, bool read, const char *where)
{
    if (!v) {
        shoal__mpw_array(&x->w, 2);
        shoal__mpw_uint(&x->w, SHOAL__FS_ONLY);
        shoal__mpw_array(&x->w, 0);
        return;
    }
    if (json_is_string(v) && strcmp(json_string_value(v), "*") == 0) {
        shoal__mpw_array(&x->w, 1);
        shoal__mpw_uint(&x->w, SHOAL__FS_ALL);
        return;
    }
    if (json_is_array(v)) {
        shoal__mpw_array(&x->w, 2);
        shoal__mpw_uint(&x->w, SHOAL__FS_ONLY);
        put_names(x, v, where);
        return;
    }
    if (read && json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "except")) {
        shoal__mpw_array(&x->w, 2);
        shoal__mpw_uint(&x->w, SHOAL__FS_EXCEPT);
        put_names(x, json_object_get(v, "except"), where);
        return;
    }
    bad(x,
        read ? "%s: expected \"*\", an array of field names or {\"except\": [...]}"
             : "%s: expected \"*\" or an array of field names",
        where);
}

static bool
opt_bool(pctx *x, json_t *o, const char *key, const char *where)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return false;
    if (!json_is_boolean(v)) {
        bad(x, "%s.%s: expected true or false", where, key);
        return false;
    }
    return json_is_true(v);
}

int
shoal__policy_from_json(const char *text, size_t len, uint64_t version, const uint8_t *prev,
                        shoal__buf *out, char *err, size_t errlen)
{
    pctx x;
    memset(&x, 0, sizeof x);
    x.err = err;
    x.errlen = errlen;
    if (err && errlen)
        err[0] = 0;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (err && errlen)
            snprintf(err, errlen, "policy: line %d: %s", je.line, je.text);
        return SHOAL_EINVAL;
    }
    size_t start = out->len;
    shoal__mpw_init(&x.w, out);
    static const char *const top_keys[] = { "lang", "collections", "roles", NULL };
    static const char *const coll_keys[] = { "guard", "queryable", NULL };
    static const char *const rule_keys[] = { "where", "read", "write", "create", "delete", NULL };
    json_t *colls = json_object_get(root, "collections");
    json_t *roles = json_object_get(root, "roles");
    json_t *lang = json_object_get(root, "lang");
    char where[160];
    if (!json_is_object(root))
        bad(&x, "policy: expected a JSON object");
    else
        only_keys(&x, root, top_keys, "policy");
    if (!x.rc && lang && (!json_is_integer(lang) || json_integer_value(lang) != SHOAL__AUTH_LANG))
        bad(&x, "policy.lang: only language version %d is known", SHOAL__AUTH_LANG);
    if (!x.rc && !json_is_object(colls))
        bad(&x, "policy.collections: expected an object");
    if (!x.rc && !json_is_object(roles))
        bad(&x, "policy.roles: expected an object");
    if (x.rc)
        goto done;
    shoal__mpw_array(&x.w, 6);
    shoal__mpw_uint(&x.w, SHOAL__AUTH_POLICY);
    shoal__mpw_uint(&x.w, SHOAL__AUTH_LANG);
    shoal__mpw_uint(&x.w, version);
    if (prev)
        shoal__mpw_bin(&x.w, prev, 32);
    else
        shoal__mpw_nil(&x.w);

    size_t nc = 0;
    const char **ck = sorted_keys(&x, colls, &nc);
    if (!ck)
        goto done;
    if (nc > SHOAL__AUTH_MAX_NAMES)
        bad(&x, "policy.collections: more than %d", SHOAL__AUTH_MAX_NAMES);
    shoal__mpw_array(&x.w, (uint32_t)nc);
    for (size_t i = 0; i < nc && !x.rc; i++) {
        json_t *c = json_object_get(colls, ck[i]);
        snprintf(where, sizeof where, "policy.collections.%.64s", ck[i]);
        if (strlen(ck[i]) == 0 || strlen(ck[i]) > SHOAL_MAX_COLLECTION) {
            bad(&x, "%s: a collection name is 1 to 128 bytes", where);
            break;
        }
        if (!json_is_object(c)) {
            bad(&x, "%s: expected an object", where);
            break;
        }
        only_keys(&x, c, coll_keys, where);
        shoal__mpw_array(&x.w, 3);
        shoal__mpw_str(&x.w, ck[i], strlen(ck[i]));
        char w2[200];
        json_t *g = json_object_get(c, "guard"), *q = json_object_get(c, "queryable");
        json_t *empty = json_array();
        snprintf(w2, sizeof w2, "%s.guard", where);
        put_names(&x, g ? g : empty, w2);
        snprintf(w2, sizeof w2, "%s.queryable", where);
        put_names(&x, q ? q : empty, w2);
        json_decref(empty);
    }
    shoal__free(ck);
    if (x.rc)
        goto done;

    size_t nr = 0;
    const char **rk = sorted_keys(&x, roles, &nr);
    if (!rk)
        goto done;
    if (nr > SHOAL__AUTH_MAX_NAMES)
        bad(&x, "policy.roles: more than %d", SHOAL__AUTH_MAX_NAMES);
    shoal__mpw_array(&x.w, (uint32_t)nr);
    for (size_t i = 0; i < nr && !x.rc; i++) {
        json_t *ro = json_object_get(roles, rk[i]);
        snprintf(where, sizeof where, "policy.roles.%.64s", rk[i]);
        if (strlen(rk[i]) == 0 || strlen(rk[i]) > SHOAL__AUTH_MAX_ROLE) {
            bad(&x, "%s: a role name is 1 to %d bytes", where, SHOAL__AUTH_MAX_ROLE);
            break;
        }
        if (!json_is_object(ro)) {
            bad(&x, "%s: expected an object of collections", where);
            break;
        }
        shoal__mpw_array(&x.w, 2);
        shoal__mpw_str(&x.w, rk[i], strlen(rk[i]));
        size_t nk = 0;
        const char **kk = sorted_keys(&x, ro, &nk);
        if (!kk)
            break;
        shoal__mpw_array(&x.w, (uint32_t)nk);
        for (size_t k = 0; k < nk && !x.rc; k++) {
            json_t *ru = json_object_get(ro, kk[k]);
            char w2[240], w3[260];
            snprintf(w2, sizeof w2, "%s.%.64s", where, kk[k]);
            if (!json_is_object(ru)) {
                bad(&x, "%s: expected an object", w2);
                break;
            }
            only_keys(&x, ru, rule_keys, w2);
            json_t *wh = json_object_get(ru, "where");
            if (!x.rc && !json_is_string(wh))
                bad(&x, "%s.where: required, a predicate (\"TRUE\" for every document)", w2);
            if (x.rc)
                break;
            shoal__mpw_array(&x.w, 6);
            shoal__mpw_str(&x.w, kk[k], strlen(kk[k]));
            shoal__mpw_str(&x.w, json_string_value(wh), json_string_length(wh));
            snprintf(w3, sizeof w3, "%s.read", w2);
            put_fset(&x, json_object_get(ru, "read"), true, w3);
            snprintf(w3, sizeof w3, "%s.write", w2);
            put_fset(&x, json_object_get(ru, "write"), false, w3);
            shoal__mpw_bool(&x.w, opt_bool(&x, ru, "create", w2));
            shoal__mpw_bool(&x.w, opt_bool(&x, ru, "delete", w2));
        }
        shoal__free(kk);
    }
    shoal__free(rk);
    if (!x.rc && x.w.err)
        x.rc = x.w.err;
    if (!x.rc) {
        /* The rules of a policy, checked on the bytes that will be signed. */
        shoal__policy *p = NULL;
        x.rc = shoal__policy_decode(out->p + start, out->len - start, &p, err, errlen);
        shoal__policy_free(p);
    }
done:
    json_decref(root);
    if (x.rc)
        out->len = start;
    return x.rc;
}
