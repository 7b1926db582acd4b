/* The decompressor of gzip and zstd slugs (slugs/slug-decompress.c: ISA-L,
 * libzstd) on streams made here with libarchive's gzip writer and libzstd,
 * fed in blocks of every size from one byte up, on the caller's thread and
 * on its own: single and multi-member (multi-frame) streams, trailing
 * bytes, corrupt and truncated data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "slugs/slug-decompress.h"

/* A gzip member of data (libarchive's raw format: the bytes as they are). */
static size_t gz(const uint8_t *data, size_t len, uint8_t *out, size_t cap)
{
	struct archive *a = archive_write_new();
	assert_non_null(a);
	assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
	size_t used = 0;
	assert_int_equal(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "data");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, (la_int64_t)len);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	if (len > 0)
		assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return used;
}

/* A source handing out buf in blocks of chunk bytes. */
struct mem {
	const uint8_t *buf;
	size_t len, off, chunk;
	int fail_at; /* fail on this call (0: never) */
	int calls;
};

static ssize_t mem_read(void *arg, const uint8_t **buf)
{
	struct mem *m = arg;
	if (++m->calls == m->fail_at)
		return -1;
	size_t n = m->len - m->off < m->chunk ? m->len - m->off : m->chunk;
	*buf = m->buf + m->off;
	m->off += n;
	return (ssize_t)n;
}

/* Decompresses in[0..len) fed chunk bytes at a time into out (cap bytes), on
 * the caller's thread or on its own; returns the decompressed size, or
 * -1 (then err holds slug_dc_error's text). */
static ssize_t inflate_mode(enum slug_dc_kind kind, const uint8_t *in, size_t len, size_t chunk,
                            bool threaded, uint8_t *out, size_t cap, char *err, size_t errlen)
{
	struct mem m = {.buf = in, .len = len, .chunk = chunk};
	struct slug_dc *g = slug_dc_new(kind, mem_read, &m, 4096);
	assert_non_null(g);
	if (threaded)
		assert_true(slug_dc_start_thread(g));
	size_t total = 0;
	ssize_t r;
	for (;;) {
		const uint8_t *b;
		r = slug_dc_read(g, &b);
		if (r <= 0)
			break;
		assert_true(total + (size_t)r <= cap);
		memcpy(out + total, b, (size_t)r);
		total += (size_t)r;
	}
	if (r < 0)
		snprintf(err, errlen, "%s", slug_dc_error(g));
	else
		assert_int_equal(slug_dc_out_bytes(g), total);
	/* the end (or the error) stays */
	const uint8_t *b;
	assert_int_equal(slug_dc_read(g, &b), r);
	slug_dc_free(g);
	return r < 0 ? r : (ssize_t)total;
}

/* Both ways, which must agree (bytes, or error text). */
static ssize_t inflate_all(enum slug_dc_kind kind, const uint8_t *in, size_t len, size_t chunk,
                           uint8_t *out, size_t cap, char *err, size_t errlen)
{
	if (chunk == 1 && len > 4 * 1024)
		chunk = 3; /* a byte at a time is for short streams (slow under ASan) */
	uint8_t *out2 = malloc(cap);
	char err2[256] = "";
	assert_non_null(out2);
	ssize_t r = inflate_mode(kind, in, len, chunk, false, out, cap, err, errlen);
	ssize_t r2 = inflate_mode(kind, in, len, chunk, true, out2, cap, err2, sizeof(err2));
	assert_int_equal(r, r2);
	if (r < 0)
		assert_string_equal(err, err2);
	else
		assert_memory_equal(out, out2, (size_t)r);
	free(out2);
	return r;
}

#define PLAIN (100 * 1024)

/* Text that compresses, with a stretch of bytes that do not. */
static uint8_t *plain(void)
{
	uint8_t *p = malloc(PLAIN);
	assert_non_null(p);
	uint32_t x = 12345;
	for (size_t i = 0; i < PLAIN; i++) {
		x = x * 1103515245 + 12345;
		p[i] = i > 30000 && i < 50000 ? (uint8_t)(x >> 16) : (uint8_t)("slug tar "[i % 9]);
	}
	return p;
}

static const size_t chunks[] = {1, 509, 4096, 1 << 20};

static void test_one_member(void **state)
{
	uint8_t *p = plain(), *z = malloc(PLAIN * 2), *out = malloc(PLAIN);
	size_t zl = gz(p, PLAIN, z, PLAIN * 2);
	char err[256];
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		assert_int_equal(
		    inflate_all(SLUG_DC_GZIP, z, zl, chunks[i], out, PLAIN, err, sizeof(err)),
		    PLAIN);
		assert_memory_equal(out, p, PLAIN);
	}
	free(p);
	free(z);
	free(out);
}

/* Members one after another make one stream; bytes after the last member
 * that are no member are left (as gzip(1) does). */
static void test_members(void **state)
{
	uint8_t *p = plain(), *z = malloc(PLAIN * 3), *out = malloc(PLAIN);
	size_t cut[] = {0, 1, 77777, PLAIN - 3, PLAIN};
	char err[256];
	for (size_t c = 0; c + 1 < sizeof(cut) / sizeof(cut[0]); c++) {
		size_t zl = gz(p, cut[c + 1], z, PLAIN * 3);
		zl += gz(p + cut[c + 1], PLAIN - cut[c + 1], z + zl, PLAIN * 3 - zl);
		memcpy(z + zl, "\0\0trailing", 10);
		for (size_t tail = 0; tail <= 10; tail += 10)
			for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
				memset(out, 0, PLAIN);
				assert_int_equal(inflate_all(SLUG_DC_GZIP, z, zl + tail, chunks[i],
				                             out, PLAIN, err, sizeof(err)),
				                 PLAIN);
				assert_memory_equal(out, p, PLAIN);
			}
	}
	/* an empty member in the middle, and a lone 1f byte after the end */
	size_t zl = gz(p, 1000, z, PLAIN * 3);
	zl += gz(p, 0, z + zl, PLAIN * 3 - zl);
	zl += gz(p + 1000, 5, z + zl, PLAIN * 3 - zl);
	z[zl++] = 0x1f;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		assert_int_equal(
		    inflate_all(SLUG_DC_GZIP, z, zl, chunks[i], out, PLAIN, err, sizeof(err)),
		    1005);
		assert_memory_equal(out, p, 1005);
	}
	free(p);
	free(z);
	free(out);
}

static void fails_as(enum slug_dc_kind kind, const uint8_t *z, size_t zl, const char *want)
{
	uint8_t *out = malloc(PLAIN * 2);
	char err[256];
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
		    inflate_all(kind, z, zl, chunks[i], out, PLAIN * 2, err, sizeof(err)), -1);
		if (strstr(err, want) == NULL)
			fail_msg("chunk %zu: \"%s\" does not contain \"%s\"", chunks[i], err, want);
	}
	free(out);
}

static void fails(const uint8_t *z, size_t zl, const char *want)
{
	fails_as(SLUG_DC_GZIP, z, zl, want);
}

static void test_corrupt(void **state)
{
	uint8_t *p = plain(), *z = malloc(PLAIN * 3);
	size_t zl = gz(p, PLAIN, z, PLAIN * 3);

	z[zl - 8] ^= 0x01; /* the CRC-32 */
	fails(z, zl, "gzip: bad CRC-32 or length in the trailer of member 1");
	z[zl - 8] ^= 0x01;
	z[zl - 1] ^= 0x40; /* the length */
	fails(z, zl, "gzip: bad CRC-32 or length in the trailer of member 1");
	z[zl - 1] ^= 0x40;

	/* the second member's trailer */
	size_t zl2 = zl + gz(p, 100, z + zl, PLAIN * 3 - zl);
	z[zl2 - 5] ^= 0x10;
	fails(z, zl2, "gzip: bad CRC-32 or length in the trailer of member 2");

	fails(z, zl - 1, "gzip: truncated: the data ends inside member 1");
	fails(z, zl / 2, "gzip: truncated: the data ends inside member 1");
	fails(z, 5, "gzip: truncated: the data ends inside member 1 after 5 bytes");
	fails(z, zl + 3, "gzip: truncated: the data ends inside member 2");

	/* a block of the reserved type 3 right after the header */
	static const uint8_t reserved[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x07, 0, 0, 0};
	fails(reserved, sizeof(reserved), "gzip: invalid data near byte 1");
	fails(reserved, sizeof(reserved), "(invalid deflate block, member 1)");
	static const uint8_t method[] = {0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3, 0x03, 0, 0, 0};
	fails(method, sizeof(method), "gzip: invalid data near byte");
	static const uint8_t junk[] = "not gzip at all";
	fails(junk, sizeof(junk), "gzip: not a gzip stream");
	free(p);
	free(z);
}

/* A zstd frame of data, with or without its checksum. */
static size_t zst(const uint8_t *data, size_t len, uint8_t *out, size_t cap, bool checksum)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_non_null(c);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum)));
	size_t n = ZSTD_compress2(c, out, cap, data, len);
	assert_false(ZSTD_isError(n));
	ZSTD_freeCCtx(c);
	return n;
}

static void test_zstd(void **state)
{
	uint8_t *p = plain(), *z = malloc(PLAIN * 3), *out = malloc(PLAIN);
	char err[256];
	/* frames one after another, an empty one and a skippable one among them */
	size_t zl = zst(p, 40000, z, PLAIN * 3, true);
	zl += zst(p, 0, z + zl, PLAIN * 3 - zl, false);
	static const uint8_t skip[] = {0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'};
	memcpy(z + zl, skip, sizeof(skip));
	zl += sizeof(skip);
	zl += zst(p + 40000, PLAIN - 40000, z + zl, PLAIN * 3 - zl, false);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		memset(out, 0, PLAIN);
		assert_int_equal(
		    inflate_all(SLUG_DC_ZSTD, z, zl, chunks[i], out, PLAIN, err, sizeof(err)),
		    PLAIN);
		assert_memory_equal(out, p, PLAIN);
	}

	zl = zst(p, PLAIN, z, PLAIN * 3, true);
	z[zl - 2] ^= 0x04; /* the checksum */
	fails_as(SLUG_DC_ZSTD, z, zl, "zstd: invalid data near byte");
	fails_as(SLUG_DC_ZSTD, z, zl, "checksum");
	z[zl - 2] ^= 0x04;
	fails_as(SLUG_DC_ZSTD, z, zl - 1, "zstd: truncated: the data ends inside a frame");
	fails_as(SLUG_DC_ZSTD, z, 3, "zstd: truncated: the data ends inside a frame after 3 bytes");
	memcpy(z + zl, "junk", 4); /* bytes that are no frame */
	fails_as(SLUG_DC_ZSTD, z, zl + 4, "zstd: invalid data near byte");
	free(p);
	free(z);
	free(out);
}

/* A source's own failure is told apart from bad data; a reader may stop
 * before the end. */
static void test_source_error(void **state)
{
	uint8_t *p = plain(), *z = malloc(PLAIN * 2);
	size_t zl = gz(p, PLAIN, z, PLAIN * 2);
	for (int threaded = 0; threaded <= 1; threaded++) {
		struct mem m = {.buf = z, .len = zl, .chunk = 1000, .fail_at = 3};
		struct slug_dc *g = slug_dc_new(SLUG_DC_GZIP, mem_read, &m, 1 << 20);
		if (threaded)
			assert_true(slug_dc_start_thread(g));
		const uint8_t *b;
		ssize_t r, got = 0;
		while ((r = slug_dc_read(g, &b)) > 0)
			got += r; /* what came before the failure first */
		assert_int_equal(r, SLUG_DC_SOURCE_ERROR);
		assert_true(got > 0);
		slug_dc_free(g);
	}
	/* stopped early, the thread is joined (no leak, no use after free) */
	struct mem m = {.buf = z, .len = zl, .chunk = 100};
	struct slug_dc *g = slug_dc_new(SLUG_DC_GZIP, mem_read, &m, 512);
	assert_true(slug_dc_start_thread(g));
	const uint8_t *b;
	assert_int_equal(slug_dc_read(g, &b), 512);
	slug_dc_free(g);
	free(p);
	free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_member),   cmocka_unit_test(test_members),
	    cmocka_unit_test(test_corrupt),      cmocka_unit_test(test_zstd),
	    cmocka_unit_test(test_source_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
