/* SPDX-License-Identifier: MIT */
/*
 * hetmem - kernel-spelled entry point <linux/dma-buf.h>.
 *
 * Code ported from a kernel driver includes this file where the kernel
 * would include the header of the same name. The API is declared in
 * <hetmem/buf/dma-buf.h>; define HETMEM_LINUX_COMPAT before including to
 * also get the kernel's infrastructure spellings (u64, ERR_PTR, IS_ERR,
 * ...) from <hetmem/linux/compat.h>. IS_ERR() and PTR_ERR() work on the
 * error pointers dma_buf_export() and friends return.
 */
#ifndef HETMEM_LINUX_DMA_BUF_H
#define HETMEM_LINUX_DMA_BUF_H

#include <hetmem/buf/dma-buf.h>
#ifdef HETMEM_LINUX_COMPAT
#include <hetmem/linux/compat.h>
#endif

#endif /* HETMEM_LINUX_DMA_BUF_H */
