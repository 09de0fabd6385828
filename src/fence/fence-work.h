/* SPDX-License-Identifier: MIT */
/*
 * hetmem - deferred executor of the fence layer (private).
 *
 * The userspace stand-in for the kernel's irq_work as used by fence
 * arrays and chains; see the DOC blocks in fence-work.c.
 */
#ifndef HETMEM_SRC_FENCE_FENCE_WORK_H
#define HETMEM_SRC_FENCE_FENCE_WORK_H

#include <stdbool.h>

/* struct hetmem_fence_work is public because containers embed it. */
#include <hetmem/fence/dma-fence-array.h>

typedef void (*hetmem_fence_work_func_t)(struct hetmem_fence_work *work);

/* Prepare @work to run @func; the slot must not be queued. */
static inline void hetmem_fence_work_init(struct hetmem_fence_work *work,
					  hetmem_fence_work_func_t func)
{
	work->next = NULL;
	work->func = func;
	__atomic_store_n(&work->pending, 0, __ATOMIC_RELAXED);
}

/*
 * Make sure the executor thread exists. Called where allocation is
 * allowed anyway (dma_fence_array_alloc(), dma_fence_chain_alloc()) so
 * that queueing never has to create it. Returns 0 or -errno.
 */
int hetmem_fence_work_start(void);

/*
 * Queue @work; its func runs soon on the executor thread, with no lock
 * held, inside a fence signalling section. Never blocks or allocates, so
 * it may be called from fence callbacks. The caller keeps the object that
 * embeds @work alive until func has run (usually by handing func a
 * reference). Returns false if @work was already queued and not started.
 */
bool hetmem_fence_work_queue(struct hetmem_fence_work *work);

/*
 * Wait until every work item queued before the call has finished running.
 * Sleeps; must not be called with locks held or from a work function.
 */
void hetmem_fence_work_flush(void);

#endif /* HETMEM_SRC_FENCE_FENCE_WORK_H */
