/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-resv: reservation objects, the fences of a shared buffer.
 *
 * Tracks the semantics of Linux v6.17 include/linux/dma-resv.h (usages,
 * dma_resv_reserve_fences()/dma_resv_add_fence(), the unlocked and locked
 * iterators).
 */
#ifndef HETMEM_RESV_DMA_RESV_H
#define HETMEM_RESV_DMA_RESV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/errno.h>
#include <hetmem/core/lockdep.h>
#include <hetmem/core/time.h>
#include <hetmem/core/warn.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/resv/ww_mutex.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Reservation objects in a process
 *
 * A struct dma_resv pairs a ww_mutex of reservation_ww_class with the
 * fences that guard a buffer, each tagged with an enum dma_resv_usage.
 * Writers (reserve, add, replace, copy) hold the lock; readers
 * (iterators, get_fences, wait, test) need no lock and see a consistent
 * list through RCU. The structure is embeddable, as in the kernel; the
 * fence list behind @fences is opaque.
 *
 * Differences from the kernel are listed in the DOC blocks of
 * src/resv/dma-resv.c: describe() prints to a stdio stream, adding
 * without a reserved slot warns instead of BUG()ing, reservations are
 * invalidated on unlock whenever the lock-dependency checker is on.
 */

HETMEM_API extern struct ww_class reservation_ww_class;

/**
 * enum dma_resv_usage - how a fence uses the buffer
 * @DMA_RESV_USAGE_KERNEL: memory management (moves, clears); always waited
 *	for by everybody
 * @DMA_RESV_USAGE_WRITE: implicitly synchronised writes
 * @DMA_RESV_USAGE_READ: implicitly synchronised reads
 * @DMA_RESV_USAGE_BOOKKEEP: no implicit synchronisation (preemption
 *	fences, page-table updates, explicitly synchronised work)
 *
 * Ordered from strongest to weakest: a query for a usage returns every
 * fence of that usage or a stronger one.
 */
enum dma_resv_usage {
	DMA_RESV_USAGE_KERNEL,
	DMA_RESV_USAGE_WRITE,
	DMA_RESV_USAGE_READ,
	DMA_RESV_USAGE_BOOKKEEP,
};

struct dma_resv_list;

/**
 * struct dma_resv - a reservation object
 * @lock: ww_mutex of reservation_ww_class; writers of the fence list hold it
 * @fences: the fence list, published for RCU readers; opaque, NULL while
 *	nothing was ever reserved
 */
struct dma_resv {
	struct ww_mutex lock;
	struct dma_resv_list *fences;
};

/**
 * struct dma_resv_iter - cursor over the fences of a reservation object
 * @obj: the object walked
 * @usage: fences of this usage and the stronger ones are returned
 * @fence: unlocked walks: the fence last returned, with a reference
 * @fence_usage: usage of the entry last returned
 * @index: next entry to look at
 * @fences: list the walk is on (private)
 * @num_fences: entries of @fences at the snapshot (unlocked walks)
 * @is_restarted: the fence last returned is the first of a (re)started walk
 */
struct dma_resv_iter {
	struct dma_resv *obj;
	enum dma_resv_usage usage;
	struct dma_fence *fence;
	enum dma_resv_usage fence_usage;
	unsigned int index;
	struct dma_resv_list *fences;
	unsigned int num_fences;
	bool is_restarted;
};

HETMEM_API void dma_resv_init(struct dma_resv *obj);
HETMEM_API void dma_resv_fini(struct dma_resv *obj);
HETMEM_API int dma_resv_reserve_fences(struct dma_resv *obj,
				       unsigned int num_fences);
HETMEM_API void dma_resv_reset_max_fences(struct dma_resv *obj);
HETMEM_API void dma_resv_add_fence(struct dma_resv *obj,
				   struct dma_fence *fence,
				   enum dma_resv_usage usage);
HETMEM_API void dma_resv_replace_fences(struct dma_resv *obj, uint64_t context,
					struct dma_fence *replacement,
					enum dma_resv_usage usage);
HETMEM_API struct dma_fence *dma_resv_iter_first_unlocked(struct dma_resv_iter *cursor);
HETMEM_API struct dma_fence *dma_resv_iter_next_unlocked(struct dma_resv_iter *cursor);
HETMEM_API struct dma_fence *dma_resv_iter_first(struct dma_resv_iter *cursor);
HETMEM_API struct dma_fence *dma_resv_iter_next(struct dma_resv_iter *cursor);
HETMEM_API int dma_resv_copy_fences(struct dma_resv *dst, struct dma_resv *src);
HETMEM_API int dma_resv_get_fences(struct dma_resv *obj,
				   enum dma_resv_usage usage,
				   unsigned int *num_fences,
				   struct dma_fence ***fences);
HETMEM_API int dma_resv_get_singleton(struct dma_resv *obj,
				      enum dma_resv_usage usage,
				      struct dma_fence **fence);
HETMEM_API long dma_resv_wait_timeout(struct dma_resv *obj,
				      enum dma_resv_usage usage, bool intr,
				      unsigned long timeout);
HETMEM_API void dma_resv_set_deadline(struct dma_resv *obj,
				      enum dma_resv_usage usage,
				      hetmem_ktime_t deadline);
HETMEM_API bool dma_resv_test_signaled(struct dma_resv *obj,
				       enum dma_resv_usage usage);
HETMEM_API void dma_resv_describe(struct dma_resv *obj, FILE *seq);

/**
 * dma_resv_usage_rw() - the usage new work has to wait for
 * @write: true for work that writes the buffer
 *
 * A writer must wait for every reader and writer, a reader only for the
 * writers; note the inversion: the answer is the usage to *query*.
 *
 * Context: Any.
 * Return: DMA_RESV_USAGE_READ if @write, DMA_RESV_USAGE_WRITE otherwise.
 */
static inline enum dma_resv_usage dma_resv_usage_rw(bool write)
{
	return write ? DMA_RESV_USAGE_READ : DMA_RESV_USAGE_WRITE;
}

/**
 * dma_resv_iter_begin() - set up a cursor
 * @cursor: the cursor
 * @obj: the object to walk
 * @usage: fences of this usage and the stronger ones are returned
 *
 * Context: Any.
 * Return: nothing.
 */
static inline void dma_resv_iter_begin(struct dma_resv_iter *cursor,
				       struct dma_resv *obj,
				       enum dma_resv_usage usage)
{
	cursor->obj = obj;
	cursor->usage = usage;
	cursor->fence = NULL;
	cursor->fence_usage = DMA_RESV_USAGE_KERNEL;
	cursor->index = 0;
	cursor->fences = NULL;
	cursor->num_fences = 0;
	cursor->is_restarted = false;
}

/**
 * dma_resv_iter_end() - finish an unlocked walk
 * @cursor: the cursor
 *
 * Drops the reference the cursor holds on the fence it returned last.
 * Needed after every unlocked walk, harmless after a locked one.
 *
 * Context: Any thread.
 * Return: nothing.
 */
static inline void dma_resv_iter_end(struct dma_resv_iter *cursor)
{
	dma_fence_put(cursor->fence);
	cursor->fence = NULL;
}

/**
 * dma_resv_iter_usage() - usage of the fence returned last
 * @cursor: the cursor
 *
 * The same fence may sit in the list twice with different usages; this is
 * the usage of the entry the cursor is on.
 *
 * Context: Any.
 * Return: the usage.
 */
static inline enum dma_resv_usage dma_resv_iter_usage(struct dma_resv_iter *cursor)
{
	return cursor->fence_usage;
}

/**
 * dma_resv_iter_is_restarted() - did the walk (re)start at this fence
 * @cursor: the cursor
 *
 * True for the first fence of a walk and, for unlocked walks, for the
 * first fence after the list was replaced: fences returned before are
 * returned again, so whatever was collected from them must be dropped.
 *
 * Context: Any.
 * Return: true if the fence returned last starts a (new) walk.
 */
static inline bool dma_resv_iter_is_restarted(struct dma_resv_iter *cursor)
{
	return cursor->is_restarted;
}

/*
 * Walk the fences without holding the lock, between dma_resv_iter_begin()
 * and dma_resv_iter_end(); each @fence is referenced by the cursor until
 * the next step. The walk may restart, see dma_resv_iter_is_restarted().
 */
#define dma_resv_for_each_fence_unlocked(cursor, fence)			\
	for ((fence) = dma_resv_iter_first_unlocked(cursor); (fence);	\
	     (fence) = dma_resv_iter_next_unlocked(cursor))

/*
 * Walk the fences of a locked object, signalled ones included, without
 * references; the loop sets up @cursor itself and needs no end.
 */
#define dma_resv_for_each_fence(cursor, obj, usage, fence)		\
	for (dma_resv_iter_begin((cursor), (obj), (usage)),		\
	     (fence) = dma_resv_iter_first(cursor); (fence);		\
	     (fence) = dma_resv_iter_next(cursor))

/**
 * dma_resv_held() - does the calling thread hold the object's lock
 * @obj: the object
 *
 * Context: Any.
 * Return: true if the calling thread holds @obj's lock.
 */
static inline bool dma_resv_held(struct dma_resv *obj)
{
	return hetmem_ww_mutex_is_held(&obj->lock);
}

/* Warns, while the lock-dependency checker is on, unless @obj is held. */
#define dma_resv_assert_held(obj)					\
	((void)HETMEM_WARN(hetmem_lockdep_enabled() && !dma_resv_held(obj), \
			   "reservation lock %p not held", (void *)(obj)))

/**
 * dma_resv_lock() - lock a reservation object
 * @obj: the object
 * @ctx: acquire context of reservation_ww_class, or NULL to lock just
 *	this one object
 *
 * Context: May sleep. Not inside a fence signalling critical section
 * (reported by the checker: fences may be waited for under this lock).
 * Return: 0 when locked; -EALREADY when @ctx already holds @obj (still
 * locked once); -EDEADLK when @ctx must back off: unlock everything,
 * dma_resv_lock_slow() this object, then lock the rest again.
 */
static inline int dma_resv_lock(struct dma_resv *obj,
				struct ww_acquire_ctx *ctx)
{
	return ww_mutex_lock(&obj->lock, ctx);
}

/**
 * dma_resv_lock_interruptible() - lock, unless a signal handler runs
 * @obj: the object
 * @ctx: acquire context, or NULL
 *
 * Context: May sleep; same rules as dma_resv_lock().
 * Return: as dma_resv_lock(), plus -EINTR when a signal handler ran in
 * this thread while it waited.
 */
static inline int dma_resv_lock_interruptible(struct dma_resv *obj,
					      struct ww_acquire_ctx *ctx)
{
	return ww_mutex_lock_interruptible(&obj->lock, ctx);
}

/**
 * dma_resv_lock_slow() - take the contended object after -EDEADLK
 * @obj: the object whose dma_resv_lock() returned -EDEADLK
 * @ctx: that acquire context, now holding no lock
 *
 * Blocks until @obj is locked; cannot be told to back off.
 *
 * Context: May sleep; same rules as dma_resv_lock().
 * Return: nothing.
 */
static inline void dma_resv_lock_slow(struct dma_resv *obj,
				      struct ww_acquire_ctx *ctx)
{
	ww_mutex_lock_slow(&obj->lock, ctx);
}

/**
 * dma_resv_lock_slow_interruptible() - interruptible dma_resv_lock_slow()
 * @obj: the object whose dma_resv_lock() returned -EDEADLK
 * @ctx: that acquire context, now holding no lock
 *
 * Context: May sleep; same rules as dma_resv_lock().
 * Return: 0 when locked; -EINTR when a signal handler ran while waiting.
 */
static inline int dma_resv_lock_slow_interruptible(struct dma_resv *obj,
						   struct ww_acquire_ctx *ctx)
{
	return ww_mutex_lock_slow_interruptible(&obj->lock, ctx);
}

/**
 * dma_resv_trylock() - lock without waiting and without a context
 * @obj: the object
 *
 * Context: Any thread; never sleeps.
 * Return: true if locked, false if somebody holds it.
 */
static inline bool dma_resv_trylock(struct dma_resv *obj)
{
	return ww_mutex_trylock(&obj->lock, NULL);
}

/**
 * dma_resv_is_locked() - is the object locked by anybody
 * @obj: the object
 *
 * Context: Any; the answer may be stale unless the caller holds the lock.
 * Return: true if locked.
 */
static inline bool dma_resv_is_locked(struct dma_resv *obj)
{
	return ww_mutex_is_locked(&obj->lock);
}

/**
 * dma_resv_locking_ctx() - acquire context holding the object
 * @obj: the object
 *
 * Only the answer "the caller's own context" is stable.
 *
 * Context: Any.
 * Return: the context, or NULL when free or locked without a context.
 */
static inline struct ww_acquire_ctx *dma_resv_locking_ctx(struct dma_resv *obj)
{
	return hetmem_ww_mutex_locking_ctx(&obj->lock);
}

/**
 * dma_resv_unlock() - unlock a reservation object
 * @obj: the object, locked by the caller
 *
 * Reserved slots do not survive this (see dma_resv_reset_max_fences()).
 *
 * Context: The thread holding the lock.
 * Return: nothing.
 */
static inline void dma_resv_unlock(struct dma_resv *obj)
{
	dma_resv_reset_max_fences(obj);
	ww_mutex_unlock(&obj->lock);
}

HETMEM_END_DECLS

#endif /* HETMEM_RESV_DMA_RESV_H */
