/* SPDX-License-Identifier: MIT */
/*
 * hetmem - device memory: struct dev_pagemap, memremap_pages().
 */
#ifndef HETMEM_MM_MEMREMAP_H
#define HETMEM_MM_MEMREMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>
#include <hetmem/mm/page.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Device memory
 *
 * In the kernel a driver describes its private memory with a struct
 * dev_pagemap of type MEMORY_DEVICE_PRIVATE and memremap_pages() creates a
 * struct page for every page of it; the CPU cannot address that memory,
 * and pages migrated there look swapped out to the CPU.
 *
 * hetmem's memremap_pages() creates the same: a range of device frame
 * numbers (at or above HETMEM_DEVICE_PFN_BASE, handed out by hetmem: leave
 * pgmap->range.start at 0 and set range.end to the size minus one; hetmem
 * fills in the start), one 40-byte descriptor per page, and the memory
 * itself: a memfd owned by the device (hetmem_dev_pagemap_fd()), mapped
 * for the device's use and returned. That memory is not the process's
 * anonymous memory, so pages migrated into it leave the process's
 * anonymous RSS, as they leave system memory in the kernel; an emulated
 * device in another process can map the same memfd. Only the device (the
 * driver's code) reaches it, through page_address() or the returned base;
 * the CPU view of the process never maps it.
 *
 * The ops are the kernel's: page_free() is called when a device page's
 * last reference goes (the driver puts it back on its free list), and
 * migrate_to_ram() when the CPU touches a page that lives in this memory.
 * migrate_to_ram() runs on the address-space monitor thread with the
 * device page locked and the mmap lock held for reading; it must move at
 * least the faulting page back with migrate_vma_setup() (fault_page set),
 * migrate_vma_pages() and migrate_vma_finalize(), and may do more. It must
 * not wait for anything the faulting thread may be needed for: in
 * particular not for a dma-fence that the CPU is to signal (the lock
 * checker reports such a wait; see docs/semantics-vs-kernel.md). It
 * returns 0, VM_FAULT_SIGBUS or VM_FAULT_OOM; the faulting thread then
 * retries the access, or gets SIGBUS for either error.
 *
 * @owner is compared by hmm_range_fault() (dev_private_owner) and by
 * migration (pgmap_owner) to tell this device's pages from another's.
 */
enum memory_type {
	MEMORY_DEVICE_PRIVATE = 1,
	MEMORY_DEVICE_COHERENT,
	MEMORY_DEVICE_FS_DAX,
	MEMORY_DEVICE_GENERIC,
	MEMORY_DEVICE_PCI_P2PDMA,
};

struct vm_fault;

/**
 * struct dev_pagemap_ops - callbacks of a device pagemap
 * @page_free: the last reference to a device page went; the page keeps
 *	its descriptor and may be handed out again with
 *	zone_device_page_init()
 * @migrate_to_ram: the CPU touched a device page (see DOC: Device memory)
 */
struct dev_pagemap_ops {
	void (*page_free)(struct page *page);
	vm_fault_t (*migrate_to_ram)(struct vm_fault *vmf);
};

/**
 * struct hetmem_range - an inclusive range of device "physical" addresses
 * @start: first byte (frame number << PAGE_SHIFT)
 * @end: last byte
 *
 * The kernel's struct range, renamed so as not to take a common name.
 */
struct hetmem_range {
	uint64_t start;
	uint64_t end;
};

struct hetmem_pagemap;

/**
 * struct dev_pagemap - a range of device memory
 * @type: MEMORY_DEVICE_PRIVATE (the only type hetmem creates)
 * @flags: unused, 0
 * @ops: the callbacks
 * @owner: identity compared by hmm_range_fault() and migration; non-NULL
 * @range: the device addresses; hetmem fills in @range.start
 * @nr_range: 1
 * @priv: hetmem's bookkeeping; do not touch
 */
struct dev_pagemap {
	enum memory_type type;
	unsigned int flags;
	const struct dev_pagemap_ops *ops;
	void *owner;
	struct hetmem_range range;
	int nr_range;
	struct hetmem_pagemap *priv;
};

HETMEM_API void *memremap_pages(struct dev_pagemap *pgmap, int nid);
HETMEM_API void memunmap_pages(struct dev_pagemap *pgmap);
HETMEM_API int hetmem_dev_pagemap_fd(const struct dev_pagemap *pgmap);
HETMEM_API void zone_device_page_init(struct page *page);
HETMEM_API void zone_device_folio_init(struct folio *folio, unsigned int order);

/**
 * hetmem_is_err_ptr() - is this pointer an encoded negative errno?
 * @ptr: a pointer returned by memremap_pages() or make_device_exclusive()
 *
 * Context: any.
 * Return: true for the last 4095 addresses (the kernel's IS_ERR()).
 */
static inline bool hetmem_is_err_ptr(const void *ptr)
{
	return (uintptr_t)ptr >= (uintptr_t)-4095;
}

/**
 * hetmem_ptr_err() - the errno encoded in an error pointer
 * @ptr: a pointer for which hetmem_is_err_ptr() is true
 *
 * Context: any.
 * Return: the negative errno.
 */
static inline int hetmem_ptr_err(const void *ptr)
{
	return (int)(intptr_t)ptr;
}

/**
 * struct hetmem_devmem_stats - device memory of the process
 * @pagemaps: live pagemaps
 * @device_pages: device pages of all pagemaps
 * @device_pages_used: device pages with a reference
 * @staging_pages: staging system pages in use
 * @staging_cached_bytes: populated staging memory kept for reuse
 * @migrated_to_device: pages that migrate_vma_pages() moved to a device
 * @migrated_to_ram: pages moved from a device to system memory
 * @cpu_faults: CPU faults served by a migrate_to_ram op
 * @fault_retries: faults served again after an event or a busy lock
 * @fault_sigbus: faults answered with SIGBUS
 * @exclusive: pages made device-exclusive
 * @exclusive_revoked: device-exclusive pages the CPU took back
 * @move_fallbacks: pages detached by copying (read-only or shared pages)
 * @migrate_skipped: selected pages that could not be collected
 */
struct hetmem_devmem_stats {
	uint64_t pagemaps;
	uint64_t device_pages;
	uint64_t device_pages_used;
	uint64_t staging_pages;
	uint64_t staging_cached_bytes;
	uint64_t migrated_to_device;
	uint64_t migrated_to_ram;
	uint64_t cpu_faults;
	uint64_t fault_retries;
	uint64_t fault_sigbus;
	uint64_t exclusive;
	uint64_t exclusive_revoked;
	uint64_t move_fallbacks;
	uint64_t migrate_skipped;
};

HETMEM_API void hetmem_devmem_get_stats(struct hetmem_devmem_stats *stats);

HETMEM_END_DECLS

#endif /* HETMEM_MM_MEMREMAP_H */
