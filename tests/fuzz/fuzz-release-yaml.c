/* libFuzzer target: release_yaml_parse (bin/release's YAML). On success
 * every type is a valid Procfile name, unique, with a non-empty one-line
 * command; on failure nothing is returned and the error names a line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slugs/release-yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procfile *pf = NULL;
	struct dy_error *err = NULL;
	if (release_yaml_parse((const char *)data, size, &pf, &err) < 0) {
		if (pf != NULL || err == NULL)
			abort();
		if (dy_error_kind_of(err) != DY_E_INTERNAL && strncmp(dy_error_msg(err), "line ", 5) != 0)
			abort();
		dy_error_free(&err);
		return 0;
	}
	if (err != NULL || pf == NULL)
		abort();
	for (size_t i = 0; i < pf->n; i++) {
		const char *name = pf->entries[i].name, *cmd = pf->entries[i].command;
		if (!procfile_valid_name(name, strlen(name)) || cmd[0] == '\0' || strchr(cmd, '\n'))
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(pf->entries[j].name, name) == 0)
				abort();
	}
	procfile_free(pf);
	return 0;
}
