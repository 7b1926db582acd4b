/* run: a one-off dyno of the app's current release (POST /apps/{app}/dynos;
 * docs/cli.md, docs/api.md "Attach"). Attached, the connection is upgraded
 * to the attach protocol (common/attach.h): the local terminal in raw mode
 * when stdin is one (restored on every way out), its size and SIGWINCH
 * forwarded, Ctrl-C a byte to the dyno's pty (or SIGINT without one), and
 * the exit status the dyno's command's. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "common/attach.h"
#include "common/cleanup.h"
#include "common/fs.h"

#define RUN_FAILED 125 /* the API refused, or the attachment broke */
#define HEAD_MAX   16384

/* Appends word to *cmd, quoted for sh when it needs to be. */
static int append_quoted(char **cmd, size_t *len, const char *word)
{
	bool plain = word[0] != '\0';
	for (const char *p = word; *p; p++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		            "_@%+=:,./-",
		            *p))
			plain = false;
	size_t need = *len + 1 + strlen(word) * 4 + 3;
	char *n = realloc(*cmd, need);
	if (!n)
		return -1;
	*cmd = n;
	char *o = n + *len;
	if (*len)
		*o++ = ' ';
	if (plain) {
		o = stpcpy(o, word);
	} else {
		*o++ = '\'';
		for (const char *p = word; *p; p++) {
			if (*p == '\'')
				o = stpcpy(o, "'\\''");
			else
				*o++ = *p;
		}
		*o++ = '\'';
		*o = '\0';
	}
	*len = (size_t)(o - n);
	return 0;
}

static void send_size(int sock)
{
	struct winsize ws;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
		return;
	unsigned char b[4] = {(unsigned char)(ws.ws_row >> 8), (unsigned char)ws.ws_row,
	                      (unsigned char)(ws.ws_col >> 8), (unsigned char)ws.ws_col};
	attach_write(sock, ATTACH_RESIZE, b, sizeof(b));
}

/* Sends the request with the upgrade and reads the answer's head. 101:
 * returns the socket, the bytes read past the head in buf (*ret_len).
 * Anything else: prints the API's error, returns < 0. */
static int attach_request(const char *path, const char *body, char *buf, size_t cap,
                          size_t *ret_len)
{
	struct dy_error *err = NULL;
	int fd = api_client_connect(&err);
	if (fd < 0) {
		fprintf(stderr, "dyno: error: %s\n", dy_error_msg(err));
		dy_error_free(&err);
		return -1;
	}
	_cleanup_free_ char *req = NULL;
	int n = asprintf(&req,
	                 "POST %s HTTP/1.1\r\nHost: dynod\r\nConnection: Upgrade\r\n"
	                 "Upgrade: dyno-attach\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\n\r\n%s",
	                 path, strlen(body), body);
	if (n < 0 || dy_write_all(fd, req, (size_t)n) < 0) {
		fprintf(stderr, "dyno: error: sending to dynod: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	size_t len = 0;
	char *end = NULL;
	while (!end) {
		ssize_t r = len < cap - 1 ? read(fd, buf + len, cap - 1 - len) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "dyno: error: dynod closed the connection\n");
			close(fd);
			return -1;
		}
		len += (size_t)r;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	size_t hlen = (size_t)(end - buf) + 4;
	int status = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		fprintf(stderr, "dyno: error: dynod answered something that is not HTTP\n");
		close(fd);
		return -1;
	}
	if (status == 101) {
		memmove(buf, buf + hlen, len - hlen);
		*ret_len = len - hlen;
		return fd;
	}
	/* the error's body: Content-Length bytes after the head */
	size_t clen = 0;
	for (char *l = strstr(buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
		if (strncasecmp(l + 2, "content-length:", 15) == 0)
			clen = strtoul(l + 17, NULL, 10);
	while (len - hlen < clen && len < cap - 1) {
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	close(fd);
	struct api_response resp = {.status = status, .body = strdup(buf + hlen)};
	resp.body_len = resp.body ? strlen(resp.body) : 0;
	json_t *j = NULL;
	if (cli_api_result(&resp, &j) == CLI_OK) /* a 2xx without the upgrade */
		fprintf(stderr, "dyno: error: dynod did not attach (status %d)\n", status);
	json_decref(j);
	api_response_clear(&resp);
	return -1;
}

struct session {
	int sock;
	bool tty;
	bool stdin_open;
	size_t len;
	char buf[ATTACH_HEADER + ATTACH_MAX_LEN + HEAD_MAX];
};

/* Acts on the frames in s->buf. Returns -1 to go on, else the exit code. */
static int take_frames(struct session *s)
{
	size_t off = 0;
	int code = -1;
	while (code < 0) {
		struct attach_frame f;
		int r = attach_parse(s->buf + off, s->len - off, &f);
		if (r < 0) {
			fprintf(stderr, "dyno: error: the dyno sent a malformed frame\n");
			code = RUN_FAILED;
			break;
		}
		if (r == 0)
			break;
		off += (size_t)r;
		if (f.type == ATTACH_STDOUT)
			dy_write_all(STDOUT_FILENO, f.data, f.len);
		else if (f.type == ATTACH_STDERR)
			dy_write_all(STDERR_FILENO, f.data, f.len);
		else if (f.type == ATTACH_EXIT && f.len == 4) {
			const unsigned char *u = (const unsigned char *)f.data;
			code = (int)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
			             (uint32_t)u[2] << 8 | u[3]);
		} else if (f.type == ATTACH_ERROR) {
			fprintf(stderr, "%sdyno: error: %.*s\n", s->tty ? "\r" : "", (int)f.len,
			        f.data);
			code = RUN_FAILED;
		}
	}
	memmove(s->buf, s->buf + off, s->len - off);
	s->len -= off;
	return code;
}

/* The attached session, until the exit frame. Returns the exit code. */
static int session_run(struct session *s)
{
	sigset_t mask;
	sigemptyset(&mask);
	int sigs[] = {SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&mask, sigs[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	_cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (s->tty)
		send_size(s->sock);
	int code = take_frames(s);
	while (code < 0) {
		struct pollfd pf[3] = {{s->sock, POLLIN, 0},
		                       {s->stdin_open ? STDIN_FILENO : -1, POLLIN, 0},
		                       {sfd, POLLIN, 0}};
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return RUN_FAILED;
		}
		if (pf[0].revents) {
			ssize_t n = read(s->sock, s->buf + s->len, sizeof(s->buf) - s->len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fprintf(stderr, "%sdyno: error: the connection to the dyno broke\n",
				        s->tty ? "\r" : "");
				return RUN_FAILED;
			}
			s->len += (size_t)n;
			code = take_frames(s);
			continue;
		}
		if (pf[1].revents) {
			char in[4096];
			ssize_t n = read(STDIN_FILENO, in, sizeof(in));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				s->stdin_open = false;
				n = 0;
			}
			attach_write(s->sock, ATTACH_STDIN, in, (size_t)n);
		}
		if (pf[2].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGWINCH) {
				if (s->tty)
					send_size(s->sock);
				continue;
			}
			unsigned char sig = (unsigned char)si.ssi_signo;
			attach_write(s->sock, ATTACH_SIGNAL, &sig, 1);
		}
	}
	return code;
}

static int run_attached(const char *path, const char *body, bool tty)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return cli_error("no memory");
	s->tty = tty;
	s->stdin_open = true;
	s->sock = attach_request(path, body, s->buf, HEAD_MAX, &s->len);
	if (s->sock < 0) {
		free(s);
		return RUN_FAILED;
	}
	struct termios saved;
	bool raw = tty && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (raw) {
		struct termios t = saved;
		cfmakeraw(&t);
		tcsetattr(STDIN_FILENO, TCSADRAIN, &t);
	}
	int code = session_run(s);
	/* the one way out of the session: the terminal as it was */
	if (raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
	close(s->sock);
	free(s);
	return code;
}

static int run_run(int argc, char **argv)
{
	const char *app_opt = NULL, *size = NULL;
	bool detach = false;
	int i = 1;
	/* options end at the first word of the command, or at "--" */
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (strcmp(a, "--detach") == 0 || strcmp(a, "-d") == 0) {
			detach = true;
		} else if (strncmp(a, "--size=", 7) == 0) {
			size = a + 7;
		} else if (strncmp(a, "--app=", 6) == 0) {
			app_opt = a + 6;
		} else if (strcmp(a, "--size") == 0 || strcmp(a, "-s") == 0 ||
		           strcmp(a, "--app") == 0 || strcmp(a, "-a") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error(&cli_verb_run, "%s needs a value", a);
			if (a[1] == 's' || a[2] == 's')
				size = argv[++i];
			else
				app_opt = argv[++i];
		} else {
			return cli_usage_error(&cli_verb_run, "unknown option %s", a);
		}
	}
	if (i >= argc)
		return cli_usage_error(&cli_verb_run, "missing the command");
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_run, "missing -a APP (or $DYNO_APP)");
	_cleanup_free_ char *cmd = NULL;
	size_t len = 0;
	for (; i < argc; i++)
		if (append_quoted(&cmd, &len, argv[i]) < 0)
			return cli_error("no memory");
	bool tty = !detach && isatty(STDIN_FILENO);
	json_t *body = json_pack("{s:s, s:b}", "command", cmd, "attach", !detach);
	if (size)
		json_object_set_new(body, "size", json_string(size));
	if (tty)
		json_object_set_new(body, "tty", json_true());
	_cleanup_free_ char *path = cli_app_path(app, "/dynos");
	if (detach) {
		json_t *dyno = NULL;
		int r = cli_api("POST", path, body, &dyno);
		json_decref(body);
		if (r != CLI_OK)
			return RUN_FAILED;
		const char *name = json_string_value(json_object_get(dyno, "name"));
		printf("Running %s on %s... up, %s\n", cmd, app, name ? name : "?");
		json_decref(dyno);
		return CLI_OK;
	}
	_cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		return cli_error("no memory");
	return run_attached(path, text, tty);
}

const struct cli_verb cli_verb_run = {
    .name = "run",
    .run = run_run,
    .usage = "run [-a APP] [--size S] [--detach] [--] CMD...",
    .summary = "run a one-off dyno of the app's current release",
    .help = "The words of CMD are quoted for sh and run as the dyno's command. Attached\n"
            "(the default), its input, output and exit status are the terminal's: a pty\n"
            "when stdin is a terminal (raw mode; window size and Ctrl-C go to the\n"
            "dyno), pipes otherwise. Exits with the command's status, 128+N when a\n"
            "signal N killed it, 125 when the API refused or the connection broke.\n"
            "--detach: the output goes to the app's log (dyno logs); prints the\n"
            "dyno's name and exits 0.\n",
};
