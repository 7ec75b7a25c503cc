/*
 * bench/bench_query.c - `shoal-bench query`: queries, aggregation, live
 * queries and index upkeep through the public API, next to SQLite holding
 * the same data in the same run (issue 9).
 *
 * Data: --docs N product documents (default 100,000) made by a seeded
 * generator (splitmix64; the seed is printed), so every engine holds the
 * same values: category (one of 20 strings), size (one of 10 even ints),
 * price (a double, whole cents from 5.00 to 100.00), store_id (int 0-99),
 * stock (a counter in shoal, an int elsewhere) and name (a string).
 *
 * Engines, each loaded in transactions of 1,000 documents, then indexed on
 * category and store_id:
 *   shoal          a non-durable replica (flushed after loading);
 *   sqlite-typed   one table with a typed column per field, two indexes;
 *   sqlite-json    one table (id, doc TEXT of JSON), json_extract
 *                  expression indexes: how document stores on SQLite work;
 *   sqlite-json-fields  the same table and plans, each field of a matching
 *                  document read with json_extract (SQLite parses it), for
 *                  information: no target is set against it.
 * Both SQLite databases are files in the same temp dir, WAL,
 * synchronous=NORMAL, checkpointed and ANALYZEd after loading, with a page
 * cache that holds the whole database (shoal reads LMDB through a map, so
 * a default 2 MiB cache would bill SQLite for page reads shoal does not
 * make).
 *
 * Shapes, constants bound as parameters:
 *   1  category == "jeans" AND size == 8 AND price < 40   (index: category)
 *   2  store_id == 12                                      (index: store_id)
 *   3  price < 6                                           (no index: a scan)
 *   4  count, sum(stock), min(price) grouped by category   (every document)
 * Work is made comparable: shoal_find's rows are read in full (every field
 * of every row through the shoal_doc accessors); SQLite steps every row
 * and reads every column it selected (typed: all seven columns; JSON: id
 * and the document text, whose bytes are read but not parsed, which
 * favours SQLite: a client of a document store would parse it;
 * sqlite-json-fields shows what parsing costs).  Every
 * query is run once untimed and its answer checked against the generator's
 * own data; then runs go round-robin over the engines, median reported.
 *
 * Live queries: 100 open on the collection (25 each of category == X,
 * store_id == Y, price < Z and shape 1 with other constants).  One sample
 * is a transaction setting one field of one random document to a new value
 * (two in five samples an indexed field), committed, then the live queries
 * drained as an event loop does: one poll() over the 100 descriptors, and
 * shoal_live_next(timeout 0) on each readable one until SHOAL_ETIMEDOUT.  The events each sample must
 * produce are known beforehand (the generator's copy of the data is kept
 * up to date), so a live query that delivers later than the drain
 * (events_late), never (events_missing) or what it should not
 * (events_unexpected) is reported, not silently timed.  Floors: the
 * same changes committed with no live query open (commit_floor_us), and a
 * drain pass with nothing to deliver (idle_drain_us).  Measured at N/10 and
 * at N documents (10,000 and 100,000 by default).
 *
 * Index upkeep: commits setting store_id of a random document, in blocks
 * alternating between the store_id index present and dropped (the
 * category index stays), so drift of a busy machine hits both alike.
 *
 * Everything runs in one process (the figures are times, not memory), in
 * a temp dir under $TMPDIR that is removed at the end.  A per-phase time
 * budget stops timing early (the lines say how many runs were timed) so
 * the default size finishes in about three minutes on two busy cores.
 *
 * Rejected: a forked child per engine (as `commits` does) - it would make
 * each engine reload the data, tripling the load time, for memory figures
 * this benchmark does not report.
 */
#include "bench.h"

#include <math.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

#define COLL "products"

enum {
    NCATS = 20,
    NSIZES = 10,
    NSHAPES = 4,
    NENGINES = 4,
    NLIVE = 100,
    LOAD_BATCH = 1000,
    MIN_RUNS = 3,
    ID_BYTES = 24 /* "p" and up to 20 digits */
};

/* Time budgets (ns) that stop a phase early on a slow machine. */
static const uint64_t shape_budget_ns = 20ull * 1000000000u;
static const uint64_t live_budget_ns = 15ull * 1000000000u;
static const uint64_t commit_budget_ns = 8ull * 1000000000u;

static const char *const cats[NCATS] = {
    "jeans",   "shirts",  "dresses", "jackets", "shoes",  "socks",    "hats",
    "scarves", "gloves",  "belts",   "skirts",  "shorts", "sweaters", "coats",
    "boots",   "sandals", "ties",    "suits",   "bags",   "watches",
};
static const int sizes[NSIZES] = { 2, 4, 6, 8, 10, 12, 14, 16, 18, 20 };
static const char *const engine_name[NENGINES] = { "shoal", "sqlite-typed", "sqlite-json",
                                                   "sqlite-json-fields" };
enum {
    E_SHOAL,
    E_TYPED,
    E_JSON,
    E_JSONF /* sqlite-json, each field read with json_extract: no target */
};

/* The constants for shapes 1-3. */
#define Q1_CAT   0 /* "jeans" */
#define Q1_SIZE  8
#define Q1_MAXP  40.0
#define Q2_STORE 12
#define Q3_MAXP  6.0

/* One generated product: the reference copy every engine is checked
 * against. */
typedef struct prod {
    double price;
    int64_t stock;
    uint8_t cat;   /* index into cats */
    uint8_t size;  /* the size itself */
    uint8_t store; /* store_id */
    char name[40];
} prod;

/* Keeps the work of reading results from being optimised away. */
static volatile uint64_t sink;

static uint64_t
rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t
rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

static double
rand_price(uint64_t *s)
{
    return (double)(500 + rng_below(s, 9501)) / 100.0;
}

static void
gen_prod(uint64_t *s, prod *p)
{
    p->cat = (uint8_t)rng_below(s, NCATS);
    p->size = (uint8_t)sizes[rng_below(s, NSIZES)];
    p->price = rand_price(s);
    p->store = (uint8_t)rng_below(s, 100);
    p->stock = 1 + (int64_t)rng_below(s, 999);
    snprintf(p->name, sizeof p->name, "%s model %05u", cats[p->cat],
             (unsigned)rng_below(s, 100000));
}

static void
doc_id(char *buf, size_t n, size_t i)
{
    snprintf(buf, n, "p%07zu", i);
}

static double
us_since(uint64_t t0)
{
    return (double)(shoal__bench_now_ns() - t0) / 1e3;
}

static double
p99(double *v, size_t n) /* v sorted */
{
    size_t k;

    if (n == 0)
        return 0.0;
    k = (size_t)ceil(0.99 * (double)n);
    return v[k ? k - 1 : 0];
}

static int
shoal_fail(const char *what, shoal_err e, shoal_replica *r)
{
    fprintf(stderr, "shoal-bench query: %s: %s (%s)\n", what, shoal_strerror(e),
            r ? shoal_replica_errmsg(r) : "");
    return -1;
}

static int
sql_fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "shoal-bench query: sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    return -1;
}

/* ------------------------------------------------------ shoal side */

static shoal_value
v_str(const char *s)
{
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = strlen(s) };
    return v;
}

static shoal_value
v_int(int64_t i)
{
    shoal_value v = { .type = SHOAL_T_INT, .i = i };
    return v;
}

static shoal_value
v_double(double d)
{
    shoal_value v = { .type = SHOAL_T_DOUBLE, .d = d };
    return v;
}

static int
open_replica(const char *dir, shoal_replica **out)
{
    shoal_options *o = NULL;
    shoal_err e;

    *out = NULL;
    if ((e = shoal_options_new(&o)) != SHOAL_OK || (e = shoal_options_set_durable(o, false)) ||
        (e = shoal_replica_open(out, dir, o)) != SHOAL_OK) {
        shoal_options_free(o);
        return shoal_fail("shoal_replica_open", e, NULL);
    }
    shoal_options_free(o);
    return 0;
}

/* Load docs[0..n) in transactions of LOAD_BATCH documents, flush, then
 * add the two indexes.  Times in *load_ms and *index_ms. */
static int
load_shoal(shoal_replica *r, const prod *docs, size_t n, double *load_ms, double *index_ms)
{
    uint64_t t0 = shoal__bench_now_ns();
    size_t i = 0;
    shoal_err e;

    while (i < n) {
        shoal_txn *t = NULL;
        size_t k;

        if ((e = shoal_txn_begin(r, &t)) != SHOAL_OK)
            return shoal_fail("shoal_txn_begin", e, r);
        for (k = 0; k < LOAD_BATCH && i < n; k++, i++) {
            const prod *p = &docs[i];
            shoal_value cat = v_str(cats[p->cat]), size = v_int(p->size),
                        price = v_double(p->price), store = v_int(p->store), name = v_str(p->name);
            char id[ID_BYTES];

            doc_id(id, sizeof id, i);
            if ((e = shoal_txn_set(t, COLL, id, "category", &cat)) ||
                (e = shoal_txn_set(t, COLL, id, "size", &size)) ||
                (e = shoal_txn_set(t, COLL, id, "price", &price)) ||
                (e = shoal_txn_set(t, COLL, id, "store_id", &store)) ||
                (e = shoal_txn_set(t, COLL, id, "name", &name)) ||
                (e = shoal_txn_counter_add(t, COLL, id, "stock", p->stock))) {
                shoal_txn_abort(t);
                return shoal_fail("shoal_txn_set", e, r);
            }
        }
        if ((e = shoal_txn_commit(t)) != SHOAL_OK)
            return shoal_fail("shoal_txn_commit (load)", e, r);
    }
    if ((e = shoal_replica_flush(r)) != SHOAL_OK)
        return shoal_fail("shoal_replica_flush", e, r);
    *load_ms = us_since(t0) / 1e3;
    t0 = shoal__bench_now_ns();
    if ((e = shoal_index_add(r, COLL, "category")) != SHOAL_OK ||
        (e = shoal_index_add(r, COLL, "store_id")) != SHOAL_OK)
        return shoal_fail("shoal_index_add", e, r);
    if ((e = shoal_replica_flush(r)) != SHOAL_OK)
        return shoal_fail("shoal_replica_flush", e, r);
    *index_ms = us_since(t0) / 1e3;
    return 0;
}

static void
fold_value(const shoal_value *v)
{
    switch (v->type) {
    case SHOAL_T_BOOL: sink += v->b; break;
    case SHOAL_T_INT: sink += (uint64_t)v->i; break;
    case SHOAL_T_DOUBLE: sink += (uint64_t)(int64_t)v->d; break;
    case SHOAL_T_STR:
    case SHOAL_T_BYTES: sink += v->len + (v->len ? v->ptr[0] : 0); break;
    default: break;
    }
}

/* Read every field of d through the accessors. */
static int
read_doc(const shoal_doc *d)
{
    size_t n = shoal_doc_field_count(d), j;

    for (j = 0; j < n; j++) {
        const char *name = shoal_doc_field_name(d, j);
        shoal_value v;
        int64_t c;
        size_t len;

        sink += (uint8_t)name[0];
        switch (shoal_doc_field_kind(d, j)) {
        case SHOAL_K_REGISTER:
            if (shoal_doc_field_value(d, j, &v) != SHOAL_OK)
                return -1;
            fold_value(&v);
            break;
        case SHOAL_K_COUNTER:
            if (shoal_doc_field_counter(d, j, &c) != SHOAL_OK)
                return -1;
            sink += (uint64_t)c;
            break;
        case SHOAL_K_LIST:
            if (shoal_doc_field_list_len(d, j, &len) != SHOAL_OK)
                return -1;
            sink += len;
            break;
        }
    }
    return 0;
}

/* A compiled query with its parameters bound, per shape. */
static int
shoal_shape_query(shoal_replica *r, int shape, shoal_query **out)
{
    static const char *const where[NSHAPES] = {
        "category == :cat AND size == :size AND price < :maxp",
        "store_id == :store",
        "price < :maxp",
        NULL,
    };
    shoal_value cat = v_str(cats[Q1_CAT]), size = v_int(Q1_SIZE), maxp1 = v_double(Q1_MAXP),
                store = v_int(Q2_STORE), maxp3 = v_double(Q3_MAXP);
    shoal_query *q = NULL;
    shoal_err e;

    *out = NULL;
    if ((e = shoal_query_new(r, COLL, where[shape], &q)) != SHOAL_OK)
        return shoal_fail("shoal_query_new", e, r);
    if (shape == 0) {
        if ((e = shoal_query_bind(q, "cat", &cat)) == SHOAL_OK &&
            (e = shoal_query_bind(q, "size", &size)) == SHOAL_OK)
            e = shoal_query_bind(q, "maxp", &maxp1);
    } else if (shape == 1) {
        e = shoal_query_bind(q, "store", &store);
    } else if (shape == 2) {
        e = shoal_query_bind(q, "maxp", &maxp3);
    }
    if (e != SHOAL_OK) {
        shoal_query_free(q);
        return shoal_fail("shoal_query_bind", e, r);
    }
    *out = q;
    return 0;
}

/* One group of shape 4, as every engine reports it. */
typedef struct group {
    int64_t count, sum_stock;
    double min_price;
    bool seen;
} group;

static int
cat_index(const uint8_t *p, size_t len)
{
    int k;

    for (k = 0; k < NCATS; k++)
        if (strlen(cats[k]) == len && memcmp(cats[k], p, len) == 0)
            return k;
    return -1;
}

static const char *const agg_group[] = { "category" };
static const shoal_aggregate_spec agg_spec[] = {
    { SHOAL_AGG_COUNT, NULL },
    { SHOAL_AGG_SUM, "stock" },
    { SHOAL_AGG_MIN, "price" },
};

/* Run shape on shoal; *rows = rows returned (groups for shape 4); groups
 * (if not NULL) receives shape 4's results. */
static int
shoal_run(shoal_replica *r, shoal_query *q, int shape, uint64_t *rows, group *groups)
{
    shoal_err e;

    if (shape < 3) {
        shoal_rows *rs = NULL;
        size_t n, i;

        if ((e = shoal_find(r, q, &rs)) != SHOAL_OK)
            return shoal_fail("shoal_find", e, r);
        n = shoal_rows_count(rs);
        for (i = 0; i < n; i++) {
            sink += (uint8_t)shoal_rows_id(rs, i)[1];
            if (read_doc(shoal_rows_doc(rs, i)) != 0) {
                shoal_rows_free(rs);
                return shoal_fail("reading a row", SHOAL_EINVAL, r);
            }
        }
        shoal_rows_free(rs);
        *rows = n;
    } else {
        shoal_groups *g = NULL;
        size_t n, i, j;

        if ((e = shoal_aggregate(r, q, agg_group, 1, agg_spec, 3, &g)) != SHOAL_OK)
            return shoal_fail("shoal_aggregate", e, r);
        n = shoal_groups_count(g);
        for (i = 0; i < n; i++) {
            shoal_value key, val[3];

            shoal_groups_key(g, i, 0, &key);
            fold_value(&key);
            for (j = 0; j < 3; j++) {
                shoal_groups_value(g, i, j, &val[j]);
                fold_value(&val[j]);
            }
            if (groups && key.type == SHOAL_T_STR) {
                int k = cat_index(key.ptr, key.len);

                if (k >= 0 && val[0].type == SHOAL_T_INT && val[1].type == SHOAL_T_INT &&
                    val[2].type == SHOAL_T_DOUBLE) {
                    groups[k].count = val[0].i;
                    groups[k].sum_stock = val[1].i;
                    groups[k].min_price = val[2].d;
                    groups[k].seen = true;
                }
            }
        }
        shoal_groups_free(g);
        *rows = n;
    }
    return 0;
}

/* ----------------------------------------------------- SQLite side */

static int
sql_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "shoal-bench query: sqlite: %s: %s\n", sql, err ? err : "");
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int
sql_open(const char *path, sqlite3 **out)
{
    *out = NULL;
    if (sqlite3_open(path, out) != SQLITE_OK)
        return sql_fail(*out, "open");
    /* cache_size -65536: 64 MiB, more than either database. */
    return sql_exec(*out, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA cache_size=-65536;");
}

static void
json_doc(char *buf, size_t n, const prod *p)
{
    snprintf(buf, n,
             "{\"category\":\"%s\",\"size\":%d,\"price\":%.2f,\"store_id\":%d,\"stock\":%lld,"
             "\"name\":\"%s\"}",
             cats[p->cat], p->size, p->price, p->store, (long long)p->stock, p->name);
}

/* Load docs into db as typed columns (json false) or JSON documents; same
 * batches as shoal; indexes after loading, then checkpoint and ANALYZE. */
static int
load_sqlite(sqlite3 *db, bool json, const prod *docs, size_t n, double *load_ms, double *index_ms)
{
    const char *create = json ? "CREATE TABLE docs(id TEXT PRIMARY KEY, doc TEXT NOT NULL)"
                              : "CREATE TABLE products(id TEXT PRIMARY KEY, category TEXT NOT NULL,"
                                " size INTEGER NOT NULL, price REAL NOT NULL,"
                                " store_id INTEGER NOT NULL, stock INTEGER NOT NULL,"
                                " name TEXT NOT NULL)";
    const char *insert = json ? "INSERT INTO docs VALUES(?1, ?2)"
                              : "INSERT INTO products VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    const char *index = json
                            ? "CREATE INDEX docs_category ON docs(json_extract(doc, '$.category'));"
                              "CREATE INDEX docs_store ON docs(json_extract(doc, '$.store_id'));"
                            : "CREATE INDEX products_category ON products(category);"
                              "CREATE INDEX products_store ON products(store_id);";
    sqlite3_stmt *st = NULL;
    uint64_t t0 = shoal__bench_now_ns();
    size_t i;

    if (sql_exec(db, create) != 0)
        return -1;
    if (sqlite3_prepare_v2(db, insert, -1, &st, NULL) != SQLITE_OK)
        return sql_fail(db, insert);
    for (i = 0; i < n; i++) {
        const prod *p = &docs[i];
        char id[ID_BYTES], doc[256];

        if (i % LOAD_BATCH == 0 && sql_exec(db, "BEGIN") != 0)
            goto fail;
        doc_id(id, sizeof id, i);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (json) {
            json_doc(doc, sizeof doc, p);
            sqlite3_bind_text(st, 2, doc, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_text(st, 2, cats[p->cat], -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 3, p->size);
            sqlite3_bind_double(st, 4, p->price);
            sqlite3_bind_int(st, 5, p->store);
            sqlite3_bind_int64(st, 6, p->stock);
            sqlite3_bind_text(st, 7, p->name, -1, SQLITE_TRANSIENT);
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            sql_fail(db, "insert");
            goto fail;
        }
        if ((i % LOAD_BATCH == LOAD_BATCH - 1 || i == n - 1) && sql_exec(db, "COMMIT") != 0)
            goto fail;
    }
    sqlite3_finalize(st);
    *load_ms = us_since(t0) / 1e3;
    t0 = shoal__bench_now_ns();
    if (sql_exec(db, index) != 0 || sql_exec(db, "ANALYZE") != 0 ||
        sql_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)") != 0)
        return -1;
    *index_ms = us_since(t0) / 1e3;
    return 0;
fail:
    sqlite3_finalize(st);
    return -1;
}

static const char *const typed_sql[NSHAPES] = {
    "SELECT id, category, size, price, store_id, stock, name FROM products"
    " WHERE category = ?1 AND size = ?2 AND price < ?3",
    "SELECT id, category, size, price, store_id, stock, name FROM products WHERE store_id = ?1",
    "SELECT id, category, size, price, store_id, stock, name FROM products WHERE price < ?1",
    "SELECT category, count(*), sum(stock), min(price) FROM products GROUP BY category",
};
static const char *const json_sql[NSHAPES] = {
    "SELECT id, doc FROM docs WHERE json_extract(doc, '$.category') = ?1"
    " AND json_extract(doc, '$.size') = ?2 AND json_extract(doc, '$.price') < ?3",
    "SELECT id, doc FROM docs WHERE json_extract(doc, '$.store_id') = ?1",
    "SELECT id, doc FROM docs WHERE json_extract(doc, '$.price') < ?1",
    "SELECT json_extract(doc, '$.category') AS c, count(*), sum(json_extract(doc, '$.stock')),"
    " min(json_extract(doc, '$.price')) FROM docs GROUP BY c",
};

/* sqlite-json-fields: the same table and predicates as sqlite-json, but
 * SQLite parses each matching document and returns its fields typed, the
 * work shoal's rows include.  Shape 4 is the same as sqlite-json's. */
static const char *const jsonf_sql[NSHAPES] = {
    "SELECT id, json_extract(doc, '$.category'), json_extract(doc, '$.size'),"
    " json_extract(doc, '$.price'), json_extract(doc, '$.store_id'),"
    " json_extract(doc, '$.stock'), json_extract(doc, '$.name') FROM docs"
    " WHERE json_extract(doc, '$.category') = ?1 AND json_extract(doc, '$.size') = ?2"
    " AND json_extract(doc, '$.price') < ?3",
    "SELECT id, json_extract(doc, '$.category'), json_extract(doc, '$.size'),"
    " json_extract(doc, '$.price'), json_extract(doc, '$.store_id'),"
    " json_extract(doc, '$.stock'), json_extract(doc, '$.name') FROM docs"
    " WHERE json_extract(doc, '$.store_id') = ?1",
    "SELECT id, json_extract(doc, '$.category'), json_extract(doc, '$.size'),"
    " json_extract(doc, '$.price'), json_extract(doc, '$.store_id'),"
    " json_extract(doc, '$.stock'), json_extract(doc, '$.name') FROM docs"
    " WHERE json_extract(doc, '$.price') < ?1",
    NULL,
};

static bool
engine_has_shape(int e, int shape)
{
    return !(e == E_JSONF && shape == 3);
}

/* Print SQLite's plan of sql to stderr (which index it uses). */
static void
sql_plan(sqlite3 *db, const char *label, const char *sql)
{
    char buf[1024];
    sqlite3_stmt *st = NULL;

    snprintf(buf, sizeof buf, "EXPLAIN QUERY PLAN %s", sql);
    if (sqlite3_prepare_v2(db, buf, -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW)
        fprintf(stderr, "  plan %s: %s\n", label, (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
}

/* The statement of engine e (E_TYPED, E_JSON, E_JSONF) for shape. */
static int
sql_prepare_shape(sqlite3 *db, int e, int shape, sqlite3_stmt **out)
{
    const char *sql = e == E_TYPED  ? typed_sql[shape]
                      : e == E_JSON ? json_sql[shape]
                                    : jsonf_sql[shape];
    char label[48];

    *out = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, out, NULL) != SQLITE_OK)
        return sql_fail(db, sql);
    if (shape == 0) {
        sqlite3_bind_text(*out, 1, cats[Q1_CAT], -1, SQLITE_STATIC);
        sqlite3_bind_int(*out, 2, Q1_SIZE);
        sqlite3_bind_double(*out, 3, Q1_MAXP);
    } else if (shape == 1) {
        sqlite3_bind_int(*out, 1, Q2_STORE);
    } else if (shape == 2) {
        sqlite3_bind_double(*out, 1, Q3_MAXP);
    }
    snprintf(label, sizeof label, "%s shape %d", engine_name[e], shape + 1);
    sql_plan(db, label, sql);
    return 0;
}

/* Step every row of st and read every column; shape 4's groups into
 * groups (if not NULL). */
static int
sql_run(sqlite3 *db, sqlite3_stmt *st, int shape, uint64_t *rows, group *groups)
{
    uint64_t n = 0;
    int rc, ncol = sqlite3_column_count(st);

    sqlite3_reset(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int c;

        for (c = 0; c < ncol; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER: sink += (uint64_t)sqlite3_column_int64(st, c); break;
            case SQLITE_FLOAT: sink += (uint64_t)(int64_t)sqlite3_column_double(st, c); break;
            case SQLITE_TEXT: {
                const unsigned char *t = sqlite3_column_text(st, c);
                int len = sqlite3_column_bytes(st, c);

                sink += (uint64_t)len + (len ? t[0] : 0);
                break;
            }
            default: break;
            }
        }
        if (shape == 3 && groups) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            int k = t ? cat_index(t, (size_t)sqlite3_column_bytes(st, 0)) : -1;

            if (k >= 0) {
                groups[k].count = sqlite3_column_int64(st, 1);
                groups[k].sum_stock = sqlite3_column_int64(st, 2);
                groups[k].min_price = sqlite3_column_double(st, 3);
                groups[k].seen = true;
            }
        }
        n++;
    }
    if (rc != SQLITE_DONE)
        return sql_fail(db, "step");
    *rows = n;
    return 0;
}

/* ------------------------------------------------------------ queries */

typedef struct engines {
    shoal_replica *r;
    sqlite3 *db[2]; /* typed, json */
    shoal_query *q[NSHAPES];
    sqlite3_stmt *st[NENGINES - 1][NSHAPES]; /* by engine - 1 */
} engines;

static int
engine_run(engines *en, int e, int shape, uint64_t *rows, group *groups)
{
    if (e == E_SHOAL)
        return shoal_run(en->r, en->q[shape], shape, rows, groups);
    return sql_run(en->db[e == E_TYPED ? 0 : 1], en->st[e - 1][shape], shape, rows, groups);
}

/* Expected rows of shapes 1-3 and the groups of shape 4. */
static uint64_t
expected_rows(const prod *docs, size_t n, int shape, group *groups)
{
    uint64_t c = 0;
    size_t i;

    if (groups)
        memset(groups, 0, NCATS * sizeof *groups);
    for (i = 0; i < n; i++) {
        const prod *p = &docs[i];

        if (shape == 0)
            c += p->cat == Q1_CAT && p->size == Q1_SIZE && p->price < Q1_MAXP;
        else if (shape == 1)
            c += p->store == Q2_STORE;
        else if (shape == 2)
            c += p->price < Q3_MAXP;
        else if (groups) {
            group *g = &groups[p->cat];

            if (!g->seen || p->price < g->min_price)
                g->min_price = p->price;
            g->seen = true;
            g->count++;
            g->sum_stock += p->stock;
        }
    }
    if (shape == 3 && groups) {
        int k;

        for (k = 0; k < NCATS; k++)
            c += groups[k].seen;
    }
    return c;
}

typedef struct shape_result {
    double median_us[NENGINES];
    size_t runs;
    uint64_t rows;
} shape_result;

/* Check, warm up and time one shape on every engine, round-robin. */
static int
time_shape(engines *en, const prod *docs, size_t ndocs, int shape, size_t runs, shape_result *out)
{
    group want[NCATS], got[NCATS];
    uint64_t want_rows = expected_rows(docs, ndocs, shape, want), rows, t0, start;
    double *us = calloc(NENGINES * runs, sizeof *us);
    size_t k, done = 0;
    int e, rc = -1;

    if (!us)
        return -1;
    for (e = 0; e < NENGINES; e++) {
        if (!engine_has_shape(e, shape))
            continue;
        memset(got, 0, sizeof got);
        if (engine_run(en, e, shape, &rows, got) != 0)
            goto out;
        if (rows != want_rows) {
            fprintf(stderr, "shoal-bench query: shape %d on %s: %llu rows, expected %llu\n",
                    shape + 1, engine_name[e], (unsigned long long)rows,
                    (unsigned long long)want_rows);
            goto out;
        }
        if (shape == 3) {
            int g;

            for (g = 0; g < NCATS; g++) {
                if (got[g].seen != want[g].seen || got[g].count != want[g].count ||
                    got[g].sum_stock != want[g].sum_stock ||
                    got[g].min_price != want[g].min_price) {
                    fprintf(stderr,
                            "shoal-bench query: shape 4 on %s: group %s is (%lld, %lld, %.2f),"
                            " expected (%lld, %lld, %.2f)\n",
                            engine_name[e], cats[g], (long long)got[g].count,
                            (long long)got[g].sum_stock, got[g].min_price, (long long)want[g].count,
                            (long long)want[g].sum_stock, want[g].min_price);
                    goto out;
                }
            }
        }
        /* Warm-up run (the check above was the first). */
        if (engine_run(en, e, shape, &rows, NULL) != 0)
            goto out;
    }
    start = shoal__bench_now_ns();
    for (k = 0; k < runs; k++) {
        for (e = 0; e < NENGINES; e++) {
            if (!engine_has_shape(e, shape))
                continue;
            t0 = shoal__bench_now_ns();
            if (engine_run(en, e, shape, &rows, NULL) != 0)
                goto out;
            us[e * runs + k] = us_since(t0);
        }
        done = k + 1;
        if (done >= MIN_RUNS && shoal__bench_now_ns() - start > shape_budget_ns)
            break;
    }
    if (done < runs)
        fprintf(stderr, "  shape %d: time budget reached after %zu runs of %zu\n", shape + 1, done,
                runs);
    for (e = 0; e < NENGINES; e++)
        out->median_us[e] =
            engine_has_shape(e, shape) ? shoal__bench_median(&us[e * runs], done) : 0.0;
    out->runs = done;
    out->rows = want_rows;
    rc = 0;
out:
    free(us);
    return rc;
}

/* ------------------------------------------------------- live queries */

enum {
    LQ_CAT,
    LQ_STORE,
    LQ_PRICE,
    LQ_COMBO
};

typedef struct lspec {
    int kind;
    uint8_t cat, size, store;
    double maxp;
} lspec;

static void
live_specs(lspec *s)
{
    int i;

    for (i = 0; i < NLIVE; i++) {
        int j = i / 4;

        memset(&s[i], 0, sizeof s[i]);
        s[i].kind = i % 4;
        switch (s[i].kind) {
        case LQ_CAT: s[i].cat = (uint8_t)(j % NCATS); break;
        case LQ_STORE: s[i].store = (uint8_t)((j * 4 + 1) % 100); break;
        case LQ_PRICE: s[i].maxp = 5.0 + 0.4 * j; break;
        case LQ_COMBO:
            s[i].cat = (uint8_t)((j * 3 + 1) % NCATS);
            s[i].size = (uint8_t)sizes[j % NSIZES];
            s[i].maxp = 20.0 + 3.0 * j;
            break;
        }
    }
}

static bool
lspec_match(const lspec *s, const prod *p)
{
    switch (s->kind) {
    case LQ_CAT: return p->cat == s->cat;
    case LQ_STORE: return p->store == s->store;
    case LQ_PRICE: return p->price < s->maxp;
    default: return p->cat == s->cat && p->size == s->size && p->price < s->maxp;
    }
}

static int
live_open_spec(shoal_replica *r, const lspec *s, shoal_live **out)
{
    static const char *const where[] = {
        "category == :cat",
        "store_id == :store",
        "price < :maxp",
        "category == :cat AND size == :size AND price < :maxp",
    };
    shoal_value cat = v_str(cats[s->cat]), size = v_int(s->size), store = v_int(s->store),
                maxp = v_double(s->maxp);
    shoal_query *q = NULL;
    shoal_err e;

    *out = NULL;
    if ((e = shoal_query_new(r, COLL, where[s->kind], &q)) != SHOAL_OK)
        return shoal_fail("shoal_query_new (live)", e, r);
    switch (s->kind) {
    case LQ_CAT: e = shoal_query_bind(q, "cat", &cat); break;
    case LQ_STORE: e = shoal_query_bind(q, "store", &store); break;
    case LQ_PRICE: e = shoal_query_bind(q, "maxp", &maxp); break;
    default:
        if ((e = shoal_query_bind(q, "cat", &cat)) == SHOAL_OK &&
            (e = shoal_query_bind(q, "size", &size)) == SHOAL_OK)
            e = shoal_query_bind(q, "maxp", &maxp);
        break;
    }
    if (e == SHOAL_OK)
        e = shoal_live_open(r, q, out);
    shoal_query_free(q);
    if (e != SHOAL_OK)
        return shoal_fail("shoal_live_open", e, r);
    return 0;
}

/* Read one event the way an application would (kind, id, document). */
static int
consume_event(shoal_live_event *ev)
{
    const shoal_doc *d;
    const char *id = shoal_live_event_id(ev);
    int rc = 0;

    sink += (uint64_t)shoal_live_event_kind(ev) + (uint8_t)id[0];
    d = shoal_live_event_doc(ev);
    if (d)
        rc = read_doc(d);
    shoal_live_event_free(ev);
    return rc;
}

/* Drain the live queries the way an event loop does: one poll() over
 * every live query's descriptor (timeout 0), then shoal_live_next(timeout
 * 0) on each readable one until it returns SHOAL_ETIMEDOUT.  One pass is
 * enough because the events of this handle's own commit are queued before
 * the commit returns (core/live.c); an event that came later would be
 * caught by the untimed check that follows (drain_late).  Returns the
 * number of events, or -1 on error. */
static long
drain_all(shoal_live **lv, shoal_replica *r)
{
    struct pollfd pf[NLIVE];
    long n = 0;
    int i;

    for (i = 0; i < NLIVE; i++) {
        pf[i].fd = shoal_live_fd(lv[i]);
        pf[i].events = POLLIN;
        pf[i].revents = 0;
    }
    if (poll(pf, NLIVE, 0) < 0)
        return shoal_fail("poll", SHOAL_ESTORE, r);
    for (i = 0; i < NLIVE; i++) {
        shoal_live_event *ev = NULL;
        shoal_err e;

        if (!(pf[i].revents & POLLIN))
            continue;
        while ((e = shoal_live_next(lv[i], 0, &ev)) == SHOAL_OK) {
            n++;
            if (consume_event(ev) != 0)
                return shoal_fail("reading a live event", SHOAL_EINVAL, r);
        }
        if (e != SHOAL_ETIMEDOUT)
            return shoal_fail("shoal_live_next", e, r);
    }
    return n;
}

/* Events that arrive within 50 ms after a drain (untimed). */
static long
drain_late(shoal_live **lv, shoal_replica *r)
{
    struct pollfd pf[NLIVE];
    long n = 0;
    int i;

    for (i = 0; i < NLIVE; i++) {
        pf[i].fd = shoal_live_fd(lv[i]);
        pf[i].events = POLLIN;
    }
    while (poll(pf, NLIVE, 50) > 0) {
        long k = drain_all(lv, r);

        if (k < 0)
            return -1;
        if (k == 0)
            break;
        n += k;
    }
    return n;
}

typedef struct live_result {
    double open_ms, idle_drain_us, commit_floor_us, commit_floor_p99_us, median_us, p99_us;
    size_t changes;
    long expected, events, late, missing, unexpected;
} live_result;

/* Set one field of doc i to a new value (mirror updated); indexed is set
 * when that field is category or store_id. */
static int
change_one(shoal_replica *r, prod *p, size_t i, int field, uint64_t *rng)
{
    shoal_txn *t = NULL;
    shoal_value v;
    const char *name;
    char id[ID_BYTES];
    shoal_err e;

    doc_id(id, sizeof id, i);
    switch (field) {
    case 0: {
        double np;

        do
            np = rand_price(rng);
        while (np == p->price);
        p->price = np;
        v = v_double(np);
        name = "price";
        break;
    }
    case 1:
        p->store = (uint8_t)((p->store + 1 + rng_below(rng, 99)) % 100);
        v = v_int(p->store);
        name = "store_id";
        break;
    case 2:
        p->cat = (uint8_t)((p->cat + 1 + rng_below(rng, NCATS - 1)) % NCATS);
        v = v_str(cats[p->cat]);
        name = "category";
        break;
    case 3: {
        int cur = p->size / 2 - 1; /* sizes[cur] == p->size */
        int s = (cur + 1 + (int)rng_below(rng, NSIZES - 1)) % NSIZES;

        p->size = (uint8_t)sizes[s];
        v = v_int(p->size);
        name = "size";
        break;
    }
    default:
        snprintf(p->name, sizeof p->name, "%s model %05u", cats[p->cat],
                 (unsigned)rng_below(rng, 100000));
        v = v_str(p->name);
        name = "name";
        break;
    }
    if ((e = shoal_txn_begin(r, &t)) != SHOAL_OK)
        return shoal_fail("shoal_txn_begin", e, r);
    if ((e = shoal_txn_set(t, COLL, id, name, &v)) != SHOAL_OK) {
        shoal_txn_abort(t);
        return shoal_fail("shoal_txn_set", e, r);
    }
    if ((e = shoal_txn_commit(t)) != SHOAL_OK)
        return shoal_fail("shoal_txn_commit", e, r);
    return 0;
}

static int
live_bench(shoal_replica *r, prod *docs, size_t ndocs, size_t changes, uint64_t *rng,
           live_result *res)
{
    shoal_live *lv[NLIVE] = { NULL };
    lspec spec[NLIVE];
    uint64_t initial[NLIVE] = { 0 };
    double *us = calloc(changes + 200, sizeof *us);
    uint64_t t0, start;
    size_t i, warm = changes < 100 ? changes : 100, done = 0, late_waits = 0;
    int rc = -1, l;

    memset(res, 0, sizeof *res);
    if (!us)
        return -1;
    live_specs(spec);

    /* Floor: the same kind of change with no live query open. */
    start = shoal__bench_now_ns();
    for (i = 0; i < warm + changes; i++) {
        size_t d = (size_t)rng_below(rng, ndocs);
        int field = (int)rng_below(rng, 5);

        t0 = shoal__bench_now_ns();
        if (change_one(r, &docs[d], d, field, rng) != 0)
            goto out;
        if (i >= warm) {
            us[i - warm] = us_since(t0);
            done = i - warm + 1;
            if (done >= 100 && shoal__bench_now_ns() - start > live_budget_ns)
                break;
        }
    }
    res->commit_floor_us = shoal__bench_median(us, done); /* sorts us */
    res->commit_floor_p99_us = p99(us, done);
    done = 0;

    /* Open, and read each initial result up to READY. */
    for (l = 0; l < NLIVE; l++)
        for (i = 0; i < ndocs; i++)
            initial[l] += lspec_match(&spec[l], &docs[i]);
    t0 = shoal__bench_now_ns();
    for (l = 0; l < NLIVE; l++) {
        uint64_t want = initial[l], got = 0;
        bool ready = false;

        if (live_open_spec(r, &spec[l], &lv[l]) != 0)
            goto out;
        while (!ready) {
            shoal_live_event *ev = NULL;
            shoal_err e = shoal_live_next(lv[l], 10000, &ev);

            if (e != SHOAL_OK) {
                shoal_fail("shoal_live_next (initial result)", e, r);
                goto out;
            }
            if (shoal_live_event_kind(ev) == SHOAL_LIVE_READY)
                ready = true;
            else
                got++;
            if (consume_event(ev) != 0)
                goto out;
        }
        if (got != want) {
            fprintf(stderr,
                    "shoal-bench query: live query %d: %llu initial documents, expected %llu\n", l,
                    (unsigned long long)got, (unsigned long long)want);
            goto out;
        }
    }
    res->open_ms = us_since(t0) / 1e3;

    /* Floor: a drain pass with nothing to deliver. */
    for (i = 0; i < 200; i++) {
        long k;

        t0 = shoal__bench_now_ns();
        k = drain_all(lv, r);
        us[i] = us_since(t0);
        if (k != 0) {
            fprintf(stderr, "shoal-bench query: %ld live events with no change\n", k);
            goto out;
        }
    }
    res->idle_drain_us = shoal__bench_median(us, 200);

    start = shoal__bench_now_ns();
    for (i = 0; i < warm + changes; i++) {
        size_t d = (size_t)rng_below(rng, ndocs);
        int field = (int)rng_below(rng, 5);
        bool before[NLIVE];
        long want = 0, got, late;
        prod *p = &docs[d];

        for (l = 0; l < NLIVE; l++)
            before[l] = lspec_match(&spec[l], p);
        t0 = shoal__bench_now_ns();
        if (change_one(r, p, d, field, rng) != 0)
            goto out;
        got = drain_all(lv, r);
        if (i >= warm)
            us[i - warm] = us_since(t0);
        if (got < 0)
            goto out;
        for (l = 0; l < NLIVE; l++)
            want += before[l] || lspec_match(&spec[l], p);
        /* Wait for missing events (untimed), at most 20 times a run, so a
         * live query that delivers asynchronously cannot stall the run. */
        late = 0;
        if (got < want && late_waits < 20) {
            late_waits++;
            if ((late = drain_late(lv, r)) < 0)
                goto out;
        }
        if (i >= warm) {
            res->expected += want;
            res->events += got;
            res->late += late;
            if (got + late > want)
                res->unexpected += got + late - want;
            else
                res->missing += want - got - late;
            done = i - warm + 1;
            if (done >= 100 && shoal__bench_now_ns() - start > live_budget_ns)
                break;
        }
    }
    if (done < changes)
        fprintf(stderr, "  live: time budget reached after %zu changes of %zu\n", done, changes);
    res->changes = done;
    res->median_us = shoal__bench_median(us, done); /* sorts us */
    res->p99_us = p99(us, done);
    rc = 0;
out:
    for (l = 0; l < NLIVE; l++)
        shoal_live_close(lv[l]);
    free(us);
    return rc;
}

/* ----------------------------------------------------- index upkeep */

/* count commits setting store_id of a random document; times into us. */
static int
store_commits(shoal_replica *r, prod *docs, size_t ndocs, size_t count, uint64_t *rng, double *us,
              size_t *done)
{
    uint64_t start = shoal__bench_now_ns();
    size_t i;

    *done = 0;
    for (i = 0; i < count; i++) {
        size_t d = (size_t)rng_below(rng, ndocs);
        uint64_t t0 = shoal__bench_now_ns();

        if (change_one(r, &docs[d], d, 1, rng) != 0)
            return -1;
        if (us)
            us[i] = us_since(t0);
        *done = i + 1;
        if (i + 1 >= 50 && shoal__bench_now_ns() - start > commit_budget_ns)
            break;
    }
    return 0;
}

typedef struct commit_result {
    double indexed_us, unindexed_us;
    size_t n_indexed, n_unindexed;
} commit_result;

static int
commit_bench(shoal_replica *r, prod *docs, size_t ndocs, size_t commits, uint64_t *rng,
             commit_result *res)
{
    size_t block = commits / 2 ? commits / 2 : 1, done, round;
    double *with = calloc(2 * block, sizeof *with), *without = calloc(2 * block, sizeof *without);
    shoal_err e;
    int rc = -1;

    memset(res, 0, sizeof *res);
    if (!with || !without)
        goto out;
    if (store_commits(r, docs, ndocs, 100, rng, NULL, &done) != 0) /* warm-up */
        goto out;
    for (round = 0; round < 2; round++) {
        if (store_commits(r, docs, ndocs, block, rng, with + res->n_indexed, &done) != 0)
            goto out;
        res->n_indexed += done;
        if ((e = shoal_index_drop(r, COLL, "store_id")) != SHOAL_OK) {
            shoal_fail("shoal_index_drop", e, r);
            goto out;
        }
        if (store_commits(r, docs, ndocs, block, rng, without + res->n_unindexed, &done) != 0)
            goto out;
        res->n_unindexed += done;
        if ((e = shoal_index_add(r, COLL, "store_id")) != SHOAL_OK) {
            shoal_fail("shoal_index_add", e, r);
            goto out;
        }
    }
    res->indexed_us = shoal__bench_median(with, res->n_indexed);
    res->unindexed_us = shoal__bench_median(without, res->n_unindexed);
    rc = 0;
out:
    free(with);
    free(without);
    return rc;
}

/* ------------------------------------------------------------ output */

static int targets_missed;

/* valid false: the figure did not measure what the target asks (live
 * events went missing), so the target is missed whatever the value. */
static void
target(const char *what, double value, double limit, bool valid)
{
    bool met = valid && value <= limit;

    printf("{\"bench\":\"query\",\"target\":\"%s\",\"value\":%.3f,\"limit\":%.2f,"
           "\"met\":%s%s}\n",
           what, value, limit, met ? "true" : "false", valid ? "" : ",\"valid\":false");
    fprintf(stderr, "  target %-44s %8.3f (limit %.2f)  %s\n", what, value, limit,
            met     ? "met"
            : valid ? "MISSED"
                    : "MISSED (events missing)");
    targets_missed += !met;
}

static double
ratio(double a, double b)
{
    return b > 0 ? a / b : 0.0;
}

int
shoal__bench_query(int argc, char **argv)
{
    size_t ndocs = 100000, runs = 50, small, i;
    uint64_t seed = 42, rng;
    char *session = NULL, path[4096];
    prod *docs = NULL, *small_docs = NULL;
    engines en;
    shape_result sr[NSHAPES];
    live_result lr[2];
    commit_result cr;
    shoal_replica *rs = NULL;
    double load_ms[NENGINES], index_ms[NENGINES];
    int status = 1, status_live = 0, s, e;

    memset(&en, 0, sizeof en);
    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--docs") == 0) {
            ndocs = (size_t)shoal__bench_parse_long("--docs", argv[++i]);
        } else if (strcmp(argv[i], "--runs") == 0) {
            runs = (size_t)shoal__bench_parse_long("--runs", argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0) {
            seed = (uint64_t)shoal__bench_parse_long("--seed", argv[++i]);
        } else {
            fprintf(stderr, "usage: shoal-bench query [--docs N] [--runs R] [--seed S]\n");
            return 2;
        }
    }
    if (ndocs < 100) {
        fprintf(stderr, "shoal-bench query: --docs is at least 100\n");
        return 2;
    }
    small = ndocs / 10;
    fprintf(stderr, "query: %zu documents, seed %llu, %zu runs per shape, sqlite %s\n", ndocs,
            (unsigned long long)seed, runs, sqlite3_libversion());

    docs = malloc(ndocs * sizeof *docs);
    small_docs = malloc(small * sizeof *small_docs);
    session = shoal__bench_mkdtemp("shoal-bench-query");
    if (!docs || !small_docs || !session)
        goto out;
    rng = seed;
    for (i = 0; i < ndocs; i++)
        gen_prod(&rng, &docs[i]);
    memcpy(small_docs, docs, small * sizeof *docs);

    /* Load the three stores (sqlite-json-fields reads the JSON database). */
    snprintf(path, sizeof path, "%s/shoal", session);
    if (open_replica(path, &en.r) != 0 ||
        load_shoal(en.r, docs, ndocs, &load_ms[E_SHOAL], &index_ms[E_SHOAL]) != 0)
        goto out;
    fprintf(stderr, "  loaded shoal: %.0f ms, indexes %.0f ms\n", load_ms[E_SHOAL],
            index_ms[E_SHOAL]);
    for (e = E_TYPED; e <= E_JSON; e++) {
        snprintf(path, sizeof path, "%s/%s.db", session, e == E_JSON ? "json" : "typed");
        if (sql_open(path, &en.db[e - 1]) != 0 ||
            load_sqlite(en.db[e - 1], e == E_JSON, docs, ndocs, &load_ms[e], &index_ms[e]) != 0)
            goto out;
        fprintf(stderr, "  loaded %s: %.0f ms, indexes %.0f ms\n", engine_name[e], load_ms[e],
                index_ms[e]);
    }
    for (e = 0; e <= E_JSON; e++)
        printf("{\"bench\":\"query\",\"load\":\"%s\",\"docs\":%zu,\"seed\":%llu,\"load_ms\":%.1f,"
               "\"index_ms\":%.1f}\n",
               engine_name[e], ndocs, (unsigned long long)seed, load_ms[e], index_ms[e]);

    /* The four shapes. */
    for (s = 0; s < NSHAPES; s++) {
        size_t r = s == 3 ? (runs / 5 > MIN_RUNS ? runs / 5 : MIN_RUNS) : runs;

        if (shoal_shape_query(en.r, s, &en.q[s]) != 0 ||
            sql_prepare_shape(en.db[0], E_TYPED, s, &en.st[0][s]) != 0 ||
            sql_prepare_shape(en.db[1], E_JSON, s, &en.st[1][s]) != 0 ||
            (engine_has_shape(E_JSONF, s) &&
             sql_prepare_shape(en.db[1], E_JSONF, s, &en.st[2][s]) != 0))
            goto out;
        if (time_shape(&en, docs, ndocs, s, r, &sr[s]) != 0)
            goto out;
        for (e = 0; e < NENGINES; e++) {
            if (!engine_has_shape(e, s))
                continue;
            printf("{\"bench\":\"query\",\"shape\":\"%d\",\"engine\":\"%s\",\"docs\":%zu,"
                   "\"seed\":%llu,\"rows\":%llu,\"runs\":%zu,\"median_us\":%.1f}\n",
                   s + 1, engine_name[e], ndocs, (unsigned long long)seed,
                   (unsigned long long)sr[s].rows, sr[s].runs, sr[s].median_us[e]);
            fprintf(stderr, "  shape %d %-18s %6llu rows  median %10.1f us\n", s + 1,
                    engine_name[e], (unsigned long long)sr[s].rows, sr[s].median_us[e]);
        }
        for (e = E_TYPED; e < NENGINES; e++)
            if (engine_has_shape(e, s))
                printf(
                    "{\"bench\":\"query\",\"shape\":\"%d\",\"ratio_vs\":\"%s\",\"value\":%.3f}\n",
                    s + 1, engine_name[e], ratio(sr[s].median_us[E_SHOAL], sr[s].median_us[e]));
    }
    for (s = 0; s < NSHAPES; s++) {
        shoal_query_free(en.q[s]);
        en.q[s] = NULL;
        for (e = 0; e < NENGINES - 1; e++) {
            sqlite3_finalize(en.st[e][s]);
            en.st[e][s] = NULL;
        }
    }
    for (e = 0; e < 2; e++) {
        sqlite3_close(en.db[e]);
        en.db[e] = NULL;
    }

    /* Live queries at N/10 (a replica of its own), then at N. */
    {
        size_t changes = runs * 40 > 200 ? runs * 40 : 200;
        double lm, im;

        snprintf(path, sizeof path, "%s/shoal-small", session);
        if (open_replica(path, &rs) != 0 || load_shoal(rs, small_docs, small, &lm, &im) != 0 ||
            live_bench(rs, small_docs, small, changes, &rng, &lr[0]) != 0)
            goto out;
        shoal_replica_close(rs);
        rs = NULL;
        if (live_bench(en.r, docs, ndocs, changes, &rng, &lr[1]) != 0)
            goto out;
        for (i = 0; i < 2; i++) {
            printf("{\"bench\":\"query\",\"live\":%d,\"docs\":%zu,\"seed\":%llu,\"changes\":%zu,"
                   "\"median_us\":%.1f,\"p99_us\":%.1f,\"commit_floor_us\":%.1f,"
                   "\"commit_floor_p99_us\":%.1f,"
                   "\"idle_drain_us\":%.1f,\"open_ms\":%.1f,\"events_expected\":%ld,"
                   "\"events\":%ld,\"events_late\":%ld,\"events_missing\":%ld,"
                   "\"events_unexpected\":%ld}\n",
                   NLIVE, i ? ndocs : small, (unsigned long long)seed, lr[i].changes,
                   lr[i].median_us, lr[i].p99_us, lr[i].commit_floor_us, lr[i].commit_floor_p99_us,
                   lr[i].idle_drain_us, lr[i].open_ms, lr[i].expected, lr[i].events, lr[i].late,
                   lr[i].missing, lr[i].unexpected);
            fprintf(stderr,
                    "  live x%d at %zu docs: median %.1f us, p99 %.1f us (commit alone %.1f us,"
                    " idle drain %.1f us), %ld events of %ld expected in the drain,"
                    " %ld late, %ld missing, %ld unexpected\n",
                    NLIVE, i ? ndocs : small, lr[i].median_us, lr[i].p99_us, lr[i].commit_floor_us,
                    lr[i].idle_drain_us, lr[i].events, lr[i].expected, lr[i].late, lr[i].missing,
                    lr[i].unexpected);
        }

        /* Index upkeep on the big replica (live queries closed). */
        if (commit_bench(en.r, docs, ndocs, changes, &rng, &cr) != 0)
            goto out;
        printf("{\"bench\":\"query\",\"commit\":\"store_id-indexed\",\"docs\":%zu,\"commits\":%zu,"
               "\"median_us\":%.1f}\n",
               ndocs, cr.n_indexed, cr.indexed_us);
        printf("{\"bench\":\"query\",\"commit\":\"store_id-unindexed\",\"docs\":%zu,"
               "\"commits\":%zu,\"median_us\":%.1f}\n",
               ndocs, cr.n_unindexed, cr.unindexed_us);
        fprintf(stderr, "  commit store_id: indexed %.1f us, unindexed %.1f us\n", cr.indexed_us,
                cr.unindexed_us);
    }

    /* Targets of issue 9, as ratios (value <= limit is met). */
    {
        char what[80];

        for (s = 0; s < NSHAPES; s++) {
            snprintf(what, sizeof what, "shape %d shoal/sqlite-json", s + 1);
            target(what, ratio(sr[s].median_us[E_SHOAL], sr[s].median_us[E_JSON]), 1.0, true);
        }
        for (s = 0; s < 2; s++) {
            snprintf(what, sizeof what, "shape %d shoal/sqlite-typed", s + 1);
            target(what, ratio(sr[s].median_us[E_SHOAL], sr[s].median_us[E_TYPED]), 2.0, true);
        }
        bool live_ok[2];

        for (i = 0; i < 2; i++) {
            live_ok[i] = !lr[i].late && !lr[i].missing && !lr[i].unexpected;
            snprintf(what, sizeof what, "live median us at %zu docs", i ? ndocs : small);
            target(what, lr[i].median_us, 50.0, live_ok[i]);
        }
        snprintf(what, sizeof what, "live median %zu docs/%zu docs", ndocs, small);
        target(what, ratio(lr[1].median_us, lr[0].median_us), 1.2, live_ok[0] && live_ok[1]);
        target("commit store_id indexed/unindexed", ratio(cr.indexed_us, cr.unindexed_us), 1.3,
               true);
    }
    for (i = 0; i < 2; i++) {
        if (lr[i].late || lr[i].missing || lr[i].unexpected) {
            fprintf(stderr,
                    "shoal-bench query: at %zu docs live queries delivered events late,"
                    " not at all or unexpectedly (events_late / events_missing /"
                    " events_unexpected); the live figures do not time them\n",
                    i ? ndocs : small);
            status_live = 1;
        }
    }
    fprintf(stderr, "query: %d target(s) missed; checksum %llu\n", targets_missed,
            (unsigned long long)sink);
    status = status_live;
out:
    for (s = 0; s < NSHAPES; s++) {
        shoal_query_free(en.q[s]);
        for (e = 0; e < NENGINES - 1; e++)
            sqlite3_finalize(en.st[e][s]);
    }
    for (e = 0; e < 2; e++)
        sqlite3_close(en.db[e]);
    shoal_replica_close(rs);
    shoal_replica_close(en.r);
    if (session)
        shoal__bench_rmtree(session);
    free(session);
    free(docs);
    free(small_docs);
    return status;
}
