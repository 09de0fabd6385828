/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the reader-preferring read/write semaphore.
 */
#include <pthread.h>
#include <sched.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/core/rwsem.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/core/warn.h>

#include "harness.h"

/* Long enough for a thread that could wrongly get in to have done so. */
#define SETTLE_MS 50

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

/*
 * A helper thread that takes @sem in one mode on request, reports that it
 * holds it, and releases it when told to.
 */
enum { ST_IDLE, ST_TRYING, ST_HOLDING, ST_RELEASE, ST_DONE };

struct holder {
	struct hetmem_rw_semaphore *sem;
	bool write;
	bool trylock;
	int state;
	int got;		/* trylock result */
	pthread_t th;
};

static void *holder_thread(void *arg)
{
	struct holder *h = arg;

	__atomic_store_n(&h->state, ST_TRYING, __ATOMIC_RELEASE);
	if (h->trylock)
		h->got = h->write ? hetmem_down_write_trylock(h->sem) :
				    hetmem_down_read_trylock(h->sem);
	else if (h->write)
		hetmem_down_write(h->sem);
	else
		hetmem_down_read(h->sem);
	if (!h->trylock)
		h->got = 1;
	__atomic_store_n(&h->state, ST_HOLDING, __ATOMIC_RELEASE);
	while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != ST_RELEASE)
		harness_sleep_ms(1);
	if (h->got && h->write)
		hetmem_up_write(h->sem);
	else if (h->got)
		hetmem_up_read(h->sem);
	__atomic_store_n(&h->state, ST_DONE, __ATOMIC_RELEASE);
	return NULL;
}

static void holder_start(struct holder *h, struct hetmem_rw_semaphore *sem,
			 bool write, bool trylock)
{
	memset(h, 0, sizeof(*h));
	h->sem = sem;
	h->write = write;
	h->trylock = trylock;
	ASSERT_EQ(pthread_create(&h->th, NULL, holder_thread, h), 0);
}

static bool holder_holding(struct holder *h, long ms)
{
	return harness_wait_int(&h->state, ST_HOLDING, ms);
}

static void holder_finish(struct holder *h)
{
	__atomic_store_n(&h->state, ST_RELEASE, __ATOMIC_RELEASE);
	ASSERT_EQ(pthread_join(h->th, NULL), 0);
	ASSERT_EQ(h->state, ST_DONE);
}

TEST(init_and_static_initialiser)
{
	static struct hetmem_rw_semaphore s = HETMEM_RWSEM_INIT(static_sem);
	struct hetmem_rw_semaphore sem;

	memset(&sem, 0xa5, sizeof(sem));
	hetmem_init_rwsem(&sem);
	ASSERT_STREQ(sem.dep_map.name, "&sem");
	ASSERT_EQ(sem.dep_map.flags, 0);
	ASSERT_EQ(sem.count, 0);
	ASSERT_EQ(sem.waiters, 0);
	ASSERT_EQ(sem.owner, 0);
	ASSERT_FALSE(hetmem_rwsem_is_locked(&sem));
	ASSERT_STREQ(s.dep_map.name, "static_sem");
	hetmem_down_write(&s);
	ASSERT_EQ(s.count, HETMEM_RWSEM_WRITER);
	ASSERT_NE(s.owner, 0);
	hetmem_up_write(&s);
	ASSERT_EQ(s.owner, 0);
	hetmem_down_read(&s);
	ASSERT_EQ(s.count, 1);
	ASSERT_TRUE(hetmem_rwsem_is_locked(&s));
	hetmem_up_read(&s);
	ASSERT_FALSE(hetmem_rwsem_is_locked(&s));
}

TEST(readers_share)
{
	struct hetmem_rw_semaphore sem;
	struct holder a, b;

	hetmem_init_rwsem(&sem);
	holder_start(&a, &sem, false, false);
	holder_start(&b, &sem, false, false);
	/* Both hold the read side at the same time. */
	ASSERT_TRUE(holder_holding(&a, 5000));
	ASSERT_TRUE(holder_holding(&b, 5000));
	ASSERT_EQ(__atomic_load_n(&sem.count, __ATOMIC_RELAXED), 2);
	/* And the main thread can join them. */
	hetmem_down_read(&sem);
	ASSERT_EQ(__atomic_load_n(&sem.count, __ATOMIC_RELAXED), 3);
	hetmem_up_read(&sem);
	holder_finish(&a);
	holder_finish(&b);
	ASSERT_FALSE(hetmem_rwsem_is_locked(&sem));
}

TEST(recursive_read_in_one_thread)
{
	struct hetmem_rw_semaphore sem;

	/* HETMEM_WARN=fatal: a recursion report would abort the case. */
	hetmem_init_rwsem(&sem);
	hetmem_down_read(&sem);
	hetmem_down_read(&sem);
	ASSERT_TRUE(hetmem_down_read_trylock(&sem));
	ASSERT_EQ(sem.count, 3);
	hetmem_up_read(&sem);
	hetmem_up_read(&sem);
	hetmem_up_read(&sem);
	ASSERT_EQ(sem.count, 0);
	ASSERT_EQ(hetmem_lockdep_report_count(), 0);
}

TEST(trylock_semantics)
{
	struct hetmem_rw_semaphore sem;
	struct holder h;

	hetmem_init_rwsem(&sem);
	/* Free: both trylocks succeed. */
	ASSERT_TRUE(hetmem_down_write_trylock(&sem));
	ASSERT_EQ(sem.count, HETMEM_RWSEM_WRITER);
	hetmem_up_write(&sem);
	ASSERT_TRUE(hetmem_down_read_trylock(&sem));
	hetmem_up_read(&sem);

	/* Held for writing elsewhere: neither succeeds. */
	holder_start(&h, &sem, true, false);
	ASSERT_TRUE(holder_holding(&h, 5000));
	ASSERT_FALSE(hetmem_down_read_trylock(&sem));
	ASSERT_FALSE(hetmem_down_write_trylock(&sem));
	ASSERT_TRUE(hetmem_rwsem_is_locked(&sem));
	holder_finish(&h);

	/* Held for reading elsewhere: reads succeed, writes do not. */
	holder_start(&h, &sem, false, false);
	ASSERT_TRUE(holder_holding(&h, 5000));
	ASSERT_FALSE(hetmem_down_write_trylock(&sem));
	ASSERT_TRUE(hetmem_down_read_trylock(&sem));
	ASSERT_EQ(sem.count, 2);
	hetmem_up_read(&sem);
	holder_finish(&h);
	ASSERT_EQ(sem.count, 0);
}

/* @blocked must not get @sem while @holder has it, then must get it. */
static void check_blocks_until_release(struct holder *holder,
				       struct holder *blocked)
{
	ASSERT_TRUE(harness_wait_int(&blocked->state, ST_TRYING, 5000));
	ASSERT_TRUE(wait_u32(&holder->sem->waiters, 1, 5000));
	harness_sleep_ms(SETTLE_MS);
	ASSERT_EQ(__atomic_load_n(&blocked->state, __ATOMIC_ACQUIRE),
		  ST_TRYING);
	holder_finish(holder);
	ASSERT_TRUE(holder_holding(blocked, 5000));
	holder_finish(blocked);
}

TEST(writer_excludes_readers)
{
	struct hetmem_rw_semaphore sem;
	struct holder w, r;

	hetmem_init_rwsem(&sem);
	holder_start(&w, &sem, true, false);
	ASSERT_TRUE(holder_holding(&w, 5000));
	holder_start(&r, &sem, false, false);
	check_blocks_until_release(&w, &r);
	ASSERT_EQ(sem.count, 0);
}

TEST(writer_excludes_writers)
{
	struct hetmem_rw_semaphore sem;
	struct holder w1, w2;

	hetmem_init_rwsem(&sem);
	holder_start(&w1, &sem, true, false);
	ASSERT_TRUE(holder_holding(&w1, 5000));
	holder_start(&w2, &sem, true, false);
	check_blocks_until_release(&w1, &w2);
	ASSERT_EQ(sem.count, 0);
}

TEST(readers_exclude_writer)
{
	struct hetmem_rw_semaphore sem;
	struct holder r, w;

	hetmem_init_rwsem(&sem);
	holder_start(&r, &sem, false, false);
	ASSERT_TRUE(holder_holding(&r, 5000));
	holder_start(&w, &sem, true, false);
	check_blocks_until_release(&r, &w);
	ASSERT_EQ(sem.count, 0);
}

/*
 * A holds the read side, W waits for the write side: another reader B is
 * still admitted, by trylock and by a blocking down_read. W gets in only
 * once every reader has left.
 */
TEST(reader_preference)
{
	struct hetmem_rw_semaphore sem;
	struct holder a, w, b, c;

	hetmem_init_rwsem(&sem);
	holder_start(&a, &sem, false, false);
	ASSERT_TRUE(holder_holding(&a, 5000));
	holder_start(&w, &sem, true, false);
	ASSERT_TRUE(harness_wait_int(&w.state, ST_TRYING, 5000));
	ASSERT_TRUE(wait_u32(&sem.waiters, 1, 5000));	/* W asleep */

	holder_start(&b, &sem, false, true);
	ASSERT_TRUE(holder_holding(&b, 5000));
	ASSERT_TRUE(b.got);
	holder_start(&c, &sem, false, false);
	ASSERT_TRUE(holder_holding(&c, 5000));
	ASSERT_EQ(__atomic_load_n(&sem.count, __ATOMIC_RELAXED), 3);

	holder_finish(&a);
	holder_finish(&b);
	harness_sleep_ms(SETTLE_MS);
	ASSERT_EQ(__atomic_load_n(&w.state, __ATOMIC_ACQUIRE), ST_TRYING);
	holder_finish(&c);
	ASSERT_TRUE(holder_holding(&w, 5000));
	ASSERT_EQ(__atomic_load_n(&sem.count, __ATOMIC_RELAXED),
		  HETMEM_RWSEM_WRITER);
	holder_finish(&w);
}

/* --- stress: counters checked inside the critical sections ------------- */

#define STRESS_THREADS 4

struct stress {
	struct hetmem_rw_semaphore sem;
	int64_t end_ms;
	unsigned long value;	/* written under the write side only */
	unsigned long shadow;	/* likewise; readers check they agree */
	int readers_inside;
	int writers_inside;
	int violations;
	int progress;
	int finished;
};

struct stress_thread {
	struct stress *s;
	uint32_t rng;
	unsigned long reads, writes;
	pthread_t th;
};

static void stress_note(struct stress *s, bool bad)
{
	if (bad)
		__atomic_add_fetch(&s->violations, 1, __ATOMIC_RELAXED);
}

static void stress_read(struct stress_thread *t)
{
	struct stress *s = t->s;

	hetmem_down_read(&s->sem);
	__atomic_add_fetch(&s->readers_inside, 1, __ATOMIC_RELAXED);
	stress_note(s, __atomic_load_n(&s->writers_inside, __ATOMIC_RELAXED));
	stress_note(s, s->value != s->shadow);
	if ((t->reads & 31) == 0)
		sched_yield();
	__atomic_sub_fetch(&s->readers_inside, 1, __ATOMIC_RELAXED);
	hetmem_up_read(&s->sem);
	t->reads++;
}

static void stress_write(struct stress_thread *t)
{
	struct stress *s = t->s;
	if (harness_rand(&t->rng) & 1) {
		if (!hetmem_down_write_trylock(&s->sem))
			return;
	} else {
		hetmem_down_write(&s->sem);
	}
	stress_note(s, __atomic_fetch_add(&s->writers_inside, 1,
					  __ATOMIC_RELAXED) != 0);
	stress_note(s, __atomic_load_n(&s->readers_inside, __ATOMIC_RELAXED));
	s->value++;
	if ((t->writes & 7) == 0)
		sched_yield();
	s->shadow++;
	__atomic_sub_fetch(&s->writers_inside, 1, __ATOMIC_RELAXED);
	hetmem_up_write(&s->sem);
	t->writes++;
}

static void *stress_worker(void *arg)
{
	struct stress_thread *t = arg;
	struct stress *s = t->s;
	int i;

	while (harness_now_ms() < s->end_ms) {
		for (i = 0; i < 32; i++) {
			if (harness_rand(&t->rng) % 4 == 0)
				stress_write(t);
			else
				stress_read(t);
		}
		__atomic_add_fetch(&s->progress, 1, __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(&s->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A lost wake-up stalls every thread: report that, not a timeout. */
static void stress_watch(struct stress *s)
{
	int last = -1, stalled = 0, p;

	while (__atomic_load_n(&s->finished, __ATOMIC_ACQUIRE) <
	       STRESS_THREADS) {
		p = __atomic_load_n(&s->progress, __ATOMIC_RELAXED);
		stalled = p == last ? stalled + 1 : 0;
		last = p;
		ASSERT_LT(stalled, 500);
		harness_sleep_ms(10);
	}
}

TEST(stress_exclusion)
{
	static struct stress s;
	struct stress_thread t[STRESS_THREADS];
	unsigned long reads = 0, writes = 0;
	int i;

	hetmem_init_rwsem(&s.sem);
	s.end_ms = harness_now_ms() + 1000;
	for (i = 0; i < STRESS_THREADS; i++) {
		t[i] = (struct stress_thread){ .s = &s, .rng = 0x1234u + i };
		ASSERT_EQ(pthread_create(&t[i].th, NULL, stress_worker, &t[i]),
			  0);
	}
	stress_watch(&s);
	for (i = 0; i < STRESS_THREADS; i++) {
		ASSERT_EQ(pthread_join(t[i].th, NULL), 0);
		reads += t[i].reads;
		writes += t[i].writes;
	}
	TH_LOG("%lu reads, %lu writes", reads, writes);
	ASSERT_EQ(s.violations, 0);
	ASSERT_GT(reads, 0);
	ASSERT_GT(writes, 0);
	ASSERT_EQ(s.value, writes);
	ASSERT_EQ(s.shadow, writes);
	ASSERT_EQ(s.sem.count, 0);
	ASSERT_EQ(s.sem.waiters, 0);
}

/* --- lock-dependency reports -------------------------------------------- */

/* Warnings seen by the handler; it runs under the warning mutex. */
struct capture {
	unsigned int n;
	size_t len;
	char text[16384];
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

/* Cases that provoke reports: warnings captured instead of fatal. */
FIXTURE(ld) {
	unsigned long reports;
};

FIXTURE_SETUP(ld)
{
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	memset(&cap, 0, sizeof(cap));
	hetmem_set_warn_handler(capture_warning, &cap);
	hetmem_lockdep_set_enabled(true);
	hetmem_lockdep_reset();
	self->reports = hetmem_lockdep_report_count();
}

FIXTURE_TEARDOWN(ld)
{
	hetmem_set_warn_handler(NULL, NULL);
}

struct order_args {
	struct hetmem_rw_semaphore *sem;
	struct hetmem_mutex *mutex;
	bool sem_first;
};

static void *order_thread(void *arg)
{
	struct order_args *a = arg;

	if (a->sem_first) {
		hetmem_down_write(a->sem);
		hetmem_mutex_lock(a->mutex);
		hetmem_mutex_unlock(a->mutex);
		hetmem_up_write(a->sem);
	} else {
		hetmem_mutex_lock(a->mutex);
		hetmem_down_write(a->sem);
		hetmem_up_write(a->sem);
		hetmem_mutex_unlock(a->mutex);
	}
	return NULL;
}

static void take_in_order(struct order_args *a)
{
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, order_thread, a), 0);
	ASSERT_EQ(pthread_join(th, NULL), 0);
}

TEST_F(ld, abba_write_side_and_mutex_reported)
{
	static struct hetmem_rw_semaphore sem;
	static struct hetmem_mutex mutex;
	struct order_args a = { &sem, &mutex, true };

	hetmem_init_rwsem(&sem);
	hetmem_mutex_init(&mutex);
	take_in_order(&a);
	ASSERT_EQ(cap.n, 0);
	ASSERT_EQ(hetmem_lockdep_report_count(), self->reports);
	a.sem_first = false;
	take_in_order(&a);
	TH_LOG("report:\n%s", cap.text);
	ASSERT_EQ(hetmem_lockdep_report_count() - self->reports, 1);
	ASSERT_EQ(cap.n, 1);
	EXPECT_TRUE(strstr(cap.text, "circular") != NULL);
	EXPECT_TRUE(strstr(cap.text, "&sem") != NULL);
	EXPECT_TRUE(strstr(cap.text, "&mutex") != NULL);
}

TEST_F(ld, write_trylock_under_read_fails_quietly)
{
	static struct hetmem_rw_semaphore sem;

	hetmem_init_rwsem(&sem);
	hetmem_down_read(&sem);
	/* A trylock cannot deadlock: it must fail, and quietly. */
	ASSERT_FALSE(hetmem_down_write_trylock(&sem));
	ASSERT_EQ(cap.n, 0);
	hetmem_up_read(&sem);
	hetmem_down_write(&sem);
	hetmem_up_write(&sem);
	ASSERT_EQ(cap.n, 0);
	ASSERT_EQ(hetmem_lockdep_report_count(), self->reports);
}

TEST_F(ld, might_sleep_under_spinlock_reported)
{
	static struct hetmem_rw_semaphore sem;
	static hetmem_spinlock_t spin;

	hetmem_init_rwsem(&sem);
	hetmem_spin_lock_init(&spin);
	hetmem_spin_lock(&spin);
	hetmem_down_read(&sem);
	hetmem_up_read(&sem);
	hetmem_spin_unlock(&spin);
	TH_LOG("report:\n%s", cap.text);
	ASSERT_GE(hetmem_lockdep_report_count() - self->reports, 1);
	EXPECT_TRUE(strstr(cap.text, "atomic context") != NULL);
}
