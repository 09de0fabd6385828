/* SPDX-License-Identifier: MIT */
/*
 * hetmem - interval trees on an augmented red-black tree.
 */

/**
 * DOC: Interval tree design
 *
 * The tree is a red-black tree whose in-order sequence is sorted by start.
 * Equal starts are allowed: a new node goes after every node with the same
 * start, so identical intervals may be stored any number of times. Each
 * node also carries subtree_last, the largest "last" found in the subtree
 * it roots. That one number is what makes overlap queries fast: a subtree
 * whose subtree_last is below the query's start cannot hold an overlapping
 * interval and is skipped whole, and because the sequence is sorted by
 * start, the walk stops at the first node that starts after the query's
 * last.
 *
 * subtree_last is kept exact by every change of shape. Insertion raises it
 * on the way down, since the new node lands below every node it passes. A
 * rotation moves one node above another without changing the set of nodes
 * below the pair, so the node that rises inherits the old top value and
 * only the one that sinks is recomputed. Removal recomputes every node from
 * the point where the tree changed up to the root, before rebalancing; the
 * rebalancing rotations then keep it exact by the same rule as above.
 *
 * Colour and parent share one word (hetmem_rb_node.parent_color): nodes are
 * at least 4-byte aligned, so bit 0 is free and holds the colour, set for
 * black. An absent child counts as black. The cached leftmost node answers
 * "first in order" without a walk and lets a query give up at once when
 * even the smallest start lies beyond it.
 *
 * Rebalancing is written once for both sides: a direction index picks the
 * left or right child, and every mirror-image case is the same code with
 * the index flipped. Nothing recurses and nothing allocates.
 */

#include <hetmem/core/interval_tree.h>

#include "core/internal.h"

#define RB_BLACK	1ul
#define RB_FLAGS	3ul
#define RB_LEFT		0
#define RB_RIGHT	1


/* --- colour, parent and children ---------------------------------------- */

static inline struct hetmem_rb_node *rb_parent(const struct hetmem_rb_node *n)
{
	return (struct hetmem_rb_node *)(n->parent_color & ~RB_FLAGS);
}

static inline bool rb_is_black(const struct hetmem_rb_node *n)
{
	return !n || (n->parent_color & RB_BLACK);
}

static inline bool rb_is_red(const struct hetmem_rb_node *n)
{
	return !rb_is_black(n);
}

static inline void rb_set_parent(struct hetmem_rb_node *n,
				 struct hetmem_rb_node *parent)
{
	n->parent_color = (unsigned long)parent | (n->parent_color & RB_BLACK);
}

static inline void rb_set_black(struct hetmem_rb_node *n)
{
	n->parent_color |= RB_BLACK;
}

static inline void rb_set_red(struct hetmem_rb_node *n)
{
	n->parent_color &= ~RB_BLACK;
}

static inline void rb_copy_color(struct hetmem_rb_node *n,
				 const struct hetmem_rb_node *from)
{
	n->parent_color = (n->parent_color & ~RB_BLACK) |
			  (from->parent_color & RB_BLACK);
}

/* The child slot on side @dir (RB_LEFT or RB_RIGHT). */
static inline struct hetmem_rb_node **rb_link(struct hetmem_rb_node *n, int dir)
{
	return dir == RB_RIGHT ? &n->right : &n->left;
}

/* Which side of its parent @n hangs on; @n must have a parent. */
static inline int rb_side(const struct hetmem_rb_node *n)
{
	return rb_parent(n)->right == n ? RB_RIGHT : RB_LEFT;
}

/* Make @new take @old's place under @parent, or as the root. */
static void rb_replace_child(struct hetmem_rb_root_cached *root,
			     struct hetmem_rb_node *parent,
			     struct hetmem_rb_node *old,
			     struct hetmem_rb_node *new)
{
	if (!parent)
		root->root = new;
	else if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
}

static struct hetmem_rb_node *rb_first(struct hetmem_rb_node *n)
{
	while (n->left)
		n = n->left;
	return n;
}

/* In-order successor of @n, or NULL. */
static struct hetmem_rb_node *rb_next(struct hetmem_rb_node *n)
{
	struct hetmem_rb_node *parent;

	if (n->right)
		return rb_first(n->right);
	while ((parent = rb_parent(n)) && n == parent->right)
		n = parent;
	return parent;
}

/* --- augmentation ------------------------------------------------------- */

static inline struct hetmem_interval_tree_node *
it_of(const struct hetmem_rb_node *rb)
{
	return hetmem_container_of(rb, struct hetmem_interval_tree_node, rb);
}

/* subtree_last of the subtree at @rb; 0 (the neutral value) when empty. */
static inline unsigned long it_sub_last(const struct hetmem_rb_node *rb)
{
	return rb ? it_of(rb)->subtree_last : 0;
}

/* subtree_last of @rb from its own last and its children's values. */
static unsigned long it_compute(const struct hetmem_rb_node *rb)
{
	unsigned long m = it_of(rb)->last;
	unsigned long l = it_sub_last(rb->left), r = it_sub_last(rb->right);

	if (l > m)
		m = l;
	return r > m ? r : m;
}

/* Recompute subtree_last on the whole path from @rb up to the root. */
static void it_propagate(struct hetmem_rb_node *rb)
{
	for (; rb; rb = rb_parent(rb))
		it_of(rb)->subtree_last = it_compute(rb);
}

/* --- rotations and rebalancing ------------------------------------------ */

/*
 * Rotate @x down towards side @dir; its child on the other side rises into
 * its place. Colours are left to the caller.
 */
static void rb_rotate(struct hetmem_rb_root_cached *root,
		      struct hetmem_rb_node *x, int dir)
{
	struct hetmem_rb_node *y = *rb_link(x, !dir), *parent = rb_parent(x);
	struct hetmem_rb_node *mid = *rb_link(y, dir);

	*rb_link(x, !dir) = mid;
	if (mid)
		rb_set_parent(mid, x);
	*rb_link(y, dir) = x;
	rb_set_parent(x, y);
	rb_set_parent(y, parent);
	rb_replace_child(root, parent, x, y);
	/* The pair spans the same nodes as before: @y inherits the total. */
	it_of(y)->subtree_last = it_of(x)->subtree_last;
	it_of(x)->subtree_last = it_compute(x);
}

/* Restore the colour rules after linking the red node @n. */
static void rb_insert_fixup(struct hetmem_rb_root_cached *root,
			    struct hetmem_rb_node *n)
{
	struct hetmem_rb_node *p, *g, *uncle;
	int dir;

	while ((p = rb_parent(n)) && rb_is_red(p)) {
		g = rb_parent(p);	/* a red node is never the root */
		dir = rb_side(p);
		uncle = *rb_link(g, !dir);
		if (rb_is_red(uncle)) {
			/* Push the red up two levels and look again there. */
			rb_set_black(p);
			rb_set_black(uncle);
			rb_set_red(g);
			n = g;
			continue;
		}
		if (n == *rb_link(p, !dir)) {
			/* Inner grandchild: turn it into the outer one. */
			rb_rotate(root, p, dir);
			p = n;
		}
		rb_set_black(p);
		rb_set_red(g);
		rb_rotate(root, g, !dir);
		return;
	}
	rb_set_black(root->root);
}

/*
 * The subtree on side @dir of @parent is one black node short and its top
 * is black. Fix it using the sibling subtree. Returns true when the
 * shortage is gone, false when it has moved up to @parent's own subtree.
 */
static bool rb_erase_fix_sibling(struct hetmem_rb_root_cached *root,
				 struct hetmem_rb_node *parent, int dir)
{
	struct hetmem_rb_node *sib = *rb_link(parent, !dir), *near, *far;

	if (rb_is_red(sib)) {
		/* Make the sibling black; @parent turns red and sinks. */
		rb_set_black(sib);
		rb_set_red(parent);
		rb_rotate(root, parent, dir);
		sib = *rb_link(parent, !dir);
	}
	near = *rb_link(sib, dir);
	far = *rb_link(sib, !dir);
	if (rb_is_black(near) && rb_is_black(far)) {
		rb_set_red(sib);	/* both sides short now: move up */
		return false;
	}
	if (rb_is_black(far)) {
		/*
		 * Bring the red nephew to the far side; it becomes the
		 * sibling and takes @parent's colour below.
		 */
		rb_set_red(sib);
		rb_rotate(root, sib, !dir);
		far = sib;
		sib = near;
	}
	rb_copy_color(sib, parent);
	rb_set_black(parent);
	rb_set_black(far);
	rb_rotate(root, parent, dir);
	return true;
}

/* A black node was taken out of side @dir of @parent: rebalance. */
static void rb_erase_fixup(struct hetmem_rb_root_cached *root,
			   struct hetmem_rb_node *parent, int dir)
{
	struct hetmem_rb_node *x;

	for (;;) {
		x = *rb_link(parent, dir);
		if (rb_is_red(x)) {
			rb_set_black(x);	/* absorbs the missing black */
			return;
		}
		if (rb_erase_fix_sibling(root, parent, dir))
			return;
		x = parent;
		parent = rb_parent(x);
		if (!parent)
			return;	/* the whole tree lost one level */
		dir = rb_side(x);
	}
}

/* --- linking and unlinking ---------------------------------------------- */

/* Attach @node as a red leaf in start order, raising subtree_last en route. */
static void it_link(struct hetmem_interval_tree_node *node,
		    struct hetmem_rb_root_cached *root)
{
	struct hetmem_rb_node **link = &root->root, *parent = NULL;
	bool leftmost = true;
	struct hetmem_interval_tree_node *p;

	while (*link) {
		parent = *link;
		p = it_of(parent);
		if (p->subtree_last < node->last)
			p->subtree_last = node->last;
		if (node->start < p->start) {
			link = &parent->left;
		} else {
			link = &parent->right;
			leftmost = false;
		}
	}
	node->subtree_last = node->last;
	node->rb.left = node->rb.right = NULL;
	node->rb.parent_color = (unsigned long)parent;	/* red */
	*link = &node->rb;
	if (leftmost)
		root->leftmost = &node->rb;
}

/*
 * Unlink @z, which has at most one child; the child takes its place.
 * Reports where the hole is (@parent, side @dir) and whether a black node
 * left the tree.
 */
static bool rb_unlink_simple(struct hetmem_rb_root_cached *root,
			     struct hetmem_rb_node *z,
			     struct hetmem_rb_node **parent, int *dir)
{
	struct hetmem_rb_node *child = z->left ? z->left : z->right;

	*parent = rb_parent(z);
	*dir = *parent ? rb_side(z) : RB_LEFT;
	rb_replace_child(root, *parent, z, child);
	if (child)
		rb_set_parent(child, *parent);
	return rb_is_black(z);
}

/*
 * Unlink @z, which has two children, by moving its in-order successor @y
 * (leftmost of the right subtree, no left child) into its place with its
 * colour. The node that left a hole is @y's old position.
 */
static bool rb_unlink_swap(struct hetmem_rb_root_cached *root,
			   struct hetmem_rb_node *z,
			   struct hetmem_rb_node **parent, int *dir)
{
	struct hetmem_rb_node *y = rb_first(z->right), *x = y->right;
	bool black = rb_is_black(y);

	if (rb_parent(y) == z) {
		*parent = y;
		*dir = RB_RIGHT;
	} else {
		*parent = rb_parent(y);
		*dir = RB_LEFT;
		(*parent)->left = x;
		if (x)
			rb_set_parent(x, *parent);
		y->right = z->right;
		rb_set_parent(z->right, y);
	}
	y->left = z->left;
	rb_set_parent(z->left, y);
	rb_replace_child(root, rb_parent(z), z, y);
	y->parent_color = z->parent_color;	/* same parent, same colour */
	return black;
}

static void rb_erase(struct hetmem_rb_root_cached *root,
		     struct hetmem_rb_node *z)
{
	struct hetmem_rb_node *parent;
	bool black;
	int dir;

	if (z->left && z->right)
		black = rb_unlink_swap(root, z, &parent, &dir);
	else
		black = rb_unlink_simple(root, z, &parent, &dir);
	it_propagate(parent);
	if (!parent) {
		/* The root went; a lone child left behind is red: recolour. */
		if (root->root)
			rb_set_black(root->root);
	} else if (black) {
		rb_erase_fixup(root, parent, dir);
	}
}

/* --- queries ------------------------------------------------------------ */

/*
 * First node in order within the subtree at @node that overlaps
 * [@start, @last], given that @node->subtree_last >= @start. The first
 * node whose last reaches @start is the only candidate: nodes before it end
 * too early, and if it starts too late so does every node after it.
 */
static struct hetmem_interval_tree_node *
it_subtree_search(struct hetmem_interval_tree_node *node, unsigned long start,
		  unsigned long last)
{
	for (;;) {
		if (node->rb.left && it_sub_last(node->rb.left) >= start) {
			node = it_of(node->rb.left);
			continue;
		}
		if (node->start > last)
			return NULL;
		if (node->last >= start)
			return node;
		if (!node->rb.right || it_sub_last(node->rb.right) < start)
			return NULL;
		node = it_of(node->rb.right);
	}
}

/* The in-order successor of @node found by climbing; NULL at the end. */
static struct hetmem_interval_tree_node *
it_climb(struct hetmem_interval_tree_node *node)
{
	struct hetmem_rb_node *prev, *rb = &node->rb;

	do {
		prev = rb;
		rb = rb_parent(prev);
	} while (rb && prev == rb->right);
	return rb ? it_of(rb) : NULL;
}

/**
 * hetmem_interval_tree_insert() - add an interval to a tree
 * @node: the interval, with start and last set (start <= last); not in any
 *	tree
 * @root: the tree
 *
 * Links @node in start order, after every stored node with the same start,
 * and rebalances. The same interval may be stored any number of times
 * through distinct nodes. subtree_last of @node and its ancestors and the
 * cached leftmost node are updated. Nothing is allocated, so insertion
 * cannot fail; it is O(log n).
 *
 * Context: Any thread; never blocks. The caller serialises every change
 * and lookup of @root.
 * Return: nothing.
 */
HETMEM_API void
hetmem_interval_tree_insert(struct hetmem_interval_tree_node *node,
			    struct hetmem_rb_root_cached *root)
{
	it_link(node, root);
	rb_insert_fixup(root, &node->rb);
}

/**
 * hetmem_interval_tree_remove() - take an interval out of a tree
 * @node: the interval, currently stored in @root
 * @root: the tree
 *
 * Unlinks @node and rebalances, keeping subtree_last and the cached
 * leftmost node exact. @node itself is not freed or cleared; once removed
 * it may be changed and inserted again. Removing a node that is not in
 * @root corrupts the tree. O(log n).
 *
 * Context: Any thread; never blocks. The caller serialises every change
 * and lookup of @root.
 * Return: nothing.
 */
HETMEM_API void
hetmem_interval_tree_remove(struct hetmem_interval_tree_node *node,
			    struct hetmem_rb_root_cached *root)
{
	if (root->leftmost == &node->rb)
		root->leftmost = rb_next(&node->rb);
	rb_erase(root, &node->rb);
}

/**
 * hetmem_interval_tree_iter_first() - first interval overlapping a range
 * @root: the tree
 * @start: first address of the query, inclusive
 * @last: last address of the query, inclusive (may be ULONG_MAX)
 *
 * A stored interval overlaps the query when it starts at or before @last
 * and ends at or after @start. Of all such intervals, the one first in
 * start order is returned; hetmem_interval_tree_iter_next() with the same
 * bounds continues from it. Subtrees that end before @start are skipped
 * and the search stops at the first node starting after @last, so this is
 * O(log n). A query with @start > @last matches nothing.
 *
 * Context: Any thread; never blocks. The caller keeps @root unchanged
 * while it iterates.
 * Return: the first overlapping node, or NULL if none overlaps.
 */
HETMEM_API struct hetmem_interval_tree_node *
hetmem_interval_tree_iter_first(struct hetmem_rb_root_cached *root,
				unsigned long start, unsigned long last)
{
	struct hetmem_interval_tree_node *top;

	if (!root->root || start > last)
		return NULL;
	top = it_of(root->root);
	if (top->subtree_last < start || it_of(root->leftmost)->start > last)
		return NULL;
	return it_subtree_search(top, start, last);
}

/**
 * hetmem_interval_tree_iter_next() - next interval overlapping a range
 * @node: an overlapping node returned by hetmem_interval_tree_iter_first()
 *	or by this function, for the same @start and @last
 * @start: first address of the query, inclusive
 * @last: last address of the query, inclusive
 *
 * Continues in start order from @node: first through @node's right
 * subtree, then through the ancestors that follow it, skipping subtrees
 * that end before @start and stopping at the first node that starts after
 * @last. A whole iteration costs O(log n + k) for k matches. Nodes with
 * equal starts come back in their order in the tree, which is the order
 * they were inserted in.
 *
 * Context: Any thread; never blocks. The caller keeps the tree unchanged
 * while it iterates (removing @node itself before this call is not
 * allowed either).
 * Return: the next overlapping node, or NULL when there are no more.
 */
HETMEM_API struct hetmem_interval_tree_node *
hetmem_interval_tree_iter_next(struct hetmem_interval_tree_node *node,
			       unsigned long start, unsigned long last)
{
	struct hetmem_rb_node *right = node->rb.right;

	for (;;) {
		if (right && it_sub_last(right) >= start)
			return it_subtree_search(it_of(right), start, last);
		node = it_climb(node);
		if (!node || node->start > last)
			return NULL;
		if (node->last >= start)
			return node;
		right = node->rb.right;
	}
}
