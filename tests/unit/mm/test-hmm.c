/* SPDX-License-Identifier: MIT */
/*
 * hetmem - hmm_range_fault() contracts on real memory (hmm.md §1.2 and
 * §6.2): snapshot versus fault, the zero page, write faults and frame
 * numbers, permission and hole errors, per-page requests, sticky bits,
 * transparent huge pages, shared and private file mappings, -EBUSY on a
 * notifier collision, and argument checks. Every fault goes through the
 * read_begin / mmap_read_lock / hmm_range_fault / read_retry protocol.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <hetmem/core/spinlock.h>
#include <hetmem/core/warn.h>
#include <hetmem/mm/hmm.h>

#include "harness.h"
#include "mm/pagewalk.h"

#define PG HETMEM_PAGE_SIZE
#define MAX_PAGES 1024

FIXTURE(hmm) {
	struct mm_struct *mm;
	struct hetmem_mutex lock;	/* the "driver" lock */
	struct mmu_interval_notifier sub;
	bool inserted;
	unsigned int invalidations;
	unsigned long pfns[MAX_PAGES];
	unsigned long in[MAX_PAGES];	/* requests, restored for each retry */
};

static bool test_invalidate(struct mmu_interval_notifier *sub,
			    const struct mmu_notifier_range *range,
			    unsigned long cur_seq)
{
	FIXTURE_DATA(hmm) *self = hetmem_container_of(sub, FIXTURE_DATA(hmm), sub);

	if (mmu_notifier_range_blockable(range))
		hetmem_mutex_lock(&self->lock);
	else if (!hetmem_mutex_trylock(&self->lock))
		return false;
	mmu_interval_set_seq(sub, cur_seq);
	__atomic_fetch_add(&self->invalidations, 1, __ATOMIC_RELAXED);
	hetmem_mutex_unlock(&self->lock);
	return true;
}

static const struct mmu_interval_notifier_ops test_ops = {
	.invalidate = test_invalidate,
};

FIXTURE_SETUP(hmm)
{
	self->mm = hetmem_current_mm();
	ASSERT_NONNULL(self->mm);
	hetmem_mutex_init(&self->lock);
}

FIXTURE_TEARDOWN(hmm)
{
	if (self->inserted)
		mmu_interval_notifier_remove(&self->sub);
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

static void watch(FIXTURE_DATA(hmm) *self, void *start, size_t len)
{
	int ret = mmu_interval_notifier_insert(&self->sub, self->mm,
					       (unsigned long)start, len,
					       &test_ops);

	if (ret == -EOPNOTSUPP)
		SKIP(return, "no userfaultfd: interval notifiers unavailable");
	ASSERT_EQ(ret, 0);
	self->inserted = true;
}

static struct hmm_range make_range(FIXTURE_DATA(hmm) *self, void *start,
				   size_t pages, unsigned long default_flags,
				   unsigned long pfn_flags_mask)
{
	struct hmm_range range = {
		.notifier = &self->sub,
		.start = (unsigned long)start,
		.end = (unsigned long)start + pages * PG,
		.hmm_pfns = self->pfns,
		.default_flags = default_flags,
		.pfn_flags_mask = pfn_flags_mask,
	};

	ASSERT_LE(pages, MAX_PAGES);
	return range;
}

/* The hmm.md §2.4 read side, retrying -EBUSY for up to the default budget. */
static int fault(FIXTURE_DATA(hmm) *self, struct hmm_range *range)
{
	size_t n = (range->end - range->start) / PG;
	int64_t deadline = harness_now_ms() + HMM_RANGE_DEFAULT_TIMEOUT;
	int ret;

	for (;;) {
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		memcpy(range->hmm_pfns, self->in, n * sizeof(self->in[0]));
		mmap_read_lock(self->mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(self->mm);
		if (ret == -EBUSY && harness_now_ms() < deadline)
			continue;
		if (ret)
			return ret;
		hetmem_mutex_lock(&self->lock);
		if (!mmu_interval_read_retry(range->notifier, range->notifier_seq))
			break;
		hetmem_mutex_unlock(&self->lock);
	}
	hetmem_mutex_unlock(&self->lock);
	return 0;
}

/* One unlocked-protocol attempt without retry, for -EBUSY checks. */
static int fault_once(FIXTURE_DATA(hmm) *self, struct hmm_range *range)
{
	int ret;

	mmap_read_lock(self->mm);
	ret = hmm_range_fault(range);
	mmap_read_unlock(self->mm);
	return ret;
}

static char *map_anon(size_t len, int prot, int flags)
{
	char *p = mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(p, MAP_FAILED);
	return p;
}

static unsigned long pfn_of(unsigned long word)
{
	return hetmem_hmm_pfn_to_pfn(word);
}

static const unsigned long VW = HMM_PFN_VALID | HMM_PFN_WRITE;

TEST_F(hmm, invalid_args)
{
	char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, 0, 0);
	EXPECT_EQ(hmm_range_fault(NULL), -EINVAL);
	range.notifier = NULL;
	EXPECT_EQ(fault_once(self, &range), -EINVAL);
	range = make_range(self, p, 4, 0, 0);
	range.hmm_pfns = NULL;
	EXPECT_EQ(fault_once(self, &range), -EINVAL);
	range = make_range(self, p, 4, 0, 0);
	range.end = range.start;
	EXPECT_EQ(fault_once(self, &range), -EINVAL);
	range = make_range(self, p, 4, 0, 0);
	range.start += 1;
	EXPECT_EQ(fault_once(self, &range), -EINVAL);
	range = make_range(self, p, 4, 0, 0);
	range.end -= 1;
	EXPECT_EQ(fault_once(self, &range), -EINVAL);
	munmap(p, 4 * PG);
}

TEST_F(hmm, snapshot_fresh_anon)
{
	char *p = map_anon(16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 16 * PG);
	range = make_range(self, p, 16, 0, 0);
	/* Request bits are ignored when the mask hides them. */
	for (int i = 0; i < 16; i++)
		self->in[i] = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 16; i++)
		EXPECT_EQ(self->pfns[i], 0);
	munmap(p, 16 * PG);
}

TEST_F(hmm, read_fault_zero_page)
{
	char *p = map_anon(8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 8 * PG);
	range = make_range(self, p, 8, HMM_PFN_REQ_FAULT, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 8; i++) {
		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS, HMM_PFN_VALID);
		EXPECT_TRUE(is_zero_pfn(pfn_of(self->pfns[i])));
		EXPECT_EQ(hmm_pfn_to_map_order(self->pfns[i]), 0);
	}
	munmap(p, 8 * PG);
}

TEST_F(hmm, write_fault)
{
	char *p = map_anon(8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;
	struct hetmem_mm_stats before, after;

	watch(self, p, 8 * PG);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &before), 0);
	range = make_range(self, p, 8, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0);
	ASSERT_EQ(fault(self, &range), 0);
	ASSERT_EQ(hetmem_mm_get_stats(self->mm, &after), 0);
	EXPECT_GT(after.range_faults, before.range_faults);
	for (int i = 0; i < 8; i++) {
		unsigned long pfn = pfn_of(self->pfns[i]);

		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS, VW);
		EXPECT_EQ(pfn, ((unsigned long)p >> HETMEM_PAGE_SHIFT) + i);
		ASSERT_TRUE(hetmem_pfn_is_system(pfn));
		/* The CPU's data is what the device sees through the frame. */
		p[i * PG + 7] = (char)(i + 1);
		EXPECT_EQ(((char *)hetmem_pfn_to_virt(pfn))[7], i + 1);
	}
	munmap(p, 8 * PG);
}

TEST_F(hmm, snapshot_after_cpu_write)
{
	char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 4 * PG);
	p[PG] = 1;
	(void)*(volatile char *)(p + 2 * PG);
	range = make_range(self, p, 4, 0, 0);
	ASSERT_EQ(fault(self, &range), 0);
	EXPECT_EQ(self->pfns[0], 0);
	EXPECT_EQ(self->pfns[1], VW | (((unsigned long)p + PG) >> HETMEM_PAGE_SHIFT));
	EXPECT_EQ(self->pfns[2], HMM_PFN_VALID | HETMEM_ZERO_PFN);
	EXPECT_EQ(self->pfns[3], 0);
	munmap(p, 4 * PG);
}

TEST_F(hmm, readonly_write_eperm)
{
	char *p = map_anon(4 * PG, PROT_READ, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0);
	EXPECT_EQ(fault(self, &range), -EPERM);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i], HMM_PFN_VALID | HETMEM_ZERO_PFN);
	munmap(p, 4 * PG);
}

TEST_F(hmm, prot_none)
{
	char *p = map_anon(4 * PG, PROT_NONE, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT, 0);
	EXPECT_EQ(fault(self, &range), -EFAULT);
	range = make_range(self, p, 4, 0, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i], HMM_PFN_ERROR);
	munmap(p, 4 * PG);
}

TEST_F(hmm, hole)
{
	char *p = map_anon(3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;

	memset(p, 1, 3 * PG);
	ASSERT_EQ(munmap(p + PG, PG), 0);
	watch(self, p, 3 * PG);
	range = make_range(self, p, 3, HMM_PFN_REQ_FAULT, 0);
	EXPECT_EQ(fault(self, &range), -EFAULT);
	range = make_range(self, p, 3, 0, 0);
	ASSERT_EQ(fault(self, &range), 0);
	EXPECT_EQ(self->pfns[0] & HMM_PFN_FLAGS, VW);
	EXPECT_EQ(self->pfns[1], HMM_PFN_ERROR);
	EXPECT_EQ(self->pfns[2] & HMM_PFN_FLAGS, VW);
	/* Only the hole's page asks for a fault: still -EFAULT. */
	range = make_range(self, p, 3, 0, HMM_PFN_REQ_FAULT);
	memset(self->in, 0, sizeof(self->in));
	self->in[1] = HMM_PFN_REQ_FAULT;
	EXPECT_EQ(fault(self, &range), -EFAULT);
	munmap(p, PG);
	munmap(p + 2 * PG, PG);
}

/*
 * Per-page requests: page 0 asks nothing and stays untouched; page 1's
 * read fault over-faults to the end of the step, so page 2 is the zero
 * page too; page 3 asks for write and gets a private page.
 */
TEST_F(hmm, mixed_requests)
{
	char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, 0, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
	self->in[0] = 0;
	self->in[1] = HMM_PFN_REQ_FAULT;
	self->in[2] = 0;
	self->in[3] = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	ASSERT_EQ(fault(self, &range), 0);
	EXPECT_EQ(self->pfns[0], 0);
	EXPECT_EQ(self->pfns[1], HMM_PFN_VALID | HETMEM_ZERO_PFN);
	EXPECT_EQ(self->pfns[2], HMM_PFN_VALID | HETMEM_ZERO_PFN);
	EXPECT_EQ(self->pfns[3], VW | (((unsigned long)p + 3 * PG) >> HETMEM_PAGE_SHIFT));
	munmap(p, 4 * PG);
}

/*
 * A fault runs to the end of the walk step, whatever later pages asked.
 * The four pages must not straddle a 2 MiB boundary (the step ends there):
 * of two adjacent groups of four, at most one does.
 */
TEST_F(hmm, over_fault_to_step_end)
{
	char *base = map_anon(8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned long b = (unsigned long)base;
	char *p = ((b + 3 * PG) & ~(HETMEM_PMD_SIZE - 1)) > b ? base + 4 * PG : base;
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, 0, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
	memset(self->in, 0, sizeof(self->in));
	self->in[0] = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS, VW);
	munmap(base, 8 * PG);
}

TEST_F(hmm, req_write_alone_requests_nothing)
{
	char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_WRITE,
			   HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
	memset(self->in, 0, sizeof(self->in));
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i], 0);
	/* Nothing was populated either. */
	range = make_range(self, p, 4, 0, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i], 0);
	munmap(p, 4 * PG);
}

TEST_F(hmm, sticky_bits_preserved)
{
	char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	char *none = map_anon(2 * PG, PROT_NONE, MAP_PRIVATE);
	struct hmm_range range;
	unsigned long sticky[4] = {
		HMM_PFN_DMA_MAPPED, HMM_PFN_P2PDMA, HMM_PFN_P2PDMA_BUS,
		HMM_PFN_INOUT_FLAGS,
	};

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0);
	/* Junk in the pfn field of the input must not survive. */
	for (int i = 0; i < 4; i++)
		self->in[i] = sticky[i] | 0x1234;
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(self->pfns[i] & HMM_PFN_INOUT_FLAGS, sticky[i]);
		EXPECT_TRUE(self->pfns[i] & HMM_PFN_VALID);
		EXPECT_EQ(pfn_of(self->pfns[i]),
			  ((unsigned long)p >> HETMEM_PAGE_SHIFT) + i);
	}
	mmu_interval_notifier_remove(&self->sub);
	self->inserted = false;

	/* Error outputs keep them too. */
	watch(self, none, 2 * PG);
	range = make_range(self, none, 2, 0, 0);
	self->in[0] = HMM_PFN_DMA_MAPPED;
	self->in[1] = 0;
	ASSERT_EQ(fault(self, &range), 0);
	EXPECT_EQ(self->pfns[0], HMM_PFN_ERROR | HMM_PFN_DMA_MAPPED);
	EXPECT_EQ(self->pfns[1], HMM_PFN_ERROR);
	munmap(p, 4 * PG);
	munmap(none, 2 * PG);
}

TEST_F(hmm, thp_order)
{
	size_t len = HETMEM_PMD_SIZE;
	char *raw, *p;
	struct hmm_range range;

	if (!harness_thp_enabled())
		SKIP(return, "transparent huge pages disabled");
	raw = map_anon(2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	p = (char *)(((unsigned long)raw + len - 1) & ~(len - 1));
	ASSERT_EQ(madvise(p, len, MADV_HUGEPAGE), 0);
	memset(p, 1, len);
	watch(self, p, len);
	range = make_range(self, p, 512, HMM_PFN_REQ_FAULT, 0);
	ASSERT_EQ(fault(self, &range), 0);
	if (hmm_pfn_to_map_order(self->pfns[0]) == 0)
		SKIP(goto out, "the kernel gave no huge page (fragmented memory?)");
	for (int i = 0; i < 512; i++) {
		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS & ~(0x1FUL << HMM_PFN_ORDER_SHIFT), VW);
		EXPECT_EQ(hmm_pfn_to_map_order(self->pfns[i]), 9);
		EXPECT_EQ(pfn_of(self->pfns[i]),
			  ((unsigned long)p >> HETMEM_PAGE_SHIFT) + i);
	}
out:
	munmap(raw, 2 * len);
}

TEST_F(hmm, shared_anon_writable)
{
	char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED);
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS, VW);
	munmap(p, 4 * PG);
}

static int memfd_with_data(size_t len)
{
	int fd = memfd_create("hmm", MFD_CLOEXEC);
	char *buf;

	ASSERT_GE(fd, 0);
	buf = malloc(len);
	ASSERT_NONNULL(buf);
	memset(buf, 0x5a, len);
	ASSERT_EQ(pwrite(fd, buf, len, 0), (ssize_t)len);
	free(buf);
	return fd;
}

TEST_F(hmm, memfd_shared_writable)
{
	int fd = memfd_with_data(4 * PG);
	char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct hmm_range range;

	ASSERT_NE(p, MAP_FAILED);
	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS, VW);
		EXPECT_EQ(*(char *)hetmem_pfn_to_virt(pfn_of(self->pfns[i])), 0x5a);
	}
	munmap(p, 4 * PG);
	close(fd);
}

/* A private file page is read-only until a write copies it. */
TEST_F(hmm, private_file_cow)
{
	int fd = memfd_with_data(4 * PG);
	char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	struct hmm_range range;

	ASSERT_NE(p, MAP_FAILED);
	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS, HMM_PFN_VALID);
	p[0] = 1;		/* the CPU copies page 0 */
	ASSERT_EQ(fault(self, &range), 0);
	EXPECT_EQ(self->pfns[0] & HMM_PFN_FLAGS, VW);
	EXPECT_EQ(self->pfns[1] & HMM_PFN_FLAGS, HMM_PFN_VALID);
	/* A write request copies the rest; the file's data stays. */
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0);
	ASSERT_EQ(fault(self, &range), 0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(self->pfns[i] & HMM_PFN_FLAGS, VW);
	EXPECT_EQ(p[PG], 0x5a);
	munmap(p, 4 * PG);
	close(fd);
}

/* An invalidation between read_begin and the fault surfaces as -EBUSY. */
TEST_F(hmm, busy_on_invalidation)
{
	char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct mmu_notifier_range nr;
	struct hmm_range range;
	unsigned int before;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, HMM_PFN_REQ_FAULT, 0);
	range.notifier_seq = mmu_interval_read_begin(&self->sub);
	before = self->invalidations;
	mmu_notifier_range_init(&nr, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				self->mm, (unsigned long)p + PG,
				(unsigned long)p + 2 * PG);
	mmu_notifier_invalidate_range_start(&nr);
	mmu_notifier_invalidate_range_end(&nr);
	EXPECT_EQ(self->invalidations, before + 1);
	memset(self->pfns, 0, sizeof(self->pfns));
	EXPECT_EQ(fault_once(self, &range), -EBUSY);
	hetmem_mutex_lock(&self->lock);
	EXPECT_TRUE(mmu_interval_read_retry(&self->sub, range.notifier_seq));
	hetmem_mutex_unlock(&self->lock);
	/* The protocol's retry then succeeds. */
	ASSERT_EQ(fault(self, &range), 0);
	EXPECT_EQ(self->pfns[0], HMM_PFN_VALID | HETMEM_ZERO_PFN);
	munmap(p, 4 * PG);
}

/* An invalidation outside the notifier's interval does not matter. */
TEST_F(hmm, no_busy_outside_interval)
{
	char *p = map_anon(8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct mmu_notifier_range nr;
	struct hmm_range range;

	watch(self, p, 4 * PG);
	range = make_range(self, p, 4, 0, 0);
	range.notifier_seq = mmu_interval_read_begin(&self->sub);
	mmu_notifier_range_init(&nr, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				self->mm, (unsigned long)p + 4 * PG,
				(unsigned long)p + 8 * PG);
	mmu_notifier_invalidate_range_start(&nr);
	mmu_notifier_invalidate_range_end(&nr);
	memset(self->pfns, 0, sizeof(self->pfns));
	EXPECT_EQ(fault_once(self, &range), 0);
	munmap(p, 8 * PG);
}

/* After teardown the notifier's mm is gone: -EFAULT, as after exit_mmap. */
TEST_F(hmm, mm_gone)
{
	char *p = map_anon(2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct mm_struct *old = self->mm;
	struct hmm_range range;

	watch(self, p, 2 * PG);
	mmgrab(old);
	hetmem_mm_teardown();
	range = make_range(self, p, 2, 0, 0);
	range.notifier_seq = mmu_interval_read_begin(&self->sub);
	self->mm = old;
	EXPECT_EQ(fault_once(self, &range), -EFAULT);
	mmu_interval_notifier_remove(&self->sub);
	self->inserted = false;
	mmdrop(old);
	munmap(p, 2 * PG);
}
