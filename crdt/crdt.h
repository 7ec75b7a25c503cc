/*
 * crdt/crdt.h - the one interface header of the crdt module.
 *
 * Pure computation: no I/O, no clock reads, no randomness, no globals.
 * Callers pass in time, keys and buffers.  Other files in crdt/ are private
 * to the module; store/, transport/, core/ and tests include only this.
 * It includes base/base.h (the layer beneath crdt/: allocator, buffers,
 * big-endian, hex and UTF-8 helpers, the hash map, named sizes, key
 * builders), so whoever includes crdt.h has those too.
 *
 * Error returns are shoal_err values (from include/shoal.h) as int.
 */
#ifndef SHOAL_CRDT_CRDT_H
#define SHOAL_CRDT_CRDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h" /* allocator, buffers, byte helpers, hash map, sizes, keys */
#include "shoal.h"

/* ------------------------------------------------------------ MessagePack */

/* Writer: canonical encoding (smallest int form, float64 always) into a
 * shoal__buf, implemented with msgpack-c's packer.  Errors are sticky in
 * w->err (SHOAL_ENOMEM); check once at the end. */
typedef struct shoal__mpw {
    shoal__buf *out;
    int err;
} shoal__mpw;

void shoal__mpw_init(shoal__mpw *w, shoal__buf *out);
void shoal__mpw_nil(shoal__mpw *w);
void shoal__mpw_bool(shoal__mpw *w, bool v);
void shoal__mpw_uint(shoal__mpw *w, uint64_t v);
void shoal__mpw_int(shoal__mpw *w, int64_t v);
void shoal__mpw_double(shoal__mpw *w, double v);
void shoal__mpw_str(shoal__mpw *w, const void *p, size_t n);
void shoal__mpw_bin(shoal__mpw *w, const void *p, size_t n);
void shoal__mpw_array(shoal__mpw *w, uint32_t n);
void shoal__mpw_map(shoal__mpw *w, uint32_t n);
/* A scalar value (nil/bool/int/double/str/bin), or the REDACTED marker
 * (SHOAL_T_REDACTED: the fixext 1 bytes d4 01 00), which only state
 * encodings and query views hold. */
void shoal__mpw_value(shoal__mpw *w, const shoal_value *v);

/* Reader: bounded, never allocates, checks every declared length and count
 * against the bytes that remain before trusting it, and rejects
 * non-canonical forms.  Errors are sticky in r->err: SHOAL_ETRUNC (input
 * ends early), SHOAL_EPROTO (wrong type, non-canonical, bad UTF-8),
 * SHOAL_ETOOBIG (over a bound).  After an error every read returns zeroes. */
typedef struct shoal__mpr {
    const uint8_t *p;
    const uint8_t *end;
    int err;
    /* shoal__mpr_value also reads the REDACTED marker (state encodings and
     * query views; never a change body).  false after shoal__mpr_init. */
    bool redacted_ok;
} shoal__mpr;

void shoal__mpr_init(shoal__mpr *r, const uint8_t *p, size_t n);
/* Type of the next item without consuming it (SHOAL_T_* or -1 for
 * array/map/other/error). */
int shoal__mpr_peek(const shoal__mpr *r);
bool shoal__mpr_is_nil(const shoal__mpr *r);
void shoal__mpr_nil(shoal__mpr *r);
bool shoal__mpr_bool(shoal__mpr *r);
uint64_t shoal__mpr_uint(shoal__mpr *r); /* non-negative int */
int64_t shoal__mpr_int(shoal__mpr *r);
double shoal__mpr_double(shoal__mpr *r);
/* str: checked as UTF-8; at most max bytes else SHOAL_ETOOBIG.  *p points
 * into the input. */
size_t shoal__mpr_str(shoal__mpr *r, const uint8_t **p, size_t max);
size_t shoal__mpr_bin(shoal__mpr *r, const uint8_t **p, size_t max);
/* Array/map header: count must be <= max and <= remaining bytes / min_item
 * (each item takes at least min_item bytes), else SHOAL_ETOOBIG/ETRUNC. */
uint32_t shoal__mpr_array(shoal__mpr *r, uint32_t max, size_t min_item);
uint32_t shoal__mpr_map(shoal__mpr *r, uint32_t max, size_t min_item);
/* A scalar value; str/bin pointers point into the input. */
void shoal__mpr_value(shoal__mpr *r, shoal_value *out);
/* SHOAL_EPROTO unless every byte was consumed; returns r->err. */
int shoal__mpr_finish(shoal__mpr *r);

/* ---------------------------------------------------------------- values */

/* Deep copy (owns str/bin bytes; free with shoal__value_clear). */
int shoal__value_copy(shoal_value *dst, const shoal_value *src);
void shoal__value_clear(shoal_value *v);
/* Validate a value from a user: type known, str valid UTF-8, len <= SHOAL_MAX_VALUE. */
int shoal__value_check(const shoal_value *v);
/* Bytewise equality (doubles compared by bit pattern). */
bool shoal__value_eq(const shoal_value *a, const shoal_value *b);

/* ------------------------------------------------------------------- HLC */

/* A hybrid logical clock value: 48 bits of milliseconds, 16 of counter. */
#define SHOAL__HLC_MS(h)      ((h) >> 16)
#define SHOAL__HLC_LOGICAL(h) ((h)&0xffffu)
uint64_t shoal__hlc_make(uint64_t ms, uint16_t logical);
/* Next local timestamp: greater than last, at least wall_ms<<16.  If the
 * 16-bit counter would overflow, the millisecond part advances. */
uint64_t shoal__hlc_tick(uint64_t last, uint64_t wall_ms);
/* false if remote is more than max_drift_ms ahead of wall_ms (the change is
 * then held back until its time). */
bool shoal__hlc_acceptable(uint64_t remote, uint64_t wall_ms, uint64_t max_drift_ms);
/* Clock after observing remote (which the caller found acceptable):
 * max(last, remote). */
uint64_t shoal__hlc_observe(uint64_t last, uint64_t remote);

/* ------------------------------------------------------------ op ids */

/* An op id (hlc, author, index); author is a 32-byte key. */
typedef struct shoal__opid {
    uint64_t hlc;
    const uint8_t *author; /* 32 bytes, Borrowed */
    uint32_t index;
} shoal__opid;

/* Total order: hlc, then author bytes, then index. */
int shoal__opid_cmp(const shoal__opid *a, const shoal__opid *b);

/* --------------------------------------------------------------- changes */

enum {
    SHOAL__FORMAT_V1 = 1,
    SHOAL__FORMAT_V2 = 2,                        /* adds the auth item (docs/format.md) */
    SHOAL__MAX_AUTH = 2,                         /* ids in a version-2 body's auth item */
    SHOAL__ENV_HEADER = 1 + SHOAL_KEY_BYTES + 4, /* version, author, body length */
    SHOAL__MAX_BODY = 16u << 20,                 /* bytes of one change body */
    SHOAL__MAX_OPS = 1u << 20,                   /* ops in one change */
    SHOAL__MAX_DELRUN = 127,                     /* ops of one DEL run item (docs/format.md) */
    SHOAL__MAX_DEPS = 1024,                      /* deps of one change */
    SHOAL__MAX_AUTHORS = 4096,                   /* extra authors one change refers to */
    SHOAL__MAX_SEALS = 64,                       /* sealed groups (read classes) of a change */
    SHOAL__SALT_BYTES = 16                       /* salt of a sealed group */
};
enum {
    SHOAL__ENV_MIN = SHOAL__ENV_HEADER + SHOAL__SIG_BYTES /* an envelope with an empty body */
};

typedef enum shoal__opkind {
    SHOAL__OP_SET = 1,    /* field = value (register) */
    SHOAL__OP_UNSET = 2,  /* field = absent (register) */
    SHOAL__OP_COUNT = 3,  /* counter field += delta (0: the field becomes a counter) */
    SHOAL__OP_INS = 4,    /* list field: insert value after ref (or at head) */
    SHOAL__OP_DEL = 5,    /* list field: delete element ref */
    SHOAL__OP_REP = 6,    /* list field: replace element ref's value */
    SHOAL__OP_DELDOC = 7, /* delete the document (kills the change's epoch) */
    /* Run items: only in encoded bodies.  The encoder forms them from
     * consecutive single ops and the decoder expands them back, so a
     * decoded or built shoal__change only ever holds kinds 1..7. */
    SHOAL__OP_INSRUN = 8,  /* INS ops each after the previous, values array */
    SHOAL__OP_TEXTRUN = 9, /* the same, each value one code point of a str */
    SHOAL__OP_DELRUN = 10, /* DEL ops of consecutive element indexes */
    /* Sealed items (docs/format.md "Sealed fields"): an op on a restricted
     * field keeps its kind, field and ref in the body and moves its value
     * into the sealed group of its read class.  A decoded change holds
     * them as ops of kinds 1..6 with sealed set. */
    SHOAL__OP_SWRITE = 11, /* SET or UNSET */
    SHOAL__OP_SCOUNT = 12, /* COUNT */
    SHOAL__OP_SINS = 13,   /* k >= 1 linked INS ops */
    SHOAL__OP_SREP = 14    /* REP */
} shoal__opkind;

/* A reference to a list element: the id of the op that inserted it.
 * author is an index into the change's author table: 0 is the change's own
 * author, i >= 1 is authors[i - 1]. */
typedef struct shoal__ref {
    bool head; /* INS only: insert at the head of the list */
    uint64_t hlc;
    uint32_t author;
    uint32_t index;
} shoal__ref;

typedef struct shoal__op {
    uint8_t kind; /* shoal__opkind */
    /* The op's value travels in a sealed group.  Until the group is
     * disclosed (shoal__change_disclose) a decoded sealed op holds value
     * type SHOAL_T_REDACTED (a SEALED WRITE reads as a SET, a SEALED COUNT
     * as a COUNT of 0); a disclosed SEALED WRITE may become an UNSET. */
    bool sealed;
    const uint8_t *field; /* UTF-8, not NUL-terminated; NULL for DELDOC */
    size_t field_len;
    shoal_value value; /* SET, INS, REP */
    int64_t delta;     /* COUNT */
    shoal__ref ref;    /* INS, DEL, REP */
} shoal__op;

/* A decoded change.  Pointers (field names, values, coll, doc) point into
 * the body it was decoded from, or into memory the builder keeps alive.
 * When decoded, ops is owned and deps and authors point into the same
 * owned block (the body stores them with headers in between); free it all
 * with shoal__change_clear, which frees ops only. */
typedef struct shoal__change {
    uint8_t author[32];
    uint64_t seq; /* >= 1 */
    uint64_t hlc;
    size_t ndeps;
    const uint8_t *deps; /* ndeps * 32 bytes: change ids */
    const uint8_t *coll;
    size_t coll_len;
    const uint8_t *doc;
    size_t doc_len;
    uint64_t epoch;
    size_t nauthors;
    const uint8_t *authors; /* nauthors * 32 bytes */
    size_t nops;
    shoal__op *ops;
    /* Format version of the body: 0 or 1 for version 1, 2 for version 2,
     * whose auth item names nauth (<= SHOAL__MAX_AUTH) change ids: the
     * certificate and policy a data change relies on, the grant an admin's
     * change relies on, none for the root's (docs/permissions.md). */
    uint8_t version;
    size_t nauth;
    const uint8_t *auth; /* nauth * 32 bytes; owned like deps when decoded */
    /* Version 2 with sealed ops: the seals item, one (read class,
     * commitment) per sealed group, classes strictly ascending in 1..64.
     * seal_commit is nseals * 32 bytes, owned like deps when decoded. */
    uint8_t nseals;
    uint8_t seal_class[SHOAL__MAX_SEALS];
    const uint8_t *seal_commit;
    /* Owned memory a caller attached (copies of disclosed groups, whose
     * bytes disclosed values point into); freed by shoal__change_clear. */
    void *extra;
} shoal__change;

/* Id of op i of change c. */
shoal__opid shoal__change_opid(const shoal__change *c, uint32_t i);
/* Author key (32 bytes) that author index ai of change c stands for, or NULL
 * if ai is out of range. */
const uint8_t *shoal__change_author(const shoal__change *c, uint32_t ai);

/* Canonical MessagePack body of c (documented in docs/format.md): runs of
 * ops are written as run items, and a ref to an op of c itself in its short
 * form (such a ref must name an earlier op: SHOAL_EINVAL otherwise). */
int shoal__change_encode(const shoal__change *c, shoal__buf *out);
/* Strict decode of body into c (c->author must already be set from the
 * envelope header).  On success c->ops is owned; on error c is cleared. */
int shoal__change_decode(const uint8_t *body, size_t len, shoal__change *c);
/* The seq and (if hlc is not NULL) the hlc of a body, its first two items,
 * without reading the rest: for walks over envelopes already verified or
 * stored.  Returns the reader's error (SHOAL_EPROTO, SHOAL_ETRUNC) if they
 * do not read. */
int shoal__change_peek(const uint8_t *body, size_t len, uint64_t *seq, uint64_t *hlc);
void shoal__change_clear(shoal__change *c);

/* Sealed groups (docs/format.md "Sealed fields").  The read class of a
 * field of c's collection, 1..SHOAL__MAX_SEALS, or 0 for a field in clear:
 * given by the policy the change names (shoal__policy_class). */
typedef uint8_t (*shoal__class_fn)(const uint8_t *field, size_t len, void *arg);
/* The group [salt, class, entries] of class cls of c (whose sealed ops
 * hold their values), appended to out.  SHOAL_EINVAL if c has no sealed
 * op of that class. */
int shoal__seal_group(const shoal__change *c, uint8_t cls, const uint8_t salt[SHOAL__SALT_BYTES],
                      shoal__class_fn class_of, void *arg, shoal__buf *out);
/* BLAKE2b-256("shoal-seal-v2" NUL || group bytes): a seals entry's
 * commitment. */
void shoal__seal_commit(const uint8_t *group, size_t len, uint8_t out[32]);
/* Fill in the sealed ops of c that belong to group g of its seals from the
 * group's bytes (values then point into group).  SHOAL_EINVAL if g is out
 * of range or the bytes do not match its commitment; SHOAL_EPROTO if the
 * group does not decode or its entries do not fit the sealed items of its
 * class (count, types): c is then unchanged and the group counts as
 * undisclosed. */
int shoal__change_disclose(shoal__change *c, uint32_t g, const uint8_t *group, size_t len,
                           shoal__class_fn class_of, void *arg);
/* Whether every sealed op of c has its value (no REDACTED left). */
bool shoal__change_disclosed(const shoal__change *c);

/* Envelope: version(1) | author(32) | body length (u32 BE) | body |
 * Ed25519 signature (64) over "shoal-change-vN" NUL || all preceding bytes,
 * N the version (1 or 2; a version-2 body is a 9-item array). */
/* Sign body with sk (64-byte libsodium secret key of author pk) and append
 * the envelope to out; the version byte is the body's (its array header). */
int shoal__envelope_seal(const uint8_t *body, size_t body_len, const uint8_t pk[32],
                         const uint8_t sk[64], shoal__buf *out);
/* Parse the envelope at the start of p[0..n): check header, bounds and
 * signature (before any decoding).  On success *env_len is the envelope's
 * length and *body, *body_len point into p.  Errors: SHOAL_ETRUNC,
 * SHOAL_EVERSION, SHOAL_ETOOBIG, SHOAL_EBADSIG. */
int shoal__envelope_open(const uint8_t *p, size_t n, size_t *env_len, const uint8_t **body,
                         size_t *body_len);
/* Same checks without the signature (for bytes this replica already
 * verified and stored). */
int shoal__envelope_parse(const uint8_t *p, size_t n, size_t *env_len, const uint8_t **body,
                          size_t *body_len);
/* Decode the change of an envelope already verified (or stored): header
 * bounds (no signature check), author, body, and the body's version (its
 * item count) equal to the envelope's version byte, else SHOAL_EPROTO.
 * On success c is owned as after shoal__change_decode. */
int shoal__envelope_decode(const uint8_t *env, size_t n, shoal__change *c);
/* Whether the envelope env[0..len) carries sealed ops (its body is the
 * 10-item array of docs/format.md, with a seals item), from the body's
 * first byte alone: for the paths that pass other envelopes on untouched. */
bool shoal__envelope_sealed(const uint8_t *env, size_t len);
/* Author key inside an envelope (Borrowed from env). */
const uint8_t *shoal__envelope_author(const uint8_t *env);
/* Change id: BLAKE2b-256 of the signed bytes (everything but the signature). */
void shoal__change_id(const uint8_t *env, size_t env_len, uint8_t out[32]);

/* Disclosures in a stream of envelopes (a BATCH's, a bundle's): a sealed
 * group travels right after its envelope as a record
 *   0x80 | group index g (1 byte) | length (u32 BE) | the group's bytes
 * (docs/format.md "Disclosures").  An envelope starts with its version
 * byte (1 or 2), so the mark tells the two apart.  At most
 * SHOAL__MAX_SEALS records follow one envelope. */
enum {
    SHOAL__DISC_MARK = 0x80,
    SHOAL__DISC_HEADER = 1 + 1 + 4
};
int shoal__disc_append(shoal__buf *out, uint8_t g, const uint8_t *p, size_t n);
/* The records at the start of p[0..n), up to the next envelope or the
 * end: their total length in *len, and each (when discs is not NULL, up
 * to SHOAL__MAX_SEALS) as g, bytes and length.  SHOAL_ETRUNC for a record
 * cut short, SHOAL_ETOOBIG for a group over SHOAL__MAX_BODY or more than
 * SHOAL__MAX_SEALS records, SHOAL_EPROTO for a group index repeated. */
typedef struct shoal__disc_view {
    uint8_t g;
    const uint8_t *p;
    size_t n;
} shoal__disc_view;
int shoal__disc_scan(const uint8_t *p, size_t n, size_t *len, shoal__disc_view *discs,
                     size_t *count);

/* Bundle: magic "SHOALBN1" | count (u32 BE) | count envelopes back to
 * back.  Version 2, magic "SHOALBN2": each envelope may be followed by its
 * disclosure records; a bundle is written as version 2 only when it
 * carries one (shoal__bundle_add_disc). */
enum {
    SHOAL__BUNDLE_HEADER = 12,
    SHOAL__MAX_BUNDLE_CHANGES = 1u << 24
};
/* Start a bundle in out (count patched by shoal__bundle_finish). */
int shoal__bundle_begin(shoal__buf *out);
int shoal__bundle_add(shoal__buf *out, const uint8_t *env, size_t env_len);
void shoal__bundle_finish(shoal__buf *out, uint32_t count);
/* A disclosure record after the envelope added last; makes the bundle
 * version 2. */
int shoal__bundle_add_disc(shoal__buf *out, uint8_t g, const uint8_t *p, size_t n);
/* The version of a bundle whose header read (shoal__bundle_header): 1 or 2. */
#define SHOAL__BUNDLE_VERSION(p) ((p)[7] == '2' ? 2 : 1)
/* Parse the bundle header at the start of p[0..n): the magic and version
 * (judged on whatever prefix is present: SHOAL_EPROTO for a foreign magic,
 * SHOAL_EVERSION for another version digit), then SHOAL_ETRUNC for fewer
 * than SHOAL__BUNDLE_HEADER bytes, SHOAL_ETOOBIG for a count over
 * SHOAL__MAX_BUNDLE_CHANGES and SHOAL_ETRUNC for a count the remaining
 * bytes cannot hold (SHOAL__ENV_MIN each).  On success *count is the
 * declared count and the envelopes start at p + SHOAL__BUNDLE_HEADER; on
 * error *count is 0.  No envelope is looked at. */
int shoal__bundle_header(const uint8_t *p, size_t n, uint32_t *count);
/* Split a bundle: verifies every signature.  On success *envs is an owned
 * array (free with shoal__free) of count offsets/lengths into p. */
typedef struct shoal__span {
    size_t off;
    size_t len;
} shoal__span;
int shoal__bundle_split(const uint8_t *p, size_t n, shoal__span **envs, size_t *count);

/* ------------------------------------------------------------------ list */

/* An element id inside one document: author is an index into the owning
 * document's author table; comparing two authors goes through acmp. */
typedef struct shoal__eid {
    uint64_t hlc;
    uint32_t author;
    uint32_t index;
} shoal__eid;

typedef int (*shoal__author_cmp_fn)(uint32_t a, uint32_t b, void *ctx);

/* A time-ordered list (RGA, DESIGN.md rule 3) with an order-statistic index:
 * visible index -> element and element id -> position in O(log n). */
typedef struct shoal__list shoal__list;

shoal__list *shoal__list_new(shoal__author_cmp_fn acmp, void *ctx);
void shoal__list_free(shoal__list *l);
size_t shoal__list_len(const shoal__list *l);   /* visible elements */
size_t shoal__list_total(const shoal__list *l); /* including tombstones */
/* Insert element id with value v (copied) after ref (NULL: at the head),
 * by the RGA rule: after ref, skip every element whose id is greater than
 * id.  SHOAL_ENOTFOUND if ref is unknown; SHOAL_EPROTO if id is not greater
 * than ref's id; inserting an id that exists already is a no-op (SHOAL_OK). */
int shoal__list_insert(shoal__list *l, const shoal__eid *ref, const shoal__eid *id,
                       const shoal_value *v);
/* The id of the visible element at index (SHOAL_ERANGE past the end). */
int shoal__list_id_at(const shoal__list *l, size_t index, shoal__eid *out);
/* The value of the visible element at index; Borrowed until the next
 * change to l. */
int shoal__list_get(const shoal__list *l, size_t index, shoal_value *out);
/* Tombstone element id (idempotent).  SHOAL_ENOTFOUND if unknown. */
int shoal__list_delete(shoal__list *l, const shoal__eid *id);
/* LWW replace of element id's value by op: applied if op is greater than
 * the op that wrote the current value and the element is not deleted.
 * SHOAL_ENOTFOUND if unknown. */
int shoal__list_replace(shoal__list *l, const shoal__eid *id, const shoal__eid *op,
                        const shoal_value *v);
/* Every element in list order, tombstones included (for canonical encoding
 * and for rebuilding).  cb returning non-zero stops the walk and is returned. */
typedef int (*shoal__list_visit_fn)(const shoal__eid *id, const shoal__eid *value_op,
                                    const shoal_value *v, bool deleted, void *arg);
int shoal__list_visit(const shoal__list *l, shoal__list_visit_fn cb, void *arg);
/* Append an element at the end, bypassing the RGA rule (for decoding a
 * canonical encoding, which is already in list order). */
int shoal__list_append_raw(shoal__list *l, const shoal__eid *id, const shoal__eid *value_op,
                           const shoal_value *v, bool deleted);
/* Debug: check the list's internal invariants (tree counts, parent links,
 * id index); SHOAL_OK or SHOAL_ECORRUPT.  O(n); for tests. */
int shoal__list_check(const shoal__list *l);

/* -------------------------------------------------------------- document */

/* The CRDT state of one document: epoch, deleted flag, and per field one
 * state per kind (register, counter, list).  See docs/semantics.md. */
typedef struct shoal__doc shoal__doc;

shoal__doc *shoal__doc_new(void);
void shoal__doc_free(shoal__doc *d);
/* Apply ops [from, to) of change c (the caller guarantees causal order).
 * Epoch rule first: ops of an older epoch, or of a deleted epoch, are
 * discarded; a newer epoch resets the fields.  Calling it again for the
 * same change with a later range continues it (used while building a local
 * change op by op).  SHOAL_EPROTO for ops that no honest author makes
 * (a ref that cannot lie in the change's causal past: neither an earlier
 * op of the change itself nor an op stamped before the change; a
 * delete / replace of the head; an author index out of range), whatever
 * d holds: checked for ops [from, to) before the epoch rule, so a change
 * of an older epoch or on a deleted document is refused all the same (were
 * it taken there, whether it counts as applied would depend on the order of
 * arrival).  An op naming a list element d does not hold is a no-op
 * (docs/semantics.md, "References that no longer resolve").  On error d
 * may hold part of the change: discard it. */
int shoal__doc_apply(shoal__doc *d, const shoal__change *c, size_t from, size_t to);
/* Apply c as VOID (its author is revoked below its seq,
 * docs/permissions.md): only its list inserts, as invisible anchors other
 * changes may name; nothing else takes effect.  Refuses what
 * shoal__doc_apply refuses whatever d holds. */
int shoal__doc_apply_void(shoal__doc *d, const shoal__change *c);
/* The reason shoal__doc_apply refuses c whatever the document holds (a
 * ref that cannot lie in the change's causal past, a delete / replace of
 * the head, an author index out of range), with the first such op's index
 * in *op; NULL if there is none.  A static string, for error messages. */
const char *shoal__doc_refusal(const shoal__change *c, size_t *op);
bool shoal__doc_exists(const shoal__doc *d); /* at least one change applied */
bool shoal__doc_deleted(const shoal__doc *d);
uint64_t shoal__doc_epoch(const shoal__doc *d);
/* The list state of field (NULL if the field has none); Borrowed until the
 * next change to d.  Used to resolve list indexes for local edits. */
const shoal__list *shoal__doc_list(const shoal__doc *d, const uint8_t *field, size_t len);
/* The 32-byte key behind a list element's author index. */
const uint8_t *shoal__doc_author_key(const shoal__doc *d, uint32_t author);
/* Visible kind of field (the kind whose first op has the greatest id), or
 * SHOAL_ENOTFOUND if the field has no visible value. */
int shoal__doc_field_kind(const shoal__doc *d, const uint8_t *field, size_t len, shoal_kind *out);

/* Visible view: fields sorted by name bytewise, absent registers omitted.
 * Pointers are Borrowed from d until its next change; the arrays are owned
 * (free with shoal__doc_view_free). */
typedef struct shoal__vfield {
    const uint8_t *name;
    size_t name_len;
    shoal_kind kind;
    shoal_value value;  /* REGISTER */
    int64_t counter;    /* COUNTER */
    size_t nitems;      /* LIST */
    shoal_value *items; /* LIST, owned array of views */
} shoal__vfield;
int shoal__doc_view(const shoal__doc *d, shoal__vfield **out, size_t *n);
void shoal__doc_view_free(shoal__vfield *v, size_t n);

/* Canonical full-state encoding (every CRDT detail; equal for replicas that
 * applied the same changes) and its decoder, used for snapshots and the
 * full-state digest.  Defined in docs/format.md. */
int shoal__doc_encode_full(const shoal__doc *d, shoal__buf *out);
int shoal__doc_decode_full(const uint8_t *p, size_t n, shoal__doc **out);
/* Canonical visible-state encoding (what a user sees), for the visible digest. */
int shoal__doc_encode_visible(const shoal__doc *d, shoal__buf *out);

/* ----------------------------------------------------------------- query */

/* The predicate language (docs/queries.md): one parser and one evaluator
 * for queries, live queries, subscriptions and permission filters.  Pure:
 * the same compiled query and the same document view give the same answer
 * on every machine. */
enum {
    SHOAL__Q_MAX_TEXT = 4096,                       /* bytes of predicate text */
    SHOAL__Q_MAX_PREDS = 64,                        /* predicates (leaves, TRUE/FALSE included) */
    SHOAL__Q_MAX_DEPTH = 8,                         /* nesting of NOT and parentheses */
    SHOAL__Q_MAX_IN = 256,                          /* items of one IN list */
    SHOAL__Q_LIST_VIEW = 256,                       /* list items a query view keeps (below) */
    SHOAL__QKEY_TRUNC = 120,                        /* string/bytes bytes an index key keeps */
    SHOAL__QKEY_MAX = 1 + 2 * SHOAL__QKEY_TRUNC + 2 /* bytes of an index key */
};

/* One field of a document as the evaluator sees it.  Pointers are Borrowed
 * from whatever the view was parsed from. */
typedef struct shoal__qfield {
    const uint8_t *name;
    size_t name_len;
    shoal_kind kind;
    shoal_value value;    /* REGISTER; a COUNTER's number as SHOAL_T_INT */
    const uint8_t *items; /* LIST: nitems MessagePack scalars back to back */
    size_t items_len;
    uint32_t nitems; /* LIST: visible elements (all of them, even if long) */
    bool long_list;  /* LIST with more than SHOAL__Q_LIST_VIEW elements in a
                         capped view: items is NULL, the view cannot answer */
} shoal__qfield;

/* A live document as the evaluator sees it: its id and its visible fields,
 * sorted by name bytewise, names unique. */
typedef struct shoal__qdoc {
    const uint8_t *id;
    size_t id_len;
    const shoal__qfield *fields;
    size_t nfields;
} shoal__qdoc;

/* The query view of a document: its visible fields, tagged by kind
 * (docs/storage.md, "Query views").  MessagePack: nil for a document that
 * does not exist or is deleted, else a map name -> [1, value] (register),
 * [2, int] (counter), [3, [items...]] (list) or [4, n] (a list of n > cap
 * visible elements whose items are left out).  cap is the number of list
 * items kept (SHOAL__Q_LIST_VIEW for the stored view, SIZE_MAX for all):
 * the work is O(fields + kept items), never O(a long list). */
int shoal__doc_encode_qview(const shoal__doc *d, size_t cap, shoal__buf *out);
/* Parse a query view into *fields (a growable array: *fields / *cap are
 * reused across calls and grown with shoal__realloc; free *fields with
 * shoal__free).  *alive false for nil (then *n is 0).  Pointers point into
 * p.  SHOAL_ECORRUPT if p is not a well-formed view. */
int shoal__qview_parse(const uint8_t *p, size_t n, shoal__qfield **fields, size_t *cap,
                       size_t *nfields, bool *alive);

/* A compiled predicate with its parameter slots. */
typedef struct shoal__query shoal__query;

/* Compile text (len bytes, not necessarily NUL-terminated).  Errors:
 * SHOAL_EINVAL for a syntax error, SHOAL_ETOOBIG for a bound exceeded
 * (text, predicates, depth, IN items), SHOAL_ENOMEM; err (errlen bytes,
 * may be 0) then holds one line that names the byte position, e.g.
 * "position 14: expected a value after \"==\"".  An empty or all-blank
 * text is an error too (a caller with no predicate passes "TRUE"). */
int shoal__query_parse(const char *text, size_t len, shoal__query **out, char *err, size_t errlen);
/* The same language for a policy's role `where` and an admin's scope
 * (docs/permissions.md): `$user.NAME` may stand where a value does (a
 * parameter named "$user.NAME", bound by the caller from a certificate),
 * and :parameters are refused. */
int shoal__query_parse_policy(const char *text, size_t len, shoal__query **out, char *err,
                              size_t errlen);
void shoal__query_free(shoal__query *q);
/* Call cb for each field a predicate of q names (once per predicate, so a
 * name may come more than once); is_id for the bare document id `_id`.
 * A non-zero return stops the walk and is returned. */
typedef int (*shoal__query_field_fn)(const uint8_t *name, size_t len, bool is_id, void *arg);
int shoal__query_fields(const shoal__query *q, shoal__query_field_fn cb, void *arg);
/* Parameter names (without ':'), in order of first appearance. */
/* Whether q is the constant TRUE (it matches every document). */
bool shoal__query_always(const shoal__query *q);
size_t shoal__query_nparams(const shoal__query *q);
const char *shoal__query_param(const shoal__query *q, size_t i);
/* Bind parameter name to a scalar value (copied; a later bind replaces
 * it).  SHOAL_ENOTFOUND if the query has no such parameter, SHOAL_EINVAL
 * if v is not a valid value (shoal__value_check). */
int shoal__query_bind(shoal__query *q, const char *name, const shoal_value *v);
/* SHOAL_OK if every parameter is bound, else SHOAL_EINVAL with
 * "parameter :NAME is not bound" in err. */
int shoal__query_ready(const shoal__query *q, char *err, size_t errlen);

/* Evaluate a ready query against a live document: 1 it matches, 0 it does
 * not, SHOAL__Q_NEEDLIST if the answer needs the items of a long list (call
 * again with a view parsed from shoal__doc_encode_qview(d, SIZE_MAX)).
 * Semantics in docs/queries.md (numbers compare numerically, NaN compares
 * false, absent == null, lists only in CONTAINS / EXISTS / !=, ...). */
enum {
    SHOAL__Q_NEEDLIST = -1
};
int shoal__query_eval(const shoal__query *q, const shoal__qdoc *d);
/* The same with the parameters' values given by the caller, params[i] for
 * the parameter shoal__query_param(q, i), whatever is bound: q is not
 * changed, so one compiled query may serve several threads. */
int shoal__query_eval_with(const shoal__query *q, const shoal_value *params, const shoal__qdoc *d);

/* The sort order of field values: absent/null < false < true < numbers
 * (ints and floats numerically, -0.0 == 0.0, NaN after +inf, equal NaNs
 * equal) < strings (bytes) < bytes < lists (element by element in this
 * order, then the shorter first).  NULL stands for absent.  Negative, 0 or
 * positive.  A long list must not reach it (callers parse the full view). */
int shoal__qfield_cmp(const shoal__qfield *a, const shoal__qfield *b);
/* The same order for two scalars. */
int shoal__qvalue_cmp(const shoal_value *a, const shoal_value *b);
/* The field named name in d, or NULL (binary search). */
const shoal__qfield *shoal__qdoc_field(const shoal__qdoc *d, const uint8_t *name, size_t len);

/* An order-preserving index key of a scalar: a ≤ b in the sort order ⇒
 * key(a) ≤ key(b) bytewise, and equal values give equal keys; unequal
 * values share a key only if both are numbers that round to the same
 * double, or strings (bytes) whose first SHOAL__QKEY_TRUNC bytes agree.
 * Keys are self-delimiting (no key is a proper prefix of another), so an
 * id may follow.  Returns its length (at most SHOAL__QKEY_MAX). */
size_t shoal__qkey(const shoal_value *v, uint8_t out[SHOAL__QKEY_MAX]);
/* Tag byte (first key byte) a long list gets in an index, sorting after
 * every scalar key: CONTAINS lookups must visit it. */
enum {
    SHOAL__QKEY_LONGLIST = 0x70
};

/* What an index can answer: one conjunct of the top-level AND (or the whole
 * predicate) that constrains one field.  EQ: the field equals (or, with
 * contains, a list element equals) one of vals, none of them null (but a
 * contains term may hold null: null list elements are indexed as elements
 * and CONTAINS null matches them).  RANGE:
 * lo / hi (either may be absent) of one type class (numbers, strings or
 * bytes); the field's value (a scalar) lies between them.  Every document
 * the query matches satisfies every term, so a caller may scan an index
 * for any one term and evaluate the whole query on what it finds.  Terms
 * of one field are not merged.  Bound values are those of the parameters
 * at the time of the call. */
typedef enum shoal__qterm_kind {
    SHOAL__QT_EQ = 1,
    SHOAL__QT_RANGE = 2
} shoal__qterm_kind;
typedef struct shoal__qterm {
    shoal__qterm_kind kind;
    const uint8_t *field;
    size_t field_len;
    bool contains;           /* EQ from CONTAINS: matches list elements */
    const shoal_value *vals; /* EQ: nvals values, sorted, duplicates removed */
    size_t nvals;
    bool has_lo, lo_incl, has_hi, hi_incl; /* RANGE */
    shoal_value lo, hi;
} shoal__qterm;
/* The terms of a ready query (owned array; pointers Borrowed from q until
 * its next bind or free; free the array with shoal__free).  None (n = 0)
 * when the predicate has no such conjunct. */
int shoal__query_terms(const shoal__query *q, shoal__qterm **out, size_t *n);

/* ----------------------------------------------------------- permissions */

/* The authority objects of the reserved collection `_auth` and the write
 * check (docs/permissions.md).  Each object is one canonical MessagePack
 * array whose first item is its kind; it is the bytes value of the
 * register field "object" of its `_auth` document ("policy",
 * "cert:<key hex>", "admin:<key hex>", "revoke:<key hex>").  Decoders are
 * strict (one encoding per object) and leave name and value pointers
 * pointing into the bytes they read, except the policy, which keeps its
 * own copy. */
enum {
    SHOAL__AUTH_LANG = 1, /* policy language version */
    SHOAL__AUTH_POLICY = 1,
    SHOAL__AUTH_CERT = 2,
    SHOAL__AUTH_ADMIN = 3,
    SHOAL__AUTH_REVOKE = 4,
    SHOAL__AUTH_EQUIV = 5, /* an equivocation proof */
    SHOAL__AUTH_KIND_MAX = 5,
    SHOAL__AUTH_MAX_NAMES = 256,        /* collections, roles, rules of a role, names of a list */
    SHOAL__AUTH_MAX_ROLE = 64,          /* bytes of a role name */
    SHOAL__AUTH_MAX_USER = 256,         /* bytes of a user id */
    SHOAL__AUTH_MAX_ATTRS = 64,         /* attributes of a certificate */
    SHOAL__AUTH_MAX_USER_REFS = 16,     /* distinct $user.NAME in one where */
    SHOAL__AUTH_MAX_CHAIN = 16,         /* admin grants from a signer up to the root */
    SHOAL__AUTH_MAX_REASON = 1024,      /* bytes of a revocation's reason */
    SHOAL__AUTH_DOCID_MAX = 13 + 64 + 1 /* "equivocation:" + key hex + NUL */
};
enum {
    SHOAL__CAP_POLICY = 1,   /* publish policies */
    SHOAL__CAP_ISSUE = 2,    /* issue device certificates within the scope */
    SHOAL__CAP_REVOKE = 4,   /* revoke device keys whose certificate is within the scope */
    SHOAL__CAP_DELEGATE = 8, /* grant admin rights, attenuated */
    SHOAL__CAP_ALL = 15
};

/* A name inside an object's bytes. */
typedef struct shoal__name {
    const uint8_t *p;
    size_t n;
} shoal__name;

/* A set of field names: every field, only the names, or all but them. */
enum {
    SHOAL__FS_ALL = 0,
    SHOAL__FS_ONLY = 1,
    SHOAL__FS_EXCEPT = 2
};
typedef struct shoal__fset {
    uint8_t mode;
    uint32_t n;
    shoal__name *names; /* owned array, sorted strictly ascending */
} shoal__fset;
bool shoal__fset_has(const shoal__fset *s, const uint8_t *name, size_t n);
/* The query view of d (shoal__doc_encode_qview, lists whole) restricted to
 * the fields of only: what a policy's where can see (its guards). */
int shoal__doc_encode_qview_only(const shoal__doc *d, const shoal__fset *only, shoal__buf *out);

/* The kind of the object in p[0..n) (SHOAL__AUTH_*), or 0 if its header
 * does not read or names no known kind. */
int shoal__auth_kind(const uint8_t *p, size_t n);
/* The `_auth` document id of an object of kind about key (ignored for the
 * policy), NUL-terminated in out; its length, 0 for an unknown kind. */
size_t shoal__auth_docid(int kind, const uint8_t key[32], char out[SHOAL__AUTH_DOCID_MAX]);
/* The kind of object `_auth` document id[0..n) holds, by its name (a
 * prefix and 64 hex digits, or "policy"); 0 for any other name.  With
 * key, the key its name carries (zero for the policy). */
int shoal__auth_id_kind(const uint8_t *id, size_t n, uint8_t key[32]);
/* Whether `_auth` document id doc[0..n) holds objects that cut a key's
 * changes: a revocation ("revoke:...") or an equivocation proof
 * ("equivocation:..."), by its name. */
bool shoal__auth_cut_doc(const uint8_t *doc, size_t n);
/* The target key of a revocation or equivocation proof (either kind);
 * SHOAL_EPROTO for any other bytes. */
int shoal__auth_cut_target(const uint8_t *obj, size_t n, uint8_t target[32]);

/* A policy: [1, lang, version, prev | nil, collections, roles]. */
typedef struct shoal__pcoll {
    shoal__name name;
    shoal__fset guard, queryable; /* mode ONLY; guard within queryable */
    /* Read classes (docs/permissions.md "Sealed fields"), derived from the
     * roles when the policy decodes: a field is restricted when some role
     * that reads the collection may not read it; restricted fields with
     * the same readers form a class, numbered 1..nclasses in the order of
     * their reader sets (bit strings over the role indexes, role 0 first).
     * rf: every field some rule names in its read set (sorted), rf_class
     * its class (0: in clear); other_class: any other field's. */
    uint32_t nrf;
    shoal__name *rf;
    uint8_t *rf_class;
    uint8_t other_class;
    uint32_t nclasses;
    uint64_t *class_readers; /* nclasses rows of the policy's rwords words */
} shoal__pcoll;
typedef struct shoal__prule {
    shoal__name coll;
    shoal__name where_text;
    shoal__query *where; /* owned; compiled with shoal__query_parse_policy */
    shoal__fset read;    /* ALL, ONLY or EXCEPT */
    shoal__fset write;   /* ALL or ONLY */
    bool create, del;
} shoal__prule;
typedef struct shoal__prole {
    shoal__name name;
    uint32_t nrules;
    shoal__prule *rules; /* owned, sorted by coll */
} shoal__prole;
typedef struct shoal__policy {
    uint8_t *bytes; /* owned copy of the encoding; names point into it */
    size_t len;
    uint64_t version; /* >= 1 */
    bool has_prev;
    uint8_t prev[32]; /* id of the change that published the previous version */
    uint32_t ncolls;
    shoal__pcoll *colls; /* owned, sorted by name */
    uint32_t nroles;
    shoal__prole *roles; /* owned, sorted by name */
    uint32_t rwords;     /* 64-bit words of a set of roles */
} shoal__policy;
/* Decode and validate a policy (docs/permissions.md, "Policy").  Errors:
 * SHOAL_EPROTO / SHOAL_ETRUNC / SHOAL_ETOOBIG for bytes that are not a
 * canonical policy, SHOAL_EVERSION for an unknown language version,
 * SHOAL_EINVAL for a policy that breaks a rule (a where that does not
 * compile or names a field that is not a guard, an undeclared collection,
 * a guard field that is not queryable, a reader that may not read a
 * queryable field); err (errlen bytes) then holds one line naming it. */
int shoal__policy_decode(const uint8_t *p, size_t n, shoal__policy **out, char *err, size_t errlen);
void shoal__policy_free(shoal__policy *p);
/* The version of the policy in p[0..n) from its header alone, for bytes
 * that decoded before (an admitted policy); the reader's error if the
 * header does not read. */
int shoal__policy_version(const uint8_t *p, size_t n, uint64_t *version);
const shoal__pcoll *shoal__policy_coll(const shoal__policy *p, const uint8_t *name, size_t n);
const shoal__prole *shoal__policy_role(const shoal__policy *p, const uint8_t *name, size_t n);
const shoal__prule *shoal__prole_rule(const shoal__prole *ro, const uint8_t *coll, size_t n);
/* Whether the rule lets its role read the collection at all. */
bool shoal__prule_reads(const shoal__prule *ru);
/* The read class of field in collection co (0: in clear); a
 * shoal__class_fn with co as its argument (co NULL: 0). */
uint8_t shoal__pcoll_class(const uint8_t *field, size_t len, void *co);
/* Whether role ro of p reads the fields of class cls of co. */
bool shoal__pcoll_class_reader(const shoal__policy *p, const shoal__pcoll *co, uint8_t cls,
                               const shoal__prole *ro);

/* A device certificate: [2, subject, user, roles, attrs, not_before,
 * not_after, serial, prev | nil, policy_floor]; validity bounds are HLC
 * values, inclusive. */
typedef struct shoal__cert {
    uint8_t subject[32];
    shoal__name user;
    uint32_t nroles;
    shoal__name *roles; /* owned, sorted, at least one */
    uint32_t nattrs;
    shoal__name *attr_names; /* owned, sorted; never id, role or user */
    shoal_value *attr_vals;  /* owned array; str/bin point into the bytes */
    uint64_t not_before, not_after, serial, policy_floor;
    bool has_prev;
    uint8_t prev[32];
} shoal__cert;
int shoal__cert_decode(const uint8_t *p, size_t n, shoal__cert *c);
/* Append the encoding of c (names and attributes sorted by the caller);
 * SHOAL_EINVAL if it would not decode. */
int shoal__cert_encode(const shoal__cert *c, shoal__buf *out);
void shoal__cert_clear(shoal__cert *c);
const shoal_value *shoal__cert_attr(const shoal__cert *c, const uint8_t *name, size_t n);
bool shoal__cert_has_role(const shoal__cert *c, const uint8_t *name, size_t n);

/* An admin grant: [3, key, caps, scope, max_life_ms, serial, prev | nil].
 * scope is a predicate over a certificate as `role` (each of its roles in
 * turn), `user` and its attributes; max_life_ms 0 sets no limit.  issuer
 * is not encoded: whoever decodes a grant sets it to the author of the
 * change that carried it. */
typedef struct shoal__grant {
    uint8_t key[32];
    uint32_t caps;
    shoal__name scope;
    uint64_t max_life_ms, serial;
    bool has_prev;
    uint8_t prev[32];
    uint8_t issuer[32];
} shoal__grant;
int shoal__grant_decode(const uint8_t *p, size_t n, shoal__grant *g);
int shoal__grant_encode(const shoal__grant *g, shoal__buf *out);

/* A revocation: [4, target, cut, target cert id | nil, reason].  The
 * target's changes with seq > cut take effect nowhere (cut 0: none of
 * them). */
typedef struct shoal__revoke {
    uint8_t target[32];
    uint64_t cut;
    bool has_cert;
    uint8_t cert[32];
    shoal__name reason;
} shoal__revoke;
int shoal__revoke_decode(const uint8_t *p, size_t n, shoal__revoke *v);
int shoal__revoke_encode(const shoal__revoke *v, shoal__buf *out);

/* An equivocation proof: [5, target, seq, envelope a, envelope b], two
 * envelopes the target signed for one seq, a's change id smaller than
 * b's.  Self-verifying: decode checks both signatures (against the
 * target's key), both seqs, and that each bin holds exactly one
 * envelope.  It acts as a revocation of target with cut seq - 1
 * (docs/permissions.md, "Equivocation").  The envelopes point into p. */
typedef struct shoal__equiv {
    uint8_t target[32];
    uint64_t seq;
    const uint8_t *env[2];
    size_t len[2];
} shoal__equiv;
int shoal__equiv_decode(const uint8_t *p, size_t n, shoal__equiv *v);
/* Encode the proof of two envelopes of one (author, seq), in either
 * order; SHOAL_EINVAL if they are not a proof. */
int shoal__equiv_encode(const uint8_t *env_a, size_t len_a, const uint8_t *env_b, size_t len_b,
                        shoal__buf *out);
/* Whether c writes an object that cuts a key's changes: a revocation
 * (its cut) or an equivocation proof (cut seq - 1); *target and *cut. */
bool shoal__change_cut(const shoal__change *c, uint8_t target[32], uint64_t *cut);

/* The write check (docs/permissions.md, "The write check"): a pure
 * function of a change, the certificate and policy it names, and its
 * document as it stood at the change's deps.  Same inputs, same verdict,
 * on every replica. */
enum {
    SHOAL__AUTHZ_ADMIT = 0,
    SHOAL__AUTHZ_PEND = 1,  /* something it names is not held yet */
    SHOAL__AUTHZ_REJECT = 2 /* final */
};
typedef struct shoal__authz_out {
    int verdict;
    long op;       /* index of the op refused, or -1 */
    char why[256]; /* one line for ADMIT's opposite numbers; "" on ADMIT */
} shoal__authz_out;
/* A document summarised for the check, by a writer that changes it in
 * place: whether it exists and is deleted, its epoch, and the query view
 * of its guard fields (shoal__doc_encode_qview_only with the guards of the
 * policy the change names; ignored unless it is alive). */
typedef struct shoal__authz_state {
    bool exists, deleted;
    uint64_t epoch;
    const uint8_t *view;
    size_t view_len;
} shoal__authz_state;
typedef struct shoal__authz_in {
    const shoal__change *c;
    const shoal__cert *cert;     /* the admitted certificate named; NULL: not held */
    const shoal__policy *policy; /* the admitted policy named; NULL: not held */
    const shoal__doc *pre;       /* the document over the closure of c's deps; NULL: none */
    /* The greatest certificate serial and policy version named by the
     * author's own changes in the document's causal past (0: none). */
    uint64_t prior_serial, prior_version;
    /* Instead of pre: the document before c, summarised; and, when c
     * creates the document or writes a guard field, post_view: the guard
     * view of the document with c's ops before its first DELDOC applied
     * (missing: SHOAL_EINVAL). */
    const shoal__authz_state *pre_state;
    const uint8_t *post_view;
    size_t post_view_len;
} shoal__authz_in;
/* The guard view of d for a change to coll under policy p, appended to
 * out (shoal__doc_encode_qview_only; a collection the policy does not
 * declare has no guards). */
int shoal__authz_guard_view(const shoal__policy *p, const uint8_t *coll, size_t clen,
                            const shoal__doc *d, shoal__buf *out);
/* SHOAL_OK with the verdict in *out, or SHOAL_ENOMEM (no verdict: the
 * caller tries again; a verdict never depends on memory). */
int shoal__authz_check(const shoal__authz_in *in, shoal__authz_out *out);

/* The built-in rules for changes to `_auth`: one SET of the field
 * "object" to an object whose kind and key match the document id.  A
 * policy needs the `policy` capability, a certificate `issue` (within
 * every scope of the chain, for at most the shortest life), a grant
 * `delegate` (capabilities within the signer's), a revocation the root or
 * `revoke` with the target's certificate (named in the revocation) within
 * the scopes.  The root signs anything; nobody certifies itself.  An
 * equivocation proof needs no capability: the root, any admin, or a
 * device naming its own certificate (valid at the change's HLC) may
 * publish one. */
typedef struct shoal__authz_auth_in {
    const shoal__change *c;
    const uint8_t *root; /* 32 bytes */
    /* The signer's grant, its issuer's, ... up to one the root issued;
     * none when the root signed c. */
    const shoal__grant *const *chain;
    size_t nchain;
    const shoal__cert *target_cert; /* the certificate a revocation names; NULL: not held */
    const shoal__cert *signer_cert; /* the signer's certificate c names instead of a grant */
} shoal__authz_auth_in;
int shoal__authz_check_auth(const shoal__authz_auth_in *in, shoal__authz_out *out);

/* Read filtering (docs/permissions.md, "Reading"): whether the roles of
 * cert let it read the live document d of coll under policy p: some role
 * has a rule for coll that reads it (at least one field: fields it may
 * not read travel sealed, and their groups are not disclosed to it) and
 * whose where holds on d.  1 yes, 0 no, SHOAL__Q_NEEDLIST: d's view left
 * out a long list a where needs (evaluate again on the full view). */
int shoal__authz_reads(const shoal__policy *p, const shoal__cert *cert, const uint8_t *coll,
                       size_t clen, const shoal__qdoc *d);
/* The same, with the rules that read d (up to SHOAL__AUTH_MAX_NAMES into
 * rules when not NULL, their number in *n): a field of d is readable
 * when one of them reads it (shoal__authz_rules_read). */
int shoal__authz_read_rules(const shoal__policy *p, const shoal__cert *cert, const uint8_t *coll,
                            size_t clen, const shoal__qdoc *d, const shoal__prule **rules,
                            size_t *n);
bool shoal__authz_rules_read(const shoal__prule *const *rules, size_t n, const uint8_t *field,
                             size_t len);
/* Whether cert reads every document of every collection p declares (a
 * rule reading whole documents whose where is TRUE, for each): such a
 * peer may be a full replica. */
bool shoal__authz_reads_all(const shoal__policy *p, const shoal__cert *cert);

#endif /* SHOAL_CRDT_CRDT_H */
