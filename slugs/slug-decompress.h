/* A slug's compressed stream decompressed for the tar reader
 * (docs/slugs.md, "How a slug is decompressed"): gzip by Intel ISA-L's
 * igzip, zstd by libzstd's streaming API, on the caller's thread or on a
 * thread of its own a few blocks ahead. libarchive then reads a plain tar.
 * gzip: member after member, each member's CRC-32 and length checked
 * against its trailer; bytes after the last member that do not start
 * another are left (gzip(1) ignores such trailing bytes too). zstd: frame
 * after frame, each checksum checked when the frame has one. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum slug_dc_kind {
	SLUG_DC_GZIP, /* ISA-L */
	SLUG_DC_ZSTD, /* libzstd */
};

/* Where the compressed bytes come from: sets *buf to the next bytes and
 * returns how many, 0 at the end, < 0 on an error the source itself
 * reports (slug_dc_read then returns SLUG_DC_SOURCE_ERROR). */
typedef ssize_t (*slug_dc_source_fn)(void *arg, const uint8_t **buf);

#define SLUG_DC_SOURCE_ERROR (-2)

struct slug_dc;

/* A new decompressor reading from src; out_size bytes of output per call
 * to slug_dc_read. NULL when out of memory. */
struct slug_dc *slug_dc_new(enum slug_dc_kind kind, slug_dc_source_fn src, void *arg,
                            size_t out_size);
void slug_dc_free(struct slug_dc *g);

/* Hands bytes the caller already took from the source (its first block,
 * read to look at the magic) back as the first input. */
void slug_dc_push_input(struct slug_dc *g, const uint8_t *buf, size_t len);

/* The next decompressed bytes: *out points into g's buffers (valid until
 * the next call). Returns their count; 0 at the end of the stream; -1 on
 * bad data (slug_dc_error says what, with the byte offset), after the
 * bytes before it were returned; SLUG_DC_SOURCE_ERROR when the source
 * failed. The end or an error is returned again by every later call. */
ssize_t slug_dc_read(struct slug_dc *g, const uint8_t **out);

/* What the last -1 of slug_dc_read was: "gzip: invalid data near byte N
 * (...)", "gzip: truncated: ...", "gzip: bad CRC-32 or length in the
 * trailer of member M ...", "zstd: invalid data near byte N (...)",
 * "zstd: truncated: ...". */
const char *slug_dc_error(const struct slug_dc *g);

/* Decompressed bytes slug_dc_read returned so far. */
uint64_t slug_dc_out_bytes(const struct slug_dc *g);

/* Decompresses on a thread of its own (taking no signal) from now on, a
 * few blocks ahead of slug_dc_read, which then waits for them: the
 * decompression and what the caller does with the data overlap. The
 * source is then called on that thread, until slug_dc_read returned 0 or
 * an error, or slug_dc_stop_thread: it must not block for long (a regular
 * file, not a pipe). Returns false when the thread could not start (g
 * works on the caller's thread as before). */
bool slug_dc_start_thread(struct slug_dc *g);

/* Stops and joins that thread (nothing without one): the source is the
 * caller's again. slug_dc_read must not be called after. */
void slug_dc_stop_thread(struct slug_dc *g);

/* Whether slugs of this kind go through here: true unless the environment
 * says DYNO_GUNZIP=zlib (gzip) or DYNO_UNZSTD=libarchive (zstd), which
 * leave them to libarchive's own filters (zlib, libzstd), on the caller's
 * thread. */
bool slug_dc_wanted(enum slug_dc_kind kind);
