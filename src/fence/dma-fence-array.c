/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-fence-array: one fence standing for a set of fences.
 */
#include <stdlib.h>

#include "fence/internal.h"
#include "fence/fence-work.h"

/**
 * DOC: Array signalling
 *
 * An array counts the members it still needs in @num_pending: all of them,
 * or one with @signal_on_any. Nothing happens until somebody needs the
 * array to signal on its own (a callback, a wait, enable_sw_signaling).
 * Then enable_signaling, running under the array lock, installs one
 * callback per member, each holding its own reference to the array. A
 * member found already signalled instead gives its reference back and
 * counts down at once; if that completes the array, enable_signaling
 * reports "already done" and the core signals the array on the spot (in
 * any-mode the first such member ends the loop: later members get no
 * callback).
 *
 * A member callback records the member's error and counts down. The one
 * that reaches zero does not signal the array (it runs under the member's
 * lock); it queues the array's deferred work, handing over its reference,
 * and the executor thread signals the array and drops that reference.
 * Meanwhile the signaled() op already answers "signalled" from the count,
 * so dma_fence_is_signaled() does not depend on the executor's timing.
 * Before signalling was enabled, signaled() polls the members instead.
 */

/**
 * DOC: Array errors
 *
 * The array's error field holds the private value PENDING_ERROR (+1) until
 * the outcome is known. The first member that signals with an error
 * replaces it atomically, so the first error wins; whoever signals the
 * array first turns a remaining PENDING_ERROR into 0. The +1 is therefore
 * never visible through dma_fence_get_status(), which reads the error only
 * once the fence is signalled. In any-mode an error of a second member can
 * still win if it lands before the first member's deferred signal runs,
 * exactly as in the kernel.
 */

/**
 * DOC: Differences from the kernel
 *
 * - Deferred signalling uses the fence layer's executor thread
 *   (fence-work.c) instead of irq_work.
 * - The structure records how many callback slots were allocated
 *   (@num_slots). dma_fence_array_init() given more members than slots, or
 *   NULL @fences with members, warns and produces an array that signals
 *   with -EINVAL as soon as signalling is enabled, instead of writing past
 *   the allocation or dereferencing NULL. An array with no members warns as
 *   in the kernel and then signals successfully when enabled, so that a
 *   wait on it ends (the kernel's never would).
 * - dma_fence_array_alloc() fails (returns NULL) if the executor thread
 *   cannot be created, so that an array that exists can always signal.
 */

#define PENDING_ERROR 1

static struct dma_fence_array *fence_to_array(struct dma_fence *fence)
{
	return hetmem_container_of(fence, struct dma_fence_array, base);
}

static const char *array_get_driver_name(struct dma_fence *fence)
{
	return "dma_fence_array";
}

static const char *array_get_timeline_name(struct dma_fence *fence)
{
	return "unbound";
}

/*
 * Swing the error from the sentinel to @error. Tested with a plain atomic
 * load first: once the sentinel is gone (always the case after signalling)
 * nothing is written, so readers of a signalled fence's error never race
 * with a late member callback.
 */
static void array_resolve_error(struct dma_fence_array *array, int error)
{
	int expected = PENDING_ERROR;

	if (__atomic_load_n(&array->base.error, __ATOMIC_ACQUIRE) != PENDING_ERROR)
		return;
	__atomic_compare_exchange_n(&array->base.error, &expected, error, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* The first non-zero member error replaces the sentinel; later ones lose. */
static void array_set_pending_error(struct dma_fence_array *array, int error)
{
	if (error)
		array_resolve_error(array, error);
}

/* No member failed: make the outcome "success" before signalling. */
static void array_clear_pending_error(struct dma_fence_array *array)
{
	array_resolve_error(array, 0);
}

/* True when this was the count-down that completed the array. */
static bool array_count_down(struct dma_fence_array *array)
{
	return __atomic_sub_fetch(&array->num_pending, 1, __ATOMIC_ACQ_REL) == 0;
}

static void array_work_func(struct hetmem_fence_work *work)
{
	struct dma_fence_array *array =
		hetmem_container_of(work, struct dma_fence_array, work);

	array_clear_pending_error(array);
	dma_fence_signal(&array->base);
	/* The reference the completing member callback handed over. */
	dma_fence_put(&array->base);
}

static void array_member_signaled(struct dma_fence *member,
				  struct dma_fence_cb *cb)
{
	struct dma_fence_array_cb *slot =
		hetmem_container_of(cb, struct dma_fence_array_cb, cb);
	struct dma_fence_array *array = slot->array;

	array_set_pending_error(array, member->error);
	if (array_count_down(array))
		hetmem_fence_work_queue(&array->work);
	else
		dma_fence_put(&array->base);
}

/* Degenerate arrays (warned about at init) have no callback to wait for. */
static bool array_is_degenerate(struct dma_fence_array *array)
{
	return array->num_fences == 0 || array->num_fences > array->num_slots;
}

static bool array_enable_signaling(struct dma_fence *fence)
{
	struct dma_fence_array *array = fence_to_array(fence);
	struct dma_fence_array_cb *slot = array->callbacks;
	unsigned int i;

	if (array_is_degenerate(array)) {
		array_clear_pending_error(array);
		return false;
	}
	for (i = 0; i < array->num_fences; i++, slot++) {
		slot->array = array;
		/* Each installed callback owns a reference to the array. */
		dma_fence_get(&array->base);
		if (!dma_fence_add_callback(array->fences[i], &slot->cb,
					    array_member_signaled))
			continue;
		array_set_pending_error(array, array->fences[i]->error);
		dma_fence_put(&array->base);
		if (array_count_down(array)) {
			array_clear_pending_error(array);
			return false;
		}
	}
	return true;
}

/* Before enabling, no callback counts for us: ask the members. */
static bool array_poll_members(struct dma_fence_array *array, int needed)
{
	unsigned int i;

	for (i = 0; i < array->num_fences; i++)
		if (dma_fence_is_signaled(array->fences[i]) && --needed <= 0)
			return true;
	return false;
}

static bool array_signaled(struct dma_fence *fence)
{
	struct dma_fence_array *array = fence_to_array(fence);
	int pending = __atomic_load_n(&array->num_pending, __ATOMIC_ACQUIRE);
	bool done;

	if (array_is_degenerate(array))
		done = true;
	else if (__atomic_load_n(&fence->flags, __ATOMIC_ACQUIRE) &
		 (1UL << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT))
		done = pending <= 0;
	else
		done = array_poll_members(array, pending);
	if (done)
		array_clear_pending_error(array);
	return done;
}

static void array_release(struct dma_fence *fence)
{
	struct dma_fence_array *array = fence_to_array(fence);
	unsigned int i;

	for (i = 0; i < array->num_fences; i++)
		dma_fence_put(array->fences[i]);
	free(array->fences);
	/* base is the first member: this frees the whole array. */
	dma_fence_free(fence);
}

static void array_set_deadline(struct dma_fence *fence,
			       hetmem_ktime_t deadline)
{
	struct dma_fence_array *array = fence_to_array(fence);
	unsigned int i;

	for (i = 0; i < array->num_fences; i++)
		dma_fence_set_deadline(array->fences[i], deadline);
}

_Static_assert(offsetof(struct dma_fence_array, base) == 0,
	       "dma_fence_free() must free the array allocation");

/**
 * dma_fence_array_ops - the ops table of every dma_fence_array
 *
 * Exported so that dma_fence_is_array() can recognise arrays by identity.
 */
HETMEM_API const struct dma_fence_ops dma_fence_array_ops = {
	.get_driver_name = array_get_driver_name,
	.get_timeline_name = array_get_timeline_name,
	.enable_signaling = array_enable_signaling,
	.signaled = array_signaled,
	.release = array_release,
	.set_deadline = array_set_deadline,
};

/**
 * dma_fence_array_alloc() - allocate an array for later initialisation
 * @num_fences: number of member slots
 *
 * Allocates zeroed memory with @num_fences callback slots, so that
 * dma_fence_array_init() can later run where allocating is not allowed
 * (inside a signalling section). Also makes sure the fence layer's
 * executor thread exists. Free an array that was never initialised with
 * free(); after dma_fence_array_init() only dma_fence_put() releases it.
 *
 * Context: Any thread that may allocate and block briefly.
 * Return: the array, or NULL if @num_fences is negative or too large, out
 * of memory, or the executor thread cannot be created.
 */
HETMEM_API struct dma_fence_array *dma_fence_array_alloc(int num_fences)
{
	struct dma_fence_array *array;
	size_t slots = (size_t)num_fences;

	if (num_fences < 0 || slots > (SIZE_MAX - sizeof(*array)) /
				      sizeof(array->callbacks[0]))
		return NULL;
	if (hetmem_fence_work_start())
		return NULL;
	array = calloc(1, sizeof(*array) + slots * sizeof(array->callbacks[0]));
	if (array)
		array->num_slots = slots;
	return array;
}

/* A NULL member list or one that does not fit marks the array invalid. */
static int array_check_members(struct dma_fence_array *array,
			       int num_fences, struct dma_fence **fences)
{
	int i;

	if (HETMEM_WARN(!num_fences || !fences,
			"dma_fence_array_init: no member fences"))
		return fences || !num_fences ? 0 : -EINVAL;
	if (HETMEM_WARN((unsigned int)num_fences > array->num_slots,
			"dma_fence_array_init: %d members, %u slots allocated",
			num_fences, array->num_slots))
		return -EINVAL;
	for (i = 0; i < num_fences; i++)
		HETMEM_WARN(dma_fence_is_container(fences[i]),
			    "dma_fence_array_init: member %d is a container", i);
	return 0;
}

/**
 * dma_fence_array_init() - initialise an array allocated before
 * @array: memory from dma_fence_array_alloc() with at least @num_fences slots
 * @num_fences: number of members
 * @fences: malloc()ed array of member fences; ownership of the array and
 *	of the references in it passes to @array
 * @context: fence context of the array
 * @seqno: seqno of the array on @context
 * @signal_on_any: signal when any member signals instead of when all have
 *
 * Allocates nothing. Members must not be containers (warning). With no
 * members or a NULL @fences the call warns; an empty array signals
 * successfully once signalling is enabled, one that cannot be used
 * (NULL @fences with members, more members than slots) signals with
 * -EINVAL then.
 *
 * Context: Any thread, including signalling sections and fence callbacks.
 * Return: nothing.
 */
HETMEM_API void dma_fence_array_init(struct dma_fence_array *array,
				     int num_fences, struct dma_fence **fences,
				     uint64_t context, unsigned int seqno,
				     bool signal_on_any)
{
	int invalid = array_check_members(array, num_fences, fences);

	array->num_fences = fences && num_fences > 0 ? (unsigned int)num_fences : 0;
	array->fences = fences;
	hetmem_spin_lock_init(&array->lock);
	dma_fence_init(&array->base, &dma_fence_array_ops, &array->lock,
		       context, seqno);
	hetmem_fence_work_init(&array->work, array_work_func);
	__atomic_store_n(&array->num_pending,
			 signal_on_any && num_fences ? 1 : num_fences,
			 __ATOMIC_RELAXED);
	array->base.error = invalid ? invalid : PENDING_ERROR;
}

/**
 * dma_fence_array_create() - allocate and initialise an array
 * @num_fences: number of members
 * @fences: malloc()ed array of member fences; taken over on success only
 * @context: fence context of the array
 * @seqno: seqno of the array on @context
 * @signal_on_any: signal when any member signals instead of when all have
 *
 * Context: Any thread that may allocate.
 * Return: the new array with one reference; NULL on failure, in which case
 * the caller still owns @fences and the references it holds.
 */
HETMEM_API struct dma_fence_array *dma_fence_array_create(int num_fences,
							  struct dma_fence **fences,
							  uint64_t context,
							  unsigned int seqno,
							  bool signal_on_any)
{
	struct dma_fence_array *array = dma_fence_array_alloc(num_fences);

	if (!array)
		return NULL;
	dma_fence_array_init(array, num_fences, fences, context, seqno,
			     signal_on_any);
	return array;
}

/**
 * dma_fence_match_context() - does a fence belong entirely to a context
 * @fence: a fence or an array
 * @context: the context to match
 *
 * Context: Any; the caller holds a reference to @fence.
 * Return: for an array, true if every member has @context (so an empty
 * array matches); for any other fence, true if it has @context.
 */
HETMEM_API bool dma_fence_match_context(struct dma_fence *fence,
					uint64_t context)
{
	struct dma_fence_array *array = to_dma_fence_array(fence);
	unsigned int i;

	if (!array)
		return fence->context == context;
	for (i = 0; i < array->num_fences; i++)
		if (array->fences[i]->context != context)
			return false;
	return true;
}

/**
 * dma_fence_array_first() - start iterating over an array's members
 * @head: an array, another fence, or NULL
 *
 * Context: Any; the caller holds a reference to @head.
 * Return: the first member of an array (NULL if it has none), @head itself
 * if it is not an array, NULL for a NULL @head. No reference is taken.
 */
HETMEM_API struct dma_fence *dma_fence_array_first(struct dma_fence *head)
{
	struct dma_fence_array *array;

	if (!head)
		return NULL;
	array = to_dma_fence_array(head);
	if (!array)
		return head;
	return array->num_fences ? array->fences[0] : NULL;
}

/**
 * dma_fence_array_next() - continue iterating over an array's members
 * @head: the fence given to dma_fence_array_first()
 * @index: index of the member wanted
 *
 * Context: Any; the caller holds a reference to @head.
 * Return: member @index of an array, or NULL when @index is past the end
 * or @head is not an array. No reference is taken.
 */
HETMEM_API struct dma_fence *dma_fence_array_next(struct dma_fence *head,
						  unsigned int index)
{
	struct dma_fence_array *array = to_dma_fence_array(head);

	if (!array || index >= array->num_fences)
		return NULL;
	return array->fences[index];
}
