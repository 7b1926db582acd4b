/* SHA-256 (FIPS 180-4), for slug ids: the id of a slug is the sha256 of its
 * bytes as uploaded. Streaming: init, update any number of times, final. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define DY_SHA256_LEN     32
#define DY_SHA256_HEX_LEN 64

struct dy_sha256 {
	uint32_t h[8];
	uint64_t total; /* bytes hashed so far */
	uint8_t block[64];
	size_t used; /* bytes waiting in block */
};

void dy_sha256_init(struct dy_sha256 *s);
void dy_sha256_update(struct dy_sha256 *s, const void *data, size_t len);
void dy_sha256_final(struct dy_sha256 *s, uint8_t out[DY_SHA256_LEN]);

/* Writes the lower-case hex of digest (65 bytes with the NUL) into hex. */
void dy_sha256_hex(const uint8_t digest[DY_SHA256_LEN], char hex[DY_SHA256_HEX_LEN + 1]);

/* The hex digest of len bytes at data, in one call. */
void dy_sha256_hex_of(const void *data, size_t len, char hex[DY_SHA256_HEX_LEN + 1]);
