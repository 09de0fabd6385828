/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence: completion signals for asynchronous work.
 *
 * Tracks the semantics of Linux v6.17 include/linux/dma-fence.h (int-returning
 * signal functions, dma_fence_init64, post-signal name literals), plus the
 * forward-compatible dma_fence_check_and_signal() of later kernels.
 */
#ifndef HETMEM_FENCE_DMA_FENCE_H
#define HETMEM_FENCE_DMA_FENCE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/errno.h>
#include <hetmem/core/kref.h>
#include <hetmem/core/list.h>
#include <hetmem/core/rcu.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/core/time.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Fences in a process
 *
 * A struct dma_fence is the kernel's object, field for field: a lock that
 * may be shared by all fences of a timeline, an ops table, a callback list,
 * a 64-bit context and seqno, atomic flag bits, a reference count, an error
 * and a CLOCK_MONOTONIC timestamp. Driver code embeds it and recovers its
 * own structure with container_of, exactly as in the kernel.
 *
 * What changes in userspace (see docs/semantics-vs-kernel.md):
 * "atomic context" is "holding a hetmem spinlock": callbacks run in the
 * signalling thread with the fence lock held and must not sleep; timeouts
 * are jiffies of 1 ms; interruptible waits are interrupted by a signal
 * handler running in the waiting thread; RCU is liburcu; describe() prints
 * to a stdio stream instead of a seq_file.
 *
 * Unlike the kernel's union, the callback list, the timestamp and the RCU
 * head have separate storage: it costs 24 bytes and removes a class of
 * use-after-signal mistakes in code being brought up under sanitizers.
 */

struct dma_fence;
struct dma_fence_cb;

typedef void (*dma_fence_func_t)(struct dma_fence *fence,
				 struct dma_fence_cb *cb);

/**
 * struct dma_fence_cb - callback node, embedded in the caller's structure
 * @node: list link; points to itself while not queued
 * @func: the function dma_fence_add_callback() installed
 */
struct dma_fence_cb {
	struct hetmem_list_head node;
	dma_fence_func_t func;
};

/**
 * struct dma_fence - a completion signal
 * @lock: spinlock protecting @cb_list and signalling; may be shared
 * @ops: implementation callbacks
 * @cb_list: callbacks to run at signal time, in registration order
 * @timestamp: CLOCK_MONOTONIC time of signalling, valid once
 *	DMA_FENCE_FLAG_TIMESTAMP_BIT is set
 * @rcu: storage for the deferred free
 * @context: execution context (timeline) the fence belongs to
 * @seqno: position on that timeline
 * @flags: DMA_FENCE_FLAG_* bits, changed atomically
 * @refcount: reference count
 * @error: 0, or a negative errno stored before signalling
 */
struct dma_fence {
	hetmem_spinlock_t *lock;
	const struct dma_fence_ops *ops;
	struct hetmem_list_head cb_list;
	hetmem_ktime_t timestamp;
	struct hetmem_rcu_head rcu;
	uint64_t context;
	uint64_t seqno;
	unsigned long flags;
	struct hetmem_kref refcount;
	int error;
};

enum dma_fence_flag_bits {
	DMA_FENCE_FLAG_SEQNO64_BIT,
	DMA_FENCE_FLAG_SIGNALED_BIT,
	DMA_FENCE_FLAG_TIMESTAMP_BIT,
	DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
	DMA_FENCE_FLAG_USER_BITS, /* first bit free for implementations */
};

/**
 * struct dma_fence_ops - operations implemented by a fence provider
 * @get_driver_name: mandatory; name of the provider. Called only before
 *	the fence is signalled (afterwards the accessors return a literal).
 * @get_timeline_name: mandatory; name of the timeline (context).
 * @enable_signaling: optional; called once, with @lock held, the first time
 *	somebody needs the fence to signal on its own (callback, wait,
 *	poll). Return false if the fence is already complete; the core then
 *	signals it. May set @error only when returning false. Must not sleep.
 * @signaled: optional; polled by dma_fence_is_signaled(). Once it returns
 *	true it must keep doing so. May set @error only when returning true.
 *	Called with or without @lock held.
 * @wait: optional, deprecated; custom wait with dma_fence_wait_timeout()'s
 *	contract. Its return value is passed through unchanged.
 * @release: optional; frees the fence at refcount zero. It must defer the
 *	free by a grace period (dma_fence_free() does) because
 *	dma_fence_get_rcu() readers may still look at the memory.
 * @set_deadline: optional; deadline hint, see dma_fence_set_deadline().
 */
struct dma_fence_ops {
	const char *(*get_driver_name)(struct dma_fence *fence);
	const char *(*get_timeline_name)(struct dma_fence *fence);
	bool (*enable_signaling)(struct dma_fence *fence);
	bool (*signaled)(struct dma_fence *fence);
	signed long (*wait)(struct dma_fence *fence, bool intr,
			    signed long timeout);
	void (*release)(struct dma_fence *fence);
	void (*set_deadline)(struct dma_fence *fence,
			     hetmem_ktime_t deadline);
};

HETMEM_API void dma_fence_init(struct dma_fence *fence,
			       const struct dma_fence_ops *ops,
			       hetmem_spinlock_t *lock, uint64_t context,
			       uint64_t seqno);
HETMEM_API void dma_fence_init64(struct dma_fence *fence,
				 const struct dma_fence_ops *ops,
				 hetmem_spinlock_t *lock, uint64_t context,
				 uint64_t seqno);
HETMEM_API uint64_t dma_fence_context_alloc(unsigned int num);

HETMEM_API void dma_fence_release(struct hetmem_kref *kref);
HETMEM_API void dma_fence_free(struct dma_fence *fence);

HETMEM_API int dma_fence_signal(struct dma_fence *fence);
HETMEM_API int dma_fence_signal_locked(struct dma_fence *fence);
HETMEM_API int dma_fence_signal_timestamp(struct dma_fence *fence,
					  hetmem_ktime_t timestamp);
HETMEM_API int dma_fence_signal_timestamp_locked(struct dma_fence *fence,
						 hetmem_ktime_t timestamp);
HETMEM_API bool dma_fence_check_and_signal(struct dma_fence *fence);
HETMEM_API bool dma_fence_check_and_signal_locked(struct dma_fence *fence);

HETMEM_API void dma_fence_enable_sw_signaling(struct dma_fence *fence);
HETMEM_API int dma_fence_add_callback(struct dma_fence *fence,
				      struct dma_fence_cb *cb,
				      dma_fence_func_t func);
HETMEM_API bool dma_fence_remove_callback(struct dma_fence *fence,
					  struct dma_fence_cb *cb);

HETMEM_API int dma_fence_get_status(struct dma_fence *fence);
HETMEM_API int dma_fence_get_status_locked(struct dma_fence *fence);
HETMEM_API void dma_fence_set_error(struct dma_fence *fence, int error);
HETMEM_API hetmem_ktime_t dma_fence_timestamp(struct dma_fence *fence);

HETMEM_API signed long dma_fence_default_wait(struct dma_fence *fence,
					      bool intr, signed long timeout);
HETMEM_API signed long dma_fence_wait_timeout(struct dma_fence *fence,
					      bool intr, signed long timeout);
HETMEM_API signed long dma_fence_wait_any_timeout(struct dma_fence **fences,
						  uint32_t count, bool intr,
						  signed long timeout,
						  uint32_t *idx);
HETMEM_API void dma_fence_set_deadline(struct dma_fence *fence,
				       hetmem_ktime_t deadline);

HETMEM_API struct dma_fence *dma_fence_get_stub(void);
HETMEM_API struct dma_fence *dma_fence_allocate_private_stub(hetmem_ktime_t timestamp);

HETMEM_API struct dma_fence *dma_fence_get_rcu_safe(struct dma_fence **fencep);

HETMEM_API const char *dma_fence_driver_name(struct dma_fence *fence);
HETMEM_API const char *dma_fence_timeline_name(struct dma_fence *fence);
HETMEM_API void dma_fence_describe(struct dma_fence *fence, FILE *seq);

HETMEM_API bool dma_fence_begin_signalling(void);
HETMEM_API void dma_fence_end_signalling(bool cookie);
HETMEM_API void __dma_fence_might_wait(void);

HETMEM_API extern const struct dma_fence_ops dma_fence_array_ops;
HETMEM_API extern const struct dma_fence_ops dma_fence_chain_ops;

/**
 * dma_fence_get() - take a reference
 * @fence: fence, may be NULL
 *
 * Context: Any thread; the caller must already hold a reference.
 * Return: @fence.
 */
static inline struct dma_fence *dma_fence_get(struct dma_fence *fence)
{
	if (fence)
		hetmem_kref_get(&fence->refcount);
	return fence;
}

/**
 * dma_fence_put() - drop a reference
 * @fence: fence, may be NULL
 *
 * The last put releases the fence through ops->release or dma_fence_free().
 *
 * Context: Any thread, including fence callbacks (release never blocks).
 * Return: nothing.
 */
static inline void dma_fence_put(struct dma_fence *fence)
{
	if (fence)
		hetmem_kref_put(&fence->refcount, dma_fence_release);
}

/**
 * dma_fence_get_rcu() - take a reference unless the fence is being freed
 * @fence: fence read under hetmem_rcu_read_lock()
 *
 * Context: Inside an RCU read-side section.
 * Return: @fence with a new reference, or NULL if its count already hit 0.
 */
static inline struct dma_fence *dma_fence_get_rcu(struct dma_fence *fence)
{
	if (hetmem_kref_get_unless_zero(&fence->refcount))
		return fence;
	return NULL;
}

/**
 * dma_fence_test_signaled_flag() - test the SIGNALED bit only
 * @fence: the fence
 *
 * Unlike dma_fence_is_signaled() it never calls ops->signaled, so it never
 * signals and is safe with @fence->lock held.
 *
 * Context: Any.
 * Return: true if the fence has been signalled.
 */
static inline bool dma_fence_test_signaled_flag(struct dma_fence *fence)
{
	return __atomic_load_n(&fence->flags, __ATOMIC_ACQUIRE) &
	       (1UL << DMA_FENCE_FLAG_SIGNALED_BIT);
}

/**
 * dma_fence_is_signaled_locked() - test for completion, fence lock held
 * @fence: the fence
 *
 * Like dma_fence_is_signaled() but signals through
 * dma_fence_signal_locked() when ops->signaled reports completion.
 *
 * Context: @fence->lock held.
 * Return: true if signalled, false otherwise.
 */
static inline bool dma_fence_is_signaled_locked(struct dma_fence *fence)
{
	if (dma_fence_test_signaled_flag(fence))
		return true;
	if (fence->ops->signaled && fence->ops->signaled(fence)) {
		dma_fence_signal_locked(fence);
		return true;
	}
	return false;
}

/**
 * dma_fence_is_signaled() - test for completion
 * @fence: the fence
 *
 * Checks the SIGNALED bit, then the optional ops->signaled hook; if the
 * hook reports completion the fence is signalled here (callbacks run in
 * this thread). Never enables signalling, so a lazily armed fence may keep
 * returning false until somebody waits or adds a callback.
 *
 * Context: Must not be called with @fence->lock held.
 * Return: true if signalled, false otherwise.
 */
static inline bool dma_fence_is_signaled(struct dma_fence *fence)
{
	if (dma_fence_test_signaled_flag(fence))
		return true;
	if (fence->ops->signaled && fence->ops->signaled(fence)) {
		dma_fence_signal(fence);
		return true;
	}
	return false;
}

/**
 * __dma_fence_is_later() - compare two seqnos of @fence's timeline
 * @fence: a fence of the timeline; selects 32- or 64-bit comparison
 * @f1: first seqno
 * @f2: second seqno
 *
 * 64-bit timelines compare plainly; 32-bit ones compare the low 32 bits
 * with wraparound, so 1 is later than 0xffffffff.
 *
 * Context: Any.
 * Return: true if @f1 is later than @f2.
 */
static inline bool __dma_fence_is_later(struct dma_fence *fence, uint64_t f1,
					uint64_t f2)
{
	if (__atomic_load_n(&fence->flags, __ATOMIC_RELAXED) &
	    (1UL << DMA_FENCE_FLAG_SEQNO64_BIT))
		return f1 > f2;
	return (int32_t)((uint32_t)f1 - (uint32_t)f2) > 0;
}

HETMEM_API bool dma_fence_is_later(struct dma_fence *f1, struct dma_fence *f2);
HETMEM_API bool dma_fence_is_later_or_same(struct dma_fence *f1,
					   struct dma_fence *f2);
HETMEM_API struct dma_fence *dma_fence_later(struct dma_fence *f1,
					     struct dma_fence *f2);

/**
 * dma_fence_wait() - wait without timeout
 * @fence: the fence
 * @intr: whether a signal handler running in this thread interrupts the wait
 *
 * Context: May sleep; not under a spinlock or in a fence callback.
 * Return: 0 once signalled, -ERESTARTSYS when interrupted, or the negative
 * value of a custom ops->wait.
 */
static inline signed long dma_fence_wait(struct dma_fence *fence, bool intr)
{
	signed long ret;

	ret = dma_fence_wait_timeout(fence, intr, HETMEM_MAX_SCHEDULE_TIMEOUT);
	return ret < 0 ? ret : 0;
}

HETMEM_API bool dma_fence_is_array(struct dma_fence *fence);
HETMEM_API bool dma_fence_is_chain(struct dma_fence *fence);
HETMEM_API bool dma_fence_is_container(struct dma_fence *fence);

HETMEM_END_DECLS

#endif /* HETMEM_FENCE_DMA_FENCE_H */
