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

#endif /* HETMEM_H */
