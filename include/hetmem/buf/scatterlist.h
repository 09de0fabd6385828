/* SPDX-License-Identifier: MIT */
/*
 * hetmem - a minimal sg_table: the address list a dma-buf exporter hands
 * to an importing device.
 */
#ifndef HETMEM_BUF_SCATTERLIST_H
#define HETMEM_BUF_SCATTERLIST_H

#include <stdint.h>

#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Scatter lists without struct page
 *
 * Only the DMA half of the kernel's scatterlist exists: a process has no
 * struct page, so @page_link is always 0 and importers must use
 * sg_dma_address() and sg_dma_len() only (which is what the kernel's
 * CONFIG_DMABUF_DEBUG enforces on importers anyway). A table is one flat
 * array; there is no chaining.
 */

/**
 * struct scatterlist - one contiguous range for a device
 * @page_link: always 0 (no struct page in a process)
 * @offset: offset of the range inside its first page
 * @length: CPU length of the range in bytes
 * @dma_address: the address the device uses (see dma-buf.h)
 * @dma_length: device length of the range in bytes
 */
struct scatterlist {
	unsigned long page_link;
	unsigned int offset;
	unsigned int length;
	uint64_t dma_address;
	unsigned int dma_length;
};

/**
 * struct sg_table - a list of ranges
 * @sgl: the entries
 * @nents: entries mapped for the device
 * @orig_nents: entries allocated
 */
struct sg_table {
	struct scatterlist *sgl;
	unsigned int nents;
	unsigned int orig_nents;
};

HETMEM_API int sg_alloc_table(struct sg_table *table, unsigned int nents,
			      unsigned int gfp_mask);
HETMEM_API void sg_free_table(struct sg_table *table);

/**
 * sg_dma_address() - device address of an entry
 * @sg: the entry
 *
 * Context: Any.
 * Return: the address the importing device uses for the entry.
 */
static inline uint64_t sg_dma_address(const struct scatterlist *sg)
{
	return sg->dma_address;
}

/**
 * sg_dma_len() - device length of an entry
 * @sg: the entry
 *
 * Context: Any.
 * Return: the length in bytes.
 */
static inline unsigned int sg_dma_len(const struct scatterlist *sg)
{
	return sg->dma_length;
}

/* Walk the device entries of @sgt; @i counts them. */
#define for_each_sgtable_dma_sg(sgt, sg, i)				\
	for ((i) = 0, (sg) = (sgt)->sgl; (i) < (sgt)->nents;		\
	     (i)++, (sg)++)

HETMEM_END_DECLS

#endif /* HETMEM_BUF_SCATTERLIST_H */
