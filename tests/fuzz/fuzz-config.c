/* Fuzz target for the config loader: the bytes as a dynod.json. Whatever
 * the input, config_load_string() must either return a configuration or an
 * error, never crash, and free everything (LeakSanitizer checks). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct dy_error *err = NULL;
	if (size > CONFIG_MAX_FILE_SIZE)
		return 0;
	int r = config_load_string((const char *)data, size, "fuzz.json", &cfg, &err);
	if (r < 0) {
		/* A refusal always says why. */
		if (err == NULL || cfg != NULL)
			__builtin_trap();
		(void)strlen(dy_error_msg(err));
	} else if (cfg == NULL || err != NULL ||
	           config_size_find(cfg, cfg->dyno.default_size) == NULL) {
		__builtin_trap();
	}
	config_free(cfg);
	dy_error_free(&err);
	return 0;
}
