/* SPDX-License-Identifier: MIT */
/*
 * hetmem - fence signalling annotations and the checker behind them
 * (spec/fence-resv.md §4): sections and their cookies, waits inside a
 * section, locks held around waits and taken inside sections, and fence
 * callbacks that sleep.
 */
#include <pthread.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/fence/dma-fence.h>

#include "core/internal.h"
#include "harness.h"

/* Every report is a warning; keep all of them for inspection. */
#define MAX_MSGS 16

static struct {
	pthread_mutex_t lock;
	int n;
	char msg[MAX_MSGS][4096];
} cap = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void capture_handler(const char *msg, void *data)
{
	pthread_mutex_lock(&cap.lock);
	if (cap.n < MAX_MSGS)
		snprintf(cap.msg[cap.n], sizeof(cap.msg[0]), "%s", msg);
	cap.n++;
	pthread_mutex_unlock(&cap.lock);
}

/* The index of the first captured report containing every @needle. */
static int find_report(const char *n1, const char *n2, const char *n3)
{
	int i;

	for (i = 0; i < cap.n && i < MAX_MSGS; i++) {
		if (strstr(cap.msg[i], n1) && (!n2 || strstr(cap.msg[i], n2)) &&
		    (!n3 || strstr(cap.msg[i], n3)))
			return i;
	}
	return -1;
}

static void dump_reports(void)
{
	int i;

	for (i = 0; i < cap.n && i < MAX_MSGS; i++)
		TH_LOG("report %d:\n%s", i, cap.msg[i]);
}

static const char *drv_name(struct dma_fence *f)
{
	return "signalling-test";
}

static const struct dma_fence_ops test_ops = {
	.get_driver_name = drv_name,
	.get_timeline_name = drv_name,
};

/* A fence, its lock named for the reports, and a mutex of its own class. */
static struct hetmem_lock_class_key fence_lock_key, mutex_key;

FIXTURE(sig) {
	hetmem_spinlock_t fence_lock;
	struct hetmem_mutex mutex;
	struct dma_fence *fence;
	unsigned long warns;
	unsigned long reports;
};

FIXTURE_SETUP(sig)
{
	hetmem_lockdep_set_enabled(true);
	ASSERT_TRUE(hetmem_lockdep_enabled());
	hetmem_spin_lock_init_key(&self->fence_lock, "test_fence_lock",
				  &fence_lock_key);
	hetmem_mutex_init_key(&self->mutex, "test_driver_mutex", &mutex_key);
	self->fence = calloc(1, sizeof(*self->fence));
	ASSERT_NONNULL(self->fence);
	dma_fence_init(self->fence, &test_ops, &self->fence_lock,
		       dma_fence_context_alloc(1), 1);
	self->warns = hetmem_warn_count();
	self->reports = hetmem_lockdep_report_count();
}

FIXTURE_TEARDOWN(sig)
{
	hetmem_set_warn_handler(NULL, NULL);
	hetmem_lockdep_set_enabled(false);
	dma_fence_signal(self->fence);
	dma_fence_put(self->fence);
	hetmem_rcu_barrier();
}

static void capture_reports(void)
{
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	hetmem_set_warn_handler(capture_handler, NULL);
}

static unsigned long new_reports(FIXTURE_DATA(sig) *self)
{
	return hetmem_lockdep_report_count() - self->reports;
}

static unsigned long new_warns(FIXTURE_DATA(sig) *self)
{
	return hetmem_warn_count() - self->warns;
}

/*
 * Named, exported call sites (the test binaries are linked with
 * -rdynamic), so the report text can be checked for the sites it names.
 */
bool sigtest_begin_site(void);
long sigtest_wait_site(struct dma_fence *f, long timeout);
void sigtest_lock_site(struct hetmem_mutex *m);

__attribute__((noinline)) bool sigtest_begin_site(void)
{
	bool cookie = dma_fence_begin_signalling();

	__asm__ volatile("" ::: "memory");	/* not a tail call */
	return cookie;
}

__attribute__((noinline)) long sigtest_wait_site(struct dma_fence *f,
						 long timeout)
{
	long ret = dma_fence_wait_timeout(f, false, timeout);

	__asm__ volatile("" ::: "memory");
	return ret;
}

__attribute__((noinline)) void sigtest_lock_site(struct hetmem_mutex *m)
{
	hetmem_mutex_lock(m);
	__asm__ volatile("" ::: "memory");
}

TEST_F(sig, begin_end_cookie_nesting)
{
	bool outer, inner, innermost;

	outer = dma_fence_begin_signalling();
	ASSERT_FALSE(outer);
	inner = dma_fence_begin_signalling();
	ASSERT_TRUE(inner);
	innermost = dma_fence_begin_signalling();
	ASSERT_TRUE(innermost);
	dma_fence_end_signalling(innermost);
	dma_fence_end_signalling(inner);
	/* Still inside the outer section: nesting again is free. */
	ASSERT_TRUE(dma_fence_begin_signalling());
	dma_fence_end_signalling(true);
	dma_fence_end_signalling(outer);
	/* Closed: the next section is an outer one again. */
	outer = dma_fence_begin_signalling();
	ASSERT_FALSE(outer);
	dma_fence_end_signalling(outer);
	ASSERT_EQ(new_reports(self), 0);
	ASSERT_EQ(new_warns(self), 0);
}

static void *section_thread(void *arg)
{
	bool *cookie = arg;

	*cookie = dma_fence_begin_signalling();
	dma_fence_end_signalling(*cookie);
	return NULL;
}

TEST_F(sig, sections_are_per_thread)
{
	bool outer = dma_fence_begin_signalling(), other = true;
	pthread_t th;

	ASSERT_FALSE(outer);
	ASSERT_EQ(pthread_create(&th, NULL, section_thread, &other), 0);
	pthread_join(th, NULL);
	ASSERT_FALSE(other);
	dma_fence_end_signalling(outer);
	ASSERT_EQ(new_reports(self), 0);
}

TEST_F(sig, signal_inside_section_is_nested_and_quiet)
{
	bool cookie = dma_fence_begin_signalling();

	/* dma_fence_signal() opens its own (nested) section. */
	ASSERT_EQ(dma_fence_signal(self->fence), 0);
	dma_fence_end_signalling(cookie);
	ASSERT_EQ(new_reports(self), 0);
	ASSERT_EQ(new_warns(self), 0);
}

TEST_F(sig, wait_inside_section_reported_with_both_sites)
{
	bool cookie;

	capture_reports();
	cookie = sigtest_begin_site();
	ASSERT_FALSE(cookie);
	ASSERT_EQ(sigtest_wait_site(self->fence, 0), 0);
	dma_fence_end_signalling(cookie);
	ASSERT_EQ(new_reports(self), 1);
	ASSERT_EQ(new_warns(self), 1);
	ASSERT_EQ(cap.n, 1);
	if (find_report("wait inside a signalling critical section",
			"sigtest_wait_site+", "sigtest_begin_site+") < 0) {
		dump_reports();
		ASSERT_TRUE(false);
	}
	ASSERT_NONNULL(strstr(cap.msg[0], "dma_fence_map"));
}

TEST_F(sig, every_wait_flavour_inside_section_reported)
{
	struct dma_fence *fences[1] = { self->fence };
	struct dma_fence *stub = dma_fence_get_stub();
	bool cookie;

	capture_reports();
	cookie = dma_fence_begin_signalling();
	dma_fence_wait_timeout(self->fence, false, 0);
	ASSERT_EQ(new_reports(self), 1);
	dma_fence_wait(stub, false);
	dma_fence_put(stub);
	ASSERT_EQ(new_reports(self), 2);
	dma_fence_wait_any_timeout(fences, 1, false, 1, NULL);
	ASSERT_EQ(new_reports(self), 3);
	__dma_fence_might_wait();
	ASSERT_EQ(new_reports(self), 4);
	dma_fence_end_signalling(cookie);
	ASSERT_EQ(find_report("wait inside a signalling critical section",
			      NULL, NULL), 0);
	/* Outside the section the same waits are fine. */
	dma_fence_wait_timeout(self->fence, false, 0);
	__dma_fence_might_wait();
	ASSERT_EQ(new_reports(self), 4);
	ASSERT_EQ(new_warns(self), 4);
}

/* Thread bodies for the two halves of the canonical deadlock. */
struct half {
	FIXTURE_DATA(sig) *fx;
};

static void *lock_then_wait(void *arg)
{
	struct half *h = arg;

	sigtest_lock_site(&h->fx->mutex);
	sigtest_wait_site(h->fx->fence, 0);
	hetmem_mutex_unlock(&h->fx->mutex);
	return NULL;
}

static void *section_then_lock(void *arg)
{
	struct half *h = arg;
	bool cookie = sigtest_begin_site();

	sigtest_lock_site(&h->fx->mutex);
	hetmem_mutex_unlock(&h->fx->mutex);
	dma_fence_end_signalling(cookie);
	return NULL;
}

static void run_half(void *(*fn)(void *), FIXTURE_DATA(sig) *self)
{
	struct half h = { .fx = self };
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, fn, &h), 0);
	pthread_join(th, NULL);
}

static void check_cycle_report(FIXTURE_DATA(sig) *self)
{
	int i;

	ASSERT_EQ(new_reports(self), 1);
	ASSERT_EQ(cap.n, 1);
	i = find_report("possible circular locking dependency",
			"test_driver_mutex", "dma_fence_map");
	if (i < 0)
		dump_reports();
	ASSERT_EQ(i, 0);
}

TEST_F(sig, mutex_around_wait_then_in_section)
{
	capture_reports();
	run_half(lock_then_wait, self);
	ASSERT_EQ(new_reports(self), 0);
	run_half(section_then_lock, self);
	check_cycle_report(self);
	/* Reported once; repeating either half adds nothing. */
	run_half(section_then_lock, self);
	run_half(lock_then_wait, self);
	ASSERT_EQ(new_reports(self), 1);
}

TEST_F(sig, mutex_in_section_then_around_wait)
{
	capture_reports();
	run_half(section_then_lock, self);
	ASSERT_EQ(new_reports(self), 0);
	run_half(lock_then_wait, self);
	check_cycle_report(self);
	ASSERT_NONNULL(strstr(cap.msg[0], "sigtest_wait_site+"));
}

/* Callbacks run under the fence spinlock: sleeping there is a bug. */
struct sleepy_cb {
	struct dma_fence_cb cb;
	struct hetmem_mutex *mutex;
	struct dma_fence *other;
	int calls;
};

static void cb_takes_mutex(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct sleepy_cb *s = hetmem_container_of(cb, struct sleepy_cb, cb);

	s->calls++;
	hetmem_mutex_lock(s->mutex);
	hetmem_mutex_unlock(s->mutex);
}

static void cb_waits(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct sleepy_cb *s = hetmem_container_of(cb, struct sleepy_cb, cb);

	s->calls++;
	dma_fence_wait_timeout(s->other, false, 0);
}

TEST_F(sig, callback_taking_mutex_reported)
{
	struct sleepy_cb s = { .mutex = &self->mutex };
	int i;

	capture_reports();
	ASSERT_EQ(dma_fence_add_callback(self->fence, &s.cb, cb_takes_mutex), 0);
	ASSERT_EQ(dma_fence_signal(self->fence), 0);
	ASSERT_EQ(s.calls, 1);
	ASSERT_EQ(new_reports(self), 1);
	i = find_report("sleeping function called from atomic context",
			"test_fence_lock", NULL);
	if (i < 0)
		dump_reports();
	ASSERT_EQ(i, 0);
}

TEST_F(sig, callback_waiting_reported_from_signal_locked)
{
	struct dma_fence *other = dma_fence_get_stub();
	struct sleepy_cb s = { .other = other };
	int i;

	capture_reports();
	ASSERT_EQ(dma_fence_add_callback(self->fence, &s.cb, cb_waits), 0);
	/* No signalling section here: only the sleep is wrong. */
	hetmem_spin_lock(self->fence->lock);
	ASSERT_EQ(dma_fence_signal_locked(self->fence), 0);
	hetmem_spin_unlock(self->fence->lock);
	ASSERT_EQ(s.calls, 1);
	ASSERT_EQ(new_reports(self), 1);
	i = find_report("sleeping function called from atomic context",
			"test_fence_lock", NULL);
	if (i < 0)
		dump_reports();
	ASSERT_EQ(i, 0);
	dma_fence_put(other);
}

TEST_F(sig, callback_waiting_reported_from_signal)
{
	struct dma_fence *other = dma_fence_get_stub();
	struct sleepy_cb s = { .other = other };

	capture_reports();
	ASSERT_EQ(dma_fence_add_callback(self->fence, &s.cb, cb_waits), 0);
	ASSERT_EQ(dma_fence_signal(self->fence), 0);
	ASSERT_EQ(s.calls, 1);
	/* Sleeping under the fence lock, and waiting inside the section. */
	ASSERT_EQ(new_reports(self), 2);
	if (find_report("sleeping function called from atomic context",
			"test_fence_lock", NULL) < 0 ||
	    find_report("wait inside a signalling critical section",
			"dma_fence_map", NULL) < 0) {
		dump_reports();
		ASSERT_TRUE(false);
	}
	dma_fence_put(other);
}

/* The consistent driver: waits under its mutex, signals under a spinlock. */
static hetmem_spinlock_t irq_lock = HETMEM_SPINLOCK_INIT(test_irq_lock);

static void flag_cb(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct sleepy_cb *s = hetmem_container_of(cb, struct sleepy_cb, cb);

	s->calls++;
}

static void *consistent_waiter(void *arg)
{
	struct half *h = arg;

	hetmem_mutex_lock(&h->fx->mutex);
	dma_fence_wait_timeout(h->fx->fence, false, 0);
	hetmem_mutex_unlock(&h->fx->mutex);
	dma_fence_wait_timeout(h->fx->fence, false, 1);
	return NULL;
}

static void *consistent_signaller(void *arg)
{
	struct half *h = arg;
	struct dma_fence *f = calloc(1, sizeof(*f));
	struct sleepy_cb s = { 0 };
	bool cookie, nested;

	if (!f)
		return NULL;
	dma_fence_init(f, &test_ops, &h->fx->fence_lock, 1, 2);
	dma_fence_add_callback(f, &s.cb, flag_cb);
	cookie = dma_fence_begin_signalling();
	hetmem_spin_lock(&irq_lock);
	hetmem_spin_unlock(&irq_lock);
	nested = dma_fence_begin_signalling();
	dma_fence_signal(f);
	dma_fence_end_signalling(nested);
	dma_fence_end_signalling(cookie);
	dma_fence_put(f);
	return NULL;
}

TEST_F(sig, consistent_usage_is_quiet)
{
	int round;

	/* Warnings stay fatal here: any report would end the case. */
	for (round = 0; round < 3; round++) {
		run_half(consistent_waiter, self);
		run_half(consistent_signaller, self);
	}
	ASSERT_EQ(new_reports(self), 0);
	ASSERT_EQ(new_warns(self), 0);
}

/*
 * A driver signalling from under its own spinlock, and a signalling
 * section that takes that spinlock: a shared section never blocks, so
 * this is no cycle (entering a section records no "held lock ->
 * signalling" dependency), in either order.
 */
static hetmem_spinlock_t driver_lock = HETMEM_SPINLOCK_INIT(test_driver_lock);

static void *signal_under_driver_lock(void *arg)
{
	struct half *h = arg;
	struct dma_fence *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	dma_fence_init(f, &test_ops, &h->fx->fence_lock, 1, 3);
	hetmem_spin_lock(&driver_lock);
	dma_fence_signal(f);
	hetmem_spin_unlock(&driver_lock);
	dma_fence_put(f);
	return NULL;
}

static void *driver_lock_in_section(void *arg)
{
	bool cookie = dma_fence_begin_signalling();

	hetmem_spin_lock(&driver_lock);
	hetmem_spin_unlock(&driver_lock);
	dma_fence_end_signalling(cookie);
	return NULL;
}

TEST_F(sig, signal_under_spinlock_is_quiet)
{
	/* Fatal warnings: a report ends the case. */
	run_half(signal_under_driver_lock, self);
	run_half(driver_lock_in_section, self);
	run_half(signal_under_driver_lock, self);
	ASSERT_EQ(new_reports(self), 0);
	ASSERT_EQ(new_warns(self), 0);
}

TEST_F(sig, disabled_checker_reports_nothing)
{
	struct sleepy_cb s = { .mutex = &self->mutex };
	bool cookie;

	hetmem_lockdep_set_enabled(false);
	ASSERT_FALSE(hetmem_lockdep_enabled());
	/* Without the checker, begin always says "nested". */
	cookie = dma_fence_begin_signalling();
	ASSERT_TRUE(cookie);
	dma_fence_wait_timeout(self->fence, false, 0);
	dma_fence_end_signalling(cookie);
	run_half(lock_then_wait, self);
	run_half(section_then_lock, self);
	ASSERT_EQ(dma_fence_add_callback(self->fence, &s.cb, cb_takes_mutex), 0);
	ASSERT_EQ(dma_fence_signal(self->fence), 0);
	ASSERT_EQ(s.calls, 1);
	ASSERT_EQ(new_reports(self), 0);
	ASSERT_EQ(new_warns(self), 0);
}

TEST_F(sig, reenabled_checker_reports_again)
{
	bool cookie;

	capture_reports();
	hetmem_lockdep_set_enabled(false);
	cookie = dma_fence_begin_signalling();
	dma_fence_wait_timeout(self->fence, false, 0);
	dma_fence_end_signalling(cookie);
	ASSERT_EQ(new_reports(self), 0);
	hetmem_lockdep_set_enabled(true);
	cookie = dma_fence_begin_signalling();
	ASSERT_FALSE(cookie);
	dma_fence_wait_timeout(self->fence, false, 0);
	dma_fence_end_signalling(cookie);
	ASSERT_EQ(new_reports(self), 1);
}
