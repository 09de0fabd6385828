/* SPDX-License-Identifier: MIT */
/*
 * hetmem - kernel-spelled entry point <linux/test_hmm_uapi.h>.
 *
 * Code ported from the kernel's HMM selftests includes this file where
 * the kernel would include "test_hmm_uapi.h" (lib/test_hmm_uapi.h): it
 * provides struct hmm_dmirror_cmd, the HMM_DMIRROR_* command numbers,
 * snapshot bytes and memory types, declared in <hetmem/dev/dmirror.h>
 * together with the hetmem_dmirror_*() calls that replace open() and
 * ioctl() on /dev/hmm_dmirrorN. Define HETMEM_LINUX_COMPAT before
 * including to also get the kernel's infrastructure spellings (u64,
 * spinlock_t, ...) from <hetmem/linux/compat.h>.
 */
#ifndef HETMEM_LINUX_TEST_HMM_UAPI_H
#define HETMEM_LINUX_TEST_HMM_UAPI_H

#include <hetmem/dev/dmirror.h>
#ifdef HETMEM_LINUX_COMPAT
#include <hetmem/linux/compat.h>
#endif

#endif /* HETMEM_LINUX_TEST_HMM_UAPI_H */
