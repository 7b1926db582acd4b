/* gzip inflated by Intel ISA-L's igzip (docs/slugs.md, Unpacking): the
 * slug reader's gzip path, handing libarchive a plain tar. Multi-member
 * streams are read member after member; each member's CRC-32 and length
 * are checked against its trailer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where the compressed bytes come from: sets *buf to the next bytes and
 * returns how many, 0 at the end, < 0 on an error the source itself
 * reports (gunzip_read then returns GUNZIP_SOURCE_ERROR). */
typedef ssize_t (*gunzip_source_fn)(void *arg, const uint8_t **buf);

#define GUNZIP_SOURCE_ERROR (-2)

struct gunzip;

/* A new inflater reading from src; out_size bytes of output per call to
 * gunzip_read. NULL when out of memory. */
struct gunzip *gunzip_new(gunzip_source_fn src, void *arg, size_t out_size);
void gunzip_free(struct gunzip *g);

/* Hands bytes the caller already took from the source (its first block,
 * read to look at the magic) back as the first input. */
void gunzip_push_input(struct gunzip *g, const uint8_t *buf, size_t len);

/* The next decompressed bytes: *out points into g's buffer (valid until
 * the next call). Returns their count, 0 once the last member ended (what
 * follows it that is not a gzip member is left: gzip(1) ignores such
 * trailing bytes too), -1 on bad data (gunzip_error says what, with the
 * byte offset), GUNZIP_SOURCE_ERROR when the source failed. */
ssize_t gunzip_read(struct gunzip *g, const uint8_t **out);

/* What the last -1 of gunzip_read was: "gzip: invalid data near byte N
 * (...)", "gzip: truncated ...", "gzip: bad CRC-32 or length ...". */
const char *gunzip_error(const struct gunzip *g);

/* Decompressed bytes gunzip_read returned so far. */
uint64_t gunzip_out_bytes(const struct gunzip *g);

/* Inflates on a thread of its own (taking no signal) from now on, a few
 * blocks ahead of gunzip_read, which then waits for them: inflating and
 * what the caller does with the data overlap. The source is then called
 * on that thread, until gunzip_read returned 0 or an error, or
 * gunzip_free (which stops and joins the thread): it must not block for
 * long (a regular file, not a pipe). Returns false when the thread could
 * not start (g inflates on the caller's thread as before). */
bool gunzip_start_thread(struct gunzip *g);

/* Stops and joins that thread (nothing without one): the source is the
 * caller's again. gunzip_read must not be called after. */
void gunzip_stop_thread(struct gunzip *g);

/* Whether the gzip slug path uses ISA-L: true unless the environment
 * variable DYNO_GUNZIP is "zlib" (libarchive's own gzip filter, on
 * zlib). */
bool gunzip_use_isal(void);
