/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-buf core: export, descriptors, attachments, CPU access.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>
#include <hetmem/buf/dma-buf.h>
#include <hetmem/buf/transfer.h>

/**
 * DOC: dma-buf objects in a process
 *
 * dma_buf_export() creates the memfd (exact size, sealed SHRINK, GROW and
 * SEAL, close-on-exec) and the object around it, and puts the object on a
 * process-wide list keyed by the memfd's (st_dev, st_ino). That list is
 * what lets dma_buf_get() hand back the exporter's own object when the
 * descriptor comes from this process, as the kernel hands back the same
 * file. A descriptor the list does not know (received from a peer, or
 * inherited over fork(): the child's copy of the list belongs to the
 * parent and is skipped by owner pid) becomes an imported object after
 * hetmem_buf_validate() proved it a sealed memfd: its ops are the memfd
 * helpers below, its exporter name "hetmem-import".
 *
 * The object's lifetime is its own reference count; the list lock is
 * taken for lookups with hetmem_kref_get_unless_zero() and for removal in
 * the release path, so a lookup never revives an object being released.
 */

/**
 * DOC: Differences from the kernel's dma-buf core
 *
 * - dma_buf_fd() does not consume the caller's reference (a descriptor
 *   cannot drop an object when it is closed), and the access mode of
 *   @exp_info->flags is not applied: every descriptor is O_RDWR.
 *   @exp_info->owner is ignored (there are no modules).
 * - dma_buf_export() and friends return error pointers, as the kernel;
 *   see hetmem_dma_buf_is_err() in the header.
 * - mmap takes an address/length/prot/pgoff instead of a VMA
 *   (hetmem_dma_buf_mmap()); the core maps the memfd itself and then
 *   lets the exporter's mmap op accept or refuse the range.
 * - Poll readiness is a call (hetmem_dma_buf_poll()), because poll(2) on
 *   a memfd is always ready; it re-evaluates the fences on each call, so
 *   there is no armed per-buffer callback state.
 * - Implicit fences live in a per-process reservation object: a fence
 *   attached in one process is not seen by another. Use
 *   dma_buf_export_sync_file() and pass the sync_file across.
 * - The sg_table has no struct page entries (see scatterlist.h).
 * - Mapping with the CPU and pinning never migrate anything: a memfd's
 *   pages never move from the process's point of view.
 */

#define DMA_BUF_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static struct hetmem_mutex dma_buf_list_lock =
	HETMEM_MUTEX_INIT(dma_buf_list_lock);
static struct hetmem_list_head dma_buf_list = HETMEM_LIST_HEAD_INIT(dma_buf_list);

static void *dma_buf_err_ptr(int err)
{
	return (void *)(intptr_t)err;
}

static size_t dma_buf_page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static bool dma_buf_ops_valid(const struct dma_buf_ops *ops)
{
	if (!ops || !ops->map_dma_buf || !ops->unmap_dma_buf || !ops->release)
		return false;
	/* Both or neither: a pin without an unpin could never be undone. */
	return !ops->pin == !ops->unpin;
}

/* A new sealed memfd of exactly @size bytes, or a negative errno. */
static int dma_buf_memfd_create(size_t size)
{
	int fd = memfd_create("dmabuf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int ret;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) || fcntl(fd, F_ADD_SEALS, DMA_BUF_SEALS)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* Set up everything but the file, ops and exporter fields. */
static int dma_buf_init(struct dma_buf *dmabuf, int fd, struct dma_resv *resv)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	dmabuf->file = fd;
	dmabuf->st_dev = st.st_dev;
	dmabuf->st_ino = st.st_ino;
	dmabuf->owner_pid = getpid();
	hetmem_spin_lock_init(&dmabuf->name_lock);
	hetmem_list_init(&dmabuf->attachments);
	hetmem_kref_init(&dmabuf->refcount);
	if (!resv) {
		dma_resv_init(&dmabuf->_resv);
		resv = &dmabuf->_resv;
	}
	dmabuf->resv = resv;
	return 0;
}

static void dma_buf_list_add(struct dma_buf *dmabuf)
{
	hetmem_mutex_lock(&dma_buf_list_lock);
	hetmem_list_add_tail(&dmabuf->list_node, &dma_buf_list);
	hetmem_mutex_unlock(&dma_buf_list_lock);
}

/* Allocate and publish an object around @fd, which it then owns. */
static struct dma_buf *dma_buf_create(int fd, size_t size,
				      const struct dma_buf_ops *ops,
				      const char *exp_name, void *priv,
				      struct dma_resv *resv)
{
	struct dma_buf *dmabuf = calloc(1, sizeof(*dmabuf));
	int ret;

	if (!dmabuf)
		return dma_buf_err_ptr(-ENOMEM);
	ret = dma_buf_init(dmabuf, fd, resv);
	if (ret) {
		free(dmabuf);
		return dma_buf_err_ptr(ret);
	}
	dmabuf->size = size;
	dmabuf->ops = ops;
	dmabuf->exp_name = exp_name;
	dmabuf->priv = priv;
	dma_buf_list_add(dmabuf);
	return dmabuf;
}

/**
 * dma_buf_export() - wrap exporter storage into a new dma-buf
 * @exp_info: exporter name, ops, size, optional reservation object, priv
 *
 * Creates the sealed memfd of exactly @exp_info->size bytes and the
 * object around it, with one reference. No descriptor is handed out yet
 * (see dma_buf_fd()). With @exp_info->resv NULL the object embeds its
 * own reservation object; otherwise it uses the exporter's, which must
 * outlive it.
 *
 * Context: Any thread that may allocate; the resv lock not held.
 * Return: the object, or an error pointer (see hetmem_dma_buf_is_err()):
 * -EINVAL for a NULL @exp_info, exp_name or priv, a zero size, a missing
 * mandatory op (map_dma_buf, unmap_dma_buf, release) or pin without unpin
 * (or the reverse); -ENOMEM; -EMFILE/-ENFILE when out of descriptors.
 */
HETMEM_API struct dma_buf *dma_buf_export(const struct dma_buf_export_info *exp_info)
{
	struct dma_buf *dmabuf;
	int fd;

	if (!exp_info || !exp_info->exp_name || !exp_info->priv ||
	    !exp_info->size || !dma_buf_ops_valid(exp_info->ops))
		return dma_buf_err_ptr(-EINVAL);
	fd = dma_buf_memfd_create(exp_info->size);
	if (fd < 0)
		return dma_buf_err_ptr(fd);
	dmabuf = dma_buf_create(fd, exp_info->size, exp_info->ops,
				exp_info->exp_name, exp_info->priv,
				exp_info->resv);
	if (hetmem_dma_buf_is_err(dmabuf))
		close(fd);
	return dmabuf;
}

/**
 * dma_buf_fd() - a new descriptor for a buffer
 * @dmabuf: the buffer
 * @flags: O_CLOEXEC or 0; other bits are ignored, as in the kernel
 *
 * The descriptor refers to the same open file description as every other
 * descriptor of @dmabuf. Unlike the kernel, the caller's reference is not
 * transferred to the descriptor: the caller still owns and puts it.
 *
 * Context: Any thread; the resv lock not held.
 * Return: the descriptor (>= 0); -EINVAL for a NULL @dmabuf; -EMFILE.
 */
HETMEM_API int dma_buf_fd(struct dma_buf *dmabuf, int flags)
{
	int fd;

	if (!dmabuf)
		return -EINVAL;
	fd = fcntl(dmabuf->file, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
	return fd < 0 ? -errno : fd;
}

/* This process's live object for (@dev, @ino), with a new reference. */
static struct dma_buf *dma_buf_lookup(dev_t dev, ino_t ino)
{
	struct hetmem_list_head *pos, *n;
	struct dma_buf *found = NULL;
	pid_t self = getpid();

	hetmem_mutex_lock(&dma_buf_list_lock);
	hetmem_list_for_each_safe(pos, n, &dma_buf_list) {
		struct dma_buf *b = hetmem_list_entry(pos, struct dma_buf, list_node);

		if (b->owner_pid != self || b->st_dev != dev || b->st_ino != ino)
			continue;
		if (hetmem_kref_get_unless_zero(&b->refcount)) {
			found = b;
			break;
		}
	}
	hetmem_mutex_unlock(&dma_buf_list_lock);
	return found;
}

static void dma_buf_import_release(struct dma_buf *dmabuf)
{
	(void)dmabuf;	/* the core closes the memfd and frees the object */
}

/* The core already mapped the memfd; an import has nothing to refuse. */
static int dma_buf_import_mmap(struct dma_buf *dmabuf, struct hetmem_vma *vma)
{
	(void)dmabuf;
	(void)vma;
	return 0;
}

static const struct dma_buf_ops dma_buf_import_ops = {
	.map_dma_buf = hetmem_dma_buf_map_memfd,
	.unmap_dma_buf = hetmem_dma_buf_unmap_memfd,
	.release = dma_buf_import_release,
	.vmap = hetmem_dma_buf_vmap_memfd,
	.vunmap = hetmem_dma_buf_vunmap_memfd,
	.mmap = dma_buf_import_mmap,
};

/* Wrap a validated foreign memfd; the object owns a duplicate of @fd. */
static struct dma_buf *dma_buf_import(int fd, size_t size)
{
	struct dma_buf *dmabuf;
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (dup < 0)
		return dma_buf_err_ptr(-errno);
	dmabuf = dma_buf_create(dup, size, &dma_buf_import_ops,
				"hetmem-import", NULL, NULL);
	if (hetmem_dma_buf_is_err(dmabuf))
		close(dup);
	return dmabuf;
}

/**
 * dma_buf_get() - the buffer behind a descriptor
 * @fd: a dma-buf descriptor: a memfd sealed against shrinking
 *
 * A descriptor of a buffer this process exported (or imported before)
 * and that is still alive gives that object back with a new reference.
 * Any other sealed memfd, e.g. one received from another process or
 * inherited over fork(), is validated with hetmem_buf_validate() (tmpfs
 * or hugetlbfs, F_SEAL_SHRINK and F_SEAL_GROW, read-only accepted) and
 * wrapped in a new imported object that uses the memfd helpers as ops.
 *
 * Context: Any thread that may allocate; the resv lock not held.
 * Return: the object, or an error pointer: -EBADF if @fd is not open;
 * -EINVAL if it is not a sealed memfd; -ENOMEM; -EMFILE.
 */
HETMEM_API struct dma_buf *dma_buf_get(int fd)
{
	struct dma_buf *dmabuf;
	struct stat st;
	int ret;

	if (fstat(fd, &st))
		return dma_buf_err_ptr(-errno);
	dmabuf = dma_buf_lookup(st.st_dev, st.st_ino);
	if (dmabuf)
		return dmabuf;
	if (st.st_size <= 0)
		return dma_buf_err_ptr(-EINVAL);
	ret = hetmem_buf_validate(fd, (uint64_t)st.st_size, 0, HETMEM_BUF_RDONLY);
	if (ret)
		return dma_buf_err_ptr(ret == -EBADF ? ret : -EINVAL);
	return dma_buf_import(fd, (size_t)st.st_size);
}

static void dma_buf_release(struct hetmem_kref *kref)
{
	struct dma_buf *dmabuf = hetmem_container_of(kref, struct dma_buf, refcount);

	hetmem_mutex_lock(&dma_buf_list_lock);
	hetmem_list_del_init(&dmabuf->list_node);
	hetmem_mutex_unlock(&dma_buf_list_lock);
	HETMEM_WARN(!hetmem_list_empty(&dmabuf->attachments),
		    "dma-buf %s released with attachments", dmabuf->exp_name);
	HETMEM_WARN(dmabuf->vmapping_counter, "dma-buf released while vmapped");
	dmabuf->ops->release(dmabuf);
	if (dmabuf->resv == &dmabuf->_resv)
		dma_resv_fini(&dmabuf->_resv);
	close(dmabuf->file);
	free(dmabuf);
}

/**
 * dma_buf_put() - drop a reference
 * @dmabuf: the buffer, or NULL
 *
 * The last reference calls the exporter's release op, then closes the
 * object's memfd. Descriptors handed out by dma_buf_fd() stay valid.
 *
 * Context: Any thread; the resv lock not held.
 * Return: nothing.
 */
HETMEM_API void dma_buf_put(struct dma_buf *dmabuf)
{
	if (HETMEM_WARN_ON(!dmabuf))
		return;
	hetmem_kref_put(&dmabuf->refcount, dma_buf_release);
}

/**
 * dma_buf_set_name() - rename a buffer
 * @dmabuf: the buffer
 * @name: at most DMA_BUF_NAME_LEN - 1 (31) characters; "" is valid
 *
 * Replaces the name atomically under the name lock; allowed at any time.
 *
 * Context: Any thread.
 * Return: 0; -EINVAL for a NULL @dmabuf or a name of 32 characters or
 * more; -EFAULT for a NULL @name (the kernel's bad user pointer).
 */
HETMEM_API int dma_buf_set_name(struct dma_buf *dmabuf, const char *name)
{
	size_t len;

	if (!dmabuf)
		return -EINVAL;
	if (!name)
		return -EFAULT;
	len = strnlen(name, DMA_BUF_NAME_LEN);
	if (len >= DMA_BUF_NAME_LEN)
		return -EINVAL;
	hetmem_spin_lock(&dmabuf->name_lock);
	memcpy(dmabuf->name, name, len + 1);
	hetmem_spin_unlock(&dmabuf->name_lock);
	return 0;
}

/**
 * hetmem_dma_buf_get_name() - copy a buffer's name
 * @dmabuf: the buffer
 * @buf: destination
 * @len: size of @buf; DMA_BUF_NAME_LEN always suffices
 *
 * Context: Any thread.
 * Return: 0; -EINVAL for NULL arguments or a zero @len; -ERANGE if the
 * name (with its NUL) does not fit (@buf then holds a truncated copy).
 */
HETMEM_API int hetmem_dma_buf_get_name(struct dma_buf *dmabuf, char *buf,
				       size_t len)
{
	size_t n;

	if (!dmabuf || !buf || !len)
		return -EINVAL;
	hetmem_spin_lock(&dmabuf->name_lock);
	n = strlen(dmabuf->name);
	snprintf(buf, len, "%s", dmabuf->name);
	hetmem_spin_unlock(&dmabuf->name_lock);
	return n < len ? 0 : -ERANGE;
}

/**
 * sg_alloc_table() - allocate the entries of a table
 * @table: the table, filled in
 * @nents: number of entries, non-zero
 * @gfp_mask: accepted and ignored
 *
 * Entries start zeroed; @nents and @orig_nents are both set to @nents.
 *
 * Context: Any thread that may allocate.
 * Return: 0; -EINVAL for a NULL @table or zero @nents; -ENOMEM.
 */
HETMEM_API int sg_alloc_table(struct sg_table *table, unsigned int nents,
			      unsigned int gfp_mask)
{
	(void)gfp_mask;
	if (!table || !nents)
		return -EINVAL;
	table->sgl = calloc(nents, sizeof(*table->sgl));
	if (!table->sgl)
		return -ENOMEM;
	table->nents = nents;
	table->orig_nents = nents;
	return 0;
}

/**
 * sg_free_table() - free the entries of a table
 * @table: the table, or NULL; the structure itself is the caller's
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void sg_free_table(struct sg_table *table)
{
	if (!table)
		return;
	free(table->sgl);
	table->sgl = NULL;
	table->nents = 0;
	table->orig_nents = 0;
}

/* Largest entry: page aligned and representable in an unsigned int. */
#define DMA_BUF_SG_CHUNK (1u << 30)

static int dma_buf_memfd_prot(struct dma_buf *dmabuf)
{
	int fl = fcntl(dmabuf->file, F_GETFL);

	if (fl >= 0 && (fl & O_ACCMODE) == O_RDWR)
		return PROT_READ | PROT_WRITE;
	return PROT_READ;
}

static void dma_buf_sg_fill(struct sg_table *sgt, char *base, size_t size)
{
	unsigned int i;

	for (i = 0; i < sgt->nents; i++) {
		size_t off = (size_t)i * DMA_BUF_SG_CHUNK;
		size_t len = size - off < DMA_BUF_SG_CHUNK ? size - off : DMA_BUF_SG_CHUNK;

		sgt->sgl[i].length = (unsigned int)len;
		sgt->sgl[i].dma_length = (unsigned int)len;
		sgt->sgl[i].dma_address = (uint64_t)(uintptr_t)(base + off);
	}
}

/**
 * hetmem_dma_buf_map_memfd() - map_dma_buf op for memfd-backed buffers
 * @attach: the attachment
 * @dir: direction; DMA_NONE is refused
 *
 * Maps the whole memfd MAP_SHARED (writable if its descriptor is O_RDWR)
 * and describes that mapping in entries of at most 1 GiB: the entries'
 * DMA addresses are process-virtual addresses that belong to the
 * returned table until hetmem_dma_buf_unmap_memfd().
 *
 * Context: Called by the core with the resv lock held; may allocate.
 * Return: a new table, or an error pointer: -EINVAL for a bad @dir;
 * -ENOMEM; mmap(2)'s errno.
 */
HETMEM_API struct sg_table *
hetmem_dma_buf_map_memfd(struct dma_buf_attachment *attach,
			 enum dma_data_direction dir)
{
	struct dma_buf *dmabuf = attach->dmabuf;
	size_t n = (dmabuf->size + DMA_BUF_SG_CHUNK - 1) / DMA_BUF_SG_CHUNK;
	struct sg_table *sgt;
	void *base;
	int ret;

	if ((unsigned int)dir >= DMA_NONE)
		return dma_buf_err_ptr(-EINVAL);
	sgt = calloc(1, sizeof(*sgt));
	if (!sgt)
		return dma_buf_err_ptr(-ENOMEM);
	ret = sg_alloc_table(sgt, (unsigned int)n, 0);
	if (ret)
		goto free_sgt;
	base = mmap(NULL, dmabuf->size, dma_buf_memfd_prot(dmabuf), MAP_SHARED,
		    dmabuf->file, 0);
	if (base == MAP_FAILED) {
		ret = -errno;
		goto free_table;
	}
	dma_buf_sg_fill(sgt, base, dmabuf->size);
	return sgt;

free_table:
	sg_free_table(sgt);
free_sgt:
	free(sgt);
	return dma_buf_err_ptr(ret);
}

/**
 * hetmem_dma_buf_unmap_memfd() - unmap_dma_buf op for memfd-backed buffers
 * @attach: the attachment
 * @sgt: a table from hetmem_dma_buf_map_memfd()
 * @dir: the direction it was mapped with
 *
 * Context: Called by the core with the resv lock held.
 * Return: nothing.
 */
HETMEM_API void hetmem_dma_buf_unmap_memfd(struct dma_buf_attachment *attach,
					   struct sg_table *sgt,
					   enum dma_data_direction dir)
{
	(void)dir;
	if (!sgt)
		return;
	if (sgt->nents)
		munmap((void *)(uintptr_t)sgt->sgl[0].dma_address,
		       attach->dmabuf->size);
	sg_free_table(sgt);
	free(sgt);
}

/**
 * hetmem_dma_buf_vmap_memfd() - vmap op for memfd-backed buffers
 * @dmabuf: the buffer
 * @map: filled with a MAP_SHARED mapping of the whole memfd
 *
 * Context: Called by the core with the resv lock held.
 * Return: 0, or mmap(2)'s negative errno.
 */
HETMEM_API int hetmem_dma_buf_vmap_memfd(struct dma_buf *dmabuf,
					 struct iosys_map *map)
{
	void *p = mmap(NULL, dmabuf->size, dma_buf_memfd_prot(dmabuf),
		       MAP_SHARED, dmabuf->file, 0);

	if (p == MAP_FAILED)
		return -errno;
	map->vaddr = p;
	map->is_iomem = false;
	return 0;
}

/**
 * hetmem_dma_buf_vunmap_memfd() - vunmap op for memfd-backed buffers
 * @dmabuf: the buffer
 * @map: a mapping from hetmem_dma_buf_vmap_memfd()
 *
 * Context: Called by the core with the resv lock held.
 * Return: nothing.
 */
HETMEM_API void hetmem_dma_buf_vunmap_memfd(struct dma_buf *dmabuf,
					    struct iosys_map *map)
{
	munmap(map->vaddr, dmabuf->size);
	map->vaddr = NULL;
}

/**
 * dma_buf_dynamic_attach() - attach a device, with move notification
 * @dmabuf: the buffer
 * @dev: the importing device
 * @importer_ops: NULL for a static importer; else move_notify is required
 * @importer_priv: stored in the attachment
 *
 * Calls the exporter's attach op (unlocked), then adds the attachment to
 * @dmabuf's list under the resv lock.
 *
 * Context: May sleep and allocate; the resv lock not held.
 * Return: the attachment, or an error pointer: -EINVAL for a NULL @dmabuf
 * or @dev, or importer ops without move_notify; -ENOMEM; the attach op's
 * error (e.g. -EBUSY).
 */
HETMEM_API struct dma_buf_attachment *
dma_buf_dynamic_attach(struct dma_buf *dmabuf, struct hetmem_device *dev,
		       const struct dma_buf_attach_ops *importer_ops,
		       void *importer_priv)
{
	struct dma_buf_attachment *attach;
	int ret;

	if (!dmabuf || !dev || (importer_ops && !importer_ops->move_notify))
		return dma_buf_err_ptr(-EINVAL);
	attach = calloc(1, sizeof(*attach));
	if (!attach)
		return dma_buf_err_ptr(-ENOMEM);
	attach->dmabuf = dmabuf;
	attach->dev = dev;
	attach->importer_ops = importer_ops;
	attach->importer_priv = importer_priv;
	attach->peer2peer = importer_ops && importer_ops->allow_peer2peer;
	if (dmabuf->ops->attach) {
		ret = dmabuf->ops->attach(dmabuf, attach);
		if (ret)
			goto free_attach;
	}
	dma_resv_lock(dmabuf->resv, NULL);
	hetmem_list_add_tail(&attach->node, &dmabuf->attachments);
	dma_resv_unlock(dmabuf->resv);
	return attach;

free_attach:
	free(attach);
	return dma_buf_err_ptr(ret);
}

/**
 * dma_buf_attach() - attach a device as a static importer
 * @dmabuf: the buffer
 * @dev: the importing device
 *
 * dma_buf_dynamic_attach() without importer ops: mappings pin a dynamic
 * exporter's buffer and wait for its KERNEL fences.
 *
 * Context: May sleep and allocate; the resv lock not held.
 * Return: as dma_buf_dynamic_attach().
 */
HETMEM_API struct dma_buf_attachment *
dma_buf_attach(struct dma_buf *dmabuf, struct hetmem_device *dev)
{
	return dma_buf_dynamic_attach(dmabuf, dev, NULL, NULL);
}

/**
 * dma_buf_detach() - detach a device
 * @dmabuf: the buffer
 * @attach: its attachment, with every mapping unmapped
 *
 * Context: May sleep; the resv lock not held.
 * Return: nothing.
 */
HETMEM_API void dma_buf_detach(struct dma_buf *dmabuf,
			       struct dma_buf_attachment *attach)
{
	if (HETMEM_WARN_ON(!dmabuf || !attach || attach->dmabuf != dmabuf))
		return;
	dma_resv_lock(dmabuf->resv, NULL);
	HETMEM_WARN(attach->map_count, "detach with %u live mappings",
		    attach->map_count);
	hetmem_list_del_init(&attach->node);
	dma_resv_unlock(dmabuf->resv);
	if (dmabuf->ops->detach)
		dmabuf->ops->detach(dmabuf, attach);
	free(attach);
}

/**
 * dma_buf_pin() - stop the exporter from moving the buffer
 * @attach: a dynamic importer's attachment
 *
 * For long-lived needs only (scan-out); never for amounts of memory a
 * user controls. A no-op when the exporter has no pin op.
 *
 * Context: The resv lock held.
 * Return: 0, or the pin op's negative errno.
 */
HETMEM_API int dma_buf_pin(struct dma_buf_attachment *attach)
{
	struct dma_buf *dmabuf;

	if (HETMEM_WARN_ON(!attach || !attach->importer_ops))
		return -EINVAL;
	dmabuf = attach->dmabuf;
	dma_resv_assert_held(dmabuf->resv);
	return dmabuf->ops->pin ? dmabuf->ops->pin(attach) : 0;
}

/**
 * dma_buf_unpin() - let the exporter move the buffer again
 * @attach: a dynamic importer's attachment, pinned
 *
 * Context: The resv lock held.
 * Return: nothing.
 */
HETMEM_API void dma_buf_unpin(struct dma_buf_attachment *attach)
{
	struct dma_buf *dmabuf;

	if (HETMEM_WARN_ON(!attach || !attach->importer_ops))
		return;
	dmabuf = attach->dmabuf;
	dma_resv_assert_held(dmabuf->resv);
	if (dmabuf->ops->unpin)
		dmabuf->ops->unpin(attach);
}

/* Static importers of a dynamic exporter pin for the mapping's life. */
static bool dma_buf_pin_on_map(struct dma_buf_attachment *attach)
{
	return attach->dmabuf->ops->pin && !attach->importer_ops;
}

/* Static importers wait for memory management (moves, clears). */
static int dma_buf_map_wait(struct dma_buf_attachment *attach)
{
	long ret;

	if (attach->importer_ops)
		return 0;
	ret = dma_resv_wait_timeout(attach->dmabuf->resv, DMA_RESV_USAGE_KERNEL,
				    true, HETMEM_MAX_SCHEDULE_TIMEOUT);
	return ret < 0 ? (int)ret : 0;
}

static struct sg_table *dma_buf_map_locked(struct dma_buf_attachment *attach,
					   enum dma_data_direction dir)
{
	const struct dma_buf_ops *ops = attach->dmabuf->ops;
	struct sg_table *sgt;
	int ret;

	if (dma_buf_pin_on_map(attach)) {
		ret = ops->pin(attach);
		if (ret)
			return dma_buf_err_ptr(ret);
	}
	sgt = ops->map_dma_buf(attach, dir);
	if (!sgt)
		sgt = dma_buf_err_ptr(-ENOMEM);
	if (hetmem_dma_buf_is_err(sgt))
		goto unpin;
	ret = dma_buf_map_wait(attach);
	if (ret)
		goto unmap;
	attach->map_count++;
	return sgt;

unmap:
	ops->unmap_dma_buf(attach, sgt, dir);
	sgt = dma_buf_err_ptr(ret);
unpin:
	if (dma_buf_pin_on_map(attach))
		ops->unpin(attach);
	return sgt;
}

/**
 * dma_buf_map_attachment() - addresses of the buffer for the device
 * @attach: the attachment
 * @dir: direction of the device's access; not DMA_NONE
 *
 * Pins a dynamic exporter's buffer first for a static importer, calls
 * map_dma_buf, then, for static importers, waits (interruptibly) for the
 * KERNEL fences. Dynamic importers wait for fences themselves.
 *
 * Context: May sleep; the resv lock held.
 * Return: the table, or an error pointer: -EINVAL for NULL @attach or a
 * bad @dir; -ENOMEM; -ERESTARTSYS if interrupted while waiting; the
 * exporter's pin or map error.
 */
HETMEM_API struct sg_table *
dma_buf_map_attachment(struct dma_buf_attachment *attach,
		       enum dma_data_direction dir)
{
	if (!attach || (unsigned int)dir >= DMA_NONE)
		return dma_buf_err_ptr(-EINVAL);
	dma_resv_assert_held(attach->dmabuf->resv);
	return dma_buf_map_locked(attach, dir);
}

/**
 * dma_buf_unmap_attachment() - give a mapping back
 * @attach: the attachment
 * @sgt: a table from dma_buf_map_attachment()
 * @dir: the direction it was mapped with
 *
 * Context: May sleep; the resv lock held.
 * Return: nothing.
 */
HETMEM_API void dma_buf_unmap_attachment(struct dma_buf_attachment *attach,
					 struct sg_table *sgt,
					 enum dma_data_direction dir)
{
	if (HETMEM_WARN_ON(!attach || !sgt || hetmem_dma_buf_is_err(sgt)))
		return;
	dma_resv_assert_held(attach->dmabuf->resv);
	if (HETMEM_WARN(!attach->map_count, "unmap without a mapping"))
		return;
	attach->dmabuf->ops->unmap_dma_buf(attach, sgt, dir);
	if (dma_buf_pin_on_map(attach))
		attach->dmabuf->ops->unpin(attach);
	attach->map_count--;
}

/**
 * dma_buf_map_attachment_unlocked() - dma_buf_map_attachment(), locking
 * @attach: the attachment
 * @dir: direction of the device's access
 *
 * Context: May sleep; the resv lock not held.
 * Return: as dma_buf_map_attachment().
 */
HETMEM_API struct sg_table *
dma_buf_map_attachment_unlocked(struct dma_buf_attachment *attach,
				enum dma_data_direction dir)
{
	struct sg_table *sgt;

	if (!attach)
		return dma_buf_err_ptr(-EINVAL);
	dma_resv_lock(attach->dmabuf->resv, NULL);
	sgt = dma_buf_map_attachment(attach, dir);
	dma_resv_unlock(attach->dmabuf->resv);
	return sgt;
}

/**
 * dma_buf_unmap_attachment_unlocked() - dma_buf_unmap_attachment(), locking
 * @attach: the attachment
 * @sgt: a table from a map call
 * @dir: the direction it was mapped with
 *
 * Context: May sleep; the resv lock not held.
 * Return: nothing.
 */
HETMEM_API void
dma_buf_unmap_attachment_unlocked(struct dma_buf_attachment *attach,
				  struct sg_table *sgt,
				  enum dma_data_direction dir)
{
	if (HETMEM_WARN_ON(!attach))
		return;
	dma_resv_lock(attach->dmabuf->resv, NULL);
	dma_buf_unmap_attachment(attach, sgt, dir);
	dma_resv_unlock(attach->dmabuf->resv);
}

/**
 * dma_buf_move_notify() - tell dynamic importers the buffer moved
 * @dmabuf: the buffer
 *
 * Calls move_notify of every dynamic attachment; static ones have the
 * buffer pinned while mapped and are skipped.
 *
 * Context: The exporter holds the resv lock.
 * Return: nothing.
 */
HETMEM_API void dma_buf_move_notify(struct dma_buf *dmabuf)
{
	struct hetmem_list_head *pos, *n;

	if (HETMEM_WARN_ON(!dmabuf))
		return;
	dma_resv_assert_held(dmabuf->resv);
	hetmem_list_for_each_safe(pos, n, &dmabuf->attachments) {
		struct dma_buf_attachment *a =
			hetmem_list_entry(pos, struct dma_buf_attachment, node);

		if (a->importer_ops)
			a->importer_ops->move_notify(a);
	}
}

/**
 * dma_buf_begin_cpu_access() - prepare CPU access, waiting for devices
 * @dmabuf: the buffer
 * @dir: DMA_FROM_DEVICE to read, DMA_TO_DEVICE or DMA_BIDIRECTIONAL to write
 *
 * Calls the exporter's begin_cpu_access op, then waits without a time
 * limit but interruptibly for the implicit fences: the writers' (and
 * KERNEL) fences for a CPU read, every fence but BOOKKEEP for a write.
 *
 * Context: May sleep; the resv lock not held.
 * Return: 0; -EINVAL for a NULL @dmabuf or DMA_NONE; -ERESTARTSYS when a
 * signal handler ran during the wait; the op's negative errno.
 */
HETMEM_API int dma_buf_begin_cpu_access(struct dma_buf *dmabuf,
					enum dma_data_direction dir)
{
	bool write = dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL;
	long ret = 0;

	if (!dmabuf || (unsigned int)dir >= DMA_NONE)
		return -EINVAL;
	if (dmabuf->ops->begin_cpu_access)
		ret = dmabuf->ops->begin_cpu_access(dmabuf, dir);
	if (ret)
		return (int)ret;
	ret = dma_resv_wait_timeout(dmabuf->resv, dma_resv_usage_rw(write),
				    true, HETMEM_MAX_SCHEDULE_TIMEOUT);
	return ret < 0 ? (int)ret : 0;
}

/**
 * dma_buf_end_cpu_access() - finish CPU access
 * @dmabuf: the buffer
 * @dir: the direction given to dma_buf_begin_cpu_access()
 *
 * Calls the exporter's end_cpu_access op; never waits.
 *
 * Context: May sleep; the resv lock not held.
 * Return: 0; -EINVAL for a NULL @dmabuf or DMA_NONE; the op's errno.
 */
HETMEM_API int dma_buf_end_cpu_access(struct dma_buf *dmabuf,
				      enum dma_data_direction dir)
{
	if (!dmabuf || (unsigned int)dir >= DMA_NONE)
		return -EINVAL;
	if (dmabuf->ops->end_cpu_access)
		return dmabuf->ops->end_cpu_access(dmabuf, dir);
	return 0;
}

/* -EOVERFLOW / -EINVAL as the kernel's bounds check on the VMA. */
static int dma_buf_mmap_check(struct dma_buf *dmabuf, size_t len,
			      unsigned long pgoff)
{
	size_t pg = dma_buf_page_size();
	size_t npages = (len + pg - 1) / pg;

	if (!len || pgoff + npages < pgoff)
		return len ? -EOVERFLOW : -EINVAL;
	if (pgoff + npages > dmabuf->size / pg)
		return -EINVAL;
	return 0;
}

/**
 * hetmem_dma_buf_mmap() - map part of a buffer for the CPU
 * @dmabuf: the buffer
 * @addr: set to the mapping, which the caller munmap()s
 * @len: length in bytes, rounded up to pages
 * @prot: PROT_* bits
 * @pgoff: offset into the buffer, in pages
 *
 * The userspace form of the kernel's dma_buf_mmap(): the range must lie
 * inside the buffer's whole pages. The core maps the memfd MAP_SHARED,
 * then calls the exporter's mmap op, undoing the mapping if it fails.
 * Bracket CPU access with dma_buf_begin/end_cpu_access().
 *
 * Context: May sleep; the resv lock not held.
 * Return: 0; -EINVAL for NULL arguments, a missing mmap op, a zero @len
 * or a range beyond the buffer; -EOVERFLOW if @pgoff + pages wraps;
 * mmap(2)'s errno (-EACCES for PROT_WRITE on a read-only descriptor);
 * the op's errno.
 */
HETMEM_API int hetmem_dma_buf_mmap(struct dma_buf *dmabuf, void **addr,
				   size_t len, int prot, unsigned long pgoff)
{
	struct hetmem_vma vma;
	int ret;

	if (!dmabuf || !addr || !dmabuf->ops->mmap)
		return -EINVAL;
	ret = dma_buf_mmap_check(dmabuf, len, pgoff);
	if (ret)
		return ret;
	vma.len = (len + dma_buf_page_size() - 1) & ~(dma_buf_page_size() - 1);
	vma.prot = prot;
	vma.pgoff = pgoff;
	vma.addr = mmap(NULL, vma.len, prot, MAP_SHARED, dmabuf->file,
			(off_t)(pgoff * dma_buf_page_size()));
	if (vma.addr == MAP_FAILED)
		return -errno;
	ret = dmabuf->ops->mmap(dmabuf, &vma);
	if (ret) {
		munmap(vma.addr, vma.len);
		return ret;
	}
	*addr = vma.addr;
	return 0;
}

/**
 * dma_buf_vmap() - a CPU mapping of the whole buffer, shared by users
 * @dmabuf: the buffer
 * @map: filled with the mapping
 *
 * The exporter's vmap op runs for the first user only; later users get
 * the same mapping. Bracket access with begin/end_cpu_access.
 *
 * Context: The resv lock held.
 * Return: 0; -EINVAL for NULL arguments or no vmap op; the op's errno.
 */
HETMEM_API int dma_buf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct iosys_map ptr = { 0 };
	int ret;

	if (!dmabuf || !map || !dmabuf->ops->vmap)
		return -EINVAL;
	dma_resv_assert_held(dmabuf->resv);
	if (dmabuf->vmapping_counter) {
		dmabuf->vmapping_counter++;
		*map = dmabuf->vmap_ptr;
		return 0;
	}
	ret = dmabuf->ops->vmap(dmabuf, &ptr);
	if (ret)
		return ret;
	dmabuf->vmap_ptr = ptr;
	dmabuf->vmapping_counter = 1;
	*map = ptr;
	return 0;
}

/**
 * dma_buf_vunmap() - drop a user of the shared CPU mapping
 * @dmabuf: the buffer
 * @map: the mapping dma_buf_vmap() returned
 *
 * Context: The resv lock held.
 * Return: nothing.
 */
HETMEM_API void dma_buf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	if (HETMEM_WARN_ON(!dmabuf || !map))
		return;
	dma_resv_assert_held(dmabuf->resv);
	if (HETMEM_WARN_ON(!dmabuf->vmapping_counter ||
			   map->vaddr != dmabuf->vmap_ptr.vaddr))
		return;
	if (--dmabuf->vmapping_counter == 0) {
		if (dmabuf->ops->vunmap)
			dmabuf->ops->vunmap(dmabuf, &dmabuf->vmap_ptr);
		dmabuf->vmap_ptr.vaddr = NULL;
	}
	map->vaddr = NULL;
}

/**
 * dma_buf_vmap_unlocked() - dma_buf_vmap(), locking
 * @dmabuf: the buffer
 * @map: filled with the mapping
 *
 * Context: May sleep; the resv lock not held.
 * Return: as dma_buf_vmap().
 */
HETMEM_API int dma_buf_vmap_unlocked(struct dma_buf *dmabuf,
				     struct iosys_map *map)
{
	int ret;

	if (!dmabuf)
		return -EINVAL;
	dma_resv_lock(dmabuf->resv, NULL);
	ret = dma_buf_vmap(dmabuf, map);
	dma_resv_unlock(dmabuf->resv);
	return ret;
}

/**
 * dma_buf_vunmap_unlocked() - dma_buf_vunmap(), locking
 * @dmabuf: the buffer
 * @map: the mapping
 *
 * Context: May sleep; the resv lock not held.
 * Return: nothing.
 */
HETMEM_API void dma_buf_vunmap_unlocked(struct dma_buf *dmabuf,
					struct iosys_map *map)
{
	if (HETMEM_WARN_ON(!dmabuf))
		return;
	dma_resv_lock(dmabuf->resv, NULL);
	dma_buf_vunmap(dmabuf, map);
	dma_resv_unlock(dmabuf->resv);
}

/**
 * hetmem_dma_buf_stats() - count the process's buffers
 * @stats: filled in
 *
 * Objects of this process only (not copies inherited over fork()).
 *
 * Context: Any thread; not with a resv lock held.
 * Return: nothing.
 */
HETMEM_API void hetmem_dma_buf_stats(struct hetmem_dma_buf_stats *stats)
{
	struct hetmem_list_head *pos, *n;
	pid_t self = getpid();

	if (HETMEM_WARN_ON(!stats))
		return;
	stats->count = 0;
	stats->total_size = 0;
	hetmem_mutex_lock(&dma_buf_list_lock);
	hetmem_list_for_each_safe(pos, n, &dma_buf_list) {
		struct dma_buf *b = hetmem_list_entry(pos, struct dma_buf, list_node);

		if (b->owner_pid != self)
			continue;
		stats->count++;
		stats->total_size += b->size;
	}
	hetmem_mutex_unlock(&dma_buf_list_lock);
}

static unsigned int dma_buf_describe_attachments(struct dma_buf *b, FILE *f)
{
	struct hetmem_list_head *pos, *n;
	unsigned int count = 0;

	fprintf(f, "\tAttached Devices:\n");
	hetmem_list_for_each_safe(pos, n, &b->attachments) {
		struct dma_buf_attachment *a =
			hetmem_list_entry(pos, struct dma_buf_attachment, node);

		fprintf(f, "\t%s\n", a->dev->name ? a->dev->name : "(unnamed)");
		count++;
	}
	fprintf(f, "Total %u devices attached\n\n", count);
	return count;
}

static void dma_buf_describe(struct dma_buf *b, FILE *f)
{
	char name[DMA_BUF_NAME_LEN];

	hetmem_dma_buf_get_name(b, name, sizeof(name));
	fprintf(f, "%08zu\t%08x\t%08x\t%08u\t%s\t%08lu\t%s\n", b->size, 0u,
		0u, hetmem_kref_read(&b->refcount), b->exp_name,
		(unsigned long)b->st_ino, name);
	dma_resv_describe(b->resv, f);
	dma_buf_describe_attachments(b, f);
}

/**
 * hetmem_dma_buf_describe_all() - list the process's buffers
 * @f: the stream
 *
 * The counterpart of the kernel's debugfs bufinfo: one line per buffer
 * (size, flags, mode, references, exporter, inode, name), its fences
 * (dma_resv_describe()), its attached devices, then the totals. Names
 * are chosen by any holder: do not trust them. The format is not ABI.
 *
 * Context: May sleep; takes each buffer's resv lock, so none may be held.
 * Return: 0; -EINVAL for a NULL @f.
 */
HETMEM_API int hetmem_dma_buf_describe_all(FILE *f)
{
	struct hetmem_list_head *pos, *n;
	unsigned long count = 0;
	size_t size = 0;
	pid_t self = getpid();

	if (!f)
		return -EINVAL;
	fprintf(f, "\nDma-buf Objects:\n");
	fprintf(f, "size\tflags\tmode\tcount\texp_name\tino\tname\n");
	hetmem_mutex_lock(&dma_buf_list_lock);
	hetmem_list_for_each_safe(pos, n, &dma_buf_list) {
		struct dma_buf *b = hetmem_list_entry(pos, struct dma_buf, list_node);

		if (b->owner_pid != self)
			continue;
		dma_resv_lock(b->resv, NULL);
		dma_buf_describe(b, f);
		dma_resv_unlock(b->resv);
		count++;
		size += b->size;
	}
	hetmem_mutex_unlock(&dma_buf_list_lock);
	fprintf(f, "\nTotal %lu objects, %zu bytes\n", count, size);
	return 0;
}
