/* The senders of tests/bench/logs.sh: one socket per "dyno", each sending
 * datagrams as dyno-init does ("TS app[web.N]: line", non-blocking, on
 * EAGAIN waiting for POLLOUT; once it had to wait, its backlog goes out
 * packed, lines joined by '\n' in datagrams of at most 16000 bytes, as
 * init's flush() sends them; PACK=0 in the environment sends one line per
 * datagram, as init did before), as fast as the intake takes them, for a
 * number of seconds. Prints the lines sent, the lines per second, how
 * often a sender found the sink's queue full (EAGAIN: dyno-init would
 * buffer) and the longest wait of one sender for room.
 * usage: logflood SECONDS LINE_BYTES SINK...   (one sender per sink given;
 * a sink named twice gets two senders) */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: logflood SECONDS LINE_BYTES SINK...\n");
		return 2;
	}
	double secs = atof(argv[1]);
	size_t len = (size_t)atoi(argv[2]);
	int n = argc - 3;
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	uint64_t *wait_since = calloc((size_t)n, sizeof(*wait_since));
	bool *backlog = calloc((size_t)n, sizeof(*backlog));
	char *line = malloc(len + 128);
	static char pack[16000];
	const char *pack_env = getenv("PACK");
	bool packs = !pack_env || strcmp(pack_env, "0") != 0;
	if (!pf || !wait_since || !backlog || !line || len + 128 > sizeof(pack))
		return 1;
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", argv[3 + i]);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			perror(argv[3 + i]);
			return 1;
		}
		pf[i] = (struct pollfd){fd, POLLOUT, 0};
	}
	uint64_t sent = 0, again = 0, max_wait = 0;
	uint64_t start = now_us(), end = start + (uint64_t)(secs * 1e6);
	while (now_us() < end) {
		if (poll(pf, (nfds_t)n, 100) < 0 && errno != EINTR)
			return 1;
		uint64_t t = now_us();
		for (int i = 0; i < n; i++) {
			if (!(pf[i].revents & POLLOUT))
				continue;
			if (wait_since[i]) {
				if (t - wait_since[i] > max_wait)
					max_wait = t - wait_since[i];
				wait_since[i] = 0;
			}
			/* a burst per wake-up, as init drains its buffer */
			for (int k = 0; k < 64; k++) {
				size_t plen = 0, lines = 0;
				do {
					int h = snprintf(line, 128,
					                 "2026-11-26T11:00:00.000000+00:00 "
					                 "app[web.%d]: line %llu ",
					                 i + 1, (unsigned long long)(sent + lines));
					memset(line + h, 'x', len > (size_t)h ? len - (size_t)h : 0);
					size_t l = len > (size_t)h ? len : (size_t)h;
					if (plen + (lines > 0) + l > sizeof(pack))
						break;
					if (lines > 0)
						pack[plen++] = '\n';
					memcpy(pack + plen, line, l);
					plen += l;
					lines++;
				} while (packs && backlog[i]);
				if (send(pf[i].fd, pack, plen, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
					if (errno == EAGAIN || errno == EWOULDBLOCK) {
						again++;
						wait_since[i] = t;
						backlog[i] = true;
						break;
					}
					perror("send");
					return 1;
				}
				sent += lines;
			}
		}
	}
	double el = (double)(now_us() - start) / 1e6;
	printf("senders=%d seconds=%.1f lines=%llu lines_per_s=%.0f eagain=%llu "
	       "longest_wait_ms=%.1f\n",
	       n, el, (unsigned long long)sent, (double)sent / el, (unsigned long long)again,
	       (double)max_wait / 1000.0);
	return 0;
}
