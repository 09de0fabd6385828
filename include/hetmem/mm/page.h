/* SPDX-License-Identifier: MIT */
/*
 * hetmem - page descriptors, mappings (struct vm_area_struct) and faults.
 */
#ifndef HETMEM_MM_PAGE_H
#define HETMEM_MM_PAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>
#include <hetmem/mm/mm.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Pages that have descriptors
 *
 * The kernel has a struct page for every frame. A process has none for
 * its ordinary memory: hetmem names an ordinary system page by its virtual
 * page number (see <hetmem/mm/hmm.h>) and gives a descriptor only to the
 * pages that migration moves around:
 *
 *  - device pages, created by memremap_pages() for a struct dev_pagemap,
 *    with frame numbers at or above HETMEM_DEVICE_PFN_BASE;
 *  - staging pages: system pages that migration holds outside the
 *    application's mappings, either the source pages that
 *    migrate_vma_setup() detached or the destination pages a driver
 *    allocates with alloc_page_vma() / alloc_pages() to bring data back.
 *    Their frame numbers are their virtual page numbers in hetmem's
 *    staging area, so hetmem_pfn_to_virt() and page_address() reach them.
 *
 * pfn_to_page() returns NULL for every other frame. The descriptor keeps
 * the kernel's meaning: a reference count (the page is freed when it drops
 * to zero: a device page goes back to its driver through the pagemap's
 * page_free op, a staging page back to hetmem), a lock bit (lock_page()
 * sleeps on a futex), and zone_device_data, one pointer for the driver.
 * Large pages (order 9, one PMD) are a head descriptor followed by 511
 * tail descriptors; struct folio is the head.
 */
struct dev_pagemap;

struct page {
	uint32_t _refcount;
	uint32_t flags;			/* HETMEM_PGF_*: lock, waiters, order */
	struct dev_pagemap *pgmap;	/* device pages only */
	void *zone_device_data;		/* the driver's */
	unsigned long index;		/* virtual page number it maps, if any */
	struct mm_struct *mm;		/* the address space it maps, if any */
};

/* A large page is described by its head page. */
struct folio {
	struct page page;
};

#define HETMEM_PGF_LOCKED	0x1u
#define HETMEM_PGF_WAITERS	0x2u
#define HETMEM_PGF_DEVICE	0x4u	/* a device page */
#define HETMEM_PGF_STAGING	0x8u	/* a staging system page */
#define HETMEM_PGF_TAIL		0x10u	/* tail of a large page */
/* A tail's distance from its head, so that page_folio() is one step. */
#define HETMEM_PGF_TAIL_SHIFT	16
#define HETMEM_PGF_TAIL_MASK	0x1ff0000u
#define HETMEM_PGF_TAIL_BITS(n)	(HETMEM_PGF_TAIL | ((uint32_t)(n) << HETMEM_PGF_TAIL_SHIFT))
#define HETMEM_PGF_ORDER_SHIFT	8
#define HETMEM_PGF_ORDER_MASK	0xff00u

#define HPAGE_PMD_ORDER (HETMEM_PMD_SHIFT - HETMEM_PAGE_SHIFT)
#define HPAGE_PMD_NR (1UL << HPAGE_PMD_ORDER)

HETMEM_API struct page *pfn_to_page(unsigned long pfn);
HETMEM_API unsigned long page_to_pfn(const struct page *page);
HETMEM_API void *page_address(const struct page *page);
HETMEM_API void get_page(struct page *page);
HETMEM_API void put_page(struct page *page);
HETMEM_API void lock_page(struct page *page);
HETMEM_API bool trylock_page(struct page *page);
HETMEM_API void unlock_page(struct page *page);

/**
 * page_folio() - the large page a page belongs to
 * @page: a page descriptor
 *
 * Context: any.
 * Return: the head descriptor, as a folio.
 */
static inline struct folio *page_folio(struct page *page)
{
	uint32_t flags = __atomic_load_n(&page->flags, __ATOMIC_RELAXED);

	if (flags & HETMEM_PGF_TAIL)
		page -= (flags & HETMEM_PGF_TAIL_MASK) >> HETMEM_PGF_TAIL_SHIFT;
	return (struct folio *)page;
}

/**
 * folio_page() - the n-th page of a folio
 * @folio: a folio
 * @n: index of the page inside it
 *
 * Context: any.
 * Return: the page descriptor.
 */
static inline struct page *folio_page(struct folio *folio, unsigned long n)
{
	return &folio->page + n;
}

/**
 * folio_order() - size of a folio as a power of two pages
 * @folio: a folio
 *
 * Context: any.
 * Return: 0 for a base page, HPAGE_PMD_ORDER for a PMD-sized page.
 */
static inline unsigned int folio_order(const struct folio *folio)
{
	return (__atomic_load_n(&folio->page.flags, __ATOMIC_RELAXED) &
		HETMEM_PGF_ORDER_MASK) >> HETMEM_PGF_ORDER_SHIFT;
}

/**
 * is_device_private_page() - is this a device page?
 * @page: a page descriptor or NULL
 *
 * Context: any.
 * Return: true for a page of a MEMORY_DEVICE_PRIVATE pagemap.
 */
static inline bool is_device_private_page(const struct page *page)
{
	return page && (__atomic_load_n(&page->flags, __ATOMIC_RELAXED) &
			HETMEM_PGF_DEVICE);
}

/**
 * page_pgmap() - the pagemap a device page belongs to
 * @page: a device page
 *
 * Context: any.
 * Return: the pagemap, NULL for a system page.
 */
static inline struct dev_pagemap *page_pgmap(const struct page *page)
{
	return page->pgmap;
}

HETMEM_API void folio_lock(struct folio *folio);
HETMEM_API void folio_unlock(struct folio *folio);
HETMEM_API void folio_get(struct folio *folio);
HETMEM_API void folio_put(struct folio *folio);

/* Allocation flags: only HETMEM_GFP_ZERO changes anything (see alloc_pages()). */
#define HETMEM_GFP_ZERO 0x100u

HETMEM_API struct page *alloc_pages(unsigned int gfp, unsigned int order);
HETMEM_API struct page *alloc_page(unsigned int gfp);

struct vm_area_struct;
HETMEM_API struct page *alloc_page_vma(unsigned int gfp,
				       struct vm_area_struct *vma,
				       unsigned long addr);
HETMEM_API struct folio *vma_alloc_folio(unsigned int gfp, unsigned int order,
					 struct vm_area_struct *vma,
					 unsigned long addr);
HETMEM_API void __free_pages(struct page *page, unsigned int order);
HETMEM_API void __free_page(struct page *page);

/**
 * DOC: Mappings
 *
 * struct vm_area_struct describes one mapping as the kernel reports it
 * (PROCMAP_QUERY, or /proc/self/maps). vma_lookup() and find_vma() return
 * a snapshot kept in a small per-thread ring: it stays valid for the next
 * HETMEM_VMA_RING - 1 lookups made by the same thread, which covers the
 * kernel's pattern of looking a mapping up under the mmap lock and using
 * it until the lock is dropped. The application may change its mappings
 * at any time without hetmem's lock (see <hetmem/mm/mm.h>), so a snapshot
 * is a description, not a guarantee; migration re-checks what it relies
 * on.
 */
#define HETMEM_VMA_RING 8

#define VM_READ		0x00000001UL
#define VM_WRITE	0x00000002UL
#define VM_EXEC		0x00000004UL
#define VM_SHARED	0x00000008UL
#define VM_PFNMAP	0x00000400UL
#define VM_IO		0x00004000UL
#define VM_HUGETLB	0x00400000UL
#define VM_MIXEDMAP	0x10000000UL

struct vm_area_struct {
	struct mm_struct *vm_mm;
	unsigned long vm_start;
	unsigned long vm_end;
	unsigned long vm_flags;
	const void *vm_file;		/* non-NULL for a file or shmem mapping */
	bool hetmem_special;		/* [vdso], [vvar], [vsyscall], ... */
};

HETMEM_API struct vm_area_struct *vma_lookup(struct mm_struct *mm,
					     unsigned long addr);
HETMEM_API struct vm_area_struct *find_vma(struct mm_struct *mm,
					   unsigned long addr);

/**
 * vma_is_anonymous() - is this a private or shared anonymous mapping?
 * @vma: a mapping
 *
 * Context: any.
 * Return: true when no file backs the mapping (shared anonymous memory is
 * shmem in the kernel and reads as file-backed here, as there).
 */
static inline bool vma_is_anonymous(const struct vm_area_struct *vma)
{
	return !vma->vm_file;
}

/**
 * DOC: CPU faults on device memory
 *
 * A CPU access to a page that lives in device memory faults, and hetmem
 * calls the owning pagemap's migrate_to_ram op with a struct vm_fault, as
 * the kernel's fault path does. The op runs on the address-space monitor
 * thread (see <hetmem/mm/memremap.h> for what it may and may not do).
 */
typedef unsigned int vm_fault_t;

#define VM_FAULT_OOM	0x000001u
#define VM_FAULT_SIGBUS	0x000002u

#define FAULT_FLAG_WRITE 0x01u

struct vm_fault {
	struct vm_area_struct *vma;
	unsigned long address;		/* page aligned */
	unsigned long real_address;	/* the faulting address */
	unsigned int flags;		/* FAULT_FLAG_* */
	struct page *page;		/* the device page, locked */
};

HETMEM_END_DECLS

#endif /* HETMEM_MM_PAGE_H */
