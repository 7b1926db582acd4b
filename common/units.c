#include "common/units.h"

#include <ctype.h>
#include <string.h>

static int parse_digits(const char **p, uint64_t *ret)
{
	uint64_t v = 0;
	const char *s = *p;
	if (!isdigit((unsigned char)*s))
		return -1;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -2;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*ret = v;
	return 0;
}

int dy_parse_size(const char *text, uint64_t *ret_bytes, struct dy_error **err)
{
	const char *p = text;
	uint64_t v;
	int r = parse_digits(&p, &v);
	if (r == -1)
		return dy_error(err, "invalid size \"%s\": expected a number like 512M or 1G",
		                text);
	if (r == -2)
		return dy_error(err, "invalid size \"%s\": too large", text);
	unsigned shift = 0;
	switch (*p) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		break;
	}
	if (shift > 0) {
		p++;
		if (strcmp(p, "iB") == 0 || strcmp(p, "B") == 0)
			p += strlen(p);
	} else if (strcmp(p, "B") == 0) {
		p++;
	}
	if (*p != '\0')
		return dy_error(err, "invalid size \"%s\": unknown unit \"%s\" (use K, M, G or T)",
		                text, p);
	if (shift > 0 && v > (UINT64_MAX >> shift))
		return dy_error(err, "invalid size \"%s\": too large", text);
	*ret_bytes = v << shift;
	return 0;
}

int dy_parse_duration(const char *text, uint64_t *ret_usec, struct dy_error **err)
{
	static const struct {
		const char *unit;
		uint64_t usec;
	} units[] = {
	    /* longest first so "ms" is not read as "m" then "s" */
	    {"us", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000ULL},
	};
	const char *p = text;
	uint64_t total = 0;
	if (*p == '\0')
		return dy_error(err,
		                "invalid duration \"\": expected a number and a unit like 30s");
	while (*p != '\0') {
		uint64_t v;
		int r = parse_digits(&p, &v);
		if (r == -1)
			return dy_error(
			    err,
			    "invalid duration \"%s\": expected a number and a unit like 30s, "
			    "500ms or 20m",
			    text);
		if (r == -2)
			return dy_error(err, "invalid duration \"%s\": too large", text);
		size_t i;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, n) == 0 &&
			    (n == 2 || !(p[0] == 'm' && p[1] == 's'))) {
				if (v > (UINT64_MAX - total) / units[i].usec)
					return dy_error(err, "invalid duration \"%s\": too large",
					                text);
				total += v * units[i].usec;
				p += n;
				break;
			}
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return dy_error(
			    err,
			    "invalid duration \"%s\": missing or unknown unit (use us, ms, s, "
			    "m or h)",
			    text);
	}
	*ret_usec = total;
	return 0;
}
