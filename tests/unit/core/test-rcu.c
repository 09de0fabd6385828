/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the RCU wrapper: read-side sections, grace
 * periods, deferred callbacks, barriers and fork.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include <hetmem/core/rcu.h>
#include <hetmem/core/time.h>

#include "core/internal.h"
#include "harness.h"

struct obj {
	int value;
	int *freed;		/* set by the callback before free() */
	struct hetmem_rcu_head rcu;
};

static void obj_free_rcu(struct hetmem_rcu_head *head)
{
	struct obj *o = hetmem_container_of(head, struct obj, rcu);

	__atomic_store_n(o->freed, 1, __ATOMIC_RELEASE);
	/* Poison first, so a reader that still looks sees garbage. */
	o->value = -1;
	free(o);
}

static struct obj *obj_new(int value, int *freed)
{
	struct obj *o = calloc(1, sizeof(*o));

	ASSERT_NONNULL(o);
	o->value = value;
	o->freed = freed;
	return o;
}

TEST(read_lock_nests)
{
	ASSERT_FALSE(hetmem_rcu_read_ongoing());
	hetmem_rcu_read_lock();
	ASSERT_TRUE(hetmem_rcu_read_ongoing());
	hetmem_rcu_read_lock();
	ASSERT_TRUE(hetmem_rcu_read_ongoing());
	hetmem_rcu_read_unlock();
	ASSERT_TRUE(hetmem_rcu_read_ongoing());
	hetmem_rcu_read_unlock();
	ASSERT_FALSE(hetmem_rcu_read_ongoing());
}

static void *ongoing_thread(void *arg)
{
	*(int *)arg = hetmem_rcu_read_ongoing();
	return NULL;
}

TEST(read_section_is_per_thread)
{
	pthread_t th;
	int other = -1;

	hetmem_rcu_read_lock();
	ASSERT_EQ(pthread_create(&th, NULL, ongoing_thread, &other), 0);
	pthread_join(th, NULL);
	hetmem_rcu_read_unlock();
	ASSERT_EQ(other, 0);
}

/*
 * A reader enters its section and picks up the published pointer; the
 * updater replaces it and hands the old object to call_rcu. The callback
 * must wait for the reader, which keeps using the object meanwhile.
 */
struct replace_ctx {
	struct obj *slot;
	int inside;		/* reader holds a pointer */
	int may_leave;		/* updater has queued and checked */
	int seen_value;
	int freed_while_inside;
	int freed;
};

static void *long_reader(void *arg)
{
	struct replace_ctx *c = arg;
	struct obj *o;

	hetmem_rcu_read_lock();
	o = __atomic_load_n(&c->slot, __ATOMIC_ACQUIRE);
	__atomic_store_n(&c->inside, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&c->may_leave, __ATOMIC_ACQUIRE))
		harness_sleep_ms(1);
	/* Give a broken grace period time to free it under us. */
	harness_sleep_ms(20);
	c->freed_while_inside = __atomic_load_n(&c->freed, __ATOMIC_ACQUIRE);
	c->seen_value = o->value;
	hetmem_rcu_read_unlock();
	return NULL;
}

TEST(call_rcu_waits_for_readers)
{
	struct replace_ctx c = { 0 };
	struct obj *old, *new;
	pthread_t th;

	old = obj_new(1, &c.freed);
	c.slot = old;
	ASSERT_EQ(pthread_create(&th, NULL, long_reader, &c), 0);
	ASSERT_TRUE(harness_wait_int(&c.inside, 1, 5000));

	new = obj_new(2, &c.freed);
	__atomic_store_n(&c.slot, new, __ATOMIC_RELEASE);
	hetmem_call_rcu(&old->rcu, obj_free_rcu);
	/* The reader is still inside: the callback must wait. */
	harness_sleep_ms(50);
	ASSERT_EQ(__atomic_load_n(&c.freed, __ATOMIC_ACQUIRE), 0);
	__atomic_store_n(&c.may_leave, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ASSERT_EQ(c.freed_while_inside, 0);
	ASSERT_EQ(c.seen_value, 1);
	/* After the reader left, the callback runs. */
	ASSERT_TRUE(harness_wait_int(&c.freed, 1, 10000));
	hetmem_rcu_barrier();
	free(new);
}

static void *timed_reader(void *arg)
{
	int *state = arg;

	hetmem_rcu_read_lock();
	__atomic_store_n(state, 1, __ATOMIC_RELEASE);
	harness_sleep_ms(100);
	__atomic_store_n(state, 2, __ATOMIC_RELEASE);
	hetmem_rcu_read_unlock();
	return NULL;
}

TEST(synchronize_rcu_waits_for_readers)
{
	int state = 0;
	int64_t t0;
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, timed_reader, &state), 0);
	ASSERT_TRUE(harness_wait_int(&state, 1, 5000));
	hetmem_synchronize_rcu();
	/* The reader must have left its section before this returned. */
	ASSERT_EQ(__atomic_load_n(&state, __ATOMIC_ACQUIRE), 2);
	pthread_join(th, NULL);
	/* Without readers it returns promptly. */
	t0 = harness_now_ms();
	hetmem_synchronize_rcu();
	ASSERT_LT(harness_now_ms() - t0, 2000);
}

struct counted_head {
	struct hetmem_rcu_head rcu;
	int *count;
};

static void count_cb(struct hetmem_rcu_head *head)
{
	struct counted_head *c = hetmem_container_of(head, struct counted_head,
						     rcu);

	__atomic_add_fetch(c->count, 1, __ATOMIC_RELAXED);
	free(c);
}

static void queue_counted(int *count)
{
	struct counted_head *c = calloc(1, sizeof(*c));

	ASSERT_NONNULL(c);
	c->count = count;
	hetmem_call_rcu(&c->rcu, count_cb);
}

TEST(rcu_barrier_runs_every_queued_callback)
{
	int count = 0, i;

	for (i = 0; i < 1000; i++)
		queue_counted(&count);
	hetmem_rcu_barrier();
	ASSERT_EQ(__atomic_load_n(&count, __ATOMIC_RELAXED), 1000);
	/* Nothing queued: the barrier returns at once. */
	hetmem_rcu_barrier();
	ASSERT_EQ(__atomic_load_n(&count, __ATOMIC_RELAXED), 1000);
}

TEST(call_rcu_inside_read_section)
{
	int count = 0;

	hetmem_rcu_read_lock();
	queue_counted(&count);
	queue_counted(&count);
	hetmem_rcu_read_unlock();
	hetmem_rcu_barrier();
	ASSERT_EQ(count, 2);
}

#define QUEUE_THREADS 4
#define QUEUE_EACH 2000

static void *queue_thread(void *arg)
{
	int i;

	for (i = 0; i < QUEUE_EACH; i++) {
		hetmem_rcu_read_lock();
		queue_counted(arg);
		hetmem_rcu_read_unlock();
	}
	return NULL;
}

TEST(call_rcu_from_many_threads)
{
	pthread_t th[QUEUE_THREADS];
	int count = 0, i;

	for (i = 0; i < QUEUE_THREADS; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, queue_thread, &count), 0);
	for (i = 0; i < QUEUE_THREADS; i++)
		pthread_join(th[i], NULL);
	hetmem_rcu_barrier();
	ASSERT_EQ(__atomic_load_n(&count, __ATOMIC_RELAXED),
		  QUEUE_THREADS * QUEUE_EACH);
}

/* Queues @n callbacks, waits for them, and checks the running count. */
static bool call_and_barrier(int *count, int n, int want)
{
	int i;

	for (i = 0; i < n; i++) {
		struct counted_head *c = calloc(1, sizeof(*c));

		if (!c)
			return false;
		c->count = count;
		hetmem_call_rcu(&c->rcu, count_cb);
	}
	hetmem_rcu_barrier();
	return __atomic_load_n(count, __ATOMIC_RELAXED) == want;
}

TEST(fork_after_call_rcu)
{
	int count = 0, ws;
	pid_t pid;

	/* The parent's call_rcu worker exists before the fork. */
	ASSERT_TRUE(call_and_barrier(&count, 10, 10));
	/* One more is still queued (or running) while we fork. */
	queue_counted(&count);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		bool ok;

		/*
		 * The worker thread did not survive the fork; RCU must work
		 * anyway, including the callback queued before the fork.
		 */
		ok = call_and_barrier(&count, 10, 21);
		hetmem_rcu_read_lock();
		hetmem_rcu_read_unlock();
		hetmem_synchronize_rcu();
		ok = ok && call_and_barrier(&count, 5, 26);
		_exit(ok ? 0 : 1);
	}
	ASSERT_TRUE(call_and_barrier(&count, 10, 21));
	hetmem_synchronize_rcu();
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	ASSERT_TRUE(WIFEXITED(ws));
	ASSERT_EQ(WEXITSTATUS(ws), 0);
	ASSERT_TRUE(call_and_barrier(&count, 5, 26));
}

static void *reader_loop(void *arg)
{
	int *stop = arg;

	while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
		hetmem_rcu_read_lock();
		hetmem_rcu_read_unlock();
	}
	return NULL;
}

TEST(fork_with_reader_threads)
{
	int count = 0, stop = 0, ws;
	pthread_t th;
	pid_t pid;

	ASSERT_EQ(pthread_create(&th, NULL, reader_loop, &stop), 0);
	ASSERT_TRUE(call_and_barrier(&count, 3, 3));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The reader thread is gone here: no reader to wait for. */
		hetmem_synchronize_rcu();
		_exit(call_and_barrier(&count, 3, 6) ? 0 : 1);
	}
	ASSERT_TRUE(call_and_barrier(&count, 3, 6));
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	ASSERT_TRUE(WIFEXITED(ws));
	ASSERT_EQ(WEXITSTATUS(ws), 0);
}
