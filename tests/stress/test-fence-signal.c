/* SPDX-License-Identifier: MIT */
/*
 * hetmem - stress: many threads signalling and waiting on the same fences
 * (every wait flavour, with and without timeouts, wait_any over shared
 * fences, is_signaled polling), fences sharing one lock and fences with
 * their own, and dma_fence_get_rcu_safe() readers racing a writer that
 * swaps a shared slot and releases the old fences.
 *
 * Bounded by harness_duration_s(); meant to run clean under TSan too.
 */
#include <pthread.h>
#include <time.h>

#include <hetmem/fence/dma-fence.h>

#include "core/internal.h"
#include "harness.h"

static void shuffle(uint32_t *order, uint32_t n, uint32_t *seed)
{
	uint32_t i, j, t;

	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n - 1; i > 0; i--) {
		j = harness_rand(seed) % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
}

#define FENCE_MAGIC 0x46454e43u
#define FENCE_DEAD 0xdeadfe11u

struct sfence {
	struct dma_fence base;	/* first: dma_fence_free() frees the block */
	hetmem_spinlock_t lock;
	uint32_t magic;
};

static unsigned long created, released;

static const char *sf_name(struct dma_fence *f)
{
	return "stress";
}

static void sf_release(struct dma_fence *f)
{
	struct sfence *s = hetmem_container_of(f, struct sfence, base);

	/* Nobody may still hold a reference: poison, then free after RCU. */
	__atomic_store_n(&s->magic, FENCE_DEAD, __ATOMIC_RELAXED);
	__atomic_add_fetch(&released, 1, __ATOMIC_RELAXED);
	dma_fence_free(f);
}

static const struct dma_fence_ops sf_ops = {
	.get_driver_name = sf_name,
	.get_timeline_name = sf_name,
	.release = sf_release,
};

static struct dma_fence *sf_create(hetmem_spinlock_t *shared,
				   uint64_t context, uint64_t seqno)
{
	struct sfence *s = calloc(1, sizeof(*s));

	ASSERT_NONNULL(s);
	hetmem_spin_lock_init(&s->lock);
	s->magic = FENCE_MAGIC;
	dma_fence_init(&s->base, &sf_ops, shared ? shared : &s->lock,
		       context, seqno);
	__atomic_add_fetch(&created, 1, __ATOMIC_RELAXED);
	return &s->base;
}

static bool sf_alive(struct dma_fence *f)
{
	struct sfence *s = hetmem_container_of(f, struct sfence, base);

	return __atomic_load_n(&s->magic, __ATOMIC_RELAXED) == FENCE_MAGIC;
}

/* ------------------------------------------------------------------ */
/* signalling and waiting in rounds */

#define NF 32			/* fences per round */
#define SIGNALLERS 2		/* each signals every fence: one wins */
#define WAITERS 3
#define ANY_WAITERS 2
#define POLLERS 1
#define ANY_SET 4

enum wait_kind {
	WAIT_FOREVER,
	WAIT_LONG,
	WAIT_POLL_TIMEOUT,
	WAIT_INFINITE,
	WAIT_IS_SIGNALED,
	WAIT_KINDS,
};

struct sig_stress;

struct worker {
	struct sig_stress *st;
	int id;
	pthread_t th;
	uint32_t seed;
	/* results, read by main after join */
	unsigned long waits[WAIT_KINDS];
	unsigned long unsignalled;	/* waits that started before the signal */
	unsigned long timeouts;		/* short waits that timed out first */
	unsigned long any_waits;
	unsigned long any_polls;
	unsigned long signals_won;
	unsigned long signals_lost;
	unsigned long errors;		/* any violated expectation */
	char first_error[160];
};

struct sig_stress {
	bool shared_lock;
	hetmem_spinlock_t shared;
	uint64_t context;
	pthread_barrier_t start, done;
	int stop;
	struct dma_fence *f[NF];
	int wins[NF];			/* signal() calls that returned 0 */
	int seen[NF];			/* waiters that saw it signalled */
	struct worker sig[SIGNALLERS];
	struct worker wait[WAITERS];
	struct worker any[ANY_WAITERS];
	struct worker poll[POLLERS];
};

static void worker_error(struct worker *w, const char *what, long value)
{
	if (!w->errors++)
		snprintf(w->first_error, sizeof(w->first_error),
			 "%s (value %ld)", what, value);
}

/* Round loop shared by every role; @fn does one round's work. */
static void run_rounds(struct worker *w, void (*fn)(struct worker *w))
{
	struct sig_stress *st = w->st;

	for (;;) {
		pthread_barrier_wait(&st->start);
		if (__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE))
			break;
		fn(w);
		pthread_barrier_wait(&st->done);
	}
}

static int signal_one(struct worker *w, struct dma_fence *f, uint32_t how)
{
	int ret;

	switch (how % 4) {
	case 0:
		return dma_fence_signal(f);
	case 1:
		return dma_fence_signal_timestamp(f, hetmem_ktime_get());
	case 2:
		hetmem_spin_lock(f->lock);
		ret = dma_fence_signal_locked(f);
		hetmem_spin_unlock(f->lock);
		return ret;
	default:
		return dma_fence_check_and_signal(f) ? -EINVAL : 0;
	}
}

static void signaller_round(struct worker *w)
{
	struct sig_stress *st = w->st;
	uint32_t order[NF], i;

	/* Let the waiters go to sleep first, most of the time. */
	harness_sleep_us(100 + harness_rand(&w->seed) % 200);
	shuffle(order, NF, &w->seed);
	for (i = 0; i < NF; i++) {
		struct dma_fence *f = st->f[order[i]];
		int ret;

		if (harness_rand(&w->seed) % 8 == 0)
			harness_sleep_us(20);
		ret = signal_one(w, f, harness_rand(&w->seed));
		if (ret == 0) {
			w->signals_won++;
			__atomic_add_fetch(&st->wins[order[i]], 1,
					   __ATOMIC_RELAXED);
		} else if (ret == -EINVAL) {
			w->signals_lost++;
		} else {
			worker_error(w, "signal returned", ret);
		}
		if (!dma_fence_test_signaled_flag(f))
			worker_error(w, "unsignalled after signal", order[i]);
	}
}

static void *signaller(void *arg)
{
	run_rounds(arg, signaller_round);
	return NULL;
}

static void wait_one(struct worker *w, struct dma_fence *f, enum wait_kind k)
{
	long ret;

	w->unsignalled += !dma_fence_test_signaled_flag(f);
	switch (k) {
	case WAIT_FOREVER:
		ret = dma_fence_wait_timeout(f, false,
					     HETMEM_MAX_SCHEDULE_TIMEOUT);
		if (ret != HETMEM_MAX_SCHEDULE_TIMEOUT)
			worker_error(w, "wait forever returned", ret);
		break;
	case WAIT_LONG:
		ret = dma_fence_wait_timeout(f, w->id & 1, 60000);
		if (ret <= 0 || ret > 60000)
			worker_error(w, "long wait returned", ret);
		break;
	case WAIT_POLL_TIMEOUT:
		while ((ret = dma_fence_wait_timeout(f, false, 1)) == 0)
			w->timeouts++;
		if (ret < 0 || ret > 1)
			worker_error(w, "1-jiffy wait returned", ret);
		break;
	case WAIT_INFINITE:
		ret = dma_fence_wait(f, true);
		if (ret)
			worker_error(w, "dma_fence_wait returned", ret);
		break;
	default:
		while (!dma_fence_is_signaled(f))
			sched_yield();
		break;
	}
	if (!dma_fence_test_signaled_flag(f))
		worker_error(w, "wait returned before the signal", k);
	if (dma_fence_get_status(f) != 1)
		worker_error(w, "status after wait", dma_fence_get_status(f));
	w->waits[k]++;
}

static void waiter_round(struct worker *w)
{
	struct sig_stress *st = w->st;
	uint32_t order[NF], i;

	shuffle(order, NF, &w->seed);
	for (i = 0; i < NF; i++) {
		wait_one(w, st->f[order[i]],
			 (enum wait_kind)((w->id + i) % WAIT_KINDS));
		__atomic_add_fetch(&st->seen[order[i]], 1, __ATOMIC_RELAXED);
	}
}

static void *waiter(void *arg)
{
	run_rounds(arg, waiter_round);
	return NULL;
}

static void any_round(struct worker *w)
{
	struct sig_stress *st = w->st;
	struct dma_fence *set[ANY_SET];
	uint32_t i, j, idx;
	long ret;

	for (i = 0; i < NF / ANY_SET; i++) {
		for (j = 0; j < ANY_SET; j++)
			set[j] = st->f[harness_rand(&w->seed) % NF];
		idx = ANY_SET;
		if (harness_rand(&w->seed) & 1) {
			ret = dma_fence_wait_any_timeout(set, ANY_SET, false,
					HETMEM_MAX_SCHEDULE_TIMEOUT, &idx);
			if (ret != HETMEM_MAX_SCHEDULE_TIMEOUT)
				worker_error(w, "wait_any forever returned", ret);
		} else {
			while ((ret = dma_fence_wait_any_timeout(set, ANY_SET,
								 true, 2,
								 &idx)) == 0)
				w->timeouts++;
			if (ret < 0 || ret > 2)
				worker_error(w, "wait_any 2 returned", ret);
		}
		if (idx >= ANY_SET) {
			worker_error(w, "wait_any idx", idx);
			continue;
		}
		if (!dma_fence_test_signaled_flag(set[idx]))
			worker_error(w, "wait_any idx not signalled", idx);
		w->any_waits++;
	}
	/* Finally all of them, which must all be signalled eventually. */
	for (i = 0; i < NF; i++) {
		ret = dma_fence_wait_any_timeout(&st->f[i], 1, false, 60000,
						 &idx);
		if (ret <= 0 || idx != 0)
			worker_error(w, "wait_any single", ret);
	}
}

static void *any_waiter(void *arg)
{
	run_rounds(arg, any_round);
	return NULL;
}

static void poll_round(struct worker *w)
{
	struct sig_stress *st = w->st;
	uint32_t left = NF, i, idx;
	bool done[NF] = { false };

	while (left) {
		for (i = 0; i < NF; i++) {
			if (done[i] || !dma_fence_is_signaled(st->f[i]))
				continue;
			done[i] = true;
			left--;
		}
		if (dma_fence_wait_any_timeout(st->f, NF, false, 0, &idx) == 1 &&
		    !dma_fence_test_signaled_flag(st->f[idx]))
			worker_error(w, "poll idx not signalled", idx);
		w->any_polls++;
		sched_yield();
	}
}

static void *poller(void *arg)
{
	run_rounds(arg, poll_round);
	return NULL;
}

FIXTURE(rounds) {
	struct sig_stress st;
};

FIXTURE_VARIANT(rounds) {
	bool shared_lock;
};

FIXTURE_VARIANT_ADD(rounds, shared_lock) { .shared_lock = true };
FIXTURE_VARIANT_ADD(rounds, own_locks) { .shared_lock = false };

FIXTURE_SETUP(rounds)
{
	self->st.shared_lock = variant->shared_lock;
	hetmem_spin_lock_init(&self->st.shared);
	self->st.context = dma_fence_context_alloc(1);
}

FIXTURE_TEARDOWN(rounds)
{
}

static void start_workers(struct sig_stress *st, struct worker *w, int n,
			  int base_id, void *(*fn)(void *))
{
	int i;

	for (i = 0; i < n; i++) {
		w[i].st = st;
		w[i].id = base_id + i;
		w[i].seed = 0x9e3779b9u * (uint32_t)(base_id + i + 1);
		ASSERT_EQ(pthread_create(&w[i].th, NULL, fn, &w[i]), 0);
	}
}

static void check_workers(struct worker *w, int n, const char *role)
{
	int i;

	for (i = 0; i < n; i++) {
		pthread_join(w[i].th, NULL);
		if (w[i].errors)
			TH_LOG("%s %d: %lu errors, first: %s", role, i,
			       w[i].errors, w[i].first_error);
		EXPECT_EQ(w[i].errors, 0);
	}
}

TEST_F_TIMEOUT(rounds, signal_and_wait, 120)
{
	struct sig_stress *st = &self->st;
	int64_t end = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	int threads = SIGNALLERS + WAITERS + ANY_WAITERS + POLLERS + 1;
	unsigned long rounds = 0, waits[WAIT_KINDS] = { 0 }, won = 0, lost = 0;
	unsigned long any = 0, timeouts = 0, seqno = 0, unsignalled = 0;
	unsigned long created0 = created;
	int i, k;

	ASSERT_EQ(pthread_barrier_init(&st->start, NULL, threads), 0);
	ASSERT_EQ(pthread_barrier_init(&st->done, NULL, threads), 0);
	start_workers(st, st->sig, SIGNALLERS, 0, signaller);
	start_workers(st, st->wait, WAITERS, 10, waiter);
	start_workers(st, st->any, ANY_WAITERS, 20, any_waiter);
	start_workers(st, st->poll, POLLERS, 30, poller);

	do {
		for (i = 0; i < NF; i++) {
			st->f[i] = sf_create(st->shared_lock ? &st->shared : NULL,
					     st->context, ++seqno);
			st->wins[i] = 0;
			st->seen[i] = 0;
		}
		pthread_barrier_wait(&st->start);
		pthread_barrier_wait(&st->done);
		for (i = 0; i < NF; i++) {
			ASSERT_EQ(st->wins[i], 1);
			ASSERT_EQ(st->seen[i], WAITERS);
			ASSERT_TRUE(hetmem_list_empty(&st->f[i]->cb_list));
			ASSERT_EQ(hetmem_kref_read(&st->f[i]->refcount), 1);
			dma_fence_put(st->f[i]);
		}
		rounds++;
	} while (harness_now_ms() < end);
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	pthread_barrier_wait(&st->start);

	check_workers(st->sig, SIGNALLERS, "signaller");
	check_workers(st->wait, WAITERS, "waiter");
	check_workers(st->any, ANY_WAITERS, "wait_any");
	check_workers(st->poll, POLLERS, "poller");
	pthread_barrier_destroy(&st->start);
	pthread_barrier_destroy(&st->done);

	for (i = 0; i < SIGNALLERS; i++) {
		won += st->sig[i].signals_won;
		lost += st->sig[i].signals_lost;
	}
	for (i = 0; i < WAITERS; i++) {
		for (k = 0; k < WAIT_KINDS; k++)
			waits[k] += st->wait[i].waits[k];
		timeouts += st->wait[i].timeouts;
		unsignalled += st->wait[i].unsignalled;
	}
	for (i = 0; i < ANY_WAITERS; i++)
		any += st->any[i].any_waits;
	TH_LOG("%lu rounds, %lu signals won, %lu lost, waits %lu/%lu/%lu/%lu/%lu "
	       "(%lu before the signal, %lu short timeouts), %lu wait_any",
	       rounds, won, lost, waits[0], waits[1], waits[2], waits[3],
	       waits[4], unsignalled, timeouts, any);
	/* Counts add up: one winner per fence, every waiter saw every fence. */
	ASSERT_EQ(won, rounds * NF);
	ASSERT_EQ(lost, rounds * NF * (SIGNALLERS - 1));
	ASSERT_EQ(waits[0] + waits[1] + waits[2] + waits[3] + waits[4],
		  rounds * NF * WAITERS);
	ASSERT_EQ(any, rounds * (NF / ANY_SET) * ANY_WAITERS);
	/* The stress did exercise sleeping waiters. */
	ASSERT_GT(unsignalled, 0);
	hetmem_rcu_barrier();
	ASSERT_EQ(released, created);
	ASSERT_EQ(created - created0, rounds * NF);
}

/* ------------------------------------------------------------------ */
/* get_rcu_safe readers against a writer swapping the slot */

#define READERS 3

struct slot_stress {
	struct dma_fence *slot;
	hetmem_spinlock_t shared;
	int stop;
	unsigned long swaps;
};

struct reader {
	struct slot_stress *ss;
	pthread_t th;
	uint32_t seed;
	unsigned long gets;
	unsigned long saw_signalled;
	unsigned long errors;
	char first_error[160];
};

static void reader_error(struct reader *r, const char *what, long value)
{
	if (!r->errors++)
		snprintf(r->first_error, sizeof(r->first_error),
			 "%s (value %ld)", what, value);
}

static void *slot_reader(void *arg)
{
	struct reader *r = arg;
	struct slot_stress *ss = r->ss;

	while (!__atomic_load_n(&ss->stop, __ATOMIC_ACQUIRE)) {
		struct dma_fence *f;
		long ret;

		hetmem_rcu_read_lock();
		f = dma_fence_get_rcu_safe(&ss->slot);
		hetmem_rcu_read_unlock();
		if (!f) {
			reader_error(r, "empty slot", 0);
			continue;
		}
		r->gets++;
		if (!sf_alive(f))
			reader_error(r, "got a released fence", 0);
		if (hetmem_kref_read(&f->refcount) < 1)
			reader_error(r, "refcount",
				     hetmem_kref_read(&f->refcount));
		switch (harness_rand(&r->seed) % 4) {
		case 0:
			/* The writer signals each fence once it replaced it. */
			ret = dma_fence_wait_timeout(f, false, 60000);
			if (ret <= 0)
				reader_error(r, "wait", ret);
			r->saw_signalled++;
			break;
		case 1:
			ret = dma_fence_wait_timeout(f, true, 0);
			if (ret < 0 || ret > 1)
				reader_error(r, "poll", ret);
			r->saw_signalled += ret == 1;
			break;
		default:
			r->saw_signalled += dma_fence_is_signaled(f);
			break;
		}
		if (!sf_alive(f))
			reader_error(r, "fence released under a reference", 0);
		dma_fence_put(f);
	}
	return NULL;
}

FIXTURE(slot) {
	struct slot_stress ss;
};

FIXTURE_VARIANT(slot) {
	bool shared_lock;
};

FIXTURE_VARIANT_ADD(slot, shared_lock) { .shared_lock = true };
FIXTURE_VARIANT_ADD(slot, own_locks) { .shared_lock = false };

FIXTURE_SETUP(slot)
{
	hetmem_spin_lock_init(&self->ss.shared);
}

FIXTURE_TEARDOWN(slot)
{
}

TEST_F_TIMEOUT(slot, get_rcu_safe_vs_swapping_writer, 120)
{
	struct slot_stress *ss = &self->ss;
	hetmem_spinlock_t *lock = variant->shared_lock ? &ss->shared : NULL;
	int64_t end = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	uint64_t ctx = dma_fence_context_alloc(1), seqno = 1;
	struct reader r[READERS] = { { 0 } };
	unsigned long gets = 0, created0 = created;
	int i;

	ss->slot = sf_create(lock, ctx, seqno);
	for (i = 0; i < READERS; i++) {
		r[i].ss = ss;
		r[i].seed = 0x2545f491u * (uint32_t)(i + 1);
		ASSERT_EQ(pthread_create(&r[i].th, NULL, slot_reader, &r[i]), 0);
	}
	while (harness_now_ms() < end) {
		struct dma_fence *old, *new = sf_create(lock, ctx, ++seqno);

		/* Publish the new fence, then finish and drop the old one. */
		old = __atomic_exchange_n(&ss->slot, new, __ATOMIC_ACQ_REL);
		ASSERT_EQ(dma_fence_signal(old), 0);
		dma_fence_put(old);
		ss->swaps++;
		if ((ss->swaps & 63) == 0)
			sched_yield();
	}
	__atomic_store_n(&ss->stop, 1, __ATOMIC_RELEASE);
	/* A reader may be waiting for the last fence. */
	ASSERT_EQ(dma_fence_signal(ss->slot), 0);
	for (i = 0; i < READERS; i++) {
		pthread_join(r[i].th, NULL);
		if (r[i].errors)
			TH_LOG("reader %d: %lu errors, first: %s", i,
			       r[i].errors, r[i].first_error);
		EXPECT_EQ(r[i].errors, 0);
		gets += r[i].gets;
	}
	TH_LOG("%lu swaps, %lu gets", ss->swaps, gets);
	ASSERT_GT(ss->swaps, 0);
	ASSERT_GT(gets, 0);
	dma_fence_put(ss->slot);
	hetmem_rcu_barrier();
	ASSERT_EQ(created - created0, ss->swaps + 1);
	ASSERT_EQ(released, created);
}
