/* SPDX-License-Identifier: MIT */
/*
 * hetmem - which invalidations real address-space operations produce
 * (spec hmm.md §1.5, mechanisms.md Q1): munmap, madvise DONTNEED / FREE,
 * every mremap flavour, MAP_FIXED over a mapping, fork (and a forked
 * child using hetmem itself), brk shrink, free() of a large malloc chunk,
 * mprotect (a documented blind spot), unwatched memory, teardown's
 * RELEASE, registration visible in smaps, the counters, and a callback
 * that itself unmaps watched memory (rescued).
 *
 * A range is watched once hmm_range_fault() walked it; each case inserts
 * a recording notifier, faults the range, does the operation, waits with
 * hetmem_mm_sync() and checks what the callback recorded.
 */
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <hetmem/core/spinlock.h>
#include <hetmem/core/warn.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

#include "core/internal.h"
#include "mm/pagewalk.h"
#include "harness.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED_MALLOC 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#ifndef TSAN_BUILD
#define TSAN_BUILD 0
#endif

#define PG HETMEM_PAGE_SIZE
#define MAX_REC 32
#define SYNC_TIMEOUT hetmem_msecs_to_jiffies(10000)

struct rec {
	enum mmu_notifier_event event;
	unsigned long start, end;
	unsigned int flags;
};

struct tsub {
	struct mmu_interval_notifier sub;
	struct hetmem_mutex lock;
	unsigned int n;
	struct rec recs[MAX_REC];
	/* The forbidden case: munmap this from inside the callback. */
	void *unmap_in_cb;
	size_t unmap_len;
	int64_t unmap_ms;
	int sync_ret;
	/* Allocate and free in the callback, as driver code does. */
	bool churn;
};

static void churn_allocator(unsigned int seed)
{
	void *p[16];
	unsigned int i;

	for (i = 0; i < 16; i++) {
		p[i] = malloc(16 + ((seed + i) % 32) * 48);
		if (p[i])
			memset(p[i], (int)i, 16);
	}
	for (i = 0; i < 16; i++)
		free(p[i]);
}

static bool tsub_invalidate(struct mmu_interval_notifier *sub,
			    const struct mmu_notifier_range *range,
			    unsigned long cur_seq)
{
	struct tsub *t = hetmem_container_of(sub, struct tsub, sub);
	unsigned int seen;
	void *victim;

	hetmem_mutex_lock(&t->lock);
	if (t->n < MAX_REC)
		t->recs[t->n] = (struct rec){ range->event, range->start,
					      range->end, range->flags };
	seen = ++t->n;
	mmu_interval_set_seq(sub, cur_seq);
	victim = t->unmap_in_cb;
	t->unmap_in_cb = NULL;
	hetmem_mutex_unlock(&t->lock);
	if (t->churn)
		churn_allocator(seen);
	if (victim) {
		int64_t t0 = harness_now_ms();

		munmap(victim, t->unmap_len);
		t->unmap_ms = harness_now_ms() - t0;
		t->sync_ret = hetmem_mm_sync(range->mm, 0);
	}
	return true;
}

static const struct mmu_interval_notifier_ops tsub_ops = {
	.invalidate = tsub_invalidate,
};

FIXTURE(ev) {
	struct mm_struct *mm;
	struct tsub *subs[8];
	unsigned int nsubs;
};

FIXTURE_SETUP(ev)
{
	struct hetmem_mm_caps caps;

	ASSERT_EQ(hetmem_mm_probe(&caps), 0);
	if (!caps.uffd)
		SKIP(return, "no usable userfaultfd: %s", caps.reason);
	self->mm = hetmem_current_mm();
	ASSERT_NONNULL(self->mm);
}

FIXTURE_TEARDOWN(ev)
{
	unsigned int i;

	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	for (i = 0; i < self->nsubs; i++) {
		mmu_interval_notifier_remove(&self->subs[i]->sub);
		free(self->subs[i]);
	}
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

/* Fault [start, end) through @t with the driver protocol: now watched. */
static int fault_range(struct tsub *t, unsigned long start, unsigned long end)
{
	unsigned long n = (end - start) / PG;
	unsigned long *pfns = calloc(n, sizeof(*pfns));
	struct hmm_range range = {
		.notifier = &t->sub, .start = start, .end = end,
		.hmm_pfns = pfns, .default_flags = HMM_PFN_REQ_FAULT,
	};
	int ret = -EBUSY, tries;

	ASSERT_NONNULL(pfns);
	for (tries = 0; tries < 100 && ret == -EBUSY; tries++) {
		range.notifier_seq = mmu_interval_read_begin(&t->sub);
		mmap_read_lock(t->sub.mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(t->sub.mm);
	}
	free(pfns);
	return ret;
}

static struct tsub *add_sub(FIXTURE_DATA(ev) *self, void *start, size_t len)
{
	struct tsub *t = calloc(1, sizeof(*t));

	ASSERT_NONNULL(t);
	ASSERT_LT(self->nsubs, 8);
	hetmem_mutex_init(&t->lock);
	ASSERT_EQ(mmu_interval_notifier_insert(&t->sub, self->mm,
					       (unsigned long)start, len,
					       &tsub_ops), 0);
	self->subs[self->nsubs++] = t;
	return t;
}

/* Notifier over [start, start + len), and watch it. */
static struct tsub *watch(FIXTURE_DATA(ev) *self, void *start, size_t len)
{
	struct tsub *t = add_sub(self, start, len);

	ASSERT_EQ(fault_range(t, (unsigned long)start,
			      (unsigned long)start + len), 0);
	return t;
}

static void sync_events(FIXTURE_DATA(ev) *self)
{
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
}

/*
 * @n pages with an inaccessible guard page on each side, so the kernel
 * cannot merge the mapping with a neighbour (registration covers whole
 * mappings). Filled so that every page is present.
 */
static char *map_isolated(unsigned long n)
{
	char *g = mmap(NULL, (n + 2) * PG, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *p;

	ASSERT_NE(g, MAP_FAILED);
	p = mmap(g + PG, n * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(p, g + PG);
	memset(p, 0x5a, n * PG);
	return p;
}

static unsigned int nrec(struct tsub *t)
{
	unsigned int n;

	hetmem_mutex_lock(&t->lock);
	n = t->n;
	hetmem_mutex_unlock(&t->lock);
	return n;
}

/* Exactly one callback, with this event and range. */
static void expect_one(struct tsub *t, enum mmu_notifier_event ev,
		       const void *start, unsigned long len)
{
	ASSERT_EQ(nrec(t), 1);
	ASSERT_EQ(t->recs[0].event, ev);
	ASSERT_EQ(t->recs[0].start, (unsigned long)start);
	ASSERT_EQ(t->recs[0].end, (unsigned long)start + len);
	ASSERT_TRUE(t->recs[0].flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
}

/* At least one callback; every one with this event and exact range. */
static void expect_all(struct tsub *t, enum mmu_notifier_event ev,
		       const void *start, unsigned long len)
{
	unsigned int i, n = nrec(t);

	ASSERT_GE(n, 1);
	ASSERT_LE(n, MAX_REC);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(t->recs[i].event, ev);
		ASSERT_EQ(t->recs[i].start, (unsigned long)start);
		ASSERT_EQ(t->recs[i].end, (unsigned long)start + len);
	}
}

/* ---- munmap, madvise ---- */

TEST_F(ev, munmap_whole)
{
	char *p = map_isolated(8);
	struct tsub *t = watch(self, p, 8 * PG);

	ASSERT_EQ(nrec(t), 0);
	ASSERT_EQ(munmap(p, 8 * PG), 0);
	sync_events(self);
	expect_one(t, MMU_NOTIFY_UNMAP, p, 8 * PG);
}

TEST_F(ev, munmap_middle_page)
{
	char *p = map_isolated(8);
	struct tsub *t = watch(self, p, 8 * PG);

	ASSERT_EQ(munmap(p + 3 * PG, PG), 0);
	sync_events(self);
	expect_one(t, MMU_NOTIFY_UNMAP, p + 3 * PG, PG);
	/* Both halves are still watched. */
	ASSERT_EQ(munmap(p, PG), 0);
	ASSERT_EQ(munmap(p + 7 * PG, PG), 0);
	sync_events(self);
	ASSERT_EQ(nrec(t), 3);
	ASSERT_EQ(t->recs[1].start, (unsigned long)p);
	ASSERT_EQ(t->recs[2].start, (unsigned long)p + 7 * PG);
}

TEST_F(ev, madvise_dontneed_clears_exact_range)
{
	char *p = map_isolated(8);
	struct tsub *t = watch(self, p, 8 * PG);

	ASSERT_EQ(madvise(p + 2 * PG, 3 * PG, MADV_DONTNEED), 0);
	sync_events(self);
	expect_one(t, MMU_NOTIFY_CLEAR, p + 2 * PG, 3 * PG);
	ASSERT_EQ(p[2 * PG], 0);	/* zapped */
}

TEST_F(ev, madvise_free_clears)
{
	char *p = map_isolated(8);
	struct tsub *t = watch(self, p, 8 * PG);

	if (madvise(p + PG, 2 * PG, MADV_FREE))
		SKIP(return, "MADV_FREE: %s", strerror(errno));
	sync_events(self);
	expect_one(t, MMU_NOTIFY_CLEAR, p + PG, 2 * PG);
}

/* ---- mremap ---- */

static void *sys_mremap(void *old, size_t old_len, size_t new_len, int flags,
			void *new_addr)
{
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

TEST_F(ev, mremap_move_fixed_unmaps_old_and_keeps_watching_new)
{
	char *p = map_isolated(8), *dst = map_isolated(8), *q;
	struct tsub *t = watch(self, p, 8 * PG), *u;

	q = sys_mremap(p, 8 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(q, dst);
	sync_events(self);
	expect_all(t, MMU_NOTIFY_UNMAP, p, 8 * PG);
	ASSERT_EQ(q[0], 0x5a);

	/* The registration moved with the mapping: no new fault needed. */
	u = add_sub(self, q, 8 * PG);
	ASSERT_EQ(munmap(q, 8 * PG), 0);
	sync_events(self);
	expect_one(u, MMU_NOTIFY_UNMAP, q, 8 * PG);
}

TEST_F(ev, mremap_grow_that_moves_unmaps_old)
{
	char *p = map_isolated(4), *q;
	struct tsub *t = watch(self, p, 4 * PG);

	/* The guard page after p is in the way: growing must move. */
	q = sys_mremap(p, 4 * PG, 8 * PG, MREMAP_MAYMOVE, NULL);
	ASSERT_NE(q, MAP_FAILED);
	ASSERT_NE(q, p);
	sync_events(self);
	expect_all(t, MMU_NOTIFY_UNMAP, p, 4 * PG);
	ASSERT_EQ(munmap(q, 8 * PG), 0);
}

TEST_F(ev, mremap_shrink_unmaps_tail)
{
	char *p = map_isolated(8), *q;
	struct tsub *t = watch(self, p, 8 * PG);

	q = sys_mremap(p, 8 * PG, 5 * PG, 0, NULL);
	ASSERT_EQ(q, p);
	sync_events(self);
	expect_one(t, MMU_NOTIFY_UNMAP, p + 5 * PG, 3 * PG);
}

TEST_F(ev, mremap_dontunmap_unmaps_old)
{
	char *p = map_isolated(8), *q;
	struct tsub *t = watch(self, p, 8 * PG);

	q = sys_mremap(p, 8 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	if (q == MAP_FAILED && (errno == EINVAL))
		SKIP(return, "MREMAP_DONTUNMAP refused: %s", strerror(errno));
	ASSERT_NE(q, MAP_FAILED);
	sync_events(self);
	expect_all(t, MMU_NOTIFY_UNMAP, p, 8 * PG);
	ASSERT_EQ(q[PG], 0x5a);
	ASSERT_EQ(munmap(q, 8 * PG), 0);
}

TEST_F(ev, map_fixed_over_part_unmaps_it)
{
	char *p = map_isolated(8), *q;
	struct tsub *t = watch(self, p, 8 * PG);

	q = mmap(p + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(q, p + 2 * PG);
	sync_events(self);
	expect_one(t, MMU_NOTIFY_UNMAP, p + 2 * PG, 2 * PG);
}

/* ---- fork ---- */

/* waitpid() with a deadline: a hung child is killed and reported. */
static int wait_child_ms(pid_t pid, long ms)
{
	int64_t end = harness_now_ms() + ms;
	int ws;

	for (;;) {
		pid_t r = waitpid(pid, &ws, WNOHANG);

		if (r == pid)
			return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
		if (r < 0 || harness_now_ms() > end)
			break;
		harness_sleep_ms(1);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &ws, 0);
	return -1;
}

static int wait_child(pid_t pid)
{
	return wait_child_ms(pid, 20000);
}

TEST_F(ev, fork_write_protects_private_not_shared)
{
	char *p = map_isolated(8);
	char *s = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct tsub *t = watch(self, p, 8 * PG), *u;
	bool shared_ok;
	pid_t pid;

	ASSERT_NE(s, MAP_FAILED);
	u = add_sub(self, s, 8 * PG);
	shared_ok = fault_range(u, (unsigned long)s, (unsigned long)s + 8 * PG) == 0;
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(wait_child(pid), 0);
	sync_events(self);
	ASSERT_EQ(nrec(t), 1);
	ASSERT_EQ(t->recs[0].event, MMU_NOTIFY_PROTECTION_PAGE);
	/* The whole registered mapping, which is exactly p's. */
	ASSERT_EQ(t->recs[0].start, (unsigned long)p);
	ASSERT_EQ(t->recs[0].end, (unsigned long)p + 8 * PG);
	ASSERT_EQ(nrec(u), 0);
	if (!shared_ok)
		TH_LOG("shared anonymous memory could not be watched here");
	munmap(s, 8 * PG);
}

/* Exit codes of the child below: which step failed. */
static int child_uses_hetmem(struct mm_struct *parent_mm)
{
	struct mm_struct *mm = hetmem_current_mm();
	struct tsub t;
	char *p;

	if (!mm || mm == parent_mm)
		return 10;
	if (mmget_not_zero(parent_mm))
		return 11;
	if (hetmem_mm_sync(parent_mm, 0) != -EINVAL)
		return 12;
	if (!mmget_not_zero(mm))
		return 13;
	mmput(mm);
	p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 14;
	memset(&t, 0, sizeof(t));
	hetmem_mutex_init(&t.lock);
	if (mmu_interval_notifier_insert(&t.sub, mm, (unsigned long)p, 4 * PG,
					 &tsub_ops))
		return 15;
	if (fault_range(&t, (unsigned long)p, (unsigned long)p + 4 * PG))
		return 16;
	if (munmap(p, 4 * PG))
		return 17;
	if (hetmem_mm_sync(mm, SYNC_TIMEOUT))
		return 18;
	if (t.n != 1 || t.recs[0].event != MMU_NOTIFY_UNMAP ||
	    t.recs[0].start != (unsigned long)p ||
	    t.recs[0].end != (unsigned long)p + 4 * PG)
		return 19;
	mmu_interval_notifier_remove(&t.sub);
	return 0;
}

TEST_F(ev, fork_child_has_its_own_mm)
{
	char *p = map_isolated(4);
	struct tsub *t = watch(self, p, 4 * PG);
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int ret = child_uses_hetmem(self->mm);

		/* Inherited notifiers belong to the parent: a no-op here. */
		mmu_interval_notifier_remove(&t->sub);
		_exit(ret);
	}
	ASSERT_EQ(wait_child(pid), 0);
	sync_events(self);
	/* The parent's notifier saw the fork and nothing of the child. */
	ASSERT_EQ(nrec(t), 1);
	ASSERT_EQ(t->recs[0].event, MMU_NOTIFY_PROTECTION_PAGE);
	ASSERT_TRUE(mmget_not_zero(self->mm));
	mmput(self->mm);
}

struct churn_arg {
	char *p;
	int stop;
	int running;
};

/* Keeps the monitor inside callbacks (which allocate) as much as it can. */
static void *churn_events(void *arg)
{
	struct churn_arg *c = arg;
	unsigned int i = 0;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		char *page = c->p + (i++ % 8) * PG;

		madvise(page, PG, MADV_DONTNEED);
		page[0] = 1;
		__atomic_store_n(&c->running, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *child_thread_allocates(void *arg)
{
	churn_allocator((unsigned int)(uintptr_t)arg);
	return arg;
}

/*
 * The child starts a thread, whose start-up allocates, and allocates.
 * ThreadSanitizer cannot start threads in the child of a multi-threaded
 * fork ("dup thread with used id": glibc hands the child a stack cached
 * from a parent thread that TSan still counts as alive).
 */
static int child_allocates(void)
{
	pthread_t th;
	void *ret = NULL;

	churn_allocator(3);
	if (TSAN_BUILD)
		return 0;
	if (pthread_create(&th, NULL, child_thread_allocates, (void *)7))
		return 20;
	if (pthread_join(th, &ret) || ret != (void *)7)
		return 21;
	return 0;
}

/*
 * The forked child gets every lock as it was at the fork. A monitor caught
 * inside an allocator (a callback allocating, or a thread starting up)
 * left a sanitizer allocator's lock held in the child for good; the
 * monitor is parked across fork() and its threads are past their start-up
 * before anyone can fork.
 */
TEST_F(ev, fork_while_the_monitor_is_busy)
{
	char *p = map_isolated(8);
	struct tsub *t = add_sub(self, p, 8 * PG);
	int64_t end = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	struct churn_arg c = { .p = p };
	unsigned int forks = 0;
	int status;
	pthread_t th;

	t->churn = true;
	ASSERT_EQ(fault_range(t, (unsigned long)p, (unsigned long)p + 8 * PG), 0);
	ASSERT_EQ(pthread_create(&th, NULL, churn_events, &c), 0);
	/* Its start-up allocates too: this test is about hetmem's threads. */
	ASSERT_TRUE(harness_wait_int(&c.running, 1, 10000));
	while (forks < 10 || (harness_now_ms() < end && forks < 200)) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(child_allocates());
		if (pid < 0)
			break;
		status = wait_child_ms(pid, 10000);
		if (status != 0) {
			TH_LOG("child %u: status %d", forks, status);
			break;
		}
		forks++;
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ASSERT_GE(forks, 10);
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	/* Every fork and every madvise reached the notifier. */
	ASSERT_GT(nrec(t), forks);
}

/* ---- blind spots and unwatched memory ---- */

TEST_F(ev, mprotect_is_not_reported)
{
	char *p = map_isolated(8);
	struct tsub *t = watch(self, p, 8 * PG);

	ASSERT_EQ(mprotect(p, 8 * PG, PROT_READ), 0);
	ASSERT_EQ(mprotect(p, 8 * PG, PROT_NONE), 0);
	ASSERT_EQ(mprotect(p, 8 * PG, PROT_READ | PROT_WRITE), 0);
	sync_events(self);
	ASSERT_EQ(nrec(t), 0);
	/* Still watched: the next munmap is reported. */
	ASSERT_EQ(munmap(p, 8 * PG), 0);
	sync_events(self);
	expect_one(t, MMU_NOTIFY_UNMAP, p, 8 * PG);
}

TEST_F(ev, unwatched_memory_is_not_reported)
{
	char *p = map_isolated(8), *q = map_isolated(8);
	struct hetmem_mm_stats before, after;
	struct tsub *t = add_sub(self, p, 8 * PG);	/* never faulted */
	struct tsub *u = watch(self, q, 8 * PG);	/* the monitor runs */

	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &before), 0);
	ASSERT_EQ(munmap(p, 8 * PG), 0);
	sync_events(self);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &after), 0);
	ASSERT_EQ(nrec(t), 0);
	ASSERT_EQ(after.events[HETMEM_MM_EV_UNMAP], before.events[HETMEM_MM_EV_UNMAP]);
	ASSERT_EQ(nrec(u), 0);
}

/* ---- the heap ---- */

TEST_F(ev, brk_shrink_unmaps)
{
	unsigned long n = 16, start, old_top;
	struct tsub *t;
	char *p;

	p = sbrk((intptr_t)((n + 1) * PG));
	if (p == (void *)-1)
		SKIP(return, "sbrk: %s", strerror(errno));
	old_top = (unsigned long)p + (n + 1) * PG;
	start = ((unsigned long)p + PG - 1) & HETMEM_PAGE_MASK;
	memset((void *)start, 1, n * PG);
	t = watch(self, (void *)start, n * PG);
	if ((unsigned long)sbrk(0) != old_top)
		SKIP(return, "malloc moved the break meanwhile");
	ASSERT_NE(sbrk(-(intptr_t)((n + 1) * PG)), (void *)-1);
	sync_events(self);
	ASSERT_EQ(nrec(t), 1);
	ASSERT_EQ(t->recs[0].event, MMU_NOTIFY_UNMAP);
	ASSERT_LE(t->recs[0].start, start);
	ASSERT_GE(t->recs[0].end, start + n * PG);
}

TEST_F(ev, free_of_large_malloc_unmaps)
{
	size_t len = 1 << 20;
	unsigned long start;
	struct tsub *t;
	char *m;

#ifdef SANITIZED_MALLOC
	SKIP(return, "the sanitizer's allocator does not unmap on free()");
#endif
	m = malloc(len);
	ASSERT_NONNULL(m);
	memset(m, 1, len);
	start = ((unsigned long)m + PG - 1) & HETMEM_PAGE_MASK;
	t = watch(self, (void *)start, 64 * PG);
	free(m);
	sync_events(self);
	ASSERT_EQ(nrec(t), 1);
	ASSERT_EQ(t->recs[0].event, MMU_NOTIFY_UNMAP);
	ASSERT_LE(t->recs[0].start, start);
	ASSERT_GE(t->recs[0].end, start + 64 * PG);
}

/* ---- teardown, registration, counters ---- */

TEST_F(ev, teardown_sends_one_release_to_everyone)
{
	char *p = map_isolated(4), *q = map_isolated(4);
	struct tsub *t = watch(self, p, 4 * PG), *u = watch(self, q, 4 * PG);
	struct tsub *v = add_sub(self, (void *)0x400000000000UL, PG);
	struct tsub *all[3] = { t, u, v };
	struct mm_struct *old = self->mm;
	unsigned int i;

	mmgrab(old);
	hetmem_mm_teardown();
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(nrec(all[i]), 1);
		ASSERT_EQ(all[i]->recs[0].event, MMU_NOTIFY_RELEASE);
		ASSERT_EQ(all[i]->recs[0].start, 0);
		ASSERT_EQ(all[i]->recs[0].end, ULONG_MAX);
		ASSERT_TRUE(all[i]->recs[0].flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	}
	ASSERT_FALSE(mmget_not_zero(old));
	ASSERT_NE(hetmem_current_mm(), old);
	/* Nothing is watched any more, and nothing else arrives. */
	ASSERT_EQ(munmap(p, 4 * PG), 0);
	harness_sleep_ms(20);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(nrec(all[i]), 1);
	mmdrop(old);
	/* Removal after teardown works (fixture teardown does it). */
}

static bool smaps_has_uw(const void *addr)
{
	unsigned long a = (unsigned long)addr, s, e;
	bool in = false, uw = false;
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "re");

	ASSERT_NONNULL(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') &&
		    line[strspn(line, "0123456789abcdef")] == '-') {
			in = s <= a && a < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			uw = strstr(line, " uw") != NULL;
			break;
		}
	}
	fclose(f);
	return uw;
}

TEST_F(ev, registration_follows_notifiers)
{
	char *p = map_isolated(4);
	struct tsub *t;

	ASSERT_FALSE(smaps_has_uw(p));
	t = add_sub(self, p, 4 * PG);
	ASSERT_FALSE(smaps_has_uw(p));	/* inserting does not register */
	ASSERT_EQ(fault_range(t, (unsigned long)p, (unsigned long)p + 4 * PG), 0);
	ASSERT_TRUE(smaps_has_uw(p));
	mmu_interval_notifier_remove(&t->sub);
	self->nsubs--;
	free(t);
	ASSERT_FALSE(smaps_has_uw(p));
	ASSERT_EQ(munmap(p, 4 * PG), 0);
}

TEST_F(ev, counters_count_events_by_type)
{
	char *p = map_isolated(16), *dst = map_isolated(4), *q;
	struct hetmem_mm_stats a, b;
	struct tsub *t = watch(self, p, 16 * PG);
	pid_t pid;

	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &a), 0);
	ASSERT_TRUE(a.monitor_running);
	ASSERT_EQ(a.notifiers, 1);
	ASSERT_GE(a.watched_bytes, 16 * PG);
	ASSERT_GE(a.range_faults, 1);
	ASSERT_EQ(munmap(p + 15 * PG, PG), 0);
	ASSERT_EQ(madvise(p, PG, MADV_DONTNEED), 0);
	ASSERT_EQ(madvise(p + PG, PG, MADV_DONTNEED), 0);
	q = sys_mremap(p + 4 * PG, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(q, dst);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(wait_child(pid), 0);
	sync_events(self);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &b), 0);
	ASSERT_GE(b.events[HETMEM_MM_EV_UNMAP] - a.events[HETMEM_MM_EV_UNMAP], 1);
	ASSERT_EQ(b.events[HETMEM_MM_EV_REMOVE] - a.events[HETMEM_MM_EV_REMOVE], 2);
	ASSERT_EQ(b.events[HETMEM_MM_EV_REMAP] - a.events[HETMEM_MM_EV_REMAP], 1);
	ASSERT_EQ(b.events[HETMEM_MM_EV_FORK] - a.events[HETMEM_MM_EV_FORK], 1);
	ASSERT_EQ(b.events[HETMEM_MM_EV_OTHER], a.events[HETMEM_MM_EV_OTHER]);
	ASSERT_EQ(b.callbacks - a.callbacks, nrec(t));
	ASSERT_GE(b.invalidations - a.invalidations, nrec(t));
	ASSERT_GE(nrec(t), 5);
	munmap(q, 4 * PG);
}

/* ---- a callback that breaks the rules ---- */

TEST_F(ev, callback_that_unmaps_watched_memory_is_rescued)
{
	char *p = map_isolated(4), *q = map_isolated(4);
	struct tsub *t = watch(self, p, 4 * PG), *u = watch(self, q, 4 * PG);
	struct hetmem_mm_stats st;
	unsigned long warns;

	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	hetmem_mutex_lock(&t->lock);
	t->unmap_in_cb = q;
	t->unmap_len = 4 * PG;
	hetmem_mutex_unlock(&t->lock);
	ASSERT_EQ(munmap(p, 4 * PG), 0);
	sync_events(self);
	/* The callback's munmap came back, in about HETMEM_MM_RESCUE_MS. */
	ASSERT_LT(t->unmap_ms, 1000);
	ASSERT_EQ(t->sync_ret, -EDEADLK);	/* sync from a callback */
	expect_one(t, MMU_NOTIFY_UNMAP, p, 4 * PG);
	expect_one(u, MMU_NOTIFY_UNMAP, q, 4 * PG);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &st), 0);
	ASSERT_GE(st.rescued_reads, 1);
	/* Warned before the events were handed over, so already counted. */
	ASSERT_EQ(hetmem_warn_count() - warns, 1);
}
