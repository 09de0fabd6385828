/* SPDX-License-Identifier: MIT */
/*
 * hetmem - libFuzzer target for dma_fence_unwrap_merge().
 *
 * The input is a little program: each byte selects an operation, the
 * bytes after it its operands. Operations create leaf fences on a few
 * timelines (32-bit ones, one of them starting just below the seqno
 * wraparound, and a 64-bit one), build arrays and chain nodes out of the
 * objects made so far, signal leaves (sometimes with an error), enable
 * signalling (which puts the deferred executor to work concurrently),
 * unwrap, look seqnos up in chains, drop objects and merge up to four
 * objects. Every merge result is checked against an independent model:
 * each object carries the bit set of the leaves it covers, so the merge
 * result must be flat, hold no signalled member, hold one fence per
 * context and that the latest pending one, be sorted by ascending
 * context, and cover every pending input leaf. At the end of an input all
 * leaves are signalled, the executor is drained and every reference is
 * dropped, so AddressSanitizer's leak check sees any reference lost.
 *
 * Built with -DFUZZ_STANDALONE the same file is a plain program that runs
 * every file of the directories (or the files) given on its command line:
 * the corpus replay registered as a unit test when -Dfuzz=true.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/core/rcu.h>
#include <hetmem/core/warn.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>
#include <hetmem/fence/dma-fence-unwrap.h>

#include "fence/fence-work.h"

#define MAX_LEAVES 64
#define MAX_OBJS 32
#define MAX_OPS 512
#define NTIMELINES 4

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz-merge: check failed at line %d: %s\n", \
			__LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

struct leaf {
	struct dma_fence base;
	hetmem_spinlock_t lock;
};

struct timeline {
	uint64_t context;
	uint64_t next;
	bool seqno64;
};

/*
 * The model of an object is two sets of leaf ids. @req: leaves the object
 * waits for, which a merge must cover while pending. @opt: leaves it may
 * yield but does not wait for: members of a signal-on-any array, which
 * stop mattering (a chain walk skips the array) once any member signals.
 */
struct object {
	struct dma_fence *fence;	/* NULL: empty slot */
	uint64_t req, opt;
};

struct state {
	const uint8_t *data;
	size_t size, pos;
	struct timeline tl[NTIMELINES];
	struct dma_fence *leaf[MAX_LEAVES];	/* the table holds a ref */
	unsigned int nleaves;
	struct object obj[MAX_OBJS];
	hetmem_ktime_t clock;
};

static const char *leaf_name(struct dma_fence *f)
{
	return "fuzz";
}

static const struct dma_fence_ops leaf_ops = {
	.get_driver_name = leaf_name,
	.get_timeline_name = leaf_name,
};

static uint8_t next_byte(struct state *s)
{
	return s->pos < s->size ? s->data[s->pos++] : 0;
}

static bool exhausted(const struct state *s)
{
	return s->pos >= s->size;
}

static bool leaf_signaled(const struct state *s, unsigned int id)
{
	return dma_fence_test_signaled_flag(s->leaf[id]);
}

static uint64_t pending_mask(const struct state *s, uint64_t mask)
{
	uint64_t pending = 0;
	unsigned int id;

	for (id = 0; id < s->nleaves; id++)
		if ((mask >> id & 1) && !leaf_signaled(s, id))
			pending |= UINT64_C(1) << id;
	return pending;
}

/* Store @fence (reference passed in) and its model in a free slot. */
static void add_object(struct state *s, struct dma_fence *fence, uint64_t req,
		       uint64_t opt)
{
	unsigned int i;

	for (i = 0; i < MAX_OBJS; i++) {
		if (!s->obj[i].fence) {
			s->obj[i].fence = fence;
			s->obj[i].req = req;
			s->obj[i].opt = opt;
			return;
		}
	}
	dma_fence_put(fence);
}

static struct object *pick_object(struct state *s)
{
	struct object *o = &s->obj[next_byte(s) % MAX_OBJS];

	return o->fence ? o : NULL;
}

static void op_new_leaf(struct state *s)
{
	struct timeline *tl = &s->tl[next_byte(s) % NTIMELINES];
	uint8_t step = next_byte(s) % 4;	/* 0: same seqno again */
	struct leaf *l;

	if (s->nleaves == MAX_LEAVES)
		return;
	l = calloc(1, sizeof(*l));
	CHECK(l);
	hetmem_spin_lock_init(&l->lock);
	tl->next += step;
	if (tl->seqno64)
		dma_fence_init64(&l->base, &leaf_ops, &l->lock, tl->context, tl->next);
	else
		dma_fence_init(&l->base, &leaf_ops, &l->lock, tl->context,
			       (uint32_t)tl->next);
	s->leaf[s->nleaves] = &l->base;
	add_object(s, dma_fence_get(&l->base), UINT64_C(1) << s->nleaves, 0);
	s->nleaves++;
}

/* Arrays may only hold leaves (a merge result that is a leaf counts). */
static void op_new_array(struct state *s)
{
	unsigned int i, n = next_byte(s) % 4 + 1, got = 0;
	bool any = next_byte(s) & 1;
	struct dma_fence **members = calloc(n, sizeof(*members));
	struct dma_fence_array *array;
	uint64_t req = 0, opt = 0;
	struct object *o;

	CHECK(members);
	for (i = 0; i < n; i++) {
		o = pick_object(s);
		if (!o || dma_fence_is_container(o->fence))
			continue;
		members[got++] = dma_fence_get(o->fence);
		req |= o->req;
		opt |= o->opt;
	}
	if (!got) {
		free(members);
		return;
	}
	array = dma_fence_array_create(got, members, dma_fence_context_alloc(1),
				       1, any);
	CHECK(array);
	if (any)
		add_object(s, &array->base, 0, req | opt);
	else
		add_object(s, &array->base, req, opt);
}

/*
 * Chain nodes link through prev only (a node, or any other fence); the
 * payload is never a chain.
 */
static void op_new_chain(struct state *s)
{
	struct object *prev = pick_object(s), *payload = pick_object(s);
	uint64_t seqno = next_byte(s);
	struct dma_fence_chain *node;

	if (!payload || dma_fence_is_chain(payload->fence))
		return;
	node = dma_fence_chain_alloc();
	CHECK(node);
	dma_fence_chain_init(node, prev ? dma_fence_get(prev->fence) : NULL,
			     dma_fence_get(payload->fence), seqno);
	add_object(s, &node->base, payload->req | (prev ? prev->req : 0),
		   payload->opt | (prev ? prev->opt : 0));
}

static void op_signal(struct state *s)
{
	uint8_t b = next_byte(s);
	struct dma_fence *leaf;

	if (!s->nleaves)
		return;
	leaf = s->leaf[b % s->nleaves];
	if (dma_fence_test_signaled_flag(leaf))
		return;
	if (b & 0x80)
		dma_fence_set_error(leaf, -EIO);
	s->clock += 1 + (b & 7);
	CHECK(dma_fence_signal_timestamp(leaf, s->clock) == 0);
}

static void op_enable(struct state *s)
{
	struct object *o = pick_object(s);

	if (o)
		dma_fence_enable_sw_signaling(o->fence);
}

static void op_put(struct state *s)
{
	struct object *o = pick_object(s);

	if (o) {
		dma_fence_put(o->fence);
		o->fence = NULL;
	}
}

/* Every leaf the cursor yields is a known leaf covered by the model. */
static void op_unwrap(struct state *s)
{
	struct object *o = pick_object(s);
	struct dma_fence_unwrap cursor;
	struct dma_fence *fence;
	unsigned int id;

	if (!o)
		return;
	dma_fence_unwrap_for_each(fence, &cursor, o->fence) {
		CHECK(!dma_fence_is_container(fence));
		for (id = 0; id < s->nleaves; id++)
			if (s->leaf[id] == fence)
				break;
		CHECK(id == s->nleaves || ((o->req | o->opt) >> id & 1));
	}
	CHECK(!cursor.chain);
}

static void op_find_seqno(struct state *s)
{
	struct object *o = pick_object(s);
	uint64_t seqno = next_byte(s);
	struct dma_fence *fence;

	if (!o || !dma_fence_is_chain(o->fence))
		return;
	fence = dma_fence_get(o->fence);
	if (dma_fence_chain_find_seqno(&fence, seqno)) {
		CHECK(seqno > o->fence->seqno);
		CHECK(fence == o->fence);
	}
	dma_fence_put(fence);
}

static int leaf_id(const struct state *s, struct dma_fence *fence)
{
	unsigned int id;

	for (id = 0; id < s->nleaves; id++)
		if (s->leaf[id] == fence)
			return (int)id;
	return -1;
}

/* Members: flat, pending inputs, strictly ascending contexts. */
static uint64_t check_members(const struct state *s, struct dma_fence *merged,
			      uint64_t pending)
{
	struct dma_fence *member;
	unsigned int index;
	uint64_t seen = 0, last = 0;
	int id;

	dma_fence_array_for_each(member, index, merged) {
		CHECK(!dma_fence_is_container(member));
		id = leaf_id(s, member);
		CHECK(id >= 0 && (pending >> id & 1));
		CHECK(!index || member->context > last);
		last = member->context;
		seen |= UINT64_C(1) << id;
	}
	return seen;
}

/* Each pending leaf has a member of its context that is not earlier. */
static void check_coverage(const struct state *s, uint64_t pending,
			   uint64_t members)
{
	unsigned int id, m;

	for (id = 0; id < s->nleaves; id++) {
		if (!(pending >> id & 1))
			continue;
		for (m = 0; m < s->nleaves; m++)
			if ((members >> m & 1) &&
			    s->leaf[m]->context == s->leaf[id]->context)
				break;
		CHECK(m < s->nleaves);
		CHECK(!dma_fence_is_later(s->leaf[id], s->leaf[m]));
	}
}

/* Returns the members (a merge result waits for all of them). */
static uint64_t check_merge(const struct state *s, struct dma_fence *merged,
			    uint64_t req, uint64_t opt)
{
	uint64_t pending = pending_mask(s, req), members;

	if (!pending_mask(s, req | opt)) {
		CHECK(dma_fence_test_signaled_flag(merged));
		CHECK(merged->context == 0 && merged->seqno == 0);
		CHECK(dma_fence_timestamp(merged) <= s->clock);
		return 0;
	}
	if (dma_fence_test_signaled_flag(merged) && merged->context == 0) {
		/* Only optional leaves were pending, and none was reached. */
		CHECK(!pending);
		return 0;
	}
	members = check_members(s, merged, pending_mask(s, req | opt));
	check_coverage(s, pending, members);
	if (dma_fence_is_array(merged)) {
		CHECK(to_dma_fence_array(merged)->num_fences >= 2);
		CHECK(merged->seqno == 1);
	}
	return members;
}

static void op_merge(struct state *s)
{
	struct dma_fence *in[4] = { NULL, NULL, NULL, NULL }, *merged;
	struct dma_fence_unwrap cursors[4];
	unsigned int i, n = next_byte(s) % 4 + 1;
	uint64_t req = 0, opt = 0;
	struct object *o;

	for (i = 0; i < n; i++) {
		o = pick_object(s);
		if (o) {
			in[i] = o->fence;
			req |= o->req;
			opt |= o->opt;
		}
	}
	merged = __dma_fence_unwrap_merge(n, in, cursors);
	CHECK(merged);
	add_object(s, merged, check_merge(s, merged, req, opt), 0);
}

static void (*const ops[])(struct state *s) = {
	op_new_leaf, op_new_leaf, op_new_array, op_new_chain, op_signal,
	op_signal, op_enable, op_put, op_unwrap, op_find_seqno, op_merge,
	op_merge,
};

static void setup_timelines(struct state *s)
{
	unsigned int i;

	for (i = 0; i < NTIMELINES; i++) {
		s->tl[i].context = dma_fence_context_alloc(1);
		s->tl[i].next = 1;
		s->tl[i].seqno64 = i == NTIMELINES - 1;
	}
	/* Cross the 32-bit wraparound within a few leaves. */
	s->tl[1].next = 0xfffffff0u;
}

/* Complete everything, drain the executor, drop every reference. */
static void teardown(struct state *s)
{
	unsigned int i;

	for (i = 0; i < s->nleaves; i++)
		dma_fence_signal(s->leaf[i]);
	hetmem_fence_work_flush();
	for (i = 0; i < MAX_OBJS; i++)
		dma_fence_put(s->obj[i].fence);
	for (i = 0; i < s->nleaves; i++)
		dma_fence_put(s->leaf[i]);
#ifdef FUZZ_STANDALONE
	/*
	 * Released fences are freed after a grace period; wait for it so
	 * that a replayed input leaves nothing behind. libFuzzer runs skip
	 * this for speed: it then checks leaks once, at exit.
	 */
	hetmem_rcu_barrier();
#endif
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The dependency checker's graph grows with every input of a long run;
 * leave it on only when asked for (the corpus replay test asks).
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (!getenv("HETMEM_LOCKDEP"))
		hetmem_lockdep_set_enabled(false);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state *s = calloc(1, sizeof(*s));
	unsigned int n;

	CHECK(s);
	hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	s->data = data;
	s->size = size;
	setup_timelines(s);
	for (n = 0; n < MAX_OPS && !exhausted(s); n++)
		ops[next_byte(s) % (sizeof(ops) / sizeof(ops[0]))](s);
	teardown(s);
	free(s);
	return 0;
}

#ifdef FUZZ_STANDALONE
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

/* Run every regular file of @dir (or @dir itself if it is a file). */
static int run_path(const char *dir, unsigned int *count)
{
	char path[4096];
	struct dirent *e;
	DIR *d = opendir(dir);
	int ret = 0;

	if (!d) {
		(*count)++;
		return run_file(dir);
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		printf("# %s\n", path);
		(*count)++;
		if (run_file(path))
			ret = -1;
	}
	closedir(d);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned int count = 0;
	int i, ret = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++)
		if (run_path(argv[i], &count))
			ret = 1;
	printf("1..1\n%s 1 - replayed %u inputs\n", ret ? "not ok" : "ok", count);
	return ret;
}
#endif
