/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private helpers of the fence layer.
 */
#ifndef HETMEM_SRC_FENCE_INTERNAL_H
#define HETMEM_SRC_FENCE_INTERNAL_H

#include "core/internal.h"
#include <hetmem/fence/dma-fence.h>

/* The global stub lock, shared by the stub and every private stub. */
extern hetmem_spinlock_t hetmem_fence_stub_lock;

/* Provided by core/lockdep.c (declared in lockdep.h once it lands). */
void hetmem_lockdep_might_wait_for(struct hetmem_lockdep_map *map,
				   const void *site);

/* Fence-wait annotation with an explicit site (the public caller). */
void hetmem_fence_might_wait(const void *site);

#endif /* HETMEM_SRC_FENCE_INTERNAL_H */
