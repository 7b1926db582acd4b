/* The web process of tests/bench/scale.sh: listens on 0.0.0.0:$PORT (so
 * the boot probe counts it up), accepts and closes, nothing else. Static,
 * so that it starts at once in any dyno. Usage: listen (PORT from env). */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	const char *port = getenv("PORT");
	if (port == NULL) {
		fputs("listen: no $PORT\n", stderr);
		return 2;
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(port)),
	                         .sin_addr.s_addr = htonl(INADDR_ANY)};
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 128) < 0) {
		perror("listen");
		return 1;
	}
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c >= 0)
			close(c);
	}
}
