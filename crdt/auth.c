/*
 * crdt/auth.c - the authority objects of `_auth` (policy, certificate,
 * admin grant, revocation) and their canonical MessagePack encodings.
 *
 * Every object is one array whose first item is its kind.  Decoding is
 * strict, as for change bodies: bounded counts and lengths, canonical
 * forms, names sorted strictly ascending, no trailing bytes; a decoded
 * object has one encoding, so its content hash (the change id of the
 * `_auth` change that carries it) names exactly one meaning.  A policy is
 * also validated as a whole (docs/permissions.md, "Policy"): the rules a
 * person could get wrong are refused with a message naming the place.
 *
 * The write check that uses these objects is in crdt/authz.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt.h"
#include "hex.h"

/* ------------------------------------------------------------- messages */

static int
say(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A name for a message: at most 64 bytes of it, quoted by the format. */
#define NM(x) (int)((x).n > 64 ? 64 : (x).n), (const char *)(x).p

/* ---------------------------------------------------------------- names */

static int
name_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : an < bn ? -1 : an > bn;
}

static bool
name_eq(shoal__name a, const char *s)
{
    size_t n = strlen(s);
    return a.n == n && memcmp(a.p, s, n) == 0;
}

/* A name: str of 1..max bytes, UTF-8 (checked by the reader), no NUL. */
static shoal__name
read_name(shoal__mpr *r, size_t max)
{
    shoal__name nm = { NULL, 0 };
    nm.n = shoal__mpr_str(r, &nm.p, max);
    if (!r->err && (nm.n == 0 || memchr(nm.p, 0, nm.n)))
        r->err = SHOAL_EPROTO;
    return nm;
}

/* An array of names sorted strictly ascending into *out (owned). */
static uint32_t
read_names(shoal__mpr *r, size_t max, shoal__name **out)
{
    *out = NULL;
    uint32_t n = shoal__mpr_array(r, SHOAL__AUTH_MAX_NAMES, 2);
    if (r->err || n == 0)
        return 0;
    shoal__name *v = shoal__calloc(n, sizeof *v);
    if (!v) {
        r->err = SHOAL_ENOMEM;
        return 0;
    }
    for (uint32_t i = 0; i < n && !r->err; i++) {
        v[i] = read_name(r, max);
        if (!r->err && i && name_cmp(v[i - 1].p, v[i - 1].n, v[i].p, v[i].n) >= 0)
            r->err = SHOAL_EPROTO;
    }
    *out = v;
    return r->err ? 0 : n;
}

static const shoal__name *
find_name(const shoal__name *v, uint32_t n, const uint8_t *p, size_t len)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(v[mid].p, v[mid].n, p, len);
        if (c == 0)
            return &v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void
write_names(shoal__mpw *w, const shoal__name *v, uint32_t n)
{
    shoal__mpw_array(w, n);
    for (uint32_t i = 0; i < n; i++)
        shoal__mpw_str(w, v[i].p, v[i].n);
}

/* bin32 or nil. */
static bool
read_opt_key(shoal__mpr *r, uint8_t out[32])
{
    if (shoal__mpr_is_nil(r)) {
        shoal__mpr_nil(r);
        memset(out, 0, 32);
        return false;
    }
    const uint8_t *p = NULL;
    size_t n = shoal__mpr_bin(r, &p, 32);
    if (!r->err && n != 32)
        r->err = SHOAL_EPROTO;
    if (!r->err)
        memcpy(out, p, 32);
    return !r->err;
}

static void
read_key(shoal__mpr *r, uint8_t out[32])
{
    if (!read_opt_key(r, out) && !r->err)
        r->err = SHOAL_EPROTO;
}

static void
write_opt_key(shoal__mpw *w, bool has, const uint8_t k[32])
{
    if (has)
        shoal__mpw_bin(w, k, 32);
    else
        shoal__mpw_nil(w);
}

/* The header of an object: array of exactly n items, kind k. */
static void
read_header(shoal__mpr *r, uint32_t n, uint64_t kind)
{
    uint32_t got = shoal__mpr_array(r, 16, 1);
    if (!r->err && got != n)
        r->err = SHOAL_EPROTO;
    if (!r->err && shoal__mpr_uint(r) != kind && !r->err)
        r->err = SHOAL_EPROTO;
}

int
shoal__auth_kind(const uint8_t *p, size_t n)
{
    shoal__mpr r;
    shoal__mpr_init(&r, p, n);
    uint32_t items = shoal__mpr_array(&r, 16, 1);
    uint64_t k = shoal__mpr_uint(&r);
    if (r.err || items < 1 || k < SHOAL__AUTH_POLICY || k > SHOAL__AUTH_KIND_MAX)
        return 0;
    return (int)k;
}

int
shoal__policy_version(const uint8_t *p, size_t n, uint64_t *version)
{
    shoal__mpr r;
    shoal__mpr_init(&r, p, n);
    read_header(&r, 6, SHOAL__AUTH_POLICY);
    (void)shoal__mpr_uint(&r); /* lang */
    *version = shoal__mpr_uint(&r);
    return r.err;
}

/* --------------------------------------------------------------- fsets */

bool
shoal__fset_has(const shoal__fset *s, const uint8_t *name, size_t n)
{
    bool in = find_name(s->names, s->n, name, n) != NULL;
    switch (s->mode) {
    case SHOAL__FS_ALL: return true;
    case SHOAL__FS_ONLY: return in;
    default: return !in;
    }
}

/* [0] all | [1, names] only | [2, names] except (except only if allowed). */
static void
read_fset(shoal__mpr *r, shoal__fset *s, bool except_ok)
{
    memset(s, 0, sizeof *s);
    uint32_t n = shoal__mpr_array(r, 2, 1);
    uint64_t mode = shoal__mpr_uint(r);
    if (r->err)
        return;
    if (mode == SHOAL__FS_ALL && n == 1) {
        s->mode = SHOAL__FS_ALL;
        return;
    }
    if (n != 2 || (mode != SHOAL__FS_ONLY && !(except_ok && mode == SHOAL__FS_EXCEPT))) {
        r->err = SHOAL_EPROTO;
        return;
    }
    s->mode = (uint8_t)mode;
    s->n = read_names(r, SHOAL_MAX_FIELD, &s->names);
}

static void
fset_clear(shoal__fset *s)
{
    shoal__free(s->names);
    memset(s, 0, sizeof *s);
}

/* --------------------------------------------------------------- policy */

void
shoal__policy_free(shoal__policy *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; p->colls && i < p->ncolls; i++) {
        fset_clear(&p->colls[i].guard);
        fset_clear(&p->colls[i].queryable);
        shoal__free(p->colls[i].rf);
        shoal__free(p->colls[i].rf_class);
        shoal__free(p->colls[i].class_readers);
    }
    for (uint32_t i = 0; p->roles && i < p->nroles; i++) {
        shoal__prole *ro = &p->roles[i];
        for (uint32_t k = 0; ro->rules && k < ro->nrules; k++) {
            shoal__query_free(ro->rules[k].where);
            fset_clear(&ro->rules[k].read);
            fset_clear(&ro->rules[k].write);
        }
        shoal__free(ro->rules);
    }
    shoal__free(p->colls);
    shoal__free(p->roles);
    shoal__free(p->bytes);
    shoal__free(p);
}

const shoal__pcoll *
shoal__policy_coll(const shoal__policy *p, const uint8_t *name, size_t n)
{
    uint32_t lo = 0, hi = p->ncolls;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(p->colls[mid].name.p, p->colls[mid].name.n, name, n);
        if (c == 0)
            return &p->colls[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const shoal__prole *
shoal__policy_role(const shoal__policy *p, const uint8_t *name, size_t n)
{
    uint32_t lo = 0, hi = p->nroles;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(p->roles[mid].name.p, p->roles[mid].name.n, name, n);
        if (c == 0)
            return &p->roles[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const shoal__prule *
shoal__prole_rule(const shoal__prole *ro, const uint8_t *coll, size_t n)
{
    uint32_t lo = 0, hi = ro->nrules;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(ro->rules[mid].coll.p, ro->rules[mid].coll.n, coll, n);
        if (c == 0)
            return &ro->rules[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool
shoal__prule_reads(const shoal__prule *ru)
{
    return ru->read.mode != SHOAL__FS_ONLY || ru->read.n > 0;
}

/* Context of the field walk over a rule's where. */
typedef struct where_ctx {
    const shoal__pcoll *coll;
    shoal__name bad;
} where_ctx;

static int
where_field(const uint8_t *name, size_t len, bool is_id, void *arg)
{
    where_ctx *x = arg;
    if (is_id || find_name(x->coll->guard.names, x->coll->guard.n, name, len))
        return 0;
    x->bad.p = name;
    x->bad.n = len;
    return 1;
}

/* Validate the rule ru of role ro (semantics only; the bytes decoded). */
static int
check_rule(const shoal__policy *p, const shoal__prole *ro, shoal__prule *ru, char *err,
           size_t errlen)
{
    const shoal__pcoll *co = shoal__policy_coll(p, ru->coll.p, ru->coll.n);
    if (!co)
        return say(err, errlen, SHOAL_EINVAL, "role \"%.*s\": collection \"%.*s\" is not declared",
                   NM(ro->name), NM(ru->coll));
    char qerr[160];
    int rc = shoal__query_parse_policy((const char *)ru->where_text.p, ru->where_text.n, &ru->where,
                                       qerr, sizeof qerr);
    if (rc)
        return say(err, errlen, rc == SHOAL_ENOMEM ? rc : SHOAL_EINVAL,
                   "role \"%.*s\", collection \"%.*s\": where: %s", NM(ro->name), NM(ru->coll),
                   qerr);
    where_ctx x = { co, { NULL, 0 } };
    if (shoal__query_fields(ru->where, where_field, &x))
        return say(err, errlen, SHOAL_EINVAL,
                   "role \"%.*s\", collection \"%.*s\": where names \"%.*s\", which is not a "
                   "guard field",
                   NM(ro->name), NM(ru->coll), NM(x.bad));
    size_t np = shoal__query_nparams(ru->where);
    if (np > SHOAL__AUTH_MAX_USER_REFS)
        return say(err, errlen, SHOAL_ETOOBIG,
                   "role \"%.*s\", collection \"%.*s\": where names more than %d $user attributes",
                   NM(ro->name), NM(ru->coll), SHOAL__AUTH_MAX_USER_REFS);
    /* Guard and queryable fields are readable by every role that reads
     * the collection (they decide views and travel in clear). */
    if (shoal__prule_reads(ru)) {
        for (uint32_t i = 0; i < co->queryable.n; i++) {
            const shoal__name *f = &co->queryable.names[i];
            if (!shoal__fset_has(&ru->read, f->p, f->n))
                return say(err, errlen, SHOAL_EINVAL,
                           "role \"%.*s\" reads \"%.*s\" but not its queryable field \"%.*s\" "
                           "(guard and queryable fields are readable by every reader)",
                           NM(ro->name), NM(ru->coll), NM(*f));
        }
    }
    return SHOAL_OK;
}

/* ---------------------------------------------------------- read classes */

/* The set of roles (bits over role indexes) that read field f of
 * collection co; f NULL: a field no rule names. */
static void
readers_of(const shoal__policy *p, const shoal__pcoll *co, const shoal__name *f, uint64_t *set)
{
    memset(set, 0, p->rwords * sizeof *set);
    for (uint32_t i = 0; i < p->nroles; i++) {
        const shoal__prule *ru = shoal__prole_rule(&p->roles[i], co->name.p, co->name.n);
        if (!ru || !shoal__prule_reads(ru))
            continue;
        /* a field no rule names: read by ALL and EXCEPT rules */
        bool reads = f ? shoal__fset_has(&ru->read, f->p, f->n) : ru->read.mode != SHOAL__FS_ONLY;
        if (reads)
            set[i / 64] |= 1ull << (i % 64);
    }
}

static int
name_sort_cmp(const void *a, const void *b)
{
    const shoal__name *x = a, *y = b;
    return name_cmp(x->p, x->n, y->p, y->n);
}

/* The class of reader set set among the classes found so far (adding it
 * if new); 0 when set is every reader (the field is in clear). */
static int
class_of_set(const shoal__policy *p, shoal__pcoll *co, const uint64_t *set, const uint64_t *all,
             uint64_t *sets, uint32_t *nsets)
{
    size_t bytes = p->rwords * sizeof *set;
    if (memcmp(set, all, bytes) == 0)
        return 0;
    for (uint32_t k = 0; k < *nsets; k++)
        if (memcmp(sets + (size_t)k * p->rwords, set, bytes) == 0)
            return (int)k + 1;
    if (*nsets == SHOAL__MAX_SEALS)
        return -1;
    memcpy(sets + (size_t)*nsets * p->rwords, set, bytes);
    return (int)++*nsets;
}

/* Compare reader sets as bit strings, role 0 first. */
static int
set_cmp(const uint64_t *a, const uint64_t *b, uint32_t words)
{
    for (uint32_t i = 0; i < words * 64; i++) {
        bool x = a[i / 64] >> (i % 64) & 1, y = b[i / 64] >> (i % 64) & 1;
        if (x != y)
            return x ? -1 : 1;
    }
    return 0;
}

static int
read_classes(shoal__policy *p, shoal__pcoll *co, char *err, size_t errlen)
{
    int rc = SHOAL_ENOMEM;
    uint32_t total = 0;
    for (uint32_t i = 0; i < p->nroles; i++) {
        const shoal__prule *ru = shoal__prole_rule(&p->roles[i], co->name.p, co->name.n);
        if (ru && ru->read.mode != SHOAL__FS_ALL)
            total += ru->read.n;
    }
    uint64_t *all = shoal__calloc((size_t)p->rwords * (SHOAL__MAX_SEALS + 2), sizeof *all);
    uint64_t *set = all + p->rwords, *sets = set + p->rwords;
    co->rf = shoal__calloc(total ? total : 1, sizeof *co->rf);
    co->rf_class = shoal__calloc(total ? total : 1, 1);
    uint8_t *order = shoal__calloc(SHOAL__MAX_SEALS + 1, 1);
    if (!all || !co->rf || !co->rf_class || !order)
        goto done;
    for (uint32_t i = 0; i < p->nroles; i++) {
        const shoal__prule *ru = shoal__prole_rule(&p->roles[i], co->name.p, co->name.n);
        if (ru && shoal__prule_reads(ru))
            all[i / 64] |= 1ull << (i % 64);
        if (ru && ru->read.mode != SHOAL__FS_ALL)
            for (uint32_t k = 0; k < ru->read.n; k++)
                co->rf[co->nrf++] = ru->read.names[k];
    }
    qsort(co->rf, co->nrf, sizeof *co->rf, name_sort_cmp);
    uint32_t u = 0;
    for (uint32_t i = 0; i < co->nrf; i++)
        if (u == 0 || name_cmp(co->rf[u - 1].p, co->rf[u - 1].n, co->rf[i].p, co->rf[i].n))
            co->rf[u++] = co->rf[i];
    co->nrf = u;
    /* classes in order of first use, renumbered by reader set below */
    uint32_t nsets = 0;
    for (uint32_t i = 0; i <= co->nrf; i++) {
        readers_of(p, co, i < co->nrf ? &co->rf[i] : NULL, set);
        int k = class_of_set(p, co, set, all, sets, &nsets);
        if (k < 0) {
            rc = say(err, errlen, SHOAL_EINVAL,
                     "collection \"%.*s\": more than %d read classes (sets of fields some "
                     "readers may not read)",
                     NM(co->name), SHOAL__MAX_SEALS);
            goto done;
        }
        if (i < co->nrf)
            co->rf_class[i] = (uint8_t)k;
        else
            co->other_class = (uint8_t)k;
    }
    /* number the classes by reader set: order[old] = new */
    for (uint32_t k = 0; k < nsets; k++) {
        uint32_t rank = 1;
        for (uint32_t m = 0; m < nsets; m++)
            rank +=
                set_cmp(sets + (size_t)m * p->rwords, sets + (size_t)k * p->rwords, p->rwords) < 0;
        order[k + 1] = (uint8_t)rank;
    }
    for (uint32_t i = 0; i < co->nrf; i++)
        co->rf_class[i] = order[co->rf_class[i]];
    co->other_class = order[co->other_class];
    co->nclasses = nsets;
    if (nsets) {
        co->class_readers = shoal__calloc((size_t)nsets * p->rwords, sizeof *co->class_readers);
        if (!co->class_readers)
            goto done;
        for (uint32_t k = 0; k < nsets; k++)
            memcpy(co->class_readers + (size_t)(order[k + 1] - 1) * p->rwords,
                   sets + (size_t)k * p->rwords, p->rwords * sizeof *sets);
    }
    rc = SHOAL_OK;
done:
    shoal__free(order);
    shoal__free(all);
    return rc;
}

uint8_t
shoal__pcoll_class(const uint8_t *field, size_t len, void *arg)
{
    const shoal__pcoll *co = arg;
    if (!co)
        return 0;
    const shoal__name *f = find_name(co->rf, co->nrf, field, len);
    return f ? co->rf_class[f - co->rf] : co->other_class;
}

bool
shoal__pcoll_class_reader(const shoal__policy *p, const shoal__pcoll *co, uint8_t cls,
                          const shoal__prole *ro)
{
    if (cls == 0)
        return true;
    if (cls > co->nclasses)
        return false;
    size_t i = (size_t)(ro - p->roles);
    return co->class_readers[(size_t)(cls - 1) * p->rwords + i / 64] >> (i % 64) & 1;
}

static int
policy_fail(shoal__mpr *r, char *err, size_t errlen, const char *where)
{
    const char *what = r->err == SHOAL_ETOOBIG  ? "over a bound"
                       : r->err == SHOAL_ETRUNC ? "truncated"
                       : r->err == SHOAL_ENOMEM ? "out of memory"
                                                : "malformed or not canonical";
    return say(err, errlen, r->err, "policy: %s: %s", where, what);
}

int
shoal__policy_decode(const uint8_t *bytes, size_t len, shoal__policy **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (len > SHOAL_MAX_VALUE)
        return say(err, errlen, SHOAL_ETOOBIG, "policy: larger than %d bytes", SHOAL_MAX_VALUE);
    shoal__policy *p = shoal__calloc(1, sizeof *p);
    if (!p)
        return SHOAL_ENOMEM;
    p->bytes = shoal__malloc(len ? len : 1);
    if (!p->bytes) {
        shoal__free(p);
        return SHOAL_ENOMEM;
    }
    if (len)
        memcpy(p->bytes, bytes, len);
    p->len = len;
    shoal__mpr r;
    shoal__mpr_init(&r, p->bytes, len);
    int rc;
    /* [1, lang, version, prev, collections, roles] */
    uint32_t items = shoal__mpr_array(&r, 16, 1);
    if (!r.err && items != 6)
        r.err = SHOAL_EPROTO;
    if (!r.err && shoal__mpr_uint(&r) != SHOAL__AUTH_POLICY && !r.err)
        r.err = SHOAL_EPROTO;
    if (r.err) {
        rc = policy_fail(&r, err, errlen, "header");
        goto fail;
    }
    uint64_t lang = shoal__mpr_uint(&r);
    if (!r.err && lang != SHOAL__AUTH_LANG) {
        rc = say(err, errlen, SHOAL_EVERSION, "policy: language version %llu is not known here",
                 (unsigned long long)lang);
        goto fail;
    }
    p->version = shoal__mpr_uint(&r);
    p->has_prev = read_opt_key(&r, p->prev);
    if (!r.err && p->version == 0)
        r.err = SHOAL_EPROTO;
    if (r.err) {
        rc = policy_fail(&r, err, errlen, "version");
        goto fail;
    }
    /* collections: [[name, guard, queryable], ...] by name */
    uint32_t nc = shoal__mpr_array(&r, SHOAL__AUTH_MAX_NAMES, 4);
    if (!r.err && nc) {
        p->colls = shoal__calloc(nc, sizeof *p->colls);
        if (!p->colls)
            r.err = SHOAL_ENOMEM;
    }
    for (uint32_t i = 0; i < nc && !r.err; i++) {
        shoal__pcoll *c = &p->colls[i];
        p->ncolls = i + 1;
        if (shoal__mpr_array(&r, 3, 1) != 3 && !r.err)
            r.err = SHOAL_EPROTO;
        c->name = read_name(&r, SHOAL_MAX_COLLECTION);
        c->guard.mode = c->queryable.mode = SHOAL__FS_ONLY;
        c->guard.n = read_names(&r, SHOAL_MAX_FIELD, &c->guard.names);
        c->queryable.n = read_names(&r, SHOAL_MAX_FIELD, &c->queryable.names);
        if (!r.err && i &&
            name_cmp(p->colls[i - 1].name.p, p->colls[i - 1].name.n, c->name.p, c->name.n) >= 0)
            r.err = SHOAL_EPROTO;
        if (r.err)
            break;
        if (c->name.p[0] == '_') {
            rc = say(err, errlen, SHOAL_EINVAL,
                     "collection \"%.*s\": names starting with _ are reserved", NM(c->name));
            goto fail;
        }
        for (uint32_t k = 0; k < c->guard.n; k++)
            if (!find_name(c->queryable.names, c->queryable.n, c->guard.names[k].p,
                           c->guard.names[k].n)) {
                rc = say(err, errlen, SHOAL_EINVAL,
                         "collection \"%.*s\": guard field \"%.*s\" is not queryable", NM(c->name),
                         NM(c->guard.names[k]));
                goto fail;
            }
    }
    if (r.err) {
        rc = policy_fail(&r, err, errlen, "collections");
        goto fail;
    }
    /* roles: [[name, rules], ...] by name; rules:
     * [[coll, where, read, write, create, delete], ...] by coll */
    uint32_t nr = shoal__mpr_array(&r, SHOAL__AUTH_MAX_NAMES, 3);
    if (!r.err && nr) {
        p->roles = shoal__calloc(nr, sizeof *p->roles);
        if (!p->roles)
            r.err = SHOAL_ENOMEM;
    }
    for (uint32_t i = 0; i < nr && !r.err; i++) {
        shoal__prole *ro = &p->roles[i];
        p->nroles = i + 1;
        if (shoal__mpr_array(&r, 2, 1) != 2 && !r.err)
            r.err = SHOAL_EPROTO;
        ro->name = read_name(&r, SHOAL__AUTH_MAX_ROLE);
        if (!r.err && i &&
            name_cmp(p->roles[i - 1].name.p, p->roles[i - 1].name.n, ro->name.p, ro->name.n) >= 0)
            r.err = SHOAL_EPROTO;
        uint32_t nk = shoal__mpr_array(&r, SHOAL__AUTH_MAX_NAMES, 7);
        if (!r.err && nk) {
            ro->rules = shoal__calloc(nk, sizeof *ro->rules);
            if (!ro->rules)
                r.err = SHOAL_ENOMEM;
        }
        for (uint32_t k = 0; k < nk && !r.err; k++) {
            shoal__prule *ru = &ro->rules[k];
            ro->nrules = k + 1;
            if (shoal__mpr_array(&r, 6, 1) != 6 && !r.err)
                r.err = SHOAL_EPROTO;
            ru->coll = read_name(&r, SHOAL_MAX_COLLECTION);
            ru->where_text.n = shoal__mpr_str(&r, &ru->where_text.p, SHOAL__Q_MAX_TEXT);
            read_fset(&r, &ru->read, true);
            read_fset(&r, &ru->write, false);
            ru->create = shoal__mpr_bool(&r);
            ru->del = shoal__mpr_bool(&r);
            if (!r.err && k &&
                name_cmp(ro->rules[k - 1].coll.p, ro->rules[k - 1].coll.n, ru->coll.p,
                         ru->coll.n) >= 0)
                r.err = SHOAL_EPROTO;
        }
    }
    if (r.err) {
        rc = policy_fail(&r, err, errlen, "roles");
        goto fail;
    }
    if (shoal__mpr_finish(&r)) {
        rc = policy_fail(&r, err, errlen, "end");
        goto fail;
    }
    for (uint32_t i = 0; i < p->nroles; i++)
        for (uint32_t k = 0; k < p->roles[i].nrules; k++)
            if ((rc = check_rule(p, &p->roles[i], &p->roles[i].rules[k], err, errlen)))
                goto fail;
    p->rwords = (p->nroles + 63) / 64;
    if (p->rwords == 0)
        p->rwords = 1;
    for (uint32_t i = 0; i < p->ncolls; i++)
        if ((rc = read_classes(p, &p->colls[i], err, errlen)))
            goto fail;
    *out = p;
    return SHOAL_OK;
fail:
    shoal__policy_free(p);
    return rc;
}

/* ---------------------------------------------------------- certificate */

void
shoal__cert_clear(shoal__cert *c)
{
    shoal__free(c->roles);
    shoal__free(c->attr_names);
    shoal__free(c->attr_vals);
    memset(c, 0, sizeof *c);
}

/* Attribute names a certificate may not use: `$user.id` is the user id,
 * and an admin's scope sees `role` and `user` beside the attributes. */
static bool
attr_reserved(shoal__name a)
{
    return name_eq(a, "id") || name_eq(a, "role") || name_eq(a, "user");
}

int
shoal__cert_decode(const uint8_t *p, size_t n, shoal__cert *c)
{
    memset(c, 0, sizeof *c);
    shoal__mpr r;
    shoal__mpr_init(&r, p, n);
    /* [2, subject, user, roles, attrs, not_before, not_after, serial, prev, policy_floor] */
    read_header(&r, 10, SHOAL__AUTH_CERT);
    read_key(&r, c->subject);
    c->user = read_name(&r, SHOAL__AUTH_MAX_USER);
    c->nroles = read_names(&r, SHOAL__AUTH_MAX_ROLE, &c->roles);
    if (!r.err && c->nroles == 0)
        r.err = SHOAL_EPROTO;
    uint32_t na = shoal__mpr_array(&r, SHOAL__AUTH_MAX_ATTRS, 3);
    if (!r.err && na) {
        c->attr_names = shoal__calloc(na, sizeof *c->attr_names);
        c->attr_vals = shoal__calloc(na, sizeof *c->attr_vals);
        if (!c->attr_names || !c->attr_vals)
            r.err = SHOAL_ENOMEM;
    }
    for (uint32_t i = 0; i < na && !r.err; i++) {
        if (shoal__mpr_array(&r, 2, 1) != 2 && !r.err)
            r.err = SHOAL_EPROTO;
        c->attr_names[i] = read_name(&r, SHOAL_MAX_FIELD);
        shoal__mpr_value(&r, &c->attr_vals[i]);
        if (r.err)
            break;
        if (attr_reserved(c->attr_names[i]) ||
            (i && name_cmp(c->attr_names[i - 1].p, c->attr_names[i - 1].n, c->attr_names[i].p,
                           c->attr_names[i].n) >= 0))
            r.err = SHOAL_EPROTO;
    }
    c->nattrs = r.err ? 0 : na;
    c->not_before = shoal__mpr_uint(&r);
    c->not_after = shoal__mpr_uint(&r);
    c->serial = shoal__mpr_uint(&r);
    c->has_prev = read_opt_key(&r, c->prev);
    c->policy_floor = shoal__mpr_uint(&r);
    if (!r.err && c->not_before > c->not_after)
        r.err = SHOAL_EPROTO;
    int rc = shoal__mpr_finish(&r);
    if (rc)
        shoal__cert_clear(c);
    return rc;
}

int
shoal__cert_encode(const shoal__cert *c, shoal__buf *out)
{
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 10);
    shoal__mpw_uint(&w, SHOAL__AUTH_CERT);
    shoal__mpw_bin(&w, c->subject, 32);
    shoal__mpw_str(&w, c->user.p, c->user.n);
    write_names(&w, c->roles, c->nroles);
    shoal__mpw_array(&w, c->nattrs);
    for (uint32_t i = 0; i < c->nattrs; i++) {
        shoal__mpw_array(&w, 2);
        shoal__mpw_str(&w, c->attr_names[i].p, c->attr_names[i].n);
        shoal__mpw_value(&w, &c->attr_vals[i]);
    }
    shoal__mpw_uint(&w, c->not_before);
    shoal__mpw_uint(&w, c->not_after);
    shoal__mpw_uint(&w, c->serial);
    write_opt_key(&w, c->has_prev, c->prev);
    shoal__mpw_uint(&w, c->policy_floor);
    if (w.err)
        return w.err;
    /* Only canonical objects leave here: decode what was written. */
    shoal__cert chk;
    int rc = shoal__cert_decode(out->p + start, out->len - start, &chk);
    shoal__cert_clear(&chk);
    if (rc) {
        out->len = start;
        return SHOAL_EINVAL;
    }
    return SHOAL_OK;
}

const shoal_value *
shoal__cert_attr(const shoal__cert *c, const uint8_t *name, size_t n)
{
    const shoal__name *a = find_name(c->attr_names, c->nattrs, name, n);
    return a ? &c->attr_vals[a - c->attr_names] : NULL;
}

bool
shoal__cert_has_role(const shoal__cert *c, const uint8_t *name, size_t n)
{
    return find_name(c->roles, c->nroles, name, n) != NULL;
}

/* ---------------------------------------------------------- admin grant */

int
shoal__grant_decode(const uint8_t *p, size_t n, shoal__grant *g)
{
    memset(g, 0, sizeof *g);
    shoal__mpr r;
    shoal__mpr_init(&r, p, n);
    /* [3, key, caps, scope, max_life_ms, serial, prev] */
    read_header(&r, 7, SHOAL__AUTH_ADMIN);
    read_key(&r, g->key);
    uint64_t caps = shoal__mpr_uint(&r);
    if (!r.err && (caps == 0 || caps & ~(uint64_t)SHOAL__CAP_ALL))
        r.err = SHOAL_EPROTO;
    g->caps = (uint32_t)caps;
    g->scope.n = shoal__mpr_str(&r, &g->scope.p, SHOAL__Q_MAX_TEXT);
    g->max_life_ms = shoal__mpr_uint(&r);
    g->serial = shoal__mpr_uint(&r);
    g->has_prev = read_opt_key(&r, g->prev);
    int rc = shoal__mpr_finish(&r);
    if (!rc) {
        /* The scope must compile: a plain predicate over role, user and
         * the attributes, without parameters. */
        shoal__query *q = NULL;
        rc = shoal__query_parse((const char *)g->scope.p, g->scope.n, &q, NULL, 0);
        if (!rc && shoal__query_nparams(q))
            rc = SHOAL_EPROTO;
        shoal__query_free(q);
        if (rc && rc != SHOAL_ENOMEM)
            rc = SHOAL_EPROTO;
    }
    if (rc)
        memset(g, 0, sizeof *g);
    return rc;
}

int
shoal__grant_encode(const shoal__grant *g, shoal__buf *out)
{
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 7);
    shoal__mpw_uint(&w, SHOAL__AUTH_ADMIN);
    shoal__mpw_bin(&w, g->key, 32);
    shoal__mpw_uint(&w, g->caps);
    shoal__mpw_str(&w, g->scope.p, g->scope.n);
    shoal__mpw_uint(&w, g->max_life_ms);
    shoal__mpw_uint(&w, g->serial);
    write_opt_key(&w, g->has_prev, g->prev);
    if (w.err)
        return w.err;
    shoal__grant chk;
    if (shoal__grant_decode(out->p + start, out->len - start, &chk)) {
        out->len = start;
        return SHOAL_EINVAL;
    }
    return SHOAL_OK;
}

/* ----------------------------------------------------------- revocation */

int
shoal__revoke_decode(const uint8_t *p, size_t n, shoal__revoke *v)
{
    memset(v, 0, sizeof *v);
    shoal__mpr r;
    shoal__mpr_init(&r, p, n);
    /* [4, target, cut, target cert id | nil, reason] */
    read_header(&r, 5, SHOAL__AUTH_REVOKE);
    read_key(&r, v->target);
    v->cut = shoal__mpr_uint(&r);
    v->has_cert = read_opt_key(&r, v->cert);
    v->reason.n = shoal__mpr_str(&r, &v->reason.p, SHOAL__AUTH_MAX_REASON);
    int rc = shoal__mpr_finish(&r);
    if (rc)
        memset(v, 0, sizeof *v);
    return rc;
}

int
shoal__revoke_encode(const shoal__revoke *v, shoal__buf *out)
{
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 5);
    shoal__mpw_uint(&w, SHOAL__AUTH_REVOKE);
    shoal__mpw_bin(&w, v->target, 32);
    shoal__mpw_uint(&w, v->cut);
    write_opt_key(&w, v->has_cert, v->cert);
    shoal__mpw_str(&w, v->reason.p, v->reason.n);
    if (w.err)
        return w.err;
    shoal__revoke chk;
    if (shoal__revoke_decode(out->p + start, out->len - start, &chk)) {
        out->len = start;
        return SHOAL_EINVAL;
    }
    return SHOAL_OK;
}

/* --------------------------------------------------- equivocation proof */

/* The seq of an envelope of target's that bin [p, p + n) holds exactly,
 * its signature good; SHOAL_EPROTO otherwise. */
static int
proof_env(const uint8_t *p, size_t n, const uint8_t target[32], uint64_t *seq,
          uint8_t id[SHOAL__ID_BYTES])
{
    size_t elen, blen;
    const uint8_t *body;
    if (shoal__envelope_open(p, n, &elen, &body, &blen) != SHOAL_OK || elen != n ||
        memcmp(shoal__envelope_author(p), target, 32) != 0 ||
        shoal__change_peek(body, blen, seq, NULL) != SHOAL_OK || *seq == 0)
        return SHOAL_EPROTO;
    shoal__change_id(p, n, id);
    return SHOAL_OK;
}

int
shoal__equiv_decode(const uint8_t *p, size_t n, shoal__equiv *v)
{
    memset(v, 0, sizeof *v);
    shoal__mpr r;
    shoal__mpr_init(&r, p, n);
    /* [5, target, seq, envelope a, envelope b] */
    read_header(&r, 5, SHOAL__AUTH_EQUIV);
    read_key(&r, v->target);
    v->seq = shoal__mpr_uint(&r);
    for (int i = 0; i < 2; i++)
        v->len[i] = shoal__mpr_bin(&r, &v->env[i], SHOAL_MAX_VALUE);
    int rc = shoal__mpr_finish(&r);
    uint8_t id[2][SHOAL__ID_BYTES];
    for (int i = 0; !rc && i < 2; i++) {
        uint64_t seq = 0;
        rc = proof_env(v->env[i], v->len[i], v->target, &seq, id[i]);
        if (!rc && seq != v->seq)
            rc = SHOAL_EPROTO;
    }
    if (!rc && memcmp(id[0], id[1], SHOAL__ID_BYTES) >= 0)
        rc = SHOAL_EPROTO; /* one change twice, or out of order */
    if (rc)
        memset(v, 0, sizeof *v);
    return rc;
}

int
shoal__equiv_encode(const uint8_t *env_a, size_t len_a, const uint8_t *env_b, size_t len_b,
                    shoal__buf *out)
{
    if (len_a < SHOAL__ENV_HEADER || len_b < SHOAL__ENV_HEADER)
        return SHOAL_EINVAL;
    uint8_t ia[SHOAL__ID_BYTES], ib[SHOAL__ID_BYTES];
    shoal__change_id(env_a, len_a, ia);
    shoal__change_id(env_b, len_b, ib);
    if (memcmp(ia, ib, SHOAL__ID_BYTES) > 0) {
        const uint8_t *tp = env_a;
        size_t tl = len_a;
        env_a = env_b;
        len_a = len_b;
        env_b = tp;
        len_b = tl;
    }
    size_t elen, blen;
    const uint8_t *body;
    uint64_t seq;
    if (shoal__envelope_parse(env_a, len_a, &elen, &body, &blen) != SHOAL_OK ||
        shoal__change_peek(body, blen, &seq, NULL) != SHOAL_OK)
        return SHOAL_EINVAL;
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 5);
    shoal__mpw_uint(&w, SHOAL__AUTH_EQUIV);
    shoal__mpw_bin(&w, shoal__envelope_author(env_a), 32);
    shoal__mpw_uint(&w, seq);
    shoal__mpw_bin(&w, env_a, len_a);
    shoal__mpw_bin(&w, env_b, len_b);
    if (w.err)
        return w.err;
    shoal__equiv chk;
    if (shoal__equiv_decode(out->p + start, out->len - start, &chk)) {
        out->len = start;
        return SHOAL_EINVAL;
    }
    return SHOAL_OK;
}

/* ------------------------------------------------------- document names */

size_t
shoal__auth_docid(int kind, const uint8_t key[32], char out[SHOAL__AUTH_DOCID_MAX])
{
    static const char *const prefix[] = { NULL,     "policy",  "cert:",
                                          "admin:", "revoke:", "equivocation:" };
    if (kind < SHOAL__AUTH_POLICY || kind > SHOAL__AUTH_KIND_MAX)
        return 0;
    size_t n = strlen(prefix[kind]);
    memcpy(out, prefix[kind], n);
    if (kind != SHOAL__AUTH_POLICY) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) {
            out[n++] = hex[key[i] >> 4];
            out[n++] = hex[key[i] & 15];
        }
    }
    out[n] = 0;
    return n;
}

int
shoal__auth_id_kind(const uint8_t *id, size_t n, uint8_t key[32])
{
    if (key)
        memset(key, 0, 32);
    if (n == 6 && memcmp(id, "policy", 6) == 0)
        return SHOAL__AUTH_POLICY;
    for (int kind = SHOAL__AUTH_CERT; kind <= SHOAL__AUTH_KIND_MAX; kind++) {
        char want[SHOAL__AUTH_DOCID_MAX];
        uint8_t zero[32] = { 0 };
        size_t pl = shoal__auth_docid(kind, zero, want) - 64;
        if (n != pl + 64 || memcmp(id, want, pl) != 0)
            continue;
        char hx[65];
        uint8_t k[32];
        memcpy(hx, id + pl, 64);
        hx[64] = 0;
        if (shoal__unhex(k, 32, hx) != SHOAL_OK)
            return 0;
        if (key)
            memcpy(key, k, 32);
        return kind;
    }
    return 0;
}

bool
shoal__auth_cut_doc(const uint8_t *doc, size_t n)
{
    return (n > 7 && memcmp(doc, "revoke:", 7) == 0) ||
           (n > 13 && memcmp(doc, "equivocation:", 13) == 0);
}

int
shoal__auth_cut_target(const uint8_t *obj, size_t n, uint8_t target[32])
{
    shoal__revoke rv;
    shoal__equiv eq;
    if (shoal__revoke_decode(obj, n, &rv) == SHOAL_OK) {
        memcpy(target, rv.target, 32);
        return SHOAL_OK;
    }
    if (shoal__equiv_decode(obj, n, &eq) == SHOAL_OK) {
        memcpy(target, eq.target, 32);
        return SHOAL_OK;
    }
    return SHOAL_EPROTO;
}

bool
shoal__change_cut(const shoal__change *c, uint8_t target[32], uint64_t *cut)
{
    if (c->coll_len != 5 || memcmp(c->coll, "_auth", 5) != 0 || c->nops != 1 ||
        c->ops[0].kind != SHOAL__OP_SET || c->ops[0].value.type != SHOAL_T_BYTES)
        return false;
    const uint8_t *p = c->ops[0].value.ptr;
    size_t n = c->ops[0].value.len;
    int kind = shoal__auth_id_kind(c->doc, c->doc_len, NULL);
    shoal__revoke rv;
    shoal__equiv eq;
    if (kind == SHOAL__AUTH_REVOKE && shoal__revoke_decode(p, n, &rv) == SHOAL_OK) {
        memcpy(target, rv.target, 32);
        *cut = rv.cut;
        return true;
    }
    if (kind == SHOAL__AUTH_EQUIV && shoal__equiv_decode(p, n, &eq) == SHOAL_OK) {
        memcpy(target, eq.target, 32);
        *cut = eq.seq - 1;
        return true;
    }
    return false;
}
