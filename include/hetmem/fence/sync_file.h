/* SPDX-License-Identifier: MIT */
/*
 * hetmem - sync_file: a dma_fence as a pollable file descriptor.
 *
 * Tracks the semantics of Linux v6.17 include/linux/sync_file.h and
 * include/uapi/linux/sync_file.h. The descriptor is the read end of a
 * packet-mode pipe (see the DOC blocks in src/fence/sync_file.c).
 */
#ifndef HETMEM_FENCE_SYNC_FILE_H
#define HETMEM_FENCE_SYNC_FILE_H

#include <stdint.h>
#include <linux/ioctl.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/kref.h>
#include <hetmem/core/list.h>
#include <hetmem/fence/dma-fence.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Fences as file descriptors
 *
 * A sync_file descriptor is the read end of a pipe opened in packet mode
 * (O_DIRECT); the process that created it keeps the write end, privately
 * and close-on-exec. When the fence signals, that process writes one
 * fixed-size status record (status, CLOCK_MONOTONIC timestamp) and closes
 * the write end. Hence:
 *
 * - poll(), select() and epoll report the descriptor readable (POLLIN,
 *   with POLLHUP) exactly once the fence has signalled, with or without an
 *   error, as a kernel sync_file does; libsync's sync_wait() works as is;
 * - it can be passed over a unix socket (SCM_RIGHTS) or inherited across
 *   fork() and exec(), and a receiver cannot signal it (it holds no write
 *   end);
 * - if the signalling process dies, the kernel closes the write end: every
 *   holder sees the fence signalled with -EPIPE.
 *
 * The kernel's ioctl(2)s do not reach a pipe; hetmem_sync_file_ioctl() and
 * the functions below perform them with the kernel's structures, numbers
 * and error codes. Real kernel sync_file descriptors (from a DRM driver or
 * debugfs sw_sync) are accepted wherever a descriptor is.
 */

/**
 * struct sync_file - a fence wrapped for export as a descriptor
 * @user_name: name given at merge time; empty for a generated name
 * @fence: the wrapped fence; the sync_file holds a reference
 * @fd: the read end, owned by this object until
 *	hetmem_sync_file_install() hands it to the caller (then -1)
 *
 * Only @user_name, @fence and @fd are public. The object stays alive,
 * after the caller's handle is gone, until the fence has signalled and
 * the status record has been written.
 */
struct sync_file {
	char user_name[32];
	struct dma_fence *fence;
	int fd;

	/* private: */
	struct hetmem_kref ref;
	int wfd;
	int creator_pid;
	unsigned int state;
	uint64_t dev;
	uint64_t ino;
	struct hetmem_list_head node;
	struct dma_fence_cb cb;
};

/* Leave FD_CLOEXEC clear on the returned descriptor. */
#define HETMEM_SYNC_FILE_INHERIT 0x1u

/*
 * The kernel's uapi, field for field (include/uapi/linux/sync_file.h). If
 * <linux/sync_file.h> was included first its definitions are used; either
 * way the layouts are checked below.
 */
#ifndef _LINUX_SYNC_H
#define _LINUX_SYNC_H

struct sync_merge_data {
	char name[32];
	int32_t fd2;
	int32_t fence;
	uint32_t flags;
	uint32_t pad;
};

struct sync_fence_info {
	char obj_name[32];
	char driver_name[32];
	int32_t status;
	uint32_t flags;
	uint64_t timestamp_ns;
};

struct sync_file_info {
	char name[32];
	int32_t status;
	uint32_t flags;
	uint32_t num_fences;
	uint32_t pad;
	uint64_t sync_fence_info;
};

struct sync_set_deadline {
	uint64_t deadline_ns;
	uint64_t pad;
};

#define SYNC_IOC_MAGIC '>'
#define SYNC_IOC_MERGE _IOWR(SYNC_IOC_MAGIC, 3, struct sync_merge_data)
#define SYNC_IOC_FILE_INFO _IOWR(SYNC_IOC_MAGIC, 4, struct sync_file_info)
#define SYNC_IOC_SET_DEADLINE _IOW(SYNC_IOC_MAGIC, 5, struct sync_set_deadline)

#endif /* _LINUX_SYNC_H */

#ifdef __cplusplus
#define HETMEM_SYNC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define HETMEM_SYNC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
HETMEM_SYNC_ASSERT(sizeof(struct sync_merge_data) == 48,
		   "struct sync_merge_data must match the kernel uapi");
HETMEM_SYNC_ASSERT(sizeof(struct sync_fence_info) == 80,
		   "struct sync_fence_info must match the kernel uapi");
HETMEM_SYNC_ASSERT(sizeof(struct sync_file_info) == 56,
		   "struct sync_file_info must match the kernel uapi");
HETMEM_SYNC_ASSERT(sizeof(struct sync_set_deadline) == 16,
		   "struct sync_set_deadline must match the kernel uapi");

HETMEM_API struct sync_file *sync_file_create(struct dma_fence *fence);
HETMEM_API void hetmem_sync_file_put(struct sync_file *sync_file);
HETMEM_API int hetmem_sync_file_install(struct sync_file *sync_file,
					unsigned int flags);
HETMEM_API int hetmem_sync_file_export(struct dma_fence *fence,
				       unsigned int flags);
HETMEM_API struct dma_fence *sync_file_get_fence(int fd);
HETMEM_API int hetmem_sync_file_import(int fd, struct dma_fence **fence);
HETMEM_API char *sync_file_get_name(struct sync_file *sync_file, char *buf,
				    int len);
HETMEM_API int hetmem_sync_file_merge(const char *name, int fd1, int fd2,
				      unsigned int flags);
HETMEM_API int hetmem_sync_file_info(int fd, struct sync_file_info *info);
HETMEM_API int hetmem_sync_file_set_deadline(int fd,
					     const struct sync_set_deadline *d);
HETMEM_API int hetmem_sync_file_ioctl(int fd, unsigned long cmd, void *arg);
HETMEM_API int hetmem_sync_file_status(int fd, int *status);

HETMEM_END_DECLS

#endif /* HETMEM_FENCE_SYNC_FILE_H */
