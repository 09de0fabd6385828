/* SPDX-License-Identifier: MIT */
/*
 * hetmem - real kernel sync_file descriptors: from debugfs sw_sync
 * (CONFIG_SW_SYNC, root) and from a DRM render node (a syncobj exported
 * as a sync_file). Each case skips, saying why, where no source exists.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>

#include "fence/fence-work.h"
#include "harness.h"

/* DRM syncobj uapi (include/uapi/drm/drm.h), numbers and layouts only. */
struct drm_syncobj_create {
	uint32_t handle;
	uint32_t flags;
};

struct drm_syncobj_destroy {
	uint32_t handle;
	uint32_t pad;
};

struct drm_syncobj_handle {
	uint32_t handle;
	uint32_t flags;
	int32_t fd;
	uint32_t pad;
};

#define DRM_SYNCOBJ_CREATE_SIGNALED (1u << 0)
#define DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE (1u << 0)
#define DRM_IOCTL_SYNCOBJ_CREATE _IOWR('d', 0xBF, struct drm_syncobj_create)
#define DRM_IOCTL_SYNCOBJ_DESTROY _IOWR('d', 0xC0, struct drm_syncobj_destroy)
#define DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD _IOWR('d', 0xC1, struct drm_syncobj_handle)

static const char *const sw_sync_paths[] = {
	"/sys/kernel/debug/sync/sw_sync",
	"/dev/sw_sync",
};

/* A kernel sw_sync timeline, or -1 and the reason in @why. */
static int kernel_timeline(char *why, size_t len)
{
	size_t i, n = 0;
	int fd;

	why[0] = '\0';
	for (i = 0; i < sizeof(sw_sync_paths) / sizeof(sw_sync_paths[0]); i++) {
		fd = open(sw_sync_paths[i], O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		n += snprintf(why + n, n < len ? len - n : 0, "%s%s: %s",
			      i ? "; " : "", sw_sync_paths[i], strerror(errno));
	}
	return -1;
}

static int kernel_fence(int timeline, unsigned int value)
{
	struct sw_sync_create_fence_data data = { .value = value };

	if (ioctl(timeline, SW_SYNC_IOC_CREATE_FENCE, &data) < 0)
		return -errno;
	return data.fence;
}

static int kernel_inc(int timeline, uint32_t n)
{
	return ioctl(timeline, SW_SYNC_IOC_INC, &n) < 0 ? -errno : 0;
}

static bool is_kernel_sync_file(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return !strcmp(target, "anon_inode:sync_file");
}

TEST(kernel_sw_sync_fence_is_imported)
{
	struct sync_file_info info = { .num_fences = 0 };
	struct dma_fence *proxy;
	char why[256];
	int tl, kfd;

	tl = kernel_timeline(why, sizeof(why));
	if (tl < 0)
		SKIP(return, "no kernel sw_sync timeline (%s)", why);
	kfd = kernel_fence(tl, 1);
	ASSERT_GE(kfd, 0);
	EXPECT_TRUE(is_kernel_sync_file(kfd));
	EXPECT_EQ(sw_sync_fence_is_valid(kfd), 1);
	/* FILE_INFO goes to the kernel. */
	ASSERT_EQ(hetmem_sync_file_info(kfd, &info), 0);
	EXPECT_EQ(info.num_fences, 1);
	EXPECT_EQ(info.status, 0);
	proxy = sync_file_get_fence(kfd);
	ASSERT_NONNULL(proxy);
	EXPECT_STREQ(proxy->ops->get_driver_name(proxy), "hetmem-import");
	EXPECT_FALSE(dma_fence_is_signaled(proxy));
	EXPECT_EQ(dma_fence_wait_timeout(proxy, true, 10), 0);
	ASSERT_EQ(kernel_inc(tl, 1), 0);
	EXPECT_GT(dma_fence_wait_timeout(proxy, true, 1000), 0);
	EXPECT_EQ(dma_fence_get_status(proxy), 1);
	EXPECT_GT(dma_fence_timestamp(proxy), 0);
	dma_fence_put(proxy);
	close(kfd);
	close(tl);
}

TEST(kernel_sync_file_error_and_callbacks)
{
	struct dma_fence *proxy;
	char why[256];
	int tl, kfd;

	tl = kernel_timeline(why, sizeof(why));
	if (tl < 0)
		SKIP(return, "no kernel sw_sync timeline (%s)", why);
	kfd = kernel_fence(tl, 5);
	ASSERT_GE(kfd, 0);
	proxy = sync_file_get_fence(kfd);
	ASSERT_NONNULL(proxy);
	dma_fence_enable_sw_signaling(proxy);
	/* Closing a kernel sw_sync timeline fails its points with -ENOENT. */
	close(tl);
	EXPECT_GT(dma_fence_wait_timeout(proxy, false, 1000), 0);
	EXPECT_EQ(dma_fence_get_status(proxy), -ENOENT);
	dma_fence_put(proxy);
	close(kfd);
}

TEST(kernel_and_hetmem_descriptors_merge)
{
	struct sync_set_deadline dl = { .deadline_ns = 1 };
	int tl, k1, k2, kk, mixed, htl, hfd, ret;
	char why[256];

	tl = kernel_timeline(why, sizeof(why));
	if (tl < 0)
		SKIP(return, "no kernel sw_sync timeline (%s)", why);
	k1 = kernel_fence(tl, 1);
	k2 = kernel_fence(tl, 2);
	htl = sw_sync_timeline_create();
	hfd = sw_sync_fence_create(htl, "h", 1);
	ASSERT_GE(k2, 0);
	ASSERT_GE(hfd, 0);
	/* Two kernel descriptors: the kernel merges. */
	kk = sync_merge("kk", k1, k2);
	ASSERT_GE(kk, 0);
	EXPECT_TRUE(is_kernel_sync_file(kk));
	/* Mixed: hetmem merges proxies. */
	mixed = sync_merge("mixed", k1, hfd);
	ASSERT_GE(mixed, 0);
	EXPECT_FALSE(is_kernel_sync_file(mixed));
	/* Deadlines on kernel sync_files go to the kernel (6.9+). */
	ret = hetmem_sync_file_set_deadline(k1, &dl);
	EXPECT_TRUE(ret == 0 || ret == -ENOTTY);
	EXPECT_EQ(sync_wait(mixed, 0), -1);
	ASSERT_EQ(kernel_inc(tl, 2), 0);
	sw_sync_timeline_inc(htl, 1);
	EXPECT_EQ(sync_wait(kk, 1000), 0);
	EXPECT_EQ(sync_wait(mixed, 5000), 0);
	hetmem_fence_work_flush();
	close(kk);
	close(mixed);
	close(k1);
	close(k2);
	close(hfd);
	sw_sync_timeline_destroy(htl);
	close(tl);
}

/* The first render node that opens, or -1 and the reason in @why. */
static int render_node(char *why, size_t len)
{
	struct dirent *de;
	char path[300];
	DIR *dir;
	int fd = -1;

	dir = opendir("/dev/dri");
	if (!dir) {
		snprintf(why, len, "/dev/dri: %s", strerror(errno));
		return -1;
	}
	snprintf(why, len, "/dev/dri: no render node");
	while (fd < 0 && (de = readdir(dir))) {
		if (strncmp(de->d_name, "renderD", 7))
			continue;
		snprintf(path, sizeof(path), "/dev/dri/%s", de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			snprintf(why, len, "%.100s: %.100s", path,
				 strerror(errno));
	}
	closedir(dir);
	return fd;
}

TEST(drm_syncobj_sync_file_is_imported)
{
	struct drm_syncobj_create create = {
		.flags = DRM_SYNCOBJ_CREATE_SIGNALED,
	};
	struct drm_syncobj_handle export = {
		.flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
		.fd = -1,
	};
	struct drm_syncobj_destroy destroy = { 0 };
	struct dma_fence *proxy;
	char why[300];
	int drm;

	drm = render_node(why, sizeof(why));
	if (drm < 0)
		SKIP(return, "no DRM render node (%s)", why);
	if (ioctl(drm, DRM_IOCTL_SYNCOBJ_CREATE, &create) < 0) {
		close(drm);
		SKIP(return, "driver has no syncobj support (%s)", strerror(errno));
	}
	export.handle = create.handle;
	ASSERT_EQ(ioctl(drm, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &export), 0);
	EXPECT_TRUE(is_kernel_sync_file(export.fd));
	proxy = sync_file_get_fence(export.fd);
	ASSERT_NONNULL(proxy);
	EXPECT_TRUE(dma_fence_is_signaled(proxy));
	EXPECT_EQ(dma_fence_get_status(proxy), 1);
	EXPECT_EQ(sync_wait(export.fd, 0), 0);
	dma_fence_put(proxy);
	close(export.fd);
	destroy.handle = create.handle;
	ioctl(drm, DRM_IOCTL_SYNCOBJ_DESTROY, &destroy);
	close(drm);
}
