/* A slug's gzip (ISA-L's igzip) or zstd (libzstd's streaming API)
 * decompressed, maybe on a thread of its own: see slug-decompress.h. */
#include "slugs/slug-decompress.h"

#include <isa-l/igzip_lib.h>
#include <zstd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* With a thread (slug_dc_start_thread): it inflates into the slots of a
 * ring, the reader takes them in order and gives each back on its next
 * call. */
#define RING 4

struct slot {
	uint8_t *buf;
	ssize_t n; /* what decode_into returned */
	bool full;
};

struct slug_dc {
	enum slug_dc_kind kind;
	struct inflate_state st; /* gzip */
	ZSTD_DStream *zs;        /* zstd */
	bool frame_open;         /* zstd: inside a frame (not at its end) */
	size_t zstd_pos;         /* zstd: bytes of this call's output so far */
	slug_dc_source_fn src;
	void *arg;
	uint8_t *out;
	size_t out_size;
	/* the thread's ring */
	bool threaded;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct slot ring[RING];
	unsigned head, tail; /* the thread fills head, the reader takes tail */
	bool held;           /* the reader holds ring[tail] */
	bool stop;
	bool joined;
	const uint8_t *in; /* input not yet given to the decoder (borrowed) */
	size_t in_len;
	uint64_t consumed; /* compressed bytes given to the decoder */
	uint64_t produced;
	uint64_t members; /* gzip members started */
	bool in_member;
	bool src_eof;
	bool done;
	ssize_t failed;   /* the error slug_dc_read returned (no thread) */
	ssize_t deferred; /* an error to return after the bytes before it */
	char err[192];
};

struct slug_dc *slug_dc_new(enum slug_dc_kind kind, slug_dc_source_fn src, void *arg,
                            size_t out_size)
{
	struct slug_dc *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->kind = kind;
	g->out = malloc(out_size);
	if (kind == SLUG_DC_ZSTD)
		g->zs = ZSTD_createDStream();
	if (g->out == NULL || (kind == SLUG_DC_ZSTD && g->zs == NULL)) {
		ZSTD_freeDStream(g->zs);
		free(g->out);
		free(g);
		return NULL;
	}
	g->out_size = out_size;
	g->src = src;
	g->arg = arg;
	if (kind == SLUG_DC_GZIP)
		isal_inflate_init(&g->st);
	else
		ZSTD_initDStream(g->zs);
	return g;
}

void slug_dc_stop_thread(struct slug_dc *g)
{
	if (g == NULL || !g->threaded || g->joined)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	g->joined = true;
}

void slug_dc_free(struct slug_dc *g)
{
	if (g == NULL)
		return;
	if (g->threaded) {
		slug_dc_stop_thread(g);
		pthread_mutex_destroy(&g->mu);
		pthread_cond_destroy(&g->cond);
		for (int i = 0; i < RING; i++)
			free(g->ring[i].buf);
	}
	ZSTD_freeDStream(g->zs);
	free(g->out);
	free(g);
}

void slug_dc_push_input(struct slug_dc *g, const uint8_t *buf, size_t len)
{
	g->in = buf;
	g->in_len = len;
}

const char *slug_dc_error(const struct slug_dc *g)
{
	return g->err[0] ? g->err : "unknown decompression error";
}

uint64_t slug_dc_out_bytes(const struct slug_dc *g)
{
	return g->produced;
}

bool slug_dc_wanted(enum slug_dc_kind kind)
{
	const char *v = getenv(kind == SLUG_DC_GZIP ? "DYNO_GUNZIP" : "DYNO_UNZSTD");
	return v == NULL || strcmp(v, kind == SLUG_DC_GZIP ? "zlib" : "libarchive") != 0;
}

/* 1 with new input, 0 at the end of the source, SLUG_DC_SOURCE_ERROR. */
static int refill(struct slug_dc *g)
{
	if (g->src_eof)
		return 0;
	const uint8_t *buf;
	ssize_t n = g->src(g->arg, &buf);
	if (n < 0)
		return SLUG_DC_SOURCE_ERROR;
	if (n == 0) {
		g->src_eof = true;
		return 0;
	}
	g->in = buf;
	g->in_len = (size_t)n;
	return 1;
}

static void take(struct slug_dc *g, size_t n)
{
	g->in += n;
	g->in_len -= n;
	g->consumed += n;
}

/* The offset of the byte isal_inflate stopped at: what it was given less
 * the bits it holds unread. */
static uint64_t offset(const struct slug_dc *g)
{
	uint64_t held = g->st.read_in_length > 0 ? (uint64_t)g->st.read_in_length / 8 : 0;
	return g->consumed > held ? g->consumed - held : 0;
}

static ssize_t bad(struct slug_dc *g, int ret)
{
	const char *what;
	switch (ret) {
	case ISAL_INCORRECT_CHECKSUM:
		snprintf(g->err, sizeof(g->err),
		         "gzip: bad CRC-32 or length in the trailer of member %llu ending at byte "
		         "%llu (the data is corrupt)",
		         (unsigned long long)g->members, (unsigned long long)offset(g));
		return -1;
	case ISAL_INVALID_BLOCK:
		what = "invalid deflate block";
		break;
	case ISAL_INVALID_SYMBOL:
		what = "invalid deflate code";
		break;
	case ISAL_INVALID_LOOKBACK:
		what = "distance too far back";
		break;
	case ISAL_INVALID_WRAPPER:
		what = "bad gzip header";
		break;
	case ISAL_UNSUPPORTED_METHOD:
		what = "compression method is not deflate";
		break;
	case ISAL_NEED_DICT:
		what = "needs a preset dictionary";
		break;
	default:
		what = "no progress";
		break;
	}
	snprintf(g->err, sizeof(g->err), "gzip: invalid data near byte %llu (%s, member %llu)",
	         (unsigned long long)offset(g), what, (unsigned long long)g->members);
	return -1;
}

/* At a member boundary: starts the next member when the input goes on
 * with the gzip magic (1f 8b). Returns 1 when it did, 0 at the end of
 * the stream (nothing left, or trailing bytes that are not a member),
 * < 0 on an error. */
static int next_member(struct slug_dc *g)
{
	if (g->in_len == 0) {
		int r = refill(g);
		if (r <= 0)
			return r;
	}
	if (g->in[0] != 0x1f)
		return 0;
	isal_inflate_reset(&g->st);
	g->st.crc_flag = ISAL_GZIP;
	if (g->in_len == 1) {
		/* the magic straddles two reads: give ISA-L the first byte
		 * once the second is known to follow */
		static const uint8_t first = 0x1f;
		take(g, 1);
		int r = refill(g);
		if (r <= 0)
			return r;
		if (g->in[0] != 0x8b)
			return 0;
		g->st.next_in = (uint8_t *)&first;
		g->st.avail_in = 1; /* a header byte: no output */
		int ret = isal_inflate(&g->st);
		if (ret >= 0 && g->st.avail_in != 0)
			ret = ISAL_INVALID_WRAPPER;
		if (ret < 0)
			return (int)bad(g, ret);
	} else if (g->in[1] != 0x8b) {
		return 0;
	}
	g->members++;
	g->in_member = true;
	return 1;
}

/* Inflates up to size bytes of gzip into out: slug_dc_read's answers. */
static ssize_t gzip_some(struct slug_dc *g, uint8_t *out, size_t size)
{
	if (g->done)
		return 0;
	g->st.next_out = out;
	g->st.avail_out = (uint32_t)size;
	int stalls = 0;
	while (g->st.avail_out > 0) {
		if (!g->in_member) {
			int r = next_member(g);
			if (r < 0)
				return r;
			if (r == 0) {
				if (g->members == 0) {
					snprintf(g->err, sizeof(g->err),
					         "gzip: not a gzip stream (no 1f 8b magic)");
					return -1;
				}
				g->done = true;
				break;
			}
		}
		if (g->in_len == 0) {
			int r = refill(g);
			if (r < 0)
				return r;
			if (r == 0) {
				snprintf(g->err, sizeof(g->err),
				         "gzip: truncated: the data ends inside member %llu after "
				         "%llu bytes",
				         (unsigned long long)g->members,
				         (unsigned long long)g->consumed);
				return -1;
			}
		}
		uint32_t avail_out = g->st.avail_out;
		size_t give = g->in_len > UINT32_MAX ? UINT32_MAX : g->in_len;
		g->st.next_in = (uint8_t *)g->in;
		g->st.avail_in = (uint32_t)give;
		int ret = isal_inflate(&g->st);
		size_t used = give - g->st.avail_in;
		take(g, used);
		if (ret < 0)
			return bad(g, ret);
		if (g->st.block_state == ISAL_BLOCK_FINISH)
			g->in_member = false;
		else if (used > 0 || g->st.avail_out != avail_out)
			stalls = 0;
		else if (++stalls > 2)
			return bad(g, 0); /* given input and room, it moved neither */
	}
	return (ssize_t)(size - g->st.avail_out);
}

/* Decompresses up to size bytes of zstd into out: frame after frame, each
 * frame's checksum checked when it has one; bytes that are no frame are
 * an error, as with libarchive's zstd filter. */
static ssize_t zstd_some(struct slug_dc *g, uint8_t *out, size_t size)
{
	if (g->done)
		return 0;
	ZSTD_outBuffer o = {.dst = out, .size = size, .pos = 0};
	while (o.pos < o.size) {
		if (g->in_len == 0) {
			int r = refill(g);
			if (r < 0)
				return r;
			if (r == 0) {
				if (!g->frame_open) {
					g->done = true;
					break;
				}
				snprintf(g->err, sizeof(g->err),
				         "zstd: truncated: the data ends inside a frame after %llu "
				         "bytes",
				         (unsigned long long)g->consumed);
				return -1;
			}
		}
		ZSTD_inBuffer i = {.src = g->in, .size = g->in_len, .pos = 0};
		size_t ret = ZSTD_decompressStream(g->zs, &o, &i);
		take(g, i.pos);
		g->zstd_pos = o.pos;
		if (ZSTD_isError(ret)) {
			snprintf(g->err, sizeof(g->err), "zstd: invalid data near byte %llu (%s)",
			         (unsigned long long)g->consumed, ZSTD_getErrorName(ret));
			return -1;
		}
		/* 0: a frame ended and is flushed; a next one may follow */
		g->frame_open = ret != 0;
	}
	return (ssize_t)o.pos;
}

/* gzip_some or zstd_some, but the bytes decompressed before an error come
 * first, the error on the next call: the reader sees the data up to it. */
static ssize_t decode_into(struct slug_dc *g, uint8_t *out, size_t size)
{
	if (g->deferred)
		return g->deferred;
	ssize_t n;
	size_t got;
	if (g->kind == SLUG_DC_GZIP) {
		n = gzip_some(g, out, size);
		got = (size_t)(g->st.next_out - out);
	} else {
		g->zstd_pos = 0;
		n = zstd_some(g, out, size);
		got = g->zstd_pos;
	}
	if (n < 0 && got > 0 && got <= size) {
		g->deferred = n;
		return (ssize_t)got;
	}
	return n;
}

static void *run(void *arg)
{
	struct slug_dc *g = arg;
	for (;;) {
		pthread_mutex_lock(&g->mu);
		while (g->ring[g->head].full && !g->stop)
			pthread_cond_wait(&g->cond, &g->mu);
		bool stop = g->stop;
		pthread_mutex_unlock(&g->mu);
		if (stop)
			break;
		struct slot *sl = &g->ring[g->head];
		ssize_t n = decode_into(g, sl->buf, g->out_size);
		pthread_mutex_lock(&g->mu);
		sl->n = n;
		sl->full = true;
		g->head = (g->head + 1) % RING;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->mu);
		if (n <= 0)
			break; /* the end, or an error: the reader gets it */
	}
	return NULL;
}

bool slug_dc_start_thread(struct slug_dc *g)
{
	for (int i = 0; i < RING; i++) {
		g->ring[i].buf = malloc(g->out_size);
		if (g->ring[i].buf == NULL) {
			for (int j = 0; j <= i; j++) {
				free(g->ring[j].buf);
				g->ring[j].buf = NULL;
			}
			return false;
		}
	}
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cond, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&g->thread, NULL, run, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		pthread_mutex_destroy(&g->mu);
		pthread_cond_destroy(&g->cond);
		for (int i = 0; i < RING; i++) {
			free(g->ring[i].buf);
			g->ring[i].buf = NULL;
		}
		return false;
	}
	g->threaded = true;
	return true;
}

/* The next slot of the thread's ring (giving back the one held). */
static ssize_t take_slot(struct slug_dc *g, const uint8_t **out)
{
	pthread_mutex_lock(&g->mu);
	if (g->held) {
		g->ring[g->tail].full = false;
		g->tail = (g->tail + 1) % RING;
		g->held = false;
		pthread_cond_broadcast(&g->cond);
	}
	while (!g->ring[g->tail].full)
		pthread_cond_wait(&g->cond, &g->mu);
	struct slot *sl = &g->ring[g->tail];
	ssize_t n = sl->n;
	*out = sl->buf;
	g->held = n > 0; /* the last slot (0 or an error) stays for every later call */
	pthread_mutex_unlock(&g->mu);
	return n;
}

ssize_t slug_dc_read(struct slug_dc *g, const uint8_t **out)
{
	ssize_t n;
	if (g->threaded) {
		n = take_slot(g, out);
	} else {
		*out = g->out;
		n = g->failed ? g->failed : decode_into(g, g->out, g->out_size);
		if (n < 0)
			g->failed = n; /* an error stays, as the thread's last slot */
	}
	if (n > 0)
		g->produced += (uint64_t)n;
	return n;
}
