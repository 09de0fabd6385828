/* SPDX-License-Identifier: MIT */
/*
 * hetmem - migration between system and device memory (migrate_vma).
 */
#ifndef HETMEM_MM_MIGRATE_H
#define HETMEM_MM_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/mm/page.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: migrate_vma
 *
 * The kernel's three-step protocol, with its arrays and flags:
 *
 *  1. migrate_vma_setup() collects the pages of [start, end) that the
 *     flags select (system pages with MIGRATE_VMA_SELECT_SYSTEM, this
 *     owner's device pages with MIGRATE_VMA_SELECT_DEVICE_PRIVATE), sends
 *     one MMU_NOTIFY_MIGRATE invalidation with pgmap_owner as its owner,
 *     and detaches every collected page from the CPU: from then on a CPU
 *     access waits (in its page fault) until the page is either back or
 *     in its new place. src[i] says what was collected: MIGRATE_PFN_MIGRATE
 *     with MIGRATE_PFN_VALID and the frame of the source page (a staging
 *     page holding the data, or a device page), MIGRATE_PFN_MIGRATE alone
 *     for a hole or the zero page (the destination is to be cleared), 0
 *     for a page that is not migrating.
 *  2. The driver allocates destination pages (zone_device_page_init() for
 *     device pages, alloc_page_vma() for system pages), copies or clears,
 *     and sets dst[i] = migrate_pfn(page_to_pfn(page)) [| MIGRATE_PFN_WRITE]
 *     [| MIGRATE_PFN_COMPOUND]; 0 declines the page.
 *  3. migrate_vma_pages() installs what can be installed and clears
 *     MIGRATE_PFN_MIGRATE in src[] for what cannot; migrate_vma_finalize()
 *     makes the result visible, restores the sources that did not move,
 *     wakes the CPU threads that waited, unlocks and releases every page.
 *
 * Which pages migrate is the kernel's rule: only private anonymous memory
 * (a shared or file mapping migrates nothing; migrate_vma_setup() still
 * returns 0), never swapped-out, hugetlb or special mappings (-EINVAL).
 * Individual pages stay where they are when they cannot be detached:
 * a page being migrated by another thread, a page whose lock is taken, a
 * page that appeared or disappeared while collecting. Callers consult
 * cpages and then each src[i].
 *
 * How a page leaves the CPU without losing a write is described in
 * src/mm/migrate.c; in short, the page is moved (UFFDIO_MOVE) out of the
 * mapping into hetmem's staging area, leaving a hole that faults to
 * hetmem, and read-only or copy-on-write-shared pages are write-protected,
 * copied and then dropped.
 *
 * migrate_device_range() / migrate_device_pfns() / migrate_device_pages()
 * / migrate_device_finalize() do the same for device pages named by frame
 * number, wherever they are mapped: the eviction path.
 */
#define MIGRATE_PFN_VALID	(1UL << 0)
#define MIGRATE_PFN_MIGRATE	(1UL << 1)
#define MIGRATE_PFN_WRITE	(1UL << 3)
#define MIGRATE_PFN_COMPOUND	(1UL << 4)
#define MIGRATE_PFN_SHIFT	6

/**
 * migrate_pfn() - encode a destination frame
 * @pfn: a frame number
 *
 * Context: any.
 * Return: the frame shifted into place, with MIGRATE_PFN_VALID.
 */
static inline unsigned long migrate_pfn(unsigned long pfn)
{
	return (pfn << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID;
}

/**
 * migrate_pfn_to_page() - the page an src/dst word names
 * @mpfn: a word of src[] or dst[]
 *
 * Context: any.
 * Return: the page descriptor, or NULL without MIGRATE_PFN_VALID.
 */
static inline struct page *migrate_pfn_to_page(unsigned long mpfn)
{
	if (!(mpfn & MIGRATE_PFN_VALID))
		return NULL;
	return pfn_to_page(mpfn >> MIGRATE_PFN_SHIFT);
}

enum migrate_vma_direction {
	MIGRATE_VMA_SELECT_SYSTEM = 1 << 0,
	MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1,
	MIGRATE_VMA_SELECT_DEVICE_COHERENT = 1 << 2,
	MIGRATE_VMA_SELECT_COMPOUND = 1 << 3,
};

struct hetmem_migrate;

/**
 * struct migrate_vma - one migration of a virtual range
 * @vma: the mapping holding [start, end) (vma_lookup())
 * @dst: destination words, one per page
 * @src: source words, one per page, filled by migrate_vma_setup()
 * @cpages: pages collected
 * @npages: pages in the range
 * @start: first address (rounded down to a page)
 * @end: end address (rounded up; set to start + npages pages)
 * @pgmap_owner: owner of the device pages to select, and owner of the
 *	MMU_NOTIFY_MIGRATE invalidation
 * @flags: MIGRATE_VMA_SELECT_*
 * @fault_page: the locked device page when called from migrate_to_ram
 * @priv: hetmem's state between the three calls; do not touch
 */
struct migrate_vma {
	struct vm_area_struct *vma;
	unsigned long *dst;
	unsigned long *src;
	unsigned long cpages;
	unsigned long npages;
	unsigned long start;
	unsigned long end;
	void *pgmap_owner;
	unsigned long flags;
	struct page *fault_page;
	struct hetmem_migrate *priv;
};

HETMEM_API int migrate_vma_setup(struct migrate_vma *args);
HETMEM_API void migrate_vma_pages(struct migrate_vma *migrate);
HETMEM_API void migrate_vma_finalize(struct migrate_vma *migrate);

HETMEM_API int migrate_device_range(unsigned long *src_pfns, unsigned long start,
				    unsigned long npages);
HETMEM_API int migrate_device_pfns(unsigned long *src_pfns, unsigned long npages);
HETMEM_API void migrate_device_pages(unsigned long *src_pfns,
				     unsigned long *dst_pfns, unsigned long npages);
HETMEM_API void migrate_device_finalize(unsigned long *src_pfns,
					unsigned long *dst_pfns,
					unsigned long npages);

HETMEM_END_DECLS

#endif /* HETMEM_MM_MIGRATE_H */
