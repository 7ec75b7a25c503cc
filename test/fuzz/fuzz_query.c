/*
 * test/fuzz/fuzz_query.c - the query language (crdt/query.c): predicate
 * text from a user and a query view from storage, both possibly hostile.
 *
 * Input: predicate text, then optionally FUZZ_SEP and a query view
 * (MessagePack).  Checks: a refused text gets one NUL-terminated line
 * "position N: ..." with N within the text; a compiled query whose
 * parameters are bound (to values taken from the view, or null) is ready,
 * and evaluates to 0, 1 or, only when the view holds a long list,
 * SHOAL__Q_NEEDLIST; its terms are sorted, NaN-free, and hold for the
 * document whenever it matches.  A view that parses has sorted unique
 * names and compares equal to itself.
 */
#include <math.h>
#include <string.h>

#include "crdt.h"
#include "fuzz.h"

static bool
is_nan(const shoal_value *v)
{
    return v->type == SHOAL_T_DOUBLE && isnan(v->d);
}

/* The scalar class of v for range terms: 2 numbers, 3 strings, 4 bytes. */
static int
vclass(const shoal_value *v)
{
    switch (v->type) {
    case SHOAL_T_INT:
    case SHOAL_T_DOUBLE: return 2;
    case SHOAL_T_STR: return 3;
    case SHOAL_T_BYTES: return 4;
    default: return 0;
    }
}

/* Whether d satisfies term t (EQ without contains, and RANGE). */
static bool
term_holds(const shoal__qterm *t, const shoal__qdoc *d)
{
    shoal_value v;
    memset(&v, 0, sizeof v);
    if (t->field_len == 3 && memcmp(t->field, "_id", 3) == 0) { /* the document id */
        v.type = SHOAL_T_STR;
        v.ptr = d->id;
        v.len = d->id_len;
    } else {
        const shoal__qfield *f = shoal__qdoc_field(d, t->field, t->field_len);
        if (!f || f->kind == SHOAL_K_LIST)
            return t->contains; /* contains terms are not checked here */
        v = f->value;
    }
    if (t->contains)
        return true;
    if (t->kind == SHOAL__QT_EQ) {
        for (size_t i = 0; i < t->nvals; i++)
            if (shoal__qvalue_cmp(&v, &t->vals[i]) == 0)
                return true;
        return false;
    }
    if (is_nan(&v))
        return false;
    if (t->has_lo) {
        int c = shoal__qvalue_cmp(&v, &t->lo);
        if (vclass(&v) != vclass(&t->lo) || c < 0 || (c == 0 && !t->lo_incl))
            return false;
    }
    if (t->has_hi) {
        int c = shoal__qvalue_cmp(&v, &t->hi);
        if (vclass(&v) != vclass(&t->hi) || c > 0 || (c == 0 && !t->hi_incl))
            return false;
    }
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_piece pc[2];
    size_t np = fuzz_split(data, size, pc, 2);
    char err[96];
    memset(err, 'X', sizeof err);
    shoal__query *q = NULL;
    int rc = shoal__query_parse((const char *)pc[0].p, pc[0].n, &q, err, sizeof err);
    if (rc != SHOAL_OK) {
        FUZZ_CHECK(q == NULL);
        FUZZ_CHECK(rc == SHOAL_EINVAL || rc == SHOAL_ETOOBIG || rc == SHOAL_ENOMEM);
        FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL);
        FUZZ_CHECK(strncmp(err, "position ", 9) == 0 && strchr(err, '\n') == NULL);
        FUZZ_CHECK(strtoul(err + 9, NULL, 10) <= pc[0].n);
    }

    /* The view, if any. */
    shoal__qfield *f = NULL;
    size_t cap = 0, nf = 0;
    bool alive = false, has_long = false;
    if (np == 2 && shoal__qview_parse(pc[1].p, pc[1].n, &f, &cap, &nf, &alive) == SHOAL_OK) {
        for (size_t i = 0; i < nf; i++) {
            FUZZ_CHECK(f[i].name_len >= 1);
            if (i) {
                size_t m = f[i - 1].name_len < f[i].name_len ? f[i - 1].name_len : f[i].name_len;
                int c = memcmp(f[i - 1].name, f[i].name, m);
                FUZZ_CHECK(c < 0 || (c == 0 && f[i - 1].name_len < f[i].name_len));
            }
            if (f[i].long_list)
                has_long = true;
            else
                FUZZ_CHECK(shoal__qfield_cmp(&f[i], &f[i]) == 0);
        }
    } else {
        nf = 0;
    }

    if (q) {
        /* Bind parameters to the views' register values in turn, or null. */
        size_t next = 0;
        for (size_t i = 0; i < shoal__query_nparams(q); i++) {
            shoal_value v;
            memset(&v, 0, sizeof v);
            v.type = SHOAL_T_NIL;
            while (next < nf && f[next].kind == SHOAL_K_LIST)
                next++;
            if (next < nf)
                v = f[next++].value;
            FUZZ_CHECK(shoal__query_bind(q, shoal__query_param(q, i), &v) == SHOAL_OK);
        }
        FUZZ_CHECK(shoal__query_ready(q, err, sizeof err) == SHOAL_OK);
        shoal__qdoc d = { (const uint8_t *)"doc", 3, f, nf };
        int r = shoal__query_eval(q, &d);
        FUZZ_CHECK(r == 0 || r == 1 || (r == SHOAL__Q_NEEDLIST && has_long));
        shoal__qterm *t;
        size_t nt;
        if (shoal__query_terms(q, &t, &nt) == SHOAL_OK) {
            for (size_t i = 0; i < nt; i++) {
                for (size_t k = 0; k < t[i].nvals; k++) {
                    FUZZ_CHECK(!is_nan(&t[i].vals[k]));
                    if (k)
                        FUZZ_CHECK(shoal__qvalue_cmp(&t[i].vals[k - 1], &t[i].vals[k]) < 0);
                }
                if (r == 1)
                    FUZZ_CHECK(term_holds(&t[i], &d));
            }
            shoal__free(t);
        }
        shoal__query_free(q);
    }
    shoal__free(f);
    return 0;
}
