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

#include "common/cleanup.h"
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
