/* SPDX-License-Identifier: MIT */
/*
 * hetmem - mmu interval notifiers: subscriptions, invalidation epochs and
 * the collision-retry protocol.
 */
#include <errno.h>
#include <limits.h>

#include "mm/internal.h"

/**
 * DOC: Sequence numbers and epochs
 *
 * The mm keeps one sequence number, invalidate_seq, that is even while no
 * invalidation touching a notifier runs. The first such invalidation makes
 * it odd; it becomes even again (+1) when the last invalidation running at
 * the same time ends, so overlapping invalidations share one odd value,
 * "the epoch". Every callback is handed that value and stores it in its
 * notifier with mmu_interval_set_seq(), under the driver's lock.
 *
 * A reader's mmu_interval_read_begin() returns the notifier's sequence;
 * if it equals the mm's (the notifier was hit in the running epoch) it
 * first sleeps until the epoch ends. mmu_interval_read_retry() then only
 * compares the notifier's sequence with what read_begin returned: any
 * callback that ran in between changed it. This is the kernel's protocol,
 * and the pitfalls it avoids (counting invalidations instead of epochs, a
 * notifier inserted during an epoch looking valid) are tested.
 *
 * The tree is never changed while an epoch runs: callbacks walk it without
 * the lock. Inserts and removals made meanwhile are queued on
 * deferred_list and applied by the invalidation that ends the epoch; a new
 * notifier is born with the epoch's sequence, so its first read_begin
 * waits, and a removal waits for the epoch to end, after which no callback
 * for that notifier can run.
 */

/**
 * DOC: Lock-dependency annotations
 *
 * Running invalidations hold the pseudo-lock inv_map of their mm (a
 * shared acquisition: they overlap and nest). Callbacks take driver locks
 * inside it, and read_begin() and remove() "might wait for" it, so a
 * driver that calls either while holding the lock its callback takes gets
 * a cycle report instead of a deadlock that only shows under load.
 */

/*
 * The mm's sequence changes under mm->lock, but waiters read it without
 * the lock: stores are atomic so that the unlocked reads are well defined.
 */
static void seq_store(struct mm_struct *mm, unsigned long seq)
{
	__atomic_store_n(&mm->invalidate_seq, seq, __ATOMIC_RELEASE);
}

#define DEFER_INSERT 1u
#define DEFER_REMOVE 2u

static void itree_insert(struct mm_struct *mm, struct mmu_interval_notifier *sub)
{
	hetmem_interval_tree_insert(&sub->interval_tree, &mm->itree);
}

static void itree_remove(struct mm_struct *mm, struct mmu_interval_notifier *sub)
{
	hetmem_interval_tree_remove(&sub->interval_tree, &mm->itree);
}

/* Apply queued inserts and removals; called with mm->lock held. */
static void apply_deferred(struct mm_struct *mm)
{
	struct mmu_interval_notifier *sub = mm->deferred_list, *next;

	for (; sub; sub = next) {
		next = sub->deferred_next;
		sub->deferred_next = NULL;
		if (sub->deferred_op == DEFER_INSERT)
			itree_insert(mm, sub);
		else
			itree_remove(mm, sub);
		sub->deferred_op = 0;
	}
	mm->deferred_list = NULL;
}

static void defer(struct mm_struct *mm, struct mmu_interval_notifier *sub,
		  unsigned int op)
{
	sub->deferred_op = op;
	sub->deferred_next = mm->deferred_list;
	mm->deferred_list = sub;
}

/* Unlink @sub from the deferred list; true if it was queued there. */
static bool undefer(struct mm_struct *mm, struct mmu_interval_notifier *sub)
{
	struct mmu_interval_notifier **pp;

	for (pp = &mm->deferred_list; *pp; pp = &(*pp)->deferred_next) {
		if (*pp == sub) {
			*pp = sub->deferred_next;
			sub->deferred_next = NULL;
			sub->deferred_op = 0;
			return true;
		}
	}
	return false;
}

/* Sleep until mm->invalidate_seq differs from @seq: the epoch ended. */
static void wait_epoch_end(struct mm_struct *mm, unsigned long seq)
{
	int64_t warn_at = hetmem_ktime_get() + 10LL * 1000 * 1000 * 1000;
	bool warned = false;
	int ret = 0;

	for (;;) {
		uint32_t e = __atomic_load_n(&mm->epoch, __ATOMIC_ACQUIRE);

		if (__atomic_load_n(&mm->invalidate_seq, __ATOMIC_ACQUIRE) != seq)
			return;
		if (ret == -ETIMEDOUT && !warned) {
			HETMEM_WARN(true, "an invalidation of this mm has run for 10 s: "
				    "a notifier callback is blocked");
			warned = true;
		}
		__atomic_fetch_add(&mm->epoch_waiters, 1, __ATOMIC_SEQ_CST);
		ret = 0;
		if (__atomic_load_n(&mm->invalidate_seq, __ATOMIC_SEQ_CST) == seq)
			ret = hetmem_futex_wait(&mm->epoch, e, warned ? -1 : warn_at,
						false);
		__atomic_fetch_sub(&mm->epoch_waiters, 1, __ATOMIC_RELAXED);
	}
}

static int insert_checks(struct mmu_interval_notifier *sub, struct mm_struct *mm,
			 unsigned long start, unsigned long length,
			 const struct mmu_interval_notifier_ops *ops)
{
	if (!sub || !mm || !ops || !ops->invalidate)
		return -EINVAL;
	if (length == 0 || start + (length - 1) < start)
		return -EOVERFLOW;
	if (HETMEM_WARN(!hetmem_mm_is_current(mm),
			"notifier insert on an address space that is gone"))
		return -EINVAL;
	return 0;
}

static void insert_sub(struct mmu_interval_notifier *sub, struct mm_struct *mm)
{
	hetmem_spin_lock(&mm->lock);
	if (mm->active_invalidate_ranges) {
		if (mm->invalidate_seq & 1)
			defer(mm, sub, DEFER_INSERT);
		else {
			seq_store(mm, mm->invalidate_seq | 1);
			itree_insert(mm, sub);
		}
		sub->invalidate_seq = mm->invalidate_seq;
	} else {
		sub->invalidate_seq = mm->invalidate_seq - 1;
		itree_insert(mm, sub);
	}
	mm->nr_notifiers++;
	hetmem_spin_unlock(&mm->lock);
}

static int do_insert(struct mmu_interval_notifier *sub, struct mm_struct *mm,
		     unsigned long start, unsigned long length,
		     const struct mmu_interval_notifier_ops *ops)
{
	int ret = insert_checks(sub, mm, start, length, ops);

	if (ret)
		return ret;
	ret = hetmem_mm_monitor_start(mm);
	if (ret)
		return ret;
	sub->ops = ops;
	sub->mm = mm;
	sub->deferred_next = NULL;
	sub->deferred_op = 0;
	sub->interval_tree.start = start;
	sub->interval_tree.last = start + (length - 1);
	mmgrab(mm);
	insert_sub(sub, mm);
	return 0;
}

/**
 * mmu_interval_notifier_insert() - subscribe to invalidations of a range
 * @interval_sub: the notifier, embedded in the caller's structure
 * @mm: the address space, normally hetmem_current_mm()
 * @start: first byte of the range (alignment is not checked)
 * @length: bytes in the range; start + length may reach the top of the
 *	address space
 * @ops: the invalidate callback (must be set)
 *
 * The first insert on an mm starts its address-space monitor. The notifier
 * is usable at once with read_begin/read_retry; inserted while an
 * invalidation runs, it counts as already invalidated, so its first
 * read_begin waits for that invalidation to end.
 *
 * Context: May sleep. Not from a notifier callback. The caller must not
 * hold the mmap lock (use mmu_interval_notifier_insert_locked() then).
 * Return: 0 on success; -EINVAL for NULL arguments, a missing callback or
 * an address space that is gone; -EOVERFLOW for an empty range or one past
 * the top of the address space; -EOPNOTSUPP when this kernel offers no
 * usable userfaultfd (the reason is in hetmem_mm_probe()); -ENOMEM; other
 * negative errnos from starting the monitor.
 */
HETMEM_API int mmu_interval_notifier_insert(struct mmu_interval_notifier *interval_sub,
					    struct mm_struct *mm,
					    unsigned long start,
					    unsigned long length,
					    const struct mmu_interval_notifier_ops *ops)
{
	return do_insert(interval_sub, mm, start, length, ops);
}

/**
 * mmu_interval_notifier_insert_locked() - insert with the mmap lock held
 * @interval_sub: the notifier
 * @mm: the address space
 * @start: first byte of the range
 * @length: bytes in the range
 * @ops: the invalidate callback
 *
 * As mmu_interval_notifier_insert(), for a caller that already holds the
 * mmap lock for writing.
 *
 * Context: May sleep; the caller holds mmap_write_lock(@mm).
 * Return: as mmu_interval_notifier_insert().
 */
HETMEM_API int mmu_interval_notifier_insert_locked(struct mmu_interval_notifier *interval_sub,
						   struct mm_struct *mm,
						   unsigned long start,
						   unsigned long length,
						   const struct mmu_interval_notifier_ops *ops)
{
	if (mm)
		mmap_assert_write_locked(mm);
	return do_insert(interval_sub, mm, start, length, ops);
}

/* Unlink @sub; returns the epoch to wait for, or 0 when none. */
static unsigned long remove_sub(struct mm_struct *mm,
				struct mmu_interval_notifier *sub)
{
	unsigned long seq = 0;

	hetmem_spin_lock(&mm->lock);
	if (mm->invalidate_seq & 1) {
		if (!undefer(mm, sub)) {
			defer(mm, sub, DEFER_REMOVE);
			seq = mm->invalidate_seq;
		}
	} else {
		itree_remove(mm, sub);
	}
	mm->nr_notifiers--;
	hetmem_spin_unlock(&mm->lock);
	return seq;
}

/**
 * mmu_interval_notifier_remove() - end a subscription
 * @interval_sub: an inserted notifier
 *
 * If an invalidation is running, the removal waits for it to end. After
 * the call no callback for @interval_sub runs or will run, and the caller
 * may free it. Removing the last notifier of an mm stops watching its
 * ranges (the application's munmap and madvise no longer cost an event).
 * In a forked child, notifiers inherited from the parent belong to the
 * parent's address space and removing them does nothing.
 *
 * Context: May sleep. Must not be called from a notifier callback or with
 * a lock held that a callback takes (reported by the dependency checker).
 * Return: nothing.
 */
HETMEM_API void mmu_interval_notifier_remove(struct mmu_interval_notifier *interval_sub)
{
	struct mm_struct *mm;
	unsigned long seq;
	bool last;

	if (!interval_sub || !interval_sub->mm)
		return;
	mm = interval_sub->mm;
	if (mm->pid != hetmem_mm_getpid())
		return;
	if (HETMEM_WARN(hetmem_mm_in_monitor(),
			"mmu_interval_notifier_remove() from a notifier callback"))
		return;
	hetmem_lockdep_might_wait_for(&mm->inv_map, HETMEM_RET_IP);
	seq = remove_sub(mm, interval_sub);
	if (seq)
		wait_epoch_end(mm, seq);
	hetmem_spin_lock(&mm->lock);
	last = mm->nr_notifiers == 0;
	hetmem_spin_unlock(&mm->lock);
	if (last)
		hetmem_mm_unwatch_all(mm);
	interval_sub->mm = NULL;
	mmdrop(mm);
}

/**
 * mmu_interval_read_begin() - start a read-side critical section
 * @interval_sub: the notifier covering the range to be read
 *
 * Returns the value to pass to hmm_range_fault() (range.notifier_seq) and
 * mmu_interval_read_retry(). If an invalidation of this notifier is
 * running, waits for it to end first; an unrelated invalidation does not
 * make it wait.
 *
 * Context: May sleep. Must not be called with the driver lock held that
 * the notifier's callback takes (a deadlock; reported by the checker).
 * Return: the sequence number.
 */
HETMEM_API unsigned long mmu_interval_read_begin(struct mmu_interval_notifier *interval_sub)
{
	struct mm_struct *mm = interval_sub->mm;
	unsigned long seq;
	bool invalidating;

	if (!mm || mm->pid != hetmem_mm_getpid())
		return __atomic_load_n(&interval_sub->invalidate_seq, __ATOMIC_ACQUIRE);
	hetmem_spin_lock(&mm->lock);
	seq = __atomic_load_n(&interval_sub->invalidate_seq, __ATOMIC_RELAXED);
	invalidating = seq == mm->invalidate_seq;
	hetmem_spin_unlock(&mm->lock);
	hetmem_lockdep_might_wait_for(&mm->inv_map, HETMEM_RET_IP);
	if (invalidating)
		wait_epoch_end(mm, seq);
	return seq;
}

/**
 * mmu_interval_read_retry() - did an invalidation collide with the read?
 * @interval_sub: the notifier passed to mmu_interval_read_begin()
 * @seq: what mmu_interval_read_begin() returned
 *
 * Call it under the driver lock that the invalidate callback takes, just
 * before making the device use what was read: that lock orders this test
 * against the callback's mmu_interval_set_seq().
 *
 * Context: Under the driver lock; never sleeps.
 * Return: true when an invalidation ran since read_begin (start over),
 * false when the result may be used.
 */
HETMEM_API bool mmu_interval_read_retry(struct mmu_interval_notifier *interval_sub,
					unsigned long seq)
{
	return __atomic_load_n(&interval_sub->invalidate_seq, __ATOMIC_RELAXED) != seq;
}

/**
 * mmu_interval_check_retry() - early, lock-free collision test
 * @interval_sub: the notifier passed to mmu_interval_read_begin()
 * @seq: what mmu_interval_read_begin() returned
 *
 * Lets long operations give up early. Only "true" is meaningful: "false"
 * proves nothing until mmu_interval_read_retry() says so under the lock.
 *
 * Context: Any; lock-free.
 * Return: true when a collision certainly happened.
 */
HETMEM_API bool mmu_interval_check_retry(struct mmu_interval_notifier *interval_sub,
					 unsigned long seq)
{
	return __atomic_load_n(&interval_sub->invalidate_seq, __ATOMIC_ACQUIRE) != seq;
}

/**
 * mmu_interval_set_seq() - record an invalidation in its notifier
 * @interval_sub: the notifier passed to the callback
 * @cur_seq: the callback's cur_seq argument
 *
 * Every invalidate callback calls it under the driver lock, except for an
 * event the driver provably ignores (its own migration), before stopping
 * device use of the range.
 *
 * Context: In an invalidate callback, under the driver lock.
 * Return: nothing.
 */
HETMEM_API void mmu_interval_set_seq(struct mmu_interval_notifier *interval_sub,
				     unsigned long cur_seq)
{
	__atomic_store_n(&interval_sub->invalidate_seq, cur_seq, __ATOMIC_RELEASE);
}

/**
 * mmu_notifier_range_init() - describe an invalidation
 * @range: the range to fill
 * @event: why
 * @flags: MMU_NOTIFIER_RANGE_BLOCKABLE is set by the start call itself;
 *	other bits are kept
 * @mm: the address space
 * @start: first byte
 * @end: one past the last byte
 *
 * Context: Any.
 * Return: nothing.
 */
HETMEM_API void mmu_notifier_range_init(struct mmu_notifier_range *range,
					enum mmu_notifier_event event,
					unsigned int flags,
					struct mm_struct *mm,
					unsigned long start,
					unsigned long end)
{
	mmu_notifier_range_init_owner(range, event, flags, mm, start, end, NULL);
}

/**
 * mmu_notifier_range_init_owner() - describe an invalidation with an owner
 * @range: the range to fill
 * @event: why (the owner matters for MMU_NOTIFY_MIGRATE and _EXCLUSIVE)
 * @flags: as for mmu_notifier_range_init()
 * @mm: the address space
 * @start: first byte
 * @end: one past the last byte
 * @owner: the device that causes the invalidation, so that it can skip it
 *
 * Context: Any.
 * Return: nothing.
 */
HETMEM_API void mmu_notifier_range_init_owner(struct mmu_notifier_range *range,
					      enum mmu_notifier_event event,
					      unsigned int flags,
					      struct mm_struct *mm,
					      unsigned long start,
					      unsigned long end,
					      void *owner)
{
	range->mm = mm;
	range->start = start;
	range->end = end;
	range->flags = flags;
	range->event = event;
	range->owner = owner;
}

/* Open the invalidation; returns the first overlapping notifier, if any. */
static struct hetmem_interval_tree_node *inv_begin(struct mm_struct *mm,
						   const struct mmu_notifier_range *range,
						   unsigned long *seq)
{
	struct hetmem_interval_tree_node *node;

	hetmem_spin_lock(&mm->lock);
	mm->active_invalidate_ranges++;
	node = hetmem_interval_tree_iter_first(&mm->itree, range->start,
					       range->end - 1);
	if (node)
		seq_store(mm, mm->invalidate_seq | 1);
	*seq = mm->invalidate_seq;
	hetmem_spin_unlock(&mm->lock);
	return node;
}

static void inv_end(struct mm_struct *mm)
{
	bool wake = false;

	hetmem_spin_lock(&mm->lock);
	if (--mm->active_invalidate_ranges == 0 && (mm->invalidate_seq & 1)) {
		seq_store(mm, mm->invalidate_seq + 1);
		apply_deferred(mm);
		__atomic_fetch_add(&mm->epoch, 1, __ATOMIC_RELEASE);
		wake = __atomic_load_n(&mm->epoch_waiters, __ATOMIC_SEQ_CST) != 0;
	}
	hetmem_spin_unlock(&mm->lock);
	if (wake)
		hetmem_futex_wake(&mm->epoch, INT_MAX);
}

/* Run the callbacks; false if a non-blockable one refused. */
static bool inv_callbacks(struct mm_struct *mm, struct hetmem_interval_tree_node *node,
			  const struct mmu_notifier_range *range, unsigned long seq)
{
	for (; node; node = hetmem_interval_tree_iter_next(node, range->start,
							    range->end - 1)) {
		struct mmu_interval_notifier *sub =
			hetmem_container_of(node, struct mmu_interval_notifier,
					    interval_tree);

		hetmem_mm_stat_inc(mm, callbacks);
		if (sub->ops->invalidate(sub, range, seq))
			continue;
		if (!HETMEM_WARN(mmu_notifier_range_blockable(range),
				 "invalidate callback returned false for a blockable range"))
			return false;
	}
	return true;
}

static bool range_usable(const struct mmu_notifier_range *range)
{
	return range && range->end > range->start &&
	       hetmem_mm_is_current(range->mm);
}

static int inv_start(struct mmu_notifier_range *range)
{
	struct mm_struct *mm = range->mm;
	struct hetmem_interval_tree_node *node;
	unsigned long seq;

	hetmem_mm_stat_inc(mm, invalidations);
	hetmem_lockdep_acquire(&mm->inv_map, 1, false, HETMEM_RET_IP);
	node = inv_begin(mm, range, &seq);
	if (!node || inv_callbacks(mm, node, range, seq))
		return 0;
	inv_end(mm);
	hetmem_lockdep_release(&mm->inv_map, HETMEM_RET_IP);
	return -EAGAIN;
}

/**
 * mmu_notifier_invalidate_range_start() - begin invalidating a range
 * @range: what is invalidated and why (see mmu_notifier_range_init())
 *
 * Runs the callback of every notifier that overlaps the range, in the
 * calling thread, before returning; a change to the CPU side of the range
 * may be made after it returns and must be followed by
 * mmu_notifier_invalidate_range_end(). hetmem's monitor calls it for the
 * application's address-space changes; the device-memory layer for
 * migrations; tests to drive the retry protocol.
 *
 * Context: May sleep (callbacks may). Not under a driver lock that a
 * callback takes. Sets MMU_NOTIFIER_RANGE_BLOCKABLE in @range->flags.
 * Return: nothing.
 */
HETMEM_API void mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range)
{
	if (HETMEM_WARN(!range_usable(range), "invalidation of an unusable range"))
		return;
	range->flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
	inv_start(range);
}

/**
 * mmu_notifier_invalidate_range_start_nonblock() - begin, without sleeping
 * @range: what is invalidated and why
 *
 * As mmu_notifier_invalidate_range_start(), with the blockable flag
 * cleared: callbacks may only try-lock and may refuse. If one refuses, the
 * invalidation is closed again and the caller must leave the range alone
 * (and must not call mmu_notifier_invalidate_range_end()).
 *
 * Context: Callbacks are told not to sleep.
 * Return: 0 when every callback completed; -EAGAIN when one refused;
 * -EINVAL for an unusable @range.
 */
HETMEM_API int mmu_notifier_invalidate_range_start_nonblock(struct mmu_notifier_range *range)
{
	if (!range_usable(range))
		return -EINVAL;
	range->flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE;
	return inv_start(range);
}

/**
 * mmu_notifier_invalidate_range_end() - finish invalidating a range
 * @range: the range passed to the matching start call
 *
 * When the last running invalidation ends, the epoch ends: readers waiting
 * in read_begin() and removals wake up, and queued inserts and removals
 * take effect.
 *
 * Context: The thread that called the start function; never sleeps.
 * Return: nothing.
 */
HETMEM_API void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range)
{
	if (!range_usable(range))
		return;
	inv_end(range->mm);
	hetmem_lockdep_release(&range->mm->inv_map, HETMEM_RET_IP);
}

/*
 * Teardown: one RELEASE over everything. The kernel sends it to the
 * notifiers of an mm that is going away; hetmem_mm_teardown() is that.
 */
void hetmem_mm_release_notifiers(struct mm_struct *mm)
{
	struct mmu_notifier_range range;

	mmu_notifier_range_init(&range, MMU_NOTIFY_RELEASE, 0, mm, 0, ULONG_MAX);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
}
