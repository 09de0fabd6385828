/* SPDX-License-Identifier: MIT */
/*
 * hetmem - ww_mutex unit tests. Case names follow the kernel's
 * kernel/locking/test-ww_mutex.c (mutex, aa, abba, cycle) where one
 * exists; the rest pin the edge semantics E-WW-1..8 of the spec and every
 * debugging report.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <hetmem/resv/ww_mutex.h>

#include "core/internal.h"
#include "harness.h"

static DEFINE_WW_CLASS(ww_class);
static DEFINE_WD_CLASS(wd_class);

static struct ww_class *class_of(int wait_die)
{
	return wait_die ? &wd_class : &ww_class;
}

/* Number of sleepers queued on @lock. */
static int queued(struct ww_mutex *lock)
{
	struct hetmem_list_head *it;
	int n = 0;

	hetmem_spin_lock(&lock->base.wait_lock);
	for (it = lock->base.wait_list.next; it != &lock->base.wait_list;
	     it = it->next)
		n++;
	hetmem_spin_unlock(&lock->base.wait_lock);
	return n;
}

static bool wait_queued(struct ww_mutex *lock, int n)
{
	int64_t end = harness_now_ms() + 5000;

	while (queued(lock) != n) {
		if (harness_now_ms() > end)
			return false;
		harness_sleep_ms(1);
	}
	return true;
}

static pthread_t spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fn, arg))
		th_assert_failed();
	return t;
}

/* ---- mutex: plain mutual exclusion, with and without a context ---- */

struct locker {
	struct ww_mutex *lock;
	struct ww_mutex *held;	/* locked first with the same context */
	struct ww_class *cls;
	struct ww_acquire_ctx ctx;
	int use_ctx;
	int started;		/* context initialised, stamp drawn */
	int go;			/* start locking @lock */
	int ret;
	int done;
	int order;
	int *order_counter;
	int release;		/* unlock and finish */
	int intr;
};

static void *locker_fn(void *arg)
{
	struct locker *l = arg;
	struct ww_acquire_ctx *ctx = l->use_ctx ? &l->ctx : NULL;

	if (ctx)
		ww_acquire_init(ctx, l->cls);
	if (l->held && ww_mutex_lock(l->held, ctx))
		th_assert_failed();
	__atomic_store_n(&l->started, 1, __ATOMIC_RELEASE);
	harness_wait_int(&l->go, 1, 10000);
	l->ret = l->intr ? ww_mutex_lock_interruptible(l->lock, ctx) :
			   ww_mutex_lock(l->lock, ctx);
	if (!l->ret && l->order_counter)
		l->order = __atomic_add_fetch(l->order_counter, 1,
					      __ATOMIC_SEQ_CST);
	__atomic_store_n(&l->done, 1, __ATOMIC_RELEASE);
	harness_wait_int(&l->release, 1, 10000);
	if (!l->ret)
		ww_mutex_unlock(l->lock);
	if (l->held)
		ww_mutex_unlock(l->held);
	if (ctx)
		ww_acquire_fini(ctx);
	return NULL;
}

static void locker_setup(struct locker *l, struct ww_mutex *lock,
			 struct ww_class *cls, int use_ctx)
{
	memset(l, 0, sizeof(*l));
	l->lock = lock;
	l->cls = cls;
	l->use_ctx = use_ctx;
}

/* Start @l and wait until it has its stamp (and its first lock). */
static pthread_t locker_start(struct locker *l)
{
	pthread_t t = spawn(locker_fn, l);

	harness_wait_int(&l->started, 1, 5000);
	return t;
}

static void locker_finish(struct locker *l, pthread_t t)
{
	__atomic_store_n(&l->go, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&l->release, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
}

static void run_mutex(int use_ctx)
{
	struct ww_mutex m;
	struct locker l;
	pthread_t t;

	ww_mutex_init(&m, &ww_class);
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	locker_setup(&l, &m, &ww_class, use_ctx);
	t = locker_start(&l);
	__atomic_store_n(&l.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 1));
	harness_sleep_ms(10);
	EXPECT_EQ(__atomic_load_n(&l.done, __ATOMIC_ACQUIRE), 0);
	ww_mutex_unlock(&m);
	ASSERT_TRUE(harness_wait_int(&l.done, 1, 5000));
	EXPECT_EQ(l.ret, 0);
	EXPECT_TRUE(ww_mutex_is_locked(&m));
	EXPECT_FALSE(hetmem_ww_mutex_is_held(&m));
	locker_finish(&l, t);
	EXPECT_FALSE(ww_mutex_is_locked(&m));
	ww_mutex_destroy(&m);
}

TEST(test_mutex)
{
	run_mutex(0);
}

TEST(test_mutex_ctx)
{
	run_mutex(1);
}

TEST(test_mutex_basic)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, &ww_class);
	EXPECT_FALSE(ww_mutex_is_locked(&m));
	EXPECT_NULL(hetmem_ww_mutex_locking_ctx(&m));
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	EXPECT_TRUE(ww_mutex_is_locked(&m));
	EXPECT_TRUE(hetmem_ww_mutex_is_held(&m));
	EXPECT_NULL(hetmem_ww_mutex_locking_ctx(&m));
	ww_mutex_unlock(&m);

	ww_acquire_init(&ctx, &ww_class);
	ASSERT_EQ(ww_mutex_lock(&m, &ctx), 0);
	EXPECT_EQ(ctx.acquired, 1u);
	EXPECT_TRUE(hetmem_ww_mutex_locking_ctx(&m) == &ctx);
	ww_mutex_unlock(&m);
	EXPECT_EQ(ctx.acquired, 0u);
	EXPECT_NULL(hetmem_ww_mutex_locking_ctx(&m));
	ww_acquire_done(&ctx);
	ww_acquire_fini(&ctx);
	ww_mutex_destroy(&m);
}

TEST(test_mutex_trylock)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, &wd_class);
	EXPECT_EQ(ww_mutex_trylock(&m, NULL), 1);
	EXPECT_EQ(ww_mutex_trylock(&m, NULL), 0);	/* self-held: 0 */
	ww_mutex_unlock(&m);

	ww_acquire_init(&ctx, &wd_class);
	EXPECT_EQ(ww_mutex_trylock(&m, &ctx), 1);
	EXPECT_EQ(ctx.acquired, 1u);
	EXPECT_TRUE(hetmem_ww_mutex_locking_ctx(&m) == &ctx);
	ww_mutex_unlock(&m);
	EXPECT_EQ(ctx.acquired, 0u);
	ww_acquire_fini(&ctx);
}

/* A trylock on a mutex another thread holds fails, with or without ctx. */
TEST(test_mutex_trylock_contended)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m, other;
	struct locker l;
	pthread_t t;

	ww_mutex_init(&m, &wd_class);
	ww_mutex_init(&other, &wd_class);
	locker_setup(&l, &other, &wd_class, 1);
	l.held = &m;
	t = locker_start(&l);
	ww_acquire_init(&ctx, &wd_class);
	EXPECT_EQ(ww_mutex_trylock(&m, NULL), 0);
	EXPECT_EQ(ww_mutex_trylock(&m, &ctx), 0);
	EXPECT_EQ(ctx.acquired, 0u);
	locker_finish(&l, t);
	EXPECT_EQ(ww_mutex_trylock(&m, &ctx), 1);
	ww_mutex_unlock(&m);
	ww_acquire_fini(&ctx);
}

/* ---- aa: relocking with the same context ---- */

static void run_aa(int wait_die)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, class_of(wait_die));
	ww_acquire_init(&ctx, class_of(wait_die));
	ASSERT_EQ(ww_mutex_lock(&m, &ctx), 0);
	EXPECT_EQ(ww_mutex_lock(&m, &ctx), -EALREADY);
	EXPECT_EQ(ww_mutex_lock_interruptible(&m, &ctx), -EALREADY);
	EXPECT_EQ(ww_mutex_trylock(&m, &ctx), 0);
	EXPECT_EQ(ctx.acquired, 1u);
	ww_mutex_unlock(&m);
	EXPECT_FALSE(ww_mutex_is_locked(&m));
	EXPECT_EQ(ctx.acquired, 0u);
	ww_acquire_fini(&ctx);
}

TEST(test_aa)
{
	run_aa(0);
}

TEST(test_aa_wait_die)
{
	run_aa(1);
}

/* ---- abba: two contexts, two mutexes, opposite orders ---- */

struct abba {
	struct ww_mutex *a, *b;
	struct ww_class *cls;
	int resolve;
	int *ready;
	int ret;
	int backoffs;
};

/* Lock @first then @second; back off on -EDEADLK if resolving. */
static int lock_pair(struct ww_mutex *first, struct ww_mutex *second,
		     struct ww_acquire_ctx *ctx, int resolve, int *ready,
		     int *backoffs)
{
	struct ww_mutex *tmp;
	int ret;

	if (ww_mutex_lock(first, ctx))
		return -EINVAL;
	__atomic_add_fetch(ready, 1, __ATOMIC_SEQ_CST);
	harness_wait_int(ready, 2, 5000);
	ret = ww_mutex_lock(second, ctx);
	while (resolve && ret == -EDEADLK) {
		(*backoffs)++;
		ww_mutex_unlock(first);
		ww_mutex_lock_slow(second, ctx);
		tmp = first;
		first = second;
		second = tmp;
		ret = ww_mutex_lock(second, ctx);
	}
	if (!ret)
		ww_mutex_unlock(second);
	ww_mutex_unlock(first);
	return ret;
}

static void *abba_fn(void *arg)
{
	struct abba *x = arg;
	struct ww_acquire_ctx ctx;

	ww_acquire_init(&ctx, x->cls);
	x->ret = lock_pair(x->b, x->a, &ctx, x->resolve, x->ready,
			   &x->backoffs);
	ww_acquire_fini(&ctx);
	return NULL;
}

static void run_abba(int wait_die, int resolve)
{
	struct ww_class *cls = class_of(wait_die);
	struct ww_acquire_ctx ctx;
	struct ww_mutex a, b;
	int ready = 0, backoffs = 0, ret;
	struct abba x = { &a, &b, cls, resolve, &ready, 0, 0 };
	pthread_t t;

	ww_mutex_init(&a, cls);
	ww_mutex_init(&b, cls);
	ww_acquire_init(&ctx, cls);
	t = spawn(abba_fn, &x);
	ret = lock_pair(&a, &b, &ctx, resolve, &ready, &backoffs);
	ww_acquire_fini(&ctx);
	pthread_join(t, NULL);
	if (resolve) {
		EXPECT_EQ(ret, 0);
		EXPECT_EQ(x.ret, 0);
		EXPECT_GE(backoffs + x.backoffs, 1);
	} else {
		/* Somebody was told to back off, nobody deadlocked. */
		EXPECT_TRUE(ret == -EDEADLK || x.ret == -EDEADLK);
		EXPECT_TRUE(ret == 0 || ret == -EDEADLK);
		EXPECT_TRUE(x.ret == 0 || x.ret == -EDEADLK);
	}
}

TEST(test_abba)
{
	run_abba(0, 0);
}

TEST(test_abba_resolve)
{
	run_abba(0, 1);
}

TEST(test_abba_wait_die)
{
	run_abba(1, 0);
}

TEST(test_abba_wait_die_resolve)
{
	run_abba(1, 1);
}

/* ---- cycle: N threads, each holding one mutex and wanting the next ---- */

#define CYCLE_N 8

struct cycle {
	struct ww_mutex *locks;
	struct ww_class *cls;
	int idx;
	int *ready;
	int ret;
};

static void *cycle_fn(void *arg)
{
	struct cycle *c = arg;
	struct ww_mutex *mine = &c->locks[c->idx];
	struct ww_mutex *next = &c->locks[(c->idx + 1) % CYCLE_N];
	struct ww_acquire_ctx ctx;
	int backoffs = 0;

	ww_acquire_init(&ctx, c->cls);
	c->ret = ww_mutex_lock(mine, &ctx);
	if (!c->ret) {
		ww_mutex_unlock(mine);	/* lock_pair() takes it again */
		c->ret = lock_pair(mine, next, &ctx, 1, c->ready, &backoffs);
	}
	ww_acquire_fini(&ctx);
	return NULL;
}

static void run_cycle(int wait_die)
{
	struct ww_mutex locks[CYCLE_N];
	struct cycle c[CYCLE_N];
	pthread_t t[CYCLE_N];
	int i, ready = 2 - CYCLE_N;	/* lock_pair() waits for 2 */

	for (i = 0; i < CYCLE_N; i++)
		ww_mutex_init(&locks[i], class_of(wait_die));
	for (i = 0; i < CYCLE_N; i++) {
		c[i] = (struct cycle){ locks, class_of(wait_die), i, &ready, 0 };
		t[i] = spawn(cycle_fn, &c[i]);
	}
	for (i = 0; i < CYCLE_N; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(c[i].ret, 0);
	}
	for (i = 0; i < CYCLE_N; i++)
		EXPECT_FALSE(ww_mutex_is_locked(&locks[i]));
}

TEST(test_cycle)
{
	run_cycle(0);
}

TEST(test_cycle_wait_die)
{
	run_cycle(1);
}

/* ---- E-WW-1: stamps ---- */

TEST(test_stamp_first_is_one)
{
	DEFINE_WD_CLASS(fresh);
	struct ww_acquire_ctx a, b;

	ww_acquire_init(&a, &fresh);
	EXPECT_EQ(a.stamp, 1ul);
	ww_acquire_fini(&a);
	ww_acquire_init(&b, &fresh);
	EXPECT_EQ(b.stamp, 2ul);
	EXPECT_EQ(b.is_wait_die, 1);
	ww_acquire_fini(&b);
}

/*
 * @old and @young are drawn across a wrap of the counter: the one with the
 * numerically larger stamp must still count as older.
 */
static void run_wrap(unsigned long start)
{
	DEFINE_WD_CLASS(wrap);
	struct ww_mutex m, held;
	struct locker old;
	struct ww_acquire_ctx young;
	pthread_t t;

	wrap.stamp = start;
	ww_mutex_init(&m, &wrap);
	ww_mutex_init(&held, &wrap);
	locker_setup(&old, &held, &wrap, 1);
	old.held = &m;
	t = locker_start(&old);
	ww_acquire_init(&young, &wrap);
	TH_LOG("old stamp %lu, young stamp %lu", old.ctx.stamp, young.stamp);
	EXPECT_EQ(old.ctx.stamp, start + 1);
	EXPECT_EQ(young.stamp, start + 2);
	ASSERT_EQ(ww_mutex_lock(&held, &young), 0);
	/* young holds @held (acquired 1); old holds @m: young must die. */
	EXPECT_EQ(ww_mutex_lock(&m, &young), -EDEADLK);
	ww_mutex_unlock(&held);
	ww_acquire_fini(&young);
	locker_finish(&old, t);
}

TEST(test_stamp_wrap_ulong)
{
	/* old gets ULONG_MAX, young wraps to 0. */
	run_wrap(ULONG_MAX - 1);
}

TEST(test_stamp_wrap_long)
{
	/* old gets LONG_MAX, young LONG_MAX + 1 (negative as a long). */
	run_wrap((unsigned long)LONG_MAX - 1);
}

/* ---- E-WW-3: -EDEADLK only with locks held ---- */

static void run_no_edeadlk_empty(int wait_die)
{
	struct ww_class *cls = class_of(wait_die);
	struct ww_mutex m;
	struct locker old, young;
	pthread_t to, ty;

	ww_mutex_init(&m, cls);
	locker_setup(&old, &m, cls, 1);
	to = locker_start(&old);
	locker_setup(&young, &m, cls, 1);
	ty = locker_start(&young);
	ASSERT_LT(old.ctx.stamp, young.ctx.stamp);
	__atomic_store_n(&old.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&old.done, 1, 5000));
	/* Younger, holding nothing, behind an older holder: it waits. */
	__atomic_store_n(&young.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 1));
	__atomic_store_n(&old.release, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&young.done, 1, 5000));
	EXPECT_EQ(young.ret, 0);
	locker_finish(&young, ty);
	pthread_join(to, NULL);
}

TEST(test_edeadlk_only_with_locks_held)
{
	run_no_edeadlk_empty(0);
}

TEST(test_edeadlk_only_with_locks_held_wait_die)
{
	run_no_edeadlk_empty(1);
}

/* Wait-Die: an older waiter waits for a younger holder. */
TEST(test_wait_die_older_waits)
{
	struct ww_mutex m, x;
	struct locker old, young;
	pthread_t to, ty;

	ww_mutex_init(&m, &wd_class);
	ww_mutex_init(&x, &wd_class);
	locker_setup(&old, &m, &wd_class, 1);
	old.held = &x;
	to = locker_start(&old);
	locker_setup(&young, &m, &wd_class, 1);
	ty = locker_start(&young);
	__atomic_store_n(&young.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&young.done, 1, 5000));
	ASSERT_EQ(young.ret, 0);
	__atomic_store_n(&old.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 1));
	harness_sleep_ms(10);
	EXPECT_EQ(__atomic_load_n(&old.done, __ATOMIC_ACQUIRE), 0);
	locker_finish(&young, ty);
	ASSERT_TRUE(harness_wait_int(&old.done, 1, 5000));
	EXPECT_EQ(old.ret, 0);
	locker_finish(&old, to);
}

/* Wait-Die: a younger context holding locks dies behind an older waiter. */
TEST(test_wait_die_older_queued_ahead)
{
	struct ww_mutex m, x, z;
	struct locker old, young;
	pthread_t to, ty;

	ww_mutex_init(&m, &wd_class);
	ww_mutex_init(&x, &wd_class);
	ww_mutex_init(&z, &wd_class);
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);	/* context-less holder */
	locker_setup(&old, &m, &wd_class, 1);
	old.held = &x;
	to = locker_start(&old);
	locker_setup(&young, &m, &wd_class, 1);
	young.held = &z;
	ty = locker_start(&young);
	__atomic_store_n(&old.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 1));
	__atomic_store_n(&young.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&young.done, 1, 5000));
	EXPECT_EQ(young.ret, -EDEADLK);
	EXPECT_TRUE(young.ctx.contending_lock == &m);
	locker_finish(&young, ty);
	ww_mutex_unlock(&m);
	ASSERT_TRUE(harness_wait_int(&old.done, 1, 5000));
	EXPECT_EQ(old.ret, 0);
	locker_finish(&old, to);
}

/* Wait-Die: an older context queueing ahead wakes a younger one to die. */
TEST(test_wait_die_woken_to_die)
{
	struct ww_mutex m, x, z;
	struct locker old, young;
	pthread_t to, ty;

	ww_mutex_init(&m, &wd_class);
	ww_mutex_init(&x, &wd_class);
	ww_mutex_init(&z, &wd_class);
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	locker_setup(&old, &m, &wd_class, 1);
	old.held = &x;
	to = locker_start(&old);
	locker_setup(&young, &m, &wd_class, 1);
	young.held = &z;
	ty = locker_start(&young);
	__atomic_store_n(&young.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 1));
	harness_sleep_ms(10);
	EXPECT_EQ(__atomic_load_n(&young.done, __ATOMIC_ACQUIRE), 0);
	__atomic_store_n(&old.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&young.done, 1, 5000));
	EXPECT_EQ(young.ret, -EDEADLK);
	locker_finish(&young, ty);
	ww_mutex_unlock(&m);
	ASSERT_TRUE(harness_wait_int(&old.done, 1, 5000));
	EXPECT_EQ(old.ret, 0);
	locker_finish(&old, to);
}

/* ---- E-WW-6: Wound-Wait ---- */

struct wounded {
	struct ww_mutex *a, *b, *c;
	struct ww_acquire_ctx ctx;
	int started, go, ret_b, ret_c, done, release;
	int wounded_seen;
};

/* Younger side: hold @a, then (on go) lock @c and/or @b. */
static void *wounded_fn(void *arg)
{
	struct wounded *w = arg;

	ww_acquire_init(&w->ctx, &ww_class);
	if (ww_mutex_lock(w->a, &w->ctx))
		th_assert_failed();
	__atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
	harness_wait_int(&w->go, 1, 10000);
	w->wounded_seen = __atomic_load_n(&w->ctx.wounded, __ATOMIC_SEQ_CST);
	w->ret_c = w->c ? ww_mutex_lock(w->c, &w->ctx) : -1;
	w->ret_b = w->b ? ww_mutex_lock(w->b, &w->ctx) : -1;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	harness_wait_int(&w->release, 1, 10000);
	if (!w->ret_b)
		ww_mutex_unlock(w->b);
	if (!w->ret_c)
		ww_mutex_unlock(w->c);
	ww_mutex_unlock(w->a);
	ww_acquire_fini(&w->ctx);
	return NULL;
}

/*
 * An older context holding @x waits for @a held by the younger one: the
 * younger is wounded; it completes when it needs no contended lock
 * (@lazy) and backs off when it must block on @b.
 */
static void run_wound(int lazy)
{
	struct ww_mutex a, b, c, x;
	struct wounded w = { .a = &a, .b = lazy ? NULL : &b, .c = &c };
	struct locker old;
	pthread_t tw, to;

	ww_mutex_init(&a, &ww_class);
	ww_mutex_init(&b, &ww_class);
	ww_mutex_init(&c, &ww_class);
	ww_mutex_init(&x, &ww_class);
	locker_setup(&old, &a, &ww_class, 1);
	old.held = &x;
	to = locker_start(&old);		/* older stamp */
	tw = spawn(wounded_fn, &w);
	ASSERT_TRUE(harness_wait_int(&w.started, 1, 5000));
	ASSERT_LT(old.ctx.stamp, w.ctx.stamp);
	ASSERT_EQ(ww_mutex_lock(&b, NULL), 0);	/* contended for the young */
	__atomic_store_n(&old.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&a, 1));
	__atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&w.done, 1, 5000));
	EXPECT_EQ(w.wounded_seen, 1);
	EXPECT_EQ(w.ret_c, 0);		/* uncontended: wound not noticed */
	if (!lazy) {
		EXPECT_EQ(w.ret_b, -EDEADLK);
		EXPECT_TRUE(w.ctx.contending_lock == &b);
	}
	EXPECT_EQ(__atomic_load_n(&old.done, __ATOMIC_ACQUIRE), 0);
	__atomic_store_n(&w.release, 1, __ATOMIC_RELEASE);
	pthread_join(tw, NULL);
	ASSERT_TRUE(harness_wait_int(&old.done, 1, 5000));
	EXPECT_EQ(old.ret, 0);
	locker_finish(&old, to);
	ww_mutex_unlock(&b);
}

TEST(test_wound_wait_lazy)
{
	run_wound(1);
}

TEST(test_wound_wait_backoff_when_blocking)
{
	run_wound(0);
}

/* A wounded context already asleep on another mutex is woken to back off. */
TEST(test_wound_wait_wakes_sleeping_holder)
{
	struct ww_mutex a, b, x;
	struct wounded w = { .a = &a, .b = &b };
	struct locker old;
	pthread_t tw, to;

	ww_mutex_init(&a, &ww_class);
	ww_mutex_init(&b, &ww_class);
	ww_mutex_init(&x, &ww_class);
	locker_setup(&old, &a, &ww_class, 1);
	old.held = &x;
	to = locker_start(&old);
	tw = spawn(wounded_fn, &w);
	ASSERT_TRUE(harness_wait_int(&w.started, 1, 5000));
	ASSERT_EQ(ww_mutex_lock(&b, NULL), 0);
	__atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&b, 1));	/* young sleeps on b */
	__atomic_store_n(&old.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&w.done, 1, 5000));
	EXPECT_EQ(w.ret_b, -EDEADLK);
	__atomic_store_n(&w.release, 1, __ATOMIC_RELEASE);
	pthread_join(tw, NULL);
	ASSERT_TRUE(harness_wait_int(&old.done, 1, 5000));
	EXPECT_EQ(old.ret, 0);
	locker_finish(&old, to);
	ww_mutex_unlock(&b);
}

/* An older context holding nothing does not wound; it just waits. */
TEST(test_wound_wait_no_wound_without_locks)
{
	struct ww_mutex a, c;
	struct wounded w = { .a = &a, .c = &c };
	struct locker old;
	pthread_t tw, to;

	ww_mutex_init(&a, &ww_class);
	ww_mutex_init(&c, &ww_class);
	locker_setup(&old, &a, &ww_class, 1);
	to = locker_start(&old);
	tw = spawn(wounded_fn, &w);
	ASSERT_TRUE(harness_wait_int(&w.started, 1, 5000));
	__atomic_store_n(&old.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&a, 1));
	__atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(harness_wait_int(&w.done, 1, 5000));
	EXPECT_EQ(w.wounded_seen, 0);
	__atomic_store_n(&w.release, 1, __ATOMIC_RELEASE);
	pthread_join(tw, NULL);
	locker_finish(&old, to);
}

/* The wounded flag is cleared when a lock call starts with nothing held. */
TEST(test_wound_cleared_when_empty)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, &ww_class);
	ww_acquire_init(&ctx, &ww_class);
	ctx.wounded = 1;
	ASSERT_EQ(ww_mutex_trylock(&m, &ctx), 1);
	EXPECT_EQ(ctx.wounded, 0);
	ww_mutex_unlock(&m);
	ctx.wounded = 1;
	ASSERT_EQ(ww_mutex_lock(&m, &ctx), 0);
	EXPECT_EQ(ctx.wounded, 0);
	ww_mutex_unlock(&m);
	ww_acquire_fini(&ctx);
}

/* ---- E-WW-4: queue order ---- */

TEST(test_ctxless_waiters_fifo)
{
	struct locker l[4];
	pthread_t t[4];
	struct ww_mutex m;
	int i, counter = 0;

	ww_mutex_init(&m, &wd_class);
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	for (i = 0; i < 4; i++) {
		locker_setup(&l[i], &m, &wd_class, 0);
		l[i].order_counter = &counter;
		l[i].release = 1;
		t[i] = locker_start(&l[i]);
		__atomic_store_n(&l[i].go, 1, __ATOMIC_RELEASE);
		ASSERT_TRUE(wait_queued(&m, i + 1));
	}
	ww_mutex_unlock(&m);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(l[i].ret, 0);
		EXPECT_EQ(l[i].order, i + 1);
	}
}

/*
 * Contexts are served oldest first whatever their arrival order; a
 * context-less waiter keeps its place, and is never told to back off even
 * among contexts that hold locks.
 */
static void run_stamp_order(int wait_die)
{
	struct ww_class *cls = class_of(wait_die);
	struct locker l[3];
	pthread_t t[3];
	struct ww_mutex m;
	int i, counter = 0;

	ww_mutex_init(&m, cls);
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	for (i = 0; i < 3; i++) {
		locker_setup(&l[i], &m, cls, i != 1);
		l[i].order_counter = &counter;
		l[i].release = 1;
	}
	/* l[0] gets the older stamp but queues last. */
	t[0] = locker_start(&l[0]);
	t[2] = locker_start(&l[2]);
	t[1] = locker_start(&l[1]);
	__atomic_store_n(&l[2].go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 1));
	__atomic_store_n(&l[1].go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 2));
	__atomic_store_n(&l[0].go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 3));
	ww_mutex_unlock(&m);
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(l[i].ret, 0);
	}
	EXPECT_EQ(l[0].order, 1);	/* older context jumped ahead */
	EXPECT_EQ(l[2].order, 2);
	EXPECT_EQ(l[1].order, 3);	/* context-less, after both */
}

TEST(test_stamp_order)
{
	run_stamp_order(0);
}

TEST(test_stamp_order_wait_die)
{
	run_stamp_order(1);
}

/* ---- interruptible ---- */

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void run_intr(int slow)
{
	struct sigaction sa = { .sa_handler = on_sigusr1,
				.sa_flags = SA_RESTART };
	struct ww_mutex m;
	struct locker l;
	pthread_t t;

	ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	ww_mutex_init(&m, &ww_class);
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	locker_setup(&l, &m, &ww_class, 1);
	l.intr = 1;
	t = locker_start(&l);
	if (slow)
		l.ctx.contending_lock = &m;	/* as after -EDEADLK */
	__atomic_store_n(&l.go, 1, __ATOMIC_RELEASE);
	ASSERT_TRUE(wait_queued(&m, 1));
	pthread_kill(t, SIGUSR1);
	ASSERT_TRUE(harness_wait_int(&l.done, 1, 5000));
	EXPECT_EQ(l.ret, -EINTR);
	EXPECT_EQ(queued(&m), 0);
	EXPECT_TRUE(hetmem_ww_mutex_is_held(&m));
	locker_finish(&l, t);
	ww_mutex_unlock(&m);
	EXPECT_FALSE(ww_mutex_is_locked(&m));
}

TEST(test_lock_interruptible_eintr)
{
	run_intr(0);
}

static void *slow_intr_fn(void *arg)
{
	struct locker *l = arg;

	ww_acquire_init(&l->ctx, l->cls);
	l->ctx.contending_lock = l->lock;	/* as after -EDEADLK */
	__atomic_store_n(&l->started, 1, __ATOMIC_RELEASE);
	l->ret = ww_mutex_lock_slow_interruptible(l->lock, &l->ctx);
	__atomic_store_n(&l->done, 1, __ATOMIC_RELEASE);
	if (!l->ret)
		ww_mutex_unlock(l->lock);
	ww_acquire_fini(&l->ctx);
	return NULL;
}

TEST(test_lock_slow_interruptible_eintr)
{
	struct sigaction sa = { .sa_handler = on_sigusr1,
				.sa_flags = SA_RESTART };
	struct ww_mutex m;
	struct locker l;
	pthread_t t;

	ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	ww_mutex_init(&m, &wd_class);
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	locker_setup(&l, &m, &wd_class, 1);
	t = spawn(slow_intr_fn, &l);
	ASSERT_TRUE(wait_queued(&m, 1));
	pthread_kill(t, SIGUSR1);
	ASSERT_TRUE(harness_wait_int(&l.done, 1, 5000));
	EXPECT_EQ(l.ret, -EINTR);
	pthread_join(t, NULL);
	ww_mutex_unlock(&m);
}

/* ---- E-WW-7: the back-off protocol and its checks ---- */

TEST(test_backoff_protocol)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex a, b, x;
	struct locker old;
	pthread_t to;
	int ret;

	ww_mutex_init(&a, &wd_class);
	ww_mutex_init(&b, &wd_class);
	ww_mutex_init(&x, &wd_class);
	locker_setup(&old, &x, &wd_class, 1);
	old.held = &b;			/* an older holder of b */
	to = locker_start(&old);
	ww_acquire_init(&ctx, &wd_class);
	ASSERT_EQ(ww_mutex_lock(&a, &ctx), 0);
	ret = ww_mutex_lock(&b, &ctx);
	ASSERT_EQ(ret, -EDEADLK);
	EXPECT_EQ(ctx.acquired, 1u);
	ww_mutex_unlock(&a);
	locker_finish(&old, to);
	ww_mutex_lock_slow(&b, &ctx);
	EXPECT_TRUE(ctx.contending_lock == NULL);
	EXPECT_EQ(ww_mutex_lock(&a, &ctx), 0);
	EXPECT_EQ(ww_mutex_lock(&b, &ctx), -EALREADY);
	EXPECT_EQ(ctx.acquired, 2u);
	ww_acquire_done(&ctx);
	ww_mutex_unlock(&a);
	ww_mutex_unlock(&b);
	ww_acquire_fini(&ctx);
}

static unsigned long warn_base;

static void warn_silent(void)
{
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warn_base = hetmem_warn_count();
}

#define EXPECT_WARNED() do {						\
	EXPECT_GT(hetmem_warn_count(), warn_base);			\
	warn_base = hetmem_warn_count();				\
} while (0)

TEST(test_warn_lock_slow_without_edeadlk)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, &wd_class);
	ww_acquire_init(&ctx, &wd_class);
	warn_silent();
	ww_mutex_lock_slow(&m, &ctx);
	EXPECT_WARNED();
	EXPECT_TRUE(hetmem_ww_mutex_is_held(&m));
	ww_mutex_unlock(&m);
	ww_acquire_fini(&ctx);
}

TEST(test_warn_lock_slow_wrong_lock_and_held)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex a, b, c;

	ww_mutex_init(&a, &wd_class);
	ww_mutex_init(&b, &wd_class);
	ww_mutex_init(&c, &wd_class);
	ww_acquire_init(&ctx, &wd_class);
	ASSERT_EQ(ww_mutex_lock(&a, &ctx), 0);
	warn_silent();
	ctx.contending_lock = &b;	/* as if b had returned -EDEADLK */
	ww_mutex_lock_slow(&c, &ctx);	/* wrong lock, a still held */
	EXPECT_WARNED();
	ww_mutex_unlock(&c);
	ww_mutex_unlock(&a);
	ww_acquire_fini(&ctx);
}

TEST(test_warn_other_lock_after_edeadlk)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex a, b;

	ww_mutex_init(&a, &wd_class);
	ww_mutex_init(&b, &wd_class);
	ww_acquire_init(&ctx, &wd_class);
	ctx.contending_lock = &b;
	warn_silent();
	ASSERT_EQ(ww_mutex_lock(&a, &ctx), 0);
	EXPECT_WARNED();
	ww_mutex_unlock(&a);
	ww_acquire_fini(&ctx);
}

TEST(test_warn_lock_after_acquire_done)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, &ww_class);
	ww_acquire_init(&ctx, &ww_class);
	ww_acquire_done(&ctx);
	warn_silent();
	ASSERT_EQ(ww_mutex_lock(&m, &ctx), 0);
	EXPECT_WARNED();
	ww_mutex_unlock(&m);
	ww_acquire_fini(&ctx);
}

TEST(test_warn_class_mismatch)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, &wd_class);
	ww_acquire_init(&ctx, &ww_class);
	warn_silent();
	ASSERT_EQ(ww_mutex_lock(&m, &ctx), 0);
	EXPECT_WARNED();
	ww_mutex_unlock(&m);
	ww_acquire_fini(&ctx);
}

TEST(test_warn_fini_with_locks_held)
{
	struct ww_acquire_ctx ctx;
	struct ww_mutex m;

	ww_mutex_init(&m, &ww_class);
	ww_acquire_init(&ctx, &ww_class);
	ASSERT_EQ(ww_mutex_lock(&m, &ctx), 0);
	warn_silent();
	ww_acquire_fini(&ctx);
	EXPECT_WARNED();
	ww_mutex_unlock(&m);
	EXPECT_FALSE(ww_mutex_is_locked(&m));
	ww_acquire_fini(&ctx);		/* twice */
	EXPECT_WARNED();
}

static void *unlock_fn(void *arg)
{
	ww_mutex_unlock(arg);
	return NULL;
}

TEST(test_warn_unlock_not_owner)
{
	struct ww_mutex m;
	pthread_t t;

	ww_mutex_init(&m, &ww_class);
	warn_silent();
	ww_mutex_unlock(&m);		/* not locked at all */
	EXPECT_WARNED();
	ASSERT_EQ(ww_mutex_lock(&m, NULL), 0);
	t = spawn(unlock_fn, &m);
	pthread_join(t, NULL);
	EXPECT_WARNED();
	EXPECT_TRUE(hetmem_ww_mutex_is_held(&m));	/* refused */
	ww_mutex_destroy(&m);		/* still locked */
	EXPECT_WARNED();
	ww_mutex_unlock(&m);
}

/* ---- deadlock injection ---- */

TEST(test_deadlock_injection)
{
	struct ww_mutex locks[8];
	struct ww_acquire_ctx ctx;
	int i, j, ret, injected = 0;
	struct ww_mutex *contended;

	for (i = 0; i < 8; i++)
		ww_mutex_init(&locks[i], &wd_class);
	for (j = 0; j < 20; j++) {
		ww_acquire_init(&ctx, &wd_class);
		hetmem_ww_acquire_inject_deadlocks(&ctx, true);
		contended = NULL;
retry:
		for (i = 0; i < 8; i++) {
			if (&locks[i] == contended)
				continue;
			ret = ww_mutex_lock(&locks[i], &ctx);
			if (ret == -EDEADLK) {
				injected++;
				while (i--)
					if (&locks[i] != contended)
						ww_mutex_unlock(&locks[i]);
				if (contended)
					ww_mutex_unlock(contended);
				contended = ctx.contending_lock;
				ww_mutex_lock_slow(contended, &ctx);
				goto retry;
			}
			ASSERT_EQ(ret, 0);
		}
		EXPECT_EQ(ctx.acquired, 8u);
		for (i = 0; i < 8; i++)
			ww_mutex_unlock(&locks[i]);
		ww_acquire_fini(&ctx);
	}
	EXPECT_GT(injected, 0);
}
