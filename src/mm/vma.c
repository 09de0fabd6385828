/* SPDX-License-Identifier: MIT */
/*
 * hetmem - struct vm_area_struct lookups: vma_lookup() and find_vma().
 */
#include "mm/devmem.h"

/**
 * DOC: Mapping snapshots
 *
 * The kernel hands out pointers into its own mapping tree, valid while
 * the mmap lock is held. hetmem has no tree of its own: it asks the kernel
 * (PROCMAP_QUERY, or /proc/self/maps) every time, and the application may
 * change its mappings without telling anyone. A lookup therefore returns
 * a copy, kept in a small per-thread ring so that callers written for
 * the kernel (which never free what find_vma() returns) need no change:
 * the copy stays valid for the next HETMEM_VMA_RING - 1 lookups of the
 * same thread. Shared anonymous memory reads as file-backed, because in
 * the kernel it is shmem; the file pointer is a sentinel that only says
 * "some file".
 *
 * A copy remembers the mmap lock hold it was taken under. Migration, which
 * must know that a range is private anonymous memory, trusts the copy a
 * driver passes in args->vma while that thread still holds the same lock
 * (as the kernel trusts its vma under the mmap lock) and asks the kernel
 * again otherwise. The application's own mmap() does not take the lock,
 * so neither answer is more than a snapshot; what keeps migration safe
 * when a mapping changes under it is described in src/mm/migrate.c.
 */

static const char vma_some_file;
static __thread struct vm_area_struct vma_ring[HETMEM_VMA_RING];
static __thread struct hetmem_vma vma_ring_raw[HETMEM_VMA_RING];
static __thread unsigned long vma_ring_epoch[HETMEM_VMA_RING];
static __thread unsigned int vma_ring_next;

void hetmem_vma_to_area(struct mm_struct *mm, const struct hetmem_vma *vma,
			struct vm_area_struct *out)
{
	unsigned long vm_flags = 0;

	if (vma->flags & HETMEM_VMA_READ)
		vm_flags |= VM_READ;
	if (vma->flags & HETMEM_VMA_WRITE)
		vm_flags |= VM_WRITE;
	if (vma->flags & HETMEM_VMA_EXEC)
		vm_flags |= VM_EXEC;
	if (vma->flags & HETMEM_VMA_SHARED)
		vm_flags |= VM_SHARED;
	if (vma->flags & HETMEM_VMA_HUGETLB)
		vm_flags |= VM_HUGETLB;
	*out = (struct vm_area_struct){
		.vm_mm = mm,
		.vm_start = vma->start,
		.vm_end = vma->end,
		.vm_flags = vm_flags,
		.vm_file = vma->flags & (HETMEM_VMA_FILE | HETMEM_VMA_SHARED) ?
			   &vma_some_file : NULL,
		.hetmem_special = vma->flags & HETMEM_VMA_SPECIAL,
	};
}

/* The covering-or-next mapping, copied into the ring; NULL when none. */
static struct vm_area_struct *vma_snapshot(struct mm_struct *mm,
					   unsigned long addr)
{
	struct vm_area_struct *out;
	struct hetmem_vma vma;
	unsigned int i;

	if (!mm || !hetmem_mm_is_current(mm) || hetmem_vma_find(mm, addr, &vma))
		return NULL;
	i = vma_ring_next++ % HETMEM_VMA_RING;
	out = &vma_ring[i];
	hetmem_vma_to_area(mm, &vma, out);
	vma_ring_raw[i] = vma;
	vma_ring_epoch[i] = hetmem_mmap_hold_epoch();
	return out;
}

bool hetmem_vma_fresh(const struct vm_area_struct *vma, struct hetmem_vma *out)
{
	uintptr_t p = (uintptr_t)vma, base = (uintptr_t)vma_ring;
	unsigned int i;

	if (p < base || p >= base + sizeof(vma_ring))
		return false;
	i = (unsigned int)((p - base) / sizeof(vma_ring[0]));
	if (!vma_ring_epoch[i] || vma_ring_epoch[i] != hetmem_mmap_hold_epoch())
		return false;
	*out = vma_ring_raw[i];
	return true;
}

/**
 * find_vma() - the mapping containing an address, or the next one above
 * @mm: the calling process's address space
 * @addr: the address
 *
 * Returns a snapshot (see DOC: Mappings in page.h), valid for the next
 * HETMEM_VMA_RING - 1 lookups made by the same thread.
 *
 * Context: Any thread; the caller usually holds the mmap lock. May read
 * /proc/self/maps.
 * Return: the first mapping whose end is above @addr, or NULL when there
 * is none, @mm is NULL or not the calling process's address space.
 */
HETMEM_API struct vm_area_struct *find_vma(struct mm_struct *mm,
					   unsigned long addr)
{
	return vma_snapshot(mm, addr);
}

/**
 * vma_lookup() - the mapping containing an address
 * @mm: the calling process's address space
 * @addr: the address
 *
 * Like find_vma(), but only a mapping that contains @addr.
 *
 * Context: Any thread; the caller usually holds the mmap lock. May read
 * /proc/self/maps.
 * Return: the mapping, or NULL when @addr is not mapped, @mm is NULL or
 * not the calling process's address space.
 */
HETMEM_API struct vm_area_struct *vma_lookup(struct mm_struct *mm,
					     unsigned long addr)
{
	struct vm_area_struct *vma = vma_snapshot(mm, addr);

	return vma && vma->vm_start <= addr ? vma : NULL;
}
