/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the tests' mock fence; see mock-fence.h.
 */
#include <stdlib.h>

#include "harness.h"
#include "mock-fence.h"

static unsigned long created, released;

static const char *mock_name(struct dma_fence *f)
{
	return "mock";
}

static void mock_set_deadline(struct dma_fence *f, hetmem_ktime_t deadline)
{
	struct mock_fence *m = hetmem_container_of(f, struct mock_fence, base);

	m->deadline = deadline;
	m->deadline_calls++;
}

static void mock_release(struct dma_fence *f)
{
	__atomic_add_fetch(&released, 1, __ATOMIC_RELAXED);
	dma_fence_free(f);
}

/*
 * One table per combination of flags, indexed by them: an op a test did
 * not ask for stays NULL, so the core takes its default path as it would
 * for a driver without that op.
 */
static const struct dma_fence_ops mock_ops[] = {
	[0] = {
		.get_driver_name = mock_name,
		.get_timeline_name = mock_name,
	},
	[MOCK_FENCE_DEADLINE] = {
		.get_driver_name = mock_name,
		.get_timeline_name = mock_name,
		.set_deadline = mock_set_deadline,
	},
	[MOCK_FENCE_COUNTED] = {
		.get_driver_name = mock_name,
		.get_timeline_name = mock_name,
		.release = mock_release,
	},
	[MOCK_FENCE_DEADLINE | MOCK_FENCE_COUNTED] = {
		.get_driver_name = mock_name,
		.get_timeline_name = mock_name,
		.set_deadline = mock_set_deadline,
		.release = mock_release,
	},
};

#define MOCK_FENCE_ALL_FLAGS (MOCK_FENCE_DEADLINE | MOCK_FENCE_COUNTED)

static struct dma_fence *mock_fence_alloc(unsigned int flags,
					  hetmem_spinlock_t *lock,
					  uint64_t context, uint64_t seqno,
					  bool seqno64)
{
	struct mock_fence *m;

	ASSERT_EQ(flags & ~MOCK_FENCE_ALL_FLAGS, 0);
	m = calloc(1, sizeof(*m));
	ASSERT_NONNULL(m);
	hetmem_spin_lock_init(&m->lock);
	if (seqno64)
		dma_fence_init64(&m->base, &mock_ops[flags], lock ? lock : &m->lock,
				 context, seqno);
	else
		dma_fence_init(&m->base, &mock_ops[flags], lock ? lock : &m->lock,
			       context, seqno);
	if (flags & MOCK_FENCE_COUNTED)
		__atomic_add_fetch(&created, 1, __ATOMIC_RELAXED);
	return &m->base;
}

struct dma_fence *mock_fence_create_on(unsigned int flags,
				       hetmem_spinlock_t *lock,
				       uint64_t context, uint64_t seqno)
{
	return mock_fence_alloc(flags, lock, context, seqno, false);
}

struct dma_fence *mock_fence_create_on64(unsigned int flags,
					 hetmem_spinlock_t *lock,
					 uint64_t context, uint64_t seqno)
{
	return mock_fence_alloc(flags, lock, context, seqno, true);
}

struct dma_fence *mock_fence_create(unsigned int flags)
{
	return mock_fence_alloc(flags, NULL, dma_fence_context_alloc(1), 1,
				false);
}

bool is_mock_fence(const struct dma_fence *f)
{
	size_t i;

	for (i = 0; i < sizeof(mock_ops) / sizeof(mock_ops[0]); i++)
		if (f->ops == &mock_ops[i])
			return true;
	return false;
}

struct mock_fence *to_mock_fence(struct dma_fence *f)
{
	/* Reading a foreign fence as a mock would only pass by luck. */
	ASSERT_TRUE(is_mock_fence(f));
	return hetmem_container_of(f, struct mock_fence, base);
}

int mock_fence_deadline_calls(struct dma_fence *f)
{
	return to_mock_fence(f)->deadline_calls;
}

hetmem_ktime_t mock_fence_deadline(struct dma_fence *f)
{
	return to_mock_fence(f)->deadline;
}

void mock_fence_signal_error(struct dma_fence *f, int error)
{
	/* dma_fence_set_error() only takes a real error. */
	if (error)
		dma_fence_set_error(f, error);
	ASSERT_EQ(dma_fence_signal(f), 0);
}

unsigned long mock_fence_created(void)
{
	return __atomic_load_n(&created, __ATOMIC_RELAXED);
}

unsigned long mock_fence_released(void)
{
	return __atomic_load_n(&released, __ATOMIC_RELAXED);
}
