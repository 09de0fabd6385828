/* SPDX-License-Identifier: MIT */
#include "fence/internal.h"
HETMEM_API const struct dma_fence_ops dma_fence_chain_ops;
