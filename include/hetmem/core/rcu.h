/* SPDX-License-Identifier: MIT */
/*
 * hetmem - read-copy-update for the fence and reservation layers.
 */
#ifndef HETMEM_CORE_RCU_H
#define HETMEM_CORE_RCU_H

#include <stdbool.h>
#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Safe memory reclamation
 *
 * dma_fence_get_rcu_safe(), fence chain walks and the reservation object's
 * unlocked iterators read pointers to objects that another thread may be
 * releasing. As in the kernel, the memory of such objects is freed only
 * after a grace period: every reader that might still see the old pointer
 * has left its read-side section.
 *
 * hetmem uses liburcu's "bulletproof" flavour for this: readers need no
 * registration (a library cannot ask its users to register their threads),
 * read-side sections are a few instructions, and deferred frees run on
 * liburcu's call_rcu worker thread. The library registers liburcu's fork
 * handlers so that fork() without exec keeps working in both processes.
 * Under ThreadSanitizer the read-unlock/free pairing is annotated, because
 * liburcu itself is not instrumented and TSan would otherwise not see the
 * grace period that orders a reader's last access before the free.
 *
 * struct hetmem_rcu_head is storage for liburcu's callback head; it is
 * public only because struct dma_fence embeds it.
 */
struct hetmem_rcu_head {
	void *__opaque[3];
};

typedef void (*hetmem_rcu_callback_t)(struct hetmem_rcu_head *head);

HETMEM_API void hetmem_rcu_read_lock(void);
HETMEM_API void hetmem_rcu_read_unlock(void);
HETMEM_API bool hetmem_rcu_read_ongoing(void);
HETMEM_API void hetmem_call_rcu(struct hetmem_rcu_head *head,
				hetmem_rcu_callback_t func);
HETMEM_API void hetmem_synchronize_rcu(void);
HETMEM_API void hetmem_rcu_barrier(void);

HETMEM_END_DECLS

#endif /* HETMEM_CORE_RCU_H */
