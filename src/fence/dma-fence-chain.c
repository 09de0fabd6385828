/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence-chain: timelines made of fences.
 */
#include <stdlib.h>

#include "fence/internal.h"
#include "fence/fence-work.h"

#include <hetmem/fence/dma-fence-chain.h>

/**
 * DOC: Walking and garbage collection
 *
 * Every walk step looks at the node's predecessor. A predecessor whose own
 * fence (for a chain node, its contained fence) is unsignalled is where
 * the walk stops. A signalled one is cut out: the node's prev is swung by
 * compare-and-swap from it to its own predecessor (or to NULL for a
 * signalled plain fence), and the step is retried. Whoever wins the swap
 * inherits the link's reference to the old predecessor and drops it; a
 * loser drops the replacement it had fetched. prev_seqno keeps the value
 * it had when the node was linked, because find_seqno() needs to know
 * which seqnos a node once covered.
 *
 * prev is read with dma_fence_get_rcu_safe() inside an RCU read section:
 * another walker may be swinging and releasing it at the same moment, and
 * chain nodes are freed only after a grace period.
 */

/**
 * DOC: Chain signalling
 *
 * A node is signalled when its contained fence and the contained fences
 * of all its predecessors are. The signaled() op checks exactly that by
 * walking the chain, so dma_fence_is_signaled() is accurate at any time.
 *
 * Enabling signalling installs a single callback, owned by the node (it
 * holds a reference to the node), on the first unsignalled fence found
 * by walking from the node itself. When that fence signals, the callback
 * queues the node's deferred work and the executor thread walks again:
 * it re-arms the callback on the next unsignalled fence, or, when none is
 * left, signals the node and drops the reference. Callback slot and work
 * slot share storage because at most one of them is ever in use. The
 * node is never signalled under the lock of the fence that completed it.
 */

/**
 * DOC: Releasing long chains
 *
 * Releasing a node drops its reference to prev, which may release prev,
 * which drops its prev... A chain of thousands of nodes would recurse
 * thousands of levels. Release therefore first unlinks, in a loop, every
 * predecessor that is a chain node held only by this link: it moves that
 * predecessor's prev into its own slot and releases the predecessor with
 * an empty prev, which costs one level of stack. The loop stops at a
 * predecessor someone else also references, or at a plain fence. Memory is
 * freed after an RCU grace period (dma_fence_free()), since walkers may
 * still be reading prev pointers.
 */

/**
 * DOC: Differences from the kernel
 *
 * - Deferred re-arming and signalling use the fence layer's executor
 *   thread (fence-work.c) instead of irq_work.
 * - dma_fence_chain_alloc() is an exported function instead of an inline
 *   around kmalloc(); it also makes sure the executor thread exists and
 *   returns NULL if it cannot be created.
 * - dma_fence_chain_init() with a NULL @fence warns and contains the
 *   signalled stub fence instead, and dma_fence_chain_find_seqno() with a
 *   NULL @pfence warns and returns -EINVAL, where the kernel would crash
 *   later.
 * - dma_fence_chain_find_seqno() stops at a plain fence that happens to
 *   share the chain's context rather than reading it as a chain node.
 */

static struct dma_fence_chain *fence_to_chain(struct dma_fence *fence)
{
	return hetmem_container_of(fence, struct dma_fence_chain, base);
}

static const char *chain_get_driver_name(struct dma_fence *fence)
{
	return "dma_fence_chain";
}

static const char *chain_get_timeline_name(struct dma_fence *fence)
{
	return "unbound";
}

/* A new reference to @chain's predecessor, or NULL. */
static struct dma_fence *chain_get_prev(struct dma_fence_chain *chain)
{
	struct dma_fence *prev;

	hetmem_rcu_read_lock();
	prev = dma_fence_get_rcu_safe(&chain->prev);
	hetmem_rcu_read_unlock();
	return prev;
}

/*
 * If @prev may be cut out of the chain, store its replacement (a new
 * reference, or NULL) in @replacement and return true.
 */
static bool chain_prev_is_done(struct dma_fence *prev,
			       struct dma_fence **replacement)
{
	struct dma_fence_chain *prev_chain = to_dma_fence_chain(prev);

	if (prev_chain) {
		if (!dma_fence_is_signaled(prev_chain->fence))
			return false;
		*replacement = chain_get_prev(prev_chain);
		return true;
	}
	if (!dma_fence_is_signaled(prev))
		return false;
	*replacement = NULL;
	return true;
}

/* Swing @chain->prev from @prev to @replacement, settling references. */
static void chain_cut(struct dma_fence_chain *chain, struct dma_fence *prev,
		      struct dma_fence *replacement)
{
	struct dma_fence *expected = prev;

	if (__atomic_compare_exchange_n(&chain->prev, &expected, replacement,
					false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		dma_fence_put(prev);	/* the link's old reference */
	else
		dma_fence_put(replacement);
}

/**
 * dma_fence_chain_walk() - step to the previous unsignalled chain element
 * @fence: current position; the caller's reference is consumed
 *
 * Predecessors whose fences have signalled are unlinked on the way (see
 * "Walking and garbage collection").
 *
 * Context: Any thread, including fence callbacks; does not block. May
 * release nodes.
 * Return: a new reference to the nearest predecessor that is not done yet
 * (a chain node or a plain fence), or NULL when there is none or @fence
 * is not a chain node.
 */
HETMEM_API struct dma_fence *dma_fence_chain_walk(struct dma_fence *fence)
{
	struct dma_fence_chain *chain = to_dma_fence_chain(fence);
	struct dma_fence *prev, *replacement;

	if (!chain) {
		dma_fence_put(fence);
		return NULL;
	}
	while ((prev = chain_get_prev(chain))) {
		if (!chain_prev_is_done(prev, &replacement))
			break;
		chain_cut(chain, prev, replacement);
		dma_fence_put(prev);
	}
	dma_fence_put(fence);
	return prev;
}

/**
 * dma_fence_chain_find_seqno() - find the node that covers a seqno
 * @pfence: in: a chain node the caller holds a reference to; out, on
 *	success: a new reference to the node to wait for, or NULL if
 *	everything up to @seqno has signalled
 * @seqno: the timeline point wanted
 *
 * Walks from *@pfence towards the start of its timeline and stops at the
 * first node whose predecessor was linked below @seqno (or that belongs
 * to another timeline). The result covers @seqno: its fence and those
 * before it include every fence up to @seqno. A @seqno between two nodes
 * gives the later node; asking a node for its own seqno gives the node.
 * On success the caller's original reference is dropped.
 *
 * Context: Any thread; does not block.
 * Return: 0 on success (also for @seqno 0, which leaves *@pfence and its
 * reference untouched); -EINVAL, leaving *@pfence and the reference
 * untouched, if *@pfence is not a chain node or its seqno is below
 * @seqno, or @pfence is NULL.
 */
HETMEM_API int dma_fence_chain_find_seqno(struct dma_fence **pfence,
					  uint64_t seqno)
{
	struct dma_fence_chain *chain, *node;

	if (HETMEM_WARN_ON(!pfence))
		return -EINVAL;
	if (!seqno)
		return 0;
	chain = to_dma_fence_chain(*pfence);
	if (!chain || chain->base.seqno < seqno)
		return -EINVAL;
	dma_fence_chain_for_each(*pfence, &chain->base) {
		node = to_dma_fence_chain(*pfence);
		if (!node || node->base.context != chain->base.context ||
		    node->prev_seqno < seqno)
			break;
	}
	dma_fence_put(&chain->base);
	return 0;
}

static void chain_work_func(struct hetmem_fence_work *work);

static void chain_fence_signaled(struct dma_fence *fence,
				 struct dma_fence_cb *cb)
{
	struct dma_fence_chain *chain =
		hetmem_container_of(cb, struct dma_fence_chain, cb);

	/* @cb is spent; its storage becomes the work slot. */
	hetmem_fence_work_init(&chain->work, chain_work_func);
	hetmem_fence_work_queue(&chain->work);
	dma_fence_put(fence);
}

/*
 * Install @head's callback on the first unsignalled fence of the chain.
 * On success the callback owns a new reference to @head and one to that
 * fence; return false when every fence has signalled.
 */
static bool chain_arm(struct dma_fence_chain *head)
{
	struct dma_fence *iter, *fence;

	dma_fence_get(&head->base);
	dma_fence_chain_for_each(iter, &head->base) {
		fence = dma_fence_get(dma_fence_chain_contained(iter));
		if (!dma_fence_add_callback(fence, &head->cb,
					    chain_fence_signaled)) {
			dma_fence_put(iter);
			return true;
		}
		dma_fence_put(fence);
	}
	dma_fence_put(&head->base);
	return false;
}

static void chain_work_func(struct hetmem_fence_work *work)
{
	struct dma_fence_chain *chain =
		hetmem_container_of(work, struct dma_fence_chain, work);

	if (!chain_arm(chain))
		dma_fence_signal(&chain->base);
	/* The reference the fired callback owned. */
	dma_fence_put(&chain->base);
}

static bool chain_enable_signaling(struct dma_fence *fence)
{
	return chain_arm(fence_to_chain(fence));
}

static bool chain_signaled(struct dma_fence *fence)
{
	struct dma_fence *iter;

	dma_fence_chain_for_each(iter, fence) {
		if (!dma_fence_is_signaled(dma_fence_chain_contained(iter))) {
			dma_fence_put(iter);
			return false;
		}
	}
	return true;
}

/*
 * Unlink every predecessor that is a chain node referenced only by our
 * link, releasing each with an empty prev (one stack level each).
 * Returns what is left in our prev slot, still referenced by it.
 */
static struct dma_fence *chain_unlink_sole_predecessors(struct dma_fence_chain *chain)
{
	struct dma_fence *prev = __atomic_load_n(&chain->prev, __ATOMIC_ACQUIRE);
	struct dma_fence_chain *prev_chain;

	while ((prev_chain = to_dma_fence_chain(prev)) &&
	       hetmem_kref_read(&prev->refcount) == 1) {
		/* Ours is its last reference: nobody can walk or cut it. */
		prev = __atomic_load_n(&prev_chain->prev, __ATOMIC_ACQUIRE);
		__atomic_store_n(&chain->prev, prev, __ATOMIC_RELEASE);
		__atomic_store_n(&prev_chain->prev, NULL, __ATOMIC_RELEASE);
		dma_fence_put(&prev_chain->base);
	}
	return prev;
}

static void chain_release(struct dma_fence *fence)
{
	struct dma_fence_chain *chain = fence_to_chain(fence);

	dma_fence_put(chain_unlink_sole_predecessors(chain));
	dma_fence_put(chain->fence);
	/* base is the first member: this frees the node after a grace period. */
	dma_fence_free(fence);
}

static void chain_set_deadline(struct dma_fence *fence,
			       hetmem_ktime_t deadline)
{
	struct dma_fence *iter;

	dma_fence_chain_for_each(iter, fence)
		dma_fence_set_deadline(dma_fence_chain_contained(iter), deadline);
}

_Static_assert(offsetof(struct dma_fence_chain, base) == 0,
	       "dma_fence_free() must free the chain node allocation");

/**
 * dma_fence_chain_ops - the ops table of every dma_fence_chain node
 *
 * Exported so that dma_fence_is_chain() can recognise nodes by identity.
 */
HETMEM_API const struct dma_fence_ops dma_fence_chain_ops = {
	.get_driver_name = chain_get_driver_name,
	.get_timeline_name = chain_get_timeline_name,
	.enable_signaling = chain_enable_signaling,
	.signaled = chain_signaled,
	.release = chain_release,
	.set_deadline = chain_set_deadline,
};

/**
 * dma_fence_chain_alloc() - allocate a chain node
 *
 * The node is not initialised. Give it to dma_fence_chain_init(), or free
 * it with dma_fence_chain_free() if it ends up unused. Also makes sure the
 * fence layer's executor thread exists.
 *
 * Context: Any thread that may allocate and block briefly.
 * Return: the node, or NULL when out of memory or when the executor thread
 * cannot be created.
 */
HETMEM_API struct dma_fence_chain *dma_fence_chain_alloc(void)
{
	if (hetmem_fence_work_start())
		return NULL;
	return malloc(sizeof(struct dma_fence_chain));
}

/**
 * dma_fence_chain_free() - free a node that was never initialised
 * @chain: node from dma_fence_chain_alloc(), or NULL
 *
 * An initialised node is released with dma_fence_put() instead.
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void dma_fence_chain_free(struct dma_fence_chain *chain)
{
	free(chain);
}

/**
 * dma_fence_chain_init() - initialise a chain node
 * @chain: node from dma_fence_chain_alloc()
 * @prev: previous node or fence, or NULL; the reference passes to @chain
 * @fence: the fence the node stands for; the reference passes to @chain.
 *	Must not be a chain node (warning): chains link only through @prev.
 * @seqno: the node's position on the timeline
 *
 * The node continues @prev's timeline (same context) if @prev is a chain
 * node and @seqno is later than @prev's seqno. Otherwise it starts a new
 * context, and if @prev is a chain node its seqno is raised to @prev's
 * when lower, so seqnos never go backwards along a chain. The node
 * compares seqnos as 64-bit numbers. A NULL @fence warns and is replaced
 * by the signalled stub fence.
 *
 * Context: Any thread; allocates nothing.
 * Return: nothing.
 */
HETMEM_API void dma_fence_chain_init(struct dma_fence_chain *chain,
				     struct dma_fence *prev,
				     struct dma_fence *fence, uint64_t seqno)
{
	struct dma_fence_chain *prev_chain = to_dma_fence_chain(prev);
	uint64_t context;

	if (HETMEM_WARN(!fence, "dma_fence_chain_init: NULL fence"))
		fence = dma_fence_get_stub();
	hetmem_spin_lock_init(&chain->lock);
	__atomic_store_n(&chain->prev, prev, __ATOMIC_RELAXED);
	chain->fence = fence;
	chain->prev_seqno = 0;
	if (prev_chain && seqno > prev->seqno) {
		context = prev->context;
		chain->prev_seqno = prev->seqno;
	} else {
		context = dma_fence_context_alloc(1);
		if (prev_chain && prev->seqno > seqno)
			seqno = prev->seqno;
	}
	dma_fence_init64(&chain->base, &dma_fence_chain_ops, &chain->lock,
			 context, seqno);
	HETMEM_WARN(dma_fence_is_chain(fence),
		    "dma_fence_chain_init: contained fence is a chain node");
}
