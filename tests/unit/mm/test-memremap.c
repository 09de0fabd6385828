/* SPDX-License-Identifier: MIT */
/*
 * hetmem - device pagemaps and page descriptors (memremap_pages(), frame
 * numbers, reference counts, the page lock, large device pages), the
 * staging area (placement, the cache of populated blocks, exhaustion,
 * UFFDIO_MOVE into it, RSS) and the mapping lookups. Each case runs in
 * its own forked process, so the process-wide registry and staging area
 * start fresh every time.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <hetmem/core/warn.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/page.h>

#include "mm/devmem.h"
#include "mm/pagewalk.h"
#include "harness.h"

#define PG HETMEM_PAGE_SIZE
#define PMD HETMEM_PMD_SIZE

static struct page *freed[16];
static unsigned int nfreed;

static void record_free(struct page *page)
{
	if (nfreed < 16)
		freed[nfreed] = page;
	nfreed++;
}

static vm_fault_t no_fault(struct vm_fault *vmf)
{
	(void)vmf;
	return VM_FAULT_SIGBUS;
}

static const struct dev_pagemap_ops ops = {
	.page_free = record_free,
	.migrate_to_ram = no_fault,
};

static const struct dev_pagemap_ops ops_no_free = {
	.migrate_to_ram = no_fault,
};

static int owner;

FIXTURE(memremap) {
	struct dev_pagemap pgmap;
	void *mem;
	unsigned long warns;
};

static void pgmap_fill(struct dev_pagemap *pgmap, unsigned long bytes)
{
	*pgmap = (struct dev_pagemap){
		.type = MEMORY_DEVICE_PRIVATE,
		.ops = &ops,
		.owner = &owner,
		.range = { .start = 0, .end = bytes - 1 },
		.nr_range = 1,
	};
}

FIXTURE_SETUP(memremap)
{
	pgmap_fill(&self->pgmap, 1024 * PG);
	self->mem = memremap_pages(&self->pgmap, 0);
	ASSERT_FALSE(hetmem_is_err_ptr(self->mem));
}

FIXTURE_TEARDOWN(memremap)
{
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	if (self->pgmap.priv)
		memunmap_pages(&self->pgmap);
	hetmem_staging_stop();
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

static void warns_begin(FIXTURE_DATA(memremap) *self)
{
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	self->warns = hetmem_warn_count();
}

static unsigned long warns_end(FIXTURE_DATA(memremap) *self)
{
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	return hetmem_warn_count() - self->warns;
}

static unsigned long pfn_first(const struct dev_pagemap *pgmap)
{
	return (unsigned long)(pgmap->range.start >> HETMEM_PAGE_SHIFT);
}

static struct page *dev_page(const struct dev_pagemap *pgmap, unsigned long i)
{
	return pfn_to_page(pfn_first(pgmap) + i);
}

#define NEED_STAGING() do {						\
	int __err = hetmem_staging_start();				\
	if (__err == -EOPNOTSUPP)					\
		SKIP(return, "no UFFD_FEATURE_MOVE (or no userfaultfd)");\
	ASSERT_EQ(__err, 0);						\
} while (0)

/* ---- memremap_pages() ---- */

static int remap_err(struct dev_pagemap *pgmap)
{
	void *mem = memremap_pages(pgmap, 0);

	if (!hetmem_is_err_ptr(mem)) {
		memunmap_pages(pgmap);
		return 0;
	}
	return hetmem_ptr_err(mem);
}

TEST_F(memremap, errors)
{
	struct dev_pagemap pg;

	ASSERT_EQ(hetmem_ptr_err(memremap_pages(NULL, 0)), -EINVAL);
	pgmap_fill(&pg, 16 * PG);
	pg.type = MEMORY_DEVICE_COHERENT;
	ASSERT_EQ(remap_err(&pg), -EOPNOTSUPP);
	pg.type = MEMORY_DEVICE_PCI_P2PDMA;
	ASSERT_EQ(remap_err(&pg), -EOPNOTSUPP);
	pg.type = 0;
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	pgmap_fill(&pg, 16 * PG);
	pg.ops = NULL;
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	pg.ops = &ops_no_free;
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	pgmap_fill(&pg, 16 * PG);
	pg.owner = NULL;
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	pgmap_fill(&pg, 16 * PG);
	pg.nr_range = 2;
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	pgmap_fill(&pg, 16 * PG);
	pg.range.start = 1UL << 40;
	pg.range.end += pg.range.start;
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	pgmap_fill(&pg, 16 * PG + 1);
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	pgmap_fill(&pg, 16 * PG);
	pg.range.end = UINT64_MAX;	/* size 0 */
	ASSERT_EQ(remap_err(&pg), -EINVAL);
	ASSERT_EQ(hetmem_ptr_err(memremap_pages(&self->pgmap, 0)), -EBUSY);
	pgmap_fill(&pg, 16 * PG);
	pg.nr_range = 0;
	ASSERT_EQ(remap_err(&pg), 0);
}

TEST_F(memremap, pfn_ranges_distinct_and_aligned)
{
	struct dev_pagemap a, b;
	struct hetmem_devmem_stats stats;

	pgmap_fill(&a, 3 * PG);
	pgmap_fill(&b, 600 * PG);
	ASSERT_FALSE(hetmem_is_err_ptr(memremap_pages(&a, 0)));
	ASSERT_FALSE(hetmem_is_err_ptr(memremap_pages(&b, 0)));
	ASSERT_GE(pfn_first(&self->pgmap), HETMEM_DEVICE_PFN_BASE);
	ASSERT_EQ(pfn_first(&self->pgmap) % 512, 0);
	ASSERT_EQ(pfn_first(&a) % 512, 0);
	ASSERT_EQ(pfn_first(&b) % 512, 0);
	ASSERT_GE(pfn_first(&a), pfn_first(&self->pgmap) + 1024);
	ASSERT_GE(pfn_first(&b), pfn_first(&a) + 3);
	ASSERT_EQ(a.range.end - a.range.start + 1, 3 * PG);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.pagemaps, 3);
	ASSERT_EQ(stats.device_pages, 1024 + 3 + 600);
	memunmap_pages(&a);
	ASSERT_NULL(a.priv);
	ASSERT_NULL(pfn_to_page(pfn_first(&b) - 1));
	/* Never reused. */
	pgmap_fill(&a, 3 * PG);
	ASSERT_FALSE(hetmem_is_err_ptr(memremap_pages(&a, 0)));
	ASSERT_GE(pfn_first(&a), pfn_first(&b) + 600);
	memunmap_pages(&a);
	memunmap_pages(&b);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.pagemaps, 1);
}

TEST_F(memremap, device_round_trips)
{
	unsigned long first = pfn_first(&self->pgmap), i;
	int fd = hetmem_dev_pagemap_fd(&self->pgmap);
	struct page *page;
	struct stat sb;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(fstat(fd, &sb), 0);
	ASSERT_EQ(sb.st_size, 1024 * PG);
	for (i = 0; i < 1024; i += 97) {
		page = pfn_to_page(first + i);
		ASSERT_NONNULL(page);
		ASSERT_TRUE(is_device_private_page(page));
		ASSERT_TRUE(page_pgmap(page) == &self->pgmap);
		ASSERT_EQ(page_to_pfn(page), first + i);
		ASSERT_TRUE(page_address(page) == (char *)self->mem + i * PG);
		ASSERT_EQ(page->_refcount, 0);
	}
	memset(page_address(pfn_to_page(first + 5)), 0x5a, PG);
	ASSERT_EQ(((unsigned char *)self->mem)[5 * PG + 7], 0x5a);
	ASSERT_NULL(pfn_to_page(first + 1024));
	ASSERT_NULL(pfn_to_page(first - 1));
	ASSERT_NULL(pfn_to_page(12345));
	ASSERT_EQ(hetmem_dev_pagemap_fd(NULL), -EINVAL);
}

TEST_F(memremap, page_init_lock_and_free)
{
	struct page *page = dev_page(&self->pgmap, 3);
	struct hetmem_devmem_stats stats;

	zone_device_page_init(page);
	ASSERT_EQ(page->_refcount, 1);
	ASSERT_FALSE(trylock_page(page));
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.device_pages_used, 1);
	unlock_page(page);
	ASSERT_TRUE(trylock_page(page));
	unlock_page(page);
	get_page(page);
	put_page(page);
	ASSERT_EQ(nfreed, 0);
	put_page(page);
	ASSERT_EQ(nfreed, 1);
	ASSERT_TRUE(freed[0] == page);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.device_pages_used, 0);
	/* The driver may hand it out again. */
	zone_device_page_init(page);
	unlock_page(page);
	put_page(page);
	ASSERT_EQ(nfreed, 2);

	warns_begin(self);
	put_page(page);			/* no reference left */
	unlock_page(page);		/* not locked */
	zone_device_page_init(page);
	zone_device_page_init(page);	/* in use */
	ASSERT_EQ(warns_end(self), 3);
	unlock_page(page);
	put_page(page);
	ASSERT_EQ(nfreed, 3);
}

TEST_F(memremap, folio_order9)
{
	struct page *head = dev_page(&self->pgmap, 512);
	struct page *tail = dev_page(&self->pgmap, 700);
	struct hetmem_devmem_stats stats;
	struct folio *folio = (struct folio *)head;

	zone_device_folio_init(folio, HPAGE_PMD_ORDER);
	ASSERT_EQ(folio_order(folio), HPAGE_PMD_ORDER);
	ASSERT_TRUE(page_folio(tail) == folio);
	ASSERT_TRUE(folio_page(folio, 188) == tail);
	ASSERT_EQ(head->_refcount, 1);
	ASSERT_FALSE(trylock_page(tail));	/* the head is locked */
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.device_pages_used, 512);
	unlock_page(tail);
	folio_lock(folio);
	folio_unlock(folio);
	get_page(tail);
	ASSERT_EQ(head->_refcount, 2);
	folio_put(folio);
	put_page(tail);
	ASSERT_EQ(nfreed, 1);
	ASSERT_TRUE(freed[0] == head);
	ASSERT_EQ(folio_order(folio), 0);
	ASSERT_TRUE(page_folio(tail) == (struct folio *)tail);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.device_pages_used, 0);

	warns_begin(self);
	zone_device_folio_init((struct folio *)dev_page(&self->pgmap, 256),
			       HPAGE_PMD_ORDER);
	zone_device_folio_init(folio, 3);
	ASSERT_EQ(warns_end(self), 2);
	ASSERT_EQ(head->_refcount, 0);
}

static void *lock_then_unlock(void *arg)
{
	struct page *page = arg;

	lock_page(page);
	__atomic_store_n(&page->zone_device_data, (void *)1, __ATOMIC_RELEASE);
	unlock_page(page);
	return NULL;
}

TEST_F(memremap, lock_page_blocks)
{
	struct page *page = dev_page(&self->pgmap, 9);
	pthread_t th[2];
	int i;

	zone_device_page_init(page);
	ASSERT_EQ(pthread_create(&th[0], NULL, lock_then_unlock, page), 0);
	ASSERT_EQ(pthread_create(&th[1], NULL, lock_then_unlock, page), 0);
	for (i = 0; i < 500 && !(__atomic_load_n(&page->flags, __ATOMIC_RELAXED) &
				  HETMEM_PGF_WAITERS); i++)
		usleep(10 * 1000);
	usleep(50 * 1000);
	ASSERT_NULL(__atomic_load_n(&page->zone_device_data, __ATOMIC_ACQUIRE));
	ASSERT_TRUE(__atomic_load_n(&page->flags, __ATOMIC_RELAXED) &
		    HETMEM_PGF_WAITERS);
	unlock_page(page);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	ASSERT_NONNULL(page->zone_device_data);
	ASSERT_FALSE(page->flags & (HETMEM_PGF_LOCKED | HETMEM_PGF_WAITERS));
	put_page(page);
}

static void *volatile leaked_pagemap;

TEST_F(memremap, unmap_with_page_in_use_warns)
{
	struct page *page = dev_page(&self->pgmap, 1);
	unsigned long pfn = page_to_pfn(page);

	zone_device_page_init(page);
	unlock_page(page);
	warns_begin(self);
	memunmap_pages(&self->pgmap);
	ASSERT_EQ(warns_end(self), 1);
	ASSERT_NULL(pfn_to_page(pfn));
	ASSERT_EQ(hetmem_dev_pagemap_fd(&self->pgmap), -EINVAL);
	/* The leaked page still reaches its driver. */
	put_page(page);
	ASSERT_EQ(nfreed, 1);
	/* Leaked on purpose: keep teardown away from it, LeakSanitizer not. */
	leaked_pagemap = self->pgmap.priv;
	self->pgmap.priv = NULL;
}

/* ---- the staging area ---- */

TEST_F(memremap, staging_placement)
{
	unsigned long a = 0x7f0000000000UL + 37 * PG;
	struct page *p0, *p1, *p2;
	struct hetmem_devmem_stats stats;

	NEED_STAGING();
	p0 = alloc_page_vma(0, NULL, a);
	p1 = alloc_page_vma(0, NULL, a + PG);
	ASSERT_NONNULL(p0);
	ASSERT_NONNULL(p1);
	ASSERT_EQ(page_to_pfn(p1), page_to_pfn(p0) + 1);
	ASSERT_EQ(page_to_pfn(p0) >> 9, page_to_pfn(p1) >> 9);
	ASSERT_EQ(page_to_pfn(p0) & 511, 37);
	ASSERT_TRUE(pfn_to_page(page_to_pfn(p0)) == p0);
	ASSERT_TRUE(page_address(p0) == hetmem_pfn_to_virt(page_to_pfn(p0)));
	ASSERT_FALSE(is_device_private_page(p0));
	ASSERT_EQ(p0->_refcount, 1);
	ASSERT_TRUE(trylock_page(p0));
	unlock_page(p0);
	/* The same slot is busy: another block. */
	p2 = alloc_page_vma(HETMEM_GFP_ZERO, NULL, a);
	ASSERT_NONNULL(p2);
	ASSERT_NE(page_to_pfn(p2) >> 9, page_to_pfn(p0) >> 9);
	ASSERT_EQ(page_to_pfn(p2) & 511, 37);
	ASSERT_EQ(((char *)page_address(p2))[100], 0);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.staging_pages, 3);
	__free_page(p0);
	__free_page(p1);
	__free_pages(p2, 0);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.staging_pages, 0);
	ASSERT_NULL(alloc_pages(0, 3));
}

TEST_F(memremap, staging_cached_and_empty)
{
	struct folio *f;
	struct page *p, *q;
	unsigned long pfn;
	struct hetmem_devmem_stats stats;

	NEED_STAGING();
	p = alloc_pages(0, HPAGE_PMD_ORDER);
	ASSERT_NONNULL(p);
	pfn = page_to_pfn(p);
	ASSERT_EQ(pfn % 512, 0);
	ASSERT_EQ(folio_order(page_folio(p)), HPAGE_PMD_ORDER);
	ASSERT_TRUE(page_folio(pfn_to_page(pfn + 77)) == (struct folio *)p);
	memset(page_address(p), 0xab, PMD);
	__free_pages(p, HPAGE_PMD_ORDER);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.staging_cached_bytes, PMD);
	ASSERT_EQ(stats.staging_pages, 0);

	/* Populated memory is preferred... */
	f = vma_alloc_folio(0, HPAGE_PMD_ORDER, NULL, 0x7f0000000000UL);
	ASSERT_NONNULL(f);
	ASSERT_EQ(page_to_pfn(&f->page), pfn);
	ASSERT_EQ(((unsigned char *)page_address(&f->page))[PMD - 1], 0xab);
	hetmem_devmem_get_stats(&stats);
	ASSERT_EQ(stats.staging_cached_bytes, 0);
	folio_put(f);

	/* ...and an empty request gets an empty block. */
	q = hetmem_staging_alloc(HPAGE_PMD_ORDER, 0, true);
	ASSERT_NONNULL(q);
	ASSERT_NE(page_to_pfn(q), pfn);
	ASSERT_EQ(((unsigned char *)page_address(q))[0], 0);
	put_page(q);
	/* An empty single page in the cached block: its slot is emptied. */
	q = hetmem_staging_alloc(0, 5 * PG, true);
	ASSERT_NONNULL(q);
	if (page_to_pfn(q) == pfn + 5)
		ASSERT_EQ(((unsigned char *)page_address(q))[0], 0);
	put_page(q);
}

TEST_F(memremap, staging_exhaustion)
{
	struct page *a, *b, *c;

	hetmem_staging_set_arena_size(2 * PMD);
	NEED_STAGING();
	a = alloc_pages(0, HPAGE_PMD_ORDER);
	b = alloc_pages(0, HPAGE_PMD_ORDER);
	ASSERT_NONNULL(a);
	ASSERT_NONNULL(b);
	ASSERT_NULL(alloc_pages(0, HPAGE_PMD_ORDER));
	ASSERT_NULL(alloc_page(0));
	ASSERT_NULL(alloc_page_vma(0, NULL, 0x1000));
	ASSERT_NULL(hetmem_staging_alloc(0, 0, true));
	__free_pages(a, HPAGE_PMD_ORDER);
	c = alloc_page(HETMEM_GFP_ZERO);
	ASSERT_NONNULL(c);
	put_page(c);
	put_page(b);
}

TEST_F(memremap, staging_move_in)
{
	unsigned char *src, *dst;
	unsigned long moved = 0;
	struct page *page;
	long ret;

	NEED_STAGING();
	src = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(src, MAP_FAILED);
	memset(src, 0x3c, PG);
	page = hetmem_staging_alloc(0, (unsigned long)src, true);
	ASSERT_NONNULL(page);
	dst = page_address(page);
	ret = hetmem_staging_move_in((unsigned long)dst, (unsigned long)src, PG,
				     false, &moved);
	ASSERT_EQ(ret, PG);
	ASSERT_EQ(moved, PG);
	ASSERT_EQ(dst[0], 0x3c);
	ASSERT_EQ(dst[PG - 1], 0x3c);
	ASSERT_EQ(src[0], 0);		/* a hole now */
	/* A destination that holds memory is refused. */
	memset(src, 0x11, PG);
	ret = hetmem_staging_move_in((unsigned long)dst, (unsigned long)src, PG,
				     false, &moved);
	ASSERT_EQ(ret, -EEXIST);
	ASSERT_EQ(moved, 0);
	/* Holes are skipped when allowed. */
	ret = hetmem_staging_move_in((unsigned long)dst + PG, (unsigned long)src + PG,
				     PG, true, &moved);
	ASSERT_GE(ret, 0);
	hetmem_staging_moved_out(page, 1);
	put_page(page);
	munmap(src, 2 * PG);
}

static int child_alloc(unsigned long parent_pfn)
{
	struct page *page = alloc_page(HETMEM_GFP_ZERO);
	struct hetmem_devmem_stats stats;

	if (!page)
		return 2;
	hetmem_devmem_get_stats(&stats);
	if (stats.staging_pages != 1 || page_to_pfn(page) == parent_pfn ||
	    pfn_to_page(parent_pfn))
		return 3;
	put_page(page);
	hetmem_staging_stop();
	return 0;
}

TEST_F(memremap, staging_after_fork)
{
	struct page *page;
	int status;
	pid_t pid;

	NEED_STAGING();
	page = alloc_page(0);
	ASSERT_NONNULL(page);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(child_alloc(page_to_pfn(page)));
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_TRUE(pfn_to_page(page_to_pfn(page)) == page);
	put_page(page);
}

static long rss_anon_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

TEST_F(memremap, staging_rss_falls_beyond_cache)
{
	struct page *p[3];
	long before, full, after;
	int i;

	NEED_STAGING();
	before = rss_anon_kib();
	ASSERT_GE(before, 0);
	for (i = 0; i < 3; i++) {
		p[i] = alloc_pages(0, HPAGE_PMD_ORDER);
		ASSERT_NONNULL(p[i]);
		memset(page_address(p[i]), i + 1, PMD);
	}
	full = rss_anon_kib();
	ASSERT_GE(full, before + 3 * 2048 - 512);
	for (i = 0; i < 3; i++)
		__free_pages(p[i], HPAGE_PMD_ORDER);
	after = rss_anon_kib();
	ASSERT_LE(after, full - 2 * 2048 + 512);
	ASSERT_EQ(hetmem_staging_cached_bytes(), PMD);
}

/*
 * Small blocks whose memory must go wait until a few more join them: the
 * first freed block is the cached one, the next three wait (counted as
 * cached memory, their contents still there), the fourth discards all four.
 */
TEST_F(memremap, staging_discards_batched)
{
	unsigned long a = 0x7f0000000000UL + 5 * PG;
	struct page *p[5];
	char *addr[5];
	int i;

	NEED_STAGING();
	for (i = 0; i < 5; i++) {
		p[i] = alloc_page_vma(0, NULL, a);	/* one slot: five blocks */
		ASSERT_NONNULL(p[i]);
		addr[i] = page_address(p[i]);
		memset(addr[i], 0x40 + i, PG);
	}
	__free_page(p[0]);
	ASSERT_EQ(hetmem_staging_cached_bytes(), PMD);
	for (i = 1; i < 4; i++) {
		__free_page(p[i]);
		ASSERT_EQ(hetmem_staging_cached_bytes(), PMD + (uint64_t)i * PG);
		ASSERT_EQ(addr[i][PG - 1], 0x40 + i);
	}
	__free_page(p[4]);
	ASSERT_EQ(hetmem_staging_cached_bytes(), PMD);
	for (i = 1; i < 5; i++)
		ASSERT_EQ(addr[i][0], 0);	/* discarded: reads as a hole */
	ASSERT_EQ(addr[0][0], 0x40);		/* the cached block kept its page */
}

/* ---- mapping lookups ---- */

TEST_F(memremap, vma_lookup_and_find_vma)
{
	struct mm_struct *mm = hetmem_current_mm();
	struct vm_area_struct *v;
	char *m;

	ASSERT_NONNULL(mm);
	m = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(m, MAP_FAILED);
	ASSERT_EQ(munmap(m + PG, PG), 0);
	v = vma_lookup(mm, (unsigned long)m);
	ASSERT_NONNULL(v);
	ASSERT_LE(v->vm_start, (unsigned long)m);
	ASSERT_EQ(v->vm_end, (unsigned long)m + PG);
	ASSERT_EQ(v->vm_flags & (VM_READ | VM_WRITE | VM_SHARED),
		  VM_READ | VM_WRITE);
	ASSERT_TRUE(vma_is_anonymous(v));
	ASSERT_NULL(vma_lookup(mm, (unsigned long)m + PG));
	v = find_vma(mm, (unsigned long)m + PG);
	ASSERT_NONNULL(v);
	ASSERT_EQ(v->vm_start, (unsigned long)m + 2 * PG);
	ASSERT_NULL(vma_lookup(NULL, (unsigned long)m));
	munmap(m, PG);
	munmap(m + 2 * PG, PG);
	m = mmap(NULL, PG, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(m, MAP_FAILED);
	v = vma_lookup(mm, (unsigned long)m);
	ASSERT_NONNULL(v);
	ASSERT_TRUE(v->vm_flags & VM_SHARED);
	ASSERT_FALSE(vma_is_anonymous(v));
	munmap(m, PG);
}
