/*
 * crdt/query.c - the predicate language: parser, evaluator, sort order,
 * index keys, index terms and the query-view reader.
 *
 * One compiled form serves queries, live queries, subscriptions and
 * permission filters, so the rules live here once (crdt.h, "query").
 *
 * Why it is built this way:
 * - A compiled query is a small arena: nodes, literals and parameters in
 *   three arrays addressed by index, and every byte it keeps (field names,
 *   decoded string literals) in one pool buffer.  Pointers into the pool
 *   are fixed up once parsing ends, so the pool may move while it grows.
 *   The bounds (4 KiB of text, 64 predicates, depth 8) keep all of it
 *   small, and recursion in the parser and evaluator is at most depth 8
 *   plus a constant.
 * - Evaluation is three-valued (0, 1, SHOAL__Q_NEEDLIST): AND and OR
 *   settle on a definite answer when one child decides it, so "needs the
 *   items of a long list" is reported only when the answer depends on them.
 * - An int64 and a double compare exactly (not through a double cast, which
 *   would make 2^53 + 1 equal 2^53): the double is split into its integer
 *   part (exact in int64 when in range) and a fraction.
 * - Float literals are converted with strtod, but only after the digits are
 *   rewritten without a decimal point ("1.25e3" as "125e1"): strtod's radix
 *   character depends on the process locale, a global this module must not
 *   depend on, while digits and an exponent read the same in every locale.
 * - Strings and numbers follow JSON exactly: raw control characters in a
 *   string are refused (escape them), and so is a float literal beyond the
 *   double range ("number out of range": no literal spells infinity;
 *   bind a parameter for that); one that underflows rounds as strtod does.
 * - The document id is named by the bare word _id.  A backticked `_id` is
 *   the ordinary field of that name, so every field name stays reachable.
 *   Index terms on the document id name the field "_id", as callers
 *   (core/) expect; so that such a term always means the id, a field
 *   literally named _id gets no index terms (it is still evaluated, and a
 *   missing term is always sound).
 *
 * Ownership: the query owns its arrays, its pool and each parameter's name
 * and bound value (a deep copy).  qview_parse and qfields point into the
 * caller's view bytes and own nothing.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crdt.h"

#define NONE UINT32_MAX /* no node, literal or parameter (an index) */

typedef enum ntype {
    N_AND = 1,
    N_OR,
    N_NOT,
    N_TRUE,
    N_FALSE,
    N_CMP,      /* field op lit */
    N_IN,       /* field IN (lits) */
    N_CONTAINS, /* field CONTAINS lit */
    N_EXISTS    /* field EXISTS */
} ntype;

typedef enum cmpop {
    OP_EQ = 1,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE
} cmpop;

typedef struct qnode {
    uint8_t type;  /* ntype */
    uint8_t op;    /* N_CMP: cmpop */
    bool is_id;    /* the field is the document id (bare _id) */
    uint32_t kid;  /* AND, OR, NOT: first child */
    uint32_t next; /* next sibling under AND / OR, or NONE */
    size_t name_off, name_len;
    const uint8_t *name; /* into the pool, set when parsing ends */
    uint32_t lit, nlits; /* literals [lit, lit + nlits) */
} qnode;

typedef struct qlit {
    shoal_value v;  /* str/bytes: ptr into the pool once parsing ends */
    size_t off;     /* pool offset of str bytes */
    uint32_t param; /* parameter slot, or NONE */
} qlit;

typedef struct qparam {
    char *name; /* Owned by this struct; NUL-terminated, without ':' */
    bool bound;
    shoal_value v; /* Owned copy while bound. */
} qparam;

struct shoal__query {
    qnode *nodes; /* Owned. */
    size_t nnodes, nodes_cap;
    qlit *lits; /* Owned. */
    size_t nlits, lits_cap;
    qparam *params; /* Owned. */
    size_t nparams, params_cap;
    shoal__buf pool; /* Owned: field names and string literal bytes. */
    uint32_t root;
};

/* -------------------------------------------------------------- messages */

/* The n strings of parts, joined into err and truncated to errlen - 1
 * bytes (nothing if errlen is 0). */
static void
put_parts(char *err, size_t errlen, const char *const *parts, size_t n)
{
    if (!err || errlen == 0)
        return;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        for (const char *s = parts[i]; *s && o + 1 < errlen; s++)
            err[o++] = *s;
    err[o] = 0;
}

/* "position N: what what2" into err. */
static void
put_msg(char *err, size_t errlen, size_t pos, const char *what, const char *what2)
{
    char num[24];
    size_t k = sizeof num;
    num[--k] = 0;
    do {
        num[--k] = (char)('0' + pos % 10);
        pos /= 10;
    } while (pos);
    const char *parts[5] = { "position ", num + k, ": ", what, what2 ? what2 : "" };
    put_parts(err, errlen, parts, 5);
}

/* ----------------------------------------------------------------- lexer */

typedef enum tkind {
    T_END = 1,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_CMP,    /* op in t.op */
    T_IDENT,  /* bare identifier, not a keyword */
    T_QNAME,  /* `backticked` field name, decoded into the pool */
    T_STRING, /* decoded into the pool */
    T_INT,
    T_DOUBLE,
    T_PARAM, /* :name, name at text[start + 1, start + len) */
    T_AND,
    T_OR,
    T_NOT,
    T_IN,
    T_CONTAINS,
    T_EXISTS,
    T_TRUE,
    T_FALSE,
    T_NULL
} tkind;

typedef struct token {
    tkind kind;
    size_t start, len; /* bytes of text */
    cmpop op;
    int64_t i;
    double d;
    size_t off, vlen; /* T_QNAME, T_STRING: decoded bytes in the pool */
} token;

typedef struct parser {
    const char *s;
    size_t n, pos;
    shoal__query *q;
    token t;
    int npreds, depth;
    bool policy; /* $user.NAME literals allowed, :params refused */
    int err;
    char *msg;
    size_t msglen;
} parser;

static void
fail(parser *p, int err, size_t pos, const char *what, const char *what2)
{
    if (p->err)
        return;
    p->err = err;
    put_msg(p->msg, p->msglen, pos, what, what2);
}

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool
is_ident(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const struct {
    const char *word;
    tkind kind;
} keywords[] = {
    { "AND", T_AND },           { "OR", T_OR },         { "NOT", T_NOT },   { "IN", T_IN },
    { "CONTAINS", T_CONTAINS }, { "EXISTS", T_EXISTS }, { "TRUE", T_TRUE }, { "FALSE", T_FALSE },
    { "NULL", T_NULL },
};

static tkind
keyword(const char *s, size_t n)
{
    for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++) {
        const char *w = keywords[k].word;
        if (strlen(w) != n)
            continue;
        size_t i = 0;
        while (i < n && (s[i] & ~0x20) == w[i])
            i++;
        if (i == n)
            return keywords[k].kind;
    }
    return T_IDENT;
}

static bool
pool_put(parser *p, const void *b, size_t n)
{
    if (shoal__buf_append(&p->q->pool, b, n)) {
        fail(p, SHOAL_ENOMEM, p->t.start, "out of memory", NULL);
        return false;
    }
    return true;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s[i..i+4) into *u. */
static bool
hex4(const parser *p, size_t i, uint32_t *u)
{
    if (p->n - i < 4)
        return false;
    *u = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(p->s[i + k]);
        if (h < 0)
            return false;
        *u = *u << 4 | (uint32_t)h;
    }
    return true;
}

static size_t
utf8_put(uint8_t *b, uint32_t c)
{
    if (c < 0x80) {
        b[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        b[0] = (uint8_t)(0xc0 | c >> 6);
        b[1] = (uint8_t)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        b[0] = (uint8_t)(0xe0 | c >> 12);
        b[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
        b[2] = (uint8_t)(0x80 | (c & 0x3f));
        return 3;
    }
    b[0] = (uint8_t)(0xf0 | c >> 18);
    b[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
    b[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
    b[3] = (uint8_t)(0x80 | (c & 0x3f));
    return 4;
}

/* A JSON string starting at the quote at p->pos, decoded into the pool. */
static void
lex_string(parser *p)
{
    size_t st = p->pos, i = st + 1;
    p->t.off = p->q->pool.len;
    while (!p->err) {
        if (i >= p->n) {
            fail(p, SHOAL_EINVAL, st, "unterminated string", NULL);
            return;
        }
        unsigned char c = (unsigned char)p->s[i];
        if (c == '"')
            break;
        if (c < 0x20) {
            fail(p, SHOAL_EINVAL, st, "control character in string (escape it)", NULL);
            return;
        }
        if (c != '\\') {
            size_t j = i;
            while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' && (unsigned char)p->s[j] >= 0x20)
                j++;
            pool_put(p, p->s + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 >= p->n) {
            fail(p, SHOAL_EINVAL, st, "unterminated string", NULL);
            return;
        }
        char e = p->s[i + 1];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(from, e) : NULL;
        if (hit) {
            pool_put(p, to + (hit - from), 1);
            i += 2;
            continue;
        }
        uint32_t u, lo;
        if (e != 'u' || !hex4(p, i + 2, &u)) {
            fail(p, SHOAL_EINVAL, st, "invalid escape in string", NULL);
            return;
        }
        i += 6;
        if (u >= 0xdc00 && u <= 0xdfff) {
            fail(p, SHOAL_EINVAL, st, "lone surrogate in string", NULL);
            return;
        }
        if (u >= 0xd800 && u <= 0xdbff) {
            if (i + 1 >= p->n || p->s[i] != '\\' || p->s[i + 1] != 'u' || !hex4(p, i + 2, &lo) ||
                lo < 0xdc00 || lo > 0xdfff) {
                fail(p, SHOAL_EINVAL, st, "lone surrogate in string", NULL);
                return;
            }
            i += 6;
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        }
        uint8_t b[4];
        pool_put(p, b, utf8_put(b, u));
    }
    if (p->err)
        return;
    p->t.vlen = p->q->pool.len - p->t.off;
    if (p->t.vlen && !shoal__utf8_valid(p->q->pool.p + p->t.off, p->t.vlen)) {
        fail(p, SHOAL_EINVAL, st, "invalid UTF-8 in string", NULL);
        return;
    }
    p->t.kind = T_STRING;
    p->pos = i + 1;
}

/* A `backticked` field name; `` stands for one backtick. */
static void
lex_qname(parser *p)
{
    size_t st = p->pos, i = st + 1;
    p->t.off = p->q->pool.len;
    for (;;) {
        if (i >= p->n) {
            fail(p, SHOAL_EINVAL, st, "unterminated field name", NULL);
            return;
        }
        if (p->s[i] == '`') {
            if (i + 1 < p->n && p->s[i + 1] == '`') {
                if (!pool_put(p, "`", 1))
                    return;
                i += 2;
                continue;
            }
            break;
        }
        if (!pool_put(p, p->s + i, 1))
            return;
        i++;
    }
    p->t.vlen = p->q->pool.len - p->t.off;
    if (p->t.vlen == 0 || p->t.vlen > SHOAL_MAX_FIELD ||
        !shoal__utf8_valid(p->q->pool.p + p->t.off, p->t.vlen)) {
        fail(p, SHOAL_EINVAL, st, "invalid field name (1 to 256 bytes of UTF-8)", NULL);
        return;
    }
    p->t.kind = T_QNAME;
    p->pos = i + 1;
}

/* A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static void
lex_number(parser *p)
{
    size_t st = p->pos, i = st;
    bool neg = false, frac = false;
    if (p->s[i] == '-') {
        neg = true;
        i++;
    }
    size_t d0 = i;
    if (i < p->n && p->s[i] == '0')
        i++;
    else if (i < p->n && is_digit(p->s[i]))
        while (i < p->n && is_digit(p->s[i]))
            i++;
    else
        goto bad;
    size_t int_end = i, f0 = i, f1 = i;
    if (i < p->n && p->s[i] == '.') {
        frac = true;
        f0 = ++i;
        if (i >= p->n || !is_digit(p->s[i]))
            goto bad;
        while (i < p->n && is_digit(p->s[i]))
            i++;
        f1 = i;
    }
    long long exp = 0;
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        frac = true;
        i++;
        bool eneg = false;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-'))
            eneg = p->s[i++] == '-';
        if (i >= p->n || !is_digit(p->s[i]))
            goto bad;
        while (i < p->n && is_digit(p->s[i])) {
            if (exp < 1000000) /* beyond this the value is 0 or inf anyway */
                exp = exp * 10 + (p->s[i] - '0');
            i++;
        }
        if (eneg)
            exp = -exp;
    }
    if (i < p->n && (is_ident(p->s[i]) || p->s[i] == '.'))
        goto bad; /* "12abc", "1.2.3" */
    p->t.start = st;
    p->pos = i;
    if (!frac) {
        uint64_t u = 0;
        for (size_t k = d0; k < int_end; k++) {
            uint64_t dg = (uint64_t)(p->s[k] - '0');
            if (u > (UINT64_MAX - dg) / 10) {
                u = UINT64_MAX;
                break;
            }
            u = u * 10 + dg;
        }
        if (u > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
            fail(p, SHOAL_EINVAL, st, "integer out of range", NULL);
            return;
        }
        p->t.kind = T_INT;
        p->t.i = neg ? (int64_t)(0 - u) : (int64_t)u;
        return;
    }
    /* "[-]DIGITSeEXP" without a radix character (see the top comment). */
    char buf[SHOAL__Q_MAX_TEXT + 32];
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    memcpy(buf + o, p->s + d0, int_end - d0);
    o += int_end - d0;
    memcpy(buf + o, p->s + f0, f1 - f0);
    o += f1 - f0;
    exp -= (long long)(f1 - f0);
    buf[o++] = 'e';
    if (exp < 0) {
        buf[o++] = '-';
        exp = -exp;
    }
    char num[24];
    size_t k = sizeof num;
    do {
        num[--k] = (char)('0' + exp % 10);
        exp /= 10;
    } while (exp);
    memcpy(buf + o, num + k, sizeof num - k);
    o += sizeof num - k;
    buf[o] = 0;
    double d = strtod(buf, NULL);
    if (isinf(d)) {
        fail(p, SHOAL_EINVAL, st, "number out of range", NULL);
        return;
    }
    p->t.kind = T_DOUBLE;
    p->t.d = d;
    return;
bad:
    fail(p, SHOAL_EINVAL, st, "invalid number", NULL);
}

/* Read the next token into p->t (p->err set on a lexical error). */
static void
next(parser *p)
{
    if (p->err)
        return;
    while (p->pos < p->n && is_ws(p->s[p->pos]))
        p->pos++;
    size_t st = p->pos;
    memset(&p->t, 0, sizeof p->t);
    p->t.start = st;
    if (st >= p->n) {
        p->t.kind = T_END;
        return;
    }
    char c = p->s[st], c1 = st + 1 < p->n ? p->s[st + 1] : 0;
    size_t len = 1;
    switch (c) {
    case '(': p->t.kind = T_LPAREN; break;
    case ')': p->t.kind = T_RPAREN; break;
    case ',': p->t.kind = T_COMMA; break;
    case '=':
    case '!':
        if (c1 != '=') {
            fail(p, SHOAL_EINVAL, st,
                 c == '=' ? "\"=\" is not an operator (use \"==\")"
                          : "\"!\" is not an operator (use \"!=\" or NOT)",
                 NULL);
            return;
        }
        p->t.kind = T_CMP;
        p->t.op = c == '=' ? OP_EQ : OP_NE;
        len = 2;
        break;
    case '<':
    case '>':
        p->t.kind = T_CMP;
        p->t.op = c == '<' ? (c1 == '=' ? OP_LE : OP_LT) : (c1 == '=' ? OP_GE : OP_GT);
        len = c1 == '=' ? 2 : 1;
        break;
    case '"': lex_string(p); return;
    case '`': lex_qname(p); return;
    case '$': {
        static const char pre[] = "$user.";
        size_t i = st + sizeof pre - 1;
        if (!p->policy) {
            fail(p, SHOAL_EINVAL, st, "$user is allowed only in a policy's where", NULL);
            return;
        }
        if (p->n - st < sizeof pre - 1 || memcmp(p->s + st, pre, sizeof pre - 1) != 0 ||
            i >= p->n || !is_ident_start(p->s[i])) {
            fail(p, SHOAL_EINVAL, st, "expected $user.NAME", NULL);
            return;
        }
        while (i < p->n && is_ident(p->s[i]))
            i++;
        p->t.kind = T_PARAM;
        len = i - st;
        break;
    }
    case ':': {
        size_t i = st + 1;
        if (p->policy) {
            fail(p, SHOAL_EINVAL, st, "a policy's where takes no :parameters (use $user.NAME)",
                 NULL);
            return;
        }
        if (i >= p->n || !is_ident_start(p->s[i])) {
            fail(p, SHOAL_EINVAL, st, "expected a parameter name after \":\"", NULL);
            return;
        }
        while (i < p->n && is_ident(p->s[i]))
            i++;
        p->t.kind = T_PARAM;
        len = i - st;
        break;
    }
    default:
        if (c == '-' || is_digit(c)) {
            lex_number(p);
            if (!p->err)
                p->t.len = p->pos - st;
            return;
        }
        if (!is_ident_start(c)) {
            fail(p, SHOAL_EINVAL, st, "unexpected character", NULL);
            return;
        }
        while (st + len < p->n && is_ident(p->s[st + len]))
            len++;
        p->t.kind = keyword(p->s + st, len);
        break;
    }
    p->t.len = len;
    p->pos = st + len;
}

/* ---------------------------------------------------------------- parser */

static const char *const op_text[] = {
    "", "\"==\"", "\"!=\"", "\"<\"", "\"<=\"", "\">\"", "\">=\""
};

static uint32_t
new_node(parser *p, ntype type)
{
    shoal__query *q = p->q;
    if (p->err)
        return NONE;
    if (q->nnodes == q->nodes_cap) {
        size_t cap = q->nodes_cap ? q->nodes_cap * 2 : 16;
        qnode *v = shoal__realloc(q->nodes, cap * sizeof *v);
        if (!v) {
            fail(p, SHOAL_ENOMEM, p->t.start, "out of memory", NULL);
            return NONE;
        }
        q->nodes = v;
        q->nodes_cap = cap;
    }
    qnode *nd = &q->nodes[q->nnodes];
    memset(nd, 0, sizeof *nd);
    nd->type = (uint8_t)type;
    nd->kid = NONE;
    nd->next = NONE;
    nd->lit = NONE;
    return (uint32_t)q->nnodes++;
}

/* Slot of parameter name (appended on first sight), or NONE. */
static uint32_t
param_slot(parser *p, const char *name, size_t len)
{
    shoal__query *q = p->q;
    for (size_t i = 0; i < q->nparams; i++)
        if (strlen(q->params[i].name) == len && memcmp(q->params[i].name, name, len) == 0)
            return (uint32_t)i;
    if (q->nparams == q->params_cap) {
        size_t cap = q->params_cap ? q->params_cap * 2 : 4;
        qparam *v = shoal__realloc(q->params, cap * sizeof *v);
        if (!v)
            goto oom;
        q->params = v;
        q->params_cap = cap;
    }
    char *s = shoal__malloc(len + 1);
    if (!s)
        goto oom;
    memcpy(s, name, len);
    s[len] = 0;
    qparam *pp = &q->params[q->nparams];
    memset(pp, 0, sizeof *pp);
    pp->name = s;
    pp->v.type = SHOAL_T_NIL;
    return (uint32_t)q->nparams++;
oom:
    fail(p, SHOAL_ENOMEM, p->t.start, "out of memory", NULL);
    return NONE;
}

static bool
is_literal(tkind k)
{
    return k == T_STRING || k == T_INT || k == T_DOUBLE || k == T_TRUE || k == T_FALSE ||
           k == T_NULL || k == T_PARAM;
}

/* The current token (a literal) as a new literal; advances. */
static uint32_t
add_literal(parser *p)
{
    shoal__query *q = p->q;
    if (q->nlits == q->lits_cap) {
        size_t cap = q->lits_cap ? q->lits_cap * 2 : 16;
        qlit *v = shoal__realloc(q->lits, cap * sizeof *v);
        if (!v) {
            fail(p, SHOAL_ENOMEM, p->t.start, "out of memory", NULL);
            return NONE;
        }
        q->lits = v;
        q->lits_cap = cap;
    }
    qlit *l = &q->lits[q->nlits];
    memset(l, 0, sizeof *l);
    l->param = NONE;
    switch (p->t.kind) {
    case T_STRING:
        l->v.type = SHOAL_T_STR;
        l->off = p->t.off;
        l->v.len = p->t.vlen;
        break;
    case T_INT:
        l->v.type = SHOAL_T_INT;
        l->v.i = p->t.i;
        break;
    case T_DOUBLE:
        l->v.type = SHOAL_T_DOUBLE;
        l->v.d = p->t.d;
        break;
    case T_TRUE:
    case T_FALSE:
        l->v.type = SHOAL_T_BOOL;
        l->v.b = p->t.kind == T_TRUE;
        break;
    case T_NULL: l->v.type = SHOAL_T_NIL; break;
    default: /* T_PARAM */
        l->v.type = SHOAL_T_NIL;
        /* :name keeps its name; $user.NAME is named in full */
        if (p->s[p->t.start] == ':')
            l->param = param_slot(p, p->s + p->t.start + 1, p->t.len - 1);
        else
            l->param = param_slot(p, p->s + p->t.start, p->t.len);
        if (l->param == NONE)
            return NONE;
        break;
    }
    next(p);
    return (uint32_t)q->nlits++;
}

static uint32_t parse_expr(parser *p);

/* field cmp lit | field IN (...) | field CONTAINS lit | field EXISTS | TRUE | FALSE */
static uint32_t
parse_pred(parser *p)
{
    token f = p->t;
    if (f.kind != T_TRUE && f.kind != T_FALSE && f.kind != T_IDENT && f.kind != T_QNAME) {
        fail(p, SHOAL_EINVAL, f.start, "expected a predicate", NULL);
        return NONE;
    }
    if (++p->npreds > SHOAL__Q_MAX_PREDS) {
        fail(p, SHOAL_ETOOBIG, f.start, "more than 64 predicates", NULL);
        return NONE;
    }
    if (f.kind == T_TRUE || f.kind == T_FALSE) {
        next(p);
        return new_node(p, f.kind == T_TRUE ? N_TRUE : N_FALSE);
    }
    bool is_id = f.kind == T_IDENT && f.len == 3 && memcmp(p->s + f.start, "_id", 3) == 0;
    size_t off = f.off, len = f.vlen;
    if (f.kind == T_IDENT) {
        if (f.len > SHOAL_MAX_FIELD) {
            fail(p, SHOAL_EINVAL, f.start, "field name longer than 256 bytes", NULL);
            return NONE;
        }
        off = p->q->pool.len;
        len = f.len;
        if (!pool_put(p, p->s + f.start, f.len))
            return NONE;
    }
    next(p);
    if (p->err)
        return NONE;
    token t = p->t;
    uint32_t nd = NONE;
    switch (t.kind) {
    case T_CMP:
        next(p);
        if (p->err)
            return NONE;
        if (!is_literal(p->t.kind)) {
            fail(p, SHOAL_EINVAL, p->t.start, "expected a value after ", op_text[t.op]);
            return NONE;
        }
        nd = new_node(p, N_CMP);
        if (nd != NONE)
            p->q->nodes[nd].op = (uint8_t)t.op;
        break;
    case T_CONTAINS:
        next(p);
        if (p->err)
            return NONE;
        if (!is_literal(p->t.kind)) {
            fail(p, SHOAL_EINVAL, p->t.start, "expected a value after CONTAINS", NULL);
            return NONE;
        }
        nd = new_node(p, N_CONTAINS);
        break;
    case T_EXISTS:
        next(p);
        nd = new_node(p, N_EXISTS);
        break;
    case T_IN: {
        next(p);
        if (p->err)
            return NONE;
        if (p->t.kind != T_LPAREN) {
            fail(p, SHOAL_EINVAL, p->t.start, "expected \"(\" after IN", NULL);
            return NONE;
        }
        next(p);
        nd = new_node(p, N_IN);
        if (nd == NONE)
            return NONE;
        p->q->nodes[nd].lit = (uint32_t)p->q->nlits;
        for (uint32_t k = 0;; k++) {
            if (p->err)
                return NONE;
            if (!is_literal(p->t.kind)) {
                fail(p, SHOAL_EINVAL, p->t.start, "expected a value in the IN list", NULL);
                return NONE;
            }
            if (k == SHOAL__Q_MAX_IN) {
                fail(p, SHOAL_ETOOBIG, p->t.start, "more than 256 items in an IN list", NULL);
                return NONE;
            }
            if (add_literal(p) == NONE)
                return NONE;
            p->q->nodes[nd].nlits++;
            if (p->err)
                return NONE;
            if (p->t.kind == T_RPAREN)
                break;
            if (p->t.kind != T_COMMA) {
                fail(p, SHOAL_EINVAL, p->t.start, "expected \",\" or \")\" in the IN list", NULL);
                return NONE;
            }
            next(p);
        }
        next(p);
        break;
    }
    default:
        fail(p, SHOAL_EINVAL, t.start, "expected an operator after the field name", NULL);
        return NONE;
    }
    if (nd == NONE || p->err)
        return NONE;
    if (t.kind == T_CMP || t.kind == T_CONTAINS) {
        uint32_t l = add_literal(p);
        if (l == NONE)
            return NONE;
        p->q->nodes[nd].lit = l;
        p->q->nodes[nd].nlits = 1;
    }
    qnode *n = &p->q->nodes[nd];
    n->is_id = is_id;
    n->name_off = off;
    n->name_len = len;
    return nd;
}

static uint32_t
parse_unary(parser *p)
{
    if (p->err)
        return NONE;
    token t = p->t;
    if (t.kind != T_NOT && t.kind != T_LPAREN)
        return parse_pred(p);
    if (++p->depth > SHOAL__Q_MAX_DEPTH) {
        fail(p, SHOAL_ETOOBIG, t.start, "nesting deeper than 8", NULL);
        return NONE;
    }
    next(p);
    uint32_t r;
    if (t.kind == T_NOT) {
        uint32_t kid = parse_unary(p);
        r = new_node(p, N_NOT);
        if (r != NONE)
            p->q->nodes[r].kid = kid;
    } else {
        r = parse_expr(p);
        if (!p->err && p->t.kind != T_RPAREN)
            fail(p, SHOAL_EINVAL, p->t.start, "expected \")\"", NULL);
        next(p);
    }
    p->depth--;
    return p->err ? NONE : r;
}

/* A chain of sub (joined by the keyword sep) as one node of type type. */
static uint32_t
parse_chain(parser *p, tkind sep, ntype type, uint32_t (*sub)(parser *))
{
    uint32_t first = sub(p);
    if (p->err || p->t.kind != sep)
        return first;
    uint32_t r = new_node(p, type), last = first;
    if (r == NONE)
        return NONE;
    p->q->nodes[r].kid = first;
    while (!p->err && p->t.kind == sep) {
        next(p);
        uint32_t k = sub(p);
        if (p->err)
            return NONE;
        p->q->nodes[last].next = k;
        last = k;
    }
    return p->err ? NONE : r;
}

static uint32_t
parse_and(parser *p)
{
    return parse_chain(p, T_AND, N_AND, parse_unary);
}

static uint32_t
parse_expr(parser *p)
{
    return parse_chain(p, T_OR, N_OR, parse_and);
}

void
shoal__query_free(shoal__query *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nparams; i++) {
        shoal__free(q->params[i].name);
        shoal__value_clear(&q->params[i].v);
    }
    shoal__free(q->params);
    shoal__free(q->nodes);
    shoal__free(q->lits);
    shoal__buf_free(&q->pool);
    shoal__free(q);
}

static int
parse_text(const char *text, size_t len, bool policy, shoal__query **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    parser ps;
    memset(&ps, 0, sizeof ps);
    parser *p = &ps;
    p->s = text;
    p->n = len;
    p->msg = err;
    p->msglen = errlen;
    p->policy = policy;
    if (len > SHOAL__Q_MAX_TEXT) {
        fail(p, SHOAL_ETOOBIG, SHOAL__Q_MAX_TEXT, "query longer than 4096 bytes", NULL);
        return p->err;
    }
    shoal__query *q = shoal__calloc(1, sizeof *q);
    if (!q) {
        fail(p, SHOAL_ENOMEM, 0, "out of memory", NULL);
        return p->err;
    }
    shoal__buf_init(&q->pool);
    p->q = q;
    next(p);
    if (!p->err && p->t.kind == T_END)
        fail(p, SHOAL_EINVAL, 0, "query is empty", NULL);
    q->root = p->err ? NONE : parse_expr(p);
    if (!p->err && p->t.kind != T_END)
        fail(p, SHOAL_EINVAL, p->t.start, "expected AND, OR or the end of the query", NULL);
    if (p->err) {
        shoal__query_free(q);
        return p->err;
    }
    /* The pool no longer moves: point names and strings into it. */
    for (size_t i = 0; i < q->nnodes; i++)
        q->nodes[i].name = q->pool.p ? q->pool.p + q->nodes[i].name_off : NULL;
    for (size_t i = 0; i < q->nlits; i++)
        if (q->lits[i].v.type == SHOAL_T_STR)
            q->lits[i].v.ptr = q->pool.p ? q->pool.p + q->lits[i].off : NULL;
    *out = q;
    return SHOAL_OK;
}

int
shoal__query_parse(const char *text, size_t len, shoal__query **out, char *err, size_t errlen)
{
    return parse_text(text, len, false, out, err, errlen);
}

int
shoal__query_parse_policy(const char *text, size_t len, shoal__query **out, char *err,
                          size_t errlen)
{
    return parse_text(text, len, true, out, err, errlen);
}

int
shoal__query_fields(const shoal__query *q, shoal__query_field_fn cb, void *arg)
{
    for (size_t i = 0; i < q->nnodes; i++) {
        const qnode *nd = &q->nodes[i];
        if (nd->type != N_CMP && nd->type != N_IN && nd->type != N_CONTAINS && nd->type != N_EXISTS)
            continue;
        int rc = cb(nd->name, nd->name_len, nd->is_id, arg);
        if (rc)
            return rc;
    }
    return 0;
}

bool
shoal__query_always(const shoal__query *q)
{
    return q->root != NONE && q->nodes[q->root].type == N_TRUE;
}

size_t
shoal__query_nparams(const shoal__query *q)
{
    return q->nparams;
}

const char *
shoal__query_param(const shoal__query *q, size_t i)
{
    assert(i < q->nparams);
    return q->params[i].name;
}

int
shoal__query_bind(shoal__query *q, const char *name, const shoal_value *v)
{
    for (size_t i = 0; i < q->nparams; i++) {
        if (strcmp(q->params[i].name, name) != 0)
            continue;
        if (shoal__value_check(v))
            return SHOAL_EINVAL;
        shoal_value c;
        int rc = shoal__value_copy(&c, v);
        if (rc)
            return rc;
        shoal__value_clear(&q->params[i].v);
        q->params[i].v = c;
        q->params[i].bound = true;
        return SHOAL_OK;
    }
    return SHOAL_ENOTFOUND;
}

int
shoal__query_ready(const shoal__query *q, char *err, size_t errlen)
{
    for (size_t i = 0; i < q->nparams; i++) {
        if (!q->params[i].bound) {
            const char *name = q->params[i].name;
            const char *parts[3] = { name[0] == '$' ? "" : "parameter :", name, " is not bound" };
            put_parts(err, errlen, parts, 3);
            return SHOAL_EINVAL;
        }
    }
    if (err && errlen)
        err[0] = 0;
    return SHOAL_OK;
}

/* ------------------------------------------------------------ comparison */

static int
bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

static bool
is_nan(const shoal_value *v)
{
    return v->type == SHOAL_T_DOUBLE && isnan(v->d);
}

/* Exact order of an int64 and a double that is not NaN. */
static int
int_double_cmp(int64_t i, double d)
{
    if (d >= 9223372036854775808.0) /* 2^63: above every int64 */
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double t = trunc(d); /* in [-2^63, 2^63): exact as int64 */
    int64_t ti = (int64_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

/* Numeric order of two numbers, neither NaN. */
static int
num_cmp(const shoal_value *a, const shoal_value *b)
{
    if (a->type == SHOAL_T_INT && b->type == SHOAL_T_INT)
        return a->i < b->i ? -1 : a->i > b->i;
    if (a->type == SHOAL_T_DOUBLE && b->type == SHOAL_T_DOUBLE)
        return a->d < b->d ? -1 : a->d > b->d;
    if (a->type == SHOAL_T_INT)
        return int_double_cmp(a->i, b->d);
    return -int_double_cmp(b->i, a->d);
}

/* Class of a scalar for comparisons: null, bool, number, string, bytes,
 * and a value this replica may not read (REDACTED), after every other. */
static int
vclass(const shoal_value *v)
{
    switch (v->type) {
    case SHOAL_T_BOOL: return 1;
    case SHOAL_T_INT:
    case SHOAL_T_DOUBLE: return 2;
    case SHOAL_T_STR: return 3;
    case SHOAL_T_BYTES: return 4;
    case SHOAL_T_REDACTED: return 5;
    default: return 0;
    }
}

/* Rank in the sort order: null, false, true, numbers, strings, bytes. */
static int
vrank(const shoal_value *v)
{
    int c = vclass(v);
    if (c == 0)
        return 0;
    if (c == 1)
        return v->b ? 2 : 1;
    return c + 1;
}

int
shoal__qvalue_cmp(const shoal_value *a, const shoal_value *b)
{
    int ra = vrank(a), rb = vrank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (vclass(a)) {
    case 2: {
        bool na = is_nan(a), nb = is_nan(b);
        if (na || nb)
            return na == nb ? 0 : na ? 1 : -1;
        return num_cmp(a, b);
    }
    case 3:
    case 4: return bytes_cmp(a->ptr, a->len, b->ptr, b->len);
    default: return 0;
    }
}

/* a op b for two scalars (null for absent), by the rules of crdt.h. */
static bool
scalar_test(const shoal_value *a, const shoal_value *b, cmpop op)
{
    if (is_nan(a) || is_nan(b))
        return false; /* before the cross-type rule: NaN != x is false too */
    if (a->type == SHOAL_T_REDACTED || b->type == SHOAL_T_REDACTED)
        return false; /* unknown here: no comparison holds, != neither */
    int ca = vclass(a), cb = vclass(b);
    if (ca != cb)
        return op == OP_NE;
    int c;
    switch (ca) {
    case 0: c = 0; break;
    case 1:
        if (op != OP_EQ && op != OP_NE)
            return false;
        c = a->b != b->b;
        break;
    case 2: c = num_cmp(a, b); break;
    default: c = bytes_cmp(a->ptr, a->len, b->ptr, b->len); break;
    }
    if (ca == 0 && op != OP_EQ && op != OP_NE)
        return false; /* null has no order */
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

/* The scalar a register or counter field stands for (null for NULL). */
static shoal_value
field_scalar(const shoal__qfield *f)
{
    shoal_value v;
    if (f && f->kind != SHOAL_K_LIST)
        return f->value;
    memset(&v, 0, sizeof v);
    v.type = SHOAL_T_NIL;
    return v;
}

int
shoal__qfield_cmp(const shoal__qfield *a, const shoal__qfield *b)
{
    bool la = a && a->kind == SHOAL_K_LIST, lb = b && b->kind == SHOAL_K_LIST;
    if (la != lb)
        return la ? 1 : -1;
    if (!la) {
        shoal_value x = field_scalar(a), y = field_scalar(b);
        return shoal__qvalue_cmp(&x, &y);
    }
    assert(!a->long_list && !b->long_list);
    shoal__mpr ra, rb;
    shoal__mpr_init(&ra, a->items, a->items ? a->items_len : 0);
    ra.redacted_ok = true;
    shoal__mpr_init(&rb, b->items, b->items ? b->items_len : 0);
    rb.redacted_ok = true;
    for (uint32_t i = 0;; i++) {
        bool ea = i >= a->nitems, eb = i >= b->nitems;
        if (ea || eb)
            return ea && eb ? 0 : ea ? -1 : 1;
        shoal_value x, y;
        shoal__mpr_value(&ra, &x);
        shoal__mpr_value(&rb, &y);
        int c = shoal__qvalue_cmp(&x, &y);
        if (c)
            return c;
    }
}

const shoal__qfield *
shoal__qdoc_field(const shoal__qdoc *d, const uint8_t *name, size_t len)
{
    size_t lo = 0, hi = d->nfields;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const shoal__qfield *f = &d->fields[mid];
        int c = bytes_cmp(f->name, f->name_len, name, len);
        if (c == 0)
            return f;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------ evaluation */

static const shoal_value *
lit_value(const shoal__query *q, uint32_t l)
{
    const qlit *lt = &q->lits[l];
    return lt->param == NONE ? &lt->v : &q->params[lt->param].v;
}

/* A literal's value, parameters taken from pv (one value per slot) when
 * it is not NULL, else from the query's bindings. */
static const shoal_value *
arg_value(const shoal__query *q, const shoal_value *pv, uint32_t l)
{
    const qlit *lt = &q->lits[l];
    if (lt->param == NONE)
        return &lt->v;
    return pv ? &pv[lt->param] : &q->params[lt->param].v;
}

static int
eval_node(const shoal__query *q, const shoal_value *pv, uint32_t ni, const shoal__qdoc *d)
{
    const qnode *n = &q->nodes[ni];
    switch (n->type) {
    case N_TRUE: return 1;
    case N_FALSE: return 0;
    case N_NOT: {
        int r = eval_node(q, pv, n->kid, d);
        return r == SHOAL__Q_NEEDLIST ? r : !r;
    }
    case N_AND:
    case N_OR: {
        /* AND: any 0 decides; OR: any 1 decides; else NEEDLIST if any. */
        int decide = n->type == N_OR, res = !decide;
        for (uint32_t k = n->kid; k != NONE; k = q->nodes[k].next) {
            int r = eval_node(q, pv, k, d);
            if (r == decide)
                return r;
            if (r == SHOAL__Q_NEEDLIST)
                res = r;
        }
        return res;
    }
    default: break;
    }
    /* A leaf on one field. */
    const shoal__qfield *f = NULL;
    shoal_value v;
    if (n->is_id) {
        memset(&v, 0, sizeof v);
        v.type = SHOAL_T_STR;
        v.ptr = d->id;
        v.len = d->id_len;
    } else {
        f = shoal__qdoc_field(d, n->name, n->name_len);
        v = field_scalar(f);
    }
    bool list = f && f->kind == SHOAL_K_LIST;
    switch (n->type) {
    case N_EXISTS: return n->is_id || f != NULL;
    case N_CMP:
        if (list) /* the NaN rule comes first: a list != NaN is false */
            return n->op == OP_NE && !is_nan(arg_value(q, pv, n->lit));
        return scalar_test(&v, arg_value(q, pv, n->lit), (cmpop)n->op);
    case N_IN:
        if (list)
            return 0;
        for (uint32_t k = 0; k < n->nlits; k++)
            if (scalar_test(&v, arg_value(q, pv, n->lit + k), OP_EQ))
                return 1;
        return 0;
    default: { /* N_CONTAINS */
        const shoal_value *lit = arg_value(q, pv, n->lit);
        if (!list || is_nan(lit))
            return 0;
        if (f->long_list)
            return SHOAL__Q_NEEDLIST;
        shoal__mpr r;
        shoal__mpr_init(&r, f->items, f->items ? f->items_len : 0);
        r.redacted_ok = true;
        for (uint32_t k = 0; k < f->nitems && !r.err; k++) {
            shoal_value x;
            shoal__mpr_value(&r, &x);
            if (!r.err && scalar_test(&x, lit, OP_EQ))
                return 1;
        }
        return 0;
    }
    }
}

int
shoal__query_eval(const shoal__query *q, const shoal__qdoc *d)
{
    assert(shoal__query_ready(q, NULL, 0) == SHOAL_OK);
    return eval_node(q, NULL, q->root, d);
}

int
shoal__query_eval_with(const shoal__query *q, const shoal_value *params, const shoal__qdoc *d)
{
    return eval_node(q, params, q->root, d);
}

/* ------------------------------------------------------------ index keys */

size_t
shoal__qkey(const shoal_value *v, uint8_t out[SHOAL__QKEY_MAX])
{
    switch (v->type) {
    case SHOAL_T_BOOL: out[0] = v->b ? 0x21 : 0x20; return 1;
    case SHOAL_T_INT:
    case SHOAL_T_DOUBLE: {
        double d = v->type == SHOAL_T_INT ? (double)v->i : v->d;
        uint64_t bits;
        if (isnan(d))
            bits = 0x7ff8000000000000ull; /* one NaN, above +inf */
        else {
            if (d == 0)
                d = 0; /* -0.0 */
            memcpy(&bits, &d, sizeof bits);
        }
        bits = bits >> 63 ? ~bits : bits | 1ull << 63;
        out[0] = 0x30;
        shoal__be64_put(out + 1, bits);
        return 9;
    }
    case SHOAL_T_STR:
    case SHOAL_T_BYTES: {
        size_t n = v->len < SHOAL__QKEY_TRUNC ? v->len : SHOAL__QKEY_TRUNC, o = 1;
        out[0] = v->type == SHOAL_T_STR ? 0x40 : 0x50;
        for (size_t i = 0; i < n; i++) {
            out[o++] = v->ptr[i];
            if (v->ptr[i] == 0)
                out[o++] = 0xff;
        }
        out[o++] = 0;
        out[o++] = 0;
        return o;
    }
    case SHOAL_T_REDACTED: out[0] = 0x60; return 1; /* after bytes, matches no term */
    default: out[0] = 0x10; return 1;
    }
}

/* ----------------------------------------------------------- index terms */

/* Conjuncts of the top-level AND (nested ANDs included) into leaves. */
static void
conjuncts(const shoal__query *q, uint32_t ni, uint32_t *leaves, size_t *n)
{
    const qnode *nd = &q->nodes[ni];
    if (nd->type == N_AND) {
        for (uint32_t k = nd->kid; k != NONE; k = q->nodes[k].next)
            conjuncts(q, k, leaves, n);
        return;
    }
    if (nd->type == N_CMP || nd->type == N_IN || nd->type == N_CONTAINS)
        leaves[(*n)++] = ni;
}

static int
cmp_values(const void *a, const void *b)
{
    return shoal__qvalue_cmp(a, b);
}

/* Whether a range bound of this value can match: numbers (not NaN),
 * strings and bytes are ordered; null and booleans never satisfy an
 * ordering comparison. */
static bool
rangeable(const shoal_value *v)
{
    int c = vclass(v);
    return c >= 2 && !is_nan(v);
}

int
shoal__query_terms(const shoal__query *q, shoal__qterm **out, size_t *n)
{
    assert(shoal__query_ready(q, NULL, 0) == SHOAL_OK);
    *out = NULL;
    *n = 0;
    uint32_t leaves[SHOAL__Q_MAX_PREDS];
    size_t nl = 0, nv = 0;
    conjuncts(q, q->root, leaves, &nl);
    for (size_t i = 0; i < nl; i++)
        nv += q->nodes[leaves[i]].nlits;
    if (nl == 0)
        return SHOAL_OK;
    /* One block: the terms, then the values their vals point to. */
    shoal__qterm *t = shoal__malloc(nl * sizeof *t + nv * sizeof(shoal_value));
    if (!t)
        return SHOAL_ENOMEM;
    shoal_value *vals = (shoal_value *)(t + nl);
    size_t k = 0;
    for (size_t i = 0; i < nl; i++) {
        const qnode *nd = &q->nodes[leaves[i]];
        shoal__qterm *o = &t[k];
        memset(o, 0, sizeof *o);
        if (!nd->is_id && nd->name_len == 3 && memcmp(nd->name, "_id", 3) == 0)
            continue; /* `_id`: its term would read as the document id's */
        o->field = nd->is_id ? (const uint8_t *)"_id" : nd->name;
        o->field_len = nd->is_id ? 3 : nd->name_len;
        if (nd->type == N_CMP) {
            const shoal_value *l = lit_value(q, nd->lit);
            if (nd->op == OP_EQ) {
                if (l->type == SHOAL_T_NIL || is_nan(l))
                    continue; /* matches absent fields / nothing */
                o->kind = SHOAL__QT_EQ;
                vals[0] = *l;
                o->vals = vals++;
                o->nvals = 1;
            } else if (nd->op != OP_NE && rangeable(l)) {
                o->kind = SHOAL__QT_RANGE;
                if (nd->op == OP_GT || nd->op == OP_GE) {
                    o->has_lo = true;
                    o->lo_incl = nd->op == OP_GE;
                    o->lo = *l;
                } else {
                    o->has_hi = true;
                    o->hi_incl = nd->op == OP_LE;
                    o->hi = *l;
                }
            } else {
                continue;
            }
        } else if (nd->type == N_CONTAINS) {
            /* A null literal stays: null list elements are indexed as
             * elements, and CONTAINS null matches them. */
            const shoal_value *l = lit_value(q, nd->lit);
            if (is_nan(l))
                continue;
            o->kind = SHOAL__QT_EQ;
            o->contains = true;
            vals[0] = *l;
            o->vals = vals++;
            o->nvals = 1;
        } else { /* N_IN */
            size_t m = 0;
            bool has_null = false;
            for (uint32_t j = 0; j < nd->nlits; j++) {
                const shoal_value *l = lit_value(q, nd->lit + j);
                if (l->type == SHOAL_T_NIL)
                    has_null = true;
                else if (!is_nan(l))
                    vals[m++] = *l;
            }
            if (has_null || m == 0)
                continue; /* null matches absent; all-NaN matches nothing */
            qsort(vals, m, sizeof *vals, cmp_values);
            size_t u = 1;
            for (size_t j = 1; j < m; j++)
                if (shoal__qvalue_cmp(&vals[u - 1], &vals[j]) != 0)
                    vals[u++] = vals[j];
            o->kind = SHOAL__QT_EQ;
            o->vals = vals;
            o->nvals = u;
            vals += u;
        }
        k++;
    }
    if (k == 0) {
        shoal__free(t);
        return SHOAL_OK;
    }
    *out = t;
    *n = k;
    return SHOAL_OK;
}

/* ----------------------------------------------------------- query views */

/* One [kind, ...] entry of a view into f. */
static bool
qview_entry(shoal__mpr *r, shoal__qfield *f)
{
    if (shoal__mpr_array(r, 2, 1) != 2 || r->err)
        return false;
    uint64_t kind = shoal__mpr_uint(r);
    if (r->err)
        return false;
    switch (kind) {
    case 1:
        f->kind = SHOAL_K_REGISTER;
        shoal__mpr_value(r, &f->value);
        break;
    case 2:
        f->kind = SHOAL_K_COUNTER;
        if (shoal__mpr_peek(r) == SHOAL_T_INT) {
            f->value.type = SHOAL_T_INT;
            f->value.i = shoal__mpr_int(r);
        } else {
            shoal__mpr_value(r, &f->value); /* REDACTED, or an error */
            if (!r->err && f->value.type != SHOAL_T_REDACTED)
                return false;
        }
        break;
    case 3: {
        f->kind = SHOAL_K_LIST;
        f->nitems = shoal__mpr_array(r, UINT32_MAX, 1);
        f->items = r->p;
        for (uint32_t i = 0; i < f->nitems && !r->err; i++) {
            shoal_value x;
            shoal__mpr_value(r, &x);
        }
        f->items_len = (size_t)(r->p - f->items);
        if (f->nitems == 0) {
            f->items = NULL;
            f->items_len = 0;
        }
        break;
    }
    case 4: {
        f->kind = SHOAL_K_LIST;
        f->long_list = true;
        uint64_t c = shoal__mpr_uint(r);
        if (c <= SHOAL__Q_LIST_VIEW || c > UINT32_MAX)
            return false;
        f->nitems = (uint32_t)c;
        break;
    }
    default: return false;
    }
    return !r->err;
}

int
shoal__qview_parse(const uint8_t *p, size_t n, shoal__qfield **fields, size_t *cap, size_t *nfields,
                   bool *alive)
{
    shoal__mpr r;
    shoal__mpr_init(&r, p, n);
    r.redacted_ok = true;
    *nfields = 0;
    *alive = false;
    if (shoal__mpr_is_nil(&r)) {
        shoal__mpr_nil(&r);
        return shoal__mpr_finish(&r) ? SHOAL_ECORRUPT : SHOAL_OK;
    }
    /* An entry takes at least 5 bytes: a 1-byte name, [k, v]. */
    uint32_t cnt = shoal__mpr_map(&r, UINT32_MAX, 5);
    if (r.err)
        return SHOAL_ECORRUPT;
    if (cnt > *cap) {
        shoal__qfield *v = shoal__realloc(*fields, cnt * sizeof *v);
        if (!v)
            return SHOAL_ENOMEM;
        *fields = v;
        *cap = cnt;
    }
    for (uint32_t i = 0; i < cnt; i++) {
        shoal__qfield *f = &(*fields)[i];
        memset(f, 0, sizeof *f);
        f->name_len = shoal__mpr_str(&r, &f->name, SHOAL_MAX_FIELD);
        if (r.err || f->name_len == 0)
            return SHOAL_ECORRUPT;
        if (i && bytes_cmp(f[-1].name, f[-1].name_len, f->name, f->name_len) >= 0)
            return SHOAL_ECORRUPT; /* unsorted or duplicate */
        if (!qview_entry(&r, f))
            return SHOAL_ECORRUPT;
    }
    if (shoal__mpr_finish(&r))
        return SHOAL_ECORRUPT;
    *nfields = cnt;
    *alive = true;
    return SHOAL_OK;
}
