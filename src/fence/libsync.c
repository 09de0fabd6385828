/* SPDX-License-Identifier: MIT */
/*
 * hetmem - libsync: sync_wait(), sync_merge(), sync_file_info().
 */
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <hetmem/fence/libsync.h>

#include "fence/sync_file_internal.h"

/**
 * DOC: libsync on hetmem descriptors
 *
 * These are Android libsync's entry points, written from its documented
 * behaviour, going through hetmem_sync_file_ioctl() so that they accept
 * hetmem's pipe-based sync_files and real kernel ones alike. Errors follow
 * libsync: -1 (or NULL) with errno set.
 *
 * sync_wait() waits for POLLIN. A sync_file is readable once its fence
 * signalled, successfully or not, so success here says nothing about the
 * status (look at sync_file_info()). POLLHUP without POLLIN, which a
 * pipe whose producer died reports, counts as signalled too, and POLLERR
 * or POLLNVAL make it fail with EINVAL, as in libsync. Difference: after
 * EINTR or EAGAIN it polls again with the time left until the original
 * deadline; libsync restarts with the full timeout, so a steady stream of
 * signals can make it wait far longer than asked.
 *
 * There is no legacy (pre-4.7) ioctl to fall back to: sync_merge() uses
 * SYNC_IOC_MERGE only.
 */

static int libsync_fail(int err)
{
	errno = err;
	return -1;
}

/**
 * sync_wait() - wait until a sync_file is signalled
 * @fd: a sync_file descriptor
 * @timeout: milliseconds; negative waits forever, 0 polls
 *
 * Context: May sleep; any thread that can block.
 * Return: 0 once signalled (with or without error); -1 with errno ETIME
 * on timeout, EINVAL for a negative @fd or when poll() reports POLLERR or
 * POLLNVAL (e.g. a closed descriptor), or poll()'s own errno.
 */
HETMEM_API int sync_wait(int fd, int timeout)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t deadline = -1;
	int ret;

	if (fd < 0)
		return libsync_fail(EINVAL);
	if (timeout >= 0)
		deadline = hetmem_ktime_get() + (int64_t)timeout * 1000000;
	do {
		ret = poll(&pfd, 1, hetmem_deadline_to_poll_ms(deadline));
		if (ret > 0) {
			if (pfd.revents & (POLLERR | POLLNVAL))
				return libsync_fail(EINVAL);
			return 0;
		}
		if (ret == 0)
			return libsync_fail(ETIME);
	} while (errno == EINTR || errno == EAGAIN);
	return -1;
}

/**
 * sync_merge() - merge two sync_files into a new one
 * @name: name of the result (truncated to 31 characters)
 * @fd1: first sync_file descriptor
 * @fd2: second sync_file descriptor
 *
 * SYNC_IOC_MERGE; the inputs stay valid.
 *
 * Context: Any thread that may allocate.
 * Return: the new close-on-exec descriptor, or -1 with errno (ENOTTY if
 * @fd1 is not a sync_file, ENOENT if @fd2 is not, EBADF, ENOMEM, EMFILE).
 */
HETMEM_API int sync_merge(const char *name, int fd1, int fd2)
{
	struct sync_merge_data data;
	int ret;

	memset(&data, 0, sizeof(data));
	hetmem_sync_strscpy(data.name, name, sizeof(data.name));
	data.fd2 = fd2;
	ret = hetmem_sync_file_ioctl(fd1, SYNC_IOC_MERGE, &data);
	if (ret < 0)
		return libsync_fail(-ret);
	return data.fence;
}

/* The second SYNC_IOC_FILE_INFO call, into one block: header + array. */
static struct sync_file_info *libsync_info_full(int fd, uint32_t num)
{
	struct sync_file_info *info;
	int ret;

	info = calloc(1, sizeof(*info) + num * sizeof(struct sync_fence_info));
	if (!info) {
		errno = ENOMEM;
		return NULL;
	}
	info->num_fences = num;
	info->sync_fence_info = (uintptr_t)(info + 1);
	ret = hetmem_sync_file_ioctl(fd, SYNC_IOC_FILE_INFO, info);
	if (ret < 0) {
		free(info);
		errno = -ret;
		return NULL;
	}
	return info;
}

/**
 * sync_file_info() - a sync_file's name, status and per-fence details
 * @fd: a sync_file descriptor
 *
 * Two SYNC_IOC_FILE_INFO calls: one to learn the number of fences, one to
 * fill the array, allocated together with the header. sync_get_fence_info()
 * gives the array.
 *
 * Context: Any thread that may allocate.
 * Return: the information, to be freed with sync_file_info_free(), or
 * NULL with errno (ENOTTY if @fd is not a sync_file, EBADF, ENOMEM).
 */
HETMEM_API struct sync_file_info *sync_file_info(int32_t fd)
{
	struct sync_file_info probe;
	int ret;

	memset(&probe, 0, sizeof(probe));
	ret = hetmem_sync_file_ioctl(fd, SYNC_IOC_FILE_INFO, &probe);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	return libsync_info_full(fd, probe.num_fences);
}

/**
 * sync_file_info_free() - free what sync_file_info() returned
 * @info: the information, may be NULL
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void sync_file_info_free(struct sync_file_info *info)
{
	free(info);
}
