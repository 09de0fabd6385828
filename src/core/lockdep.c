/* SPDX-License-Identifier: MIT */
/*
 * hetmem - lock-dependency checker.
 */

/**
 * DOC: Classes, held stacks and the dependency graph
 *
 * The checker reasons about lock classes, not lock instances: all the
 * locks initialised at one call site (one struct hetmem_lock_class_key)
 * are one class, and a map without a key is a class of its own, identified
 * by its address. A class gets a small integer id the first time one of
 * its maps is used. The id is cached in the map together with the graph
 * generation it belongs to, so that hetmem_lockdep_reset() can forget every
 * id at once by bumping the generation: a map carrying an id from an older
 * generation simply registers again.
 *
 * Every thread keeps the stack of maps it holds, with the mode (read or
 * exclusive) and the code site of each acquisition. Taking class B while
 * holding A adds the edge A -> B to one process-wide graph, remembering
 * where B was taken and where A had been taken. Edges are never removed
 * (except by a reset) and each is added exactly once, so the graph is the
 * union of every lock order the process has ever shown, across threads and
 * across time: two threads taking A, B and B, A an hour apart, never
 * actually deadlocking, still produce A -> B and B -> A.
 *
 * Trylocks cannot deadlock, so taking one adds no edge into it; once held
 * it is an ordinary held lock and edges out of it are recorded.
 */

/**
 * DOC: What gets reported
 *
 * - A circular dependency: a new edge A -> B for which a path B -> ... -> A
 *   already exists. The graph is searched breadth first, so the shortest
 *   such path is shown, each of its edges with the two sites recorded on
 *   it. Because an edge is added once, a cycle is reported once, when the
 *   edge that closes it first appears.
 * - Recursive locking: taking a class the thread already holds (two
 *   instances of one class nest the same way as one lock twice, and the
 *   checker cannot tell an intended order between them). Two read
 *   acquisitions of one class are allowed. A read acquisition of a
 *   pseudo-lock whose section the thread is already inside adds no
 *   dependency at all, whatever was taken in between: that is a nested
 *   fence-signalling section, which waits for nothing.
 * - A wait inside its own section: hetmem_lockdep_might_wait_for() on a
 *   pseudo-lock the thread holds, e.g. a fence wait inside a fence
 *   signalling critical section.
 * - Sleeping in atomic context: hetmem_might_sleep() while holding a map
 *   flagged HETMEM_LOCKDEP_ATOMIC.
 * - Releasing a map the thread does not hold.
 *
 * Every report is a multi-line hetmem warning (warn.h) that ends with the
 * list of locks the thread holds; hetmem_lockdep_report_count() counts
 * them. Reports other than cycles are remembered by their pair of sites
 * and made only once, so a hot loop repeating one mistake does not flood
 * the log.
 */

/**
 * DOC: Differences from the kernel's lockdep
 *
 * - There are no interrupt states: no hardirq/softirq contexts, no
 *   irq-safe/irq-unsafe inversion checks. The one context that matters in
 *   userspace is "atomic" (a spinlock held), checked by
 *   hetmem_might_sleep().
 * - Readers are simplified: a read acquisition makes edges exactly like an
 *   exclusive one, so every read is treated as a non-recursive shared lock
 *   that can be blocked by a queued writer. The only exemptions are a read
 *   of a class the thread already holds for reading (no recursion report)
 *   and, for pseudo-locks, a nested read (no edges either). This is the
 *   model the kernel applies to its fence-signalling annotation, whose
 *   nested sections never reach lockdep at all.
 * - No subclasses or nesting annotations: nesting two locks of one class is
 *   always reported.
 * - No lock chains cache; instead a lockless hash lookup answers "is this
 *   edge known" on every acquisition.
 * - Tables have fixed sizes (4096 classes, 32768 edges, 48 held locks per
 *   thread). When the class or edge table is full the checker prints one
 *   warning and turns itself off until the next hetmem_lockdep_reset(); a
 *   full held stack drops the acquisition with one warning.
 * - Class names are copied (truncated to 47 characters), keys are not
 *   checked for being static: a keyless map that is freed and whose
 *   address is reused by another keyless map shares its class.
 */

/**
 * DOC: Concurrency, cost and fork
 *
 * The graph is protected by one pthread mutex that the checker does not
 * track itself. Taking a lock with the checker off costs one atomic load.
 * With it on, each held lock costs one lockless hash lookup of its edge to
 * the new class; the mutex is taken only to register a class or add an
 * edge, which happens once per class and per pair. Edge slots are published
 * with release stores and read with atomic loads, so lookups racing with an
 * insertion or a reset are well defined (at worst they miss an edge being
 * added, which the mutex-protected re-check then finds).
 *
 * Reports are collected while the mutex is held and formatted and
 * delivered after it is dropped: formatting calls dladdr(), which takes the
 * dynamic loader's lock, and the warning handler may run arbitrary code.
 * While a thread is inside the checker, including inside a warning handler
 * it triggered, its own lock operations are ignored rather than recursing.
 *
 * A fork()ed child inherits the graph and the forking thread's held stack.
 * Fork handlers hold the mutex across fork() so that the child never
 * starts with it locked by a thread that no longer exists.
 *
 * hetmem_lockdep_set_enabled() can switch the checker off and on at run
 * time, and a full table switches it off. Locks taken or dropped while it
 * is off are not seen, so on its next call after a switch each thread
 * forgets its held stack and stops complaining about unmatched releases.
 */

#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#ifndef HETMEM_LOCKDEP_DEFAULT
#define HETMEM_LOCKDEP_DEFAULT 0
#endif

#define LD_MAX_CLASSES	4096u	/* class ids 1..LD_MAX_CLASSES, 0 is "none" */
#define LD_MAX_EDGES	32768u	/* edge ids 1..LD_MAX_EDGES, 0 ends a list */
#define LD_MAX_HELD	48u
#define LD_NAME_LEN	48u
#define LD_CLASS_BITS	13	/* 8192 class hash buckets */
#define LD_EDGE_BITS	15	/* 32768 edge hash buckets */
#define LD_SEEN_SLOTS	1024u
#define LD_SEEN_PROBES	16u
#define LD_MAX_EVENTS	(LD_MAX_HELD + 4)

struct ld_class {
	const void *key;
	uint32_t hash_next;	/* next class in the same key bucket */
	uint32_t first_out;	/* newest edge leaving this class */
	char name[LD_NAME_LEN];
};

struct ld_edge {
	uint32_t pair;		/* from << 16 | to; read without the mutex */
	uint32_t hash_next;	/* read without the mutex */
	uint32_t out_next;	/* next edge leaving the same class */
	const void *site;	/* where "to" was acquired */
	const void *from_site;	/* where "from" had been acquired */
};

struct ld_held {
	struct hetmem_lockdep_map *map;
	const void *site;
	unsigned int cid;	/* generation << 16 | class index */
	unsigned int flags;
	bool read;
	bool trylock;
};

enum ld_kind {
	LD_CYCLE,
	LD_RECURSIVE,
	LD_WAIT_INSIDE,
	LD_SLEEP,
	LD_NOT_HELD,
	LD_TURNED_OFF,		/* a table filled up: a limit, not a bug */
	LD_STACK_FULL,		/* likewise */
};

struct ld_link {
	char from[LD_NAME_LEN];
	char to[LD_NAME_LEN];
	const void *site;
	const void *from_site;
};

/* One finding, captured under the mutex and formatted after dropping it. */
struct ld_event {
	enum ld_kind kind;
	const char *name;	/* the map being taken, waited for, released */
	const void *site;
	bool read;
	const char *held_name;	/* the held map the finding is about */
	const void *held_site;
	bool held_read;
	unsigned int nr_links;	/* LD_CYCLE: the existing reverse path */
	struct ld_link *links;
};

#define LD_MAX_PUBLISHED 8

struct ld_task {
	bool registered;	/* in ld_threads (see hetmem_lockdep_borrow()) */
	/* Held annotation maps, readable by other threads (atomics). */
	struct hetmem_lockdep_map *published[LD_MAX_PUBLISHED];
	unsigned int depth;
	unsigned int epoch;	/* ld_epoch the stack is valid for */
	unsigned int dropped;	/* acquisitions lost to a full stack */
	unsigned int busy;	/* inside the checker: ignore own locks */
	bool incomplete;	/* stack lost across an on/off switch */
	unsigned int nr_events;
	struct ld_held held[LD_MAX_HELD];
	struct ld_event events[LD_MAX_EVENTS];
};

static struct ld_graph {
	uint32_t nr_classes;
	uint32_t nr_edges;
	uint32_t class_hash[1u << LD_CLASS_BITS];
	uint32_t edge_hash[1u << LD_EDGE_BITS];	/* read without the mutex */
	struct ld_class classes[LD_MAX_CLASSES + 1];
	struct ld_edge edges[LD_MAX_EDGES + 1];
	uint64_t seen[LD_SEEN_SLOTS];
	/* Breadth-first search scratch space. */
	uint32_t stamp;
	uint32_t mark[LD_MAX_CLASSES + 1];
	uint32_t via[LD_MAX_CLASSES + 1];
	uint16_t queue[LD_MAX_CLASSES];
} ld;

static pthread_mutex_t ld_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ld_once = PTHREAD_ONCE_INIT;
static int ld_on = -1;		/* effective switch; -1 before setup */
static bool ld_user_on;		/* what was asked for; under ld_lock */
static bool ld_full;		/* a table overflowed; under ld_lock */
static unsigned int ld_gen = 1;	/* graph generation, bumped by reset */
static unsigned int ld_epoch;	/* bumped when the switch flips */
static unsigned long ld_reports;

static __thread struct ld_task ld_self;

#define LD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- switch, setup and fork ------------------------------------------- */

static void ld_fork_prepare(void)
{
	/* Locks other fork handlers take while we hold ld_lock go unseen. */
	ld_self.busy++;
	pthread_mutex_lock(&ld_lock);
}

static void ld_fork_done(void)
{
	pthread_mutex_unlock(&ld_lock);
	ld_self.busy--;
}

static bool ld_env_default(void)
{
	const char *env = getenv("HETMEM_LOCKDEP");

	if (env && (!strcmp(env, "0") || !strcmp(env, "1")))
		return env[0] == '1';
	return HETMEM_LOCKDEP_DEFAULT;
}

/*
 * Called with ld_lock held whenever ld_user_on or ld_full changes. A flip
 * makes every held stack stale: locks change hands unseen while off.
 */
static void ld_update_switch(void)
{
	int on = ld_user_on && !ld_full;

	if (__atomic_load_n(&ld_on, __ATOMIC_RELAXED) != on)
		__atomic_add_fetch(&ld_epoch, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&ld_on, on, __ATOMIC_RELEASE);
}

static void ld_setup(void)
{
	pthread_atfork(ld_fork_prepare, ld_fork_done, ld_fork_done);
	pthread_mutex_lock(&ld_lock);
	ld_user_on = ld_env_default();
	/* The first value is not a flip: nothing can have gone unseen. */
	__atomic_store_n(&ld_on, ld_user_on, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ld_lock);
}

static inline bool ld_active(void)
{
	int on = __atomic_load_n(&ld_on, __ATOMIC_ACQUIRE);

	if (hetmem_unlikely(on < 0)) {
		pthread_once(&ld_once, ld_setup);
		on = __atomic_load_n(&ld_on, __ATOMIC_ACQUIRE);
	}
	return on > 0;
}

/*
 * Threads whose held stacks another thread may read: a thread blocked in
 * a page fault that hetmem serves on its monitor thread (see
 * hetmem_lockdep_borrow()). Slots are taken on a thread's first use of
 * the checker and given back when it exits.
 */
#define LD_MAX_THREADS 1024

static struct ld_thread {
	pid_t tid;
	struct ld_task *task;
} ld_threads[LD_MAX_THREADS];
static pthread_mutex_t ld_threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t ld_thread_key;
static pthread_once_t ld_thread_once = PTHREAD_ONCE_INIT;

static void ld_thread_exit(void *arg)
{
	pthread_mutex_lock(&ld_threads_lock);
	for (unsigned int i = 0; i < LD_MAX_THREADS; i++) {
		if (ld_threads[i].task == arg)
			ld_threads[i].task = NULL;
	}
	pthread_mutex_unlock(&ld_threads_lock);
}

static void ld_thread_key_init(void)
{
	pthread_key_create(&ld_thread_key, ld_thread_exit);
}

static void ld_thread_register(struct ld_task *t)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);

	t->registered = true;
	pthread_once(&ld_thread_once, ld_thread_key_init);
	pthread_mutex_lock(&ld_threads_lock);
	for (unsigned int i = 0; i < LD_MAX_THREADS; i++) {
		if (!ld_threads[i].task || ld_threads[i].tid == tid) {
			ld_threads[i].tid = tid;
			ld_threads[i].task = t;
			break;
		}
	}
	pthread_mutex_unlock(&ld_threads_lock);
	pthread_setspecific(ld_thread_key, t);
}

static struct ld_task *ld_task(void)
{
	struct ld_task *t = &ld_self;

	if (hetmem_unlikely(!t->registered))
		ld_thread_register(t);
	unsigned int epoch = __atomic_load_n(&ld_epoch, __ATOMIC_ACQUIRE);

	if (hetmem_unlikely(t->epoch != epoch)) {
		/* The switch flipped: what happened meanwhile went unseen. */
		t->epoch = epoch;
		t->depth = 0;
		t->dropped = 0;
		t->incomplete = true;
	}
	return t;
}

/* --- findings ----------------------------------------------------------- */

static const char *ld_name(const char *name)
{
	return name ? name : "(unnamed)";
}

static struct ld_event *ld_event_new(enum ld_kind kind)
{
	struct ld_task *t = &ld_self;
	struct ld_event *ev;

	if (t->nr_events == LD_MAX_EVENTS)
		return NULL;
	ev = &t->events[t->nr_events++];
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	return ev;
}

static void ld_event_fill(struct ld_event *ev, const struct ld_held *h,
			  const struct hetmem_lockdep_map *map, bool read,
			  const void *site)
{
	if (map)
		ev->name = ld_name(map->name);
	ev->site = site;
	ev->read = read;
	if (h) {
		ev->held_name = ld_name(h->map->name);
		ev->held_site = h->site;
		ev->held_read = h->read;
	}
}

/* Under ld_lock: was this kind of report made at these sites before? */
static bool ld_seen_before(enum ld_kind kind, const void *a, const void *b)
{
	/* Never 0, which marks a free slot. */
	uint64_t key = ((uint64_t)(uintptr_t)a * 0x9e3779b97f4a7c15ull ^
			(uint64_t)(uintptr_t)b * 0xc2b2ae3d27d4eb4full ^
			(uint64_t)kind << 1) | 1;
	unsigned int i, slot = (unsigned int)(key >> 32) % LD_SEEN_SLOTS;

	for (i = 0; i < LD_SEEN_PROBES; i++) {
		if (ld.seen[slot] == key)
			return true;
		if (!ld.seen[slot]) {
			ld.seen[slot] = key;
			return false;
		}
		slot = (slot + 1) % LD_SEEN_SLOTS;
	}
	/* Crowded: better to repeat a report than to lose a new one. */
	return false;
}

/* Queue a report other than a cycle, unless it was made before. */
static void ld_report(enum ld_kind kind, const struct ld_held *h,
		      const struct hetmem_lockdep_map *map, bool read,
		      const void *site)
{
	struct ld_event *ev;
	bool seen;

	pthread_mutex_lock(&ld_lock);
	seen = ld_seen_before(kind, h ? h->site : (const void *)map, site);
	pthread_mutex_unlock(&ld_lock);
	if (seen)
		return;
	ev = ld_event_new(kind);
	if (ev)
		ld_event_fill(ev, h, map, read, site);
}

/* Called with ld_lock held when a table is full. */
static void ld_overflow(const char *what)
{
	struct ld_event *ev;

	if (ld_full)
		return;
	ld_full = true;
	ld_update_switch();
	ev = ld_event_new(LD_TURNED_OFF);
	if (ev)
		ev->name = what;
}

/* --- classes ------------------------------------------------------------ */

static inline unsigned int ld_gen16(void)
{
	return __atomic_load_n(&ld_gen, __ATOMIC_RELAXED) & 0xffffu;
}

static inline bool ld_cid_current(unsigned int cid)
{
	return cid && cid >> 16 == ld_gen16();
}

static inline uint32_t ld_idx(unsigned int cid)
{
	return cid & 0xffffu;
}

static uint32_t ld_hash_ptr(const void *p, unsigned int bits)
{
	return (uint32_t)((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull >>
			  (64 - bits));
}

static uint32_t ld_class_find(const void *key)
{
	uint32_t i = ld.class_hash[ld_hash_ptr(key, LD_CLASS_BITS)];

	while (i && ld.classes[i].key != key)
		i = ld.classes[i].hash_next;
	return i;
}

static uint32_t ld_class_new(const void *key,
			     const struct hetmem_lockdep_map *map)
{
	uint32_t *bucket = &ld.class_hash[ld_hash_ptr(key, LD_CLASS_BITS)];
	struct ld_class *c;
	uint32_t i;

	if (ld.nr_classes == LD_MAX_CLASSES) {
		ld_overflow("class table");
		return 0;
	}
	i = ++ld.nr_classes;
	c = &ld.classes[i];
	c->key = key;
	c->first_out = 0;
	snprintf(c->name, sizeof(c->name), "%s", ld_name(map->name));
	c->hash_next = *bucket;
	*bucket = i;
	return i;
}

static unsigned int ld_register(struct hetmem_lockdep_map *map)
{
	const void *key = map->key ? (const void *)map->key : (const void *)map;
	unsigned int cid;
	uint32_t i;

	pthread_mutex_lock(&ld_lock);
	cid = __atomic_load_n(&map->class_id, __ATOMIC_RELAXED);
	if (ld_cid_current(cid))
		goto out;	/* another thread registered it meanwhile */
	cid = 0;
	if (ld_full)
		goto out;
	i = ld_class_find(key);
	if (!i)
		i = ld_class_new(key, map);
	if (i) {
		cid = ld_gen16() << 16 | i;
		__atomic_store_n(&map->class_id, cid, __ATOMIC_RELAXED);
	}
out:
	pthread_mutex_unlock(&ld_lock);
	return cid;
}

/* Class id of @map in the current generation; 0 if the table is full. */
static unsigned int ld_class_of(struct hetmem_lockdep_map *map)
{
	unsigned int cid = __atomic_load_n(&map->class_id, __ATOMIC_RELAXED);

	if (hetmem_likely(ld_cid_current(cid)))
		return cid;
	return ld_register(map);
}

/* A reset may have happened since @h was pushed: refresh its class. */
static unsigned int ld_held_class(struct ld_held *h)
{
	if (hetmem_unlikely(!ld_cid_current(h->cid)))
		h->cid = ld_class_of(h->map);
	return h->cid;
}

/* --- edges -------------------------------------------------------------- */

static inline uint32_t ld_pair(unsigned int from, unsigned int to)
{
	return ld_idx(from) << 16 | ld_idx(to);
}

static inline uint32_t ld_edge_from(uint32_t e)
{
	return __atomic_load_n(&ld.edges[e].pair, __ATOMIC_RELAXED) >> 16;
}

static inline uint32_t ld_edge_to(uint32_t e)
{
	return __atomic_load_n(&ld.edges[e].pair, __ATOMIC_RELAXED) & 0xffffu;
}

static uint32_t *ld_edge_bucket(uint32_t pair)
{
	return &ld.edge_hash[pair * 2654435761u >> (32 - LD_EDGE_BITS)];
}

/*
 * Lockless: a chain only ever points to lower edge ids, so the walk ends
 * even when a reset recycles slots under it.
 */
static bool ld_edge_known(uint32_t pair)
{
	uint32_t i = __atomic_load_n(ld_edge_bucket(pair), __ATOMIC_ACQUIRE);

	while (i) {
		const struct ld_edge *e = &ld.edges[i];

		if (__atomic_load_n(&e->pair, __ATOMIC_RELAXED) == pair)
			return true;
		i = __atomic_load_n(&e->hash_next, __ATOMIC_RELAXED);
	}
	return false;
}

/* Called with ld_lock held. Returns the new edge id, 0 if the table is full. */
static uint32_t ld_edge_add(uint32_t pair, const void *site,
			    const void *from_site)
{
	uint32_t *bucket = ld_edge_bucket(pair);
	struct ld_class *from = &ld.classes[pair >> 16];
	struct ld_edge *e;
	uint32_t i;

	if (ld.nr_edges == LD_MAX_EDGES) {
		ld_overflow("dependency table");
		return 0;
	}
	i = ++ld.nr_edges;
	e = &ld.edges[i];
	e->site = site;
	e->from_site = from_site;
	e->out_next = from->first_out;
	from->first_out = i;
	__atomic_store_n(&e->pair, pair, __ATOMIC_RELAXED);
	__atomic_store_n(&e->hash_next,
			 __atomic_load_n(bucket, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	/* Publish last: a lockless reader must find a complete edge. */
	__atomic_store_n(bucket, i, __ATOMIC_RELEASE);
	return i;
}

/* --- cycle search ------------------------------------------------------- */

static uint32_t ld_bfs_stamp(void)
{
	if (++ld.stamp == 0) {
		/* Wrapped: marks from 2^32 searches ago would look current. */
		memset(ld.mark, 0, sizeof(ld.mark));
		ld.stamp = 1;
	}
	return ld.stamp;
}

/*
 * Called with ld_lock held. Breadth first, so the path found is a shortest
 * one; ld.via[] then leads back from @to to @from, one edge per class.
 */
static bool ld_path_exists(uint32_t from, uint32_t to)
{
	uint32_t head = 0, tail = 0, stamp = ld_bfs_stamp();
	uint32_t x, y, e;

	ld.mark[from] = stamp;
	ld.queue[tail++] = (uint16_t)from;
	while (head < tail) {
		x = ld.queue[head++];
		for (e = ld.classes[x].first_out; e; e = ld.edges[e].out_next) {
			y = ld_edge_to(e);
			if (ld.mark[y] == stamp)
				continue;
			ld.mark[y] = stamp;
			ld.via[y] = e;
			if (y == to)
				return true;
			ld.queue[tail++] = (uint16_t)y;
		}
	}
	return false;
}

static void ld_link_fill(struct ld_link *l, uint32_t e)
{
	memcpy(l->from, ld.classes[ld_edge_from(e)].name, LD_NAME_LEN);
	memcpy(l->to, ld.classes[ld_edge_to(e)].name, LD_NAME_LEN);
	l->site = ld.edges[e].site;
	l->from_site = ld.edges[e].from_site;
}

/* Copy the path ld_path_exists() found, since the graph may change later. */
static void ld_capture_path(struct ld_event *ev, uint32_t from, uint32_t to)
{
	unsigned int n = 0;
	uint32_t x;

	for (x = to; x != from; x = ld_edge_from(ld.via[x]))
		n++;
	ev->links = calloc(n, sizeof(*ev->links));
	if (!ev->links)
		return;
	ev->nr_links = n;
	for (x = to; x != from; x = ld_edge_from(ld.via[x]))
		ld_link_fill(&ev->links[--n], ld.via[x]);
}

/* Called with ld_lock held, after adding edge @e for taking @map under @h. */
static void ld_check_cycle(uint32_t e, const struct ld_held *h,
			   const struct hetmem_lockdep_map *map, bool read,
			   const void *site)
{
	uint32_t from = ld_edge_from(e), to = ld_edge_to(e);
	struct ld_event *ev;

	if (!ld_path_exists(to, from))
		return;
	ev = ld_event_new(LD_CYCLE);
	if (!ev)
		return;
	ld_event_fill(ev, h, map, read, site);
	ld_capture_path(ev, to, from);
}

/* --- acquisition -------------------------------------------------------- */

/* Called with ld_lock held. */
static void ld_add_edge(const struct ld_held *h,
			const struct hetmem_lockdep_map *map, unsigned int cid,
			bool read, const void *site)
{
	uint32_t pair = ld_pair(h->cid, cid);
	uint32_t e;

	/* A reset since the lockless check made these ids meaningless. */
	if (!ld_cid_current(h->cid) || !ld_cid_current(cid))
		return;
	if (ld_edge_known(pair))
		return;		/* another thread added it meanwhile */
	e = ld_edge_add(pair, site, h->site);
	if (e)
		ld_check_cycle(e, h, map, read, site);
}

static void ld_add_edges(struct ld_task *t, const uint8_t *missing,
			 unsigned int n, const struct hetmem_lockdep_map *map,
			 unsigned int cid, bool read, const void *site)
{
	unsigned int i;

	pthread_mutex_lock(&ld_lock);
	for (i = 0; i < n && !ld_full; i++)
		ld_add_edge(&t->held[missing[i]], map, cid, read, site);
	pthread_mutex_unlock(&ld_lock);
}

/*
 * Edges from every held class to @cid. The common case, every edge known
 * already, takes no lock at all.
 */
static void ld_check_acquire(struct ld_task *t,
			     const struct hetmem_lockdep_map *map,
			     unsigned int cid, bool read, const void *site)
{
	uint8_t missing[LD_MAX_HELD];
	unsigned int i, hc, n = 0;
	bool recursive = false;
	struct ld_held *h;

	for (i = 0; i < t->depth; i++) {
		h = &t->held[i];
		hc = ld_held_class(h);
		if (!hc)
			continue;
		if (hc != cid) {
			if (!ld_edge_known(ld_pair(hc, cid)))
				missing[n++] = (uint8_t)i;
			continue;
		}
		if (!(h->read && read) && !recursive) {
			ld_report(LD_RECURSIVE, h, map, read, site);
			recursive = true;
		}
	}
	if (n)
		ld_add_edges(t, missing, n, map, cid, read, site);
}

static void ld_push(struct ld_task *t, struct hetmem_lockdep_map *map,
		    unsigned int cid, bool read, bool trylock, const void *site)
{
	struct ld_event *ev;

	if (t->depth == LD_MAX_HELD) {
		/* Its release will not find it either: stay quiet then. */
		if (!t->dropped++ && (ev = ld_event_new(LD_STACK_FULL)))
			ld_event_fill(ev, NULL, map, read, site);
		return;
	}
	t->held[t->depth++] = (struct ld_held){
		.map = map, .site = site, .cid = cid, .flags = map->flags,
		.read = read, .trylock = trylock,
	};
}

static bool ld_pop(struct ld_task *t, const struct hetmem_lockdep_map *map)
{
	unsigned int i = t->depth;

	while (i--) {
		if (t->held[i].map != map)
			continue;
		memmove(&t->held[i], &t->held[i + 1],
			(t->depth - i - 1) * sizeof(t->held[0]));
		t->depth--;
		return true;
	}
	return false;
}

static struct ld_held *ld_find(struct ld_task *t,
			       const struct hetmem_lockdep_map *map,
			       bool want_read)
{
	unsigned int i = t->depth;

	while (i--) {
		if (t->held[i].map == map && (!want_read || t->held[i].read))
			return &t->held[i];
	}
	return NULL;
}

static struct ld_held *ld_find_class(struct ld_task *t, unsigned int cid)
{
	unsigned int i = t->depth;

	while (i--) {
		if (ld_held_class(&t->held[i]) == cid)
			return &t->held[i];
	}
	return NULL;
}

static const struct ld_held *ld_find_atomic(const struct ld_task *t)
{
	unsigned int i = t->depth;

	while (i--) {
		if (t->held[i].flags & HETMEM_LOCKDEP_ATOMIC)
			return &t->held[i];
	}
	return NULL;
}

/* --- formatting and delivery ------------------------------------------- */

static void ld_put_site(FILE *f, const void *site)
{
	const char *obj;
	Dl_info info;

	if (!site) {
		fputs("(unknown site)", f);
		return;
	}
	if (!dladdr(site, &info) || !info.dli_fname) {
		fprintf(f, "%p", site);
		return;
	}
	obj = strrchr(info.dli_fname, '/');
	obj = obj ? obj + 1 : info.dli_fname;
	if (info.dli_sname && info.dli_saddr)
		fprintf(f, "%s+0x%tx (%s)", info.dli_sname,
			(const char *)site - (const char *)info.dli_saddr, obj);
	else
		fprintf(f, "%p (%s+0x%tx)", site, obj,
			(const char *)site - (const char *)info.dli_fbase);
}

static const char *ld_mode(bool read)
{
	return read ? " (read)" : "";
}

static void ld_put_held(FILE *f, const struct ld_task *t)
{
	const struct ld_held *h;
	unsigned int i;

	if (!t->depth) {
		fprintf(f, "\nno locks held by thread %d", hetmem_gettid());
		return;
	}
	fprintf(f, "\nlocks held by thread %d:", hetmem_gettid());
	for (i = 0; i < t->depth; i++) {
		h = &t->held[i];
		fprintf(f, "\n  #%u: %s%s%s, acquired at ", i,
			ld_name(h->map->name), ld_mode(h->read),
			h->trylock ? " (trylock)" : "");
		ld_put_site(f, h->site);
	}
}

static void ld_put_cycle(FILE *f, const struct ld_event *ev)
{
	const struct ld_link *l;
	unsigned int i;

	fprintf(f, "possible circular locking dependency detected\n"
		"thread %d is acquiring %s%s at ", hetmem_gettid(), ev->name,
		ld_mode(ev->read));
	ld_put_site(f, ev->site);
	fprintf(f, "\nwhile holding %s%s, acquired at ", ev->held_name,
		ld_mode(ev->held_read));
	ld_put_site(f, ev->held_site);
	fprintf(f, "\nnew dependency %s -> %s closes a cycle; existing chain:",
		ev->held_name, ev->name);
	for (i = 0; i < ev->nr_links; i++) {
		l = &ev->links[i];
		fprintf(f, "\n  %s -> %s: %s acquired at ", l->from, l->to,
			l->to);
		ld_put_site(f, l->site);
		fprintf(f, "\n    while holding %s, acquired at ", l->from);
		ld_put_site(f, l->from_site);
	}
	if (!ev->links)
		fputs("\n  (not recorded: out of memory)", f);
}

static void ld_put_recursive(FILE *f, const struct ld_event *ev)
{
	fprintf(f, "possible recursive locking detected\n"
		"thread %d is acquiring %s%s at ", hetmem_gettid(), ev->name,
		ld_mode(ev->read));
	ld_put_site(f, ev->site);
	fprintf(f, "\nbut already holds %s%s (same class), acquired at ",
		ev->held_name, ld_mode(ev->held_read));
	ld_put_site(f, ev->held_site);
}

static void ld_put_wait_inside(FILE *f, const struct ld_event *ev)
{
	fprintf(f, "wait inside a signalling critical section\n"
		"thread %d waits for %s at ", hetmem_gettid(), ev->name);
	ld_put_site(f, ev->site);
	fprintf(f, "\ninside the %s section it entered at ", ev->held_name);
	ld_put_site(f, ev->held_site);
	fputs("\nthe wait needs every such section to end, this one included",
	      f);
}

static void ld_put_sleep(FILE *f, const struct ld_event *ev)
{
	fputs("sleeping function called from atomic context at ", f);
	ld_put_site(f, ev->site);
	fprintf(f, "\nthread %d holds %s%s (atomic), acquired at ",
		hetmem_gettid(), ev->held_name, ld_mode(ev->held_read));
	ld_put_site(f, ev->held_site);
}

static void ld_put_not_held(FILE *f, const struct ld_event *ev)
{
	fprintf(f, "releasing lock %s not held\nthread %d releases it at ",
		ev->name, hetmem_gettid());
	ld_put_site(f, ev->site);
}

static void ld_put_limit(FILE *f, const struct ld_event *ev)
{
	if (ev->kind == LD_TURNED_OFF) {
		fprintf(f, "lock-dependency checker turned off: %s full "
			"(limits: %u classes, %u dependencies)", ev->name,
			LD_MAX_CLASSES, LD_MAX_EDGES);
		return;
	}
	fprintf(f, "lock-dependency checker: thread %d holds %u locks, "
		"not tracking %s acquired at ", hetmem_gettid(), LD_MAX_HELD,
		ev->name);
	ld_put_site(f, ev->site);
}

static void ld_format(FILE *f, const struct ld_task *t,
		      const struct ld_event *ev)
{
	switch (ev->kind) {
	case LD_CYCLE:
		ld_put_cycle(f, ev);
		break;
	case LD_RECURSIVE:
		ld_put_recursive(f, ev);
		break;
	case LD_WAIT_INSIDE:
		ld_put_wait_inside(f, ev);
		break;
	case LD_SLEEP:
		ld_put_sleep(f, ev);
		break;
	case LD_NOT_HELD:
		ld_put_not_held(f, ev);
		break;
	case LD_TURNED_OFF:
	case LD_STACK_FULL:
		ld_put_limit(f, ev);
		return;		/* about the checker, not about the locks */
	}
	ld_put_held(f, t);
}

static void ld_emit(const struct ld_task *t, struct ld_event *ev)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (ev->kind < LD_TURNED_OFF)
		__atomic_add_fetch(&ld_reports, 1, __ATOMIC_RELAXED);
	f = open_memstream(&text, &len);
	if (f) {
		ld_format(f, t, ev);
		fclose(f);
	}
	hetmem_warn(__FILE__, __LINE__, __func__, "%s",
		    text ? text : "lock-dependency report (out of memory)");
	free(text);
	free(ev->links);
}

/* Deliver what was queued; t->busy keeps the warning handler's locks out. */
static void ld_flush(struct ld_task *t)
{
	unsigned int i;

	for (i = 0; i < t->nr_events; i++)
		ld_emit(t, &t->events[i]);
	t->nr_events = 0;
}

/* --- entry points ------------------------------------------------------ */

/*
 * Entering a pseudo-lock section the thread is already inside waits for
 * nothing and orders nothing new: the outer entry already did.
 */
static bool ld_nested_section(struct ld_task *t,
			      const struct hetmem_lockdep_map *map,
			      unsigned int cid, bool read)
{
	const struct ld_held *h;

	if (!read || !(map->flags & HETMEM_LOCKDEP_PSEUDO))
		return false;
	h = ld_find_class(t, cid);
	return h && h->read;
}

static void ld_acquire(struct ld_task *t, struct hetmem_lockdep_map *map,
		       bool read, bool trylock, const void *site)
{
	unsigned int cid = ld_class_of(map);

	if (cid && !trylock && !ld_nested_section(t, map, cid, read))
		ld_check_acquire(t, map, cid, read, site);
	/* Before the push, so that "locks held" shows the state it found. */
	ld_flush(t);
	ld_push(t, map, cid, read, trylock, site);
	ld_flush(t);
}

static void ld_might_wait(struct ld_task *t, struct hetmem_lockdep_map *map,
			  const void *site)
{
	unsigned int cid = ld_class_of(map);
	struct ld_held *h = cid ? ld_find_class(t, cid) : NULL;

	/*
	 * Inside the section the edges would only close the cycle through
	 * @map again and repeat the same finding as a second report.
	 */
	if (h)
		ld_report(LD_WAIT_INSIDE, h, map, false, site);
	else if (cid)
		ld_check_acquire(t, map, cid, false, site);
	ld_flush(t);
}

/**
 * hetmem_lockdep_init_map() - initialise a lock-dependency map
 * @map: the map, usually embedded in a lock
 * @name: name shown in reports; the string must outlive the map
 * @key: static object identifying the class, or NULL to make @map its
 *	own class (then @map should be static too)
 * @flags: HETMEM_LOCKDEP_ATOMIC and/or HETMEM_LOCKDEP_PSEUDO
 *
 * Maps that are statically initialised with HETMEM_LOCKDEP_MAP_INIT() need
 * no call. Re-initialising a map drops its cached class, so a lock can be
 * moved to another class while nobody holds it.
 *
 * Context: Any thread; @map must not be held or in use concurrently.
 * Return: nothing.
 */
HETMEM_API void hetmem_lockdep_init_map(struct hetmem_lockdep_map *map,
					const char *name,
					const struct hetmem_lock_class_key *key,
					unsigned int flags)
{
	map->name = name;
	map->key = key;
	map->flags = flags;
	__atomic_store_n(&map->class_id, 0, __ATOMIC_RELAXED);
}

/* Swap @from for @to in the task's published annotation maps. */
static void ld_publish(struct ld_task *t, struct hetmem_lockdep_map *from,
		       struct hetmem_lockdep_map *to)
{
	for (unsigned int k = 0; k < LD_MAX_PUBLISHED; k++) {
		if (__atomic_load_n(&t->published[k], __ATOMIC_RELAXED) == from) {
			__atomic_store_n(&t->published[k], to, __ATOMIC_RELEASE);
			return;
		}
	}
}

/**
 * hetmem_lockdep_acquire() - record that the calling thread takes a lock
 * @map: the lock's map
 * @read: non-zero for a shared (read) acquisition
 * @trylock: true if the lock was taken without waiting
 * @site: code address of the acquisition, normally the caller's
 *	__builtin_return_address(0)
 *
 * Adds an edge from every class the thread holds to @map's class, reports
 * a cycle that a new edge closes and recursive acquisition of a held class
 * (two reads of one class are allowed), then pushes @map on the thread's
 * held stack. A trylock adds no edges: it cannot wait, so cannot deadlock.
 * Call it before blocking on the real lock, so that a deadlock is
 * reported before it happens.
 *
 * Context: Any thread. Takes the checker's internal lock only to register
 * a new class or a new dependency.
 * Return: nothing.
 */
HETMEM_API void hetmem_lockdep_acquire(struct hetmem_lockdep_map *map,
				       int read, bool trylock,
				       const void *site)
{
	struct ld_task *t;

	if (!ld_active())
		return;
	t = ld_task();
	if (t->busy)
		return;
	t->busy++;
	ld_acquire(t, map, read != 0, trylock, site);
	if (map->flags & HETMEM_LOCKDEP_PSEUDO)
		ld_publish(t, NULL, map);
	t->busy--;
}

/**
 * hetmem_lockdep_release() - record that the calling thread drops a lock
 * @map: the lock's map
 * @site: code address of the release
 *
 * Removes the most recent acquisition of @map from the held stack; locks
 * may be released in any order. Releasing a map the thread does not hold
 * is reported, unless the checker has been switched off and on since the
 * thread started, because the acquisition may then have gone unseen.
 *
 * Context: The thread that acquired @map.
 * Return: nothing.
 */
HETMEM_API void hetmem_lockdep_release(struct hetmem_lockdep_map *map,
				       const void *site)
{
	struct ld_task *t;

	if (!ld_active())
		return;
	t = ld_task();
	if (map->flags & HETMEM_LOCKDEP_PSEUDO)
		ld_publish(t, map, NULL);
	if (ld_pop(t, map) || t->busy || t->incomplete)
		return;
	if (t->dropped) {
		t->dropped--;	/* one of the acquisitions a full stack lost */
		return;
	}
	t->busy++;
	ld_report(LD_NOT_HELD, NULL, map, false, site);
	ld_flush(t);
	t->busy--;
}

/**
 * hetmem_lockdep_is_held() - does the calling thread hold a map
 * @map: the map (this instance, not any map of its class)
 *
 * Context: Any thread.
 * Return: true if the checker is on and the thread holds @map in any mode;
 * false otherwise, including always while the checker is off.
 */
HETMEM_API bool hetmem_lockdep_is_held(const struct hetmem_lockdep_map *map)
{
	if (!ld_active())
		return false;
	return ld_find(ld_task(), map, false) != NULL;
}

/**
 * hetmem_lockdep_is_held_read() - does the calling thread hold a map shared
 * @map: the map (this instance, not any map of its class)
 *
 * The fence layer uses it to recognise a nested signalling section.
 *
 * Context: Any thread.
 * Return: true if the checker is on and the thread holds @map through at
 * least one read acquisition; false otherwise.
 */
HETMEM_API bool
hetmem_lockdep_is_held_read(const struct hetmem_lockdep_map *map)
{
	if (!ld_active())
		return false;
	return ld_find(ld_task(), map, true) != NULL;
}

/**
 * hetmem_might_sleep() - annotate a point where the caller may sleep
 * @site: code address of the point, normally the caller's
 *	__builtin_return_address(0)
 *
 * Reports "sleeping function called from atomic context" if the thread
 * holds a map flagged HETMEM_LOCKDEP_ATOMIC (a spinlock), naming where the
 * innermost such map was acquired and @site.
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void hetmem_might_sleep(const void *site)
{
	const struct ld_held *h;
	struct ld_task *t;

	if (!ld_active())
		return;
	t = ld_task();
	h = ld_find_atomic(t);
	if (!h || t->busy)
		return;
	t->busy++;
	ld_report(LD_SLEEP, h, NULL, false, site);
	ld_flush(t);
	t->busy--;
}

/**
 * hetmem_lockdep_might_wait_for() - annotate a wait for a pseudo-lock
 * @map: the pseudo-lock standing for what is waited on
 * @site: code address of the wait
 *
 * If the thread holds @map's class (in either mode), this is a wait inside
 * a section that the wait itself has to see finish: reported, naming the
 * site that entered the section and @site, and nothing is recorded.
 * Otherwise the wait counts as an exclusive acquisition of @map
 * immediately followed by its release: edges from every held lock to @map
 * are added and cycles they close are reported, but the held stack is left
 * as it was.
 *
 * Context: Any thread. Takes the checker's internal lock only for a new
 * dependency or a report.
 * Return: nothing.
 */
HETMEM_API void hetmem_lockdep_might_wait_for(struct hetmem_lockdep_map *map,
					      const void *site)
{
	struct ld_task *t;

	if (!ld_active())
		return;
	t = ld_task();
	if (t->busy)
		return;
	t->busy++;
	ld_might_wait(t, map, site);
	t->busy--;
}

/**
 * hetmem_lockdep_enabled() - is the checker on
 *
 * The first call of any checker function reads HETMEM_LOCKDEP=0|1 from the
 * environment, falling back to the build default (-Dlockdep).
 *
 * Context: Any thread.
 * Return: true if acquisitions are being checked; false if the checker is
 * off, by request or because one of its tables filled up.
 */
HETMEM_API bool hetmem_lockdep_enabled(void)
{
	return ld_active();
}

/**
 * hetmem_lockdep_set_enabled() - switch the checker on or off
 * @on: true to check, false to stop checking
 *
 * Overrides the environment and the build default. The graph learnt so far
 * is kept either way. Locks taken or released while the checker is off are
 * not seen, so after a switch every thread starts with an empty held stack
 * and no longer reports unmatched releases.
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void hetmem_lockdep_set_enabled(bool on)
{
	ld_active();	/* read the environment first: it must not win later */
	pthread_mutex_lock(&ld_lock);
	ld_user_on = on;
	ld_update_switch();
	pthread_mutex_unlock(&ld_lock);
}

/**
 * hetmem_lockdep_reset() - forget every class and dependency
 *
 * Meant for tests that want a clean graph. Maps keep their cached class
 * ids, but those belong to the old generation and are replaced on next use
 * (after 65536 resets an ancient id could be mistaken for a current one).
 * Held stacks are kept and re-resolved. Turns back on a checker that
 * switched itself off because a table filled up (unless it was also
 * switched off explicitly); held stacks are then forgotten like after any
 * switch. The report count is not reset.
 *
 * Context: Any thread; best called while no other thread takes locks,
 * since dependencies being learnt concurrently may be lost.
 * Return: nothing.
 */
HETMEM_API void hetmem_lockdep_reset(void)
{
	uint32_t i;

	ld_active();
	pthread_mutex_lock(&ld_lock);
	__atomic_add_fetch(&ld_gen, 1, __ATOMIC_RELAXED);
	ld.nr_classes = 0;
	ld.nr_edges = 0;
	memset(ld.class_hash, 0, sizeof(ld.class_hash));
	for (i = 0; i < LD_ARRAY_SIZE(ld.edge_hash); i++)
		__atomic_store_n(&ld.edge_hash[i], 0, __ATOMIC_RELAXED);
	memset(ld.seen, 0, sizeof(ld.seen));
	ld_full = false;
	ld_update_switch();
	pthread_mutex_unlock(&ld_lock);
}

/**
 * hetmem_lockdep_report_count() - number of problems reported
 *
 * Counts the lock-dependency findings (cycles, recursive locking, waits
 * inside a section, sleeping in atomic context, unmatched releases) made
 * since the process started; not the warnings about the checker's own
 * limits. Each is also counted by hetmem_warn_count().
 *
 * Context: Any thread.
 * Return: the count.
 */
HETMEM_API unsigned long hetmem_lockdep_report_count(void)
{
	return __atomic_load_n(&ld_reports, __ATOMIC_RELAXED);
}

/**
 * hetmem_lockdep_borrow() - the annotation maps another thread holds
 * @tid: kernel thread id of a thread that is blocked and cannot change
 *	what it holds (hetmem uses this for a thread waiting in a page fault
 *	that the address-space monitor serves)
 * @maps: receives up to @max maps flagged HETMEM_LOCKDEP_PSEUDO (fence
 *	signalling sections, "an invalidation runs", ...)
 * @max: size of @maps
 *
 * In the kernel a page fault runs in the faulting thread, so what it
 * waits for is ordered after what that thread holds. When hetmem serves
 * the fault on another thread, that thread acquires the borrowed maps
 * first, and the checker sees the same dependencies.
 *
 * Context: Any thread; the checker must be enabled. Takes an internal
 * mutex.
 * Return: the number of maps stored.
 */
HETMEM_API unsigned int hetmem_lockdep_borrow(pid_t tid,
					      struct hetmem_lockdep_map **maps,
					      unsigned int max)
{
	unsigned int n = 0;

	if (!ld_active() || !tid)
		return 0;
	pthread_mutex_lock(&ld_threads_lock);
	for (unsigned int i = 0; i < LD_MAX_THREADS; i++) {
		struct ld_task *t = ld_threads[i].task;

		if (!t || ld_threads[i].tid != tid)
			continue;
		for (unsigned int k = 0; k < LD_MAX_PUBLISHED && n < max; k++) {
			struct hetmem_lockdep_map *m =
				__atomic_load_n(&t->published[k], __ATOMIC_ACQUIRE);

			if (m)
				maps[n++] = m;
		}
		break;
	}
	pthread_mutex_unlock(&ld_threads_lock);
	return n;
}
