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

int rel_try_advisory(PGconn *conn)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_catalog.pg_try_advisory_lock(%lld)", REL_LOCK_KEY);
    PGresult *res = PQexec(conn, sql);
    int rc = PQresultStatus(res) != PGRES_TUPLES_OK    ? -1
             : strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 1
                                                       : 0;
    PQclear(res);
    return rc;
}

static int lock_database(rel_t *r, dc_error_t *err)
{
    if (dc_pg_connect(r->o->database_url, "deployctl release lock", &r->conn, err) != 0)
        return -1;
    int got = rel_try_advisory(r->conn);
    if (got < 0)
        return dc_error_set(err, "cannot take the release's advisory lock on %s: %s",
                            r->o->database, PQerrorMessage(r->conn));
    if (got == 0) {
        char holder[64];
        db_holder(r->conn, holder, sizeof(holder));
        return dc_error_set_code(err, DC_EXIT_LOCKED,
                                 "another release of %s is running (from another machine): "
                                 "release %s holds its advisory lock %lld",
                                 r->o->database, holder, REL_LOCK_KEY);
    }
    return 0;
}

/* Whether this session still holds the lock (a bigint key shows as classid = high 32 bits,
 * objid = low 32 bits, objsubid = 1). False when the session is gone. */
static bool lock_held(rel_t *r)
{
    if (r->conn == NULL || PQstatus(r->conn) != CONNECTION_OK)
        return false;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted AND "
             "pid = pg_catalog.pg_backend_pid() AND classid = %lld AND objid = %lld AND "
             "objsubid = 1",
             (long long)(REL_LOCK_KEY >> 32), (long long)(REL_LOCK_KEY & 0xffffffffLL));
    PGresult *res = PQexec(r->conn, sql);
    bool held = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    PQclear(res);
    return held;
}

/* A new session, and the lock taken once more; false when another session holds it. */
static bool retake(rel_t *r, char *why, size_t size)
{
    dc_error_t e;
    PQfinish(r->conn);
    r->conn = NULL;
    r->reconnected = true;
    if (dc_pg_connect(r->o->database_url, "deployctl release lock", &r->conn, &e) != 0) {
        snprintf(why, size, "cannot reconnect: %s", e.message);
        return false;
    }
    if (rel_try_advisory(r->conn) != 1) {
        snprintf(why, size, "another session holds it now");
        return false;
    }
    return true;
}

/* While the lock was lost, did another runner act on this release? The database copy of the
 * journal says so when it has events after ours or closed the release. Without that copy
 * nothing proves that nobody did. */
static bool taken_over(rel_t *r, char *why, size_t size)
{
    if (!r->mirror_ok) {
        snprintf(why, size,
                 "there is no database copy of the journal to prove that no other "
                 "runner acted meanwhile");
        return true;
    }
    char seq[16];
    snprintf(seq, sizeof(seq), "%d", r->seq);
    const char *p[2] = {r->id, seq};
    PGresult *res = PQexecParams(
        r->conn,
        "SELECT (SELECT count(*) FROM deployctl.release_events WHERE release_id = $1 AND seq > "
        "$2::int), coalesce((SELECT status FROM deployctl.releases WHERE id = $1), '')",
        2, NULL, p, NULL, NULL, 0);
    bool over = true;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        snprintf(why, size, "cannot read the database copy of the journal");
    else if (atoi(PQgetvalue(res, 0, 0)) > 0 || strcmp(PQgetvalue(res, 0, 1), "running") != 0)
        snprintf(why, size,
                 "another runner wrote to this release's journal (%s event(s) after "
                 "ours, status '%s')",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    else
        over = false;
    PQclear(res);
    return over;
}

int rel_lock_check(rel_t *r, dc_error_t *err)
{
    char why[256] = "";
    if (!r->lock_lost && !r->reconnected && lock_held(r))
        return 0;
    if (!r->lock_lost && !lock_held(r) && !retake(r, why, sizeof(why)))
        r->lock_lost = true;
    if (!r->lock_lost && taken_over(r, why, sizeof(why)))
        r->lock_lost = true;
    if (!r->lock_lost) {
        r->reconnected = false; /* held again, and nobody acted meanwhile */
        dc_log_warn("release %s: the advisory lock's session was lost and is back", r->id);
        return 0;
    }
    r->mirror_ok = false; /* the database copy may be another runner's now */
    return dc_error_set_code(err, DC_EXIT_ROLLBACK_FAILED,
                             "the release lock on %s was lost (%s); another runner may have "
                             "taken release %s over: stopped without changing anything more",
                             r->o->database, why[0] ? why : "its session ended", r->id);
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
