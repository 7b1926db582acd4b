/* Sizes and durations as docs/design.md writes them in the configuration and on
 * the command line: sizes "512M", "1G", "1024" (bytes; K, M, G, T are powers
 * of 1024, an optional trailing "B" or "iB" is accepted), durations "30s",
 * "500ms", "20m", "1h", "1m30s". */
#pragma once

#include <stdint.h>

#include "common/error.h"

/* Parses a size into bytes. Refuses empty strings, signs, unknown suffixes
 * and overflow with an error naming the text. Returns 0 or < 0. */
int dy_parse_size(const char *text, uint64_t *ret_bytes, struct dy_error **err);

/* Parses a duration into microseconds. Every number needs a unit (us, ms,
 * s, m, h). Returns 0 or < 0 with an error naming the text. */
int dy_parse_duration(const char *text, uint64_t *ret_usec, struct dy_error **err);
