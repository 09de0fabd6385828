/* SPDX-License-Identifier: MIT */
/*
 * hetmem - wound/wait mutexes.
 */
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <hetmem/resv/ww_mutex.h>

#include "core/internal.h"

/**
 * DOC: ww_mutex algorithm
 *
 * The mutex is a state word with three bits, LOCKED, WAITERS and CTX, a
 * spinlock (wait_lock) and a list of sleeping lockers. WAITERS is set
 * exactly while the list is not empty, and only while LOCKED is set; CTX
 * is set together with LOCKED when the holder takes the mutex with a
 * context, and cleared by that holder once it has dissociated the context
 * (see "ww_mutex holder context publication"), so:
 *
 * - the uncontended lock is one compare-and-swap 0 -> LOCKED[|CTX], the
 *   uncontended unlock one compare-and-swap LOCKED[|CTX] -> 0;
 * - as soon as anybody sleeps, both fail and every state change happens
 *   under wait_lock.
 *
 * Unlocking with waiters hands the mutex directly to the first waiter:
 * owner, context and LOCKED are set on its behalf and it is woken already
 * holding the lock. Nobody can overtake a sleeper, which gives the ordering
 * guarantees below exactly rather than statistically; the cost is that the
 * mutex stays owned by a thread that may not be running yet.
 *
 * The list order is the kernel's: waiters with a context are sorted by
 * stamp, oldest first; context-less waiters are appended and keep their
 * arrival order, and are skipped when a context looks for its place.
 * Sleeping waiters live on the waiting thread's stack. A waiter with a
 * context sleeps on the context's futex word, so that both a hand-off and
 * a wound (which may come from the wait_lock of another mutex) reach it;
 * a context-less waiter sleeps on a word in its own node. The word is
 * read under wait_lock before the conditions are checked, so a change
 * made after the check always shows as a changed word.
 *
 * Wait-Die: a locker that holds locks dies (-EDEADLK) when it finds an
 * older context queued where it would have to queue behind it, or when
 * the holder is older; when it queues ahead of younger waiters that hold
 * locks it wakes them so they re-check and die. Wound-Wait: a locker that
 * holds locks and queues behind a younger holder sets the holder's wounded
 * flag and wakes it; a wounded context gives up the next time it would
 * sleep while holding locks. Every wake-up re-checks both conditions.
 *
 * The fast path publishes lock->ctx after its compare-and-swap; how a
 * locker that queues in that window still sees the context is described
 * in "ww_mutex holder context publication".
 */

/**
 * DOC: ww_mutex holder context publication
 *
 * Wait-Die and Wound-Wait decisions of a queued locker need the holder's
 * context. The fast path can only store lock->ctx after its
 * compare-and-swap, and the kernel (and this file until now) closed that
 * window with a full barrier in the fast path: store lock->ctx, smp_mb(),
 * re-read the state and, if WAITERS appeared, run the waiter checks
 * itself. That barrier was the most expensive instruction of an
 * uncontended lock. Instead, the compare-and-swap itself records that a
 * context is coming (CTX), and the one party that needs the context, a
 * locker under wait_lock, waits for it (holder_ctx()):
 *
 * 1. A reader of the holder context holds wait_lock and the state has
 *    WAITERS (it set it or found it set, with an acquire operation, or it
 *    is queued itself). With WAITERS set the holder cannot fast-unlock
 *    (its compare-and-swap expects LOCKED[|CTX] exactly) and every other
 *    change of holder happens under wait_lock: the holder H is fixed for
 *    as long as the reader keeps wait_lock.
 * 2. The reader's acquire operation on the state reads H's compare-and-swap
 *    or a later read-modify-write of it, which is in the release sequence
 *    of the previous holder's releasing unlock (or it synchronises through
 *    wait_lock with a hand-over). So lock->ctx as the reader sees it is
 *    one of H's own values: NULL before H publishes, H's context C, or NULL
 *    again once H is unlocking. Never a stale context of an earlier
 *    holder.
 * 3. H's stores, in program order: compare-and-swap setting CTX, store C
 *    (release, so C's stamp and fields are visible to the acquire load of
 *    lock->ctx that finds it); later, on unlock, store NULL, then fail its
 *    compare-and-swap (WAITERS) and clear CTX with a release
 *    read-modify-write before it takes wait_lock. Neither step needs a lock
 *    or can block, so "lock->ctx is NULL while CTX is set" lasts only while
 *    H runs a few instructions.
 * 4. The reader loads lock->ctx, then the state. C: use it. NULL with CTX
 *    clear: H holds the mutex without a context or is unlocking; NULL is
 *    what it would have read after H's dissociation anyway, and H will
 *    hand over under wait_lock, where everything is re-checked. NULL with
 *    CTX set: H has not published yet, or has dissociated but not yet
 *    cleared CTX; both end without wait_lock, so waiting (spinning, then
 *    yielding the CPU in case H was preempted) cannot deadlock.
 *
 * So the reader always decides against the real holder context, and the
 * fast path never has to look for waiters: the kernel's
 * check-waiters-after-fast-path step (E-WW-6) is done by the waiters, each
 * of which wounds the holder or dies when it queues or re-checks, exactly
 * as if the context had been published before it came.
 */

/**
 * DOC: ww_mutex and the lock-dependency checker
 *
 * As in the kernel, ww_acquire_init() acquires a pseudo-lock of the class
 * (its acquire_name) and ww_acquire_fini() releases it, so "context begun
 * while holding X" and "X taken inside a context" are graph edges.
 *
 * The mutexes of a class share one checker class (mutex_name). hetmem's
 * checker reports any nesting of one class as recursion and has no
 * nest_lock annotation, so a context's acquisitions are recorded like
 * this: the first mutex taken with a context that holds nothing is an
 * ordinary acquisition (it records "every held lock -> the mutex class"
 * and checks for cycles); every further mutex taken with the same context
 * is recorded trylock-style (pushed on the held stack, no edges, no
 * recursion report). Ordering between the mutexes of one class is exactly
 * what the wound/wait algorithm resolves, so nothing is lost; edges from
 * the class to locks taken inside the transaction are still recorded
 * because every held mutex is on the stack. Locking without a context is
 * an ordinary mutex acquisition: nesting two of them is reported.
 */

/**
 * DOC: ww_mutex compared with the kernel
 *
 * - No optimistic spinning and no lock stealing: a mutex with sleepers is
 *   handed to the first of them. The kernel lets a running task steal
 *   the lock and hands off only to a starving waiter.
 * - No PREEMPT_RT ordering: stamps alone order contexts.
 * - "Interruptible" means a signal handler ran in the waiting thread (see
 *   "Futex waits and interruption"); the call then returns -EINTR. The
 *   mutex may have been handed over at the same moment: the hand-over
 *   wins and the call returns 0.
 * - The debugging checks of CONFIG_DEBUG_MUTEXES/DEBUG_WW_MUTEX_SLOWPATH
 *   are always on and report through HETMEM_WARN: lock_slow without a
 *   preceding -EDEADLK, on another mutex or with locks held; locking after
 *   ww_acquire_done() or with a finished context; mutex and context of
 *   different classes; a context used by another thread; fini with locks
 *   held or twice; unlock of a free mutex or by a thread that does not
 *   own it. Unlocking a mutex this thread does not own is refused (the
 *   kernel warns and unlocks anyway).
 * - Deadlock injection (the kernel's DEBUG_WW_MUTEX_SLOWPATH) is a test
 *   mode, off by default: HETMEM_WW_INJECT=1 in the environment turns it
 *   on for every new context, hetmem_ww_acquire_inject_deadlocks() for one.
 */

#define CTX_POISON UINT_MAX

struct ww_waiter {
	struct hetmem_list_head list;
	struct ww_acquire_ctx *ctx;
	uint32_t *word;		/* what the waiting thread sleeps on */
	uint32_t self_word;	/* @word of a context-less waiter */
	int32_t task;
	uint32_t handed;	/* the mutex is ours: set by the unlocker */
};

static const struct hetmem_lock_class_key wait_lock_key;
static int inject_env = -1;

/* "a is younger than b", robust against the stamp counter wrapping. */
static inline bool ctx_younger(const struct ww_acquire_ctx *a,
			       const struct ww_acquire_ctx *b)
{
	return (long)(a->stamp - b->stamp) > 0;
}

static inline uint32_t state_load(struct ww_mutex *lock)
{
	return __atomic_load_n(&lock->base.state, __ATOMIC_SEQ_CST);
}

/* The state of a mutex held, without waiters, with or without @ctx. */
static inline uint32_t held_state(const struct ww_acquire_ctx *ctx)
{
	return ctx ? HETMEM_WW_LOCKED | HETMEM_WW_CTX : HETMEM_WW_LOCKED;
}

/*
 * Release: a reader that finds @ctx with an acquire load also sees the
 * context's fields (stamp) written by its owner.
 */
static inline void set_owner(struct ww_mutex *lock, int32_t task,
			     struct ww_acquire_ctx *ctx)
{
	__atomic_store_n(&lock->base.owner, task, __ATOMIC_RELAXED);
	__atomic_store_n(&lock->ctx, ctx, __ATOMIC_RELEASE);
}

/* CTX goes in with LOCKED: see "ww_mutex holder context publication". */
static inline bool fast_lock(struct ww_mutex *lock,
			     const struct ww_acquire_ctx *ctx)
{
	uint32_t zero = 0;

	return __atomic_compare_exchange_n(&lock->base.state, &zero,
					   held_state(ctx), false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* @held: held_state() of the context the caller held the mutex with. */
static inline bool fast_unlock(struct ww_mutex *lock, uint32_t held)
{
	/*
	 * Acquire too: a waiter that just backed off read our context under
	 * wait_lock; that read must happen before we reuse the context.
	 */
	return __atomic_compare_exchange_n(&lock->base.state, &held, 0,
					   false, __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED);
}

/*
 * The context of the holder, for a locker that holds wait_lock while the
 * state has WAITERS. See "ww_mutex holder context publication" for why
 * the answer is the current holder's and why the wait ends.
 */
static struct ww_acquire_ctx *holder_ctx(struct ww_mutex *lock)
{
	struct ww_acquire_ctx *hold;
	unsigned int spins = 0;

	for (;;) {
		hold = __atomic_load_n(&lock->ctx, __ATOMIC_ACQUIRE);
		if (hold || !(__atomic_load_n(&lock->base.state,
					      __ATOMIC_ACQUIRE) & HETMEM_WW_CTX))
			return hold;
		/* The holder is a few instructions away, unless preempted. */
		if (++spins < 128)
			__builtin_ia32_pause();
		else
			sched_yield();
	}
}

static void wake_word(uint32_t *word)
{
	__atomic_fetch_add(word, 1, __ATOMIC_SEQ_CST);
	hetmem_futex_wake_after_unlock(word);
}

static struct ww_waiter *waiter_of(struct hetmem_list_head *node)
{
	return hetmem_list_entry(node, struct ww_waiter, list);
}

/* Record the -EDEADLK so that ww_mutex_lock_slow() can check its use. */
static int ctx_kill(struct ww_mutex *lock, struct ww_acquire_ctx *ctx)
{
	ctx->contending_lock = lock;
	return -EDEADLK;
}

/*
 * Wait-Die: @cur queues behind @ctx (or sees it take the mutex); if @cur is
 * younger and holds locks it must die, so wake it to find out.
 */
static void ww_die(struct ww_waiter *cur, struct ww_acquire_ctx *ctx)
{
	if (cur->ctx->acquired > 0 && ctx_younger(cur->ctx, ctx))
		wake_word(cur->word);
}

/*
 * Wound-Wait: @ctx, holding locks, waits for a mutex held by the younger
 * @hold: mark @hold wounded and wake it in case it sleeps elsewhere. Called
 * under wait_lock of a mutex @hold owns, which keeps @hold alive.
 */
static void ww_wound(struct ww_acquire_ctx *ctx, struct ww_acquire_ctx *hold)
{
	if (!hold || hold == ctx || !ctx->acquired || !ctx_younger(hold, ctx))
		return;
	__atomic_store_n(&hold->wounded, 1, __ATOMIC_SEQ_CST);
	if (hold->task != hetmem_gettid())
		wake_word(&hold->wake);
}

/*
 * Publish the owner after an uncontended compare-and-swap. No barrier and
 * no look for waiters: a locker that queued since our compare-and-swap
 * found CTX and waits in holder_ctx() for the context we store here.
 */
static inline void fast_set_owner(struct ww_mutex *lock, int32_t tid,
				  struct ww_acquire_ctx *ctx)
{
	__atomic_store_n(&lock->base.owner, tid, __ATOMIC_RELAXED);
	if (ctx)
		__atomic_store_n(&lock->ctx, ctx, __ATOMIC_RELEASE);
}

/*
 * Insert @w at its place. Returns -EDEADLK when a Wait-Die context holding
 * locks would have to queue behind an older one.
 */
static int add_waiter(struct ww_mutex *lock, struct ww_waiter *w)
{
	struct hetmem_list_head *head = &lock->base.wait_list;
	struct hetmem_list_head *pos = head, *it;
	struct ww_acquire_ctx *ctx = w->ctx;
	struct ww_waiter *cur;

	if (!ctx)
		goto out_add;
	for (it = head->prev; it != head; it = it->prev) {
		cur = waiter_of(it);
		if (!cur->ctx)
			continue;
		if (ctx_younger(ctx, cur->ctx)) {
			if (ctx->is_wait_die && ctx->acquired > 0)
				return ctx_kill(lock, ctx);
			break;
		}
		pos = it;
		if (ctx->is_wait_die)
			ww_die(cur, ctx);
	}
out_add:
	hetmem_list_add_tail(&w->list, pos);
	return 0;
}

static void remove_waiter(struct ww_mutex *lock, struct ww_waiter *w)
{
	hetmem_list_del_init(&w->list);
	if (hetmem_list_empty(&lock->base.wait_list))
		/* Release: pairs with the fast unlock that may now succeed. */
		__atomic_fetch_and(&lock->base.state, ~HETMEM_WW_WAITERS,
				   __ATOMIC_RELEASE);
}

/* Must the sleeping @w give up? Checked before every sleep. */
static int check_kill(struct ww_mutex *lock, struct ww_waiter *w)
{
	struct ww_acquire_ctx *ctx = w->ctx, *hold;
	struct hetmem_list_head *it;

	if (!ctx || !ctx->acquired)
		return 0;
	if (!ctx->is_wait_die)
		return __atomic_load_n(&ctx->wounded, __ATOMIC_SEQ_CST) ?
		       ctx_kill(lock, ctx) : 0;
	hold = holder_ctx(lock);
	if (hold && ctx_younger(ctx, hold))
		return ctx_kill(lock, ctx);
	for (it = w->list.prev; it != &lock->base.wait_list; it = it->prev)
		if (waiter_of(it)->ctx)
			return ctx_kill(lock, ctx);
	return 0;
}

/*
 * Under wait_lock: take the free mutex for @ctx (true), or mark it as
 * having waiters (false). WAITERS is only ever set on a held mutex, CTX
 * only on a held one, so a free mutex has state 0. Every path reads the
 * state with acquire semantics, which holder_ctx() relies on.
 */
static bool take_or_flag(struct ww_mutex *lock, struct ww_acquire_ctx *ctx)
{
	uint32_t s = state_load(lock);

	for (;;) {
		if (!(s & HETMEM_WW_LOCKED)) {
			if (__atomic_compare_exchange_n(&lock->base.state, &s,
					s | held_state(ctx), false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
				return true;
		} else if (s & HETMEM_WW_WAITERS) {
			return false;
		} else if (__atomic_compare_exchange_n(&lock->base.state, &s,
					s | HETMEM_WW_WAITERS, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			return false;
		}
	}
}

static void waiter_init(struct ww_waiter *w, struct ww_acquire_ctx *ctx)
{
	w->ctx = ctx;
	w->self_word = 0;
	w->word = ctx ? &ctx->wake : &w->self_word;
	w->task = hetmem_gettid();
	w->handed = 0;
	hetmem_list_init(&w->list);
}

/* Sleep until handed the mutex, told to back off, or interrupted. */
static int wait_loop(struct ww_mutex *lock, struct ww_waiter *w, bool intr)
{
	hetmem_spinlock_t *wait_lock = &lock->base.wait_lock;
	uint32_t seen;
	int ret;

	for (;;) {
		seen = __atomic_load_n(w->word, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&w->handed, __ATOMIC_RELAXED))
			return 0;
		ret = check_kill(lock, w);
		if (ret)
			goto out_remove;
		hetmem_spin_unlock(wait_lock);
		ret = hetmem_futex_wait(w->word, seen, -1, intr);
		if (__atomic_load_n(&w->handed, __ATOMIC_ACQUIRE))
			return 1;
		hetmem_spin_lock(wait_lock);
		if (ret == -EINTR && !__atomic_load_n(&w->handed, __ATOMIC_RELAXED))
			goto out_remove;
	}

out_remove:
	remove_waiter(lock, w);
	return ret;
}

/*
 * The contended path. Returns 0 with the mutex held, -EDEADLK or -EINTR
 * without it.
 */
static int lock_slowpath(struct ww_mutex *lock, struct ww_acquire_ctx *ctx,
			 bool intr)
{
	hetmem_spinlock_t *wait_lock = &lock->base.wait_lock;
	struct ww_waiter w;
	int ret;

	waiter_init(&w, ctx);
	hetmem_spin_lock(wait_lock);
	if (take_or_flag(lock, ctx)) {
		set_owner(lock, w.task, ctx);
		ret = 0;
		goto out_unlock;
	}
	ret = add_waiter(lock, &w);
	if (ret) {
		/* Died at the door: clear the WAITERS we may have set. */
		remove_waiter(lock, &w);
		hetmem_spin_unlock(wait_lock);
		return ret;
	}
	/* Only a context holding locks wounds: don't wait for the holder's. */
	if (ctx && !ctx->is_wait_die && ctx->acquired)
		ww_wound(ctx, holder_ctx(lock));
	ret = wait_loop(lock, &w, intr);
	if (ret == 1)
		return 0;	/* handed over, wait_lock already dropped */
out_unlock:
	hetmem_spin_unlock(wait_lock);
	return ret;
}

/* Debug checks shared by every locking call with a context. */
static inline void ctx_checks(struct ww_mutex *lock,
			      struct ww_acquire_ctx *ctx, int32_t tid)
{
	HETMEM_WARN(ctx->acquired == CTX_POISON,
		    "ww_mutex locked with a finished acquire context");
	HETMEM_WARN(ctx->done_acquired,
		    "ww_mutex locked after ww_acquire_done()");
	HETMEM_WARN(lock->ww_class != ctx->ww_class,
		    "ww_mutex of class %s locked with a context of class %s",
		    lock->ww_class ? lock->ww_class->mutex_name : "(none)",
		    ctx->ww_class ? ctx->ww_class->acquire_name : "(none)");
	HETMEM_WARN(ctx->task != tid,
		    "acquire context of thread %d used by thread %d",
		    (int)ctx->task, (int)tid);
}

/*
 * Common entry of lock and trylock with a context. Returns true if the
 * caller already holds @lock with @ctx (-EALREADY).
 */
static inline bool ctx_enter(struct ww_mutex *lock,
			     struct ww_acquire_ctx *ctx, int32_t tid)
{
	ctx_checks(lock, ctx, tid);
	if (__atomic_load_n(&lock->ctx, __ATOMIC_RELAXED) == ctx)
		return true;
	/* A context that holds nothing has nothing to give back. */
	if (!ctx->acquired)
		__atomic_store_n(&ctx->wounded, 0, __ATOMIC_RELAXED);
	return false;
}

/* The first mutex after -EDEADLK must be the contended one, taken alone. */
static inline void ctx_acquired(struct ww_mutex *lock,
				struct ww_acquire_ctx *ctx)
{
	if (ctx->contending_lock) {
		HETMEM_WARN(ctx->contending_lock != lock,
			    "after -EDEADLK, another ww_mutex was taken before the contended one");
		HETMEM_WARN(ctx->acquired > 0,
			    "after -EDEADLK, the contended ww_mutex was taken with locks still held");
		ctx->contending_lock = NULL;
	}
	ctx->acquired++;
}

static inline void dep_acquire(struct ww_mutex *lock,
			       struct ww_acquire_ctx *ctx, bool trylock,
			       const void *site)
{
	/* See "ww_mutex and the lock-dependency checker". */
	if (ctx && ctx->acquired)
		trylock = true;
	hetmem_lockdep_acquire(&lock->base.dep_map, 0, trylock, site);
}

static int inject_deadlock(struct ww_mutex *lock, struct ww_acquire_ctx *ctx)
{
	unsigned int next = ctx->deadlock_inject_interval;

	if (ctx->deadlock_inject_countdown--)
		return 0;
	/* Back off ever more rarely, as the kernel's debug option does. */
	next = next > UINT_MAX / 4 ? UINT_MAX : next * 3 + next / 2;
	ctx->deadlock_inject_interval = next;
	ctx->deadlock_inject_countdown = next;
	ww_mutex_unlock(lock);
	ctx->contending_lock = lock;
	return -EDEADLK;
}

/*
 * Inlined into each entry point so that the uncontended path is straight
 * line code: one thread id read, one checker branch, the compare-and-swap
 * and plain stores. The checker hooks return at once when it is off, so
 * skipping them on one hetmem_lockdep_enabled() answer changes nothing;
 * a checker switched on meanwhile ignores the unmatched release.
 */
static inline __attribute__((always_inline)) int
lock_common(struct ww_mutex *lock, struct ww_acquire_ctx *ctx, bool intr,
	    const void *site)
{
	int32_t tid = hetmem_gettid();
	bool dep = hetmem_lockdep_enabled();
	int ret;

	if (hetmem_unlikely(dep))
		hetmem_might_sleep(site);
	if (ctx && ctx_enter(lock, ctx, tid))
		return -EALREADY;
	if (hetmem_unlikely(dep))
		dep_acquire(lock, ctx, false, site);
	if (hetmem_likely(fast_lock(lock, ctx))) {
		fast_set_owner(lock, tid, ctx);
	} else {
		ret = lock_slowpath(lock, ctx, intr);
		if (ret)
			goto err_release;
	}
	if (!ctx)
		return 0;
	ctx_acquired(lock, ctx);
	if (hetmem_unlikely(ctx->deadlock_inject) && ctx->acquired > 1)
		return inject_deadlock(lock, ctx);
	return 0;

err_release:
	hetmem_lockdep_release(&lock->base.dep_map, site);
	return ret;
}

/*
 * The fast unlock failed: WAITERS is set. @ctx is the context we held the
 * mutex with, already dissociated from lock->ctx.
 */
static void slow_unlock(struct ww_mutex *lock, struct ww_acquire_ctx *ctx)
{
	struct hetmem_list_head *head = &lock->base.wait_list;
	struct ww_waiter *w;
	uint32_t *word;

	/*
	 * A locker may be waiting in holder_ctx(), under the wait_lock we are
	 * about to take, for the context we just cleared: tell it, before we
	 * block, that there is none. Release orders our NULL store first.
	 */
	if (ctx)
		__atomic_fetch_and(&lock->base.state, ~HETMEM_WW_CTX,
				   __ATOMIC_RELEASE);
	hetmem_spin_lock(&lock->base.wait_lock);
	if (hetmem_list_empty(head)) {
		/* The waiters all backed off; only the flag remained. */
		__atomic_store_n(&lock->base.state, 0, __ATOMIC_RELEASE);
		goto out_unlock;
	}
	w = waiter_of(head->next);
	hetmem_list_del_init(&w->list);
	set_owner(lock, w->task, w->ctx);
	/* The new holder's fast unlock expects CTX exactly as it holds. */
	__atomic_store_n(&lock->base.state, hetmem_list_empty(head) ?
			 held_state(w->ctx) :
			 held_state(w->ctx) | HETMEM_WW_WAITERS,
			 __ATOMIC_RELEASE);
	/*
	 * Bump the word before publishing the hand-over: once @handed is
	 * seen the waiter may return, and its node or context be gone.
	 */
	word = w->word;
	__atomic_fetch_add(word, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&w->handed, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake_after_unlock(word);
out_unlock:
	hetmem_spin_unlock(&lock->base.wait_lock);
}

static int inject_default(void)
{
	int v = __atomic_load_n(&inject_env, __ATOMIC_RELAXED);
	const char *env;

	if (v < 0) {
		env = getenv("HETMEM_WW_INJECT");
		v = env && strcmp(env, "0") && *env;
		__atomic_store_n(&inject_env, v, __ATOMIC_RELAXED);
	}
	return v;
}

/**
 * ww_mutex_init() - initialise a wound/wait mutex
 * @lock: the mutex
 * @ww_class: class whose contexts may lock @lock
 *
 * The mutex starts unlocked and without a context. All mutexes of a class
 * share one class in the lock-dependency checker.
 *
 * Context: Any thread; @lock must not be in use (not locked, no waiters).
 * Return: nothing.
 */
HETMEM_API void ww_mutex_init(struct ww_mutex *lock,
			      struct ww_class *ww_class)
{
	struct hetmem_ww_mutex_base *b;

	if (HETMEM_WARN_ON(!lock))
		return;
	HETMEM_WARN_ON(!ww_class);
	b = &lock->base;
	__atomic_store_n(&b->state, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&b->owner, 0, __ATOMIC_RELAXED);
	hetmem_spin_lock_init_key(&b->wait_lock, "ww_mutex.wait_lock",
				  &wait_lock_key);
	hetmem_list_init(&b->wait_list);
	hetmem_lockdep_init_map(&b->dep_map,
				ww_class ? ww_class->mutex_name : "ww_mutex",
				ww_class ? &ww_class->mutex_key : NULL, 0);
	__atomic_store_n(&lock->ctx, NULL, __ATOMIC_RELAXED);
	lock->ww_class = ww_class;
}

/**
 * ww_mutex_destroy() - declare a wound/wait mutex unused
 * @lock: the mutex
 *
 * Nothing is freed; the call reports a mutex destroyed while held or
 * waited for, which would otherwise show up later as a use after free.
 *
 * Context: Any thread; @lock must be unlocked.
 * Return: nothing.
 */
HETMEM_API void ww_mutex_destroy(struct ww_mutex *lock)
{
	if (HETMEM_WARN_ON(!lock))
		return;
	HETMEM_WARN(state_load(lock) != 0,
		    "ww_mutex_destroy() on a locked ww_mutex");
}

/**
 * ww_mutex_is_locked() - is the mutex held by anyone
 * @lock: the mutex
 *
 * Context: Any thread; the answer may be stale by the time it is used.
 * Return: true if held, false if free.
 */
HETMEM_API bool ww_mutex_is_locked(struct ww_mutex *lock)
{
	return state_load(lock) & HETMEM_WW_LOCKED;
}

/**
 * hetmem_ww_mutex_is_held() - is the mutex held by the calling thread
 * @lock: the mutex
 *
 * Works with the dependency checker off, like hetmem_mutex_is_held(); what
 * dma_resv_assert_held() needs.
 *
 * Context: Any thread.
 * Return: true if the calling thread holds @lock, false otherwise.
 */
HETMEM_API bool hetmem_ww_mutex_is_held(struct ww_mutex *lock)
{
	return (state_load(lock) & HETMEM_WW_LOCKED) &&
	       __atomic_load_n(&lock->base.owner, __ATOMIC_RELAXED) ==
	       hetmem_gettid();
}

/**
 * ww_acquire_init() - begin a locking transaction
 * @ctx: the context, normally on the caller's stack
 * @ww_class: class of the mutexes that will be locked with @ctx
 *
 * Draws the next stamp of @ww_class (the first context of a class gets 1;
 * the counter wraps around safely), clears the counts and takes the
 * context's pseudo-lock in the dependency checker: one live context per
 * thread and class, as in the kernel.
 *
 * Context: The thread that will use @ctx; may be called with locks held
 * (the checker records them as taken before the transaction).
 * Return: nothing.
 */
HETMEM_API void ww_acquire_init(struct ww_acquire_ctx *ctx,
				struct ww_class *ww_class)
{
	if (HETMEM_WARN_ON(!ctx || !ww_class))
		return;
	memset(ctx, 0, sizeof(*ctx));
	ctx->task = hetmem_gettid();
	ctx->stamp = __atomic_add_fetch(&ww_class->stamp, 1, __ATOMIC_RELAXED);
	ctx->is_wait_die = (unsigned short)ww_class->is_wait_die;
	ctx->ww_class = ww_class;
	ctx->deadlock_inject = (unsigned int)inject_default();
	ctx->deadlock_inject_interval = 1;
	ctx->deadlock_inject_countdown = (unsigned int)(ctx->stamp & 0xf);
	hetmem_lockdep_init_map(&ctx->dep_map, ww_class->acquire_name,
				&ww_class->acquire_key, HETMEM_LOCKDEP_PSEUDO);
	hetmem_lockdep_acquire(&ctx->dep_map, 0, false, HETMEM_RET_IP);
}

/**
 * ww_acquire_done() - mark the end of the locking phase
 * @ctx: the context
 *
 * Optional: afterwards the transaction only works on and releases what it
 * holds. Locking more with @ctx is reported.
 *
 * Context: The thread that owns @ctx.
 * Return: nothing.
 */
HETMEM_API void ww_acquire_done(struct ww_acquire_ctx *ctx)
{
	if (HETMEM_WARN_ON(!ctx))
		return;
	HETMEM_WARN(ctx->acquired == CTX_POISON,
		    "ww_acquire_done() on a finished context");
	ctx->done_acquired = 1;
}

/**
 * ww_acquire_fini() - end a locking transaction
 * @ctx: the context
 *
 * Releases the context's pseudo-lock and poisons @ctx, so that a second
 * fini or a later lock with it is reported.
 *
 * Context: The thread that owns @ctx, after unlocking every mutex taken
 * with it (reported otherwise).
 * Return: nothing.
 */
HETMEM_API void ww_acquire_fini(struct ww_acquire_ctx *ctx)
{
	if (HETMEM_WARN_ON(!ctx))
		return;
	if (HETMEM_WARN(ctx->acquired == CTX_POISON,
			"ww_acquire_fini() called twice"))
		return;
	HETMEM_WARN(ctx->acquired, "ww_acquire_fini() with %u locks held",
		    ctx->acquired);
	hetmem_lockdep_release(&ctx->dep_map, HETMEM_RET_IP);
	ctx->acquired = CTX_POISON;
	ctx->contending_lock = NULL;
}

/**
 * ww_mutex_lock() - lock a wound/wait mutex as part of a transaction
 * @lock: the mutex
 * @ctx: the transaction, or NULL to use @lock as a plain mutex
 *
 * Sleeps until @lock is acquired, unless the class algorithm tells @ctx to
 * back off: that happens only while @ctx holds other locks (E-WW-3), so
 * the first lock of a transaction always succeeds. After -EDEADLK the
 * caller must unlock everything it holds with @ctx, take @lock with
 * ww_mutex_lock_slow() and start over. With deadlock injection on, a
 * successful lock is occasionally undone and reported as -EDEADLK.
 *
 * Context: May sleep; must not be called with a spinlock held. A NULL
 * @ctx on a mutex the caller holds deadlocks, as in the kernel.
 * Return: 0 with @lock held; -EALREADY if @ctx already holds @lock
 * (nothing changes, still one unlock); -EDEADLK if @ctx must back off
 * (@lock not held).
 */
HETMEM_API int ww_mutex_lock(struct ww_mutex *lock,
			     struct ww_acquire_ctx *ctx)
{
	return lock_common(lock, ctx, false, HETMEM_RET_IP);
}

/**
 * ww_mutex_lock_interruptible() - lock a wound/wait mutex, or give up on a
 * signal
 * @lock: the mutex
 * @ctx: the transaction, or NULL
 *
 * As ww_mutex_lock(), but the sleep ends when a signal handler runs in the
 * calling thread (including one installed with SA_RESTART).
 *
 * Context: May sleep; must not be called with a spinlock held.
 * Return: 0 with @lock held; -EALREADY if @ctx already holds @lock;
 * -EDEADLK if @ctx must back off; -EINTR if a signal handler ran while
 * waiting (@lock not held).
 */
HETMEM_API int ww_mutex_lock_interruptible(struct ww_mutex *lock,
					   struct ww_acquire_ctx *ctx)
{
	return lock_common(lock, ctx, true, HETMEM_RET_IP);
}

/* The back-off rules of ww_mutex_lock_slow(), reported when broken. */
static void slow_checks(struct ww_mutex *lock, struct ww_acquire_ctx *ctx)
{
	HETMEM_WARN(!ctx->contending_lock,
		    "ww_mutex_lock_slow() without a preceding -EDEADLK");
	HETMEM_WARN(ctx->contending_lock && ctx->contending_lock != lock,
		    "ww_mutex_lock_slow() on a ww_mutex that did not return -EDEADLK");
	HETMEM_WARN(ctx->acquired > 0 && ctx->acquired != CTX_POISON,
		    "ww_mutex_lock_slow() with %u locks still held",
		    ctx->acquired);
	/* Reported once here, not again when the lock is taken. */
	ctx->contending_lock = NULL;
}

/**
 * ww_mutex_lock_slow() - take the contended mutex after backing off
 * @lock: the mutex that returned -EDEADLK
 * @ctx: the transaction, holding no locks
 *
 * Sleeps until @lock is acquired; since @ctx holds nothing it cannot be
 * told to back off. Misuse (no -EDEADLK before, another mutex, locks still
 * held) is reported; with locks still held the call may then return
 * without @lock, which a void function cannot say.
 *
 * Context: May sleep; must not be called with a spinlock held.
 * Return: nothing.
 */
HETMEM_API void ww_mutex_lock_slow(struct ww_mutex *lock,
				   struct ww_acquire_ctx *ctx)
{
	if (ctx)
		slow_checks(lock, ctx);
	(void)lock_common(lock, ctx, false, HETMEM_RET_IP);
}

/**
 * ww_mutex_lock_slow_interruptible() - take the contended mutex after
 * backing off, or give up on a signal
 * @lock: the mutex that returned -EDEADLK
 * @ctx: the transaction, holding no locks
 *
 * As ww_mutex_lock_slow(), but the sleep ends when a signal handler runs
 * in the calling thread.
 *
 * Context: May sleep; must not be called with a spinlock held.
 * Return: 0 with @lock held; -EINTR if a signal handler ran while waiting.
 */
HETMEM_API int ww_mutex_lock_slow_interruptible(struct ww_mutex *lock,
						struct ww_acquire_ctx *ctx)
{
	if (ctx)
		slow_checks(lock, ctx);
	return lock_common(lock, ctx, true, HETMEM_RET_IP);
}

/**
 * ww_mutex_trylock() - lock a wound/wait mutex if it is free
 * @lock: the mutex
 * @ctx: the transaction, or NULL
 *
 * Never sleeps and never backs off. With @ctx the mutex counts as taken by
 * the transaction, and holders and waiters are checked exactly as after a
 * lock (a Wound-Wait context may come out wounded).
 *
 * Context: Any thread that may take a mutex; never blocks on @lock.
 * Return: 1 if @lock was taken; 0 if it is held, including by @ctx itself
 * (no -EALREADY) or by the caller without a context.
 */
HETMEM_API int ww_mutex_trylock(struct ww_mutex *lock,
				struct ww_acquire_ctx *ctx)
{
	int32_t tid = hetmem_gettid();

	if (ctx && ctx_enter(lock, ctx, tid))
		return 0;
	if (!fast_lock(lock, ctx))
		return 0;
	fast_set_owner(lock, tid, ctx);
	dep_acquire(lock, ctx, true, HETMEM_RET_IP);
	if (ctx)
		ctx_acquired(lock, ctx);
	return 1;
}

/**
 * ww_mutex_unlock() - release a wound/wait mutex
 * @lock: the mutex, held by the caller
 *
 * Dissociates the context (its acquired count drops by one) and hands the
 * mutex to the first waiter, if any.
 *
 * Context: The thread that locked @lock, before ww_acquire_fini() of its
 * context. Unlocking a free mutex or one held by another thread is
 * reported and does nothing.
 * Return: nothing.
 */
HETMEM_API void ww_mutex_unlock(struct ww_mutex *lock)
{
	struct ww_acquire_ctx *ctx;

	/*
	 * Relaxed is enough for the misuse checks: the owner reads its own
	 * LOCKED and owner stores (coherence), and anybody else fails the
	 * owner check whatever it reads.
	 */
	if (HETMEM_WARN(!(__atomic_load_n(&lock->base.state, __ATOMIC_RELAXED) &
			  HETMEM_WW_LOCKED),
			"ww_mutex_unlock() of an unlocked ww_mutex"))
		return;
	if (HETMEM_WARN(__atomic_load_n(&lock->base.owner, __ATOMIC_RELAXED) !=
			hetmem_gettid(),
			"ww_mutex_unlock() by a thread that does not own it"))
		return;
	hetmem_lockdep_release(&lock->base.dep_map, HETMEM_RET_IP);
	ctx = __atomic_load_n(&lock->ctx, __ATOMIC_RELAXED);
	if (ctx && ctx->acquired != CTX_POISON) {
		if (!HETMEM_WARN_ON(!ctx->acquired))
			ctx->acquired--;
	}
	/*
	 * Dissociate before releasing: once the state is 0 a new holder may
	 * store its own context.
	 */
	set_owner(lock, 0, NULL);
	if (hetmem_unlikely(!fast_unlock(lock, held_state(ctx))))
		slow_unlock(lock, ctx);
}

/**
 * hetmem_ww_acquire_inject_deadlocks() - test mode: make a context back off
 * @ctx: the context, between ww_acquire_init() and its first lock
 * @on: true to inject, false to stop
 *
 * The kernel's deadlock injection: a successful ww_mutex_lock() of @ctx
 * while it holds other locks is, every so often, undone and reported as
 * -EDEADLK, so that back-off paths run without real contention. The first
 * injection comes after (stamp & 0xf) such locks; the interval then grows
 * by 3.5 times each time. HETMEM_WW_INJECT=1 turns it on for every
 * context.
 *
 * Context: The thread that owns @ctx.
 * Return: nothing.
 */
HETMEM_API void hetmem_ww_acquire_inject_deadlocks(struct ww_acquire_ctx *ctx,
						   bool on)
{
	if (HETMEM_WARN_ON(!ctx))
		return;
	ctx->deadlock_inject = on;
}
