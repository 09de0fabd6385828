/* SPDX-License-Identifier: MIT */
/*
 * hetmem - interval trees: which stored intervals overlap a query range.
 */
#ifndef HETMEM_CORE_INTERVAL_TREE_H
#define HETMEM_CORE_INTERVAL_TREE_H

#include <stdbool.h>
#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Interval trees
 *
 * A red-black tree of closed intervals [start, last] ordered by start and
 * augmented with the largest "last" of each subtree, as the kernel's
 * interval_tree: insertion and removal are O(log n), and finding every
 * interval that overlaps [start, last] is O(log n + k). Interval notifiers
 * (one per device mirror or userptr range; thousands in a process) are
 * looked up through one on every address-space event.
 *
 * Nodes are embedded in the caller's structure and the tree allocates
 * nothing, so insertion cannot fail and removal never frees. The tree does
 * no locking: its owner serialises changes and lookups.
 *
 * Bounds are inclusive ("last", not "end") so that an interval may reach
 * the top of the address space.
 */
/*
 * Tree linkage, embedded in each node. parent_color holds the parent's
 * address with the colour in bit 0 (set for black, clear for red); the
 * root's parent is NULL and absent children are NULL (and count as black).
 * Callers read these fields only to inspect a tree, never to change it.
 */
struct hetmem_rb_node {
	unsigned long parent_color;	/* parent pointer | colour bit */
	struct hetmem_rb_node *right;
	struct hetmem_rb_node *left;
};

/* A tree: its root and its first node in order (both NULL when empty). */
struct hetmem_rb_root_cached {
	struct hetmem_rb_node *root;
	struct hetmem_rb_node *leftmost;
};

#define HETMEM_RB_ROOT_CACHED ((struct hetmem_rb_root_cached){ NULL, NULL })

struct hetmem_interval_tree_node {
	struct hetmem_rb_node rb;
	unsigned long start;		/* first address, inclusive */
	unsigned long last;		/* last address, inclusive */
	unsigned long subtree_last;	/* max(last) below this node */
};

HETMEM_API void hetmem_interval_tree_insert(struct hetmem_interval_tree_node *node,
					    struct hetmem_rb_root_cached *root);
HETMEM_API void hetmem_interval_tree_remove(struct hetmem_interval_tree_node *node,
					    struct hetmem_rb_root_cached *root);
HETMEM_API struct hetmem_interval_tree_node *
hetmem_interval_tree_iter_first(struct hetmem_rb_root_cached *root,
				unsigned long start, unsigned long last);
HETMEM_API struct hetmem_interval_tree_node *
hetmem_interval_tree_iter_next(struct hetmem_interval_tree_node *node,
			       unsigned long start, unsigned long last);

/**
 * hetmem_interval_tree_empty() - does the tree hold no interval?
 * @root: the tree
 *
 * Context: any; the caller serialises against changes.
 * Return: true when nothing is stored.
 */
static inline bool hetmem_interval_tree_empty(const struct hetmem_rb_root_cached *root)
{
	return root->root == NULL;
}

HETMEM_END_DECLS

#endif /* HETMEM_CORE_INTERVAL_TREE_H */
