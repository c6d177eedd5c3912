/* The release journal: one JSON object per line, appended and fsync'd before the step it
 * announces takes effect, in <state>/releases/<database>/<release-id>.jsonl. It is the truth
 * about a release; the copy in the target database (deployctl.releases, .release_events) is
 * best effort, for operators and for runners that do not share the state directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "release_intern.h"

#define MAX_JOURNAL_BYTES (64u * 1024 * 1024)

void rel_now(char *out, size_t size)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03dZ", base, (int)(tv.tv_usec / 1000));
}

int rel_journal_create(rel_t *r, dc_error_t *err)
{
    snprintf(r->journal, sizeof(r->journal), "%s/%s.jsonl", r->dir, r->id);
    r->journal_fd = open(r->journal, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (r->journal_fd < 0)
        return dc_error_set(err, "cannot create the release journal %s: %s", r->journal,
                            strerror(errno));
    return dc_fsync_dir(r->dir, err);
}

int rel_journal_reopen(rel_t *r, dc_error_t *err)
{
    r->journal_fd = open(r->journal, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (r->journal_fd < 0)
        return dc_error_set(err, "cannot open the release journal %s: %s", r->journal,
                            strerror(errno));
    return 0;
}

static bool str_is(const json_t *ev, const char *key, const char *value)
{
    const char *s = json_string_value(json_object_get(ev, key));
    return s != NULL && strcmp(s, value) == 0;
}

static void copy_str(const json_t *ev, const char *key, char *out, size_t size)
{
    const char *s = json_string_value(json_object_get(ev, key));
    if (s != NULL)
        snprintf(out, size, "%s", s);
}

static void apply_phase(rel_state_t *st, const json_t *ev)
{
    const char *phase = json_string_value(json_object_get(ev, "phase"));
    if (phase == NULL)
        return;
    bool start = str_is(ev, "status", "start");
    if (start)
        snprintf(st->last_phase, sizeof(st->last_phase), "%s", phase);
    if (start && strcmp(phase, "migrate") == 0)
        st->migrate_started = true;
    if (str_is(ev, "status", "ok") && strcmp(phase, "smoke") == 0)
        st->smoke_passed = true;
}

static void apply_hook(rel_state_t *st, const json_t *ev)
{
    const char *hook = json_string_value(json_object_get(ev, "hook"));
    if (hook == NULL)
        return;
    bool start = str_is(ev, "status", "start");
    bool ok = str_is(ev, "status", "ok");
    if (start && strcmp(hook, "deploy") == 0)
        st->deploy_started = true;
    if (start && strcmp(hook, "maintenance-on") == 0)
        st->maint_on = true;
    if (ok && strcmp(hook, "maintenance-off") == 0)
        st->maint_off_done = true;
    if (ok && strcmp(hook, "rollback") == 0)
        st->rollback_hook_done = true;
    if (start && strcmp(hook, "rollback") == 0)
        st->rollback_hook_starts++;
}

void rel_state_apply(rel_state_t *st, const json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "event"));
    if (type == NULL)
        return;
    if (strcmp(type, "begin") == 0) {
        st->began = true;
        copy_str(ev, "on_failure", st->on_failure, sizeof(st->on_failure));
    } else if (strcmp(type, "phase") == 0) {
        apply_phase(st, ev);
    } else if (strcmp(type, "hook") == 0) {
        apply_hook(st, ev);
    } else if (strcmp(type, "snapshot") == 0) {
        copy_str(ev, "id", st->snapshot, sizeof(st->snapshot));
        json_decref(st->before);
        st->before = json_deep_copy(json_object_get(ev, "migrations"));
    } else if (strcmp(type, "scratch") == 0) {
        copy_str(ev, "database", st->scratch, sizeof(st->scratch));
        st->scratch_own = json_is_true(json_object_get(ev, "own_server"));
    } else if (strcmp(type, "rehearsal") == 0 || strcmp(type, "scratch_dropped") == 0) {
        if (json_is_true(json_object_get(ev, "scratch_dropped")))
            st->scratch[0] = '\0';
    } else if (strcmp(type, "compensate") == 0) {
        st->compensating = true;
        if (str_is(ev, "step", "database") && str_is(ev, "status", "ok"))
            st->db_undone = true;
        copy_str(ev, "pre_restore", st->pre_restore, sizeof(st->pre_restore));
    } else if (strcmp(type, "assume") == 0) {
        /* recover from a database copy with a hole, decided by the operator: the worst */
        st->deploy_started =
            st->deploy_started || json_is_true(json_object_get(ev, "deploy_started"));
        st->migrate_started =
            st->migrate_started || json_is_true(json_object_get(ev, "migrate_started"));
    } else if (strcmp(type, "end") == 0) {
        st->ended = true;
        copy_str(ev, "outcome", st->outcome, sizeof(st->outcome));
    }
}

void rel_state_free(rel_state_t *st)
{
    json_decref(st->before);
    st->before = NULL;
}

void rel_mirror_setup(rel_t *r)
{
    if (r->conn == NULL)
        return;
    dc_error_t err;
    r->mirror_ok =
        dc_pg_exec(r->conn,
                   "SET client_min_messages = warning;"
                   "CREATE SCHEMA IF NOT EXISTS deployctl;"
                   "CREATE TABLE IF NOT EXISTS deployctl.releases (id text PRIMARY KEY, "
                   "database text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), "
                   "finished_at timestamptz, status text NOT NULL, outcome text, "
                   "exit_code int, snapshot text, host text);"
                   "CREATE TABLE IF NOT EXISTS deployctl.release_events (release_id text NOT "
                   "NULL, seq int NOT NULL, at timestamptz NOT NULL DEFAULT now(), event jsonb "
                   "NOT NULL, PRIMARY KEY (release_id, seq))",
                   &err) == 0;
    if (!r->mirror_ok)
        dc_log_warn("release journal: no copy in the database (%s); the local journal %s is "
                    "kept",
                    err.message, r->journal);
}

/* The releases row follows the events: begin inserts it, end finishes it. */
static const char MIRROR_SQL[] =
    "WITH e AS (INSERT INTO deployctl.release_events (release_id, seq, event) "
    "VALUES ($1, $2::int, $3::jsonb) ON CONFLICT DO NOTHING RETURNING event) "
    "INSERT INTO deployctl.releases AS r (id, database, status, host) "
    "SELECT $1, coalesce(event->>'database', ''), 'running', event->>'host' FROM e "
    "WHERE event->>'event' = 'begin' ON CONFLICT (id) DO NOTHING";
static const char MIRROR_END_SQL[] =
    "UPDATE deployctl.releases SET status = $2, outcome = $2, exit_code = $3::int, "
    "finished_at = now() WHERE id = $1";
static const char MIRROR_SNAPSHOT_SQL[] =
    "UPDATE deployctl.releases SET snapshot = $2 WHERE id = $1";

static bool mirror_once(rel_t *r, const json_t *ev, const char *line)
{
    char seq[16];
    snprintf(seq, sizeof(seq), "%d", r->seq);
    const char *p[3] = {r->id, seq, line};
    PGresult *res = PQexecParams(r->conn, MIRROR_SQL, 3, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (ok && str_is(ev, "event", "end")) {
        char code[16];
        snprintf(code, sizeof(code), "%lld",
                 (long long)json_integer_value(json_object_get(ev, "exit_code")));
        const char *q[3] = {r->id, json_string_value(json_object_get(ev, "outcome")), code};
        res = PQexecParams(r->conn, MIRROR_END_SQL, 3, NULL, q, NULL, NULL, 0);
        PQclear(res);
    } else if (ok && str_is(ev, "event", "snapshot")) {
        const char *q[2] = {r->id, json_string_value(json_object_get(ev, "id"))};
        res = PQexecParams(r->conn, MIRROR_SNAPSHOT_SQL, 2, NULL, q, NULL, NULL, 0);
        PQclear(res);
    }
    return ok;
}

/* A lost connection (a restart, pg_terminate_backend) is reopened once, and the advisory lock
 * taken again; rel_lock_check decides before the next step whether the release may go on. */
static void reconnect(rel_t *r)
{
    dc_error_t err;
    PQfinish(r->conn);
    r->conn = NULL;
    r->reconnected = true;
    if (dc_pg_connect(r->o->database_url, "deployctl release lock", &r->conn, &err) != 0) {
        dc_log_warn("release journal: the database copy stops here (%s)", err.message);
        return;
    }
    if (rel_try_advisory(r->conn) != 1) {
        dc_log_warn("release lock: the advisory lock could not be taken again after a lost "
                    "connection");
        r->lock_lost = true;
    }
}

static void mirror(rel_t *r, const json_t *ev, const char *line)
{
    if (r->conn == NULL || !r->mirror_ok || r->lock_lost)
        return;
    if (mirror_once(r, ev, line))
        return;
    if (PQstatus(r->conn) != CONNECTION_OK || PQtransactionStatus(r->conn) == PQTRANS_UNKNOWN) {
        reconnect(r);
        if (r->conn != NULL && mirror_once(r, ev, line))
            return;
    }
    /* recover from the database notices the gap in the sequence numbers */
    dc_log_warn("release journal: event %d not copied into the database (%s)", r->seq,
                r->conn ? PQerrorMessage(r->conn) : "no connection");
}

int rel_event(rel_t *r, json_t *ev, dc_error_t *err)
{
    char at[40];
    rel_now(at, sizeof(at));
    r->seq++;
    json_object_set_new(ev, "release", json_string(r->id));
    json_object_set_new(ev, "seq", json_integer(r->seq));
    json_object_set_new(ev, "at", json_string(at));
    char *line = json_dumps(ev, JSON_COMPACT);
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps' NUL replaced for the write, put back below */
    ssize_t n = write(r->journal_fd, line, len + 1);
    line[len] = '\0';
    int rc = 0;
    if ((r->st.migrate_started && dc_fault_fails("release-journal-after-migrate")) ||
        (r->st.compensating && dc_fault_fails("release-journal-in-compensation"))) {
        n = -1;
        errno = ENOSPC;
    }
    if (n != (ssize_t)(len + 1) || fsync(r->journal_fd) != 0) {
        rc = dc_error_set(err, "cannot write the release journal %s: %s", r->journal,
                          strerror(errno));
        r->journal_failed = true;
    }
    if (rc == 0) {
        rel_state_apply(&r->st, ev);
        mirror(r, ev, line);
    }
    free(line);
    json_decref(ev);
    return rc;
}

int rel_journal_load(const char *path, json_t **events, dc_error_t *err)
{
    char *text = NULL;
    size_t len = 0;
    if (dc_read_file(path, MAX_JOURNAL_BYTES, false, &text, &len, err) != 0)
        return -1;
    json_t *list = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *ev = json_loads(line, 0, NULL);
        if (json_is_object(ev))
            json_array_append_new(list, ev);
        else
            json_decref(ev); /* a line torn by a crash: its step never took effect */
    }
    free(text);
    *events = list;
    return 0;
}

int rel_seq_gap(const int *seqs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (seqs[i] != (int)i + 1)
            return (int)i + 1;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **rel_list_journals(const char *dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (dc_str_ends_with(e->d_name, ".jsonl")) {
            names = dc_realloc(names, (*count + 1) * sizeof(char *));
            names[(*count)++] = dc_strdup(e->d_name);
        }
    }
    closedir(d);
    if (*count > 1)
        qsort(names, *count, sizeof(char *), cmp_names);
    return names;
}

void rel_free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static bool journal_unfinished(const char *path)
{
    json_t *events;
    dc_error_t err;
    if (rel_journal_load(path, &events, &err) != 0)
        return false;
    rel_state_t st = {0};
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) rel_state_apply(&st, ev);
    bool unfinished = st.began && (!st.ended || strcmp(st.outcome, "rollback-failed") == 0);
    rel_state_free(&st);
    json_decref(events);
    return unfinished;
}

bool rel_find_unfinished(const char *dir, char *path, size_t path_size, char *id, size_t id_size)
{
    size_t count;
    char **names = rel_list_journals(dir, &count);
    bool found = false;
    for (size_t i = count; i-- > 0 && !found;) {
        snprintf(path, path_size, "%s/%s", dir, names[i]);
        if (journal_unfinished(path)) {
            snprintf(id, id_size, "%.*s", (int)(strlen(names[i]) - 6), names[i]);
            found = true;
        }
    }
    rel_free_names(names, count);
    return found;
}

bool rel_mirror_unfinished(PGconn *conn, char *id, size_t id_size)
{
    PGresult *res = PQexec(conn, "SELECT id FROM deployctl.releases WHERE status IN "
                                 "('running', 'rollback-failed') ORDER BY started_at DESC LIMIT 1");
    bool found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (found)
        snprintf(id, id_size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return found;
}
