/* The record of running dynos (dyno-record.h): its form, and its writer
 * off the loop. */
#include "runtime/manager/dyno-record.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/work.h"

#define DR_MAX_BYTES (16u << 20)

void dr_record_free(struct dr_record *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->dynos[i].command);
	free(r->dynos);
	r->dynos = NULL;
	r->n = 0;
}

void dr_boot_id(char out[DR_BOOT_ID_LEN + 1])
{
	out[0] = '\0';
	_cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, DR_BOOT_ID_LEN);
	out[n == DR_BOOT_ID_LEN ? n : 0] = '\0';
}

json_t *dr_render(const char *boot_id, const struct dr_entry *v, size_t n)
{
	json_t *list = json_array();
	if (!list)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct dr_entry *e = &v[i];
		char addr[INET_ADDRSTRLEN] = "";
		inet_ntop(AF_INET, &e->addr, addr, sizeof(addr));
		json_t *o = json_pack(
		    "{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:b, s:b}",
		    "app", e->app, "name", e->name, "type", e->type, "id", e->id, "pid",
		    (int)e->pid, "start_time", (json_int_t)e->start_time, "release", e->version,
		    "size", e->size, "command", e->command ? e->command : "", "addr", addr, "port",
		    (int)e->port, "veth", e->veth, "created_at", e->created_at, "state",
		    e->up ? "up" : "starting", "stopping", e->stopping, "oneoff", e->oneoff);
		if (!o || json_array_append_new(list, o) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return json_pack("{s:i, s:s, s:o}", "schema_version", DR_SCHEMA_VERSION, "boot_id",
	                 boot_id ? boot_id : "", "dynos", list);
}

/* Copies string field key of o into buf (cap bytes). */
static int str_field(json_t *o, const char *key, char *buf, size_t cap, const char *name, size_t i,
                     struct dy_error **err)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s)
		return dy_error(err, "%s: dynos[%zu]: %s: expected a string", name, i, key);
	if (strlen(s) >= cap)
		return dy_error(err, "%s: dynos[%zu]: %s: longer than %zu bytes", name, i, key,
		                cap - 1);
	memcpy(buf, s, strlen(s) + 1);
	return 0;
}

/* Integer field key of o, within [lo, hi]. */
static int int_field(json_t *o, const char *key, long long lo, long long hi, long long *ret,
                     const char *name, size_t i, struct dy_error **err)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return dy_error(err, "%s: dynos[%zu]: %s: expected an integer from %lld to %lld",
		                name, i, key, lo, hi);
	*ret = json_integer_value(v);
	return 0;
}

static int parse_entry(json_t *o, struct dr_entry *e, const char *name, size_t i,
                       struct dy_error **err)
{
	if (!json_is_object(o))
		return dy_error(err, "%s: dynos[%zu]: expected an object", name, i);
	long long pid, start, version, port;
	char addr[INET_ADDRSTRLEN + 1], state[16];
	if (str_field(o, "app", e->app, sizeof(e->app), name, i, err) < 0 ||
	    str_field(o, "name", e->name, sizeof(e->name), name, i, err) < 0 ||
	    str_field(o, "type", e->type, sizeof(e->type), name, i, err) < 0 ||
	    str_field(o, "id", e->id, sizeof(e->id), name, i, err) < 0 ||
	    int_field(o, "pid", 2, INT32_MAX, &pid, name, i, err) < 0 ||
	    int_field(o, "start_time", 0, INT64_MAX, &start, name, i, err) < 0 ||
	    int_field(o, "release", 1, INT32_MAX, &version, name, i, err) < 0 ||
	    str_field(o, "size", e->size, sizeof(e->size), name, i, err) < 0 ||
	    str_field(o, "addr", addr, sizeof(addr), name, i, err) < 0 ||
	    int_field(o, "port", 0, 65535, &port, name, i, err) < 0 ||
	    str_field(o, "veth", e->veth, sizeof(e->veth), name, i, err) < 0 ||
	    str_field(o, "created_at", e->created_at, sizeof(e->created_at), name, i, err) < 0 ||
	    str_field(o, "state", state, sizeof(state), name, i, err) < 0)
		return -1;
	const char *cmd = json_string_value(json_object_get(o, "command"));
	json_t *stopping = json_object_get(o, "stopping");
	if (!cmd)
		return dy_error(err, "%s: dynos[%zu]: command: expected a string", name, i);
	if (!json_is_boolean(stopping))
		return dy_error(err, "%s: dynos[%zu]: stopping: expected true or false", name, i);
	/* a record written before one-offs were kept has none */
	json_t *oneoff = json_object_get(o, "oneoff");
	if (oneoff && !json_is_boolean(oneoff))
		return dy_error(err, "%s: dynos[%zu]: oneoff: expected true or false", name, i);
	e->oneoff = json_is_true(oneoff);
	if (strcmp(state, "up") != 0 && strcmp(state, "starting") != 0)
		return dy_error(err,
		                "%s: dynos[%zu]: state: \"%s\", expected \"up\" or \"starting\"",
		                name, i, state);
	if (inet_pton(AF_INET, addr, &e->addr) != 1)
		return dy_error(err, "%s: dynos[%zu]: addr: \"%s\" is not an IPv4 address", name, i,
		                addr);
	e->command = strdup(cmd);
	if (!e->command)
		return dy_error_errno(err, ENOMEM, "%s", name);
	e->pid = (pid_t)pid;
	e->start_time = (unsigned long long)start;
	e->version = (int)version;
	e->port = (uint16_t)port;
	e->up = strcmp(state, "up") == 0;
	e->stopping = json_is_true(stopping);
	return 0;
}

int dr_parse(const char *text, size_t len, const char *name, struct dr_record *ret,
             struct dy_error **err)
{
	*ret = (struct dr_record){0};
	json_error_t jerr;
	_cleanup_json_ json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return dy_error(err, "%s: invalid JSON at line %d, column %d: %s", name, jerr.line,
		                jerr.column, jerr.text);
	if (!json_is_object(j))
		return dy_error(err, "%s: expected a JSON object", name);
	json_t *sv = json_object_get(j, "schema_version");
	if (!json_is_integer(sv))
		return dy_error(err, "%s: no schema_version", name);
	json_int_t version = json_integer_value(sv);
	if (version > DR_SCHEMA_VERSION)
		return dy_error(err,
		                "%s: schema_version %lld is newer than this dynod reads (1 to %d): "
		                "the file was written by a newer dynod; run that one",
		                name, (long long)version, DR_SCHEMA_VERSION);
	if (version < 1)
		return dy_error(
		    err, "%s: schema_version %lld is not supported (this dynod reads 1 to %d)",
		    name, (long long)version, DR_SCHEMA_VERSION);
	json_t *boot = json_object_get(j, "boot_id");
	if (boot && (!json_is_string(boot) || json_string_length(boot) > DR_BOOT_ID_LEN))
		return dy_error(err, "%s: boot_id: expected a string of at most %d bytes", name,
		                DR_BOOT_ID_LEN);
	json_t *list = json_object_get(j, "dynos");
	if (!json_is_array(list))
		return dy_error(err, "%s: dynos: expected a list", name);
	struct dr_record r = {0};
	if (boot)
		snprintf(r.boot_id, sizeof(r.boot_id), "%s", json_string_value(boot));
	size_t n = json_array_size(list);
	r.dynos = calloc(MAX(n, (size_t)1), sizeof(*r.dynos));
	if (!r.dynos)
		return dy_error_errno(err, ENOMEM, "%s", name);
	for (size_t i = 0; i < n; i++) {
		if (parse_entry(json_array_get(list, i), &r.dynos[i], name, i, err) < 0) {
			dr_record_free(&r);
			return -1;
		}
		r.n++;
	}
	*ret = r;
	return 0;
}

int dr_read(const char *path, struct dr_record *ret, struct dy_error **err)
{
	*ret = (struct dr_record){0};
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return dy_error_errno(err, errno, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return dy_error(err, "%s: not a regular file", path);
	if (st.st_size > DR_MAX_BYTES)
		return dy_error(err, "%s: too large (more than %u bytes)", path, DR_MAX_BYTES);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return dy_error_errno(err, ENOMEM, "%s", path);
	size_t len = 0;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "read %s", path);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return dr_parse(buf, len, path, ret, err);
}

int dr_write(const char *path, json_t *doc, struct dy_error **err)
{
	_cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		return dy_error_errno(err, ENOMEM, "%s", path);
	size_t len = strlen(text);
	text[len] = '\n'; /* json_dumps's NUL: one line, ended */
	return dy_write_file_atomic(path, text, len + 1, DR_FILE_MODE, err);
}

/* The writer. Fields are the loop thread's but flying and result, which
 * the worker reads and writes while a write is in flight (handed over by
 * the pool). */
struct dr_writer {
	struct loop *loop;
	char *path;
	dr_render_fn render;
	void *arg;
	struct work_pool *pool;
	struct loop_timer delay; /* a render is due when it fires */
	bool in_flight;
	bool due; /* changed while in flight: render once it lands */
	bool closing;
	struct work work;
	json_t *flying;
	char *error; /* the worker's, with the result */
	int result;
};

static void write_run(struct work *work)
{
	struct dr_writer *w = loop_container_of(work, struct dr_writer, work);
	struct dy_error *e = NULL;
	w->result = dr_write(w->path, w->flying, &e);
	if (e)
		w->error = strdup(dy_error_msg(e));
	dy_error_free(&e);
}

static void kick(struct dr_writer *w);

static void write_done(struct work *work)
{
	struct dr_writer *w = loop_container_of(work, struct dr_writer, work);
	w->in_flight = false;
	json_decref(TAKE_PTR(w->flying));
	if (w->result < 0) {
		/* tried again with the next change, or at the flush on exit:
		 * a record that lags only means a dyno restarted, not lost */
		dy_log("dynod", "%s", w->error ? w->error : "dynos.json: write failed");
		w->due = true;
	}
	free(TAKE_PTR(w->error));
	if (w->due && !w->closing && !loop_timer_active(&w->delay))
		loop_timer_start(w->loop, &w->delay, w->result < 0 ? 1000000 : DR_DELAY_USEC, NULL);
}

/* Renders the record and sends it to the worker, unless a write is in
 * flight (then once it lands). */
static void kick(struct dr_writer *w)
{
	if (w->closing)
		return;
	if (w->in_flight) {
		w->due = true;
		return;
	}
	w->due = false;
	w->flying = w->render(w->arg);
	if (!w->flying) {
		dy_log("dynod", "%s: out of memory", w->path);
		w->due = true;
		loop_timer_start(w->loop, &w->delay, 1000000, NULL);
		return;
	}
	w->in_flight = true;
	work_submit(w->pool, &w->work, write_run, write_done);
}

static void on_delay(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	kick(loop_container_of(t, struct dr_writer, delay));
}

int dr_writer_new(struct loop *loop, const char *path, dr_render_fn render, void *arg,
                  struct dr_writer **ret, struct dy_error **err)
{
	struct dr_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return dy_error_errno(err, ENOMEM, "%s", path);
	w->loop = loop;
	w->render = render;
	w->arg = arg;
	w->path = strdup(path);
	loop_timer_init(&w->delay, on_delay);
	if (!w->path) {
		free(w);
		return dy_error_errno(err, ENOMEM, "%s", path);
	}
	/* a thread of its own: a slow disk holds up no dyno start */
	if (work_pool_new(loop, 1, &w->pool, err) < 0) {
		free(w->path);
		free(w);
		return -1;
	}
	*ret = w;
	return 0;
}

void dr_writer_changed(struct dr_writer *w)
{
	if (w->in_flight) {
		w->due = true;
		return;
	}
	if (!loop_timer_active(&w->delay))
		loop_timer_start(w->loop, &w->delay, DR_DELAY_USEC, NULL);
}

int dr_writer_free(struct dr_writer *w, bool flush, struct dy_error **err)
{
	if (!w)
		return 0;
	w->closing = true;
	loop_timer_stop(w->loop, &w->delay);
	work_pool_free(w->pool); /* the flight lands (write_done) */
	int r = 0;
	if (flush) {
		_cleanup_json_ json_t *doc = w->render(w->arg);
		r = doc ? dr_write(w->path, doc, err) : dy_error_errno(err, ENOMEM, "%s", w->path);
	}
	free(w->path);
	free(w);
	return r;
}
