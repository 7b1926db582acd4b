/* probe: runs inside a dyno and reports what it sees, one JSON line on
 * stdout (which the dyno's init relays to the log sink). Subcommands:
 *   report            identity, capabilities, seccomp, namespaces, mounts
 *   hog MB [hold]     allocates and touches MB MiB, 4 MiB at a time; keeps it
 *   forkbomb          forks until refused; prints how many, then waits
 *   listen PORT       TCP server on 0.0.0.0:PORT answering "hello <DYNO>"
 *   connect IP PORT   one TCP connect (2 s timeout); prints the outcome
 *   term N            N children; each process prints "TERM <pid>" on SIGTERM
 *   spam BYTES        writes BYTES of numbered lines to stdout
 *   touch PATH        creates PATH; prints the outcome
 *   ls PATH           prints whether PATH exists
 *   zombies           counts processes not reaped
 *   spoof SRC IP PORT what the app can do to send as SRC: raw and packet
 *                     sockets (errno), a UDP datagram from SRC bound with
 *                     IP_FREEBIND (errno of bind, of sendto) */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *status_field(const char *name)
{
	static char val[8][64];
	static int slot;
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	char *out = val[slot++ % 8];
	strcpy(out, "?");
	if (!f)
		return out;
	size_t n = strlen(name);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, n) && line[n] == ':') {
			char *v = line + n + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, 64, "%s", v);
			break;
		}
	}
	fclose(f);
	return out;
}

static int err_of(long r)
{
	return r < 0 ? errno : 0;
}

static void *thread_fn(void *arg)
{
	return arg;
}

static int try_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	int r = write(fd, "x\n", 2) == 2 ? 0 : errno;
	close(fd);
	return r;
}

/* A 32-bit system call through int 0x80: the dyno's seccomp policy kills
 * the process (foreign architecture). Returns the signal that ended the
 * child, or minus its exit status. */
static int int80(void)
{
#ifdef __x86_64__
	pid_t p = fork();
	if (p == 0) {
		long r;
		__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory"); /* i386 getpid */
		_exit(r > 0 ? 0 : 1);
	}
	int st = 0;
	waitpid(p, &st, 0);
	return WIFSIGNALED(st) ? WTERMSIG(st) : -WEXITSTATUS(st);
#else
	return -2;
#endif
}

static void report(void)
{
	char host[256] = "";
	gethostname(host, sizeof(host));
	int e_mount = err_of(mount("none", "/tmp", "tmpfs", 0, NULL));
	int e_unshare = err_of(unshare(CLONE_NEWNS));
	int e_unshare_net = err_of(unshare(CLONE_NEWNET));
	int e_ptrace = err_of(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	int e_bpf = err_of(syscall(SYS_bpf, 0, NULL, 0));
	int e_keyctl = err_of(syscall(SYS_keyctl, 0, 0, 0, 0, 0));
	struct clone_args ca = {.exit_signal = SIGCHLD};
	long c3 = syscall(SYS_clone3, &ca, sizeof(ca));
	if (c3 == 0)
		_exit(0);
	int e_clone3 = err_of(c3);
	if (c3 > 0)
		waitpid((pid_t)c3, NULL, 0);
	pthread_t t;
	int thread_ok = pthread_create(&t, NULL, thread_fn, NULL) == 0;
	if (thread_ok)
		pthread_join(t, NULL);
	int sig80 = int80();
	int e_usr = try_write("/usr/probe-write");
	int e_app = try_write("/app/probe-write");
	int e_tmp = try_write("/tmp/probe-write");
	int e_etc = try_write("/etc/probe-write");
	char pid1[64] = "";
	FILE *f = fopen("/proc/1/comm", "re");
	if (f) {
		if (fgets(pid1, sizeof(pid1), f))
			pid1[strcspn(pid1, "\n")] = '\0';
		fclose(f);
	}
	char pids[1024] = "";
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		size_t l = strlen(pids);
		snprintf(pids + l, sizeof(pids) - l, "%s%s", l ? "," : "", de->d_name);
	}
	if (d)
		closedir(d);
	char fds[256] = "";
	d = opendir("/proc/self/fd");
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
			continue;
		size_t l = strlen(fds);
		int w = snprintf(fds + l, sizeof(fds) - l, "%s%s", l ? "," : "", de->d_name);
		if (w < 0 || (size_t)w >= sizeof(fds) - l)
			break;
	}
	if (d)
		closedir(d);
	char limit[64] = "";
	f = fopen("/sys/fs/cgroup/memory/memory.limit_in_bytes", "re");
	if (!f)
		f = fopen("/sys/fs/cgroup/memory.max", "re");
	if (f) {
		if (fgets(limit, sizeof(limit), f))
			limit[strcspn(limit, "\n")] = '\0';
		fclose(f);
	}
	int e_cg = try_write("/sys/fs/cgroup/pids/pids.max");
	int home = access("/home/.", F_OK) == 0, run_host = access("/run/dyno", F_OK) == 0;
	printf("{\"probe\":\"report\",\"uid\":%d,\"euid\":%d,\"gid\":%d,\"pid\":%d,"
	       "\"CapInh\":\"%s\",\"CapPrm\":\"%s\",\"CapEff\":\"%s\",\"CapBnd\":\"%s\","
	       "\"CapAmb\":\"%s\",\"NoNewPrivs\":\"%s\",\"Seccomp\":\"%s\",\"hostname\":\"%s\","
	       "\"mount\":%d,\"unshare\":%d,\"unshare_net\":%d,\"ptrace\":%d,\"bpf\":%d,"
	       "\"keyctl\":%d,\"clone3\":%d,\"thread\":%s,\"usr_write\":%d,\"app_write\":%d,"
	       "\"tmp_write\":%d,\"etc_write\":%d,\"cgroup_write\":%d,\"pid1\":\"%s\","
	       "\"pids\":[%s],\"memory_limit\":\"%s\",\"cwd\":\"%s\",\"DYNO\":\"%s\","
	       "\"PORT\":\"%s\",\"HOME\":\"%s\",\"PATH\":\"%s\",\"PROFILE\":\"%s\",\"home\":%d,"
	       "\"run_host\":%d,\"int80\":%d,\"fds\":[%s]}\n",
	       (int)getuid(), (int)geteuid(), (int)getgid(), (int)getpid(), status_field("CapInh"),
	       status_field("CapPrm"), status_field("CapEff"), status_field("CapBnd"),
	       status_field("CapAmb"), status_field("NoNewPrivs"), status_field("Seccomp"), host,
	       e_mount, e_unshare, e_unshare_net, e_ptrace, e_bpf, e_keyctl, e_clone3,
	       thread_ok ? "true" : "false", e_usr, e_app, e_tmp, e_etc, e_cg, pid1, pids, limit,
	       getcwd((char[256]){0}, 256) ? getcwd((char[256]){0}, 256) : "?",
	       getenv("DYNO") ?: "", getenv("PORT") ?: "", getenv("HOME") ?: "",
	       getenv("PATH") ?: "", getenv("PROFILE_D") ?: "", home, run_host, sig80, fds);
}

static void hog(long mb, int hold)
{
	for (long i = 0; i < mb; i += 4) {
		char *p = malloc(4 << 20);
		if (!p) {
			printf("{\"probe\":\"hog\",\"malloc_failed_at\":%ld}\n", i);
			return;
		}
		memset(p, 1, 4 << 20);
		if (i % 16 == 0) {
			printf("hog %ld\n", i);
			fflush(stdout);
		}
	}
	printf("{\"probe\":\"hog\",\"survived\":%ld}\n", mb);
	fflush(stdout);
	while (hold)
		pause();
}

static void forkbomb(void)
{
	int n = 0, e = 0;
	for (int i = 0; i < 100000; i++) {
		pid_t p = fork();
		if (p < 0) {
			e = errno;
			break;
		}
		if (p == 0) {
			pause();
			_exit(0);
		}
		n++;
	}
	printf("{\"probe\":\"forkbomb\",\"forks\":%d,\"errno\":%d}\n", n, e);
	fflush(stdout);
	pause();
}

static void listen_on(int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0) {
		printf("{\"probe\":\"listen\",\"errno\":%d}\n", errno);
		return;
	}
	printf("{\"probe\":\"listen\",\"port\":%d}\n", port);
	fflush(stdout);
	for (;;) {
		int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "hello %s\n", getenv("DYNO") ?: "?");
		if (write(c, msg, (size_t)n) < 0)
			perror("write");
		close(c);
	}
}

static void connect_to(const char *ip, int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ip, &a.sin_addr);
	const char *res = "ok";
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (errno != EINPROGRESS) {
			res = strerror(errno);
		} else {
			struct pollfd pf = {s, POLLOUT, 0};
			if (poll(&pf, 1, 2000) == 0) {
				res = "timeout";
			} else {
				int e = 0;
				socklen_t l = sizeof(e);
				getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
				res = e ? strerror(e) : "ok";
			}
		}
	}
	printf("{\"probe\":\"connect\",\"to\":\"%s:%d\",\"result\":\"%s\"}\n", ip, port, res);
	fflush(stdout);
	close(s);
}

static void on_term(int sig)
{
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "TERM %d\n", (int)getpid());
	if (write(1, msg, (size_t)n) < 0)
		_exit(2);
	_exit(0);
}

static void term(int n)
{
	signal(SIGTERM, on_term);
	for (int i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0) {
			/* a new process group: kill(-1) must reach it anyway */
			setpgid(0, 0);
			for (;;)
				pause();
		}
	}
	printf("ready %d\n", n);
	fflush(stdout);
	for (;;)
		pause();
}

static void spam(long bytes)
{
	char line[128];
	long done = 0;
	for (long i = 0; done < bytes; i++) {
		int n = snprintf(line, sizeof(line), "spam line %ld\n", i);
		if (write(1, line, (size_t)n) != n)
			_exit(3);
		done += n;
	}
	printf("{\"probe\":\"spam\",\"bytes\":%ld}\n", done);
}

/* Processes in state Z (dead, not reaped) among /proc's. */
static void zombies(void)
{
	int n = 0, total = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			char *rp = strrchr(buf, ')');
			total++;
			if (rp && rp[1] == ' ' && rp[2] == 'Z')
				n++;
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	printf("{\"probe\":\"zombies\",\"zombies\":%d,\"processes\":%d}\n", n, total);
}

static void spoof(const char *src, const char *ip, int port)
{
	int e_raw = 0, e_packet = 0, e_bind = 0, e_send = 0, one = 1;
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	e_raw = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	fd = socket(17 /* AF_PACKET */, SOCK_RAW | SOCK_CLOEXEC, htons(0x0806));
	e_packet = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET}, d = {.sin_family = AF_INET};
	inet_pton(AF_INET, src, &a.sin_addr);
	inet_pton(AF_INET, ip, &d.sin_addr);
	d.sin_port = htons((uint16_t)port);
	setsockopt(fd, IPPROTO_IP, 15 /* IP_FREEBIND */, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		e_bind = errno;
	else if (sendto(fd, "freebind", 8, 0, (struct sockaddr *)&d, sizeof(d)) < 0)
		e_send = errno;
	close(fd);
	printf("{\"probe\":\"spoof\",\"raw\":%d,\"packet\":%d,\"bind\":%d,\"send\":%d}\n", e_raw,
	       e_packet, e_bind, e_send);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* run as the dyno's init (dyno-launch --init): an init that never
	 * reports, for the launcher's set-up timeout */
	if (!strcmp(argv[0], "dyno-init"))
		for (;;)
			pause();
	if (argc < 2) {
		fprintf(stderr,
		        "usage: probe report|hog|forkbomb|listen|connect|term|spam|touch\n");
		return 2;
	}
	const char *c = argv[1];
	if (!strcmp(c, "report"))
		report();
	else if (!strcmp(c, "hog") && argc > 2)
		hog(atol(argv[2]), argc > 3 && !strcmp(argv[3], "hold"));
	else if (!strcmp(c, "forkbomb"))
		forkbomb();
	else if (!strcmp(c, "listen") && argc > 2)
		listen_on(atoi(argv[2]));
	else if (!strcmp(c, "connect") && argc > 3)
		connect_to(argv[2], atoi(argv[3]));
	else if (!strcmp(c, "term") && argc > 2)
		term(atoi(argv[2]));
	else if (!strcmp(c, "spam") && argc > 2)
		spam(atol(argv[2]));
	else if (!strcmp(c, "zombies"))
		zombies();
	else if (!strcmp(c, "spoof") && argc > 4)
		spoof(argv[2], argv[3], atoi(argv[4]));
	else if (!strcmp(c, "int80"))
		printf("{\"probe\":\"int80\",\"result\":%d}\n", int80());
	else if (!strcmp(c, "touch") && argc > 2)
		printf("{\"probe\":\"touch\",\"path\":\"%s\",\"errno\":%d}\n", argv[2],
		       try_write(argv[2]));
	else if (!strcmp(c, "families")) {
		/* AF_VSOCK refused (EAFNOSUPPORT), AF_INET and AF_UNIX allowed;
		 * personality(READ_IMPLIES_EXEC) refused, the query allowed */
		int e_vsock = 0, e_inet = 0, e_unix = 0, e_pers = 0;
		int fd = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
		e_vsock = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		e_inet = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		fd = socket(AF_UNIX, SOCK_DGRAM, 0);
		e_unix = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		/* the host's device events: refused; route netlink: allowed; a
		 * family with high bits set is still the same family */
		int e_uevent = 0, e_route = 0, e_uevent_hi = 0;
		fd = socket(AF_NETLINK, SOCK_DGRAM, 15 /* NETLINK_KOBJECT_UEVENT */);
		e_uevent = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		fd = (int)syscall(SYS_socket, (1UL << 32) | AF_NETLINK, SOCK_DGRAM, 15UL);
		e_uevent_hi = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		fd = socket(AF_NETLINK, SOCK_DGRAM, 0 /* NETLINK_ROUTE */);
		e_route = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		e_pers = syscall(SYS_personality, 0x0400000UL) < 0 ? errno : 0;
		long query = syscall(SYS_personality, 0xffffffffUL);
		printf("{\"probe\":\"families\",\"vsock\":%d,\"inet\":%d,\"unix\":%d,"
		       "\"uevent\":%d,\"uevent_high_bits\":%d,\"netlink_route\":%d,"
		       "\"read_implies_exec\":%d,\"query_ok\":%s}\n",
		       e_vsock, e_inet, e_unix, e_uevent, e_uevent_hi, e_route, e_pers,
		       query >= 0 ? "true" : "false");
	} else if (!strcmp(c, "ls") && argc > 2)
		printf("{\"probe\":\"ls\",\"path\":\"%s\",\"exists\":%s}\n", argv[2],
		       access(argv[2], F_OK) == 0 ? "true" : "false");
	else
		return 2;
	return 0;
}
