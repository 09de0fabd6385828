/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the device entries of an address space: which pages live in
 * device memory, which are being migrated, which are device-exclusive.
 */
#include <errno.h>
#include <stdlib.h>

#include "mm/devmem.h"

/**
 * DOC: Device entries
 *
 * When the kernel migrates a page to device-private memory it leaves a
 * special swap entry in the page table: the CPU sees the page as swapped
 * out, and a touch faults to the device's migrate_to_ram(). hetmem cannot
 * write page-table entries; the page is moved out of the mapping, leaving
 * a hole that is registered for missing-page faults with the monitor's
 * userfaultfd, and the entry itself lives here, in a radix tree per
 * address space indexed by virtual page number. Everything that the
 * kernel does with those swap entries hetmem does with this table:
 * hmm_range_fault() reports them, the fault path serves them, munmap and
 * MADV_DONTNEED release them, mremap moves them, migration collects them.
 *
 * One mutex per mm (dev_lock) protects the table. It is held for lookups
 * and updates only, never across a system call that may wait for the
 * monitor, so the monitor may take it from its fault and event handlers.
 * Erasing frees no memory (see the radix tree's DOC); empty nodes are
 * pruned by migration calls, which never run on the monitor.
 */

static unsigned long vpn_of(unsigned long addr)
{
	return addr >> HETMEM_PAGE_SHIFT;
}

uint64_t hetmem_devtab_lookup(struct mm_struct *mm, unsigned long addr)
{
	uint64_t e;

	hetmem_mutex_lock(&mm->dev_lock);
	e = hetmem_radix_lookup(&mm->devtab, vpn_of(addr));
	hetmem_mutex_unlock(&mm->dev_lock);
	return e;
}

bool hetmem_devtab_empty(struct mm_struct *mm)
{
	return !__atomic_load_n(&mm->dev_entries, __ATOMIC_RELAXED);
}

/*
 * hmm_range_fault()'s view of a page that is not present: a page of the
 * caller's device is reported (frame, VALID, WRITE when the mapping was
 * writable); anything else reads as not valid, and a fault request on it
 * makes the walker fault, which brings the page back to the CPU.
 */
bool hetmem_devtab_hmm(struct mm_struct *mm, unsigned long addr, void *owner,
		       unsigned long *out)
{
	uint64_t e;
	struct page *page;

	if (hetmem_devtab_empty(mm))
		return false;
	e = hetmem_devtab_lookup(mm, addr);
	if (hetmem_devtab_type(e) != HETMEM_DEVTAB_DEVICE)
		return false;
	page = hetmem_device_pfn_to_page(hetmem_devtab_pfn(e));
	if (!owner || !page || page->pgmap->owner != owner)
		return false;
	*out = HMM_PFN_VALID | hetmem_devtab_pfn(e);
	if (e & HETMEM_DEVTAB_WRITE)
		*out |= HMM_PFN_WRITE;
	return true;
}

/* Drop the reference an entry holds on its page. */
static void devtab_put(uint64_t e)
{
	struct page *page = pfn_to_page(hetmem_devtab_pfn(e));

	if (!page || hetmem_devtab_type(e) == HETMEM_DEVTAB_MIGRATING)
		return;
	page_set_map(page, NULL, 0);
	put_page(page);
}

#define DEVTAB_BATCH 64

/*
 * Erase the entries of [start, end) and release their pages, a batch at
 * a time so that page_free callbacks run without the table lock. An
 * erased MIGRATING entry tells the migration in flight that the page was
 * unmapped under it (the kernel's migration finds its migration entry
 * gone); that migration drops the page instead of installing it.
 */
static void devtab_erase(struct mm_struct *mm, unsigned long start,
			 unsigned long end)
{
	unsigned long vpn = vpn_of(start), last = vpn_of(end - 1);
	uint64_t put[DEVTAB_BATCH];
	unsigned int i, n;

	do {
		n = 0;
		hetmem_mutex_lock(&mm->dev_lock);
		while (n < DEVTAB_BATCH && vpn <= last) {
			uint64_t e = hetmem_radix_next(&mm->devtab, &vpn, last);

			if (!e)
				break;
			hetmem_radix_erase_range(&mm->devtab, vpn, vpn);
			put[n++] = e;
			vpn++;
		}
		hetmem_mutex_unlock(&mm->dev_lock);
		for (i = 0; i < n; i++)
			devtab_put(put[i]);
	} while (n == DEVTAB_BATCH);
}

/* munmap, mremap shrink, MAP_FIXED over it: the pages are gone. */
void hetmem_devtab_unmap(struct mm_struct *mm, unsigned long start,
			 unsigned long end)
{
	if (end > start && !hetmem_devtab_empty(mm))
		devtab_erase(mm, start, end);
}

/*
 * MADV_DONTNEED and MADV_FREE (the event does not tell them apart): the
 * pages are discarded, which MADV_FREE also permits. A REMOVE that
 * hetmem raised itself, dropping pages it already copied out, is
 * reported through @own and changes nothing.
 */
void hetmem_devtab_remove(struct mm_struct *mm, unsigned long start,
			  unsigned long end, bool *own)
{
	hetmem_mutex_lock(&mm->dev_lock);
	*own = start >= mm->own_remove_start && end <= mm->own_remove_end &&
	       start < end;
	hetmem_mutex_unlock(&mm->dev_lock);
	if (!*own)
		hetmem_devtab_unmap(mm, start, end);
}

/*
 * mremap moved [from, from + len) to @to: the device pages follow. The
 * entries are re-stored one batch at a time; a node allocation failure
 * loses the entry's page (it is released, as if unmapped) and warns.
 */
void hetmem_devtab_move(struct mm_struct *mm, unsigned long from,
			unsigned long to, unsigned long len)
{
	unsigned long vpn = vpn_of(from), last = vpn_of(from + len - 1);
	long delta = (long)vpn_of(to) - (long)vpn_of(from);

	if (!len || hetmem_devtab_empty(mm))
		return;
	hetmem_mutex_lock(&mm->dev_lock);
	for (;;) {
		uint64_t e = hetmem_radix_next(&mm->devtab, &vpn, last);
		struct page *page;

		if (!e)
			break;
		hetmem_radix_erase_range(&mm->devtab, vpn, vpn);
		page = pfn_to_page(hetmem_devtab_pfn(e));
		if (hetmem_radix_store(&mm->devtab, vpn + delta, e)) {
			HETMEM_WARN(true, "device entry lost in mremap (no memory)");
			hetmem_mutex_unlock(&mm->dev_lock);
			devtab_put(e);
			hetmem_mutex_lock(&mm->dev_lock);
		} else if (page && hetmem_devtab_type(e) != HETMEM_DEVTAB_MIGRATING) {
			page_set_map(page, mm, (vpn + delta) << HETMEM_PAGE_SHIFT);
		}
		vpn++;
	}
	hetmem_mutex_unlock(&mm->dev_lock);
}

/* Free the nodes erasures emptied. Not on the monitor thread. */
void hetmem_devtab_prune(struct mm_struct *mm)
{
	struct hetmem_radix_node *list;

	hetmem_mutex_lock(&mm->dev_lock);
	list = hetmem_radix_prune(&mm->devtab);
	hetmem_mutex_unlock(&mm->dev_lock);
	hetmem_radix_free_nodes(&mm->devtab, list);
}
