/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-buf implicit synchronisation: poll readiness and the
 * sync_file bridge to explicit synchronisation.
 */
#include <errno.h>
#include <poll.h>

#include <hetmem/buf/dma-buf.h>
#include <hetmem/fence/dma-fence-unwrap.h>
#include <hetmem/fence/sync_file.h>

/**
 * DOC: Implicit synchronisation of a dma-buf
 *
 * Every buffer's reservation object holds the fences of the device work
 * that uses it. The rules are named from the CPU's side, as in the
 * kernel: "readable" (POLLIN, DMA_BUF_SYNC_READ) means every writer is
 * done, i.e. the WRITE-usage query (writers and KERNEL fences) has
 * signalled; "writable" (POLLOUT, DMA_BUF_SYNC_WRITE) means everyone is
 * done, the READ-usage query. BOOKKEEP fences never take part. A buffer
 * without fences is ready both ways.
 *
 * poll(2) on the memfd itself is always ready, so readiness is asked with
 * hetmem_dma_buf_poll(), or made pollable by exporting a sync_file.
 * dma_buf_export_sync_file() is a snapshot: fences added later are not in
 * it. dma_buf_import_sync_file() unwraps arrays and chains and adds each
 * leaf fence, because containers do not belong in a reservation object.
 */

static bool dma_buf_sync_flags_valid(unsigned int flags)
{
	return (flags & DMA_BUF_SYNC_RW) && !(flags & ~DMA_BUF_SYNC_RW);
}

static short dma_buf_poll_ready(struct dma_buf *dmabuf, short events)
{
	short ready = 0;

	if ((events & POLLIN) &&
	    dma_resv_test_signaled(dmabuf->resv, DMA_RESV_USAGE_WRITE))
		ready |= POLLIN;
	if ((events & POLLOUT) &&
	    dma_resv_test_signaled(dmabuf->resv, DMA_RESV_USAGE_READ))
		ready |= POLLOUT;
	return ready;
}

static long dma_buf_poll_timeout(int timeout_ms)
{
	if (timeout_ms < 0)
		return HETMEM_MAX_SCHEDULE_TIMEOUT;
	return hetmem_msecs_to_jiffies((unsigned int)timeout_ms);
}

/**
 * hetmem_dma_buf_poll() - implicit-fence readiness of a buffer
 * @dmabuf: the buffer
 * @events: POLLIN (may the CPU read: writers done) and/or POLLOUT (may
 *	the CPU write: all done); other bits are ignored
 * @timeout_ms: poll(2) semantics: 0 tests once, negative waits forever
 *
 * Readiness is re-evaluated on every call (level triggered). With
 * nothing ready it waits, interruptibly, for the weakest requested
 * condition (POLLIN if asked, which never comes after POLLOUT).
 *
 * Context: May sleep unless @timeout_ms is 0; the resv lock not held.
 * Return: the ready subset of @events (> 0); 0 if nothing requested or
 * on timeout; -EINVAL for a NULL @dmabuf; -ERESTARTSYS if interrupted.
 */
HETMEM_API int hetmem_dma_buf_poll(struct dma_buf *dmabuf, short events,
				   int timeout_ms)
{
	enum dma_resv_usage usage;
	short ready;
	long ret;

	if (!dmabuf)
		return -EINVAL;
	events &= POLLIN | POLLOUT;
	ready = dma_buf_poll_ready(dmabuf, events);
	if (ready || !events || !timeout_ms)
		return ready;
	usage = (events & POLLIN) ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ;
	ret = dma_resv_wait_timeout(dmabuf->resv, usage, true,
				    dma_buf_poll_timeout(timeout_ms));
	if (ret < 0)
		return (int)ret;
	return dma_buf_poll_ready(dmabuf, events);
}

/**
 * dma_buf_export_sync_file() - snapshot the implicit fences as a sync_file
 * @dmabuf: the buffer
 * @flags: DMA_BUF_SYNC_READ (wait for writers), DMA_BUF_SYNC_WRITE or
 *	DMA_BUF_SYNC_RW (wait for everyone)
 *
 * The userspace form of DMA_BUF_IOCTL_EXPORT_SYNC_FILE. Without matching
 * fences the sync_file holds an already signalled stub fence.
 *
 * Context: Any thread that may allocate; the resv lock not held.
 * Return: a close-on-exec sync_file descriptor; -EINVAL for a NULL
 * @dmabuf or @flags not a non-empty subset of DMA_BUF_SYNC_RW; -ENOMEM;
 * -EMFILE.
 */
HETMEM_API int dma_buf_export_sync_file(struct dma_buf *dmabuf,
					unsigned int flags)
{
	struct dma_fence *fence = NULL;
	int ret;

	if (!dmabuf || !dma_buf_sync_flags_valid(flags))
		return -EINVAL;
	ret = dma_resv_get_singleton(dmabuf->resv,
				     dma_resv_usage_rw(flags & DMA_BUF_SYNC_WRITE),
				     &fence);
	if (ret)
		return ret;
	if (!fence)
		fence = dma_fence_get_stub();
	ret = hetmem_sync_file_export(fence, 0);
	dma_fence_put(fence);
	return ret;
}

static unsigned int dma_buf_count_leaves(struct dma_fence *fence)
{
	struct dma_fence_unwrap cursor;
	struct dma_fence *f;
	unsigned int n = 0;

	dma_fence_unwrap_for_each(f, &cursor, fence)
		n++;
	return n;
}

static int dma_buf_add_leaves(struct dma_buf *dmabuf, struct dma_fence *fence,
			      enum dma_resv_usage usage)
{
	struct dma_fence_unwrap cursor;
	struct dma_fence *f;
	int ret;

	dma_resv_lock(dmabuf->resv, NULL);
	ret = dma_resv_reserve_fences(dmabuf->resv, dma_buf_count_leaves(fence));
	if (!ret) {
		dma_fence_unwrap_for_each(f, &cursor, fence)
			dma_resv_add_fence(dmabuf->resv, f, usage);
	}
	dma_resv_unlock(dmabuf->resv);
	return ret;
}

/**
 * dma_buf_import_sync_file() - add a sync_file's fence as implicit fence
 * @dmabuf: the buffer
 * @flags: DMA_BUF_SYNC_WRITE (with or without READ): everyone later
 *	waits for it; DMA_BUF_SYNC_READ alone: only later writers do
 * @fd: a sync_file descriptor; not consumed, the caller closes it
 *
 * The userspace form of DMA_BUF_IOCTL_IMPORT_SYNC_FILE. Containers are
 * unwrapped and each leaf fence added with WRITE or READ usage. Does not
 * wait.
 *
 * Context: May sleep and allocate; the resv lock not held.
 * Return: 0; -EINVAL for a NULL @dmabuf, bad @flags or an @fd that is not
 * a sync_file; -ENOMEM.
 */
HETMEM_API int dma_buf_import_sync_file(struct dma_buf *dmabuf,
					unsigned int flags, int fd)
{
	enum dma_resv_usage usage;
	struct dma_fence *fence;
	int ret;

	if (!dmabuf || !dma_buf_sync_flags_valid(flags))
		return -EINVAL;
	fence = sync_file_get_fence(fd);
	if (!fence)
		return -EINVAL;
	usage = (flags & DMA_BUF_SYNC_WRITE) ? DMA_RESV_USAGE_WRITE :
					       DMA_RESV_USAGE_READ;
	ret = dma_buf_add_leaves(dmabuf, fence, usage);
	dma_fence_put(fence);
	return ret;
}
