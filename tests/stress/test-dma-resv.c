/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-resv under contention: transactions lock random sets of
 * reservation objects with ww back-off and add fences (sometimes copying
 * one object's fences into another, which replaces the list under
 * readers), while readers walk the objects without locks, collect their
 * fences and test them, and a signaller completes every fence. A watchdog
 * fails the case if progress stops.
 */
#include <pthread.h>

#include <hetmem/resv/dma-resv.h>

#include "harness.h"
#include "mock-fence.h"

#define NOBJ		16
#define NWRITERS	4
#define NREADERS	3
#define MAX_PER_TXN	4
#define QUEUE_LEN	256

static struct dma_resv objs[NOBJ];
static int stop;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dma_fence *ring[QUEUE_LEN];
	unsigned int head, tail;
} queue = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static struct {
	unsigned long txns, backoffs, copies, walks, seen, restarts, gets, tests,
		      signals;
} stats;

static void stat_add(unsigned long *counter, unsigned long n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static unsigned long stat_read(unsigned long *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static unsigned int rnd(unsigned int *seed, unsigned int n)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) % n;
}

static bool stopping(void)
{
	return __atomic_load_n(&stop, __ATOMIC_ACQUIRE);
}

/* Hand the fence (and the caller's reference) to the signaller. */
static void queue_push(struct dma_fence *f)
{
	pthread_mutex_lock(&queue.lock);
	while (queue.tail - queue.head == QUEUE_LEN)
		pthread_cond_wait(&queue.cond, &queue.lock);
	queue.ring[queue.tail++ % QUEUE_LEN] = f;
	pthread_cond_broadcast(&queue.cond);
	pthread_mutex_unlock(&queue.lock);
}

static struct dma_fence *queue_pop(bool wait)
{
	struct dma_fence *f = NULL;

	pthread_mutex_lock(&queue.lock);
	while (wait && queue.head == queue.tail && !stopping())
		pthread_cond_wait(&queue.cond, &queue.lock);
	if (queue.head != queue.tail)
		f = queue.ring[queue.head++ % QUEUE_LEN];
	pthread_cond_broadcast(&queue.cond);
	pthread_mutex_unlock(&queue.lock);
	return f;
}

static void pick_objects(unsigned int *seed, int *idx, int n)
{
	int i, j;

	for (i = 0; i < n; i++) {
again:
		idx[i] = (int)rnd(seed, NOBJ);
		for (j = 0; j < i; j++)
			if (idx[j] == idx[i])
				goto again;
	}
}

static void unlock_all(const int *idx, int n, int skip)
{
	int i;

	for (i = 0; i < n; i++)
		if (i != skip)
			dma_resv_unlock(&objs[idx[i]]);
}

/* The kernel's back-off loop: on -EDEADLK drop all, slow-lock, retry. */
static void lock_all(struct ww_acquire_ctx *ctx, const int *idx, int n)
{
	int i, contended = -1, ret;

retry:
	for (i = 0; i < n; i++) {
		if (i == contended)
			continue;
		ret = dma_resv_lock(&objs[idx[i]], ctx);
		if (ret == -EDEADLK) {
			/* Held: 0..i-1, and the slow-locked one if later. */
			unlock_all(idx, i, -1);
			if (contended > i)
				dma_resv_unlock(&objs[idx[contended]]);
			stat_add(&stats.backoffs, 1);
			contended = i;
			dma_resv_lock_slow(&objs[idx[i]], ctx);
			goto retry;
		}
		ASSERT_EQ(ret, 0);
	}
}

static void writer_txn(unsigned int *seed)
{
	int idx[MAX_PER_TXN], n = 1 + (int)rnd(seed, MAX_PER_TXN), i;
	struct ww_acquire_ctx ctx;
	struct dma_fence *f;

	pick_objects(seed, idx, n);
	ww_acquire_init(&ctx, &reservation_ww_class);
	lock_all(&ctx, idx, n);
	ww_acquire_done(&ctx);
	f = mock_fence_create(MOCK_FENCE_COUNTED);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(dma_resv_reserve_fences(&objs[idx[i]], 1), 0);
		dma_resv_add_fence(&objs[idx[i]], f, (enum dma_resv_usage)
				   rnd(seed, DMA_RESV_USAGE_BOOKKEEP + 1));
	}
	/* Replaces the list under the readers: they must restart. */
	if (n > 1 && !rnd(seed, 8)) {
		ASSERT_EQ(dma_resv_copy_fences(&objs[idx[0]], &objs[idx[1]]),
			  0);
		stat_add(&stats.copies, 1);
	}
	unlock_all(idx, n, -1);
	ww_acquire_fini(&ctx);
	queue_push(f);
	stat_add(&stats.txns, 1);
}

static void *writer(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg * 7919u + 1;

	while (!stopping())
		writer_txn(&seed);
	return NULL;
}

/* Every fence an unlocked walk returns must be alive and referenced. */
static void check_walk(struct dma_resv *obj, enum dma_resv_usage usage)
{
	struct dma_resv_iter cursor;
	struct dma_fence *f;
	unsigned long n = 0;

	dma_resv_iter_begin(&cursor, obj, usage);
	dma_resv_for_each_fence_unlocked(&cursor, f) {
		ASSERT_TRUE(is_mock_fence(f));
		ASSERT_GE(hetmem_kref_read(&f->refcount), 1);
		ASSERT_TRUE(cursor.fence == f);
		ASSERT_LE(dma_resv_iter_usage(&cursor), usage);
		/* Restarted mid-walk: what came before is returned again. */
		if (n && dma_resv_iter_is_restarted(&cursor))
			stat_add(&stats.restarts, 1);
		n++;
	}
	dma_resv_iter_end(&cursor);
	stat_add(&stats.walks, 1);
	stat_add(&stats.seen, n);
}

static void check_get_fences(struct dma_resv *obj, enum dma_resv_usage usage)
{
	struct dma_fence **fences;
	unsigned int n, i;

	ASSERT_EQ(dma_resv_get_fences(obj, usage, &n, &fences), 0);
	for (i = 0; i < n; i++) {
		ASSERT_TRUE(is_mock_fence(fences[i]));
		ASSERT_GE(hetmem_kref_read(&fences[i]->refcount), 1);
		dma_fence_put(fences[i]);
	}
	free(fences);
	stat_add(&stats.gets, 1);
}

static void *reader(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg * 104729u + 3;
	struct dma_resv *obj;
	enum dma_resv_usage usage;

	while (!stopping()) {
		obj = &objs[rnd(&seed, NOBJ)];
		usage = (enum dma_resv_usage)rnd(&seed,
						 DMA_RESV_USAGE_BOOKKEEP + 1);
		switch (rnd(&seed, 4)) {
		case 0:
		case 1:
			check_walk(obj, usage);
			break;
		case 2:
			check_get_fences(obj, usage);
			break;
		default:
			dma_resv_test_signaled(obj, usage);
			stat_add(&stats.tests, 1);
			break;
		}
	}
	return NULL;
}

static void *signaller(void *arg)
{
	struct dma_fence *f;

	while ((f = queue_pop(true))) {
		dma_fence_signal(f);
		dma_fence_put(f);
		stat_add(&stats.signals, 1);
	}
	return NULL;
}

static unsigned long progress(void)
{
	return stat_read(&stats.txns) + stat_read(&stats.walks) +
	       stat_read(&stats.signals);
}

/* Fails the case when nothing moves for 10 s: a deadlock. */
static void watchdog(double seconds)
{
	int64_t end = harness_now_ms() + (int64_t)(seconds * 1000);
	int64_t last_move = harness_now_ms();
	unsigned long last = 0, now;

	while (harness_now_ms() < end) {
		harness_sleep_ms(100);
		now = progress();
		if (now != last) {
			last = now;
			last_move = harness_now_ms();
		}
		ASSERT_LT(harness_now_ms() - last_move, 10000);
	}
}

TEST_TIMEOUT(lock_add_iterate_signal, 120)
{
	pthread_t w[NWRITERS], r[NREADERS], s;
	struct dma_fence *f;
	int i;

	for (i = 0; i < NOBJ; i++)
		dma_resv_init(&objs[i]);
	for (i = 0; i < NWRITERS; i++)
		ASSERT_EQ(pthread_create(&w[i], NULL, writer,
					 (void *)(uintptr_t)i), 0);
	for (i = 0; i < NREADERS; i++)
		ASSERT_EQ(pthread_create(&r[i], NULL, reader,
					 (void *)(uintptr_t)i), 0);
	ASSERT_EQ(pthread_create(&s, NULL, signaller, NULL), 0);

	watchdog(harness_duration_s());
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	/* Writers may sit on a full queue: keep the signaller draining. */
	for (i = 0; i < NWRITERS; i++)
		pthread_join(w[i], NULL);
	for (i = 0; i < NREADERS; i++)
		pthread_join(r[i], NULL);
	pthread_mutex_lock(&queue.lock);
	pthread_cond_broadcast(&queue.cond);
	pthread_mutex_unlock(&queue.lock);
	pthread_join(s, NULL);
	while ((f = queue_pop(false))) {
		dma_fence_signal(f);
		dma_fence_put(f);
	}

	for (i = 0; i < NOBJ; i++) {
		EXPECT_TRUE(dma_resv_test_signaled(&objs[i],
						   DMA_RESV_USAGE_BOOKKEEP));
		dma_resv_fini(&objs[i]);
	}
	hetmem_rcu_barrier();
	TH_LOG("txns %lu backoffs %lu copies %lu walks %lu seen %lu "
	       "restarts %lu gets %lu tests %lu signals %lu", stats.txns,
	       stats.backoffs, stats.copies, stats.walks, stats.seen,
	       stats.restarts, stats.gets, stats.tests, stats.signals);
	EXPECT_GT(stats.txns, 0);
	EXPECT_GT(stats.walks, 0);
	EXPECT_GT(stats.seen, 0);
	EXPECT_EQ(mock_fence_created(), stats.txns);
	EXPECT_EQ(mock_fence_released(), mock_fence_created());
}
