/*
 * base/utf8.h - UTF-8 validation (utf8.c).
 */
#ifndef SHOAL_BASE_UTF8_H
#define SHOAL_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* true if p[0..n) is valid UTF-8 (no surrogates, no overlongs, <= U+10FFFF). */
bool shoal__utf8_valid(const uint8_t *p, size_t n);

#endif /* SHOAL_BASE_UTF8_H */
