/* stamp: prints CLOCK_REALTIME in nanoseconds and exits. The command the
 * spawn benchmark (spawn.sh) starts in each launcher: the time it prints
 * minus the time the launcher was started is "launch to command running".
 * Linked statically so that it runs in any root file system. */
#include <stdio.h>
#include <time.h>

int main(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	return 0;
}
