/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-buf: buffers shared between devices and processes.
 *
 * Tracks the semantics of Linux v6.17 include/linux/dma-buf.h and
 * include/uapi/linux/dma-buf.h. A dma-buf descriptor is a sealed memfd.
 */
#ifndef HETMEM_BUF_DMA_BUF_H
#define HETMEM_BUF_DMA_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <linux/ioctl.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/errno.h>
#include <hetmem/core/kref.h>
#include <hetmem/core/list.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/buf/scatterlist.h>
#include <hetmem/resv/dma-resv.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Error pointers
 *
 * dma_buf_export(), dma_buf_attach(), dma_buf_dynamic_attach(),
 * dma_buf_map_attachment() and dma_buf_map_attachment_unlocked() keep the
 * kernel's signatures: on failure they return a negative errno encoded in
 * the pointer (the last 4095 addresses, as the kernel's ERR_PTR()), never
 * NULL. Installed headers must not define ERR_PTR()/IS_ERR(), so test the
 * result with hetmem_dma_buf_is_err() and decode it with
 * hetmem_dma_buf_ptr_err(); code built with HETMEM_LINUX_COMPAT may use
 * IS_ERR()/PTR_ERR() from <hetmem/linux/compat.h>, same encoding. An
 * exporter's map_dma_buf op returns errors the same way (NULL is taken
 * as -ENOMEM, as in the kernel).
 */

/**
 * DOC: What a dma-buf is in a process
 *
 * The file behind a dma-buf is a memfd sealed against shrinking, growing
 * and further sealing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), of
 * exactly @size bytes: lseek(fd, 0, SEEK_END) gives the size, mmap(2)
 * works on it directly, and its (st_dev, st_ino) identifies the buffer in
 * every process. Unlike the kernel's dma-buf file the memfd also accepts
 * read(2)/write(2) and any lseek(); never rely on its shared file offset.
 *
 * struct dma_buf is the per-process object around that memfd. Its
 * reference count is its own (not the descriptors'): dma_buf_fd() hands
 * out descriptors without consuming a reference, so an exporter still
 * calls dma_buf_put() after dma_buf_fd(); the descriptors keep the memory
 * alive on their own, and dma_buf_get() on one of them returns the live
 * object, or after its release a new imported one.
 *
 * A "device" is a struct hetmem_device: a name, nothing else. The address
 * "valid for the importing device" in an sg_table is, for the memfd
 * exporter helpers (hetmem_dma_buf_map_memfd()), the process-virtual
 * address of a MAP_SHARED mapping of the memfd that belongs to that
 * sg_table and is unmapped by dma_buf_unmap_attachment(). Other exporters
 * may put anything a device of theirs understands there.
 */

/**
 * struct hetmem_device - the stand-in for the kernel's struct device
 * @name: shown in hetmem_dma_buf_describe_all(); must outlive attachments
 */
struct hetmem_device {
	const char *name;
};

/**
 * enum dma_data_direction - direction of a transfer, from the device's side
 * @DMA_BIDIRECTIONAL: the device reads and writes
 * @DMA_TO_DEVICE: the device reads (the CPU wrote)
 * @DMA_FROM_DEVICE: the device writes (the CPU will read)
 * @DMA_NONE: no transfer; invalid for mappings
 */
enum dma_data_direction {
	DMA_BIDIRECTIONAL = 0,
	DMA_TO_DEVICE = 1,
	DMA_FROM_DEVICE = 2,
	DMA_NONE = 3,
};

/**
 * struct iosys_map - a CPU mapping of a buffer
 * @vaddr: the address; valid while the vmap is held
 * @is_iomem: always false in a process
 */
struct iosys_map {
	void *vaddr;
	bool is_iomem;
};

/**
 * struct hetmem_vma - what a userspace mmap of a dma-buf is about to map
 * @addr: where the range is mapped (already mapped when the op runs)
 * @len: length in bytes, a multiple of the page size
 * @prot: PROT_* bits
 * @pgoff: offset into the buffer, in pages
 */
struct hetmem_vma {
	void *addr;
	size_t len;
	int prot;
	unsigned long pgoff;
};

struct dma_buf;
struct dma_buf_attachment;

/**
 * struct dma_buf_ops - exporter callbacks
 * @attach: optional; unlocked; may refuse the device (-EBUSY)
 * @detach: optional; unlocked
 * @pin: optional, together with @unpin; resv held; makes the exporter
 *	dynamic
 * @unpin: resv held
 * @map_dma_buf: mandatory; resv held; a new sg_table, an error pointer,
 *	or NULL (-ENOMEM)
 * @unmap_dma_buf: mandatory; resv held
 * @release: mandatory; unlocked; the last reference went
 * @begin_cpu_access: optional; unlocked
 * @end_cpu_access: optional; unlocked
 * @mmap: optional; unlocked; the range is already mapped from the memfd
 *	and is unmapped again if this fails; without it mmap is -EINVAL
 * @vmap: optional; resv held; fill @map with a mapping of the whole buffer
 * @vunmap: resv held
 */
struct dma_buf_ops {
	int (*attach)(struct dma_buf *dmabuf, struct dma_buf_attachment *attach);
	void (*detach)(struct dma_buf *dmabuf, struct dma_buf_attachment *attach);
	int (*pin)(struct dma_buf_attachment *attach);
	void (*unpin)(struct dma_buf_attachment *attach);
	struct sg_table *(*map_dma_buf)(struct dma_buf_attachment *attach,
					enum dma_data_direction dir);
	void (*unmap_dma_buf)(struct dma_buf_attachment *attach,
			      struct sg_table *sgt,
			      enum dma_data_direction dir);
	void (*release)(struct dma_buf *dmabuf);
	int (*begin_cpu_access)(struct dma_buf *dmabuf,
				enum dma_data_direction dir);
	int (*end_cpu_access)(struct dma_buf *dmabuf,
			      enum dma_data_direction dir);
	int (*mmap)(struct dma_buf *dmabuf, struct hetmem_vma *vma);
	int (*vmap)(struct dma_buf *dmabuf, struct iosys_map *map);
	void (*vunmap)(struct dma_buf *dmabuf, struct iosys_map *map);
};

#define DMA_BUF_NAME_LEN 32

/**
 * struct dma_buf - a shared buffer
 * @size: size in bytes; never changes
 * @file: the sealed memfd (close-on-exec), owned by the object
 * @ops: exporter callbacks
 * @priv: exporter data
 * @exp_name: exporter name
 * @name: user-settable name, guarded by @name_lock; see dma_buf_set_name()
 * @name_lock: guards @name
 * @resv: the reservation object; @_resv unless the exporter gave its own
 * @_resv: embedded reservation object
 * @attachments: attachments, under the @resv lock
 * @vmapping_counter: vmap users, under the @resv lock
 * @vmap_ptr: the shared vmap while @vmapping_counter > 0
 * @refcount: references to this object
 * @st_dev: identity of @file
 * @st_ino: identity of @file
 * @owner_pid: process that created the object (a fork child sees copies)
 * @list_node: on the process-wide list (private)
 */
struct dma_buf {
	size_t size;
	int file;
	const struct dma_buf_ops *ops;
	void *priv;
	const char *exp_name;
	char name[DMA_BUF_NAME_LEN];
	hetmem_spinlock_t name_lock;
	struct dma_resv *resv;
	struct dma_resv _resv;
	struct hetmem_list_head attachments;
	unsigned int vmapping_counter;
	struct iosys_map vmap_ptr;
	struct hetmem_kref refcount;
	dev_t st_dev;
	ino_t st_ino;
	pid_t owner_pid;
	struct hetmem_list_head list_node;
};

/**
 * struct dma_buf_attach_ops - importer callbacks of a dynamic attachment
 * @allow_peer2peer: the importer can use addresses without struct page
 * @move_notify: mandatory; called with the resv lock held when the
 *	exporter moves the buffer: tear down mappings and map again
 */
struct dma_buf_attach_ops {
	bool allow_peer2peer;
	void (*move_notify)(struct dma_buf_attachment *attach);
};

/**
 * struct dma_buf_attachment - a device attached to a buffer
 * @dmabuf: the buffer
 * @dev: the device
 * @node: on @dmabuf's attachments, under the resv lock
 * @peer2peer: copied from the importer ops
 * @importer_ops: NULL for a static importer
 * @importer_priv: importer data
 * @priv: exporter data
 * @map_count: live mappings, under the resv lock (hetmem bookkeeping)
 */
struct dma_buf_attachment {
	struct dma_buf *dmabuf;
	struct hetmem_device *dev;
	struct hetmem_list_head node;
	bool peer2peer;
	const struct dma_buf_attach_ops *importer_ops;
	void *importer_priv;
	void *priv;
	unsigned int map_count;
};

/**
 * struct dma_buf_export_info - what dma_buf_export() needs
 * @exp_name: exporter name, non-NULL
 * @owner: unused (module pointer in the kernel)
 * @ops: callbacks
 * @size: size in bytes, non-zero
 * @flags: file flags; ignored: every descriptor is O_RDWR, and
 *	close-on-exec is chosen per descriptor in dma_buf_fd()
 * @resv: the exporter's reservation object, or NULL for an embedded one
 * @priv: exporter data, non-NULL
 */
struct dma_buf_export_info {
	const char *exp_name;
	void *owner;
	const struct dma_buf_ops *ops;
	size_t size;
	int flags;
	struct dma_resv *resv;
	void *priv;
};

/* A zeroed export info named @name with the source file as exporter. */
#define DEFINE_DMA_BUF_EXPORT_INFO(name)				\
	struct dma_buf_export_info name = { .exp_name = __FILE__ }

/**
 * struct hetmem_dma_buf_stats - the process's dma-bufs
 * @count: live objects
 * @total_size: sum of their sizes in bytes
 */
struct hetmem_dma_buf_stats {
	uint64_t count;
	uint64_t total_size;
};

/*
 * The kernel's uapi, field for field. If <linux/dma-buf.h> was included
 * first its definitions are used. The ioctls do not work on a memfd
 * (ENOTTY): use the library calls below.
 */
#ifndef _DMA_BUF_UAPI_H_
#define _DMA_BUF_UAPI_H_

struct dma_buf_sync {
	uint64_t flags;
};

#define DMA_BUF_SYNC_READ (1 << 0)
#define DMA_BUF_SYNC_WRITE (2 << 0)
#define DMA_BUF_SYNC_RW (DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE)
#define DMA_BUF_SYNC_START (0 << 2)
#define DMA_BUF_SYNC_END (1 << 2)
#define DMA_BUF_SYNC_VALID_FLAGS_MASK (DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END)

struct dma_buf_export_sync_file {
	uint32_t flags;
	int32_t fd;
};

struct dma_buf_import_sync_file {
	uint32_t flags;
	int32_t fd;
};

#define DMA_BUF_BASE 'b'
#define DMA_BUF_IOCTL_SYNC _IOW(DMA_BUF_BASE, 0, struct dma_buf_sync)
#define DMA_BUF_SET_NAME _IOW(DMA_BUF_BASE, 1, const char *)
#define DMA_BUF_SET_NAME_A _IOW(DMA_BUF_BASE, 1, uint32_t)
#define DMA_BUF_SET_NAME_B _IOW(DMA_BUF_BASE, 1, uint64_t)
#define DMA_BUF_IOCTL_EXPORT_SYNC_FILE \
	_IOWR(DMA_BUF_BASE, 2, struct dma_buf_export_sync_file)
#define DMA_BUF_IOCTL_IMPORT_SYNC_FILE \
	_IOW(DMA_BUF_BASE, 3, struct dma_buf_import_sync_file)

#endif /* _DMA_BUF_UAPI_H_ */

#ifdef __cplusplus
#define HETMEM_DMA_BUF_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define HETMEM_DMA_BUF_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
HETMEM_DMA_BUF_ASSERT(sizeof(struct dma_buf_sync) == 8,
		      "struct dma_buf_sync must match the kernel uapi");
HETMEM_DMA_BUF_ASSERT(sizeof(struct dma_buf_export_sync_file) == 8,
		      "struct dma_buf_export_sync_file must match the kernel uapi");
HETMEM_DMA_BUF_ASSERT(sizeof(struct dma_buf_import_sync_file) == 8,
		      "struct dma_buf_import_sync_file must match the kernel uapi");

HETMEM_API struct dma_buf *dma_buf_export(const struct dma_buf_export_info *exp_info);
HETMEM_API int dma_buf_fd(struct dma_buf *dmabuf, int flags);
HETMEM_API struct dma_buf *dma_buf_get(int fd);
HETMEM_API void dma_buf_put(struct dma_buf *dmabuf);

HETMEM_API struct dma_buf_attachment *
dma_buf_attach(struct dma_buf *dmabuf, struct hetmem_device *dev);
HETMEM_API struct dma_buf_attachment *
dma_buf_dynamic_attach(struct dma_buf *dmabuf, struct hetmem_device *dev,
		       const struct dma_buf_attach_ops *importer_ops,
		       void *importer_priv);
HETMEM_API void dma_buf_detach(struct dma_buf *dmabuf,
			       struct dma_buf_attachment *attach);
HETMEM_API int dma_buf_pin(struct dma_buf_attachment *attach);
HETMEM_API void dma_buf_unpin(struct dma_buf_attachment *attach);
HETMEM_API struct sg_table *
dma_buf_map_attachment(struct dma_buf_attachment *attach,
		       enum dma_data_direction dir);
HETMEM_API void dma_buf_unmap_attachment(struct dma_buf_attachment *attach,
					 struct sg_table *sgt,
					 enum dma_data_direction dir);
HETMEM_API struct sg_table *
dma_buf_map_attachment_unlocked(struct dma_buf_attachment *attach,
				enum dma_data_direction dir);
HETMEM_API void
dma_buf_unmap_attachment_unlocked(struct dma_buf_attachment *attach,
				  struct sg_table *sgt,
				  enum dma_data_direction dir);
HETMEM_API void dma_buf_move_notify(struct dma_buf *dmabuf);

HETMEM_API int dma_buf_begin_cpu_access(struct dma_buf *dmabuf,
					enum dma_data_direction dir);
HETMEM_API int dma_buf_end_cpu_access(struct dma_buf *dmabuf,
				      enum dma_data_direction dir);
HETMEM_API int hetmem_dma_buf_mmap(struct dma_buf *dmabuf, void **addr,
				   size_t len, int prot, unsigned long pgoff);
HETMEM_API int dma_buf_vmap(struct dma_buf *dmabuf, struct iosys_map *map);
HETMEM_API void dma_buf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map);
HETMEM_API int dma_buf_vmap_unlocked(struct dma_buf *dmabuf,
				     struct iosys_map *map);
HETMEM_API void dma_buf_vunmap_unlocked(struct dma_buf *dmabuf,
					struct iosys_map *map);
HETMEM_API int dma_buf_set_name(struct dma_buf *dmabuf, const char *name);
HETMEM_API int hetmem_dma_buf_get_name(struct dma_buf *dmabuf, char *buf,
				       size_t len);

HETMEM_API struct sg_table *
hetmem_dma_buf_map_memfd(struct dma_buf_attachment *attach,
			 enum dma_data_direction dir);
HETMEM_API void hetmem_dma_buf_unmap_memfd(struct dma_buf_attachment *attach,
					   struct sg_table *sgt,
					   enum dma_data_direction dir);
HETMEM_API int hetmem_dma_buf_vmap_memfd(struct dma_buf *dmabuf,
					 struct iosys_map *map);
HETMEM_API void hetmem_dma_buf_vunmap_memfd(struct dma_buf *dmabuf,
					    struct iosys_map *map);

HETMEM_API int hetmem_dma_buf_poll(struct dma_buf *dmabuf, short events,
				   int timeout_ms);
HETMEM_API int dma_buf_export_sync_file(struct dma_buf *dmabuf,
					unsigned int flags);
HETMEM_API int dma_buf_import_sync_file(struct dma_buf *dmabuf,
					unsigned int flags, int fd);

HETMEM_API void hetmem_dma_buf_stats(struct hetmem_dma_buf_stats *stats);
HETMEM_API int hetmem_dma_buf_describe_all(FILE *f);

/* True if @ptr, returned by the dma-buf API, encodes an error. */
static inline bool hetmem_dma_buf_is_err(const void *ptr)
{
	return (uintptr_t)ptr >= (uintptr_t)-HETMEM_MAX_ERRNO;
}

/* The negative errno encoded in @ptr (hetmem_dma_buf_is_err() is true). */
static inline int hetmem_dma_buf_ptr_err(const void *ptr)
{
	return (int)(intptr_t)ptr;
}

/**
 * get_dma_buf() - take another reference on a buffer
 * @dmabuf: the buffer, referenced by the caller
 *
 * Context: Any.
 * Return: nothing.
 */
static inline void get_dma_buf(struct dma_buf *dmabuf)
{
	hetmem_kref_get(&dmabuf->refcount);
}

/**
 * dma_buf_is_dynamic() - can the exporter move the buffer
 * @dmabuf: the buffer
 *
 * Context: Any.
 * Return: true if the exporter implements pin (and so unpin).
 */
static inline bool dma_buf_is_dynamic(struct dma_buf *dmabuf)
{
	return dmabuf->ops->pin != NULL;
}

/**
 * dma_buf_attachment_is_dynamic() - does the importer handle moves
 * @attach: the attachment
 *
 * Context: Any.
 * Return: true if the importer gave importer ops (move_notify).
 */
static inline bool dma_buf_attachment_is_dynamic(struct dma_buf_attachment *attach)
{
	return attach->importer_ops != NULL;
}

HETMEM_END_DECLS

#endif /* HETMEM_BUF_DMA_BUF_H */
