/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence core.
 */
#include <pthread.h>
#include <stdlib.h>

#include "fence/internal.h"

/**
 * DOC: Signalling
 *
 * A fence signals exactly once. Under the fence lock the SIGNALED bit is
 * set with an atomic test-and-set (the loser of a race gets -EINVAL and
 * changes nothing), the callback list is detached, the timestamp stored
 * and published by the TIMESTAMP bit, and then each detached callback is
 * marked "not queued" and called, in registration order, still under the
 * lock. A reader that sees SIGNALED without TIMESTAMP spins for the few
 * instructions in between.
 *
 * The unlocked entry points first test the SIGNALED bit without the lock:
 * a signalled fence never becomes unsignalled, so "already signalled" is
 * a safe answer without it, and the common case of testing a finished
 * fence costs one load.
 */

/**
 * DOC: Waiting
 *
 * The default wait queues a private callback at the head of the list (so
 * the waiter is woken before slower callbacks run) and sleeps on a futex
 * word that the callback sets. The waiter re-takes the fence lock before
 * it returns, which both dequeues its callback and guarantees that every
 * callback of the signal has finished: a caller may free what its own
 * callbacks use as soon as the wait returns.
 *
 * Deadlines are absolute CLOCK_MONOTONIC times computed once at entry;
 * the remaining time is returned in jiffies, at least 1 for a fence that
 * signalled, as the kernel does.
 */

/**
 * DOC: Fences that may be released early
 *
 * dma_fence_get_rcu_safe() and chain walks read a fence pointer without a
 * reference. A released fence's memory therefore is freed only after an
 * RCU grace period (dma_fence_free() uses hetmem_call_rcu()), and a reader
 * that wins a reference re-checks that the slot still points at the same
 * fence, because the memory may have been reused for another fence.
 */

hetmem_spinlock_t hetmem_fence_stub_lock = HETMEM_SPINLOCK_INIT(dma_fence_stub_lock);
static uint64_t fence_context_counter = 1;

static struct hetmem_lockdep_map fence_lockdep_map =
	HETMEM_LOCKDEP_MAP_INIT("dma_fence_map", HETMEM_LOCKDEP_PSEUDO);

static inline bool fence_test_bit(struct dma_fence *fence, int bit)
{
	return __atomic_load_n(&fence->flags, __ATOMIC_ACQUIRE) & (1UL << bit);
}

static inline bool fence_test_and_set_bit(struct dma_fence *fence, int bit)
{
	unsigned long mask = 1UL << bit;

	return __atomic_fetch_or(&fence->flags, mask, __ATOMIC_ACQ_REL) & mask;
}

static inline void fence_set_bit(struct dma_fence *fence, int bit)
{
	__atomic_fetch_or(&fence->flags, 1UL << bit, __ATOMIC_RELEASE);
}

/**
 * dma_fence_context_alloc() - reserve fence contexts
 * @num: how many consecutive contexts
 *
 * Contexts start at 1; 0 belongs to the stub fences. Each process has its
 * own context space (fences imported from another process get a local
 * context, see sync_file.h).
 *
 * Context: Any thread, any context; lock-free.
 * Return: the first of @num new context numbers (warns when @num is 0).
 */
HETMEM_API uint64_t dma_fence_context_alloc(unsigned int num)
{
	HETMEM_WARN_ON(!num);
	return __atomic_fetch_add(&fence_context_counter, num,
				  __ATOMIC_RELAXED);
}

static const char *invalid_fence_name(struct dma_fence *fence)
{
	return "invalid";
}

/*
 * Substituted for a NULL lock or an incomplete ops table: the kernel
 * BUG()s there, a library must not take its caller down.
 */
static const struct dma_fence_ops invalid_fence_ops = {
	.get_driver_name = invalid_fence_name,
	.get_timeline_name = invalid_fence_name,
};
static hetmem_spinlock_t invalid_fence_lock = HETMEM_SPINLOCK_INIT(invalid_fence_lock);

static void fence_init(struct dma_fence *fence, const struct dma_fence_ops *ops,
		       hetmem_spinlock_t *lock, uint64_t context,
		       uint64_t seqno, unsigned long flags)
{
	if (HETMEM_WARN(!ops || !ops->get_driver_name ||
			!ops->get_timeline_name,
			"dma_fence_init: ops table lacks a mandatory name op"))
		ops = &invalid_fence_ops;
	if (HETMEM_WARN(!lock, "dma_fence_init: NULL lock"))
		lock = &invalid_fence_lock;
	hetmem_kref_init(&fence->refcount);
	fence->ops = ops;
	hetmem_list_init(&fence->cb_list);
	fence->lock = lock;
	fence->context = context;
	fence->seqno = seqno;
	fence->timestamp = 0;
	fence->error = 0;
	__atomic_store_n(&fence->flags, flags, __ATOMIC_RELEASE);
}

/**
 * dma_fence_init() - initialise a fence with 32-bit seqno semantics
 * @fence: the fence
 * @ops: implementation; get_driver_name and get_timeline_name are mandatory
 * @lock: spinlock for the callback list; may be shared by many fences
 * @context: timeline, from dma_fence_context_alloc()
 * @seqno: position on the timeline; later seqnos compare with 32-bit wrap
 *
 * The fence starts with one reference, no callbacks, no error. A missing
 * mandatory op or a NULL lock is reported with a warning and replaced by a
 * placeholder instead of crashing (the kernel BUG()s).
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void dma_fence_init(struct dma_fence *fence,
			       const struct dma_fence_ops *ops,
			       hetmem_spinlock_t *lock, uint64_t context,
			       uint64_t seqno)
{
	fence_init(fence, ops, lock, context, seqno, 0);
}

/**
 * dma_fence_init64() - initialise a fence with 64-bit seqno semantics
 * @fence: the fence
 * @ops: implementation; get_driver_name and get_timeline_name are mandatory
 * @lock: spinlock for the callback list; may be shared by many fences
 * @context: timeline, from dma_fence_context_alloc()
 * @seqno: position on the timeline, compared as plain 64-bit numbers
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void dma_fence_init64(struct dma_fence *fence,
				 const struct dma_fence_ops *ops,
				 hetmem_spinlock_t *lock, uint64_t context,
				 uint64_t seqno)
{
	fence_init(fence, ops, lock, context, seqno,
		   1UL << DMA_FENCE_FLAG_SEQNO64_BIT);
}

/**
 * dma_fence_begin_signalling() - open a fence signalling critical section
 *
 * Marks code that must run for some fence to complete. Inside it the
 * checker reports fence waits, reservation locks (later layers) and any
 * lock that is also held around a fence wait elsewhere. Sections nest.
 *
 * Context: Any thread.
 * Return: a cookie for dma_fence_end_signalling().
 */
HETMEM_API bool dma_fence_begin_signalling(void)
{
	if (!hetmem_lockdep_enabled())
		return true;
	/* Nested, or in atomic context: nothing to record, as in the kernel. */
	if (hetmem_in_atomic() ||
	    hetmem_lockdep_is_held_read(&fence_lockdep_map))
		return true;
	/*
	 * A read-trylock, as the kernel records it: entering a section adds
	 * no "held lock -> signalling" edges (is_signaled() may signal under
	 * any lock), while locks taken inside it are still ordered after it.
	 */
	hetmem_lockdep_acquire(&fence_lockdep_map, 1, true, HETMEM_RET_IP);
	return false;
}

/**
 * dma_fence_end_signalling() - close a fence signalling critical section
 * @cookie: what the matching dma_fence_begin_signalling() returned
 *
 * Context: The thread that opened the section.
 * Return: nothing.
 */
HETMEM_API void dma_fence_end_signalling(bool cookie)
{
	if (cookie)
		return;
	hetmem_lockdep_release(&fence_lockdep_map, HETMEM_RET_IP);
}

void hetmem_fence_might_wait(const void *site)
{
	if (hetmem_lockdep_enabled())
		hetmem_lockdep_might_wait_for(&fence_lockdep_map, site);
}

/**
 * __dma_fence_might_wait() - annotate a point that may wait for a fence
 *
 * Records "every lock held here is held across a fence wait" and reports
 * when called inside a signalling section. Every dma_fence wait calls it.
 *
 * Context: Any thread that may sleep.
 * Return: nothing.
 */
HETMEM_API void __dma_fence_might_wait(void)
{
	hetmem_fence_might_wait(HETMEM_RET_IP);
}

static void run_callbacks(struct dma_fence *fence, struct hetmem_list_head *list)
{
	struct hetmem_list_head *pos, *n;

	hetmem_list_for_each_safe(pos, n, list) {
		struct dma_fence_cb *cb =
			hetmem_list_entry(pos, struct dma_fence_cb, node);

		/* Mark it unqueued first: remove_callback() must say false. */
		hetmem_list_init(&cb->node);
		cb->func(fence, cb);
	}
}

/**
 * dma_fence_signal_timestamp_locked() - signal with a given time, lock held
 * @fence: the fence
 * @timestamp: CLOCK_MONOTONIC time to record
 *
 * Runs every queued callback in this thread, under @fence->lock. The caller
 * must hold a reference across the call: a callback may drop one.
 *
 * Context: @fence->lock held.
 * Return: 0 on the first signal; -EINVAL if @fence is NULL or was already
 * signalled (nothing changes then).
 */
HETMEM_API int dma_fence_signal_timestamp_locked(struct dma_fence *fence,
						 hetmem_ktime_t timestamp)
{
	struct hetmem_list_head cb_list;

	if (HETMEM_WARN_ON(!fence))
		return -EINVAL;
	hetmem_assert_spin_held(fence->lock);
	if (fence_test_and_set_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT))
		return -EINVAL;
	/* Detach the list before the timestamp publishes the signal. */
	hetmem_list_replace_init(&fence->cb_list, &cb_list);
	fence->timestamp = timestamp;
	fence_set_bit(fence, DMA_FENCE_FLAG_TIMESTAMP_BIT);
	run_callbacks(fence, &cb_list);
	return 0;
}

/**
 * dma_fence_signal_timestamp() - signal with a given time
 * @fence: the fence
 * @timestamp: CLOCK_MONOTONIC time to record
 *
 * Context: Takes @fence->lock; runs callbacks in this thread inside a
 * signalling section. Must not be called with @fence->lock held.
 * Return: 0 on the first signal; -EINVAL if @fence is NULL or was already
 * signalled.
 */
HETMEM_API int dma_fence_signal_timestamp(struct dma_fence *fence,
					  hetmem_ktime_t timestamp)
{
	bool cookie;
	int ret;

	if (HETMEM_WARN_ON(!fence))
		return -EINVAL;
	if (fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT))
		return -EINVAL;
	cookie = dma_fence_begin_signalling();
	hetmem_spin_lock(fence->lock);
	ret = dma_fence_signal_timestamp_locked(fence, timestamp);
	hetmem_spin_unlock(fence->lock);
	dma_fence_end_signalling(cookie);
	return ret;
}

/**
 * dma_fence_signal_locked() - signal now, lock held
 * @fence: the fence
 *
 * Context: @fence->lock held.
 * Return: 0 on the first signal; -EINVAL if @fence is NULL or was already
 * signalled.
 */
HETMEM_API int dma_fence_signal_locked(struct dma_fence *fence)
{
	return dma_fence_signal_timestamp_locked(fence, hetmem_ktime_get());
}

/**
 * dma_fence_signal() - signal now
 * @fence: the fence
 *
 * Context: Takes @fence->lock; runs callbacks in this thread inside a
 * signalling section. The caller holds a reference.
 * Return: 0 on the first signal; -EINVAL if @fence is NULL or was already
 * signalled.
 */
HETMEM_API int dma_fence_signal(struct dma_fence *fence)
{
	return dma_fence_signal_timestamp(fence, hetmem_ktime_get());
}

/**
 * dma_fence_check_and_signal_locked() - signal unless already signalled, lock held
 * @fence: the fence
 *
 * The forward-compatible form of the newest kernels, whose signal
 * functions return void.
 *
 * Context: @fence->lock held.
 * Return: true if @fence was already signalled, false if this call
 * signalled it.
 */
HETMEM_API bool dma_fence_check_and_signal_locked(struct dma_fence *fence)
{
	return dma_fence_signal_locked(fence) != 0;
}

/**
 * dma_fence_check_and_signal() - signal unless already signalled
 * @fence: the fence
 *
 * Context: Takes @fence->lock.
 * Return: true if @fence was already signalled, false if this call
 * signalled it.
 */
HETMEM_API bool dma_fence_check_and_signal(struct dma_fence *fence)
{
	return dma_fence_signal(fence) != 0;
}

/*
 * Returns true while the fence still needs signalling; false when it is
 * signalled (possibly just now, by an enable_signaling that said so).
 */
static bool enable_signaling_locked(struct dma_fence *fence)
{
	bool was_set;

	was_set = fence_test_and_set_bit(fence, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT);
	if (fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT))
		return false;
	if (!was_set && fence->ops->enable_signaling &&
	    !fence->ops->enable_signaling(fence)) {
		dma_fence_signal_locked(fence);
		return false;
	}
	return true;
}

/**
 * dma_fence_enable_sw_signaling() - make the fence signal on its own
 * @fence: the fence
 *
 * Calls ops->enable_signaling the first time only; if that reports the
 * work already done, the fence is signalled here.
 *
 * Context: Takes @fence->lock; enable_signaling runs under it.
 * Return: nothing.
 */
HETMEM_API void dma_fence_enable_sw_signaling(struct dma_fence *fence)
{
	if (HETMEM_WARN_ON(!fence))
		return;
	hetmem_spin_lock(fence->lock);
	enable_signaling_locked(fence);
	hetmem_spin_unlock(fence->lock);
}

/**
 * dma_fence_add_callback() - run a function when the fence signals
 * @fence: the fence; the caller holds a reference
 * @cb: caller-owned node, queued on one fence at a time
 * @func: runs in the signalling thread with @fence->lock held; must not
 *	sleep, wait, or take @fence->lock
 *
 * Enables signalling. Callbacks run in the order they were added.
 *
 * Context: Takes @fence->lock.
 * Return: 0 if queued; -ENOENT if @fence is already signalled (also when
 * enabling signalling just completed it): @func is not called, now or
 * later; -EINVAL if @fence, @cb or @func is NULL.
 */
HETMEM_API int dma_fence_add_callback(struct dma_fence *fence,
				      struct dma_fence_cb *cb,
				      dma_fence_func_t func)
{
	int ret = 0;

	if (HETMEM_WARN_ON(!fence || !cb || !func))
		return -EINVAL;
	hetmem_list_init(&cb->node);
	if (fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT))
		return -ENOENT;
	hetmem_spin_lock(fence->lock);
	if (enable_signaling_locked(fence)) {
		cb->func = func;
		hetmem_list_add_tail(&cb->node, &fence->cb_list);
	} else {
		ret = -ENOENT;
	}
	hetmem_spin_unlock(fence->lock);
	return ret;
}

/**
 * dma_fence_remove_callback() - cancel a queued callback
 * @fence: the fence @cb was added to; the caller holds a reference
 * @cb: the node
 *
 * Meant for error recovery. When it returns, @cb's function is not running
 * and will not run, so @cb may be freed.
 *
 * Context: Takes @fence->lock; must not be called from a callback of a
 * fence sharing that lock.
 * Return: true if @cb was still queued and has been removed; false if it
 * already ran or was never queued.
 */
HETMEM_API bool dma_fence_remove_callback(struct dma_fence *fence,
					  struct dma_fence_cb *cb)
{
	bool queued;

	if (HETMEM_WARN_ON(!fence || !cb))
		return false;
	hetmem_spin_lock(fence->lock);
	queued = !hetmem_list_empty(&cb->node);
	if (queued)
		hetmem_list_del_init(&cb->node);
	hetmem_spin_unlock(fence->lock);
	return queued;
}

/**
 * dma_fence_get_status_locked() - completion status, lock held
 * @fence: the fence
 *
 * Context: @fence->lock held.
 * Return: 0 if not signalled, 1 if signalled without error, the negative
 * error if signalled with one.
 */
HETMEM_API int dma_fence_get_status_locked(struct dma_fence *fence)
{
	if (dma_fence_is_signaled_locked(fence))
		return fence->error ? fence->error : 1;
	return 0;
}

/**
 * dma_fence_get_status() - completion status
 * @fence: the fence
 *
 * May signal the fence through ops->signaled. An error stored with
 * dma_fence_set_error() shows only once the fence is signalled.
 *
 * Context: Takes @fence->lock.
 * Return: 0 if not signalled, 1 if signalled without error, the negative
 * error if signalled with one; -EINVAL if @fence is NULL.
 */
HETMEM_API int dma_fence_get_status(struct dma_fence *fence)
{
	int status;

	if (HETMEM_WARN_ON(!fence))
		return -EINVAL;
	hetmem_spin_lock(fence->lock);
	status = dma_fence_get_status_locked(fence);
	hetmem_spin_unlock(fence->lock);
	return status;
}

/**
 * dma_fence_set_error() - record an error before signalling
 * @fence: the fence, not yet signalled
 * @error: a negative errno (-ECANCELED, -ETIME, -ENODATA, ...)
 *
 * Warns, as the kernel does, when @fence is already signalled or @error is
 * not in [-MAX_ERRNO, -1]; the value is stored anyway.
 *
 * Context: Any thread; normally the one about to signal.
 * Return: nothing.
 */
HETMEM_API void dma_fence_set_error(struct dma_fence *fence, int error)
{
	if (HETMEM_WARN_ON(!fence))
		return;
	HETMEM_WARN(fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT),
		    "dma_fence_set_error on a signalled fence");
	HETMEM_WARN(error >= 0 || error < -HETMEM_MAX_ERRNO,
		    "dma_fence_set_error with invalid error %d", error);
	__atomic_store_n(&fence->error, error, __ATOMIC_RELAXED);
}

/**
 * dma_fence_timestamp() - when the fence signalled
 * @fence: a signalled fence
 *
 * Context: Any thread; spins for the instant between SIGNALED and
 * TIMESTAMP becoming visible.
 * Return: the CLOCK_MONOTONIC signal time in ns; the current time, with a
 * warning, if @fence is not signalled.
 */
HETMEM_API hetmem_ktime_t dma_fence_timestamp(struct dma_fence *fence)
{
	if (HETMEM_WARN(!fence || !fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT),
			"dma_fence_timestamp on an unsignalled fence"))
		return hetmem_ktime_get();
	while (!fence_test_bit(fence, DMA_FENCE_FLAG_TIMESTAMP_BIT))
		__builtin_ia32_pause();
	return fence->timestamp;
}

struct default_wait_cb {
	struct dma_fence_cb base;
	uint32_t *word;
};

static void default_wait_wake(struct dma_fence *fence, struct dma_fence_cb *cb)
{
	uint32_t *word = hetmem_container_of(cb, struct default_wait_cb, base)->word;

	/*
	 * The waiter may return as soon as it sees the increment, taking its
	 * stack with it: keep the address in a local. The futex wake itself
	 * only needs the address, and is deferred until this thread drops
	 * its last spinlock: a waiter woken now would run straight into the
	 * fence lock we still hold.
	 */
	__atomic_add_fetch(word, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake_after_unlock(word);
}

/* Sleep until woken, the deadline or (if @intr) a signal handler. */
static long wait_sleep(uint32_t *word, uint32_t seen, int64_t deadline,
		       bool intr)
{
	int ret = hetmem_futex_wait(word, seen, deadline, intr);

	if (ret == -EINTR)
		return -HETMEM_ERESTARTSYS;
	if (ret == -ETIMEDOUT)
		return 0;
	return 1;
}

/**
 * dma_fence_default_wait() - the built-in wait
 * @fence: the fence; the caller holds a reference
 * @intr: whether a signal handler running in this thread interrupts
 * @timeout: jiffies, or MAX_SCHEDULE_TIMEOUT
 *
 * Does not enable signalling (dma_fence_wait_timeout() does that first).
 *
 * Context: May sleep; takes @fence->lock.
 * Return: remaining jiffies (at least 1; 1 when @timeout was 0) if
 * signalled, 0 on timeout, -ERESTARTSYS when interrupted.
 */
HETMEM_API signed long dma_fence_default_wait(struct dma_fence *fence,
					      bool intr, signed long timeout)
{
	int64_t deadline = hetmem_timeout_to_deadline(timeout);
	uint32_t word = 0, seen;
	struct default_wait_cb cb = { .word = &word };
	signed long ret = 1;

	hetmem_spin_lock(fence->lock);
	if (fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT)) {
		/* Already signalled: the whole timeout, as the kernel does. */
		ret = timeout ? timeout : 1;
		goto out_unlock;
	}
	if (!timeout) {
		hetmem_spin_unlock(fence->lock);
		return 0;
	}
	cb.base.func = default_wait_wake;
	hetmem_list_add(&cb.base.node, &fence->cb_list);
	while (!fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT) && ret > 0) {
		seen = __atomic_load_n(&word, __ATOMIC_ACQUIRE);
		hetmem_spin_unlock(fence->lock);
		ret = wait_sleep(&word, seen, deadline, intr);
		hetmem_spin_lock(fence->lock);
	}
	if (!hetmem_list_empty(&cb.base.node))
		hetmem_list_del_init(&cb.base.node);
	if (ret <= 0 && !fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT))
		goto out_unlock;
	ret = hetmem_deadline_to_timeout(deadline);
out_unlock:
	hetmem_spin_unlock(fence->lock);
	return ret;
}

/**
 * dma_fence_wait_timeout() - wait for a fence to signal
 * @fence: the fence; the caller holds a reference
 * @intr: whether a signal handler running in this thread interrupts
 *	(regardless of SA_RESTART)
 * @timeout: jiffies (HETMEM_HZ per second), or MAX_SCHEDULE_TIMEOUT
 *
 * Enables signalling, then calls ops->wait if the fence has one (even for
 * a zero timeout, as the kernel does) or dma_fence_default_wait().
 *
 * Context: May sleep: must not be called with a spinlock held, from a
 * fence callback, or inside a signalling section (all reported by the
 * checker).
 * Return: remaining jiffies (>0) if signalled, 0 on timeout, -ERESTARTSYS
 * when interrupted, -EINVAL for a negative @timeout or NULL @fence, or
 * whatever a custom ops->wait returns.
 */
HETMEM_API signed long dma_fence_wait_timeout(struct dma_fence *fence,
					      bool intr, signed long timeout)
{
	if (HETMEM_WARN_ON(!fence || timeout < 0))
		return -EINVAL;
	hetmem_might_sleep(HETMEM_RET_IP);
	hetmem_fence_might_wait(HETMEM_RET_IP);
	dma_fence_enable_sw_signaling(fence);
	if (fence->ops->wait)
		return fence->ops->wait(fence, intr, timeout);
	return dma_fence_default_wait(fence, intr, timeout);
}

static bool any_signaled(struct dma_fence **fences, uint32_t count,
			 uint32_t *idx)
{
	uint32_t i;

	for (i = 0; i < count; i++) {
		if (dma_fence_test_signaled_flag(fences[i])) {
			if (idx)
				*idx = i;
			return true;
		}
	}
	return false;
}

static signed long poll_any(struct dma_fence **fences, uint32_t count,
			    uint32_t *idx)
{
	uint32_t i;

	for (i = 0; i < count; i++) {
		if (dma_fence_is_signaled(fences[i])) {
			if (idx)
				*idx = i;
			return 1;
		}
	}
	return 0;
}

static bool fences_valid(struct dma_fence **fences, uint32_t count)
{
	uint32_t i;

	if (!fences || !count)
		return false;
	for (i = 0; i < count; i++)
		if (!fences[i])
			return false;
	return true;
}

/* Arm one wake-up per fence; stops at (and reports) one already signalled. */
static uint32_t arm_any(struct dma_fence **fences, uint32_t count,
			struct default_wait_cb *cb, uint32_t *word,
			bool *found, uint32_t *idx)
{
	uint32_t i;

	for (i = 0; i < count; i++) {
		cb[i].word = word;
		if (dma_fence_add_callback(fences[i], &cb[i].base,
					   default_wait_wake)) {
			if (idx)
				*idx = i;
			*found = true;
			break;
		}
	}
	return i;
}

/**
 * dma_fence_wait_any_timeout() - wait until one of several fences signals
 * @fences: array of fences, each referenced by the caller
 * @count: number of entries
 * @intr: whether a signal handler running in this thread interrupts
 * @timeout: jiffies, or MAX_SCHEDULE_TIMEOUT; 0 polls
 * @idx: if not NULL, receives the index of a signalled fence (valid only
 *	for a positive return)
 *
 * Context: May sleep (except for @timeout 0); not from callbacks or under
 * spinlocks.
 * Return: remaining jiffies (>0; 1 for a successful poll) when a fence
 * signalled, 0 on timeout, -ERESTARTSYS when interrupted, -EINVAL for a
 * NULL array, a NULL entry, @count 0 or a negative @timeout, -ENOMEM when
 * the wake-up records cannot be allocated.
 */
HETMEM_API signed long dma_fence_wait_any_timeout(struct dma_fence **fences,
						  uint32_t count, bool intr,
						  signed long timeout,
						  uint32_t *idx)
{
	int64_t deadline = hetmem_timeout_to_deadline(timeout);
	struct default_wait_cb *cb;
	uint32_t word = 0, seen, armed;
	bool found = false;
	signed long ret = 1;

	if (HETMEM_WARN_ON(!fences_valid(fences, count) || timeout < 0))
		return -EINVAL;
	if (!timeout)
		return poll_any(fences, count, idx);
	hetmem_might_sleep(HETMEM_RET_IP);
	hetmem_fence_might_wait(HETMEM_RET_IP);
	cb = calloc(count, sizeof(*cb));
	if (!cb)
		return -ENOMEM;
	armed = arm_any(fences, count, cb, &word, &found, idx);
	while (!found && ret > 0) {
		seen = __atomic_load_n(&word, __ATOMIC_ACQUIRE);
		if (any_signaled(fences, count, idx))
			break;
		ret = wait_sleep(&word, seen, deadline, intr);
	}
	while (armed-- > 0)
		dma_fence_remove_callback(fences[armed], &cb[armed].base);
	free(cb);
	/* Found signalled while arming: the whole timeout, as the kernel. */
	if (found)
		return timeout;
	return ret > 0 ? hetmem_deadline_to_timeout(deadline) : ret;
}

/**
 * dma_fence_set_deadline() - hint when the fence should be signalled
 * @fence: the fence
 * @deadline: CLOCK_MONOTONIC time; a time in the past means "as soon as
 *	possible"
 *
 * Forwarded to ops->set_deadline of an unsignalled fence; providers may
 * ignore it. May be called any number of times, concurrently.
 *
 * Context: Any thread; without @fence->lock held.
 * Return: nothing.
 */
HETMEM_API void dma_fence_set_deadline(struct dma_fence *fence,
				       hetmem_ktime_t deadline)
{
	if (HETMEM_WARN_ON(!fence))
		return;
	if (fence->ops->set_deadline && !dma_fence_is_signaled(fence))
		fence->ops->set_deadline(fence, deadline);
}

/**
 * dma_fence_get_rcu_safe() - reference the fence a shared slot points to
 * @fencep: slot updated by others; its old fences are freed after RCU
 *
 * Loops until it holds a reference to the fence that is still in the slot,
 * since a fence whose count dropped to zero may be recycled for another.
 *
 * Context: Inside hetmem_rcu_read_lock().
 * Return: a new reference, or NULL if the slot is empty.
 */
HETMEM_API struct dma_fence *dma_fence_get_rcu_safe(struct dma_fence **fencep)
{
	struct dma_fence *fence;

	for (;;) {
		fence = __atomic_load_n(fencep, __ATOMIC_ACQUIRE);
		if (!fence)
			return NULL;
		if (!dma_fence_get_rcu(fence))
			continue;
		if (fence == __atomic_load_n(fencep, __ATOMIC_ACQUIRE))
			return fence;
		dma_fence_put(fence);
	}
}

static void fence_free_rcu(struct hetmem_rcu_head *head)
{
	free(hetmem_container_of(head, struct dma_fence, rcu));
}

/**
 * dma_fence_free() - free a fence allocated with malloc, after a grace period
 * @fence: the fence, whose allocation starts at @fence
 *
 * The default release. Custom release ops that embed the fence elsewhere
 * must defer their free the same way (hetmem_call_rcu()).
 *
 * Context: Any thread, any context.
 * Return: nothing.
 */
HETMEM_API void dma_fence_free(struct dma_fence *fence)
{
	hetmem_call_rcu(&fence->rcu, fence_free_rcu);
}

/**
 * dma_fence_release() - the refcount-zero handler
 * @kref: the fence's refcount
 *
 * A fence released with callbacks still queued was never going to signal:
 * warn, then signal it with -EDEADLK so that nobody waits forever.
 *
 * Context: Any thread; called by dma_fence_put().
 * Return: nothing.
 */
HETMEM_API void dma_fence_release(struct hetmem_kref *kref)
{
	struct dma_fence *fence =
		hetmem_container_of(kref, struct dma_fence, refcount);

	if (HETMEM_WARN(!hetmem_list_empty(&fence->cb_list) &&
			!fence_test_bit(fence, DMA_FENCE_FLAG_SIGNALED_BIT),
			"fence %s:%s:%llu:%llu released with pending callbacks",
			fence->ops->get_driver_name(fence),
			fence->ops->get_timeline_name(fence),
			(unsigned long long)fence->context,
			(unsigned long long)fence->seqno)) {
		hetmem_spin_lock(fence->lock);
		fence->error = -EDEADLK;
		dma_fence_signal_locked(fence);
		hetmem_spin_unlock(fence->lock);
	}
	if (fence->ops->release)
		fence->ops->release(fence);
	else
		dma_fence_free(fence);
}

static const char *stub_name(struct dma_fence *fence)
{
	return "stub";
}

static const struct dma_fence_ops stub_fence_ops = {
	.get_driver_name = stub_name,
	.get_timeline_name = stub_name,
};

static struct dma_fence stub_fence;
static pthread_once_t stub_once = PTHREAD_ONCE_INIT;

static void stub_init(void)
{
	dma_fence_init(&stub_fence, &stub_fence_ops, &hetmem_fence_stub_lock,
		       0, 0);
	fence_set_bit(&stub_fence, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT);
	dma_fence_signal(&stub_fence);
}

/**
 * dma_fence_get_stub() - the shared, already signalled fence
 *
 * Context 0, seqno 0, named "stub", signalled at the first call (its
 * timestamp). Never freed.
 *
 * Context: Any thread.
 * Return: a new reference to the stub.
 */
HETMEM_API struct dma_fence *dma_fence_get_stub(void)
{
	pthread_once(&stub_once, stub_init);
	return dma_fence_get(&stub_fence);
}

/**
 * dma_fence_allocate_private_stub() - a new signalled fence
 * @timestamp: the signal time to record
 *
 * Context: Any thread; allocates.
 * Return: a fence with one reference, or NULL when out of memory.
 */
HETMEM_API struct dma_fence *dma_fence_allocate_private_stub(hetmem_ktime_t timestamp)
{
	struct dma_fence *fence = calloc(1, sizeof(*fence));

	if (!fence)
		return NULL;
	dma_fence_init(fence, &stub_fence_ops, &hetmem_fence_stub_lock, 0, 0);
	fence_set_bit(fence, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT);
	dma_fence_signal_timestamp(fence, timestamp);
	return fence;
}

/**
 * dma_fence_driver_name() - provider name, safe after signalling
 * @fence: the fence
 *
 * Providers may free their naming data once a fence signalled, so a
 * signalled fence reports a fixed literal, as kernels since v6.16 do.
 *
 * Context: Inside hetmem_rcu_read_lock() or holding a reference; use the
 * string before leaving it.
 * Return: the provider's name, or "detached-driver" once signalled.
 */
HETMEM_API const char *dma_fence_driver_name(struct dma_fence *fence)
{
	if (dma_fence_test_signaled_flag(fence))
		return "detached-driver";
	return fence->ops->get_driver_name(fence);
}

/**
 * dma_fence_timeline_name() - timeline name, safe after signalling
 * @fence: the fence
 *
 * Context: Inside hetmem_rcu_read_lock() or holding a reference; use the
 * string before leaving it.
 * Return: the timeline's name, or "signaled-timeline" once signalled.
 */
HETMEM_API const char *dma_fence_timeline_name(struct dma_fence *fence)
{
	if (dma_fence_test_signaled_flag(fence))
		return "signaled-timeline";
	return fence->ops->get_timeline_name(fence);
}

/**
 * dma_fence_describe() - print a one-line description
 * @fence: the fence
 * @seq: stdio stream (the kernel writes to a seq_file)
 *
 * Format: "<driver> <timeline> seq <seqno> signalled|unsignalled".
 *
 * Context: Any thread; may signal through ops->signaled.
 * Return: nothing.
 */
HETMEM_API void dma_fence_describe(struct dma_fence *fence, FILE *seq)
{
	const char *drv, *tl;
	bool signaled;

	hetmem_rcu_read_lock();
	signaled = dma_fence_is_signaled(fence);
	drv = dma_fence_driver_name(fence);
	tl = dma_fence_timeline_name(fence);
	fprintf(seq, "%s %s seq %llu %ssignalled\n", drv, tl,
		(unsigned long long)fence->seqno, signaled ? "" : "un");
	hetmem_rcu_read_unlock();
}

/**
 * dma_fence_is_later() - is @f1 later than @f2 on their common timeline
 * @f1: first fence
 * @f2: second fence, same context
 *
 * Context: Any.
 * Return: true if @f1 is later; false otherwise, and (with a warning) when
 * the contexts differ.
 */
HETMEM_API bool dma_fence_is_later(struct dma_fence *f1, struct dma_fence *f2)
{
	if (HETMEM_WARN(f1->context != f2->context,
			"comparing fences of contexts %llu and %llu",
			(unsigned long long)f1->context,
			(unsigned long long)f2->context))
		return false;
	return __dma_fence_is_later(f1, f1->seqno, f2->seqno);
}

/**
 * dma_fence_is_later_or_same() - @f1 later than or identical to @f2
 * @f1: first fence
 * @f2: second fence, same context
 *
 * Context: Any.
 * Return: true if @f1 == @f2 or @f1 is later.
 */
HETMEM_API bool dma_fence_is_later_or_same(struct dma_fence *f1,
					   struct dma_fence *f2)
{
	return f1 == f2 || dma_fence_is_later(f1, f2);
}

/**
 * dma_fence_later() - the later of two fences of one timeline
 * @f1: first fence
 * @f2: second fence, same context
 *
 * Context: Any; may signal through ops->signaled.
 * Return: the later fence (no new reference), or NULL if it is already
 * signalled or the contexts differ (with a warning).
 */
HETMEM_API struct dma_fence *dma_fence_later(struct dma_fence *f1,
					     struct dma_fence *f2)
{
	struct dma_fence *later;

	if (HETMEM_WARN(f1->context != f2->context,
			"comparing fences of contexts %llu and %llu",
			(unsigned long long)f1->context,
			(unsigned long long)f2->context))
		return NULL;
	later = dma_fence_is_later(f1, f2) ? f1 : f2;
	return dma_fence_is_signaled(later) ? NULL : later;
}

/**
 * dma_fence_is_array() - is this a dma_fence_array
 * @fence: the fence
 *
 * Context: Any.
 * Return: true if @fence uses dma_fence_array_ops.
 */
HETMEM_API bool dma_fence_is_array(struct dma_fence *fence)
{
	return fence && fence->ops == &dma_fence_array_ops;
}

/**
 * dma_fence_is_chain() - is this a dma_fence_chain node
 * @fence: the fence
 *
 * Context: Any.
 * Return: true if @fence uses dma_fence_chain_ops.
 */
HETMEM_API bool dma_fence_is_chain(struct dma_fence *fence)
{
	return fence && fence->ops == &dma_fence_chain_ops;
}

/**
 * dma_fence_is_container() - is this an array or a chain node
 * @fence: the fence
 *
 * Context: Any.
 * Return: true for containers, false for leaf fences.
 */
HETMEM_API bool dma_fence_is_container(struct dma_fence *fence)
{
	return dma_fence_is_array(fence) || dma_fence_is_chain(fence);
}
