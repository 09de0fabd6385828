/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the interval tree: edge cases, and a randomised
 * comparison against a brute-force list with the red-black and subtree_last
 * invariants checked after every batch of changes.
 */
#include <limits.h>

#include <hetmem/core/interval_tree.h>

#include "harness.h"

#define POOL		512
#define ROUNDS		300
#define OPS_PER_ROUND	64
#define QUERIES		40

/*
 * A pool of nodes, each either in the tree or not. The brute-force model
 * is simply "every pool node marked present".
 */
struct model {
	struct hetmem_rb_root_cached root;
	struct hetmem_interval_tree_node node[POOL];
	bool present[POOL];
	unsigned int nr_present;
	unsigned int rank[POOL];	/* in-order position (check_tree()) */
	uint32_t rng;
};

/* --- tree inspection through the public fields ------------------------- */

static struct hetmem_rb_node *rb_parent_of(const struct hetmem_rb_node *n)
{
	return (struct hetmem_rb_node *)(n->parent_color & ~3ul);
}

static bool rb_black(const struct hetmem_rb_node *n)
{
	return !n || (n->parent_color & 1ul);
}

static struct hetmem_interval_tree_node *it_of(const struct hetmem_rb_node *n)
{
	return hetmem_container_of(n, struct hetmem_interval_tree_node, rb);
}

static unsigned long sub_last(const struct hetmem_rb_node *n)
{
	return n ? it_of(n)->subtree_last : 0;
}

/*
 * Checks one subtree (parent links, no red-red, equal black heights,
 * subtree_last) and returns its black height. Recursion is fine here: the
 * depth is logarithmic once the tree is known to be balanced, and an
 * unbalanced tree fails the black-height check on the way up.
 */
static int check_subtree(const struct hetmem_rb_node *n,
			 const struct hetmem_rb_node *parent)
{
	unsigned long want;
	int lh, rh;

	if (!n)
		return 1;
	ASSERT_TRUE(rb_parent_of(n) == parent);
	ASSERT_EQ(n->parent_color & 2ul, 0);
	if (!rb_black(n)) {
		ASSERT_TRUE(rb_black(n->left));
		ASSERT_TRUE(rb_black(n->right));
	}
	lh = check_subtree(n->left, n);
	rh = check_subtree(n->right, n);
	ASSERT_EQ(lh, rh);
	want = it_of(n)->last;
	if (sub_last(n->left) > want)
		want = sub_last(n->left);
	if (sub_last(n->right) > want)
		want = sub_last(n->right);
	ASSERT_EQ(it_of(n)->subtree_last, want);
	return lh + rb_black(n);
}

static struct hetmem_rb_node *rb_first_of(struct hetmem_rb_node *n)
{
	while (n && n->left)
		n = n->left;
	return n;
}

static struct hetmem_rb_node *rb_next_of(struct hetmem_rb_node *n)
{
	struct hetmem_rb_node *p;

	if (n->right)
		return rb_first_of(n->right);
	while ((p = rb_parent_of(n)) && n == p->right)
		n = p;
	return p;
}

/* In-order walk: sorted by start, every present node once, ranks noted. */
static void check_order(struct model *m)
{
	struct hetmem_rb_node *rb = rb_first_of(m->root.root);
	unsigned long prev = 0;
	unsigned int count = 0;
	size_t i;

	ASSERT_TRUE(m->root.leftmost == rb);
	for (; rb; rb = rb_next_of(rb)) {
		i = (size_t)(it_of(rb) - m->node);
		ASSERT_LT(i, POOL);
		ASSERT_TRUE(m->present[i]);
		/* Not ASSERT_GE/LE: those compare as signed intmax_t. */
		ASSERT_TRUE(it_of(rb)->start >= prev);
		ASSERT_TRUE(it_of(rb)->start <= it_of(rb)->last);
		prev = it_of(rb)->start;
		m->rank[i] = count++;
	}
	ASSERT_EQ(count, m->nr_present);
}

static void check_tree(struct model *m)
{
	if (!m->root.root) {
		ASSERT_NULL(m->root.leftmost);
		ASSERT_EQ(m->nr_present, 0);
		ASSERT_TRUE(hetmem_interval_tree_empty(&m->root));
		return;
	}
	ASSERT_FALSE(hetmem_interval_tree_empty(&m->root));
	ASSERT_TRUE(rb_black(m->root.root));
	check_subtree(m->root.root, NULL);
	check_order(m);
}

/* --- queries against the brute-force model ----------------------------- */

static bool overlaps(const struct hetmem_interval_tree_node *n, unsigned long start,
		     unsigned long last)
{
	return n->start <= last && n->last >= start;
}

static unsigned int brute_count(const struct model *m, unsigned long start,
				unsigned long last)
{
	unsigned int i, n = 0;

	for (i = 0; i < POOL; i++)
		n += m->present[i] && overlaps(&m->node[i], start, last);
	return n;
}

/*
 * The iteration must return only overlapping nodes, each once, in tree
 * order (hence by start), and as many as the brute force finds: then it
 * returned exactly the brute-force set.
 */
static void check_query(struct model *m, unsigned long start,
			unsigned long last)
{
	static bool seen[POOL];
	unsigned int n = 0, prev_rank = 0;
	struct hetmem_interval_tree_node *it;
	size_t i;

	memset(seen, 0, sizeof(seen));
	it = hetmem_interval_tree_iter_first(&m->root, start, last);
	for (; it; it = hetmem_interval_tree_iter_next(it, start, last)) {
		i = (size_t)(it - m->node);
		ASSERT_LT(i, POOL);
		ASSERT_TRUE(m->present[i]);
		ASSERT_TRUE(overlaps(it, start, last));
		ASSERT_FALSE(seen[i]);
		if (n)
			ASSERT_GT(m->rank[i], prev_rank);
		seen[i] = true;
		prev_rank = m->rank[i];
		n++;
	}
	ASSERT_EQ(n, brute_count(m, start, last));
}

/* --- random intervals --------------------------------------------------- */

static unsigned long rand_ul(struct model *m)
{
	unsigned long hi = harness_rand(&m->rng);

	return hi << 16 << 16 | harness_rand(&m->rng);
}

/*
 * A coordinate from one of several regions: a small dense range (many
 * overlaps and equal starts), the very bottom, the very top, or anywhere.
 */
static unsigned long rand_point(struct model *m)
{
	switch (harness_rand(&m->rng) % 6) {
	case 0:
		return harness_rand(&m->rng) % 4;
	case 1:
		return ULONG_MAX - harness_rand(&m->rng) % 4;
	case 2:
		return rand_ul(m);
	default:
		return harness_rand(&m->rng) % 2000;
	}
}

static void rand_interval(struct model *m, unsigned long *start,
			  unsigned long *last)
{
	unsigned long a = rand_point(m), b;

	switch (harness_rand(&m->rng) % 8) {
	case 0:
		b = a;				/* a point */
		break;
	case 1:
		b = harness_rand(&m->rng) % 50;
		b = a > ULONG_MAX - b ? ULONG_MAX : a + b;
		break;
	case 2:
		a = 0;				/* the whole space */
		b = ULONG_MAX;
		break;
	default:
		b = rand_point(m);
		break;
	}
	*start = a < b ? a : b;
	*last = a < b ? b : a;
}

static unsigned int pick(struct model *m, bool want_present)
{
	unsigned int i = harness_rand(&m->rng) % POOL;

	while (m->present[i] != want_present)
		i = (i + 1) % POOL;
	return i;
}

/* Duplicates are frequent: copy a stored interval a quarter of the time. */
static void model_insert(struct model *m)
{
	unsigned int i = pick(m, false), j;
	struct hetmem_interval_tree_node *n = &m->node[i];

	if (m->nr_present && harness_rand(&m->rng) % 4 == 0) {
		j = pick(m, true);
		n->start = m->node[j].start;
		n->last = m->node[j].last;
	} else {
		rand_interval(m, &n->start, &n->last);
	}
	hetmem_interval_tree_insert(n, &m->root);
	m->present[i] = true;
	m->nr_present++;
}

static void model_remove(struct model *m)
{
	unsigned int i = pick(m, true);

	hetmem_interval_tree_remove(&m->node[i], &m->root);
	m->present[i] = false;
	m->nr_present--;
}

/* Grow while below @target, shrink above, with some noise either way. */
static void model_step(struct model *m, unsigned int target)
{
	unsigned int odds = m->nr_present < target ? 6 : 2;
	bool grow = harness_rand(&m->rng) % 8 < odds;

	if (m->nr_present == 0 || (grow && m->nr_present < POOL))
		model_insert(m);
	else
		model_remove(m);
}

static void random_queries(struct model *m)
{
	unsigned long start, last;
	unsigned int i;

	for (i = 0; i < QUERIES; i++) {
		rand_interval(m, &start, &last);
		check_query(m, start, last);
	}
	check_query(m, 0, ULONG_MAX);
	check_query(m, ULONG_MAX, ULONG_MAX);
	check_query(m, 0, 0);
	/* An empty query range (start after last) matches nothing. */
	ASSERT_NULL(hetmem_interval_tree_iter_first(&m->root, 10, 9));
}

static void model_init(struct model *m, uint32_t seed)
{
	memset(m, 0, sizeof(*m));
	m->root = HETMEM_RB_ROOT_CACHED;
	m->rng = seed;
}

TEST(randomised_against_brute_force)
{
	static struct model m;
	unsigned int round, op, target;

	model_init(&m, 0x9e3779b9u);
	for (round = 0; round < ROUNDS; round++) {
		/* The target size sweeps up to the whole pool and back to 0. */
		target = round % 100 < 50 ? (round % 50) * POOL / 40 :
			 (49 - round % 50) * POOL / 40;
		for (op = 0; op < OPS_PER_ROUND; op++)
			model_step(&m, target);
		check_tree(&m);
		random_queries(&m);
	}
	while (m.nr_present) {
		model_remove(&m);
		check_tree(&m);
	}
	check_tree(&m);
}

/* Every removal case, one change at a time, each followed by a check. */
TEST(check_after_every_change)
{
	static struct model m;
	unsigned int i;

	model_init(&m, 12345);
	for (i = 0; i < 6000; i++) {
		model_step(&m, i < 3000 ? POOL : 0);
		check_tree(&m);
		if (i % 16 == 0)
			random_queries(&m);
	}
}

TEST(empty_tree)
{
	struct hetmem_rb_root_cached root = HETMEM_RB_ROOT_CACHED;

	ASSERT_TRUE(hetmem_interval_tree_empty(&root));
	ASSERT_NULL(root.leftmost);
	ASSERT_NULL(hetmem_interval_tree_iter_first(&root, 0, ULONG_MAX));
	ASSERT_NULL(hetmem_interval_tree_iter_first(&root, 0, 0));
	ASSERT_NULL(hetmem_interval_tree_iter_first(&root, ULONG_MAX,
						    ULONG_MAX));
}

TEST(single_node_bounds_are_inclusive)
{
	struct hetmem_rb_root_cached root = HETMEM_RB_ROOT_CACHED;
	struct hetmem_interval_tree_node n = { .start = 5, .last = 10 };

	hetmem_interval_tree_insert(&n, &root);
	ASSERT_TRUE(root.root == &n.rb);
	ASSERT_TRUE(root.leftmost == &n.rb);
	ASSERT_TRUE(rb_black(&n.rb));
	ASSERT_EQ(n.subtree_last, 10);
	ASSERT_NULL(hetmem_interval_tree_iter_first(&root, 0, 4));
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, 0, 5) == &n);
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, 5, 5) == &n);
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, 7, 8) == &n);
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, 10, 10) == &n);
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, 10, 20) == &n);
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, 0, ULONG_MAX) == &n);
	ASSERT_NULL(hetmem_interval_tree_iter_first(&root, 11, 20));
	ASSERT_NULL(hetmem_interval_tree_iter_first(&root, 8, 7));
	ASSERT_NULL(hetmem_interval_tree_iter_next(&n, 0, ULONG_MAX));
	hetmem_interval_tree_remove(&n, &root);
	ASSERT_TRUE(hetmem_interval_tree_empty(&root));
	ASSERT_NULL(root.leftmost);
}

TEST(point_intervals_at_both_ends)
{
	struct hetmem_rb_root_cached root = HETMEM_RB_ROOT_CACHED;
	struct hetmem_interval_tree_node lo = { .start = 0, .last = 0 };
	struct hetmem_interval_tree_node hi = { .start = ULONG_MAX,
						 .last = ULONG_MAX };
	struct hetmem_interval_tree_node all = { .start = 0, .last = ULONG_MAX };
	struct hetmem_interval_tree_node *it;

	hetmem_interval_tree_insert(&hi, &root);
	hetmem_interval_tree_insert(&lo, &root);
	ASSERT_TRUE(root.leftmost == &lo.rb);
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, 0, 0) == &lo);
	ASSERT_TRUE(hetmem_interval_tree_iter_first(&root, ULONG_MAX,
						    ULONG_MAX) == &hi);
	ASSERT_NULL(hetmem_interval_tree_iter_first(&root, 1, ULONG_MAX - 1));
	hetmem_interval_tree_insert(&all, &root);
	/* Equal starts: the later insertion follows. */
	it = hetmem_interval_tree_iter_first(&root, 1, ULONG_MAX - 1);
	ASSERT_TRUE(it == &all);
	ASSERT_NULL(hetmem_interval_tree_iter_next(it, 1, ULONG_MAX - 1));
	it = hetmem_interval_tree_iter_first(&root, 0, ULONG_MAX);
	ASSERT_TRUE(it == &lo);
	it = hetmem_interval_tree_iter_next(it, 0, ULONG_MAX);
	ASSERT_TRUE(it == &all);
	it = hetmem_interval_tree_iter_next(it, 0, ULONG_MAX);
	ASSERT_TRUE(it == &hi);
	ASSERT_NULL(hetmem_interval_tree_iter_next(it, 0, ULONG_MAX));
	hetmem_interval_tree_remove(&lo, &root);
	ASSERT_TRUE(root.leftmost == &all.rb);
	hetmem_interval_tree_remove(&all, &root);
	ASSERT_TRUE(root.leftmost == &hi.rb);
	hetmem_interval_tree_remove(&hi, &root);
	ASSERT_TRUE(hetmem_interval_tree_empty(&root));
}

/* Many copies of one interval, added and removed in several orders. */
TEST(identical_intervals)
{
	static struct model m;
	unsigned int i;

	model_init(&m, 777);
	for (i = 0; i < POOL; i++) {
		m.node[i].start = 7;
		m.node[i].last = 9;
		hetmem_interval_tree_insert(&m.node[i], &m.root);
		m.present[i] = true;
		m.nr_present++;
	}
	check_tree(&m);
	check_query(&m, 9, 9);
	check_query(&m, 0, 7);
	check_query(&m, 10, ULONG_MAX);
	ASSERT_EQ(brute_count(&m, 8, 8), POOL);
	/* Every other one, then the rest from the far end. */
	for (i = 0; i < POOL; i += 2) {
		hetmem_interval_tree_remove(&m.node[i], &m.root);
		m.present[i] = false;
		m.nr_present--;
	}
	check_tree(&m);
	check_query(&m, 8, 8);
	for (i = POOL - 1; i < POOL; i -= 2) {
		hetmem_interval_tree_remove(&m.node[i], &m.root);
		m.present[i] = false;
		m.nr_present--;
		check_tree(&m);
	}
	ASSERT_TRUE(hetmem_interval_tree_empty(&m.root));
}

/* Sorted insertion is the classic worst case for an unbalanced tree. */
TEST(sorted_insertion_stays_balanced)
{
	static struct model m;
	unsigned int i;

	model_init(&m, 4242);
	for (i = 0; i < POOL; i++) {
		m.node[i].start = i < POOL / 2 ? i : 3 * POOL - i;
		m.node[i].last = m.node[i].start + i % 7;
		hetmem_interval_tree_insert(&m.node[i], &m.root);
		m.present[i] = true;
		m.nr_present++;
	}
	check_tree(&m);
	random_queries(&m);
	for (i = 0; i < POOL; i++) {
		hetmem_interval_tree_remove(&m.node[i], &m.root);
		m.present[i] = false;
		m.nr_present--;
		if (i % 8 == 0)
			check_tree(&m);
	}
	check_tree(&m);
}
