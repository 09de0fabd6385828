/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private extras of the page-table walkers (src/mm/pagewalk.c)
 * that src/mm/internal.h does not declare: teardown of the cached /proc
 * descriptors and switches that let tests exercise the fallbacks.
 */
#ifndef HETMEM_SRC_MM_PAGEWALK_H
#define HETMEM_SRC_MM_PAGEWALK_H

#include <stdbool.h>

/*
 * Close the cached /proc/self/maps and /proc/self/pagemap descriptors.
 * They reopen on next use. No walker may run concurrently (teardown and
 * tests only).
 */
void hetmem_pagewalk_close(void);

/*
 * Pretend PROCMAP_QUERY (@no_query) or PAGEMAP_SCAN (@no_scan) is missing,
 * so that the /proc/self/maps and /proc/self/pagemap fallbacks can be
 * tested on a kernel that has both. Process-wide; for tests.
 */
void hetmem_pagewalk_force_fallback(bool no_query, bool no_scan);

/* True when /proc/self/pagemap shows page frame numbers (privileged). */
bool hetmem_have_pagemap_pfn(void);

#endif /* HETMEM_SRC_MM_PAGEWALK_H */
