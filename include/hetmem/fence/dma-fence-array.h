/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence-array: one fence standing for a set of fences.
 *
 * Tracks the semantics of Linux v6.17 include/linux/dma-fence-array.h
 * (split dma_fence_array_alloc()/dma_fence_array_init()).
 */
#ifndef HETMEM_FENCE_DMA_FENCE_ARRAY_H
#define HETMEM_FENCE_DMA_FENCE_ARRAY_H

#include <stdbool.h>
#include <stdint.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/fence/dma-fence.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Fence arrays
 *
 * A struct dma_fence_array is a fence that signals when all of its member
 * fences have signalled, or, created with @signal_on_any, when the first
 * one has. It owns a reference to each member and the pointer array that
 * holds them. Members must be leaf fences: an array inside an array or a
 * chain inside an array is reported with a warning, because users of
 * arrays (merge, reservation objects) assume one level; flatten with
 * dma_fence_unwrap_merge() instead.
 *
 * The first member error (negative errno) becomes the array's error. The
 * array signals from a deferred executor thread rather than from inside
 * the member's callback, as the kernel does with irq_work, so the array
 * lock is never taken under a member's lock; dma_fence_is_signaled() on
 * the array nevertheless turns true as soon as the last needed member has
 * signalled.
 *
 * Memory for an array comes from dma_fence_array_alloc() (or
 * dma_fence_array_create()): release frees it.
 */

/**
 * struct hetmem_fence_work - deferred-work slot of a fence container
 * @next: link in the executor's queue
 * @func: function the executor thread runs
 * @pending: nonzero from queueing until the executor starts @func
 *
 * The userspace counterpart of the kernel's irq_work, embedded in fence
 * arrays and chains so that queueing never allocates. Its fields belong to
 * libhetmem; the structure is public only because containers embed it.
 */
struct hetmem_fence_work {
	struct hetmem_fence_work *next;
	void (*func)(struct hetmem_fence_work *work);
	unsigned int pending;
};

struct dma_fence_array;

/**
 * struct dma_fence_array_cb - callback slot for one member
 * @cb: callback node queued on the member fence
 * @array: the array the callback reports to
 */
struct dma_fence_array_cb {
	struct dma_fence_cb cb;
	struct dma_fence_array *array;
};

/**
 * struct dma_fence_array - a fence for a set of fences
 * @base: the fence itself
 * @lock: lock of @base
 * @num_fences: number of members
 * @num_pending: members still needed before signalling (changed with
 *	atomic builtins)
 * @fences: the members; owned, like the references they hold
 * @work: deferred signalling
 * @num_slots: callback slots allocated after the structure (hetmem only:
 *	lets dma_fence_array_init() refuse more members than fit)
 * @callbacks: one callback slot per member
 */
struct dma_fence_array {
	struct dma_fence base;

	hetmem_spinlock_t lock;
	unsigned int num_fences;
	int num_pending;
	struct dma_fence **fences;

	struct hetmem_fence_work work;
	unsigned int num_slots;

	struct dma_fence_array_cb callbacks[];
};

/**
 * to_dma_fence_array() - downcast a fence to its array
 * @fence: fence to cast, may be NULL
 *
 * Context: Any.
 * Return: the array containing @fence, or NULL if @fence is NULL or is not
 * a dma_fence_array.
 */
static inline struct dma_fence_array *to_dma_fence_array(struct dma_fence *fence)
{
	if (!fence || !dma_fence_is_array(fence))
		return NULL;
	return hetmem_container_of(fence, struct dma_fence_array, base);
}

/**
 * dma_fence_array_for_each - iterate over the members of an array
 * @fence: current member (borrowed, no reference taken)
 * @index: unsigned int index of @fence
 * @head: an array, or any other fence, which is then visited alone
 */
#define dma_fence_array_for_each(fence, index, head)			\
	for ((index) = 0, (fence) = dma_fence_array_first(head); (fence); \
	     ++(index), (fence) = dma_fence_array_next((head), (index)))

HETMEM_API struct dma_fence_array *dma_fence_array_alloc(int num_fences);
HETMEM_API void dma_fence_array_init(struct dma_fence_array *array,
				     int num_fences, struct dma_fence **fences,
				     uint64_t context, unsigned int seqno,
				     bool signal_on_any);
HETMEM_API struct dma_fence_array *dma_fence_array_create(int num_fences,
							  struct dma_fence **fences,
							  uint64_t context,
							  unsigned int seqno,
							  bool signal_on_any);
HETMEM_API bool dma_fence_match_context(struct dma_fence *fence,
					uint64_t context);
HETMEM_API struct dma_fence *dma_fence_array_first(struct dma_fence *head);
HETMEM_API struct dma_fence *dma_fence_array_next(struct dma_fence *head,
						  unsigned int index);

HETMEM_END_DECLS

#endif /* HETMEM_FENCE_DMA_FENCE_ARRAY_H */
