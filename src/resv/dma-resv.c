/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-resv: the fences of a shared buffer, behind a ww_mutex.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core/internal.h"
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/resv/dma-resv.h>

/**
 * DOC: Reservation objects
 *
 * A struct dma_resv is what the kernel attaches to every buffer that more
 * than one engine touches: a ww_mutex of the global Wait-Die class
 * reservation_ww_class, and a list of fences, each tagged with a usage
 * (kernel, write, read, bookkeep). Writers of the list hold the lock;
 * readers need no lock at all.
 *
 * The list is an array of (fence, usage) entries with a count and a
 * capacity. The usage lives in the two low bits of the fence pointer, as
 * in the kernel, so that one atomic store publishes both halves of an
 * entry. Capacity is only ever created by dma_resv_reserve_fences(), which
 * may allocate and fail; dma_resv_add_fence() then only consumes a slot
 * (or overwrites an entry it supersedes) and cannot fail. That split is
 * what lets a driver reserve early, where failing is still easy, and add
 * its fence late, inside the fence signalling critical section where
 * allocation is forbidden.
 *
 * An entry is overwritten in place when the new fence makes it redundant:
 * same context, a later-or-same seqno and an equal or stronger usage, or
 * when the old fence has already signalled. The usage of a context is
 * never weakened: a later READ fence of a context that last wrote is
 * appended beside the WRITE entry, not written over it.
 */

/**
 * DOC: RCU and the unlocked readers
 *
 * The pointer to the list is published with release semantics and read
 * with acquire semantics inside a hetmem_rcu_read_lock() section. A list
 * is never shrunk or reordered while it is published: entries only get
 * appended (the entry is stored before the count that makes it visible)
 * or replaced in place. Anything else - growth, dropping signalled
 * entries, dma_resv_copy_fences() - builds a new list, publishes it and
 * frees the old one with hetmem_call_rcu(), after every reader that might
 * still be walking it has left its read-side section.
 *
 * An unlocked reader snapshots the list pointer and its count, walks the
 * entries taking a reference on each fence it returns with
 * dma_fence_get_rcu() (which fails for a fence whose last reference is
 * being dropped), and starts over whenever the object's list pointer has
 * changed. A reader restarting says so through dma_resv_iter_is_restarted()
 * on the first fence it returns afterwards, so that callers accumulating
 * fences can throw away what they collected from the stale list.
 */

/**
 * DOC: Differences from the kernel's dma-resv
 *
 * - dma_resv_describe() prints to a stdio stream instead of a seq_file.
 * - Adding a fence without a reserved slot is a BUG() in the kernel. Here
 *   it is a warning, after which one slot is reserved on the spot so the
 *   fence is not lost (implicit synchronisation silently missing a fence
 *   would corrupt data); only if that allocation fails is the fence
 *   dropped, with a second warning.
 * - Reservations do not survive an unlock whenever the lock-dependency
 *   checker is enabled (the kernel does this in CONFIG_DEBUG_MUTEXES
 *   builds): dma_resv_unlock() shrinks the capacity to the count, so a
 *   driver that forgets to reserve under the same lock hold is caught in
 *   testing.
 * - New lists are sized exactly as computed (no rounding up to the
 *   allocator's bucket), which keeps growth deterministic for tests.
 * - dma_resv_wait_timeout() with a timeout of 0 only polls: the kernel
 *   gives each unsignalled fence one jiffy, hetmem gives it none. The
 *   return values are the same (1 all signalled, 0 otherwise).
 * - The lock-dependency graph is primed, on the first dma_resv_init() with
 *   the checker enabled, with "reservation acquire context -> reservation
 *   lock -> fence wait", as the kernel's dma_resv_lockdep() does at boot
 *   (without the mmap lock and reclaim links, which are not hetmem's).
 *   The priming runs on a short-lived thread of its own so that whatever
 *   the caller holds is not recorded as ordered before it.
 * - NULL objects, NULL fences and out-of-range usages are warned about and
 *   ignored (or rejected with -EINVAL where the function returns int).
 */

#define RESV_USAGE_MASK 0x3ul

/**
 * struct dma_resv_list - the fences of a reservation object
 * @rcu: deferred free once a replacement has been published
 * @num_fences: entries in use; stored with release after the entry
 * @max_fences: capacity; only used under the object's lock
 * @table: fence pointers with the usage in their two low bits
 */
struct dma_resv_list {
	struct hetmem_rcu_head rcu;
	uint32_t num_fences;
	uint32_t max_fences;
	uintptr_t table[];
};

/**
 * reservation_ww_class - the Wait-Die class of every reservation lock
 *
 * One class for all struct dma_resv locks, so that any set of buffers can
 * be locked in one acquire context with back-off on -EDEADLK.
 */
HETMEM_API DEFINE_WD_CLASS(reservation_ww_class);

static bool resv_usage_valid(enum dma_resv_usage usage)
{
	return (unsigned int)usage <= DMA_RESV_USAGE_BOOKKEEP;
}

/* The published list; the acquire pairs with resv_list_publish(). */
static struct dma_resv_list *resv_list(struct dma_resv *obj)
{
	return __atomic_load_n(&obj->fences, __ATOMIC_ACQUIRE);
}

static void resv_list_publish(struct dma_resv *obj, struct dma_resv_list *list)
{
	__atomic_store_n(&obj->fences, list, __ATOMIC_RELEASE);
}

/* Number of readable entries; the acquire pairs with the append. */
static uint32_t resv_list_count(struct dma_resv_list *list)
{
	return list ? __atomic_load_n(&list->num_fences, __ATOMIC_ACQUIRE) : 0;
}

static struct dma_fence *resv_entry(struct dma_resv_list *list, uint32_t i,
				    enum dma_resv_usage *usage)
{
	uintptr_t v = __atomic_load_n(&list->table[i], __ATOMIC_ACQUIRE);

	if (usage)
		*usage = (enum dma_resv_usage)(v & RESV_USAGE_MASK);
	return (struct dma_fence *)(v & ~RESV_USAGE_MASK);
}

/* The release orders the fence's initialisation before unlocked readers. */
static void resv_entry_set(struct dma_resv_list *list, uint32_t i,
			   struct dma_fence *fence, enum dma_resv_usage usage)
{
	__atomic_store_n(&list->table[i], (uintptr_t)fence | usage,
			 __ATOMIC_RELEASE);
}

static struct dma_resv_list *resv_list_alloc(size_t max)
{
	struct dma_resv_list *list;

	if (max > UINT32_MAX ||
	    max > (SIZE_MAX - sizeof(*list)) / sizeof(list->table[0]))
		return NULL;
	list = malloc(sizeof(*list) + max * sizeof(list->table[0]));
	if (!list)
		return NULL;
	list->num_fences = 0;
	list->max_fences = (uint32_t)max;
	return list;
}

static void resv_list_free_rcu(struct hetmem_rcu_head *head)
{
	free(hetmem_container_of(head, struct dma_resv_list, rcu));
}

/* Drop the list's references now and its memory after a grace period. */
static void resv_list_release(struct dma_resv_list *list)
{
	uint32_t i;

	if (!list)
		return;
	for (i = 0; i < list->num_fences; i++)
		dma_fence_put(resv_entry(list, i, NULL));
	hetmem_call_rcu(&list->rcu, resv_list_free_rcu);
}

/*
 * Built once per thread that runs it: ww_acquire_init + dma_resv_lock +
 * fence wait, i.e. the legal order every driver relies on when it waits
 * for fences under reservation locks. With it in the graph, taking a
 * reservation lock inside a signalling section closes a cycle at once,
 * even in a process that never waited under a reservation lock.
 */
static void *resv_lockdep_prime_thread(void *arg)
{
	struct ww_acquire_ctx ctx;
	struct dma_resv obj;
	int ret;

	dma_resv_init(&obj);
	ww_acquire_init(&ctx, &reservation_ww_class);
	ret = dma_resv_lock(&obj, &ctx);
	if (ret == -EDEADLK)
		dma_resv_lock_slow(&obj, &ctx);
	__dma_fence_might_wait();
	ww_mutex_unlock(&obj.lock);
	ww_acquire_fini(&ctx);
	dma_resv_fini(&obj);
	return arg;
}

static bool resv_lockdep_primed;
static pthread_mutex_t resv_lockdep_prime_lock = PTHREAD_MUTEX_INITIALIZER;

/* Only when the checker is on: priming a disabled checker records nothing. */
static void resv_lockdep_prime(void)
{
	pthread_t thread;

	if (__atomic_load_n(&resv_lockdep_primed, __ATOMIC_ACQUIRE) ||
	    !hetmem_lockdep_enabled())
		return;
	pthread_mutex_lock(&resv_lockdep_prime_lock);
	/* Set first: the priming thread's own dma_resv_init() comes here. */
	if (!resv_lockdep_primed) {
		__atomic_store_n(&resv_lockdep_primed, true, __ATOMIC_RELEASE);
		if (!pthread_create(&thread, NULL, resv_lockdep_prime_thread,
				    NULL))
			pthread_join(thread, NULL);
	}
	pthread_mutex_unlock(&resv_lockdep_prime_lock);
}

/**
 * dma_resv_init() - initialise a reservation object
 * @obj: the object
 *
 * The lock starts unlocked in reservation_ww_class and the fence list
 * empty (no list is allocated until the first dma_resv_reserve_fences()).
 * The first call with the lock-dependency checker enabled also primes the
 * checker's graph with the order "reservation acquire context ->
 * reservation lock -> fence wait".
 *
 * Context: Any thread that may sleep (the first call may start and join a
 * short-lived thread). @obj must not be in use.
 * Return: nothing.
 */
HETMEM_API void dma_resv_init(struct dma_resv *obj)
{
	if (HETMEM_WARN_ON(!obj))
		return;
	ww_mutex_init(&obj->lock, &reservation_ww_class);
	__atomic_store_n(&obj->fences, NULL, __ATOMIC_RELAXED);
	resv_lockdep_prime();
}

/**
 * dma_resv_fini() - tear down a reservation object
 * @obj: the object; unlocked, and no other thread uses it any more
 *
 * Drops the reference of every fence still in the list. The list memory
 * itself is freed after an RCU grace period.
 *
 * Context: Any thread. @obj must be unlocked.
 * Return: nothing.
 */
HETMEM_API void dma_resv_fini(struct dma_resv *obj)
{
	if (HETMEM_WARN_ON(!obj))
		return;
	HETMEM_WARN(ww_mutex_is_locked(&obj->lock),
		    "dma_resv_fini: object still locked");
	resv_list_release(resv_list(obj));
	__atomic_store_n(&obj->fences, NULL, __ATOMIC_RELAXED);
	ww_mutex_destroy(&obj->lock);
}

/**
 * dma_resv_reset_max_fences() - forget the reserved but unused slots
 * @obj: the object, locked
 *
 * Called by dma_resv_unlock(). While the lock-dependency checker is
 * enabled the capacity of the list is cut down to the number of fences in
 * it, so that a dma_resv_add_fence() relying on a reservation made under
 * an earlier lock hold is caught. Otherwise it does nothing; the kernel
 * does the same only in debug builds.
 *
 * Context: @obj locked by the caller.
 * Return: nothing.
 */
HETMEM_API void dma_resv_reset_max_fences(struct dma_resv *obj)
{
	struct dma_resv_list *list;

	if (!obj || !hetmem_lockdep_enabled())
		return;
	dma_resv_assert_held(obj);
	list = resv_list(obj);
	if (list)
		list->max_fences = list->num_fences;
}

/*
 * Move the live entries of @old into @new, in order; signalled ones are
 * parked at the tail of @new's table, from the returned index on, so that
 * their references can be dropped once @new is published.
 */
static uint32_t resv_list_compact(struct dma_resv_list *new,
				  struct dma_resv_list *old)
{
	uint32_t i, j = 0, k = new->max_fences;
	enum dma_resv_usage usage;
	struct dma_fence *fence;

	for (i = 0; old && i < old->num_fences; i++) {
		fence = resv_entry(old, i, &usage);
		if (dma_fence_is_signaled(fence))
			resv_entry_set(new, --k, fence, usage);
		else
			resv_entry_set(new, j++, fence, usage);
	}
	new->num_fences = j;
	return k;
}

static size_t roundup_pow_of_two(size_t n)
{
	size_t p = 1;

	while (p < n && p <= SIZE_MAX / 2)
		p <<= 1;
	return p;
}

/* Capacity of the list that replaces @old; 0 when @old has room already. */
static size_t resv_new_capacity(struct dma_resv_list *old, unsigned int num)
{
	size_t want, doubled;

	if (!old || !old->max_fences) {
		want = roundup_pow_of_two(num);
		return want > 4 ? want : 4;
	}
	want = (size_t)old->num_fences + num;
	if (want <= old->max_fences)
		return 0;
	doubled = (size_t)old->max_fences * 2;
	return want > doubled ? want : doubled;
}

/**
 * dma_resv_reserve_fences() - make room for fences to be added
 * @obj: the object, locked
 * @num_fences: how many dma_resv_add_fence() calls must be guaranteed to
 *	succeed, in addition to the fences already in the list
 *
 * Nothing happens when the list already has @num_fences free slots.
 * Otherwise a list of capacity max(count + @num_fences, twice the old
 * capacity) (at least 4, and a power of two, for a first list) replaces
 * the old one: unsignalled entries are copied in order, signalled ones are
 * dropped, and the old list is freed after an RCU grace period. Reserved
 * slots are only guaranteed until the lock is released.
 *
 * Context: @obj locked by the caller; may allocate.
 * Return: 0 on success; -EINVAL (with a warning) when @num_fences is 0 or
 * @obj is NULL; -ENOMEM when the new list cannot be allocated, in which
 * case the object is unchanged.
 */
HETMEM_API int dma_resv_reserve_fences(struct dma_resv *obj,
				       unsigned int num_fences)
{
	struct dma_resv_list *old, *new;
	uint32_t first_signaled, i;
	size_t max;

	if (HETMEM_WARN_ON(!obj) || HETMEM_WARN_ON(!num_fences))
		return -EINVAL;
	dma_resv_assert_held(obj);
	old = resv_list(obj);
	max = resv_new_capacity(old, num_fences);
	if (!max)
		return 0;
	new = resv_list_alloc(max);
	if (!new)
		return -ENOMEM;
	first_signaled = resv_list_compact(new, old);
	resv_list_publish(obj, new);
	if (!old)
		return 0;
	/* Readers of @old may still take these; their memory waits for RCU. */
	for (i = first_signaled; i < new->max_fences; i++)
		dma_fence_put(resv_entry(new, i, NULL));
	hetmem_call_rcu(&old->rcu, resv_list_free_rcu);
	return 0;
}

/*
 * Overwrite the first entry @fence makes redundant. Our reference on
 * @fence moves into the list; the one on the entry it replaces is dropped.
 */
static bool resv_list_replace(struct dma_resv_list *list,
			      struct dma_fence *fence,
			      enum dma_resv_usage usage)
{
	enum dma_resv_usage old_usage;
	struct dma_fence *old;
	uint32_t i;

	for (i = 0; list && i < list->num_fences; i++) {
		old = resv_entry(list, i, &old_usage);
		if ((old->context == fence->context && old_usage >= usage &&
		     dma_fence_is_later_or_same(fence, old)) ||
		    dma_fence_is_signaled(old)) {
			resv_entry_set(list, i, fence, usage);
			dma_fence_put(old);
			return true;
		}
	}
	return false;
}

/* The caller forgot to reserve: make a slot rather than lose the fence. */
static struct dma_resv_list *resv_list_slot(struct dma_resv *obj)
{
	struct dma_resv_list *list = resv_list(obj);

	if (list && list->num_fences < list->max_fences)
		return list;
	hetmem_warn(__FILE__, __LINE__, __func__,
		    "dma_resv_add_fence without a reserved slot (%u of %u used)",
		    list ? list->num_fences : 0, list ? list->max_fences : 0);
	if (dma_resv_reserve_fences(obj, 1))
		return NULL;
	return resv_list(obj);
}

/**
 * dma_resv_add_fence() - add a fence to a reservation object
 * @obj: the object, locked, with a slot reserved by
 *	dma_resv_reserve_fences() under the current lock hold
 * @fence: the fence; the object takes its own reference
 * @usage: how the fence uses the buffer
 *
 * The first entry that @fence makes redundant is overwritten in place: an
 * entry of the same context with an equal or weaker usage and an earlier
 * or equal seqno, or any already signalled entry. No slot is consumed
 * then. Otherwise @fence is appended; the entry is stored before the count
 * that makes it visible to unlocked readers. A fence of the same context
 * with a weaker usage than an existing entry, or an older one, is appended
 * beside it, so the usage of a context is never downgraded.
 *
 * Container fences (arrays, chains) should be added member by member and
 * are warned about (and then added anyway, as in the kernel). Adding with
 * no reserved slot is a bug, warned about; see the DOC section on
 * differences for what happens next.
 *
 * Unlocked readers see @fence as soon as this returns, before the unlock:
 * the code that completes @fence must already be treated as a fence
 * signalling critical section.
 *
 * Context: @obj locked by the caller. Does not allocate unless the caller
 * forgot to reserve. May signal entries through their ops->signaled.
 * Return: nothing.
 */
HETMEM_API void dma_resv_add_fence(struct dma_resv *obj,
				   struct dma_fence *fence,
				   enum dma_resv_usage usage)
{
	struct dma_resv_list *list;
	uint32_t n;

	if (HETMEM_WARN_ON(!obj || !fence) ||
	    HETMEM_WARN_ON(!resv_usage_valid(usage)))
		return;
	dma_resv_assert_held(obj);
	HETMEM_WARN(dma_fence_is_container(fence),
		    "dma_resv_add_fence: container fence added");
	dma_fence_get(fence);
	if (resv_list_replace(resv_list(obj), fence, usage))
		return;
	list = resv_list_slot(obj);
	if (HETMEM_WARN(!list, "dma_resv_add_fence: fence dropped (no memory)")) {
		dma_fence_put(fence);
		return;
	}
	n = list->num_fences;
	resv_entry_set(list, n, fence, usage);
	__atomic_store_n(&list->num_fences, n + 1, __ATOMIC_RELEASE);
}

/**
 * dma_resv_replace_fences() - replace every fence of a context
 * @obj: the object, locked
 * @context: the fence context whose entries are rewritten
 * @replacement: the fence taking their place; one reference per entry
 * @usage: the usage every rewritten entry gets
 *
 * Used when the fences of @context are superseded, e.g. a preemption
 * fence swapped for the fence of the work that replaced it. Every entry of
 * @context is rewritten, signalled or not, in place: no slot is needed and
 * entries are not merged.
 *
 * Context: @obj locked by the caller. Does not allocate.
 * Return: nothing.
 */
HETMEM_API void dma_resv_replace_fences(struct dma_resv *obj, uint64_t context,
					struct dma_fence *replacement,
					enum dma_resv_usage usage)
{
	enum dma_resv_usage old_usage;
	struct dma_resv_list *list;
	struct dma_fence *old;
	uint32_t i;

	if (HETMEM_WARN_ON(!obj || !replacement) ||
	    HETMEM_WARN_ON(!resv_usage_valid(usage)))
		return;
	dma_resv_assert_held(obj);
	list = resv_list(obj);
	for (i = 0; list && i < list->num_fences; i++) {
		old = resv_entry(list, i, &old_usage);
		if (old->context != context)
			continue;
		resv_entry_set(list, i, dma_fence_get(replacement), usage);
		dma_fence_put(old);
	}
}

/* Start over on the list currently published. */
static void resv_iter_restart_unlocked(struct dma_resv_iter *cursor)
{
	cursor->index = 0;
	cursor->fences = resv_list(cursor->obj);
	cursor->num_fences = resv_list_count(cursor->fences);
	cursor->is_restarted = true;
}

/*
 * Advance to the next unsignalled entry the cursor's usage covers, with a
 * reference on it. A fence whose last reference is going away means the
 * list was replaced under us: start over on the new one.
 */
static void resv_iter_walk_unlocked(struct dma_resv_iter *cursor)
{
	struct dma_fence *fence;

	if (!cursor->fences)
		return;
	for (;;) {
		dma_fence_put(cursor->fence);
		cursor->fence = NULL;
		if (cursor->index >= cursor->num_fences)
			return;
		fence = resv_entry(cursor->fences, cursor->index++,
				   &cursor->fence_usage);
		cursor->fence = dma_fence_get_rcu(fence);
		if (!cursor->fence) {
			resv_iter_restart_unlocked(cursor);
			continue;
		}
		if (cursor->fence_usage <= cursor->usage &&
		    !dma_fence_is_signaled(cursor->fence))
			return;
	}
}

/**
 * dma_resv_iter_first_unlocked() - first fence of an unlocked walk
 * @cursor: iterator set up with dma_resv_iter_begin()
 *
 * Snapshots the list and its count and returns the first unsignalled
 * fence whose usage is covered by the cursor's, holding a reference in the
 * cursor. Starts over until the snapshot is the list the object still
 * publishes. dma_resv_iter_is_restarted() is true afterwards.
 *
 * Context: Any thread, no lock needed. May signal fences through their
 * ops->signaled. Must be paired with dma_resv_iter_end().
 * Return: the fence, valid until the next call on @cursor or
 * dma_resv_iter_end(); NULL when there is none.
 */
HETMEM_API struct dma_fence *dma_resv_iter_first_unlocked(struct dma_resv_iter *cursor)
{
	hetmem_rcu_read_lock();
	do {
		resv_iter_restart_unlocked(cursor);
		resv_iter_walk_unlocked(cursor);
	} while (resv_list(cursor->obj) != cursor->fences);
	hetmem_rcu_read_unlock();
	return cursor->fence;
}

/**
 * dma_resv_iter_next_unlocked() - next fence of an unlocked walk
 * @cursor: iterator after dma_resv_iter_first_unlocked()
 *
 * Drops the reference on the previous fence and returns the next one. If
 * the object published another list meanwhile (growth by
 * dma_resv_reserve_fences(), dma_resv_copy_fences()), the walk starts over
 * on the new list, fences already returned come again, and
 * dma_resv_iter_is_restarted() reports it for the first of them. Fences
 * appended to the snapshot after it was taken are not returned.
 *
 * Context: Any thread, no lock needed. May signal fences through their
 * ops->signaled.
 * Return: the fence, valid until the next call on @cursor or
 * dma_resv_iter_end(); NULL at the end.
 */
HETMEM_API struct dma_fence *dma_resv_iter_next_unlocked(struct dma_resv_iter *cursor)
{
	bool restart;

	hetmem_rcu_read_lock();
	cursor->is_restarted = false;
	restart = resv_list(cursor->obj) != cursor->fences;
	do {
		if (restart)
			resv_iter_restart_unlocked(cursor);
		resv_iter_walk_unlocked(cursor);
		restart = true;
	} while (resv_list(cursor->obj) != cursor->fences);
	hetmem_rcu_read_unlock();
	return cursor->fence;
}

/**
 * dma_resv_iter_first() - first fence of a locked walk
 * @cursor: iterator set up with dma_resv_iter_begin()
 *
 * Under the lock the list cannot change, so no reference is taken and the
 * walk never restarts. Signalled fences are returned too.
 * dma_resv_iter_is_restarted() is true for the first fence only.
 *
 * Context: The cursor's object locked by the caller.
 * Return: the first fence whose usage is covered by the cursor's, borrowed
 * from the list; NULL when there is none.
 */
HETMEM_API struct dma_fence *dma_resv_iter_first(struct dma_resv_iter *cursor)
{
	struct dma_fence *fence;

	dma_resv_assert_held(cursor->obj);
	cursor->index = 0;
	cursor->fences = resv_list(cursor->obj);
	fence = dma_resv_iter_next(cursor);
	cursor->is_restarted = true;
	return fence;
}

/**
 * dma_resv_iter_next() - next fence of a locked walk
 * @cursor: iterator after dma_resv_iter_first()
 *
 * Context: The cursor's object locked by the caller.
 * Return: the next fence whose usage is covered by the cursor's, borrowed
 * from the list, signalled or not; NULL at the end.
 */
HETMEM_API struct dma_fence *dma_resv_iter_next(struct dma_resv_iter *cursor)
{
	struct dma_fence *fence;

	dma_resv_assert_held(cursor->obj);
	cursor->is_restarted = false;
	while (cursor->fences && cursor->index < cursor->fences->num_fences) {
		fence = resv_entry(cursor->fences, cursor->index++,
				   &cursor->fence_usage);
		if (cursor->fence_usage <= cursor->usage)
			return fence;
	}
	return NULL;
}

/*
 * Rebuild the copy from scratch: @cursor restarted, so what was collected
 * came from a list that is no longer published.
 */
static struct dma_resv_list *resv_copy_restart(struct dma_resv_list *list,
					       struct dma_resv_iter *cursor)
{
	resv_list_release(list);
	return resv_list_alloc(cursor->num_fences);
}

/**
 * dma_resv_copy_fences() - make @dst's fences a copy of @src's
 * @dst: destination, locked
 * @src: source; no lock needed
 *
 * Every unsignalled fence of @src, of every usage, is copied with its
 * usage into a new list that then replaces @dst's (whose references are
 * dropped). An empty @src leaves @dst with no list at all.
 *
 * Context: @dst locked by the caller; may allocate. May signal fences of
 * @src through their ops->signaled.
 * Return: 0 on success; -ENOMEM if the copy cannot be allocated, in which
 * case @dst is unchanged; -EINVAL (with a warning) for a NULL object.
 */
HETMEM_API int dma_resv_copy_fences(struct dma_resv *dst, struct dma_resv *src)
{
	struct dma_resv_list *list = NULL, *old;
	struct dma_resv_iter cursor;
	struct dma_fence *fence;

	if (HETMEM_WARN_ON(!dst || !src))
		return -EINVAL;
	dma_resv_assert_held(dst);
	dma_resv_iter_begin(&cursor, src, DMA_RESV_USAGE_BOOKKEEP);
	dma_resv_for_each_fence_unlocked(&cursor, fence) {
		if (dma_resv_iter_is_restarted(&cursor)) {
			list = resv_copy_restart(list, &cursor);
			if (!list)
				goto err_iter_end;
		}
		resv_entry_set(list, list->num_fences++, dma_fence_get(fence),
			       dma_resv_iter_usage(&cursor));
	}
	dma_resv_iter_end(&cursor);
	old = resv_list(dst);
	resv_list_publish(dst, list);
	resv_list_release(old);
	return 0;

err_iter_end:
	dma_resv_iter_end(&cursor);
	return -ENOMEM;
}

static void put_fence_array(struct dma_fence **fences, unsigned int count)
{
	while (count)
		dma_fence_put(fences[--count]);
}

/* Start the collection over, with room for every fence of the new list. */
static int resv_get_fences_restart(struct dma_resv_iter *cursor,
				   unsigned int *num_fences,
				   struct dma_fence ***fences)
{
	struct dma_fence **grown;

	put_fence_array(*fences, *num_fences);
	*num_fences = 0;
	grown = realloc(*fences, ((size_t)cursor->num_fences + 1) *
				 sizeof(**fences));
	if (!grown)
		return -ENOMEM;
	*fences = grown;
	return 0;
}

/**
 * dma_resv_get_fences() - snapshot the unsignalled fences of an object
 * @obj: the object; no lock needed
 * @usage: fences of this usage and the stronger ones are returned
 * @num_fences: set to the number of fences returned
 * @fences: set to a malloc()ed array of them, NULL when there are none
 *
 * The caller owns the array (free()) and one reference on each fence.
 *
 * Context: Any thread that may allocate. May signal fences through their
 * ops->signaled.
 * Return: 0 on success; -ENOMEM, with *@fences NULL and *@num_fences 0;
 * -EINVAL (with a warning) for NULL arguments or a bad @usage.
 */
HETMEM_API int dma_resv_get_fences(struct dma_resv *obj,
				   enum dma_resv_usage usage,
				   unsigned int *num_fences,
				   struct dma_fence ***fences)
{
	struct dma_resv_iter cursor;
	struct dma_fence *fence;

	if (HETMEM_WARN_ON(!obj || !num_fences || !fences) ||
	    HETMEM_WARN_ON(!resv_usage_valid(usage)))
		return -EINVAL;
	*num_fences = 0;
	*fences = NULL;
	dma_resv_iter_begin(&cursor, obj, usage);
	dma_resv_for_each_fence_unlocked(&cursor, fence) {
		if (dma_resv_iter_is_restarted(&cursor) &&
		    resv_get_fences_restart(&cursor, num_fences, fences))
			goto err_free_array;
		(*fences)[(*num_fences)++] = dma_fence_get(fence);
	}
	dma_resv_iter_end(&cursor);
	return 0;

err_free_array:
	dma_resv_iter_end(&cursor);
	free(*fences);
	*fences = NULL;
	return -ENOMEM;
}

/**
 * dma_resv_get_singleton() - one fence standing for all of an object's
 * @obj: the object; no lock needed
 * @usage: fences of this usage and the stronger ones are covered
 * @fence: set to NULL (nothing to wait for), to the only unsignalled
 *	fence, or to a new fence array (fresh context, seqno 1) that
 *	signals once every fence has
 *
 * The caller owns one reference on *@fence. Never add a returned array to
 * a reservation object: containers do not belong there.
 *
 * Context: Any thread that may allocate.
 * Return: 0 on success; -ENOMEM (*@fence is left untouched); -EINVAL (with
 * a warning) for NULL arguments or a bad @usage.
 */
HETMEM_API int dma_resv_get_singleton(struct dma_resv *obj,
				      enum dma_resv_usage usage,
				      struct dma_fence **fence)
{
	struct dma_fence_array *array;
	struct dma_fence **fences;
	unsigned int count;
	int ret;

	if (HETMEM_WARN_ON(!fence))
		return -EINVAL;
	ret = dma_resv_get_fences(obj, usage, &count, &fences);
	if (ret)
		return ret;
	if (count <= 1) {
		*fence = count ? fences[0] : NULL;
		free(fences);
		return 0;
	}
	array = dma_fence_array_create((int)count, fences,
				       dma_fence_context_alloc(1), 1, false);
	if (!array)
		goto err_put_fences;
	*fence = &array->base;
	return 0;

err_put_fences:
	put_fence_array(fences, count);
	free(fences);
	return -ENOMEM;
}

/**
 * dma_resv_wait_timeout() - wait for the fences of an object
 * @obj: the object; no lock needed
 * @usage: fences of this usage and the stronger ones are waited for
 * @intr: whether a signal handler running in this thread interrupts
 * @timeout: jiffies (1 ms) to wait in total, HETMEM_MAX_SCHEDULE_TIMEOUT
 *	for no limit, 0 to only test
 *
 * Waits for each unsignalled fence in turn, each wait getting what the
 * previous ones left of @timeout.
 *
 * Context: May sleep; not inside a fence signalling critical section, not
 * under a spinlock (the checker reports both). Waiting while holding
 * reservation locks is allowed.
 * Return: the remaining timeout (at least 1) once every fence signalled,
 * @timeout itself (or 1 when it is 0) when there was nothing to wait for;
 * 0 on timeout; -ERESTARTSYS when interrupted; a custom ops->wait's
 * negative value; -EINVAL (with a warning) for a NULL @obj or bad @usage.
 */
HETMEM_API long dma_resv_wait_timeout(struct dma_resv *obj,
				      enum dma_resv_usage usage, bool intr,
				      unsigned long timeout)
{
	long ret = timeout ? (long)timeout : 1;
	struct dma_resv_iter cursor;
	struct dma_fence *fence;

	if (HETMEM_WARN_ON(!obj) || HETMEM_WARN_ON(!resv_usage_valid(usage)))
		return -EINVAL;
	dma_resv_iter_begin(&cursor, obj, usage);
	dma_resv_for_each_fence_unlocked(&cursor, fence) {
		/* A zero timeout only polls; see the DOC on differences. */
		ret = dma_fence_wait_timeout(fence, intr, timeout ? ret : 0);
		if (ret <= 0)
			break;
	}
	dma_resv_iter_end(&cursor);
	return ret;
}

/**
 * dma_resv_set_deadline() - pass a deadline hint to an object's fences
 * @obj: the object; no lock needed
 * @usage: fences of this usage and the stronger ones get the hint
 * @deadline: CLOCK_MONOTONIC time by which completion is wanted
 *
 * Forwards to dma_fence_set_deadline() on every unsignalled fence.
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void dma_resv_set_deadline(struct dma_resv *obj,
				      enum dma_resv_usage usage,
				      hetmem_ktime_t deadline)
{
	struct dma_resv_iter cursor;
	struct dma_fence *fence;

	if (HETMEM_WARN_ON(!obj) || HETMEM_WARN_ON(!resv_usage_valid(usage)))
		return;
	dma_resv_iter_begin(&cursor, obj, usage);
	dma_resv_for_each_fence_unlocked(&cursor, fence)
		dma_fence_set_deadline(fence, deadline);
	dma_resv_iter_end(&cursor);
}

/**
 * dma_resv_test_signaled() - have all of an object's fences signalled
 * @obj: the object; no lock needed
 * @usage: fences of this usage and the stronger ones are tested
 *
 * Context: Any thread that may run fence callbacks (ops->signaled may
 * signal a fence here).
 * Return: true when no unsignalled fence of a covered usage is left
 * (also for a NULL @obj, with a warning), false otherwise.
 */
HETMEM_API bool dma_resv_test_signaled(struct dma_resv *obj,
				       enum dma_resv_usage usage)
{
	struct dma_resv_iter cursor;
	struct dma_fence *fence;

	if (HETMEM_WARN_ON(!obj) || HETMEM_WARN_ON(!resv_usage_valid(usage)))
		return true;
	dma_resv_iter_begin(&cursor, obj, usage);
	fence = dma_resv_iter_first_unlocked(&cursor);
	dma_resv_iter_end(&cursor);
	return !fence;
}

/**
 * dma_resv_describe() - print the fences of an object
 * @obj: the object, locked
 * @seq: stdio stream (the kernel writes to a seq_file)
 *
 * One line per KERNEL, WRITE and READ fence (BOOKKEEP fences are left
 * out), signalled ones included: a tab, the usage ("kernel", "write",
 * "read"), " fence:", then the dma_fence_describe() text, e.g.
 * "\twrite fence:drv tl seq 3 unsignalled".
 *
 * Context: @obj locked by the caller. May signal fences through their
 * ops->signaled.
 * Return: nothing.
 */
HETMEM_API void dma_resv_describe(struct dma_resv *obj, FILE *seq)
{
	static const char *const usage_name[] = {
		[DMA_RESV_USAGE_KERNEL] = "kernel",
		[DMA_RESV_USAGE_WRITE] = "write",
		[DMA_RESV_USAGE_READ] = "read",
		[DMA_RESV_USAGE_BOOKKEEP] = "bookkeep",
	};
	struct dma_resv_iter cursor;
	struct dma_fence *fence;

	if (HETMEM_WARN_ON(!obj || !seq))
		return;
	dma_resv_for_each_fence(&cursor, obj, DMA_RESV_USAGE_READ, fence) {
		fprintf(seq, "\t%s fence:",
			usage_name[dma_resv_iter_usage(&cursor)]);
		dma_fence_describe(fence, seq);
	}
}
