/* libFuzzer target: dotenv_parse. On success keys match
 * [A-Za-z_][A-Za-z0-9_]* and are unique. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slugs/dotenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int valid_key(const char *k)
{
	if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
		return 0;
	for (const char *c = k; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_' ||
		      (*c >= '0' && *c <= '9')))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dotenv *env = NULL;
	struct dy_error *err = NULL;
	if (dotenv_parse((const char *)data, size, &env, &err) < 0) {
		if (env != NULL || err == NULL || strncmp(dy_error_msg(err), ".env ", 5) != 0)
			abort();
		dy_error_free(&err);
		return 0;
	}
	if (err != NULL || env == NULL)
		abort();
	for (size_t i = 0; i < env->n; i++) {
		const char *key = env->vars[i].key;
		if (!valid_key(key) || env->vars[i].value == NULL)
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(env->vars[j].key, key) == 0)
				abort();
		if (dotenv_get(env, key) != env->vars[i].value)
			abort();
	}
	dotenv_free(env);
	return 0;
}
