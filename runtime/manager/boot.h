/* Boot detection of a web dyno (docs/design.md, "Lifecycle"): the dyno is
 * up once a TCP connect from the host to DYNO_IP:$PORT succeeds; not up by
 * its deadline is Heroku's R10 (Boot timeout).
 *
 * A probe never blocks: each boot_check() starts a non-blocking connect or
 * looks at the one in progress, so the caller ticks it from a timer
 * (BOOT_PROBE_USEC) with the loop's monotonic time. */
#pragma once

#include <netinet/in.h>
#include <stdint.h>

#define BOOT_PROBE_USEC (100ULL * 1000) /* the period the caller ticks at */

enum boot_result {
	BOOT_WAITING, /* not bound yet: check again later */
	BOOT_UP,      /* a connect succeeded */
	BOOT_TIMEOUT, /* the deadline passed first: R10 */
};

struct boot_probe {
	int fd; /* a connect in progress, else -1 */
	struct in_addr addr;
	uint16_t port;
	uint64_t deadline; /* monotonic microseconds */
};

/* "waiting", "up", "timeout"; "unknown" out of range. Static. */
const char *boot_result_str(enum boot_result r);

/* Sets up b with nothing in progress (boot_stop() is then a no-op). */
void boot_init(struct boot_probe *b);

/* Arms b for a dyno at addr:port launched at now, with timeout (dyno.
 * timeouts.boot) to bind. A connect in progress is dropped. */
void boot_start(struct boot_probe *b, struct in_addr addr, uint16_t port, uint64_t now,
                uint64_t timeout);

/* One probe at now: BOOT_UP when a connect has succeeded (b is stopped),
 * BOOT_TIMEOUT when not, and now is at or past the deadline (b is
 * stopped), else BOOT_WAITING (a connect may stay in progress in b->fd). */
enum boot_result boot_check(struct boot_probe *b, uint64_t now);

/* Drops a connect in progress. Safe to call again. */
void boot_stop(struct boot_probe *b);
