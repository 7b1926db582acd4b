/* bin/release's YAML; see release-yaml.h. */
#include "slugs/release-yaml.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define RELEASE_TYPES_MAX 100

struct rparser {
	yaml_parser_t p;
	yaml_event_t ev;
	bool have_ev;
	struct procfile *pf;
	struct dy_error **err;
};

static unsigned line_of(const yaml_event_t *ev)
{
	return (unsigned)ev->start_mark.line + 1;
}

/* The next event into r->ev (the previous one freed). */
static int next(struct rparser *r)
{
	if (r->have_ev)
		yaml_event_delete(&r->ev);
	r->have_ev = false;
	if (!yaml_parser_parse(&r->p, &r->ev))
		return dy_error_as(r->err, DY_E_INVALID, "line %u: %s",
		                   (unsigned)r->p.problem_mark.line + 1,
		                   r->p.problem ? r->p.problem : "not YAML");
	r->have_ev = true;
	return 0;
}

/* Skips the node whose first event is r->ev (a scalar, or a whole
 * sequence or mapping). */
static int skip_node(struct rparser *r)
{
	int depth = 0;
	for (;;) {
		switch (r->ev.type) {
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			depth++;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
			break;
		default:
			return dy_error_as(r->err, DY_E_INVALID, "line %u: unexpected YAML event",
			                   line_of(&r->ev));
		}
		if (depth <= 0)
			return 0;
		if (next(r) < 0)
			return -1;
	}
}

static int add_type(struct rparser *r, const char *name, size_t nlen, const char *cmd, size_t clen,
                    unsigned line)
{
	struct procfile *pf = r->pf;
	if (!procfile_valid_name(name, nlen))
		return dy_error_as(r->err, DY_E_INVALID,
		                   "line %u: default_process_types: \"%.*s\" is not a process type "
		                   "name",
		                   line, (int)(nlen > 64 ? 64 : nlen), name);
	if (clen == 0 || memchr(cmd, '\n', clen) || memchr(cmd, '\r', clen) ||
	    memchr(cmd, '\0', clen))
		return dy_error_as(r->err, DY_E_INVALID,
		                   "line %u: default_process_types: %.*s: expected a one-line command",
		                   line, (int)nlen, name);
	if (procfile_command(pf, name) != NULL) /* names are NUL-free: checked */
		return dy_error_as(r->err, DY_E_INVALID,
		                   "line %u: default_process_types: %.*s given twice", line, (int)nlen,
		                   name);
	if (pf->n >= RELEASE_TYPES_MAX)
		return dy_error_as(r->err, DY_E_INVALID,
		                   "line %u: default_process_types: more than %d types", line,
		                   RELEASE_TYPES_MAX);
	struct procfile_entry *e = realloc(pf->entries, (pf->n + 1) * sizeof(*e));
	if (!e)
		return dy_error_errno(r->err, ENOMEM, "release YAML");
	pf->entries = e;
	e[pf->n].name = strndup(name, nlen);
	e[pf->n].command = strndup(cmd, clen);
	pf->n++;
	if (!e[pf->n - 1].name || !e[pf->n - 1].command)
		return dy_error_errno(r->err, ENOMEM, "release YAML");
	return 0;
}

/* r->ev starts a mapping (1), is null (0), or neither (< 0, what). */
/* A plain scalar YAML reads as null: "", "~", "null". */
static bool is_null(const yaml_event_t *ev)
{
	if (ev->type != YAML_SCALAR_EVENT)
		return false;
	const char *v = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	if (n == 0)
		return true;
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return (n == 1 && v[0] == '~') ||
	       (n == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

static int mapping_or_null(struct rparser *r, const char *what)
{
	if (is_null(&r->ev))
		return 0;
	if (r->ev.type != YAML_MAPPING_START_EVENT)
		return dy_error_as(r->err, DY_E_INVALID, "line %u: %s", line_of(&r->ev), what);
	return 1;
}

/* r->ev is the value of default_process_types. */
static int read_types(struct rparser *r)
{
	int m = mapping_or_null(r, "default_process_types: expected a mapping of type: command");
	if (m <= 0)
		return m;
	for (;;) {
		if (next(r) < 0)
			return -1;
		if (r->ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		if (r->ev.type != YAML_SCALAR_EVENT)
			return dy_error_as(r->err, DY_E_INVALID,
			                   "line %u: default_process_types: a type must be a string",
			                   line_of(&r->ev));
		size_t nlen = r->ev.data.scalar.length;
		char *name = strndup((const char *)r->ev.data.scalar.value, nlen);
		if (!name)
			return dy_error_errno(r->err, ENOMEM, "release YAML");
		if (next(r) < 0) {
			free(name);
			return -1;
		}
		int rc;
		if (r->ev.type != YAML_SCALAR_EVENT)
			rc = dy_error_as(r->err, DY_E_INVALID,
			                 "line %u: default_process_types: %.64s: expected a command "
			                 "string",
			                 line_of(&r->ev), name);
		else
			rc = add_type(r, name, nlen, (const char *)r->ev.data.scalar.value,
			              r->ev.data.scalar.length, line_of(&r->ev));
		free(name);
		if (rc < 0)
			return -1;
	}
}

static int parse_doc(struct rparser *r)
{
	do { /* stream start, document start */
		if (next(r) < 0)
			return -1;
	} while (r->ev.type == YAML_STREAM_START_EVENT || r->ev.type == YAML_DOCUMENT_START_EVENT);
	if (r->ev.type == YAML_STREAM_END_EVENT)
		return 0; /* empty */
	int m = mapping_or_null(r, "expected a mapping (default_process_types: ...)");
	if (m <= 0)
		return m; /* "---" alone: null */
	for (;;) {
		if (next(r) < 0)
			return -1;
		if (r->ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		bool types = r->ev.type == YAML_SCALAR_EVENT &&
		             strcmp((const char *)r->ev.data.scalar.value, "default_process_types") ==
		                 0;
		if (r->ev.type != YAML_SCALAR_EVENT && skip_node(r) < 0)
			return -1;
		if (next(r) < 0)
			return -1;
		if ((types ? read_types(r) : skip_node(r)) < 0)
			return -1;
	}
}

int release_yaml_parse(const char *data, size_t len, struct procfile **ret, struct dy_error **err)
{
	struct rparser r = {.err = err};
	r.pf = calloc(1, sizeof(*r.pf));
	if (!r.pf)
		return dy_error_errno(err, ENOMEM, "release YAML");
	if (!yaml_parser_initialize(&r.p)) {
		free(r.pf);
		return dy_error_errno(err, ENOMEM, "release YAML");
	}
	yaml_parser_set_input_string(&r.p, (const unsigned char *)data, len);
	int rc = parse_doc(&r);
	if (r.have_ev)
		yaml_event_delete(&r.ev);
	yaml_parser_delete(&r.p);
	if (rc < 0) {
		procfile_free(r.pf);
		return -1;
	}
	*ret = r.pf;
	return 0;
}
