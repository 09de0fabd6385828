/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror: device memory. Chunks, the page allocator, the LRU
 * and eviction, and the pagemap ops (page_free, migrate_to_ram).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmirror-priv.h"

/**
 * DOC: Device memory
 *
 * Each device with private memory (minors 0 and 1) owns chunks of
 * DMIRROR_CHUNK_BYTES, each one struct dev_pagemap of type
 * MEMORY_DEVICE_PRIVATE whose owner is the device, as in the kernel's
 * test device. Chunks are created on demand by memremap_pages(), which
 * returns the memory the device reaches through page_address(); a device
 * page is that memory itself, there is no backing system page as in the
 * kernel module, so READ and WRITE of own-device data and the verifying
 * walks of MIGRATE_TO_DEV and EXCLUSIVE copy device memory directly.
 *
 * Every device page has a driver record (struct dmirror_dpage) in an
 * array parallel to the chunk's pages; page->zone_device_data points at
 * it while the page is handed out. No mirror pointer is stored anywhere
 * in device memory, so closing a mirror leaves nothing dangling. The
 * chunks stay until RELEASE or until the device's last mirror closes
 * (see DOC: Device memory and mirrors in dmirror.c).
 *
 * Free pages are kept on two lists: base pages (LIFO) and free 512-page
 * blocks, 512-aligned within the chunk, from which PMD-sized device
 * folios are handed out. When both are empty, the next never-used block
 * of a chunk is carved out (so the records of a chunk are touched only
 * as its pages are used: a fresh 256 MiB chunk costs no resident memory
 * beyond hetmem's own descriptors); a base allocation with an empty base
 * list splits one block. Returned folios go back as a block, returned
 * base pages as base pages (no coalescing: the kernel module does not
 * coalesce either).
 */

/**
 * DOC: Capacity and eviction
 *
 * A device's capacity (DMIRROR_CAPACITY_DEFAULT, changed by
 * hetmem_dmirror_set_capacity()) bounds the device pages handed out, not
 * the chunks: chunks are created while handed-out pages stay below it.
 * Pages handed out are on an LRU list in the order they were allocated
 * (allocation is migration, the only "use" the device observes cheaply).
 *
 * A base-page allocation that finds no free page at the capacity (or
 * cannot create a chunk) evicts: it takes the max(needed,
 * DMIRROR_EVICT_MIN) least recently used pages that are not locked (a
 * locked page is being migrated or is freshly allocated),
 * migrate_device_pfns() them, copies each to a system page from
 * alloc_pages() (a PMD folio, or base pages when the large allocation
 * fails), erases them from the mirror tables and lets
 * migrate_device_pages() and migrate_device_finalize() put the system
 * pages where the device pages were mapped. The freed device pages come
 * back through page_free. Data is never lost: a page that cannot be
 * copied stays on the device. A capacity lowered below the pages in use
 * is enforced the same way, lazily, by the next allocation.
 *
 * A PMD-sized allocation never evicts (512 evicted LRU pages rarely make
 * a free aligned block); it fails and the caller falls back to base
 * pages, as on an allocation failure.
 *
 * Eviction has no virtual address, so the mirror entries of an evicted
 * page are found through hints: the page's record keeps the page number
 * a mirror table last stored it at, and hetmem keeps page->index; each
 * hinted entry is erased only if it still holds this page's frame.
 */

/**
 * DOC: Migrating back to system memory
 *
 * dmirror_copy_to_ram() is the copy routine shared by the CPU fault
 * (migrate_to_ram), MIGRATE_TO_SYS and eviction: for every collected
 * device page it allocates a system page (a PMD folio for a compound
 * source, falling back to base pages), erases the entries of that page
 * from every mirror of the device (under each mirror's mutex, before the
 * copy, so no device write lands after it), copies, locks the new page
 * and sets dst with the source's MIGRATE_PFN_WRITE. A base allocation
 * that fails undoes every destination of the batch, so that the caller's
 * migrate_*_pages() moves nothing: MIGRATE_TO_SYS then fails with
 * -ENOMEM and migrate_to_ram with VM_FAULT_OOM.
 *
 * The one-shot HMM_DMIRROR_FLAG_FAIL_ALLOC is consumed by the first
 * system allocation of a command (the commanding mirror's flag) or of a
 * CPU fault (the flag of any mirror of the device bound to the faulting
 * address space: the kernel module keeps the mirror that migrated a page
 * in its backing page, this device does not keep mirrors in pages).
 *
 * migrate_to_ram runs on the address-space monitor thread with the mmap
 * lock held for reading. It takes mirrors_lock and the mirror mutexes,
 * which commands hold only briefly and never while waiting for the
 * monitor (see the lock rules in dmirror-priv.h).
 */

static const struct dev_pagemap_ops dmirror_devmem_ops;

/* The chunk of a device page of this driver. */
static struct dmirror_chunk *dmirror_page_chunk(const struct page *page)
{
	return hetmem_container_of(page_pgmap(page), struct dmirror_chunk, pgmap);
}

static struct dmirror_dpage *dmirror_page_rec(const struct page *page)
{
	struct dmirror_chunk *chunk = dmirror_page_chunk(page);

	return &chunk->dpages[page_to_pfn(page) - chunk->pfn_first];
}

static struct page *dmirror_rec_page(const struct dmirror_dpage *rec)
{
	struct dmirror_chunk *chunk = rec->chunk;

	return pfn_to_page(chunk->pfn_first + (unsigned long)(rec - chunk->dpages));
}

static unsigned long dmirror_rec_pfn(const struct dmirror_dpage *rec)
{
	return rec->chunk->pfn_first + (unsigned long)(rec - rec->chunk->dpages);
}

/* Is @page a device page of this driver? */
static bool dmirror_is_own_page(const struct page *page)
{
	return is_device_private_page(page) && page_pgmap(page) &&
	       page_pgmap(page)->ops == &dmirror_devmem_ops;
}

/**
 * dmirror_devmem_init() - set up the device-memory state of a device
 * @mdevice: the device
 *
 * Context: device table initialisation.
 * Return: nothing.
 */
void dmirror_devmem_init(struct dmirror_device *mdevice)
{
	hetmem_mutex_init(&mdevice->devmem_lock);
	hetmem_mutex_init(&mdevice->mirrors_lock);
	hetmem_list_init(&mdevice->free_pages);
	hetmem_list_init(&mdevice->free_blocks);
	hetmem_list_init(&mdevice->lru);
	hetmem_list_init(&mdevice->mirrors);
	mdevice->capacity_pages = DMIRROR_CAPACITY_DEFAULT >> HETMEM_PAGE_SHIFT;
}

/* ---- chunks ---- */

/* Put a free 512-page block on the block list; devmem_lock held. */
static void dmirror_block_put(struct dmirror_device *mdevice,
			      struct dmirror_dpage *head)
{
	unsigned long i;

	head->state = DMIRROR_DPAGE_BLOCK;
	head->order = 0;
	for (i = 1; i < HPAGE_PMD_NR; i++)
		head[i].state = DMIRROR_DPAGE_IN_BLOCK;
	hetmem_list_add(&head->link, &mdevice->free_blocks);
}

/* Add a registered chunk to the device; devmem_lock held. */
static int dmirror_chunk_insert(struct dmirror_device *mdevice,
				struct dmirror_chunk *chunk)
{
	struct dmirror_chunk **slots;

	if (mdevice->nchunks == mdevice->chunk_slots) {
		slots = realloc(mdevice->chunks,
				(mdevice->chunk_slots + 16) * sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		mdevice->chunks = slots;
		mdevice->chunk_slots += 16;
	}
	mdevice->chunks[mdevice->nchunks++] = chunk;
	return 0;
}

/* Carve the next never-used block out of a chunk; devmem_lock held. */
static bool dmirror_carve_block(struct dmirror_device *mdevice)
{
	struct dmirror_chunk *chunk;
	unsigned long i;
	unsigned int c;

	for (c = 0; c < mdevice->nchunks; c++) {
		chunk = mdevice->chunks[c];
		if (chunk->removing || chunk->fresh >= DMIRROR_CHUNK_PAGES)
			continue;
		for (i = 0; i < HPAGE_PMD_NR; i++)
			chunk->dpages[chunk->fresh + i].chunk = chunk;
		dmirror_block_put(mdevice, &chunk->dpages[chunk->fresh]);
		chunk->fresh += HPAGE_PMD_NR;
		return true;
	}
	return false;
}

/* The records are left untouched (zero: DMIRROR_DPAGE_FRESH) until carved. */
static struct dmirror_chunk *dmirror_chunk_alloc(struct dmirror_device *mdevice)
{
	struct dmirror_chunk *chunk;

	chunk = calloc(1, sizeof(*chunk) +
			  DMIRROR_CHUNK_PAGES * sizeof(struct dmirror_dpage));
	if (!chunk)
		return NULL;
	chunk->mdevice = mdevice;
	chunk->pgmap.type = MEMORY_DEVICE_PRIVATE;
	chunk->pgmap.ops = &dmirror_devmem_ops;
	chunk->pgmap.owner = mdevice;
	chunk->pgmap.range.start = 0;
	chunk->pgmap.range.end = DMIRROR_CHUNK_BYTES - 1;
	chunk->pgmap.nr_range = 1;
	return chunk;
}

/*
 * Create one chunk and add its pages as free blocks. memremap_pages()
 * runs without devmem_lock: page_free may be running elsewhere.
 */
static int dmirror_chunk_add(struct dmirror_device *mdevice)
{
	struct dmirror_chunk *chunk = dmirror_chunk_alloc(mdevice);
	int ret;

	if (!chunk)
		return -ENOMEM;
	chunk->base = memremap_pages(&chunk->pgmap, -1);
	if (hetmem_is_err_ptr(chunk->base)) {
		ret = hetmem_ptr_err(chunk->base);
		goto err_free;
	}
	chunk->pfn_first = chunk->pgmap.range.start >> HETMEM_PAGE_SHIFT;
	hetmem_mutex_lock(&mdevice->devmem_lock);
	ret = dmirror_chunk_insert(mdevice, chunk);
	hetmem_mutex_unlock(&mdevice->devmem_lock);
	if (ret)
		goto err_unmap;
	dmirror_count_add(&mdevice->stats, chunks, 1);
	dmirror_count_add(&mdevice->stats, device_pages, DMIRROR_CHUNK_PAGES);
	return 0;

err_unmap:
	memunmap_pages(&chunk->pgmap);
err_free:
	free(chunk);
	return ret;
}

/* ---- allocation ---- */

/* Take a free base page, splitting a block if needed; devmem_lock held. */
static struct dmirror_dpage *dmirror_take_base(struct dmirror_device *mdevice)
{
	struct dmirror_dpage *rec;
	unsigned long i;

	if (!hetmem_list_empty(&mdevice->free_pages)) {
		rec = hetmem_list_first_entry(&mdevice->free_pages,
					      struct dmirror_dpage, link);
		hetmem_list_del_init(&rec->link);
		return rec;
	}
	if (hetmem_list_empty(&mdevice->free_blocks) && !dmirror_carve_block(mdevice))
		return NULL;
	rec = hetmem_list_first_entry(&mdevice->free_blocks, struct dmirror_dpage, link);
	hetmem_list_del_init(&rec->link);
	for (i = HPAGE_PMD_NR - 1; i > 0; i--) {
		rec[i].state = DMIRROR_DPAGE_FREE;
		hetmem_list_add(&rec[i].link, &mdevice->free_pages);
	}
	return rec;
}

static struct dmirror_dpage *dmirror_take_block(struct dmirror_device *mdevice)
{
	struct dmirror_dpage *rec;

	if (hetmem_list_empty(&mdevice->free_blocks) && !dmirror_carve_block(mdevice))
		return NULL;
	rec = hetmem_list_first_entry(&mdevice->free_blocks, struct dmirror_dpage, link);
	hetmem_list_del_init(&rec->link);
	return rec;
}

/* Mark one record handed out as a page or folio head, most recently used. */
static void dmirror_rec_use_one(struct dmirror_device *mdevice,
				struct dmirror_dpage *rec, unsigned int order)
{
	rec->state = DMIRROR_DPAGE_USED;
	rec->order = (uint8_t)order;
	rec->vpn = 0;
	hetmem_list_add_tail(&rec->link, &mdevice->lru);
}

/*
 * Mark @rec handed out: a folio of order @order, or (@split) a block of
 * 512 base pages.
 */
static void dmirror_rec_use(struct dmirror_device *mdevice,
			    struct dmirror_dpage *rec, unsigned int order, bool split)
{
	unsigned long i, nr = 1UL << order;

	dmirror_rec_use_one(mdevice, rec, split ? 0 : order);
	for (i = 1; i < nr; i++) {
		if (split)
			dmirror_rec_use_one(mdevice, &rec[i], 0);
		else
			rec[i].state = DMIRROR_DPAGE_TAIL;
	}
	mdevice->used_pages += nr;
	rec->chunk->used += nr;
}

/*
 * One attempt: a free page within the capacity, or NULL with *@over set
 * to the pages to evict (0: a chunk may be added instead).
 */
static struct dmirror_dpage *dmirror_try_take(struct dmirror_device *mdevice,
					      unsigned int order, bool split,
					      unsigned long *over)
{
	unsigned long nr = 1UL << order;
	struct dmirror_dpage *rec = NULL;

	hetmem_mutex_lock(&mdevice->devmem_lock);
	*over = 0;
	if (mdevice->used_pages + nr > mdevice->capacity_pages)
		*over = mdevice->used_pages + nr - mdevice->capacity_pages;
	else
		rec = order ? dmirror_take_block(mdevice) : dmirror_take_base(mdevice);
	if (rec)
		dmirror_rec_use(mdevice, rec, order, split);
	hetmem_mutex_unlock(&mdevice->devmem_lock);
	return rec;
}

static void dmirror_evict(struct dmirror_device *mdevice, unsigned long want);

/* Attempts before an allocation gives up (eviction raced with others). */
#define DMIRROR_ALLOC_TRIES 4

static struct dmirror_dpage *dmirror_take(struct dmirror_device *mdevice,
					  unsigned int order, bool split)
{
	struct dmirror_dpage *rec;
	unsigned long over;
	int tries;

	for (tries = 0; tries < DMIRROR_ALLOC_TRIES; tries++) {
		rec = dmirror_try_take(mdevice, order, split, &over);
		if (rec)
			return rec;
		if (!over && !dmirror_chunk_add(mdevice))
			continue;
		if (order)
			return NULL;
		dmirror_evict(mdevice, over > DMIRROR_EVICT_MIN ? over :
						DMIRROR_EVICT_MIN);
	}
	return NULL;
}

/**
 * dmirror_devmem_alloc() - hand out a device page or PMD-sized folio
 * @mdevice: the device
 * @order: 0 or HPAGE_PMD_ORDER
 *
 * Creates a chunk or evicts least recently used pages as needed (base
 * pages only; a folio allocation fails instead).
 *
 * Context: command context, no mirror mutex held (eviction migrates).
 * Return: the page (the head of the folio), referenced and locked, or
 * NULL.
 */
struct page *dmirror_devmem_alloc(struct dmirror_device *mdevice, unsigned int order)
{
	struct dmirror_dpage *rec = dmirror_take(mdevice, order, false);
	struct page *page;

	if (!rec)
		return NULL;
	page = dmirror_rec_page(rec);
	if (order)
		zone_device_folio_init((struct folio *)page, order);
	else
		zone_device_page_init(page);
	page->zone_device_data = rec;
	dmirror_count_add(&mdevice->stats, device_pages_used, 1UL << order);
	return page;
}

/**
 * dmirror_devmem_alloc_run() - hand out a free 512-page block as base pages
 * @mdevice: the device
 *
 * For a PMD-aligned run of 512 sources that migrate as base pages: the
 * run stays contiguous and aligned in device memory, and the allocation
 * counts as a large one (it never evicts, and FAIL_ALLOC makes it fall
 * back to single pages, see DOC: Migration commands).
 *
 * Context: command context, no mirror mutex held.
 * Return: the first of 512 consecutive pages, each referenced and
 * locked; NULL when no free block is had within the capacity.
 */
struct page *dmirror_devmem_alloc_run(struct dmirror_device *mdevice)
{
	struct dmirror_dpage *rec = dmirror_take(mdevice, HPAGE_PMD_ORDER, true);
	struct page *page;
	unsigned long j;

	if (!rec)
		return NULL;
	page = dmirror_rec_page(rec);
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		zone_device_page_init(page + j);
		page[j].zone_device_data = &rec[j];
	}
	dmirror_count_add(&mdevice->stats, device_pages_used, HPAGE_PMD_NR);
	return page;
}

/* ---- page_free ---- */

/* Return a handed-out page or folio to the free lists; devmem_lock held. */
static void dmirror_rec_free(struct dmirror_device *mdevice,
			     struct dmirror_dpage *rec, unsigned long nr)
{
	unsigned long i;

	hetmem_list_del_init(&rec->link);
	mdevice->used_pages -= nr;
	rec->chunk->used -= nr;
	if (rec->chunk->removing) {
		for (i = 0; i < nr; i++)
			rec[i].state = DMIRROR_DPAGE_GONE;
	} else if (nr > 1) {
		dmirror_block_put(mdevice, rec);
	} else {
		rec->state = DMIRROR_DPAGE_FREE;
		hetmem_list_add(&rec->link, &mdevice->free_pages);
	}
}

/*
 * The pagemap's page_free op: the last reference to a page (or folio,
 * passed as its unmarked head) went. A page freed alone whose record is
 * a folio tail (the core split the folio) is returned as a base page.
 */
static void dmirror_devmem_page_free(struct page *page)
{
	struct dmirror_device *mdevice = page_pgmap(page)->owner;
	struct dmirror_dpage *rec = dmirror_page_rec(page);
	unsigned long nr;

	hetmem_mutex_lock(&mdevice->devmem_lock);
	nr = rec->state == DMIRROR_DPAGE_USED ? 1UL << rec->order : 1;
	/* Before the page is on a free list: an allocation may take it. */
	page->zone_device_data = NULL;
	dmirror_rec_free(mdevice, rec, nr);
	hetmem_mutex_unlock(&mdevice->devmem_lock);
	dmirror_count_sub(&mdevice->stats, device_pages_used, nr);
}

/* ---- capacity ---- */

/**
 * dmirror_devmem_set_capacity() - change the device-memory limit
 * @mdevice: the device
 * @bytes: the new limit; rounded down to pages, at least
 *	DMIRROR_CAPACITY_MIN
 *
 * Context: any thread.
 * Return: 0.
 */
int dmirror_devmem_set_capacity(struct dmirror_device *mdevice, uint64_t bytes)
{
	if (bytes < DMIRROR_CAPACITY_MIN)
		bytes = DMIRROR_CAPACITY_MIN;
	hetmem_mutex_lock(&mdevice->devmem_lock);
	__atomic_store_n(&mdevice->capacity_pages, (unsigned long)(bytes >> HETMEM_PAGE_SHIFT),
			 __ATOMIC_RELAXED);
	hetmem_mutex_unlock(&mdevice->devmem_lock);
	return 0;
}

/* ---- mirrors ---- */

/**
 * dmirror_fail_alloc() - consume a mirror's one-shot FAIL_ALLOC flag
 * @dmirror: the mirror
 *
 * Context: any.
 * Return: true if the flag was set (and is now clear).
 */
bool dmirror_fail_alloc(struct dmirror *dmirror)
{
	uint64_t old = __atomic_fetch_and(&dmirror->flags, ~HMM_DMIRROR_FLAG_FAIL_ALLOC,
					  __ATOMIC_RELAXED);

	return old & HMM_DMIRROR_FLAG_FAIL_ALLOC;
}

/**
 * dmirror_fail_alloc_mm() - consume FAIL_ALLOC of a mirror bound to @mm
 * @mdevice: the device
 * @mm: the address space of the fault
 *
 * Context: takes mirrors_lock.
 * Return: true if one mirror of @mdevice on @mm had the flag set.
 */
bool dmirror_fail_alloc_mm(struct dmirror_device *mdevice, struct mm_struct *mm)
{
	struct hetmem_list_head *pos, *n;
	struct dmirror *dmirror;
	bool fail = false;

	hetmem_mutex_lock(&mdevice->mirrors_lock);
	hetmem_list_for_each_safe(pos, n, &mdevice->mirrors) {
		dmirror = hetmem_list_entry(pos, struct dmirror, mirrors_link);
		if (dmirror->mm == mm && dmirror_fail_alloc(dmirror)) {
			fail = true;
			break;
		}
	}
	hetmem_mutex_unlock(&mdevice->mirrors_lock);
	return fail;
}

/**
 * dmirror_erase_vpn() - erase a range of pages from every mirror of @mm
 * @mdevice: the device
 * @mm: the address space
 * @vpn: first virtual page number
 * @nr: pages
 *
 * Context: takes mirrors_lock and each mirror's mutex in turn.
 * Return: nothing.
 */
void dmirror_erase_vpn(struct dmirror_device *mdevice, struct mm_struct *mm,
		       unsigned long vpn, unsigned long nr)
{
	struct hetmem_list_head *pos, *n;
	struct dmirror *dmirror;

	hetmem_mutex_lock(&mdevice->mirrors_lock);
	hetmem_list_for_each_safe(pos, n, &mdevice->mirrors) {
		dmirror = hetmem_list_entry(pos, struct dmirror, mirrors_link);
		if (dmirror->mm != mm)
			continue;
		hetmem_mutex_lock(&dmirror->mutex);
		hetmem_radix_erase_range(&dmirror->pt, vpn, vpn + nr - 1);
		hetmem_mutex_unlock(&dmirror->mutex);
	}
	hetmem_mutex_unlock(&mdevice->mirrors_lock);
}

/* Erase @vpn from @dmirror if it maps frame @pfn there; mutex held. */
static void dmirror_erase_hint(struct dmirror *dmirror, unsigned long vpn,
			       unsigned long pfn)
{
	uint64_t entry;

	if (!vpn)
		return;
	entry = hetmem_radix_lookup(&dmirror->pt, vpn);
	if (entry && dpt_entry_pfn(entry) == pfn)
		hetmem_radix_erase_range(&dmirror->pt, vpn, vpn);
}

/* Erase the hinted entries of device pages @page .. + @nr from @dmirror. */
static void dmirror_erase_hints_one(struct dmirror *dmirror, struct page *page,
				    unsigned long nr)
{
	unsigned long i, pfn = page_to_pfn(page);
	struct dmirror_dpage *rec = dmirror_page_rec(page);

	hetmem_mutex_lock(&dmirror->mutex);
	for (i = 0; i < nr; i++) {
		dmirror_erase_hint(dmirror, rec[i].vpn, pfn + i);
		dmirror_erase_hint(dmirror, page[i].index, pfn + i);
	}
	hetmem_mutex_unlock(&dmirror->mutex);
}

/* Eviction has no address: erase the pages' hinted entries everywhere. */
static void dmirror_erase_hints(struct dmirror_device *mdevice, struct page *page,
				unsigned long nr)
{
	struct hetmem_list_head *pos, *n;

	hetmem_mutex_lock(&mdevice->mirrors_lock);
	hetmem_list_for_each_safe(pos, n, &mdevice->mirrors)
		dmirror_erase_hints_one(hetmem_list_entry(pos, struct dmirror,
							  mirrors_link), page, nr);
	hetmem_mutex_unlock(&mdevice->mirrors_lock);
}

/**
 * dmirror_devmem_note_vpn() - remember where a mirror table maps a page
 * @pfn: a frame just stored in a mirror table
 * @vpn: the virtual page number it is stored at
 *
 * Context: the mirror's mutex held. Ignores frames that are not device
 * pages of this driver.
 * Return: nothing.
 */
void dmirror_devmem_note_vpn(unsigned long pfn, unsigned long vpn)
{
	struct page *page;

	if (pfn < HETMEM_DEVICE_PFN_BASE)
		return;
	page = pfn_to_page(pfn);
	if (page && dmirror_is_own_page(page))
		__atomic_store_n(&dmirror_page_rec(page)->vpn, vpn, __ATOMIC_RELAXED);
}

/* ---- copying back to system memory ---- */

/* What a device-to-system copy works on. */
struct dmirror_copy {
	struct dmirror_device *mdevice;
	struct vm_area_struct *vma;	/* NULL: eviction (alloc_pages) */
	unsigned long start;
	unsigned long *src;
	unsigned long *dst;
	unsigned long npages;
	struct dmirror *dmirror;	/* FAIL_ALLOC; NULL: any mirror of the mm */
	bool checked;			/* FAIL_ALLOC looked at for this batch */
};

/*
 * Consume FAIL_ALLOC for the first system allocation of the batch (the
 * one-shot flag fails one allocation; looking once per batch keeps the
 * fault path from taking mirrors_lock for each of 512 pages).
 */
static bool dmirror_copy_fail(struct dmirror_copy *c)
{
	if (!c->vma || c->checked)
		return false;
	c->checked = true;
	if (c->dmirror)
		return dmirror_fail_alloc(c->dmirror);
	return dmirror_fail_alloc_mm(c->mdevice, c->vma->vm_mm);
}

/* A system page or PMD folio for page @i of the batch. */
static struct page *dmirror_sys_alloc(struct dmirror_copy *c, unsigned long i,
				      unsigned int order)
{
	unsigned long addr = c->start + (i << HETMEM_PAGE_SHIFT);
	struct folio *folio;

	if (dmirror_copy_fail(c))
		return NULL;
	if (!c->vma)
		return alloc_pages(0, order);
	if (!order)
		return alloc_page_vma(0, c->vma, addr);
	folio = vma_alloc_folio(0, order, c->vma, addr);
	return folio ? &folio->page : NULL;
}

/*
 * Copy @nr pages from device page @spage to @dpage and set dst[@i], with
 * @write (the MIGRATE_PFN_WRITE of the source entry).
 */
static void dmirror_copy_set(struct dmirror_copy *c, unsigned long i,
			     struct page *spage, struct page *dpage,
			     unsigned long nr, unsigned long write)
{
	unsigned long j;

	for (j = 0; j < nr; j++)
		memcpy(page_address(dpage + j), page_address(spage + j),
		       HETMEM_PAGE_SIZE);
	lock_page(dpage);
	c->dst[i] = migrate_pfn(page_to_pfn(dpage)) | write;
	if (nr > 1)
		c->dst[i] |= MIGRATE_PFN_COMPOUND;
}

/* A compound source: one PMD folio, or base pages when that fails. */
static int dmirror_copy_folio(struct dmirror_copy *c, unsigned long i,
			      struct page *spage)
{
	struct page *dpage = dmirror_sys_alloc(c, i, HPAGE_PMD_ORDER);
	unsigned long j, write = c->src[i] & MIGRATE_PFN_WRITE;

	if (dpage) {
		dmirror_copy_set(c, i, spage, dpage, HPAGE_PMD_NR, write);
		return 0;
	}
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		dpage = dmirror_sys_alloc(c, i + j, 0);
		if (!dpage)
			return -ENOMEM;
		dmirror_copy_set(c, i + j, spage + j, dpage, 1, write);
	}
	return 0;
}

/* Copy one collected device page or folio; -ENOMEM on a base failure. */
static int dmirror_copy_one(struct dmirror_copy *c, unsigned long i,
			    struct page *spage, unsigned long nr)
{
	struct page *dpage;

	if (c->vma)
		dmirror_erase_vpn(c->mdevice, c->vma->vm_mm,
				  (c->start >> HETMEM_PAGE_SHIFT) + i, nr);
	else
		dmirror_erase_hints(c->mdevice, spage, nr);
	if (nr > 1)
		return dmirror_copy_folio(c, i, spage);
	dpage = dmirror_sys_alloc(c, i, 0);
	if (!dpage)
		return -ENOMEM;
	dmirror_copy_set(c, i, spage, dpage, 1, c->src[i] & MIGRATE_PFN_WRITE);
	return 0;
}

/**
 * dmirror_dst_undo() - release every destination page of a batch
 * @dst: destination words
 * @npages: entries
 *
 * Context: before migrate_*_pages(); the caller still calls it (it then
 * moves nothing) and the finalize step.
 * Return: nothing.
 */
void dmirror_dst_undo(unsigned long *dst, unsigned long npages)
{
	struct page *page;
	unsigned long i;

	for (i = 0; i < npages; i++) {
		page = migrate_pfn_to_page(dst[i]);
		dst[i] = 0;
		if (!page)
			continue;
		unlock_page(page);
		put_page(page);
	}
}

/* The copy loop over collected device pages; undoes all on failure. */
static int dmirror_copy_run(struct dmirror_copy *c)
{
	unsigned long i, nr;
	struct page *spage;
	int ret;

	for (i = 0; i < c->npages; i += nr) {
		nr = 1;
		spage = migrate_pfn_to_page(c->src[i]);
		if (!spage || !(c->src[i] & MIGRATE_PFN_MIGRATE) ||
		    !dmirror_is_own_page(spage))
			continue;
		if ((c->src[i] & MIGRATE_PFN_COMPOUND) && i + HPAGE_PMD_NR <= c->npages)
			nr = HPAGE_PMD_NR;
		ret = dmirror_copy_one(c, i, spage, nr);
		if (ret) {
			dmirror_dst_undo(c->dst, c->npages);
			return ret;
		}
	}
	return 0;
}

/**
 * dmirror_copy_to_ram() - the device-to-system copy of a migrate_vma batch
 * @mdevice: the device
 * @args: after migrate_vma_setup(); dst is filled in
 * @dmirror: the commanding mirror (its FAIL_ALLOC is consumed), or NULL
 *	for a CPU fault (any mirror of the address space)
 *
 * Context: mmap lock held for reading; no mirror mutex held.
 * Return: 0; -ENOMEM when a base page could not be had (every dst is
 * then 0).
 */
int dmirror_copy_to_ram(struct dmirror_device *mdevice, struct migrate_vma *args,
			struct dmirror *dmirror)
{
	struct dmirror_copy c = {
		.mdevice = mdevice,
		.vma = args->vma,
		.start = args->start,
		.src = args->src,
		.dst = args->dst,
		.npages = args->npages,
		.dmirror = dmirror,
	};

	memset(args->dst, 0, args->npages * sizeof(*args->dst));
	return dmirror_copy_run(&c);
}

/**
 * dmirror_count_migrated() - pages that a migrate_*_pages() call moved
 * @src: source words after migrate_*_pages()
 * @npages: entries
 *
 * Context: any.
 * Return: the pages of entries with VALID and MIGRATE (a compound entry
 * counts its 512 pages).
 */
unsigned long dmirror_count_migrated(const unsigned long *src, unsigned long npages)
{
	unsigned long i, n = 0;

	for (i = 0; i < npages; i++) {
		if ((src[i] & MIGRATE_PFN_VALID) && (src[i] & MIGRATE_PFN_MIGRATE))
			n += (src[i] & MIGRATE_PFN_COMPOUND) ? HPAGE_PMD_NR : 1;
	}
	return n;
}

/* ---- eviction ---- */

/* Fill @pfns with the frames of LRU victims; devmem_lock held. */
static unsigned long dmirror_pick_victims(struct dmirror_device *mdevice,
					  unsigned long *pfns, unsigned long want,
					  unsigned long max)
{
	struct hetmem_list_head *pos, *n;
	struct dmirror_dpage *rec;
	unsigned long i, nr, got = 0;

	hetmem_list_for_each_safe(pos, n, &mdevice->lru) {
		if (got >= want)
			break;
		rec = hetmem_list_entry(pos, struct dmirror_dpage, link);
		nr = 1UL << rec->order;
		if (got + nr > max ||
		    (__atomic_load_n(&dmirror_rec_page(rec)->flags, __ATOMIC_RELAXED) &
		     HETMEM_PGF_LOCKED))
			continue;
		for (i = 0; i < nr; i++)
			pfns[got + i] = dmirror_rec_pfn(rec) + i;
		got += nr;
	}
	return got;
}

/* Migrate collected device frames back to system memory. */
static unsigned long dmirror_evict_pfns(struct dmirror_device *mdevice,
					unsigned long *src, unsigned long *dst,
					unsigned long npages)
{
	struct dmirror_copy c = {
		.mdevice = mdevice, .src = src, .dst = dst, .npages = npages,
	};
	unsigned long moved;

	memset(dst, 0, npages * sizeof(*dst));
	dmirror_copy_run(&c);
	migrate_device_pages(src, dst, npages);
	moved = dmirror_count_migrated(src, npages);
	migrate_device_finalize(src, dst, npages);
	dmirror_count_add(&mdevice->stats, evicted, moved);
	return moved;
}

/* Evict up to @want least recently used pages (at least one PMD's room). */
static void dmirror_evict(struct dmirror_device *mdevice, unsigned long want)
{
	unsigned long max = want + HPAGE_PMD_NR, n;
	unsigned long *src = calloc(2 * max, sizeof(*src));

	if (!src)
		return;
	hetmem_mutex_lock(&mdevice->devmem_lock);
	n = dmirror_pick_victims(mdevice, src, want, max);
	hetmem_mutex_unlock(&mdevice->devmem_lock);
	if (n && !migrate_device_pfns(src, n))
		dmirror_evict_pfns(mdevice, src, src + max, n);
	free(src);
}

/* ---- release ---- */

/* Take a chunk's free pages off the free lists; devmem_lock held. */
static void dmirror_chunk_retire(struct dmirror_chunk *chunk)
{
	struct dmirror_dpage *rec;
	unsigned long i;

	chunk->removing = true;
	for (i = 0; i < chunk->fresh; i++) {
		rec = &chunk->dpages[i];
		if (rec->state == DMIRROR_DPAGE_FREE || rec->state == DMIRROR_DPAGE_BLOCK)
			hetmem_list_del_init(&rec->link);
		if (rec->state != DMIRROR_DPAGE_USED && rec->state != DMIRROR_DPAGE_TAIL)
			rec->state = DMIRROR_DPAGE_GONE;
	}
}

/* Pages of @chunk handed out, read under devmem_lock. */
static unsigned long dmirror_chunk_used(struct dmirror_device *mdevice,
					struct dmirror_chunk *chunk)
{
	unsigned long used;

	hetmem_mutex_lock(&mdevice->devmem_lock);
	used = chunk->used;
	hetmem_mutex_unlock(&mdevice->devmem_lock);
	return used;
}

/* Passes over a chunk before RELEASE gives up on pages that stay busy. */
#define DMIRROR_RELEASE_PASSES 200

/* Migrate every page of @chunk that is in use back to system memory. */
static bool dmirror_chunk_evict(struct dmirror_device *mdevice,
				struct dmirror_chunk *chunk)
{
	unsigned long src[DMIRROR_MIGRATE_BATCH], dst[DMIRROR_MIGRATE_BATCH];
	unsigned long off;
	int pass;

	for (pass = 0; pass < DMIRROR_RELEASE_PASSES; pass++) {
		if (!dmirror_chunk_used(mdevice, chunk))
			return true;
		if (pass)
			usleep(1000);
		for (off = 0; off < DMIRROR_CHUNK_PAGES; off += DMIRROR_MIGRATE_BATCH) {
			if (migrate_device_range(src, chunk->pfn_first + off,
						 DMIRROR_MIGRATE_BATCH))
				continue;
			dmirror_evict_pfns(mdevice, src, dst, DMIRROR_MIGRATE_BATCH);
		}
	}
	return !dmirror_chunk_used(mdevice, chunk);
}

/* Detach every chunk of the device, retiring their free pages. */
static struct dmirror_chunk **dmirror_chunks_detach(struct dmirror_device *mdevice,
						    unsigned int *n)
{
	struct dmirror_chunk **chunks;
	unsigned int i;

	hetmem_mutex_lock(&mdevice->devmem_lock);
	chunks = mdevice->chunks;
	*n = mdevice->nchunks;
	mdevice->chunks = NULL;
	mdevice->nchunks = 0;
	mdevice->chunk_slots = 0;
	for (i = 0; i < *n; i++)
		dmirror_chunk_retire(chunks[i]);
	hetmem_mutex_unlock(&mdevice->devmem_lock);
	return chunks;
}

/* Keep a chunk whose pages stayed busy: a later RELEASE tries again. */
static void dmirror_chunk_keep(struct dmirror_device *mdevice,
			       struct dmirror_chunk *chunk)
{
	struct dmirror_chunk **slots;

	hetmem_mutex_lock(&mdevice->devmem_lock);
	if (mdevice->nchunks == mdevice->chunk_slots) {
		slots = realloc(mdevice->chunks,
				(mdevice->chunk_slots + 16) * sizeof(*slots));
		if (!slots)
			goto out_unlock;	/* leaked, never freed under a user */
		mdevice->chunks = slots;
		mdevice->chunk_slots += 16;
	}
	mdevice->chunks[mdevice->nchunks++] = chunk;
out_unlock:
	hetmem_mutex_unlock(&mdevice->devmem_lock);
}

/**
 * dmirror_devmem_release() - evict every chunk of a device and remove it
 * @mdevice: the device
 *
 * Every page in use, whichever mirror or process migrated it, goes back
 * to system memory; the chunks are then unregistered and freed. A chunk
 * with a page that stays locked or referenced (for about 200 ms) is kept,
 * retired, for a later RELEASE.
 *
 * Context: command context; no mirror mutex held.
 * Return: nothing.
 */
void dmirror_devmem_release(struct dmirror_device *mdevice)
{
	struct dmirror_chunk **chunks;
	unsigned int i, n;

	chunks = dmirror_chunks_detach(mdevice, &n);
	for (i = 0; i < n; i++) {
		if (!dmirror_chunk_evict(mdevice, chunks[i])) {
			dmirror_chunk_keep(mdevice, chunks[i]);
			continue;
		}
		memunmap_pages(&chunks[i]->pgmap);
		free(chunks[i]);
		dmirror_count_sub(&mdevice->stats, chunks, 1);
		dmirror_count_sub(&mdevice->stats, device_pages, DMIRROR_CHUNK_PAGES);
	}
	free(chunks);
}

/* ---- migrate_to_ram ---- */

/*
 * Is the faulting page part of an order-9 folio whose 512 pages are all
 * still mapped at its PMD-aligned address in this VMA? Then the whole
 * folio migrates; *@start is that address.
 */
static bool dmirror_fault_whole_folio(const struct vm_fault *vmf, unsigned long *start)
{
	struct folio *folio = page_folio(vmf->page);
	unsigned long head, vpn, j;

	if (folio_order(folio) != HPAGE_PMD_ORDER)
		return false;
	head = vmf->address - ((unsigned long)(vmf->page - &folio->page) << HETMEM_PAGE_SHIFT);
	if ((head & (HETMEM_PMD_SIZE - 1)) || head < vmf->vma->vm_start ||
	    head + HETMEM_PMD_SIZE > vmf->vma->vm_end)
		return false;
	vpn = head >> HETMEM_PAGE_SHIFT;
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		if (folio_page(folio, j)->index != vpn + j ||
		    folio_page(folio, j)->mm != vmf->vma->vm_mm)
			return false;
	}
	*start = head;
	return true;
}

/* Migrate [args->start, args->end) back; a VM_FAULT_* code. */
static vm_fault_t dmirror_fault_migrate(struct dmirror_device *mdevice,
					struct migrate_vma *args)
{
	int ret;

	if (migrate_vma_setup(args))
		return VM_FAULT_SIGBUS;
	ret = dmirror_copy_to_ram(mdevice, args, NULL);
	migrate_vma_pages(args);
	dmirror_count_add(&mdevice->stats, migrated_to_sys,
			  dmirror_count_migrated(args->src, args->npages));
	migrate_vma_finalize(args);
	return ret ? VM_FAULT_OOM : 0;
}

/* The pagemap's migrate_to_ram op; see DOC: Migrating back. */
static vm_fault_t dmirror_devmem_migrate_to_ram(struct vm_fault *vmf)
{
	struct dmirror_device *mdevice = page_pgmap(vmf->page)->owner;
	unsigned long one[2], *pfns = one;
	struct migrate_vma args = {
		.vma = vmf->vma,
		.start = vmf->address,
		.end = vmf->address + HETMEM_PAGE_SIZE,
		.pgmap_owner = mdevice,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = vmf->page,
	};
	vm_fault_t ret;

	dmirror_count_add(&mdevice->stats, cpu_faults, 1);
	if (dmirror_fault_whole_folio(vmf, &args.start)) {
		pfns = calloc(2 * HPAGE_PMD_NR, sizeof(*pfns));
		if (!pfns)
			return VM_FAULT_OOM;
		args.end = args.start + HETMEM_PMD_SIZE;
		args.flags |= MIGRATE_VMA_SELECT_COMPOUND;
	}
	args.src = pfns;
	args.dst = pfns + ((args.end - args.start) >> HETMEM_PAGE_SHIFT);
	ret = dmirror_fault_migrate(mdevice, &args);
	if (pfns != one)
		free(pfns);
	return ret;
}

static const struct dev_pagemap_ops dmirror_devmem_ops = {
	.page_free = dmirror_devmem_page_free,
	.migrate_to_ram = dmirror_devmem_migrate_to_ram,
};
