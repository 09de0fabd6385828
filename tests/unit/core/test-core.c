/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the core helpers: lists, reference counts, time
 * and jiffies, thread ids and the WARN machinery.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <hetmem/core/kref.h>
#include <hetmem/core/list.h>
#include <hetmem/core/time.h>
#include <hetmem/core/warn.h>

#include "core/internal.h"
#include "harness.h"

/* ------------------------------------------------------------------ */
/* lists */

struct item {
	int value;
	struct hetmem_list_head node;
};

/* Walks @head forwards and backwards and checks it holds exactly @want. */
static void check_list(struct hetmem_list_head *head, const int *want,
		       int n)
{
	struct hetmem_list_head *pos;
	int i = 0;

	for (pos = head->next; pos != head; pos = pos->next) {
		ASSERT_LT(i, n);
		ASSERT_EQ(hetmem_list_entry(pos, struct item, node)->value,
			  want[i]);
		ASSERT_TRUE(pos->next->prev == pos);
		i++;
	}
	ASSERT_EQ(i, n);
	for (pos = head->prev; pos != head; pos = pos->prev) {
		i--;
		ASSERT_EQ(hetmem_list_entry(pos, struct item, node)->value,
			  want[i]);
	}
	ASSERT_EQ(i, 0);
	ASSERT_EQ(hetmem_list_empty(head), n == 0);
}

TEST(list_init_is_empty)
{
	struct hetmem_list_head head = HETMEM_LIST_HEAD_INIT(head);
	struct hetmem_list_head node;

	ASSERT_TRUE(hetmem_list_empty(&head));
	ASSERT_TRUE(head.next == &head && head.prev == &head);
	node.next = node.prev = NULL;
	hetmem_list_init(&node);
	ASSERT_TRUE(hetmem_list_empty(&node));
	ASSERT_TRUE(node.next == &node && node.prev == &node);
}

TEST(list_add_and_add_tail_order)
{
	struct hetmem_list_head head;
	struct item it[4] = { { .value = 0 }, { .value = 1 },
			      { .value = 2 }, { .value = 3 } };
	static const int want[] = { 1, 0, 2, 3 };

	hetmem_list_init(&head);
	hetmem_list_add(&it[0].node, &head);
	hetmem_list_add(&it[1].node, &head);	/* at the head */
	hetmem_list_add_tail(&it[2].node, &head);
	hetmem_list_add_tail(&it[3].node, &head);
	check_list(&head, want, 4);
	ASSERT_EQ(hetmem_list_first_entry(&head, struct item, node)->value, 1);
	ASSERT_FALSE(hetmem_list_empty(&it[2].node));
}

TEST(list_del_init_leaves_node_unqueued)
{
	struct hetmem_list_head head;
	struct item it[3] = { { .value = 10 }, { .value = 11 },
			      { .value = 12 } };
	static const int want_mid[] = { 10, 12 };
	static const int want_one[] = { 12 };
	int i;

	hetmem_list_init(&head);
	for (i = 0; i < 3; i++)
		hetmem_list_add_tail(&it[i].node, &head);
	hetmem_list_del_init(&it[1].node);
	ASSERT_TRUE(hetmem_list_empty(&it[1].node));
	check_list(&head, want_mid, 2);
	hetmem_list_del_init(&it[0].node);
	check_list(&head, want_one, 1);
	hetmem_list_del_init(&it[2].node);
	check_list(&head, NULL, 0);
	ASSERT_TRUE(hetmem_list_empty(&it[0].node));
	ASSERT_TRUE(hetmem_list_empty(&it[2].node));
}

TEST(list_replace_init_moves_everything)
{
	struct hetmem_list_head from, to;
	struct item it[3] = { { .value = 5 }, { .value = 6 }, { .value = 7 } };
	static const int want[] = { 5, 6, 7 };
	int i;

	hetmem_list_init(&from);
	/* An empty source gives an initialised, empty destination. */
	to.next = to.prev = NULL;
	hetmem_list_replace_init(&from, &to);
	check_list(&to, NULL, 0);
	check_list(&from, NULL, 0);

	for (i = 0; i < 3; i++)
		hetmem_list_add_tail(&it[i].node, &from);
	to.next = to.prev = NULL;
	hetmem_list_replace_init(&from, &to);
	check_list(&from, NULL, 0);
	check_list(&to, want, 3);
}

TEST(list_for_each_safe_allows_deletion)
{
	struct hetmem_list_head head, *pos, *n;
	struct item it[6];
	static const int want[] = { 1, 3, 5 };
	int i, visited = 0;

	hetmem_list_init(&head);
	for (i = 0; i < 6; i++) {
		it[i].value = i;
		hetmem_list_add_tail(&it[i].node, &head);
	}
	hetmem_list_for_each_safe(pos, n, &head) {
		struct item *e = hetmem_list_entry(pos, struct item, node);

		ASSERT_EQ(e->value, visited);
		visited++;
		if (e->value % 2 == 0)
			hetmem_list_del_init(pos);
	}
	ASSERT_EQ(visited, 6);
	check_list(&head, want, 3);
}

TEST(container_of_recovers_outer)
{
	struct item it = { .value = 42 };

	ASSERT_TRUE(hetmem_container_of(&it.node, struct item, node) == &it);
	ASSERT_TRUE(hetmem_list_entry(&it.node, struct item, node) == &it);
}

/* ------------------------------------------------------------------ */
/* kref */

struct counted {
	struct hetmem_kref ref;
	int released;
};

static void counted_release(struct hetmem_kref *ref)
{
	struct counted *c = hetmem_container_of(ref, struct counted, ref);

	__atomic_add_fetch(&c->released, 1, __ATOMIC_RELAXED);
}

TEST(kref_get_put_release_once)
{
	struct counted c = { .released = 0 };

	hetmem_kref_init(&c.ref);
	ASSERT_EQ(hetmem_kref_read(&c.ref), 1);
	hetmem_kref_get(&c.ref);
	hetmem_kref_get(&c.ref);
	ASSERT_EQ(hetmem_kref_read(&c.ref), 3);
	ASSERT_FALSE(hetmem_kref_put(&c.ref, counted_release));
	ASSERT_FALSE(hetmem_kref_put(&c.ref, counted_release));
	ASSERT_EQ(c.released, 0);
	ASSERT_EQ(hetmem_kref_read(&c.ref), 1);
	ASSERT_TRUE(hetmem_kref_put(&c.ref, counted_release));
	ASSERT_EQ(c.released, 1);
	ASSERT_EQ(hetmem_kref_read(&c.ref), 0);
}

TEST(kref_get_unless_zero)
{
	struct counted c = { .released = 0 };

	hetmem_kref_init(&c.ref);
	ASSERT_TRUE(hetmem_kref_get_unless_zero(&c.ref));
	ASSERT_EQ(hetmem_kref_read(&c.ref), 2);
	ASSERT_FALSE(hetmem_kref_put(&c.ref, counted_release));
	ASSERT_TRUE(hetmem_kref_put(&c.ref, counted_release));
	/* A dead object cannot be resurrected. */
	ASSERT_FALSE(hetmem_kref_get_unless_zero(&c.ref));
	ASSERT_EQ(hetmem_kref_read(&c.ref), 0);
	ASSERT_EQ(c.released, 1);
}

#define KREF_THREADS 4
#define KREF_ROUNDS 100000

static void *kref_worker(void *arg)
{
	struct counted *c = arg;
	int i;

	for (i = 0; i < KREF_ROUNDS; i++) {
		if (i & 1) {
			hetmem_kref_get(&c->ref);
		} else if (!hetmem_kref_get_unless_zero(&c->ref)) {
			/* The test holds a reference: this cannot fail. */
			__atomic_add_fetch(&c->released, 1000, __ATOMIC_RELAXED);
			continue;
		}
		hetmem_kref_put(&c->ref, counted_release);
	}
	return NULL;
}

TEST(kref_concurrent_get_put)
{
	struct counted c = { .released = 0 };
	pthread_t th[KREF_THREADS];
	int i;

	hetmem_kref_init(&c.ref);
	for (i = 0; i < KREF_THREADS; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, kref_worker, &c), 0);
	for (i = 0; i < KREF_THREADS; i++)
		pthread_join(th[i], NULL);
	ASSERT_EQ(c.released, 0);
	ASSERT_EQ(hetmem_kref_read(&c.ref), 1);
	ASSERT_TRUE(hetmem_kref_put(&c.ref, counted_release));
	ASSERT_EQ(c.released, 1);
}

/* ------------------------------------------------------------------ */
/* time */

static int64_t raw_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

TEST(time_constants)
{
	ASSERT_EQ(HETMEM_HZ, 1000);
	ASSERT_EQ(HETMEM_NSEC_PER_SEC, 1000000000);
	ASSERT_EQ(HETMEM_NSEC_PER_JIFFY, 1000000);
	ASSERT_EQ(HETMEM_MAX_SCHEDULE_TIMEOUT, LONG_MAX);
}

TEST(time_nsecs_to_jiffies_rounds_up)
{
	ASSERT_EQ(hetmem_nsecs_to_jiffies(0), 0);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(-1), 0);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(INT64_MIN), 0);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(1), 1);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(999999), 1);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(1000000), 1);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(1000001), 2);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(2500000000LL), 2500);
	/* No overflow at the top of the range: ceil(INT64_MAX / 10^6). */
	ASSERT_EQ(hetmem_nsecs_to_jiffies(INT64_MAX), 9223372036855L);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(INT64_MAX - 775807), 9223372036854L);
	ASSERT_EQ(hetmem_nsecs_to_jiffies(INT64_MAX - 775806), 9223372036855L);
}

TEST(time_usecs_msecs_to_jiffies)
{
	ASSERT_EQ(hetmem_usecs_to_jiffies(0), 0);
	ASSERT_EQ(hetmem_usecs_to_jiffies(1), 1);
	ASSERT_EQ(hetmem_usecs_to_jiffies(999), 1);
	ASSERT_EQ(hetmem_usecs_to_jiffies(1000), 1);
	ASSERT_EQ(hetmem_usecs_to_jiffies(1001), 2);
	ASSERT_EQ(hetmem_usecs_to_jiffies(UINT32_MAX), 4294968L);
	ASSERT_EQ(hetmem_msecs_to_jiffies(0), 0);
	ASSERT_EQ(hetmem_msecs_to_jiffies(1), 1);
	ASSERT_EQ(hetmem_msecs_to_jiffies(1234), 1234);
	ASSERT_EQ(hetmem_msecs_to_jiffies(UINT32_MAX), 4294967295L);
}

TEST(time_jiffies_to_msecs_nsecs)
{
	ASSERT_EQ(hetmem_jiffies_to_msecs(0), 0);
	ASSERT_EQ(hetmem_jiffies_to_msecs(1), 1);
	ASSERT_EQ(hetmem_jiffies_to_msecs(86400000UL), 86400000U);
	ASSERT_EQ(hetmem_jiffies_to_nsecs(0), 0);
	ASSERT_EQ(hetmem_jiffies_to_nsecs(1), 1000000);
	ASSERT_EQ(hetmem_jiffies_to_nsecs(3000), 3000000000LL);
	/* Round trips are exact on whole jiffies. */
	ASSERT_EQ(hetmem_nsecs_to_jiffies(hetmem_jiffies_to_nsecs(777)), 777);
	ASSERT_EQ(hetmem_msecs_to_jiffies(hetmem_jiffies_to_msecs(777)), 777);
}

TEST(time_ktime_is_clock_monotonic)
{
	int64_t before, now, after, prev;
	unsigned long j;
	int i;

	before = raw_monotonic_ns();
	now = hetmem_ktime_get();
	after = raw_monotonic_ns();
	ASSERT_LE(before, now);
	ASSERT_LE(now, after);

	before = raw_monotonic_ns();
	j = hetmem_jiffies();
	after = raw_monotonic_ns();
	ASSERT_GE((int64_t)j, before / 1000000);
	ASSERT_LE((int64_t)j, after / 1000000);

	prev = hetmem_ktime_get();
	for (i = 0; i < 100000; i++) {
		now = hetmem_ktime_get();
		ASSERT_GE(now, prev);
		prev = now;
	}
}

TEST(time_ktime_advances_with_sleep)
{
	struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
	int64_t t0, t1;
	unsigned long j0, j1;

	t0 = hetmem_ktime_get();
	j0 = hetmem_jiffies();
	nanosleep(&ts, NULL);
	t1 = hetmem_ktime_get();
	j1 = hetmem_jiffies();
	ASSERT_GE(t1 - t0, 20 * 1000 * 1000);
	ASSERT_GE(j1 - j0, 19);
}

TEST(time_timeout_deadline_conversions)
{
	int64_t before, after, d;
	long left;

	ASSERT_EQ(hetmem_timeout_to_deadline(HETMEM_MAX_SCHEDULE_TIMEOUT), -1);
	ASSERT_EQ(hetmem_deadline_to_timeout(-1), HETMEM_MAX_SCHEDULE_TIMEOUT);

	before = hetmem_ktime_get();
	d = hetmem_timeout_to_deadline(0);
	after = hetmem_ktime_get();
	ASSERT_GE(d, before);
	ASSERT_LE(d, after);

	before = hetmem_ktime_get();
	d = hetmem_timeout_to_deadline(250);
	after = hetmem_ktime_get();
	ASSERT_GE(d, before + 250000000LL);
	ASSERT_LE(d, after + 250000000LL);

	left = hetmem_deadline_to_timeout(hetmem_ktime_get() + 100000000LL);
	ASSERT_GE(left, 99);
	ASSERT_LE(left, 100);
	/* A waiter whose condition came true gets at least one jiffy. */
	ASSERT_EQ(hetmem_deadline_to_timeout(hetmem_ktime_get()), 1);
	ASSERT_EQ(hetmem_deadline_to_timeout(0), 1);
	ASSERT_EQ(hetmem_deadline_to_timeout(hetmem_ktime_get() - 1000000000LL), 1);
}

TEST(time_huge_timeout_does_not_overflow)
{
	int64_t now = hetmem_ktime_get(), d;

	/* Not "forever", but far beyond what fits in ns from now. */
	d = hetmem_timeout_to_deadline(HETMEM_MAX_SCHEDULE_TIMEOUT - 1);
	ASSERT_GT(d, now);
	ASSERT_GT(hetmem_deadline_to_timeout(d), 1000000000L);
	d = hetmem_timeout_to_deadline(INT64_MAX / 1000000);
	ASSERT_GT(d, now);
	/* Callers reject negative timeouts; the conversion must not overflow. */
	d = hetmem_timeout_to_deadline(LONG_MIN);
	ASSERT_GE(d, now);
	ASSERT_LE(d, hetmem_ktime_get());
}

/* ------------------------------------------------------------------ */
/* thread ids */

static void *tid_worker(void *arg)
{
	int *tid = arg;

	*tid = hetmem_gettid();
	return NULL;
}

TEST(gettid_per_thread_and_after_fork)
{
	pthread_t th;
	int other = 0, ws;
	pid_t pid;

	ASSERT_EQ(hetmem_gettid(), (int)syscall(SYS_gettid));
	ASSERT_EQ(hetmem_gettid(), hetmem_gettid());
	ASSERT_EQ(pthread_create(&th, NULL, tid_worker, &other), 0);
	pthread_join(th, NULL);
	ASSERT_NE(other, 0);
	ASSERT_NE(other, hetmem_gettid());

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The cached id must have been refreshed in the child. */
		_exit(hetmem_gettid() == (int)getpid() &&
		      hetmem_gettid() == (int)syscall(SYS_gettid) ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	ASSERT_TRUE(WIFEXITED(ws));
	ASSERT_EQ(WEXITSTATUS(ws), 0);
}

/* ------------------------------------------------------------------ */
/* warnings */

struct capture {
	pthread_mutex_t lock;
	int calls;
	char last[8192];
	size_t last_len;
};

static void capture_handler(const char *msg, void *data)
{
	struct capture *cap = data;

	pthread_mutex_lock(&cap->lock);
	cap->calls++;
	cap->last_len = strlen(msg);
	snprintf(cap->last, sizeof(cap->last), "%s", msg);
	pthread_mutex_unlock(&cap->lock);
}

static struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };

TEST(warn_mode_set_get)
{
	/* The harness runs cases with HETMEM_WARN=fatal. */
	ASSERT_EQ(hetmem_get_warn_mode(), HETMEM_WARN_FATAL);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	ASSERT_EQ(hetmem_get_warn_mode(), HETMEM_WARN_SILENT);
	hetmem_set_warn_mode(HETMEM_WARN_LOG);
	ASSERT_EQ(hetmem_get_warn_mode(), HETMEM_WARN_LOG);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	ASSERT_EQ(hetmem_get_warn_mode(), HETMEM_WARN_FATAL);
}

TEST(warn_on_evaluates_condition_and_counts)
{
	unsigned long base;
	int side = 0;

	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	base = hetmem_warn_count();
	ASSERT_FALSE(HETMEM_WARN_ON(side != 0));
	ASSERT_EQ(hetmem_warn_count(), base);
	ASSERT_TRUE(HETMEM_WARN_ON(side == 0));
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	/* The condition is evaluated exactly once. */
	ASSERT_TRUE(HETMEM_WARN_ON(++side == 1));
	ASSERT_EQ(side, 1);
	ASSERT_EQ(hetmem_warn_count(), base + 2);
	ASSERT_FALSE(HETMEM_WARN(side == 5, "never %d", side));
	ASSERT_TRUE(HETMEM_WARN(side == 1, "side is %d", side));
	ASSERT_EQ(hetmem_warn_count(), base + 3);
}

TEST(warn_handler_sees_formatted_text)
{
	unsigned long base;
	int line;

	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	hetmem_set_warn_handler(capture_handler, &cap);
	base = hetmem_warn_count();
	line = __LINE__ + 1;
	HETMEM_WARN(true, "value %d and %s", 17, "text");
	ASSERT_EQ(hetmem_warn_count(), base + 1);
	ASSERT_EQ(cap.calls, 1);
	ASSERT_NONNULL(strstr(cap.last, "value 17 and text"));
	ASSERT_NONNULL(strstr(cap.last, "test-core.c"));
	ASSERT_NONNULL(strstr(cap.last, __func__));
	{
		char where[64];

		snprintf(where, sizeof(where), "test-core.c:%d", line);
		ASSERT_NONNULL(strstr(cap.last, where));
	}

	HETMEM_WARN_ON(line > 0);
	ASSERT_EQ(cap.calls, 2);
	ASSERT_NONNULL(strstr(cap.last, "WARN_ON(line > 0)"));

	/* Removing the handler stops delivery but not counting. */
	hetmem_set_warn_handler(NULL, NULL);
	HETMEM_WARN_ON(1);
	ASSERT_EQ(cap.calls, 2);
	ASSERT_EQ(hetmem_warn_count(), base + 3);
}

TEST(warn_long_message_is_truncated)
{
	char big[10000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	hetmem_set_warn_handler(capture_handler, &cap);
	HETMEM_WARN(true, "%s", big);
	ASSERT_EQ(cap.calls, 1);
	ASSERT_GT(cap.last_len, 100);
	ASSERT_LT(cap.last_len, 4096);
	ASSERT_EQ(cap.last[cap.last_len - 1], 'x');
	hetmem_set_warn_handler(NULL, NULL);
}

/* Returns what was written to stderr while @fn ran. */
static size_t capture_stderr(void (*fn)(void), char *buf, size_t size)
{
	char path[] = "/tmp/hetmem-test-core-XXXXXX";
	int fd, saved;
	ssize_t n;

	fd = mkstemp(path);
	ASSERT_GE(fd, 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	ASSERT_GE(saved, 0);
	ASSERT_EQ(dup2(fd, 2), 2);
	fn();
	fflush(stderr);
	ASSERT_EQ(dup2(saved, 2), 2);
	close(saved);
	n = pread(fd, buf, size - 1, 0);
	close(fd);
	ASSERT_GE(n, 0);
	buf[n] = '\0';
	return (size_t)n;
}

static void warn_once_marker(void)
{
	HETMEM_WARN(true, "marker-%d", 4711);
}

TEST(warn_log_mode_prints_silent_does_not)
{
	char buf[8192];
	unsigned long base = hetmem_warn_count();

	hetmem_set_warn_mode(HETMEM_WARN_LOG);
	capture_stderr(warn_once_marker, buf, sizeof(buf));
	ASSERT_NONNULL(strstr(buf, "marker-4711\n"));
	ASSERT_NONNULL(strstr(buf, "WARNING"));
	ASSERT_EQ(hetmem_warn_count(), base + 1);

	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	ASSERT_EQ(capture_stderr(warn_once_marker, buf, sizeof(buf)), 0);
	ASSERT_EQ(hetmem_warn_count(), base + 2);
}

TEST(warn_fatal_mode_aborts)
{
	int ws, devnull;
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct sigaction sa = { .sa_handler = SIG_DFL };

		devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 2);
		sigaction(SIGABRT, &sa, NULL);
		hetmem_set_warn_mode(HETMEM_WARN_FATAL);
		HETMEM_WARN_ON(1);
		_exit(3);	/* not reached when fatal works */
	}
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(ws));
	ASSERT_EQ(WTERMSIG(ws), SIGABRT);
}

#define WARN_THREADS 4
#define WARN_EACH 2000

static void *warn_worker(void *arg)
{
	int i;

	for (i = 0; i < WARN_EACH; i++)
		HETMEM_WARN(true, "thread warning %d", i);
	return NULL;
}

TEST(warn_concurrent_count_is_exact)
{
	pthread_t th[WARN_THREADS];
	unsigned long base;
	int i;

	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	hetmem_set_warn_handler(capture_handler, &cap);
	base = hetmem_warn_count();
	for (i = 0; i < WARN_THREADS; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, warn_worker, NULL), 0);
	for (i = 0; i < WARN_THREADS; i++)
		pthread_join(th[i], NULL);
	ASSERT_EQ(hetmem_warn_count(), base + WARN_THREADS * WARN_EACH);
	ASSERT_EQ(cap.calls, WARN_THREADS * WARN_EACH);
	hetmem_set_warn_handler(NULL, NULL);
}
