/* runtime/manager/dyno-record: the record of running dynos a next dynod
 * re-adopts: written and read back, an absent file, mode 0600, a broken
 * file and a newer schema refused naming the file, and the writer, which
 * coalesces many changes into few writes off the loop and flushes on
 * exit. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/manager/dyno-record.h"

static char dir[] = "/tmp/test-dyno-record-XXXXXX";
static char path[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test-dyno-record-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/" DR_FILE, dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct dr_entry entry(const char *name, pid_t pid, bool up)
{
	struct dr_entry e = {.pid = pid,
	                     .start_time = 881234,
	                     .version = 3,
	                     .port = 5000,
	                     .up = up,
	                     .command = "exec python3 -m http.server $PORT"};
	strcpy(e.app, "hello");
	snprintf(e.name, sizeof(e.name), "%s", name);
	strcpy(e.type, "web");
	snprintf(e.id, sizeof(e.id), "1a2b3c4d-hello-42-%d", (int)pid);
	strcpy(e.size, "standard-1x");
	inet_pton(AF_INET, "10.213.0.5", &e.addr);
	strcpy(e.veth, "dy-0123456789ab");
	strcpy(e.created_at, "2026-11-26T11:00:00Z");
	return e;
}

static void write_text(const char *text)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_text(void)
{
	static char buf[4096];
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void test_write_read_back(void **state)
{
	(void)state;
	struct dr_entry v[2] = {entry("web.1", 4242, true), entry("web.2", 4243, false)};
	v[1].stopping = true;
	json_t *doc = dr_render("0f3c1d2e-aaaa-bbbb-cccc-0123456789ab", v, 2);
	assert_non_null(doc);
	assert_int_equal(dr_write(path, doc, NULL), 0);
	json_decref(doc);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	struct dr_record r;
	struct dy_error *e = NULL;
	assert_int_equal(dr_read(path, &r, &e), 0);
	assert_null(e);
	assert_string_equal(r.boot_id, "0f3c1d2e-aaaa-bbbb-cccc-0123456789ab");
	assert_int_equal(r.n, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct dr_entry *a = &r.dynos[i], *b = &v[i];
		assert_string_equal(a->app, b->app);
		assert_string_equal(a->name, b->name);
		assert_string_equal(a->type, b->type);
		assert_string_equal(a->id, b->id);
		assert_int_equal(a->pid, b->pid);
		assert_int_equal(a->start_time, b->start_time);
		assert_int_equal(a->version, b->version);
		assert_string_equal(a->size, b->size);
		assert_string_equal(a->command, b->command);
		assert_int_equal(a->addr.s_addr, b->addr.s_addr);
		assert_int_equal(a->port, b->port);
		assert_string_equal(a->veth, b->veth);
		assert_string_equal(a->created_at, b->created_at);
		assert_int_equal(a->up, b->up);
		assert_int_equal(a->stopping, b->stopping);
	}
	dr_record_free(&r);
	assert_int_equal(r.n, 0);
	/* no temporary file is left beside it */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_absent_is_empty(void **state)
{
	(void)state;
	struct dr_record r = {.n = 7};
	assert_int_equal(dr_read(path, &r, NULL), 0);
	assert_int_equal(r.n, 0);
	assert_string_equal(r.boot_id, "");
	dr_record_free(&r);
}

/* Each refusal names the file and what is wrong. */
static void refused(const char *text, const char *what)
{
	write_text(text);
	struct dr_record r;
	struct dy_error *e = NULL;
	assert_true(dr_read(path, &r, &e) < 0);
	assert_non_null(e);
	char want[512];
	snprintf(want, sizeof(want), "%s: %s", path, what);
	if (strstr(dy_error_msg(e), want) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", dy_error_msg(e), want);
	dy_error_free(&e);
	assert_int_equal(r.n, 0);
	/* never rewritten by a read */
	assert_string_equal(read_text(), text);
}

static void test_newer_schema_refused(void **state)
{
	(void)state;
	refused("{\"schema_version\": 2, \"dynos\": []}",
	        "schema_version 2 is newer than this dynod reads (1 to 1): the file was written "
	        "by a newer dynod; run that one");
	refused("{\"schema_version\": 0, \"dynos\": []}", "schema_version 0 is not supported");
}

static void test_broken_refused(void **state)
{
	(void)state;
	refused("{\"schema_version\": 1, \"dyn", "invalid JSON at line 1");
	refused("", "invalid JSON");
	refused("[]", "expected a JSON object");
	refused("{\"dynos\": []}", "no schema_version");
	refused("{\"schema_version\": 1}", "dynos: expected a list");
	refused("{\"schema_version\": 1, \"dynos\": [1]}", "dynos[0]: expected an object");
	refused("{\"schema_version\": 1, \"schema_version\": 1, \"dynos\": []}", "invalid JSON");

	/* one field wrong at a time, in an otherwise good entry */
	struct dr_entry v = entry("web.1", 4242, true);
	json_t *good = dr_render("", &v, 1);
	struct {
		const char *key;
		json_t *value;
		const char *what;
	} bad[] = {
	    {"pid", json_integer(1), "dynos[0]: pid: expected an integer from 2"},
	    {"pid", json_string("4242"), "dynos[0]: pid: expected an integer"},
	    {"port", json_integer(70000), "dynos[0]: port: expected an integer from 0 to 65535"},
	    {"state", json_string("crashed"), "dynos[0]: state: \"crashed\", expected"},
	    {"addr", json_string("10.213.0"), "dynos[0]: addr: \"10.213.0\" is not an IPv4"},
	    {"app", json_string("an-app-name-much-longer-than-thirty-bytes"),
	     "dynos[0]: app: longer than 30 bytes"},
	    {"stopping", json_string("no"), "dynos[0]: stopping: expected true or false"},
	    {"command", NULL, "dynos[0]: command: expected a string"},
	    {"id", NULL, "dynos[0]: id: expected a string"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *doc = json_deep_copy(good);
		json_t *o = json_array_get(json_object_get(doc, "dynos"), 0);
		if (bad[i].value)
			json_object_set_new(o, bad[i].key, bad[i].value);
		else
			json_object_del(o, bad[i].key);
		char *text = json_dumps(doc, 0);
		refused(text, bad[i].what);
		free(text);
		json_decref(doc);
	}
	json_decref(good);
}

/* The writer's render counts its calls; the record lists n entries. */
struct fake {
	int renders;
	size_t n;
};

static json_t *render(void *arg)
{
	struct fake *f = arg;
	f->renders++;
	struct dr_entry v[100];
	for (size_t i = 0; i < f->n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "web.%u", (unsigned)(i + 1));
		v[i] = entry(name, (pid_t)(1000 + i), true);
	}
	return dr_render("b", v, f->n);
}

static size_t recorded(void)
{
	struct dr_record r;
	assert_int_equal(dr_read(path, &r, NULL), 0);
	size_t n = r.n;
	dr_record_free(&r);
	return n;
}

static void on_tick(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	(void)t;
}

static void test_writer_coalesces_and_flushes(void **state)
{
	(void)state;
	struct loop *loop;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct fake f = {0};
	struct dr_writer *w;
	assert_int_equal(dr_writer_new(loop, path, render, &f, &w, NULL), 0);
	/* a scale to 100: a hundred changes, one render and one write */
	for (f.n = 1; f.n <= 100; f.n++)
		dr_writer_changed(w);
	f.n = 100;
	for (int i = 0; i < 100 && recorded() != 100; i++) {
		assert_int_equal(loop_run_once(loop, NULL), 0);
		usleep(1000);
	}
	assert_int_equal(recorded(), 100);
	assert_int_equal(f.renders, 1);
	/* nothing changed: nothing rendered (a timer of the test's, past
	 * the writer's delay, keeps the loop from waiting forever) */
	struct loop_timer tick;
	loop_timer_init(&tick, on_tick);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(loop_timer_start(loop, &tick, 2 * DR_DELAY_USEC, NULL), 0);
		assert_int_equal(loop_run_once(loop, NULL), 0);
	}
	loop_timer_stop(loop, &tick);
	assert_int_equal(f.renders, 1);
	/* a change not written yet is written by the flush */
	f.n = 3;
	dr_writer_changed(w);
	assert_int_equal(dr_writer_free(w, true, NULL), 0);
	assert_int_equal(recorded(), 3);
	assert_int_equal(f.renders, 2);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_write_read_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent_is_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writer_coalesces_and_flushes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
