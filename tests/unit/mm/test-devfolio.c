/* SPDX-License-Identifier: MIT */
/*
 * hetmem - PMD-sized folios in migration, driven by a driver written in
 * the test: with MIGRATE_VMA_SELECT_COMPOUND a transparent huge page, a
 * huge hole and a whole device folio are one MIGRATE_PFN_COMPOUND entry
 * followed by 511 placeholders; a THP goes to a device folio and comes
 * back as a PMD-mapped huge page; compound sources served by per-page
 * destinations, partly declined, faulted on one page, partly unmapped and
 * then forked, or evicted by frame number keep every byte.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hetmem/mm/memremap.h>
#include <hetmem/mm/migrate.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/page.h>

#include "mm/pagewalk.h"
#include "harness.h"

#define PG HETMEM_PAGE_SIZE
#define PMD HETMEM_PMD_SIZE
#define NR HPAGE_PMD_NR
#define FOLIO_BLOCKS 2		/* device blocks handed out as folios */
#define BASE_BLOCKS 2		/* device blocks handed out as base pages */

/* ---- the test's driver ---- */

static struct dev_pagemap pgmap;
static unsigned long first_pfn, next_folio, next_base;
static int frees, faults;	/* changed on the monitor thread too */
static bool fault_whole = true;	/* migrate_to_ram takes the whole folio */

static void drv_page_free(struct page *page)
{
	(void)page;
	__atomic_fetch_add(&frees, 1, __ATOMIC_RELAXED);
}

static int nfaults(void)
{
	return __atomic_load_n(&faults, __ATOMIC_ACQUIRE);
}

static struct page *drv_alloc_folio(void)
{
	struct page *head;

	if (next_folio >= FOLIO_BLOCKS)
		return NULL;
	head = pfn_to_page(first_pfn + NR * next_folio++);
	zone_device_folio_init((struct folio *)head, HPAGE_PMD_ORDER);
	return head;
}

static struct page *drv_alloc_page(void)
{
	struct page *page;

	if (next_base >= BASE_BLOCKS * NR)
		return NULL;
	page = pfn_to_page(first_pfn + FOLIO_BLOCKS * NR + next_base++);
	zone_device_page_init(page);
	return page;
}

/* System destinations for the device sources of @a: folios or base pages. */
static void drv_copy_back(struct migrate_vma *a, bool whole)
{
	for (unsigned long i = 0; i < a->npages; i++) {
		struct page *s = migrate_pfn_to_page(a->src[i]);
		unsigned long w = a->src[i] & MIGRATE_PFN_WRITE, n;
		struct folio *f = NULL;

		a->dst[i] = 0;
		if (!s || !(a->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		n = (a->src[i] & MIGRATE_PFN_COMPOUND) ? NR : 1;
		if (n > 1 && whole)
			f = vma_alloc_folio(0, HPAGE_PMD_ORDER, a->vma, a->start + i * PG);
		if (f) {
			memcpy(page_address(&f->page), page_address(s), PMD);
			folio_lock(f);
			a->dst[i] = migrate_pfn(page_to_pfn(&f->page)) | w | MIGRATE_PFN_COMPOUND;
			continue;
		}
		for (unsigned long j = 0; j < n; j++) {
			struct page *d = alloc_page_vma(0, a->vma, a->start + (i + j) * PG);

			memcpy(page_address(d), page_address(s + j), PG);
			lock_page(d);
			a->dst[i + j] = migrate_pfn(page_to_pfn(d)) | w;
		}
	}
}

static vm_fault_t drv_migrate_to_ram(struct vm_fault *vmf)
{
	static unsigned long fsrc[NR], fdst[NR];	/* the monitor is one thread */
	bool folio = folio_order(page_folio(vmf->page)) &&
		     __atomic_load_n(&fault_whole, __ATOMIC_ACQUIRE);
	struct migrate_vma a = {
		.vma = vmf->vma, .start = vmf->address, .end = vmf->address + PG,
		.src = fsrc, .dst = fdst, .pgmap_owner = &pgmap,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE, .fault_page = vmf->page,
	};

	__atomic_fetch_add(&faults, 1, __ATOMIC_RELAXED);
	if (folio) {
		a.start = vmf->address & ~(PMD - 1);
		a.end = a.start + PMD;
		a.flags |= MIGRATE_VMA_SELECT_COMPOUND;
	}
	if (migrate_vma_setup(&a))
		return VM_FAULT_SIGBUS;
	drv_copy_back(&a, true);
	migrate_vma_pages(&a);
	migrate_vma_finalize(&a);
	return 0;
}

static const struct dev_pagemap_ops drv_ops = {
	.page_free = drv_page_free,
	.migrate_to_ram = drv_migrate_to_ram,
};

/* ---- helpers ---- */

static unsigned long src[NR], dst[NR];

static void fill(char *p, unsigned long n, int seed)
{
	for (unsigned long i = 0; i < n; i++)
		p[i] = (char)(i * 7 + (i >> 12) + seed);
}

static bool check(const char *p, unsigned long n, int seed)
{
	for (unsigned long i = 0; i < n; i++)
		if (p[i] != (char)(i * 7 + (i >> 12) + seed))
			return false;
	return true;
}

static unsigned long device_used(void)
{
	struct hetmem_devmem_stats st;

	hetmem_devmem_get_stats(&st);
	return st.device_pages_used;
}

/* AnonHugePages of the mapping that holds @p, in KiB. */
static long huge_kib(const void *p)
{
	unsigned long s, e, want = (uintptr_t)p;
	long kb = -1, v;
	bool in = false;
	char line[256];
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2)
			in = s <= want && want < e;
		else if (in && sscanf(line, "AnonHugePages: %ld", &v) == 1)
			kb = v;
	}
	fclose(f);
	return kb;
}

/* A populated, 2 MiB-aligned THP region; NULL when no huge page is had. */
static char *map_thp(void)
{
	char *r = mmap(NULL, 2 * PMD, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	if (r == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)r + PMD - 1) & ~(PMD - 1));
	if (p > r)
		munmap(r, (size_t)(p - r));
	munmap(p + PMD, (size_t)(r + 2 * PMD - (p + PMD)));
	madvise(p, PMD, MADV_HUGEPAGE);
	fill(p, PMD, 3);
	if (huge_kib(p) < 2048) {
		munmap(p, PMD);
		return NULL;
	}
	return p;
}

/* Set up a migration of [p, p + PMD) with @flags; the mmap lock is taken. */
static int setup(struct migrate_vma *a, char *p, unsigned long flags)
{
	struct mm_struct *mm = hetmem_current_mm();

	memset(a, 0, sizeof(*a));
	memset(dst, 0, sizeof(dst));
	a->src = src;
	a->dst = dst;
	a->start = (uintptr_t)p;
	a->end = (uintptr_t)p + PMD;
	a->pgmap_owner = &pgmap;
	a->flags = flags;
	mmap_read_lock(mm);
	a->vma = vma_lookup(mm, a->start);
	return migrate_vma_setup(a);
}

static void finish(struct migrate_vma *a)
{
	migrate_vma_pages(a);
	migrate_vma_finalize(a);
	mmap_read_unlock(hetmem_current_mm());
}

/* Copy a compound system source into one device folio. */
static void to_folio(struct migrate_vma *a)
{
	struct page *s = migrate_pfn_to_page(a->src[0]), *d = drv_alloc_folio();

	if (s)
		memcpy(page_address(d), page_address(s), PMD);
	else
		memset(page_address(d), 0, PMD);
	a->dst[0] = migrate_pfn(page_to_pfn(d)) | MIGRATE_PFN_WRITE | MIGRATE_PFN_COMPOUND;
}

/* Copy page @j of a compound system source into a device base page. */
static void to_base(struct migrate_vma *a, unsigned long j)
{
	struct page *s = migrate_pfn_to_page(a->src[0]), *d = drv_alloc_page();

	memcpy(page_address(d), (char *)page_address(s) + j * PG, PG);
	a->dst[j] = migrate_pfn(page_to_pfn(d)) | MIGRATE_PFN_WRITE;
}

/* Wait for @pid at most 20 s (it is killed then); its exit status or -1. */
static int wait_child(pid_t pid)
{
	int64_t end = harness_now_ms() + 20000;
	int status;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (harness_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		harness_sleep_ms(1);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * The folio went back without a CPU fault: freed, the data in place, and
 * the range one PMD-mapped huge page again.
 */
static void expect_back_huge(const char *p)
{
	EXPECT_TRUE(harness_wait_int(&frees, 1, 2000));
	EXPECT_EQ(device_used(), 0);
	EXPECT_TRUE(check(p, PMD, 3));
	EXPECT_EQ(huge_kib(p), 2048);
	EXPECT_EQ(nfaults(), 0);
}

FIXTURE(devfolio) {
	char *p;
};

FIXTURE_SETUP(devfolio)
{
	struct hetmem_mm_caps caps;
	void *mem;

	if (hetmem_mm_probe(&caps) || !caps.uffd || !caps.uffd_move)
		SKIP(return, "no userfaultfd with UFFD_FEATURE_MOVE");
	if (!harness_thp_enabled())
		SKIP(return, "transparent huge pages are disabled");
	memset(&pgmap, 0, sizeof(pgmap));
	next_folio = next_base = 0;
	frees = faults = 0;
	__atomic_store_n(&fault_whole, true, __ATOMIC_RELEASE);
	pgmap.type = MEMORY_DEVICE_PRIVATE;
	pgmap.ops = &drv_ops;
	pgmap.owner = &pgmap;
	pgmap.range.end = (FOLIO_BLOCKS + BASE_BLOCKS) * PMD - 1;
	mem = memremap_pages(&pgmap, 0);
	ASSERT_FALSE(hetmem_is_err_ptr(mem));
	first_pfn = pgmap.range.start >> HETMEM_PAGE_SHIFT;
	self->p = map_thp();
	if (!self->p)
		SKIP(return, "no transparent huge page to be had");
}

FIXTURE_TEARDOWN(devfolio)
{
	hetmem_mm_teardown();
	if (self->p)
		munmap(self->p, PMD);
	hetmem_pagewalk_close();
	memunmap_pages(&pgmap);
}

/* THP to a device folio, as one entry; the folio is mapped page by page. */
static void thp_to_folio(char *p)
{
	struct migrate_vma a;

	ASSERT_EQ(setup(&a, p, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND), 0);
	ASSERT_EQ(a.cpages, 1);
	to_folio(&a);
	finish(&a);
	ASSERT_EQ(device_used(), NR);
}

TEST_F(devfolio, thp_is_one_compound_entry)
{
	struct migrate_vma a;
	struct page *s;
	unsigned long i;

	ASSERT_EQ(setup(&a, self->p, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND), 0);
	EXPECT_EQ(a.cpages, 1);
	EXPECT_EQ(a.src[0] & (MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND),
		  MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
	for (i = 1; i < NR; i++)
		if (a.src[i])
			break;
	EXPECT_EQ(i, NR);
	s = migrate_pfn_to_page(a.src[0]);
	ASSERT_NONNULL(s);
	EXPECT_EQ(folio_order(page_folio(s)), HPAGE_PMD_ORDER);
	EXPECT_TRUE(page_folio(s + 300) == (struct folio *)s);
	EXPECT_TRUE(check(page_address(s), PMD, 3));
	/* Declined: the huge page goes back where it was, whole. */
	finish(&a);
	EXPECT_TRUE(check(self->p, PMD, 3));
	EXPECT_EQ(huge_kib(self->p), 2048);
	EXPECT_EQ(device_used(), 0);
}

TEST_F(devfolio, huge_hole_is_one_compound_entry)
{
	struct migrate_vma a;

	ASSERT_EQ(madvise(self->p, PMD, MADV_DONTNEED), 0);
	ASSERT_EQ(setup(&a, self->p, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND), 0);
	EXPECT_EQ(a.cpages, 1);
	EXPECT_EQ(a.src[0], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
	EXPECT_EQ(a.src[1], 0);
	to_folio(&a);
	finish(&a);
	EXPECT_EQ(device_used(), NR);
	for (unsigned long i = 0; i < PMD; i += 4096)
		ASSERT_EQ(self->p[i], 0);
	EXPECT_EQ(nfaults(), 1);
	EXPECT_TRUE(harness_wait_int(&frees, 1, 2000));
	EXPECT_EQ(device_used(), 0);
}

TEST_F(devfolio, folio_comes_back_as_a_huge_page)
{
	struct migrate_vma a;

	thp_to_folio(self->p);
	ASSERT_EQ(setup(&a, self->p, MIGRATE_VMA_SELECT_DEVICE_PRIVATE |
			MIGRATE_VMA_SELECT_COMPOUND), 0);
	EXPECT_EQ(a.cpages, 1);
	EXPECT_TRUE(a.src[0] & MIGRATE_PFN_COMPOUND);
	EXPECT_TRUE(is_device_private_page(migrate_pfn_to_page(a.src[0])));
	drv_copy_back(&a, true);
	finish(&a);
	expect_back_huge(self->p);
}

/* Without SELECT_COMPOUND every subpage is collected (they share the lock). */
TEST_F(devfolio, folio_without_compound_comes_back_page_by_page)
{
	struct migrate_vma a;

	thp_to_folio(self->p);
	ASSERT_EQ(setup(&a, self->p, MIGRATE_VMA_SELECT_DEVICE_PRIVATE), 0);
	EXPECT_EQ(a.cpages, NR);
	drv_copy_back(&a, false);
	finish(&a);
	EXPECT_TRUE(harness_wait_int(&frees, 1, 2000));
	EXPECT_EQ(device_used(), 0);
	EXPECT_TRUE(check(self->p, PMD, 3));
}

/* A compound source served by base pages, half of them declined. */
TEST_F(devfolio, split_destinations_partly_declined)
{
	struct migrate_vma a;
	unsigned long j;

	ASSERT_EQ(setup(&a, self->p, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND), 0);
	ASSERT_EQ(a.cpages, 1);
	for (j = 0; j < NR; j += 2)
		to_base(&a, j);
	finish(&a);
	EXPECT_EQ(device_used(), NR / 2);
	EXPECT_TRUE(check(self->p, PMD, 3));
	EXPECT_EQ(nfaults(), NR / 2);
	EXPECT_TRUE(harness_wait_int(&frees, NR / 2, 2000));
	EXPECT_EQ(device_used(), 0);
}

/* A CPU touch of one page brings the whole folio back. */
TEST_F(devfolio, touch_brings_the_folio_back)
{
	thp_to_folio(self->p);
	((volatile char *)self->p)[PMD / 2 + 5] = (char)((PMD / 2 + 5) * 7 + ((PMD / 2 + 5) >> 12) + 3);
	EXPECT_EQ(nfaults(), 1);
	EXPECT_TRUE(harness_wait_int(&frees, 1, 2000));
	EXPECT_EQ(device_used(), 0);
	EXPECT_TRUE(check(self->p, PMD, 3));
	EXPECT_EQ(nfaults(), 1);
}

/* A touch with a driver that brings back one page splits the folio. */
TEST_F(devfolio, touch_one_page_of_the_folio)
{
	thp_to_folio(self->p);
	__atomic_store_n(&fault_whole, false, __ATOMIC_RELEASE);
	EXPECT_TRUE(check(self->p + PG, PG, 3 + PG * 7 + 1));
	EXPECT_EQ(nfaults(), 1);
	EXPECT_EQ(device_used(), NR);	/* the folio lives while a page is mapped */
	EXPECT_TRUE(check(self->p, PMD, 3));
	EXPECT_EQ(nfaults(), NR);
	EXPECT_TRUE(harness_wait_int(&frees, 1, 2000));
	EXPECT_EQ(device_used(), 0);
}

/* Half the folio unmapped; fork brings the other half back for both. */
TEST_F(devfolio, partly_unmapped_folio_and_fork)
{
	pid_t pid;

	thp_to_folio(self->p);
	ASSERT_EQ(munmap(self->p + PMD / 2, PMD / 2), 0);
	EXPECT_EQ(device_used(), NR);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(check(self->p, PMD / 2, 3) ? 0 : 1);
	EXPECT_EQ(wait_child(pid), 0);
	EXPECT_TRUE(harness_wait_int(&frees, 1, 2000));
	EXPECT_EQ(device_used(), 0);
	EXPECT_TRUE(check(self->p, PMD / 2, 3));
	EXPECT_EQ(nfaults(), 0);
	munmap(self->p, PMD / 2);
	self->p = NULL;
}

/* Eviction by frame number: one compound word, then placeholders. */
TEST_F(devfolio, eviction_by_frame)
{
	unsigned long spfn[NR], dpfn[NR] = { 0 };
	struct folio *f;

	thp_to_folio(self->p);
	ASSERT_EQ(migrate_device_range(spfn, first_pfn, NR), 0);
	EXPECT_EQ(spfn[0] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND),
		  MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
	EXPECT_EQ(spfn[1], 0);
	f = vma_alloc_folio(0, HPAGE_PMD_ORDER, NULL, (uintptr_t)self->p);
	ASSERT_NONNULL(f);
	memcpy(page_address(&f->page), page_address(migrate_pfn_to_page(spfn[0])), PMD);
	folio_lock(f);
	dpfn[0] = migrate_pfn(page_to_pfn(&f->page)) | MIGRATE_PFN_COMPOUND;
	migrate_device_pages(spfn, dpfn, NR);
	EXPECT_TRUE(spfn[0] & MIGRATE_PFN_MIGRATE);
	migrate_device_finalize(spfn, dpfn, NR);
	expect_back_huge(self->p);
}

TEST_F(devfolio, teardown_brings_the_folio_back)
{
	thp_to_folio(self->p);
	hetmem_mm_teardown();
	EXPECT_EQ(device_used(), 0);
	EXPECT_TRUE(check(self->p, PMD, 3));
	EXPECT_EQ(nfaults(), 0);
}
