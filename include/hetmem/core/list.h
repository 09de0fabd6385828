/* SPDX-License-Identifier: MIT */
/*
 * hetmem - intrusive doubly linked lists.
 */
#ifndef HETMEM_CORE_LIST_H
#define HETMEM_CORE_LIST_H

#include <stdbool.h>
#include <hetmem/core/compiler.h>

/**
 * DOC: Intrusive lists
 *
 * The kernel's circular list, spelled with a hetmem_ prefix so that the
 * installed headers never define "struct list_head": Mesa and libdrm each
 * ship their own, incompatible one. <hetmem/linux/compat.h> maps the kernel
 * spelling onto these for code ported from a driver.
 *
 * A node that is not on any list points to itself (hetmem_list_empty() on
 * the node is true); hetmem_list_del_init() restores that state so that
 * "is this callback still queued" can be answered from the node alone.
 */
struct hetmem_list_head {
	struct hetmem_list_head *next, *prev;
};

#define HETMEM_LIST_HEAD_INIT(name) { &(name), &(name) }

static inline void hetmem_list_init(struct hetmem_list_head *head)
{
	head->next = head;
	head->prev = head;
}

static inline bool hetmem_list_empty(const struct hetmem_list_head *head)
{
	return head->next == head;
}

static inline void hetmem_list_link(struct hetmem_list_head *node,
				    struct hetmem_list_head *prev,
				    struct hetmem_list_head *next)
{
	next->prev = node;
	node->next = next;
	node->prev = prev;
	prev->next = node;
}

static inline void hetmem_list_add(struct hetmem_list_head *node,
				   struct hetmem_list_head *head)
{
	hetmem_list_link(node, head, head->next);
}

static inline void hetmem_list_add_tail(struct hetmem_list_head *node,
					struct hetmem_list_head *head)
{
	hetmem_list_link(node, head->prev, head);
}

static inline void hetmem_list_del_init(struct hetmem_list_head *node)
{
	node->next->prev = node->prev;
	node->prev->next = node->next;
	hetmem_list_init(node);
}

/* Move every node of @from onto the empty @to, leaving @from empty. */
static inline void hetmem_list_replace_init(struct hetmem_list_head *from,
					    struct hetmem_list_head *to)
{
	if (hetmem_list_empty(from)) {
		hetmem_list_init(to);
		return;
	}
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	hetmem_list_init(from);
}

#define hetmem_list_entry(ptr, type, member) \
	hetmem_container_of(ptr, type, member)

#define hetmem_list_first_entry(head, type, member) \
	hetmem_list_entry((head)->next, type, member)

#define hetmem_list_for_each_safe(pos, n, head) \
	for (pos = (head)->next, n = pos->next; pos != (head); \
	     pos = n, n = pos->next)

#endif /* HETMEM_CORE_LIST_H */
