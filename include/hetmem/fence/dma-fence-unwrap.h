/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence-unwrap: iterate over and merge container fences.
 *
 * Tracks the semantics of Linux v6.17 include/linux/dma-fence-unwrap.h
 * (collect, sort and de-duplicate merge; dma_fence_dedup_array()).
 */
#ifndef HETMEM_FENCE_DMA_FENCE_UNWRAP_H
#define HETMEM_FENCE_DMA_FENCE_UNWRAP_H

#include <hetmem/core/compiler.h>
#include <hetmem/fence/dma-fence.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Unwrapping containers
 *
 * Fences handed around between components are often containers: a chain
 * whose nodes contain arrays of leaf fences. dma_fence_unwrap_for_each()
 * visits every leaf of such a nesting (chain -> array -> leaf), skipping
 * chain nodes that already signalled. dma_fence_unwrap_merge() flattens
 * any number of fences into one: it drops signalled leaves, keeps only
 * the latest fence of each context and returns either that single fence,
 * a new signal-all dma_fence_array sorted by context, or, when nothing is
 * pending, a new already signalled fence carrying the latest timestamp of
 * the leaves. The inputs are never consumed.
 */

/**
 * struct dma_fence_unwrap - cursor of dma_fence_unwrap_for_each()
 * @chain: current chain position; the cursor's only reference
 * @array: contained fence of @chain, an array or a leaf
 * @index: position inside @array
 */
struct dma_fence_unwrap {
	struct dma_fence *chain;
	struct dma_fence *array;
	unsigned int index;
};

HETMEM_API struct dma_fence *dma_fence_unwrap_first(struct dma_fence *head,
						    struct dma_fence_unwrap *cursor);
HETMEM_API struct dma_fence *dma_fence_unwrap_next(struct dma_fence_unwrap *cursor);
HETMEM_API int dma_fence_dedup_array(struct dma_fence **fences, int num_fences);
HETMEM_API struct dma_fence *__dma_fence_unwrap_merge(unsigned int num_fences,
						      struct dma_fence **fences,
						      struct dma_fence_unwrap *cursors);

/**
 * dma_fence_unwrap_for_each - visit every leaf fence of a container
 * @fence: current leaf (borrowed, no reference taken)
 * @cursor: struct dma_fence_unwrap * holding the iteration state
 * @head: chain, array, leaf fence or NULL
 *
 * The cursor holds one reference while the loop runs and none once it
 * ends; a loop left with break must drop @cursor->chain with
 * dma_fence_put().
 */
#define dma_fence_unwrap_for_each(fence, cursor, head)			\
	for ((fence) = dma_fence_unwrap_first((head), (cursor)); (fence); \
	     (fence) = dma_fence_unwrap_next(cursor))

/**
 * dma_fence_unwrap_merge - merge fences into one, flattening containers
 * @...: the fences (each may be NULL, a leaf, an array or a chain)
 *
 * Expands to a GNU statement expression that keeps the argument array and
 * one cursor per argument on the caller's stack, then calls
 * __dma_fence_unwrap_merge(). Evaluates to a new reference, or NULL when
 * out of memory.
 */
#define dma_fence_unwrap_merge(...)					\
	__extension__({							\
		struct dma_fence *__hetmem_uw_f[] = { __VA_ARGS__ };	\
		struct dma_fence_unwrap __hetmem_uw_c[sizeof(__hetmem_uw_f) / \
						      sizeof(__hetmem_uw_f[0])]; \
									\
		__dma_fence_unwrap_merge(sizeof(__hetmem_uw_f) /	\
					 sizeof(__hetmem_uw_f[0]),	\
					 __hetmem_uw_f, __hetmem_uw_c);	\
	})

HETMEM_END_DECLS

#endif /* HETMEM_FENCE_DMA_FENCE_UNWRAP_H */
