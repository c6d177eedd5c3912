/* One release at a time per database: a local lock file (flock) in the state directory that
 * holds the release id, and an advisory lock in the database itself (runners on other machines
 * share the database, not the state directory). The second one gets exit 75 and the holder's
 * id. Both locks die with their holder, so a SIGKILLed release never leaves a stale lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "release_intern.h"

int rel_dir(const dc_release_opts_t *o, char *out, size_t size, dc_error_t *err)
{
    char dbdir[256];
    dc_snapshot_database_dir(o->database, dbdir, sizeof(dbdir));
    snprintf(out, size, "%s/releases/%s", o->state_dir, dbdir);
    return dc_mkdir_p(out, 0700, err);
}

/* The id the holder wrote into the lock file ("unknown" when it has not yet). */
static void read_holder(int fd, char *id, size_t size)
{
    ssize_t n = pread(fd, id, size - 1, 0);
    id[n > 0 ? n : 0] = '\0';
    id[strcspn(id, "\n")] = '\0';
    if (id[0] == '\0')
        snprintf(id, size, "unknown");
}

static int lock_file(rel_t *r, dc_error_t *err)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/lock", r->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return dc_error_set(err, "cannot open the release lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char holder[64];
        read_holder(fd, holder, sizeof(holder));
        close(fd);
        return dc_error_set_code(err, DC_EXIT_LOCKED,
                                 "another release of %s is running: release %s holds %s; wait "
                                 "for it to end",
                                 r->o->database, holder, path);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, r->id, strlen(r->id), 0) < 0 || fsync(fd) != 0) {
        close(fd);
        return dc_error_set(err, "cannot write the release lock file %s: %s", path,
                            strerror(errno));
    }
    r->lock_fd = fd;
    return 0;
}

/* The release the database's mirror names as running, for the message. */
static void db_holder(PGconn *conn, char *id, size_t size)
{
    snprintf(id, size, "unknown");
    PGresult *res = PQexec(conn, "SELECT id FROM deployctl.releases WHERE status = 'running' "
                                 "ORDER BY started_at DESC LIMIT 1");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        snprintf(id, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static int lock_database(rel_t *r, dc_error_t *err)
{
    if (dc_pg_connect(r->o->database_url, "deployctl release lock", &r->conn, err) != 0)
        return -1;
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_catalog.pg_try_advisory_lock(%lld)", REL_LOCK_KEY);
    PGresult *res = dc_pg_query(r->conn, sql, err);
    if (res == NULL)
        return -1;
    bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!got) {
        char holder[64];
        db_holder(r->conn, holder, sizeof(holder));
        return dc_error_set_code(err, DC_EXIT_LOCKED,
                                 "another release of %s is running (from another machine): "
                                 "release %s holds its advisory lock %lld",
                                 r->o->database, holder, REL_LOCK_KEY);
    }
    return 0;
}

int rel_lock(rel_t *r, dc_error_t *err)
{
    if (lock_file(r, err) != 0)
        return -1;
    return lock_database(r, err);
}

void rel_unlock(rel_t *r)
{
    if (r->conn != NULL) {
        PQfinish(r->conn); /* ends the session, and its advisory lock */
        r->conn = NULL;
    }
    if (r->lock_fd >= 0) {
        if (ftruncate(r->lock_fd, 0) != 0)
            dc_log_debug("cannot empty the release lock file");
        close(r->lock_fd);
        r->lock_fd = -1;
    }
}
