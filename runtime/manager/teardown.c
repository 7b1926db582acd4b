/* The teardown of destroyed apps (teardown.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/manager/state.h"
#include "runtime/manager/teardown.h"

struct td_grave {
	struct td_grave *next;
	char app[STATE_APP_NAME_MAX + 1];
	td_gone_fn gone;
	void *arg;
};

int td_add(struct td_graves *g, const char *app, td_gone_fn gone, void *arg)
{
	struct td_grave *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	snprintf(t->app, sizeof(t->app), "%s", app);
	t->gone = gone;
	t->arg = arg;
	t->next = g->head;
	g->head = t;
	return 0;
}

bool td_any(const struct td_graves *g)
{
	return g->head != NULL;
}

unsigned td_done(struct td_graves *g, const char *app)
{
	unsigned n = 0;
	for (struct td_grave **p = &g->head; *p;) {
		struct td_grave *t = *p;
		if (strcmp(t->app, app) != 0) {
			p = &t->next;
			continue;
		}
		/* unlinked before the call: gone may add a grave */
		*p = t->next;
		t->gone(t->arg);
		free(t);
		n++;
	}
	return n;
}

void td_flush(struct td_graves *g)
{
	while (g->head) {
		struct td_grave *t = g->head;
		g->head = t->next;
		t->gone(t->arg);
		free(t);
	}
}
