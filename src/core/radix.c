/* SPDX-License-Identifier: MIT */
/*
 * hetmem - a radix tree of 64-bit entries indexed by page number.
 */
#include <errno.h>
#include <stdlib.h>

#include <hetmem/core/radix.h>

static void radix_count(uint64_t *ctr, int64_t n)
{
	if (ctr)
		__atomic_fetch_add(ctr, (uint64_t)n, __ATOMIC_RELAXED);
}

/**
 * DOC: Radix tree of page entries
 *
 * The kernel keeps per-page information in xarrays indexed by page
 * number; hetmem uses one fixed radix tree for the same jobs (the
 * reference device's page table, the device-private entries of an address
 * space). Four levels of 512 slots resolve a 36-bit page number (48-bit
 * addresses, the x86-64 and arm64 user address space with 4-level page
 * tables), and each leaf holds 512 non-zero 64-bit entries whose meaning
 * belongs to the user. A contiguous range costs a little over 8 bytes per
 * page (one 4 KiB leaf per 2 MiB, one directory per 1 GiB above that), and
 * a lookup is four dependent loads. The user serialises every call with a
 * lock of its own, except hetmem_radix_destroy().
 *
 * Every node counts its non-empty slots. Erasing never frees: erasures run
 * in invalidate callbacks and event handlers, on the address-space monitor
 * thread, and free() may hand heap memory back to the kernel with munmap()
 * or madvise(); if that memory is watched, the monitor would wait for an
 * event only it can read. An erase that empties a node just marks the
 * tree for pruning; hetmem_radix_prune() later unlinks the empty nodes
 * under the user's lock and hetmem_radix_free_nodes() frees them after it
 * is dropped. Only hetmem_radix_store() allocates.
 *
 * Page numbers at or above 2^36 (addresses beyond 48 bits, possible only
 * with 5-level page tables and an explicit mmap hint) cannot be stored.
 */

static unsigned int radix_index(unsigned long vpn, unsigned int level)
{
	return (vpn >> (HETMEM_RADIX_SHIFT * (HETMEM_RADIX_LEVELS - 1 - level))) & (HETMEM_RADIX_FANOUT - 1);
}

static struct hetmem_radix_node *radix_node_alloc(struct hetmem_radix *r)
{
	struct hetmem_radix_node *node = calloc(1, sizeof(*node));

	if (node)
		radix_count(r->bytes, (int64_t)sizeof(*node));
	return node;
}

/**
 * hetmem_radix_init() - set up an empty tree
 * @r: the table
 * @entries: counter of non-zero entries, or NULL
 * @bytes: counter of node memory, or NULL
 *
 * Context: any; allocates nothing.
 * Return: nothing.
 */
void hetmem_radix_init(struct hetmem_radix *r, uint64_t *entries, uint64_t *bytes)
{
	r->root = NULL;
	r->prune = false;
	r->entries = entries;
	r->bytes = bytes;
}

/**
 * hetmem_radix_leaf() - the leaf that holds the entry of a page
 * @r: the table
 * @vpn: virtual page number
 * @next: set to the first page number after the leaf, or after the
 *	missing subtree when there is no leaf
 *
 * Walks that skip absent subtrees use @next, so erasing the whole address
 * space costs as many steps as there are nodes.
 *
 * Context: the tree's lock is held.
 * Return: the leaf, or NULL when no entry of that leaf's range exists.
 */
struct hetmem_radix_node *hetmem_radix_leaf(const struct hetmem_radix *r, unsigned long vpn,
			  unsigned long *next)
{
	struct hetmem_radix_node *node = r->root;
	unsigned int level = 0, shift;

	if (vpn >= HETMEM_RADIX_LIMIT) {
		*next = vpn + 1;
		return NULL;
	}
	while (node && level < HETMEM_RADIX_LEVELS - 1)
		node = node->child[radix_index(vpn, level++)];
	/* The node we looked for (present or not) spans 2^shift pages. */
	shift = HETMEM_RADIX_SHIFT * (HETMEM_RADIX_LEVELS - level);
	*next = ((vpn >> shift) + 1) << shift;
	return node;
}

/**
 * hetmem_radix_lookup() - the entry of a page
 * @r: the table
 * @vpn: virtual page number
 *
 * Context: the tree's lock is held.
 * Return: the entry, 0 when there is none for @vpn.
 */
uint64_t hetmem_radix_lookup(const struct hetmem_radix *r, unsigned long vpn)
{
	unsigned long next;
	struct hetmem_radix_node *leaf = hetmem_radix_leaf(r, vpn, &next);

	return leaf ? leaf->entry[vpn & (HETMEM_RADIX_FANOUT - 1)] : 0;
}

/**
 * hetmem_radix_store() - set the entry of a page, allocating the path to it
 * @r: the table
 * @vpn: virtual page number
 * @entry: a non-zero entry from hetmem_radix_entry()
 *
 * Context: the tree's lock is held; allocates, so not on the monitor
 * thread unless the caller accepts that malloc() may map memory.
 * Return: 0; -ENOMEM when a node cannot be allocated (nodes allocated on
 * the way stay, empty, until the next prune); -EFAULT when @vpn is beyond
 * the 48-bit range the table covers.
 */
int hetmem_radix_store(struct hetmem_radix *r, unsigned long vpn, uint64_t entry)
{
	struct hetmem_radix_node **slot = &r->root, *node = NULL;
	unsigned int level;

	if (vpn >= HETMEM_RADIX_LIMIT)
		return -EFAULT;
	for (level = 0; level < HETMEM_RADIX_LEVELS; level++) {
		if (!*slot) {
			*slot = radix_node_alloc(r);
			if (!*slot) {
				r->prune = true;
				return -ENOMEM;
			}
			if (node)
				node->used++;
		}
		node = *slot;
		if (level < HETMEM_RADIX_LEVELS - 1)
			slot = &node->child[radix_index(vpn, level)];
	}
	if (!node->entry[vpn & (HETMEM_RADIX_FANOUT - 1)]) {
		node->used++;
		radix_count(r->entries, 1);
	}
	node->entry[vpn & (HETMEM_RADIX_FANOUT - 1)] = entry;
	return 0;
}

/* Clear [first, last] inside one leaf; returns the entries cleared. */
static unsigned long radix_erase_leaf(struct hetmem_radix *r, struct hetmem_radix_node *leaf,
				    unsigned long first, unsigned long last)
{
	unsigned int i = first & (HETMEM_RADIX_FANOUT - 1);
	unsigned int end = (last & (HETMEM_RADIX_FANOUT - 1)) + 1;
	unsigned long n = 0;

	for (; i < end && leaf->used; i++) {
		if (!leaf->entry[i])
			continue;
		leaf->entry[i] = 0;
		leaf->used--;
		n++;
	}
	if (!leaf->used)
		r->prune = true;
	return n;
}

/**
 * hetmem_radix_erase_range() - clear the entries of a range of pages
 * @r: the table
 * @first: first virtual page number
 * @last: last virtual page number, inclusive
 *
 * Frees nothing (see "Device page table"), so it is safe in the
 * invalidate callback.
 *
 * Context: the tree's lock is held; any thread, including the monitor.
 * Return: the number of entries that were cleared.
 */
unsigned long hetmem_radix_erase_range(struct hetmem_radix *r, unsigned long first,
			      unsigned long last)
{
	unsigned long vpn = first, next, n = 0;
	struct hetmem_radix_node *leaf;

	if (last >= HETMEM_RADIX_LIMIT)
		last = HETMEM_RADIX_LIMIT - 1;
	while (vpn <= last) {
		leaf = hetmem_radix_leaf(r, vpn, &next);
		if (leaf)
			n += radix_erase_leaf(r, leaf, vpn,
					    next - 1 < last ? next - 1 : last);
		vpn = next;
	}
	if (n)
		radix_count(r->entries, -(int64_t)n);
	return n;
}

/* Unlink the empty nodes below @node onto @list; true if @node is empty. */
static bool radix_prune_node(struct hetmem_radix_node *node, unsigned int level,
			   struct hetmem_radix_node **list)
{
	unsigned int i;

	for (i = 0; level < HETMEM_RADIX_LEVELS - 1 && i < HETMEM_RADIX_FANOUT; i++) {
		if (node->child[i] && radix_prune_node(node->child[i], level + 1, list)) {
			node->child[i] = NULL;
			node->used--;
		}
	}
	if (node->used)
		return false;
	/* An empty node's slots are all zero: reuse the first as the link. */
	node->child[0] = *list;
	*list = node;
	return true;
}

/**
 * hetmem_radix_prune() - unlink the nodes that erasures emptied
 * @r: the table
 *
 * Context: the tree's lock is held. Frees nothing: the
 * caller passes the result to hetmem_radix_free_nodes() after unlocking.
 * Return: a list of unlinked nodes, NULL when there is none.
 */
struct hetmem_radix_node *hetmem_radix_prune(struct hetmem_radix *r)
{
	struct hetmem_radix_node *list = NULL;

	if (!r->prune || !r->root)
		return NULL;
	r->prune = false;
	if (radix_prune_node(r->root, 0, &list))
		r->root = NULL;
	return list;
}

/**
 * hetmem_radix_free_nodes() - free nodes that hetmem_radix_prune() unlinked
 * @r: the table they came from
 * @list: the list, may be NULL
 *
 * Context: without the tree's lock, not on the monitor thread (free()
 * may unmap).
 * Return: nothing.
 */
void hetmem_radix_free_nodes(struct hetmem_radix *r, struct hetmem_radix_node *list)
{
	struct hetmem_radix_node *next;

	for (; list; list = next) {
		next = list->child[0];
		free(list);
		radix_count(r->bytes, -(int64_t)sizeof(*list));
	}
}

static void radix_free_subtree(struct hetmem_radix *r, struct hetmem_radix_node *node,
			     unsigned int level)
{
	unsigned int i;

	for (i = 0; level < HETMEM_RADIX_LEVELS - 1 && i < HETMEM_RADIX_FANOUT; i++) {
		if (node->child[i])
			radix_free_subtree(r, node->child[i], level + 1);
	}
	if (level == HETMEM_RADIX_LEVELS - 1 && node->used)
		radix_count(r->entries, -(int64_t)node->used);
	free(node);
	radix_count(r->bytes, -(int64_t)sizeof(*node));
}

/**
 * hetmem_radix_destroy() - free the whole table
 * @r: the table; nothing else may use it any more
 *
 * Context: nothing else uses the tree; not on the monitor thread.
 * Return: nothing.
 */
void hetmem_radix_destroy(struct hetmem_radix *r)
{
	if (r->root)
		radix_free_subtree(r, r->root, 0);
	r->root = NULL;
	r->prune = false;
}

/**
 * hetmem_radix_next() - the next non-zero entry in a range
 * @r: the tree
 * @vpn: in: where to start; out: the page number of the entry found
 * @last: last page number to look at, inclusive
 *
 * Skips absent subtrees, so walking a sparse range costs about as many
 * steps as there are entries and nodes.
 *
 * Context: the tree's lock is held.
 * Return: the entry, 0 when there is none in [*@vpn, @last].
 */
uint64_t hetmem_radix_next(const struct hetmem_radix *r, unsigned long *vpn,
			   unsigned long last)
{
	unsigned long pos = *vpn, next;
	struct hetmem_radix_node *leaf;

	if (last >= HETMEM_RADIX_LIMIT)
		last = HETMEM_RADIX_LIMIT - 1;
	while (pos <= last) {
		leaf = hetmem_radix_leaf(r, pos, &next);
		for (; leaf && leaf->used && pos < next && pos <= last; pos++) {
			uint64_t e = leaf->entry[pos & (HETMEM_RADIX_FANOUT - 1)];

			if (e) {
				*vpn = pos;
				return e;
			}
		}
		pos = next;
	}
	return 0;
}
