/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the tests' mock fence.
 */
#ifndef HETMEM_TESTS_MOCK_FENCE_H
#define HETMEM_TESTS_MOCK_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include <hetmem/fence/dma-fence.h>

/**
 * DOC: Mock fence
 *
 * Most fence tests need a fence that nothing but the test signals: a
 * struct dma_fence with a lock of its own, both driver and timeline named
 * "mock", and none of the optional ops, so that the core's defaults are
 * what gets tested. This is that fence, shared so that every suite builds
 * it the same way.
 *
 * A mock is malloc()ed with the fence first in the block and freed by the
 * default release (dma_fence_free(), after a grace period); only the last
 * dma_fence_put() frees it. It is initialised with the lock it carries
 * unless the creator passes one, which is how fences of one timeline
 * share a lock, as sw_sync points do. All its locks are one lockdep
 * class, as when each suite had its own mock.
 *
 * Flags add what only some tests want:
 *
 * %MOCK_FENCE_DEADLINE gives the fence a set_deadline op recording the
 * last hint and the number of calls, for the tests of deadline fan-out;
 * without it the core sees no set_deadline op, as with a driver that
 * takes no hints.
 *
 * %MOCK_FENCE_COUNTED gives it a release op and counts it in
 * mock_fence_created() and, once released, in mock_fence_released(), so
 * that a stress test can prove nothing leaked or was released twice.
 * The counts are per process: every case runs in a child of its own, and
 * a grandchild made by fork() starts from its parent's counts.
 *
 * The helpers ASSERT_*() on failure, like the rest of the harness, so a
 * failure on a thread other than the case's own ends the case outright.
 */

/* The set_deadline op records its calls in the mock. */
#define MOCK_FENCE_DEADLINE	(1u << 0)
/* Creation and release are counted, see mock_fence_created(). */
#define MOCK_FENCE_COUNTED	(1u << 1)

struct mock_fence {
	struct dma_fence base;	/* first: dma_fence_free() frees the block */
	hetmem_spinlock_t lock;	/* the fence's lock unless one was given */
	hetmem_ktime_t deadline;	/* last hint, with MOCK_FENCE_DEADLINE */
	int deadline_calls;	/* set_deadline calls, likewise */
};

/*
 * A new mock holding one reference, on @lock (NULL: its own) with
 * @context and @seqno, initialised by dma_fence_init() (32-bit seqno
 * rules) or, for the _64 variant, dma_fence_init64().
 */
struct dma_fence *mock_fence_create_on(unsigned int flags,
				       hetmem_spinlock_t *lock,
				       uint64_t context, uint64_t seqno);
struct dma_fence *mock_fence_create_on64(unsigned int flags,
					 hetmem_spinlock_t *lock,
					 uint64_t context, uint64_t seqno);

/* A new mock on its own lock and a fresh context, seqno 1. */
struct dma_fence *mock_fence_create(unsigned int flags);

/* True if @f was made by one of the creators above. */
bool is_mock_fence(const struct dma_fence *f);

/* The mock around @f, which must be one. */
struct mock_fence *to_mock_fence(struct dma_fence *f);

/* What the set_deadline op saw (MOCK_FENCE_DEADLINE, else 0). */
int mock_fence_deadline_calls(struct dma_fence *f);
hetmem_ktime_t mock_fence_deadline(struct dma_fence *f);

/*
 * Signal @f (any fence, not just a mock) with @error, or cleanly if
 * @error is 0, asserting it was not signalled already.
 */
void mock_fence_signal_error(struct dma_fence *f, int error);

/* How many MOCK_FENCE_COUNTED mocks this process created and released. */
unsigned long mock_fence_created(void);
unsigned long mock_fence_released(void);

#endif /* HETMEM_TESTS_MOCK_FENCE_H */
