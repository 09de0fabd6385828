/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private interface between sync_file.c, sync_file_import.c,
 * sw_sync.c and libsync.c.
 */
#ifndef HETMEM_SRC_FENCE_SYNC_FILE_INTERNAL_H
#define HETMEM_SRC_FENCE_SYNC_FILE_INTERNAL_H

#include <stdint.h>

#include "fence/internal.h"
#include <hetmem/fence/sync_file.h>

/*
 * The status record a signaller writes into the pipe, once, just before
 * closing the write end. Native byte order: both ends run on one machine.
 */
struct hetmem_sync_record {
	uint32_t magic;		/* HETMEM_SYNC_RECORD_MAGIC */
	uint16_t version;	/* HETMEM_SYNC_RECORD_VERSION */
	uint16_t size;		/* sizeof(struct hetmem_sync_record) */
	int32_t status;		/* 1, or a negative errno */
	int32_t pid;		/* the signalling process */
	int64_t timestamp_ns;	/* CLOCK_MONOTONIC signal time */
	uint64_t context;	/* producer's fence context */
	uint64_t seqno;		/* producer's fence seqno */
	char name[32];		/* producer's user_name, may be empty */
};

#define HETMEM_SYNC_RECORD_MAGIC 0x31465348u	/* "HSF1" */
#define HETMEM_SYNC_RECORD_VERSION 1

enum hetmem_sync_fd_kind {
	HETMEM_SYNC_FD_PIPE = 1,	/* hetmem pipe read end */
	HETMEM_SYNC_FD_KERNEL = 2,	/* real kernel sync_file */
};

/* What a descriptor is, from fstat() and friends. */
struct hetmem_sync_fd_id {
	uint64_t dev;
	uint64_t ino;
	enum hetmem_sync_fd_kind kind;
};

/* 0 and @id filled; -EBADF; -EINVAL when @fd is not a sync_file. */
int hetmem_sync_fd_identify(int fd, struct hetmem_sync_fd_id *id);

/* Import @fd, already identified, as a proxy fence: 0 or -errno. */
int hetmem_sync_import_proxy(int fd, const struct hetmem_sync_fd_id *id,
			     struct dma_fence **fence);

/* Copy a proxy's producer-given name; false if none (or not a proxy). */
bool hetmem_sync_import_user_name(struct dma_fence *fence, char *buf,
				  size_t len);

/*
 * Open a sync_file pipe: packet mode, close-on-exec, write end
 * non-blocking, capacity one page (the mark importers check). 0 or -errno.
 */
int hetmem_sync_pipe_open(int fds[2]);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit, once per process. */
bool hetmem_sync_raise_nofile(void);

/* Register the fork handlers of the sync_file code (idempotent). */
void hetmem_sync_fork_init(void);

/* Fork handlers of the import side, called from sync_file.c's. */
void hetmem_sync_import_fork_prepare(void);
void hetmem_sync_import_fork_parent(void);
void hetmem_sync_import_fork_child(void);

/* Copy at most @len - 1 bytes and terminate, like the kernel's strscpy. */
void hetmem_sync_strscpy(char *dst, const char *src, size_t len);

#endif /* HETMEM_SRC_FENCE_SYNC_FILE_INTERNAL_H */
