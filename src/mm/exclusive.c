/* SPDX-License-Identifier: MIT */
/*
 * hetmem - device-exclusive pages (make_device_exclusive).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/devmem.h"

/**
 * DOC: Exclusive access without page tables
 *
 * The kernel marks a device-exclusive page with a special entry that
 * faults on any CPU access. hetmem takes the page out of the mapping the
 * same way migration does: it moves (UFFDIO_MOVE) into a staging page,
 * leaving a hole registered for missing faults, and an EXCLUSIVE device
 * entry names the staging page, through which the device works on the
 * data. A CPU fault there sends MMU_NOTIFY_EXCLUSIVE with a NULL owner
 * (the driver drops its atomic mapping) and moves the page back; the
 * kernel restores its original page-table entry in the same way.
 *
 * The page is first faulted in writable (MADV_POPULATE_WRITE), as the
 * kernel's GUP does, which also breaks copy-on-write sharing with a
 * forked child; a page already on a device comes back in that fault.
 */

static void *excl_err(int err)
{
	return (void *)(intptr_t)err;
}

/* The kernel's GUP checks: anonymous, private, writable, not hugetlb. */
static int excl_check(struct mm_struct *mm, unsigned long addr)
{
	struct hetmem_vma vma;

	if (hetmem_vma_find(mm, addr, &vma) || vma.start > addr)
		return -EFAULT;
	if (vma.flags & (HETMEM_VMA_SHARED | HETMEM_VMA_FILE | HETMEM_VMA_HUGETLB))
		return -EOPNOTSUPP;
	if ((vma.flags & (HETMEM_VMA_READ | HETMEM_VMA_WRITE)) !=
	    (HETMEM_VMA_READ | HETMEM_VMA_WRITE))
		return -EFAULT;
	return 0;
}

static void excl_notify(struct mm_struct *mm, unsigned long addr, void *owner)
{
	struct mmu_notifier_range range;

	mmu_notifier_range_init_owner(&range, MMU_NOTIFY_EXCLUSIVE, 0, mm, addr,
				      addr + HETMEM_PAGE_SIZE, owner);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
}

static int excl_prepare(struct mm_struct *mm, unsigned long addr)
{
	int ret = excl_check(mm, addr);

	if (!ret && hetmem_devtab_type(hetmem_devtab_lookup(mm, addr)) ==
	    HETMEM_DEVTAB_EXCLUSIVE)
		ret = hetmem_exclusive_restore(mm, addr, false);
	if (!ret && madvise((void *)addr, HETMEM_PAGE_SIZE, MADV_POPULATE_WRITE))
		ret = -EFAULT;
	if (!ret)
		ret = hetmem_staging_start();
	if (!ret)
		ret = hetmem_mm_monitor_start(mm);
	if (ret)
		return ret;
	return hetmem_mm_watch_missing(mm, addr, addr + HETMEM_PAGE_SIZE);
}

/* Move the page at @addr into @page, as migration moves pages out. */
static int excl_take(struct mm_struct *mm, unsigned long addr, struct page *page)
{
	bool moved = false;
	long ret;

	hetmem_mutex_lock(&mm->dev_lock);
	ret = hetmem_radix_lookup(&mm->devtab, addr >> HETMEM_PAGE_SHIFT) ? -EBUSY :
	      hetmem_radix_store(&mm->devtab, addr >> HETMEM_PAGE_SHIFT,
				 hetmem_devtab_entry(0, HETMEM_DEVTAB_MIGRATING));
	hetmem_mutex_unlock(&mm->dev_lock);
	if (ret)
		return (int)ret;
	ret = hetmem_migrate_move_out(addr, 1, &page, &moved, false);
	if (ret >= 0 && !moved)
		ret = -ENOENT;	/* the page went away meanwhile */
	hetmem_mutex_lock(&mm->dev_lock);
	if (ret < 0)
		hetmem_radix_erase_range(&mm->devtab, addr >> HETMEM_PAGE_SHIFT,
					 addr >> HETMEM_PAGE_SHIFT);
	else
		hetmem_radix_store(&mm->devtab, addr >> HETMEM_PAGE_SHIFT,
				   hetmem_devtab_entry(page_to_pfn(page),
						       HETMEM_DEVTAB_EXCLUSIVE |
						       HETMEM_DEVTAB_WRITE));
	hetmem_mutex_unlock(&mm->dev_lock);
	hetmem_mm_kick(mm);
	return ret < 0 ? (int)ret : 0;
}

/**
 * make_device_exclusive() - take a page away from the CPU for a device
 * @mm: the caller's address space
 * @addr: an address in the page
 * @owner: owner of the MMU_NOTIFY_EXCLUSIVE invalidation, so that the
 *	caller can recognise (and skip) its own
 * @foliop: receives the folio, locked and referenced
 *
 * See DOC: Device-exclusive pages in <hetmem/mm/rmap.h>. The entry holds
 * its own reference to the page; the caller unlocks and puts the folio it
 * receives once its device mapping is set up.
 *
 * Context: mmap lock held for reading; may sleep (faults the page in,
 * runs invalidate callbacks). Not on the monitor thread.
 * Return: the page, or an error pointer: -EOPNOTSUPP for a shared, file or
 * hugetlb mapping; -EFAULT for an unmapped, PROT_NONE or read-only
 * address; -EBUSY when the page is being migrated; -EINVAL for another
 * address space; -ENOMEM; -EOPNOTSUPP without UFFD_FEATURE_MOVE.
 */
HETMEM_API struct page *make_device_exclusive(struct mm_struct *mm,
					      unsigned long addr, void *owner,
					      struct folio **foliop)
{
	struct page *page;
	int ret;

	if (!foliop || !hetmem_mm_is_current(mm) || hetmem_mm_in_monitor())
		return excl_err(-EINVAL);
	addr &= HETMEM_PAGE_MASK;
	ret = excl_prepare(mm, addr);
	if (ret)
		return excl_err(ret);
	page = hetmem_staging_alloc(0, addr, true);
	if (!page)
		return excl_err(-ENOMEM);
	excl_notify(mm, addr, owner);
	ret = excl_take(mm, addr, page);
	if (ret) {
		put_page(page);
		return excl_err(ret);
	}
	page_set_map(page, mm, addr);
	get_page(page);		/* the caller's; the entry keeps the first */
	lock_page(page);
	hetmem_devmem_count(exclusive, 1);
	*foliop = page_folio(page);
	return page;
}

/* Take the EXCLUSIVE entry at @addr and its page, locked; NULL if gone. */
static struct page *excl_grab(struct mm_struct *mm, unsigned long addr,
			      bool on_monitor, int *ret)
{
	unsigned long vpn = addr >> HETMEM_PAGE_SHIFT;
	struct page *page = NULL;
	uint64_t e;

	*ret = 0;
	hetmem_mutex_lock(&mm->dev_lock);
	e = hetmem_radix_lookup(&mm->devtab, vpn);
	if (hetmem_devtab_type(e) == HETMEM_DEVTAB_EXCLUSIVE) {
		page = pfn_to_page(hetmem_devtab_pfn(e));
		if (trylock_page(page))
			hetmem_radix_store(&mm->devtab, vpn,
					   hetmem_devtab_entry(0, HETMEM_DEVTAB_MIGRATING));
		else
			*ret = -EAGAIN;	/* the driver still holds it */
	}
	hetmem_mutex_unlock(&mm->dev_lock);
	return *ret ? NULL : page;
}

/*
 * The CPU wants the page back: tell the devices, then put it back. On the
 * monitor a busy page or queued events defer the fault (-EAGAIN).
 */
int hetmem_exclusive_restore(struct mm_struct *mm, unsigned long addr,
			     bool on_monitor)
{
	unsigned long vpn = addr >> HETMEM_PAGE_SHIFT;
	struct page *page;
	int ret;

	while (!(page = excl_grab(mm, addr, on_monitor, &ret)) && ret == -EAGAIN &&
	       !on_monitor)
		usleep(100);
	if (!page)
		return ret;
	excl_notify(mm, addr, NULL);
	ret = hetmem_migrate_install(mm, addr, page, 1, on_monitor) ? 0 : -EAGAIN;
	hetmem_mutex_lock(&mm->dev_lock);
	if (ret == -EAGAIN)
		hetmem_radix_store(&mm->devtab, vpn,
				   hetmem_devtab_entry(page_to_pfn(page),
						       HETMEM_DEVTAB_EXCLUSIVE |
						       HETMEM_DEVTAB_WRITE));
	else
		hetmem_radix_erase_range(&mm->devtab, vpn, vpn);
	hetmem_mutex_unlock(&mm->dev_lock);
	unlock_page(page);
	if (ret == -EAGAIN)
		return -EAGAIN;
	page_set_map(page, NULL, 0);
	put_page(page);		/* the entry's reference */
	hetmem_devmem_count(exclusive_revoked, 1);
	return 0;
}
