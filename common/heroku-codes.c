#include "common/heroku-codes.h"

#include <stddef.h>
#include <string.h>

#include "common/macro.h"

/* The one place where each code's name and text are written. */
static const struct hk_code_info codes[_HK_MAX] = {
    [HK_NONE] = {NULL, NULL, 0, NULL},
    [HK_H10] = {"H10", "App crashed", 503, "app_crashed"},
    [HK_H11] = {"H11", "Backlog too deep", 503, "backlog_too_deep"},
    [HK_H12] = {"H12", "Request timeout", 503, "request_timeout"},
    [HK_H13] = {"H13", "Connection closed without response", 503, "closed_without_response"},
    [HK_H14] = {"H14", "No web processes running", 503, "no_web_processes"},
    [HK_H15] = {"H15", "Idle connection", 503, "idle_connection"},
    [HK_H17] = {"H17", "Poorly formatted HTTP response", 502, "bad_response"},
    [HK_H18] = {"H18", "Server Request Interrupted", 503, "server_interrupted"},
    [HK_H19] = {"H19", "Backend connection timeout", 503, "connect_timeout"},
    [HK_H21] = {"H21", "Backend connection refused", 503, "connect_refused"},
    [HK_H27] = {"H27", "Client Request Interrupted", 499, "client_interrupted"},
    [HK_H28] = {"H28", "Client Connection Idle", 499, "client_idle"},
    [HK_H80] = {"H80", "Maintenance mode", 503, "maintenance"},
    [HK_R10] = {"R10", "Boot timeout", 0, "boot_timeout"},
    [HK_R12] = {"R12", "Exit timeout", 0, "exit_timeout"},
    [HK_R14] = {"R14", "Memory quota exceeded", 0, "memory_quota_exceeded"},
    [HK_R15] = {"R15", "Memory quota vastly exceeded", 0, "memory_quota_vastly_exceeded"},
    /* dyno-init writes L10 itself (a static init links no table): its
     * text is checked against this one in tests/unit/test-heroku-codes.c */
    [HK_L10] = {"L10", "Output buffer overflow", 0, "output_buffer_overflow"},
    [HK_L11] = {"L11", "Tail buffer overflow", 0, "tail_buffer_overflow"},
};

const struct hk_code_info *hk_code(enum hk_code code)
{
	if ((unsigned)code >= ELEMENTSOF(codes))
		return &codes[HK_NONE];
	return &codes[code];
}

const char *hk_code_str(enum hk_code code)
{
	return hk_code(code)->code;
}

enum hk_code hk_code_from_str(const char *s)
{
	for (size_t i = 1; s && i < ELEMENTSOF(codes); i++)
		if (strcmp(codes[i].code, s) == 0)
			return (enum hk_code)i;
	return HK_NONE;
}
