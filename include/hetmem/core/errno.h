/* SPDX-License-Identifier: MIT */
/*
 * hetmem - error codes that exist in the kernel but not in userspace errno.
 */
#ifndef HETMEM_CORE_ERRNO_H
#define HETMEM_CORE_ERRNO_H

#include <errno.h>

/**
 * DOC: ERESTARTSYS
 *
 * The kernel returns -ERESTARTSYS from interruptible waits so that the
 * syscall layer can restart or fail the call. Userspace has no such errno;
 * hetmem keeps the value (512, as in the kernel) so that driver logic ported
 * from the kernel keeps its checks, and returns it exactly where the kernel
 * would: an interruptible wait whose sleep was broken by a signal handler.
 * Translate it to -EINTR at a POSIX-facing boundary.
 */
#define HETMEM_ERESTARTSYS 512

/* Largest value an error pointer may carry, as in the kernel. */
#define HETMEM_MAX_ERRNO 4095

#endif /* HETMEM_CORE_ERRNO_H */
