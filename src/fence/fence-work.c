/* SPDX-License-Identifier: MIT */
/*
 * hetmem - deferred executor for fence containers.
 */
#include <pthread.h>
#include <signal.h>

#include "fence/internal.h"
#include "fence/fence-work.h"

/**
 * DOC: Why fence containers defer their signalling
 *
 * A fence array or chain learns that it is complete inside a member
 * fence's callback, which runs with the member's lock held. Signalling the
 * container right there would take the container's lock under the
 * member's lock, and run the container's own callbacks (which may belong
 * to yet another container) deeper in the same stack. The kernel avoids
 * both with irq_work; hetmem hands the step to one executor thread per
 * process. The lock-dependency graph therefore only ever sees "container
 * lock -> member lock" (from enabling signalling), never the reverse, and
 * signalling a deep nesting costs no stack.
 *
 * dma_fence_is_signaled() on a container does not wait for the executor:
 * the containers' signaled() ops compute the answer from their members,
 * so the deferred step only publishes what a poll would already report.
 */

/**
 * DOC: The executor
 *
 * Work items are embedded in the containers (struct hetmem_fence_work),
 * so queueing allocates nothing: it is one compare-and-swap push onto a
 * lock-free stack and, only when the executor sleeps, one futex wake. The
 * queueing path takes no lock at all, which keeps it out of the
 * dependency graph and makes it safe under any fence lock. The caller
 * keeps the container alive while its item is queued by handing the item
 * a reference, which the item's function drops.
 *
 * The executor thread takes the whole stack at once, reverses it so that
 * items run in the order they were queued, and runs each function with no
 * lock held inside a fence signalling section (so the checker treats it
 * like any other signalling path). It is created by the first container
 * allocation, where allocating is allowed, runs detached with every
 * signal blocked (user signal handlers never run on it) and lives as long
 * as the process.
 *
 * Sleeping and waking use the usual two-sided check: the executor
 * announces that it is idle and then looks at the queue once more; a
 * producer pushes and then looks at the idle flag. Sequentially
 * consistent atomics on both sides guarantee that at least one of them
 * sees the other, so no item waits for a wake-up that never comes; the
 * latency from queueing to running is one futex wake.
 *
 * hetmem_fence_work_flush() queues a barrier item and sleeps until it
 * ran; because items run in queueing order, everything queued before the
 * flush has finished by then. Tests use it to observe the deferred step.
 * If the thread cannot be created, flush runs the queue itself.
 */

/**
 * DOC: Fork
 *
 * A child of fork() has no executor thread. The child handler keeps what
 * was queued, puts back the items of the batch the parent's executor had
 * not reached yet, and marks the executor as not started. If work is
 * pending it starts a new executor right away (otherwise fences of the
 * child would never signal); if not, the next container allocation,
 * queueing or flush starts one. An item whose function was running at
 * the instant of fork() cannot be repaired, as with any thread that held
 * a lock at that moment; the parent is unaffected. (ThreadSanitizer does
 * not support threads created in the child of a multi-threaded fork.)
 */

static struct {
	struct hetmem_fence_work *head;	/* queued, newest first */
	struct hetmem_fence_work *inflight;	/* rest of the running batch */
	uint32_t idle;			/* executor sleeps while this is 1 */
	bool started;
	pthread_mutex_t start_lock;
} fw = {
	.start_lock = PTHREAD_MUTEX_INITIALIZER,
};

static __thread bool in_executor;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void push(struct hetmem_fence_work *work)
{
	struct hetmem_fence_work *head = __atomic_load_n(&fw.head,
							 __ATOMIC_RELAXED);

	do {
		work->next = head;
	} while (!__atomic_compare_exchange_n(&fw.head, &head, work, true,
					      __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
}

/* Detach everything queued, oldest first. */
static struct hetmem_fence_work *take_batch(void)
{
	struct hetmem_fence_work *list, *fifo = NULL, *next;

	list = __atomic_exchange_n(&fw.head, NULL, __ATOMIC_ACQUIRE);
	for (; list; list = next) {
		next = list->next;
		list->next = fifo;
		fifo = list;
	}
	return fifo;
}

static void run_batch(struct hetmem_fence_work *batch)
{
	struct hetmem_fence_work *work;
	bool cookie = dma_fence_begin_signalling();

	__atomic_store_n(&fw.inflight, batch, __ATOMIC_RELAXED);
	while ((work = __atomic_load_n(&fw.inflight, __ATOMIC_RELAXED))) {
		/* After func starts, @work may be freed or queued again. */
		__atomic_store_n(&fw.inflight, work->next, __ATOMIC_RELAXED);
		__atomic_store_n(&work->pending, 0, __ATOMIC_RELEASE);
		work->func(work);
	}
	dma_fence_end_signalling(cookie);
}

static void executor_sleep(void)
{
	__atomic_store_n(&fw.idle, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&fw.head, __ATOMIC_SEQ_CST)) {
		__atomic_store_n(&fw.idle, 0, __ATOMIC_RELAXED);
		return;
	}
	hetmem_futex_wait(&fw.idle, 1, -1, false);
}

static void *executor_main(void *arg)
{
	struct hetmem_fence_work *batch;

	in_executor = true;
	for (;;) {
		batch = take_batch();
		if (batch)
			run_batch(batch);
		else
			executor_sleep();
	}
	return NULL;
}

static void wake_executor(void)
{
	if (__atomic_load_n(&fw.idle, __ATOMIC_SEQ_CST) &&
	    __atomic_exchange_n(&fw.idle, 0, __ATOMIC_SEQ_CST))
		hetmem_futex_wake(&fw.idle, 1);
}

/* Append @rest (oldest first) behind everything queued: it is older. */
static void requeue_oldest(struct hetmem_fence_work *rest)
{
	struct hetmem_fence_work **tail = &fw.head, *lifo = NULL, *next;

	for (; rest; rest = next) {
		next = rest->next;
		rest->next = lifo;
		lifo = rest;
	}
	while (*tail)
		tail = &(*tail)->next;
	*tail = lifo;
}

static int create_executor(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thread;
	int ret;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&thread, &attr, executor_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret)
		return -ret;
	pthread_setname_np(thread, "hetmem-fence");
	return 0;
}

static void child_after_fork(void)
{
	struct hetmem_fence_work *rest = fw.inflight;

	/* One thread exists now: plain accesses are enough. */
	fw.inflight = NULL;
	requeue_oldest(rest);
	fw.idle = 0;
	fw.started = false;
	pthread_mutex_init(&fw.start_lock, NULL);
	if (fw.head)
		hetmem_fence_work_start();
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, child_after_fork);
}

int hetmem_fence_work_start(void)
{
	int ret = 0;

	if (hetmem_likely(__atomic_load_n(&fw.started, __ATOMIC_ACQUIRE)))
		return 0;
	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&fw.start_lock);
	if (!fw.started) {
		ret = create_executor();
		if (!ret)
			__atomic_store_n(&fw.started, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&fw.start_lock);
	return ret;
}

bool hetmem_fence_work_queue(struct hetmem_fence_work *work)
{
	if (__atomic_exchange_n(&work->pending, 1, __ATOMIC_ACQ_REL))
		return false;
	push(work);
	/*
	 * Only a forked child that has not used containers since can get
	 * here without an executor; creating it is then worth the cost.
	 */
	if (hetmem_unlikely(!__atomic_load_n(&fw.started, __ATOMIC_ACQUIRE)))
		hetmem_fence_work_start();
	wake_executor();
	return true;
}

struct flush_barrier {
	struct hetmem_fence_work work;
	uint32_t done;
};

static void flush_barrier_func(struct hetmem_fence_work *work)
{
	struct flush_barrier *barrier =
		hetmem_container_of(work, struct flush_barrier, work);

	__atomic_store_n(&barrier->done, 1, __ATOMIC_RELEASE);
	/* A wake that arrives after the flusher left is harmless. */
	hetmem_futex_wake(&barrier->done, 1);
}

/* No executor could be created: the caller may run the items itself. */
static void run_queue_here(void)
{
	struct hetmem_fence_work *batch;

	while ((batch = take_batch()))
		run_batch(batch);
}

void hetmem_fence_work_flush(void)
{
	struct flush_barrier barrier = { .done = 0 };

	if (HETMEM_WARN(in_executor, "fence work flushed from a work item"))
		return;
	hetmem_might_sleep(HETMEM_RET_IP);
	if (hetmem_fence_work_start()) {
		run_queue_here();
		return;
	}
	hetmem_fence_work_init(&barrier.work, flush_barrier_func);
	hetmem_fence_work_queue(&barrier.work);
	while (!__atomic_load_n(&barrier.done, __ATOMIC_ACQUIRE))
		hetmem_futex_wait(&barrier.done, 0, -1, false);
}
