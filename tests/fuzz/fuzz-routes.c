/* Fuzz target for routes.json: the bytes parsed as a routing table, twice
 * (the second time over the first, as a reload takes backends over), then
 * looked up by every host. Never a crash, never a leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "router/routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct route_table *t1 = NULL, *t2 = NULL;
	struct dy_error *err = NULL;
	if (size > (1u << 20))
		return 0;
	int r = route_table_parse((const char *)data, size, "localhost", NULL, NULL, &t1, &err);
	if (r < 0) {
		if (err == NULL || t1 != NULL)
			__builtin_trap();
		dy_error_free(&err);
		return 0;
	}
	if (route_table_parse((const char *)data, size, "localhost", t1, NULL, &t2, &err) < 0)
		__builtin_trap(); /* the same bytes parse the same way */
	for (size_t i = 0; i < t2->napps; i++)
		for (size_t k = 0; k < t2->apps[i].nhosts; k++) {
			const char *h = t2->apps[i].hosts[k];
			if (route_lookup(t2, h, strlen(h)) != &t2->apps[i])
				__builtin_trap();
		}
	for (size_t i = 0; i < t2->napps; i++)
		for (size_t k = 0; k < t2->apps[i].nbackends; k++)
			if (t2->apps[i].backends[k] != t1->apps[i].backends[k])
				__builtin_trap(); /* taken over, not copied */
	route_table_retire(t1, t2, NULL);
	route_table_free(t1);
	route_table_free(t2);
	return 0;
}
