/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of dma-fence-unwrap. The first cases carry the names
 * and intent of the kernel's st-dma-fence-unwrap.c selftests (written anew
 * here); the rest pin down the merge algorithm's fast paths, timestamps,
 * ordering, reference rules and dma_fence_dedup_array().
 */
#include <stdarg.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>
#include <hetmem/fence/dma-fence-unwrap.h>

#include "fence/fence-work.h"
#include "harness.h"
#include "mock-fence.h"

/* Plain mocks: merging and unwrapping look at context and seqno only. */
static struct dma_fence *mock_fence_at(uint64_t context, uint64_t seqno)
{
	return mock_fence_create_on(0, NULL, context, seqno);
}

static struct dma_fence *mock_fence(void)
{
	return mock_fence_create(0);
}

/* An array owning the references passed in (NULL-terminated list). */
static struct dma_fence *mock_array(unsigned int n, ...)
{
	struct dma_fence_array *array;
	struct dma_fence **fences = calloc(n, sizeof(*fences));
	unsigned int i;
	va_list ap;

	ASSERT_NONNULL(fences);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		fences[i] = va_arg(ap, struct dma_fence *);
	va_end(ap);
	array = dma_fence_array_create(n, fences, dma_fence_context_alloc(1),
				       1, false);
	ASSERT_NONNULL(array);
	return &array->base;
}

/* A chain node owning the references passed in. */
static struct dma_fence *mock_chain(struct dma_fence *prev,
				    struct dma_fence *fence)
{
	struct dma_fence_chain *chain = dma_fence_chain_alloc();

	ASSERT_NONNULL(chain);
	dma_fence_chain_init(chain, prev, fence, 1);
	return &chain->base;
}

static unsigned int refs(struct dma_fence *f)
{
	return hetmem_kref_read(&f->refcount);
}

static void put_list(struct dma_fence **fences, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dma_fence_put(fences[i]);
}

/* Drop one reference to each fence named, in the order named. */
#define put_fences(...)							\
	put_list((struct dma_fence *[]){ __VA_ARGS__ },			\
		 sizeof((struct dma_fence *[]){ __VA_ARGS__ }) /	\
		 sizeof(struct dma_fence *))

/*
 * Check that @head unwraps to exactly the @n fences in @want, in that
 * order.
 */
static void expect_leaves(struct dma_fence *head, struct dma_fence **want,
			  unsigned int n)
{
	struct dma_fence_unwrap cursor;
	struct dma_fence *fence;
	unsigned int i = 0;

	dma_fence_unwrap_for_each(fence, &cursor, head) {
		ASSERT_LT(i, n);
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)want[i]);
		i++;
	}
	ASSERT_EQ(i, n);
	ASSERT_NULL(cursor.chain);
}

/* The merge invariants: flat, sorted by context, one per context. */
static void expect_flat_sorted(struct dma_fence *merged)
{
	struct dma_fence *fence;
	unsigned int index;
	uint64_t last = 0;

	dma_fence_array_for_each(fence, index, merged) {
		ASSERT_FALSE(dma_fence_is_container(fence));
		if (index)
			ASSERT_GT(fence->context, last);
		last = fence->context;
	}
}

TEST(sanitycheck)
{
	struct dma_fence *f = mock_fence(), *array, *chain;

	dma_fence_enable_sw_signaling(f);
	array = mock_array(1, f);
	chain = mock_chain(NULL, array);
	dma_fence_signal(f);
	hetmem_fence_work_flush();
	dma_fence_put(chain);
}

TEST(unwrap_array)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *array;
	struct dma_fence *want[2] = { f1, f2 };

	array = mock_array(2, dma_fence_get(f1), dma_fence_get(f2));
	expect_leaves(array, want, 2);
	/* The cursor's reference is gone once iteration ends. */
	ASSERT_EQ(refs(array), 1);
	dma_fence_signal(f1);
	dma_fence_signal(f2);
	put_fences(array, f1, f2);
}

TEST(unwrap_chain)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *chain;
	struct dma_fence *want[2] = { f2, f1 };

	chain = mock_chain(mock_chain(NULL, dma_fence_get(f1)), dma_fence_get(f2));
	/* Head first, then towards the start of the chain. */
	expect_leaves(chain, want, 2);
	ASSERT_EQ(refs(chain), 1);
	dma_fence_signal(f1);
	dma_fence_signal(f2);
	put_fences(chain, f1, f2);
}

TEST(unwrap_chain_array)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *chain;
	struct dma_fence *want[2] = { f1, f2 };

	chain = mock_chain(NULL, mock_array(2, dma_fence_get(f1),
					   dma_fence_get(f2)));
	expect_leaves(chain, want, 2);
	dma_fence_signal(f1);
	dma_fence_signal(f2);
	put_fences(chain, f1, f2);
}

TEST(unwrap_merge)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *f3;
	struct dma_fence *want[2] = { f1, f2 };

	dma_fence_enable_sw_signaling(f1);
	dma_fence_enable_sw_signaling(f2);
	f3 = dma_fence_unwrap_merge(f1, f2);
	ASSERT_NONNULL(f3);
	ASSERT_TRUE(dma_fence_is_array(f3));
	expect_leaves(f3, want, 2);
	/* Inputs are not consumed; the array holds its own references. */
	ASSERT_EQ(refs(f1), 2);
	dma_fence_signal(f1);
	dma_fence_signal(f2);
	dma_fence_put(f3);
	ASSERT_EQ(refs(f1), 1);
	dma_fence_put(f1);
	dma_fence_put(f2);
}

TEST(unwrap_merge_duplicate)
{
	struct dma_fence *f1 = mock_fence(), *f2;

	f2 = dma_fence_unwrap_merge(f1, f1);
	/* The same fence twice is one fence: itself. */
	ASSERT_EQ((uintptr_t)f2, (uintptr_t)f1);
	ASSERT_EQ(refs(f1), 2);
	dma_fence_signal(f1);
	dma_fence_put(f2);
	dma_fence_put(f1);
}

TEST(unwrap_merge_seqno)
{
	uint64_t ctx[2];
	struct dma_fence *f1, *f2, *f3, *f4;
	struct dma_fence *want[2];

	ctx[0] = dma_fence_context_alloc(1);
	ctx[1] = dma_fence_context_alloc(1);
	f1 = mock_fence_at(ctx[1], 1);
	f2 = mock_fence_at(ctx[1], 2);
	f3 = mock_fence_at(ctx[0], 1);
	f4 = dma_fence_unwrap_merge(f1, f2, f3);
	ASSERT_NONNULL(f4);
	/* Per context only the later fence; ascending context order. */
	want[0] = f3;
	want[1] = f2;
	expect_leaves(f4, want, 2);
	ASSERT_EQ(refs(f1), 1);
	put_fences(f4, f1, f2, f3);
}

TEST(unwrap_merge_order)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence();
	struct dma_fence *a1, *c1, *c2, *m;
	struct dma_fence *want[2] = { f1, f2 };

	/* Both inputs list f2 (the later context) first. */
	a1 = mock_array(2, dma_fence_get(f2), dma_fence_get(f1));
	c1 = mock_chain(NULL, dma_fence_get(f1));
	c2 = mock_chain(c1, dma_fence_get(f2));
	m = dma_fence_unwrap_merge(a1, c2);
	ASSERT_NONNULL(m);
	/* The result is sorted by context whatever the input order. */
	expect_leaves(m, want, 2);
	dma_fence_put(m);
	m = dma_fence_unwrap_merge(c2, a1);
	ASSERT_NONNULL(m);
	expect_leaves(m, want, 2);
	put_fences(m, a1, c2, f1, f2);
}

TEST(unwrap_merge_complex)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence();
	struct dma_fence *f3, *f4, *f5, *stub = dma_fence_get_stub();
	struct dma_fence *want[2] = { f1, f2 };

	f3 = dma_fence_unwrap_merge(f1, f2);
	f4 = dma_fence_unwrap_merge(f2, f1);
	ASSERT_NONNULL(f3);
	ASSERT_NONNULL(f4);
	/* Signalled fences are filtered out, the two arrays merged. */
	f5 = dma_fence_unwrap_merge(f3, stub, f4);
	ASSERT_NONNULL(f5);
	expect_leaves(f5, want, 2);
	expect_flat_sorted(f5);
	put_fences(f5, f4, f3, stub, f1, f2);
}

TEST(unwrap_merge_complex_seqno)
{
	uint64_t ctx[2];
	struct dma_fence *f1, *f2, *f3, *f4, *a, *c, *m;
	struct dma_fence *want[2];

	ctx[0] = dma_fence_context_alloc(1);
	ctx[1] = dma_fence_context_alloc(1);
	f1 = mock_fence_at(ctx[0], 1);
	f2 = mock_fence_at(ctx[1], 1);
	f3 = mock_fence_at(ctx[0], 2);
	f4 = mock_fence_at(ctx[1], 2);
	a = mock_array(2, dma_fence_get(f1), dma_fence_get(f2));
	c = mock_chain(NULL, mock_array(2, dma_fence_get(f4), dma_fence_get(f3)));
	want[0] = f3;
	want[1] = f4;
	m = dma_fence_unwrap_merge(a, c);
	ASSERT_NONNULL(m);
	expect_leaves(m, want, 2);
	dma_fence_put(m);
	m = dma_fence_unwrap_merge(c, a);
	ASSERT_NONNULL(m);
	expect_leaves(m, want, 2);
	put_fences(m, a, c, f1, f2, f3, f4);
}

TEST(merge_nothing_pending_timestamp)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *m;

	ASSERT_EQ(dma_fence_signal_timestamp(f1, 3000), 0);
	ASSERT_EQ(dma_fence_signal_timestamp(f2, 7000), 0);
	m = dma_fence_unwrap_merge(f1, f2);
	ASSERT_NONNULL(m);
	ASSERT_NE((uintptr_t)m, (uintptr_t)f1);
	ASSERT_NE((uintptr_t)m, (uintptr_t)f2);
	ASSERT_TRUE(dma_fence_test_signaled_flag(m));
	/* A private stub with the latest timestamp of the leaves. */
	ASSERT_EQ(dma_fence_timestamp(m), 7000);
	ASSERT_EQ(m->context, 0);
	ASSERT_EQ(refs(m), 1);
	put_fences(m, f1, f2);
}

TEST(merge_no_leaves)
{
	struct dma_fence *m = dma_fence_unwrap_merge(NULL, NULL);

	ASSERT_NONNULL(m);
	ASSERT_TRUE(dma_fence_test_signaled_flag(m));
	ASSERT_EQ(dma_fence_timestamp(m), 0);
	dma_fence_put(m);
}

TEST(merge_single_pending_identity)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *f3 = mock_fence();
	struct dma_fence *a, *m;

	dma_fence_signal(f1);
	dma_fence_signal(f3);
	a = mock_array(2, dma_fence_get(f1), dma_fence_get(f2));
	m = dma_fence_unwrap_merge(a, f3);
	/* One pending leaf: that very fence, not a wrapper. */
	ASSERT_EQ((uintptr_t)m, (uintptr_t)f2);
	ASSERT_EQ(refs(f2), 3);
	put_fences(m, a, f1, f2, f3);
}

TEST(merge_result_array)
{
	struct dma_fence *f[3], *m;
	struct dma_fence_array *array;
	int i;

	for (i = 0; i < 3; i++)
		f[i] = mock_fence();
	m = dma_fence_unwrap_merge(f[2], f[0], f[1]);
	array = to_dma_fence_array(m);
	ASSERT_NONNULL(array);
	/* A new signal-all array on a fresh context, seqno 1. */
	ASSERT_EQ(array->num_fences, 3);
	ASSERT_EQ(array->num_pending, 3);
	ASSERT_EQ(m->seqno, 1);
	ASSERT_GT(m->context, f[2]->context);
	expect_leaves(m, f, 3);
	dma_fence_signal(f[0]);
	dma_fence_signal(f[1]);
	ASSERT_FALSE(dma_fence_is_signaled(m));
	dma_fence_signal(f[2]);
	ASSERT_TRUE(dma_fence_is_signaled(m));
	dma_fence_put(m);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(refs(f[i]), 1);
		dma_fence_put(f[i]);
	}
}

TEST(merge_seqno_wraparound)
{
	uint64_t ctx = dma_fence_context_alloc(1);
	struct dma_fence *old = mock_fence_at(ctx, 0xffffffffULL);
	struct dma_fence *young = mock_fence_at(ctx, 1), *other = mock_fence();
	struct dma_fence *want[2] = { young, other }, *m;

	/* 32-bit fences: seqno 1 comes after 0xffffffff. */
	m = dma_fence_unwrap_merge(old, young, other);
	expect_leaves(m, want, 2);
	put_fences(m, old, young, other);
}

TEST(merge_skips_signaled_chain_nodes)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *f3 = mock_fence();
	struct dma_fence *chain, *want[2] = { f1, f3 }, *m;

	chain = mock_chain(mock_chain(mock_chain(NULL, dma_fence_get(f1)),
				      dma_fence_get(f2)),
			   dma_fence_get(f3));
	dma_fence_signal(f2);
	m = dma_fence_unwrap_merge(chain);
	expect_leaves(m, want, 2);
	expect_flat_sorted(m);
	put_fences(m, chain, f1, f2, f3);
}

TEST(unwrap_plain_and_null)
{
	struct dma_fence *f = mock_fence(), *fence;
	struct dma_fence_unwrap cursor;
	unsigned int n = 0;

	dma_fence_unwrap_for_each(fence, &cursor, f) {
		ASSERT_EQ((uintptr_t)fence, (uintptr_t)f);
		/* The cursor holds one reference while iterating. */
		ASSERT_EQ(refs(f), 2);
		n++;
	}
	ASSERT_EQ(n, 1);
	ASSERT_EQ(refs(f), 1);
	dma_fence_unwrap_for_each(fence, &cursor, NULL)
		n++;
	ASSERT_EQ(n, 1);
	dma_fence_put(f);
}

TEST(unwrap_skips_empty_array)
{
	struct dma_fence *f = mock_fence(), *chain, *empty;
	struct dma_fence_array *array = dma_fence_array_alloc(0);
	unsigned long warns;

	ASSERT_NONNULL(array);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_fence_array_init(array, 0, NULL, dma_fence_context_alloc(1), 1, false);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	empty = &array->base;
	chain = mock_chain(mock_chain(NULL, dma_fence_get(f)), empty);
	expect_leaves(chain, &f, 1);
	ASSERT_EQ(refs(chain), 1);
	dma_fence_put(chain);
	dma_fence_put(f);
}

TEST(unwrap_break_keeps_reference)
{
	struct dma_fence *f1 = mock_fence(), *f2 = mock_fence(), *chain, *fence;
	struct dma_fence_unwrap cursor;

	chain = mock_chain(mock_chain(NULL, dma_fence_get(f1)), dma_fence_get(f2));
	dma_fence_unwrap_for_each(fence, &cursor, chain)
		break;
	ASSERT_EQ((uintptr_t)fence, (uintptr_t)f2);
	ASSERT_EQ((uintptr_t)cursor.chain, (uintptr_t)chain);
	ASSERT_EQ(refs(chain), 2);
	dma_fence_put(cursor.chain);
	put_fences(chain, f1, f2);
}

TEST(dedup_array)
{
	uint64_t c1 = dma_fence_context_alloc(1), c2 = dma_fence_context_alloc(1);
	struct dma_fence *a1 = mock_fence_at(c1, 1), *a3 = mock_fence_at(c1, 3);
	struct dma_fence *b2 = mock_fence_at(c2, 2), *b5 = mock_fence_at(c2, 5);
	struct dma_fence *arr[5];
	unsigned long warns;

	arr[0] = dma_fence_get(b2);
	arr[1] = dma_fence_get(a1);
	arr[2] = dma_fence_get(b5);
	arr[3] = dma_fence_get(a3);
	arr[4] = dma_fence_get(a3);
	ASSERT_EQ(dma_fence_dedup_array(arr, 5), 2);
	ASSERT_EQ((uintptr_t)arr[0], (uintptr_t)a3);
	ASSERT_EQ((uintptr_t)arr[1], (uintptr_t)b5);
	/* Dropped entries gave their references back. */
	ASSERT_EQ(refs(a1), 1);
	ASSERT_EQ(refs(b2), 1);
	ASSERT_EQ(refs(a3), 2);
	dma_fence_put(arr[0]);
	dma_fence_put(arr[1]);
	arr[0] = dma_fence_get(a1);
	ASSERT_EQ(dma_fence_dedup_array(arr, 1), 1);
	dma_fence_put(arr[0]);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	ASSERT_EQ(dma_fence_dedup_array(arr, 0), 0);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	put_fences(a1, a3, b2, b5);
}
