/* SPDX-License-Identifier: MIT */
/*
 * hetmem - stress: the torture runs of the kernel's test-ww_mutex.c
 * (stress_inorder, stress_reorder, stress_one) for both classes, plus a mix
 * of context and context-less lockers, deadlock injection and repeated
 * cycles. Every mutex guards a plain counter and a holder field, so a
 * broken exclusion shows up as a failed check or a TSan race; a watchdog
 * fails the case if no thread makes progress for 10 s (a deadlock), and
 * every thread must complete rounds (no starvation, E-WW-8).
 *
 * Bounded by harness_duration_s(); meant to run clean under TSan too.
 */
#include <pthread.h>
#include <string.h>

#include <hetmem/resv/ww_mutex.h>

#include "core/internal.h"
#include "harness.h"

#define NLOCKS		32
#define NTHREADS	8
#define MAX_SUB		12
#define STALL_MS	10000

static DEFINE_WW_CLASS(ww_class);
static DEFINE_WD_CLASS(wd_class);

enum mode {
	MODE_INORDER,	/* sorted subset: contexts still contend */
	MODE_REORDER,	/* random order: needs back-off */
	MODE_ONE,	/* one mutex at a time, with a context */
	MODE_MIXED,	/* reorder, and every other thread without context */
	MODE_INJECT,	/* reorder with deadlock injection */
};

struct slot {
	int holder;
	unsigned long count;
};

struct stress {
	struct ww_mutex locks[NLOCKS];
	struct slot slots[NLOCKS];
	struct ww_class *cls;
	enum mode mode;
	int stop;
	unsigned long progress;
	int errors;
};

struct worker {
	struct stress *s;
	pthread_t thread;
	int id;
	uint32_t seed;
	unsigned long rounds;
	unsigned long backoffs;
};

/* @n distinct lock indices, in random order or sorted. */
static void pick(struct worker *w, int *order, int n, bool sorted)
{
	bool used[NLOCKS] = { 0 };
	int i, k;

	for (i = 0; i < n; i++) {
		do
			k = (int)(harness_rand(&w->seed) % NLOCKS);
		while (used[k]);
		used[k] = true;
		order[i] = k;
	}
	if (!sorted)
		return;
	for (i = 0, n = 0; i < NLOCKS; i++)
		if (used[i])
			order[n++] = i;
}

static void touch(struct worker *w, int k)
{
	struct slot *sl = &w->s->slots[k];

	if (sl->holder)
		__atomic_add_fetch(&w->s->errors, 1, __ATOMIC_RELAXED);
	sl->holder = w->id;
	sl->count++;
}

static void untouch(struct worker *w, int k)
{
	struct slot *sl = &w->s->slots[k];

	if (sl->holder != w->id)
		__atomic_add_fetch(&w->s->errors, 1, __ATOMIC_RELAXED);
	sl->holder = 0;
}

static void unlock_held(struct worker *w, bool *held)
{
	int k;

	for (k = 0; k < NLOCKS; k++) {
		if (!held[k])
			continue;
		untouch(w, k);
		ww_mutex_unlock(&w->s->locks[k]);
		held[k] = false;
	}
}

/* Lock all of @order with @ctx, backing off as often as needed. */
static void lock_set(struct worker *w, struct ww_acquire_ctx *ctx,
		     const int *order, int n, bool *held)
{
	struct ww_mutex *locks = w->s->locks;
	int i, k, ret;

retry:
	for (i = 0; i < n; i++) {
		k = order[i];
		ret = ww_mutex_lock(&locks[k], ctx);
		if (ret == -EALREADY)
			continue;	/* taken by lock_slow below */
		if (ret == -EDEADLK) {
			w->backoffs++;
			unlock_held(w, held);
			ww_mutex_lock_slow(&locks[k], ctx);
			touch(w, k);
			held[k] = true;
			goto retry;
		}
		if (ret)
			__atomic_add_fetch(&w->s->errors, 1, __ATOMIC_RELAXED);
		touch(w, k);
		held[k] = true;
	}
}

static void round_ctx(struct worker *w)
{
	struct stress *s = w->s;
	bool held[NLOCKS] = { 0 };
	struct ww_acquire_ctx ctx;
	int order[MAX_SUB], n;

	n = s->mode == MODE_ONE ? 1 : 2 + (int)(harness_rand(&w->seed) % (MAX_SUB - 1));
	pick(w, order, n, s->mode == MODE_INORDER);
	ww_acquire_init(&ctx, s->cls);
	if (s->mode == MODE_INJECT)
		hetmem_ww_acquire_inject_deadlocks(&ctx, true);
	lock_set(w, &ctx, order, n, held);
	ww_acquire_done(&ctx);
	if (ctx.acquired != (unsigned int)n)
		__atomic_add_fetch(&s->errors, 1, __ATOMIC_RELAXED);
	unlock_held(w, held);
	ww_acquire_fini(&ctx);
}

static void round_plain(struct worker *w)
{
	int k = (int)(harness_rand(&w->seed) % NLOCKS);

	ww_mutex_lock(&w->s->locks[k], NULL);
	touch(w, k);
	untouch(w, k);
	ww_mutex_unlock(&w->s->locks[k]);
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	struct stress *s = w->s;
	bool plain = s->mode == MODE_MIXED && (w->id & 1);

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		if (plain)
			round_plain(w);
		else
			round_ctx(w);
		__atomic_store_n(&w->rounds, w->rounds + 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&s->progress, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Fails the case when nobody completes a round for STALL_MS. */
static bool watchdog(struct stress *s)
{
	int64_t end = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	int64_t last_move = harness_now_ms();
	unsigned long last = 0, now;

	while (harness_now_ms() < end) {
		harness_sleep_ms(20);
		now = __atomic_load_n(&s->progress, __ATOMIC_RELAXED);
		if (now != last) {
			last = now;
			last_move = harness_now_ms();
		} else if (harness_now_ms() - last_move > STALL_MS) {
			return false;
		}
	}
	return true;
}

static void run_stress(struct ww_class *cls, enum mode mode)
{
	struct worker w[NTHREADS];
	unsigned long rounds = 0, backoffs = 0, count = 0;
	struct stress *s = calloc(1, sizeof(*s));
	bool alive;
	int i;

	ASSERT_NONNULL(s);
	s->cls = cls;
	s->mode = mode;
	for (i = 0; i < NLOCKS; i++)
		ww_mutex_init(&s->locks[i], cls);
	for (i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .s = s, .id = i + 1,
					.seed = 0x9e3779b9u * (i + 1) };
		ASSERT_EQ(pthread_create(&w[i].thread, NULL, worker_fn, &w[i]),
			  0);
	}
	alive = watchdog(s);
	if (!alive) {
		TH_LOG("no progress for %d ms: deadlock", STALL_MS);
		th_assert_failed();	/* threads are stuck: do not join */
	}
	/* Every thread must get rounds done before it may stop. */
	for (i = 0; i < NTHREADS; i++) {
		int64_t end = harness_now_ms() + STALL_MS;

		while (!__atomic_load_n(&w[i].rounds, __ATOMIC_RELAXED) &&
		       harness_now_ms() < end)
			harness_sleep_ms(5);
	}
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].thread, NULL);
		EXPECT_GT(w[i].rounds, 0ul);
		rounds += w[i].rounds;
		backoffs += w[i].backoffs;
	}
	for (i = 0; i < NLOCKS; i++) {
		EXPECT_FALSE(ww_mutex_is_locked(&s->locks[i]));
		count += s->slots[i].count;
		ww_mutex_destroy(&s->locks[i]);
	}
	TH_LOG("%s: %lu rounds, %lu back-offs, %lu locks taken",
	       cls->is_wait_die ? "wait-die" : "wound-wait", rounds, backoffs,
	       count);
	EXPECT_EQ(s->errors, 0);
	if (mode == MODE_INJECT)
		EXPECT_GT(backoffs, 0ul);
	free(s);
}

TEST_TIMEOUT(stress_inorder, 120)
{
	run_stress(&ww_class, MODE_INORDER);
}

TEST_TIMEOUT(stress_inorder_wait_die, 120)
{
	run_stress(&wd_class, MODE_INORDER);
}

TEST_TIMEOUT(stress_reorder, 120)
{
	run_stress(&ww_class, MODE_REORDER);
}

TEST_TIMEOUT(stress_reorder_wait_die, 120)
{
	run_stress(&wd_class, MODE_REORDER);
}

TEST_TIMEOUT(stress_one, 120)
{
	run_stress(&ww_class, MODE_ONE);
}

TEST_TIMEOUT(stress_one_wait_die, 120)
{
	run_stress(&wd_class, MODE_ONE);
}

TEST_TIMEOUT(stress_mixed_ctxless, 120)
{
	run_stress(&ww_class, MODE_MIXED);
}

TEST_TIMEOUT(stress_mixed_ctxless_wait_die, 120)
{
	run_stress(&wd_class, MODE_MIXED);
}

TEST_TIMEOUT(stress_deadlock_injection, 120)
{
	run_stress(&ww_class, MODE_INJECT);
}

TEST_TIMEOUT(stress_deadlock_injection_wait_die, 120)
{
	run_stress(&wd_class, MODE_INJECT);
}
