/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-heaps and udmabuf: allocate dma-buf descriptors.
 *
 * Tracks the semantics of Linux v6.17 include/uapi/linux/dma-heap.h and
 * include/uapi/linux/udmabuf.h. A dma-buf descriptor is a sealed memfd
 * (see the DOC blocks in src/buf/system-heap.c).
 */
#ifndef HETMEM_BUF_DMA_HEAP_H
#define HETMEM_BUF_DMA_HEAP_H

#include <fcntl.h>
#include <stdint.h>
#include <linux/ioctl.h>

#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Heaps
 *
 * Heap 0 is "system": a memfd, zero-filled, sealed against shrinking and
 * growing, with the size rounded up to a page. Real kernel heaps found at
 * run time under /dev/dma_heap are listed after it under their full path
 * ("/dev/dma_heap/system", ...) and allocate through the kernel's ioctl.
 * hetmem_udmabuf_create() turns a memfd into a dma-buf descriptor, through
 * /dev/udmabuf where the kernel offers it.
 */

/*
 * The kernel's uapi, field for field. If <linux/dma-heap.h> or
 * <linux/udmabuf.h> was included first their definitions are used; either
 * way the layouts are checked below.
 */
#ifndef _UAPI_LINUX_DMABUF_POOL_H
#define _UAPI_LINUX_DMABUF_POOL_H

#define DMA_HEAP_VALID_FD_FLAGS (O_CLOEXEC | O_ACCMODE)
#define DMA_HEAP_VALID_HEAP_FLAGS (0ULL)

struct dma_heap_allocation_data {
	uint64_t len;
	uint32_t fd;
	uint32_t fd_flags;
	uint64_t heap_flags;
};

#define DMA_HEAP_IOC_MAGIC 'H'
#define DMA_HEAP_IOCTL_ALLOC _IOWR(DMA_HEAP_IOC_MAGIC, 0x0, \
				   struct dma_heap_allocation_data)

#endif /* _UAPI_LINUX_DMABUF_POOL_H */

#ifndef _UAPI_LINUX_UDMABUF_H
#define _UAPI_LINUX_UDMABUF_H

#define UDMABUF_FLAGS_CLOEXEC 0x01

struct udmabuf_create {
	uint32_t memfd;
	uint32_t flags;
	uint64_t offset;
	uint64_t size;
};

struct udmabuf_create_item {
	uint32_t memfd;
	uint32_t __pad;
	uint64_t offset;
	uint64_t size;
};

struct udmabuf_create_list {
	uint32_t flags;
	uint32_t count;
	struct udmabuf_create_item list[];
};

#define UDMABUF_CREATE _IOW('u', 0x42, struct udmabuf_create)
#define UDMABUF_CREATE_LIST _IOW('u', 0x43, struct udmabuf_create_list)

#endif /* _UAPI_LINUX_UDMABUF_H */

#ifdef __cplusplus
#define HETMEM_HEAP_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define HETMEM_HEAP_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
HETMEM_HEAP_ASSERT(sizeof(struct dma_heap_allocation_data) == 24,
		   "struct dma_heap_allocation_data must match the kernel uapi");
HETMEM_HEAP_ASSERT(sizeof(struct udmabuf_create) == 24,
		   "struct udmabuf_create must match the kernel uapi");
HETMEM_HEAP_ASSERT(sizeof(struct udmabuf_create_item) == 24,
		   "struct udmabuf_create_item must match the kernel uapi");
HETMEM_HEAP_ASSERT(sizeof(struct udmabuf_create_list) == 8,
		   "struct udmabuf_create_list must match the kernel uapi");

/* udmabuf module parameters, at their kernel defaults. */
#define HETMEM_UDMABUF_LIST_LIMIT 1024u
#define HETMEM_UDMABUF_SIZE_LIMIT_MB 64u

HETMEM_API int hetmem_dma_heap_count(void);
HETMEM_API const char *hetmem_dma_heap_name(int idx);
HETMEM_API int hetmem_dma_heap_alloc(const char *heap,
				     struct dma_heap_allocation_data *data);
HETMEM_API uint64_t hetmem_dma_heap_limit(void);
HETMEM_API int hetmem_udmabuf_create(const struct udmabuf_create *create);
HETMEM_API int
hetmem_udmabuf_create_list(const struct udmabuf_create_list *head);

HETMEM_END_DECLS

#endif /* HETMEM_BUF_DMA_HEAP_H */
