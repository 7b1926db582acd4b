/* Heroku's error codes, in one table each (after HAProxy's
 * check_statuses[]): the router's H-codes (code, description, the status
 * the client gets, the metric's reason label) and the dyno R-codes (code,
 * description). Every user of a code (the proxy, the router's metrics and
 * log lines, the supervisor, dyno-launch) names it by its enum; the docs'
 * tables (docs/router.md, docs/design.md) are checked against these by
 * tests/unit/test-heroku-codes.c. */
#pragma once

enum hk_code {
	HK_NONE = 0, /* no error: at=info */
	/* router */
	HK_H10, /* App crashed */
	HK_H11, /* Backlog too deep */
	HK_H12, /* Request timeout */
	HK_H13, /* Connection closed without response */
	HK_H14, /* No web processes running */
	HK_H15, /* Idle connection */
	HK_H17, /* Poorly formatted HTTP response */
	HK_H18, /* Server Request Interrupted */
	HK_H19, /* Backend connection timeout */
	HK_H21, /* Backend connection refused */
	HK_H27, /* Client Request Interrupted */
	HK_H28, /* Client Connection Idle */
	HK_H80, /* Maintenance mode */
	/* dynos */
	HK_R10, /* Boot timeout */
	HK_R12, /* Exit timeout */
	HK_R14, /* Memory quota exceeded */
	HK_R15, /* Memory quota vastly exceeded */
	HK_L10, /* Output buffer overflow: a dyno's init dropped lines */
	HK_L11, /* Tail buffer overflow: a log reader dropped lines */
	_HK_MAX,
};

struct hk_code_info {
	const char *code;   /* the name, as H12; NULL for HK_NONE */
	const char *desc;   /* "Request timeout", as Heroku's logs say it */
	int status;         /* the HTTP status the router answers (H-codes), else 0 */
	const char *metric; /* snake_case reason: the metric's label */
};

/* The entry of code; HK_NONE's (all NULL) for a value out of range. Never
 * NULL, static. */
const struct hk_code_info *hk_code(enum hk_code code);

/* The code's name (H12), or NULL for HK_NONE and out of range. */
const char *hk_code_str(enum hk_code code);

/* The code whose name is s ("R14"), or HK_NONE. */
enum hk_code hk_code_from_str(const char *s);

/* A dyno error line as Heroku logs it: "Error R14 (Memory quota exceeded)".
 * Use as printf(HK_ERROR_FMT, HK_ERROR_ARGS(HK_R14)). */
#define HK_ERROR_FMT     "Error %s (%s)"
#define HK_ERROR_ARGS(c) hk_code(c)->code, hk_code(c)->desc
