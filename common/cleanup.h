/* Scope-bound cleanup, after systemd's cleanup-fundamental.h: a variable
 * declared with _cleanup_free_ is freed when it leaves scope, unless
 * ownership was handed over with TAKE_PTR() / TAKE_FD(). */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/macro.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void dy_freep(void *p)
{
	free(*(void **)p);
	*(void **)p = NULL;
}

static inline void dy_closep(int *fd)
{
	if (*fd >= 0) {
		/* close() errors on a read-only or already-flushed fd carry
		 * nothing we can act on; keep errno for the caller. */
		int saved = errno;
		close(*fd);
		errno = saved;
	}
	*fd = -1;
}

static inline void dy_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
	*f = NULL;
}

#define _cleanup_free_   _cleanup_(dy_freep)
#define _cleanup_close_  _cleanup_(dy_closep)
#define _cleanup_fclose_ _cleanup_(dy_fclosep)
/* jansson's own json_decrefp (jansson >= 2.9); the user includes jansson.h */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Hand over ownership: returns the value and leaves the variable empty. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tp = (p);                                                           \
		(p) = NULL;                                                                        \
		_tp;                                                                               \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_tf;                                                                               \
	})

