/* SPDX-License-Identifier: MIT */
/*
 * hetmem - a radix tree of 64-bit entries indexed by page number.
 */
#ifndef HETMEM_CORE_RADIX_H
#define HETMEM_CORE_RADIX_H

#include <stdbool.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

#define HETMEM_RADIX_SHIFT	9
#define HETMEM_RADIX_FANOUT	(1UL << HETMEM_RADIX_SHIFT)
#define HETMEM_RADIX_LEVELS	4
#define HETMEM_RADIX_LIMIT	(1UL << (HETMEM_RADIX_SHIFT * HETMEM_RADIX_LEVELS))

/* One level of the tree: a directory or a leaf of entries. */
struct hetmem_radix_node {
	unsigned int used;		/* non-empty slots */
	union {
		struct hetmem_radix_node *child[HETMEM_RADIX_FANOUT];
		uint64_t entry[HETMEM_RADIX_FANOUT];
	};
};

/**
 * struct hetmem_radix - a radix tree of page entries
 * @root: top directory, NULL when empty
 * @prune: some node may have become empty
 * @entries: counter of non-zero entries, or NULL
 * @bytes: counter of node memory, or NULL
 */
struct hetmem_radix {
	struct hetmem_radix_node *root;
	bool prune;
	uint64_t *entries;
	uint64_t *bytes;
};

HETMEM_API void hetmem_radix_init(struct hetmem_radix *r, uint64_t *entries,
				  uint64_t *bytes);
HETMEM_API void hetmem_radix_destroy(struct hetmem_radix *r);
HETMEM_API uint64_t hetmem_radix_lookup(const struct hetmem_radix *r,
					unsigned long vpn);
HETMEM_API struct hetmem_radix_node *hetmem_radix_leaf(const struct hetmem_radix *r,
							unsigned long vpn,
							unsigned long *next);
HETMEM_API int hetmem_radix_store(struct hetmem_radix *r, unsigned long vpn,
				  uint64_t entry);
HETMEM_API unsigned long hetmem_radix_erase_range(struct hetmem_radix *r,
						  unsigned long first,
						  unsigned long last);
HETMEM_API uint64_t hetmem_radix_next(const struct hetmem_radix *r,
				      unsigned long *vpn, unsigned long last);
HETMEM_API struct hetmem_radix_node *hetmem_radix_prune(struct hetmem_radix *r);
HETMEM_API void hetmem_radix_free_nodes(struct hetmem_radix *r,
					struct hetmem_radix_node *list);

HETMEM_END_DECLS

#endif /* HETMEM_CORE_RADIX_H */
