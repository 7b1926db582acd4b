/* The teardown of destroyed apps: apps:destroy stops every dyno of the
 * app, and the app's files may only go once the last of them has exited.
 * Until then the app lies in a grave holding the manager's callback;
 * td_done() calls it when the supervisor sees the app's last stopping dyno
 * go. */
#pragma once

#include <stdbool.h>

struct td_grave;

/* The graves, a list; zero-initialised is empty. */
struct td_graves {
	struct td_grave *head;
};

typedef void (*td_gone_fn)(void *arg);

/* Holds gone(arg) until td_done(g, app). Returns 0, or -ENOMEM when out of
 * memory (gone is then not held: the caller calls it). */
int td_add(struct td_graves *g, const char *app, td_gone_fn gone, void *arg);

/* True when some app lies in a grave. */
bool td_any(const struct td_graves *g);

/* The dynos of app are all gone: calls the gone of each of its graves
 * once and forgets them. Returns how many were called. */
unsigned td_done(struct td_graves *g, const char *app);

/* Calls every gone left and empties g (the supervisor goes, its dynos
 * killed). */
void td_flush(struct td_graves *g);
