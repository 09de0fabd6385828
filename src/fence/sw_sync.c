/* SPDX-License-Identifier: MIT */
/*
 * hetmem - sw_sync: software timelines and their descriptor interface.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hetmem/fence/sw_sync.h>

#include "fence/sync_file_internal.h"

/**
 * DOC: Timelines and points
 *
 * A timeline holds a 32-bit value, one fence context, a spinlock that is
 * the fence lock of all its points, and the list of its pending points
 * sorted by seqno (inserted by scanning from the newest end, since points
 * are usually created in increasing order). A point's signaled() op
 * compares its seqno with the value using the 32-bit wraparound rule, so
 * a point at or below the value is signalled right at creation and never
 * enters the list. Creating a point whose value equals a pending point
 * returns a new reference to that point: both sync_files then hold the
 * same fence.
 *
 * hetmem_sync_timeline_signal() advances the value (in steps of at most
 * INT_MAX, so that the wraparound comparison never sees a jump of half the
 * number space), then, under the lock and inside a fence signalling
 * section, signals the reached points in ascending order. It holds a
 * reference to each point across its signal (the dma-fence rule: a
 * callback may drop the last reference of others) and drops them after
 * unlocking. Destroying a timeline signals what is still pending with
 * -ENOENT and drops the creator's reference; points keep the object
 * alive. Deadline hints keep the earliest value; SW_SYNC_GET_DEADLINE
 * reports it.
 */

/**
 * DOC: Timeline descriptors
 *
 * sw_sync_timeline_create() returns a real close-on-exec descriptor, an
 * empty memfd whose only purpose is to be a handle (it shows in
 * /proc/PID/fd as "/memfd:sw_sync"), mapped to its timeline by a
 * process-local registry. A memfd rather than an eventfd because every
 * memfd has its own inode: a lookup compares (st_dev, st_ino) and so never
 * confuses a timeline descriptor that was closed with close(2) with a
 * later file that got the same number; such a stale timeline is destroyed
 * when its number is seen again.
 *
 * Differences from the kernel: close(2) on the descriptor is not observed
 * (call sw_sync_timeline_destroy(), which signals pending points with
 * -ENOENT as the kernel's release does); the timeline is private to the
 * process (a forked child gets a copy of the registry, whose timelines are
 * independent copies); an operation on a descriptor that is not a timeline
 * gets -ENOTTY, as ioctl(2) on another file would.
 */

#define SW_SYNC_HAS_DEADLINE_BIT DMA_FENCE_FLAG_USER_BITS

struct sync_timeline {
	struct hetmem_kref kref;
	char name[32];
	hetmem_spinlock_t lock;
	uint64_t context;
	uint32_t value;			/* atomic: read without the lock */
	struct hetmem_list_head pt_list;	/* pending points, sorted */
};

struct sync_pt {
	struct dma_fence base;		/* first: dma_fence_free() frees it */
	struct sync_timeline *obj;
	struct hetmem_list_head link;	/* in obj->pt_list while pending */
	hetmem_ktime_t deadline;	/* under obj->lock */
};

struct timeline_handle {
	struct hetmem_list_head node;
	int fd;
	uint64_t dev;
	uint64_t ino;
	struct sync_timeline *obj;
};

static struct {
	hetmem_spinlock_t lock;
	struct hetmem_list_head list;
} handles = {
	.lock = HETMEM_SPINLOCK_INIT(sw_sync_handles_lock),
	.list = HETMEM_LIST_HEAD_INIT(handles.list),
};

static const struct dma_fence_ops timeline_fence_ops;

static struct sync_pt *to_sync_pt(struct dma_fence *fence)
{
	return hetmem_container_of(fence, struct sync_pt, base);
}

/* --- the timeline object ----------------------------------------------- */

static void timeline_free(struct hetmem_kref *kref)
{
	free(hetmem_container_of(kref, struct sync_timeline, kref));
}

static void timeline_put(struct sync_timeline *obj)
{
	hetmem_kref_put(&obj->kref, timeline_free);
}

/**
 * hetmem_sync_timeline_create() - a new software timeline
 * @name: timeline name reported by its points (31 characters kept), may
 *	be NULL
 *
 * The value starts at 0, with one fresh fence context.
 *
 * Context: Any thread that may allocate.
 * Return: the timeline, or NULL when out of memory.
 */
HETMEM_API struct sync_timeline *hetmem_sync_timeline_create(const char *name)
{
	struct sync_timeline *obj = calloc(1, sizeof(*obj));

	if (!obj)
		return NULL;
	hetmem_kref_init(&obj->kref);
	hetmem_sync_strscpy(obj->name, name, sizeof(obj->name));
	hetmem_spin_lock_init(&obj->lock);
	obj->context = dma_fence_context_alloc(1);
	hetmem_list_init(&obj->pt_list);
	return obj;
}

/* --- point ops ---------------------------------------------------------- */

static const char *timeline_driver_name(struct dma_fence *fence)
{
	return "sw_sync";
}

static const char *timeline_name(struct dma_fence *fence)
{
	return to_sync_pt(fence)->obj->name;
}

static bool timeline_fence_signaled(struct dma_fence *fence)
{
	uint32_t value = __atomic_load_n(&to_sync_pt(fence)->obj->value,
					 __ATOMIC_ACQUIRE);

	return !__dma_fence_is_later(fence, fence->seqno, value);
}

static void timeline_fence_release(struct dma_fence *fence)
{
	struct sync_pt *pt = to_sync_pt(fence);
	struct sync_timeline *obj = pt->obj;

	/* Never from under the timeline lock (see the signal path). */
	hetmem_spin_lock(fence->lock);
	if (!hetmem_list_empty(&pt->link))
		hetmem_list_del_init(&pt->link);
	hetmem_spin_unlock(fence->lock);
	timeline_put(obj);
	dma_fence_free(fence);
}

static void timeline_fence_set_deadline(struct dma_fence *fence,
					hetmem_ktime_t deadline)
{
	struct sync_pt *pt = to_sync_pt(fence);
	unsigned long bit = 1UL << SW_SYNC_HAS_DEADLINE_BIT;

	hetmem_spin_lock(fence->lock);
	if (!(__atomic_load_n(&fence->flags, __ATOMIC_RELAXED) & bit) ||
	    deadline < pt->deadline)
		pt->deadline = deadline;
	__atomic_fetch_or(&fence->flags, bit, __ATOMIC_RELAXED);
	hetmem_spin_unlock(fence->lock);
}

static const struct dma_fence_ops timeline_fence_ops = {
	.get_driver_name = timeline_driver_name,
	.get_timeline_name = timeline_name,
	.signaled = timeline_fence_signaled,
	.release = timeline_fence_release,
	.set_deadline = timeline_fence_set_deadline,
};

/* --- points ------------------------------------------------------------- */

/*
 * The live pending point of @seqno (new reference), or NULL and in
 * *@after the node to insert a new point behind.
 */
static struct sync_pt *timeline_find_locked(struct sync_timeline *obj,
					    uint64_t seqno,
					    struct hetmem_list_head **after)
{
	struct hetmem_list_head *pos = obj->pt_list.prev;
	struct sync_pt *other;

	while (pos != &obj->pt_list) {
		other = hetmem_list_entry(pos, struct sync_pt, link);
		/* A point being released (count 0) is not reused. */
		if (other->base.seqno == seqno &&
		    dma_fence_get_rcu(&other->base))
			return other;
		if (!__dma_fence_is_later(&other->base, other->base.seqno,
					  seqno))
			break;
		pos = pos->prev;
	}
	*after = pos;
	return NULL;
}

static struct sync_pt *sync_pt_alloc(struct sync_timeline *obj,
				     unsigned int value)
{
	struct sync_pt *pt = calloc(1, sizeof(*pt));

	if (!pt)
		return NULL;
	hetmem_kref_get(&obj->kref);
	pt->obj = obj;
	hetmem_list_init(&pt->link);
	dma_fence_init(&pt->base, &timeline_fence_ops, &obj->lock,
		       obj->context, value);
	return pt;
}

/**
 * hetmem_sync_pt_create() - a point on a timeline
 * @obj: the timeline
 * @value: the timeline value at which the point signals
 *
 * A point at or below the current value is returned already signalled.
 * A point equal to a pending one is that one (a new reference).
 *
 * Context: Any thread that may allocate; takes the timeline lock, so not
 * from a callback of one of its points.
 * Return: a new reference, or NULL for a NULL @obj or when out of memory.
 */
HETMEM_API struct dma_fence *hetmem_sync_pt_create(struct sync_timeline *obj,
						   unsigned int value)
{
	struct hetmem_list_head *after;
	struct sync_pt *pt, *other;

	if (!obj)
		return NULL;
	pt = sync_pt_alloc(obj, value);
	if (!pt)
		return NULL;
	hetmem_spin_lock(&obj->lock);
	if (dma_fence_is_signaled_locked(&pt->base))
		goto unlock;
	other = timeline_find_locked(obj, value, &after);
	if (other) {
		hetmem_spin_unlock(&obj->lock);
		/* Never published: its release takes the lock, so drop it now. */
		dma_fence_put(&pt->base);
		return &other->base;
	}
	hetmem_list_link(&pt->link, after, after->next);
unlock:
	hetmem_spin_unlock(&obj->lock);
	return &pt->base;
}

/* Move @pt onto @done with a reference, or just unlink it if it is dying. */
static void timeline_take_locked(struct sync_pt *pt,
				 struct hetmem_list_head *done)
{
	hetmem_list_del_init(&pt->link);
	if (dma_fence_get_rcu(&pt->base))
		hetmem_list_add_tail(&pt->link, done);
}

static void timeline_signal_list_locked(struct hetmem_list_head *done,
					int error)
{
	struct hetmem_list_head *pos, *n;

	hetmem_list_for_each_safe(pos, n, done) {
		struct sync_pt *pt = hetmem_list_entry(pos, struct sync_pt, link);

		if (error && !dma_fence_test_signaled_flag(&pt->base))
			dma_fence_set_error(&pt->base, error);
		dma_fence_signal_locked(&pt->base);
	}
}

/* After unlocking: drop the references the signal path held. */
static void timeline_put_list(struct hetmem_list_head *done)
{
	struct hetmem_list_head *pos, *n;

	hetmem_list_for_each_safe(pos, n, done) {
		struct sync_pt *pt = hetmem_list_entry(pos, struct sync_pt, link);

		hetmem_list_del_init(&pt->link);
		dma_fence_put(&pt->base);
	}
}

static void timeline_signal_once(struct sync_timeline *obj, unsigned int inc)
{
	struct hetmem_list_head done, *pos, *n;
	bool cookie;

	hetmem_list_init(&done);
	cookie = dma_fence_begin_signalling();
	hetmem_spin_lock(&obj->lock);
	__atomic_store_n(&obj->value, obj->value + inc, __ATOMIC_RELEASE);
	hetmem_list_for_each_safe(pos, n, &obj->pt_list) {
		struct sync_pt *pt = hetmem_list_entry(pos, struct sync_pt, link);

		if (!timeline_fence_signaled(&pt->base))
			break;
		timeline_take_locked(pt, &done);
	}
	timeline_signal_list_locked(&done, 0);
	hetmem_spin_unlock(&obj->lock);
	dma_fence_end_signalling(cookie);
	timeline_put_list(&done);
}

/**
 * hetmem_sync_timeline_signal() - advance a timeline
 * @obj: the timeline
 * @inc: amount to add to the value (with 32-bit wraparound)
 *
 * Applied in steps of at most INT_MAX; after each step the reached points
 * are signalled in ascending order, in this thread, under the timeline
 * lock (their callbacks run there).
 *
 * Context: Any thread; takes the timeline lock, so not from a callback of
 * one of its points.
 * Return: 0, or -EINVAL for a NULL @obj.
 */
HETMEM_API int hetmem_sync_timeline_signal(struct sync_timeline *obj,
					   unsigned int inc)
{
	if (!obj)
		return -EINVAL;
	while (inc > INT_MAX) {
		timeline_signal_once(obj, INT_MAX);
		inc -= INT_MAX;
	}
	timeline_signal_once(obj, inc);
	return 0;
}

/**
 * hetmem_sync_timeline_destroy() - drop the creator's hold on a timeline
 * @obj: the timeline, may be NULL
 *
 * Every point still pending is signalled with error -ENOENT, as when the
 * kernel's sw_sync file is closed. The object is freed when its last point
 * is released; @obj must not be used by the caller afterwards.
 *
 * Context: Any thread; takes the timeline lock, so not from a callback of
 * one of its points.
 * Return: nothing.
 */
HETMEM_API void hetmem_sync_timeline_destroy(struct sync_timeline *obj)
{
	struct hetmem_list_head done, *pos, *n;
	bool cookie;

	if (!obj)
		return;
	hetmem_list_init(&done);
	cookie = dma_fence_begin_signalling();
	hetmem_spin_lock(&obj->lock);
	hetmem_list_for_each_safe(pos, n, &obj->pt_list)
		timeline_take_locked(hetmem_list_entry(pos, struct sync_pt, link),
				     &done);
	timeline_signal_list_locked(&done, -ENOENT);
	hetmem_spin_unlock(&obj->lock);
	dma_fence_end_signalling(cookie);
	timeline_put_list(&done);
	timeline_put(obj);
}

/* --- timeline descriptors ---------------------------------------------- */

static struct timeline_handle *handle_find_locked(int fd)
{
	struct hetmem_list_head *pos, *n;

	hetmem_list_for_each_safe(pos, n, &handles.list) {
		struct timeline_handle *h =
			hetmem_list_entry(pos, struct timeline_handle, node);

		if (h->fd == fd)
			return h;
	}
	return NULL;
}

static void handle_destroy(struct timeline_handle *h)
{
	if (!h)
		return;
	hetmem_sync_timeline_destroy(h->obj);
	free(h);
}

/*
 * The timeline behind @fd, with a reference: 0, -EBADF, or -ENOTTY for a
 * descriptor that is not a timeline. A registry entry whose number now
 * names another file was closed behind our back: destroy it.
 */
static int timeline_lookup(int fd, struct sync_timeline **obj)
{
	struct timeline_handle *h, *stale = NULL;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	*obj = NULL;
	hetmem_spin_lock(&handles.lock);
	h = handle_find_locked(fd);
	if (h && h->dev == st.st_dev && h->ino == st.st_ino) {
		*obj = h->obj;
		hetmem_kref_get(&h->obj->kref);
	} else if (h) {
		hetmem_list_del_init(&h->node);
		stale = h;
	}
	hetmem_spin_unlock(&handles.lock);
	handle_destroy(stale);
	return *obj ? 0 : -ENOTTY;
}

static int handle_new(struct sync_timeline *obj, int fd)
{
	struct timeline_handle *h, *stale;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	h->obj = obj;
	hetmem_spin_lock(&handles.lock);
	/* The number is new to the kernel: any entry for it is stale. */
	stale = handle_find_locked(fd);
	if (stale)
		hetmem_list_del_init(&stale->node);
	hetmem_list_add(&h->node, &handles.list);
	hetmem_spin_unlock(&handles.lock);
	handle_destroy(stale);
	return 0;
}

/**
 * sw_sync_timeline_create() - a timeline behind a descriptor
 *
 * The kernel selftests' helper (which opens debugfs sw_sync). The
 * timeline is named after the calling thread, as the kernel names it
 * after the opening task.
 *
 * Context: Any thread that may allocate.
 * Return: a close-on-exec descriptor, or -ENOMEM, -EMFILE, -ENFILE.
 */
HETMEM_API int sw_sync_timeline_create(void)
{
	char comm[17] = "";
	struct sync_timeline *obj;
	int fd, ret;

	prctl(PR_GET_NAME, comm);
	obj = hetmem_sync_timeline_create(comm);
	if (!obj)
		return -ENOMEM;
	fd = memfd_create("sw_sync", MFD_CLOEXEC);
	if (fd < 0 && errno == EMFILE && hetmem_sync_raise_nofile())
		fd = memfd_create("sw_sync", MFD_CLOEXEC);
	ret = fd < 0 ? -errno : handle_new(obj, fd);
	if (ret) {
		if (fd >= 0)
			close(fd);
		hetmem_sync_timeline_destroy(obj);
		return ret;
	}
	return fd;
}

/**
 * sw_sync_timeline_is_valid() - is this a timeline descriptor
 * @fd: the descriptor
 *
 * Context: Any thread.
 * Return: 1 if @fd is an open timeline descriptor of this process, else 0.
 */
HETMEM_API int sw_sync_timeline_is_valid(int fd)
{
	struct sync_timeline *obj;

	if (timeline_lookup(fd, &obj))
		return 0;
	timeline_put(obj);
	return 1;
}

/**
 * sw_sync_timeline_destroy() - close a timeline descriptor
 * @fd: the descriptor
 *
 * Closes @fd and, if it is a timeline of this process, destroys the
 * timeline: pending points signal with -ENOENT.
 *
 * Context: Any thread; not from a callback of one of its points.
 * Return: nothing.
 */
HETMEM_API void sw_sync_timeline_destroy(int fd)
{
	struct timeline_handle *h;
	struct stat st;

	if (fd < 0)
		return;
	h = NULL;
	if (!fstat(fd, &st)) {
		hetmem_spin_lock(&handles.lock);
		h = handle_find_locked(fd);
		if (h)
			hetmem_list_del_init(&h->node);
		hetmem_spin_unlock(&handles.lock);
	}
	close(fd);
	handle_destroy(h);
}

/**
 * sw_sync_timeline_inc() - advance a timeline descriptor's value
 * @fd: a timeline descriptor
 * @count: amount to add
 *
 * Context: Any thread; signals reached points in this thread.
 * Return: 0, -EBADF, or -ENOTTY if @fd is not a timeline.
 */
HETMEM_API int sw_sync_timeline_inc(int fd, unsigned int count)
{
	uint32_t arg = count;

	return hetmem_sw_sync_ioctl(fd, SW_SYNC_IOC_INC, &arg);
}

/**
 * sw_sync_fence_create() - a point on a timeline, as a sync_file
 * @fd: a timeline descriptor
 * @name: ignored, as by the kernel; may be NULL
 * @value: the timeline value at which the fence signals
 *
 * Context: Any thread that may allocate.
 * Return: a close-on-exec sync_file descriptor; -EBADF, -ENOTTY if @fd
 * is not a timeline, -ENOMEM, -EMFILE.
 */
HETMEM_API int sw_sync_fence_create(int fd, const char *name,
				    unsigned int value)
{
	struct sw_sync_create_fence_data data = { .value = value };
	int ret;

	hetmem_sync_strscpy(data.name, name, sizeof(data.name));
	ret = hetmem_sw_sync_ioctl(fd, SW_SYNC_IOC_CREATE_FENCE, &data);
	return ret ? ret : data.fence;
}

/**
 * sw_sync_fence_is_valid() - is this a sync_file descriptor
 * @fd: the descriptor
 *
 * Checks the type of @fd (a hetmem or kernel sync_file) without importing
 * it.
 *
 * Context: Any thread.
 * Return: 1 if @fd is an open sync_file descriptor, else 0.
 */
HETMEM_API int sw_sync_fence_is_valid(int fd)
{
	struct hetmem_sync_fd_id id;

	return !hetmem_sync_fd_identify(fd, &id);
}

/**
 * sw_sync_fence_destroy() - close a fence descriptor
 * @fd: the descriptor, ignored if negative
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void sw_sync_fence_destroy(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* --- the ioctls --------------------------------------------------------- */

static int sw_sync_ioctl_create_fence(struct sync_timeline *obj,
				      struct sw_sync_create_fence_data *data)
{
	struct dma_fence *fence = hetmem_sync_pt_create(obj, data->value);
	int fd;

	if (!fence)
		return -ENOMEM;
	fd = hetmem_sync_file_export(fence, 0);
	dma_fence_put(fence);
	if (fd < 0)
		return fd;
	data->fence = fd;
	return 0;
}

static int sw_sync_ioctl_get_deadline(struct sw_sync_get_deadline *data)
{
	unsigned long bit = 1UL << SW_SYNC_HAS_DEADLINE_BIT;
	struct dma_fence *fence;
	int ret = 0;

	if (data->deadline_ns || data->pad)
		return -EINVAL;
	fence = sync_file_get_fence(data->fence_fd);
	if (!fence)
		return -EINVAL;
	if (fence->ops != &timeline_fence_ops) {
		ret = -EINVAL;
		goto put_fence;
	}
	hetmem_spin_lock(fence->lock);
	if (__atomic_load_n(&fence->flags, __ATOMIC_RELAXED) & bit)
		data->deadline_ns = (uint64_t)to_sync_pt(fence)->deadline;
	else
		ret = -ENOENT;
	hetmem_spin_unlock(fence->lock);
put_fence:
	dma_fence_put(fence);
	return ret;
}

static int sw_sync_ioctl_dispatch(struct sync_timeline *obj,
				  unsigned long cmd, void *arg)
{
	switch (cmd) {
	case SW_SYNC_IOC_CREATE_FENCE:
		return sw_sync_ioctl_create_fence(obj, arg);
	case SW_SYNC_IOC_INC:
		return hetmem_sync_timeline_signal(obj, *(uint32_t *)arg);
	case SW_SYNC_GET_DEADLINE:
		return sw_sync_ioctl_get_deadline(arg);
	}
	return -ENOTTY;
}

/**
 * hetmem_sw_sync_ioctl() - the sw_sync ioctl(2)s on a timeline descriptor
 * @timeline_fd: from sw_sync_timeline_create()
 * @cmd: SW_SYNC_IOC_CREATE_FENCE, SW_SYNC_IOC_INC or SW_SYNC_GET_DEADLINE
 * @arg: the command's structure (a uint32_t for SW_SYNC_IOC_INC)
 *
 * CREATE_FENCE puts a close-on-exec sync_file of a new point in
 * @arg->fence. INC advances the value in INT_MAX steps. GET_DEADLINE
 * reports the earliest deadline hint set on the point behind
 * @arg->fence_fd.
 *
 * Context: Any thread that may allocate; INC signals points in this
 * thread.
 * Return: 0; -EBADF; -ENOTTY for an unknown @cmd or a descriptor that is
 * not a timeline; -EFAULT for a NULL @arg; -ENOMEM or -EMFILE from
 * CREATE_FENCE; from GET_DEADLINE -EINVAL (non-zero deadline_ns or pad, a
 * fence_fd that is not a sync_file of a sw_sync point) or -ENOENT (no
 * deadline was ever set).
 */
HETMEM_API int hetmem_sw_sync_ioctl(int timeline_fd, unsigned long cmd,
				    void *arg)
{
	struct sync_timeline *obj;
	int ret;

	ret = timeline_lookup(timeline_fd, &obj);
	if (ret)
		return ret;
	if (!arg && (cmd == SW_SYNC_IOC_CREATE_FENCE ||
		     cmd == SW_SYNC_IOC_INC || cmd == SW_SYNC_GET_DEADLINE))
		ret = -EFAULT;
	else
		ret = sw_sync_ioctl_dispatch(obj, cmd, arg);
	timeline_put(obj);
	return ret;
}
