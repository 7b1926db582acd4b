/* Small helpers every module uses, after systemd's macro-fundamental.h:
 * bounds that evaluate their arguments once, a type-checked element count
 * and a generator of cleanup functions for _cleanup_(). */
#pragma once

#include <stddef.h>

/* Fails to compile when a is a pointer, not an array. */
#define DY_MUST_BE_ARRAY(a)                                                                        \
	(sizeof(char[1 - 2 * __builtin_types_compatible_p(__typeof__(a), __typeof__(&(a)[0]))]) - 1)

/* The number of elements of array a; a pointer does not compile. */
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]) + DY_MUST_BE_ARRAY(a))

/* <sys/param.h> has MIN/MAX that evaluate an argument twice: ours win. */
#undef MIN
#undef MAX

#define MIN(a, b)                                                                                  \
	__extension__({                                                                            \
		const __typeof__(a) _min_a = (a);                                                  \
		const __typeof__(b) _min_b = (b);                                                  \
		_min_a < _min_b ? _min_a : _min_b;                                                 \
	})

#define MAX(a, b)                                                                                  \
	__extension__({                                                                            \
		const __typeof__(a) _max_a = (a);                                                  \
		const __typeof__(b) _max_b = (b);                                                  \
		_max_a > _max_b ? _max_a : _max_b;                                                 \
	})

/* x bounded to [lo, hi] (lo <= hi). */
#define CLAMP(x, lo, hi)                                                                           \
	__extension__({                                                                            \
		const __typeof__(x) _cl_x = (x);                                                   \
		const __typeof__(lo) _cl_lo = (lo);                                                \
		const __typeof__(hi) _cl_hi = (hi);                                                \
		_cl_x<_cl_lo ? _cl_lo : _cl_x> _cl_hi ? _cl_hi : _cl_x;                            \
	})

/* Defines `static inline void name(type *p)` that calls func(*p) when *p
 * is not NULL and sets *p to NULL, for _cleanup_(name):
 *
 *	DY_DEFINE_CLEANUP(json_t *, json_decref, json_decrefp)
 *	_cleanup_(json_decrefp) json_t *v = json_object();
 */
#define DY_DEFINE_CLEANUP(type, func, name)                                                        \
	static inline void name(type *p)                                                           \
	{                                                                                          \
		if (*p) {                                                                          \
			func(*p);                                                                  \
			*p = NULL;                                                                 \
		}                                                                                  \
	}
