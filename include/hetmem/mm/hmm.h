/* SPDX-License-Identifier: MIT */
/*
 * hetmem - hmm_range_fault(): snapshot and fault a range of the CPU page
 * tables for a device mirror.
 */
#ifndef HETMEM_MM_HMM_H
#define HETMEM_MM_HMM_H

#include <stdbool.h>
#include <hetmem/core/compiler.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: hmm_range_fault and the pfn encoding
 *
 * Each word of hmm_range.hmm_pfns describes one page: on input the
 * request (HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, filtered by
 * pfn_flags_mask and OR-ed with default_flags), on output the CPU state
 * (HMM_PFN_VALID, HMM_PFN_WRITE, HMM_PFN_ERROR, the mapping order) and a
 * page frame number. The bit layout is the kernel's current one (order at
 * bit 53); use the constants and helpers, never the numbers.
 *
 * What a "pfn" is in userspace (DESIGN.md): hetmem cannot name physical
 * pages, so the frame number identifies the backing page as the device
 * reaches it. For system memory it is the virtual page number of the
 * process (hetmem_pfn_to_virt() gives the address a device copies
 * through); the shared zero page is HETMEM_ZERO_PFN (is_zero_pfn()); a
 * page of device memory is the index of that page in its dev_pagemap,
 * offset by HETMEM_DEVICE_PFN_BASE (device-memory layer). Device accesses
 * through a system pfn go through the virtual address, so copy-on-write,
 * the zero page and a concurrent munmap behave for the device as they do
 * for a CPU thread.
 *
 * The snapshot comes from the PAGEMAP_SCAN ioctl (or /proc/self/pagemap on
 * older kernels) and the current protections of each mapping
 * (PROCMAP_QUERY, or /proc/self/maps); faults are taken with
 * MADV_POPULATE_READ / MADV_POPULATE_WRITE. Before returning 0 the call
 * waits for the monitor to deliver every address-space event that was
 * already queued, so a change made before hmm_range_fault() returned is
 * seen by mmu_interval_read_retry().
 */

#define HMM_PFN_VALID		(1UL << 63)
#define HMM_PFN_WRITE		(1UL << 62)
#define HMM_PFN_ERROR		(1UL << 61)
#define HMM_PFN_DMA_MAPPED	(1UL << 60)
#define HMM_PFN_P2PDMA		(1UL << 59)
#define HMM_PFN_P2PDMA_BUS	(1UL << 58)
#define HMM_PFN_ORDER_SHIFT	53
#define HMM_PFN_INOUT_FLAGS	(HMM_PFN_DMA_MAPPED | HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS)
#define HMM_PFN_FLAGS		(~((1UL << HMM_PFN_ORDER_SHIFT) - 1))

#define HMM_PFN_REQ_FAULT	HMM_PFN_VALID
#define HMM_PFN_REQ_WRITE	HMM_PFN_WRITE

/* Milliseconds a caller customarily keeps retrying -EBUSY. */
#define HMM_RANGE_DEFAULT_TIMEOUT 1000

/* The shared zero page, and where device-memory frame numbers start. */
#define HETMEM_ZERO_PFN		(1UL << 47)
#define HETMEM_DEVICE_PFN_BASE	(1UL << 48)

struct hmm_range {
	struct mmu_interval_notifier *notifier;
	unsigned long notifier_seq;
	unsigned long start;
	unsigned long end;
	unsigned long *hmm_pfns;
	unsigned long default_flags;
	unsigned long pfn_flags_mask;
	void *dev_private_owner;
};

HETMEM_API int hmm_range_fault(struct hmm_range *range);

/**
 * hmm_pfn_to_map_order() - size of the CPU mapping behind an output word
 * @hmm_pfn: an output word with HMM_PFN_VALID set
 *
 * The order describes the CPU mapping (0 for a 4 KiB page, 9 for a 2 MiB
 * transparent huge page), which may extend beyond the range asked for.
 *
 * Context: any.
 * Return: log2 of the mapping size in pages.
 */
static inline unsigned int hmm_pfn_to_map_order(unsigned long hmm_pfn)
{
	return (hmm_pfn >> HMM_PFN_ORDER_SHIFT) & 0x1F;
}

/**
 * hetmem_hmm_pfn_to_pfn() - the frame number of an output word
 * @hmm_pfn: an output word with HMM_PFN_VALID set
 *
 * Context: any.
 * Return: the word without its flag and order bits.
 */
static inline unsigned long hetmem_hmm_pfn_to_pfn(unsigned long hmm_pfn)
{
	return hmm_pfn & ~HMM_PFN_FLAGS;
}

/**
 * is_zero_pfn() - is this frame the shared zero page?
 * @pfn: a frame number from hetmem_hmm_pfn_to_pfn()
 *
 * Context: any.
 * Return: true for HETMEM_ZERO_PFN.
 */
static inline bool is_zero_pfn(unsigned long pfn)
{
	return pfn == HETMEM_ZERO_PFN;
}

/**
 * hetmem_pfn_is_system() - is this frame a page of system memory?
 * @pfn: a frame number from hetmem_hmm_pfn_to_pfn()
 *
 * System frames are virtual page numbers of the process and are reached
 * through hetmem_pfn_to_virt().
 *
 * Context: any.
 * Return: true for a system page, false for the zero page and device pages.
 */
static inline bool hetmem_pfn_is_system(unsigned long pfn)
{
	return pfn < HETMEM_ZERO_PFN;
}

/**
 * hetmem_pfn_to_virt() - address through which a system frame is reached
 * @pfn: a system frame number
 *
 * Context: any.
 * Return: the virtual address of the page's first byte.
 */
static inline void *hetmem_pfn_to_virt(unsigned long pfn)
{
	return (void *)(pfn << HETMEM_PAGE_SHIFT);
}

HETMEM_END_DECLS

#endif /* HETMEM_MM_HMM_H */
