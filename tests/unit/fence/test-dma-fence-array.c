/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of dma-fence-array: all/any completion, error
 * propagation, the pending-error sentinel, nesting warnings, ownership on
 * failure, iteration, deadline fan-out and deferred signalling.
 */
#include <pthread.h>
#include <sys/wait.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>

#include "fence/fence-work.h"
#include "harness.h"
#include "mock-fence.h"

#define NFENCES 4

static unsigned int refs(struct dma_fence *f)
{
	return hetmem_kref_read(&f->refcount);
}

/* The executor may still be resolving it: read atomically. */
static int error_of(struct dma_fence *f)
{
	return __atomic_load_n(&f->error, __ATOMIC_ACQUIRE);
}

static bool enabled(struct dma_fence *f)
{
	return __atomic_load_n(&f->flags, __ATOMIC_ACQUIRE) &
	       (1UL << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT);
}

/* A malloc()ed member list holding a new reference to each of @src. */
static struct dma_fence **member_list(struct dma_fence **src, int n)
{
	struct dma_fence **list = calloc(n ? n : 1, sizeof(*list));
	int i;

	ASSERT_NONNULL(list);
	for (i = 0; i < n; i++)
		list[i] = dma_fence_get(src[i]);
	return list;
}

static struct dma_fence_array *make_array(struct dma_fence **src, int n,
					  bool any)
{
	struct dma_fence_array *array;

	array = dma_fence_array_create(n, member_list(src, n),
				       dma_fence_context_alloc(1), 1, any);
	ASSERT_NONNULL(array);
	return array;
}

/* Each on a timeline of its own; deadline_fan_out reads the hints. */
static void make_mocks(struct dma_fence **f, int n)
{
	int i;

	for (i = 0; i < n; i++)
		f[i] = mock_fence_create(MOCK_FENCE_DEADLINE);
}

static void put_all(struct dma_fence **f, int n)
{
	int i;

	for (i = 0; i < n; i++)
		dma_fence_put(f[i]);
}

/* @n new mocks in @f, and an array holding its own reference to each. */
static struct dma_fence_array *array_of_mocks(struct dma_fence **f, int n,
					      bool any)
{
	make_mocks(f, n);
	return make_array(f, n, any);
}

/* Drop the array, then the case's own reference to each of its mocks. */
static void put_array_and_mocks(struct dma_fence_array *array,
				struct dma_fence **f, int n)
{
	dma_fence_put(&array->base);
	put_all(f, n);
}

TEST(sanitycheck)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array;

	array = array_of_mocks(f, 2, false);
	ASSERT_TRUE(dma_fence_is_array(&array->base));
	ASSERT_EQ((uintptr_t)to_dma_fence_array(&array->base), (uintptr_t)array);
	ASSERT_NULL(to_dma_fence_array(f[0]));
	ASSERT_NULL(to_dma_fence_array(NULL));
	ASSERT_EQ(array->num_fences, 2);
	ASSERT_EQ(array->base.seqno, 1);
	ASSERT_STREQ(array->base.ops->get_driver_name(&array->base), "dma_fence_array");
	ASSERT_STREQ(array->base.ops->get_timeline_name(&array->base), "unbound");
	/* The array took its own reference to each member. */
	ASSERT_EQ(refs(f[0]), 2);
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	hetmem_fence_work_flush();
	ASSERT_TRUE(dma_fence_test_signaled_flag(&array->base));
	ASSERT_EQ(refs(&array->base), 1);
	dma_fence_put(&array->base);
	ASSERT_EQ(refs(f[0]), 1);
	put_all(f, 2);
}

TEST(signal_all)
{
	struct dma_fence *f[NFENCES];
	struct dma_fence_array *array;
	int i;

	array = array_of_mocks(f, NFENCES, false);
	dma_fence_enable_sw_signaling(&array->base);
	/* One reference per installed member callback. */
	ASSERT_EQ(refs(&array->base), 1 + NFENCES);
	for (i = 0; i < NFENCES - 1; i++) {
		ASSERT_EQ(dma_fence_signal(f[i]), 0);
		ASSERT_FALSE(dma_fence_is_signaled(&array->base));
		ASSERT_EQ(dma_fence_get_status(&array->base), 0);
	}
	ASSERT_EQ(dma_fence_signal(f[NFENCES - 1]), 0);
	/* Synchronous answer, without waiting for the executor. */
	ASSERT_TRUE(dma_fence_is_signaled(&array->base));
	ASSERT_EQ(dma_fence_get_status(&array->base), 1);
	hetmem_fence_work_flush();
	ASSERT_EQ(refs(&array->base), 1);
	put_array_and_mocks(array, f, NFENCES);
}

TEST(signal_any)
{
	struct dma_fence *f[NFENCES];
	struct dma_fence_array *array;

	array = array_of_mocks(f, NFENCES, true);
	ASSERT_EQ(array->num_pending, 1);
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_FALSE(dma_fence_is_signaled(&array->base));
	ASSERT_EQ(dma_fence_signal(f[2]), 0);
	ASSERT_TRUE(dma_fence_is_signaled(&array->base));
	ASSERT_EQ(dma_fence_get_status(&array->base), 1);
	/* Later members still drop the references of their callbacks. */
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	ASSERT_EQ(dma_fence_signal(f[3]), 0);
	hetmem_fence_work_flush();
	ASSERT_EQ(refs(&array->base), 1);
	put_array_and_mocks(array, f, NFENCES);
}

TEST(enable_all_presignaled)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array;

	make_mocks(f, 2);
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	array = make_array(f, 2, false);
	/* enable_signaling reports "done": the core signals right here. */
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_TRUE(dma_fence_test_signaled_flag(&array->base));
	ASSERT_EQ(error_of(&array->base), 0);
	ASSERT_EQ(refs(&array->base), 1);
	put_array_and_mocks(array, f, 2);
}

TEST(enable_any_stops_at_signaled)
{
	struct dma_fence *f[NFENCES];
	struct dma_fence_array *array;

	make_mocks(f, NFENCES);
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	array = make_array(f, NFENCES, true);
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_TRUE(dma_fence_test_signaled_flag(&array->base));
	/* Member 0 got a callback before member 1 ended the loop ... */
	ASSERT_FALSE(hetmem_list_empty(&f[0]->cb_list));
	ASSERT_EQ(refs(&array->base), 2);
	/* ... later members got none. */
	ASSERT_TRUE(hetmem_list_empty(&f[2]->cb_list));
	ASSERT_TRUE(hetmem_list_empty(&f[3]->cb_list));
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_EQ(refs(&array->base), 1);
	put_array_and_mocks(array, f, NFENCES);
}

TEST(poll_without_enable)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array;

	array = array_of_mocks(f, 2, false);
	ASSERT_FALSE(dma_fence_is_signaled(&array->base));
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_FALSE(dma_fence_is_signaled(&array->base));
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	ASSERT_TRUE(dma_fence_is_signaled(&array->base));
	ASSERT_FALSE(enabled(&array->base));
	ASSERT_EQ(dma_fence_get_status(&array->base), 1);
	put_array_and_mocks(array, f, 2);
}

TEST(poll_any_without_enable)
{
	struct dma_fence *f[3];
	struct dma_fence_array *array;

	array = array_of_mocks(f, 3, true);
	ASSERT_FALSE(dma_fence_is_signaled(&array->base));
	ASSERT_EQ(dma_fence_signal(f[2]), 0);
	ASSERT_TRUE(dma_fence_is_signaled(&array->base));
	put_array_and_mocks(array, f, 3);
}

TEST(error_first_wins)
{
	struct dma_fence *f[3];
	struct dma_fence_array *array;

	array = array_of_mocks(f, 3, false);
	dma_fence_enable_sw_signaling(&array->base);
	mock_fence_signal_error(f[1], -EIO);
	mock_fence_signal_error(f[2], -ETIME);
	ASSERT_EQ(dma_fence_get_status(&array->base), 0);
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_EQ(dma_fence_get_status(&array->base), -EIO);
	hetmem_fence_work_flush();
	ASSERT_EQ(error_of(&array->base), -EIO);
	put_array_and_mocks(array, f, 3);
}

TEST(error_presignaled_member)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array;

	make_mocks(f, 2);
	mock_fence_signal_error(f[0], -ECANCELED);
	array = make_array(f, 2, false);
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	hetmem_fence_work_flush();
	ASSERT_EQ(dma_fence_get_status(&array->base), -ECANCELED);
	put_array_and_mocks(array, f, 2);
}

TEST(error_any_mode)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array;

	array = array_of_mocks(f, 2, true);
	dma_fence_enable_sw_signaling(&array->base);
	mock_fence_signal_error(f[1], -ENODATA);
	hetmem_fence_work_flush();
	ASSERT_EQ(dma_fence_get_status(&array->base), -ENODATA);
	/* Once signalled, a later member error changes nothing. */
	mock_fence_signal_error(f[0], -EIO);
	ASSERT_EQ(dma_fence_get_status(&array->base), -ENODATA);
	put_array_and_mocks(array, f, 2);
}

TEST(error_sentinel_invisible)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array;

	array = array_of_mocks(f, 2, false);
	/* The private +1 sits in the field but never shows as a status. */
	ASSERT_EQ(error_of(&array->base), 1);
	ASSERT_EQ(dma_fence_get_status(&array->base), 0);
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_EQ(dma_fence_get_status(&array->base), 0);
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	ASSERT_EQ(dma_fence_get_status(&array->base), 1);
	ASSERT_EQ(error_of(&array->base), 0);
	hetmem_fence_work_flush();
	ASSERT_EQ(dma_fence_get_status(&array->base), 1);
	ASSERT_EQ(error_of(&array->base), 0);
	put_array_and_mocks(array, f, 2);
}

TEST(error_sentinel_cleared_by_poll)
{
	struct dma_fence *f[1];
	struct dma_fence_array *array;

	array = array_of_mocks(f, 1, false);
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	ASSERT_EQ(dma_fence_get_status(&array->base), 1);
	ASSERT_EQ(error_of(&array->base), 0);
	put_array_and_mocks(array, f, 1);
}

TEST(nested_container_warns)
{
	struct dma_fence *f[2], *outer[2];
	struct dma_fence_array *inner, *array;
	unsigned long warns;

	make_mocks(f, 2);
	inner = make_array(f, 2, false);
	outer[0] = &inner->base;
	outer[1] = f[0];
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	array = make_array(outer, 2, false);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	ASSERT_EQ((uintptr_t)array->fences[0], (uintptr_t)&inner->base);
	dma_fence_put(&array->base);
	dma_fence_put(&inner->base);
	put_all(f, 2);
}

TEST(nested_chain_warns)
{
	struct dma_fence *f[2], *members[2];
	struct dma_fence_chain *chain = dma_fence_chain_alloc();
	struct dma_fence_array *array;
	unsigned long warns;

	make_mocks(f, 2);
	ASSERT_NONNULL(chain);
	dma_fence_chain_init(chain, NULL, dma_fence_get(f[0]), 1);
	members[0] = &chain->base;
	members[1] = f[1];
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	array = make_array(members, 2, false);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	dma_fence_put(&array->base);
	dma_fence_put(&chain->base);
	put_all(f, 2);
}

TEST(create_failure_keeps_ownership)
{
	struct dma_fence *f[2];
	struct dma_fence **list;

	make_mocks(f, 2);
	list = member_list(f, 2);
	ASSERT_NULL(dma_fence_array_create(-1, list, 7, 1, false));
	ASSERT_NULL(dma_fence_array_alloc(-1));
	/* Nothing was taken: the caller still owns the list and its refs. */
	ASSERT_EQ(refs(f[0]), 2);
	ASSERT_EQ(refs(f[1]), 2);
	ASSERT_EQ((uintptr_t)list[0], (uintptr_t)f[0]);
	put_all(list, 2);
	free(list);
	put_all(f, 2);
}

TEST(alloc_then_init)
{
	struct dma_fence *f[3];
	struct dma_fence_array *array = dma_fence_array_alloc(3);
	uint64_t ctx = dma_fence_context_alloc(1);

	ASSERT_NONNULL(array);
	ASSERT_EQ(array->num_slots, 3);
	make_mocks(f, 3);
	dma_fence_array_init(array, 3, member_list(f, 3), ctx, 9, false);
	ASSERT_EQ(array->base.context, ctx);
	ASSERT_EQ(array->base.seqno, 9);
	ASSERT_EQ(array->num_pending, 3);
	ASSERT_EQ((uintptr_t)array->base.lock, (uintptr_t)&array->lock);
	dma_fence_put(&array->base);
	ASSERT_EQ(refs(f[2]), 1);
	put_all(f, 3);
	/* Never initialised: plain free(). */
	free(dma_fence_array_alloc(2));
}

TEST(init_empty_warns_and_signals)
{
	struct dma_fence_array *array = dma_fence_array_alloc(0);
	unsigned long warns;

	ASSERT_NONNULL(array);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_fence_array_init(array, 0, NULL, dma_fence_context_alloc(1), 1, false);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	ASSERT_NULL(dma_fence_array_first(&array->base));
	ASSERT_GT(dma_fence_wait_timeout(&array->base, false, 100), 0);
	ASSERT_EQ(dma_fence_get_status(&array->base), 1);
	dma_fence_put(&array->base);
}

TEST(init_overflow_signals_einval)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array = dma_fence_array_alloc(1);
	unsigned long warns;

	ASSERT_NONNULL(array);
	make_mocks(f, 2);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_fence_array_init(array, 2, member_list(f, 2),
			     dma_fence_context_alloc(1), 1, false);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_EQ(dma_fence_get_status(&array->base), -EINVAL);
	/* No callback was installed in the missing slot. */
	ASSERT_TRUE(hetmem_list_empty(&f[1]->cb_list));
	dma_fence_put(&array->base);
	/* Both references were still dropped by release. */
	ASSERT_EQ(refs(f[0]), 1);
	ASSERT_EQ(refs(f[1]), 1);
	put_all(f, 2);
}

TEST(init_null_members_signals_einval)
{
	struct dma_fence_array *array = dma_fence_array_alloc(2);
	unsigned long warns;

	ASSERT_NONNULL(array);
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	warns = hetmem_warn_count();
	dma_fence_array_init(array, 2, NULL, dma_fence_context_alloc(1), 1, true);
	ASSERT_EQ(hetmem_warn_count(), warns + 1);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	ASSERT_EQ(array->num_fences, 0);
	ASSERT_EQ(dma_fence_get_status(&array->base), -EINVAL);
	dma_fence_put(&array->base);
}

TEST(iterate)
{
	struct dma_fence *f[3], *it;
	struct dma_fence_array *array;
	unsigned int index, n = 0;

	array = array_of_mocks(f, 3, false);
	dma_fence_array_for_each(it, index, &array->base) {
		ASSERT_EQ((uintptr_t)it, (uintptr_t)f[index]);
		n++;
	}
	ASSERT_EQ(n, 3);
	ASSERT_NULL(dma_fence_array_next(&array->base, 3));
	/* A plain fence is its own only member. */
	n = 0;
	dma_fence_array_for_each(it, index, f[0]) {
		ASSERT_EQ((uintptr_t)it, (uintptr_t)f[0]);
		n++;
	}
	ASSERT_EQ(n, 1);
	ASSERT_NULL(dma_fence_array_first(NULL));
	ASSERT_NULL(dma_fence_array_next(f[0], 0));
	/* Iteration takes no references. */
	ASSERT_EQ(refs(f[1]), 2);
	put_array_and_mocks(array, f, 3);
}

TEST(match_context)
{
	struct dma_fence *f[3];
	struct dma_fence_array *same, *mixed;

	make_mocks(f, 3);
	/* f[0] and f[1] share a context. */
	f[1]->context = f[0]->context;
	same = make_array(f, 2, false);
	mixed = make_array(f + 1, 2, false);
	ASSERT_TRUE(dma_fence_match_context(&same->base, f[0]->context));
	ASSERT_FALSE(dma_fence_match_context(&same->base, same->base.context));
	ASSERT_FALSE(dma_fence_match_context(&mixed->base, f[0]->context));
	ASSERT_TRUE(dma_fence_match_context(f[2], f[2]->context));
	ASSERT_FALSE(dma_fence_match_context(f[2], f[0]->context));
	dma_fence_put(&same->base);
	dma_fence_put(&mixed->base);
	put_all(f, 3);
}

TEST(deadline_fan_out)
{
	struct dma_fence *f[3];
	struct dma_fence_array *array;
	hetmem_ktime_t when = hetmem_ktime_get() + 1000000;

	make_mocks(f, 3);
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	array = make_array(f, 3, false);
	dma_fence_set_deadline(&array->base, when);
	ASSERT_EQ(mock_fence_deadline_calls(f[0]), 1);
	ASSERT_EQ(mock_fence_deadline(f[0]), when);
	/* The core does not forward hints to signalled fences. */
	ASSERT_EQ(mock_fence_deadline_calls(f[1]), 0);
	ASSERT_EQ(mock_fence_deadline_calls(f[2]), 1);
	ASSERT_EQ(mock_fence_deadline(f[2]), when);
	put_array_and_mocks(array, f, 3);
}

struct thread_record {
	struct dma_fence_cb cb;
	pthread_t thread;
	int ran;
};

static void record_thread(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct thread_record *rec = hetmem_container_of(cb, struct thread_record, cb);

	rec->thread = pthread_self();
	__atomic_store_n(&rec->ran, 1, __ATOMIC_RELEASE);
}

TEST(signal_is_deferred)
{
	struct dma_fence *f[1];
	struct dma_fence_array *array;
	struct thread_record rec = { .ran = 0 };

	array = array_of_mocks(f, 1, false);
	ASSERT_EQ(dma_fence_add_callback(&array->base, &rec.cb, record_thread), 0);
	/* The member's signal must not run the array's callbacks inline. */
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	hetmem_fence_work_flush();
	ASSERT_EQ(rec.ran, 1);
	ASSERT_FALSE(pthread_equal(rec.thread, pthread_self()));
	put_array_and_mocks(array, f, 1);
}

struct delayed_signal {
	struct dma_fence **fences;
	int n;
};

static void *signal_later(void *arg)
{
	struct delayed_signal *d = arg;
	struct timespec ts = { 0, 2000000 };
	int i;

	for (i = 0; i < d->n; i++) {
		nanosleep(&ts, NULL);
		dma_fence_signal(d->fences[i]);
	}
	return NULL;
}

TEST(wait)
{
	struct dma_fence *f[NFENCES];
	struct dma_fence_array *array;
	struct delayed_signal d = { f, NFENCES };
	pthread_t thread;

	array = array_of_mocks(f, NFENCES, false);
	ASSERT_EQ(dma_fence_wait_timeout(&array->base, false, 0), 0);
	ASSERT_EQ(pthread_create(&thread, NULL, signal_later, &d), 0);
	ASSERT_EQ(dma_fence_wait(&array->base, false), 0);
	ASSERT_TRUE(dma_fence_test_signaled_flag(&array->base));
	pthread_join(thread, NULL);
	hetmem_fence_work_flush();
	put_array_and_mocks(array, f, NFENCES);
}

TEST(shared_member_lock)
{
	hetmem_spinlock_t timeline;
	struct dma_fence *f[3];
	struct dma_fence_array *array;
	uint64_t ctx = dma_fence_context_alloc(1);
	int i;

	/* Members of one timeline share a lock, as sw_sync points do. */
	hetmem_spin_lock_init(&timeline);
	for (i = 0; i < 3; i++)
		f[i] = mock_fence_create_on(MOCK_FENCE_DEADLINE, &timeline, ctx,
					    i + 1);
	array = make_array(f, 3, false);
	dma_fence_enable_sw_signaling(&array->base);
	hetmem_spin_lock(&timeline);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(dma_fence_signal_locked(f[i]), 0);
	hetmem_spin_unlock(&timeline);
	ASSERT_EQ(dma_fence_wait(&array->base, false), 0);
	hetmem_fence_work_flush();
	put_array_and_mocks(array, f, 3);
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

TEST(fork_child_signals)
{
	struct dma_fence *f[2];
	struct dma_fence_array *array;
	int status;
	pid_t pid;

#ifdef UNDER_TSAN
	SKIP(return, "ThreadSanitizer does not support threads after fork");
#endif
	array = array_of_mocks(f, 2, false);
	dma_fence_enable_sw_signaling(&array->base);
	ASSERT_EQ(dma_fence_signal(f[0]), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The child has no executor until it needs one. */
		dma_fence_signal(f[1]);
		hetmem_fence_work_flush();
		_exit(dma_fence_test_signaled_flag(&array->base) ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_FALSE(dma_fence_is_signaled(&array->base));
	ASSERT_EQ(dma_fence_signal(f[1]), 0);
	hetmem_fence_work_flush();
	ASSERT_TRUE(dma_fence_test_signaled_flag(&array->base));
	put_array_and_mocks(array, f, 2);
}
