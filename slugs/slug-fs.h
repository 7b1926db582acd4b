/* File-system helpers of the slug code that never follow links. */
#pragma once

/* Removes path (relative to dirfd) and everything below it without
 * following any link: a link is removed, never its target. Best effort:
 * returns 0 when path is gone, < 0 (-errno) otherwise. */
int slug_fs_remove_tree(int dirfd, const char *path);
