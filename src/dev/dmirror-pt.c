/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror: the device page table.
 */
#include <errno.h>
#include <stdlib.h>

#include "dmirror-priv.h"

/**
 * DOC: Device page table
 *
 * The kernel's test device keeps its translations in an xarray indexed by
 * virtual page number. hetmem's device uses a fixed radix tree instead:
 * four levels of 512 slots resolve a 36-bit virtual page number (48-bit
 * addresses, the x86-64 and arm64 user address space with 4-level page
 * tables), and each leaf holds 512 64-bit entries, (pfn << 2) | tag. A
 * contiguous mirrored range therefore costs a little over 8 bytes per page
 * (one 4 KiB leaf per 2 MiB, one directory per 1 GiB above that), and a
 * lookup is four dependent loads with no locking beyond the mirror's user
 * lock, which serialises every function here except dpt_destroy().
 *
 * Every node counts its non-empty slots. Erasing never frees: the erase
 * runs in the invalidate callback, on the address-space monitor thread,
 * and free() may hand heap memory back to the kernel with munmap() or
 * madvise(); if that memory is watched, the monitor would wait for an
 * event only it can read. An erase that empties a node just marks the
 * table for pruning, and the next command unlinks the empty nodes under
 * the user lock (dpt_prune()) and frees them after dropping it
 * (dpt_free_nodes()). Nodes are allocated only by dpt_store(), which only
 * commands call.
 *
 * Addresses at or above 2^48 (possible only with 5-level page tables and
 * an explicit mmap hint) cannot be stored; a fault round that meets one
 * fails with -EFAULT.
 */

static unsigned int dpt_index(unsigned long vpn, unsigned int level)
{
	return (vpn >> (DPT_SHIFT * (DPT_LEVELS - 1 - level))) & (DPT_FANOUT - 1);
}

static struct dpt_node *dpt_node_alloc(struct dpt *pt)
{
	struct dpt_node *node = calloc(1, sizeof(*node));

	if (node)
		dmirror_count_add(pt->stats, table_bytes, sizeof(*node));
	return node;
}

/**
 * dpt_init() - set up an empty device page table
 * @pt: the table
 * @stats: device counters that follow the table's entries and memory
 *
 * Context: any; allocates nothing.
 * Return: nothing.
 */
void dpt_init(struct dpt *pt, struct dmirror_counters *stats)
{
	pt->root = NULL;
	pt->prune = false;
	pt->stats = stats;
}

/**
 * dpt_leaf() - the leaf that holds the entry of a page
 * @pt: the table
 * @vpn: virtual page number
 * @next: set to the first page number after the leaf, or after the
 *	missing subtree when there is no leaf
 *
 * Walks that skip absent subtrees use @next, so erasing the whole address
 * space costs as many steps as there are nodes.
 *
 * Context: the user lock is held.
 * Return: the leaf, or NULL when no entry of that leaf's range exists.
 */
struct dpt_node *dpt_leaf(const struct dpt *pt, unsigned long vpn,
			  unsigned long *next)
{
	struct dpt_node *node = pt->root;
	unsigned int level = 0, shift;

	if (vpn >= DPT_VPN_LIMIT) {
		*next = vpn + 1;
		return NULL;
	}
	while (node && level < DPT_LEVELS - 1)
		node = node->child[dpt_index(vpn, level++)];
	/* The node we looked for (present or not) spans 2^shift pages. */
	shift = DPT_SHIFT * (DPT_LEVELS - level);
	*next = ((vpn >> shift) + 1) << shift;
	return node;
}

/**
 * dpt_lookup() - the entry of a page
 * @pt: the table
 * @vpn: virtual page number
 *
 * Context: the user lock is held.
 * Return: the entry, 0 when the device has no translation for @vpn.
 */
uint64_t dpt_lookup(const struct dpt *pt, unsigned long vpn)
{
	unsigned long next;
	struct dpt_node *leaf = dpt_leaf(pt, vpn, &next);

	return leaf ? leaf->entry[vpn & (DPT_FANOUT - 1)] : 0;
}

/**
 * dpt_store() - set the entry of a page, allocating the path to it
 * @pt: the table
 * @vpn: virtual page number
 * @entry: a non-zero entry from dpt_entry()
 *
 * Context: the user lock is held; command context only (allocates).
 * Return: 0; -ENOMEM when a node cannot be allocated (nodes allocated on
 * the way stay, empty, until the next prune); -EFAULT when @vpn is beyond
 * the 48-bit range the table covers.
 */
int dpt_store(struct dpt *pt, unsigned long vpn, uint64_t entry)
{
	struct dpt_node **slot = &pt->root, *node = NULL;
	unsigned int level;

	if (vpn >= DPT_VPN_LIMIT)
		return -EFAULT;
	for (level = 0; level < DPT_LEVELS; level++) {
		if (!*slot) {
			*slot = dpt_node_alloc(pt);
			if (!*slot) {
				pt->prune = true;
				return -ENOMEM;
			}
			if (node)
				node->used++;
		}
		node = *slot;
		if (level < DPT_LEVELS - 1)
			slot = &node->child[dpt_index(vpn, level)];
	}
	if (!node->entry[vpn & (DPT_FANOUT - 1)]) {
		node->used++;
		dmirror_count_add(pt->stats, mirrored_pages, 1);
	}
	node->entry[vpn & (DPT_FANOUT - 1)] = entry;
	return 0;
}

/* Clear [first, last] inside one leaf; returns the entries cleared. */
static unsigned long dpt_erase_leaf(struct dpt *pt, struct dpt_node *leaf,
				    unsigned long first, unsigned long last)
{
	unsigned int i = first & (DPT_FANOUT - 1);
	unsigned int end = (last & (DPT_FANOUT - 1)) + 1;
	unsigned long n = 0;

	for (; i < end && leaf->used; i++) {
		if (!leaf->entry[i])
			continue;
		leaf->entry[i] = 0;
		leaf->used--;
		n++;
	}
	if (!leaf->used)
		pt->prune = true;
	return n;
}

/**
 * dpt_erase_range() - drop the translations of a range of pages
 * @pt: the table
 * @first: first virtual page number
 * @last: last virtual page number, inclusive
 *
 * Frees nothing (see "Device page table"), so it is safe in the
 * invalidate callback.
 *
 * Context: the user lock is held; any thread, including the monitor.
 * Return: the number of entries that were cleared.
 */
unsigned long dpt_erase_range(struct dpt *pt, unsigned long first,
			      unsigned long last)
{
	unsigned long vpn = first, next, n = 0;
	struct dpt_node *leaf;

	if (last >= DPT_VPN_LIMIT)
		last = DPT_VPN_LIMIT - 1;
	while (vpn <= last) {
		leaf = dpt_leaf(pt, vpn, &next);
		if (leaf)
			n += dpt_erase_leaf(pt, leaf, vpn,
					    next - 1 < last ? next - 1 : last);
		vpn = next;
	}
	if (n)
		dmirror_count_sub(pt->stats, mirrored_pages, n);
	return n;
}

/* Unlink the empty nodes below @node onto @list; true if @node is empty. */
static bool dpt_prune_node(struct dpt_node *node, unsigned int level,
			   struct dpt_node **list)
{
	unsigned int i;

	for (i = 0; level < DPT_LEVELS - 1 && i < DPT_FANOUT; i++) {
		if (node->child[i] && dpt_prune_node(node->child[i], level + 1, list)) {
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
 * dpt_prune() - unlink the nodes that erasures emptied
 * @pt: the table
 *
 * Context: the user lock is held; command context. Frees nothing: the
 * caller passes the result to dpt_free_nodes() after unlocking.
 * Return: a list of unlinked nodes, NULL when there is none.
 */
struct dpt_node *dpt_prune(struct dpt *pt)
{
	struct dpt_node *list = NULL;

	if (!pt->prune || !pt->root)
		return NULL;
	pt->prune = false;
	if (dpt_prune_node(pt->root, 0, &list))
		pt->root = NULL;
	return list;
}

/**
 * dpt_free_nodes() - free nodes that dpt_prune() unlinked
 * @pt: the table they came from
 * @list: the list, may be NULL
 *
 * Context: command context, without the user lock (free() may unmap).
 * Return: nothing.
 */
void dpt_free_nodes(struct dpt *pt, struct dpt_node *list)
{
	struct dpt_node *next;

	for (; list; list = next) {
		next = list->child[0];
		free(list);
		dmirror_count_sub(pt->stats, table_bytes, sizeof(*list));
	}
}

static void dpt_free_subtree(struct dpt *pt, struct dpt_node *node,
			     unsigned int level)
{
	unsigned int i;

	for (i = 0; level < DPT_LEVELS - 1 && i < DPT_FANOUT; i++) {
		if (node->child[i])
			dpt_free_subtree(pt, node->child[i], level + 1);
	}
	if (level == DPT_LEVELS - 1 && node->used)
		dmirror_count_sub(pt->stats, mirrored_pages, node->used);
	free(node);
	dmirror_count_sub(pt->stats, table_bytes, sizeof(*node));
}

/**
 * dpt_destroy() - free the whole table
 * @pt: the table; nothing else may use it any more
 *
 * Context: command context (close), after the notifier is removed.
 * Return: nothing.
 */
void dpt_destroy(struct dpt *pt)
{
	if (pt->root)
		dpt_free_subtree(pt, pt->root, 0);
	pt->root = NULL;
	pt->prune = false;
}
