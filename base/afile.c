/* afile.c: see afile.h. */
#define _GNU_SOURCE /* mkstemps, renameat2 with RENAME_NOREPLACE */
#include "afile.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char tmp_suffix[] = ".tmp";

int kvb_afile_open(kvb_afile *a, const char *path, char *msg, size_t msg_len)
{
    a->f = NULL;
    int w = snprintf(a->path, sizeof a->path, "%s", path);
    int t = snprintf(a->tmp, sizeof a->tmp, "%s.XXXXXX%s", path, tmp_suffix);
    if (w < 0 || (size_t)w >= sizeof a->path || t < 0 || (size_t)t >= sizeof a->tmp) {
        snprintf(msg, msg_len, "'%s': path too long", path);
        return ENAMETOOLONG;
    }
    int fd = mkstemps(a->tmp, (int)strlen(tmp_suffix));
    if (fd >= 0) {
        fchmod(fd, 0644); /* mkstemps' 0600 is for secrets; results are shared */
        a->f = fdopen(fd, "w");
    }
    if (!a->f) {
        int e = errno ? errno : EIO;
        snprintf(msg, msg_len, "cannot write '%s': %s", path, strerror(e));
        if (fd >= 0) {
            close(fd);
            unlink(a->tmp);
        }
        return e;
    }
    return 0;
}

/* Closes the temporary file and gives it the target's name: by rename, or by
 * link (never replacing) when exclusive. */
static int finish(kvb_afile *a, int exclusive, char *msg, size_t msg_len)
{
    if (!a->f) {
        snprintf(msg, msg_len, "writing '%s' failed: the file was already closed", a->path);
        return EINVAL;
    }
    errno = 0;
    int e = 0;
    if (fflush(a->f) != 0 || ferror(a->f)) e = errno ? errno : EIO;
    if (fclose(a->f) != 0 && !e) e = errno ? errno : EIO;
    a->f = NULL;
    if (!e && (exclusive ? link(a->tmp, a->path) : rename(a->tmp, a->path)) != 0) e = errno;
    if (e || exclusive) unlink(a->tmp);
    if (e == EEXIST && exclusive)
        snprintf(msg, msg_len, "'%s' exists: it is never replaced", a->path);
    else if (e)
        snprintf(msg, msg_len, "writing '%s' failed: %s", a->path, strerror(e));
    return e;
}

int kvb_afile_commit(kvb_afile *a, char *msg, size_t msg_len)
{
    return finish(a, 0, msg, msg_len);
}

int kvb_afile_commit_new(kvb_afile *a, char *msg, size_t msg_len)
{
    return finish(a, 1, msg, msg_len);
}

void kvb_afile_abort(kvb_afile *a)
{
    if (!a->f) return;
    fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}

int kvb_partial_name(const char *dir, char *out, size_t n)
{
    int w = snprintf(out, n, "%s.partial", dir);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

int kvb_partial_publish(const char *partial, const char *dir, char *msg, size_t msg_len)
{
    int e = 0;
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, partial, AT_FDCWD, dir, RENAME_NOREPLACE) == 0) return 0;
    e = errno;
#else
    e = EINVAL;
#endif
    /* a file system without RENAME_NOREPLACE: look first (a race remains there) */
    if (e == EINVAL || e == ENOSYS) {
        struct stat st;
        e = lstat(dir, &st) == 0 ? EEXIST : rename(partial, dir) == 0 ? 0 : errno;
    }
    if (e) snprintf(msg, msg_len, "cannot rename '%s' to '%s': %s", partial, dir, strerror(e));
    return e;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

void kvb_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
