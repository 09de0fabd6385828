/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of dma-fence-chain. The first cases carry the names
 * and intent of the kernel's st-dma-fence-chain.c selftests (written anew
 * here); the rest cover the context join rule, walk garbage collection,
 * deep releases on a small stack, and the warnings and deviations.
 */
#include <pthread.h>
#include <time.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>

#include "fence/fence-work.h"
#include "harness.h"
#include "mock-fence.h"

#define CHAIN_SZ 4096

/*
 * Context 0, seqno 0: a chain node carries the point, never its payload,
 * and deadline_fan_out reads the hints the walk forwards.
 */
static struct dma_fence *mock_fence(void)
{
	return mock_fence_create_on(MOCK_FENCE_DEADLINE, NULL, 0, 0);
}

/* A new node holding its own references to @prev and @fence. */
static struct dma_fence *mock_chain(struct dma_fence *prev,
				    struct dma_fence *fence, uint64_t seqno)
{
	struct dma_fence_chain *chain = dma_fence_chain_alloc();

	ASSERT_NONNULL(chain);
	dma_fence_chain_init(chain, dma_fence_get(prev), dma_fence_get(fence),
			     seqno);
	return &chain->base;
}

static unsigned int refs(struct dma_fence *f)
{
	return hetmem_kref_read(&f->refcount);
}

static struct dma_fence *chain_prev(struct dma_fence *f)
{
	return __atomic_load_n(&to_dma_fence_chain(f)->prev, __ATOMIC_ACQUIRE);
}

struct fence_chains {
	unsigned int chain_length;
	struct dma_fence **fences;
	struct dma_fence **chains;
	struct dma_fence *tail;
};

static uint64_t seqno_inc(unsigned int i)
{
	return i + 1;
}

static uint64_t seqno_inc2(unsigned int i)
{
	return 2 * i + 2;
}

static void fence_chains_init(struct fence_chains *fc, unsigned int count,
			      uint64_t (*seqno_fn)(unsigned int))
{
	unsigned int i;

	fc->chain_length = count;
	fc->fences = calloc(count, sizeof(*fc->fences));
	fc->chains = calloc(count, sizeof(*fc->chains));
	ASSERT_NONNULL(fc->fences);
	ASSERT_NONNULL(fc->chains);
	fc->tail = NULL;
	for (i = 0; i < count; i++) {
		fc->fences[i] = mock_fence();
		fc->chains[i] = mock_chain(fc->tail, fc->fences[i], seqno_fn(i));
		fc->tail = fc->chains[i];
		/* Arm every node, as the kernel selftest does. */
		dma_fence_enable_sw_signaling(fc->chains[i]);
	}
}

static void fence_chains_fini(struct fence_chains *fc)
{
	unsigned int i;

	for (i = 0; i < fc->chain_length; i++) {
		dma_fence_signal(fc->fences[i]);
		dma_fence_put(fc->fences[i]);
	}
	free(fc->fences);
	/* Let the executor drop the references the armed nodes hold. */
	hetmem_fence_work_flush();
	for (i = 0; i < fc->chain_length; i++)
		dma_fence_put(fc->chains[i]);
	free(fc->chains);
}

TEST(sanitycheck)
{
	struct dma_fence *f = mock_fence(), *chain;

	chain = mock_chain(NULL, f, 1);
	dma_fence_enable_sw_signaling(chain);
	ASSERT_EQ(dma_fence_signal(f), 0);
	hetmem_fence_work_flush();
	ASSERT_TRUE(dma_fence_test_signaled_flag(chain));
	ASSERT_EQ(refs(chain), 1);
	dma_fence_put(f);
	dma_fence_put(chain);
}

TEST(find_seqno)
{
	struct fence_chains fc;
	struct dma_fence *fence;
	unsigned int i;

	fence_chains_init(&fc, 64, seqno_inc);
	fence = dma_fence_get(fc.tail);
	ASSERT_EQ(dma_fence_chain_find_seqno(&fence, 0), 0);
	ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.tail);
	dma_fence_put(fence);

	for (i = 0; i < fc.chain_length; i++) {
		fence = dma_fence_get(fc.tail);
		ASSERT_EQ(dma_fence_chain_find_seqno(&fence, i + 1), 0);
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[i]);

		/* A node asked for its own seqno finds itself. */
		ASSERT_EQ(dma_fence_chain_find_seqno(&fence, i + 1), 0);
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[i]);

		/* A seqno in its future is an error; nothing changes. */
		ASSERT_EQ(dma_fence_chain_find_seqno(&fence, i + 2), -EINVAL);
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[i]);

		ASSERT_EQ(dma_fence_chain_find_seqno(&fence, i), 0);
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[i ? i - 1 : 0]);
		dma_fence_put(fence);
	}
	for (i = 0; i < fc.chain_length; i++)
		ASSERT_EQ(refs(fc.chains[i]), i + 1 < fc.chain_length ? 3 : 2);
	fence_chains_fini(&fc);
}

TEST(find_signaled)
{
	struct fence_chains fc;
	struct dma_fence *fence;

	fence_chains_init(&fc, 2, seqno_inc);
	dma_fence_signal(fc.fences[0]);
	fence = dma_fence_get(fc.tail);
	ASSERT_EQ(dma_fence_chain_find_seqno(&fence, 1), 0);
	/* Everything up to 1 has signalled: nothing left to wait for. */
	ASSERT_NULL(fence);
	fence_chains_fini(&fc);
}

TEST(find_out_of_order)
{
	struct fence_chains fc;
	struct dma_fence *fence;

	fence_chains_init(&fc, 3, seqno_inc);
	/* Signal the middle of 1-2-3: seqno 2 still needs fence 1. */
	dma_fence_signal(fc.fences[1]);
	fence = dma_fence_get(fc.tail);
	ASSERT_EQ(dma_fence_chain_find_seqno(&fence, 2), 0);
	ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[0]);
	dma_fence_put(fence);
	fence_chains_fini(&fc);
}

TEST(find_gap)
{
	struct fence_chains fc;
	struct dma_fence *fence;
	unsigned int i;

	fence_chains_init(&fc, 64, seqno_inc2);
	for (i = 0; i < fc.chain_length; i++) {
		/* 2i+1 falls between two nodes: the later one covers it. */
		fence = dma_fence_get(fc.tail);
		ASSERT_EQ(dma_fence_chain_find_seqno(&fence, 2 * i + 1), 0);
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[i]);
		ASSERT_EQ(dma_fence_chain_find_seqno(&fence, 2 * i + 2), 0);
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[i]);
		dma_fence_put(fence);
	}
	fence_chains_fini(&fc);
}

struct find_race {
	struct fence_chains fc;
	int64_t end_ns;
	int failed;
	unsigned int seed;
};

/*
 * The node found for @seqno may be earlier than @seqno only if every
 * fence in between has signalled (the walk skipped them); NULL means all
 * fences up to @seqno have. Node i carries seqno i + 1 and fences[i].
 */
static bool covered(struct fence_chains *fc, uint64_t found, uint64_t seqno)
{
	uint64_t s;

	for (s = found + 1; s <= seqno; s++)
		if (!dma_fence_test_signaled_flag(fc->fences[s - 1]))
			return false;
	return true;
}

/* Check one lookup; returns false on a wrong answer. */
static bool find_race_once(struct find_race *data, unsigned int *seed)
{
	struct dma_fence *fence = dma_fence_get(data->fc.tail);
	uint64_t seqno = rand_r(seed) % data->fc.chain_length + 1;
	bool ok;

	if (dma_fence_chain_find_seqno(&fence, seqno)) {
		TH_LOG("find_seqno(tail, %llu) failed", (unsigned long long)seqno);
		dma_fence_put(fence);
		return false;
	}
	ok = covered(&data->fc, fence ? fence->seqno : 0, seqno);
	/* Only the node carrying the seqno may find itself. */
	if (ok && fence && fence->seqno == seqno) {
		struct dma_fence *self = fence;

		ok = !dma_fence_chain_find_seqno(&fence, seqno) && fence == self;
	}
	if (!ok)
		TH_LOG("find_seqno(%llu) gave seqno %llu", (unsigned long long)seqno,
		       fence ? (unsigned long long)fence->seqno : 0ULL);
	dma_fence_put(fence);
	seqno = rand_r(seed) % (data->fc.chain_length - 1);
	dma_fence_signal(data->fc.fences[seqno]);
	return ok;
}

static void *find_race_thread(void *arg)
{
	struct find_race *data = arg;
	unsigned int seed = __atomic_add_fetch(&data->seed, 1, __ATOMIC_RELAXED);

	while (hetmem_ktime_get() < data->end_ns) {
		if (!find_race_once(data, &seed)) {
			__atomic_store_n(&data->failed, 1, __ATOMIC_RELAXED);
			break;
		}
	}
	return NULL;
}

TEST(find_race)
{
	struct find_race data = { .failed = 0, .seed = 1 };
	pthread_t threads[4];
	unsigned int i, completed = 0;

	fence_chains_init(&data.fc, CHAIN_SZ, seqno_inc);
	data.end_ns = hetmem_ktime_get() + 500 * 1000000LL;
	for (i = 0; i < 4; i++)
		ASSERT_EQ(pthread_create(&threads[i], NULL, find_race_thread, &data), 0);
	for (i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	ASSERT_EQ(data.failed, 0);
	for (i = 0; i < data.fc.chain_length; i++)
		completed += dma_fence_is_signaled(data.fc.chains[i]);
	TH_LOG("completed %u of %u fences", completed, data.fc.chain_length);
	fence_chains_fini(&data.fc);
}

TEST(signal_forward)
{
	struct fence_chains fc;
	unsigned int i;

	fence_chains_init(&fc, 64, seqno_inc);
	for (i = 0; i < fc.chain_length; i++) {
		dma_fence_signal(fc.fences[i]);
		ASSERT_TRUE(dma_fence_is_signaled(fc.chains[i]));
		if (i + 1 < fc.chain_length)
			ASSERT_FALSE(dma_fence_is_signaled(fc.chains[i + 1]));
	}
	fence_chains_fini(&fc);
}

TEST(signal_backward)
{
	struct fence_chains fc;
	unsigned int i;

	fence_chains_init(&fc, 64, seqno_inc);
	for (i = fc.chain_length; i--;) {
		dma_fence_signal(fc.fences[i]);
		if (i > 0)
			ASSERT_FALSE(dma_fence_is_signaled(fc.chains[i]));
	}
	for (i = 0; i < fc.chain_length; i++)
		ASSERT_TRUE(dma_fence_is_signaled(fc.chains[i]));
	fence_chains_fini(&fc);
}

struct waiter {
	struct dma_fence *tail;
	long ret;
};

static void *wait_tail(void *arg)
{
	struct waiter *w = arg;

	w->ret = dma_fence_wait(w->tail, false);
	return NULL;
}

/* Signal fences[order[i]] for every i while a thread waits on the tail. */
static void wait_in_order(const unsigned int *order, unsigned int count)
{
	struct fence_chains fc;
	struct waiter w = { .ret = 1 };
	pthread_t thread;
	unsigned int i;

	fence_chains_init(&fc, count, seqno_inc);
	w.tail = fc.tail;
	ASSERT_EQ(pthread_create(&thread, NULL, wait_tail, &w), 0);
	for (i = 0; i < count; i++)
		dma_fence_signal(fc.fences[order[i]]);
	pthread_join(thread, NULL);
	ASSERT_EQ(w.ret, 0);
	ASSERT_TRUE(dma_fence_test_signaled_flag(fc.tail));
	fence_chains_fini(&fc);
}

static unsigned int *make_order(unsigned int count)
{
	unsigned int *order = calloc(count, sizeof(*order));
	unsigned int i;

	ASSERT_NONNULL(order);
	for (i = 0; i < count; i++)
		order[i] = i;
	return order;
}

TEST(wait_forward)
{
	unsigned int *order = make_order(CHAIN_SZ);

	wait_in_order(order, CHAIN_SZ);
	free(order);
}

TEST(wait_backward)
{
	unsigned int *order = make_order(CHAIN_SZ);
	unsigned int i;

	for (i = 0; i < CHAIN_SZ; i++)
		order[i] = CHAIN_SZ - 1 - i;
	wait_in_order(order, CHAIN_SZ);
	free(order);
}

TEST(wait_random)
{
	unsigned int *order = make_order(CHAIN_SZ);
	unsigned int i, j, tmp, seed = (unsigned int)hetmem_ktime_get();

	TH_LOG("seed %u", seed);
	for (i = CHAIN_SZ - 1; i > 0; i--) {
		j = rand_r(&seed) % (i + 1);
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	wait_in_order(order, CHAIN_SZ);
	free(order);
}

TEST(context_join_rule)
{
	struct dma_fence *f = mock_fence(), *plain = mock_fence();
	struct dma_fence *a, *b, *c, *d, *e;

	plain->seqno = 100;
	a = mock_chain(NULL, f, 5);
	ASSERT_EQ(a->seqno, 5);
	ASSERT_EQ(to_dma_fence_chain(a)->prev_seqno, 0);
	ASSERT_TRUE(a->flags & (1UL << DMA_FENCE_FLAG_SEQNO64_BIT));
	/* Later seqno after a chain node: same timeline. */
	b = mock_chain(a, f, 7);
	ASSERT_EQ(b->context, a->context);
	ASSERT_EQ(to_dma_fence_chain(b)->prev_seqno, 5);
	/* Not later: a new timeline, seqno raised to the predecessor's. */
	c = mock_chain(b, f, 6);
	ASSERT_NE(c->context, b->context);
	ASSERT_EQ(c->seqno, 7);
	ASSERT_EQ(to_dma_fence_chain(c)->prev_seqno, 0);
	d = mock_chain(c, f, 7);
	ASSERT_NE(d->context, c->context);
	ASSERT_EQ(d->seqno, 7);
	/* A plain predecessor always starts a timeline, seqno kept. */
	e = mock_chain(plain, f, 1);
	ASSERT_NE(e->context, plain->context);
	ASSERT_EQ(e->seqno, 1);
	ASSERT_EQ(to_dma_fence_chain(e)->prev_seqno, 0);
	/* 64-bit comparison: no 32-bit wraparound. */
	dma_fence_put(mock_chain(a, f, 0x100000004ULL));
	ASSERT_TRUE(dma_fence_is_later(b, a));
	dma_fence_put(e);
	dma_fence_put(d);
	dma_fence_put(c);
	dma_fence_put(b);
	dma_fence_put(a);
	ASSERT_EQ(refs(f), 1);
	ASSERT_EQ(refs(plain), 1);
	dma_fence_put(f);
	dma_fence_put(plain);
}

TEST(seqno64_join)
{
	struct dma_fence *f = mock_fence(), *a, *b;

	a = mock_chain(NULL, f, 0xfffffff0ULL);
	b = mock_chain(a, f, 0x100000001ULL);
	/* 32-bit wraparound would call this earlier; chains use 64 bits. */
	ASSERT_EQ(b->context, a->context);
	ASSERT_EQ(b->seqno, 0x100000001ULL);
	dma_fence_put(b);
	dma_fence_put(a);
	dma_fence_put(f);
}

TEST(names_and_contained)
{
	struct dma_fence *f = mock_fence(), *chain;

	chain = mock_chain(NULL, f, 1);
	ASSERT_STREQ(chain->ops->get_driver_name(chain), "dma_fence_chain");
	ASSERT_STREQ(chain->ops->get_timeline_name(chain), "unbound");
	ASSERT_TRUE(dma_fence_is_chain(chain));
	ASSERT_TRUE(dma_fence_is_container(chain));
	ASSERT_NULL(to_dma_fence_chain(f));
	ASSERT_NULL(to_dma_fence_chain(NULL));
	ASSERT_EQ((uintptr_t)dma_fence_chain_contained(chain), (uintptr_t)f);
	ASSERT_EQ((uintptr_t)dma_fence_chain_contained(f), (uintptr_t)f);
	ASSERT_NULL(dma_fence_chain_contained(NULL));
	dma_fence_put(chain);
	dma_fence_put(f);
}

TEST(walk_collects_signaled)
{
	struct fence_chains fc;
	struct dma_fence *fence;

	fence_chains_init(&fc, 3, seqno_inc);
	dma_fence_signal(fc.fences[1]);
	fence = dma_fence_chain_walk(dma_fence_get(fc.chains[2]));
	ASSERT_EQ((uintptr_t)fence, (uintptr_t)fc.chains[0]);
	/* Node 2 was cut out; prev_seqno keeps the linked value. */
	ASSERT_EQ((uintptr_t)chain_prev(fc.chains[2]), (uintptr_t)fc.chains[0]);
	ASSERT_EQ(to_dma_fence_chain(fc.chains[2])->prev_seqno, 2);
	hetmem_fence_work_flush();
	/* Left: our reference and that of node 1's re-armed callback. */
	ASSERT_EQ(refs(fc.chains[1]), 2);
	dma_fence_put(fence);
	/* The walk consumed the caller's reference to its argument. */
	ASSERT_EQ(refs(fc.chains[2]), 2);
	fence_chains_fini(&fc);
}

TEST(walk_plain_and_end)
{
	struct dma_fence *f = mock_fence(), *g = mock_fence(), *chain, *it;
	unsigned int n = 0;

	/* A plain unsignalled predecessor is a stop of the walk. */
	chain = mock_chain(g, f, 1);
	it = dma_fence_chain_walk(dma_fence_get(chain));
	ASSERT_EQ((uintptr_t)it, (uintptr_t)g);
	ASSERT_EQ(refs(g), 3);
	/* Walking from a plain fence drops it and ends. */
	ASSERT_NULL(dma_fence_chain_walk(it));
	ASSERT_EQ(refs(g), 2);
	/* Once signalled, the plain predecessor is unlinked. */
	dma_fence_signal(g);
	dma_fence_chain_for_each(it, chain)
		n++;
	ASSERT_EQ(n, 1);
	ASSERT_NULL(chain_prev(chain));
	ASSERT_EQ(refs(g), 1);
	dma_fence_put(chain);
	dma_fence_put(f);
	dma_fence_put(g);
}

TEST(for_each_break_keeps_reference)
{
	struct fence_chains fc;
	struct dma_fence *it;

	fence_chains_init(&fc, 4, seqno_inc);
	dma_fence_chain_for_each(it, fc.tail) {
		if (it == fc.chains[1])
			break;
	}
	ASSERT_NONNULL(it);
	ASSERT_EQ((uintptr_t)it, (uintptr_t)fc.chains[1]);
	ASSERT_EQ(refs(it), 4);
	dma_fence_put(it);
	fence_chains_fini(&fc);
}

TEST(find_seqno_invalid)
{
	struct dma_fence *f = mock_fence(), *fence = f;
	unsigned long warns;

	/* Not a chain: -EINVAL, reference and pointer untouched. */
	ASSERT_EQ(dma_fence_chain_find_seqno(&fence, 1), -EINVAL);
	ASSERT_EQ((uintptr_t)fence, (uintptr_t)f);
	ASSERT_EQ(refs(f), 1);
	/* seqno 0 is a no-op even on a plain fence. */
	ASSERT_EQ(dma_fence_chain_find_seqno(&fence, 0), 0);
	ASSERT_EQ((uintptr_t)fence, (uintptr_t)f);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	ASSERT_EQ(dma_fence_chain_find_seqno(NULL, 1), -EINVAL);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	dma_fence_put(f);
}

TEST(errors_not_propagated)
{
	struct dma_fence *f = mock_fence(), *chain;

	chain = mock_chain(NULL, f, 1);
	dma_fence_enable_sw_signaling(chain);
	dma_fence_set_error(f, -EIO);
	ASSERT_EQ(dma_fence_signal(f), 0);
	hetmem_fence_work_flush();
	ASSERT_EQ(dma_fence_get_status(f), -EIO);
	ASSERT_EQ(dma_fence_get_status(chain), 1);
	dma_fence_put(chain);
	dma_fence_put(f);
}

TEST(contained_chain_warns)
{
	struct dma_fence *f = mock_fence(), *inner, *outer;
	unsigned long warns;

	inner = mock_chain(NULL, f, 1);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	outer = mock_chain(NULL, inner, 1);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	dma_fence_put(outer);
	dma_fence_put(inner);
	dma_fence_put(f);
}

TEST(null_fence_becomes_stub)
{
	struct dma_fence_chain *chain = dma_fence_chain_alloc();
	unsigned long warns;

	ASSERT_NONNULL(chain);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_fence_chain_init(chain, NULL, NULL, 1);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	ASSERT_TRUE(dma_fence_is_signaled(&chain->base));
	dma_fence_put(&chain->base);
	/* An unused node is freed without init. */
	dma_fence_chain_free(dma_fence_chain_alloc());
}

TEST(deadline_fan_out)
{
	struct fence_chains fc;
	hetmem_ktime_t when = hetmem_ktime_get() + 5000000;
	unsigned int i;

	fence_chains_init(&fc, 4, seqno_inc);
	dma_fence_signal(fc.fences[2]);
	dma_fence_set_deadline(fc.tail, when);
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(mock_fence_deadline_calls(fc.fences[i]),
			  i == 2 ? 0 : 1);
		if (i != 2)
			ASSERT_EQ(mock_fence_deadline(fc.fences[i]), when);
	}
	fence_chains_fini(&fc);
}

struct thread_record {
	struct dma_fence_cb cb;
	pthread_t thread;
	int ran;
};

static void record_thread(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct thread_record *rec = hetmem_container_of(cb, struct thread_record, cb);

	rec->thread = pthread_self();
	__atomic_store_n(&rec->ran, 1, __ATOMIC_RELEASE);
}

TEST(signal_is_deferred)
{
	struct dma_fence *f[2], *a, *b;
	struct thread_record rec = { .ran = 0 };

	f[0] = mock_fence();
	f[1] = mock_fence();
	a = mock_chain(NULL, f[0], 1);
	b = mock_chain(a, f[1], 2);
	ASSERT_EQ(dma_fence_add_callback(b, &rec.cb, record_thread), 0);
	dma_fence_signal(f[1]);
	hetmem_fence_work_flush();
	ASSERT_EQ(rec.ran, 0);
	/* Re-armed on f[0]; its signal completes b on the executor. */
	ASSERT_FALSE(hetmem_list_empty(&f[0]->cb_list));
	dma_fence_signal(f[0]);
	hetmem_fence_work_flush();
	ASSERT_EQ(rec.ran, 1);
	ASSERT_FALSE(pthread_equal(rec.thread, pthread_self()));
	ASSERT_EQ(refs(b), 1);
	dma_fence_put(b);
	dma_fence_put(a);
	dma_fence_put(f[0]);
	dma_fence_put(f[1]);
}

TEST(chain_of_arrays)
{
	struct dma_fence *leaf[4], *node[2] = { NULL, NULL }, **list;
	struct dma_fence_array *array;
	int i;

	for (i = 0; i < 4; i++)
		leaf[i] = mock_fence();
	for (i = 0; i < 2; i++) {
		list = calloc(2, sizeof(*list));
		ASSERT_NONNULL(list);
		list[0] = dma_fence_get(leaf[2 * i]);
		list[1] = dma_fence_get(leaf[2 * i + 1]);
		array = dma_fence_array_create(2, list, dma_fence_context_alloc(1),
					       1, false);
		ASSERT_NONNULL(array);
		node[i] = mock_chain(i ? node[0] : NULL, &array->base, i + 1);
		dma_fence_put(&array->base);
	}
	dma_fence_enable_sw_signaling(node[1]);
	for (i = 3; i >= 0; i--) {
		ASSERT_FALSE(dma_fence_is_signaled(node[1]));
		dma_fence_signal(leaf[i]);
	}
	ASSERT_EQ(dma_fence_wait(node[1], false), 0);
	hetmem_fence_work_flush();
	dma_fence_put(node[1]);
	dma_fence_put(node[0]);
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(refs(leaf[i]), 1);
		dma_fence_put(leaf[i]);
	}
}

/*
 * Enabling a node walks to its predecessor and polls that node's array,
 * whose members all signalled while nobody listened: the array gets
 * signalled from inside the chain's enable_signaling, under the chain
 * lock. That is legal (the kernel does the same) and must not upset the
 * dependency checker, which has already seen "signalling section -> chain
 * lock" from an earlier node.
 */
TEST(enable_over_polled_array)
{
	struct dma_fence *leaf[3], *node[2], **list;
	struct dma_fence_array *array;
	int i;

	for (i = 0; i < 3; i++)
		leaf[i] = mock_fence();
	dma_fence_signal(leaf[2]);
	node[0] = mock_chain(NULL, leaf[2], 1);
	ASSERT_TRUE(dma_fence_is_signaled(node[0]));
	dma_fence_put(node[0]);

	list = calloc(2, sizeof(*list));
	ASSERT_NONNULL(list);
	list[0] = dma_fence_get(leaf[0]);
	list[1] = dma_fence_get(leaf[1]);
	array = dma_fence_array_create(2, list, dma_fence_context_alloc(1), 1,
				       false);
	ASSERT_NONNULL(array);
	node[0] = mock_chain(NULL, &array->base, 1);
	node[1] = mock_chain(node[0], leaf[2], 2);
	dma_fence_signal(leaf[0]);
	dma_fence_signal(leaf[1]);
	ASSERT_FALSE(dma_fence_test_signaled_flag(&array->base));
	dma_fence_enable_sw_signaling(node[1]);
	ASSERT_TRUE(dma_fence_test_signaled_flag(&array->base));
	ASSERT_TRUE(dma_fence_test_signaled_flag(node[1]));
	hetmem_fence_work_flush();
	dma_fence_put(node[1]);
	dma_fence_put(node[0]);
	dma_fence_put(&array->base);
	for (i = 0; i < 3; i++)
		dma_fence_put(leaf[i]);
}

struct deep_drop {
	struct dma_fence *tail;
};

static void *drop_tail(void *arg)
{
	struct deep_drop *d = arg;

	dma_fence_put(d->tail);
	return NULL;
}

/* Drop the only reference to a CHAIN_SZ-deep chain on a 64 KiB stack. */
static void drop_on_small_stack(bool signaled)
{
	struct dma_fence *fences[CHAIN_SZ], *tail = NULL, *node;
	struct deep_drop d;
	pthread_attr_t attr;
	pthread_t thread;
	unsigned int i;

	for (i = 0; i < CHAIN_SZ; i++) {
		fences[i] = mock_fence();
		if (signaled)
			dma_fence_signal(fences[i]);
		node = mock_chain(tail, fences[i], i + 1);
		dma_fence_put(tail);
		tail = node;
	}
	d.tail = tail;
	ASSERT_EQ(pthread_attr_init(&attr), 0);
	ASSERT_EQ(pthread_attr_setstacksize(&attr, 64 * 1024), 0);
	ASSERT_EQ(pthread_create(&thread, &attr, drop_tail, &d), 0);
	ASSERT_EQ(pthread_join(thread, NULL), 0);
	pthread_attr_destroy(&attr);
	/* Every node was released: each contained fence is ours alone. */
	for (i = 0; i < CHAIN_SZ; i++) {
		ASSERT_EQ(refs(fences[i]), 1);
		dma_fence_put(fences[i]);
	}
}

TEST(release_deep_chain_small_stack)
{
	drop_on_small_stack(false);
}

TEST(release_deep_signaled_chain_small_stack)
{
	drop_on_small_stack(true);
}

TEST(release_keeps_shared_predecessor)
{
	struct dma_fence *f = mock_fence(), *a, *b, *c;

	a = mock_chain(NULL, f, 1);
	b = mock_chain(a, f, 2);
	c = mock_chain(b, f, 3);
	dma_fence_put(b);
	/* a is still ours too: releasing c unlinks b but must stop at a. */
	dma_fence_put(c);
	ASSERT_EQ(refs(a), 1);
	ASSERT_EQ(refs(f), 2);
	dma_fence_put(a);
	ASSERT_EQ(refs(f), 1);
	dma_fence_put(f);
}
