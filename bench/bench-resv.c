/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem bench resv
 *
 * Measures the reservation-lock hot paths and prints (values in ns unless
 * the key says otherwise):
 *
 * - ww.uncontended_ns, pthread.mutex_ns, ratio.ww_vs_pthread: one thread
 *   locks and unlocks one free ww_mutex with an acquire context (the
 *   context is initialised once per batch, as a transaction locking many
 *   objects would), against pthread_mutex_lock()/unlock() of a default
 *   mutex in the same loop shape, with a second (parked) thread alive so
 *   that glibc does not take its single-threaded shortcut. Batches
 *   alternate; the ratio is the median of per-pair ratios. Goal: ratio
 *   <= 1.5.
 * - ww.contended_ops_per_s, ww.backoff_rate: two threads, each
 *   repeatedly locking 8 random objects out of 64 with a context of a
 *   Wound-Wait class, backing off on -EDEADLK (unlock all, lock_slow the
 *   contended one, start over), then unlocking all. ops_per_s counts
 *   acquired sets per second for both threads together; backoff_rate is
 *   back-offs per acquired set.
 * - resv.add_fence_ns: dma_resv_reserve_fences(obj, 1) plus
 *   dma_resv_add_fence() of the next fence of one context on a locked
 *   object, the steady state of a driver adding its job fence (the entry
 *   is replaced in place).
 * - resv.iter_unlocked_ns: one complete dma_resv_for_each_fence_unlocked()
 *   walk, begin to end, over an object holding 16 unsignalled fences of
 *   16 contexts.
 *
 * The dependency checker is off (bench_begin()), as in production builds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hetmem/resv/dma-resv.h>
#include <hetmem/resv/ww_mutex.h>

#include "bench.h"
#include "bench-util.h"

#define UNCONTENDED_ITERS 100000
#define CONTENDED_OBJS 64
#define CONTENDED_SET 8

static DEFINE_WW_CLASS(bench_ww_class);

static int time_ww(struct ww_mutex *lock, double *ns)
{
	struct ww_acquire_ctx ctx;
	int64_t t0;
	int i, ret = 0;

	ww_acquire_init(&ctx, &bench_ww_class);
	t0 = bench_now_ns();
	for (i = 0; i < UNCONTENDED_ITERS && !ret; i++) {
		ret = ww_mutex_lock(lock, &ctx);
		ww_mutex_unlock(lock);
	}
	*ns = (double)(bench_now_ns() - t0) / UNCONTENDED_ITERS;
	ww_acquire_fini(&ctx);
	return ret;
}

static int uncontended_batches(double share);

static int time_pthread(pthread_mutex_t *mutex, double *ns)
{
	int64_t t0;
	int i, ret = 0;

	t0 = bench_now_ns();
	for (i = 0; i < UNCONTENDED_ITERS && !ret; i++) {
		ret = -pthread_mutex_lock(mutex);
		pthread_mutex_unlock(mutex);
	}
	*ns = (double)(bench_now_ns() - t0) / UNCONTENDED_ITERS;
	return ret;
}

/*
 * glibc takes a cheaper, non-atomic path while a process has a single
 * thread; hetmem users are multi-threaded. Keep a second thread parked
 * during the measurement so pthread pays for real atomics too.
 */
static void *idle_fn(void *arg)
{
	pthread_mutex_t *gate = arg;

	pthread_mutex_lock(gate);
	pthread_mutex_unlock(gate);
	return NULL;
}

static int measure_uncontended(double share)
{
	pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
	pthread_t idle;
	int ret;

	pthread_mutex_lock(&gate);
	if (pthread_create(&idle, NULL, idle_fn, &gate)) {
		pthread_mutex_unlock(&gate);
		return -EAGAIN;
	}
	ret = uncontended_batches(share);
	pthread_mutex_unlock(&gate);
	pthread_join(idle, NULL);
	return ret;
}

static int uncontended_batches(double share)
{
	static double ww[BENCH_MAX_BATCHES], pt[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES];
	pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
	struct bench_slice slice;
	struct ww_mutex lock;
	unsigned int n = 0;
	double r;
	int ret = 0;

	ww_mutex_init(&lock, &bench_ww_class);
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = time_ww(&lock, &ww[n]);
		if (!ret)
			ret = time_pthread(&mutex, &pt[n]);
		if (!ret) {
			ratio[n] = ww[n] / pt[n];
			n++;
		}
	}
	ww_mutex_destroy(&lock);
	if (ret)
		return ret;
	r = bench_median(ratio, n);
	bench_print("ww.uncontended_ns", bench_median(ww, n));
	bench_print("pthread.mutex_ns", bench_median(pt, n));
	bench_print_ratio("ratio.ww_vs_pthread", r);
	bench_print_goal("ratio.ww_vs_pthread", r, 1.5);
	return 0;
}

struct contended {
	struct ww_mutex objs[CONTENDED_OBJS];
	int64_t end_ns;
	int errors;
};

struct contender {
	struct contended *c;
	pthread_t thread;
	uint32_t seed;
	unsigned long sets;
	unsigned long backoffs;
};

static uint32_t rnd(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

static void pick_set(struct contender *t, int *set)
{
	bool used[CONTENDED_OBJS] = { 0 };
	int i, k;

	for (i = 0; i < CONTENDED_SET; i++) {
		do
			k = (int)(rnd(&t->seed) % CONTENDED_OBJS);
		while (used[k]);
		used[k] = true;
		set[i] = k;
	}
}

static void unlock_set(struct contender *t, const int *set, bool *held)
{
	int i;

	for (i = 0; i < CONTENDED_SET; i++) {
		if (held[i])
			ww_mutex_unlock(&t->c->objs[set[i]]);
		held[i] = false;
	}
}

/* One transaction: lock all of @set, backing off as needed. */
static void lock_set(struct contender *t, struct ww_acquire_ctx *ctx,
		     const int *set, bool *held)
{
	int i, ret;

retry:
	for (i = 0; i < CONTENDED_SET; i++) {
		if (held[i])
			continue;
		ret = ww_mutex_lock(&t->c->objs[set[i]], ctx);
		if (ret == -EDEADLK) {
			t->backoffs++;
			unlock_set(t, set, held);
			ww_mutex_lock_slow(&t->c->objs[set[i]], ctx);
			held[i] = true;
			goto retry;
		}
		if (ret)
			__atomic_add_fetch(&t->c->errors, 1, __ATOMIC_RELAXED);
		else
			held[i] = true;
	}
}

static void *contender_fn(void *arg)
{
	struct contender *t = arg;
	struct ww_acquire_ctx ctx;
	bool held[CONTENDED_SET];
	int set[CONTENDED_SET];

	while (bench_now_ns() < t->c->end_ns) {
		memset(held, 0, sizeof(held));
		pick_set(t, set);
		ww_acquire_init(&ctx, &bench_ww_class);
		lock_set(t, &ctx, set, held);
		ww_acquire_done(&ctx);
		unlock_set(t, set, held);
		ww_acquire_fini(&ctx);
		t->sets++;
	}
	return NULL;
}

static int measure_contended(double share)
{
	struct contended *c = calloc(1, sizeof(*c));
	struct contender t[2];
	struct bench_slice slice;
	unsigned long sets = 0, backoffs = 0;
	int i, n = 0, errors;
	int64_t t0;

	if (!c)
		return -ENOMEM;
	for (i = 0; i < CONTENDED_OBJS; i++)
		ww_mutex_init(&c->objs[i], &bench_ww_class);
	/* One batch that lasts the whole share, at least 0.1 s. */
	bench_slice_init(&slice, share, 1, 1);
	t0 = bench_now_ns();
	c->end_ns = slice.end_ns > t0 + 100000000 ? slice.end_ns :
						      t0 + 100000000;
	for (i = 0; i < 2; i++) {
		t[i] = (struct contender){ .c = c, .seed = 0x2545f491u * (i + 1) };
		if (pthread_create(&t[i].thread, NULL, contender_fn, &t[i]))
			break;
		n++;
	}
	for (i = 0; i < n; i++) {
		pthread_join(t[i].thread, NULL);
		sets += t[i].sets;
		backoffs += t[i].backoffs;
	}
	t0 = bench_now_ns() - t0;
	errors = c->errors;
	free(c);
	if (n < 2 || errors)
		return n < 2 ? -EAGAIN : -EPROTO;
	bench_print("ww.contended_ops_per_s", (double)sets * 1e9 / (double)t0);
	bench_print_ratio("ww.backoff_rate", sets ? (double)backoffs / sets : 0);
	return 0;
}

#define RESV_ADD_ITERS 20000
#define RESV_ITER_FENCES 16
#define RESV_ITER_ITERS 20000

static const char *resv_fence_name(struct dma_fence *fence)
{
	return "bench-resv";
}

/* Fences live in the benchmark's arrays: nothing to free. */
static void resv_fence_keep(struct dma_fence *fence)
{
}

static const struct dma_fence_ops resv_fence_ops = {
	.get_driver_name = resv_fence_name,
	.get_timeline_name = resv_fence_name,
	.release = resv_fence_keep,
};

static hetmem_spinlock_t resv_fence_lock = HETMEM_SPINLOCK_INIT(bench_resv_fence_lock);

/* One batch on a fresh object, so every fence is free again afterwards. */
static double time_add_fence(struct dma_fence *fences, uint64_t context)
{
	static uint64_t seqno;
	struct dma_resv obj;
	int64_t t0;
	int i;

	for (i = 0; i < RESV_ADD_ITERS; i++)
		dma_fence_init(&fences[i], &resv_fence_ops, &resv_fence_lock,
			       context, ++seqno);
	dma_resv_init(&obj);
	dma_resv_lock(&obj, NULL);
	t0 = bench_now_ns();
	for (i = 0; i < RESV_ADD_ITERS; i++) {
		dma_resv_reserve_fences(&obj, 1);
		dma_resv_add_fence(&obj, &fences[i], DMA_RESV_USAGE_WRITE);
	}
	t0 = bench_now_ns() - t0;
	dma_resv_unlock(&obj);
	dma_resv_fini(&obj);
	return (double)t0 / RESV_ADD_ITERS;
}

static int measure_add_fence(double share)
{
	static double ns[BENCH_MAX_BATCHES];
	struct dma_fence *fences = calloc(RESV_ADD_ITERS, sizeof(*fences));
	uint64_t context = dma_fence_context_alloc(1);
	struct bench_slice slice;
	unsigned int n = 0;

	if (!fences)
		return -ENOMEM;
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (bench_slice_next(&slice))
		ns[n++] = time_add_fence(fences, context);
	free(fences);
	bench_print("resv.add_fence_ns", bench_median(ns, n));
	return 0;
}

static double time_iter_unlocked(struct dma_resv *obj)
{
	struct dma_resv_iter cursor;
	struct dma_fence *fence;
	unsigned long seen = 0;
	int64_t t0;
	int i;

	t0 = bench_now_ns();
	for (i = 0; i < RESV_ITER_ITERS; i++) {
		dma_resv_iter_begin(&cursor, obj, DMA_RESV_USAGE_BOOKKEEP);
		dma_resv_for_each_fence_unlocked(&cursor, fence)
			seen++;
		dma_resv_iter_end(&cursor);
	}
	t0 = bench_now_ns() - t0;
	return seen == (unsigned long)RESV_ITER_ITERS * RESV_ITER_FENCES ?
	       (double)t0 / RESV_ITER_ITERS : -1;
}

static int measure_iter_unlocked(double share)
{
	static double ns[BENCH_MAX_BATCHES];
	struct dma_fence fences[RESV_ITER_FENCES];
	struct bench_slice slice;
	struct dma_resv obj;
	unsigned int n = 0;
	int i, ret = 0;

	dma_resv_init(&obj);
	dma_resv_lock(&obj, NULL);
	dma_resv_reserve_fences(&obj, RESV_ITER_FENCES);
	for (i = 0; i < RESV_ITER_FENCES; i++) {
		dma_fence_init(&fences[i], &resv_fence_ops, &resv_fence_lock,
			       dma_fence_context_alloc(1), 1);
		dma_resv_add_fence(&obj, &fences[i], DMA_RESV_USAGE_READ);
	}
	dma_resv_unlock(&obj);
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ns[n] = time_iter_unlocked(&obj);
		ret = ns[n++] < 0 ? -EPROTO : 0;
	}
	for (i = 0; i < RESV_ITER_FENCES; i++)
		dma_fence_signal(&fences[i]);
	dma_resv_fini(&obj);
	if (!ret)
		bench_print("resv.iter_unlocked_ns", bench_median(ns, n));
	return ret;
}

static const struct bench_measure resv_measures[] = {
	{ "ww.uncontended", measure_uncontended, 0.4 },
	{ "ww.contended", measure_contended, 0.4 },
	/* --- dma-resv rows: add them here --- */
	{ "resv.add_fence", measure_add_fence, 0.1 },
	{ "resv.iter_unlocked", measure_iter_unlocked, 0.1 },
};

int hetmem_bench_resv(int argc, char **argv)
{
	return bench_run_suite("resv", resv_measures,
			       sizeof(resv_measures) / sizeof(resv_measures[0]),
			       argc, argv);
}
