#include "cli/api-client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/config.h"
#include "common/http1.h"

#define RESPONSE_MAX (64ULL * 1024 * 1024)

void api_response_clear(struct api_response *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

const char *api_client_socket(void)
{
	static char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *env = getenv("DYNO_API");
	if (env && *env)
		return env;
	if (path[0])
		return path;
	/* the configuration dynod would read, else the built-in default */
	struct config *cfg = NULL;
	struct dy_error *err = NULL;
	if (config_load(NULL, &cfg, &err) == 0) {
		snprintf(path, sizeof(path), "%s", cfg->api_socket);
		config_free(cfg);
	} else {
		dy_error_free(&err);
		snprintf(path, sizeof(path), "/run/dyno/api.sock");
	}
	return path;
}

int api_client_connect(struct dy_error **err)
{
	const char *path = api_client_socket();
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path))
		return dy_error(err, "DYNO_API %s: path too long", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dy_error_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(fd);
		return dy_error_errno(err, e, "cannot reach dynod at %s (set DYNO_API?)", path);
	}
	return fd;
}

static int send_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	while (len > 0) {
		ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_head(int fd, const char *method, const char *path, const char *type, uint64_t len)
{
	char head[4096];
	int n = snprintf(head, sizeof(head),
	                 "%s %s HTTP/1.1\r\nHost: dynod\r\nUser-Agent: dyno/%s\r\n"
	                 "Accept: application/json\r\nContent-Type: %s\r\n"
	                 "Content-Length: %llu\r\nConnection: close\r\n\r\n",
	                 method, path, DYNO_VERSION, type, (unsigned long long)len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -E2BIG;
	return send_all(fd, head, (size_t)n);
}

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap * 2 : 16384;
		while (ncap < *len + n)
			ncap *= 2;
		char *nb = realloc(*buf, ncap);
		if (nb == NULL)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

/* Reads the response from fd into *ret. */
static int read_response(int fd, const char *method, struct api_response *ret,
                         struct dy_error **err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	struct h1_header hdrs[100];
	struct h1_parser p;
	struct h1_response resp;
	h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
	size_t head = 0, blen = 0;
	bool eof = false;
	struct h1_chunked chunk;
	size_t coff = 0;
	_cleanup_free_ char *dec = NULL; /* a chunked body, decoded */
	size_t dlen = 0, dcap = 0;
	for (;;) {
		if (!eof && len + 4096 > cap) {
			size_t ncap = cap ? cap * 2 : 16384;
			if (ncap > RESPONSE_MAX + 65536)
				return dy_error(err, "dynod's answer is too large");
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL)
				return dy_error_errno(err, ENOMEM, "response");
			buf = nb;
			cap = ncap;
		}
		if (!eof) {
			ssize_t n = recv(fd, buf + len, cap - len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return dy_error_errno(err, errno, "reading dynod's answer");
			if (n == 0)
				eof = true;
			len += (size_t)n;
		}
		if (head == 0) {
			int r = h1_parse_response(
			    &p, buf, len, strcmp(method, "HEAD") == 0 ? H1_RESP_HEAD : 0, &resp);
			if (r < 0)
				return dy_error(err, "dynod's answer is not HTTP: %s",
				                h1_strerror(r));
			if (r == 0) {
				if (eof)
					return dy_error(err, "dynod closed the connection without "
					                     "answering");
				continue;
			}
			if (resp.status == 100) {
				/* an interim answer: the final one follows */
				memmove(buf, buf + r, len - (size_t)r);
				len -= (size_t)r;
				h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
				continue;
			}
			head = (size_t)r;
		}
		blen = len - head;
		if (resp.body == H1_BODY_NONE || resp.body == H1_BODY_TUNNEL) {
			blen = 0;
			break;
		}
		if (resp.body == H1_BODY_LENGTH) {
			if (blen >= (uint64_t)resp.content_length) {
				blen = (size_t)resp.content_length;
				break;
			}
			if (eof)
				return dy_error(err, "dynod's answer was cut short");
			continue;
		}
		if (resp.body == H1_BODY_CHUNKED) {
			if (coff == 0) {
				h1_chunked_init(&chunk, NULL);
				coff = head;
			}
			while (coff < len && !h1_chunked_done(&chunk)) {
				struct h1_slice d;
				int n = h1_chunked_decode(&chunk, buf + coff, len - coff, &d);
				if (n < 0)
					return dy_error(err, "dynod's answer: %s", h1_strerror(n));
				if (n == 0)
					break;
				if (d.len && (dlen + d.len > RESPONSE_MAX ||
				              append(&dec, &dlen, &dcap, d.p, d.len) < 0))
					return dy_error(err, "dynod's answer is too large");
				coff += (size_t)n;
			}
			if (h1_chunked_done(&chunk))
				break;
			if (eof)
				return dy_error(err, "dynod's answer was cut short");
			continue;
		}
		if (eof)
			break; /* until close */
	}
	const char *src = buf + head;
	if (resp.body == H1_BODY_CHUNKED) {
		src = dec ? dec : "";
		blen = dlen;
	}
	ret->status = resp.status;
	ret->body = malloc(blen + 1);
	if (ret->body == NULL)
		return dy_error_errno(err, ENOMEM, "response");
	memcpy(ret->body, src, blen);
	ret->body[blen] = '\0';
	ret->body_len = blen;
	return 0;
}

int api_client_stream(const char *path, api_stream_fn fn, void *ctx, struct api_response *ret,
                      struct dy_error **err)
{
	return api_client_stream_idle(path, fn, NULL, 0, ctx, ret, err);
}

int api_client_stream_idle(const char *path, api_stream_fn fn, api_idle_fn idle, int idle_ms,
                           void *ctx, struct api_response *ret, struct dy_error **err)
{
	_cleanup_close_ int fd = api_client_connect(err);
	if (fd < 0)
		return -1;
	int r = send_head(fd, "GET", path, "application/json", 0);
	if (r < 0)
		return dy_error_errno(err, -r, "sending to dynod");
	char buf[65536];
	size_t len = 0, head = 0;
	struct h1_header hdrs[100];
	struct h1_parser p;
	struct h1_response resp;
	h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
	for (;;) {
		if (len == sizeof(buf))
			return dy_error(err, "dynod's answer head is too large");
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "reading dynod's answer");
		if (n == 0)
			return dy_error(err, "dynod closed the connection without answering");
		len += (size_t)n;
		int h = h1_parse_response(&p, buf, len, 0, &resp);
		if (h < 0)
			return dy_error(err, "dynod's answer is not HTTP: %s", h1_strerror(h));
		if (h > 0) {
			head = (size_t)h;
			break;
		}
	}
	if (resp.status >= 200 && resp.status <= 299 && resp.body == H1_BODY_LENGTH) {
		/* a file's bytes (a backup's download): streamed as well */
		ret->status = resp.status;
		uint64_t left = (uint64_t)resp.content_length;
		size_t have = len - head < left ? len - head : (size_t)left;
		if (have && fn(ctx, buf + head, have) < 0)
			return 0;
		left -= have;
		while (left > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return dy_error(err,
				                "dynod's answer was cut short (%llu bytes missing)",
				                (unsigned long long)left);
			size_t take = (uint64_t)n < left ? (size_t)n : (size_t)left;
			if (fn(ctx, buf, take) < 0)
				return 0;
			left -= take;
		}
		return 0;
	}
	if (resp.status < 200 || resp.status > 299 || resp.body != H1_BODY_CHUNKED) {
		/* an error's JSON: read it whole, as any answer */
		_cleanup_free_ char *body = NULL;
		size_t bl = 0, bcap = 0;
		if (append(&body, &bl, &bcap, buf + head, len - head) < 0)
			return dy_error_errno(err, ENOMEM, "response");
		for (;;) {
			if (resp.body == H1_BODY_LENGTH && bl >= (uint64_t)resp.content_length)
				break;
			if (resp.body == H1_BODY_NONE)
				break;
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (bl + (size_t)n > RESPONSE_MAX ||
			    append(&body, &bl, &bcap, buf, (size_t)n) < 0)
				return dy_error(err, "dynod's answer is too large");
		}
		if (resp.body == H1_BODY_LENGTH && bl > (uint64_t)resp.content_length)
			bl = (size_t)resp.content_length;
		ret->status = resp.status;
		ret->body = malloc(bl + 1);
		if (ret->body == NULL)
			return dy_error_errno(err, ENOMEM, "response");
		memcpy(ret->body, body ? body : "", bl);
		ret->body[bl] = '\0';
		ret->body_len = bl;
		return 0;
	}
	ret->status = resp.status;
	struct h1_chunked chunk;
	h1_chunked_init(&chunk, NULL);
	/* the decoder keeps its place: what it has not taken moves to the front */
	memmove(buf, buf + head, len - head);
	len -= head;
	for (;;) {
		size_t off = 0;
		while (off < len && !h1_chunked_done(&chunk)) {
			struct h1_slice d;
			int n = h1_chunked_decode(&chunk, buf + off, len - off, &d);
			if (n < 0)
				return dy_error(err, "dynod's answer: %s", h1_strerror(n));
			if (n == 0)
				break;
			off += (size_t)n;
			if (d.len && fn(ctx, d.p, d.len) < 0)
				return 0;
		}
		memmove(buf, buf + off, len - off);
		len -= off;
		if (h1_chunked_done(&chunk))
			return 0;
		if (len == sizeof(buf))
			return dy_error(err, "dynod's answer: a chunk head too large");
		if (idle) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int pr = poll(&pfd, 1, idle_ms);
			if (pr < 0 && errno != EINTR)
				return dy_error_errno(err, errno, "waiting for dynod's answer");
			if (pr <= 0) {
				if (idle(ctx) < 0)
					return 0;
				continue;
			}
		}
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "reading dynod's answer");
		if (n == 0)
			return dy_error(err, "dynod's answer was cut short");
		len += (size_t)n;
	}
}

int api_client_request(const char *method, const char *path, const void *body, size_t len,
                       struct api_response *ret, struct dy_error **err)
{
	_cleanup_close_ int fd = api_client_connect(err);
	if (fd < 0)
		return -1;
	int r = send_head(fd, method, path, "application/json", len);
	if (r == 0 && len)
		r = send_all(fd, body, len);
	/* on EPIPE dynod may still have answered (an early refusal) */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET)
		return dy_error_errno(err, -r, "sending to dynod");
	return read_response(fd, method, ret, err);
}

int api_client_request_fd(const char *method, const char *path, int in, uint64_t len,
                          api_progress_fn progress, void *ctx, struct api_response *ret,
                          struct dy_error **err)
{
	_cleanup_close_ int fd = api_client_connect(err);
	if (fd < 0)
		return -1;
	int r = send_head(fd, method, path, "application/octet-stream", len);
	_cleanup_free_ char *buf = malloc(256 * 1024);
	if (buf == NULL)
		return dy_error_errno(err, ENOMEM, "upload");
	uint64_t sent = 0;
	while (r == 0 && sent < len) {
		ssize_t n = read(in, buf, 256 * 1024);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "reading the slug");
		if (n == 0)
			return dy_error(err, "the slug shrank while it was sent");
		if ((uint64_t)n > len - sent)
			n = (ssize_t)(len - sent);
		r = send_all(fd, buf, (size_t)n);
		sent += (uint64_t)n;
		if (progress && r == 0)
			progress(sent, len, ctx);
	}
	if (r < 0 && r != -EPIPE && r != -ECONNRESET)
		return dy_error_errno(err, -r, "sending to dynod");
	return read_response(fd, method, ret, err);
}

int cli_api_result(struct api_response *r, json_t **ret)
{
	json_error_t jerr;
	json_t *j = r->body_len ? json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &jerr) : NULL;
	if (r->status < 200 || r->status > 299) {
		const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
		if (msg)
			cli_error("%s", msg);
		else
			cli_error("dynod answered %d: %.200s", r->status, r->body ? r->body : "");
		if (j)
			json_decref(j);
		return CLI_ERROR;
	}
	if (r->body_len && j == NULL)
		return cli_error("dynod's answer is not JSON: %s", jerr.text);
	if (ret)
		*ret = j;
	else if (j)
		json_decref(j);
	return CLI_OK;
}

int cli_api(const char *method, const char *path, json_t *body, json_t **ret)
{
	_cleanup_free_ char *text =
	    body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (body && text == NULL)
		return cli_error("out of memory");
	struct api_response r = {0};
	struct dy_error *err = NULL;
	if (api_client_request(method, path, text, text ? strlen(text) : 0, &r, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	int rc = cli_api_result(&r, ret);
	api_response_clear(&r);
	return rc;
}

const char *cli_app(const char *opt)
{
	if (opt && *opt)
		return opt;
	const char *env = getenv("DYNO_APP");
	return env && *env ? env : NULL;
}

char *cli_app_path(const char *app, const char *suffix)
{
	size_t n = strlen(app);
	char *s = malloc(6 + 3 * n + strlen(suffix) + 1);
	if (s == NULL) {
		fputs("dyno: error: out of memory\n", stderr);
		exit(CLI_ERROR);
	}
	char *o = s + sprintf(s, "/apps/");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)app[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.')
			*o++ = (char)c;
		else
			o += sprintf(o, "%%%02X", c);
	}
	strcpy(o, suffix);
	return s;
}

void cli_print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	puts(s ? s : "null");
	free(s);
}
