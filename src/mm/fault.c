/* SPDX-License-Identifier: MIT */
/*
 * hetmem - CPU faults on pages that left the CPU: device pages, pages in
 * migration, device-exclusive pages, and the holes around them.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "mm/devmem.h"

/**
 * DOC: Serving CPU faults
 *
 * A page in device memory is a hole in its mapping, and the range around
 * it is registered for missing-page faults with the monitor's
 * userfaultfd. A CPU access (a load, a store, or a system call that
 * touches the buffer) blocks in the kernel and the monitor thread reads a
 * fault message. It serves the fault itself rather than handing it to
 * another thread, because the hand-off is a second cross-CPU wakeup and
 * would double the fault-back latency:
 *
 *  - a device page: the page is locked and the pagemap's migrate_to_ram()
 *    called, as the kernel's do_swap_page() does; the migration moves the
 *    data into the hole with UFFDIO_MOVE, which wakes the thread;
 *  - a page being migrated: the fault waits, deferred, until the
 *    migration's finalize step wakes the monitor;
 *  - a device-exclusive page: the page goes back (exclusive.c);
 *  - any other hole (never touched, or dropped by MADV_DONTNEED): the
 *    zero page is installed, which is what the kernel would map for a
 *    read; a write then copies it in the kernel without coming back here.
 *
 * The monitor never blocks on migration state: a page lock or an mmap
 * lock it cannot take, or a userfaultfd ioctl that fails with EAGAIN
 * because an address-space event is queued (the kernel refuses to fill
 * holes while the layout may be changing), defers the fault. The monitor
 * then reads and delivers the events first, which also puts the device
 * entries where mremap moved them, and tries the deferred faults again
 * after every read cycle and on every wake-up from a finished migration.
 *
 * migrate_to_ram() runs under the "device_memory_fault" lock-checker map
 * of the mm and, borrowed from the faulting thread (its id comes with the
 * fault when the kernel grants UFFD_FEATURE_THREAD_ID), the annotation
 * maps that thread holds. In the kernel the fault runs in the faulting
 * thread, so this is the view its checker has: a thread inside a
 * dma-fence signalling section that touches device memory whose
 * migrate_to_ram() waits for a fence is reported as a fence wait inside a
 * signalling section (the recoverable-fault versus dma-fence deadlock),
 * and fault -> fence edges recorded elsewhere close cycles as usual.
 */

static int uffd_ioctl(struct mm_struct *mm, unsigned long req, void *arg)
{
	int fd = hetmem_mm_uffd(mm);

	if (fd < 0)
		return -ESRCH;
	return ioctl(fd, req, arg) ? -errno : 0;
}

static void fault_wake(struct mm_struct *mm, unsigned long addr)
{
	struct uffdio_range r = { .start = addr, .len = HETMEM_PAGE_SIZE };

	uffd_ioctl(mm, UFFDIO_WAKE, &r);
}

static int fault_fill(struct mm_struct *mm, unsigned long addr, bool wp)
{
	int ret;

	if (wp) {
		struct uffdio_writeprotect w = {
			.range = { .start = addr, .len = HETMEM_PAGE_SIZE },
		};

		ret = uffd_ioctl(mm, UFFDIO_WRITEPROTECT, &w);
	} else {
		struct uffdio_zeropage z = {
			.range = { .start = addr, .len = HETMEM_PAGE_SIZE },
		};

		ret = uffd_ioctl(mm, UFFDIO_ZEROPAGE, &z);
	}
	return ret;
}


/*
 * An ordinary hole, or a stale write-protection left by a migration. The
 * zero page goes in under the table lock, after checking that no
 * migration marked the page meanwhile: a migration marks its pages
 * before it looks at the page tables, so it either sees the zero page
 * or the fault sees its mark.
 */
static int fault_cpu(struct mm_struct *mm, unsigned long addr, bool wp)
{
	uint64_t e;
	int ret;

	hetmem_mutex_lock(&mm->dev_lock);
	e = hetmem_radix_lookup(&mm->devtab, addr >> HETMEM_PAGE_SHIFT);
	ret = e ? -EAGAIN : fault_fill(mm, addr, wp);
	hetmem_mutex_unlock(&mm->dev_lock);
	if (ret == -EAGAIN)
		return -EAGAIN;
	if (ret)		/* filled meanwhile, or unmapped: retry the access */
		fault_wake(mm, addr);
	return 0;
}

/* The faulting thread gets SIGBUS, as for VM_FAULT_SIGBUS / VM_FAULT_OOM. */
static void fault_sigbus(struct mm_struct *mm, const struct uffd_msg *msg,
			 unsigned long addr)
{
	pid_t tid = (pid_t)msg->arg.pagefault.feat.ptid;

	if (tid)
		syscall(SYS_tgkill, hetmem_mm_getpid(), tid, SIGBUS);
	else
		kill(hetmem_mm_getpid(), SIGBUS);
	hetmem_devmem_count(fault_sigbus, 1);
	fault_wake(mm, addr);
}

/* Lock and reference the device page of the entry at @addr, if still so. */
static struct page *fault_grab(struct mm_struct *mm, unsigned long addr,
			       int *ret)
{
	struct page *page = NULL;
	uint64_t e;

	*ret = 0;
	hetmem_mutex_lock(&mm->dev_lock);
	e = hetmem_radix_lookup(&mm->devtab, addr >> HETMEM_PAGE_SHIFT);
	if (hetmem_devtab_type(e) == HETMEM_DEVTAB_DEVICE) {
		page = hetmem_device_pfn_to_page(hetmem_devtab_pfn(e));
		if (page && trylock_page(page))
			get_page(page);
		else
			*ret = -EAGAIN;
	} else if (hetmem_devtab_type(e) == HETMEM_DEVTAB_MIGRATING) {
		*ret = -EAGAIN;
	}
	hetmem_mutex_unlock(&mm->dev_lock);
	return *ret ? NULL : page;
}

#define FAULT_BORROW 8

/*
 * Call migrate_to_ram() as the faulting thread would: with the annotation
 * maps it holds (a fence signalling section, say) borrowed, so that a
 * fence wait inside migrate_to_ram() is reported exactly as the kernel's
 * checker reports a fence wait in a fault taken inside such a section.
 */
static vm_fault_t fault_call(struct mm_struct *mm, struct page *page,
			     const struct uffd_msg *msg, unsigned long addr)
{
	struct hetmem_lockdep_map *borrowed[FAULT_BORROW];
	unsigned int i, n;
	struct vm_fault vmf = {
		.address = addr,
		.real_address = msg->arg.pagefault.address,
		.page = page,
	};
	vm_fault_t ret;

	if (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE)
		vmf.flags |= FAULT_FLAG_WRITE;
	vmf.vma = vma_lookup(mm, addr);
	if (!vmf.vma)
		return VM_FAULT_SIGBUS;
	n = hetmem_lockdep_borrow((pid_t)msg->arg.pagefault.feat.ptid, borrowed,
				  FAULT_BORROW);
	for (i = 0; i < n; i++)
		hetmem_lockdep_acquire(borrowed[i], 1, true, HETMEM_RET_IP);
	hetmem_lockdep_acquire(&mm->devfault_map, 0, false, HETMEM_RET_IP);
	ret = page->pgmap->ops->migrate_to_ram(&vmf);
	hetmem_lockdep_release(&mm->devfault_map, HETMEM_RET_IP);
	while (n--)
		hetmem_lockdep_release(borrowed[n], HETMEM_RET_IP);
	hetmem_devmem_count(cpu_faults, 1);
	return ret;
}

static int fault_device(struct mm_struct *mm, const struct uffd_msg *msg,
			unsigned long addr)
{
	struct page *page;
	vm_fault_t vmret;
	int ret;

	page = fault_grab(mm, addr, &ret);
	if (!page) {
		return ret ? ret : fault_cpu(mm, addr, false);
	}
	if (!mmap_read_trylock(mm)) {
		ret = -EAGAIN;
		goto out_unlock_page;
	}
	vmret = fault_call(mm, page, msg, addr);
	mmap_read_unlock(mm);
	/*
	 * Otherwise wake the thread whatever happened: if the page is back
	 * it goes on; if not (an event was queued, a race), it faults again
	 * and that fault is served afresh.
	 */
	if (vmret & (VM_FAULT_SIGBUS | VM_FAULT_OOM))
		fault_sigbus(mm, msg, addr);
	else
		fault_wake(mm, addr);
out_unlock_page:
	unlock_page(page);
	put_page(page);
	return ret;
}

int hetmem_fault_serve(struct mm_struct *mm, const void *m)
{
	const struct uffd_msg *msg = m;
	unsigned long addr = msg->arg.pagefault.address & HETMEM_PAGE_MASK;
	uint64_t e = hetmem_devtab_empty(mm) ? 0 : hetmem_devtab_lookup(mm, addr);

	switch (hetmem_devtab_type(e)) {
	case HETMEM_DEVTAB_MIGRATING:
		return -EAGAIN;
	case HETMEM_DEVTAB_DEVICE:
		return fault_device(mm, msg, addr);
	case HETMEM_DEVTAB_EXCLUSIVE:
		return hetmem_exclusive_restore(mm, addr, true);
	default:
		return fault_cpu(mm, addr,
				 msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
	}
}
