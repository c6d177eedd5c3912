/* What the release module's files share: the running release (or the one being recovered),
 * its journal, its lock, its report, and the state that the journal's events add up to. */
#ifndef DEPLOYCTL_RELEASE_INTERN_H
#define DEPLOYCTL_RELEASE_INTERN_H

#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdbool.h>

#include "deployctl/hooks.h"
#include "deployctl/release.h"
#include "deployctl/snapshot.h"

/* The advisory lock one release (or recover) holds on its database for its whole run ("dcre"). */
#define REL_LOCK_KEY 0x64637265LL

/* What the journal says happened, event by event (the live release and recover both fold
 * every event into it, so compensation decides from the same facts either way). */
typedef struct rel_state {
    bool began;
    bool maint_on;       /* the maintenance-on hook started */
    bool maint_off_done; /* ... and maintenance-off ran to success */
    bool migrate_started;
    bool deploy_started; /* the deploy hook started: the application may have changed */
    bool smoke_passed;
    bool compensating;
    bool rollback_hook_done;
    int rollback_hook_starts; /* a start without its "ok": the hook may have acted */
    bool db_undone;
    bool ended;
    char outcome[32]; /* of the last end event */
    char snapshot[DC_SNAPSHOT_ID_LEN + 1];
    char pre_restore[DC_SNAPSHOT_ID_LEN + 1];
    char last_phase[32];
    char scratch[256]; /* a rehearsal's scratch database that exists (created, not dropped) */
    bool scratch_own;  /* ... on the production server (else on --scratch's) */
    json_t *before;    /* migrations applied when the snapshot was taken (names), or NULL */
    char on_failure[16];
} rel_state_t;

typedef struct rel {
    const dc_release_opts_t *o;
    char id[32];
    char dir[PATH_MAX];     /* <state>/releases/<database-dir> */
    char journal[PATH_MAX]; /* <dir>/<id>.jsonl */
    char report_path[PATH_MAX];
    char report_md_path[PATH_MAX];
    int journal_fd;
    int lock_fd;
    PGconn *conn; /* holds the advisory lock; mirrors the journal */
    bool mirror_ok;
    bool reconnected;    /* conn was reopened: the lock had been lost for a while */
    bool lock_lost;      /* the lock could not be kept: stop, change nothing more */
    bool journal_failed; /* an event could not be written: stop, change nothing more */
    int seq;
    rel_state_t st;
    json_t *report;         /* phases, hooks, smoke, compensation, state... */
    json_t *invalid_before; /* INVALID indexes before the migrations (not this release's) */
    double t0;
    char failed_phase[32];
    char failure[DC_ERROR_MAX];
    bool rehearsal_refused; /* the rehearsal's verdict (or its failing to run) refused: exit 4 */
} rel_t;

/* ---- lock.c ---- */
/* Takes the local lock file and the advisory lock; DC_EXIT_LOCKED naming the holder's id. */
int rel_lock(rel_t *r, dc_error_t *err);
void rel_unlock(rel_t *r);
/* pg_try_advisory_lock(REL_LOCK_KEY) on conn: 1 taken, 0 another session holds it, -1 the
 * query failed. */
int rel_try_advisory(PGconn *conn);
/* Before every step that changes something: is the advisory lock still held? A lost session
 * is reopened and the lock taken once more; when it cannot be, or another runner acted on this
 * release meanwhile (the database copy of the journal moved on), r->lock_lost is set and
 * DC_EXIT_ROLLBACK_FAILED returned: the caller changes nothing more. */
int rel_lock_check(rel_t *r, dc_error_t *err);
/* <state>/releases/<database-dir> (created). */
int rel_dir(const dc_release_opts_t *o, char *out, size_t size, dc_error_t *err);

/* ---- journal.c ---- */
int rel_journal_create(rel_t *r, dc_error_t *err);
/* Opens an existing journal for appending (recover). */
int rel_journal_reopen(rel_t *r, dc_error_t *err);
/* Appends one event (steals ev), fsync'd, then mirrors it; folds it into r->st. -1 only when
 * the local journal cannot be written (then nothing must go on). */
int rel_event(rel_t *r, json_t *ev, dc_error_t *err);
/* All events of a journal file (a torn last line is dropped). */
int rel_journal_load(const char *path, json_t **events, dc_error_t *err);
void rel_state_apply(rel_state_t *st, const json_t *ev);
void rel_state_free(rel_state_t *st);
/* Creates the deployctl schema's tables when missing (best effort). */
void rel_mirror_setup(rel_t *r);
/* The journal files (<id>.jsonl) in dir, oldest first (ids sort by time); free with
 * rel_free_names. */
char **rel_list_journals(const char *dir, size_t *count);
void rel_free_names(char **names, size_t count);
/* The first sequence number missing from seqs (sorted, expected 1, 2, 3...), 0 when none. */
int rel_seq_gap(const int *seqs, size_t count);
/* The newest journal in dir that is unfinished (no end event, or its rollback failed): its
 * path and id; false when none. */
bool rel_find_unfinished(const char *dir, char *path, size_t path_size, char *id, size_t id_size);
/* A release the database's mirror says is running or whose rollback failed, that has no local
 * journal (another runner's): its id in id; false when none or unreadable. */
bool rel_mirror_unfinished(PGconn *conn, char *id, size_t id_size);

/* ---- phases (release.c) ---- */
/* Journals a phase's start and adds it to the report; returns its report entry. */
json_t *rel_phase_begin(rel_t *r, const char *name, dc_error_t *err);
int rel_phase_end(rel_t *r, json_t *phase, bool ok, const char *detail, dc_error_t *err);
/* Runs a hook with the release's environment, records it in the report (and the journal
 * before it starts). Returns 0 when it was absent or succeeded. */
int rel_hook(rel_t *r, dc_hook_t hook, const char *outcome, bool *ran, dc_error_t *err);
bool rel_hook_exists(const rel_t *r, dc_hook_t hook);
/* A new release (id, directory), locked by nobody yet. */
int rel_init(rel_t *r, const dc_release_opts_t *o, dc_error_t *err);
int rel_end(rel_t *r, const char *outcome, int exit_code, dc_error_t *err);
void rel_free(rel_t *r);
/* The end: journal, notify hook, reports, unpin; fills res. */
int rel_finish(rel_t *r, const char *outcome, int code, dc_release_result_t *res, dc_error_t *err);
/* The release cannot go on (the lock or the journal was lost, err says which): no further
 * change, no end event (recover finishes it), a best-effort report with the state unknown;
 * res->exit_code DC_EXIT_ROLLBACK_FAILED. Returns 0. */
int rel_stop(rel_t *r, dc_release_result_t *res, const dc_error_t *why);
/* The policy that undoes this release's migrations: the one its begin event recorded, unless
 * --on-failure was given explicitly (recover's override, logged and reported). */
dc_on_failure_t rel_policy(rel_t *r);

/* ---- compensate.c ---- */
/* Undoes what the journal says was done, in reverse order; returns DC_EXIT_ROLLED_BACK or
 * DC_EXIT_ROLLBACK_FAILED and fills the report's "compensation" and "state". */
int rel_compensate(rel_t *r, dc_error_t *err);
/* Runs the maintenance-off (when maintenance-on ran) and post-release hooks. */
int rel_finish_hooks(rel_t *r, dc_error_t *err);
/* The report's "state" (database, application, manual steps: stolen, NULL for none). */
void rel_set_state(rel_t *r, const char *database, const char *application, json_t *manual);

/* ---- report.c ---- */
void rel_report_init(rel_t *r);
/* Writes the JSON and Markdown reports (atomically); logs a warning when it cannot. */
void rel_report_write(rel_t *r);
/* Appends the Markdown report to $GITHUB_STEP_SUMMARY when set. */
void rel_report_step_summary(rel_t *r);
char *rel_report_markdown(const json_t *report);

/* Current time, RFC 3339 with milliseconds, UTC. */
void rel_now(char *out, size_t size);

#endif
