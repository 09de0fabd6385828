/* SPDX-License-Identifier: MIT */
/*
 * hetmem - umbrella header: the whole public API.
 */
#ifndef HETMEM_H
#define HETMEM_H

#include <hetmem/version.h>
#include <hetmem/core/compiler.h>
#include <hetmem/core/errno.h>
#include <hetmem/core/lockdep.h>
#include <hetmem/core/rcu.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/core/time.h>
#include <hetmem/core/warn.h>
#include <hetmem/core/interval_tree.h>
#include <hetmem/core/rwsem.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>
#include <hetmem/fence/dma-fence-unwrap.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/resv/ww_mutex.h>
#include <hetmem/resv/dma-resv.h>
#include <hetmem/buf/dma-heap.h>
#include <hetmem/buf/transfer.h>
#include <hetmem/buf/scatterlist.h>
#include <hetmem/buf/dma-buf.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/page.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/mm/migrate.h>
#include <hetmem/mm/rmap.h>
#include <hetmem/core/radix.h>
#include <hetmem/dev/dmirror.h>

#endif /* HETMEM_H */
