/* SPDX-License-Identifier: MIT */
/*
 * hetmem - stress: the collision-retry protocol under races.
 *
 *  - mirror_never_stale: readers run read_begin / hmm_range_fault /
 *    driver lock / read_retry and commit a "device mirror" of the
 *    generation number stored in each page, while writers invalidate
 *    random, overlapping ranges and bump the generations of those pages
 *    between range_start and range_end. Invariant, checked under the
 *    driver lock by readers and writers: every valid mirror entry equals
 *    the page's current generation.
 *  - insert_remove_churn: notifiers are removed and re-inserted while
 *    invalidations run; a callback on a removed notifier is an error
 *    (removed notifiers are poisoned).
 *  - real_events: threads munmap / re-mmap / madvise watched chunks while
 *    readers run the protocol with hmm_range_fault(); only -EFAULT and
 *    -EBUSY may fail a fault, and nothing hangs.
 *
 * Bounded by harness_duration_s().
 */
#include <pthread.h>
#include <sys/mman.h>

#include <hetmem/core/spinlock.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

#include "core/internal.h"
#include "mm/pagewalk.h"
#include "harness.h"

#define PG HETMEM_PAGE_SIZE

static bool need_uffd(void)
{
	struct hetmem_mm_caps caps;

	return hetmem_mm_probe(&caps) == 0 && caps.uffd;
}

static void cleanup(void)
{
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

/* Teardown runs even when a case fails half-way. */
FIXTURE(st) {
	int unused;
};

FIXTURE_SETUP(st)
{
}

FIXTURE_TEARDOWN(st)
{
	cleanup();
}

static bool time_left(int64_t end)
{
	return harness_now_ms() < end;
}

/* ------------------------------------------------------------------ */
/* 1. the mirror is never stale */

#define M_PAGES 64
#define M_READERS 3
#define M_WRITERS 2

struct mirror {
	struct mm_struct *mm;
	struct mmu_interval_notifier sub;
	struct hetmem_mutex lock;		/* the driver lock */
	uint64_t *pages;			/* generation at page start */
	uint64_t mirror[M_PAGES];		/* under lock */
	bool valid[M_PAGES];			/* under lock */
	uint64_t gen;				/* atomic */
	int64_t end_ms;
	unsigned long commits, retries, busy, errors, checks;
};

static uint64_t *page_gen(struct mirror *m, unsigned long i)
{
	return (uint64_t *)((char *)m->pages + i * PG);
}

static bool mirror_invalidate(struct mmu_interval_notifier *sub,
			      const struct mmu_notifier_range *range,
			      unsigned long cur_seq)
{
	struct mirror *m = hetmem_container_of(sub, struct mirror, sub);
	unsigned long base = (unsigned long)m->pages, i;

	hetmem_mutex_lock(&m->lock);
	mmu_interval_set_seq(sub, cur_seq);
	for (i = 0; i < M_PAGES; i++) {
		unsigned long a = base + i * PG;

		if (a < range->end && range->start < a + PG)
			m->valid[i] = false;
	}
	hetmem_mutex_unlock(&m->lock);
	return true;
}

static const struct mmu_interval_notifier_ops mirror_ops = {
	.invalidate = mirror_invalidate,
};

/* Under the lock: every valid entry matches memory. */
static unsigned long mirror_check(struct mirror *m)
{
	unsigned long i, bad = 0;

	for (i = 0; i < M_PAGES; i++)
		if (m->valid[i] &&
		    m->mirror[i] != __atomic_load_n(page_gen(m, i), __ATOMIC_RELAXED))
			bad++;
	m->checks++;
	return bad;
}

static void *mirror_reader(void *arg)
{
	struct mirror *m = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	unsigned long pfns[M_PAGES];
	uint64_t snap[M_PAGES];
	unsigned long commits = 0, retries = 0, busy = 0, errors = 0;

	while (time_left(m->end_ms)) {
		unsigned long a = harness_rand(&seed) % M_PAGES;
		unsigned long n = 1 + harness_rand(&seed) % (M_PAGES - a), i, seq;
		struct hmm_range range = {
			.notifier = &m->sub,
			.start = (unsigned long)m->pages + a * PG,
			.end = (unsigned long)m->pages + (a + n) * PG,
			.hmm_pfns = pfns,
			.default_flags = harness_rand(&seed) & 1 ? HMM_PFN_REQ_FAULT : 0,
		};
		int ret;

		seq = mmu_interval_read_begin(&m->sub);
		range.notifier_seq = seq;
		memset(pfns, 0, sizeof(pfns));
		mmap_read_lock(m->mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(m->mm);
		if (ret == -EBUSY) {
			busy++;
			continue;
		}
		if (ret) {
			errors++;
			continue;
		}
		/* The "device" copies through the frames it was given. */
		for (i = 0; i < n; i++) {
			unsigned long pfn = hetmem_hmm_pfn_to_pfn(pfns[i]);

			if (!(pfns[i] & HMM_PFN_VALID) || !hetmem_pfn_is_system(pfn)) {
				errors++;
				break;
			}
			snap[i] = __atomic_load_n((uint64_t *)hetmem_pfn_to_virt(pfn),
						  __ATOMIC_RELAXED);
			if (mmu_interval_check_retry(&m->sub, seq))
				break;
		}
		if (i < n) {
			retries++;
			continue;
		}
		hetmem_mutex_lock(&m->lock);
		if (mmu_interval_read_retry(&m->sub, seq)) {
			hetmem_mutex_unlock(&m->lock);
			retries++;
			continue;
		}
		for (i = 0; i < n; i++) {
			m->mirror[a + i] = snap[i];
			m->valid[a + i] = true;
		}
		errors += mirror_check(m);
		hetmem_mutex_unlock(&m->lock);
		commits++;
		if (!(harness_rand(&seed) & 3))
			harness_sleep_us(20);	/* let writers at the lock */
	}
	__atomic_fetch_add(&m->commits, commits, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->retries, retries, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->busy, busy, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->errors, errors, __ATOMIC_RELAXED);
	return NULL;
}

static void *mirror_writer(void *arg)
{
	struct mirror *m = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	unsigned long errors = 0;

	while (time_left(m->end_ms)) {
		unsigned long a = harness_rand(&seed) % M_PAGES;
		unsigned long n = 1 + harness_rand(&seed) % (M_PAGES - a), i;
		unsigned long s = (unsigned long)m->pages + a * PG;
		struct mmu_notifier_range r;
		uint64_t g;

		mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, m->mm, s, s + n * PG);
		mmu_notifier_invalidate_range_start(&r);
		g = __atomic_add_fetch(&m->gen, 1, __ATOMIC_RELAXED);
		for (i = a; i < a + n; i++) {
			__atomic_store_n(page_gen(m, i), g, __ATOMIC_RELAXED);
			if (!(harness_rand(&seed) & 7))
				sched_yield();
		}
		hetmem_mutex_lock(&m->lock);
		for (i = a; i < a + n; i++)
			errors += m->valid[i];	/* nobody may commit mid-change */
		errors += mirror_check(m);
		hetmem_mutex_unlock(&m->lock);
		mmu_notifier_invalidate_range_end(&r);
		if (!(harness_rand(&seed) & 3))
			harness_sleep_us(50);
	}
	__atomic_fetch_add(&m->errors, errors, __ATOMIC_RELAXED);
	return NULL;
}

TEST_F_TIMEOUT(st, mirror_never_stale, 60)
{
	pthread_t rd[M_READERS], wr[M_WRITERS];
	struct mirror *m;
	unsigned int i;

	if (!need_uffd())
		SKIP(return, "no usable userfaultfd");
	m = calloc(1, sizeof(*m));
	ASSERT_NONNULL(m);
	m->mm = hetmem_current_mm();
	ASSERT_NONNULL(m->mm);
	hetmem_mutex_init(&m->lock);
	m->pages = mmap(NULL, M_PAGES * PG, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(m->pages, MAP_FAILED);
	memset(m->pages, 0, M_PAGES * PG);	/* present: snapshots need no fault */
	ASSERT_EQ(mmu_interval_notifier_insert(&m->sub, m->mm, (unsigned long)m->pages,
					       M_PAGES * PG, &mirror_ops), 0);
	m->end_ms = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	for (i = 0; i < M_READERS; i++)
		ASSERT_EQ(pthread_create(&rd[i], NULL, mirror_reader, m), 0);
	for (i = 0; i < M_WRITERS; i++)
		ASSERT_EQ(pthread_create(&wr[i], NULL, mirror_writer, m), 0);
	for (i = 0; i < M_READERS; i++)
		ASSERT_EQ(pthread_join(rd[i], NULL), 0);
	for (i = 0; i < M_WRITERS; i++)
		ASSERT_EQ(pthread_join(wr[i], NULL), 0);
	TH_LOG("commits %lu retries %lu busy %lu checks %lu generations %lu",
	       m->commits, m->retries, m->busy, m->checks, (unsigned long)m->gen);
	ASSERT_EQ(m->errors, 0);
	ASSERT_GT(m->commits, 0);
	ASSERT_GT(m->gen, 0);
	mmu_interval_notifier_remove(&m->sub);
	munmap(m->pages, M_PAGES * PG);
	free(m);
}

/* ------------------------------------------------------------------ */
/* 2. insert / remove churn */

#define C_SLOTS 32
#define C_INVALIDATORS 2
#define C_BASE 0x300000000000UL

struct churn;

struct cslot {
	struct mmu_interval_notifier sub;
	struct churn *c;
	int live;		/* atomic: inserted and not removed */
};

struct churn {
	struct mm_struct *mm;
	struct cslot slots[C_SLOTS];
	int64_t end_ms;
	unsigned long calls, bad, cycles, invalidations;
};

static bool churn_invalidate(struct mmu_interval_notifier *sub,
			     const struct mmu_notifier_range *range,
			     unsigned long cur_seq)
{
	struct cslot *s = hetmem_container_of(sub, struct cslot, sub);

	if (!__atomic_load_n(&s->live, __ATOMIC_ACQUIRE))
		__atomic_fetch_add(&s->c->bad, 1, __ATOMIC_RELAXED);
	if (!(cur_seq & 1))
		__atomic_fetch_add(&s->c->bad, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->c->calls, 1, __ATOMIC_RELAXED);
	mmu_interval_set_seq(sub, cur_seq);
	return true;
}

static bool churn_poisoned(struct mmu_interval_notifier *sub,
			   const struct mmu_notifier_range *range,
			   unsigned long cur_seq)
{
	struct cslot *s = hetmem_container_of(sub, struct cslot, sub);

	__atomic_fetch_add(&s->c->bad, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmu_interval_notifier_ops churn_ops = {
	.invalidate = churn_invalidate,
};

static const struct mmu_interval_notifier_ops poisoned_ops = {
	.invalidate = churn_poisoned,
};

static void *churn_invalidator(void *arg)
{
	struct churn *c = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	unsigned long k = 0;

	while (time_left(c->end_ms)) {
		unsigned long a = harness_rand(&seed) % (C_SLOTS * 4);
		unsigned long n = 1 + harness_rand(&seed) % 8;
		struct mmu_notifier_range r;

		mmu_notifier_range_init(&r, MMU_NOTIFY_CLEAR, 0, c->mm,
					C_BASE + a * PG, C_BASE + (a + n) * PG);
		mmu_notifier_invalidate_range_start(&r);
		if (!(harness_rand(&seed) & 7))
			sched_yield();
		mmu_notifier_invalidate_range_end(&r);
		k++;
		/* Leave gaps between epochs, or removals starve (as in the kernel). */
		if (!(harness_rand(&seed) & 15))
			harness_sleep_us(50);
	}
	__atomic_fetch_add(&c->invalidations, k, __ATOMIC_RELAXED);
	return NULL;
}

static void *churner(void *arg)
{
	struct churn *c = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	unsigned long cycles = 0;

	while (time_left(c->end_ms)) {
		struct cslot *s = &c->slots[harness_rand(&seed) % C_SLOTS];
		unsigned long seq;

		if (!__atomic_load_n(&s->live, __ATOMIC_ACQUIRE)) {
			/* Some other churner owns it right now. */
			continue;
		}
		seq = mmu_interval_read_begin(&s->sub);
		if (!(seq & 1))
			__atomic_fetch_add(&c->bad, 1, __ATOMIC_RELAXED);
		mmu_interval_notifier_remove(&s->sub);
		__atomic_store_n(&s->live, 0, __ATOMIC_RELEASE);
		s->sub.ops = &poisoned_ops;
		if (!(harness_rand(&seed) & 3))
			sched_yield();
		__atomic_store_n(&s->live, 1, __ATOMIC_RELEASE);
		if (mmu_interval_notifier_insert(&s->sub, c->mm,
						 C_BASE + (s - c->slots) * 4 * PG,
						 (1 + harness_rand(&seed) % 6) * PG,
						 &churn_ops))
			__atomic_fetch_add(&c->bad, 1, __ATOMIC_RELAXED);
		cycles++;
	}
	__atomic_fetch_add(&c->cycles, cycles, __ATOMIC_RELAXED);
	return NULL;
}

TEST_F_TIMEOUT(st, insert_remove_churn, 60)
{
	pthread_t inv[C_INVALIDATORS], ch;
	struct hetmem_mm_stats st;
	struct churn *c;
	unsigned int i;

	if (!need_uffd())
		SKIP(return, "no usable userfaultfd");
	c = calloc(1, sizeof(*c));
	ASSERT_NONNULL(c);
	c->mm = hetmem_current_mm();
	ASSERT_NONNULL(c->mm);
	for (i = 0; i < C_SLOTS; i++) {
		c->slots[i].c = c;
		c->slots[i].live = 1;
		ASSERT_EQ(mmu_interval_notifier_insert(&c->slots[i].sub, c->mm,
						       C_BASE + i * 4 * PG, 4 * PG,
						       &churn_ops), 0);
	}
	c->end_ms = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	for (i = 0; i < C_INVALIDATORS; i++)
		ASSERT_EQ(pthread_create(&inv[i], NULL, churn_invalidator, c), 0);
	ASSERT_EQ(pthread_create(&ch, NULL, churner, c), 0);
	for (i = 0; i < C_INVALIDATORS; i++)
		ASSERT_EQ(pthread_join(inv[i], NULL), 0);
	ASSERT_EQ(pthread_join(ch, NULL), 0);
	TH_LOG("cycles %lu invalidations %lu callbacks %lu", c->cycles,
	       c->invalidations, c->calls);
	ASSERT_EQ(c->bad, 0);
	ASSERT_GT(c->cycles, 0);
	ASSERT_GT(c->calls, 0);
	ASSERT_EQ(hetmem_mm_get_stats(c->mm, &st), 0);
	ASSERT_EQ(st.notifiers, C_SLOTS);
	for (i = 0; i < C_SLOTS; i++) {
		mmu_interval_notifier_remove(&c->slots[i].sub);
		c->slots[i].live = 0;
		c->slots[i].sub.ops = &poisoned_ops;
	}
	{
		struct mmu_notifier_range r;

		mmu_notifier_range_init(&r, MMU_NOTIFY_UNMAP, 0, c->mm, 0, ULONG_MAX);
		mmu_notifier_invalidate_range_start(&r);
		mmu_notifier_invalidate_range_end(&r);
	}
	ASSERT_EQ(c->bad, 0);
	free(c);
}

/* ------------------------------------------------------------------ */
/* 3. real address-space events */

#define E_CHUNKS 8
#define E_CHUNK_PAGES 8
#define E_READERS 3

struct echunk {
	struct mmu_interval_notifier sub;
	struct hetmem_mutex lock;
	unsigned long addr;
	unsigned long invalidations;	/* under lock */
	int lost;			/* atomic: mapping taken by someone else */
};

struct events {
	struct mm_struct *mm;
	char *area;			/* chunks with a guard page after each */
	struct echunk ch[E_CHUNKS];
	int64_t end_ms;
	unsigned long ok, busy, efault, errors, ops;
};

static bool echunk_invalidate(struct mmu_interval_notifier *sub,
			      const struct mmu_notifier_range *range,
			      unsigned long cur_seq)
{
	struct echunk *c = hetmem_container_of(sub, struct echunk, sub);

	hetmem_mutex_lock(&c->lock);
	mmu_interval_set_seq(sub, cur_seq);
	c->invalidations++;
	hetmem_mutex_unlock(&c->lock);
	return true;
}

static const struct mmu_interval_notifier_ops echunk_ops = {
	.invalidate = echunk_invalidate,
};

static void *event_reader(void *arg)
{
	struct events *e = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	unsigned long pfns[E_CHUNK_PAGES];
	unsigned long ok = 0, busy = 0, efault = 0, errors = 0;

	while (time_left(e->end_ms)) {
		struct echunk *c = &e->ch[harness_rand(&seed) % E_CHUNKS];
		struct hmm_range range = {
			.notifier = &c->sub, .start = c->addr,
			.end = c->addr + E_CHUNK_PAGES * PG, .hmm_pfns = pfns,
			.default_flags = HMM_PFN_REQ_FAULT |
					 (harness_rand(&seed) & 1 ? HMM_PFN_REQ_WRITE : 0),
		};
		unsigned long i;
		int ret;

		range.notifier_seq = mmu_interval_read_begin(&c->sub);
		mmap_read_lock(e->mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(e->mm);
		if (ret == -EBUSY) {
			busy++;
			continue;
		}
		if (ret == -EFAULT) {
			efault++;
			continue;
		}
		if (ret) {
			TH_LOG("hmm_range_fault: %d", ret);
			errors++;
			continue;
		}
		hetmem_mutex_lock(&c->lock);
		if (!mmu_interval_read_retry(&c->sub, range.notifier_seq)) {
			for (i = 0; i < E_CHUNK_PAGES; i++) {
				unsigned long pfn = hetmem_hmm_pfn_to_pfn(pfns[i]);

				if (!(pfns[i] & HMM_PFN_VALID) ||
				    (!is_zero_pfn(pfn) &&
				     (unsigned long)hetmem_pfn_to_virt(pfn) != c->addr + i * PG))
					errors++;
			}
			ok++;
		}
		hetmem_mutex_unlock(&c->lock);
	}
	__atomic_fetch_add(&e->ok, ok, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->busy, busy, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->efault, efault, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->errors, errors, __ATOMIC_RELAXED);
	return NULL;
}

static void *event_mutator(void *arg)
{
	struct events *e = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	unsigned long ops = 0;

	while (time_left(e->end_ms)) {
		struct echunk *c = &e->ch[harness_rand(&seed) % E_CHUNKS];
		void *a = (void *)c->addr, *p;
		size_t len = E_CHUNK_PAGES * PG;

		if (__atomic_load_n(&c->lost, __ATOMIC_RELAXED))
			continue;
		switch (harness_rand(&seed) % 4) {
		case 0:		/* replace the mapping */
			p = mmap(a, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (p != a)
				__atomic_fetch_add(&e->errors, 1, __ATOMIC_RELAXED);
			break;
		case 1:		/* unmap, then map again if nobody took it */
			munmap(a, len);
			harness_sleep_us(100);
			p = mmap(a, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
				 -1, 0);
			if (p != a) {
				if (p != MAP_FAILED)
					munmap(p, len);
				__atomic_store_n(&c->lost, 1, __ATOMIC_RELAXED);
			}
			break;
		case 2:
			madvise((char *)a + (harness_rand(&seed) % E_CHUNK_PAGES) * PG,
				PG, MADV_DONTNEED);
			break;
		default:
			memset((char *)a + (harness_rand(&seed) % E_CHUNK_PAGES) * PG,
			       1, 64);
			break;
		}
		ops++;
		harness_sleep_us(200);
	}
	__atomic_fetch_add(&e->ops, ops, __ATOMIC_RELAXED);
	return NULL;
}

TEST_F_TIMEOUT(st, real_events, 60)
{
	pthread_t rd[E_READERS], mu;
	struct hetmem_mm_stats st;
	unsigned long stride = (E_CHUNK_PAGES + 1) * PG, inv = 0;
	struct events *e;
	unsigned int i;

	if (!need_uffd())
		SKIP(return, "no usable userfaultfd");
	e = calloc(1, sizeof(*e));
	ASSERT_NONNULL(e);
	e->mm = hetmem_current_mm();
	ASSERT_NONNULL(e->mm);
	e->area = mmap(NULL, E_CHUNKS * stride, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(e->area, MAP_FAILED);
	for (i = 0; i < E_CHUNKS; i++) {
		struct echunk *c = &e->ch[i];

		c->addr = (unsigned long)e->area + i * stride;
		ASSERT_EQ(mmap((void *)c->addr, E_CHUNK_PAGES * PG,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			  (void *)c->addr);
		hetmem_mutex_init(&c->lock);
		ASSERT_EQ(mmu_interval_notifier_insert(&c->sub, e->mm, c->addr,
						       E_CHUNK_PAGES * PG,
						       &echunk_ops), 0);
	}
	e->end_ms = harness_now_ms() + (int64_t)(harness_duration_s() * 1000);
	for (i = 0; i < E_READERS; i++)
		ASSERT_EQ(pthread_create(&rd[i], NULL, event_reader, e), 0);
	ASSERT_EQ(pthread_create(&mu, NULL, event_mutator, e), 0);
	for (i = 0; i < E_READERS; i++)
		ASSERT_EQ(pthread_join(rd[i], NULL), 0);
	ASSERT_EQ(pthread_join(mu, NULL), 0);
	/* Everything queued is delivered in bounded time. */
	ASSERT_EQ(hetmem_mm_sync(e->mm, hetmem_msecs_to_jiffies(10000)), 0);
	for (i = 0; i < E_CHUNKS; i++) {
		hetmem_mutex_lock(&e->ch[i].lock);
		inv += e->ch[i].invalidations;
		hetmem_mutex_unlock(&e->ch[i].lock);
	}
	ASSERT_EQ(hetmem_mm_get_stats(e->mm, &st), 0);
	TH_LOG("ok %lu busy %lu efault %lu ops %lu invalidations %lu events %lu/%lu/%lu",
	       e->ok, e->busy, e->efault, e->ops, inv,
	       (unsigned long)st.events[HETMEM_MM_EV_UNMAP],
	       (unsigned long)st.events[HETMEM_MM_EV_REMOVE],
	       (unsigned long)st.rescued_reads);
	ASSERT_EQ(e->errors, 0);
	ASSERT_GT(e->ok, 0);
	ASSERT_GT(e->ops, 0);
	ASSERT_GT(inv, 0);
	ASSERT_EQ(st.rescued_reads, 0);
	for (i = 0; i < E_CHUNKS; i++)
		mmu_interval_notifier_remove(&e->ch[i].sub);
	/* A lost chunk's place may belong to someone else now: spare it. */
	for (i = 0; i < E_CHUNKS; i++) {
		if (!e->ch[i].lost)
			munmap((void *)e->ch[i].addr, E_CHUNK_PAGES * PG);
		munmap((void *)(e->ch[i].addr + E_CHUNK_PAGES * PG), PG);
	}
	free(e);
}
