/* SPDX-License-Identifier: MIT */
/* Placeholder: being written (sync_file/sw_sync/libsync helper). */
#ifndef HETMEM_FENCE_LIBSYNC_H
#define HETMEM_FENCE_LIBSYNC_H
#include <hetmem/fence/dma-fence.h>
#endif
