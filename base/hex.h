/*
 * base/hex.h - lower-case hex encoding of byte strings (hex.c).
 */
#ifndef SHOAL_BASE_HEX_H
#define SHOAL_BASE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* out must hold 2*n+1 bytes (NUL-terminated). */
void shoal__hex(char *out, const uint8_t *p, size_t n);
/* Parse exactly 2*n hex digits (either case) and a NUL into out;
 * SHOAL_EINVAL otherwise, with out untouched. */
int shoal__unhex(uint8_t *out, size_t n, const char *s);

#endif /* SHOAL_BASE_HEX_H */
