/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the futex lock (spinlock and mutex roles) and of
 * the futex wait/wake helpers beneath it.
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <hetmem/core/spinlock.h>
#include <hetmem/core/time.h>

#include "core/internal.h"
#include "harness.h"

/* Spins until *@p == @want or @ms elapse; returns whether it matched. */
static bool wait_u32(const uint32_t *p, uint32_t want, long ms)
{
	int64_t end = harness_now_ms() + ms;

	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != want) {
		if (harness_now_ms() > end)
			return false;
		harness_sleep_ms(1);
	}
	return true;
}

static bool wait_int(const int *p, int want, long ms)
{
	return wait_u32((const uint32_t *)p, (uint32_t)want, ms);
}

/*
 * One body for both roles: the fixture variant picks spinlock or mutex, so
 * every behaviour is checked for each.
 */
struct lock_ops {
	void (*lock)(void *l);
	bool (*trylock)(void *l);
	void (*unlock)(void *l);
	bool (*is_locked)(void *l);
	bool (*is_held)(void *l);
};

static void s_lock(void *l) { hetmem_spin_lock(l); }
static bool s_trylock(void *l) { return hetmem_spin_trylock(l); }
static void s_unlock(void *l) { hetmem_spin_unlock(l); }
static bool s_is_locked(void *l) { return hetmem_spin_is_locked(l); }
static bool s_is_held(void *l) { return hetmem_spin_is_held(l); }
static void m_lock(void *l) { hetmem_mutex_lock(l); }
static bool m_trylock(void *l) { return hetmem_mutex_trylock(l); }
static void m_unlock(void *l) { hetmem_mutex_unlock(l); }
static bool m_is_locked(void *l) { return hetmem_mutex_is_locked(l); }
static bool m_is_held(void *l) { return hetmem_mutex_is_held(l); }

static const struct lock_ops spin_ops = {
	s_lock, s_trylock, s_unlock, s_is_locked, s_is_held,
};
static const struct lock_ops mutex_ops = {
	m_lock, m_trylock, m_unlock, m_is_locked, m_is_held,
};

FIXTURE(locks) {
	hetmem_spinlock_t spin;
	struct hetmem_mutex mutex;
	void *lock;
	uint32_t *word;		/* the futex word of whichever is in use */
	const struct lock_ops *ops;
};

FIXTURE_VARIANT(locks) {
	bool mutex;
};

FIXTURE_VARIANT_ADD(locks, spinlock) { .mutex = false };
FIXTURE_VARIANT_ADD(locks, mutex) { .mutex = true };

FIXTURE_SETUP(locks)
{
	hetmem_spin_lock_init(&self->spin);
	hetmem_mutex_init(&self->mutex);
	if (variant->mutex) {
		self->lock = &self->mutex;
		self->word = &self->mutex.base.val;
		self->ops = &mutex_ops;
	} else {
		self->lock = &self->spin;
		self->word = &self->spin.val;
		self->ops = &spin_ops;
	}
}

FIXTURE_TEARDOWN(locks)
{
}

TEST_F(locks, lock_unlock_state)
{
	const struct lock_ops *o = self->ops;

	ASSERT_FALSE(o->is_locked(self->lock));
	ASSERT_FALSE(o->is_held(self->lock));
	o->lock(self->lock);
	ASSERT_TRUE(o->is_locked(self->lock));
	ASSERT_TRUE(o->is_held(self->lock));
	ASSERT_EQ(*self->word, 1);
	o->unlock(self->lock);
	ASSERT_FALSE(o->is_locked(self->lock));
	ASSERT_FALSE(o->is_held(self->lock));
	ASSERT_EQ(*self->word, 0);
}

TEST_F(locks, trylock)
{
	const struct lock_ops *o = self->ops;

	ASSERT_TRUE(o->trylock(self->lock));
	ASSERT_TRUE(o->is_held(self->lock));
	/* Held, even by the caller: trylock fails instead of deadlocking. */
	ASSERT_FALSE(o->trylock(self->lock));
	ASSERT_TRUE(o->is_held(self->lock));
	o->unlock(self->lock);
	ASSERT_FALSE(o->is_locked(self->lock));
	ASSERT_TRUE(o->trylock(self->lock));
	o->unlock(self->lock);
}

struct holder {
	FIXTURE_DATA(locks) *fx;
	int state;		/* 1 holding, 2 asked to release, 3 done */
	int trylock_result;
	int held_seen;
	int locked_seen;
};

static void *hold_thread(void *arg)
{
	struct holder *h = arg;
	const struct lock_ops *o = h->fx->ops;

	o->lock(h->fx->lock);
	__atomic_store_n(&h->state, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != 2)
		harness_sleep_ms(1);
	o->unlock(h->fx->lock);
	__atomic_store_n(&h->state, 3, __ATOMIC_RELEASE);
	return NULL;
}

static void *probe_thread(void *arg)
{
	struct holder *h = arg;
	const struct lock_ops *o = h->fx->ops;

	h->trylock_result = o->trylock(h->fx->lock);
	h->held_seen = o->is_held(h->fx->lock);
	h->locked_seen = o->is_locked(h->fx->lock);
	if (h->trylock_result)
		o->unlock(h->fx->lock);
	return NULL;
}

TEST_F(locks, held_by_other_thread)
{
	const struct lock_ops *o = self->ops;
	struct holder h = { .fx = self };
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, hold_thread, &h), 0);
	ASSERT_TRUE(wait_int(&h.state, 1, 5000));
	ASSERT_TRUE(o->is_locked(self->lock));
	ASSERT_FALSE(o->is_held(self->lock));
	ASSERT_FALSE(o->trylock(self->lock));
	__atomic_store_n(&h.state, 2, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ASSERT_EQ(h.state, 3);
	ASSERT_FALSE(o->is_locked(self->lock));

	/* And the other way round: held here, probed from another thread. */
	o->lock(self->lock);
	ASSERT_EQ(pthread_create(&th, NULL, probe_thread, &h), 0);
	pthread_join(th, NULL);
	ASSERT_FALSE(h.trylock_result);
	ASSERT_FALSE(h.held_seen);
	ASSERT_TRUE(h.locked_seen);
	ASSERT_TRUE(o->is_held(self->lock));
	o->unlock(self->lock);
}

struct contender {
	FIXTURE_DATA(locks) *fx;
	int started;
	int released;		/* set by the holder just before unlocking */
	int saw_release;
	int64_t got_at;
};

static void *contend_thread(void *arg)
{
	struct contender *c = arg;
	const struct lock_ops *o = c->fx->ops;

	__atomic_store_n(&c->started, 1, __ATOMIC_RELEASE);
	o->lock(c->fx->lock);
	c->got_at = harness_now_ms();
	c->saw_release = __atomic_load_n(&c->released, __ATOMIC_ACQUIRE);
	o->unlock(c->fx->lock);
	return NULL;
}

TEST_F(locks, contended_lock_sleeps_and_is_woken)
{
	const struct lock_ops *o = self->ops;
	struct contender c = { .fx = self };
	pthread_t th;
	int64_t released_at;

	o->lock(self->lock);
	ASSERT_EQ(pthread_create(&th, NULL, contend_thread, &c), 0);
	ASSERT_TRUE(wait_int(&c.started, 1, 5000));
	/* The contender announces itself as a sleeper (state 2). */
	ASSERT_TRUE(wait_u32(self->word, 2, 5000));
	harness_sleep_ms(50);
	ASSERT_EQ(c.got_at, 0);
	__atomic_store_n(&c.released, 1, __ATOMIC_RELEASE);
	released_at = harness_now_ms();
	o->unlock(self->lock);
	pthread_join(th, NULL);
	ASSERT_TRUE(c.saw_release);
	ASSERT_GE(c.got_at, released_at);
	/* Woken promptly, not by some timeout. */
	ASSERT_LT(c.got_at - released_at, 1000);
	ASSERT_EQ(*self->word, 0);
	ASSERT_FALSE(o->is_locked(self->lock));
}

#define EXCL_THREADS 6

struct excl {
	FIXTURE_DATA(locks) *fx;
	int64_t end_ms;
	unsigned long counter;	/* protected by the lock, plain accesses */
	int inside;
	int overlaps;
	int progress;		/* any thread finished an iteration */
	int finished;		/* threads that left the loop */
	bool yield_inside;
};

struct excl_thread {
	struct excl *x;
	unsigned long ops;
	pthread_t th;
};

static void *excl_worker(void *arg)
{
	struct excl_thread *t = arg;
	struct excl *x = t->x;
	const struct lock_ops *o = x->fx->ops;

	while (harness_now_ms() < x->end_ms) {
		int i;

		for (i = 0; i < 64; i++) {
			o->lock(x->fx->lock);
			if (__atomic_fetch_add(&x->inside, 1, __ATOMIC_RELAXED))
				__atomic_add_fetch(&x->overlaps, 1,
						   __ATOMIC_RELAXED);
			x->counter++;
			if (x->yield_inside && (t->ops & 15) == 0)
				sched_yield();	/* force sleepers */
			__atomic_sub_fetch(&x->inside, 1, __ATOMIC_RELAXED);
			o->unlock(x->fx->lock);
			t->ops++;
		}
		__atomic_add_fetch(&x->progress, 1, __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(&x->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void run_exclusion(FIXTURE_DATA(locks) *fx, bool yield_inside)
{
	struct excl x = { .fx = fx, .yield_inside = yield_inside };
	struct excl_thread t[EXCL_THREADS];
	unsigned long total = 0;
	int i, last = -1, stalled = 0;

	x.end_ms = harness_now_ms() + 1000;
	for (i = 0; i < EXCL_THREADS; i++) {
		t[i].x = &x;
		t[i].ops = 0;
		ASSERT_EQ(pthread_create(&t[i].th, NULL, excl_worker, &t[i]), 0);
	}
	/*
	 * Watchdog: a lost wake-up leaves every thread asleep on the lock.
	 * Report it as such instead of waiting for the case timeout.
	 */
	while (__atomic_load_n(&x.finished, __ATOMIC_ACQUIRE) < EXCL_THREADS) {
		int p = __atomic_load_n(&x.progress, __ATOMIC_RELAXED);

		stalled = p == last ? stalled + 1 : 0;
		last = p;
		/* A lost wake-up stalls forever; 5 s tolerates a loaded machine. */
		ASSERT_LT(stalled, 500);
		harness_sleep_ms(10);
	}
	for (i = 0; i < EXCL_THREADS; i++) {
		pthread_join(t[i].th, NULL);
		ASSERT_GT(t[i].ops, 0);
		total += t[i].ops;
	}
	TH_LOG("%lu lock/unlock pairs", total);
	ASSERT_EQ(x.overlaps, 0);
	ASSERT_EQ(x.counter, total);
	ASSERT_EQ(*fx->word, 0);
}

TEST_F(locks, mutual_exclusion)
{
	run_exclusion(self, false);
}

TEST_F(locks, no_lost_wakeups)
{
	run_exclusion(self, true);
}

TEST(static_initialisers)
{
	static hetmem_spinlock_t s = HETMEM_SPINLOCK_INIT(static_spin);
	static struct hetmem_mutex m = HETMEM_MUTEX_INIT(static_mutex);

	ASSERT_STREQ(s.dep_map.name, "static_spin");
	ASSERT_STREQ(m.base.dep_map.name, "static_mutex");
	ASSERT_TRUE(s.dep_map.flags & HETMEM_LOCKDEP_ATOMIC);
	ASSERT_FALSE(m.base.dep_map.flags & HETMEM_LOCKDEP_ATOMIC);
	hetmem_mutex_lock(&m);
	ASSERT_TRUE(hetmem_mutex_is_held(&m));
	hetmem_spin_lock(&s);
	ASSERT_TRUE(hetmem_spin_is_held(&s));
	hetmem_spin_unlock(&s);
	hetmem_mutex_unlock(&m);
	ASSERT_FALSE(hetmem_spin_is_locked(&s));
	ASSERT_FALSE(hetmem_mutex_is_locked(&m));
}

TEST(init_names_the_lock)
{
	hetmem_spinlock_t s;
	struct hetmem_mutex m;

	hetmem_spin_lock_init(&s);
	hetmem_mutex_init(&m);
	ASSERT_STREQ(s.dep_map.name, "&s");
	ASSERT_STREQ(m.base.dep_map.name, "&m");
	ASSERT_EQ(s.val, 0);
	ASSERT_EQ(m.base.val, 0);
}

/* ------------------------------------------------------------------ */
/* futex helpers */

TEST(futex_wait_value_mismatch_returns_at_once)
{
	uint32_t word = 5;
	int64_t t0 = harness_now_ms();

	ASSERT_EQ(hetmem_futex_wait(&word, 4, -1, false), 0);
	ASSERT_EQ(hetmem_futex_wait(&word, 4, -1, true), 0);
	ASSERT_LT(harness_now_ms() - t0, 1000);
}

TEST(futex_wait_deadline)
{
	uint32_t word = 0;
	int64_t t0 = hetmem_ktime_get(), t1;

	ASSERT_EQ(hetmem_futex_wait(&word, 0, t0 + 20000000, false), -ETIMEDOUT);
	t1 = hetmem_ktime_get();
	ASSERT_GE(t1 - t0, 20000000);
	ASSERT_EQ(hetmem_futex_wait(&word, 0, t1 + 20000000, true), -ETIMEDOUT);
	ASSERT_GE(hetmem_ktime_get() - t1, 20000000);
	/* A deadline in the past times out at once. */
	ASSERT_EQ(hetmem_futex_wait(&word, 0, 0, false), -ETIMEDOUT);
	ASSERT_EQ(hetmem_futex_wait(&word, 0, hetmem_ktime_get() - 1, true),
		  -ETIMEDOUT);
}

struct futex_waiter {
	uint32_t word;
	int64_t deadline;
	bool intr;
	int started;
	int done;
	int ret;
};

static void *futex_wait_thread(void *arg)
{
	struct futex_waiter *w = arg;

	__atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
	w->ret = hetmem_futex_wait(&w->word, 0, w->deadline, w->intr);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(futex_wake_wakes_sleeper)
{
	struct futex_waiter w = { .deadline = -1 };
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, futex_wait_thread, &w), 0);
	ASSERT_TRUE(wait_int(&w.started, 1, 5000));
	harness_sleep_ms(30);
	ASSERT_EQ(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0);
	__atomic_store_n(&w.word, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake(&w.word, 1);
	pthread_join(th, NULL);
	ASSERT_EQ(w.ret, 0);
}

static int handled;

static void on_signal(int sig)
{
	__atomic_add_fetch(&handled, 1, __ATOMIC_RELAXED);
}

static void install_restart_handler(void)
{
	struct sigaction sa = { .sa_handler = on_signal,
				.sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
}

TEST(futex_intr_wait_interrupted_despite_sa_restart)
{
	struct futex_waiter w = { .deadline = -1, .intr = true };
	pthread_t th;
	int i;

	install_restart_handler();
	ASSERT_EQ(pthread_create(&th, NULL, futex_wait_thread, &w), 0);
	ASSERT_TRUE(wait_int(&w.started, 1, 5000));
	/* A signal may land before the sleep starts: keep knocking. */
	for (i = 0; i < 500 && !__atomic_load_n(&w.done, __ATOMIC_ACQUIRE); i++) {
		pthread_kill(th, SIGUSR1);
		harness_sleep_ms(10);
	}
	pthread_join(th, NULL);
	ASSERT_EQ(w.ret, -EINTR);
	ASSERT_GE(handled, 1);
}

TEST(futex_uninterruptible_wait_ignores_signals)
{
	struct futex_waiter w = { .deadline = -1, .intr = false };
	pthread_t th;
	int i;

	install_restart_handler();
	ASSERT_EQ(pthread_create(&th, NULL, futex_wait_thread, &w), 0);
	ASSERT_TRUE(wait_int(&w.started, 1, 5000));
	for (i = 0; i < 20; i++) {
		pthread_kill(th, SIGUSR1);
		harness_sleep_ms(5);
	}
	harness_sleep_ms(20);
	TH_LOG("handler ran %d times before the wake-up",
	       __atomic_load_n(&handled, __ATOMIC_RELAXED));
	ASSERT_EQ(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0);
	__atomic_store_n(&w.word, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake(&w.word, 1);
	pthread_join(th, NULL);
	ASSERT_EQ(w.ret, 0);
	ASSERT_GE(__atomic_load_n(&handled, __ATOMIC_RELAXED), 1);
}
