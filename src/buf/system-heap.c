/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-heaps (the memfd "system" heap and the kernel heaps of
 * /dev/dma_heap) and udmabuf (a memfd turned into a dma-buf descriptor).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include <linux/magic.h>

#include <hetmem/buf/dma-heap.h>

/**
 * DOC: System heap
 *
 * The "system" heap hands out a memfd created with MFD_CLOEXEC |
 * MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL (without MFD_NOEXEC_SEAL on kernels
 * older than 6.3, which reject it with EINVAL), truncated to the length
 * rounded up to a page and sealed with F_SEAL_SHRINK | F_SEAL_GROW: the
 * size is fixed for the life of the buffer, as a dma-buf's @size is, so
 * no holder can make another holder's mapping SIGBUS by shrinking it.
 *
 * The buffer is zero-filled by construction: every page of a fresh memfd
 * reads as zero and is only backed when first touched. Memory freed by a
 * previous buffer never reaches a new one, because pages are never
 * recycled by this library; the kernel zeroes them on reuse.
 *
 * F_SEAL_SEAL is not applied, so that the owner can still add
 * F_SEAL_FUTURE_WRITE (or F_SEAL_WRITE) before handing the buffer to
 * read-only peers; F_SEAL_WRITE is not applied because a dma-buf is
 * writable memory, and because udmabuf refuses write-sealed memfds: heap
 * buffers stay valid udmabuf sources.
 *
 * The access mode of the descriptor is fd_flags & O_ACCMODE, O_RDONLY when
 * none is given (as in the kernel). A non-O_RDWR mode is a new open file
 * description obtained by reopening /proc/self/fd/N; the read-write memfd
 * descriptor is closed before the call returns. Within one user id this is
 * not a security boundary: a process of that user can reopen the
 * read-only descriptor through /proc for writing again.
 */

/**
 * DOC: Allocation limit
 *
 * A memfd is allocated lazily: ftruncate() to a size larger than the
 * machine would succeed and fail later, at page-fault time, with SIGBUS.
 * The kernel's system heap allocates eagerly and fails with -ENOMEM
 * instead. To keep that contract, a length above hetmem_dma_heap_limit()
 * (physical memory, and RLIMIT_FSIZE, whose excess would raise SIGXFSZ) is
 * refused with -ENOMEM before anything is created. A length so large that
 * rounding it up to a page wraps to 0 is -EINVAL, as in the kernel.
 */

/**
 * DOC: Kernel heaps and udmabuf
 *
 * On first use the registry lists /dev/dma_heap once: every entry becomes
 * an extra heap named by its full path and allocates through the kernel's
 * DMA_HEAP_IOCTL_ALLOC, which validates the request itself. Likewise
 * hetmem_udmabuf_create() passes the request to /dev/udmabuf when it can
 * be opened, and only emulates it otherwise.
 */

/**
 * DOC: udmabuf emulation
 *
 * The kernel's udmabuf aliases the pages of a memfd range in a new file.
 * Userspace cannot create a file that aliases part of another, so the
 * emulation validates exactly as the kernel does (page-aligned offset and
 * size, 0 < total <= size_limit_mb, -EBADFD for a descriptor that is not a
 * shmem or hugetlbfs memfd, -EINVAL without F_SEAL_SHRINK or with a write
 * seal, -EINVAL for a range past the end of the file) and then supports
 * the one case it can represent honestly: a single range that covers the
 * whole memfd. The result is a new open file description of that memfd
 * (a reopen of /proc/self/fd/N, O_RDWR like the kernel's udmabuf file), so
 * it shares the pages but not the file offset or status flags. Any other
 * valid request fails with -EOPNOTSUPP rather than returning a copy that
 * would silently stop aliasing. Without /proc the result is a dup() of
 * the memfd descriptor. If the memfd lacks F_SEAL_GROW its size, and so
 * the size seen through the result, can still grow, where a kernel
 * udmabuf keeps the size it was created with.
 */

#define HEAP_MAX 128
#define HEAP_DEV_DIR "/dev/dma_heap"
#define HEAP_NAME_MAX (sizeof(HEAP_DEV_DIR) + NAME_MAX + 1)
#define UDMABUF_DEV "/dev/udmabuf"
#define UDMABUF_SEALS_DENIED (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

static struct {
	pthread_once_t once;
	int count;
	char names[HEAP_MAX][HEAP_NAME_MAX];
} heaps = { .once = PTHREAD_ONCE_INIT };

static uint64_t page_size(void)
{
	long sz = sysconf(_SC_PAGESIZE);

	return sz > 0 ? (uint64_t)sz : 4096;
}

static void heap_scan(void)
{
	struct dirent *de;
	DIR *dir;

	strcpy(heaps.names[0], "system");
	heaps.count = 1;
	dir = opendir(HEAP_DEV_DIR);
	if (!dir)
		return;
	while ((de = readdir(dir)) && heaps.count < HEAP_MAX) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(heaps.names[heaps.count], HEAP_NAME_MAX, "%s/%s",
			 HEAP_DEV_DIR, de->d_name);
		heaps.count++;
	}
	closedir(dir);
}

static void heap_registry(void)
{
	pthread_once(&heaps.once, heap_scan);
}

/**
 * hetmem_dma_heap_count() - number of heaps available to this process
 *
 * Heap 0 is always the memfd "system" heap; the kernel heaps found under
 * /dev/dma_heap on the first call of any heap function follow.
 *
 * Context: any; the first call lists a directory.
 * Return: the number of heaps, at least 1.
 */
int hetmem_dma_heap_count(void)
{
	heap_registry();
	return heaps.count;
}

/**
 * hetmem_dma_heap_name() - name of a heap
 * @idx: index, 0 to hetmem_dma_heap_count() - 1
 *
 * Context: any.
 * Return: "system" for heap 0, "/dev/dma_heap/<name>" for a kernel heap,
 * NULL for an index out of range. The string lives as long as the process.
 */
const char *hetmem_dma_heap_name(int idx)
{
	heap_registry();
	if (idx < 0 || idx >= heaps.count)
		return NULL;
	return heaps.names[idx];
}

static int heap_lookup(const char *heap)
{
	int i;

	heap_registry();
	for (i = 0; i < heaps.count; i++)
		if (!strcmp(heaps.names[i], heap))
			return i;
	return -1;
}

/**
 * hetmem_dma_heap_limit() - largest length the system heap accepts
 *
 * Context: any.
 * Return: the smaller of physical memory and RLIMIT_FSIZE, in bytes.
 */
uint64_t hetmem_dma_heap_limit(void)
{
	uint64_t limit = UINT64_MAX;
	struct rlimit rl;
	struct sysinfo si;

	if (!sysinfo(&si))
		limit = (uint64_t)si.totalram * (si.mem_unit ? si.mem_unit : 1);
	if (!getrlimit(RLIMIT_FSIZE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    (uint64_t)rl.rlim_cur < limit)
		limit = rl.rlim_cur;
	if (limit > INT64_MAX)
		limit = INT64_MAX;
	return limit;
}

static int set_cloexec(int fd, bool cloexec)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -errno;
	fl = cloexec ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
	if (fcntl(fd, F_SETFD, fl) < 0)
		return -errno;
	return 0;
}

/* A new open file description of @fd with access mode @accmode. */
static int reopen_fd(int fd, int accmode)
{
	char path[32];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, accmode | O_CLOEXEC);
	if (nfd < 0)
		return -errno;
	return nfd;
}

static int memfd_new(void)
{
	unsigned int flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	int fd;

	fd = memfd_create("dmabuf-system", flags | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("dmabuf-system", flags);
	if (fd < 0)
		return -errno;
	return fd;
}

static int memfd_size_and_seal(int fd, uint64_t len)
{
	if (ftruncate(fd, (off_t)len) < 0)
		return errno == EFBIG || errno == ENOSPC ? -ENOMEM : -errno;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -errno;
	return 0;
}

/* Give the read-write memfd @fd the access mode of @fd_flags. */
static int system_heap_mode(int fd, uint32_t fd_flags)
{
	int accmode = fd_flags & O_ACCMODE;

	if (accmode == O_RDWR)
		return fd;
	return reopen_fd(fd, accmode);
}

static int system_heap_allocate(uint64_t len, uint32_t fd_flags)
{
	int fd, nfd, ret;

	if (len > hetmem_dma_heap_limit())
		return -ENOMEM;
	fd = memfd_new();
	if (fd < 0)
		return fd;
	ret = memfd_size_and_seal(fd, len);
	if (ret)
		goto err_close_memfd;
	nfd = system_heap_mode(fd, fd_flags);
	if (nfd < 0) {
		ret = nfd;
		goto err_close_memfd;
	}
	if (nfd != fd)
		close(fd);
	ret = set_cloexec(nfd, fd_flags & O_CLOEXEC);
	if (ret)
		goto err_close_result;
	return nfd;

err_close_result:
	close(nfd);
	return ret;
err_close_memfd:
	close(fd);
	return ret;
}

static int system_heap_alloc(struct dma_heap_allocation_data *data)
{
	uint64_t page = page_size();
	uint64_t len;
	int fd;

	if (data->fd)
		return -EINVAL;
	if (data->fd_flags & ~(uint32_t)DMA_HEAP_VALID_FD_FLAGS)
		return -EINVAL;
	if (data->heap_flags & ~(uint64_t)DMA_HEAP_VALID_HEAP_FLAGS)
		return -EINVAL;
	len = (data->len + page - 1) & ~(page - 1);
	if (!len)
		return -EINVAL;
	fd = system_heap_allocate(len, data->fd_flags);
	if (fd < 0)
		return fd;
	data->fd = (uint32_t)fd;
	return 0;
}

static int kernel_heap_alloc(const char *path,
			     struct dma_heap_allocation_data *data)
{
	int hfd, ret = 0;

	hfd = open(path, O_RDONLY | O_CLOEXEC);
	if (hfd < 0)
		return -errno;
	if (ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, data) < 0)
		ret = -errno;
	close(hfd);
	return ret;
}

/**
 * hetmem_dma_heap_alloc() - allocate a dma-buf from a heap
 * @heap: heap name, as hetmem_dma_heap_name() gives it
 * @data: the kernel's request: @len in bytes, @fd 0 on input,
 *	@fd_flags O_CLOEXEC and an access mode, @heap_flags 0
 *
 * The DMA_HEAP_IOCTL_ALLOC of /dev/dma_heap/<name>. The length is rounded
 * up to a page; the descriptor has that size, the access mode
 * fd_flags & O_ACCMODE (O_RDONLY when none is given) and FD_CLOEXEC iff
 * O_CLOEXEC is in @fd_flags. System heap buffers are zero-filled memfds
 * sealed with F_SEAL_SHRINK | F_SEAL_GROW. On failure @data is unchanged.
 *
 * Context: process context; may block in the kernel's allocator.
 * Return: 0 with @data->fd set to the new descriptor;
 * -EFAULT if @data is NULL; -EINVAL if @heap is NULL, @data->fd is not 0,
 * @fd_flags has a bit outside DMA_HEAP_VALID_FD_FLAGS, @heap_flags is not
 * 0, or @len is 0 after rounding; -ENODEV for an unknown heap; -ENOMEM if
 * @len exceeds hetmem_dma_heap_limit() or memory runs out; -EMFILE and
 * other errors of memfd_create(2); a kernel heap's own errors.
 */
int hetmem_dma_heap_alloc(const char *heap,
			  struct dma_heap_allocation_data *data)
{
	int idx;

	if (!data)
		return -EFAULT;
	if (!heap)
		return -EINVAL;
	idx = heap_lookup(heap);
	if (idx < 0)
		return -ENODEV;
	if (idx > 0)
		return kernel_heap_alloc(heaps.names[idx], data);
	return system_heap_alloc(data);
}

/* Step 1 of the kernel's order: alignment and the size limit. */
static int udmabuf_check_range(uint64_t offset, uint64_t size,
			       uint64_t *total)
{
	uint64_t limit = (uint64_t)HETMEM_UDMABUF_SIZE_LIMIT_MB << 20;
	uint64_t mask = page_size() - 1;

	if ((offset & mask) || (size & mask))
		return -EINVAL;
	if (size > limit - *total)
		return -EINVAL;
	*total += size;
	return 0;
}

/* Step 2: a shmem or hugetlbfs memfd, F_SEAL_SHRINK, no write seal. */
static int udmabuf_check_memfd(uint32_t memfd, struct stat *st)
{
	struct statfs sfs;
	int seals;

	if (memfd > INT_MAX || fstat((int)memfd, st) < 0)
		return -EBADFD;
	if (fstatfs((int)memfd, &sfs) < 0 || !S_ISREG(st->st_mode))
		return -EBADFD;
	if (sfs.f_type != TMPFS_MAGIC && sfs.f_type != (long)HUGETLBFS_MAGIC)
		return -EBADFD;
	seals = fcntl((int)memfd, F_GET_SEALS);
	if (seals < 0)
		return -EBADFD;
	if (!(seals & F_SEAL_SHRINK) || (seals & UDMABUF_SEALS_DENIED))
		return -EINVAL;
	return 0;
}

static int udmabuf_check_item(const struct udmabuf_create_item *item,
			      struct stat *st)
{
	int ret = udmabuf_check_memfd(item->memfd, st);

	if (ret)
		return ret;
	if (item->offset > (uint64_t)st->st_size ||
	    item->size > (uint64_t)st->st_size - item->offset)
		return -EINVAL;
	return 0;
}

static int udmabuf_alias(const struct udmabuf_create_item *item,
			 const struct stat *st, uint32_t flags)
{
	bool cloexec = flags & UDMABUF_FLAGS_CLOEXEC;
	int fd, ret;

	if (item->offset || item->size != (uint64_t)st->st_size)
		return -EOPNOTSUPP;
	fd = reopen_fd((int)item->memfd, O_RDWR);
	if (fd == -ENOENT) {
		fd = fcntl((int)item->memfd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
	}
	if (fd < 0)
		return fd;
	ret = set_cloexec(fd, cloexec);
	if (ret)
		goto err_close_fd;
	return fd;

err_close_fd:
	close(fd);
	return ret;
}

static int udmabuf_emulate(const struct udmabuf_create_item *items,
			   uint32_t count, uint32_t flags)
{
	uint64_t total = 0;
	struct stat st;
	uint32_t i;
	int ret;

	for (i = 0; i < count; i++) {
		ret = udmabuf_check_range(items[i].offset, items[i].size,
					  &total);
		if (ret)
			return ret;
	}
	if (!total)
		return -EINVAL;
	for (i = 0; i < count; i++) {
		ret = udmabuf_check_item(&items[i], &st);
		if (ret)
			return ret;
	}
	if (count != 1)
		return -EOPNOTSUPP;
	return udmabuf_alias(&items[0], &st, flags);
}

/* The real device: -ENODEV if it cannot be opened, else its answer. */
static int udmabuf_device(unsigned long cmd, const void *arg)
{
	int dev, fd;

	dev = open(UDMABUF_DEV, O_RDONLY | O_CLOEXEC);
	if (dev < 0)
		return -ENODEV;
	fd = ioctl(dev, cmd, arg);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

/**
 * hetmem_udmabuf_create() - make a dma-buf descriptor from a memfd range
 * @create: the kernel's request: @memfd, @flags (UDMABUF_FLAGS_CLOEXEC;
 *	other bits are ignored, as in the kernel), page-aligned @offset and
 *	@size
 *
 * The UDMABUF_CREATE ioctl of /dev/udmabuf, passed to the device when it
 * can be opened. Otherwise emulated: see "udmabuf emulation" for what the
 * result is and which requests are supported.
 *
 * Context: process context.
 * Return: the new descriptor (O_RDWR, FD_CLOEXEC iff
 * UDMABUF_FLAGS_CLOEXEC); -EFAULT if @create is NULL; -EINVAL for a
 * misaligned @offset or @size, a @size of 0 or above size_limit_mb, a
 * memfd without F_SEAL_SHRINK or with F_SEAL_WRITE or F_SEAL_FUTURE_WRITE,
 * or a range past the end of the file; -EBADFD if @memfd is not an open
 * shmem or hugetlbfs memfd; -EOPNOTSUPP (emulation only) for a valid range
 * that does not cover the whole memfd; -EMFILE when out of descriptors.
 */
int hetmem_udmabuf_create(const struct udmabuf_create *create)
{
	struct udmabuf_create_item item;
	int ret;

	if (!create)
		return -EFAULT;
	ret = udmabuf_device(UDMABUF_CREATE, create);
	if (ret != -ENODEV)
		return ret;
	item.memfd = create->memfd;
	item.__pad = 0;
	item.offset = create->offset;
	item.size = create->size;
	return udmabuf_emulate(&item, 1, create->flags);
}

/**
 * hetmem_udmabuf_create_list() - make a dma-buf descriptor from memfd ranges
 * @head: the kernel's request: @flags as for hetmem_udmabuf_create(),
 *	@count items following the header
 *
 * The UDMABUF_CREATE_LIST ioctl of /dev/udmabuf, passed to the device when
 * it can be opened, otherwise emulated: every item is validated as the
 * kernel does, and a list of exactly one item covering a whole memfd is
 * supported.
 *
 * Context: process context.
 * Return: the new descriptor; -EFAULT if @head is NULL; -EINVAL if @count
 * exceeds list_limit (1024) or is 0, and for any item as
 * hetmem_udmabuf_create() (the size limit applies to the total);
 * -EBADFD as hetmem_udmabuf_create(); -EOPNOTSUPP (emulation only) for a
 * valid list of more than one item or of a partial range.
 */
int hetmem_udmabuf_create_list(const struct udmabuf_create_list *head)
{
	int ret;

	if (!head)
		return -EFAULT;
	if (head->count > HETMEM_UDMABUF_LIST_LIMIT)
		return -EINVAL;
	ret = udmabuf_device(UDMABUF_CREATE_LIST, head);
	if (ret != -ENODEV)
		return ret;
	return udmabuf_emulate(head->list, head->count, head->flags);
}
