/* The programs of the PostgreSQL add-on (initdb, openssl, pg_ctl, psql),
 * run as postgres on a worker thread; see addon-pg.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "runtime/launcher/net.h"
#include "runtime/manager/addon-pg-internal.h"
#include "runtime/manager/addon-pg.h"
#include "runtime/manager/router-keeper.h"

#define OUT_MAX (256 * 1024) /* what a program may print that is kept */

int pgw_env_init(struct pg_env *e, const struct config *cfg, struct dy_error **err)
{
	*e = (struct pg_env){0};
	struct in_addr gw = net_gateway(cfg->network.subnet);
	inet_ntop(AF_INET, &gw, e->gw, sizeof(e->gw));
	e->port = cfg->addons.postgresql.port;
	if (cfg->addons.postgresql.mode == CONFIG_PG_EXTERNAL) {
		/* no cluster of dynod's: only the clients, as root */
		int r = pgw_ext_init(e, cfg->addons.postgresql.url, err);
		if (r < 0)
			pgw_env_clear(e);
		return r;
	}
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	if (getpwnam_r(PG_USER, &pw, buf, sizeof(buf), &pwp) != 0 || pwp == NULL)
		return dy_error_as(
		    err, DY_E_UNSUPPORTED,
		    "the PostgreSQL add-on needs the user %s (Debian's postgresql-15 "
		    "makes it)",
		    PG_USER);
	e->uid = pw.pw_uid;
	e->gid = pw.pw_gid;
	char hex[DY_SHA256_HEX_LEN + 1];
	dy_sha256_hex_of(cfg->state_dir, strlen(cfg->state_dir), hex);
	if (asprintf(&e->host_data, "%s/" PG_DATA_DIR, cfg->state_dir) < 0)
		e->host_data = NULL;
	if (asprintf(&e->host_data_new, "%s/" PG_DATA_DIR ".new", cfg->state_dir) < 0)
		e->host_data_new = NULL;
	if (asprintf(&e->mnt_src, "%s/addons", cfg->state_dir) < 0)
		e->mnt_src = NULL;
	if (asprintf(&e->sockdir, PG_SOCKET_PARENT "/dyno-pg-%.12s", hex) < 0)
		e->sockdir = NULL;
	if (e->sockdir && asprintf(&e->mnt_dst, "%s/d", e->sockdir) < 0)
		e->mnt_dst = NULL;
	if (e->mnt_dst && asprintf(&e->data, "%s/postgresql", e->mnt_dst) < 0)
		e->data = NULL;
	if (e->mnt_dst && asprintf(&e->data_new, "%s/postgresql.new", e->mnt_dst) < 0)
		e->data_new = NULL;
	if (!e->data || !e->data_new || !e->host_data || !e->host_data_new || !e->mnt_src ||
	    !e->mnt_dst || !e->sockdir) {
		pgw_env_clear(e);
		return dy_error_errno(err, ENOMEM, "postgresql");
	}
	return 0;
}

void pgw_env_clear(struct pg_env *e)
{
	free(e->data);
	free(e->data_new);
	free(e->host_data);
	free(e->host_data_new);
	free(e->mnt_src);
	free(e->mnt_dst);
	free(e->sockdir);
	pgw_ext_clear(e);
	*e = (struct pg_env){0};
}

static char *quote(const char *s, char q)
{
	size_t n = 3;
	for (const char *p = s; *p; p++)
		n += *p == q ? 2 : 1;
	char *r = malloc(n), *o = r;
	if (!r)
		return NULL;
	*o++ = q;
	for (const char *p = s; *p; p++) {
		if (*p == q)
			*o++ = q;
		*o++ = *p;
	}
	*o++ = q;
	*o = '\0';
	return r;
}

char *pgw_ident(const char *s)
{
	return quote(s, '"');
}

char *pgw_literal(const char *s)
{
	return quote(s, '\'');
}

/* Runs argv (argv[0] a full path) as postgres in a session of its own, with
 * a small environment, its stdout and stderr into *out (may be NULL; at
 * most OUT_MAX bytes kept). Only async-signal-safe calls between fork and
 * exec: this runs on a worker thread. Returns 0 when it exited 0, else < 0
 * naming the program and its last output. */
static int run_io(const struct pg_env *e, const char *const argv[], int in_fd, int out_fd,
                  char **out, struct dy_error **err)
{
	static char *const pg_envp[] = {"PATH=/usr/bin:/bin", "HOME=/var/lib/postgresql",
	                                "LC_ALL=C", "PGTZ=UTC", NULL};
	/* external: the server's address and the administrator's password,
	 * made before the fork (nothing but async-signal-safe calls after) */
	char **ext_envp = e->external ? pgw_ext_envp(e) : NULL;
	if (e->external && !ext_envp)
		return dy_error_errno(err, ENOMEM, "postgresql");
	char *const *envp = e->external ? ext_envp : pg_envp;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		pgw_envp_free(ext_envp);
		return dy_error_errno(err, errno, "pipe");
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid = fork();
	if (pid < 0) {
		int errnum = errno;
		close(p[0]);
		close(p[1]);
		if (devnull >= 0)
			close(devnull);
		pgw_envp_free(ext_envp);
		return dy_error_errno(err, errnum, "fork for %s", argv[0]);
	}
	if (pid == 0) {
		/* the postmaster pg_ctl starts keeps this session: no
		 * terminal's signal reaches it, nor dynod's process group */
		setsid();
		if (in_fd >= 0)
			dup2(in_fd, 0);
		else if (devnull >= 0)
			dup2(devnull, 0);
		dup2(out_fd >= 0 ? out_fd : p[1], 1);
		dup2(p[1], 2);
		/* nothing of dynod's (its state dir lock) outlives it in the
		 * server */
		syscall(SYS_close_range, 3, ~0U, 0);
		if (e->external) {
			/* a client of the operator's server: root's, so that
			 * only root reads its environment (the password) */
			if (chdir("/") < 0)
				_exit(126);
			execve(argv[0], (char *const *)argv, envp);
			_exit(127);
		}
		/* its data where postgres can reach it (struct pg_env) */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(e->mnt_src, e->mnt_dst, NULL, MS_BIND, NULL) < 0)
			_exit(125);
		if (setgroups(1, &e->gid) < 0 || setgid(e->gid) < 0 || setuid(e->uid) < 0)
			_exit(126);
		if (chdir("/") < 0)
			_exit(126);
		execve(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	close(p[1]);
	if (devnull >= 0)
		close(devnull);
	pgw_envp_free(ext_envp);
	size_t len = 0, cap = 4096;
	char *o = malloc(cap);
	for (;;) {
		char chunk[4096];
		ssize_t n = read(p[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (!o || len + (size_t)n >= OUT_MAX)
			continue; /* drained, not kept */
		if (len + (size_t)n + 1 > cap) {
			char *bigger = realloc(o, cap * 2 + (size_t)n);
			if (!bigger)
				continue;
			o = bigger;
			cap = cap * 2 + (size_t)n;
		}
		memcpy(o + len, chunk, (size_t)n);
		len += (size_t)n;
	}
	close(p[0]);
	if (o)
		o[len] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (out)
			*out = o;
		else
			free(o);
		return 0;
	}
	/* the message: the program's name and its output's last line(s) */
	while (o && len > 0 && (o[len - 1] == '\n' || o[len - 1] == ' '))
		o[--len] = '\0';
	const char *tail = o ? o : "";
	if (len > 300)
		tail = o + len - 300;
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	if (WIFEXITED(status))
		dy_error(err, "%s exited with status %d%s%s", name, WEXITSTATUS(status),
		         tail[0] ? ": " : "", tail);
	else
		dy_error(err, "%s was killed by signal %d", name, WTERMSIG(status));
	free(o);
	return -1;
}

static int run(const struct pg_env *e, const char *const argv[], char **out, struct dy_error **err)
{
	return run_io(e, argv, -1, -1, out, err);
}

pid_t pgw_server_pid(const struct pg_env *e)
{
	if (e->external)
		return 0;
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/postmaster.pid", e->host_data) < 0)
		return 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char line1[32] = "", line2[4096] = "";
	bool ok = fgets(line1, sizeof(line1), f) && fgets(line2, sizeof(line2), f);
	fclose(f);
	if (!ok)
		return 0;
	line2[strcspn(line2, "\n")] = '\0';
	long pid = strtol(line1, NULL, 10);
	char comm[16];
	unsigned long long start;
	/* its data directory as it sees it (a server of an older dynod: the
	 * host's path) */
	if (pid <= 0 || (strcmp(line2, e->data) != 0 && strcmp(line2, e->host_data) != 0) ||
	    rkeep_proc_stat((pid_t)pid, comm, &start) < 0 || strcmp(comm, "postgres") != 0)
		return 0;
	return (pid_t)pid;
}

/* Appended to the cluster's postgresql.conf: TLS, scram; the addresses,
 * port and socket directory come with each start (pg_ctl -o), from the
 * configuration of the day. */
static const char conf_add[] = "\n# dyno (docs/addons.md)\n"
                               "ssl = on\n"
                               "ssl_cert_file = 'server.crt'\n"
                               "ssl_key_file = 'server.key'\n"
                               "ssl_min_protocol_version = 'TLSv1.2'\n"
                               "password_encryption = 'scram-sha-256'\n"
                               "shared_buffers = 32MB\n"
                               "max_connections = 200\n"
                               "logging_collector = off\n";

/* Only the administrator over the Unix socket (peer), and each role on
 * its own database over TLS. */
static const char hba[] = "# dyno (docs/addons.md): nothing but these\n"
                          "local all postgres peer\n"
                          "hostssl sameuser all 0.0.0.0/0 scram-sha-256\n";

static int write_owned(const struct pg_env *e, const char *dir, const char *name, const char *text,
                       bool append, struct dy_error **err)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return dy_error_errno(err, ENOMEM, "postgresql");
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s", path);
	int r = dy_write_all(fd, text, strlen(text));
	int errnum = errno;
	if (r == 0 && (fchown(fd, e->uid, e->gid) < 0 || fsync(fd) < 0)) {
		r = -1;
		errnum = errno;
	}
	close(fd);
	if (r < 0)
		return dy_error_errno(err, errnum, "%s", path);
	return 0;
}

static int make_cluster(const struct pg_env *e, struct dy_error **err)
{
	/* a .new left by an interrupted initdb goes first */
	const char *const rm_argv[] = {"/bin/rm", "-rf", "--", e->data_new, NULL};
	if (access(e->host_data_new, F_OK) == 0 && run(e, rm_argv, NULL, err) < 0)
		return -1;
	if (mkdir(e->host_data_new, 0700) < 0 || chown(e->host_data_new, e->uid, e->gid) < 0)
		return dy_error_errno(err, errno, "%s", e->host_data_new);
	const char *const initdb[] = {PG_BIN_DIR "/initdb",
	                              "-D",
	                              e->data_new,
	                              "-U",
	                              PG_USER,
	                              "-E",
	                              "UTF8",
	                              "--no-locale",
	                              "--auth-local=peer",
	                              "--auth-host=scram-sha-256",
	                              NULL};
	_cleanup_free_ char *key = NULL, *crt = NULL;
	if (asprintf(&key, "%s/server.key", e->data_new) < 0 ||
	    asprintf(&crt, "%s/server.crt", e->data_new) < 0)
		return dy_error_errno(err, ENOMEM, "postgresql");
	char subj[64];
	snprintf(subj, sizeof(subj), "/CN=%s", e->gw);
	const char *const openssl[] = {"/usr/bin/openssl", "req",   "-x509", "-newkey", "rsa:2048",
	                               "-nodes",           "-days", "3650",  "-subj",   subj,
	                               "-keyout",          key,     "-out",  crt,       NULL};
	if (run(e, initdb, NULL, err) < 0 ||
	    write_owned(e, e->host_data_new, "postgresql.conf", conf_add, true, err) < 0 ||
	    write_owned(e, e->host_data_new, "pg_hba.conf", hba, false, err) < 0 ||
	    run(e, openssl, NULL, err) < 0) {
		dy_error_prefix(err, "making the PostgreSQL cluster");
		run(e, rm_argv, NULL, NULL);
		return -1;
	}
	_cleanup_free_ char *host_key = NULL;
	if (asprintf(&host_key, "%s/server.key", e->host_data_new) < 0)
		return dy_error_errno(err, ENOMEM, "postgresql");
	if (chmod(host_key, 0600) < 0 || rename(e->host_data_new, e->host_data) < 0) {
		int r = dy_error_errno(err, errno, "%s", e->host_data);
		run(e, rm_argv, NULL, NULL);
		return r;
	}
	return 0;
}

int pgw_ensure(const struct pg_env *e, pid_t *ret_pid, struct dy_error **err)
{
	*ret_pid = 0;
	if (e->external) /* the operator's server: nothing to make or start */
		return access(PG_BIN_DIR "/psql", X_OK) == 0
		           ? 0
		           : dy_error_as(
		                 err, DY_E_UNSUPPORTED,
		                 "the PostgreSQL add-on needs Debian's postgresql-client-15 "
		                 "(%s/psql is missing)",
		                 PG_BIN_DIR);
	_cleanup_free_ char *version = NULL;
	if (asprintf(&version, "%s/PG_VERSION", e->host_data) < 0)
		return dy_error_errno(err, ENOMEM, "postgresql");
	if (access(PG_BIN_DIR "/postgres", X_OK) < 0)
		return dy_error_as(
		    err, DY_E_UNSUPPORTED,
		    "the PostgreSQL add-on needs Debian's postgresql-15 (%s/postgres "
		    "is missing)",
		    PG_BIN_DIR);
	/* the socket directory, and in it where the programs see the data */
	if (mkdir(e->sockdir, 0700) < 0 && errno != EEXIST)
		return dy_error_errno(err, errno, "mkdir %s", e->sockdir);
	if (chown(e->sockdir, e->uid, e->gid) < 0 || chmod(e->sockdir, 0700) < 0)
		return dy_error_errno(err, errno, "%s", e->sockdir);
	if (mkdir(e->mnt_dst, 0700) < 0 && errno != EEXIST)
		return dy_error_errno(err, errno, "mkdir %s", e->mnt_dst);
	if (access(version, F_OK) < 0 && make_cluster(e, err) < 0)
		return -1;
	pid_t pid = pgw_server_pid(e);
	if (pid > 0) {
		*ret_pid = pid;
		return 0;
	}
	char opts[512];
	snprintf(opts, sizeof(opts), "-c listen_addresses=%s -p %u -c unix_socket_directories=%s",
	         e->gw, e->port, e->sockdir);
	_cleanup_free_ char *log = NULL;
	if (asprintf(&log, "%s/server.log", e->data) < 0)
		return dy_error_errno(err, ENOMEM, "postgresql");
	const char *const argv[] = {PG_BIN_DIR "/pg_ctl",
	                            "-D",
	                            e->data,
	                            "-l",
	                            log,
	                            "-o",
	                            opts,
	                            "-w",
	                            "-t",
	                            "60",
	                            "-s",
	                            "start",
	                            NULL};
	if (run(e, argv, NULL, err) < 0)
		return dy_error_prefix(err, "starting PostgreSQL (its log: %s/server.log)",
		                       e->host_data);
	pid = pgw_server_pid(e);
	if (pid <= 0)
		return dy_error(err, "PostgreSQL started but %s/postmaster.pid names no server",
		                e->host_data);
	*ret_pid = pid;
	return 0;
}

/* Runs PostgreSQL client prog (psql, pg_dump, pg_restore) with args (up to
 * 16) as postgres on database db over the Unix socket. */
static int run_client(const struct pg_env *e, const char *prog, const char *db,
                      const char *const *args, int in_fd, int out_fd, char **out,
                      struct dy_error **err)
{
	char port[16], path[64];
	snprintf(port, sizeof(port), "%u", e->port);
	snprintf(path, sizeof(path), PG_BIN_DIR "/%s", prog);
	const char *argv[32] = {path, "-h", e->sockdir, "-p", port, "-U", PG_USER, "-d", db};
	size_t k = 9;
	if (e->external) {
		/* host, port, user, password: the environment (run_io);
		 * the administrator's database for "postgres" */
		argv[1] = "-d";
		argv[2] = strcmp(db, "postgres") == 0 ? e->ext_db : db;
		k = 3;
	}
	for (size_t i = 0; args[i] && k < ELEMENTSOF(argv) - 1; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	int r = run_io(e, argv, in_fd, out_fd, out, err);
	if (r < 0 && e->external)
		dy_error_prefix(err, "PostgreSQL server %s:%u (addons.postgresql.url)", e->ext_host,
		                e->ext_port);
	return r;
}

int pgw_sql(const struct pg_env *e, const char *db, const char *const *stmts, size_t n, char **out,
            struct dy_error **err)
{
	/* the statements go through psql's stdin, never its argv (a role's
	 * password would show in ps to every host user); each its own
	 * transaction, the first error stops them */
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(stmts[i]) + 2;
	if (len >= 60000) /* all of it fits in the pipe, written before psql runs */
		return dy_error(err, "psql: %zu bytes of SQL is too much", len);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return dy_error_errno(err, errno, "pipe");
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		if (dy_write_all(p[1], stmts[i], strlen(stmts[i])) < 0 ||
		    dy_write_all(p[1], ";\n", 2) < 0)
			r = dy_error_errno(err, errno, "psql's input");
	close(p[1]);
	static const char *const args[] = {"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", NULL};
	if (r == 0)
		r = run_client(e, "psql", db, args, p[0], -1, out, err);
	close(p[0]);
	return r;
}

/* ---- backups: pg_dump's custom format, root's files ---- */

int pgw_capture(const struct pg_env *e, const char *db, const char *path, struct dy_error **err)
{
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return dy_error_errno(err, ENOMEM, "backup");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s", tmp);
	static const char *const args[] = {"-Fc", NULL};
	int r = run_client(e, "pg_dump", db, args, -1, fd, NULL, err);
	if (r == 0 && fsync(fd) < 0)
		r = dy_error_errno(err, errno, "%s", tmp);
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = dy_error_errno(err, errno, "%s", path);
	if (r < 0) {
		unlink(tmp);
		return dy_error_prefix(err, "capturing a backup of %s", db);
	}
	return 0;
}

int pgw_restore(const struct pg_env *e, const char *db, const char *path, struct dy_error **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s", path);
	char role[PG_NAME_MAX + 16];
	/* the objects are the role's, as they were */
	snprintf(role, sizeof(role), "--role=%s", db);
	const char *const args[] = {"--clean",         "--if-exists", "--no-owner",
	                            "--no-privileges", role,          "--single-transaction",
	                            "--exit-on-error", NULL};
	int r = run_client(e, "pg_restore", db, args, fd, -1, NULL, err);
	close(fd);
	if (r < 0)
		return dy_error_prefix(err, "restoring %s", db);
	return 0;
}

void pgw_remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(dir);
}

int pgw_send_file(int fd, const char *path, struct dy_error **err)
{
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return dy_error_errno(err, errno, "%s", path);
	struct stat st;
	int r = fstat(in, &st);
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
	                 "Content-Length: %lld\r\nConnection: close\r\n\r\n",
	                 (long long)st.st_size);
	int flags = fcntl(fd, F_GETFL);
	if (r == 0 && flags >= 0)
		r = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	if (r == 0)
		r = dy_write_all(fd, head, (size_t)n);
	off_t off = 0;
	while (r == 0 && off < st.st_size) {
		ssize_t k = sendfile(fd, in, &off, (size_t)(st.st_size - off));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			r = -1;
	}
	int errnum = errno;
	close(in);
	if (r < 0)
		return dy_error_errno(err, errnum, "sending %s", path);
	return 0;
}
