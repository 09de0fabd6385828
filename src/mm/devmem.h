/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private interfaces shared by the device-memory files of the mm
 * layer: memremap.c (device pagemaps, page descriptors), staging.c (the
 * staging area: system pages with descriptors), vma.c, devtab.c,
 * migrate.c, fault.c and exclusive.c.
 */
#ifndef HETMEM_SRC_MM_DEVMEM_H
#define HETMEM_SRC_MM_DEVMEM_H

#include <stdbool.h>
#include <stdint.h>

#include <hetmem/mm/memremap.h>
#include <hetmem/mm/migrate.h>
#include <hetmem/mm/page.h>
#include <hetmem/mm/rmap.h>

#include "mm/internal.h"

#include <linux/userfaultfd.h>

/* UFFDIO_MOVE (Linux 6.8), for headers older than the running kernel. */
#ifndef UFFDIO_MOVE
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#endif

/* ---- memremap.c ---- */

/* hetmem's side of a struct dev_pagemap. */
struct hetmem_pagemap {
	struct dev_pagemap *pgmap;
	unsigned long pfn_first;	/* first device frame */
	unsigned long npages;
	struct page *pages;		/* npages descriptors */
	size_t pages_bytes;
	void *mem;			/* the device memory, mapped */
	size_t mem_bytes;
	int memfd;
};

/* Process-wide counters, updated with relaxed atomics. */
extern struct hetmem_devmem_stats hetmem_devmem_counters;
#define hetmem_devmem_count(field, n) \
	__atomic_fetch_add(&hetmem_devmem_counters.field, (uint64_t)(n), \
			   __ATOMIC_RELAXED)

/* Device page of a device frame, NULL when no pagemap holds it. */
struct page *hetmem_device_pfn_to_page(unsigned long pfn);

/*
 * put_page() of @n pages (heads or not); the staging pages whose last
 * reference goes are freed together. Reorders @pages.
 */
void hetmem_put_pages(struct page **pages, unsigned long n);

/* ---- staging.c ---- */

/*
 * Start the staging area (idempotent, per process; a forked child gets
 * its own). 0 or -errno (-EOPNOTSUPP without UFFD_FEATURE_MOVE).
 */
int hetmem_staging_start(void);
void hetmem_staging_stop(void);

/* Descriptor of a staging frame, NULL for any other frame. */
struct page *hetmem_staging_pfn_to_page(unsigned long pfn);

/*
 * A staging page (order 0) or PMD-sized folio (order HPAGE_PMD_ORDER) at
 * the same offset within its 2 MiB block as @addr, so that a run of
 * consecutive addresses gets a run of consecutive staging pages and one
 * UFFDIO_MOVE moves the whole run.
 * @empty: the slot must hold no memory (it is about to receive a page by
 * UFFDIO_MOVE); otherwise populated slots are preferred (a driver is about
 * to copy into it and should not pay for a fresh page). Returned with one
 * reference, unlocked. NULL when the area is exhausted or not started.
 */
struct page *hetmem_staging_alloc(unsigned int order, unsigned long addr,
				  bool empty);

/*
 * UFFDIO_MOVE [src, src + len) of the application into staging memory at
 * @dst (through the staging userfaultfd, which has no events, so the
 * ioctl never fails with EAGAIN). @allow_holes: skip source holes.
 * Returns the bytes moved, or -errno of the first failure with the bytes
 * already moved in *@moved.
 */
long hetmem_staging_move_in(unsigned long dst, unsigned long src,
			    unsigned long len, bool allow_holes,
			    unsigned long *moved);

/* The memory of @nr staging pages from @page on left by UFFDIO_MOVE. */
void hetmem_staging_moved_out(struct page *page, unsigned long nr);

/* Is @page in the huge part of the staging area (PMD-sized folios only)? */
bool hetmem_staging_is_huge(const struct page *page);

/*
 * Staging folio @head was moved into the application as a whole; @pmd:
 * the destination now reads as a PMD-mapped huge page, so the move took
 * the PMD and left no page table behind in the staging block.
 */
void hetmem_staging_installed_whole(struct page *head, bool pmd);

/* Called by put_page() when a staging page's count reaches zero. */
void hetmem_staging_free(struct page *page);

/*
 * Up to @n consecutive order-0 staging pages for the consecutive pages
 * from @addr (one 2 MiB window), allocated under one hold of the lock as
 * hetmem_staging_alloc() would one by one; stops early where the next
 * page would not follow. Returns how many are in @pages.
 */
unsigned long hetmem_staging_alloc_run(unsigned long addr, unsigned long n,
				       bool empty, struct page **pages);

/*
 * hetmem_staging_free() of @n pages at once, under one hold of the
 * allocator lock; reorders @pages.
 */
void hetmem_staging_free_pages(struct page **pages, unsigned long n);

/* Frame number (virtual page number) of a staging page descriptor. */
unsigned long hetmem_staging_page_to_pfn(const struct page *page);

/* Bytes of populated staging memory kept in free blocks for reuse. */
uint64_t hetmem_staging_cached_bytes(void);

/*
 * Tests only: size of the arena the next hetmem_staging_start() reserves
 * (a multiple of 2 MiB; 0 restores the default of 16 GiB).
 */
void hetmem_staging_set_arena_size(unsigned long bytes);

/* ---- vma.c ---- */

/* Fill @out from a hetmem_vma. */
void hetmem_vma_to_area(struct mm_struct *mm, const struct hetmem_vma *vma,
			struct vm_area_struct *out);

/*
 * The reverse map of a device or exclusive page: the address space and
 * address that map it. Written under the mm's dev_lock, read by eviction
 * without it, so both sides use atomics.
 */
static inline struct mm_struct *page_mm(struct page *page)
{
	return __atomic_load_n(&page->mm, __ATOMIC_ACQUIRE);
}

static inline unsigned long page_vaddr(struct page *page)
{
	return __atomic_load_n(&page->index, __ATOMIC_RELAXED) << HETMEM_PAGE_SHIFT;
}

static inline void page_set_map(struct page *page, struct mm_struct *mm,
				unsigned long addr)
{
	__atomic_store_n(&page->index, addr >> HETMEM_PAGE_SHIFT, __ATOMIC_RELAXED);
	__atomic_store_n(&page->mm, mm, __ATOMIC_RELEASE);
}

/* ---- devtab.c: the device entries of an address space ---- */

/*
 * An entry stands where the kernel keeps a non-present PTE: a page that
 * lives in device memory (DEVICE), a page on its way between the CPU and
 * a device (MIGRATING: CPU faults wait), or a device-exclusive page
 * (EXCLUSIVE, the frame is the staging page holding it). The frame is a
 * device frame, a staging frame, or 0 for a hole being migrated.
 */
#define HETMEM_DEVTAB_DEVICE	1ULL
#define HETMEM_DEVTAB_MIGRATING	2ULL
#define HETMEM_DEVTAB_EXCLUSIVE	3ULL
#define HETMEM_DEVTAB_TYPE	7ULL
#define HETMEM_DEVTAB_WRITE	8ULL	/* the CPU mapping was writable */
#define HETMEM_DEVTAB_PFN_SHIFT	8

static inline uint64_t hetmem_devtab_entry(unsigned long pfn, uint64_t flags)
{
	return ((uint64_t)pfn << HETMEM_DEVTAB_PFN_SHIFT) | flags;
}

static inline unsigned long hetmem_devtab_pfn(uint64_t e)
{
	return (unsigned long)(e >> HETMEM_DEVTAB_PFN_SHIFT);
}

static inline uint64_t hetmem_devtab_type(uint64_t e)
{
	return e & HETMEM_DEVTAB_TYPE;
}

uint64_t hetmem_devtab_lookup(struct mm_struct *mm, unsigned long addr);
bool hetmem_devtab_hmm(struct mm_struct *mm, unsigned long addr, void *owner,
		       unsigned long *out);
void hetmem_devtab_unmap(struct mm_struct *mm, unsigned long start,
			 unsigned long end);
void hetmem_devtab_remove(struct mm_struct *mm, unsigned long start,
			  unsigned long end, bool *own);
void hetmem_devtab_move(struct mm_struct *mm, unsigned long from,
			unsigned long to, unsigned long len);
void hetmem_devtab_prune(struct mm_struct *mm);
bool hetmem_devtab_empty(struct mm_struct *mm);

/* ---- fault.c ---- */

/* Serve one userfaultfd page fault; -EAGAIN: keep it and retry later. */
int hetmem_fault_serve(struct mm_struct *mm, const void *uffd_msg);

/* ---- migrate.c / exclusive.c ---- */

/* Bring every device and device-exclusive page of @mm back (fork, teardown). */
void hetmem_migrate_evict_all(struct mm_struct *mm);
/* Restore the device-exclusive page at @addr; -EAGAIN: try again later. */
int hetmem_exclusive_restore(struct mm_struct *mm, unsigned long addr,
			     bool on_monitor);
/*
 * Move [addr, addr + n pages) out of the application into the empty
 * staging pages @pages (consecutive); see migrate.c.
 */
long hetmem_migrate_move_out(unsigned long addr, unsigned long n,
			     struct page **pages, bool *moved, bool stop_early);
/*
 * Move a staging run back into the application; returns pages installed.
 * Part of a huge staging folio is copied instead; a whole one that moved
 * tells the staging area whether its PMD went along.
 */
unsigned long hetmem_migrate_install(struct mm_struct *mm, unsigned long addr,
				     struct page *page, unsigned long nr,
				     bool on_monitor);

#endif /* HETMEM_SRC_MM_DEVMEM_H */
