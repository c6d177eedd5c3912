/* file:// store driver: a directory tree. A writer fills `.tmp/<name>.part` (held with flock
 * so a cleaner can tell a live writer from a dead one), then fsyncs it, renames it into place
 * and fsyncs the directory, so a key is either absent or whole. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "deployctl/util.h"
#include "store_intern.h"

#define TMP_DIR      ".tmp"
#define WRITE_BUFFER (1024 * 1024)
#define DIR_MODE     0750
#define FILE_MODE    0640

typedef struct file_store {
    dc_store_t base;
    char *root;
    char *tmp;
} file_store_t;

typedef struct file_writer {
    dc_store_writer_t base;
    int fd;
    char *tmp_path;
    char *final_path;
    uint8_t *buf;
    size_t used;
} file_writer_t;

typedef struct file_reader {
    dc_store_reader_t base;
    int fd;
    bool ranged; /* reads with pread from `offset`, at most `remaining` bytes */
    uint64_t offset;
    uint64_t remaining;
} file_reader_t;

typedef struct file_lease {
    dc_store_lease_t base;
    int fd;
    char *path;
} file_lease_t;

static file_store_t *as_file(dc_store_t *s)
{
    return (file_store_t *)s;
}

static char *path_of(file_store_t *fs, const char *key)
{
    return *key ? dc_sprintf("%s/%s", fs->root, key) : dc_strdup(fs->root);
}

static int io_error(dc_error_t *err, int e, const char *what, const char *path, const char *url)
{
    if (e == ENOSPC || e == EDQUOT)
        return dc_error_set(err,
                            "store %s is full: no space left while %s %s; free space there or "
                            "choose another --store",
                            url, what, path);
    if (e == EACCES || e == EPERM || e == EROFS)
        return dc_error_set(err,
                            "store %s is not writable: %s while %s %s; fix its owner/mode or "
                            "choose another --store",
                            url, strerror(e), what, path);
    return dc_error_set(err, "store %s: %s while %s %s", url, strerror(e), what, path);
}

/* True when fd is still the file at path: a cleaner may have unlinked the name between our
 * open() and flock(); once we hold the lock and the name is ours, no cleaner can take it. */
static bool still_linked(int fd, const char *path)
{
    struct stat by_fd, by_path;
    return fstat(fd, &by_fd) == 0 && stat(path, &by_path) == 0 && by_fd.st_ino == by_path.st_ino &&
           by_fd.st_dev == by_path.st_dev;
}

/* The temporary area, created when something is first written. */
static int ensure_tmp(file_store_t *fs, dc_error_t *err)
{
    dc_error_t inner;
    if (dc_mkdir_p(fs->tmp, DIR_MODE, &inner) != 0)
        return dc_error_set(err, "cannot use store %s: %s; fix it or choose another --store",
                            fs->base.url, inner.message);
    return 0;
}

/* Creates and removes a probe file: the only check that also sees read-only mounts and full
 * quotas when we run as root. */
static int file_check_writable(dc_store_t *store, dc_error_t *err)
{
    file_store_t *fs = as_file(store);
    if (ensure_tmp(fs, err) != 0)
        return -1;
    char *probe = dc_sprintf("%s/.probe-%d", fs->tmp, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
    int e = errno;
    if (fd >= 0) {
        close(fd);
        unlink(probe);
    }
    free(probe);
    if (fd < 0) {
        dc_error_t inner;
        io_error(&inner, e, "creating a file in", fs->tmp, store->url);
        return dc_error_set(err, "cannot use store %s: %s", store->url, inner.message);
    }
    return 0;
}

/* The free space of the file system the store lives on, measured at its root or, when the
 * root does not exist yet (the default store before the first backup), at the nearest
 * ancestor that does: the directory the root will be created in. */
static int file_free_space(dc_store_t *store, uint64_t *available, uint64_t *total, char *where,
                           size_t where_size, dc_error_t *err)
{
    file_store_t *fs = as_file(store);
    char *path = dc_strdup(fs->root);
    struct statvfs st;
    while (statvfs(path, &st) != 0) {
        char *slash = strrchr(path, '/');
        if (errno != ENOENT || slash == NULL || strcmp(path, "/") == 0) {
            int e = errno;
            free(path);
            return dc_error_set(err, "cannot measure free space of store %s: %s", store->url,
                                strerror(e));
        }
        slash[slash == path ? 1 : 0] = '\0'; /* "/a" -> "/", "/a/b" -> "/a" */
    }
    *available = (uint64_t)st.f_bavail * st.f_frsize;
    *total = (uint64_t)st.f_blocks * st.f_frsize;
    snprintf(where, where_size, "%s", path);
    free(path);
    return 0;
}

/* ---- writer ---- */

static int flush_buffer(file_writer_t *w, dc_error_t *err)
{
    size_t off = 0;
    while (off < w->used) {
        ssize_t n = write(w->fd, w->buf + off, w->used - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return io_error(err, errno, "writing", w->tmp_path, w->base.store->url);
        }
        off += (size_t)n;
    }
    w->used = 0;
    return 0;
}

/* Creates and locks a fresh temporary file for key; retried when a cleaner raced us. */
static int create_locked_temp(file_store_t *fs, const char *key, char **path_out)
{
    char *flat = dc_strdup(key);
    for (char *p = flat; *p; p++) {
        if (*p == '/')
            *p = '_';
    }
    int fd = -1;
    for (int attempt = 0; attempt < 5 && fd < 0; attempt++) {
        uint8_t rnd[6];
        char hex[13];
        RAND_bytes(rnd, sizeof(rnd));
        dc_hex_encode(rnd, sizeof(rnd), hex);
        char *path = dc_sprintf("%s/%s.%s.part", fs->tmp, flat, hex);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
        if (fd < 0) {
            free(path);
            break;
        }
        /* Held until the writer is done: a cleaner that can take it knows the writer died. */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && still_linked(fd, path)) {
            *path_out = path;
            break;
        }
        close(fd);
        fd = -1;
        free(path);
        errno = EAGAIN;
    }
    free(flat);
    return fd;
}

static int file_writer_open(dc_store_t *store, const char *key, dc_store_writer_t **out,
                            dc_error_t *err)
{
    file_store_t *fs = as_file(store);
    char *tmp_path = NULL;
    if (ensure_tmp(fs, err) != 0)
        return -1;
    int fd = create_locked_temp(fs, key, &tmp_path);
    if (fd < 0) {
        char *where = dc_sprintf("%s/%s", fs->tmp, key);
        io_error(err, errno, "creating a temporary file for", where, store->url);
        free(where);
        return -1;
    }
    file_writer_t *w = dc_calloc(1, sizeof(*w));
    w->base.store = store;
    w->base.key = dc_strdup(key);
    w->fd = fd;
    w->tmp_path = tmp_path;
    w->final_path = path_of(fs, key);
    w->buf = dc_malloc(WRITE_BUFFER);
    *out = &w->base;
    return 0;
}

static int file_writer_write(dc_store_writer_t *base, const void *data, size_t len, dc_error_t *err)
{
    file_writer_t *w = (file_writer_t *)base;
    const uint8_t *p = data;
    while (len > 0) {
        size_t room = WRITE_BUFFER - w->used;
        size_t n = len < room ? len : room;
        memcpy(w->buf + w->used, p, n);
        w->used += n;
        p += n;
        len -= n;
        if (w->used == WRITE_BUFFER && flush_buffer(w, err) != 0)
            return -1;
    }
    return 0;
}

static void file_writer_free(file_writer_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w->tmp_path);
    free(w->final_path);
    free(w->base.key);
    free(w);
}

static void file_writer_abort(dc_store_writer_t *base)
{
    file_writer_t *w = (file_writer_t *)base;
    unlink(w->tmp_path);
    file_writer_free(w);
}

static int file_writer_commit(dc_store_writer_t *base, dc_error_t *err)
{
    file_writer_t *w = (file_writer_t *)base;
    const char *url = base->store->url;
    char *dir = dc_strdup(w->final_path);
    *strrchr(dir, '/') = '\0';

    if (flush_buffer(w, err) != 0)
        goto fail;
    if (fsync(w->fd) != 0) {
        io_error(err, errno, "syncing", w->tmp_path, url);
        goto fail;
    }
    if (dc_mkdir_p(dir, DIR_MODE, err) != 0)
        goto fail;
    if (rename(w->tmp_path, w->final_path) != 0) {
        io_error(err, errno, "renaming into", w->final_path, url);
        goto fail;
    }
    if (dc_fsync_dir(dir, err) != 0)
        goto fail;
    free(dir);
    file_writer_free(w);
    return 0;
fail:
    free(dir);
    file_writer_abort(base);
    return -1;
}

/* ---- reader ---- */

static int file_reader_open(dc_store_t *store, const char *key, dc_store_reader_t **out,
                            dc_error_t *err)
{
    char *path = path_of(as_file(store), key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            dc_error_set(err, "%s not found in store %s", key, store->url);
        else
            dc_error_set(err, "cannot read %s: %s", path, strerror(e));
        free(path);
        return -1;
    }
    free(path);
    file_reader_t *r = dc_calloc(1, sizeof(*r));
    r->base.store = store;
    r->base.key = dc_strdup(key);
    r->fd = fd;
    *out = &r->base;
    return 0;
}

static int file_reader_open_range(dc_store_t *store, const char *key, uint64_t offset,
                                  uint64_t length, dc_store_reader_t **out, dc_error_t *err)
{
    if (file_reader_open(store, key, out, err) != 0)
        return -1;
    file_reader_t *r = (file_reader_t *)*out;
    r->ranged = true;
    r->offset = offset;
    r->remaining = length;
    return 0;
}

static int file_reader_read(dc_store_reader_t *base, void *buf, size_t len, size_t *got,
                            dc_error_t *err)
{
    file_reader_t *r = (file_reader_t *)base;
    if (r->ranged && len > r->remaining)
        len = (size_t)r->remaining;
    for (;;) {
        ssize_t n = r->ranged ? pread(r->fd, buf, len, (off_t)r->offset) : read(r->fd, buf, len);
        if (n >= 0) {
            *got = (size_t)n;
            r->offset += (uint64_t)n;
            r->remaining -= r->ranged ? (uint64_t)n : 0;
            return 0;
        }
        if (errno != EINTR)
            return dc_error_set(err, "cannot read %s from store %s: %s", base->key,
                                base->store->url, strerror(errno));
    }
}

static void file_reader_close(dc_store_reader_t *base)
{
    file_reader_t *r = (file_reader_t *)base;
    close(r->fd);
    free(r->base.key);
    free(r);
}

/* ---- listing and deleting ---- */

static int walk(file_store_t *fs, const char *rel, dc_store_list_fn fn, void *ctx, dc_error_t *err)
{
    char *path = path_of(fs, rel);
    DIR *d = opendir(path);
    if (d == NULL) {
        int e = errno;
        free(path);
        if (e == ENOENT || e == ENOTDIR)
            return 0;
        return dc_error_set(err, "cannot list store %s: %s", fs->base.url, strerror(e));
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* ., .., .tmp and anything a driver keeps for itself */
        char *child = *rel ? dc_sprintf("%s/%s", rel, de->d_name) : dc_strdup(de->d_name);
        char *child_path = path_of(fs, child);
        struct stat st;
        if (lstat(child_path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                rc = walk(fs, child, fn, ctx, err);
            } else if (S_ISREG(st.st_mode)) {
                dc_store_entry_t entry = {child, (uint64_t)st.st_size, st.st_mtime};
                rc = fn(ctx, &entry, err);
            }
        }
        free(child_path);
        free(child);
    }
    closedir(d);
    free(path);
    return rc;
}

static int file_list(dc_store_t *store, const char *prefix, dc_store_list_fn fn, void *ctx,
                     dc_error_t *err)
{
    return walk(as_file(store), prefix, fn, ctx, err);
}

static int file_exists(dc_store_t *store, const char *key, bool *exists, dc_error_t *err)
{
    (void)err;
    char *path = path_of(as_file(store), key);
    struct stat st;
    *exists = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return 0;
}

static int file_remove(dc_store_t *store, const char *key, dc_error_t *err)
{
    file_store_t *fs = as_file(store);
    char *path = path_of(fs, key);
    if (unlink(path) != 0 && errno != ENOENT) {
        int e = errno;
        dc_error_set(err, "cannot delete %s: %s", path, strerror(e));
        free(path);
        return -1;
    }
    /* Remove directories the key leaves empty, up to the root. */
    for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
        *slash = '\0';
        if (strlen(path) <= strlen(fs->root) || rmdir(path) != 0)
            break;
    }
    free(path);
    return 0;
}

/* ---- leases and cleaning ---- */

static int file_lease_acquire(dc_store_t *store, const char *name, dc_store_lease_t **out,
                              dc_error_t *err)
{
    file_store_t *fs = as_file(store);
    if (ensure_tmp(fs, err) != 0)
        return -1;
    char *path = dc_sprintf("%s/%s.lease", fs->tmp, name);
    int fd = -1;
    for (int attempt = 0; attempt < 10; attempt++) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
        if (fd < 0) {
            io_error(err, errno, "creating", path, store->url);
            free(path);
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            dc_error_set(err, "%s in store %s is in use by another process", name, store->url);
            free(path);
            return -1;
        }
        if (still_linked(fd, path))
            break;
        close(fd); /* a cleaner removed the name under us: take a fresh one */
        fd = -1;
    }
    if (fd < 0) {
        dc_error_set(err, "cannot take the lease %s in store %s", name, store->url);
        free(path);
        return -1;
    }
    file_lease_t *l = dc_calloc(1, sizeof(*l));
    l->base.store = store;
    l->base.name = dc_strdup(name);
    l->fd = fd;
    l->path = path;
    *out = &l->base;
    return 0;
}

static void file_lease_release(dc_store_lease_t *base)
{
    file_lease_t *l = (file_lease_t *)base;
    unlink(l->path);
    close(l->fd);
    free(l->path);
    free(l->base.name);
    free(l);
}

static bool file_lease_is_held(dc_store_t *store, const char *name)
{
    char *path = dc_sprintf("%s/%s.lease", as_file(store)->tmp, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return false;
    bool held = flock(fd, LOCK_SH | LOCK_NB) != 0;
    close(fd);
    return held;
}

static int file_cleanup_temporary(dc_store_t *store, int *removed, dc_error_t *err)
{
    file_store_t *fs = as_file(store);
    DIR *d = opendir(fs->tmp);
    if (d == NULL)
        return errno == ENOENT ? 0
                               : dc_error_set(err, "cannot list %s: %s", fs->tmp, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *path = dc_sprintf("%s/%s", fs->tmp, de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        /* Whoever wrote it holds a lock while alive: a free lock means a dead writer. */
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (unlink(path) == 0)
                (*removed)++;
        }
        if (fd >= 0)
            close(fd);
        free(path);
    }
    closedir(d);
    return 0;
}

static void file_close(dc_store_t *store)
{
    file_store_t *fs = as_file(store);
    free(fs->root);
    free(fs->tmp);
    free(fs->base.url);
    free(fs);
}

static const dc_store_ops_t file_ops = {
    .writer_open = file_writer_open,
    .writer_write = file_writer_write,
    .writer_commit = file_writer_commit,
    .writer_abort = file_writer_abort,
    .reader_open = file_reader_open,
    .reader_open_range = file_reader_open_range,
    .reader_read = file_reader_read,
    .reader_close = file_reader_close,
    .list = file_list,
    .exists = file_exists,
    .remove = file_remove,
    .lease_acquire = file_lease_acquire,
    .lease_release = file_lease_release,
    .lease_is_held = file_lease_is_held,
    .cleanup_temporary = file_cleanup_temporary,
    .check_writable = file_check_writable,
    .free_space = file_free_space,
    .close = file_close,
};

int dc_store_file_open(const char *url, dc_store_t **out, dc_error_t *err)
{
    const char *path = url;
    if (dc_str_starts_with(url, "file://")) {
        path = url + strlen("file://");
        if (dc_str_starts_with(path, "localhost/"))
            path += strlen("localhost");
        if (*path != '/')
            return dc_error_set(err,
                                "store URL '%s' must name an absolute directory: "
                                "file:///path/to/dir",
                                url);
        /* A query or fragment would silently become part of the directory's name. */
        if (strpbrk(path, "?#") != NULL)
            return dc_error_set(err,
                                "store URL '%s' has a query or fragment ('?', '#'): a file:// "
                                "store URL is file:///path/to/dir",
                                url);
    }
    char *root;
    if (*path == '/') {
        root = dc_strdup(path);
    } else {
        char cwd[4096];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return dc_error_set(err, "cannot resolve store path %s: %s", path, strerror(errno));
        root = dc_sprintf("%s/%s", cwd, path);
    }
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        root[--n] = '\0';

    file_store_t *fs = dc_calloc(1, sizeof(*fs));
    fs->base.ops = &file_ops;
    fs->base.url = dc_strdup(url);
    fs->root = root;
    fs->tmp = dc_sprintf("%s/%s", root, TMP_DIR);
    *out = &fs->base;
    return 0;
}
