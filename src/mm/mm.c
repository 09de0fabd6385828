/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the process address space: lifetime, references, mmap lock,
 * feature probe and counters.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mm/devmem.h"
#include "mm/pagewalk.h"

/**
 * DOC: One mm per process
 *
 * The kernel hands every task its mm; hetmem creates the one for this
 * process on first use and keeps it in a process-wide pointer. A forked
 * child inherits a copy of that structure, locks and all, in whatever
 * state the parent's threads left them; it belongs to another process and
 * the child must never take its locks. The fork handler therefore only
 * forgets the pointer and marks the copy dead (users = 0), so that
 * mmget_not_zero() fails on it and hetmem_current_mm() creates a fresh mm
 * for the child. Notifiers the child inherited stay linked into the dead
 * copy, and removing them is a no-op: in the kernel too, a child starts
 * with no subscriptions.
 *
 * Teardown (hetmem_mm_teardown()) is the userspace exit_mmap(): every
 * notifier gets one blockable RELEASE over the whole address space, the
 * monitor stops, the watched ranges are unregistered, and the process's
 * own "user" reference goes away. The structure itself lives on until the
 * last mmdrop(), which is the last notifier's removal.
 */

static pthread_mutex_t mm_create_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mm_struct *process_mm;
static pid_t self_pid;

/* getpid() is a system call since glibc 2.25; the hot paths need it. */
pid_t hetmem_mm_getpid(void)
{
	pid_t pid = __atomic_load_n(&self_pid, __ATOMIC_RELAXED);

	if (hetmem_unlikely(!pid)) {
		pid = getpid();
		__atomic_store_n(&self_pid, pid, __ATOMIC_RELAXED);
	}
	return pid;
}

static struct mm_struct *fork_mm;	/* fork_sem held across fork() */

static void mm_parent_after_fork(void)
{
	if (fork_mm) {
		hetmem_mm_monitor_fork_done(fork_mm);
		hetmem_up_write(&fork_mm->fork_sem);
	}
	fork_mm = NULL;
}

static void mm_child_after_fork(void)
{
	/* The parent's mm is dead here; release our copy of its lock anyway
	 * so that this thread's lock-checker stack is right. */
	if (fork_mm)
		hetmem_lockdep_release(&fork_mm->fork_sem.dep_map, HETMEM_RET_IP);
	fork_mm = NULL;
	self_pid = 0;
	pthread_mutex_init(&mm_create_lock, NULL);
	if (process_mm)
		__atomic_store_n(&process_mm->users, 0, __ATOMIC_RELAXED);
	process_mm = NULL;
}

static void mm_fork_prepare(void)
{
	struct mm_struct *mm = __atomic_load_n(&process_mm, __ATOMIC_ACQUIRE);

	if (!mm || hetmem_mm_in_monitor())
		return;
	/*
	 * The child gets no device memory: every device and device-exclusive
	 * page comes back first (the kernel restores exclusive entries and
	 * shares device entries copy-on-write; the child's data is the same).
	 */
	hetmem_down_write(&mm->fork_sem);
	fork_mm = mm;
	hetmem_migrate_evict_all(mm);
	hetmem_mm_monitor_fork_prepare(mm);
}

static pthread_once_t mm_fork_once = PTHREAD_ONCE_INIT;

static void mm_register_fork_handler(void)
{
	pthread_atfork(mm_fork_prepare, mm_parent_after_fork, mm_child_after_fork);
}

static struct mm_struct *mm_alloc(void)
{
	static const struct hetmem_lock_class_key inv_key, fault_key;
	struct mm_struct *mm;

	if (sysconf(_SC_PAGESIZE) != (long)HETMEM_PAGE_SIZE)
		return NULL;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return NULL;
	mm->users = 1;
	mm->count = 1;
	mm->pid = hetmem_mm_getpid();
	hetmem_init_rwsem(&mm->mmap_lock);
	hetmem_spin_lock_init(&mm->lock);
	hetmem_mutex_init(&mm->mon_lock);
	mm->invalidate_seq = 2;
	mm->itree = HETMEM_RB_ROOT_CACHED;
	hetmem_lockdep_init_map(&mm->inv_map, "mmu_notifier_invalidate_range_start",
				&inv_key, HETMEM_LOCKDEP_PSEUDO);
	hetmem_lockdep_init_map(&mm->devfault_map, "device_memory_fault",
				&fault_key, HETMEM_LOCKDEP_PSEUDO);
	hetmem_mutex_init(&mm->dev_lock);
	hetmem_radix_init(&mm->devtab, &mm->dev_entries, &mm->dev_table_bytes);
	hetmem_init_rwsem(&mm->fork_sem);
	return mm;
}

/**
 * hetmem_current_mm() - the address space of the calling process
 *
 * The kernel's current->mm. Created on first use; a forked child gets its
 * own on its first call. No reference is taken: the process's address
 * space lives as long as the process (or until hetmem_mm_teardown()).
 *
 * Context: Any thread. Takes a process-wide mutex on the first call only.
 * Return: the mm, or NULL when it cannot be created (out of memory, or a
 * base page size other than 4 KiB).
 */
HETMEM_API struct mm_struct *hetmem_current_mm(void)
{
	struct mm_struct *mm = __atomic_load_n(&process_mm, __ATOMIC_ACQUIRE);

	if (hetmem_likely(mm))
		return mm;
	pthread_once(&mm_fork_once, mm_register_fork_handler);
	pthread_mutex_lock(&mm_create_lock);
	mm = process_mm;
	if (!mm) {
		mm = mm_alloc();
		__atomic_store_n(&process_mm, mm, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&mm_create_lock);
	return mm;
}

bool hetmem_mm_is_current(struct mm_struct *mm)
{
	return mm && mm->pid == hetmem_mm_getpid() &&
	       __atomic_load_n(&mm->users, __ATOMIC_ACQUIRE) != 0;
}

/**
 * mmget_not_zero() - pin an address space unless it is gone
 * @mm: the address space
 *
 * Fails once hetmem_mm_teardown() dropped the process's reference, and
 * always for an mm inherited from the parent in a forked child, whose
 * memory this process cannot reach.
 *
 * Context: Any thread; lock-free.
 * Return: true with a user reference taken (drop it with mmput()), false
 * when the address space is gone or @mm is NULL.
 */
HETMEM_API bool mmget_not_zero(struct mm_struct *mm)
{
	uint32_t users;

	if (!mm || mm->pid != hetmem_mm_getpid())
		return false;
	users = __atomic_load_n(&mm->users, __ATOMIC_RELAXED);
	do {
		if (!users)
			return false;
	} while (!__atomic_compare_exchange_n(&mm->users, &users, users + 1,
					      true, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	return true;
}

/**
 * mmput() - drop a reference taken with mmget_not_zero()
 * @mm: the address space
 *
 * Context: Any thread; lock-free.
 * Return: nothing.
 */
HETMEM_API void mmput(struct mm_struct *mm)
{
	if (!mm || mm->pid != hetmem_mm_getpid())
		return;
	HETMEM_WARN_ON(__atomic_fetch_sub(&mm->users, 1, __ATOMIC_RELEASE) == 0);
}

/**
 * mmgrab() - keep the mm structure allocated
 * @mm: the address space
 *
 * Unlike mmget_not_zero(), this does not keep the address space usable,
 * only the structure; interval notifiers hold one each.
 *
 * Context: Any thread; lock-free.
 * Return: nothing.
 */
HETMEM_API void mmgrab(struct mm_struct *mm)
{
	__atomic_fetch_add(&mm->count, 1, __ATOMIC_RELAXED);
}

/**
 * mmdrop() - drop a reference taken with mmgrab()
 * @mm: the address space
 *
 * The structure is freed with the last reference, which is never before
 * hetmem_mm_teardown() (the process holds one until then).
 *
 * Context: Any thread except the monitor's; lock-free.
 * Return: nothing.
 */
HETMEM_API void mmdrop(struct mm_struct *mm)
{
	if (mm->pid != hetmem_mm_getpid())
		return;	/* the parent's copy in a forked child: never freed */
	if (__atomic_sub_fetch(&mm->count, 1, __ATOMIC_ACQ_REL) == 0) {
		hetmem_radix_destroy(&mm->devtab);
		free(mm);
	}
}

/**
 * mmap_read_lock() - take the mmap lock shared
 * @mm: the address space
 *
 * Held around hmm_range_fault() and the migration helpers, as in the
 * kernel. It orders hetmem's own page-table work; the application's mmap
 * and munmap do not take it (see the DOC block of <hetmem/mm/mm.h>).
 *
 * Context: May sleep. Must not be held across mmu_interval_read_begin() or
 * a notifier removal by a caller that also takes it for writing.
 * Return: nothing.
 */
/*
 * This thread's holds of mmap locks: how many it has, and a count that
 * changes whenever it takes or drops one, so that a mapping snapshot can
 * tell whether the hold it was taken under is still the current one.
 */
static HETMEM_TLS_HOT unsigned int mmap_depth;
static HETMEM_TLS_HOT unsigned long mmap_epoch;

static void mmap_hold(int delta)
{
	mmap_depth += delta;
	mmap_epoch++;
}

unsigned long hetmem_mmap_hold_epoch(void)
{
	return mmap_depth ? mmap_epoch : 0;
}

HETMEM_API void mmap_read_lock(struct mm_struct *mm)
{
	hetmem_down_read(&mm->mmap_lock);
	mmap_hold(1);
}

/**
 * mmap_read_trylock() - take the mmap lock shared if that needs no wait
 * @mm: the address space
 *
 * Context: Any thread; never sleeps.
 * Return: true when the lock was taken.
 */
HETMEM_API bool mmap_read_trylock(struct mm_struct *mm)
{
	if (!hetmem_down_read_trylock(&mm->mmap_lock))
		return false;
	mmap_hold(1);
	return true;
}

/**
 * mmap_read_unlock() - release a shared hold of the mmap lock
 * @mm: the address space
 *
 * Context: The thread that took it.
 * Return: nothing.
 */
HETMEM_API void mmap_read_unlock(struct mm_struct *mm)
{
	mmap_hold(-1);
	hetmem_up_read(&mm->mmap_lock);
}

/**
 * mmap_write_lock() - take the mmap lock exclusively
 * @mm: the address space
 *
 * Needed by mmu_interval_notifier_insert_locked() callers.
 *
 * Context: May sleep.
 * Return: nothing.
 */
HETMEM_API void mmap_write_lock(struct mm_struct *mm)
{
	hetmem_down_write(&mm->mmap_lock);
	mmap_hold(1);
}

/**
 * mmap_write_unlock() - release an exclusive hold of the mmap lock
 * @mm: the address space
 *
 * Context: The thread that took it.
 * Return: nothing.
 */
HETMEM_API void mmap_write_unlock(struct mm_struct *mm)
{
	mmap_hold(-1);
	hetmem_up_write(&mm->mmap_lock);
}

/**
 * mmap_assert_locked() - warn unless the caller holds the mmap lock
 * @mm: the address space
 *
 * Checked only with the lock-dependency checker on (it tracks holders).
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void mmap_assert_locked(struct mm_struct *mm)
{
	HETMEM_WARN(hetmem_lockdep_enabled() &&
		    !hetmem_lockdep_is_held(&mm->mmap_lock.dep_map),
		    "mmap lock not held");
}

/**
 * mmap_assert_write_locked() - warn unless the caller holds it exclusively
 * @mm: the address space
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void mmap_assert_write_locked(struct mm_struct *mm)
{
	HETMEM_WARN(hetmem_lockdep_enabled() &&
		    (!hetmem_lockdep_is_held(&mm->mmap_lock.dep_map) ||
		     hetmem_lockdep_is_held_read(&mm->mmap_lock.dep_map)),
		    "mmap lock not held for writing");
}

static bool probe_process_vm(void)
{
	char src = 1, dst = 0;
	struct iovec l = { &dst, 1 }, r = { &src, 1 };

	return process_vm_readv(hetmem_mm_getpid(), &l, 1, &r, 1, 0) == 1 && dst == 1;
}

static bool probe_populate(void)
{
	void *p = mmap(NULL, HETMEM_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool ok;

	if (p == MAP_FAILED)
		return false;
	ok = madvise(p, HETMEM_PAGE_SIZE, MADV_POPULATE_WRITE) == 0;
	munmap(p, HETMEM_PAGE_SIZE);
	return ok;
}

/* EVENT_FORK is offered to everyone but granted with CAP_SYS_PTRACE only. */
static void probe_fork_event(struct hetmem_mm_caps *caps)
{
	uint64_t got;
	char reason[sizeof(caps->reason)];
	int fd = hetmem_uffd_create(1ULL << 1, &got, reason, sizeof(reason));

	if (fd >= 0) {
		close(fd);
		return;
	}
	caps->uffd_features &= ~(1ULL << 1);
	snprintf(caps->reason, sizeof(caps->reason), "%s",
		 "EVENT_FORK needs CAP_SYS_PTRACE: fork is reported from pthread_atfork()");
}

/**
 * hetmem_mm_probe() - what the address-space monitor can observe here
 * @caps: filled with the findings
 *
 * Opens (and closes) a userfaultfd to learn its features; nothing stays
 * behind.
 *
 * Context: May sleep; any thread.
 * Return: 0, or -EINVAL for a NULL @caps.
 */
HETMEM_API int hetmem_mm_probe(struct hetmem_mm_caps *caps)
{
	int fd;

	if (!caps)
		return -EINVAL;
	memset(caps, 0, sizeof(*caps));
	fd = hetmem_uffd_create(0, &caps->uffd_features, caps->reason,
				sizeof(caps->reason));
	caps->uffd = fd >= 0;
	if (fd >= 0)
		close(fd);
	if (fd >= 0)
		probe_fork_event(caps);
	caps->uffd_wp_async = caps->uffd_features & (1ULL << 15);
	caps->uffd_move = caps->uffd_features & (1ULL << 16);
	caps->pagemap_scan = hetmem_have_pagemap_scan();
	caps->procmap_query = hetmem_have_procmap_query();
	caps->process_vm = probe_process_vm();
	caps->populate = probe_populate();
	caps->pagemap_pfn = hetmem_have_pagemap_pfn();
	return 0;
}

/**
 * hetmem_mm_get_stats() - counters of an address space
 * @mm: the address space
 * @stats: filled with a snapshot of the counters
 *
 * Context: Any thread; takes the mm's notifier lock briefly.
 * Return: 0, or -EINVAL for NULL arguments.
 */
HETMEM_API int hetmem_mm_get_stats(struct mm_struct *mm,
				   struct hetmem_mm_stats *stats)
{
	const uint64_t *src;
	uint64_t *dst = (uint64_t *)stats;
	size_t i;

	if (!mm || !stats)
		return -EINVAL;
	src = (const uint64_t *)&mm->stats;
	/* The counters are updated without a lock; copy them one by one. */
	for (i = 0; i < offsetof(struct hetmem_mm_stats, monitor_running) / 8; i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	hetmem_spin_lock(&mm->lock);
	stats->notifiers = mm->nr_notifiers;
	hetmem_spin_unlock(&mm->lock);
	stats->monitor_running = __atomic_load_n(&mm->mon, __ATOMIC_ACQUIRE) != NULL;
	return 0;
}

/**
 * hetmem_mm_sync() - wait until queued address-space events are delivered
 * @mm: the address space
 * @timeout: jiffies to wait at most, MAX_SCHEDULE_TIMEOUT for no limit
 *
 * After a munmap(), madvise() or mremap() of a watched range returns, its
 * event is queued, but the notifiers may not have run yet. This waits
 * until every event queued before the call has been read and its
 * callbacks have returned, which makes tests and tools deterministic.
 *
 * Context: May sleep. Not from a notifier callback (-EDEADLK).
 * Return: 0 when delivered (or nothing is watched), -ETIMEDOUT when
 * @timeout ran out, -EDEADLK on the monitor thread, -EINVAL for a NULL or
 * foreign @mm.
 */
HETMEM_API int hetmem_mm_sync(struct mm_struct *mm, long timeout)
{
	if (!hetmem_mm_is_current(mm))
		return -EINVAL;
	return hetmem_mm_sync_events(mm, hetmem_timeout_to_deadline(timeout), true);
}

/**
 * hetmem_mm_teardown() - tear down this process's address space object
 *
 * The userspace counterpart of the kernel's exit_mmap() for notifiers:
 * every interval notifier receives one blockable MMU_NOTIFY_RELEASE over
 * the whole address space, then the monitor stops and stops watching.
 * Afterwards mmget_not_zero() fails on the old mm (devices then fail their
 * accesses), notifiers can still be removed, and hetmem_current_mm()
 * creates a new address-space object. Every descriptor the mm layer keeps
 * (the userfaultfd, the monitor's eventfd, the cached /proc/self/maps and
 * pagemap) is closed; no page-table walk may run concurrently. Process exit does not call this:
 * the process is gone, and there is nobody left to tell.
 *
 * Context: May sleep. Not from a notifier callback.
 * Return: nothing.
 */
HETMEM_API void hetmem_mm_teardown(void)
{
	struct mm_struct *mm;

	pthread_mutex_lock(&mm_create_lock);
	mm = process_mm;
	__atomic_store_n(&process_mm, NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mm_create_lock);
	if (!mm)
		return;
	hetmem_migrate_evict_all(mm);
	hetmem_devtab_prune(mm);
	hetmem_mm_release_notifiers(mm);
	hetmem_mm_monitor_stop(mm);
	hetmem_staging_stop();
	hetmem_pagewalk_close();
	mmput(mm);
	mmdrop(mm);
}
