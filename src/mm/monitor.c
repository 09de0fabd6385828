/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the address-space monitor: one userfaultfd per process, the
 * thread that reads its events and turns them into invalidations, and the
 * bookkeeping of which ranges are registered.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "mm/devmem.h"

/**
 * DOC: The monitor thread
 *
 * The kernel calls mmu notifiers from inside munmap() and friends; a
 * userspace library can only learn about those calls afterwards. hetmem
 * opens one userfaultfd per process with the non-cooperative events
 * (UNMAP, REMOVE, REMAP, FORK), registers watched ranges in write-protect
 * mode (which adds nothing to ordinary page faults: no page is ever
 * write-protected), and runs a thread that reads the events and calls
 * mmu_notifier_invalidate_range_start()/_end() for each:
 *
 *  - UNMAP (munmap, mremap shrink, MAP_FIXED over a mapping, brk shrink)
 *    -> MMU_NOTIFY_UNMAP over the range the application passed;
 *  - REMOVE (MADV_DONTNEED, MADV_FREE, MADV_REMOVE) -> MMU_NOTIFY_CLEAR;
 *  - REMAP (mremap that moves) -> MMU_NOTIFY_UNMAP of the old range: the
 *    translations a device holds for it are dead, and the new range is
 *    faulted afresh;
 *  - FORK -> MMU_NOTIFY_PROTECTION_PAGE over every watched private range,
 *    because fork write-protects private memory for copy-on-write. The
 *    child's copy of the userfaultfd is closed, which unregisters the
 *    child's ranges; a child that uses hetmem watches its own. The kernel
 *    grants EVENT_FORK only with CAP_SYS_PTRACE; without it the forking
 *    thread runs the same invalidations from a pthread_atfork() handler.
 *
 * The application thread that caused an event sleeps in the kernel until
 * the monitor reads it. Any thread that reads the userfaultfd must
 * therefore never cause an event itself, or it waits for itself: the
 * monitor allocates nothing while it runs (its bookkeeping nodes come from
 * its own mmap-ed slabs, never freed), and hetmem's own operations on
 * watched ranges (populating, reading pagemap) raise no events.
 *
 * Callbacks are driver code and may break that rule, for instance by
 * freeing memory that glibc then trims with madvise() inside a watched
 * heap. A rescue thread wakes every HETMEM_MM_RESCUE_MS; if the monitor
 * has been inside one callback since its previous look and events are
 * waiting, it reads them into a queue (releasing the stuck caller), warns
 * once, and the monitor delivers them, in order, when it gets back.
 */

/**
 * DOC: Which ranges are registered
 *
 * A range is registered with the userfaultfd (a whole mapping at a time,
 * so that registration never splits mappings) the first time
 * hmm_range_fault() walks it, and the registration is recorded as a
 * segment in an interval tree of disjoint segments, each with the
 * registration mode. UNMAP events delete segments, REMAP events copy them
 * to the new place (the kernel moves the registration with the mapping),
 * and removing the last notifier unregisters everything. A mapping is only
 * recorded if it is still the same mapping after registering: a munmap
 * racing with the registration must not leave a record for a hole that a
 * later mmap would fill unregistered. The mode field is there for the
 * migration layer, which adds missing-page registration to the
 * write-protect mode of a range.
 */

#define UFFD_WANT (UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE | \
		   UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_FORK)
#define UFFD_FEAT_WP_HUGETLBFS_SHMEM (1ULL << 12)
#define UFFD_FEAT_WP_ASYNC (1ULL << 15)
#define UFFD_FEAT_MOVE (1ULL << 16)
#define UFFD_FEAT_THREAD_ID (1ULL << 8)
#define UFFD_OPTIONAL (UFFD_FEAT_WP_HUGETLBFS_SHMEM | UFFD_FEAT_WP_ASYNC | \
		       UFFD_FEAT_MOVE | UFFD_FEAT_THREAD_ID)
#define USER_MODE_ONLY 1

#define MSG_BATCH 32
#define RESCUE_QUEUE 256
#define SEG_SLAB_BYTES (64 * 1024)
/* Segments handled per lock hold (fork reporting, mremap). */
#define SEG_BATCH 32
/* Faults kept for a later try; each faulting thread has at most one. */
#define DEFERRED_MAX 4096
/* How long fork(), or the monitor's creator, waits for hetmem's threads. */
#define HELPER_WAIT_MS 1000
/* Events first held by a parked monitor (it grows as needed). */
#define HELD_MIN 256

struct watch_seg {
	struct hetmem_interval_tree_node node;
	unsigned int mode;		/* UFFDIO_REGISTER_MODE_* */
	struct watch_seg *next_free;
};

struct seg_slab {
	struct seg_slab *next;
};

struct hetmem_mm_monitor {
	struct mm_struct *mm;
	int uffd;
	int wake_fd;
	uint64_t features;
	pthread_t thread;
	pthread_t rescuer;
	uint32_t stop;			/* futex: set to stop both threads */
	uint32_t started;		/* futex: threads inside their loops */

	uint32_t cycle_started;		/* read cycles begun */
	uint32_t cycle_done;		/* futex: read cycles delivered */
	uint32_t done_waiters;

	uint32_t dispatching;		/* inside a callback round */
	uint32_t dispatch_seq;		/* callback rounds begun */
	pthread_mutex_t rescue_lock;
	struct uffd_msg rescued[RESCUE_QUEUE];
	unsigned int nrescued;
	bool rescue_warned;

	uint32_t park_req;		/* a fork wants the monitor parked */
	uint32_t parked;		/* futex: the monitor is parked */
	struct uffd_msg *held;		/* read while parked (mmap-ed) */
	size_t held_cap;
	size_t nheld;			/* written by the monitor only */

	struct uffd_msg *deferred;	/* faults to serve again (monitor only) */
	unsigned int ndeferred;

	struct hetmem_mutex reg_lock;	/* the segment tree and pool */
	struct hetmem_rb_root_cached segs;
	struct watch_seg *free_segs;
	struct seg_slab *slabs;
};

static HETMEM_TLS_HOT bool on_monitor;

bool hetmem_mm_in_monitor(void)
{
	return on_monitor;
}

/* ---- userfaultfd ---- */

static int uffd_open_fd(char *reason, size_t len)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd,
				  O_CLOEXEC | O_NONBLOCK | USER_MODE_ONLY);
	if (fd < 0 && (errno == EPERM || errno == ENOSYS)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	if (fd < 0) {
		int err = errno;

		snprintf(reason, len, "%s", err == ENOSYS ?
			 "kernel built without userfaultfd" :
			 err == EPERM ? "userfaultfd denied (vm.unprivileged_userfaultfd=0 "
			 "and no access to /dev/userfaultfd)" : strerror(err));
		return err == ENOSYS ? -EOPNOTSUPP : -err;
	}
	return fd;
}

/*
 * Open a userfaultfd with the features in @want (0: just learn what is
 * offered). Returns the descriptor or -errno with @reason filled.
 */
int hetmem_uffd_create(uint64_t want, uint64_t *features, char *reason,
		       size_t reason_len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int fd = uffd_open_fd(reason, reason_len);

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(reason, reason_len, "UFFDIO_API refused features %#llx",
			 (unsigned long long)want);
		close(fd);
		return -EOPNOTSUPP;
	}
	/* The kernel answers with everything it offers, not what it enabled. */
	*features = want ? want : api.features;
	return fd;
}

/*
 * The monitor's descriptor. EVENT_FORK needs CAP_SYS_PTRACE; without it
 * fork is reported from a pthread_atfork() handler instead (see
 * monitor_fork_prepare()).
 */
static int uffd_open_monitor(uint64_t *features)
{
	char reason[128];
	uint64_t offered = 0, want;
	int fd = hetmem_uffd_create(0, &offered, reason, sizeof(reason));

	if (fd < 0)
		return fd;
	close(fd);
	want = UFFD_WANT & ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
	if ((offered & want) != want)
		return -EOPNOTSUPP;
	want |= offered & UFFD_OPTIONAL;
	fd = -EOPNOTSUPP;
#if defined(__SANITIZE_THREAD__)
	/*
	 * ThreadSanitizer forks its symbolizer from whichever thread first
	 * needs it, the monitor included, and holds its own locks meanwhile:
	 * a FORK event that only the monitor (or the rescue thread, blocked
	 * on those locks) can read would never be read. Fork is then
	 * reported from the pthread_atfork() handler, as without
	 * CAP_SYS_PTRACE.
	 */
	offered &= ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
#endif
	if (offered & UFFD_FEATURE_EVENT_FORK)
		fd = hetmem_uffd_create(want | UFFD_FEATURE_EVENT_FORK, features,
					reason, sizeof(reason));
	if (fd < 0)
		fd = hetmem_uffd_create(want, features, reason, sizeof(reason));
	return fd;
}

/* ---- segment bookkeeping ---- */

static struct watch_seg *seg_of(struct hetmem_interval_tree_node *node)
{
	return hetmem_container_of(node, struct watch_seg, node);
}

static bool seg_grow_pool(struct hetmem_mm_monitor *mon)
{
	struct seg_slab *slab = mmap(NULL, SEG_SLAB_BYTES, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct watch_seg *seg;
	size_t i, n;

	if (slab == MAP_FAILED)
		return false;
	slab->next = mon->slabs;
	mon->slabs = slab;
	seg = (struct watch_seg *)(slab + 1);
	n = (SEG_SLAB_BYTES - sizeof(*slab)) / sizeof(*seg);
	for (i = 0; i < n; i++) {
		seg[i].next_free = mon->free_segs;
		mon->free_segs = &seg[i];
	}
	return true;
}

static struct watch_seg *seg_alloc(struct hetmem_mm_monitor *mon)
{
	struct watch_seg *seg;

	if (!mon->free_segs && !seg_grow_pool(mon))
		return NULL;
	seg = mon->free_segs;
	mon->free_segs = seg->next_free;
	return seg;
}

static void seg_free(struct hetmem_mm_monitor *mon, struct watch_seg *seg)
{
	hetmem_interval_tree_remove(&seg->node, &mon->segs);
	seg->next_free = mon->free_segs;
	mon->free_segs = seg;
}

/* Is [start, end) covered by segments registered with at least @mode? */
static bool seg_covered(struct hetmem_mm_monitor *mon, unsigned long start,
			unsigned long end, unsigned int mode)
{
	struct hetmem_interval_tree_node *n;
	unsigned long cursor = start;

	n = hetmem_interval_tree_iter_first(&mon->segs, start, end - 1);
	for (; n; n = hetmem_interval_tree_iter_next(n, start, end - 1)) {
		if (n->start > cursor || (seg_of(n)->mode & mode) != mode)
			return false;
		if (n->last >= end - 1)
			return true;
		cursor = n->last + 1;
	}
	return false;
}

/*
 * Forget [start, end); keeps the parts of segments outside it. Each round
 * takes one overlapping segment out of the overlap, so looking the first
 * one up again is both safe while the tree changes and finite.
 */
static void seg_del(struct hetmem_mm_monitor *mon, unsigned long start,
		    unsigned long end)
{
	struct hetmem_interval_tree_node *n;

	while ((n = hetmem_interval_tree_iter_first(&mon->segs, start, end - 1))) {
		struct watch_seg *seg = seg_of(n), *tail;

		if (n->last >= end && (tail = seg_alloc(mon))) {
			tail->node.start = end;
			tail->node.last = n->last;
			tail->mode = seg->mode;
			hetmem_interval_tree_insert(&tail->node, &mon->segs);
		}
		if (n->start < start) {
			hetmem_interval_tree_remove(n, &mon->segs);
			n->last = start - 1;
			hetmem_interval_tree_insert(n, &mon->segs);
		} else {
			seg_free(mon, seg);
		}
	}
}

/* Record [start, end) as registered with @mode, replacing what was there. */
static bool seg_add(struct hetmem_mm_monitor *mon, unsigned long start,
		    unsigned long end, unsigned int mode)
{
	struct watch_seg *seg;

	seg_del(mon, start, end);
	seg = seg_alloc(mon);
	if (!seg)
		return false;
	seg->node.start = start;
	seg->node.last = end - 1;
	seg->mode = mode;
	hetmem_interval_tree_insert(&seg->node, &mon->segs);
	return true;
}

/*
 * mremap moved [from, from + len) to @to: so did its registration. Only
 * the first SEG_BATCH segments are recorded at the new place; the kernel
 * registration of the rest moved too, and the next hmm_range_fault() over
 * them registers again, which is harmless.
 */
static void seg_move(struct hetmem_mm_monitor *mon, unsigned long from,
		     unsigned long to, unsigned long len)
{
	struct hetmem_interval_tree_node *n;
	unsigned long s[SEG_BATCH], e[SEG_BATCH], m[SEG_BATCH];
	unsigned int i, k = 0;

	n = hetmem_interval_tree_iter_first(&mon->segs, from, from + len - 1);
	for (; n && k < SEG_BATCH;
	     n = hetmem_interval_tree_iter_next(n, from, from + len - 1)) {
		s[k] = (n->start > from ? n->start : from) - from + to;
		e[k] = (n->last < from + len - 1 ? n->last + 1 : from + len) - from + to;
		m[k++] = seg_of(n)->mode;
	}
	for (i = 0; i < k; i++)
		seg_add(mon, s[i], e[i], (unsigned int)m[i]);
}

static int uffd_register(struct hetmem_mm_monitor *mon, unsigned long start,
			 unsigned long end, unsigned int mode)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = mode,
	};
	int64_t deadline = hetmem_ktime_get() + 1000LL * 1000 * 1000;

	/*
	 * EBUSY right after fork: the parent's monitor has not yet closed
	 * the userfaultfd copy that still claims our mappings.
	 */
	while (ioctl(mon->uffd, UFFDIO_REGISTER, &reg)) {
		if (errno != EBUSY || hetmem_ktime_get() > deadline)
			return -errno;
		usleep(1000);
	}
	return 0;
}

/* Register for watching; -EOPNOTSUPP for a kind of mapping we cannot watch. */
static int uffd_register_watch(struct hetmem_mm_monitor *mon, unsigned long start,
			       unsigned long end, unsigned int mode)
{
	int ret = uffd_register(mon, start, end, mode);

	return ret == -EINVAL || ret == -EBUSY || ret == -EPERM ? -EOPNOTSUPP : ret;
}

/* [start, end) is still mapped by one mapping (registration may split). */
static bool still_mapped(struct mm_struct *mm, unsigned long start,
			 unsigned long end)
{
	struct hetmem_vma now;

	return hetmem_vma_find(mm, start, &now) == 0 && now.start <= start &&
	       now.end >= end;
}

/* Register the unregistered part [start, end) of a mapping, write-protect mode. */
static int watch_gap(struct mm_struct *mm, struct hetmem_mm_monitor *mon,
		     unsigned long start, unsigned long end)
{
	int ret = uffd_register_watch(mon, start, end, UFFDIO_REGISTER_MODE_WP);

	if (ret)
		return ret;
	if (!still_mapped(mm, start, end))
		return 0;
	if (!seg_add(mon, start, end, UFFDIO_REGISTER_MODE_WP))
		return -ENOMEM;
	__atomic_fetch_add(&mm->stats.watched_bytes, end - start, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Parts of the mapping may already be registered, in missing mode by
 * migration: only the gaps between recorded segments are registered, so
 * that a missing-mode window never loses its mode.
 */
int hetmem_mm_watch_range(struct mm_struct *mm, const struct hetmem_vma *vma,
			  unsigned long start, unsigned long end)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);
	unsigned long gs[SEG_BATCH + 1], ge[SEG_BATCH + 1], cursor = vma->start;
	struct hetmem_interval_tree_node *n;
	unsigned int i, k = 0;
	int ret = 0;

	if (!mon)
		return -EOPNOTSUPP;
	hetmem_mutex_lock(&mon->reg_lock);
	if (seg_covered(mon, start, end, UFFDIO_REGISTER_MODE_WP))
		goto out_unlock;
	n = hetmem_interval_tree_iter_first(&mon->segs, vma->start, vma->end - 1);
	for (; n && k < SEG_BATCH;
	     n = hetmem_interval_tree_iter_next(n, vma->start, vma->end - 1)) {
		if (n->start > cursor) {
			gs[k] = cursor;
			ge[k++] = n->start;
		}
		cursor = n->last + 1;
	}
	if (cursor < vma->end) {
		gs[k] = cursor;
		ge[k++] = vma->end;
	}
	for (i = 0; i < k && !ret; i++)
		ret = watch_gap(mm, mon, gs[i], ge[i]);
out_unlock:
	hetmem_mutex_unlock(&mon->reg_lock);
	return ret;
}

/*
 * The 2 MiB windows around [start, end), clipped to the mapping holding
 * @start. Not the whole mapping: anonymous mappings merge with their
 * neighbours (malloc arenas, a sanitizer's allocator), and a never-touched
 * page there that the monitor thread itself touched would fault to the
 * monitor, which cannot serve its own fault. A window may split the
 * mapping, which the kernel never does: drivers look mappings up per
 * batch and clip to them, as the kernel's test device does.
 */
int hetmem_mm_watch_missing(struct mm_struct *mm, unsigned long start,
			    unsigned long end)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);
	unsigned int mode = UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MISSING;
	unsigned long s = start & ~(HETMEM_PMD_SIZE - 1);
	unsigned long e = (end + HETMEM_PMD_SIZE - 1) & ~(HETMEM_PMD_SIZE - 1);
	struct hetmem_vma vma;
	int ret = 0;

	if (!mon)
		return -EOPNOTSUPP;
	/* Watched already (the usual case): no need to ask for the mapping. */
	hetmem_mutex_lock(&mon->reg_lock);
	if (start < end && seg_covered(mon, start, end, mode)) {
		hetmem_mutex_unlock(&mon->reg_lock);
		return 0;
	}
	hetmem_mutex_unlock(&mon->reg_lock);
	if (hetmem_vma_find(mm, start, &vma) || vma.start > start)
		return -EFAULT;
	s = s < vma.start ? vma.start : s;
	e = e > vma.end ? vma.end : e;
	hetmem_mutex_lock(&mon->reg_lock);
	if (seg_covered(mon, s, e, mode))
		goto out_unlock;
	ret = uffd_register_watch(mon, s, e, mode);
	if (!ret && still_mapped(mm, s, e) && !seg_add(mon, s, e, mode))
		ret = -ENOMEM;
out_unlock:
	hetmem_mutex_unlock(&mon->reg_lock);
	return ret;
}

int hetmem_mm_uffd(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);

	return mon ? mon->uffd : -1;
}

uint64_t hetmem_mm_uffd_features(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);

	return mon ? mon->features : 0;
}

void hetmem_mm_kick(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);

	/* Only deferred faults wait for a kick; a fault deferred just after
	 * this check is retried by the monitor's 1 ms poll timeout. */
	if (mon && !on_monitor && __atomic_load_n(&mon->ndeferred, __ATOMIC_ACQUIRE))
		eventfd_write(mon->wake_fd, 1);
}

/*
 * Missing-mode segments stay registered: the holes they contain stand for
 * pages in device memory, and unregistering would turn them into zeros.
 */
void hetmem_mm_unwatch_all(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);
	struct hetmem_interval_tree_node *n;
	uint64_t notifiers;

	if (!mon)
		return;
	hetmem_mutex_lock(&mon->reg_lock);
	hetmem_spin_lock(&mm->lock);
	notifiers = mm->nr_notifiers;
	hetmem_spin_unlock(&mm->lock);
	n = notifiers ? NULL : hetmem_interval_tree_iter_first(&mon->segs, 0, ULONG_MAX);
	while (n) {
		struct hetmem_interval_tree_node *next =
			hetmem_interval_tree_iter_next(n, 0, ULONG_MAX);
		struct uffdio_range r = { n->start, n->last - n->start + 1 };

		if (!(seg_of(n)->mode & UFFDIO_REGISTER_MODE_MISSING)) {
			ioctl(mon->uffd, UFFDIO_UNREGISTER, &r);	/* gone is fine */
			seg_free(mon, seg_of(n));
		}
		n = next;
	}
	if (!notifiers)
		__atomic_store_n(&mm->stats.watched_bytes, 0, __ATOMIC_RELAXED);
	hetmem_mutex_unlock(&mon->reg_lock);
}

/* ---- events ---- */

static void invalidate(struct hetmem_mm_monitor *mon,
		       enum mmu_notifier_event event,
		       unsigned long start, unsigned long end)
{
	struct mmu_notifier_range range;

	if (end <= start)
		return;
	mmu_notifier_range_init(&range, event, 0, mon->mm, start, end);
	__atomic_fetch_add(&mon->dispatch_seq, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&mon->dispatching, 1, __ATOMIC_RELEASE);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
	__atomic_store_n(&mon->dispatching, 0, __ATOMIC_RELEASE);
}

static void count_event(struct hetmem_mm_monitor *mon, unsigned int which)
{
	__atomic_fetch_add(&mon->mm->stats.events[which], 1, __ATOMIC_RELAXED);
}

/* Collect up to SEG_BATCH watched segments at or after @from. */
static unsigned int fork_collect(struct hetmem_mm_monitor *mon, unsigned long from,
				 unsigned long *s, unsigned long *e)
{
	struct hetmem_interval_tree_node *n;
	unsigned int k = 0;

	hetmem_mutex_lock(&mon->reg_lock);
	n = hetmem_interval_tree_iter_first(&mon->segs, from, ULONG_MAX);
	for (; n && k < SEG_BATCH; n = hetmem_interval_tree_iter_next(n, from, ULONG_MAX)) {
		s[k] = n->start;
		e[k++] = n->last + 1;
	}
	hetmem_mutex_unlock(&mon->reg_lock);
	return k;
}

static bool range_is_shared(struct mm_struct *mm, unsigned long start,
			    unsigned long end)
{
	struct hetmem_vma vma;

	return hetmem_vma_find(mm, start, &vma) == 0 && vma.start <= start &&
	       vma.end >= end && (vma.flags & HETMEM_VMA_SHARED);
}

/* fork write-protects every private range for copy-on-write. */
static void fork_invalidate(struct hetmem_mm_monitor *mon)
{
	unsigned long s[SEG_BATCH], e[SEG_BATCH], from = 0;
	unsigned int i, k;

	do {
		k = fork_collect(mon, from, s, e);
		for (i = 0; i < k; i++)
			if (!range_is_shared(mon->mm, s[i], e[i]))
				invalidate(mon, MMU_NOTIFY_PROTECTION_PAGE, s[i], e[i]);
		from = k ? e[k - 1] : 0;
	} while (k == SEG_BATCH && from);
}

static void handle_fork(struct hetmem_mm_monitor *mon, int child_uffd)
{
	/* Closing the child's copy unregisters the child's mappings. */
	close(child_uffd);
	fork_invalidate(mon);
}

/* Wait, a bounded time, until hetmem's threads raise *@word to @want. */
static void wait_for_helpers(uint32_t *word, uint32_t want)
{
	int64_t deadline = hetmem_ktime_get() + HELPER_WAIT_MS * 1000LL * 1000;
	uint32_t v;

	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) < want)
		if (hetmem_futex_wait(word, v, deadline, false) == -ETIMEDOUT)
			break;
}

/*
 * Without EVENT_FORK, the forking thread reports the fork itself, before
 * it happens, as the kernel does (only fork() through libc is seen). Then
 * the monitor is parked for the duration of fork(); see monitor_park().
 */
void hetmem_mm_monitor_fork_prepare(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);

	if (!mon || on_monitor)
		return;
	if (!(mon->features & UFFD_FEATURE_EVENT_FORK)) {
		count_event(mon, HETMEM_MM_EV_FORK);
		fork_invalidate(mon);
	}
	__atomic_store_n(&mon->park_req, 1, __ATOMIC_SEQ_CST);
	eventfd_write(mon->wake_fd, 1);
	/* Bounded: a callback blocked on a lock this thread holds never parks. */
	wait_for_helpers(&mon->parked, 1);
}

/* In the parent, after fork() (or its failure): let the monitor go on. */
void hetmem_mm_monitor_fork_done(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);

	if (!mon || on_monitor)
		return;
	__atomic_store_n(&mon->park_req, 0, __ATOMIC_SEQ_CST);
	eventfd_write(mon->wake_fd, 1);
}

static void handle_unmap(struct hetmem_mm_monitor *mon, unsigned long start,
			 unsigned long end)
{
	hetmem_mutex_lock(&mon->reg_lock);
	seg_del(mon, start, end);
	hetmem_mutex_unlock(&mon->reg_lock);
	invalidate(mon, MMU_NOTIFY_UNMAP, start, end);
	hetmem_devtab_unmap(mon->mm, start, end);
}

static void handle_remove(struct hetmem_mm_monitor *mon, unsigned long start,
			  unsigned long end)
{
	bool own;

	hetmem_devtab_remove(mon->mm, start, end, &own);
	if (!own)
		invalidate(mon, MMU_NOTIFY_CLEAR, start, end);
}

static void handle_remap(struct hetmem_mm_monitor *mon, unsigned long from,
			 unsigned long to, unsigned long len)
{
	hetmem_mutex_lock(&mon->reg_lock);
	seg_move(mon, from, to, len);
	hetmem_mutex_unlock(&mon->reg_lock);
	invalidate(mon, MMU_NOTIFY_UNMAP, from, from + len);
	hetmem_devtab_move(mon->mm, from, to, len);
}

/* ---- page faults (device memory) ---- */

static void defer_fault(struct hetmem_mm_monitor *mon, const struct uffd_msg *msg)
{
	if (mon->ndeferred == DEFERRED_MAX) {
		/* Cannot happen: one fault per thread. Keep the oldest. */
		HETMEM_WARN(true, "more than %d threads faulting on device memory",
			    DEFERRED_MAX);
		return;
	}
	mon->deferred[mon->ndeferred] = *msg;
	__atomic_store_n(&mon->ndeferred, mon->ndeferred + 1, __ATOMIC_RELEASE);
	hetmem_devmem_count(fault_retries, 1);
}

/* Driver code runs in fault servicing too: the rescue thread watches it. */
static int serve_fault(struct hetmem_mm_monitor *mon, const struct uffd_msg *msg)
{
	int ret;

	__atomic_fetch_add(&mon->dispatch_seq, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&mon->dispatching, 1, __ATOMIC_RELEASE);
	ret = hetmem_fault_serve(mon->mm, msg);
	__atomic_store_n(&mon->dispatching, 0, __ATOMIC_RELEASE);
	return ret;
}

static void handle_fault(struct hetmem_mm_monitor *mon, const struct uffd_msg *msg)
{
	if (serve_fault(mon, msg) == -EAGAIN)
		defer_fault(mon, msg);
}

/* Serve the deferred faults again; those still waiting stay, in order. */
static void retry_deferred(struct hetmem_mm_monitor *mon)
{
	unsigned int i, n = mon->ndeferred, kept = 0;

	for (i = 0; i < n; i++) {
		if (serve_fault(mon, &mon->deferred[i]) == -EAGAIN)
			mon->deferred[kept++] = mon->deferred[i];
	}
	/* Faults deferred while retrying were appended after n. */
	for (i = n; i < mon->ndeferred; i++)
		mon->deferred[kept++] = mon->deferred[i];
	__atomic_store_n(&mon->ndeferred, kept, __ATOMIC_RELEASE);
}

static void handle_msg(struct hetmem_mm_monitor *mon, const struct uffd_msg *msg)
{
	switch (msg->event) {
	case UFFD_EVENT_UNMAP:
		count_event(mon, HETMEM_MM_EV_UNMAP);
		handle_unmap(mon, msg->arg.remove.start, msg->arg.remove.end);
		break;
	case UFFD_EVENT_REMOVE:
		count_event(mon, HETMEM_MM_EV_REMOVE);
		handle_remove(mon, msg->arg.remove.start, msg->arg.remove.end);
		break;
	case UFFD_EVENT_REMAP:
		count_event(mon, HETMEM_MM_EV_REMAP);
		handle_remap(mon, msg->arg.remap.from, msg->arg.remap.to,
			     msg->arg.remap.len);
		break;
	case UFFD_EVENT_FORK:
		count_event(mon, HETMEM_MM_EV_FORK);
		handle_fork(mon, (int)msg->arg.fork.ufd);
		break;
	case UFFD_EVENT_PAGEFAULT:
		handle_fault(mon, msg);
		break;
	default:
		count_event(mon, HETMEM_MM_EV_OTHER);
		break;
	}
}

/* Deliver what the rescue thread read while a callback held us up. */
static void drain_rescued(struct hetmem_mm_monitor *mon)
{
	struct uffd_msg msg;

	for (;;) {
		pthread_mutex_lock(&mon->rescue_lock);
		if (!mon->nrescued) {
			pthread_mutex_unlock(&mon->rescue_lock);
			return;
		}
		msg = mon->rescued[0];
		memmove(&mon->rescued[0], &mon->rescued[1],
			--mon->nrescued * sizeof(msg));
		pthread_mutex_unlock(&mon->rescue_lock);
		handle_msg(mon, &msg);
	}
}

/*
 * Read and deliver until the queue is empty, or a fork wants the monitor
 * parked (a thread that raises events without pause keeps it non-empty).
 */
static void run_cycle(struct hetmem_mm_monitor *mon)
{
	struct uffd_msg msgs[MSG_BATCH];
	ssize_t n;
	size_t i;

	while (!__atomic_load_n(&mon->park_req, __ATOMIC_ACQUIRE)) {
		drain_rescued(mon);
		n = read(mon->uffd, msgs, sizeof(msgs));
		if (n <= 0)
			break;
		for (i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			handle_msg(mon, &msgs[i]);
	}
	drain_rescued(mon);
}

static void finish_cycle(struct hetmem_mm_monitor *mon)
{
	__atomic_store_n(&mon->cycle_done,
			 __atomic_load_n(&mon->cycle_started, __ATOMIC_RELAXED),
			 __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&mon->done_waiters, __ATOMIC_SEQ_CST))
		hetmem_futex_wake(&mon->cycle_done, INT_MAX);
}

static void drain_wake_fd(struct hetmem_mm_monitor *mon)
{
	uint64_t v;

	while (read(mon->wake_fd, &v, sizeof(v)) == sizeof(v))
		;
}

static void thread_started(struct hetmem_mm_monitor *mon)
{
	__atomic_fetch_add(&mon->started, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake(&mon->started, INT_MAX);
}

/**
 * DOC: Parking the monitor across fork()
 *
 * The child of fork() gets a copy of every lock as it was at that instant.
 * glibc takes its malloc locks around fork() for this reason, but a
 * sanitizer's allocator may not (GCC 12's AddressSanitizer does not): a
 * monitor caught inside it at fork left the lock held in the child
 * forever, and the child's own first allocation hung. So the forking
 * thread parks the monitor first, at the top of its loop where it holds
 * nothing (and the monitor's creator waits until both of hetmem's threads
 * are past their start-up, which allocates).
 *
 * A parked monitor still reads the userfaultfd, without handling anything:
 * with EVENT_FORK, fork() itself waits until its event is read, and the
 * events of other threads are released the same way. Reading releases a
 * thread that may raise the next event at once, so what is read while
 * parked has no bound but time; it goes to a buffer that grows with mmap()
 * (an allocator is exactly what a parked monitor must not call) and is
 * delivered, in order, once fork() has returned.
 */
static bool held_grow(struct hetmem_mm_monitor *mon)
{
	size_t cap = mon->held_cap ? 2 * mon->held_cap : HELD_MIN;
	struct uffd_msg *msgs = mmap(NULL, cap * sizeof(*msgs), PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (msgs == MAP_FAILED)
		return false;
	if (mon->held) {
		memcpy(msgs, mon->held, mon->nheld * sizeof(*msgs));
		munmap(mon->held, mon->held_cap * sizeof(*msgs));
	}
	mon->held = msgs;
	mon->held_cap = cap;
	return true;
}

/* Read what is waiting; false when out of memory (then deliver instead). */
static bool hold_events(struct hetmem_mm_monitor *mon)
{
	for (;;) {
		if (mon->nheld == mon->held_cap && !held_grow(mon))
			return false;
		if (read(mon->uffd, &mon->held[mon->nheld], sizeof(*mon->held)) !=
		    (ssize_t)sizeof(*mon->held))
			return true;
		__atomic_store_n(&mon->nheld, mon->nheld + 1, __ATOMIC_RELEASE);
	}
}

static void deliver_held(struct hetmem_mm_monitor *mon)
{
	size_t i;

	for (i = 0; i < mon->nheld; i++)
		handle_msg(mon, &mon->held[i]);
	__atomic_store_n(&mon->nheld, 0, __ATOMIC_RELEASE);
}

static void monitor_park(struct hetmem_mm_monitor *mon, struct pollfd *pfd)
{
	__atomic_store_n(&mon->parked, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake(&mon->parked, INT_MAX);
	while (__atomic_load_n(&mon->park_req, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&mon->stop, __ATOMIC_ACQUIRE)) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & POLLIN)
			drain_wake_fd(mon);
		if ((pfd[0].revents & POLLIN) && !hold_events(mon))
			break;
	}
	__atomic_store_n(&mon->parked, 0, __ATOMIC_RELEASE);
}

static void *monitor_main(void *arg)
{
	struct hetmem_mm_monitor *mon = arg;
	struct pollfd pfd[2] = {
		{ .fd = mon->uffd, .events = POLLIN },
		{ .fd = mon->wake_fd, .events = POLLIN },
	};

	on_monitor = true;
	thread_started(mon);
	while (!__atomic_load_n(&mon->stop, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&mon->park_req, __ATOMIC_ACQUIRE)) {
			monitor_park(mon, pfd);
			deliver_held(mon);
		} else {
			/* Deferred faults wait for a lock or an event: look
			 * again soon. */
			if (poll(pfd, 2, mon->ndeferred ? 1 : -1) < 0 && errno != EINTR)
				break;
			if (pfd[1].revents & POLLIN)
				drain_wake_fd(mon);
		}
		__atomic_fetch_add(&mon->cycle_started, 1, __ATOMIC_SEQ_CST);
		run_cycle(mon);
		finish_cycle(mon);
		if (mon->ndeferred)
			retry_deferred(mon);
	}
	return NULL;
}

/* ---- rescue ---- */

static void rescue_read(struct hetmem_mm_monitor *mon)
{
	struct pollfd pfd = { .fd = mon->uffd, .events = POLLIN };
	bool misbehaved = false;
	ssize_t n;

	if (poll(&pfd, 1, 0) != 1)
		return;
	pthread_mutex_lock(&mon->rescue_lock);
	while (mon->nrescued < RESCUE_QUEUE) {
		struct uffd_msg *msg = &mon->rescued[mon->nrescued];

		n = read(mon->uffd, msg, sizeof(*msg));
		if (n != (ssize_t)sizeof(*msg))
			break;
		/* A fork (a helper process, a sanitizer's symbolizer) is fine. */
		misbehaved |= msg->event != UFFD_EVENT_FORK &&
			       msg->event != UFFD_EVENT_PAGEFAULT;
		mon->nrescued++;
		__atomic_fetch_add(&mon->mm->stats.rescued_reads, 1, __ATOMIC_RELAXED);
	}
	/* Before the monitor can deliver them: a sync after them sees it. */
	if (misbehaved && !mon->rescue_warned) {
		mon->rescue_warned = true;
		HETMEM_WARN(true, "an invalidate callback or migrate_to_ram raised an "
			    "address-space event (munmap/madvise/free of watched memory); "
			    "rescued it");
	}
	pthread_mutex_unlock(&mon->rescue_lock);
}

static void *rescue_main(void *arg)
{
	struct hetmem_mm_monitor *mon = arg;
	uint32_t seen = 0;

	thread_started(mon);
	while (!__atomic_load_n(&mon->stop, __ATOMIC_ACQUIRE)) {
		int64_t deadline = hetmem_ktime_get() +
				   HETMEM_MM_RESCUE_MS * 1000LL * 1000;
		uint32_t seq;

		hetmem_futex_wait(&mon->stop, 0, deadline, false);
		seq = __atomic_load_n(&mon->dispatch_seq, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&mon->dispatching, __ATOMIC_ACQUIRE) && seq == seen)
			rescue_read(mon);
		seen = seq;
	}
	return NULL;
}

/* ---- lifetime ---- */

static int start_threads(struct hetmem_mm_monitor *mon)
{
	sigset_t all, old;
	int ret;

	/* Application signals must not be delivered to hetmem's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&mon->thread, NULL, monitor_main, mon);
	if (!ret) {
		ret = -pthread_create(&mon->rescuer, NULL, rescue_main, mon);
		if (ret) {
			__atomic_store_n(&mon->stop, 1, __ATOMIC_RELEASE);
			eventfd_write(mon->wake_fd, 1);
			pthread_join(mon->thread, NULL);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ret) {
		pthread_setname_np(mon->thread, "hetmem-mm");
		pthread_setname_np(mon->rescuer, "hetmem-mm-rescue");
		/*
		 * A new thread's C runtime, and a sanitizer's, allocate while
		 * it starts; a fork() in that window would hand the child an
		 * allocator lock held by a thread it does not have (see
		 * "Parking the monitor across fork()").
		 */
		wait_for_helpers(&mon->started, 2);
	}
	return ret;
}

static struct hetmem_mm_monitor *monitor_alloc(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon = calloc(1, sizeof(*mon));

	if (!mon)
		return NULL;
	mon->deferred = calloc(DEFERRED_MAX, sizeof(*mon->deferred));
	if (!mon->deferred) {
		free(mon);
		return NULL;
	}
	mon->mm = mm;
	mon->segs = HETMEM_RB_ROOT_CACHED;
	pthread_mutex_init(&mon->rescue_lock, NULL);
	hetmem_mutex_init(&mon->reg_lock);
	return mon;
}

static void monitor_free(struct hetmem_mm_monitor *mon)
{
	while (mon->slabs) {
		struct seg_slab *next = mon->slabs->next;

		munmap(mon->slabs, SEG_SLAB_BYTES);
		mon->slabs = next;
	}
	if (mon->held)
		munmap(mon->held, mon->held_cap * sizeof(*mon->held));
	pthread_mutex_destroy(&mon->rescue_lock);
	free(mon->deferred);
	free(mon);
}

static int monitor_create(struct mm_struct *mm, struct hetmem_mm_monitor **out)
{
	struct hetmem_mm_monitor *mon = monitor_alloc(mm);
	int ret;

	if (!mon)
		return -ENOMEM;
	ret = uffd_open_monitor(&mon->features);
	if (ret < 0)
		goto out_free;
	mon->uffd = ret;
	mon->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ret = mon->wake_fd < 0 ? -errno : start_threads(mon);
	if (ret)
		goto out_close;
	*out = mon;
	return 0;

out_close:
	if (mon->wake_fd >= 0)
		close(mon->wake_fd);
	close(mon->uffd);
out_free:
	monitor_free(mon);
	return ret;
}

int hetmem_mm_monitor_start(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon;
	int ret = 0;

	if (__atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE))
		return 0;
	hetmem_mutex_lock(&mm->mon_lock);
	if (!mm->mon) {
		ret = monitor_create(mm, &mon);
		if (!ret)
			__atomic_store_n(&mm->mon, mon, __ATOMIC_RELEASE);
	}
	hetmem_mutex_unlock(&mm->mon_lock);
	return ret;
}

void hetmem_mm_monitor_stop(struct mm_struct *mm)
{
	struct hetmem_mm_monitor *mon;

	hetmem_mutex_lock(&mm->mon_lock);
	mon = mm->mon;
	__atomic_store_n(&mm->mon, NULL, __ATOMIC_RELEASE);
	hetmem_mutex_unlock(&mm->mon_lock);
	if (!mon)
		return;
	__atomic_store_n(&mon->stop, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake(&mon->stop, INT_MAX);
	eventfd_write(mon->wake_fd, 1);
	pthread_join(mon->thread, NULL);
	pthread_join(mon->rescuer, NULL);
	/* Closing the userfaultfd unregisters every watched mapping. */
	close(mon->uffd);
	close(mon->wake_fd);
	monitor_free(mon);
}

/* ---- synchronisation with the event stream ---- */

static int wait_cycle(struct hetmem_mm_monitor *mon, uint32_t target,
		      int64_t deadline)
{
	int ret = 0;

	__atomic_fetch_add(&mon->done_waiters, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		uint32_t done = __atomic_load_n(&mon->cycle_done, __ATOMIC_SEQ_CST);

		if ((int32_t)(done - target) >= 0)
			break;
		ret = hetmem_futex_wait(&mon->cycle_done, done, deadline, false);
		if (ret == -ETIMEDOUT)
			break;
		ret = 0;
	}
	__atomic_fetch_sub(&mon->done_waiters, 1, __ATOMIC_RELAXED);
	return ret;
}

/* Events read but not yet delivered (rescued, or read while parked). */
static bool undelivered(struct hetmem_mm_monitor *mon)
{
	bool pending;

	if (__atomic_load_n(&mon->nheld, __ATOMIC_ACQUIRE))
		return true;
	pthread_mutex_lock(&mon->rescue_lock);
	pending = mon->nrescued;
	pthread_mutex_unlock(&mon->rescue_lock);
	return pending;
}

int hetmem_mm_sync_events(struct mm_struct *mm, int64_t deadline, bool queued)
{
	struct hetmem_mm_monitor *mon = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE);
	struct pollfd pfd = { .revents = 0 };
	uint32_t started, done;

	if (on_monitor)
		return -EDEADLK;
	if (!mon)
		return 0;
	if (queued) {
		pfd.fd = mon->uffd;
		pfd.events = POLLIN;
		poll(&pfd, 1, 0);
	}
	started = __atomic_load_n(&mon->cycle_started, __ATOMIC_SEQ_CST);
	done = __atomic_load_n(&mon->cycle_done, __ATOMIC_SEQ_CST);
	if ((pfd.revents & POLLIN) || undelivered(mon)) {
		/* A cycle that begins after this one reads what is pending. */
		eventfd_write(mon->wake_fd, 1);
		return wait_cycle(mon, started + 1, deadline);
	}
	if (done != started)
		return wait_cycle(mon, started, deadline);
	return 0;
}
