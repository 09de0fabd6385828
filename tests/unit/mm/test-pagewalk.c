/* SPDX-License-Identifier: MIT */
/*
 * hetmem - white-box tests of the mapping and page-state walkers
 * (src/mm/pagewalk.c): hetmem_vma_find() flags and covering-or-next
 * lookups, hetmem_pagemap_snapshot() categories, gaps, long run lists,
 * and descriptor reuse across fork(). Every case runs twice: with the
 * PROCMAP_QUERY / PAGEMAP_SCAN ioctls and with the /proc text and
 * pagemap-entry fallbacks.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mm/internal.h"
#include "mm/pagewalk.h"

#define PG HETMEM_PAGE_SIZE

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

FIXTURE(walk) {
	struct mm_struct *mm;
};

FIXTURE_VARIANT(walk) {
	bool fallback;
};

FIXTURE_VARIANT_ADD(walk, ioctl) {
	.fallback = false,
};

FIXTURE_VARIANT_ADD(walk, fallback) {
	.fallback = true,
};

FIXTURE_SETUP(walk)
{
	hetmem_pagewalk_force_fallback(variant->fallback, variant->fallback);
	self->mm = hetmem_current_mm();
	ASSERT_NONNULL(self->mm);
}

FIXTURE_TEARDOWN(walk)
{
	hetmem_pagewalk_force_fallback(false, false);
	hetmem_pagewalk_close();
}

/*
 * Map @len bytes between two pages of another protection, so that the
 * mapping is a VMA of its own and cannot merge with a neighbour.
 */
static char *map_isolated(size_t len, int prot, int flags, int fd)
{
	int guard = prot == PROT_NONE ? PROT_READ : PROT_NONE;
	char *base = mmap(NULL, len + 2 * PG, guard,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	ASSERT_NE(base, MAP_FAILED);
	p = mmap(base + PG, len, prot, flags | MAP_FIXED, fd, 0);
	ASSERT_EQ(p, base + PG);
	return p;
}

static void unmap_isolated(char *p, size_t len)
{
	munmap(p - PG, len + 2 * PG);
}

static int memfd_with_data(size_t len)
{
	int fd = memfd_create("pagewalk", MFD_CLOEXEC);
	char *buf;

	ASSERT_GE(fd, 0);
	buf = malloc(len);
	ASSERT_NONNULL(buf);
	memset(buf, 0x5a, len);
	ASSERT_EQ(pwrite(fd, buf, len, 0), (ssize_t)len);
	free(buf);
	return fd;
}

static void expect_vma(struct mm_struct *mm, char *p, size_t len,
		       unsigned int flags)
{
	struct hetmem_vma vma;

	ASSERT_EQ(hetmem_vma_find(mm, (unsigned long)p + len / 2 / PG * PG, &vma), 0);
	EXPECT_EQ(vma.start, (unsigned long)p);
	EXPECT_EQ(vma.end, (unsigned long)p + len);
	EXPECT_EQ(vma.flags, flags);
	EXPECT_EQ(vma.page_size, PG);
}

TEST_F(walk, vma_anon_private)
{
	char *p = map_isolated(4 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);

	expect_vma(self->mm, p, 4 * PG, HETMEM_VMA_READ | HETMEM_VMA_WRITE);
	unmap_isolated(p, 4 * PG);
}

TEST_F(walk, vma_readonly_and_exec)
{
	char *p = map_isolated(2 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *x = map_isolated(2 * PG, PROT_READ | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);

	expect_vma(self->mm, p, 2 * PG, HETMEM_VMA_READ);
	expect_vma(self->mm, x, 2 * PG, HETMEM_VMA_READ | HETMEM_VMA_EXEC);
	unmap_isolated(p, 2 * PG);
	unmap_isolated(x, 2 * PG);
}

TEST_F(walk, vma_prot_none)
{
	char *p = map_isolated(3 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	expect_vma(self->mm, p, 3 * PG, 0);
	unmap_isolated(p, 3 * PG);
}

/* MAP_SHARED anonymous memory is a shmem file ("/dev/zero (deleted)"). */
TEST_F(walk, vma_shared_anon)
{
	char *p = map_isolated(2 * PG, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1);

	expect_vma(self->mm, p, 2 * PG, HETMEM_VMA_READ | HETMEM_VMA_WRITE |
		   HETMEM_VMA_SHARED | HETMEM_VMA_FILE);
	unmap_isolated(p, 2 * PG);
}

TEST_F(walk, vma_memfd)
{
	int fd = memfd_with_data(4 * PG);
	char *s = map_isolated(4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	char *r = map_isolated(2 * PG, PROT_READ, MAP_PRIVATE, fd);

	expect_vma(self->mm, s, 4 * PG, HETMEM_VMA_READ | HETMEM_VMA_WRITE |
		   HETMEM_VMA_SHARED | HETMEM_VMA_FILE);
	expect_vma(self->mm, r, 2 * PG, HETMEM_VMA_READ | HETMEM_VMA_FILE);
	unmap_isolated(s, 4 * PG);
	unmap_isolated(r, 2 * PG);
	close(fd);
}

TEST_F(walk, vma_covering_or_next)
{
	char *p = map_isolated(2 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct hetmem_vma vma;

	/* Punch out the guard below: the lookup must skip the hole. */
	ASSERT_EQ(munmap(p - PG, PG), 0);
	ASSERT_EQ(hetmem_vma_find(self->mm, (unsigned long)p - PG, &vma), 0);
	EXPECT_EQ(vma.start, (unsigned long)p);
	EXPECT_EQ(vma.end, (unsigned long)p + 2 * PG);
	/* The last byte of a mapping still belongs to it. */
	ASSERT_EQ(hetmem_vma_find(self->mm, (unsigned long)p + 2 * PG - 1, &vma), 0);
	EXPECT_EQ(vma.start, (unsigned long)p);
	munmap(p, 3 * PG);
}

TEST_F(walk, vma_vdso_is_special)
{
	unsigned long vdso = getauxval(AT_SYSINFO_EHDR);
	struct hetmem_vma vma;

	if (!vdso)
		SKIP(return, "no vDSO in this process");
	ASSERT_EQ(hetmem_vma_find(self->mm, vdso, &vma), 0);
	EXPECT_EQ(vma.start, vdso);
	EXPECT_TRUE(vma.flags & HETMEM_VMA_SPECIAL);
	EXPECT_FALSE(vma.flags & HETMEM_VMA_FILE);
}

/* Above the stack: nothing, or (in the text) only [vsyscall]. */
TEST_F(walk, vma_none_above)
{
	struct hetmem_vma vma;
	int ret = hetmem_vma_find(self->mm, (1UL << 47) - PG, &vma);

	if (ret == 0)
		EXPECT_TRUE(vma.flags & HETMEM_VMA_SPECIAL);
	else
		EXPECT_EQ(ret, -ENOENT);
}

TEST_F(walk, vma_hugetlb)
{
	size_t len = HETMEM_PMD_SIZE;
	struct hetmem_vma vma;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

	if (p == MAP_FAILED)
		SKIP(return, "no 2 MiB hugetlb pages reserved (vm.nr_hugepages)");
	ASSERT_EQ(hetmem_vma_find(self->mm, (unsigned long)p, &vma), 0);
	EXPECT_TRUE(vma.flags & HETMEM_VMA_HUGETLB);
	EXPECT_EQ(vma.page_size, len);
	munmap(p, len);
}

static void snapshot(struct mm_struct *mm, char *p, size_t pages,
		     uint16_t *cats)
{
	memset(cats, 0xff, pages * sizeof(*cats));
	ASSERT_EQ(hetmem_pagemap_snapshot(mm, (unsigned long)p,
					  (unsigned long)p + pages * PG, cats), 0);
}

#define STATE_MASK (HETMEM_PG_PRESENT | HETMEM_PG_FILE | HETMEM_PG_PFNZERO | \
		    HETMEM_PG_SWAPPED | HETMEM_PG_HUGE | HETMEM_PG_GUARD)

TEST_F(walk, snapshot_anon_states)
{
	char *p = map_isolated(8 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint16_t cats[8];
	uint16_t zero = HETMEM_PG_PRESENT | HETMEM_PG_PFNZERO;

	p[0] = 1;
	p[2 * PG] = 1;
	(void)*(volatile char *)(p + 3 * PG);
	snapshot(self->mm, p, 8, cats);
	EXPECT_EQ(cats[0] & STATE_MASK, HETMEM_PG_PRESENT);
	EXPECT_EQ(cats[1] & STATE_MASK, 0);
	EXPECT_EQ(cats[2] & STATE_MASK, HETMEM_PG_PRESENT);
	/* Unprivileged pagemap cannot name the zero page; FILE = read-only. */
	if (variant->fallback && !hetmem_have_pagemap_pfn())
		zero = HETMEM_PG_PRESENT | HETMEM_PG_FILE;
	EXPECT_EQ(cats[3] & STATE_MASK, zero);
	for (int i = 4; i < 8; i++)
		EXPECT_EQ(cats[i] & STATE_MASK, 0);
	unmap_isolated(p, 8 * PG);
}

TEST_F(walk, snapshot_shared_and_file)
{
	int fd = memfd_with_data(2 * PG);
	char *s = map_isolated(2 * PG, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1);
	char *f = map_isolated(2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	uint16_t cats[2];

	s[0] = 1;
	snapshot(self->mm, s, 2, cats);
	EXPECT_EQ(cats[0] & STATE_MASK, HETMEM_PG_PRESENT | HETMEM_PG_FILE);
	EXPECT_EQ(cats[1] & STATE_MASK, 0);

	/* A private file page is the page cache until written, then a copy. */
	EXPECT_EQ(*(volatile char *)f, 0x5a);
	EXPECT_EQ(*(volatile char *)(f + PG), 0x5a);
	f[PG] = 1;
	snapshot(self->mm, f, 2, cats);
	EXPECT_EQ(cats[0] & STATE_MASK, HETMEM_PG_PRESENT | HETMEM_PG_FILE);
	EXPECT_EQ(cats[1] & STATE_MASK, HETMEM_PG_PRESENT);
	unmap_isolated(s, 2 * PG);
	unmap_isolated(f, 2 * PG);
	close(fd);
}

TEST_F(walk, snapshot_gaps_are_zero)
{
	char *p = map_isolated(3 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint16_t cats[5];

	memset(p, 1, 3 * PG);
	ASSERT_EQ(munmap(p + PG, PG), 0);
	/* Guard page, page, hole, page, guard page. */
	snapshot(self->mm, p - PG, 5, cats);
	EXPECT_EQ(cats[0] & STATE_MASK, 0);
	EXPECT_EQ(cats[1] & STATE_MASK, HETMEM_PG_PRESENT);
	EXPECT_EQ(cats[2], 0);
	EXPECT_EQ(cats[3] & STATE_MASK, HETMEM_PG_PRESENT);
	EXPECT_EQ(cats[4] & STATE_MASK, 0);
	unmap_isolated(p, 3 * PG);
}

/* More runs than the kernel's run buffer holds: walk_end continuation. */
TEST_F(walk, snapshot_many_runs)
{
	const size_t pages = 3000;
	char *p = map_isolated(pages * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint16_t *cats = malloc(pages * sizeof(*cats));
	unsigned int bad = 0;

	ASSERT_NONNULL(cats);
	for (size_t i = 0; i < pages; i += 2)
		p[i * PG] = 1;
	snapshot(self->mm, p, pages, cats);
	for (size_t i = 0; i < pages; i++)
		if (!!(cats[i] & HETMEM_PG_PRESENT) != !(i & 1))
			bad++;
	EXPECT_EQ(bad, 0);
	free(cats);
	unmap_isolated(p, pages * PG);
}

TEST_F(walk, snapshot_thp)
{
	size_t len = HETMEM_PMD_SIZE;
	char *raw, *p;
	uint16_t cats[512];
	unsigned int huge = 0;

	if (!harness_thp_enabled())
		SKIP(return, "transparent huge pages disabled");
	raw = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(raw, MAP_FAILED);
	p = (char *)(((unsigned long)raw + len - 1) & ~(len - 1));
	ASSERT_EQ(madvise(p, len, MADV_HUGEPAGE), 0);
	memset(p, 1, len);
	snapshot(self->mm, p, 512, cats);
	for (int i = 0; i < 512; i++) {
		EXPECT_TRUE(cats[i] & HETMEM_PG_PRESENT);
		huge += !!(cats[i] & HETMEM_PG_HUGE);
	}
	munmap(raw, 2 * len);
	if (variant->fallback && !hetmem_have_pagemap_pfn())
		SKIP(return, "huge pages need frame numbers in the fallback");
	if (!huge)
		SKIP(return, "the kernel gave no huge page (fragmented memory?)");
	EXPECT_EQ(huge, 512);
}

TEST_F(walk, snapshot_guard_region)
{
	char *p = map_isolated(2 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint16_t cats[2];

	if (madvise(p, PG, MADV_GUARD_INSTALL))
		SKIP(goto out, "MADV_GUARD_INSTALL not supported");
	snapshot(self->mm, p, 2, cats);
	EXPECT_TRUE(cats[0] & HETMEM_PG_GUARD);
	EXPECT_FALSE(cats[0] & HETMEM_PG_PRESENT);
out:
	unmap_isolated(p, 2 * PG);
}

TEST_F(walk, snapshot_rejects_unaligned)
{
	uint16_t cats[2];
	unsigned long a = (unsigned long)&cats & HETMEM_PAGE_MASK;

	EXPECT_EQ(hetmem_pagemap_snapshot(self->mm, a + 1, a + PG, cats), -EINVAL);
	EXPECT_EQ(hetmem_pagemap_snapshot(self->mm, a, a + 1, cats), -EINVAL);
	EXPECT_EQ(hetmem_pagemap_snapshot(self->mm, a + PG, a, cats), -EINVAL);
	EXPECT_EQ(hetmem_pagemap_snapshot(self->mm, a, a, cats), 0);
}

TEST_F(walk, features_reported)
{
	if (variant->fallback) {
		EXPECT_FALSE(hetmem_have_procmap_query());
		EXPECT_FALSE(hetmem_have_pagemap_scan());
	} else {
		TH_LOG("PROCMAP_QUERY %d, PAGEMAP_SCAN %d, pfns %d",
		       hetmem_have_procmap_query(), hetmem_have_pagemap_scan(),
		       hetmem_have_pagemap_pfn());
	}
}

/* The child's lookups must describe the child, not the parent. */
static int child_walks_itself(struct mm_struct *mm)
{
	char *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct hetmem_vma vma;
	uint16_t cats[2];

	if (p == MAP_FAILED)
		return 2;
	p[0] = 1;
	if (hetmem_vma_find(mm, (unsigned long)p, &vma) ||
	    vma.start > (unsigned long)p || vma.end < (unsigned long)p + 2 * PG)
		return 3;
	if (hetmem_pagemap_snapshot(mm, (unsigned long)p,
				    (unsigned long)p + 2 * PG, cats))
		return 4;
	if (!(cats[0] & HETMEM_PG_PRESENT) || (cats[1] & HETMEM_PG_PRESENT))
		return 5;
	hetmem_pagewalk_close();
	return 0;
}

TEST_F(walk, fork_reopens_descriptors)
{
	struct hetmem_vma vma;
	uint16_t cat;
	unsigned long a = (unsigned long)&vma & HETMEM_PAGE_MASK;
	int status;
	pid_t pid;

	/* Warm both caches in the parent. */
	ASSERT_EQ(hetmem_vma_find(self->mm, a, &vma), 0);
	ASSERT_EQ(hetmem_pagemap_snapshot(self->mm, a, a + PG, &cat), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(child_walks_itself(self->mm));
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(WEXITSTATUS(status), 0);
	/* The parent's descriptors still work. */
	EXPECT_EQ(hetmem_vma_find(self->mm, a, &vma), 0);
	EXPECT_EQ(hetmem_pagemap_snapshot(self->mm, a, a + PG, &cat), 0);
	EXPECT_TRUE(cat & HETMEM_PG_PRESENT);
}
