/* Benchmark: parses a typical browser request head (Chrome-like, about
 * 500 bytes) N times with h1_parse_request() and prints requests parsed
 * per second. Usage: h1parse [N] (default 2000000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/http1.h"

static const char head[] =
    "GET /dashboard/projects?page=2&sort=updated HTTP/1.1\r\n"
    "Host: myapp.localhost\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "*/*;q=0.8\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "\r\n";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000000;
	if (n <= 0) {
		fprintf(stderr, "usage: h1parse [N]\n");
		return 2;
	}
	size_t len = strlen(head);
	static struct h1_header headers[64];
	struct h1_parser p;
	struct h1_request r;
	size_t sum = 0;

	double t0 = now();
	for (long i = 0; i < n; i++) {
		h1_parser_init(&p, NULL, headers, 64);
		int rv = h1_parse_request(&p, head, len, &r);
		if (rv <= 0) {
			fprintf(stderr, "parse failed: %s\n", h1_strerror(rv));
			return 1;
		}
		/* Keep the result alive so that the loop is not optimised away. */
		sum += r.nheaders + (size_t)rv;
	}
	double dt = now() - t0;
	printf("h1parse: %zu-byte head, %ld parses in %.3f s: %.0f requests/s (%.1f MB/s) [%zu]\n",
	       len, n, dt, (double)n / dt, (double)n * (double)len / dt / 1e6, sum);
	return 0;
}
