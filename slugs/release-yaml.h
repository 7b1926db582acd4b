/* The output of a buildpack's bin/release (Heroku's buildpack API): YAML
 * whose `default_process_types` maps process types to commands, used for
 * the types the app's Procfile lacks (docs/builds.md). Other keys
 * (addons, config_vars) are read past and ignored. */
#pragma once

#include <stddef.h>

#include "common/error.h"
#include "slugs/procfile.h"

/* Parses data (len bytes) with libyaml. An empty document, or one without
 * default_process_types (or with it null), gives no types. Errors name the
 * line: "line 3: default_process_types: expected a mapping of type:
 * command". Each type is a valid Procfile name, each command a non-empty
 * one-line string. Returns 0 and *ret (procfile_free), or < 0. */
int release_yaml_parse(const char *data, size_t len, struct procfile **ret,
                       struct dy_error **err);
