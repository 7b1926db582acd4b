/* libFuzzer target: procfile_parse. On success every name is valid, not
 * "run", unique, and every command is non-empty with no control character
 * but tab. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slugs/procfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procfile *pf = NULL;
	struct dy_error *err = NULL;
	if (procfile_parse((const char *)data, size, &pf, &err) < 0) {
		if (pf != NULL || err == NULL || strncmp(dy_error_msg(err), "Procfile ", 9) != 0)
			abort();
		dy_error_free(&err);
		return 0;
	}
	if (err != NULL || pf == NULL || pf->n == 0)
		abort();
	for (size_t i = 0; i < pf->n; i++) {
		const char *name = pf->entries[i].name, *cmd = pf->entries[i].command;
		if (!procfile_valid_name(name, strlen(name)) || strcmp(name, "run") == 0)
			abort();
		if (cmd[0] == '\0' || cmd[0] == ' ' || cmd[0] == '\t')
			abort();
		for (const unsigned char *c = (const unsigned char *)cmd; *c; c++)
			if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
				abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(pf->entries[j].name, name) == 0)
				abort();
		if (procfile_command(pf, name) != cmd)
			abort();
	}
	procfile_free(pf);
	return 0;
}
