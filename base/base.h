/*
 * base/base.h - the base layer beneath every module of the library.
 *
 * base/ holds what every module needs and nothing that knows about
 * changes, documents, LMDB or sockets: the allocator, growable buffers,
 * big-endian, hex and UTF-8 helpers, the one hash function and the one
 * hash map, the named sizes, and the builders of the two composite keys
 * (author | seq, coll NUL id).  Every module may include it (crdt/crdt.h
 * does, so whoever includes crdt.h has it); base/ itself includes only its
 * own headers, the public shoal.h (error codes and public limits) and libc.
 *
 * Error returns are shoal_err values (include/shoal.h) as int.
 */
#ifndef SHOAL_BASE_BASE_H
#define SHOAL_BASE_BASE_H

#include "alloc.h"
#include "be.h"
#include "buf.h"
#include "hash.h"
#include "hex.h"
#include "keys.h"
#include "map.h"
#include "sizes.h"
#include "utf8.h"

#endif /* SHOAL_BASE_BASE_H */
