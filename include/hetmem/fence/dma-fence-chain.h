/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence-chain: timelines made of fences.
 *
 * Tracks the semantics of Linux v6.17 include/linux/dma-fence-chain.h
 * (64-bit seqnos through dma_fence_init64()).
 */
#ifndef HETMEM_FENCE_DMA_FENCE_CHAIN_H
#define HETMEM_FENCE_DMA_FENCE_CHAIN_H

#include <stdint.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/fence/dma-fence.h>
/* struct hetmem_fence_work, the deferred-work slot, lives there. */
#include <hetmem/fence/dma-fence-array.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Fence chains
 *
 * A chain node links one fence (the contained fence) to the node before
 * it (prev), so that a list of nodes forms a timeline: node N signals once
 * its own fence and every fence before it have signalled, and
 * dma_fence_chain_find_seqno() finds the node that stands for "everything
 * up to seqno S". This is how syncobj timelines are built in the kernel.
 *
 * A node joins its predecessor's context when the predecessor is a chain
 * node and the new seqno is later; otherwise it starts a new context.
 * Seqnos are compared as 64-bit numbers. Walking the chain
 * (dma_fence_chain_walk(), dma_fence_chain_for_each()) unlinks nodes whose
 * fence has signalled, so long-lived timelines do not grow without bound;
 * prev is therefore an RCU-protected pointer, read with atomics inside
 * hetmem_rcu_read_lock() and replaced with compare-and-swap.
 *
 * Like arrays, a node signals from the deferred executor thread, never
 * from inside the contained fence's callback. Dropping the last reference
 * to a long chain unlinks it iteratively, so the depth of a chain never
 * becomes the depth of the stack.
 */

/**
 * struct dma_fence_chain - one node of a fence timeline
 * @base: the node's own fence
 * @prev: previous node or fence, or NULL (owned reference; RCU-protected,
 *	read with __atomic loads, replaced by compare-and-swap)
 * @prev_seqno: seqno of @prev when it was linked; kept when walks unlink
 *	signalled nodes
 * @fence: the contained fence (owned reference)
 * @cb: callback installed on the first unsignalled fence of the chain
 * @work: deferred re-arming or signalling, never in use together with @cb
 * @lock: lock of @base
 */
struct dma_fence_chain {
	struct dma_fence base;
	struct dma_fence *prev;
	uint64_t prev_seqno;
	struct dma_fence *fence;
	union {
		struct dma_fence_cb cb;
		struct hetmem_fence_work work;
	};
	hetmem_spinlock_t lock;
};

/**
 * to_dma_fence_chain() - downcast a fence to its chain node
 * @fence: fence to cast, may be NULL
 *
 * Context: Any.
 * Return: the chain node containing @fence, or NULL if @fence is NULL or
 * is not a chain node.
 */
static inline struct dma_fence_chain *to_dma_fence_chain(struct dma_fence *fence)
{
	if (!fence || !dma_fence_is_chain(fence))
		return NULL;
	return hetmem_container_of(fence, struct dma_fence_chain, base);
}

/**
 * dma_fence_chain_contained() - the fence a chain node stands for
 * @fence: a chain node, any other fence, or NULL
 *
 * Context: Any; the caller holds a reference to @fence.
 * Return: the contained fence of a chain node (borrowed, no new
 * reference), or @fence itself for anything else, including NULL.
 */
static inline struct dma_fence *dma_fence_chain_contained(struct dma_fence *fence)
{
	struct dma_fence_chain *chain = to_dma_fence_chain(fence);

	return chain ? chain->fence : fence;
}

/**
 * dma_fence_chain_for_each - walk a chain from @head towards its start
 * @iter: current node; holds a reference while the loop runs
 * @head: starting point; visited first even if signalled
 *
 * Nodes whose contained fence has signalled are skipped and unlinked. A
 * loop left with break keeps the reference in @iter, to be dropped with
 * dma_fence_put().
 */
#define dma_fence_chain_for_each(iter, head)				\
	for ((iter) = dma_fence_get(head); (iter);			\
	     (iter) = dma_fence_chain_walk(iter))

HETMEM_API struct dma_fence_chain *dma_fence_chain_alloc(void);
HETMEM_API void dma_fence_chain_free(struct dma_fence_chain *chain);
HETMEM_API void dma_fence_chain_init(struct dma_fence_chain *chain,
				     struct dma_fence *prev,
				     struct dma_fence *fence, uint64_t seqno);
HETMEM_API struct dma_fence *dma_fence_chain_walk(struct dma_fence *fence);
HETMEM_API int dma_fence_chain_find_seqno(struct dma_fence **pfence,
					  uint64_t seqno);

HETMEM_END_DECLS

#endif /* HETMEM_FENCE_DMA_FENCE_CHAIN_H */
