/*
 * test/support/replica.h - replica helpers the core tests share (public
 * API only): opening a non-durable replica, a snapshot of what an
 * operation that fails must leave unchanged, string fields, and copying
 * every change from one replica to another.
 */
#ifndef SHOAL_TEST_REPLICA_H
#define SHOAL_TEST_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "shoal.h"

/* A non-durable replica in dir (created if missing), on the clock
 * now_ms(ctx) when now_ms is not NULL; NULL on any error. */
shoal_replica *check_replica_open(const char *dir, uint64_t (*now_ms)(void *ctx), void *ctx);

/* Both digests, the pending count and a hash of the version vector. */
typedef struct check_snap {
    uint8_t vis[32];
    uint8_t full[32];
    uint64_t pending;
    uint8_t vvsum[32];
} check_snap;

bool check_snap_take(shoal_replica *r, check_snap *s);
bool check_snap_same(const check_snap *a, const check_snap *b);

/* One transaction setting string field f of coll/id to s. */
shoal_err check_set_str(shoal_replica *r, const char *coll, const char *id, const char *f,
                        const char *s);
/* coll/id is live and its field f is the string want. */
bool check_has_str(shoal_replica *r, const char *coll, const char *id, const char *f,
                   const char *want);
/* Export everything from holds and import it into to (counts in *res). */
shoal_err check_push(shoal_replica *from, shoal_replica *to, shoal_import_result *res);

#endif /* SHOAL_TEST_REPLICA_H */
