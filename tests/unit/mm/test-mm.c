/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the mm_struct API: hetmem_current_mm(), the two reference
 * counts, the mmap lock and its assertions, hetmem_mm_probe(), the
 * counters, hetmem_mm_sync() and hetmem_mm_teardown() (each case runs in
 * its own forked process, so a teardown affects nobody else), and what a
 * forked child sees of its parent's mm.
 */
#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/core/warn.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

#include "mm/internal.h"
#include "mm/pagewalk.h"
#include "harness.h"

#define PG HETMEM_PAGE_SIZE
#define FAKE_BASE 0x300000000000UL

static unsigned int calls;

static bool count_invalidate(struct mmu_interval_notifier *sub,
			     const struct mmu_notifier_range *range,
			     unsigned long cur_seq)
{
	__atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
	mmu_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops count_ops = {
	.invalidate = count_invalidate,
};

FIXTURE(mm) {
	struct mm_struct *mm;
	bool uffd;
	unsigned long warns;
};

FIXTURE_SETUP(mm)
{
	struct hetmem_mm_caps caps;

	ASSERT_EQ(hetmem_mm_probe(&caps), 0);
	self->uffd = caps.uffd;
	self->mm = hetmem_current_mm();
	ASSERT_NONNULL(self->mm);
}

FIXTURE_TEARDOWN(mm)
{
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

#define NEED_UFFD() do {						\
	if (!self->uffd)						\
		SKIP(return, "no usable userfaultfd");			\
} while (0)

/* Warnings provoked on purpose: silent, and counted from here. */
static void warns_begin(FIXTURE_DATA(mm) *self)
{
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	self->warns = hetmem_warn_count();
}

static unsigned long warns_end(FIXTURE_DATA(mm) *self)
{
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	return hetmem_warn_count() - self->warns;
}

#define NEED_LOCKDEP() do {						\
	if (!hetmem_lockdep_enabled())					\
		SKIP(return, "the lock-dependency checker is off");	\
} while (0)

/* ---- the current mm ---- */

static void *current_mm_fn(void *arg)
{
	return hetmem_current_mm();
}

TEST_F(mm, current_mm_is_one_per_process)
{
	pthread_t th;
	void *other;

	ASSERT_EQ(hetmem_current_mm(), self->mm);
	ASSERT_EQ(pthread_create(&th, NULL, current_mm_fn, NULL), 0);
	ASSERT_EQ(pthread_join(th, &other), 0);
	ASSERT_EQ(other, self->mm);
	ASSERT_EQ(self->mm->pid, getpid());
	ASSERT_EQ(self->mm->invalidate_seq, 2);	/* as in the kernel */
}

TEST_F(mm, mmget_and_mmput)
{
	uint32_t users = self->mm->users;

	ASSERT_TRUE(mmget_not_zero(self->mm));
	ASSERT_EQ(self->mm->users, users + 1);
	ASSERT_TRUE(mmget_not_zero(self->mm));
	ASSERT_EQ(self->mm->users, users + 2);
	mmput(self->mm);
	mmput(self->mm);
	ASSERT_EQ(self->mm->users, users);
	ASSERT_FALSE(mmget_not_zero(NULL));
	mmput(NULL);
}

TEST_F(mm, mmgrab_and_mmdrop)
{
	uint32_t count = self->mm->count;

	mmgrab(self->mm);
	mmgrab(self->mm);
	ASSERT_EQ(self->mm->count, count + 2);
	mmdrop(self->mm);
	mmdrop(self->mm);
	ASSERT_EQ(self->mm->count, count);
}

TEST_F(mm, notifier_holds_mm_count)
{
	struct mmu_interval_notifier sub;
	uint32_t count = self->mm->count;

	NEED_UFFD();
	memset(&sub, 0, sizeof(sub));
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, self->mm, FAKE_BASE, PG,
					       &count_ops), 0);
	ASSERT_EQ(self->mm->count, count + 1);
	mmu_interval_notifier_remove(&sub);
	ASSERT_EQ(self->mm->count, count);
}

/* ---- the mmap lock ---- */

struct lock_probe {
	struct mm_struct *mm;
	int read_ok;
	int write_ok;
};

static void *try_read_fn(void *arg)
{
	struct lock_probe *lp = arg;

	lp->read_ok = mmap_read_trylock(lp->mm);
	if (lp->read_ok)
		mmap_read_unlock(lp->mm);
	return NULL;
}

static void probe_lock(struct lock_probe *lp)
{
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, try_read_fn, lp), 0);
	ASSERT_EQ(pthread_join(th, NULL), 0);
}

struct writer {
	struct mm_struct *mm;
	int got;
};

static void *write_lock_fn(void *arg)
{
	struct writer *w = arg;

	mmap_write_lock(w->mm);
	__atomic_store_n(&w->got, 1, __ATOMIC_RELEASE);
	mmap_write_unlock(w->mm);
	return NULL;
}

TEST_F(mm, mmap_lock_readers_share_writers_exclude)
{
	struct lock_probe lp = { self->mm, 0, 0 };
	struct writer w = { self->mm, 0 };
	pthread_t th;

	mmap_read_lock(self->mm);
	probe_lock(&lp);
	ASSERT_TRUE(lp.read_ok);		/* readers share */
	ASSERT_EQ(pthread_create(&th, NULL, write_lock_fn, &w), 0);
	harness_sleep_ms(50);
	ASSERT_EQ(__atomic_load_n(&w.got, __ATOMIC_ACQUIRE), 0);
	mmap_read_unlock(self->mm);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(w.got, 1);

	mmap_write_lock(self->mm);
	probe_lock(&lp);
	ASSERT_FALSE(lp.read_ok);		/* a writer excludes readers */
	mmap_write_unlock(self->mm);
	probe_lock(&lp);
	ASSERT_TRUE(lp.read_ok);
	ASSERT_TRUE(mmap_read_trylock(self->mm));
	mmap_read_unlock(self->mm);
}

TEST_F(mm, mmap_assertions)
{
	NEED_LOCKDEP();
	warns_begin(self);
	mmap_read_lock(self->mm);
	mmap_assert_locked(self->mm);
	mmap_read_unlock(self->mm);
	mmap_write_lock(self->mm);
	mmap_assert_locked(self->mm);
	mmap_assert_write_locked(self->mm);
	mmap_write_unlock(self->mm);
	ASSERT_EQ(warns_end(self), 0);

	warns_begin(self);
	mmap_assert_locked(self->mm);			/* not held */
	ASSERT_EQ(warns_end(self), 1);
	warns_begin(self);
	mmap_assert_write_locked(self->mm);		/* not held */
	ASSERT_EQ(warns_end(self), 1);
	warns_begin(self);
	mmap_read_lock(self->mm);
	mmap_assert_write_locked(self->mm);		/* only read */
	mmap_read_unlock(self->mm);
	ASSERT_EQ(warns_end(self), 1);
}

TEST_F(mm, insert_locked_wants_the_write_lock)
{
	struct mmu_interval_notifier sub;

	NEED_UFFD();
	NEED_LOCKDEP();
	memset(&sub, 0, sizeof(sub));
	warns_begin(self);
	mmap_write_lock(self->mm);
	ASSERT_EQ(mmu_interval_notifier_insert_locked(&sub, self->mm, FAKE_BASE,
						      PG, &count_ops), 0);
	mmap_write_unlock(self->mm);
	ASSERT_EQ(warns_end(self), 0);
	mmu_interval_notifier_remove(&sub);

	warns_begin(self);
	ASSERT_EQ(mmu_interval_notifier_insert_locked(&sub, self->mm, FAKE_BASE,
						      PG, &count_ops), 0);
	ASSERT_EQ(warns_end(self), 1);
	mmu_interval_notifier_remove(&sub);
}

/* ---- probe, counters ---- */

TEST_F(mm, probe_is_consistent)
{
	struct hetmem_mm_caps caps;

	ASSERT_EQ(hetmem_mm_probe(NULL), -EINVAL);
	ASSERT_EQ(hetmem_mm_probe(&caps), 0);
	ASSERT_EQ(caps.uffd_wp_async, !!(caps.uffd_features & (1ULL << 15)));
	ASSERT_EQ(caps.uffd_move, !!(caps.uffd_features & (1ULL << 16)));
	if (caps.uffd)
		ASSERT_STREQ(caps.reason, "");
	else
		ASSERT_NE(caps.reason[0], '\0');
	/* This process can always read itself through /proc. */
	ASSERT_TRUE(caps.process_vm);
	TH_LOG("uffd %d features %#llx pagemap_scan %d procmap_query %d populate %d",
	       caps.uffd, (unsigned long long)caps.uffd_features,
	       caps.pagemap_scan, caps.procmap_query, caps.populate);
}

TEST_F(mm, stats_follow_notifiers_and_invalidations)
{
	struct mmu_interval_notifier a, b;
	struct hetmem_mm_stats st, st2;
	struct mmu_notifier_range r;

	ASSERT_EQ(hetmem_mm_get_stats(NULL, &st), -EINVAL);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, NULL), -EINVAL);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &st), 0);
	ASSERT_EQ(st.notifiers, 0);
	ASSERT_FALSE(st.monitor_running);
	ASSERT_EQ(st.callbacks, 0);
	NEED_UFFD();

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ASSERT_EQ(mmu_interval_notifier_insert(&a, self->mm, FAKE_BASE, PG, &count_ops), 0);
	ASSERT_EQ(mmu_interval_notifier_insert(&b, self->mm, FAKE_BASE, 2 * PG, &count_ops), 0);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &st), 0);
	ASSERT_EQ(st.notifiers, 2);
	ASSERT_TRUE(st.monitor_running);

	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, self->mm, FAKE_BASE, FAKE_BASE + PG);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, self->mm, FAKE_BASE + PG,
				FAKE_BASE + 2 * PG);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &st2), 0);
	ASSERT_EQ(st2.invalidations - st.invalidations, 2);
	ASSERT_EQ(st2.callbacks - st.callbacks, 3);
	ASSERT_EQ(calls, 3);

	mmu_interval_notifier_remove(&a);
	mmu_interval_notifier_remove(&b);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &st), 0);
	ASSERT_EQ(st.notifiers, 0);
	ASSERT_EQ(st.watched_bytes, 0);
}

/* ---- sync ---- */

TEST_F(mm, sync_contract)
{
	struct mmu_interval_notifier sub;
	unsigned long pfns[4];
	struct hmm_range range;
	int64_t t0;
	char *p;
	int ret;

	ASSERT_EQ(hetmem_mm_sync(NULL, 0), -EINVAL);
	/* No monitor yet: nothing to wait for. */
	ASSERT_EQ(hetmem_mm_sync(self->mm, 0), 0);
	NEED_UFFD();
	p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(p, MAP_FAILED);
	memset(&sub, 0, sizeof(sub));
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, self->mm, (unsigned long)p,
					       4 * PG, &count_ops), 0);
	do {
		range = (struct hmm_range){
			.notifier = &sub, .start = (unsigned long)p,
			.end = (unsigned long)p + 4 * PG, .hmm_pfns = pfns,
			.default_flags = HMM_PFN_REQ_FAULT,
			.notifier_seq = mmu_interval_read_begin(&sub),
		};
		mmap_read_lock(self->mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(self->mm);
	} while (ret == -EBUSY);
	ASSERT_EQ(ret, 0);
	ASSERT_EQ(hetmem_mm_sync(self->mm, 0), 0);	/* idle: immediate */
	t0 = harness_now_ms();
	ASSERT_EQ(hetmem_mm_sync(self->mm, HETMEM_MAX_SCHEDULE_TIMEOUT), 0);
	ASSERT_LT(harness_now_ms() - t0, 1000);
	ASSERT_EQ(munmap(p, 4 * PG), 0);
	ASSERT_EQ(hetmem_mm_sync(self->mm, HETMEM_MAX_SCHEDULE_TIMEOUT), 0);
	ASSERT_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), 1);
	mmu_interval_notifier_remove(&sub);
}

/* ---- teardown ---- */

TEST_F(mm, teardown_kills_the_mm)
{
	struct mmu_interval_notifier sub;
	struct mmu_notifier_range r;
	struct hetmem_mm_stats st;
	struct mm_struct *old = self->mm, *fresh;

	NEED_UFFD();
	memset(&sub, 0, sizeof(sub));
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, old, FAKE_BASE, PG, &count_ops), 0);
	mmgrab(old);
	hetmem_mm_teardown();
	ASSERT_EQ(calls, 1);				/* RELEASE */
	ASSERT_FALSE(mmget_not_zero(old));
	ASSERT_EQ(hetmem_mm_sync(old, 0), -EINVAL);
	ASSERT_EQ(hetmem_mm_get_stats(old, &st), 0);
	ASSERT_FALSE(st.monitor_running);
	ASSERT_EQ(st.notifiers, 1);

	/* Using the dead mm is refused, with a warning where it is misuse. */
	warns_begin(self);
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, old, FAKE_BASE, PG, &count_ops),
		  -EINVAL);
	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, old, FAKE_BASE, FAKE_BASE + PG);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
	ASSERT_EQ(warns_end(self), 2);
	ASSERT_EQ(calls, 1);
	ASSERT_EQ(mmu_notifier_invalidate_range_start_nonblock(&r), -EINVAL);

	/* The notifier can still be removed; its reference goes with it. */
	mmu_interval_notifier_remove(&sub);
	ASSERT_NULL(sub.mm);
	ASSERT_EQ(old->count, 1);

	fresh = hetmem_current_mm();
	ASSERT_NONNULL(fresh);
	ASSERT_NE(fresh, old);
	ASSERT_TRUE(mmget_not_zero(fresh));
	mmput(fresh);
	mmdrop(old);
	self->mm = fresh;
	/* The new mm works like the first one. */
	ASSERT_EQ(mmu_interval_notifier_insert(&sub, fresh, FAKE_BASE, PG, &count_ops), 0);
	mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, fresh, FAKE_BASE, FAKE_BASE + PG);
	mmu_notifier_invalidate_range_start(&r);
	mmu_notifier_invalidate_range_end(&r);
	ASSERT_EQ(calls, 2);
	mmu_interval_notifier_remove(&sub);
}

TEST_F(mm, teardown_twice_and_without_mm)
{
	hetmem_mm_teardown();
	hetmem_mm_teardown();	/* nothing to tear down */
	self->mm = hetmem_current_mm();
	ASSERT_NONNULL(self->mm);
	ASSERT_TRUE(mmget_not_zero(self->mm));
	mmput(self->mm);
}

/* ---- fork ---- */

static int child_checks(struct mm_struct *parent, struct mmu_interval_notifier *inherited)
{
	struct mm_struct *mm = hetmem_current_mm();
	struct mmu_notifier_range r;

	if (!mm || mm == parent)
		return 10;
	if (mmget_not_zero(parent))
		return 11;
	mmput(parent);				/* a no-op on a foreign mm */
	if (hetmem_mm_sync(parent, 0) != -EINVAL)
		return 12;
	if (!mmget_not_zero(mm))
		return 13;
	mmput(mm);
	if (inherited) {
		unsigned int before = calls;

		/* Never waits on the parent's state, never calls back. */
		mmu_interval_read_begin(inherited);
		mmu_interval_notifier_remove(inherited);
		hetmem_set_warn_mode(HETMEM_WARN_SILENT);
		mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, parent, 0, ULONG_MAX);
		mmu_notifier_invalidate_range_start(&r);
		mmu_notifier_invalidate_range_end(&r);
		hetmem_set_warn_mode(HETMEM_WARN_FATAL);
		if (calls != before)
			return 14;
	}
	return 0;
}

TEST_F(mm, forked_child_gets_its_own_mm)
{
	struct mmu_interval_notifier sub;
	bool inserted = false;
	pid_t pid;
	int ws;

	memset(&sub, 0, sizeof(sub));
	if (self->uffd) {
		ASSERT_EQ(mmu_interval_notifier_insert(&sub, self->mm, FAKE_BASE, PG,
						       &count_ops), 0);
		inserted = true;
	}
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(child_checks(self->mm, inserted ? &sub : NULL));
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	ASSERT_TRUE(WIFEXITED(ws));
	ASSERT_EQ(WEXITSTATUS(ws), 0);
	/* The parent's mm is unaffected. */
	ASSERT_EQ(hetmem_current_mm(), self->mm);
	ASSERT_TRUE(mmget_not_zero(self->mm));
	mmput(self->mm);
	if (inserted)
		mmu_interval_notifier_remove(&sub);
}
