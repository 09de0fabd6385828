/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence-unwrap: iterate over and merge container fences.
 */
#include <stdlib.h>

#include "fence/internal.h"

#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>
#include <hetmem/fence/dma-fence-unwrap.h>

/**
 * DOC: Unwrap cursor
 *
 * The cursor follows the only nesting that is allowed: a chain whose
 * nodes contain arrays (or leaves), and arrays that contain leaves. It
 * holds one reference, to the current chain position, and walks with
 * dma_fence_chain_walk(), so signalled chain nodes are skipped (and
 * unlinked) as it goes. A leaf or an array given as head is treated as a
 * chain of one. Leaves are returned without a reference: they stay alive
 * because the cursor's chain position (or the caller's head) holds them.
 */

/**
 * DOC: Merging
 *
 * __dma_fence_unwrap_merge() makes two passes over the leaves of all its
 * inputs. The first only counts the unsignalled leaves, remembers the last
 * one, and tracks the latest timestamp of the signalled ones; that settles
 * the common cases without allocating: nothing pending gives a new private
 * stub carrying that timestamp, one pending leaf is returned itself (so
 * merging a fence with signalled ones preserves its identity). Otherwise
 * the second pass collects referenced pointers to the unsignalled leaves
 * (fewer, never more, can be found now, since fences only ever become
 * signalled), dma_fence_dedup_array() sorts them by context and keeps the
 * latest of each context, and more than one survivor becomes a new
 * signal-all dma_fence_array on a fresh context with seqno 1.
 */

/**
 * DOC: Differences from the kernel
 *
 * - An empty array met while unwrapping is skipped; the kernel's cursor
 *   stops there and keeps its chain reference.
 * - dma_fence_dedup_array() with fewer than one fence warns and returns 0;
 *   the kernel returns 1.
 * - When the second merge pass finds at most one pending leaf, the
 *   reference taken on the last leaf of the first pass is dropped too.
 */

/* Start on the contained fence of the cursor's chain position. */
static struct dma_fence *unwrap_contained(struct dma_fence_unwrap *cursor)
{
	struct dma_fence *leaf;

	while (cursor->chain) {
		cursor->array = dma_fence_chain_contained(cursor->chain);
		cursor->index = 0;
		leaf = dma_fence_array_first(cursor->array);
		if (leaf)
			return leaf;
		cursor->chain = dma_fence_chain_walk(cursor->chain);
	}
	cursor->array = NULL;
	return NULL;
}

/**
 * dma_fence_unwrap_first() - start iterating over the leaves of a fence
 * @head: chain, array, leaf fence or NULL
 * @cursor: iteration state, initialised here
 *
 * Context: Any thread; the caller holds a reference to @head.
 * Return: the first leaf (no reference taken), or NULL if there is none,
 * in which case @cursor holds no reference.
 */
HETMEM_API struct dma_fence *dma_fence_unwrap_first(struct dma_fence *head,
						    struct dma_fence_unwrap *cursor)
{
	cursor->chain = dma_fence_get(head);
	return unwrap_contained(cursor);
}

/**
 * dma_fence_unwrap_next() - continue iterating over the leaves
 * @cursor: state from dma_fence_unwrap_first()
 *
 * Context: Any thread.
 * Return: the next leaf (no reference taken), or NULL at the end, when
 * @cursor has dropped its reference.
 */
HETMEM_API struct dma_fence *dma_fence_unwrap_next(struct dma_fence_unwrap *cursor)
{
	struct dma_fence *leaf;

	cursor->index++;
	leaf = dma_fence_array_next(cursor->array, cursor->index);
	if (leaf)
		return leaf;
	cursor->chain = dma_fence_chain_walk(cursor->chain);
	return unwrap_contained(cursor);
}

/* Context ascending; within a context the later fence first. */
static int fence_cmp(const void *pa, const void *pb)
{
	struct dma_fence *a = *(struct dma_fence *const *)pa;
	struct dma_fence *b = *(struct dma_fence *const *)pb;

	if (a->context != b->context)
		return a->context < b->context ? -1 : 1;
	if (dma_fence_is_later(a, b))
		return -1;
	if (dma_fence_is_later(b, a))
		return 1;
	return 0;
}

/**
 * dma_fence_dedup_array() - keep only the latest fence of each context
 * @fences: referenced fences; reordered in place
 * @num_fences: number of entries, at least 1
 *
 * Sorts @fences by ascending context, then keeps the first entry of each
 * context, which is its latest fence, and drops the references of the
 * others. Within a context seqnos are compared with dma_fence_is_later(),
 * so 32-bit seqnos must lie within 2^31 of each other.
 *
 * Context: Any thread; does not block or allocate.
 * Return: the number of fences left at the start of @fences; 0 (with a
 * warning) when @num_fences is below 1.
 */
HETMEM_API int dma_fence_dedup_array(struct dma_fence **fences, int num_fences)
{
	int i, kept = 0;

	if (HETMEM_WARN_ON(num_fences < 1 || !fences))
		return 0;
	qsort(fences, (size_t)num_fences, sizeof(*fences), fence_cmp);
	for (i = 1; i < num_fences; i++) {
		if (fences[i]->context == fences[kept]->context)
			dma_fence_put(fences[i]);
		else
			fences[++kept] = fences[i];
	}
	return kept + 1;
}

struct merge_scan {
	struct dma_fence *last;		/* referenced, or NULL */
	hetmem_ktime_t timestamp;	/* latest of the signalled leaves */
};

static void merge_note_signaled(struct merge_scan *scan,
				struct dma_fence *leaf)
{
	hetmem_ktime_t t = dma_fence_timestamp(leaf);

	if (t > scan->timestamp)
		scan->timestamp = t;
}

/* Pass 1: count pending leaves, keep a reference to the last one seen. */
static unsigned int merge_count(unsigned int num_fences,
				struct dma_fence **fences,
				struct dma_fence_unwrap *cursors,
				struct merge_scan *scan)
{
	struct dma_fence *leaf;
	unsigned int i, count = 0;

	for (i = 0; i < num_fences; i++) {
		dma_fence_unwrap_for_each(leaf, &cursors[i], fences[i]) {
			if (dma_fence_is_signaled(leaf)) {
				merge_note_signaled(scan, leaf);
				continue;
			}
			dma_fence_put(scan->last);
			scan->last = dma_fence_get(leaf);
			count++;
		}
	}
	return count;
}

/* Pass 2: referenced pointers to at most @max pending leaves. */
static unsigned int merge_collect(unsigned int num_fences,
				  struct dma_fence **fences,
				  struct dma_fence_unwrap *cursors,
				  struct dma_fence **out, unsigned int max,
				  struct merge_scan *scan)
{
	struct dma_fence *leaf;
	unsigned int i, count = 0;

	for (i = 0; i < num_fences; i++) {
		dma_fence_unwrap_for_each(leaf, &cursors[i], fences[i]) {
			if (dma_fence_is_signaled(leaf))
				merge_note_signaled(scan, leaf);
			else if (count < max)
				out[count++] = dma_fence_get(leaf);
		}
	}
	return count;
}

/* Zero or one pending leaf: a stub, or that leaf (reference consumed). */
static struct dma_fence *merge_trivial(struct dma_fence *single,
				       const struct merge_scan *scan)
{
	if (single)
		return single;
	return dma_fence_allocate_private_stub(scan->timestamp);
}

static void put_fences(struct dma_fence **fences, int count)
{
	while (count-- > 0)
		dma_fence_put(fences[count]);
}

/* Dedup @leaves (@count >= 2, referenced) and wrap the survivors. */
static struct dma_fence *merge_build(struct dma_fence **leaves, int count)
{
	struct dma_fence_array *array;

	count = dma_fence_dedup_array(leaves, count);
	if (count == 1) {
		struct dma_fence *single = leaves[0];

		free(leaves);
		return single;
	}
	array = dma_fence_array_create(count, leaves, dma_fence_context_alloc(1),
				       1, false);
	if (!array)
		goto err_put_leaves;
	return &array->base;

err_put_leaves:
	put_fences(leaves, count);
	free(leaves);
	return NULL;
}

/**
 * __dma_fence_unwrap_merge() - merge fences into one, flattening containers
 * @num_fences: number of entries in @fences
 * @fences: the inputs (each may be NULL, a leaf, an array or a chain);
 *	the caller keeps its references
 * @cursors: @num_fences cursors of scratch space
 *
 * Use through dma_fence_unwrap_merge(). The result is flat (no nested
 * container), contains no fence that was signalled during the merge, at
 * most one fence per context, the latest, sorted by ascending context.
 *
 * Context: Any thread that may allocate; does not block otherwise.
 * Return: a new reference to a signalled private stub (timestamp: the
 * latest of the signalled leaves, 0 if there were none) when nothing is
 * pending; to the only pending leaf when there is one; otherwise to a new
 * dma_fence_array. NULL when out of memory (no reference is leaked).
 */
HETMEM_API struct dma_fence *__dma_fence_unwrap_merge(unsigned int num_fences,
						      struct dma_fence **fences,
						      struct dma_fence_unwrap *cursors)
{
	struct merge_scan scan = { .last = NULL, .timestamp = 0 };
	struct dma_fence **leaves, *single;
	unsigned int count;

	count = merge_count(num_fences, fences, cursors, &scan);
	if (count <= 1)
		return merge_trivial(scan.last, &scan);
	dma_fence_put(scan.last);
	if (count > (unsigned int)INT32_MAX)
		return NULL;
	leaves = malloc(count * sizeof(*leaves));
	if (!leaves)
		return NULL;
	count = merge_collect(num_fences, fences, cursors, leaves, count, &scan);
	if (count > 1)
		return merge_build(leaves, (int)count);
	/* Raced with signalling: back to the cases without an array. */
	single = count ? leaves[0] : NULL;
	free(leaves);
	return merge_trivial(single, &scan);
}
