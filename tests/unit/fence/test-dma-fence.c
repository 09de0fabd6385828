/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the dma-fence core.
 *
 * The first group carries the names and intent of the kernel's
 * st-dma-fence.c selftests; the rest covers the contract of every public
 * dma_fence function and the edge semantics E-F-1..E-F-15 of
 * spec/fence-resv.md §2.1.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>

#include <hetmem/fence/dma-fence.h>

#include "core/internal.h"
#include "harness.h"

/* ------------------------------------------------------------------ */
/* helpers */

static bool test_flag(struct dma_fence *f, int bit)
{
	return __atomic_load_n(&f->flags, __ATOMIC_ACQUIRE) & (1UL << bit);
}

static void quiet_warnings(void)
{
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
}

/* Warning text capture; the handler must not call into hetmem. */
struct capture {
	pthread_mutex_t lock;
	int calls;
	char last[4096];
};

static struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void capture_handler(const char *msg, void *data)
{
	struct capture *c = data;

	pthread_mutex_lock(&c->lock);
	c->calls++;
	snprintf(c->last, sizeof(c->last), "%s", msg);
	pthread_mutex_unlock(&c->lock);
}

/*
 * The test fence: a dma_fence with its own lock and knobs for every
 * optional op. Each ops table below enables a different subset, because
 * the core's behaviour depends on which ops exist.
 */
struct test_fence {
	struct dma_fence base;	/* first: dma_fence_free() frees the block */
	hetmem_spinlock_t lock;
	int enable_calls;
	bool enable_ret;	/* enable_signaling's answer */
	int enable_error;	/* stored when answering false */
	bool enable_saw_lock;
	int hw_done;		/* what ops->signaled reports */
	int signaled_error;
	int signaled_calls;
	int wait_calls;
	long wait_ret;
	bool wait_saw_enable;
	long wait_timeout_arg;
	int deadline_calls;
	hetmem_ktime_t deadline;
};

static int releases;

static struct test_fence *to_tf(struct dma_fence *f)
{
	return hetmem_container_of(f, struct test_fence, base);
}

static const char *tf_driver(struct dma_fence *f)
{
	return "test-driver";
}

static const char *tf_timeline(struct dma_fence *f)
{
	return "test-timeline";
}

static const char *mock_name(struct dma_fence *f)
{
	return "mock";
}

static void tf_release(struct dma_fence *f)
{
	__atomic_add_fetch(&releases, 1, __ATOMIC_RELAXED);
	dma_fence_free(f);
}

static bool tf_enable_signaling(struct dma_fence *f)
{
	struct test_fence *t = to_tf(f);

	t->enable_calls++;
	t->enable_saw_lock = hetmem_spin_is_held(f->lock);
	if (!t->enable_ret && t->enable_error)
		f->error = t->enable_error;
	return t->enable_ret;
}

static bool tf_signaled(struct dma_fence *f)
{
	struct test_fence *t = to_tf(f);

	__atomic_add_fetch(&t->signaled_calls, 1, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&t->hw_done, __ATOMIC_ACQUIRE))
		return false;
	if (t->signaled_error)
		f->error = t->signaled_error;
	return true;
}

static signed long tf_wait(struct dma_fence *f, bool intr,
			   signed long timeout)
{
	struct test_fence *t = to_tf(f);

	t->wait_calls++;
	t->wait_timeout_arg = timeout;
	t->wait_saw_enable = test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT);
	return t->wait_ret;
}

static void tf_set_deadline(struct dma_fence *f, hetmem_ktime_t deadline)
{
	struct test_fence *t = to_tf(f);

	t->deadline_calls++;
	t->deadline = deadline;
}

/*
 * The selftests' mock wait: polls, returns the remaining time once
 * signalled (the timeout itself if it already was) and -ETIME when the
 * time runs out, which the core must pass through unchanged.
 */
static signed long mock_wait(struct dma_fence *f, bool intr,
			     signed long timeout)
{
	int64_t end = hetmem_ktime_get() + hetmem_jiffies_to_nsecs(timeout);

	for (;;) {
		int64_t left = end - hetmem_ktime_get();

		if (dma_fence_test_signaled_flag(f))
			return left > 0 ? hetmem_nsecs_to_jiffies(left) :
					  timeout ? 1 : 0;
		if (left <= 0)
			return -ETIME;
		sched_yield();
	}
}

static const struct dma_fence_ops mock_ops = {
	.get_driver_name = mock_name,
	.get_timeline_name = mock_name,
	.wait = mock_wait,
	.release = tf_release,
};

static const struct dma_fence_ops plain_ops = {
	.get_driver_name = tf_driver,
	.get_timeline_name = tf_timeline,
	.release = tf_release,
};

static const struct dma_fence_ops enable_ops = {
	.get_driver_name = tf_driver,
	.get_timeline_name = tf_timeline,
	.enable_signaling = tf_enable_signaling,
	.release = tf_release,
};

static const struct dma_fence_ops signaled_ops = {
	.get_driver_name = tf_driver,
	.get_timeline_name = tf_timeline,
	.enable_signaling = tf_enable_signaling,
	.signaled = tf_signaled,
	.release = tf_release,
};

static const struct dma_fence_ops wait_ops = {
	.get_driver_name = tf_driver,
	.get_timeline_name = tf_timeline,
	.enable_signaling = tf_enable_signaling,
	.wait = tf_wait,
	.release = tf_release,
};

static const struct dma_fence_ops deadline_ops = {
	.get_driver_name = tf_driver,
	.get_timeline_name = tf_timeline,
	.signaled = tf_signaled,
	.set_deadline = tf_set_deadline,
	.release = tf_release,
};

static struct test_fence *tf_create_on(const struct dma_fence_ops *ops,
				       hetmem_spinlock_t *lock,
				       uint64_t context, uint64_t seqno)
{
	struct test_fence *t = calloc(1, sizeof(*t));

	ASSERT_NONNULL(t);
	hetmem_spin_lock_init(&t->lock);
	t->enable_ret = true;
	dma_fence_init(&t->base, ops, lock ? lock : &t->lock, context, seqno);
	return t;
}

static struct dma_fence *tf_create(const struct dma_fence_ops *ops)
{
	return &tf_create_on(ops, NULL, dma_fence_context_alloc(1), 1)->base;
}

static struct dma_fence *mock_fence(void)
{
	return tf_create(&mock_ops);
}

/* Drops the last reference and waits for the deferred free. */
static void put_and_flush(struct dma_fence *f)
{
	dma_fence_put(f);
	hetmem_rcu_barrier();
}

/* A callback that records how and when it ran. */
struct rec_cb {
	struct dma_fence_cb cb;
	int calls;
	int order;
	bool unqueued_inside;
	bool lock_held_inside;
	bool signaled_inside;
	bool timestamp_inside;
	int error_inside;
	pthread_t thread;
};

static int cb_sequence;

static void rec_func(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct rec_cb *r = hetmem_container_of(cb, struct rec_cb, cb);

	r->order = ++cb_sequence;
	r->unqueued_inside = hetmem_list_empty(&cb->node);
	r->lock_held_inside = hetmem_spin_is_held(f->lock);
	r->signaled_inside = test_flag(f, DMA_FENCE_FLAG_SIGNALED_BIT);
	r->timestamp_inside = test_flag(f, DMA_FENCE_FLAG_TIMESTAMP_BIT);
	r->error_inside = f->error;
	r->thread = pthread_self();
	__atomic_add_fetch(&r->calls, 1, __ATOMIC_RELEASE);
}

/* A signal handler installed with SA_RESTART, as most programs do. */
static int sig_handled;

static void on_sigusr1(int sig)
{
	__atomic_add_fetch(&sig_handled, 1, __ATOMIC_RELAXED);
}

static void install_restart_handler(void)
{
	struct sigaction sa = { .sa_handler = on_sigusr1,
				.sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
}

/* A thread blocked in one of the waits. */
struct waiter {
	struct dma_fence *f;
	struct dma_fence **fences;
	uint32_t count;
	bool any;
	bool infinite;		/* dma_fence_wait() */
	bool intr;
	long timeout;
	uint32_t idx;
	int started;
	int done;
	long ret;
	pthread_t th;
};

static void *waiter_thread(void *arg)
{
	struct waiter *w = arg;

	__atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
	if (w->any)
		w->ret = dma_fence_wait_any_timeout(w->fences, w->count,
						    w->intr, w->timeout,
						    &w->idx);
	else if (w->infinite)
		w->ret = dma_fence_wait(w->f, w->intr);
	else
		w->ret = dma_fence_wait_timeout(w->f, w->intr, w->timeout);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void start_waiter(struct waiter *w)
{
	ASSERT_EQ(pthread_create(&w->th, NULL, waiter_thread, w), 0);
	ASSERT_TRUE(harness_wait_int(&w->started, 1, 5000));
}

/* Signals @f from another thread after @ms. */
struct delayed_signal {
	struct dma_fence *f;
	long ms;
	int go;			/* 0: wait for go, 1: start the delay */
	pthread_t th;
};

static void *delayed_signal_thread(void *arg)
{
	struct delayed_signal *d = arg;

	while (!__atomic_load_n(&d->go, __ATOMIC_ACQUIRE))
		harness_sleep_ms(1);
	harness_sleep_ms(d->ms);
	dma_fence_signal(d->f);
	return NULL;
}

static void start_delayed_signal(struct delayed_signal *d, bool go_now)
{
	d->go = go_now;
	ASSERT_EQ(pthread_create(&d->th, NULL, delayed_signal_thread, d), 0);
}

/* ------------------------------------------------------------------ */
/* ports of st-dma-fence.c */

TEST(sanitycheck)
{
	struct dma_fence *f = mock_fence();

	dma_fence_enable_sw_signaling(f);
	ASSERT_EQ(dma_fence_signal(f), 0);
	put_and_flush(f);
	ASSERT_EQ(releases, 1);
}

TEST(test_signaling)
{
	struct dma_fence *f = mock_fence();

	dma_fence_enable_sw_signaling(f);
	ASSERT_FALSE(dma_fence_is_signaled(f));
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_TRUE(dma_fence_is_signaled(f));
	ASSERT_EQ(dma_fence_signal(f), -EINVAL);
	put_and_flush(f);
}

TEST(test_add_callback)
{
	struct dma_fence *f = mock_fence();
	struct rec_cb r = { 0 };

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_EQ(r.calls, 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(r.calls, 1);
	put_and_flush(f);
}

TEST(test_late_add_callback)
{
	struct dma_fence *f = mock_fence();
	struct rec_cb r = { 0 };

	dma_fence_enable_sw_signaling(f);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), -ENOENT);
	ASSERT_EQ(dma_fence_signal(f), -EINVAL);
	ASSERT_EQ(r.calls, 0);
	ASSERT_TRUE(hetmem_list_empty(&r.cb.node));
	put_and_flush(f);
}

TEST(test_rm_callback)
{
	struct dma_fence *f = mock_fence();
	struct rec_cb r = { 0 };

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_TRUE(dma_fence_remove_callback(f, &r.cb));
	ASSERT_TRUE(hetmem_list_empty(&r.cb.node));
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(r.calls, 0);
	put_and_flush(f);
}

TEST(test_late_rm_callback)
{
	struct dma_fence *f = mock_fence();
	struct rec_cb r = { 0 };

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(r.calls, 1);
	ASSERT_FALSE(dma_fence_remove_callback(f, &r.cb));
	ASSERT_EQ(r.calls, 1);
	put_and_flush(f);
}

TEST(test_status)
{
	struct dma_fence *f = mock_fence();

	dma_fence_enable_sw_signaling(f);
	ASSERT_EQ(dma_fence_get_status(f), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(dma_fence_get_status(f), 1);
	put_and_flush(f);
}

TEST(test_error)
{
	struct dma_fence *f = mock_fence();

	dma_fence_enable_sw_signaling(f);
	dma_fence_set_error(f, -EIO);
	/* An error shows only once the fence is signalled. */
	ASSERT_EQ(dma_fence_get_status(f), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(dma_fence_get_status(f), -EIO);
	put_and_flush(f);
}

TEST(test_wait)
{
	struct dma_fence *f = mock_fence();

	dma_fence_enable_sw_signaling(f);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 0), -ETIME);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 0), 0);
	put_and_flush(f);
}

TEST(test_wait_timeout)
{
	struct dma_fence *f = mock_fence();
	struct delayed_signal d = { .f = f, .ms = 10 };
	long ret;

	dma_fence_enable_sw_signaling(f);
	start_delayed_signal(&d, false);
	/* The signaller only starts its delay once this wait is over. */
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 1), -ETIME);
	__atomic_store_n(&d.go, 1, __ATOMIC_RELEASE);
	ret = dma_fence_wait_timeout(f, false, 5000);
	ASSERT_GT(ret, 0);
	ASSERT_LE(ret, 5000);
	pthread_join(d.th, NULL);
	ASSERT_TRUE(dma_fence_is_signaled(f));
	put_and_flush(f);
}

TEST(test_stub)
{
	struct dma_fence *f[64];
	int i;

	for (i = 0; i < 64; i++) {
		f[i] = dma_fence_get_stub();
		ASSERT_NONNULL(f[i]);
		ASSERT_TRUE(dma_fence_is_signaled(f[i]));
	}
	for (i = 0; i < 64; i++)
		dma_fence_put(f[i]);
}

/*
 * race_signal_callback: two threads each publish a fence, pick up the
 * other's through dma_fence_get_rcu_safe(), add a callback to it and
 * signal their own. Whatever the interleaving, a callback that was added
 * must run, and run exactly once.
 */
struct race_thread {
	struct dma_fence **own;
	struct dma_fence **other;
	bool before;		/* enable signalling before publishing */
	int64_t end_ms;
	int *stop;		/* set by the first thread to finish */
	unsigned long passes;
	unsigned long added;
	unsigned long missed;	/* callback never ran: the bug */
	unsigned long twice;
};

static void race_cb(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct rec_cb *r = hetmem_container_of(cb, struct rec_cb, cb);

	__atomic_add_fetch(&r->calls, 1, __ATOMIC_RELEASE);
}

static void *race_thread_fn(void *arg)
{
	struct race_thread *t = arg;

	while (harness_now_ms() < t->end_ms) {
		struct dma_fence *f1, *f2 = NULL;
		struct rec_cb r = { 0 };
		int64_t give_up;
		bool added;

		f1 = mock_fence();
		if (t->before)
			dma_fence_enable_sw_signaling(f1);
		__atomic_store_n(t->own, f1, __ATOMIC_RELEASE);

		hetmem_rcu_read_lock();
		while (!f2 && !__atomic_load_n(t->stop, __ATOMIC_ACQUIRE))
			f2 = dma_fence_get_rcu_safe(t->other);
		hetmem_rcu_read_unlock();

		if (!t->before)
			dma_fence_enable_sw_signaling(f1);
		added = f2 && dma_fence_add_callback(f2, &r.cb, race_cb) == 0;

		dma_fence_signal(f1);

		if (added) {
			int calls;

			t->added++;
			/* The owner of f2 always signals it; allow for load. */
			give_up = harness_now_ms() + 5000;
			while (!__atomic_load_n(&r.calls, __ATOMIC_ACQUIRE) &&
			       harness_now_ms() < give_up)
				sched_yield();
			/* Flush a callback that might still be running. */
			hetmem_spin_lock(f2->lock);
			hetmem_spin_unlock(f2->lock);
			calls = __atomic_load_n(&r.calls, __ATOMIC_ACQUIRE);
			if (calls == 0) {
				t->missed++;
				dma_fence_remove_callback(f2, &r.cb);
			} else if (calls > 1) {
				t->twice++;
			}
		}

		__atomic_store_n(t->own, NULL, __ATOMIC_RELEASE);
		dma_fence_put(f1);
		dma_fence_put(f2);
		t->passes++;
	}
	__atomic_store_n(t->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void race_signal_callback_pass(bool before, int64_t ms)
{
	struct dma_fence *slot[2] = { NULL, NULL };
	struct race_thread t[2];
	int stop = 0, i, released = releases;
	pthread_t th[2];

	for (i = 0; i < 2; i++) {
		t[i] = (struct race_thread){
			.own = &slot[i], .other = &slot[!i], .before = before,
			.end_ms = harness_now_ms() + ms, .stop = &stop,
		};
		ASSERT_EQ(pthread_create(&th[i], NULL, race_thread_fn, &t[i]), 0);
	}
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	for (i = 0; i < 2; i++) {
		TH_LOG("%s: thread %d: %lu passes, %lu callbacks added",
		       before ? "before" : "after", i, t[i].passes, t[i].added);
		ASSERT_EQ(t[i].missed, 0);
		ASSERT_EQ(t[i].twice, 0);
		ASSERT_GT(t[i].passes, 0);
	}
	ASSERT_GT(t[0].added + t[1].added, 0);
	hetmem_rcu_barrier();
	ASSERT_EQ(releases - released, (int)(t[0].passes + t[1].passes));
}

TEST(race_signal_callback)
{
	race_signal_callback_pass(false, 500);
	race_signal_callback_pass(true, 500);
}

/* ------------------------------------------------------------------ */
/* init, refcounts, release */

TEST(init_state)
{
	struct test_fence *t = tf_create_on(&plain_ops, NULL, 42, 7);
	struct dma_fence *f = &t->base;

	ASSERT_EQ(hetmem_kref_read(&f->refcount), 1);
	ASSERT_EQ(f->flags, 0);
	ASSERT_EQ(f->error, 0);
	ASSERT_EQ(f->context, 42);
	ASSERT_EQ(f->seqno, 7);
	ASSERT_TRUE(f->lock == &t->lock);
	ASSERT_TRUE(f->ops == &plain_ops);
	ASSERT_TRUE(hetmem_list_empty(&f->cb_list));
	ASSERT_FALSE(dma_fence_is_signaled(f));
	ASSERT_EQ(dma_fence_get_status(f), 0);
	put_and_flush(f);
}

TEST(init64_sets_seqno64)
{
	struct test_fence *t = calloc(1, sizeof(*t));

	ASSERT_NONNULL(t);
	hetmem_spin_lock_init(&t->lock);
	dma_fence_init64(&t->base, &plain_ops, &t->lock, 3, 1ULL << 40);
	ASSERT_EQ(t->base.flags, 1UL << DMA_FENCE_FLAG_SEQNO64_BIT);
	ASSERT_EQ(t->base.seqno, 1ULL << 40);
	ASSERT_EQ(hetmem_kref_read(&t->base.refcount), 1);
	put_and_flush(&t->base);
}

TEST(get_put_and_release_once)
{
	struct dma_fence *f = tf_create(&plain_ops), *g;

	ASSERT_NONNULL(f);
	g = dma_fence_get(f);
	ASSERT_TRUE(g == f);
	g = dma_fence_get(f);
	ASSERT_TRUE(g == f);
	ASSERT_EQ(hetmem_kref_read(&f->refcount), 3);
	dma_fence_put(f);
	dma_fence_put(f);
	ASSERT_EQ(releases, 0);
	ASSERT_NULL(dma_fence_get(NULL));
	dma_fence_put(NULL);
	put_and_flush(f);
	ASSERT_EQ(releases, 1);
}

static const struct dma_fence_ops default_release_ops = {
	.get_driver_name = tf_driver,
	.get_timeline_name = tf_timeline,
};

TEST(default_release_frees_after_grace_period)
{
	struct dma_fence *f = calloc(1, sizeof(*f));
	static hetmem_spinlock_t lock = HETMEM_SPINLOCK_INIT(default_release_lock);
	uint64_t seqno;

	ASSERT_NONNULL(f);
	dma_fence_init(f, &default_release_ops, &lock, 1, 99);
	dma_fence_signal(f);
	hetmem_rcu_read_lock();
	dma_fence_put(f);
	/* Still readable inside the section (ASan would catch a free). */
	seqno = f->seqno;
	ASSERT_NULL(dma_fence_get_rcu(f));
	hetmem_rcu_read_unlock();
	ASSERT_EQ(seqno, 99);
	hetmem_rcu_barrier();
}

TEST(get_rcu)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct dma_fence dying;
	static hetmem_spinlock_t lock = HETMEM_SPINLOCK_INIT(dying_lock);

	hetmem_rcu_read_lock();
	ASSERT_TRUE(dma_fence_get_rcu(f) == f);
	hetmem_rcu_read_unlock();
	ASSERT_EQ(hetmem_kref_read(&f->refcount), 2);
	dma_fence_put(f);

	/* A fence whose count reached zero cannot be revived. */
	dma_fence_init(&dying, &plain_ops, &lock, 1, 1);
	__atomic_store_n(&dying.refcount.refcount, 0, __ATOMIC_RELAXED);
	hetmem_rcu_read_lock();
	ASSERT_NULL(dma_fence_get_rcu(&dying));
	hetmem_rcu_read_unlock();
	ASSERT_EQ(hetmem_kref_read(&dying.refcount), 0);
	put_and_flush(f);
}

struct slot_switch {
	struct dma_fence **slot;
	struct dma_fence *to;
	long ms;
};

static void *slot_switch_thread(void *arg)
{
	struct slot_switch *s = arg;

	harness_sleep_ms(s->ms);
	__atomic_store_n(s->slot, s->to, __ATOMIC_RELEASE);
	return NULL;
}

TEST(get_rcu_safe_basic_and_dying)
{
	struct dma_fence *a = tf_create(&plain_ops), *slot = NULL, *got;
	struct dma_fence dying;
	static hetmem_spinlock_t lock = HETMEM_SPINLOCK_INIT(dying_lock);
	struct slot_switch sw = { .slot = &slot, .to = a, .ms = 50 };
	pthread_t th;

	hetmem_rcu_read_lock();
	ASSERT_NULL(dma_fence_get_rcu_safe(&slot));
	slot = a;
	got = dma_fence_get_rcu_safe(&slot);
	hetmem_rcu_read_unlock();
	ASSERT_TRUE(got == a);
	ASSERT_EQ(hetmem_kref_read(&a->refcount), 2);
	dma_fence_put(got);

	/*
	 * The slot holds a fence on its way out (count 0, memory recycled):
	 * the reader must retry until the slot changes, and return the new
	 * occupant with a reference.
	 */
	dma_fence_init(&dying, &plain_ops, &lock, 1, 1);
	__atomic_store_n(&dying.refcount.refcount, 0, __ATOMIC_RELAXED);
	slot = &dying;
	ASSERT_EQ(pthread_create(&th, NULL, slot_switch_thread, &sw), 0);
	hetmem_rcu_read_lock();
	got = dma_fence_get_rcu_safe(&slot);
	hetmem_rcu_read_unlock();
	pthread_join(th, NULL);
	ASSERT_TRUE(got == a);
	ASSERT_EQ(hetmem_kref_read(&a->refcount), 2);
	ASSERT_EQ(hetmem_kref_read(&dying.refcount), 0);
	dma_fence_put(got);
	put_and_flush(a);
}

/*
 * The recycling race, made deterministic: the fence first read from the
 * slot sits alone on a read-only page, so the reader's reference-taking
 * atomic faults. The fault handler does what a concurrent writer could do
 * in that instant: it points the slot at another fence, and the old memory
 * comes back as a live fence (writable, count 1). The reference is then
 * taken on memory that is no longer in the slot; only the re-check after
 * taking it notices.
 */
static struct {
	void *page;
	size_t size;
	struct dma_fence **slot;
	struct dma_fence *replacement;
	int faults;
} recycle;

static void recycle_on_segv(int sig, siginfo_t *si, void *uc)
{
	char *addr = si->si_addr, *page = recycle.page;

	if (addr < page || addr >= page + recycle.size) {
		signal(SIGSEGV, SIG_DFL);	/* a real crash: re-fault */
		return;
	}
	recycle.faults++;
	__atomic_store_n(recycle.slot, recycle.replacement, __ATOMIC_RELEASE);
	mprotect(recycle.page, recycle.size, PROT_READ | PROT_WRITE);
}

static void no_release(struct dma_fence *f)
{
}

static const struct dma_fence_ops page_ops = {
	.get_driver_name = tf_driver,
	.get_timeline_name = tf_timeline,
	.release = no_release,
};

TEST(get_rcu_safe_revalidates_recycled_fence)
{
	static hetmem_spinlock_t lock = HETMEM_SPINLOCK_INIT(recycled_lock);
	struct sigaction sa = { .sa_sigaction = recycle_on_segv,
				.sa_flags = SA_SIGINFO }, old;
	struct dma_fence *q = tf_create(&plain_ops), *slot, *got, *p;

	recycle.size = (size_t)sysconf(_SC_PAGESIZE);
	recycle.page = mmap(NULL, recycle.size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(recycle.page != MAP_FAILED);
	p = recycle.page;
	dma_fence_init(p, &page_ops, &lock, 1, 1);
	slot = p;
	recycle.slot = &slot;
	recycle.replacement = q;
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGSEGV, &sa, &old), 0);
	ASSERT_EQ(mprotect(recycle.page, recycle.size, PROT_READ), 0);

	hetmem_rcu_read_lock();
	got = dma_fence_get_rcu_safe(&slot);
	hetmem_rcu_read_unlock();
	sigaction(SIGSEGV, &old, NULL);

	ASSERT_EQ(recycle.faults, 1);
	ASSERT_TRUE(slot == q);
	/* The fence now in the slot, not the one that left it. */
	ASSERT_TRUE(got == q);
	ASSERT_EQ(hetmem_kref_read(&q->refcount), 2);
	/* The reference taken on the old memory was given back. */
	ASSERT_EQ(hetmem_kref_read(&p->refcount), 1);
	munmap(recycle.page, recycle.size);
	dma_fence_put(got);
	put_and_flush(q);
}

struct flipper {
	struct dma_fence **slot;
	struct dma_fence *a, *b;
	int stop;
	unsigned long flips;
};

static void *flip_thread(void *arg)
{
	struct flipper *fl = arg;

	while (!__atomic_load_n(&fl->stop, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(fl->slot, fl->flips & 1 ? fl->a : fl->b,
				 __ATOMIC_RELEASE);
		fl->flips++;
	}
	return NULL;
}

TEST(get_rcu_safe_revalidates_changing_slot)
{
	struct dma_fence *a = tf_create(&plain_ops), *b = tf_create(&plain_ops);
	struct dma_fence *slot = a;
	struct flipper fl = { .slot = &slot, .a = a, .b = b };
	unsigned long got_a = 0, got_b = 0;
	int64_t end = harness_now_ms() + 300;
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, flip_thread, &fl), 0);
	while (harness_now_ms() < end) {
		struct dma_fence *got;

		hetmem_rcu_read_lock();
		got = dma_fence_get_rcu_safe(&slot);
		hetmem_rcu_read_unlock();
		ASSERT_TRUE(got == a || got == b);
		if (got == a)
			got_a++;
		else
			got_b++;
		/* The caller's reference plus the one it just got. */
		ASSERT_GE(hetmem_kref_read(&got->refcount), 2);
		dma_fence_put(got);
	}
	__atomic_store_n(&fl.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	TH_LOG("%lu flips, %lu a, %lu b", fl.flips, got_a, got_b);
	/* Every reference taken on a loser of the re-check was dropped. */
	ASSERT_EQ(hetmem_kref_read(&a->refcount), 1);
	ASSERT_EQ(hetmem_kref_read(&b->refcount), 1);
	dma_fence_put(a);
	put_and_flush(b);
	ASSERT_EQ(releases, 2);
}

TEST(release_with_pending_callbacks_signals_edeadlk)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct rec_cb r = { 0 };
	unsigned long base;

	quiet_warnings();
	hetmem_set_warn_handler(capture_handler, &cap);
	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	base = hetmem_warn_count();
	dma_fence_put(f);
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	ASSERT_NONNULL(strstr(cap.last, "test-driver"));
	ASSERT_NONNULL(strstr(cap.last, "test-timeline"));
	ASSERT_EQ(r.calls, 1);
	ASSERT_EQ(r.error_inside, -EDEADLK);
	ASSERT_TRUE(r.signaled_inside);
	ASSERT_TRUE(r.lock_held_inside);
	ASSERT_EQ(releases, 1);
	hetmem_set_warn_handler(NULL, NULL);
	hetmem_rcu_barrier();
}

TEST(release_of_signalled_or_empty_fence_is_quiet)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct dma_fence *g = tf_create(&plain_ops);
	struct rec_cb r = { 0 };
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	/* Never signalled, nothing queued. */
	dma_fence_put(f);
	/* A callback removed again. */
	ASSERT_EQ(dma_fence_add_callback(g, &r.cb, rec_func), 0);
	ASSERT_TRUE(dma_fence_remove_callback(g, &r.cb));
	dma_fence_put(g);
	ASSERT_EQ(hetmem_warn_count(), base);
	ASSERT_EQ(r.calls, 0);
	ASSERT_EQ(releases, 2);
	hetmem_rcu_barrier();
}

/* ------------------------------------------------------------------ */
/* signalling */

enum signal_kind {
	SIG_PLAIN,
	SIG_LOCKED,
	SIG_TIMESTAMP,
	SIG_TIMESTAMP_LOCKED,
	SIG_KINDS,
};

static int signal_by(enum signal_kind kind, struct dma_fence *f,
		     hetmem_ktime_t ts)
{
	int ret = -1;

	switch (kind) {
	case SIG_PLAIN:
		return dma_fence_signal(f);
	case SIG_TIMESTAMP:
		return dma_fence_signal_timestamp(f, ts);
	case SIG_LOCKED:
		hetmem_spin_lock(f->lock);
		ret = dma_fence_signal_locked(f);
		hetmem_spin_unlock(f->lock);
		break;
	case SIG_TIMESTAMP_LOCKED:
		hetmem_spin_lock(f->lock);
		ret = dma_fence_signal_timestamp_locked(f, ts);
		hetmem_spin_unlock(f->lock);
		break;
	default:
		break;
	}
	return ret;
}

FIXTURE(signal) {
	struct dma_fence *f;
};

FIXTURE_VARIANT(signal) {
	enum signal_kind kind;
	bool given_timestamp;
};

FIXTURE_VARIANT_ADD(signal, signal) {
	.kind = SIG_PLAIN,
};
FIXTURE_VARIANT_ADD(signal, signal_locked) {
	.kind = SIG_LOCKED,
};
FIXTURE_VARIANT_ADD(signal, signal_timestamp) {
	.kind = SIG_TIMESTAMP, .given_timestamp = true,
};
FIXTURE_VARIANT_ADD(signal, signal_timestamp_locked) {
	.kind = SIG_TIMESTAMP_LOCKED, .given_timestamp = true,
};

FIXTURE_SETUP(signal)
{
	self->f = tf_create(&plain_ops);
}

FIXTURE_TEARDOWN(signal)
{
	put_and_flush(self->f);
}

TEST_F(signal, signals_once_runs_callbacks_in_order)
{
	struct dma_fence *f = self->f;
	struct rec_cb r[3] = { 0 };
	hetmem_ktime_t given = 123456789, before, after;
	int i;

	for (i = 0; i < 3; i++)
		ASSERT_EQ(dma_fence_add_callback(f, &r[i].cb, rec_func), 0);
	before = hetmem_ktime_get();
	ASSERT_EQ(signal_by(variant->kind, f, given), 0);
	after = hetmem_ktime_get();

	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_SIGNALED_BIT));
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_TIMESTAMP_BIT));
	ASSERT_TRUE(hetmem_list_empty(&f->cb_list));
	if (variant->given_timestamp) {
		ASSERT_EQ(dma_fence_timestamp(f), given);
	} else {
		ASSERT_GE(dma_fence_timestamp(f), before);
		ASSERT_LE(dma_fence_timestamp(f), after);
	}
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(r[i].calls, 1);
		ASSERT_EQ(r[i].order, i + 1);	/* FIFO */
		ASSERT_TRUE(r[i].unqueued_inside);
		ASSERT_TRUE(r[i].lock_held_inside);
		ASSERT_TRUE(r[i].signaled_inside);
		ASSERT_TRUE(r[i].timestamp_inside);
		ASSERT_TRUE(pthread_equal(r[i].thread, pthread_self()));
		ASSERT_FALSE(dma_fence_remove_callback(f, &r[i].cb));
	}
	ASSERT_FALSE(hetmem_spin_is_locked(f->lock));
}

TEST_F(signal, second_signal_of_any_kind_changes_nothing)
{
	struct dma_fence *f = self->f;
	struct rec_cb r = { 0 };
	hetmem_ktime_t ts;
	unsigned long flags;
	int k;

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_EQ(signal_by(variant->kind, f, 1000), 0);
	ts = dma_fence_timestamp(f);
	flags = f->flags;
	for (k = 0; k < SIG_KINDS; k++)
		ASSERT_EQ(signal_by(k, f, 2000 + k), -EINVAL);
	ASSERT_TRUE(dma_fence_check_and_signal(f));
	hetmem_spin_lock(f->lock);
	ASSERT_TRUE(dma_fence_check_and_signal_locked(f));
	hetmem_spin_unlock(f->lock);
	ASSERT_EQ(r.calls, 1);
	ASSERT_EQ(dma_fence_timestamp(f), ts);
	ASSERT_EQ(f->flags, flags);
	ASSERT_EQ(dma_fence_get_status(f), 1);
}

TEST(check_and_signal)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct dma_fence *g = tf_create(&plain_ops);
	struct rec_cb r = { 0 }, s = { 0 };

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_FALSE(dma_fence_check_and_signal(f));
	ASSERT_EQ(r.calls, 1);
	ASSERT_TRUE(dma_fence_check_and_signal(f));
	ASSERT_EQ(r.calls, 1);

	ASSERT_EQ(dma_fence_add_callback(g, &s.cb, rec_func), 0);
	hetmem_spin_lock(g->lock);
	ASSERT_FALSE(dma_fence_check_and_signal_locked(g));
	ASSERT_EQ(s.calls, 1);
	ASSERT_TRUE(s.lock_held_inside);
	ASSERT_TRUE(dma_fence_check_and_signal_locked(g));
	hetmem_spin_unlock(g->lock);
	ASSERT_EQ(s.calls, 1);
	ASSERT_TRUE(dma_fence_is_signaled(g));
	dma_fence_put(f);
	put_and_flush(g);
}

TEST(locked_variants_require_the_lock)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct dma_fence *g = tf_create(&plain_ops);
	struct dma_fence *h = tf_create(&plain_ops);
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	ASSERT_EQ(dma_fence_signal_locked(f), 0);
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	ASSERT_EQ(dma_fence_signal_timestamp_locked(g, 5), 0);
	ASSERT_EQ(hetmem_warn_count(), base + 2);
	ASSERT_FALSE(dma_fence_check_and_signal_locked(h));
	ASSERT_EQ(hetmem_warn_count(), base + 3);
	dma_fence_put(f);
	dma_fence_put(g);
	put_and_flush(h);
}

struct lock_holder {
	hetmem_spinlock_t *lock;
	int state;		/* 1 holding, 2 asked to release */
};

static void *hold_lock_thread(void *arg)
{
	struct lock_holder *h = arg;

	hetmem_spin_lock(h->lock);
	__atomic_store_n(&h->state, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != 2)
		harness_sleep_ms(1);
	hetmem_spin_unlock(h->lock);
	return NULL;
}

TEST(locked_variant_with_lock_held_by_other_thread_warns)
{
	static hetmem_spinlock_t lock = HETMEM_SPINLOCK_INIT(held_elsewhere);
	struct lock_holder h = { .lock = &lock };
	struct dma_fence *f;
	unsigned long base;
	pthread_t th;

	f = &tf_create_on(&plain_ops, &lock, 1, 1)->base;
	quiet_warnings();
	ASSERT_EQ(pthread_create(&th, NULL, hold_lock_thread, &h), 0);
	ASSERT_TRUE(harness_wait_int(&h.state, 1, 5000));
	/* Locked, but not by this thread: that is not "lock held". */
	base = hetmem_warn_count();
	ASSERT_EQ(dma_fence_signal_locked(f), 0);
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	__atomic_store_n(&h.state, 2, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	/* With the lock really held: no warning. */
	hetmem_spin_lock(f->lock);
	ASSERT_EQ(dma_fence_signal_locked(f), -EINVAL);
	hetmem_spin_unlock(f->lock);
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	put_and_flush(f);
}

TEST(add_callback_on_signalled_fence)
{
	struct dma_fence *f = tf_create(&enable_ops);
	struct rec_cb r = { 0 };

	ASSERT_EQ(dma_fence_signal(f), 0);
	memset(&r.cb.node, 0xa5, sizeof(r.cb.node));
	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), -ENOENT);
	/* Left "not queued", so a later remove is harmless. */
	ASSERT_TRUE(hetmem_list_empty(&r.cb.node));
	ASSERT_FALSE(dma_fence_remove_callback(f, &r.cb));
	ASSERT_EQ(dma_fence_signal(f), -EINVAL);
	ASSERT_EQ(r.calls, 0);
	/* The lock-free early exit does not enable signalling (E-F-8). */
	ASSERT_FALSE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	ASSERT_EQ(to_tf(f)->enable_calls, 0);
	put_and_flush(f);
}

TEST(callbacks_on_shared_lock)
{
	static hetmem_spinlock_t shared = HETMEM_SPINLOCK_INIT(shared_timeline);
	uint64_t ctx = dma_fence_context_alloc(1);
	struct dma_fence *f1 = &tf_create_on(&plain_ops, &shared, ctx, 1)->base;
	struct dma_fence *f2 = &tf_create_on(&plain_ops, &shared, ctx, 2)->base;
	struct rec_cb r1 = { 0 }, r2 = { 0 };

	ASSERT_TRUE(f1->lock == f2->lock);
	ASSERT_EQ(dma_fence_add_callback(f1, &r1.cb, rec_func), 0);
	ASSERT_EQ(dma_fence_add_callback(f2, &r2.cb, rec_func), 0);
	ASSERT_EQ(dma_fence_signal(f1), 0);
	ASSERT_EQ(r1.calls, 1);
	ASSERT_TRUE(r1.lock_held_inside);
	ASSERT_EQ(r2.calls, 0);
	ASSERT_FALSE(dma_fence_is_signaled(f2));
	/* One lock acquisition can signal a whole timeline. */
	hetmem_spin_lock(&shared);
	ASSERT_EQ(dma_fence_signal_locked(f2), 0);
	ASSERT_EQ(dma_fence_signal_locked(f1), -EINVAL);
	hetmem_spin_unlock(&shared);
	ASSERT_EQ(r2.calls, 1);
	ASSERT_EQ(r1.calls, 1);
	dma_fence_put(f1);
	put_and_flush(f2);
}

struct put_cb {
	struct dma_fence_cb cb;
	int calls;
};

static void put_func(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct put_cb *p = hetmem_container_of(cb, struct put_cb, cb);

	p->calls++;
	dma_fence_put(f);
}

TEST(callback_may_drop_a_reference)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct put_cb p = { 0 };

	/* The callback owns a reference and drops it; the signaller's stays. */
	dma_fence_get(f);
	ASSERT_EQ(dma_fence_add_callback(f, &p.cb, put_func), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(p.calls, 1);
	ASSERT_EQ(hetmem_kref_read(&f->refcount), 1);
	ASSERT_EQ(releases, 0);
	put_and_flush(f);
	ASSERT_EQ(releases, 1);
}

TEST(remove_callback_twice_and_readd)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct rec_cb r[3] = { 0 };
	int i;

	for (i = 0; i < 3; i++)
		ASSERT_EQ(dma_fence_add_callback(f, &r[i].cb, rec_func), 0);
	ASSERT_TRUE(dma_fence_remove_callback(f, &r[1].cb));
	ASSERT_FALSE(dma_fence_remove_callback(f, &r[1].cb));
	/* Re-added, it runs last. */
	ASSERT_EQ(dma_fence_add_callback(f, &r[1].cb, rec_func), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(r[0].order, 1);
	ASSERT_EQ(r[2].order, 2);
	ASSERT_EQ(r[1].order, 3);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(r[i].calls, 1);
	put_and_flush(f);
}

/* ------------------------------------------------------------------ */
/* enable_signaling and ops->signaled */

TEST(enable_signaling_called_exactly_once)
{
	struct dma_fence *f = tf_create(&enable_ops);
	struct test_fence *t = to_tf(f);
	struct rec_cb r = { 0 };

	ASSERT_FALSE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	dma_fence_enable_sw_signaling(f);
	ASSERT_EQ(t->enable_calls, 1);
	ASSERT_TRUE(t->enable_saw_lock);
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	dma_fence_enable_sw_signaling(f);
	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 0), 0);
	ASSERT_EQ(t->enable_calls, 1);
	ASSERT_FALSE(dma_fence_is_signaled(f));
	ASSERT_EQ(dma_fence_signal(f), 0);
	dma_fence_enable_sw_signaling(f);
	ASSERT_EQ(t->enable_calls, 1);
	ASSERT_EQ(r.calls, 1);
	put_and_flush(f);
}

TEST(enable_signaling_triggered_by_add_callback_and_wait)
{
	struct dma_fence *f = tf_create(&enable_ops);
	struct dma_fence *g = tf_create(&enable_ops);
	struct rec_cb r = { 0 };

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_EQ(to_tf(f)->enable_calls, 1);
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	/* wait enables first, even for a zero timeout */
	ASSERT_EQ(dma_fence_wait_timeout(g, false, 0), 0);
	ASSERT_EQ(to_tf(g)->enable_calls, 1);
	ASSERT_TRUE(test_flag(g, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	dma_fence_signal(f);
	dma_fence_signal(g);
	dma_fence_put(f);
	put_and_flush(g);
}

TEST(enable_on_signalled_fence_sets_bit_without_op)
{
	struct dma_fence *f = tf_create(&enable_ops);

	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_FALSE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	dma_fence_enable_sw_signaling(f);
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	ASSERT_EQ(to_tf(f)->enable_calls, 0);
	put_and_flush(f);
}

TEST(enable_without_op_sets_bit)
{
	struct dma_fence *f = tf_create(&plain_ops);

	dma_fence_enable_sw_signaling(f);
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	ASSERT_FALSE(dma_fence_is_signaled(f));
	put_and_flush(f);
}

TEST(enable_signaling_false_signals_now)
{
	struct dma_fence *f = tf_create(&enable_ops);
	struct dma_fence *g = tf_create(&enable_ops);
	struct rec_cb r = { 0 };
	hetmem_ktime_t before = hetmem_ktime_get();

	to_tf(f)->enable_ret = false;
	to_tf(f)->enable_error = -ECANCELED;
	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), -ENOENT);
	ASSERT_EQ(r.calls, 0);
	ASSERT_TRUE(hetmem_list_empty(&r.cb.node));
	ASSERT_EQ(to_tf(f)->enable_calls, 1);
	ASSERT_TRUE(dma_fence_is_signaled(f));
	ASSERT_GE(dma_fence_timestamp(f), before);
	ASSERT_EQ(dma_fence_get_status(f), -ECANCELED);
	ASSERT_EQ(dma_fence_signal(f), -EINVAL);
	ASSERT_EQ(r.calls, 0);

	/* The same through enable_sw_signaling, without an error. */
	to_tf(g)->enable_ret = false;
	dma_fence_enable_sw_signaling(g);
	ASSERT_TRUE(dma_fence_is_signaled(g));
	ASSERT_EQ(dma_fence_get_status(g), 1);
	ASSERT_EQ(dma_fence_wait_timeout(g, false, 0), 1);
	ASSERT_EQ(to_tf(g)->enable_calls, 1);
	dma_fence_put(f);
	put_and_flush(g);
}

TEST(is_signaled_and_get_status_do_not_enable)
{
	struct dma_fence *f = tf_create(&signaled_ops);
	struct test_fence *t = to_tf(f);

	ASSERT_FALSE(dma_fence_is_signaled(f));
	ASSERT_EQ(dma_fence_get_status(f), 0);
	ASSERT_GE(t->signaled_calls, 2);
	ASSERT_EQ(t->enable_calls, 0);
	ASSERT_FALSE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	dma_fence_signal(f);
	put_and_flush(f);
}

TEST(ops_signaled_signals_through_is_signaled)
{
	struct dma_fence *f = tf_create(&signaled_ops);
	struct test_fence *t = to_tf(f);
	struct rec_cb r = { 0 };
	hetmem_ktime_t before;
	int calls;

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_FALSE(dma_fence_is_signaled(f));
	ASSERT_EQ(r.calls, 0);
	t->signaled_error = -ETIME;
	__atomic_store_n(&t->hw_done, 1, __ATOMIC_RELEASE);
	before = hetmem_ktime_get();
	ASSERT_TRUE(dma_fence_is_signaled(f));
	/* Signalled for real: callbacks ran here, timestamp stored. */
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_SIGNALED_BIT));
	ASSERT_EQ(r.calls, 1);
	ASSERT_EQ(r.error_inside, -ETIME);
	ASSERT_TRUE(pthread_equal(r.thread, pthread_self()));
	ASSERT_GE(dma_fence_timestamp(f), before);
	ASSERT_EQ(dma_fence_get_status(f), -ETIME);
	/* Once signalled, the hook is no longer consulted. */
	calls = t->signaled_calls;
	ASSERT_TRUE(dma_fence_is_signaled(f));
	ASSERT_EQ(t->signaled_calls, calls);
	ASSERT_EQ(dma_fence_signal(f), -EINVAL);
	ASSERT_EQ(r.calls, 1);
	put_and_flush(f);
}

TEST(ops_signaled_signals_through_get_status)
{
	struct dma_fence *f = tf_create(&signaled_ops);
	struct dma_fence *g = tf_create(&signaled_ops);
	struct rec_cb r = { 0 };

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	__atomic_store_n(&to_tf(f)->hw_done, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(dma_fence_get_status(f), 1);
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_SIGNALED_BIT));
	ASSERT_EQ(r.calls, 1);

	/* The locked forms signal through the locked path. */
	__atomic_store_n(&to_tf(g)->hw_done, 1, __ATOMIC_RELEASE);
	hetmem_spin_lock(g->lock);
	ASSERT_TRUE(dma_fence_is_signaled_locked(g));
	ASSERT_TRUE(test_flag(g, DMA_FENCE_FLAG_SIGNALED_BIT));
	ASSERT_EQ(dma_fence_get_status_locked(g), 1);
	hetmem_spin_unlock(g->lock);
	dma_fence_put(f);
	put_and_flush(g);
}

TEST(get_status_locked_values)
{
	struct dma_fence *f = tf_create(&plain_ops);

	hetmem_spin_lock(f->lock);
	ASSERT_EQ(dma_fence_get_status_locked(f), 0);
	ASSERT_FALSE(dma_fence_is_signaled_locked(f));
	hetmem_spin_unlock(f->lock);
	dma_fence_set_error(f, -ENODATA);
	hetmem_spin_lock(f->lock);
	ASSERT_EQ(dma_fence_get_status_locked(f), 0);
	dma_fence_signal_locked(f);
	ASSERT_EQ(dma_fence_get_status_locked(f), -ENODATA);
	hetmem_spin_unlock(f->lock);
	ASSERT_EQ(dma_fence_get_status(f), -ENODATA);
	put_and_flush(f);
}

/* ------------------------------------------------------------------ */
/* errors and timestamps */

TEST(set_error_before_signal)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct rec_cb r = { 0 };
	unsigned long base = hetmem_warn_count();

	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	dma_fence_set_error(f, -ECANCELED);
	ASSERT_EQ(f->error, -ECANCELED);
	ASSERT_EQ(dma_fence_get_status(f), 0);
	dma_fence_set_error(f, -HETMEM_MAX_ERRNO);	/* still valid */
	dma_fence_set_error(f, -ETIME);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(r.error_inside, -ETIME);
	ASSERT_EQ(dma_fence_get_status(f), -ETIME);
	ASSERT_EQ(hetmem_warn_count(), base);
	put_and_flush(f);
}

TEST(set_error_misuse_warns_but_stores)
{
	struct dma_fence *f = tf_create(&plain_ops);
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	dma_fence_set_error(f, 0);
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	ASSERT_EQ(f->error, 0);
	dma_fence_set_error(f, 1);
	ASSERT_EQ(hetmem_warn_count(), base + 2);
	ASSERT_EQ(f->error, 1);
	dma_fence_set_error(f, -HETMEM_MAX_ERRNO - 1);
	ASSERT_EQ(hetmem_warn_count(), base + 3);
	ASSERT_EQ(f->error, -HETMEM_MAX_ERRNO - 1);
	dma_fence_set_error(f, -EIO);
	ASSERT_EQ(hetmem_warn_count(), base + 3);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(dma_fence_get_status(f), -EIO);
	/* After signalling: warned, stored anyway. */
	dma_fence_set_error(f, -ENODATA);
	ASSERT_EQ(hetmem_warn_count(), base + 4);
	ASSERT_EQ(dma_fence_get_status(f), -ENODATA);
	put_and_flush(f);
}

TEST(timestamp_of_unsignalled_fence_warns)
{
	struct dma_fence *f = tf_create(&plain_ops);
	hetmem_ktime_t before, ts, after;
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	before = hetmem_ktime_get();
	ts = dma_fence_timestamp(f);
	after = hetmem_ktime_get();
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	ASSERT_GE(ts, before);
	ASSERT_LE(ts, after);
	ASSERT_FALSE(test_flag(f, DMA_FENCE_FLAG_TIMESTAMP_BIT));
	put_and_flush(f);
}

TEST(timestamp_is_clock_monotonic)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct timespec a, b;
	int64_t ta, tb;

	clock_gettime(CLOCK_MONOTONIC, &a);
	dma_fence_signal(f);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ta = (int64_t)a.tv_sec * 1000000000 + a.tv_nsec;
	tb = (int64_t)b.tv_sec * 1000000000 + b.tv_nsec;
	ASSERT_GE(dma_fence_timestamp(f), ta);
	ASSERT_LE(dma_fence_timestamp(f), tb);
	ASSERT_EQ(dma_fence_timestamp(f), f->timestamp);
	put_and_flush(f);
}

/* ------------------------------------------------------------------ */
/* waits */

TEST(default_wait_return_values)
{
	struct dma_fence *f = tf_create(&plain_ops);
	int64_t t0, t1;

	/* Unsignalled, timeout 0: a poll. */
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 0), 0);
	ASSERT_EQ(dma_fence_wait_timeout(f, true, 0), 0);
	ASSERT_EQ(dma_fence_default_wait(f, false, 0), 0);
	/* Unsignalled, times out. */
	t0 = harness_now_ms();
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 30), 0);
	t1 = harness_now_ms();
	ASSERT_GE(t1 - t0, 30);
	ASSERT_EQ(dma_fence_wait_timeout(f, true, 5), 0);
	ASSERT_TRUE(hetmem_list_empty(&f->cb_list));

	ASSERT_EQ(dma_fence_signal(f), 0);
	/* Signalled: 1 for a zero timeout, else the whole timeout. */
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 0), 1);
	ASSERT_EQ(dma_fence_wait_timeout(f, true, 0), 1);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 100), 100);
	ASSERT_EQ(dma_fence_wait_timeout(f, true, 1), 1);
	ASSERT_EQ(dma_fence_default_wait(f, false, 7), 7);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, HETMEM_MAX_SCHEDULE_TIMEOUT),
		  HETMEM_MAX_SCHEDULE_TIMEOUT);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, HETMEM_MAX_SCHEDULE_TIMEOUT - 1),
		  HETMEM_MAX_SCHEDULE_TIMEOUT - 1);
	ASSERT_EQ(dma_fence_wait(f, false), 0);
	ASSERT_EQ(dma_fence_wait(f, true), 0);
	put_and_flush(f);
}

TEST(default_wait_does_not_enable_signaling)
{
	struct dma_fence *f = tf_create(&enable_ops);

	ASSERT_EQ(dma_fence_default_wait(f, false, 0), 0);
	ASSERT_EQ(dma_fence_default_wait(f, false, 2), 0);
	ASSERT_EQ(to_tf(f)->enable_calls, 0);
	ASSERT_FALSE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	dma_fence_signal(f);
	put_and_flush(f);
}

TEST(wait_negative_timeout_is_einval)
{
	struct dma_fence *f = tf_create(&wait_ops);
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	ASSERT_EQ(dma_fence_wait_timeout(f, false, -1), -EINVAL);
	ASSERT_EQ(dma_fence_wait_timeout(f, true, LONG_MIN), -EINVAL);
	ASSERT_EQ(hetmem_warn_count(), base + 2);
	/* Rejected before anything happens. */
	ASSERT_EQ(to_tf(f)->wait_calls, 0);
	ASSERT_EQ(to_tf(f)->enable_calls, 0);
	dma_fence_signal(f);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, -5), -EINVAL);
	put_and_flush(f);
}

TEST(wait_remaining_time_after_signal)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct delayed_signal d = { .f = f, .ms = 30 };
	int64_t t0, t1;
	long ret;

	t0 = hetmem_ktime_get();
	start_delayed_signal(&d, true);
	ret = dma_fence_wait_timeout(f, false, 2000);
	t1 = hetmem_ktime_get();
	pthread_join(d.th, NULL);
	ASSERT_TRUE(dma_fence_is_signaled(f));
	ASSERT_GE(t1 - t0, 30000000);
	/* What is left of the timeout: at most all of it, at least 1. */
	ASSERT_GT(ret, 0);
	ASSERT_LE(ret, 2000);
	ASSERT_GE(ret, 2000 - (t1 - t0) / 1000000 - 2);
	put_and_flush(f);
}

TEST(wait_forever_wakes_on_signal)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct delayed_signal d = { .f = f, .ms = 20 };

	start_delayed_signal(&d, true);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, HETMEM_MAX_SCHEDULE_TIMEOUT),
		  HETMEM_MAX_SCHEDULE_TIMEOUT);
	pthread_join(d.th, NULL);
	put_and_flush(f);
}

TEST(wait_huge_timeout_wakes_on_signal)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct delayed_signal d = { .f = f, .ms = 20 };
	long ret;

	start_delayed_signal(&d, true);
	ret = dma_fence_wait_timeout(f, true, HETMEM_MAX_SCHEDULE_TIMEOUT - 1);
	pthread_join(d.th, NULL);
	ASSERT_GT(ret, 1000000000L);
	put_and_flush(f);
}

/*
 * E-F-10: the waiter is queued at the head so it is woken first, but it
 * does not return before every callback of the signal has finished.
 */
struct slow_cb {
	struct dma_fence_cb cb;
	int done;
};

static void slow_func(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct slow_cb *s = hetmem_container_of(cb, struct slow_cb, cb);
	int64_t end = harness_now_ms() + 50;

	while (harness_now_ms() < end)
		;	/* busy: callbacks must not sleep */
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
}

static int list_count(struct dma_fence *f)
{
	struct hetmem_list_head *pos;
	int n = 0;

	hetmem_spin_lock(f->lock);
	for (pos = f->cb_list.next; pos != &f->cb_list; pos = pos->next)
		n++;
	hetmem_spin_unlock(f->lock);
	return n;
}

TEST(default_waiter_queued_first_returns_after_callbacks)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct slow_cb s = { 0 };
	struct waiter w = { .f = f, .timeout = HETMEM_MAX_SCHEDULE_TIMEOUT };
	int64_t end = harness_now_ms() + 5000;
	bool head_is_waiter;

	ASSERT_EQ(dma_fence_add_callback(f, &s.cb, slow_func), 0);
	start_waiter(&w);
	while (list_count(f) != 2) {
		ASSERT_LT(harness_now_ms(), end);
		harness_sleep_ms(1);
	}
	hetmem_spin_lock(f->lock);
	head_is_waiter = f->cb_list.next != &s.cb.node;
	hetmem_spin_unlock(f->lock);
	ASSERT_TRUE(head_is_waiter);
	ASSERT_EQ(dma_fence_signal(f), 0);
	pthread_join(w.th, NULL);
	ASSERT_EQ(w.ret, HETMEM_MAX_SCHEDULE_TIMEOUT);
	/* The waiter could only return after re-taking the lock. */
	ASSERT_EQ(s.done, 1);
	put_and_flush(f);
}

TEST(custom_wait_op_passed_through)
{
	struct dma_fence *f = tf_create(&wait_ops);
	struct test_fence *t = to_tf(f);

	t->wait_ret = -ETIME;
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 0), -ETIME);
	ASSERT_EQ(t->wait_calls, 1);
	ASSERT_EQ(t->wait_timeout_arg, 0);
	/* Signalling was enabled before the op ran. */
	ASSERT_TRUE(t->wait_saw_enable);
	ASSERT_EQ(t->enable_calls, 1);
	ASSERT_EQ(dma_fence_wait_timeout(f, true, 10), -ETIME);
	ASSERT_EQ(t->wait_timeout_arg, 10);
	ASSERT_EQ(dma_fence_wait(f, false), -ETIME);
	ASSERT_EQ(t->wait_timeout_arg, HETMEM_MAX_SCHEDULE_TIMEOUT);
	ASSERT_EQ(t->wait_calls, 3);
	t->wait_ret = 5;
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 9), 5);
	ASSERT_EQ(dma_fence_wait(f, true), 0);
	/* Still called once the fence is signalled, even for timeout 0. */
	dma_fence_signal(f);
	t->wait_ret = 0;
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 0), 0);
	ASSERT_EQ(t->wait_calls, 6);
	ASSERT_EQ(t->enable_calls, 1);
	put_and_flush(f);
}

/* Knocks on @w's thread with SIGUSR1 until it returns or @ms pass. */
static void knock_until_done(struct waiter *w, long ms)
{
	int64_t end = harness_now_ms() + ms;

	while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) && harness_now_ms() < end) {
		pthread_kill(w->th, SIGUSR1);
		harness_sleep_ms(5);
	}
}

FIXTURE(intr) {
	struct dma_fence *f;
	struct dma_fence *fences[3];
};

FIXTURE_VARIANT(intr) {
	long timeout;
	bool infinite;
	bool any;
};

FIXTURE_VARIANT_ADD(intr, forever) {
	.timeout = HETMEM_MAX_SCHEDULE_TIMEOUT,
};
FIXTURE_VARIANT_ADD(intr, timed) {
	.timeout = 20000,
};
FIXTURE_VARIANT_ADD(intr, dma_fence_wait) {
	.infinite = true,
};
FIXTURE_VARIANT_ADD(intr, wait_any_forever) {
	.timeout = HETMEM_MAX_SCHEDULE_TIMEOUT, .any = true,
};
FIXTURE_VARIANT_ADD(intr, wait_any_timed) {
	.timeout = 20000, .any = true,
};

FIXTURE_SETUP(intr)
{
	int i;

	install_restart_handler();
	for (i = 0; i < 3; i++)
		self->fences[i] = tf_create(&plain_ops);
	self->f = self->fences[1];
}

FIXTURE_TEARDOWN(intr)
{
	int i;

	for (i = 0; i < 3; i++) {
		dma_fence_signal(self->fences[i]);
		dma_fence_put(self->fences[i]);
	}
	hetmem_rcu_barrier();
}

static void intr_setup_waiter(FIXTURE_DATA(intr) *self,
			      const FIXTURE_VARIANT(intr) *variant,
			      struct waiter *w, bool intr)
{
	*w = (struct waiter){
		.f = self->f, .fences = self->fences, .count = 3,
		.any = variant->any, .infinite = variant->infinite,
		.intr = intr, .timeout = variant->timeout,
	};
}

TEST_F(intr, interruptible_wait_returns_erestartsys)
{
	struct waiter w;
	int i;

	ASSERT_EQ(HETMEM_ERESTARTSYS, 512);
	intr_setup_waiter(self, variant, &w, true);
	start_waiter(&w);
	knock_until_done(&w, 10000);
	pthread_join(w.th, NULL);
	ASSERT_EQ(w.ret, -HETMEM_ERESTARTSYS);
	for (i = 0; i < 3; i++) {
		ASSERT_FALSE(dma_fence_is_signaled(self->fences[i]));
		/* The waiter dequeued itself. */
		ASSERT_TRUE(hetmem_list_empty(&self->fences[i]->cb_list));
	}
}

TEST_F(intr, uninterruptible_wait_survives_signals)
{
	struct waiter w;
	int i;

	intr_setup_waiter(self, variant, &w, false);
	start_waiter(&w);
	for (i = 0; i < 20; i++) {
		pthread_kill(w.th, SIGUSR1);
		harness_sleep_ms(5);
	}
	harness_sleep_ms(20);
	ASSERT_EQ(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0);
	ASSERT_EQ(dma_fence_signal(self->f), 0);
	pthread_join(w.th, NULL);
	ASSERT_GE(__atomic_load_n(&sig_handled, __ATOMIC_RELAXED), 1);
	if (variant->infinite)
		ASSERT_EQ(w.ret, 0);
	else if (variant->timeout == HETMEM_MAX_SCHEDULE_TIMEOUT)
		ASSERT_EQ(w.ret, HETMEM_MAX_SCHEDULE_TIMEOUT);
	else
		ASSERT_GT(w.ret, 0);
	if (variant->any)
		ASSERT_EQ(w.idx, 1);
}

TEST(wait_any_invalid_arguments)
{
	struct dma_fence *f[2] = { tf_create(&plain_ops), NULL };
	uint32_t idx = 77;
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	ASSERT_EQ(dma_fence_wait_any_timeout(NULL, 1, false, 10, &idx), -EINVAL);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 0, false, 10, &idx), -EINVAL);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 2, false, 10, &idx), -EINVAL);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 1, false, -1, &idx), -EINVAL);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 1, true, LONG_MIN, &idx),
		  -EINVAL);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 2, false, 0, &idx), -EINVAL);
	ASSERT_EQ(hetmem_warn_count(), base + 6);
	ASSERT_EQ(idx, 77);
	ASSERT_TRUE(hetmem_list_empty(&f[0]->cb_list));
	put_and_flush(f[0]);
}

TEST(wait_any_poll)
{
	struct dma_fence *f[4];
	uint32_t idx = 99;
	int i;

	for (i = 0; i < 4; i++)
		f[i] = tf_create(&plain_ops);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 4, false, 0, &idx), 0);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 4, false, 0, NULL), 0);
	dma_fence_signal(f[3]);
	dma_fence_signal(f[1]);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 4, false, 0, &idx), 1);
	ASSERT_EQ(idx, 1);	/* the lowest signalled index */
	ASSERT_EQ(dma_fence_wait_any_timeout(f + 2, 2, true, 0, &idx), 1);
	ASSERT_EQ(idx, 1);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 1, false, 0, &idx), 0);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 4, false, 0, NULL), 1);
	for (i = 0; i < 4; i++) {
		ASSERT_TRUE(hetmem_list_empty(&f[i]->cb_list));
		dma_fence_signal(f[i]);
		dma_fence_put(f[i]);
	}
	hetmem_rcu_barrier();
}

TEST(wait_any_poll_uses_ops_signaled)
{
	struct dma_fence *f[3];
	uint32_t idx = 99;
	int i;

	for (i = 0; i < 3; i++)
		f[i] = tf_create(&signaled_ops);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 3, false, 0, &idx), 0);
	__atomic_store_n(&to_tf(f[2])->hw_done, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 3, false, 0, &idx), 1);
	ASSERT_EQ(idx, 2);
	/* The poll signalled it. */
	ASSERT_TRUE(test_flag(f[2], DMA_FENCE_FLAG_SIGNALED_BIT));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(to_tf(f[i])->enable_calls, 0);
		dma_fence_signal(f[i]);
		dma_fence_put(f[i]);
	}
	hetmem_rcu_barrier();
}

TEST(wait_any_already_signalled_returns_full_timeout)
{
	struct dma_fence *f[3];
	uint32_t idx = 99;
	int i;

	for (i = 0; i < 3; i++)
		f[i] = tf_create(&plain_ops);
	dma_fence_signal(f[1]);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 3, false, 500, &idx), 500);
	ASSERT_EQ(idx, 1);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 3, true, 1, &idx), 1);
	ASSERT_EQ(dma_fence_wait_any_timeout(f, 3, false,
					     HETMEM_MAX_SCHEDULE_TIMEOUT, &idx),
		  HETMEM_MAX_SCHEDULE_TIMEOUT);
	ASSERT_EQ(idx, 1);
	for (i = 0; i < 3; i++)
		ASSERT_TRUE(hetmem_list_empty(&f[i]->cb_list));
	for (i = 0; i < 3; i++) {
		dma_fence_signal(f[i]);
		dma_fence_put(f[i]);
	}
	hetmem_rcu_barrier();
}

TEST(wait_any_wakes_on_signal_from_other_thread)
{
	struct dma_fence *f[4];
	struct waiter w = { .any = true, .count = 4, .timeout = 10000 };
	int i;

	for (i = 0; i < 4; i++)
		f[i] = tf_create(&enable_ops);
	w.fences = f;
	start_waiter(&w);
	harness_sleep_ms(20);
	ASSERT_EQ(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0);
	ASSERT_EQ(dma_fence_signal(f[2]), 0);
	pthread_join(w.th, NULL);
	ASSERT_GT(w.ret, 0);
	ASSERT_LE(w.ret, 10000);
	ASSERT_EQ(w.idx, 2);
	for (i = 0; i < 4; i++) {
		/* Signalling was enabled on each, and every wake-up removed. */
		ASSERT_EQ(to_tf(f[i])->enable_calls, 1);
		ASSERT_TRUE(hetmem_list_empty(&f[i]->cb_list));
		dma_fence_signal(f[i]);
		dma_fence_put(f[i]);
	}
	hetmem_rcu_barrier();
}

TEST(wait_any_timeout_expires)
{
	struct dma_fence *f[2] = { tf_create(&plain_ops), tf_create(&plain_ops) };
	uint32_t idx = 99;
	int64_t t0 = harness_now_ms();

	ASSERT_EQ(dma_fence_wait_any_timeout(f, 2, false, 30, &idx), 0);
	ASSERT_GE(harness_now_ms() - t0, 30);
	ASSERT_TRUE(hetmem_list_empty(&f[0]->cb_list));
	ASSERT_TRUE(hetmem_list_empty(&f[1]->cb_list));
	dma_fence_signal(f[0]);
	dma_fence_signal(f[1]);
	dma_fence_put(f[0]);
	put_and_flush(f[1]);
}

/* ------------------------------------------------------------------ */
/* deadlines */

TEST(set_deadline_forwarded_only_while_unsignalled)
{
	struct dma_fence *f = tf_create(&deadline_ops);
	struct dma_fence *g = tf_create(&deadline_ops);
	struct dma_fence *p = tf_create(&plain_ops);
	struct test_fence *t = to_tf(f);

	dma_fence_set_deadline(f, 1000);
	ASSERT_EQ(t->deadline_calls, 1);
	ASSERT_EQ(t->deadline, 1000);
	dma_fence_set_deadline(f, 500);
	ASSERT_EQ(t->deadline_calls, 2);
	ASSERT_EQ(t->deadline, 500);
	/* A hint does not enable signalling. */
	ASSERT_FALSE(test_flag(f, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	dma_fence_signal(f);
	dma_fence_set_deadline(f, 100);
	ASSERT_EQ(t->deadline_calls, 2);
	ASSERT_EQ(t->deadline, 500);

	/* Completion seen through ops->signaled also stops forwarding. */
	__atomic_store_n(&to_tf(g)->hw_done, 1, __ATOMIC_RELEASE);
	dma_fence_set_deadline(g, 100);
	ASSERT_EQ(to_tf(g)->deadline_calls, 0);
	ASSERT_TRUE(test_flag(g, DMA_FENCE_FLAG_SIGNALED_BIT));

	/* No op: nothing to do, nothing breaks. */
	dma_fence_set_deadline(p, 100);
	dma_fence_signal(p);
	dma_fence_put(f);
	dma_fence_put(g);
	put_and_flush(p);
}

/* ------------------------------------------------------------------ */
/* stubs */

TEST(stub_fence)
{
	struct dma_fence *s = dma_fence_get_stub();
	struct dma_fence *s2;
	struct rec_cb r = { 0 };
	unsigned int refs;
	hetmem_ktime_t ts;

	ASSERT_EQ(s->context, 0);
	ASSERT_EQ(s->seqno, 0);
	ASSERT_TRUE(test_flag(s, DMA_FENCE_FLAG_SIGNALED_BIT));
	ASSERT_TRUE(test_flag(s, DMA_FENCE_FLAG_TIMESTAMP_BIT));
	ASSERT_TRUE(test_flag(s, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	ASSERT_EQ(dma_fence_get_status(s), 1);
	ASSERT_STREQ(s->ops->get_driver_name(s), "stub");
	ASSERT_STREQ(s->ops->get_timeline_name(s), "stub");
	ts = dma_fence_timestamp(s);
	ASSERT_LE(ts, hetmem_ktime_get());
	refs = hetmem_kref_read(&s->refcount);
	harness_sleep_ms(2);
	s2 = dma_fence_get_stub();
	ASSERT_TRUE(s2 == s);
	ASSERT_EQ(hetmem_kref_read(&s->refcount), refs + 1);
	/* Signalled once, at the first call. */
	ASSERT_EQ(dma_fence_timestamp(s2), ts);
	ASSERT_EQ(dma_fence_add_callback(s, &r.cb, rec_func), -ENOENT);
	ASSERT_EQ(dma_fence_signal(s), -EINVAL);
	ASSERT_EQ(dma_fence_wait_timeout(s, false, 10), 10);
	dma_fence_put(s2);
	dma_fence_put(s);
	ASSERT_EQ(hetmem_kref_read(&s->refcount), refs - 1);
}

TEST(private_stub)
{
	struct dma_fence *stub = dma_fence_get_stub();
	struct dma_fence *a = dma_fence_allocate_private_stub(12345);
	struct dma_fence *b = dma_fence_allocate_private_stub(67890);

	ASSERT_NONNULL(a);
	ASSERT_NONNULL(b);
	ASSERT_TRUE(a != b && a != stub);
	ASSERT_EQ(a->context, 0);
	ASSERT_EQ(a->seqno, 0);
	ASSERT_TRUE(test_flag(a, DMA_FENCE_FLAG_SIGNALED_BIT));
	ASSERT_TRUE(test_flag(a, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT));
	ASSERT_EQ(dma_fence_timestamp(a), 12345);
	ASSERT_EQ(dma_fence_timestamp(b), 67890);
	ASSERT_TRUE(a->lock == stub->lock);
	ASSERT_TRUE(b->lock == stub->lock);
	ASSERT_EQ(hetmem_kref_read(&a->refcount), 1);
	ASSERT_EQ(dma_fence_get_status(a), 1);
	dma_fence_put(stub);
	dma_fence_put(a);
	put_and_flush(b);
}

/* ------------------------------------------------------------------ */
/* contexts and seqnos */

TEST(context_alloc)
{
	uint64_t a, b, c, d;
	unsigned long base;

	a = dma_fence_context_alloc(1);
	ASSERT_GE(a, 1);
	b = dma_fence_context_alloc(5);
	ASSERT_EQ(b, a + 1);
	c = dma_fence_context_alloc(1);
	ASSERT_EQ(c, b + 5);

	quiet_warnings();
	base = hetmem_warn_count();
	d = dma_fence_context_alloc(0);
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	ASSERT_EQ(d, c + 1);
	ASSERT_EQ(dma_fence_context_alloc(1), c + 1);
}

#define CTX_THREADS 4
#define CTX_EACH 5000

static void *ctx_thread(void *arg)
{
	uint64_t *out = arg;
	int i;

	for (i = 0; i < CTX_EACH; i++)
		out[i] = dma_fence_context_alloc(1);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

TEST(context_alloc_concurrent_unique)
{
	static uint64_t ids[CTX_THREADS * CTX_EACH];
	pthread_t th[CTX_THREADS];
	int i;

	for (i = 0; i < CTX_THREADS; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, ctx_thread,
					 ids + i * CTX_EACH), 0);
	for (i = 0; i < CTX_THREADS; i++)
		pthread_join(th[i], NULL);
	qsort(ids, CTX_THREADS * CTX_EACH, sizeof(ids[0]), cmp_u64);
	ASSERT_GE(ids[0], 1);
	for (i = 1; i < CTX_THREADS * CTX_EACH; i++)
		ASSERT_EQ(ids[i], ids[i - 1] + 1);
}

static struct dma_fence *seq_fence(uint64_t ctx, uint64_t seqno, bool is64)
{
	struct test_fence *t = calloc(1, sizeof(*t));

	ASSERT_NONNULL(t);
	hetmem_spin_lock_init(&t->lock);
	if (is64)
		dma_fence_init64(&t->base, &plain_ops, &t->lock, ctx, seqno);
	else
		dma_fence_init(&t->base, &plain_ops, &t->lock, ctx, seqno);
	return &t->base;
}

static void put_all(struct dma_fence **f, int n)
{
	int i;

	for (i = 0; i < n; i++)
		dma_fence_put(f[i]);
	hetmem_rcu_barrier();
}

TEST(is_later_32bit_wraps)
{
	struct dma_fence *f[6] = {
		seq_fence(7, 0xffffffffULL, false),
		seq_fence(7, 1, false),
		seq_fence(7, 1, false),
		seq_fence(7, 0x100000000ULL, false),	/* low 32 bits: 0 */
		seq_fence(7, 0x80000002ULL, false),
		seq_fence(7, 0x80000001ULL, false),
	};

	ASSERT_TRUE(dma_fence_is_later(f[1], f[0]));
	ASSERT_FALSE(dma_fence_is_later(f[0], f[1]));
	/* equal is not later */
	ASSERT_FALSE(dma_fence_is_later(f[1], f[2]));
	ASSERT_FALSE(dma_fence_is_later(f[2], f[1]));
	/* only the low 32 bits count: 0 is not later than 1 */
	ASSERT_FALSE(dma_fence_is_later(f[3], f[1]));
	ASSERT_TRUE(dma_fence_is_later(f[1], f[3]));
	/* more than 2^31 apart: the smaller number is the later one */
	ASSERT_FALSE(dma_fence_is_later(f[4], f[1]));
	ASSERT_TRUE(dma_fence_is_later(f[1], f[4]));
	/* exactly 2^31 apart: neither is later */
	ASSERT_FALSE(dma_fence_is_later(f[5], f[1]));
	ASSERT_FALSE(dma_fence_is_later(f[1], f[5]));
	ASSERT_TRUE(__dma_fence_is_later(f[0], 1, 0xffffffffULL));
	ASSERT_FALSE(__dma_fence_is_later(f[0], 5, 5));
	ASSERT_TRUE(dma_fence_is_later_or_same(f[1], f[1]));
	ASSERT_FALSE(dma_fence_is_later_or_same(f[1], f[2]));
	ASSERT_TRUE(dma_fence_is_later_or_same(f[1], f[0]));
	ASSERT_FALSE(dma_fence_is_later_or_same(f[0], f[1]));
	put_all(f, 6);
}

TEST(is_later_64bit_plain)
{
	struct dma_fence *f[4] = {
		seq_fence(9, 0xffffffffULL, true),
		seq_fence(9, 1, true),
		seq_fence(9, 0x100000000ULL, true),
		seq_fence(9, 0x100000000ULL, true),
	};

	ASSERT_FALSE(dma_fence_is_later(f[1], f[0]));
	ASSERT_TRUE(dma_fence_is_later(f[0], f[1]));
	ASSERT_TRUE(dma_fence_is_later(f[2], f[1]));
	ASSERT_TRUE(dma_fence_is_later(f[2], f[0]));
	ASSERT_FALSE(dma_fence_is_later(f[2], f[3]));
	ASSERT_FALSE(__dma_fence_is_later(f[0], 1, 0xffffffffULL));
	ASSERT_TRUE(__dma_fence_is_later(f[0], UINT64_MAX, 0));
	put_all(f, 4);
}

TEST(is_later_mismatched_contexts_warns)
{
	struct dma_fence *a = seq_fence(1, 5, false);
	struct dma_fence *b = seq_fence(2, 1, false);
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	ASSERT_FALSE(dma_fence_is_later(a, b));
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	ASSERT_FALSE(dma_fence_is_later(b, a));
	ASSERT_EQ(hetmem_warn_count(), base + 2);
	ASSERT_NULL(dma_fence_later(a, b));
	ASSERT_EQ(hetmem_warn_count(), base + 3);
	dma_fence_put(a);
	put_and_flush(b);
}

TEST(later)
{
	struct dma_fence *a = seq_fence(4, 1, false);
	struct dma_fence *b = seq_fence(4, 2, false);
	struct dma_fence *c = seq_fence(4, 3, false);

	ASSERT_TRUE(dma_fence_later(a, b) == b);
	ASSERT_TRUE(dma_fence_later(b, a) == b);
	/* An earlier fence signalled does not matter... */
	dma_fence_signal(a);
	ASSERT_TRUE(dma_fence_later(a, b) == b);
	/* ...a signalled later one gives NULL. */
	dma_fence_signal(c);
	ASSERT_NULL(dma_fence_later(b, c));
	ASSERT_NULL(dma_fence_later(c, b));
	ASSERT_NULL(dma_fence_later(c, c));
	ASSERT_TRUE(dma_fence_later(b, b) == b);
	dma_fence_put(a);
	dma_fence_put(b);
	put_and_flush(c);
}

/* ------------------------------------------------------------------ */
/* names and describe */

static char *describe(struct dma_fence *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *s = open_memstream(&buf, &len);

	ASSERT_NONNULL(s);
	dma_fence_describe(f, s);
	fclose(s);
	return buf;
}

TEST(names_and_describe)
{
	struct dma_fence *f = seq_fence(5, 42, false);
	char *text;

	ASSERT_STREQ(dma_fence_driver_name(f), "test-driver");
	ASSERT_STREQ(dma_fence_timeline_name(f), "test-timeline");
	text = describe(f);
	ASSERT_STREQ(text, "test-driver test-timeline seq 42 unsignalled\n");
	free(text);

	dma_fence_signal(f);
	hetmem_rcu_read_lock();
	ASSERT_STREQ(dma_fence_driver_name(f), "detached-driver");
	ASSERT_STREQ(dma_fence_timeline_name(f), "signaled-timeline");
	hetmem_rcu_read_unlock();
	text = describe(f);
	ASSERT_STREQ(text, "detached-driver signaled-timeline seq 42 signalled\n");
	free(text);
	put_and_flush(f);
}

TEST(describe_signals_through_ops_signaled)
{
	struct dma_fence *f = tf_create(&signaled_ops);
	char *text;

	f->seqno = 18446744073709551615ULL;
	__atomic_store_n(&to_tf(f)->hw_done, 1, __ATOMIC_RELEASE);
	text = describe(f);
	ASSERT_STREQ(text, "detached-driver signaled-timeline "
			   "seq 18446744073709551615 signalled\n");
	free(text);
	ASSERT_TRUE(test_flag(f, DMA_FENCE_FLAG_SIGNALED_BIT));
	put_and_flush(f);
}

TEST(type_predicates)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct dma_fence fake_array = { .ops = &dma_fence_array_ops };
	struct dma_fence fake_chain = { .ops = &dma_fence_chain_ops };

	ASSERT_FALSE(dma_fence_is_array(f));
	ASSERT_FALSE(dma_fence_is_chain(f));
	ASSERT_FALSE(dma_fence_is_container(f));
	ASSERT_TRUE(dma_fence_is_array(&fake_array));
	ASSERT_FALSE(dma_fence_is_chain(&fake_array));
	ASSERT_TRUE(dma_fence_is_container(&fake_array));
	ASSERT_TRUE(dma_fence_is_chain(&fake_chain));
	ASSERT_FALSE(dma_fence_is_array(&fake_chain));
	ASSERT_TRUE(dma_fence_is_container(&fake_chain));
	ASSERT_FALSE(dma_fence_is_array(NULL));
	ASSERT_FALSE(dma_fence_is_chain(NULL));
	ASSERT_FALSE(dma_fence_is_container(NULL));
	put_and_flush(f);
}

/* ------------------------------------------------------------------ */
/* misuse */

TEST(null_arguments_return_errors)
{
	struct dma_fence *f = tf_create(&plain_ops);
	struct rec_cb r = { 0 };
	hetmem_ktime_t before, ts;
	unsigned long base;

	quiet_warnings();
	base = hetmem_warn_count();
	ASSERT_EQ(dma_fence_signal(NULL), -EINVAL);
	ASSERT_EQ(dma_fence_signal_locked(NULL), -EINVAL);
	ASSERT_EQ(dma_fence_signal_timestamp(NULL, 1), -EINVAL);
	ASSERT_EQ(dma_fence_signal_timestamp_locked(NULL, 1), -EINVAL);
	ASSERT_TRUE(dma_fence_check_and_signal(NULL));
	ASSERT_TRUE(dma_fence_check_and_signal_locked(NULL));
	ASSERT_EQ(hetmem_warn_count(), base + 6);
	dma_fence_enable_sw_signaling(NULL);
	ASSERT_EQ(dma_fence_add_callback(NULL, &r.cb, rec_func), -EINVAL);
	ASSERT_EQ(dma_fence_add_callback(f, NULL, rec_func), -EINVAL);
	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, NULL), -EINVAL);
	ASSERT_FALSE(dma_fence_remove_callback(NULL, &r.cb));
	ASSERT_FALSE(dma_fence_remove_callback(f, NULL));
	ASSERT_EQ(dma_fence_get_status(NULL), -EINVAL);
	dma_fence_set_error(NULL, -EIO);
	ASSERT_EQ(hetmem_warn_count(), base + 14);
	before = hetmem_ktime_get();
	ts = dma_fence_timestamp(NULL);
	ASSERT_GE(ts, before);
	ASSERT_EQ(dma_fence_wait_timeout(NULL, false, 10), -EINVAL);
	ASSERT_EQ(dma_fence_wait_any_timeout(NULL, 0, false, 10, NULL), -EINVAL);
	dma_fence_set_deadline(NULL, 0);
	ASSERT_EQ(hetmem_warn_count(), base + 18);
	/* Nothing happened to the real fence on the way. */
	ASSERT_TRUE(hetmem_list_empty(&f->cb_list));
	ASSERT_FALSE(dma_fence_is_signaled(f));
	ASSERT_EQ(f->flags, 0);
	ASSERT_EQ(r.calls, 0);
	put_and_flush(f);
}

static const struct dma_fence_ops no_driver_ops = {
	.get_timeline_name = tf_timeline,
};

static const struct dma_fence_ops no_timeline_ops = {
	.get_driver_name = tf_driver,
};

static void check_usable(struct dma_fence *f)
{
	struct rec_cb r = { 0 };
	char *text;

	ASSERT_NONNULL(dma_fence_driver_name(f));
	ASSERT_NONNULL(dma_fence_timeline_name(f));
	text = describe(f);
	ASSERT_NONNULL(strstr(text, " seq 3 unsignalled\n"));
	free(text);
	ASSERT_EQ(dma_fence_add_callback(f, &r.cb, rec_func), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	ASSERT_EQ(r.calls, 1);
	ASSERT_TRUE(r.lock_held_inside);
	ASSERT_EQ(dma_fence_wait_timeout(f, false, 5), 5);
}

TEST(init_with_bad_ops_or_lock_warns)
{
	static hetmem_spinlock_t lock = HETMEM_SPINLOCK_INIT(bad_init_lock);
	struct dma_fence f[4];
	unsigned long base;
	int i;

	quiet_warnings();
	base = hetmem_warn_count();
	dma_fence_init(&f[0], &no_driver_ops, &lock, 1, 3);
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	dma_fence_init(&f[1], &no_timeline_ops, &lock, 1, 3);
	ASSERT_EQ(hetmem_warn_count(), base + 2);
	dma_fence_init(&f[2], NULL, &lock, 1, 3);
	ASSERT_EQ(hetmem_warn_count(), base + 3);
	dma_fence_init64(&f[3], &plain_ops, NULL, 1, 3);
	ASSERT_EQ(hetmem_warn_count(), base + 4);
	ASSERT_NONNULL(f[3].lock);
	for (i = 0; i < 4; i++)
		check_usable(&f[i]);
	ASSERT_EQ(hetmem_warn_count(), base + 4);
}
