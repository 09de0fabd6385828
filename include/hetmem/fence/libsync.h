/* SPDX-License-Identifier: MIT */
/*
 * hetmem - libsync: Android's userspace sync_file helpers.
 *
 * The functions of libsync's <sync/sync.h> (platform/system/core libsync),
 * with its conventions: -1 or NULL and errno on failure.
 */
#ifndef HETMEM_FENCE_LIBSYNC_H
#define HETMEM_FENCE_LIBSYNC_H

#include <stdint.h>

#include <hetmem/core/compiler.h>
#include <hetmem/fence/sync_file.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: libsync
 *
 * Programs written against libsync build against this header and work on
 * hetmem sync_file descriptors as well as on kernel ones. sync_wait()
 * polls for POLLIN exactly as libsync does, so it reports success for a
 * fence that signalled with an error: check sync_file_info()->status when
 * errors matter. Unlike libsync, a sync_wait() interrupted by a signal
 * handler resumes with the time that is left, not the full timeout again.
 */

HETMEM_API int sync_wait(int fd, int timeout);
HETMEM_API int sync_merge(const char *name, int fd1, int fd2);
HETMEM_API struct sync_file_info *sync_file_info(int32_t fd);
HETMEM_API void sync_file_info_free(struct sync_file_info *info);

/**
 * sync_get_fence_info() - the per-fence array of a sync_file_info()
 * @info: from sync_file_info()
 *
 * Context: Any thread.
 * Return: the array of @info->num_fences entries that follows @info.
 */
static inline struct sync_fence_info *sync_get_fence_info(const struct sync_file_info *info)
{
	return (struct sync_fence_info *)(uintptr_t)info->sync_fence_info;
}

HETMEM_END_DECLS

#endif /* HETMEM_FENCE_LIBSYNC_H */
