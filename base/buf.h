/*
 * base/buf.h - growable byte buffers (buf.c).
 */
#ifndef SHOAL_BASE_BUF_H
#define SHOAL_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer.  Owns p. */
typedef struct shoal__buf {
    uint8_t *p;
    size_t len;
    size_t cap;
} shoal__buf;

void shoal__buf_init(shoal__buf *b);
void shoal__buf_free(shoal__buf *b); /* frees p, resets to empty */
int shoal__buf_reserve(shoal__buf *b, size_t extra);
int shoal__buf_append(shoal__buf *b, const void *p, size_t n);
/* Hand p to the caller (who frees it with shoal__free) and reset b. */
uint8_t *shoal__buf_take(shoal__buf *b, size_t *len);

#endif /* SHOAL_BASE_BUF_H */
