/* SPDX-License-Identifier: MIT */
/*
 * hetmem - migration of transparent-huge-page regions to dmirror device
 * memory: 2 MiB aligned MADV_HUGEPAGE regions that are empty, read-faulted
 * (huge zero page) or populated; MADV_FREE, CPU faults, partial munmap and
 * mremap of migrated regions; and the base-page fallback when a device
 * allocation fails. The scenarios are the kernel HMM selftest's
 * migrate_anon_huge_* cases.
 */
#include "dmirror-common.h"

#define HPAGES (HETMEM_PMD_SIZE / PAGE)		/* pages per 2 MiB */
#define DEV_RW (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE)

FIXTURE(thp) {
	struct dmirror *m;
	char *p;		/* 2 MiB, aligned, MADV_HUGEPAGE */
	char *out;
	unsigned char *snap;
};

FIXTURE_SETUP(thp)
{
	int ret;

	if (!harness_thp_enabled())
		SKIP(return, "transparent huge pages are disabled");
	if (!dm_can_migrate())
		SKIP(return, "no userfaultfd with UFFD_FEATURE_MOVE");
	ret = hetmem_dmirror_open(0, &self->m);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no usable userfaultfd in this process");
	ASSERT_EQ(ret, 0);
	self->p = map_anon_huge(HPAGES);
	self->out = map_anon(HPAGES, PROT_READ | PROT_WRITE);
	self->snap = calloc(HPAGES, 1);
	ASSERT_NONNULL(self->p);
	ASSERT_NONNULL(self->out);
	ASSERT_NONNULL(self->snap);
}

FIXTURE_TEARDOWN(thp)
{
	/* Cases that unmap part of the region leave self->p NULL. */
	if (self->p)
		munmap(self->p, HETMEM_PMD_SIZE);
	if (self->out)
		munmap(self->out, HETMEM_PMD_SIZE);
	free(self->snap);
	hetmem_dmirror_close(self->m);
	dm_release_process_state();
}

static void migrate_region(struct dmirror *m, char *p, char *out)
{
	struct hmm_dmirror_cmd cmd;

	memset(out, 0xaa, HETMEM_PMD_SIZE);
	ASSERT_EQ(dm_cmd(m, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, HPAGES, &cmd), 0);
	ASSERT_EQ(cmd.cpages, HPAGES);
}

/* Every snapshot byte is a writable page of this device (any mapping size). */
static void expect_on_device(struct dmirror *m, char *p, unsigned char *snap)
{
	struct hmm_dmirror_cmd cmd;
	unsigned long i;

	memset(snap, 0xee, HPAGES);
	ASSERT_EQ(dm_cmd(m, HMM_DMIRROR_SNAPSHOT, p, snap, HPAGES, &cmd), 0);
	ASSERT_EQ(cmd.cpages, HPAGES);
	for (i = 0; i < HPAGES; i++)
		if ((snap[i] & ~HMM_DMIRROR_PROT_PMD) != DEV_RW) {
			TH_LOG("page %lu: snapshot 0x%02x", i, snap[i]);
			EXPECT_EQ(snap[i] & ~HMM_DMIRROR_PROT_PMD, DEV_RW);
			return;
		}
}

TEST_F(thp, huge_empty)
{
	migrate_region(self->m, self->p, self->out);
	EXPECT_TRUE(all_bytes(self->out, HETMEM_PMD_SIZE, 0));
	EXPECT_EQ(dm_stats(0).device_pages_used, HPAGES);
	EXPECT_TRUE(all_bytes(self->p, HETMEM_PMD_SIZE, 0));
	self->p[0] = 1;
	EXPECT_EQ(self->p[0], 1);
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
}

TEST_F(thp, huge_zero)
{
	touch_read(self->p, HPAGES);
	migrate_region(self->m, self->p, self->out);
	EXPECT_TRUE(all_bytes(self->out, HETMEM_PMD_SIZE, 0));
	EXPECT_TRUE(all_bytes(self->p, HETMEM_PMD_SIZE, 0));
}

TEST_F(thp, huge_populated)
{
	fill_pattern(self->p, HPAGES, 0x21000);
	migrate_region(self->m, self->p, self->out);
	EXPECT_TRUE(has_pattern(self->out, HPAGES, 0x21000));
	expect_on_device(self->m, self->p, self->snap);
	EXPECT_EQ(dm_stats(0).device_pages_used, HPAGES);
	EXPECT_TRUE(has_pattern(self->p, HPAGES, 0x21000));
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
}

/* MADV_FREE over device pages succeeds; each page reads old data or zeros. */
TEST_F(thp, huge_free)
{
	unsigned long pg;

	fill_pattern(self->p, HPAGES, 0x22000);
	migrate_region(self->m, self->p, self->out);
	ASSERT_EQ(madvise(self->p, HETMEM_PMD_SIZE, MADV_FREE), 0);
	for (pg = 0; pg < HPAGES; pg++)
		if (!page_has_pattern(self->p, pg, 0x22000) &&
		    !all_bytes(self->p + pg * PAGE, PAGE, 0)) {
			TH_LOG("page %lu holds neither its data nor zeros", pg);
			EXPECT_TRUE(false);
			break;
		}
}

TEST_F(thp, huge_fault_one)
{
	fill_pattern(self->p, HPAGES, 0x23000);
	migrate_region(self->m, self->p, self->out);
	EXPECT_TRUE(page_has_pattern(self->p, 7, 0x23000));
	EXPECT_TRUE(has_pattern(self->p, HPAGES, 0x23000));
}

/* Unmap one page at @off pages of a migrated region; the rest keeps its data. */
static void partial_unmap(FIXTURE_DATA(thp) *self, unsigned long off)
{
	unsigned long pg;
	char *p = self->p;

	fill_pattern(p, HPAGES, 0x24000);
	migrate_region(self->m, p, self->out);
	ASSERT_EQ(munmap(p + off * PAGE, PAGE), 0);
	self->p = NULL;
	for (pg = 0; pg < HPAGES; pg++) {
		if (pg == off)
			continue;
		if (!page_has_pattern(p, pg, 0x24000)) {
			TH_LOG("page %lu lost its data", pg);
			EXPECT_TRUE(false);
			break;
		}
	}
	if (off)
		munmap(p, off * PAGE);
	if (off + 1 < HPAGES)
		munmap(p + (off + 1) * PAGE, (HPAGES - off - 1) * PAGE);
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
}

TEST_F(thp, huge_partial_unmap_first)
{
	partial_unmap(self, 0);
}

TEST_F(thp, huge_partial_unmap_second)
{
	partial_unmap(self, 1);
}

TEST_F(thp, huge_partial_unmap_half)
{
	partial_unmap(self, HPAGES / 2);
}

TEST_F(thp, huge_partial_unmap_last)
{
	partial_unmap(self, HPAGES - 1);
}

/*
 * mremap the region to another 2 MiB aligned place, @before or after
 * migrating it, optionally with MREMAP_DONTUNMAP (the old range then
 * stays mapped and reads zeros).
 */
static void remap_case(FIXTURE_DATA(thp) *self, bool before, bool dontunmap)
{
	char *dst = map_anon_huge(HPAGES), *q;
	int flags = MREMAP_MAYMOVE | MREMAP_FIXED | (dontunmap ? MREMAP_DONTUNMAP : 0);
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(dst);
	fill_pattern(self->p, HPAGES, 0x25000);
	if (!before)
		migrate_region(self->m, self->p, self->out);
	q = mremap(self->p, HETMEM_PMD_SIZE, HETMEM_PMD_SIZE, flags, dst);
	if (q == MAP_FAILED && dontunmap && errno == EINVAL) {
		munmap(dst, HETMEM_PMD_SIZE);
		SKIP(return, "MREMAP_DONTUNMAP not supported");
	}
	ASSERT_EQ(q, dst);
	if (!dontunmap)
		self->p = NULL;
	if (before) {
		migrate_region(self->m, dst, self->out);
		EXPECT_TRUE(has_pattern(self->out, HPAGES, 0x25000));
		expect_on_device(self->m, dst, self->snap);
	} else {
		memset(self->out, 0, HETMEM_PMD_SIZE);
		ASSERT_EQ(dm_cmd(self->m, HMM_DMIRROR_READ, dst, self->out, HPAGES, &cmd), 0);
		EXPECT_TRUE(has_pattern(self->out, HPAGES, 0x25000));
	}
	EXPECT_TRUE(has_pattern(dst, HPAGES, 0x25000));
	if (dontunmap)
		EXPECT_TRUE(all_bytes(self->p, HETMEM_PMD_SIZE, 0));
	munmap(dst, HETMEM_PMD_SIZE);
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
}

TEST_F(thp, huge_remap_before)
{
	remap_case(self, true, false);
}

TEST_F(thp, huge_remap_before_dontunmap)
{
	remap_case(self, true, true);
}

TEST_F(thp, huge_remap_after)
{
	remap_case(self, false, false);
}

TEST_F(thp, huge_remap_after_dontunmap)
{
	remap_case(self, false, true);
}

/* Is the whole region one PMD mapping (snapshot PMD bit on every page)? */
static bool region_is_pmd(struct dmirror *m, char *p, unsigned char *snap)
{
	unsigned long i;

	if (dm_cmd(m, HMM_DMIRROR_SNAPSHOT, p, snap, HPAGES, NULL))
		return false;
	for (i = 0; i < HPAGES; i++)
		if (!(snap[i] & HMM_DMIRROR_PROT_PMD))
			return false;
	return true;
}

/* A failed huge device allocation falls back to base pages. */
TEST_F(thp, huge_fail_alloc)
{
	fill_pattern(self->p, HPAGES, 0x26000);
	if (!region_is_pmd(self->m, self->p, self->snap))
		SKIP(return, "the region did not get a transparent huge page");
	ASSERT_EQ(dm_cmd(self->m, HMM_DMIRROR_FLAGS, self->p, NULL,
			 HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	migrate_region(self->m, self->p, self->out);
	EXPECT_TRUE(has_pattern(self->out, HPAGES, 0x26000));
	expect_on_device(self->m, self->p, self->snap);
	EXPECT_TRUE(has_pattern(self->p, HPAGES, 0x26000));
}

/* The same for an empty region (huge hole). */
TEST_F(thp, huge_fail_alloc_empty)
{
	ASSERT_EQ(dm_cmd(self->m, HMM_DMIRROR_FLAGS, self->p, NULL,
			 HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	migrate_region(self->m, self->p, self->out);
	EXPECT_TRUE(all_bytes(self->out, HETMEM_PMD_SIZE, 0));
	EXPECT_TRUE(all_bytes(self->p, HETMEM_PMD_SIZE, 0));
}
