/* What slugs cost on disk, and what may go (docs/slugs.md, "Disk"): the
 * bytes a tree holds, an app's disk budget, which unpacked trees an app
 * keeps, the free space of the state dir's filesystem.
 *
 * The arithmetic and the choice of trees to keep are pure (unit-tested);
 * the rest walks directories and belongs off the event loop (dynod runs
 * it on its work pool). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Room kept free on the state dir's filesystem besides an unpack: its
 * metadata, the state files, logs (docs/operating.md, "Disk"). */
#define SLUG_DISK_FREE_MARGIN (256ULL << 20)

/* a + b, saturating at UINT64_MAX. */
uint64_t slug_disk_add(uint64_t a, uint64_t b);

/* What is left of budget once used is taken: 0 when used reaches it. */
uint64_t slug_disk_left(uint64_t used, uint64_t budget);

/* True when adding add to used takes it over budget. */
bool slug_disk_over(uint64_t used, uint64_t add, uint64_t budget);

/* bytes as people read them: "512 bytes", "64 MiB", "11.2 GiB" (one
 * decimal unless whole). Returns buf. */
const char *slug_disk_fmt(uint64_t bytes, char *buf, size_t size);

/* A release as slug_disk_keep() sees it, oldest first. */
struct slug_disk_release {
	const char *slug_id; /* NULL or "": no slug */
	bool current;        /* the app's current release */
	bool pending;        /* its release phase has not ended: it may become current */
};

/* Chooses the unpacked trees an app keeps: the current release's, every
 * pending release's, and those of the keep newest other releases (by
 * version, newest first; a slug counts once however many releases use
 * it). Writes the distinct slug ids into ret_ids (at least n slots;
 * pointers into rels) and returns how many. */
size_t slug_disk_keep(const struct slug_disk_release *rels, size_t n, unsigned keep,
                      const char **ret_ids);

/* Bytes the tree at path holds on disk (st_blocks of every entry, the
 * directories' too, each inode once per directory walk; links are not
 * followed). 0 for a missing path. Returns 0 or < 0. */
int slug_disk_usage(const char *path, uint64_t *ret, struct dy_error **err);

/* Bytes an unprivileged user may still write on path's filesystem
 * (statvfs f_bavail). Returns 0 or < 0. */
int slug_disk_available(const char *path, uint64_t *ret, struct dy_error **err);

/* Removes every unpacked tree (a directory named by 64 hex digits) under
 * dir whose name is not one of keep[0..nkeep). Returns the number removed
 * (best effort: a tree that cannot be removed is left). */
int slug_disk_remove_trees(const char *dir, const char *const *keep, size_t nkeep);
