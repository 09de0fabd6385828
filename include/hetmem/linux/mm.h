/* SPDX-License-Identifier: MIT */
/*
 * hetmem - kernel-spelled entry point <linux/mm.h>.
 *
 * Code ported from a kernel driver includes this file where the kernel
 * would include the header of the same name. The API is declared in
 * <hetmem/mm/mm.h>; define HETMEM_LINUX_COMPAT before including to also get the
 * kernel's infrastructure spellings (u64, spinlock_t, ...) from
 * <hetmem/linux/compat.h>.
 */
#ifndef HETMEM_LINUX_MM_H
#define HETMEM_LINUX_MM_H

#include <hetmem/mm/mm.h>
#include <hetmem/mm/page.h>
#ifdef HETMEM_LINUX_COMPAT
#include <hetmem/linux/compat.h>
#endif

#endif /* HETMEM_LINUX_MM_H */
