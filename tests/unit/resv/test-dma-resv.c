/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-resv: the cases of the kernel's st-dma-resv.c (sanitycheck,
 * test_signaling, test_for_each, test_for_each_unlocked, test_get_fences,
 * each for all four usages) and one case per rule of spec/fence-resv.md
 * §2.5 (E-RV-1..9) and §4 S2.
 */
#include <pthread.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/resv/dma-resv.h>

#include "harness.h"
#include "mock-fence.h"

static const enum dma_resv_usage all_usages[] = {
	DMA_RESV_USAGE_KERNEL, DMA_RESV_USAGE_WRITE,
	DMA_RESV_USAGE_READ, DMA_RESV_USAGE_BOOKKEEP,
};

#define for_each_usage(u, i)						\
	for ((i) = 0; (i) < 4 && ((u) = all_usages[i], 1); (i)++)

static unsigned int refs(struct dma_fence *f)
{
	return hetmem_kref_read(&f->refcount);
}

static void sig_put(struct dma_fence *f)
{
	if (!dma_fence_is_signaled(f))
		dma_fence_signal(f);
	dma_fence_put(f);
}

/* Fences of one object, locked walk: how many, and the i-th one. */
static unsigned int locked_count(struct dma_resv *obj, enum dma_resv_usage u)
{
	struct dma_resv_iter cursor;
	struct dma_fence *f;
	unsigned int n = 0;

	dma_resv_for_each_fence(&cursor, obj, u, f)
		n++;
	return n;
}

static struct dma_fence *locked_nth(struct dma_resv *obj, unsigned int nth,
				    enum dma_resv_usage *usage)
{
	struct dma_resv_iter cursor;
	struct dma_fence *f;
	unsigned int n = 0;

	dma_resv_for_each_fence(&cursor, obj, DMA_RESV_USAGE_BOOKKEEP, f) {
		if (n++ == nth) {
			if (usage)
				*usage = dma_resv_iter_usage(&cursor);
			return f;
		}
	}
	return NULL;
}

static void add_one(struct dma_resv *obj, struct dma_fence *f,
		    enum dma_resv_usage u)
{
	ASSERT_EQ(dma_resv_reserve_fences(obj, 1), 0);
	dma_resv_add_fence(obj, f, u);
}

/* --- st-dma-resv.c --- */

TEST(sanitycheck)
{
	struct dma_fence *f = mock_fence_create(0);
	struct dma_resv resv;

	dma_fence_enable_sw_signaling(f);
	dma_fence_signal(f);
	dma_fence_put(f);

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_TRUE(dma_resv_is_locked(&resv));
	ASSERT_TRUE(dma_resv_held(&resv));
	dma_resv_unlock(&resv);
	ASSERT_FALSE(dma_resv_is_locked(&resv));
	dma_resv_fini(&resv);
}

TEST(test_signaling)
{
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;
	int i;

	for_each_usage(u, i) {
		struct dma_fence *f = mock_fence_create(0);
		struct dma_resv resv;

		dma_resv_init(&resv);
		ASSERT_TRUE(dma_resv_trylock(&resv));
		add_one(&resv, f, u);
		EXPECT_FALSE(dma_resv_test_signaled(&resv, u));
		EXPECT_FALSE(dma_resv_test_signaled(&resv,
						    DMA_RESV_USAGE_BOOKKEEP));
		dma_fence_signal(f);
		EXPECT_TRUE(dma_resv_test_signaled(&resv, u));
		dma_resv_unlock(&resv);
		dma_resv_fini(&resv);
		dma_fence_put(f);
	}
}

TEST(test_for_each)
{
	enum dma_resv_usage u, got;
	int i;

	for_each_usage(u, i) {
		struct dma_fence *f = mock_fence_create(0), *fence;
		struct dma_resv_iter cursor;
		struct dma_resv resv;
		unsigned int count = 0;

		dma_resv_init(&resv);
		ASSERT_TRUE(dma_resv_trylock(&resv));
		add_one(&resv, f, u);
		dma_resv_for_each_fence(&cursor, &resv, u, fence) {
			EXPECT_TRUE(fence == f);
			EXPECT_EQ(dma_resv_iter_usage(&cursor), u);
			EXPECT_EQ(dma_resv_iter_is_restarted(&cursor), !count);
			count++;
		}
		EXPECT_EQ(count, 1);
		/* Weaker queries than the entry see it, stronger ones do not. */
		for (got = DMA_RESV_USAGE_KERNEL; got <= DMA_RESV_USAGE_BOOKKEEP;
		     got++)
			EXPECT_EQ(locked_count(&resv, got), got >= u);
		EXPECT_EQ(refs(f), 2);	/* locked walks take no reference */
		dma_resv_unlock(&resv);
		dma_resv_fini(&resv);
		sig_put(f);
	}
}

TEST(test_for_each_unlocked)
{
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;
	int i;

	for_each_usage(u, i) {
		struct dma_fence *f = mock_fence_create(0), *fence;
		struct dma_resv_iter cursor;
		struct dma_resv resv;
		unsigned int count = 0;

		dma_resv_init(&resv);
		ASSERT_TRUE(dma_resv_trylock(&resv));
		add_one(&resv, f, u);
		dma_resv_unlock(&resv);
		dma_resv_iter_begin(&cursor, &resv, u);
		dma_resv_for_each_fence_unlocked(&cursor, fence) {
			EXPECT_TRUE(fence == f);
			EXPECT_EQ(refs(f), 3);	/* ours, the list's, cursor's */
			EXPECT_EQ(dma_resv_iter_usage(&cursor), u);
			EXPECT_EQ(dma_resv_iter_is_restarted(&cursor), !count);
			count++;
		}
		dma_resv_iter_end(&cursor);
		EXPECT_EQ(count, 1);
		EXPECT_EQ(refs(f), 2);
		/* A signalled fence is skipped by unlocked walks. */
		dma_fence_signal(f);
		dma_resv_iter_begin(&cursor, &resv, u);
		EXPECT_NULL(dma_resv_iter_first_unlocked(&cursor));
		dma_resv_iter_end(&cursor);
		dma_resv_fini(&resv);
		dma_fence_put(f);
	}
}

TEST(test_get_fences)
{
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;
	int i;

	for_each_usage(u, i) {
		struct dma_fence *f = mock_fence_create(0), **fences = NULL;
		struct dma_resv resv;
		unsigned int n = 99;

		dma_resv_init(&resv);
		ASSERT_TRUE(dma_resv_trylock(&resv));
		add_one(&resv, f, u);
		dma_resv_unlock(&resv);
		ASSERT_EQ(dma_resv_get_fences(&resv, u, &n, &fences), 0);
		ASSERT_EQ(n, 1);
		EXPECT_TRUE(fences[0] == f);
		EXPECT_EQ(refs(f), 3);
		dma_fence_put(fences[0]);
		free(fences);
		if (u > DMA_RESV_USAGE_KERNEL) {
			ASSERT_EQ(dma_resv_get_fences(&resv, u - 1, &n,
						      &fences), 0);
			EXPECT_EQ(n, 0);
			EXPECT_NULL(fences);
		}
		dma_resv_fini(&resv);
		sig_put(f);
	}
}

/* --- E-RV-1: reserve --- */

TEST(reserve_growth)
{
	struct dma_fence *f[10];
	struct dma_resv_list *l1, *l2;
	struct dma_resv resv;
	int i;

	dma_resv_init(&resv);
	EXPECT_NULL(resv.fences);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 1), 0);
	l1 = resv.fences;
	ASSERT_NONNULL(l1);
	/* A first list holds max(4, pow2(n)): 3 more fit without growth. */
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 4), 0);
	EXPECT_TRUE(resv.fences == l1);
	for (i = 0; i < 4; i++) {
		f[i] = mock_fence_create(0);
		dma_resv_add_fence(&resv, f[i], DMA_RESV_USAGE_READ);
	}
	EXPECT_TRUE(resv.fences == l1);
	/* 4 + 1 > 4: grows to max(5, 2 * 4) = 8. */
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 1), 0);
	l2 = resv.fences;
	EXPECT_TRUE(l2 != l1);
	for (i = 4; i < 8; i++) {
		f[i] = mock_fence_create(0);
		dma_resv_add_fence(&resv, f[i], DMA_RESV_USAGE_READ);
	}
	EXPECT_TRUE(resv.fences == l2);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 8);
	/* 8 + 10 > 8: grows to max(18, 2 * 8) = 18, which 8 + 10 then fits. */
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 10), 0);
	l1 = resv.fences;
	EXPECT_TRUE(l1 != l2);
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 10), 0);
	EXPECT_TRUE(resv.fences == l1);
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 11), 0);
	EXPECT_TRUE(resv.fences != l1);
	/* Entries keep their order across reallocations. */
	for (i = 0; i < 8; i++)
		EXPECT_TRUE(locked_nth(&resv, i, NULL) == f[i]);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	for (i = 0; i < 8; i++) {
		EXPECT_EQ(refs(f[i]), 1);
		sig_put(f[i]);
	}
}

TEST(reserve_zero_warns)
{
	struct dma_resv resv;
	unsigned long warns;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	EXPECT_EQ(dma_resv_reserve_fences(&resv, 0), -EINVAL);
	EXPECT_GT(hetmem_warn_count(), warns);
	EXPECT_NULL(resv.fences);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
}

TEST(reserve_drops_signaled)
{
	struct dma_fence *f[4];
	struct dma_resv resv;
	int i;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 4), 0);
	for (i = 0; i < 4; i++) {
		f[i] = mock_fence_create(0);
		dma_resv_add_fence(&resv, f[i], all_usages[i]);
	}
	dma_fence_signal(f[0]);
	dma_fence_signal(f[2]);
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 1), 0);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 2);
	{
		enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;

		EXPECT_TRUE(locked_nth(&resv, 0, &u) == f[1]);
		EXPECT_EQ(u, DMA_RESV_USAGE_WRITE);
		EXPECT_TRUE(locked_nth(&resv, 1, &u) == f[3]);
		EXPECT_EQ(u, DMA_RESV_USAGE_BOOKKEEP);
	}
	EXPECT_EQ(refs(f[0]), 1);
	EXPECT_EQ(refs(f[2]), 1);
	EXPECT_EQ(refs(f[1]), 2);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	for (i = 0; i < 4; i++)
		sig_put(f[i]);
}

TEST(reservation_lost_on_unlock)
{
	struct dma_fence *f = mock_fence_create(0);
	struct dma_resv resv;
	unsigned long warns;

	if (!hetmem_lockdep_enabled())
		SKIP(goto out, "the unlock shrink needs the checker enabled");
	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 1), 0);
	dma_resv_unlock(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_resv_add_fence(&resv, f, DMA_RESV_USAGE_WRITE);
	EXPECT_EQ(hetmem_warn_count(), warns + 1);
	/* Not lost: a slot was made for it after the warning. */
	EXPECT_TRUE(locked_nth(&resv, 0, NULL) == f);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
out:
	sig_put(f);
}

/* --- E-RV-2: add_fence --- */

TEST(add_without_reservation_warns)
{
	struct dma_fence *f = mock_fence_create(0);
	struct dma_resv resv;
	unsigned long warns;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_resv_add_fence(&resv, f, DMA_RESV_USAGE_READ);
	EXPECT_EQ(hetmem_warn_count(), warns + 1);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_READ), 1);
	EXPECT_EQ(refs(f), 2);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	EXPECT_EQ(refs(f), 1);
	sig_put(f);
}

TEST(add_container_warns)
{
	struct dma_fence **members = calloc(2, sizeof(*members));
	struct dma_fence_array *array;
	struct dma_resv resv;
	unsigned long warns;

	ASSERT_NONNULL(members);
	members[0] = mock_fence_create(0);
	members[1] = mock_fence_create(0);
	array = dma_fence_array_create(2, members, dma_fence_context_alloc(1),
				       1, false);
	ASSERT_NONNULL(array);
	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 1), 0);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_resv_add_fence(&resv, &array->base, DMA_RESV_USAGE_READ);
	EXPECT_GT(hetmem_warn_count(), warns);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	dma_fence_signal(array->fences[0]);
	dma_fence_signal(array->fences[1]);
	EXPECT_GT(dma_fence_wait_timeout(&array->base, false, 5000), 0);
	dma_fence_put(&array->base);
	hetmem_rcu_barrier();
}

TEST(add_same_context_replaces)
{
	uint64_t ctx = dma_fence_context_alloc(1);
	struct dma_fence *f1 = mock_fence_create_on(0, NULL, ctx, 1);
	struct dma_fence *f2 = mock_fence_create_on(0, NULL, ctx, 2);
	struct dma_resv_list *l;
	struct dma_resv resv;
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, f1, DMA_RESV_USAGE_WRITE);
	l = resv.fences;
	dma_resv_add_fence(&resv, f2, DMA_RESV_USAGE_WRITE);
	EXPECT_TRUE(resv.fences == l);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 1);
	EXPECT_TRUE(locked_nth(&resv, 0, &u) == f2);
	EXPECT_EQ(u, DMA_RESV_USAGE_WRITE);
	EXPECT_EQ(refs(f1), 1);
	/* Stronger usage of a later fence replaces as well. */
	{
		struct dma_fence *f3 = mock_fence_create_on(0, NULL, ctx, 3);

		dma_resv_add_fence(&resv, f3, DMA_RESV_USAGE_KERNEL);
		EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 1);
		EXPECT_TRUE(locked_nth(&resv, 0, &u) == f3);
		EXPECT_EQ(u, DMA_RESV_USAGE_KERNEL);
		dma_resv_unlock(&resv);
		dma_resv_fini(&resv);
		sig_put(f3);
	}
	sig_put(f1);
	sig_put(f2);
}

TEST(add_never_downgrades_usage)
{
	uint64_t ctx = dma_fence_context_alloc(1);
	struct dma_fence *w = mock_fence_create_on(0, NULL, ctx, 1);
	struct dma_fence *r = mock_fence_create_on(0, NULL, ctx, 2);
	struct dma_resv resv;
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, w, DMA_RESV_USAGE_WRITE);
	add_one(&resv, r, DMA_RESV_USAGE_READ);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 2);
	EXPECT_TRUE(locked_nth(&resv, 0, &u) == w);
	EXPECT_EQ(u, DMA_RESV_USAGE_WRITE);
	EXPECT_TRUE(locked_nth(&resv, 1, &u) == r);
	EXPECT_EQ(u, DMA_RESV_USAGE_READ);
	/* A write query still finds the writer. */
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_WRITE), 1);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	sig_put(w);
	sig_put(r);
}

TEST(add_older_fence_appends)
{
	uint64_t ctx = dma_fence_context_alloc(1);
	struct dma_fence *f1 = mock_fence_create_on(0, NULL, ctx, 1);
	struct dma_fence *f2 = mock_fence_create_on(0, NULL, ctx, 2);
	struct dma_resv resv;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, f2, DMA_RESV_USAGE_READ);
	add_one(&resv, f1, DMA_RESV_USAGE_READ);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 2);
	EXPECT_TRUE(locked_nth(&resv, 0, NULL) == f2);
	EXPECT_TRUE(locked_nth(&resv, 1, NULL) == f1);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	sig_put(f1);
	sig_put(f2);
}

TEST(add_promotes_bookkeep_to_read)
{
	struct dma_fence *f = mock_fence_create(0);
	struct dma_resv resv;
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, f, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_READ), 0);
	add_one(&resv, f, DMA_RESV_USAGE_READ);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 1);
	EXPECT_TRUE(locked_nth(&resv, 0, &u) == f);
	EXPECT_EQ(u, DMA_RESV_USAGE_READ);
	EXPECT_EQ(refs(f), 2);
	EXPECT_FALSE(dma_resv_test_signaled(&resv, DMA_RESV_USAGE_READ));
	/* The reverse, READ -> BOOKKEEP, is a weaker usage: appended. */
	add_one(&resv, f, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 2);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	sig_put(f);
}

TEST(add_reuses_signaled_entry)
{
	struct dma_fence *a = mock_fence_create(0);
	struct dma_fence *b = mock_fence_create(0);
	struct dma_resv resv;
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, a, DMA_RESV_USAGE_KERNEL);
	dma_resv_unlock(&resv);
	dma_fence_signal(a);
	/* No reserve: with the checker on the capacity is 1 and used. */
	ASSERT_TRUE(dma_resv_trylock(&resv));
	dma_resv_add_fence(&resv, b, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 1);
	EXPECT_TRUE(locked_nth(&resv, 0, &u) == b);
	EXPECT_EQ(u, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_EQ(refs(a), 1);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	sig_put(a);
	sig_put(b);
}

/* --- E-RV-3 --- */

TEST(replace_fences)
{
	uint64_t ctx = dma_fence_context_alloc(1);
	struct dma_fence *a1 = mock_fence_create_on(0, NULL, ctx, 1);
	struct dma_fence *a2 = mock_fence_create_on(0, NULL, ctx, 2);
	struct dma_fence *b = mock_fence_create(0);
	struct dma_fence *r = mock_fence_create(0);
	struct dma_resv resv;
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 3), 0);
	dma_resv_add_fence(&resv, a2, DMA_RESV_USAGE_WRITE);
	dma_resv_add_fence(&resv, b, DMA_RESV_USAGE_READ);
	dma_resv_add_fence(&resv, a1, DMA_RESV_USAGE_KERNEL); /* older */
	dma_fence_signal(a1);
	dma_resv_replace_fences(&resv, ctx, r, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_EQ(locked_count(&resv, DMA_RESV_USAGE_BOOKKEEP), 3);
	EXPECT_TRUE(locked_nth(&resv, 0, &u) == r);
	EXPECT_EQ(u, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_TRUE(locked_nth(&resv, 1, &u) == b);
	EXPECT_EQ(u, DMA_RESV_USAGE_READ);
	EXPECT_TRUE(locked_nth(&resv, 2, &u) == r);
	EXPECT_EQ(u, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_EQ(refs(r), 3);
	EXPECT_EQ(refs(a1), 1);
	EXPECT_EQ(refs(a2), 1);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	EXPECT_EQ(refs(r), 1);
	sig_put(a1);
	sig_put(a2);
	sig_put(b);
	sig_put(r);
}

/* --- E-RV-4 / E-RV-5: iterators --- */

TEST(unlocked_iter_restarts)
{
	struct dma_fence *f[4], *fence;
	struct dma_resv_iter cursor;
	struct dma_resv resv;
	int i;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 4), 0);
	for (i = 0; i < 4; i++)
		f[i] = mock_fence_create(0);
	for (i = 0; i < 3; i++)
		dma_resv_add_fence(&resv, f[i], DMA_RESV_USAGE_READ);

	dma_resv_iter_begin(&cursor, &resv, DMA_RESV_USAGE_BOOKKEEP);
	fence = dma_resv_iter_first_unlocked(&cursor);
	EXPECT_TRUE(fence == f[0]);
	EXPECT_TRUE(dma_resv_iter_is_restarted(&cursor));
	EXPECT_EQ(refs(f[0]), 3);
	fence = dma_resv_iter_next_unlocked(&cursor);
	EXPECT_TRUE(fence == f[1]);
	EXPECT_FALSE(dma_resv_iter_is_restarted(&cursor));
	EXPECT_EQ(refs(f[0]), 2);	/* the cursor dropped its reference */

	/* Reallocation between two steps: everything comes again. */
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 2), 0);
	fence = dma_resv_iter_next_unlocked(&cursor);
	EXPECT_TRUE(fence == f[0]);
	EXPECT_TRUE(dma_resv_iter_is_restarted(&cursor));
	/* Appended into the snapshot list after the snapshot: not seen. */
	dma_resv_add_fence(&resv, f[3], DMA_RESV_USAGE_READ);
	EXPECT_TRUE(dma_resv_iter_next_unlocked(&cursor) == f[1]);
	EXPECT_FALSE(dma_resv_iter_is_restarted(&cursor));
	EXPECT_TRUE(dma_resv_iter_next_unlocked(&cursor) == f[2]);
	EXPECT_NULL(dma_resv_iter_next_unlocked(&cursor));
	dma_resv_iter_end(&cursor);
	for (i = 0; i < 4; i++)
		EXPECT_EQ(refs(f[i]), 2);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	for (i = 0; i < 4; i++)
		sig_put(f[i]);
}

TEST(locked_iter_returns_signaled)
{
	struct dma_fence *a = mock_fence_create(0), *b = mock_fence_create(0);
	struct dma_fence *fence;
	struct dma_resv_iter cursor;
	struct dma_resv resv;
	unsigned int n = 0;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 2), 0);
	dma_resv_add_fence(&resv, a, DMA_RESV_USAGE_WRITE);
	dma_resv_add_fence(&resv, b, DMA_RESV_USAGE_WRITE);
	dma_fence_signal(a);
	dma_resv_for_each_fence(&cursor, &resv, DMA_RESV_USAGE_WRITE, fence) {
		EXPECT_TRUE(fence == (n ? b : a));
		EXPECT_EQ(dma_resv_iter_is_restarted(&cursor), !n);
		n++;
	}
	EXPECT_EQ(n, 2);
	EXPECT_EQ(refs(a), 2);
	dma_resv_iter_begin(&cursor, &resv, DMA_RESV_USAGE_WRITE);
	n = 0;
	dma_resv_for_each_fence_unlocked(&cursor, fence) {
		EXPECT_TRUE(fence == b);
		n++;
	}
	dma_resv_iter_end(&cursor);
	EXPECT_EQ(n, 1);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	sig_put(a);
	sig_put(b);
}

TEST(same_fence_two_usages)
{
	struct dma_fence *f = mock_fence_create(0), *fence;
	struct dma_resv_iter cursor;
	struct dma_resv resv;
	unsigned int n = 0;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, f, DMA_RESV_USAGE_READ);
	add_one(&resv, f, DMA_RESV_USAGE_BOOKKEEP);
	dma_resv_unlock(&resv);
	dma_resv_iter_begin(&cursor, &resv, DMA_RESV_USAGE_BOOKKEEP);
	dma_resv_for_each_fence_unlocked(&cursor, fence) {
		EXPECT_TRUE(fence == f);
		EXPECT_EQ(dma_resv_iter_usage(&cursor),
			  n ? DMA_RESV_USAGE_BOOKKEEP : DMA_RESV_USAGE_READ);
		n++;
	}
	dma_resv_iter_end(&cursor);
	EXPECT_EQ(n, 2);
	dma_resv_fini(&resv);
	sig_put(f);
}

/* --- E-RV-8 --- */

TEST(copy_fences)
{
	struct dma_resv src, dst;
	struct dma_fence *f[5], *old = mock_fence_create(0);
	enum dma_resv_usage u = DMA_RESV_USAGE_KERNEL;
	int i;

	dma_resv_init(&src);
	dma_resv_init(&dst);
	ASSERT_TRUE(dma_resv_trylock(&src));
	ASSERT_EQ(dma_resv_reserve_fences(&src, 5), 0);
	for (i = 0; i < 5; i++) {
		f[i] = mock_fence_create(0);
		dma_resv_add_fence(&src, f[i], all_usages[i % 4]);
	}
	dma_fence_signal(f[1]);
	dma_resv_unlock(&src);
	ASSERT_TRUE(dma_resv_trylock(&dst));
	add_one(&dst, old, DMA_RESV_USAGE_WRITE);
	ASSERT_EQ(dma_resv_copy_fences(&dst, &src), 0);
	EXPECT_EQ(refs(old), 1);
	ASSERT_EQ(locked_count(&dst, DMA_RESV_USAGE_BOOKKEEP), 4);
	EXPECT_TRUE(locked_nth(&dst, 0, &u) == f[0]);
	EXPECT_EQ(u, DMA_RESV_USAGE_KERNEL);
	EXPECT_TRUE(locked_nth(&dst, 1, &u) == f[2]);
	EXPECT_EQ(u, DMA_RESV_USAGE_READ);
	EXPECT_TRUE(locked_nth(&dst, 2, &u) == f[3]);
	EXPECT_EQ(u, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_TRUE(locked_nth(&dst, 3, &u) == f[4]);
	EXPECT_EQ(u, DMA_RESV_USAGE_KERNEL);
	EXPECT_EQ(refs(f[0]), 3);
	EXPECT_EQ(refs(f[1]), 2);	/* signalled: not copied */

	/* An empty source leaves no list at all. */
	for (i = 0; i < 5; i++)
		if (!dma_fence_is_signaled(f[i]))
			dma_fence_signal(f[i]);
	ASSERT_EQ(dma_resv_copy_fences(&dst, &src), 0);
	EXPECT_NULL(dst.fences);
	dma_resv_unlock(&dst);
	dma_resv_fini(&dst);
	dma_resv_fini(&src);
	for (i = 0; i < 5; i++) {
		EXPECT_EQ(refs(f[i]), 1);
		dma_fence_put(f[i]);
	}
	sig_put(old);
}

/* --- E-RV-7 --- */

TEST(get_fences_many)
{
	struct dma_fence *f[4], **fences;
	struct dma_resv resv;
	unsigned int n, i;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_get_fences(&resv, DMA_RESV_USAGE_BOOKKEEP, &n,
				      &fences), 0);
	EXPECT_EQ(n, 0);
	EXPECT_NULL(fences);
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 4), 0);
	for (i = 0; i < 4; i++) {
		f[i] = mock_fence_create(0);
		dma_resv_add_fence(&resv, f[i], all_usages[i]);
	}
	dma_fence_signal(f[1]);
	dma_resv_unlock(&resv);
	ASSERT_EQ(dma_resv_get_fences(&resv, DMA_RESV_USAGE_READ, &n,
				      &fences), 0);
	ASSERT_EQ(n, 2);
	EXPECT_TRUE(fences[0] == f[0]);
	EXPECT_TRUE(fences[1] == f[2]);
	for (i = 0; i < n; i++)
		dma_fence_put(fences[i]);
	free(fences);
	dma_resv_fini(&resv);
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(refs(f[i]), 1);
		sig_put(f[i]);
	}
}

TEST(get_singleton)
{
	struct dma_fence *f[3], *single = (struct dma_fence *)1;
	struct dma_fence_array *array;
	struct dma_resv resv;
	int i;

	dma_resv_init(&resv);
	ASSERT_EQ(dma_resv_get_singleton(&resv, DMA_RESV_USAGE_BOOKKEEP,
					 &single), 0);
	EXPECT_NULL(single);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 3), 0);
	for (i = 0; i < 3; i++) {
		f[i] = mock_fence_create(0);
		dma_resv_add_fence(&resv, f[i], DMA_RESV_USAGE_WRITE);
	}
	dma_resv_unlock(&resv);
	dma_fence_signal(f[1]);
	dma_fence_signal(f[2]);
	ASSERT_EQ(dma_resv_get_singleton(&resv, DMA_RESV_USAGE_WRITE,
					 &single), 0);
	EXPECT_TRUE(single == f[0]);
	EXPECT_EQ(refs(f[0]), 3);
	dma_fence_put(single);

	/* Many: a signal-all array on a fresh context, seqno 1. */
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 2), 0);
	f[1] = (dma_fence_put(f[1]), mock_fence_create(0));
	dma_resv_add_fence(&resv, f[1], DMA_RESV_USAGE_KERNEL);
	dma_resv_unlock(&resv);
	ASSERT_EQ(dma_resv_get_singleton(&resv, DMA_RESV_USAGE_WRITE,
					 &single), 0);
	array = to_dma_fence_array(single);
	ASSERT_NONNULL(array);
	EXPECT_EQ(array->num_fences, 2);
	EXPECT_EQ(single->seqno, 1);
	EXPECT_TRUE(single->context != f[0]->context &&
		    single->context != f[1]->context);
	dma_fence_signal(f[0]);
	EXPECT_EQ(dma_fence_wait_timeout(single, false, 10), 0);
	dma_fence_signal(f[1]);
	EXPECT_GT(dma_fence_wait_timeout(single, false, 5000), 0);
	dma_fence_put(single);
	dma_resv_fini(&resv);
	for (i = 0; i < 3; i++)
		dma_fence_put(f[i]);
	hetmem_rcu_barrier();
}

/* --- E-RV-6 --- */

struct delayed_signal {
	struct dma_fence *fence;
	long ms;
};

static void *signal_later(void *arg)
{
	struct delayed_signal *d = arg;

	harness_sleep_ms(d->ms);
	dma_fence_signal(d->fence);
	return NULL;
}

TEST(wait_timeout)
{
	struct dma_fence *a = mock_fence_create(0), *b = mock_fence_create(0);
	struct delayed_signal da = { a, 150 }, db = { b, 30 };
	struct dma_resv resv;
	pthread_t thread;
	int64_t t0, dt;
	long ret;

	dma_resv_init(&resv);
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_BOOKKEEP, false,
					0), 1);
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_BOOKKEEP, false,
					123), 123);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 2), 0);
	dma_resv_add_fence(&resv, a, DMA_RESV_USAGE_WRITE);
	dma_resv_add_fence(&resv, b, DMA_RESV_USAGE_READ);
	dma_resv_unlock(&resv);
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_WRITE, false,
					0), 0);
	/*
	 * @a signals after 150 ms, @b never: the wait for @b only gets what
	 * the wait for @a left of the 200 ms (about 200 ms in all), not
	 * 200 ms of its own (350 ms in all).
	 */
	ASSERT_EQ(pthread_create(&thread, NULL, signal_later, &da), 0);
	t0 = harness_now_ms();
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_READ, false,
					200), 0);
	dt = harness_now_ms() - t0;
	pthread_join(thread, NULL);
	EXPECT_GE(dt, 195);
	EXPECT_LT(dt, 300);
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_WRITE, false,
					0), 1);
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_READ, false,
					0), 0);

	/* Success returns what is left. */
	ASSERT_EQ(pthread_create(&thread, NULL, signal_later, &db), 0);
	ret = dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_READ, false, 5000);
	pthread_join(thread, NULL);
	EXPECT_GT(ret, 0);
	EXPECT_LE(ret, 5000 - 25);
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_READ, false,
					HETMEM_MAX_SCHEDULE_TIMEOUT),
		  HETMEM_MAX_SCHEDULE_TIMEOUT);
	dma_resv_fini(&resv);
	dma_fence_put(a);
	dma_fence_put(b);
}

TEST(test_signaled_by_usage)
{
	struct dma_fence *k = mock_fence_create(0), *bk = mock_fence_create(0);
	struct dma_resv resv;

	dma_resv_init(&resv);
	EXPECT_TRUE(dma_resv_test_signaled(&resv, DMA_RESV_USAGE_BOOKKEEP));
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, bk, DMA_RESV_USAGE_BOOKKEEP);
	add_one(&resv, k, DMA_RESV_USAGE_KERNEL);
	dma_resv_unlock(&resv);
	EXPECT_FALSE(dma_resv_test_signaled(&resv, DMA_RESV_USAGE_KERNEL));
	dma_fence_signal(k);
	EXPECT_TRUE(dma_resv_test_signaled(&resv, DMA_RESV_USAGE_KERNEL));
	EXPECT_TRUE(dma_resv_test_signaled(&resv, DMA_RESV_USAGE_READ));
	EXPECT_FALSE(dma_resv_test_signaled(&resv, DMA_RESV_USAGE_BOOKKEEP));
	dma_fence_signal(bk);
	EXPECT_TRUE(dma_resv_test_signaled(&resv, DMA_RESV_USAGE_BOOKKEEP));
	dma_resv_fini(&resv);
	dma_fence_put(k);
	dma_fence_put(bk);
}

TEST(set_deadline_forwards)
{
	struct dma_fence *r = mock_fence_create(MOCK_FENCE_DEADLINE);
	struct dma_fence *bk = mock_fence_create(MOCK_FENCE_DEADLINE);
	hetmem_ktime_t when = hetmem_ktime_get() + 1000000;
	struct dma_resv resv;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	add_one(&resv, r, DMA_RESV_USAGE_READ);
	add_one(&resv, bk, DMA_RESV_USAGE_BOOKKEEP);
	dma_resv_unlock(&resv);
	dma_resv_set_deadline(&resv, DMA_RESV_USAGE_READ, when);
	EXPECT_EQ(mock_fence_deadline_calls(r), 1);
	EXPECT_EQ(mock_fence_deadline(r), when);
	EXPECT_EQ(mock_fence_deadline_calls(bk), 0);
	dma_resv_set_deadline(&resv, DMA_RESV_USAGE_BOOKKEEP, when);
	EXPECT_EQ(mock_fence_deadline_calls(bk), 1);
	dma_resv_fini(&resv);
	sig_put(r);
	sig_put(bk);
}

/* --- describe --- */

TEST(describe_format)
{
	struct dma_fence *f[4];
	struct dma_resv resv;
	char *text = NULL;
	size_t len = 0;
	FILE *mem;
	int i;

	dma_resv_init(&resv);
	ASSERT_TRUE(dma_resv_trylock(&resv));
	ASSERT_EQ(dma_resv_reserve_fences(&resv, 4), 0);
	for (i = 0; i < 4; i++) {
		f[i] = mock_fence_create_on(0, NULL,
					    dma_fence_context_alloc(1), i + 1);
		dma_resv_add_fence(&resv, f[i], all_usages[3 - i]);
	}
	dma_fence_signal(f[2]);
	mem = open_memstream(&text, &len);
	ASSERT_NONNULL(mem);
	dma_resv_describe(&resv, mem);
	fclose(mem);
	EXPECT_STREQ(text, "\tread fence:mock mock seq 2 unsignalled\n"
			   "\twrite fence:detached-driver signaled-timeline seq 3 signalled\n"
			   "\tkernel fence:mock mock seq 4 unsignalled\n");
	free(text);
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	for (i = 0; i < 4; i++)
		sig_put(f[i]);
}

/* --- locking through dma_resv_lock --- */

TEST(lock_ctx_and_already)
{
	struct ww_acquire_ctx ctx;
	struct dma_resv a, b;

	dma_resv_init(&a);
	dma_resv_init(&b);
	ww_acquire_init(&ctx, &reservation_ww_class);
	ASSERT_EQ(dma_resv_lock(&a, &ctx), 0);
	EXPECT_TRUE(dma_resv_locking_ctx(&a) == &ctx);
	EXPECT_EQ(dma_resv_lock(&a, &ctx), -EALREADY);
	EXPECT_EQ(dma_resv_lock_interruptible(&b, &ctx), 0);
	EXPECT_TRUE(dma_resv_held(&b));
	ww_acquire_done(&ctx);
	dma_resv_unlock(&a);	/* -EALREADY did not count a second hold */
	EXPECT_FALSE(dma_resv_is_locked(&a));
	EXPECT_NULL(dma_resv_locking_ctx(&a));
	dma_resv_unlock(&b);
	ww_acquire_fini(&ctx);

	ASSERT_EQ(dma_resv_lock(&a, NULL), 0);
	EXPECT_NULL(dma_resv_locking_ctx(&a));
	EXPECT_TRUE(dma_resv_is_locked(&a));
	dma_resv_unlock(&a);
	dma_resv_fini(&a);
	dma_resv_fini(&b);
}

struct deadlk {
	struct dma_resv *a, *b;
	int got_edeadlk;
	int done;
};

/* Younger transaction: holds @b, dies on @a, backs off, then gets both. */
static void *younger_txn(void *arg)
{
	struct deadlk *d = arg;
	struct ww_acquire_ctx ctx;
	int ret;

	ww_acquire_init(&ctx, &reservation_ww_class);
	ret = dma_resv_lock(d->b, &ctx);
	EXPECT_EQ(ret, 0);
	ret = dma_resv_lock(d->a, &ctx);
	EXPECT_EQ(ret, -EDEADLK);
	if (ret == -EDEADLK) {
		dma_resv_unlock(d->b);
		__atomic_store_n(&d->got_edeadlk, 1, __ATOMIC_RELEASE);
		dma_resv_lock_slow(d->a, &ctx);
		EXPECT_EQ(dma_resv_lock(d->b, &ctx), 0);
	}
	EXPECT_TRUE(dma_resv_locking_ctx(d->a) == &ctx);
	dma_resv_unlock(d->a);
	dma_resv_unlock(d->b);
	ww_acquire_fini(&ctx);
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(lock_edeadlk_backoff)
{
	struct dma_resv a, b;
	struct deadlk d = { &a, &b, 0, 0 };
	struct ww_acquire_ctx ctx;
	pthread_t thread;

	dma_resv_init(&a);
	dma_resv_init(&b);
	ww_acquire_init(&ctx, &reservation_ww_class);	/* older */
	ASSERT_EQ(dma_resv_lock(&a, &ctx), 0);
	ASSERT_EQ(pthread_create(&thread, NULL, younger_txn, &d), 0);
	EXPECT_TRUE(harness_wait_int(&d.got_edeadlk, 1, 5000));
	EXPECT_FALSE(dma_resv_trylock(&a));
	dma_resv_unlock(&a);
	ww_acquire_fini(&ctx);
	EXPECT_TRUE(harness_wait_int(&d.done, 1, 5000));
	pthread_join(thread, NULL);
	EXPECT_TRUE(dma_resv_trylock(&b));
	dma_resv_unlock(&b);
	dma_resv_fini(&a);
	dma_resv_fini(&b);
}

/* --- §4 S2: reservation locks inside a signalling section --- */

static char report_text[8192];

static void capture(const char *msg, void *data)
{
	if (!report_text[0])
		snprintf(report_text, sizeof(report_text), "%s", msg);
}

static void expect_resv_in_section_report(struct ww_acquire_ctx *ctx)
{
	struct dma_resv resv;
	unsigned long reports;
	bool cookie;

	dma_resv_init(&resv);	/* first init: primes the graph */
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	hetmem_set_warn_handler(capture, NULL);
	reports = hetmem_lockdep_report_count();
	cookie = dma_fence_begin_signalling();
	if (ctx) {
		ww_acquire_init(ctx, &reservation_ww_class);
		EXPECT_EQ(dma_resv_lock(&resv, ctx), 0);
	} else {
		EXPECT_EQ(dma_resv_lock(&resv, NULL), 0);
	}
	dma_resv_unlock(&resv);
	if (ctx)
		ww_acquire_fini(ctx);
	dma_fence_end_signalling(cookie);
	EXPECT_GT(hetmem_lockdep_report_count(), reports);
	EXPECT_NONNULL(strstr(report_text, "reservation_ww_class"));
	EXPECT_NONNULL(strstr(report_text, "dma_fence_map"));
	TH_LOG("report: %s", report_text);
	hetmem_set_warn_handler(NULL, NULL);
	dma_resv_fini(&resv);
}

TEST(signalling_section_resv_lock_reported)
{
	hetmem_lockdep_set_enabled(true);
	expect_resv_in_section_report(NULL);
}

TEST(signalling_section_acquire_ctx_reported)
{
	struct ww_acquire_ctx ctx;

	hetmem_lockdep_set_enabled(true);
	expect_resv_in_section_report(&ctx);
}

/* Legal order: waiting for a fence while holding a reservation lock. */
TEST(wait_under_resv_lock_is_fine)
{
	struct dma_fence *f = mock_fence_create(0);
	struct dma_resv resv;
	unsigned long reports;

	hetmem_lockdep_set_enabled(true);
	dma_resv_init(&resv);
	reports = hetmem_lockdep_report_count();
	ASSERT_EQ(dma_resv_lock(&resv, NULL), 0);
	add_one(&resv, f, DMA_RESV_USAGE_WRITE);
	EXPECT_EQ(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_WRITE, true, 1),
		  0);
	dma_fence_signal(f);
	EXPECT_GT(dma_resv_wait_timeout(&resv, DMA_RESV_USAGE_WRITE, true, 10),
		  0);
	dma_resv_unlock(&resv);
	EXPECT_EQ(hetmem_lockdep_report_count(), reports);
	dma_resv_fini(&resv);
	dma_fence_put(f);
}
