/* gzip inflated by ISA-L's igzip: see gunzip-isal.h. */
#include "slugs/gunzip-isal.h"

#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* With a thread (gunzip_start_thread): it inflates into the slots of a
 * ring, the reader takes them in order and gives each back on its next
 * call. */
#define RING 4

struct slot {
	uint8_t *buf;
	ssize_t n; /* what inflate_into returned */
	bool full;
};

struct gunzip {
	struct inflate_state st;
	gunzip_source_fn src;
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
	const uint8_t *in; /* input not yet given to isal_inflate (borrowed) */
	size_t in_len;
	uint64_t consumed; /* compressed bytes given to isal_inflate */
	uint64_t produced;
	uint64_t members; /* members started */
	bool in_member;
	bool src_eof;
	bool done;
	ssize_t failed;   /* the error gunzip_read returned (no thread) */
	ssize_t deferred; /* an error to return after the bytes before it */
	char err[192];
};

struct gunzip *gunzip_new(gunzip_source_fn src, void *arg, size_t out_size)
{
	struct gunzip *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->out = malloc(out_size);
	if (g->out == NULL) {
		free(g);
		return NULL;
	}
	g->out_size = out_size;
	g->src = src;
	g->arg = arg;
	isal_inflate_init(&g->st);
	return g;
}

void gunzip_stop_thread(struct gunzip *g)
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

void gunzip_free(struct gunzip *g)
{
	if (g == NULL)
		return;
	if (g->threaded) {
		gunzip_stop_thread(g);
		pthread_mutex_destroy(&g->mu);
		pthread_cond_destroy(&g->cond);
		for (int i = 0; i < RING; i++)
			free(g->ring[i].buf);
	}
	free(g->out);
	free(g);
}

void gunzip_push_input(struct gunzip *g, const uint8_t *buf, size_t len)
{
	g->in = buf;
	g->in_len = len;
}

const char *gunzip_error(const struct gunzip *g)
{
	return g->err[0] ? g->err : "gzip: unknown error";
}

uint64_t gunzip_out_bytes(const struct gunzip *g)
{
	return g->produced;
}

bool gunzip_use_isal(void)
{
	const char *v = getenv("DYNO_GUNZIP");
	return v == NULL || strcmp(v, "zlib") != 0;
}

/* 1 with new input, 0 at the end of the source, GUNZIP_SOURCE_ERROR. */
static int refill(struct gunzip *g)
{
	if (g->src_eof)
		return 0;
	const uint8_t *buf;
	ssize_t n = g->src(g->arg, &buf);
	if (n < 0)
		return GUNZIP_SOURCE_ERROR;
	if (n == 0) {
		g->src_eof = true;
		return 0;
	}
	g->in = buf;
	g->in_len = (size_t)n;
	return 1;
}

static void take(struct gunzip *g, size_t n)
{
	g->in += n;
	g->in_len -= n;
	g->consumed += n;
}

/* The offset of the byte isal_inflate stopped at: what it was given less
 * the bits it holds unread. */
static uint64_t offset(const struct gunzip *g)
{
	uint64_t held = g->st.read_in_length > 0 ? (uint64_t)g->st.read_in_length / 8 : 0;
	return g->consumed > held ? g->consumed - held : 0;
}

static ssize_t bad(struct gunzip *g, int ret)
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
static int next_member(struct gunzip *g)
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

/* Inflates up to size bytes into out: gunzip_read's answers. */
static ssize_t inflate_some(struct gunzip *g, uint8_t *out, size_t size)
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

/* As inflate_some, but the bytes inflated before an error come first,
 * the error on the next call: the reader sees the data up to it. */
static ssize_t inflate_into(struct gunzip *g, uint8_t *out, size_t size)
{
	if (g->deferred)
		return g->deferred;
	ssize_t n = inflate_some(g, out, size);
	size_t got = (size_t)(g->st.next_out - out);
	if (n < 0 && got > 0 && got <= size) {
		g->deferred = n;
		return (ssize_t)got;
	}
	return n;
}

static void *run(void *arg)
{
	struct gunzip *g = arg;
	for (;;) {
		pthread_mutex_lock(&g->mu);
		while (g->ring[g->head].full && !g->stop)
			pthread_cond_wait(&g->cond, &g->mu);
		bool stop = g->stop;
		pthread_mutex_unlock(&g->mu);
		if (stop)
			break;
		struct slot *sl = &g->ring[g->head];
		ssize_t n = inflate_into(g, sl->buf, g->out_size);
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

bool gunzip_start_thread(struct gunzip *g)
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
static ssize_t take_slot(struct gunzip *g, const uint8_t **out)
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

ssize_t gunzip_read(struct gunzip *g, const uint8_t **out)
{
	ssize_t n;
	if (g->threaded) {
		n = take_slot(g, out);
	} else {
		*out = g->out;
		n = g->failed ? g->failed : inflate_into(g, g->out, g->out_size);
		if (n < 0)
			g->failed = n; /* an error stays, as the thread's last slot */
	}
	if (n > 0)
		g->produced += (uint64_t)n;
	return n;
}
