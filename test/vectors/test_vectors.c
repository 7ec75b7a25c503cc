/*
 * test/vectors/test_vectors.c - the golden vectors of test/vectors/, checked
 * against the code.
 *
 *   test_vectors DIR
 *
 * For every vector listed in DIR/index.txt: the identity's key comes from
 * its seed; each envelope opens (signature), carries its body file, has the
 * listed id, author, seq and HLC, decodes and re-encodes byte for byte, and
 * re-sealed with the identity's key gives the same bytes (Ed25519 is
 * deterministic); the bundle splits into exactly those envelopes and is
 * rebuilt byte for byte; each document's state, made by applying the
 * decoded changes in order, encodes to the state and visible files, and the
 * state file decodes and re-encodes byte for byte; both digests, computed
 * from those files by the rule of docs/digests.md and by a real replica
 * that imports the bundle, equal the listed ones.  A sealed change's
 * groups match its commitments and fill in its sealed values (with the
 * read classes of the policy it names, itself a vector), the bundle
 * carries them (version 2), and the replica's commitment digest is the
 * listed one.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "crdt.h"
#include "shoal.h"

enum {
    MAXV = 64
};

typedef struct vfile {
    uint8_t *p;
    size_t n;
} vfile;

typedef struct vkey {
    char name;
    uint8_t seed[32], pk[32], sk[64];
} vkey;

typedef struct vchange {
    char label[32];
    char author;
    uint64_t seq, hlc;
    uint8_t id[32];
    vfile env, body;
    vfile groups[2]; /* its sealed groups, by index */
    size_t ngroups;
} vchange;

typedef struct vstate {
    char coll[SHOAL_MAX_COLLECTION + 1], doc[SHOAL_MAX_DOC_ID + 1];
    vfile full, visible;
} vstate;

static const char *dir;
static vkey keys[8];
static size_t nkeys;
static vchange changes[MAXV];
static size_t nchanges;
static vstate states[MAXV];
static size_t nstates;
static vfile bundle;
static size_t bundle_count;
static uint8_t digest_visible[32], digest_full[32], digest_commit[32];
static bool have_commit;
static bool have_visible, have_full;
static size_t equiv_of = SIZE_MAX; /* the change the equivocation vector pairs */
static vfile equiv_alt, equiv_proof;

static bool
load(const char *name, vfile *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vectors: cannot open %s\n", path);
        return false;
    }
    out->p = NULL;
    out->n = 0;
    size_t cap = 0;
    for (;;) {
        if (out->n == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *p = realloc(out->p, cap);
            if (!p)
                abort();
            out->p = p;
        }
        size_t got = fread(out->p + out->n, 1, cap - out->n, f);
        out->n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    return true;
}

static bool
unhex32(uint8_t out[32], const char *s)
{
    return strlen(s) == 64 && shoal__unhex(out, 32, s) == SHOAL_OK;
}

static void
test_index(void)
{
    char path[4096], line[1024];
    snprintf(path, sizeof path, "%s/index.txt", dir);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    while (fgets(line, sizeof line, f)) {
        char a[9][300];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int n = sscanf(line, "%299s %299s %299s %299s %299s %299s %299s %299s %299s", a[0], a[1],
                       a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
        if (n >= 4 && strcmp(a[0], "key") == 0 && nkeys < 8) {
            vkey *k = &keys[nkeys++];
            k->name = a[1][0];
            uint8_t pk[32];
            CHECK(unhex32(k->seed, a[2]) && unhex32(pk, a[3]));
            crypto_sign_seed_keypair(k->pk, k->sk, k->seed);
            CHECK(memcmp(pk, k->pk, 32) == 0);
        } else if (n >= 9 && strcmp(a[0], "change") == 0 && nchanges < MAXV) {
            /* change NN LABEL AUTHOR SEQ HLC ID ENVFILE BODYFILE */
            vchange *c = &changes[nchanges++];
            memcpy(c->label, a[2], strnlen(a[2], sizeof c->label - 1));
            c->author = a[3][0];
            c->seq = strtoull(a[4], NULL, 10);
            c->hlc = strtoull(a[5], NULL, 10);
            CHECK(unhex32(c->id, a[6]));
            CHECK(load(a[7], &c->env) && load(a[8], &c->body));
        } else if (n >= 4 && strcmp(a[0], "group") == 0) {
            /* group NN G FILE: after its change's line */
            size_t ci = strtoul(a[1], NULL, 10);
            size_t g = strtoul(a[2], NULL, 10);
            CHECK(ci < nchanges && g == changes[ci].ngroups && g < 2);
            if (ci < nchanges && g < 2 && g == changes[ci].ngroups)
                CHECK(load(a[3], &changes[ci].groups[changes[ci].ngroups++]));
        } else if (n >= 3 && strcmp(a[0], "bundle") == 0) {
            CHECK(load(a[1], &bundle));
            bundle_count = strtoul(a[2], NULL, 10);
        } else if (n >= 5 && strcmp(a[0], "state") == 0 && nstates < MAXV) {
            vstate *s = &states[nstates++];
            CHECK(strlen(a[1]) < sizeof s->coll && strlen(a[2]) < sizeof s->doc);
            memcpy(s->coll, a[1], strnlen(a[1], sizeof s->coll - 1));
            memcpy(s->doc, a[2], strnlen(a[2], sizeof s->doc - 1));
            CHECK(load(a[3], &s->full) && load(a[4], &s->visible));
        } else if (n >= 4 && strcmp(a[0], "equivocation") == 0) {
            /* equivocation NN ALTFILE PROOFFILE */
            equiv_of = strtoul(a[1], NULL, 10);
            CHECK(equiv_of < nchanges);
            CHECK(load(a[2], &equiv_alt) && load(a[3], &equiv_proof));
        } else if (n >= 3 && strcmp(a[0], "digest") == 0) {
            if (strcmp(a[1], "visible") == 0)
                have_visible = unhex32(digest_visible, a[2]);
            else if (strcmp(a[1], "full") == 0)
                have_full = unhex32(digest_full, a[2]);
            else if (strcmp(a[1], "commitment") == 0)
                have_commit = unhex32(digest_commit, a[2]);
        } else {
            fprintf(stderr, "vectors: unknown index line: %s", line);
            check_failures++;
        }
    }
    fclose(f);
    CHECK(nkeys >= 2 && nchanges >= 10 && bundle.p && nstates >= 2);
    CHECK(have_visible && have_full && have_commit);
    CHECK_EQ(bundle_count, nchanges);
}

static const vkey *
key_of(char name)
{
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].name == name)
            return &keys[i];
    return NULL;
}

/* The policies written by the vectors, decoded, by change id. */
static struct {
    uint8_t id[32];
    shoal__policy *p;
} pols[4];
static size_t npols;

/* Note the policy change i writes, if it writes one. */
static void
note_policy(size_t i, const shoal__change *ch)
{
    if (ch->coll_len != 5 || memcmp(ch->coll, "_auth", 5) != 0 || ch->nops != 1 ||
        ch->ops[0].value.type != SHOAL_T_BYTES ||
        shoal__auth_kind(ch->ops[0].value.ptr, ch->ops[0].value.len) != SHOAL__AUTH_POLICY ||
        npols == 4)
        return;
    for (size_t k = 0; k < npols; k++)
        if (memcmp(pols[k].id, changes[i].id, 32) == 0)
            return;
    CHECK_EQ(
        shoal__policy_decode(ch->ops[0].value.ptr, ch->ops[0].value.len, &pols[npols].p, NULL, 0),
        SHOAL_OK);
    memcpy(pols[npols].id, changes[i].id, 32);
    npols++;
}

/* Fill in the sealed values of change i (decoded as ch) from its groups,
 * read with the classes of the policy it names. */
static void
disclose(size_t i, shoal__change *ch)
{
    if (!ch->nseals)
        return;
    const shoal__pcoll *co = NULL;
    for (size_t k = 0; k < npols && ch->nauth == 2; k++)
        if (memcmp(pols[k].id, ch->auth + 32, 32) == 0)
            co = shoal__policy_coll(pols[k].p, ch->coll, ch->coll_len);
    CHECK(co != NULL);
    CHECK_EQ(changes[i].ngroups, ch->nseals);
    for (size_t g = 0; g < changes[i].ngroups; g++)
        CHECK_EQ(shoal__change_disclose(ch, (uint32_t)g, changes[i].groups[g].p,
                                        changes[i].groups[g].n, shoal__pcoll_class,
                                        (void *)(uintptr_t)co),
                 SHOAL_OK);
    CHECK(shoal__change_disclosed(ch));
}

/* Decode change c's body with its envelope's author. */
static int
decode(const vchange *c, shoal__change *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->author, shoal__envelope_author(c->env.p), 32);
    return shoal__change_decode(c->body.p, c->body.n, out);
}

static void
test_changes(void)
{
    bool kinds[11] = { false };
    size_t sealed_ops = 0;
    for (size_t i = 0; i < nchanges; i++) {
        vchange *c = &changes[i];
        const vkey *k = key_of(c->author);
        REQUIRE(k != NULL);
        size_t env_len = 0, body_len = 0;
        const uint8_t *body = NULL;
        CHECK_EQ(shoal__envelope_open(c->env.p, c->env.n, &env_len, &body, &body_len), SHOAL_OK);
        REQUIRE(body != NULL);
        CHECK_EQ(env_len, c->env.n);
        CHECK(body_len == c->body.n && memcmp(body, c->body.p, body_len) == 0);
        CHECK(memcmp(shoal__envelope_author(c->env.p), k->pk, 32) == 0);
        uint8_t id[32];
        shoal__change_id(c->env.p, c->env.n, id);
        CHECK(memcmp(id, c->id, 32) == 0);

        shoal__change ch;
        CHECK_EQ(decode(c, &ch), SHOAL_OK);
        CHECK_EQ(ch.seq, c->seq);
        CHECK_EQ(ch.hlc, c->hlc);
        for (size_t j = 0; j < ch.nops; j++) {
            kinds[ch.ops[j].kind] = true;
            sealed_ops += ch.ops[j].sealed;
        }
        note_policy(i, &ch);
        disclose(i, &ch);
        /* a group matches its commitment only as it is */
        if (c->ngroups) {
            shoal__change again;
            CHECK_EQ(decode(c, &again), SHOAL_OK);
            c->groups[0].p[c->groups[0].n - 1] ^= 1;
            CHECK_EQ(shoal__change_disclose(&again, 0, c->groups[0].p, c->groups[0].n,
                                            shoal__pcoll_class, NULL),
                     SHOAL_EINVAL);
            c->groups[0].p[c->groups[0].n - 1] ^= 1;
            shoal__change_clear(&again);
        }
        shoal__buf out;
        shoal__buf_init(&out);
        /* re-encoded after disclosure: the same body */
        CHECK_EQ(shoal__change_encode(&ch, &out), SHOAL_OK);
        CHECK(out.len == c->body.n && memcmp(out.p, c->body.p, out.len) == 0);
        out.len = 0;
        CHECK_EQ(shoal__envelope_seal(c->body.p, c->body.n, k->pk, k->sk, &out), SHOAL_OK);
        CHECK(out.len == c->env.n && memcmp(out.p, c->env.p, c->env.n) == 0);
        shoal__change_clear(&ch);
        shoal__buf_free(&out);

        /* The run vectors hold their run item: [kind, ...] with the
         * field (4 items) or without it (3 items, docs/format.md). */
        uint8_t run = strcmp(c->label, "insrun") == 0    ? SHOAL__OP_INSRUN
                      : strcmp(c->label, "textrun") == 0 ? SHOAL__OP_TEXTRUN
                      : strcmp(c->label, "delrun") == 0  ? SHOAL__OP_DELRUN
                                                         : 0;
        if (run) {
            uint8_t item4[2] = { 0x94, run }, item3[2] = { 0x93, run };
            bool found =
                memmem(c->body.p, c->body.n, item4, 2) || memmem(c->body.p, c->body.n, item3, 2);
            if (!found)
                fprintf(stderr, "vectors: %s holds no run item of kind %u\n", c->label, run);
            CHECK(found);
            kinds[run] = true;
        }
    }
    for (int k = SHOAL__OP_SET; k <= SHOAL__OP_DELRUN; k++) {
        if (!kinds[k])
            fprintf(stderr, "vectors: no vector holds op kind %d\n", k);
        CHECK(kinds[k]);
    }
    CHECK(sealed_ops > 0);
}

static void
test_bundle(void)
{
    shoal__span *sp = NULL;
    size_t count = 0;
    CHECK_EQ(shoal__bundle_split(bundle.p, bundle.n, &sp, &count), SHOAL_OK);
    CHECK_EQ(count, nchanges);
    shoal__buf again;
    shoal__buf_init(&again);
    CHECK_EQ(shoal__bundle_begin(&again), SHOAL_OK);
    size_t ngroups = 0;
    for (size_t i = 0; i < count && i < nchanges; i++) {
        CHECK(sp[i].len == changes[i].env.n &&
              memcmp(bundle.p + sp[i].off, changes[i].env.p, sp[i].len) == 0);
        CHECK_EQ(shoal__bundle_add(&again, changes[i].env.p, changes[i].env.n), SHOAL_OK);
        for (size_t g = 0; g < changes[i].ngroups; g++, ngroups++)
            CHECK_EQ(shoal__bundle_add_disc(&again, (uint8_t)g, changes[i].groups[g].p,
                                            changes[i].groups[g].n),
                     SHOAL_OK);
    }
    /* a bundle with disclosures is version 2 */
    CHECK(ngroups > 0 && memcmp(bundle.p, "SHOALBN2", 8) == 0);
    shoal__bundle_finish(&again, (uint32_t)nchanges);
    CHECK(again.len == bundle.n && memcmp(again.p, bundle.p, bundle.n) == 0);
    shoal__buf_free(&again);
    shoal__free(sp);
}

static bool
buf_is(const shoal__buf *b, const vfile *f)
{
    return b->len == f->n && memcmp(b->p, f->p, f->n) == 0;
}

static void
test_states(void)
{
    for (size_t s = 0; s < nstates; s++) {
        const vstate *st = &states[s];
        shoal__doc *d = shoal__doc_new();
        REQUIRE(d != NULL);
        size_t used = 0;
        for (size_t i = 0; i < nchanges; i++) {
            shoal__change ch;
            REQUIRE(decode(&changes[i], &ch) == SHOAL_OK);
            disclose(i, &ch);
            if (ch.coll_len == strlen(st->coll) && memcmp(ch.coll, st->coll, ch.coll_len) == 0 &&
                ch.doc_len == strlen(st->doc) && memcmp(ch.doc, st->doc, ch.doc_len) == 0) {
                CHECK_EQ(shoal__doc_apply(d, &ch, 0, ch.nops), SHOAL_OK);
                used++;
            }
            shoal__change_clear(&ch);
        }
        CHECK(used > 0);
        shoal__buf full, vis;
        shoal__buf_init(&full);
        shoal__buf_init(&vis);
        CHECK_EQ(shoal__doc_encode_full(d, &full), SHOAL_OK);
        CHECK_EQ(shoal__doc_encode_visible(d, &vis), SHOAL_OK);
        if (!buf_is(&full, &st->full) || !buf_is(&vis, &st->visible))
            fprintf(stderr, "vectors: state of %s/%s differs\n", st->coll, st->doc);
        CHECK(buf_is(&full, &st->full));
        CHECK(buf_is(&vis, &st->visible));
        shoal__doc_free(d);

        /* The state file read back (as a snapshot is) re-encodes exactly. */
        d = NULL;
        CHECK_EQ(shoal__doc_decode_full(st->full.p, st->full.n, &d), SHOAL_OK);
        if (d) {
            full.len = vis.len = 0;
            CHECK_EQ(shoal__doc_encode_full(d, &full), SHOAL_OK);
            CHECK_EQ(shoal__doc_encode_visible(d, &vis), SHOAL_OK);
            CHECK(buf_is(&full, &st->full));
            CHECK(buf_is(&vis, &st->visible));
            shoal__doc_free(d);
        }
        shoal__buf_free(&full);
        shoal__buf_free(&vis);
    }
}

static void
chunk(crypto_generichash_state *h, const void *p, size_t n)
{
    uint8_t len[4];
    shoal__be32_put(len, (uint32_t)n);
    crypto_generichash_update(h, len, 4);
    crypto_generichash_update(h, p, n);
}

static uint64_t
vectors_now(void *ctx)
{
    (void)ctx;
    return 1700000000000ull + 3600000ull; /* an hour after the vectors' HLCs */
}

static void
test_digests(void)
{
    /* By the rule of docs/digests.md, from the files: documents in (coll,
     * id) order (the index lists them so), the visible digest over the
     * live ones only (a state's deleted flag comes from decoding it). */
    crypto_generichash_state hv, hf;
    crypto_generichash_init(&hv, NULL, 0, 32);
    crypto_generichash_init(&hf, NULL, 0, 32);
    crypto_generichash_update(&hv, (const uint8_t *)"shoal-visible-v1", 16);
    crypto_generichash_update(&hf, (const uint8_t *)"shoal-full-v1", 13);
    for (size_t s = 0; s < nstates; s++) {
        const vstate *st = &states[s];
        if (s > 0) {
            int c = strcmp(states[s - 1].coll, st->coll);
            CHECK(c < 0 || (c == 0 && strcmp(states[s - 1].doc, st->doc) < 0));
        }
        shoal__doc *d = NULL;
        REQUIRE(shoal__doc_decode_full(st->full.p, st->full.n, &d) == SHOAL_OK);
        chunk(&hf, st->coll, strlen(st->coll));
        chunk(&hf, st->doc, strlen(st->doc));
        chunk(&hf, st->full.p, st->full.n);
        if (!shoal__doc_deleted(d)) {
            chunk(&hv, st->coll, strlen(st->coll));
            chunk(&hv, st->doc, strlen(st->doc));
            chunk(&hv, st->visible.p, st->visible.n);
        }
        shoal__doc_free(d);
    }
    uint8_t v[32], f[32];
    crypto_generichash_final(&hv, v, 32);
    crypto_generichash_final(&hf, f, 32);
    CHECK(memcmp(v, digest_visible, 32) == 0);
    CHECK(memcmp(f, digest_full, 32) == 0);

    /* By a replica that imports the bundle (any identity: the digests do
     * not depend on it), and again after importing it a second time. */
    char *tmp = check_tmpdir("vectors");
    REQUIRE(tmp != NULL);
    shoal_options *o;
    REQUIRE(shoal_options_new(&o) == SHOAL_OK);
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, vectors_now, NULL);
    shoal_replica *r = NULL;
    CHECK_EQ(shoal_replica_open(&r, tmp, o), SHOAL_OK);
    shoal_options_free(o);
    if (r) {
        for (int round = 0; round < 2; round++) {
            shoal_import_result res;
            CHECK_EQ(shoal_import(r, bundle.p, bundle.n, &res), SHOAL_OK);
            CHECK_EQ(res.applied, round == 0 ? nchanges : 0);
            CHECK_EQ(res.duplicate, round == 0 ? 0 : nchanges);
            CHECK_EQ(res.pending, 0);
            CHECK_EQ(shoal_digest(r, false, v), SHOAL_OK);
            CHECK_EQ(shoal_digest(r, true, f), SHOAL_OK);
            CHECK(memcmp(v, digest_visible, 32) == 0);
            CHECK(memcmp(f, digest_full, 32) == 0);
            CHECK_EQ(shoal_digest_commitment(r, f), SHOAL_OK);
            CHECK(memcmp(f, digest_commit, 32) == 0);
        }
        shoal_replica_close(r);
    }
    check_rmtree(tmp);
    free(tmp);
}

/* The equivocation proof (docs/permissions.md, "Authority objects"):
 * another change of the same author and seq, signed by it; the proof
 * gen.c wrote byte by byte decodes, names the author and seq, and is
 * exactly what the library encodes from the two envelopes (in either
 * order); altered, it does not verify. */
static void
test_equivocation_vector(void)
{
    REQUIRE(equiv_of < nchanges && equiv_alt.p && equiv_proof.p);
    const vchange *c = &changes[equiv_of];
    const vkey *k = key_of(c->author);
    REQUIRE(k);
    shoal__equiv eq;
    CHECK_EQ(shoal__equiv_decode(equiv_proof.p, equiv_proof.n, &eq), SHOAL_OK);
    CHECK(memcmp(eq.target, k->pk, 32) == 0);
    CHECK_EQ(eq.seq, c->seq);
    CHECK_EQ(shoal__auth_kind(equiv_proof.p, equiv_proof.n), SHOAL__AUTH_EQUIV);
    for (int order = 0; order < 2; order++) {
        shoal__buf b;
        shoal__buf_init(&b);
        const vfile *x = order ? &equiv_alt : &c->env, *y = order ? &c->env : &equiv_alt;
        CHECK_EQ(shoal__equiv_encode(x->p, x->n, y->p, y->n, &b), SHOAL_OK);
        CHECK(b.len == equiv_proof.n && memcmp(b.p, equiv_proof.p, b.len) == 0);
        shoal__buf_free(&b);
    }
    equiv_proof.p[equiv_proof.n - 1] ^= 1; /* the second signature */
    CHECK(shoal__equiv_decode(equiv_proof.p, equiv_proof.n, &eq) != SHOAL_OK);
    equiv_proof.p[equiv_proof.n - 1] ^= 1;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_vectors DIR\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    dir = argv[1];
    RUN(test_index);
    RUN(test_changes);
    RUN(test_bundle);
    RUN(test_states);
    RUN(test_digests);
    RUN(test_equivocation_vector);
    free(equiv_alt.p);
    free(equiv_proof.p);
    for (size_t i = 0; i < nchanges; i++) {
        free(changes[i].env.p);
        free(changes[i].body.p);
        for (size_t g = 0; g < changes[i].ngroups; g++)
            free(changes[i].groups[g].p);
    }
    for (size_t i = 0; i < npols; i++)
        shoal__policy_free(pols[i].p);
    for (size_t i = 0; i < nstates; i++) {
        free(states[i].full.p);
        free(states[i].visible.p);
    }
    free(bundle.p);
    return check_summary();
}
