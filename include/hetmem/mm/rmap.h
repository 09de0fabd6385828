/* SPDX-License-Identifier: MIT */
/*
 * hetmem - device-exclusive access (make_device_exclusive).
 */
#ifndef HETMEM_MM_RMAP_H
#define HETMEM_MM_RMAP_H

#include <hetmem/core/compiler.h>
#include <hetmem/mm/page.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Device-exclusive pages
 *
 * make_device_exclusive() takes one private anonymous page away from the
 * CPU so that a device can operate on it atomically. The page is faulted
 * in writable, an MMU_NOTIFY_EXCLUSIVE invalidation with the caller's
 * owner is sent, and the page leaves the mapping (moved into hetmem's
 * staging area, which the device reaches through page_address()). The
 * page is returned locked and referenced; the driver records it in its
 * page table inside its notifier critical section and then calls
 * folio_unlock() and folio_put().
 *
 * The next CPU access to the page faults; hetmem sends
 * MMU_NOTIFY_EXCLUSIVE with a NULL owner over it (the driver's cue that
 * exclusivity is gone) and puts the page back where it was, with the
 * device's updates. fork() restores every exclusive page first, as the
 * kernel does.
 */
HETMEM_API struct page *make_device_exclusive(struct mm_struct *mm,
					      unsigned long addr, void *owner,
					      struct folio **foliop);

HETMEM_END_DECLS

#endif /* HETMEM_MM_RMAP_H */
