/* SPDX-License-Identifier: MIT */
/*
 * hetmem - mmu interval notifiers: the API contract (argument checks,
 * callback arguments, overlap rules) and the collision-retry protocol of
 * the kernel, driven deterministically with
 * mmu_notifier_invalidate_range_start() / _end() from test threads:
 * epochs shared by overlapping invalidations, read_begin() waiting only
 * for an epoch that hit its notifier, notifiers born invalidated, removal
 * waiting for a running callback, non-blocking invalidations, the
 * lock-dependency annotation, the driver protocol around
 * hmm_range_fault(), and 10 000 notifiers checked against brute force.
 */
#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/core/warn.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

#include "core/internal.h"
#include "mm/pagewalk.h"
#include "harness.h"

#define PG HETMEM_PAGE_SIZE
/* Invalidations driven by hand need no mapping: a fake, page-aligned area. */
#define FAKE_BASE 0x300000000000UL
#define MAX_REC 32
#define HOLD_MS 100

struct rec {
	struct mm_struct *mm;
	enum mmu_notifier_event event;
	unsigned long start, end;
	unsigned int flags;
	void *owner;
	unsigned long cur_seq;
};

/* A test "driver": a notifier, its lock and what its callback saw. */
struct tsub {
	struct mmu_interval_notifier sub;
	struct hetmem_mutex lock;
	unsigned int n;			/* callbacks recorded, under lock */
	struct rec recs[MAX_REC];
	int refuse;			/* return false */
	int hold;			/* wait in the callback until !hold */
	int in_cb;			/* set while holding */
	int cb_done;			/* set when a held callback returns */
};

static bool tsub_invalidate(struct mmu_interval_notifier *sub,
			    const struct mmu_notifier_range *range,
			    unsigned long cur_seq)
{
	struct tsub *t = hetmem_container_of(sub, struct tsub, sub);

	if (mmu_notifier_range_blockable(range))
		hetmem_mutex_lock(&t->lock);
	else if (!hetmem_mutex_trylock(&t->lock))
		return false;
	if (__atomic_load_n(&t->refuse, __ATOMIC_ACQUIRE)) {
		hetmem_mutex_unlock(&t->lock);
		return false;
	}
	if (t->n < MAX_REC)
		t->recs[t->n] = (struct rec){ range->mm, range->event, range->start,
					      range->end, range->flags,
					      range->owner, cur_seq };
	t->n++;
	mmu_interval_set_seq(sub, cur_seq);
	hetmem_mutex_unlock(&t->lock);
	if (__atomic_load_n(&t->hold, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&t->in_cb, 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&t->hold, __ATOMIC_ACQUIRE))
			harness_sleep_ms(1);
		harness_sleep_ms(20);	/* make an early return by remove() visible */
		__atomic_store_n(&t->cb_done, 1, __ATOMIC_RELEASE);
	}
	return true;
}

static const struct mmu_interval_notifier_ops tsub_ops = {
	.invalidate = tsub_invalidate,
};

/* Calls the callback of a removed notifier: a bug. */
static int poisoned_calls;

static bool poison_invalidate(struct mmu_interval_notifier *sub,
			      const struct mmu_notifier_range *range,
			      unsigned long cur_seq)
{
	__atomic_fetch_add(&poisoned_calls, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmu_interval_notifier_ops poison_ops = {
	.invalidate = poison_invalidate,
};

static unsigned int tsub_count(struct tsub *t)
{
	unsigned int n;

	hetmem_mutex_lock(&t->lock);
	n = t->n;
	hetmem_mutex_unlock(&t->lock);
	return n;
}

static struct mm_struct *need_mm(void)
{
	struct hetmem_mm_caps caps;
	struct mm_struct *mm;

	ASSERT_EQ(hetmem_mm_probe(&caps), 0);
	if (!caps.uffd)
		return NULL;
	mm = hetmem_current_mm();
	ASSERT_NONNULL(mm);
	return mm;
}

#define NEED_MM(mm) do {						\
	(mm) = need_mm();						\
	if (!(mm))							\
		SKIP(return, "no usable userfaultfd (see hetmem info)"); \
} while (0)

static struct tsub *tsub_new(struct mm_struct *mm, unsigned long start,
			     unsigned long len)
{
	struct tsub *t = calloc(1, sizeof(*t));

	ASSERT_NONNULL(t);
	hetmem_mutex_init(&t->lock);
	ASSERT_EQ(mmu_interval_notifier_insert(&t->sub, mm, start, len,
					       &tsub_ops), 0);
	return t;
}

static void tsub_free(struct tsub *t)
{
	mmu_interval_notifier_remove(&t->sub);
	free(t);
}

static void invalidate(struct mm_struct *mm, enum mmu_notifier_event ev,
		       unsigned long start, unsigned long end, void *owner)
{
	struct mmu_notifier_range r;

	mmu_notifier_range_init_owner(&r, ev, 0, mm, start, end, owner);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
}

/* ---- a thread that holds an invalidation open ---- */

struct inv_thread {
	pthread_t th;
	struct mm_struct *mm;
	unsigned long start, end;
	int started;		/* range_start returned */
	int go;			/* may call range_end */
	int ended;		/* set just before range_end */
};

static void *inv_thread_fn(void *arg)
{
	struct inv_thread *it = arg;
	struct mmu_notifier_range r;

	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, it->mm, it->start, it->end);
	mmu_notifier_invalidate_range_start(&r);
	__atomic_store_n(&it->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&it->go, __ATOMIC_ACQUIRE))
		harness_sleep_ms(1);
	__atomic_store_n(&it->ended, 1, __ATOMIC_RELEASE);
	mmu_notifier_invalidate_range_end(&r);
	return NULL;
}

static void inv_thread_start(struct inv_thread *it, struct mm_struct *mm,
			     unsigned long start, unsigned long end)
{
	memset(it, 0, sizeof(*it));
	it->mm = mm;
	it->start = start;
	it->end = end;
	ASSERT_EQ(pthread_create(&it->th, NULL, inv_thread_fn, it), 0);
	ASSERT_TRUE(harness_wait_int(&it->started, 1, 10000));
}

static void inv_thread_finish(struct inv_thread *it)
{
	__atomic_store_n(&it->go, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(pthread_join(it->th, NULL), 0);
}

/* Sets *flag after @ms milliseconds. */
struct later {
	pthread_t th;
	int *flag;
	long ms;
};

static void *later_fn(void *arg)
{
	struct later *l = arg;

	harness_sleep_ms(l->ms);
	__atomic_store_n(l->flag, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void set_later(struct later *l, int *flag, long ms)
{
	l->flag = flag;
	l->ms = ms;
	ASSERT_EQ(pthread_create(&l->th, NULL, later_fn, l), 0);
}

/* For flags that go from 1 back to 0 ("hold"). */
static void *clear_later_fn(void *arg)
{
	struct later *l = arg;

	harness_sleep_ms(l->ms);
	__atomic_store_n(l->flag, 0, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Every case leaves the process as it found it: the monitor's descriptors
 * and the cached /proc descriptors are closed, or the harness reports them
 * as leaked.
 */
FIXTURE(mn) {
	int unused;
};

FIXTURE_SETUP(mn)
{
}

FIXTURE_TEARDOWN(mn)
{
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

/* ------------------------------------------------------------------ */

TEST_F(mn, insert_argument_errors)
{
	static const struct mmu_interval_notifier_ops no_cb = { NULL };
	struct mmu_interval_notifier sub;
	struct mm_struct *mm;

	NEED_MM(mm);
	memset(&sub, 0, sizeof(sub));
	ASSERT_EQ(mmu_interval_notifier_insert(NULL, mm, FAKE_BASE, PG, &tsub_ops), -EINVAL);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, NULL, FAKE_BASE, PG, &tsub_ops), -EINVAL);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, FAKE_BASE, PG, NULL), -EINVAL);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, FAKE_BASE, PG, &no_cb), -EINVAL);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, FAKE_BASE, 0, &tsub_ops), -EOVERFLOW);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, ULONG_MAX - PG + 1, 2 * PG,
					       &tsub_ops), -EOVERFLOW);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, 0x1000, 0UL - 0x1000 + 1,
					       &tsub_ops), -EOVERFLOW);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, 2, ULONG_MAX, &tsub_ops),
		  -EOVERFLOW);
	/* None of the failures took a reference or linked anything. */
	ASSERT_NULL(sub.mm);

	/* Reaching exactly the top of the address space is fine. */
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, 0x1000, 0UL - 0x1000,
					       &tsub_ops), 0);
	ASSERT_EQ(sub.interval_tree.start, 0x1000);
	ASSERT_EQ(sub.interval_tree.last, ULONG_MAX);
	mmu_interval_notifier_remove(&sub);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, mm, 1, ULONG_MAX, &tsub_ops), 0);
	mmu_interval_notifier_remove(&sub);
}

TEST_F(mn, top_of_address_space_is_invalidated)
{
	struct mm_struct *mm;
	struct tsub *t;

	NEED_MM(mm);
	t = tsub_new(mm, ULONG_MAX - 16 * PG + 1, 16 * PG);
	invalidate(mm, MMU_NOTIFY_CLEAR, ULONG_MAX - PG + 1, ULONG_MAX, NULL);
	ASSERT_EQ(tsub_count(t), 1);
	invalidate(mm, MMU_NOTIFY_CLEAR, 0, ULONG_MAX - 16 * PG + 1, NULL);
	ASSERT_EQ(tsub_count(t), 1);
	tsub_free(t);
}

TEST_F(mn, read_begin_retry_basics)
{
	unsigned long s = FAKE_BASE, e = FAKE_BASE + 16 * PG, seq, seq2;
	struct mmu_notifier_range r;
	struct mm_struct *mm;
	struct tsub *t;
	int owner;

	NEED_MM(mm);
	t = tsub_new(mm, s, e - s);

	/* Idle: the sequence is odd, and nothing collides. */
	seq = mmu_interval_read_begin(&t->sub);
	ASSERT_EQ(seq & 1, 1);
	ASSERT_FALSE(mmu_interval_check_retry(&t->sub, seq));
	hetmem_mutex_lock(&t->lock);
	ASSERT_FALSE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);

	/* An overlapping invalidation: one call, every field passed on. */
	mmu_notifier_range_init_owner(&r, MMU_NOTIFY_MIGRATE, 0, mm, s + 4 * PG,
				      s + 8 * PG, &owner);
	mmu_notifier_invalidate_range_start(&r);
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_TRUE(mmu_interval_check_retry(&t->sub, seq));
	hetmem_mutex_lock(&t->lock);
	ASSERT_TRUE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);
	mmu_notifier_invalidate_range_end(&r);
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_EQ(t->recs[0].mm, mm);
	ASSERT_EQ(t->recs[0].event, MMU_NOTIFY_MIGRATE);
	ASSERT_EQ(t->recs[0].start, s + 4 * PG);
	ASSERT_EQ(t->recs[0].end, s + 8 * PG);
	ASSERT_EQ(t->recs[0].owner, &owner);
	ASSERT_TRUE(t->recs[0].flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	ASSERT_EQ(t->recs[0].cur_seq & 1, 1);
	ASSERT_NE(t->recs[0].cur_seq, seq);
	ASSERT_TRUE(mmu_interval_check_retry(&t->sub, seq));

	/* After the epoch: read_begin returns at once, no collision. */
	seq2 = mmu_interval_read_begin(&t->sub);
	ASSERT_EQ(seq2, t->recs[0].cur_seq);
	hetmem_mutex_lock(&t->lock);
	ASSERT_FALSE(mmu_interval_read_retry(&t->sub, seq2));
	hetmem_mutex_unlock(&t->lock);

	/* Adjacent on either side and disjoint: not called, no retry. */
	invalidate(mm, MMU_NOTIFY_UNMAP, e, e + 4 * PG, NULL);
	invalidate(mm, MMU_NOTIFY_UNMAP, s - 4 * PG, s, NULL);
	invalidate(mm, MMU_NOTIFY_UNMAP, e + 100 * PG, e + 200 * PG, NULL);
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_FALSE(mmu_interval_check_retry(&t->sub, seq2));

	/* Partial overlaps of one byte, and a range containing the notifier. */
	invalidate(mm, MMU_NOTIFY_UNMAP, s - 4 * PG, s + 1, NULL);
	ASSERT_EQ(tsub_count(t), 2);
	ASSERT_EQ(t->recs[1].start, s - 4 * PG);
	ASSERT_EQ(t->recs[1].end, s + 1);
	invalidate(mm, MMU_NOTIFY_UNMAP, e - 1, e + PG, NULL);
	invalidate(mm, MMU_NOTIFY_UNMAP, 0, ULONG_MAX, NULL);
	ASSERT_EQ(tsub_count(t), 4);
	ASSERT_EQ(t->recs[3].start, 0);
	ASSERT_EQ(t->recs[3].end, ULONG_MAX);
	ASSERT_TRUE(mmu_interval_check_retry(&t->sub, seq2));
	/* Each epoch hands out a new, larger, odd sequence. */
	ASSERT_GT(t->recs[1].cur_seq, t->recs[0].cur_seq);
	ASSERT_GT(t->recs[2].cur_seq, t->recs[1].cur_seq);
	ASSERT_GT(t->recs[3].cur_seq, t->recs[2].cur_seq);
	ASSERT_EQ(t->recs[3].cur_seq & 1, 1);

	/* The non-blocking entry point clears BLOCKABLE, whatever was passed. */
	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				mm, s, s + PG);
	ASSERT_EQ(mmu_notifier_invalidate_range_start_nonblock(&r), 0);
	mmu_notifier_invalidate_range_end(&r);
	ASSERT_EQ(tsub_count(t), 5);
	ASSERT_FALSE(t->recs[4].flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	ASSERT_EQ(t->recs[4].owner, NULL);
	tsub_free(t);
}

TEST_F(mn, read_begin_waits_for_epoch_of_its_notifier)
{
	unsigned long s = FAKE_BASE;
	struct inv_thread a;
	struct later l;
	struct mm_struct *mm;
	struct tsub *t;
	int64_t t0;
	unsigned long seq;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	inv_thread_start(&a, mm, s + PG, s + 2 * PG);
	ASSERT_EQ(tsub_count(t), 1);
	set_later(&l, &a.go, HOLD_MS);
	t0 = harness_now_ms();
	seq = mmu_interval_read_begin(&t->sub);
	/* Not before range_end: "ended" is set just before it. */
	ASSERT_EQ(__atomic_load_n(&a.ended, __ATOMIC_ACQUIRE), 1);
	ASSERT_GE(harness_now_ms() - t0, HOLD_MS - 10);
	ASSERT_EQ(seq, t->recs[0].cur_seq);
	ASSERT_EQ(pthread_join(a.th, NULL), 0);
	ASSERT_EQ(pthread_join(l.th, NULL), 0);
	hetmem_mutex_lock(&t->lock);
	ASSERT_FALSE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);
	tsub_free(t);
}

TEST_F(mn, read_begin_ignores_unrelated_epoch)
{
	unsigned long s = FAKE_BASE, seq;
	struct inv_thread a;
	struct mm_struct *mm;
	struct tsub *t, *other;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	other = tsub_new(mm, s + 64 * PG, 16 * PG);
	/* The epoch is interval-affecting (it hits "other"), but not t. */
	inv_thread_start(&a, mm, s + 64 * PG, s + 65 * PG);
	ASSERT_EQ(tsub_count(other), 1);
	seq = mmu_interval_read_begin(&t->sub);
	ASSERT_EQ(__atomic_load_n(&a.ended, __ATOMIC_ACQUIRE), 0);
	hetmem_mutex_lock(&t->lock);
	ASSERT_FALSE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);
	inv_thread_finish(&a);
	/* Still no collision for t after the epoch. */
	hetmem_mutex_lock(&t->lock);
	ASSERT_FALSE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);
	ASSERT_EQ(tsub_count(t), 0);
	tsub_free(other);
	tsub_free(t);
}

TEST_F(mn, invalidation_during_read_forces_retry)
{
	unsigned long s = FAKE_BASE, seq;
	struct inv_thread a;
	struct mm_struct *mm;
	struct tsub *t;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	seq = mmu_interval_read_begin(&t->sub);
	inv_thread_start(&a, mm, s, s + PG);
	inv_thread_finish(&a);
	hetmem_mutex_lock(&t->lock);
	ASSERT_TRUE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);
	tsub_free(t);
}

TEST_F(mn, overlapping_invalidations_share_one_epoch)
{
	unsigned long s = FAKE_BASE, seq;
	struct inv_thread a, b;
	struct later l;
	struct mm_struct *mm;
	struct tsub *t, *u;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	u = tsub_new(mm, s + 64 * PG, 16 * PG);
	inv_thread_start(&a, mm, s, s + PG);			/* hits t */
	inv_thread_start(&b, mm, s + 64 * PG, s + 65 * PG);	/* hits u */
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_EQ(tsub_count(u), 1);
	/* One epoch, one odd cur_seq for every callback in it. */
	ASSERT_EQ(t->recs[0].cur_seq, u->recs[0].cur_seq);
	ASSERT_EQ(t->recs[0].cur_seq & 1, 1);

	inv_thread_finish(&a);			/* A ends first ... */
	set_later(&l, &b.go, HOLD_MS);
	seq = mmu_interval_read_begin(&t->sub);	/* ... t still waits for B */
	ASSERT_EQ(__atomic_load_n(&b.ended, __ATOMIC_ACQUIRE), 1);
	ASSERT_EQ(seq, t->recs[0].cur_seq);
	ASSERT_EQ(pthread_join(b.th, NULL), 0);
	ASSERT_EQ(pthread_join(l.th, NULL), 0);

	/* A later epoch gets a different odd value. */
	invalidate(mm, MMU_NOTIFY_CLEAR, s, s + PG, NULL);
	ASSERT_EQ(tsub_count(t), 2);
	ASSERT_GT(t->recs[1].cur_seq, t->recs[0].cur_seq);
	ASSERT_EQ(t->recs[1].cur_seq & 1, 1);
	tsub_free(u);
	tsub_free(t);
}

TEST_F(mn, nested_invalidations_same_thread)
{
	unsigned long s = FAKE_BASE, seq;
	struct mmu_notifier_range r1, r2;
	struct mm_struct *mm;
	struct tsub *t, *u;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	u = tsub_new(mm, s + 64 * PG, 16 * PG);
	mmu_notifier_range_init(&r1, MMU_NOTIFY_CLEAR, 0, mm, s, s + PG);
	mmu_notifier_range_init(&r2, MMU_NOTIFY_UNMAP, 0, mm, s + 64 * PG, s + 80 * PG);
	mmu_notifier_invalidate_range_start(&r1);
	mmu_notifier_invalidate_range_start(&r2);
	ASSERT_EQ(t->recs[0].cur_seq, u->recs[0].cur_seq);
	mmu_notifier_invalidate_range_end(&r2);
	/* u was hit in the epoch that r1 still keeps open. */
	ASSERT_EQ(mmu_interval_check_retry(&u->sub, u->recs[0].cur_seq), false);
	mmu_notifier_invalidate_range_end(&r1);
	seq = mmu_interval_read_begin(&u->sub);	/* epoch over: no wait */
	ASSERT_EQ(seq, u->recs[0].cur_seq);
	tsub_free(u);
	tsub_free(t);
}

TEST_F(mn, insert_during_epoch_is_born_invalidated)
{
	unsigned long s = FAKE_BASE, seq;
	struct inv_thread a;
	struct later l;
	struct mm_struct *mm;
	struct tsub *t, *x;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	inv_thread_start(&a, mm, s, s + PG);	/* an interval-affecting epoch */
	x = tsub_new(mm, s + 128 * PG, 16 * PG);
	set_later(&l, &a.go, HOLD_MS);
	seq = mmu_interval_read_begin(&x->sub);
	ASSERT_EQ(__atomic_load_n(&a.ended, __ATOMIC_ACQUIRE), 1);
	ASSERT_EQ(seq & 1, 1);
	ASSERT_EQ(pthread_join(a.th, NULL), 0);
	ASSERT_EQ(pthread_join(l.th, NULL), 0);
	/* The deferred insert took effect at the end of the epoch. */
	invalidate(mm, MMU_NOTIFY_CLEAR, s + 130 * PG, s + 131 * PG, NULL);
	ASSERT_EQ(tsub_count(x), 1);
	hetmem_mutex_lock(&x->lock);
	ASSERT_TRUE(mmu_interval_read_retry(&x->sub, seq));
	hetmem_mutex_unlock(&x->lock);
	tsub_free(x);
	tsub_free(t);
}

TEST_F(mn, insert_during_unrelated_invalidation_is_born_invalidated)
{
	unsigned long s = FAKE_BASE, seq;
	struct inv_thread a;
	struct later l;
	struct mm_struct *mm;
	struct tsub *t, *x;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	/* Running, but touching no notifier: the sequence is still even. */
	inv_thread_start(&a, mm, s + 1024 * PG, s + 1025 * PG);
	x = tsub_new(mm, s + 128 * PG, 16 * PG);
	set_later(&l, &a.go, HOLD_MS);
	seq = mmu_interval_read_begin(&x->sub);
	ASSERT_EQ(__atomic_load_n(&a.ended, __ATOMIC_ACQUIRE), 1);
	ASSERT_EQ(pthread_join(a.th, NULL), 0);
	ASSERT_EQ(pthread_join(l.th, NULL), 0);
	/* Inserted at once: an invalidation now reaches it. */
	invalidate(mm, MMU_NOTIFY_CLEAR, s + 128 * PG, s + 129 * PG, NULL);
	ASSERT_EQ(tsub_count(x), 1);
	ASSERT_NE(x->recs[0].cur_seq, seq);
	ASSERT_EQ(tsub_count(t), 0);
	tsub_free(x);
	tsub_free(t);
}

TEST_F(mn, insert_while_idle_is_valid_at_once)
{
	unsigned long s = FAKE_BASE, seq;
	struct mm_struct *mm;
	struct tsub *t;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	seq = mmu_interval_read_begin(&t->sub);	/* would hang if born invalidated */
	ASSERT_EQ(seq & 1, 1);
	hetmem_mutex_lock(&t->lock);
	ASSERT_FALSE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);
	tsub_free(t);
}

TEST_F(mn, remove_waits_for_running_callback)
{
	unsigned long s = FAKE_BASE;
	struct mmu_interval_notifier_ops ops = poison_ops;
	struct later l;
	struct mm_struct *mm;
	struct inv_thread a;
	struct tsub *t, *keep;

	NEED_MM(mm);
	keep = tsub_new(mm, s + 512 * PG, PG);	/* not the last notifier */
	t = tsub_new(mm, s, 16 * PG);
	t->hold = 1;
	memset(&a, 0, sizeof(a));
	a.mm = mm;
	a.start = s;
	a.end = s + PG;
	a.go = 1;
	ASSERT_EQ(pthread_create(&a.th, NULL, inv_thread_fn, &a), 0);
	ASSERT_TRUE(harness_wait_int(&t->in_cb, 1, 10000));
	l.flag = &t->hold;
	l.ms = HOLD_MS;
	ASSERT_EQ(pthread_create(&l.th, NULL, clear_later_fn, &l), 0);
	mmu_interval_notifier_remove(&t->sub);
	/* The callback returned, and so did the invalidation around it. */
	ASSERT_EQ(__atomic_load_n(&t->cb_done, __ATOMIC_ACQUIRE), 1);
	ASSERT_EQ(__atomic_load_n(&a.ended, __ATOMIC_ACQUIRE), 1);
	ASSERT_NULL(t->sub.mm);
	ASSERT_EQ(pthread_join(a.th, NULL), 0);
	ASSERT_EQ(pthread_join(l.th, NULL), 0);

	/* No callback after removal (its ops are poisoned to tell). */
	t->sub.ops = &ops;
	invalidate(mm, MMU_NOTIFY_UNMAP, s, s + 16 * PG, NULL);
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_EQ(poisoned_calls, 0);
	free(t);
	tsub_free(keep);
}

TEST_F(mn, remove_while_idle_stops_callbacks)
{
	unsigned long s = FAKE_BASE;
	struct hetmem_mm_stats st;
	struct mm_struct *mm;
	struct tsub *t, *u;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	u = tsub_new(mm, s, 16 * PG);	/* same range twice is allowed */
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, 2);
	invalidate(mm, MMU_NOTIFY_UNMAP, s, s + PG, NULL);
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_EQ(tsub_count(u), 1);
	mmu_interval_notifier_remove(&t->sub);
	t->sub.ops = &poison_ops;
	invalidate(mm, MMU_NOTIFY_UNMAP, s, s + PG, NULL);
	ASSERT_EQ(poisoned_calls, 0);
	ASSERT_EQ(tsub_count(u), 2);
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, 1);
	free(t);
	tsub_free(u);
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, 0);
}

TEST_F(mn, remove_deferred_insert_during_same_epoch)
{
	unsigned long s = FAKE_BASE;
	struct hetmem_mm_stats st;
	struct inv_thread a;
	struct mm_struct *mm;
	struct tsub *t, *x;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	inv_thread_start(&a, mm, s, s + PG);
	x = tsub_new(mm, s + 128 * PG, 16 * PG);
	/* Still queued: unlinked at once, without waiting for the epoch. */
	mmu_interval_notifier_remove(&x->sub);
	ASSERT_EQ(__atomic_load_n(&a.ended, __ATOMIC_ACQUIRE), 0);
	x->sub.ops = &poison_ops;
	inv_thread_finish(&a);
	invalidate(mm, MMU_NOTIFY_UNMAP, s, s + 1024 * PG, NULL);
	ASSERT_EQ(poisoned_calls, 0);
	ASSERT_EQ(tsub_count(x), 0);
	ASSERT_EQ(tsub_count(t), 2);
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, 1);
	free(x);
	tsub_free(t);
}

TEST_F(mn, remove_during_epoch_waits_for_epoch_end)
{
	unsigned long s = FAKE_BASE;
	struct inv_thread a;
	struct later l;
	struct mm_struct *mm;
	struct tsub *t, *x;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	x = tsub_new(mm, s + 128 * PG, 16 * PG);
	inv_thread_start(&a, mm, s, s + PG);	/* does not touch x */
	set_later(&l, &a.go, HOLD_MS);
	mmu_interval_notifier_remove(&x->sub);
	ASSERT_EQ(__atomic_load_n(&a.ended, __ATOMIC_ACQUIRE), 1);
	ASSERT_EQ(pthread_join(a.th, NULL), 0);
	ASSERT_EQ(pthread_join(l.th, NULL), 0);
	x->sub.ops = &poison_ops;
	invalidate(mm, MMU_NOTIFY_UNMAP, s, s + 1024 * PG, NULL);
	ASSERT_EQ(poisoned_calls, 0);
	free(x);
	tsub_free(t);
}

struct nb_args {
	struct mm_struct *mm;
	unsigned long start, end;
	int ret;
};

static void *nonblock_fn(void *arg)
{
	struct nb_args *a = arg;
	struct mmu_notifier_range r;

	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, a->mm, a->start, a->end);
	a->ret = mmu_notifier_invalidate_range_start_nonblock(&r);
	if (!a->ret)
		mmu_notifier_invalidate_range_end(&r);
	return NULL;
}

TEST_F(mn, nonblock_refusal_closes_the_invalidation)
{
	unsigned long s = FAKE_BASE, seq;
	struct nb_args args;
	struct mm_struct *mm;
	pthread_t th;
	struct tsub *t, *x;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	args = (struct nb_args){ mm, s, s + PG, 1 };
	hetmem_mutex_lock(&t->lock);	/* the callback's try-lock fails */
	ASSERT_EQ(pthread_create(&th, NULL, nonblock_fn, &args), 0);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	hetmem_mutex_unlock(&t->lock);
	ASSERT_EQ(args.ret, -EAGAIN);
	ASSERT_EQ(tsub_count(t), 0);

	/* The epoch is closed: nothing waits, nothing is born invalidated. */
	seq = mmu_interval_read_begin(&t->sub);
	x = tsub_new(mm, s + 64 * PG, PG);
	seq = mmu_interval_read_begin(&x->sub);
	hetmem_mutex_lock(&x->lock);
	ASSERT_FALSE(mmu_interval_read_retry(&x->sub, seq));
	hetmem_mutex_unlock(&x->lock);

	/* Without contention the non-blocking path completes. */
	args.ret = 1;
	ASSERT_EQ(pthread_create(&th, NULL, nonblock_fn, &args), 0);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(args.ret, 0);
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_FALSE(t->recs[0].flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	tsub_free(x);
	tsub_free(t);
}

TEST_F(mn, false_from_blockable_callback_warns_and_is_ignored)
{
	unsigned long s = FAKE_BASE, warns;
	struct mm_struct *mm;
	struct tsub *t, *u;

	NEED_MM(mm);
	t = tsub_new(mm, s, 16 * PG);
	u = tsub_new(mm, s + 8 * PG, 16 * PG);
	t->refuse = 1;
	u->refuse = 1;
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	invalidate(mm, MMU_NOTIFY_CLEAR, s, s + 32 * PG, NULL);
	/* Both refused, both warned, and the walk went on past the first. */
	ASSERT_EQ(hetmem_warn_count() - warns, 2);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	t->refuse = 0;
	u->refuse = 0;
	/* The invalidation was completed and closed: idle again. */
	invalidate(mm, MMU_NOTIFY_CLEAR, s, s + 32 * PG, NULL);
	ASSERT_EQ(tsub_count(t), 1);
	ASSERT_EQ(tsub_count(u), 1);
	tsub_free(u);
	tsub_free(t);
}

TEST_F(mn, lockdep_read_begin_under_driver_lock_is_a_cycle)
{
	unsigned long s = FAKE_BASE, before;
	struct mm_struct *mm;
	struct tsub *t;

	NEED_MM(mm);
	if (!hetmem_lockdep_enabled())
		SKIP(return, "the lock-dependency checker is off (HETMEM_LOCKDEP)");
	t = tsub_new(mm, s, 16 * PG);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	before = hetmem_lockdep_report_count();

	/* Correct use first: no report. */
	invalidate(mm, MMU_NOTIFY_CLEAR, s, s + PG, NULL);	/* inv -> lock */
	mmu_interval_read_begin(&t->sub);
	hetmem_mutex_lock(&t->lock);
	mmu_interval_read_retry(&t->sub, 0);
	hetmem_mutex_unlock(&t->lock);
	ASSERT_EQ(hetmem_lockdep_report_count(), before);

	/* read_begin under the lock the callback takes: lock -> inv. */
	hetmem_mutex_lock(&t->lock);
	mmu_interval_read_begin(&t->sub);
	hetmem_mutex_unlock(&t->lock);
	ASSERT_EQ(hetmem_lockdep_report_count(), before + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	tsub_free(t);
}

TEST_F(mn, lockdep_remove_under_driver_lock_is_a_cycle)
{
	unsigned long s = FAKE_BASE, before;
	struct mm_struct *mm;
	struct tsub *t, *u;

	NEED_MM(mm);
	if (!hetmem_lockdep_enabled())
		SKIP(return, "the lock-dependency checker is off (HETMEM_LOCKDEP)");
	t = tsub_new(mm, s, 16 * PG);
	u = tsub_new(mm, s + 64 * PG, 16 * PG);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	before = hetmem_lockdep_report_count();
	invalidate(mm, MMU_NOTIFY_CLEAR, s, s + PG, NULL);
	hetmem_mutex_lock(&t->lock);
	mmu_interval_notifier_remove(&u->sub);
	hetmem_mutex_unlock(&t->lock);
	ASSERT_GE(hetmem_lockdep_report_count(), before + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	free(u);
	tsub_free(t);
}

/* ---- the driver protocol around hmm_range_fault() on real memory ---- */

#define NPG 16

static void *map_pages(unsigned long n)
{
	void *p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(p, MAP_FAILED);
	return p;
}

TEST_F(mn, driver_protocol_with_hmm_range_fault)
{
	unsigned long pfns[NPG], mirror[NPG], seq, start;
	struct hmm_range range;
	struct mm_struct *mm;
	struct tsub *t;
	unsigned int i, busy = 0, retries = 0;
	bool done = false;
	char *p;
	int ret;

	NEED_MM(mm);
	p = map_pages(NPG);
	for (i = 0; i < NPG; i++)
		p[i * PG] = (char)(i + 1);
	start = (unsigned long)p;
	t = tsub_new(mm, start, NPG * PG);

	while (!done) {
		ASSERT_LT(busy + retries, 100);
		seq = mmu_interval_read_begin(&t->sub);
		range = (struct hmm_range){
			.notifier = &t->sub, .notifier_seq = seq,
			.start = start, .end = start + NPG * PG,
			.hmm_pfns = pfns, .default_flags = HMM_PFN_REQ_FAULT,
		};
		memset(pfns, 0, sizeof(pfns));
		mmap_read_lock(mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(mm);
		if (ret == -EBUSY) {
			busy++;
			continue;
		}
		ASSERT_EQ(ret, 0);
		hetmem_mutex_lock(&t->lock);
		if (mmu_interval_read_retry(&t->sub, seq)) {
			hetmem_mutex_unlock(&t->lock);
			retries++;
			continue;
		}
		for (i = 0; i < NPG; i++)
			mirror[i] = pfns[i];
		hetmem_mutex_unlock(&t->lock);
		done = true;
	}
	for (i = 0; i < NPG; i++) {
		unsigned long pfn = hetmem_hmm_pfn_to_pfn(mirror[i]);

		ASSERT_TRUE(mirror[i] & HMM_PFN_VALID);
		ASSERT_TRUE(hetmem_pfn_is_system(pfn));
		ASSERT_EQ((unsigned long)hetmem_pfn_to_virt(pfn), start + i * PG);
		ASSERT_EQ(*(char *)hetmem_pfn_to_virt(pfn), (char)(i + 1));
	}

	/* An invalidation between read_begin and the walk: -EBUSY. */
	seq = mmu_interval_read_begin(&t->sub);
	invalidate(mm, MMU_NOTIFY_CLEAR, start + 3 * PG, start + 4 * PG, NULL);
	range.notifier_seq = seq;
	mmap_read_lock(mm);
	ret = hmm_range_fault(&range);
	mmap_read_unlock(mm);
	ASSERT_EQ(ret, -EBUSY);

	/* One between the walk and the driver lock: read_retry catches it. */
	seq = mmu_interval_read_begin(&t->sub);
	range.notifier_seq = seq;
	mmap_read_lock(mm);
	ret = hmm_range_fault(&range);
	mmap_read_unlock(mm);
	ASSERT_EQ(ret, 0);
	invalidate(mm, MMU_NOTIFY_CLEAR, start, start + PG, NULL);
	hetmem_mutex_lock(&t->lock);
	ASSERT_TRUE(mmu_interval_read_retry(&t->sub, seq));
	hetmem_mutex_unlock(&t->lock);
	tsub_free(t);
	munmap(p, NPG * PG);
}

/* ---- many notifiers against brute force ---- */

#define MANY 10000
#define MANY_SPAN_PAGES (1UL << 16)
#define MANY_ROUNDS 300

struct msub {
	struct mmu_interval_notifier sub;
	unsigned long start, end;
	unsigned int hits;
	bool live;
};

static int bad_seq;

static bool msub_invalidate(struct mmu_interval_notifier *sub,
			    const struct mmu_notifier_range *range,
			    unsigned long cur_seq)
{
	struct msub *m = hetmem_container_of(sub, struct msub, sub);

	if (!(cur_seq & 1))
		bad_seq++;
	m->hits++;
	mmu_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops msub_ops = {
	.invalidate = msub_invalidate,
};

static void many_check(struct msub *m, struct mm_struct *mm, uint32_t *seed)
{
	unsigned long a = harness_rand(seed) % MANY_SPAN_PAGES;
	unsigned long len = 1 + harness_rand(seed) % (harness_rand(seed) & 1 ? 16 : 4096);
	unsigned long s = FAKE_BASE + a * PG, e = s + len * PG - (harness_rand(seed) & 1);
	unsigned int i;

	for (i = 0; i < MANY; i++)
		m[i].hits = 0;
	invalidate(mm, MMU_NOTIFY_CLEAR, s, e, NULL);
	for (i = 0; i < MANY; i++) {
		unsigned int want = m[i].live && m[i].start < e && s < m[i].end;

		if (m[i].hits != want)
			TH_LOG("notifier %u [%#lx, %#lx) live %d, range [%#lx, %#lx)",
			       i, m[i].start, m[i].end, m[i].live, s, e);
		ASSERT_EQ(m[i].hits, want);
	}
}

TEST_F_TIMEOUT(mn, ten_thousand_notifiers_match_brute_force, 120)
{
	uint32_t seed = 0x1234567;
	struct hetmem_mm_stats st;
	struct mm_struct *mm;
	struct msub *m;
	unsigned int i, r, *order;

	NEED_MM(mm);
	m = calloc(MANY, sizeof(*m));
	order = calloc(MANY, sizeof(*order));
	ASSERT_NONNULL(m);
	ASSERT_NONNULL(order);
	for (i = 0; i < MANY; i++) {
		unsigned long a, len;

		if (i % 10 == 0) {		/* a few wide ones */
			a = harness_rand(&seed) % MANY_SPAN_PAGES;
			len = 1 + harness_rand(&seed) % 8192;
		} else if (i % 2) {		/* disjoint 1-page slots */
			a = (i * 7UL) % MANY_SPAN_PAGES;
			len = 1;
		} else {			/* small random overlaps */
			a = harness_rand(&seed) % MANY_SPAN_PAGES;
			len = 1 + harness_rand(&seed) % 64;
		}
		m[i].start = FAKE_BASE + a * PG;
		m[i].end = m[i].start + len * PG - (i % 3 == 0 ? 1 : 0);
		ASSERT_EQ(mmu_interval_notifier_insert(&m[i].sub, mm, m[i].start,
						       m[i].end - m[i].start,
						       &msub_ops), 0);
		m[i].live = true;
		order[i] = i;
	}
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, MANY);
	for (r = 0; r < MANY_ROUNDS; r++)
		many_check(m, mm, &seed);

	for (i = MANY - 1; i > 0; i--) {
		unsigned int j = harness_rand(&seed) % (i + 1), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	for (i = 0; i < MANY; i++) {
		mmu_interval_notifier_remove(&m[order[i]].sub);
		m[order[i]].live = false;
		if (i % 1000 == 999)
			for (r = 0; r < 20; r++)
				many_check(m, mm, &seed);
	}
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, 0);
	for (i = 0; i < MANY; i++)
		m[i].hits = 0;
	invalidate(mm, MMU_NOTIFY_UNMAP, 0, ULONG_MAX, NULL);
	for (i = 0; i < MANY; i++)
		ASSERT_EQ(m[i].hits, 0);
	ASSERT_EQ(bad_seq, 0);
	free(order);
	free(m);
}

TEST_F(mn, remove_not_inserted_and_twice)
{
	struct mmu_interval_notifier zero;
	struct hetmem_mm_stats st;
	struct mm_struct *mm;
	struct tsub *t;

	NEED_MM(mm);
	memset(&zero, 0, sizeof(zero));
	mmu_interval_notifier_remove(&zero);
	mmu_interval_notifier_remove(NULL);
	t = tsub_new(mm, FAKE_BASE, PG);
	mmu_interval_notifier_remove(&zero);
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, 1);
	mmu_interval_notifier_remove(&t->sub);
	mmu_interval_notifier_remove(&t->sub);
	ASSERT_EQ(hetmem_mm_get_stats(mm, &st), 0);
	ASSERT_EQ(st.notifiers, 0);
	/* And a removed notifier can be inserted again. */
	ASSERT_EQ(mmu_interval_notifier_insert(&t->sub, mm, FAKE_BASE, PG, &tsub_ops), 0);
	invalidate(mm, MMU_NOTIFY_CLEAR, FAKE_BASE, FAKE_BASE + PG, NULL);
	ASSERT_EQ(tsub_count(t), 1);
	tsub_free(t);
}

TEST_F(mn, unusable_ranges_are_refused)
{
	struct mmu_notifier_range r;
	struct mm_struct *mm;
	unsigned long warns;
	struct tsub *t;

	NEED_MM(mm);
	t = tsub_new(mm, FAKE_BASE, PG);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	/* Empty range: warned, no callback, nothing left open. */
	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, mm, FAKE_BASE, FAKE_BASE);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
	ASSERT_EQ(hetmem_warn_count() - warns, 1);
	ASSERT_EQ(mmu_notifier_invalidate_range_start_nonblock(&r), -EINVAL);
	ASSERT_EQ(mmu_notifier_invalidate_range_start_nonblock(NULL), -EINVAL);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	ASSERT_EQ(tsub_count(t), 0);
	tsub_free(t);	/* would hang if an epoch had been left open */
}
