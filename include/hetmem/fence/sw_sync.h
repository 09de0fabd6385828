/* SPDX-License-Identifier: MIT */
/*
 * hetmem - sw_sync: software timelines whose points are dma_fences.
 *
 * Tracks the semantics of Linux v6.17 drivers/dma-buf/sw_sync.c (the
 * debugfs test driver) and the helpers of tools/testing/selftests/sync.
 */
#ifndef HETMEM_FENCE_SW_SYNC_H
#define HETMEM_FENCE_SW_SYNC_H

#include <stdint.h>
#include <linux/ioctl.h>

#include <hetmem/core/compiler.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/sync_file.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Software timelines
 *
 * A timeline is a 32-bit counter that starts at 0 with one fence context.
 * A point created for value V is a dma_fence that signals once the counter
 * reaches V (compared with 32-bit wraparound); points at or below the
 * current value are signalled at creation. Advancing the counter signals
 * the reached points in ascending order, under the timeline lock, which
 * is also every point's fence lock. Destroying the timeline signals every
 * pending point with -ENOENT; the object itself lives until its last point
 * is released.
 *
 * The kernel exposes timelines through a debugfs file; hetmem has both
 * the object interface (hetmem_sync_timeline_*) and the descriptor
 * interface of the kernel selftests (sw_sync_*), where a timeline is a
 * close-on-exec descriptor used as a handle and its fences are sync_file
 * descriptors.
 */

struct sync_timeline;

/* The debugfs driver's uapi (drivers/dma-buf/sw_sync.c). */
struct sw_sync_create_fence_data {
	uint32_t value;
	char name[32];	/* ignored, as by the kernel */
	int32_t fence;	/* out: close-on-exec sync_file descriptor */
};

struct sw_sync_get_deadline {
	uint64_t deadline_ns;	/* out; must be 0 on entry */
	uint32_t pad;		/* must be 0 */
	int32_t fence_fd;	/* a sync_file of a sw_sync point */
};

#define SW_SYNC_IOC_MAGIC 'W'
#define SW_SYNC_IOC_CREATE_FENCE \
	_IOWR(SW_SYNC_IOC_MAGIC, 0, struct sw_sync_create_fence_data)
#define SW_SYNC_IOC_INC _IOW(SW_SYNC_IOC_MAGIC, 1, uint32_t)
#define SW_SYNC_GET_DEADLINE \
	_IOWR(SW_SYNC_IOC_MAGIC, 2, struct sw_sync_get_deadline)

HETMEM_SYNC_ASSERT(sizeof(struct sw_sync_create_fence_data) == 40,
		   "struct sw_sync_create_fence_data must match the kernel");
HETMEM_SYNC_ASSERT(sizeof(struct sw_sync_get_deadline) == 16,
		   "struct sw_sync_get_deadline must match the kernel");

HETMEM_API struct sync_timeline *hetmem_sync_timeline_create(const char *name);
HETMEM_API struct dma_fence *hetmem_sync_pt_create(struct sync_timeline *obj,
						   unsigned int value);
HETMEM_API int hetmem_sync_timeline_signal(struct sync_timeline *obj,
					   unsigned int inc);
HETMEM_API void hetmem_sync_timeline_destroy(struct sync_timeline *obj);

HETMEM_API int sw_sync_timeline_create(void);
HETMEM_API int sw_sync_timeline_is_valid(int fd);
HETMEM_API int sw_sync_timeline_inc(int fd, unsigned int count);
HETMEM_API void sw_sync_timeline_destroy(int fd);
HETMEM_API int sw_sync_fence_create(int fd, const char *name,
				    unsigned int value);
HETMEM_API int sw_sync_fence_is_valid(int fd);
HETMEM_API void sw_sync_fence_destroy(int fd);
HETMEM_API int hetmem_sw_sync_ioctl(int timeline_fd, unsigned long cmd,
				    void *arg);

HETMEM_END_DECLS

#endif /* HETMEM_FENCE_SW_SYNC_H */
