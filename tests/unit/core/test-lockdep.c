/* SPDX-License-Identifier: MIT */
/*
 * hetmem - tests of the lock-dependency checker.
 */
#include <pthread.h>
#include <sys/wait.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/core/warn.h>

#include "harness.h"

/*
 * Code sites. Reports name sites through dladdr(), and the test binary is
 * linked with -rdynamic, so a distinct exported function per site shows
 * up by name. The bodies differ so that no two get folded together.
 */
volatile int site_sink;

#define DEFINE_SITE(fn)							\
	void fn(void);							\
	__attribute__((noinline)) void fn(void)				\
	{								\
		site_sink = __LINE__;					\
	}

#define SITE(fn) ((const void *)(uintptr_t)&(fn))

DEFINE_SITE(site_t1_take_alpha)
DEFINE_SITE(site_t1_take_beta)
DEFINE_SITE(site_t2_take_beta)
DEFINE_SITE(site_t2_take_alpha)
DEFINE_SITE(site_take_gamma)
DEFINE_SITE(site_release)
DEFINE_SITE(site_begin_signalling)
DEFINE_SITE(site_take_inner)
DEFINE_SITE(site_fence_wait)
DEFINE_SITE(site_take_spin)
DEFINE_SITE(site_sleep)
DEFINE_SITE(site_first)
DEFINE_SITE(site_again)

static struct hetmem_lockdep_map alpha = HETMEM_LOCKDEP_MAP_INIT("alpha", 0);
static struct hetmem_lockdep_map beta = HETMEM_LOCKDEP_MAP_INIT("beta", 0);
static struct hetmem_lockdep_map gamma_ = HETMEM_LOCKDEP_MAP_INIT("gamma", 0);
static struct hetmem_lockdep_map inner = HETMEM_LOCKDEP_MAP_INIT("inner", 0);
static struct hetmem_lockdep_map spin =
	HETMEM_LOCKDEP_MAP_INIT("spin", HETMEM_LOCKDEP_ATOMIC);
/* Stands in for the fence layer's signalling annotation. */
static struct hetmem_lockdep_map signalling =
	HETMEM_LOCKDEP_MAP_INIT("test_fence_map", HETMEM_LOCKDEP_PSEUDO);

/* Warnings seen by the handler; it runs under the warning mutex. */
struct capture {
	unsigned int n;
	size_t len;
	char text[65536];
};

static struct capture cap;

static void capture_warning(const char *msg, void *data)
{
	struct capture *c = data;
	size_t room = sizeof(c->text) - c->len;
	int k;

	c->n++;
	k = snprintf(c->text + c->len, room, "%s\n", msg);
	if (k > 0)
		c->len += (size_t)k < room ? (size_t)k : room - 1;
}

static bool captured(const char *s)
{
	return strstr(cap.text, s) != NULL;
}

static void lock(struct hetmem_lockdep_map *map, const void *site)
{
	hetmem_lockdep_acquire(map, 0, false, site);
}

static void lock_read(struct hetmem_lockdep_map *map, const void *site)
{
	hetmem_lockdep_acquire(map, 1, false, site);
}

static void unlock(struct hetmem_lockdep_map *map)
{
	hetmem_lockdep_release(map, SITE(site_release));
}

/* Take @first then @second, release both: records first -> second. */
static void nest(struct hetmem_lockdep_map *first, const void *site1,
		 struct hetmem_lockdep_map *second, const void *site2)
{
	lock(first, site1);
	lock(second, site2);
	unlock(second);
	unlock(first);
}

struct nest_args {
	struct hetmem_lockdep_map *first, *second;
	const void *site1, *site2;
};

static void *nest_thread(void *arg)
{
	struct nest_args *a = arg;

	nest(a->first, a->site1, a->second, a->site2);
	return NULL;
}

static void nest_in_thread(struct hetmem_lockdep_map *first,
			   const void *site1,
			   struct hetmem_lockdep_map *second,
			   const void *site2)
{
	struct nest_args a = { first, second, site1, site2 };
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, nest_thread, &a), 0);
	ASSERT_EQ(pthread_join(th, NULL), 0);
}

/*
 * Cases that provoke reports: warnings silent, captured, counted from a
 * clean graph.
 */
FIXTURE(ld) {
	unsigned long reports;
	unsigned long warns;
	bool on_from_start;
};

FIXTURE_SETUP(ld)
{
	self->on_from_start = hetmem_lockdep_enabled();
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	memset(&cap, 0, sizeof(cap));
	hetmem_set_warn_handler(capture_warning, &cap);
	hetmem_lockdep_set_enabled(true);
	hetmem_lockdep_reset();
	self->reports = hetmem_lockdep_report_count();
	self->warns = hetmem_warn_count();
}

FIXTURE_TEARDOWN(ld)
{
	hetmem_set_warn_handler(NULL, NULL);
}

static unsigned long new_reports(FIXTURE_DATA(ld) *self)
{
	return hetmem_lockdep_report_count() - self->reports;
}

TEST_F(ld, abba_two_threads_reported)
{
	nest_in_thread(&alpha, SITE(site_t1_take_alpha),
		       &beta, SITE(site_t1_take_beta));
	ASSERT_EQ(cap.n, 0);
	nest_in_thread(&beta, SITE(site_t2_take_beta),
		       &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("possible circular locking dependency"));
	EXPECT_TRUE(captured("alpha"));
	EXPECT_TRUE(captured("beta"));
	EXPECT_TRUE(captured("site_t1_take_alpha+0x0"));
	EXPECT_TRUE(captured("site_t1_take_beta+0x0"));
	EXPECT_TRUE(captured("site_t2_take_alpha+0x0"));
	EXPECT_TRUE(captured("site_t2_take_beta+0x0"));
	EXPECT_TRUE(captured("beta -> alpha"));
	EXPECT_TRUE(captured("alpha -> beta"));

	/* The edge exists now: the same order again is not a new report. */
	nest_in_thread(&beta, SITE(site_t2_take_beta),
		       &alpha, SITE(site_t2_take_alpha));
	EXPECT_EQ(cap.n, 1);
	EXPECT_EQ(hetmem_warn_count() - self->warns, 1);
}

TEST_F(ld, three_lock_cycle_reported)
{
	nest(&alpha, SITE(site_t1_take_alpha), &beta, SITE(site_t1_take_beta));
	nest(&beta, SITE(site_t2_take_beta), &gamma_, SITE(site_take_gamma));
	ASSERT_EQ(cap.n, 0);
	nest(&gamma_, SITE(site_take_gamma), &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("circular"));
	EXPECT_TRUE(captured("gamma -> alpha closes a cycle"));
	EXPECT_TRUE(captured("alpha -> beta"));
	EXPECT_TRUE(captured("beta -> gamma"));
	EXPECT_TRUE(captured("site_t1_take_beta"));
	EXPECT_TRUE(captured("site_take_gamma"));
}

TEST(consistent_order_never_reports)
{
	int i;

	/* HETMEM_WARN=fatal: any report aborts the case. */
	hetmem_lockdep_set_enabled(true);
	for (i = 0; i < 10000; i++) {
		lock(&alpha, SITE(site_t1_take_alpha));
		lock(&beta, SITE(site_t1_take_beta));
		if (i & 1)
			lock(&gamma_, SITE(site_take_gamma));
		lock(&inner, SITE(site_take_inner));
		unlock(&inner);
		if (i & 1)
			unlock(&gamma_);
		unlock(&beta);
		unlock(&alpha);
	}
	ASSERT_EQ(hetmem_lockdep_report_count(), 0);
	ASSERT_EQ(hetmem_warn_count(), 0);
}

TEST_F(ld, trylock_adds_no_edge_into_it)
{
	lock(&alpha, SITE(site_t1_take_alpha));
	hetmem_lockdep_acquire(&beta, 0, true, SITE(site_t1_take_beta));
	ASSERT_TRUE(hetmem_lockdep_is_held(&beta));
	unlock(&beta);
	unlock(&alpha);
	/* No alpha -> beta was recorded, so beta -> alpha closes nothing. */
	nest(&beta, SITE(site_t2_take_beta), &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 0);
	ASSERT_EQ(new_reports(self), 0);
}

TEST_F(ld, trylocked_lock_orders_later_locks)
{
	/* A held trylock is an ordinary held lock: a -> b is recorded. */
	hetmem_lockdep_acquire(&alpha, 0, true, SITE(site_t1_take_alpha));
	lock(&beta, SITE(site_t1_take_beta));
	unlock(&beta);
	unlock(&alpha);
	nest(&beta, SITE(site_t2_take_beta), &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 1);
	EXPECT_TRUE(captured("circular"));
}

TEST_F(ld, recursive_same_class_reported)
{
	static const struct hetmem_lock_class_key key;
	struct hetmem_lockdep_map one, two;

	hetmem_lockdep_init_map(&one, "obj_lock", &key, 0);
	hetmem_lockdep_init_map(&two, "obj_lock", &key, 0);
	lock(&one, SITE(site_first));
	lock(&two, SITE(site_again));
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("possible recursive locking detected"));
	EXPECT_TRUE(captured("obj_lock"));
	EXPECT_TRUE(captured("site_first"));
	EXPECT_TRUE(captured("site_again"));
	unlock(&two);
	unlock(&one);
	ASSERT_EQ(cap.n, 1);
}

TEST_F(ld, recursive_same_lock_reported_once_per_sites)
{
	int i;

	for (i = 0; i < 3; i++) {
		lock(&alpha, SITE(site_first));
		lock(&alpha, SITE(site_again));
		unlock(&alpha);
		unlock(&alpha);
	}
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	EXPECT_TRUE(captured("recursive"));
	/* Different sites: a different mistake, reported again. */
	lock(&alpha, SITE(site_first));
	lock(&alpha, SITE(site_take_gamma));
	unlock(&alpha);
	unlock(&alpha);
	ASSERT_EQ(cap.n, 2);
}

TEST_F(ld, two_reads_of_one_class_are_silent)
{
	lock_read(&alpha, SITE(site_first));
	lock_read(&alpha, SITE(site_again));
	ASSERT_TRUE(hetmem_lockdep_is_held_read(&alpha));
	unlock(&alpha);
	ASSERT_TRUE(hetmem_lockdep_is_held_read(&alpha));
	unlock(&alpha);
	ASSERT_FALSE(hetmem_lockdep_is_held(&alpha));
	ASSERT_EQ(cap.n, 0);
	/* Read then write of one class is recursive. */
	lock_read(&alpha, SITE(site_first));
	lock(&alpha, SITE(site_again));
	ASSERT_EQ(cap.n, 1);
	EXPECT_TRUE(captured("recursive"));
}

TEST_F(ld, release_not_held_reported)
{
	/* After a switch the checker cannot know what went unseen. */
	if (!self->on_from_start)
		SKIP(return, "needs HETMEM_LOCKDEP=1 from the start");
	lock(&beta, SITE(site_first));
	hetmem_lockdep_release(&alpha, SITE(site_release));
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("releasing lock alpha not held"));
	EXPECT_TRUE(captured("site_release"));
	/* The report lists what the thread does hold. */
	EXPECT_TRUE(captured("#0: beta"));
	unlock(&beta);
	ASSERT_EQ(cap.n, 1);
}

TEST_F(ld, out_of_order_release_is_fine)
{
	lock(&alpha, SITE(site_t1_take_alpha));
	lock(&beta, SITE(site_t1_take_beta));
	lock(&gamma_, SITE(site_take_gamma));
	unlock(&alpha);
	unlock(&gamma_);
	ASSERT_TRUE(hetmem_lockdep_is_held(&beta));
	unlock(&beta);
	ASSERT_FALSE(hetmem_lockdep_is_held(&beta));
	ASSERT_EQ(cap.n, 0);
}

TEST_F(ld, might_sleep_in_atomic_context)
{
	hetmem_might_sleep(SITE(site_sleep));
	ASSERT_EQ(cap.n, 0);
	lock(&spin, SITE(site_take_spin));
	lock(&inner, SITE(site_take_inner));
	hetmem_might_sleep(SITE(site_sleep));
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("sleeping function called from atomic context"));
	EXPECT_TRUE(captured("site_sleep"));
	EXPECT_TRUE(captured("spin (atomic), acquired at site_take_spin"));
	unlock(&inner);
	unlock(&spin);
	hetmem_might_sleep(SITE(site_again));
	ASSERT_EQ(cap.n, 1);
}

TEST_F(ld, signalling_then_wait_under_lock_is_a_cycle)
{
	/* Signalling section takes inner: signalling -> inner. */
	lock_read(&signalling, SITE(site_begin_signalling));
	lock(&inner, SITE(site_take_inner));
	unlock(&inner);
	unlock(&signalling);
	ASSERT_EQ(cap.n, 0);
	/* A fence wait with inner held: inner -> signalling. */
	lock(&inner, SITE(site_take_inner));
	hetmem_lockdep_might_wait_for(&signalling, SITE(site_fence_wait));
	ASSERT_FALSE(hetmem_lockdep_is_held(&signalling));
	unlock(&inner);
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("circular"));
	EXPECT_TRUE(captured("inner -> test_fence_map closes a cycle"));
	EXPECT_TRUE(captured("site_fence_wait"));
	EXPECT_TRUE(captured("site_begin_signalling"));
}

TEST_F(ld, wait_under_lock_then_signalling_is_a_cycle)
{
	lock(&inner, SITE(site_take_inner));
	hetmem_lockdep_might_wait_for(&signalling, SITE(site_fence_wait));
	unlock(&inner);
	ASSERT_EQ(cap.n, 0);
	lock_read(&signalling, SITE(site_begin_signalling));
	lock(&inner, SITE(site_take_inner));
	ASSERT_EQ(cap.n, 1);
	unlock(&inner);
	unlock(&signalling);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("test_fence_map (read) -> inner closes a cycle") ||
		    captured("test_fence_map -> inner closes a cycle"));
	EXPECT_TRUE(captured("site_fence_wait"));
	EXPECT_TRUE(captured("site_begin_signalling"));
}

TEST_F(ld, wait_inside_signalling_section_reported)
{
	lock_read(&signalling, SITE(site_begin_signalling));
	hetmem_lockdep_might_wait_for(&signalling, SITE(site_fence_wait));
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	TH_LOG("report:\n%s", cap.text);
	EXPECT_TRUE(captured("wait inside a signalling critical section"));
	EXPECT_TRUE(captured("site_begin_signalling"));
	EXPECT_TRUE(captured("site_fence_wait"));
	ASSERT_TRUE(hetmem_lockdep_is_held_read(&signalling));
	unlock(&signalling);
	/* Outside the section the same wait is fine. */
	hetmem_lockdep_might_wait_for(&signalling, SITE(site_fence_wait));
	ASSERT_EQ(cap.n, 1);
}

TEST(nested_signalling_is_silent)
{
	int i;

	hetmem_lockdep_set_enabled(true);
	for (i = 0; i < 100; i++) {
		lock_read(&signalling, SITE(site_begin_signalling));
		lock(&spin, SITE(site_take_spin));
		lock_read(&signalling, SITE(site_again));
		lock(&inner, SITE(site_take_inner));
		unlock(&inner);
		unlock(&signalling);
		unlock(&spin);
		unlock(&signalling);
	}
	hetmem_lockdep_might_wait_for(&signalling, SITE(site_fence_wait));
	ASSERT_EQ(hetmem_lockdep_report_count(), 0);
	ASSERT_EQ(hetmem_warn_count(), 0);
}

TEST_F(ld, disabled_checker_reports_nothing)
{
	hetmem_lockdep_set_enabled(false);
	ASSERT_FALSE(hetmem_lockdep_enabled());
	nest(&alpha, SITE(site_t1_take_alpha), &beta, SITE(site_t1_take_beta));
	nest(&beta, SITE(site_t2_take_beta), &alpha, SITE(site_t2_take_alpha));
	lock(&alpha, SITE(site_first));
	lock(&alpha, SITE(site_again));
	ASSERT_FALSE(hetmem_lockdep_is_held(&alpha));
	lock(&spin, SITE(site_take_spin));
	hetmem_might_sleep(SITE(site_sleep));
	hetmem_lockdep_release(&gamma_, SITE(site_release));
	ASSERT_EQ(cap.n, 0);
	ASSERT_EQ(new_reports(self), 0);

	/* Locks still held from the off period are released quietly. */
	hetmem_lockdep_set_enabled(true);
	ASSERT_TRUE(hetmem_lockdep_enabled());
	unlock(&spin);
	unlock(&alpha);
	unlock(&alpha);
	ASSERT_EQ(cap.n, 0);
	/* Nothing was learnt while off. */
	nest(&beta, SITE(site_t2_take_beta), &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 0);
}

TEST_F(ld, reset_forgets_edges)
{
	static const struct hetmem_lock_class_key key_a, key_b;
	struct hetmem_lockdep_map a, b;

	hetmem_lockdep_init_map(&a, "keyed_a", &key_a, 0);
	hetmem_lockdep_init_map(&b, "keyed_b", &key_b, 0);
	nest(&a, SITE(site_first), &b, SITE(site_again));
	nest(&alpha, SITE(site_t1_take_alpha), &beta, SITE(site_t1_take_beta));
	hetmem_lockdep_reset();
	nest(&b, SITE(site_again), &a, SITE(site_first));
	nest(&beta, SITE(site_t2_take_beta), &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 0);
	/* The graph works as before with the re-registered classes. */
	nest(&a, SITE(site_first), &b, SITE(site_again));
	ASSERT_EQ(cap.n, 1);
	EXPECT_TRUE(captured("keyed_a -> keyed_b closes a cycle"));
}

TEST_F(ld, reset_keeps_held_locks)
{
	lock(&alpha, SITE(site_t1_take_alpha));
	hetmem_lockdep_reset();
	lock(&beta, SITE(site_t1_take_beta));
	unlock(&beta);
	unlock(&alpha);
	ASSERT_EQ(cap.n, 0);
	nest(&beta, SITE(site_t2_take_beta), &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 1);
}

#define MANY 5000

static struct hetmem_lock_class_key many_keys[MANY];

TEST_F(ld, class_table_overflow_turns_checker_off)
{
	struct hetmem_lockdep_map map;
	int i;

	for (i = 0; i < MANY && hetmem_lockdep_enabled(); i++) {
		hetmem_lockdep_init_map(&map, "many", &many_keys[i], 0);
		lock(&map, SITE(site_first));
		unlock(&map);
	}
	ASSERT_FALSE(hetmem_lockdep_enabled());
	ASSERT_LT(i, MANY);
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 0);
	TH_LOG("%s", cap.text);
	EXPECT_TRUE(captured("turned off: class table full"));
	/* Off means off: no reports, no crash. */
	nest(&alpha, SITE(site_t1_take_alpha), &beta, SITE(site_t1_take_beta));
	nest(&beta, SITE(site_t2_take_beta), &alpha, SITE(site_t2_take_alpha));
	ASSERT_EQ(cap.n, 1);
	hetmem_lockdep_reset();
	ASSERT_TRUE(hetmem_lockdep_enabled());
}

TEST_F(ld, edge_table_overflow_turns_checker_off)
{
	struct hetmem_lockdep_map outer[9], map;
	int i;

	/* Nine held classes, nine edges per new class: edges run out first. */
	for (i = 0; i < 9; i++) {
		hetmem_lockdep_init_map(&outer[i], "outer",
					&many_keys[MANY - 1 - i], 0);
		lock(&outer[i], SITE(site_first));
	}
	for (i = 0; i < MANY - 9 && hetmem_lockdep_enabled(); i++) {
		hetmem_lockdep_init_map(&map, "leaf", &many_keys[i], 0);
		lock(&map, SITE(site_again));
		unlock(&map);
	}
	ASSERT_FALSE(hetmem_lockdep_enabled());
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 0);
	TH_LOG("%s", cap.text);
	EXPECT_TRUE(captured("turned off: dependency table full"));
	for (i = 0; i < 9; i++)
		unlock(&outer[i]);
	ASSERT_EQ(cap.n, 1);
	/* Back on after a reset, with a clean held stack. */
	hetmem_lockdep_reset();
	ASSERT_TRUE(hetmem_lockdep_enabled());
	ASSERT_FALSE(hetmem_lockdep_is_held(&outer[0]));
	nest(&alpha, SITE(site_t1_take_alpha), &beta, SITE(site_t1_take_beta));
	ASSERT_EQ(cap.n, 1);
}

TEST_F(ld, held_stack_overflow_warns_once)
{
	static const struct hetmem_lock_class_key keys[60];
	struct hetmem_lockdep_map maps[60];
	int i;

	for (i = 0; i < 60; i++) {
		hetmem_lockdep_init_map(&maps[i], "deep", &keys[i], 0);
		lock(&maps[i], SITE(site_first));
	}
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 0);
	EXPECT_TRUE(captured("not tracking deep"));
	for (i = 59; i >= 0; i--)
		unlock(&maps[i]);
	ASSERT_EQ(cap.n, 1);
	ASSERT_FALSE(hetmem_lockdep_is_held(&maps[0]));
}

static struct hetmem_lockdep_map *reentrant_map;

static void reentrant_handler(const char *msg, void *data)
{
	/* A handler that takes locks must not recurse into a report. */
	hetmem_lockdep_acquire(reentrant_map, 0, false, SITE(site_again));
	hetmem_lockdep_acquire(reentrant_map, 0, false, SITE(site_again));
	hetmem_might_sleep(SITE(site_sleep));
	hetmem_lockdep_release(reentrant_map, SITE(site_release));
	hetmem_lockdep_release(reentrant_map, SITE(site_release));
	hetmem_lockdep_release(reentrant_map, SITE(site_release));
	capture_warning(msg, data);
}

TEST_F(ld, warning_handler_may_take_locks)
{
	reentrant_map = &gamma_;
	hetmem_set_warn_handler(reentrant_handler, &cap);
	lock(&spin, SITE(site_take_spin));
	hetmem_might_sleep(SITE(site_sleep));
	unlock(&spin);
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
	ASSERT_FALSE(hetmem_lockdep_is_held(&gamma_));
}

TEST_F(ld, fork_child_keeps_graph_and_held_stack)
{
	pid_t pid;
	int status;

	nest(&alpha, SITE(site_t1_take_alpha), &beta, SITE(site_t1_take_beta));
	lock(&gamma_, SITE(site_take_gamma));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		bool ok;

		/* gamma is still held here, and alpha -> beta still known. */
		ok = hetmem_lockdep_is_held(&gamma_);
		unlock(&gamma_);
		nest(&beta, SITE(site_t2_take_beta),
		     &alpha, SITE(site_t2_take_alpha));
		ok = ok && cap.n == 1 && captured("circular");
		_exit(ok ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	unlock(&gamma_);
	ASSERT_EQ(cap.n, 0);
}

static bool hammer_stop;

static void *hammer_thread(void *arg)
{
	/* Keeps the checker's mutex busy, so that fork() can land on it. */
	while (!__atomic_load_n(&hammer_stop, __ATOMIC_RELAXED))
		hetmem_lockdep_set_enabled(true);
	return NULL;
}

TEST_F(ld, fork_never_inherits_a_locked_graph)
{
	static const struct hetmem_lock_class_key key;
	pthread_t th;
	int i, status;
	pid_t pid;

	ASSERT_EQ(pthread_create(&th, NULL, hammer_thread, NULL), 0);
	for (i = 0; i < 50; i++) {
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			struct hetmem_lockdep_map m;

			/* A new class and a new edge both need the mutex. */
			hetmem_lockdep_init_map(&m, "child", &key, 0);
			nest(&alpha, SITE(site_first), &m, SITE(site_again));
			_exit(hetmem_lockdep_is_held(&m) ? 1 : 0);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(WEXITSTATUS(status), 0);
	}
	__atomic_store_n(&hammer_stop, true, __ATOMIC_RELAXED);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(cap.n, 0);
}

#define THREADS 8
#define ROUNDS 4000

static const struct hetmem_lock_class_key shared_key;
static const struct hetmem_lock_class_key own_keys[THREADS];

struct worker {
	int id;
	struct hetmem_lockdep_map shared;	/* one class for all workers */
	struct hetmem_lockdep_map own;		/* a class per worker */
};

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	int i;

	hetmem_lockdep_init_map(&w->shared, "per_thread", &shared_key, 0);
	hetmem_lockdep_init_map(&w->own, "own", &own_keys[w->id], 0);
	for (i = 0; i < ROUNDS; i++) {
		lock_read(&signalling, SITE(site_begin_signalling));
		lock(&alpha, SITE(site_t1_take_alpha));
		lock(&w->shared, SITE(site_take_inner));
		hetmem_lockdep_acquire(&beta, 0, i & 1,
				       SITE(site_t1_take_beta));
		lock(&w->own, SITE(site_first));
		hetmem_might_sleep(SITE(site_sleep));
		unlock(&w->own);
		unlock(&beta);
		unlock(&w->shared);
		unlock(&alpha);
		unlock(&signalling);
		hetmem_lockdep_might_wait_for(&signalling,
					      SITE(site_fence_wait));
	}
	return NULL;
}

TEST_TIMEOUT(concurrent_consistent_order_is_silent, 120)
{
	static struct worker workers[THREADS];
	pthread_t th[THREADS];
	int i;

	/* HETMEM_WARN=fatal: any report aborts the case. */
	hetmem_lockdep_set_enabled(true);
	for (i = 0; i < THREADS; i++) {
		workers[i].id = i;
		ASSERT_EQ(pthread_create(&th[i], NULL, worker_thread,
					 &workers[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		ASSERT_EQ(pthread_join(th[i], NULL), 0);
	ASSERT_EQ(hetmem_lockdep_report_count(), 0);
	ASSERT_EQ(hetmem_warn_count(), 0);
}

TEST_F(ld, concurrent_abba_reported_once)
{
	pthread_t th[THREADS];
	struct nest_args args[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		bool flip = i & 1;

		args[i] = (struct nest_args){
			flip ? &beta : &alpha, flip ? &alpha : &beta,
			SITE(site_first), SITE(site_again),
		};
		ASSERT_EQ(pthread_create(&th[i], NULL, nest_thread, &args[i]),
			  0);
	}
	for (i = 0; i < THREADS; i++)
		ASSERT_EQ(pthread_join(th[i], NULL), 0);
	ASSERT_EQ(cap.n, 1);
	ASSERT_EQ(new_reports(self), 1);
}
