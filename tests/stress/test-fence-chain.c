/* SPDX-License-Identifier: MIT */
/*
 * hetmem - stress test of fence chains: one thread keeps extending a
 * timeline (chain nodes of leaf fences and of two-fence arrays), others
 * signal its fences in random order, look seqnos up, merge the head, and
 * wait on the head, all at once for harness_duration_s() seconds.
 *
 * What is checked, continuously:
 *  - dma_fence_chain_find_seqno() only ever skips fully signalled points;
 *  - a head that signalled (through the deferred executor) implies every
 *    point up to its seqno was signalled;
 *  - dma_fence_unwrap_merge() of the head is flat, context-sorted and
 *    free of fences that were signalled before the merge began;
 *  - at the end, once everything is signalled, a wait on the head
 *    returns, and no reference or memory is left behind (ASan/LSan).
 * Meant to run under ThreadSanitizer as well.
 */
#include <pthread.h>
#include <sched.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>
#include <hetmem/fence/dma-fence-unwrap.h>

#include "fence/fence-work.h"
#include "harness.h"
#include "mock-fence.h"

#define MAX_POINTS (1u << 20)
#define WINDOW 256		/* unsignalled points the builder runs ahead */
#define NSIGNALLERS 2
#define NWALKERS 2

struct leaf {
	struct dma_fence *fence;
	uint32_t point;
};

struct timeline {
	struct dma_fence *head;		/* newest node; the slot holds a ref */
	uint32_t built;			/* points published so far */
	uint8_t *remaining;		/* leaves of each point not yet signalled */
	pthread_mutex_t lock;		/* protects pending/npending */
	struct leaf *pending;
	unsigned int npending, signalled_points;
	int64_t end_ns;
	int building;
	int failed;
	unsigned long finds, merges, waits;
};

static struct timeline tl;

static void fail(const char *what, unsigned long a, unsigned long b)
{
	TH_LOG("%s (%lu, %lu)", what, a, b);
	__atomic_store_n(&tl.failed, 1, __ATOMIC_RELAXED);
}

static bool running(void)
{
	return !__atomic_load_n(&tl.failed, __ATOMIC_RELAXED) &&
	       hetmem_ktime_get() < tl.end_ns;
}

/* A leaf fence of @point, on a context of its own. */
static struct dma_fence *new_leaf(uint32_t point)
{
	return mock_fence_create_on(0, NULL, dma_fence_context_alloc(1), point);
}

/* Hand a reference to @fence of @point to the signallers. */
static void add_pending(struct dma_fence *fence, uint32_t point)
{
	pthread_mutex_lock(&tl.lock);
	tl.pending[tl.npending].fence = dma_fence_get(fence);
	tl.pending[tl.npending].point = point;
	tl.npending++;
	pthread_mutex_unlock(&tl.lock);
}

/* The payload of @point: a leaf, or every fourth point an array of two. */
static struct dma_fence *new_payload(uint32_t point)
{
	struct dma_fence **leaves;
	struct dma_fence_array *array;

	if (point % 4) {
		struct dma_fence *leaf = new_leaf(point);

		__atomic_store_n(&tl.remaining[point], 1, __ATOMIC_RELAXED);
		add_pending(leaf, point);
		return leaf;
	}
	leaves = calloc(2, sizeof(*leaves));
	ASSERT_NONNULL(leaves);
	leaves[0] = new_leaf(point);
	leaves[1] = new_leaf(point);
	__atomic_store_n(&tl.remaining[point], 2, __ATOMIC_RELAXED);
	add_pending(leaves[0], point);
	add_pending(leaves[1], point);
	array = dma_fence_array_create(2, leaves, dma_fence_context_alloc(1),
				       point, false);
	ASSERT_NONNULL(array);
	return &array->base;
}

static struct dma_fence *get_head(void)
{
	struct dma_fence *head;

	hetmem_rcu_read_lock();
	head = dma_fence_get_rcu_safe(&tl.head);
	hetmem_rcu_read_unlock();
	return head;
}

static void publish_point(uint32_t point)
{
	struct dma_fence_chain *node = dma_fence_chain_alloc();
	struct dma_fence *prev = get_head();

	ASSERT_NONNULL(node);
	/* The node takes our reference to prev and to the payload. */
	dma_fence_chain_init(node, prev, new_payload(point), point);
	if (node->base.context != (prev ? prev->context : node->base.context))
		fail("node left the timeline", point, 0);
	prev = __atomic_exchange_n(&tl.head, &node->base, __ATOMIC_ACQ_REL);
	__atomic_store_n(&tl.built, point, __ATOMIC_RELEASE);
	/* Readers may still be acquiring it: freed after a grace period. */
	dma_fence_put(prev);
}

static void *builder(void *arg)
{
	uint32_t point;

	for (point = 1; point < MAX_POINTS && running(); point++) {
		while (running() &&
		       point - __atomic_load_n(&tl.signalled_points,
					       __ATOMIC_RELAXED) > WINDOW)
			sched_yield();
		publish_point(point);
	}
	__atomic_store_n(&tl.building, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* Signal one random pending leaf; false if none is pending. */
static bool signal_one(unsigned int *seed)
{
	struct leaf leaf;
	unsigned int i;

	pthread_mutex_lock(&tl.lock);
	if (!tl.npending) {
		pthread_mutex_unlock(&tl.lock);
		return false;
	}
	i = rand_r(seed) % tl.npending;
	leaf = tl.pending[i];
	tl.pending[i] = tl.pending[--tl.npending];
	pthread_mutex_unlock(&tl.lock);
	/* Count it before signalling: observers only see signalled leaves. */
	if (__atomic_sub_fetch(&tl.remaining[leaf.point], 1, __ATOMIC_RELEASE) == 0)
		__atomic_add_fetch(&tl.signalled_points, 1, __ATOMIC_RELAXED);
	if (rand_r(seed) % 8 == 0)
		dma_fence_set_error(leaf.fence, -EIO);
	dma_fence_signal(leaf.fence);
	dma_fence_put(leaf.fence);
	return true;
}

static void *signaller(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	while (running() || __atomic_load_n(&tl.building, __ATOMIC_ACQUIRE))
		if (!signal_one(&seed))
			sched_yield();
	while (signal_one(&seed))
		;
	return NULL;
}

/* Every point in (@from, @to] has all its leaves counted as signalled. */
static bool points_done(uint32_t from, uint32_t to)
{
	uint32_t p;

	for (p = from + 1; p <= to; p++)
		if (__atomic_load_n(&tl.remaining[p], __ATOMIC_ACQUIRE))
			return false;
	return true;
}

static void check_find(struct dma_fence *head, unsigned int *seed)
{
	/* Mostly the recent past, where points are still being signalled. */
	uint64_t span = head->seqno < 4 * WINDOW ? head->seqno : 4 * WINDOW;
	uint64_t seqno = head->seqno - rand_r(seed) % span;
	struct dma_fence *fence = dma_fence_get(head);
	uint64_t found;

	if (dma_fence_chain_find_seqno(&fence, seqno)) {
		fail("find_seqno failed", seqno, head->seqno);
		dma_fence_put(fence);
		return;
	}
	found = fence ? fence->seqno : 0;
	/* Points far below the window were all signalled long ago. */
	if (seqno > found + 8 * WINDOW)
		found = seqno - 8 * WINDOW;
	if (!points_done((uint32_t)found, (uint32_t)seqno))
		fail("find_seqno skipped a pending point", seqno, found);
	dma_fence_put(fence);
	__atomic_add_fetch(&tl.finds, 1, __ATOMIC_RELAXED);
}

static void check_merge(struct dma_fence *head)
{
	struct dma_fence *merged, *fence;
	unsigned int index;
	uint64_t last = 0;

	merged = dma_fence_unwrap_merge(head);
	if (!merged) {
		fail("merge returned NULL", 0, 0);
		return;
	}
	dma_fence_array_for_each(fence, index, merged) {
		if (dma_fence_is_container(fence))
			fail("merge result not flat", index, 0);
		if (index && fence->context <= last)
			fail("merge result not sorted", fence->context, last);
		last = fence->context;
	}
	dma_fence_put(merged);
	__atomic_add_fetch(&tl.merges, 1, __ATOMIC_RELAXED);
}

static void *walker(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;
	struct dma_fence *head;

	while (running()) {
		head = get_head();
		if (!head) {
			sched_yield();
			continue;
		}
		check_find(head, &seed);
		if (rand_r(&seed) % 16 == 0)
			check_merge(head);
		dma_fence_put(head);
	}
	return NULL;
}

static void *waiter(void *arg)
{
	uint32_t verified = 0;
	struct dma_fence *head;

	while (running()) {
		head = get_head();
		if (!head) {
			sched_yield();
			continue;
		}
		if (dma_fence_wait_timeout(head, false, 2) > 0) {
			if (!points_done(verified, (uint32_t)head->seqno))
				fail("head signalled before its points", head->seqno,
				     verified);
			verified = (uint32_t)head->seqno;
			__atomic_add_fetch(&tl.waits, 1, __ATOMIC_RELAXED);
		}
		dma_fence_put(head);
	}
	return NULL;
}

static void drain_and_check(void)
{
	struct dma_fence *head = __atomic_load_n(&tl.head, __ATOMIC_ACQUIRE);
	uint32_t built = __atomic_load_n(&tl.built, __ATOMIC_ACQUIRE);

	ASSERT_NONNULL(head);
	ASSERT_EQ(tl.npending, 0);
	ASSERT_TRUE(points_done(0, built));
	ASSERT_EQ(dma_fence_wait_timeout(head, false, 10 * HETMEM_HZ) > 0, 1);
	/* Chains do not propagate member errors. */
	ASSERT_EQ(dma_fence_get_status(head), 1);
	hetmem_fence_work_flush();
	ASSERT_EQ(hetmem_kref_read(&head->refcount), 1);
	dma_fence_put(head);
	tl.head = NULL;
}

TEST_TIMEOUT(build_walk_signal, 60)
{
	pthread_t b, s[NSIGNALLERS], w[NWALKERS], wt;
	unsigned int i;

	pthread_mutex_init(&tl.lock, NULL);
	tl.remaining = calloc(MAX_POINTS, 1);
	/* At most WINDOW + 1 unsignalled points of at most two leaves. */
	tl.pending = calloc(2 * (WINDOW + 2), sizeof(*tl.pending));
	ASSERT_NONNULL(tl.remaining);
	ASSERT_NONNULL(tl.pending);
	tl.building = 1;
	tl.end_ns = hetmem_ktime_get() +
		    (int64_t)(harness_duration_s() * HETMEM_NSEC_PER_SEC);
	ASSERT_EQ(pthread_create(&b, NULL, builder, NULL), 0);
	for (i = 0; i < NSIGNALLERS; i++)
		ASSERT_EQ(pthread_create(&s[i], NULL, signaller,
					 (void *)(uintptr_t)(i + 1)), 0);
	for (i = 0; i < NWALKERS; i++)
		ASSERT_EQ(pthread_create(&w[i], NULL, walker,
					 (void *)(uintptr_t)(i + 100)), 0);
	ASSERT_EQ(pthread_create(&wt, NULL, waiter, NULL), 0);
	pthread_join(b, NULL);
	for (i = 0; i < NSIGNALLERS; i++)
		pthread_join(s[i], NULL);
	for (i = 0; i < NWALKERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(wt, NULL);
	ASSERT_EQ(tl.failed, 0);
	TH_LOG("%u points, %lu lookups, %lu merges, %lu head waits", tl.built,
	       tl.finds, tl.merges, tl.waits);
	drain_and_check();
	hetmem_rcu_barrier();
	free(tl.pending);
	free(tl.remaining);
}
