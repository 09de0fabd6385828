/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the dma-buf core: export contracts, descriptors
 * and identity (also across fork), attachments and mappings, dynamic
 * importers and move_notify, CPU access waits, mmap/vmap, names, poll
 * readiness, the sync_file bridge and the bufinfo listing.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hetmem/buf/dma-buf.h>
#include <hetmem/core/rcu.h>
#include <hetmem/core/warn.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/sync_file.h>

#include "harness.h"
#include "mock-fence.h"

struct texp {
	int attach, detach, pin, unpin, release, begin, end, mmap, vmap;
	int refuse_attach;
	int begin_ret;
};

static int t_attach(struct dma_buf *d, struct dma_buf_attachment *a)
{
	struct texp *t = d->priv;

	(void)a;
	t->attach++;
	return t->refuse_attach ? -EBUSY : 0;
}

static void t_detach(struct dma_buf *d, struct dma_buf_attachment *a)
{
	(void)a;
	((struct texp *)d->priv)->detach++;
}

static int t_pin(struct dma_buf_attachment *a)
{
	((struct texp *)a->dmabuf->priv)->pin++;
	return 0;
}

static void t_unpin(struct dma_buf_attachment *a)
{
	((struct texp *)a->dmabuf->priv)->unpin++;
}

static void t_release(struct dma_buf *d)
{
	((struct texp *)d->priv)->release++;
}

static int t_begin(struct dma_buf *d, enum dma_data_direction dir)
{
	struct texp *t = d->priv;

	(void)dir;
	t->begin++;
	return t->begin_ret;
}

static int t_end(struct dma_buf *d, enum dma_data_direction dir)
{
	(void)dir;
	((struct texp *)d->priv)->end++;
	return 0;
}

static int t_mmap(struct dma_buf *d, struct hetmem_vma *vma)
{
	(void)vma;
	((struct texp *)d->priv)->mmap++;
	return 0;
}

static int t_vmap(struct dma_buf *d, struct iosys_map *map)
{
	((struct texp *)d->priv)->vmap++;
	return hetmem_dma_buf_vmap_memfd(d, map);
}

static const struct dma_buf_ops static_ops = {
	.attach = t_attach, .detach = t_detach,
	.map_dma_buf = hetmem_dma_buf_map_memfd,
	.unmap_dma_buf = hetmem_dma_buf_unmap_memfd,
	.release = t_release,
	.begin_cpu_access = t_begin, .end_cpu_access = t_end,
	.mmap = t_mmap, .vmap = t_vmap, .vunmap = hetmem_dma_buf_vunmap_memfd,
};

static const struct dma_buf_ops dynamic_ops = {
	.attach = t_attach, .detach = t_detach,
	.pin = t_pin, .unpin = t_unpin,
	.map_dma_buf = hetmem_dma_buf_map_memfd,
	.unmap_dma_buf = hetmem_dma_buf_unmap_memfd,
	.release = t_release,
};

static const struct dma_buf_ops bare_ops = {
	.map_dma_buf = hetmem_dma_buf_map_memfd,
	.unmap_dma_buf = hetmem_dma_buf_unmap_memfd,
	.release = t_release,
};

static size_t page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static struct dma_buf *export(struct texp *t, const struct dma_buf_ops *ops,
			      size_t size)
{
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct dma_buf *d;

	info.exp_name = "test-exporter";
	info.ops = ops;
	info.size = size;
	info.priv = t;
	d = dma_buf_export(&info);
	ASSERT_FALSE(hetmem_dma_buf_is_err(d));
	return d;
}

static void put_all(struct dma_buf *d)
{
	dma_buf_put(d);
	hetmem_rcu_barrier();
}

static void add_fence(struct dma_buf *d, struct dma_fence *f,
		      enum dma_resv_usage usage)
{
	dma_resv_lock(d->resv, NULL);
	ASSERT_EQ(dma_resv_reserve_fences(d->resv, 1), 0);
	dma_resv_add_fence(d->resv, f, usage);
	dma_resv_unlock(d->resv);
}

static void signal_put(struct dma_fence *f)
{
	dma_fence_signal(f);
	dma_fence_put(f);
}

TEST(export_rejects_bad_info)
{
	struct texp t = { 0 };
	struct dma_buf_ops ops = bare_ops;
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct dma_buf *d;

	info.ops = &ops;
	info.size = page();
	info.priv = &t;
	d = dma_buf_export(NULL);
	ASSERT_TRUE(hetmem_dma_buf_is_err(d));
	EXPECT_EQ(hetmem_dma_buf_ptr_err(d), -EINVAL);
	ops.map_dma_buf = NULL;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	ops = bare_ops;
	ops.unmap_dma_buf = NULL;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	ops = bare_ops;
	ops.release = NULL;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	ops = bare_ops;
	ops.pin = t_pin;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	ops = bare_ops;
	ops.unpin = t_unpin;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	ops = bare_ops;
	info.priv = NULL;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	info.priv = &t;
	info.size = 0;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	info.size = page();
	info.ops = NULL;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_export(&info)), -EINVAL);
	EXPECT_EQ(t.release, 0);
}

TEST(export_memfd_sealed_exact_size)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, 3 * page() + 5);
	int seals = fcntl(d->file, F_GET_SEALS);

	EXPECT_EQ(d->size, 3 * page() + 5);
	EXPECT_EQ(lseek(d->file, 0, SEEK_END), (off_t)(3 * page() + 5));
	EXPECT_TRUE(seals & F_SEAL_SHRINK);
	EXPECT_TRUE(seals & F_SEAL_GROW);
	EXPECT_TRUE(fcntl(d->file, F_GETFD) & FD_CLOEXEC);
	EXPECT_STREQ(d->exp_name, "test-exporter");
	EXPECT_TRUE(d->resv == &d->_resv);
	EXPECT_FALSE(dma_buf_is_dynamic(d));
	put_all(d);
	EXPECT_EQ(t.release, 1);
}

TEST(export_with_exporter_resv)
{
	struct texp t = { 0 };
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct dma_resv resv;
	struct dma_buf *d;

	dma_resv_init(&resv);
	info.ops = &bare_ops;
	info.size = page();
	info.priv = &t;
	info.resv = &resv;
	d = dma_buf_export(&info);
	ASSERT_FALSE(hetmem_dma_buf_is_err(d));
	EXPECT_TRUE(d->resv == &resv);
	put_all(d);
	dma_resv_fini(&resv);
	hetmem_rcu_barrier();
}

TEST(fd_cloexec_and_shared_description)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	int a = dma_buf_fd(d, O_CLOEXEC);
	int b = dma_buf_fd(d, 0);

	ASSERT_GE(a, 0);
	ASSERT_GE(b, 0);
	EXPECT_TRUE(fcntl(a, F_GETFD) & FD_CLOEXEC);
	EXPECT_FALSE(fcntl(b, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(fcntl(a, F_SETFL, O_NONBLOCK), 0);
	EXPECT_TRUE(fcntl(b, F_GETFL) & O_NONBLOCK);
	EXPECT_EQ(dma_buf_fd(NULL, 0), -EINVAL);
	put_all(d);
	/* The descriptors outlive the object and still give the size. */
	EXPECT_EQ(lseek(a, 0, SEEK_END), (off_t)page());
	close(a);
	close(b);
}

TEST(get_same_process_same_object)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	int fd = dma_buf_fd(d, O_CLOEXEC);
	struct dma_buf *g = dma_buf_get(fd);
	void *p;

	ASSERT_TRUE(g == d);
	EXPECT_EQ(hetmem_kref_read(&d->refcount), 2u);
	dma_buf_put(g);
	put_all(d);
	EXPECT_EQ(t.release, 1);
	/* After release the descriptor becomes a new imported object. */
	g = dma_buf_get(fd);
	ASSERT_FALSE(hetmem_dma_buf_is_err(g));
	EXPECT_STREQ(g->exp_name, "hetmem-import");
	EXPECT_EQ(g->size, page());
	ASSERT_EQ(hetmem_dma_buf_mmap(g, &p, page(), PROT_READ, 0), 0);
	munmap(p, page());
	put_all(g);
	close(fd);
}

TEST(get_rejects_non_dma_bufs)
{
	int p[2], m;

	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_get(-1)), -EBADF);
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_get(p[0])), -EINVAL);
	m = memfd_create("unsealed", MFD_CLOEXEC);
	ASSERT_GE(m, 0);
	ASSERT_EQ(ftruncate(m, (off_t)page()), 0);
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_get(m)), -EINVAL);
	close(m);
	close(p[0]);
	close(p[1]);
}

static int child_import(int fd, struct dma_buf *parent_obj)
{
	struct dma_buf *g = dma_buf_get(fd);
	struct hetmem_device dev = { "child-cpu" };
	struct dma_buf_attachment *a;
	struct sg_table *sgt;
	int ok;

	if (hetmem_dma_buf_is_err(g) || g == parent_obj)
		return 1;
	if (strcmp(g->exp_name, "hetmem-import") || g->size != page())
		return 2;
	a = dma_buf_attach(g, &dev);
	if (hetmem_dma_buf_is_err(a))
		return 3;
	sgt = dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL);
	if (hetmem_dma_buf_is_err(sgt))
		return 4;
	ok = !strcmp((char *)(uintptr_t)sg_dma_address(&sgt->sgl[0]), "parent");
	strcpy((char *)(uintptr_t)sg_dma_address(&sgt->sgl[0]), "child");
	dma_buf_unmap_attachment_unlocked(a, sgt, DMA_BIDIRECTIONAL);
	dma_buf_detach(g, a);
	dma_buf_put(g);
	return ok ? 0 : 5;
}

TEST(get_in_forked_child_imports)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, page());
	struct iosys_map map;
	int fd = dma_buf_fd(d, 0), status;
	pid_t pid;

	ASSERT_EQ(dma_buf_vmap_unlocked(d, &map), 0);
	strcpy(map.vaddr, "parent");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(child_import(fd, d));
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(WEXITSTATUS(status), 0);
	EXPECT_STREQ((char *)map.vaddr, "child");
	dma_buf_vunmap_unlocked(d, &map);
	close(fd);
	put_all(d);
}

TEST(attach_map_unmap_detach)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, 2 * page());
	struct hetmem_device dev = { "cpu0" };
	struct dma_buf_attachment *a;
	struct sg_table *sgt;
	char *p;

	ASSERT_EQ(pwrite(d->file, "hello", 6, (off_t)page()), 6);
	a = dma_buf_attach(d, &dev);
	ASSERT_FALSE(hetmem_dma_buf_is_err(a));
	EXPECT_EQ(t.attach, 1);
	EXPECT_TRUE(a->dmabuf == d && a->dev == &dev);
	EXPECT_FALSE(dma_buf_attachment_is_dynamic(a));
	dma_resv_lock(d->resv, NULL);
	sgt = dma_buf_map_attachment(a, DMA_TO_DEVICE);
	dma_resv_unlock(d->resv);
	ASSERT_FALSE(hetmem_dma_buf_is_err(sgt));
	ASSERT_EQ(sgt->nents, 1u);
	EXPECT_EQ(sg_dma_len(&sgt->sgl[0]), 2 * page());
	EXPECT_EQ(sgt->sgl[0].page_link, 0ul);
	p = (char *)(uintptr_t)sg_dma_address(&sgt->sgl[0]);
	EXPECT_STREQ(p + page(), "hello");
	EXPECT_EQ(a->map_count, 1u);
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_map_attachment_unlocked(a, DMA_NONE)),
		  -EINVAL);
	dma_buf_unmap_attachment_unlocked(a, sgt, DMA_TO_DEVICE);
	EXPECT_EQ(a->map_count, 0u);
	dma_buf_detach(d, a);
	EXPECT_EQ(t.detach, 1);
	put_all(d);
}

TEST(attach_errors)
{
	struct texp t = { .refuse_attach = 1 };
	struct dma_buf *d = export(&t, &static_ops, page());
	struct hetmem_device dev = { "dev" };
	struct dma_buf_attach_ops no_notify = { 0 };

	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_attach(d, &dev)), -EBUSY);
	t.refuse_attach = 0;
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_attach(NULL, &dev)), -EINVAL);
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_attach(d, NULL)), -EINVAL);
	EXPECT_EQ(hetmem_dma_buf_ptr_err(dma_buf_dynamic_attach(d, &dev,
								&no_notify, NULL)),
		  -EINVAL);
	EXPECT_TRUE(hetmem_list_empty(&d->attachments));
	put_all(d);
}

TEST(map_without_lock_warns)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, page());
	struct hetmem_device dev = { "dev" };
	struct dma_buf_attachment *a = dma_buf_attach(d, &dev);
	unsigned long before = hetmem_warn_count();
	struct sg_table *sgt;

	if (!hetmem_lockdep_enabled())
		SKIP(goto out, "lock-dependency checker off");
	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	sgt = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL);
	ASSERT_FALSE(hetmem_dma_buf_is_err(sgt));
	EXPECT_GT(hetmem_warn_count(), before);
	dma_buf_unmap_attachment_unlocked(a, sgt, DMA_BIDIRECTIONAL);
out:
	dma_buf_detach(d, a);
	put_all(d);
}

static int notified, notified_locked;

static void t_move_notify(struct dma_buf_attachment *a)
{
	notified++;
	if (dma_resv_held(a->dmabuf->resv))
		notified_locked++;
}

static const struct dma_buf_attach_ops importer_ops = {
	.move_notify = t_move_notify,
};

TEST(dynamic_importer_move_notify_and_pin)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &dynamic_ops, page());
	struct hetmem_device dev = { "dyn" }, sdev = { "static" };
	struct dma_buf_attachment *dyn, *st;
	struct sg_table *sgt;

	EXPECT_TRUE(dma_buf_is_dynamic(d));
	dyn = dma_buf_dynamic_attach(d, &dev, &importer_ops, &t);
	st = dma_buf_attach(d, &sdev);
	ASSERT_FALSE(hetmem_dma_buf_is_err(dyn));
	ASSERT_FALSE(hetmem_dma_buf_is_err(st));
	EXPECT_TRUE(dyn->importer_priv == &t);
	dma_resv_lock(d->resv, NULL);
	dma_buf_move_notify(d);
	/* A dynamic importer's map does not pin; a static one's does. */
	sgt = dma_buf_map_attachment(dyn, DMA_BIDIRECTIONAL);
	ASSERT_FALSE(hetmem_dma_buf_is_err(sgt));
	EXPECT_EQ(t.pin, 0);
	dma_buf_unmap_attachment(dyn, sgt, DMA_BIDIRECTIONAL);
	sgt = dma_buf_map_attachment(st, DMA_BIDIRECTIONAL);
	EXPECT_EQ(t.pin, 1);
	dma_buf_unmap_attachment(st, sgt, DMA_BIDIRECTIONAL);
	EXPECT_EQ(t.unpin, 1);
	EXPECT_EQ(dma_buf_pin(dyn), 0);
	dma_buf_unpin(dyn);
	dma_resv_unlock(d->resv);
	EXPECT_EQ(notified, 1);
	EXPECT_EQ(notified_locked, 1);
	EXPECT_EQ(t.pin, 2);
	EXPECT_EQ(t.unpin, 2);
	dma_buf_detach(d, st);
	dma_buf_detach(d, dyn);
	put_all(d);
}

TEST(misuse_warns_and_leaves_state)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &dynamic_ops, page());
	struct hetmem_device dev = { "static" };
	struct dma_buf_attachment *a = dma_buf_attach(d, &dev);
	struct sg_table fake = { 0 };
	unsigned long before = hetmem_warn_count();

	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	dma_resv_lock(d->resv, NULL);
	/* Pinning is for dynamic importers only. */
	EXPECT_EQ(dma_buf_pin(a), -EINVAL);
	EXPECT_EQ(t.pin, 0);
	dma_buf_unmap_attachment(a, &fake, DMA_BIDIRECTIONAL);
	EXPECT_EQ(t.unpin, 0);
	dma_resv_unlock(d->resv);
	EXPECT_GE(hetmem_warn_count(), before + 2);
	dma_buf_detach(d, a);
	put_all(d);
}

struct signaller {
	pthread_t th;
	struct dma_fence *f;
	long delay_ms;
	int64_t at;
};

static void *signal_later(void *arg)
{
	struct signaller *s = arg;

	harness_sleep_ms(s->delay_ms);
	s->at = harness_now_ms();
	dma_fence_signal(s->f);
	return NULL;
}

static void start_signaller(struct signaller *s, struct dma_fence *f, long ms)
{
	s->f = f;
	s->delay_ms = ms;
	ASSERT_EQ(pthread_create(&s->th, NULL, signal_later, s), 0);
}

TEST(static_map_waits_for_kernel_fences)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, page());
	struct dma_fence *k = mock_fence_create(0), *w = mock_fence_create(0);
	struct hetmem_device dev = { "dev" };
	struct dma_buf_attachment *a = dma_buf_attach(d, &dev);
	struct signaller s;
	struct sg_table *sgt;

	add_fence(d, k, DMA_RESV_USAGE_KERNEL);
	add_fence(d, w, DMA_RESV_USAGE_WRITE);
	start_signaller(&s, k, 50);
	sgt = dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL);
	ASSERT_FALSE(hetmem_dma_buf_is_err(sgt));
	EXPECT_TRUE(dma_fence_is_signaled(k));
	EXPECT_FALSE(dma_fence_is_signaled(w));
	pthread_join(s.th, NULL);
	dma_buf_unmap_attachment_unlocked(a, sgt, DMA_BIDIRECTIONAL);
	dma_buf_detach(d, a);
	dma_fence_put(k);
	signal_put(w);
	put_all(d);
}

TEST(begin_cpu_read_waits_for_writers_only)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, page());
	struct dma_fence *r = mock_fence_create(0), *w = mock_fence_create(0);
	struct signaller s;

	add_fence(d, r, DMA_RESV_USAGE_READ);
	add_fence(d, w, DMA_RESV_USAGE_WRITE);
	start_signaller(&s, w, 50);
	EXPECT_EQ(dma_buf_begin_cpu_access(d, DMA_FROM_DEVICE), 0);
	EXPECT_TRUE(dma_fence_is_signaled(w));
	EXPECT_FALSE(dma_fence_is_signaled(r));
	EXPECT_EQ(dma_buf_end_cpu_access(d, DMA_FROM_DEVICE), 0);
	EXPECT_EQ(t.begin, 1);
	EXPECT_EQ(t.end, 1);
	pthread_join(s.th, NULL);
	signal_put(r);
	dma_fence_put(w);
	put_all(d);
}

TEST(begin_cpu_write_waits_for_all)
{
	static const enum dma_data_direction dirs[] = {
		DMA_TO_DEVICE, DMA_BIDIRECTIONAL,
	};
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, page());
	unsigned int i;

	for (i = 0; i < 2; i++) {
		struct dma_fence *r = mock_fence_create(0);
		struct dma_fence *b = mock_fence_create(0);
		struct signaller s;

		add_fence(d, r, DMA_RESV_USAGE_READ);
		add_fence(d, b, DMA_RESV_USAGE_BOOKKEEP);
		start_signaller(&s, r, 50);
		EXPECT_EQ(dma_buf_begin_cpu_access(d, dirs[i]), 0);
		EXPECT_TRUE(dma_fence_is_signaled(r));
		EXPECT_GE(harness_now_ms(), s.at);
		pthread_join(s.th, NULL);
		dma_fence_put(r);
		signal_put(b);
	}
	put_all(d);
}

TEST(begin_cpu_access_errors)
{
	struct texp t = { .begin_ret = -EIO };
	struct dma_buf *d = export(&t, &static_ops, page());
	struct dma_fence *w = mock_fence_create(0);

	add_fence(d, w, DMA_RESV_USAGE_WRITE);
	/* The op fails: nothing is waited for. */
	EXPECT_EQ(dma_buf_begin_cpu_access(d, DMA_FROM_DEVICE), -EIO);
	EXPECT_EQ(dma_buf_begin_cpu_access(d, DMA_NONE), -EINVAL);
	EXPECT_EQ(dma_buf_begin_cpu_access(NULL, DMA_TO_DEVICE), -EINVAL);
	EXPECT_EQ(dma_buf_end_cpu_access(NULL, DMA_TO_DEVICE), -EINVAL);
	signal_put(w);
	put_all(d);
}

static void on_usr1(int sig)
{
	(void)sig;
}

struct cpu_waiter {
	struct dma_buf *d;
	int ret;
	int done;
};

static void *begin_thread(void *arg)
{
	struct cpu_waiter *w = arg;

	w->ret = dma_buf_begin_cpu_access(w->d, DMA_BIDIRECTIONAL);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(begin_cpu_access_interrupted)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	struct dma_fence *r = mock_fence_create(0);
	struct cpu_waiter w = { .d = d };
	int64_t end = harness_now_ms() + 10000;
	pthread_t th;

	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	add_fence(d, r, DMA_RESV_USAGE_READ);
	ASSERT_EQ(pthread_create(&th, NULL, begin_thread, &w), 0);
	while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE) &&
	       harness_now_ms() < end) {
		pthread_kill(th, SIGUSR1);
		harness_sleep_ms(5);
	}
	pthread_join(th, NULL);
	EXPECT_EQ(w.ret, -HETMEM_ERESTARTSYS);
	EXPECT_FALSE(dma_fence_is_signaled(r));
	signal_put(r);
	put_all(d);
}

TEST(poll_readiness_four_combinations)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	struct dma_fence *r = mock_fence_create(0), *w = mock_fence_create(0);
	struct dma_fence *b = mock_fence_create(0);

	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
	EXPECT_EQ(hetmem_dma_buf_poll(d, 0, 0), 0);
	add_fence(d, b, DMA_RESV_USAGE_BOOKKEEP);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
	add_fence(d, r, DMA_RESV_USAGE_READ);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLOUT, 0), 0);
	add_fence(d, w, DMA_RESV_USAGE_WRITE);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), 0);
	dma_fence_signal(r);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), 0);
	dma_fence_signal(w);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
	EXPECT_EQ(hetmem_dma_buf_poll(NULL, POLLIN, 0), -EINVAL);
	dma_fence_put(r);
	dma_fence_put(w);
	signal_put(b);
	put_all(d);
}

TEST(poll_waits_and_times_out)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	struct dma_fence *w = mock_fence_create(0);
	struct signaller s;
	int64_t t0;

	add_fence(d, w, DMA_RESV_USAGE_WRITE);
	t0 = harness_now_ms();
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN, 30), 0);
	EXPECT_GE(harness_now_ms() - t0, 29);
	start_signaller(&s, w, 30);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 10000), POLLIN | POLLOUT);
	pthread_join(s.th, NULL);
	dma_fence_put(w);
	put_all(d);
}

static bool sync_file_ready(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

TEST(export_sync_file_snapshots)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	struct dma_fence *r = mock_fence_create(0);
	int rd, wr, none;

	EXPECT_EQ(dma_buf_export_sync_file(d, 0), -EINVAL);
	EXPECT_EQ(dma_buf_export_sync_file(d, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ),
		  -EINVAL);
	EXPECT_EQ(dma_buf_export_sync_file(NULL, DMA_BUF_SYNC_READ), -EINVAL);
	none = dma_buf_export_sync_file(d, DMA_BUF_SYNC_RW);
	ASSERT_GE(none, 0);
	EXPECT_TRUE(sync_file_ready(none));
	EXPECT_TRUE(fcntl(none, F_GETFD) & FD_CLOEXEC);
	add_fence(d, r, DMA_RESV_USAGE_READ);
	rd = dma_buf_export_sync_file(d, DMA_BUF_SYNC_READ);
	wr = dma_buf_export_sync_file(d, DMA_BUF_SYNC_WRITE);
	ASSERT_GE(rd, 0);
	ASSERT_GE(wr, 0);
	EXPECT_TRUE(sync_file_ready(rd));
	EXPECT_FALSE(sync_file_ready(wr));
	dma_fence_signal(r);
	EXPECT_TRUE(sync_file_ready(wr));
	close(none);
	close(rd);
	close(wr);
	dma_fence_put(r);
	put_all(d);
}

TEST(import_sync_file_read_and_write)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	struct dma_fence *r = mock_fence_create(0), *w = mock_fence_create(0);
	int rfd = hetmem_sync_file_export(r, 0), wfd = hetmem_sync_file_export(w, 0);
	int back;

	ASSERT_GE(rfd, 0);
	ASSERT_GE(wfd, 0);
	EXPECT_EQ(dma_buf_import_sync_file(d, 0, rfd), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, 8, rfd), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, d->file), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, rfd), 0);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN);
	/* Round trip: the export for writing waits for the imported reader. */
	back = dma_buf_export_sync_file(d, DMA_BUF_SYNC_WRITE);
	ASSERT_GE(back, 0);
	EXPECT_FALSE(sync_file_ready(back));
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_WRITE, wfd), 0);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), 0);
	dma_fence_signal(r);
	EXPECT_TRUE(sync_file_ready(back));
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), 0);
	dma_fence_signal(w);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
	close(back);
	close(rfd);
	close(wfd);
	dma_fence_put(r);
	dma_fence_put(w);
	put_all(d);
}

TEST(import_sync_file_unwraps_arrays)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	struct dma_fence **fs = calloc(2, sizeof(*fs));
	struct dma_fence_array *arr;
	struct dma_resv_iter cursor;
	struct dma_fence *f;
	int fd, n = 0, leaves = 0;

	ASSERT_NONNULL(fs);
	fs[0] = mock_fence_create(0);
	fs[1] = mock_fence_create(0);
	dma_fence_get(fs[0]);
	dma_fence_get(fs[1]);
	arr = dma_fence_array_create(2, fs, dma_fence_context_alloc(1), 1, false);
	ASSERT_NONNULL(arr);
	fd = hetmem_sync_file_export(&arr->base, 0);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_WRITE, fd), 0);
	dma_resv_lock(d->resv, NULL);
	dma_resv_for_each_fence(&cursor, d->resv, DMA_RESV_USAGE_BOOKKEEP, f) {
		n++;
		leaves += is_mock_fence(f);
		EXPECT_EQ(dma_resv_iter_usage(&cursor), DMA_RESV_USAGE_WRITE);
	}
	dma_resv_unlock(d->resv);
	EXPECT_EQ(n, 2);
	EXPECT_EQ(leaves, 2);
	close(fd);
	dma_fence_signal(&arr->base);
	signal_put(fs[0]);
	signal_put(fs[1]);
	dma_fence_put(&arr->base);
	put_all(d);
}

TEST(set_name_limits)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &bare_ops, page());
	char name[DMA_BUF_NAME_LEN], small[4];

	EXPECT_EQ(dma_buf_set_name(d, "0123456789012345678901234567890"), 0);
	ASSERT_EQ(hetmem_dma_buf_get_name(d, name, sizeof(name)), 0);
	EXPECT_STREQ(name, "0123456789012345678901234567890");
	EXPECT_EQ(dma_buf_set_name(d, "01234567890123456789012345678901"), -EINVAL);
	ASSERT_EQ(hetmem_dma_buf_get_name(d, name, sizeof(name)), 0);
	EXPECT_STREQ(name, "0123456789012345678901234567890");
	EXPECT_EQ(dma_buf_set_name(d, ""), 0);
	EXPECT_EQ(dma_buf_set_name(d, NULL), -EFAULT);
	EXPECT_EQ(dma_buf_set_name(NULL, "x"), -EINVAL);
	EXPECT_EQ(dma_buf_set_name(d, "long-ish"), 0);
	EXPECT_EQ(hetmem_dma_buf_get_name(d, small, sizeof(small)), -ERANGE);
	put_all(d);
}

TEST(mmap_bounds_and_op)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, 2 * page() + 1);
	struct dma_buf *bare = export(&t, &bare_ops, page());
	void *p = NULL;

	EXPECT_EQ(hetmem_dma_buf_mmap(bare, &p, page(), PROT_READ, 0), -EINVAL);
	EXPECT_EQ(hetmem_dma_buf_mmap(d, &p, 3 * page(), PROT_READ, 0), -EINVAL);
	EXPECT_EQ(hetmem_dma_buf_mmap(d, &p, page(), PROT_READ, 2), -EINVAL);
	EXPECT_EQ(hetmem_dma_buf_mmap(d, &p, page(), PROT_READ, ~0ul), -EOVERFLOW);
	EXPECT_EQ(hetmem_dma_buf_mmap(d, &p, 0, PROT_READ, 0), -EINVAL);
	EXPECT_EQ(t.mmap, 0);
	ASSERT_EQ(pwrite(d->file, "pg1", 4, (off_t)page()), 4);
	ASSERT_EQ(hetmem_dma_buf_mmap(d, &p, page(), PROT_READ | PROT_WRITE, 1), 0);
	EXPECT_STREQ((char *)p, "pg1");
	EXPECT_EQ(t.mmap, 1);
	munmap(p, page());
	put_all(bare);
	put_all(d);
}

TEST(vmap_is_shared_and_refcounted)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, page());
	struct dma_buf *bare = export(&t, &bare_ops, page());
	struct iosys_map m1, m2;

	EXPECT_EQ(dma_buf_vmap_unlocked(bare, &m1), -EINVAL);
	ASSERT_EQ(dma_buf_vmap_unlocked(d, &m1), 0);
	ASSERT_EQ(dma_buf_vmap_unlocked(d, &m2), 0);
	EXPECT_TRUE(m1.vaddr == m2.vaddr);
	EXPECT_FALSE(m1.is_iomem);
	EXPECT_EQ(t.vmap, 1);
	EXPECT_EQ(d->vmapping_counter, 2u);
	dma_buf_vunmap_unlocked(d, &m2);
	EXPECT_TRUE(d->vmap_ptr.vaddr == m1.vaddr);
	dma_buf_vunmap_unlocked(d, &m1);
	EXPECT_EQ(d->vmapping_counter, 0u);
	EXPECT_NULL(d->vmap_ptr.vaddr);
	put_all(bare);
	put_all(d);
}

TEST(bufinfo_and_stats)
{
	struct texp t = { 0 };
	struct dma_buf *d = export(&t, &static_ops, 3 * page());
	struct hetmem_device dev = { "gpu-under-test" };
	struct dma_buf_attachment *a = dma_buf_attach(d, &dev);
	struct dma_fence *w = mock_fence_create(0);
	struct hetmem_dma_buf_stats st;
	char *text = NULL, size[32];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ASSERT_NONNULL(f);
	ASSERT_EQ(dma_buf_set_name(d, "frame-7"), 0);
	add_fence(d, w, DMA_RESV_USAGE_WRITE);
	hetmem_dma_buf_stats(&st);
	EXPECT_EQ(st.count, 1u);
	EXPECT_EQ(st.total_size, 3 * page());
	ASSERT_EQ(hetmem_dma_buf_describe_all(f), 0);
	fclose(f);
	snprintf(size, sizeof(size), "%08zu", 3 * page());
	EXPECT_NONNULL(strstr(text, "test-exporter"));
	EXPECT_NONNULL(strstr(text, size));
	EXPECT_NONNULL(strstr(text, "frame-7"));
	EXPECT_NONNULL(strstr(text, "gpu-under-test"));
	EXPECT_NONNULL(strstr(text, "write fence:mock"));
	EXPECT_NONNULL(strstr(text, "Total 1 devices attached"));
	EXPECT_NONNULL(strstr(text, "Total 1 objects"));
	EXPECT_EQ(hetmem_dma_buf_describe_all(NULL), -EINVAL);
	free(text);
	dma_buf_detach(d, a);
	signal_put(w);
	put_all(d);
	hetmem_dma_buf_stats(&st);
	EXPECT_EQ(st.count, 0u);
}
