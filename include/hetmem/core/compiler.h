/* SPDX-License-Identifier: MIT */
/*
 * hetmem - compiler helpers shared by every public header.
 */
#ifndef HETMEM_CORE_COMPILER_H
#define HETMEM_CORE_COMPILER_H

#include <stddef.h>

/**
 * DOC: Export policy
 *
 * libhetmem is built with hidden visibility. Only declarations marked with
 * HETMEM_API are exported, and the version script plus the checked symbol
 * list (src/libhetmem.symbols) make an accidental export a test failure.
 */
#if defined(__GNUC__)
#define HETMEM_API __attribute__((visibility("default")))
#else
#define HETMEM_API
#endif

#ifdef __cplusplus
#define HETMEM_BEGIN_DECLS extern "C" {
#define HETMEM_END_DECLS }
#else
#define HETMEM_BEGIN_DECLS
#define HETMEM_END_DECLS
#endif

#define hetmem_likely(x) __builtin_expect(!!(x), 1)
#define hetmem_unlikely(x) __builtin_expect(!!(x), 0)

/* Recover the containing structure from a pointer to one of its members. */
#define hetmem_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif /* HETMEM_CORE_COMPILER_H */
