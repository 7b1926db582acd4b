/* The PostgreSQL add-on's backups on disk: <state_dir>/addons/backups/
 * <add-on>/bNNN.dump (pg_dump's custom format), listed and numbered here;
 * see addon-pg.h. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/work.h"
#include "runtime/manager/addon-pg-internal.h"
#include "runtime/manager/addon-pg.h"

char *pgb_dir(const char *state_dir, const char *addon)
{
	char *dir;
	if (asprintf(&dir, "%s/" PG_BACKUPS_DIR "/%s", state_dir, addon) < 0)
		return NULL;
	return dir;
}

/* "b001" -> 1; 0 when id is not one. */
static int id_num(const char *id)
{
	if (id[0] != 'b' || strlen(id) < 4 || strlen(id) > 10)
		return 0;
	for (const char *p = id + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return atoi(id + 1);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The backups' numbers in dir, ascending (free()); *n how many. */
static int *numbers(const char *dir, size_t *n)
{
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	int *nums = NULL;
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char id[16];
		size_t len = strlen(de->d_name);
		if (len < 6 || len - 5 >= sizeof(id) || strcmp(de->d_name + len - 5, ".dump") != 0)
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)(len - 5), de->d_name);
		int num = id_num(id);
		if (num <= 0)
			continue;
		if (*n == cap) {
			int *more = realloc(nums, (cap = cap ? cap * 2 : 16) * sizeof(*nums));
			if (!more)
				break;
			nums = more;
		}
		nums[(*n)++] = num;
	}
	closedir(d);
	if (nums)
		qsort(nums, *n, sizeof(*nums), cmp_int);
	return nums;
}

json_t *pgb_json(const char *dir, const char *addon, const char *id)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s.dump", dir, id) < 0)
		return NULL;
	struct stat st;
	if (stat(path, &st) < 0)
		return NULL;
	char at[32];
	struct tm tm;
	gmtime_r(&st.st_mtime, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s, s:i, s:s, s:I, s:s}", "id", id, "num", id_num(id), "created_at", at,
	                 "size", (json_int_t)st.st_size, "addon", addon);
}

json_t *pgb_list_json(const char *dir, const char *addon)
{
	size_t n;
	_cleanup_free_ int *nums = numbers(dir, &n);
	json_t *list = json_array();
	for (size_t i = 0; list && i < n; i++) {
		char id[16];
		snprintf(id, sizeof(id), "b%03d", nums[i]);
		json_t *b = pgb_json(dir, addon, id);
		if (b)
			json_array_append_new(list, b);
	}
	return list;
}

int pgb_pick(const char *dir, const char *id, bool next, char out[16])
{
	size_t n;
	_cleanup_free_ int *nums = numbers(dir, &n);
	if (id && strcmp(id, "latest") == 0)
		id = NULL;
	if (next) {
		snprintf(out, 16, "b%03d", n ? nums[n - 1] + 1 : 1);
		return 0;
	}
	if (id == NULL) {
		if (n == 0)
			return -ENOENT;
		snprintf(out, 16, "b%03d", nums[n - 1]);
		return 0;
	}
	int want = id_num(id);
	for (size_t i = 0; i < n && want > 0; i++) {
		if (nums[i] == want) {
			snprintf(out, 16, "b%03d", want);
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- the API's calls ---- */

json_t *pg_backups_json(struct pg *pg, const char *app, const char *name, struct dy_error **err)
{
	if (!pg_find(pg, app, name)) {
		dy_error_as(err, DY_E_NOT_FOUND, "app %s has no add-on %s", app, name);
		return NULL;
	}
	_cleanup_free_ char *dir = pgb_dir(pg->cfg->state_dir, name);
	return dir ? pgb_list_json(dir, name) : NULL;
}

/* A capture or a restore of backup id (NULL: the newest; capture: the
 * next), picked now: the operations run in order, so no other picks the
 * same number meanwhile. */
static int backup_op(struct pg *pg, enum pg_op_kind kind, const char *app, const char *name,
                     const char *id, pg_cb cb, void *arg, struct pg_op **ret_op,
                     struct dy_error **err)
{
	_cleanup_free_ char *dir = pgb_dir(pg->cfg->state_dir, name);
	char pick[16] = "";
	if (!dir)
		return dy_error_errno(err, ENOMEM, "backup");
	if (!pg_find(pg, app, name))
		return dy_error_as(err, DY_E_NOT_FOUND, "app %s has no add-on %s", app, name);
	int queued = 0;
	for (struct pg_op *q = pg->head; q; q = q->next)
		queued += q->kind == OP_CAPTURE && strcmp(q->a.name, name) == 0;
	if (kind == OP_CAPTURE && (queued > 0 || (pg->running && pg->running->kind == OP_CAPTURE &&
	                                          strcmp(pg->running->a.name, name) == 0)))
		return dy_error_as(err, DY_E_CONFLICT, "a backup of %s is being captured already",
		                   name);
	if (pgb_pick(dir, id, kind == OP_CAPTURE, pick) < 0)
		return dy_error_as(err, DY_E_NOT_FOUND, "%s has no backup%s%s", name, id ? " " : "",
		                   id ? id : "s");
	struct pg_op *op = NULL;
	if (pg_op_on(pg, kind, app, name, cb, arg, &op, err) < 0)
		return -1;
	snprintf(op->backup, sizeof(op->backup), "%s", pick);
	*ret_op = op;
	pg_ops_go(pg); /* filled in: it may run */
	return 0;
}

int pg_capture(struct pg *pg, const char *app, const char *name, pg_cb cb, void *arg,
               struct pg_op **ret_op, struct dy_error **err)
{
	return backup_op(pg, OP_CAPTURE, app, name, NULL, cb, arg, ret_op, err);
}

int pg_restore(struct pg *pg, const char *app, const char *name, const char *id, pg_cb cb,
               void *arg, struct pg_op **ret_op, struct dy_error **err)
{
	return backup_op(pg, OP_RESTORE, app, name, id, cb, arg, ret_op, err);
}

struct pg_send {
	struct work work;
	int fd;
	char *path;
};

static void send_run(struct work *w)
{
	struct pg_send *s = loop_container_of(w, struct pg_send, work);
	struct dy_error *err = NULL;
	if (pgw_send_file(s->fd, s->path, &err) < 0) {
		dy_log("addons", "download: %s", dy_error_msg(err));
		dy_error_free(&err);
	}
}

static void send_done(struct work *w)
{
	struct pg_send *s = loop_container_of(w, struct pg_send, work);
	close(s->fd);
	free(s->path);
	free(s);
}

int pg_download(struct pg *pg, const char *app, const char *name, const char *id, int fd,
                struct dy_error **err)
{
	_cleanup_free_ char *dir = pgb_dir(pg->cfg->state_dir, name);
	char pick[16];
	if (!dir)
		return dy_error_errno(err, ENOMEM, "backup");
	if (!pg_find(pg, app, name))
		return dy_error_as(err, DY_E_NOT_FOUND, "app %s has no add-on %s", app, name);
	if (pgb_pick(dir, id, false, pick) < 0)
		return dy_error_as(err, DY_E_NOT_FOUND, "%s has no backup %s", name, id);
	struct pg_send *s = calloc(1, sizeof(*s));
	if (!s || asprintf(&s->path, "%s/%s.dump", dir, pick) < 0) {
		free(s);
		return dy_error_errno(err, ENOMEM, "backup");
	}
	s->fd = fd;
	work_submit(pg->pool, &s->work, send_run, send_done);
	return 0;
}
