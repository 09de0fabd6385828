/* SPDX-License-Identifier: MIT */
/*
 * hetmem - stress: threads adding and removing fence callbacks while other
 * threads signal the same fences. Every callback must end up exactly one
 * of "ran once", "removed" or "refused (-ENOENT)": never two of them,
 * never none, never twice. Callbacks own a fence reference they drop
 * themselves, so a lost or doubled callback also shows up as a wrong
 * release count, and a release with callbacks pending would be a warning
 * (fatal in the test run).
 *
 * Bounded by harness_duration_s(); meant to run clean under TSan too.
 */
#include <pthread.h>
#include <time.h>

#include <hetmem/fence/dma-fence.h>

#include "core/internal.h"
#include "harness.h"
#include "mock-fence.h"

/* Counted, so that the end can prove every fence was released once. */
static struct dma_fence *cf_create(hetmem_spinlock_t *shared, uint64_t ctx,
				   uint64_t seqno)
{
	return mock_fence_create_on(MOCK_FENCE_COUNTED, shared, ctx, seqno);
}

#define NF 16			/* fences per round */
#define ADDERS 3
#define SIGNALLERS 2
#define PER_FENCE 4		/* callbacks per fence per adder */

enum outcome { PENDING, RAN, REMOVED, REFUSED };

struct tcb {
	struct dma_fence_cb cb;
	struct dma_fence *fence;	/* the reference the callback owns */
	int calls;
	int bad_context;		/* ran unlocked, unsignalled or queued */
	int add_ret;
	int removed;			/* remove_callback() said true */
};

struct cb_stress;

struct adder {
	struct cb_stress *cs;
	int id;
	pthread_t th;
	uint32_t seed;
	struct tcb cbs[NF][PER_FENCE];
	unsigned long queued, refused, removed, remove_late;
};

struct signaller {
	struct cb_stress *cs;
	int id;
	pthread_t th;
	uint32_t seed;
	unsigned long won;
	unsigned long errors;
};

struct cb_stress {
	pthread_barrier_t start, done;
	int stop;
	struct dma_fence *f[NF];
	struct adder add[ADDERS];
	struct signaller sig[SIGNALLERS];
};

static void tcb_func(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct tcb *t = hetmem_container_of(cb, struct tcb, cb);

	if (f != t->fence || !hetmem_spin_is_held(f->lock) ||
	    !dma_fence_test_signaled_flag(f) || !hetmem_list_empty(&cb->node))
		__atomic_add_fetch(&t->bad_context, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&t->calls, 1, __ATOMIC_RELAXED);
	/* The callback owns a reference; the signaller holds its own. */
	dma_fence_put(f);
}

static void add_one(struct adder *a, struct tcb *t, struct dma_fence *f)
{
	*t = (struct tcb){ .fence = dma_fence_get(f) };
	t->add_ret = dma_fence_add_callback(f, &t->cb, tcb_func);
	if (t->add_ret) {
		/* Refused: the reference stays with us. */
		dma_fence_put(f);
		a->refused++;
	} else {
		a->queued++;
	}
}

static void remove_one(struct adder *a, struct tcb *t)
{
	t->removed = dma_fence_remove_callback(t->fence, &t->cb);
	if (t->removed) {
		/* It will never run: drop the reference it owned. */
		dma_fence_put(t->fence);
		a->removed++;
	} else if (!t->add_ret) {
		a->remove_late++;
	}
}

/*
 * Adds PER_FENCE callbacks to each fence in turn and cancels about a third
 * of them one fence later, so that cancellations race the signallers.
 */
static void adder_round(struct adder *a)
{
	struct cb_stress *cs = a->cs;
	uint32_t i, j;

	for (i = 0; i <= NF; i++) {
		for (j = 0; i < NF && j < PER_FENCE; j++) {
			add_one(a, &a->cbs[i][j], cs->f[(i + a->id) % NF]);
			/* Spread the round out so the signallers overlap it. */
			if (harness_rand(&a->seed) % 8 == 0)
				harness_sleep_us(harness_rand(&a->seed) % 16);
		}
		for (j = 0; i > 0 && j < PER_FENCE; j++) {
			if (harness_rand(&a->seed) % 3 == 0)
				remove_one(a, &a->cbs[i - 1][j]);
		}
	}
}

static void *adder_thread(void *arg)
{
	struct adder *a = arg;
	struct cb_stress *cs = a->cs;

	for (;;) {
		pthread_barrier_wait(&cs->start);
		if (__atomic_load_n(&cs->stop, __ATOMIC_ACQUIRE))
			break;
		adder_round(a);
		pthread_barrier_wait(&cs->done);
	}
	return NULL;
}

static void signaller_round(struct signaller *s)
{
	struct cb_stress *cs = s->cs;
	uint32_t i, start = harness_rand(&s->seed) % NF;
	int ret;

	/* Start a little later, so some callbacks are added first. */
	harness_sleep_us(harness_rand(&s->seed) % 60);
	for (i = 0; i < NF; i++) {
		struct dma_fence *f = cs->f[(start + i) % NF];

		if (harness_rand(&s->seed) % 4 == 0)
			harness_sleep_us(10);
		if (harness_rand(&s->seed) & 1) {
			ret = dma_fence_signal(f);
		} else {
			hetmem_spin_lock(f->lock);
			ret = dma_fence_signal_locked(f);
			hetmem_spin_unlock(f->lock);
		}
		if (ret == 0)
			s->won++;
		else if (ret != -EINVAL)
			s->errors++;
	}
}

static void *signaller_thread(void *arg)
{
	struct signaller *s = arg;
	struct cb_stress *cs = s->cs;

	for (;;) {
		pthread_barrier_wait(&cs->start);
		if (__atomic_load_n(&cs->stop, __ATOMIC_ACQUIRE))
			break;
		signaller_round(s);
		pthread_barrier_wait(&cs->done);
	}
	return NULL;
}

/* What became of one callback; PENDING means an impossible combination. */
static enum outcome classify(const struct tcb *t)
{
	int calls = __atomic_load_n(&t->calls, __ATOMIC_RELAXED);

	if (__atomic_load_n(&t->bad_context, __ATOMIC_RELAXED))
		return PENDING;
	if (t->add_ret == -ENOENT)
		return calls || t->removed ? PENDING : REFUSED;
	if (t->add_ret)
		return PENDING;		/* -EINVAL: cannot happen here */
	if (t->removed)
		return calls ? PENDING : REMOVED;
	return calls == 1 ? RAN : PENDING;
}

/* Classifies every callback of the round; returns the number of bad ones. */
static unsigned long check_round(struct cb_stress *cs, unsigned long *out)
{
	unsigned long bad = 0;
	int a, i;

	for (a = 0; a < ADDERS; a++) {
		for (i = 0; i < NF * PER_FENCE; i++) {
			const struct tcb *t = &cs->add[a].cbs[i / PER_FENCE]
							 [i % PER_FENCE];
			enum outcome o = classify(t);

			if (o != PENDING) {
				out[o]++;
				continue;
			}
			if (!bad++)
				TH_LOG("adder %d callback %d: add %d, removed %d, "
				       "calls %d, bad context %d", a, i,
				       t->add_ret, t->removed, t->calls,
				       t->bad_context);
		}
	}
	return bad;
}

FIXTURE(cbs) {
	struct cb_stress cs;
	hetmem_spinlock_t shared;
};

FIXTURE_VARIANT(cbs) {
	bool shared_lock;
};

FIXTURE_VARIANT_ADD(cbs, shared_lock) { .shared_lock = true };
FIXTURE_VARIANT_ADD(cbs, own_locks) { .shared_lock = false };

FIXTURE_SETUP(cbs)
{
	hetmem_spin_lock_init(&self->shared);
}

FIXTURE_TEARDOWN(cbs)
{
}

TEST_F_TIMEOUT(cbs, add_remove_vs_signal, 120)
{
	struct cb_stress *cs = &self->cs;
	int64_t end = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	uint64_t ctx = dma_fence_context_alloc(1), seqno = 0;
	unsigned long out[4] = { 0 }, rounds = 0;
	unsigned long created0 = mock_fence_created();
	unsigned long warns = hetmem_warn_count();
	unsigned long queued = 0, refused = 0, removed = 0, late = 0, won = 0;
	int threads = ADDERS + SIGNALLERS + 1, i;

	ASSERT_EQ(pthread_barrier_init(&cs->start, NULL, threads), 0);
	ASSERT_EQ(pthread_barrier_init(&cs->done, NULL, threads), 0);
	for (i = 0; i < ADDERS; i++) {
		cs->add[i].cs = cs;
		cs->add[i].id = i;
		cs->add[i].seed = 0x9e3779b9u * (uint32_t)(i + 1);
		ASSERT_EQ(pthread_create(&cs->add[i].th, NULL, adder_thread,
					 &cs->add[i]), 0);
	}
	for (i = 0; i < SIGNALLERS; i++) {
		cs->sig[i].cs = cs;
		cs->sig[i].id = i;
		cs->sig[i].seed = 0x85ebca6bu * (uint32_t)(i + 1);
		ASSERT_EQ(pthread_create(&cs->sig[i].th, NULL, signaller_thread,
					 &cs->sig[i]), 0);
	}

	do {
		for (i = 0; i < NF; i++)
			cs->f[i] = cf_create(variant->shared_lock ?
					     &self->shared : NULL, ctx, ++seqno);
		pthread_barrier_wait(&cs->start);
		pthread_barrier_wait(&cs->done);
		ASSERT_EQ(check_round(cs, out), 0);
		for (i = 0; i < NF; i++) {
			/* Only the round's own reference is left. */
			ASSERT_TRUE(dma_fence_test_signaled_flag(cs->f[i]));
			ASSERT_TRUE(hetmem_list_empty(&cs->f[i]->cb_list));
			ASSERT_EQ(hetmem_kref_read(&cs->f[i]->refcount), 1);
			dma_fence_put(cs->f[i]);
		}
		rounds++;
	} while (harness_now_ms() < end);
	__atomic_store_n(&cs->stop, 1, __ATOMIC_RELEASE);
	pthread_barrier_wait(&cs->start);
	for (i = 0; i < ADDERS; i++) {
		pthread_join(cs->add[i].th, NULL);
		queued += cs->add[i].queued;
		refused += cs->add[i].refused;
		removed += cs->add[i].removed;
		late += cs->add[i].remove_late;
	}
	for (i = 0; i < SIGNALLERS; i++) {
		pthread_join(cs->sig[i].th, NULL);
		EXPECT_EQ(cs->sig[i].errors, 0);
		won += cs->sig[i].won;
	}
	pthread_barrier_destroy(&cs->start);
	pthread_barrier_destroy(&cs->done);

	TH_LOG("%lu rounds: %lu callbacks ran, %lu removed (%lu too late), "
	       "%lu refused", rounds, out[RAN], out[REMOVED], late,
	       out[REFUSED]);
	/* Every callback is accounted for exactly once. */
	ASSERT_EQ(out[RAN] + out[REMOVED] + out[REFUSED],
		  rounds * ADDERS * NF * PER_FENCE);
	ASSERT_EQ(out[REFUSED], refused);
	ASSERT_EQ(out[REMOVED], removed);
	ASSERT_EQ(out[RAN] + out[REMOVED], queued);
	ASSERT_EQ(won, rounds * NF);
	/* All three outcomes happened, or the race was not exercised. */
	ASSERT_GT(out[RAN], 0);
	ASSERT_GT(out[REMOVED], 0);
	ASSERT_GT(out[REFUSED], 0);
	ASSERT_GT(late, 0);
	hetmem_rcu_barrier();
	ASSERT_EQ(mock_fence_created() - created0, rounds * NF);
	ASSERT_EQ(mock_fence_released(), mock_fence_created());
	ASSERT_EQ(hetmem_warn_count(), warns);
}

/*
 * Removal racing the signal on one fence at a time: the remover either
 * wins (callback never runs) or loses (callback has run completely by the
 * time remove_callback() returns false, because it takes the lock).
 */
struct race_cb {
	struct dma_fence_cb cb;
	int running;
	int done;
};

static void race_func(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct race_cb *r = hetmem_container_of(cb, struct race_cb, cb);

	__atomic_store_n(&r->running, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
}

struct one_signal {
	struct dma_fence *f;
	pthread_barrier_t *go;
	int stop;
};

static void *one_signaller(void *arg)
{
	struct one_signal *o = arg;

	for (;;) {
		pthread_barrier_wait(o->go);
		if (__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE))
			break;
		dma_fence_signal(__atomic_load_n(&o->f, __ATOMIC_ACQUIRE));
		pthread_barrier_wait(o->go);
	}
	return NULL;
}

TEST_TIMEOUT(remove_vs_signal_single_fence, 120)
{
	static hetmem_spinlock_t lock = HETMEM_SPINLOCK_INIT(single_fence_lock);
	int64_t end = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	struct one_signal o = { 0 };
	pthread_barrier_t go;
	unsigned long won = 0, lost = 0, n = 0;
	pthread_t th;

	ASSERT_EQ(pthread_barrier_init(&go, NULL, 2), 0);
	o.go = &go;
	ASSERT_EQ(pthread_create(&th, NULL, one_signaller, &o), 0);
	while (harness_now_ms() < end) {
		struct dma_fence *f = cf_create(&lock, 1, ++n);
		struct race_cb r = { 0 };
		bool removed;

		ASSERT_EQ(dma_fence_add_callback(f, &r.cb, race_func), 0);
		__atomic_store_n(&o.f, f, __ATOMIC_RELEASE);
		pthread_barrier_wait(&go);
		if (n & 1)
			sched_yield();
		removed = dma_fence_remove_callback(f, &r.cb);
		if (removed) {
			won++;
			/* Removed: it has not run... */
			ASSERT_EQ(__atomic_load_n(&r.running, __ATOMIC_RELAXED), 0);
		} else {
			lost++;
			/* Not queued any more: it has run to completion. */
			ASSERT_EQ(__atomic_load_n(&r.done, __ATOMIC_ACQUIRE), 1);
		}
		pthread_barrier_wait(&go);
		/* ...and does not run at the signal either. */
		ASSERT_TRUE(dma_fence_is_signaled(f));
		ASSERT_EQ(__atomic_load_n(&r.done, __ATOMIC_ACQUIRE), !removed);
		dma_fence_put(f);
	}
	__atomic_store_n(&o.stop, 1, __ATOMIC_RELEASE);
	pthread_barrier_wait(&go);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&go);
	TH_LOG("%lu removed before the signal, %lu after it ran", won, lost);
	ASSERT_GT(won + lost, 0);
	hetmem_rcu_barrier();
}
