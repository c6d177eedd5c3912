/* Retention: which snapshots `prune` keeps and why. The decision (dc_retention_decide) is a pure
 * function of a list of snapshots, a policy and "now", so it is tested without a store; the
 * walk of a store and the deletions (dc_prune_run) sit on top of it. Not for taking or
 * verifying snapshots.
 *
 * The rules, per database (each database directory of the store on its own), as restic, borg
 * and pgBackRest users know them:
 *   keep-last N     the N newest snapshots;
 *   keep-daily N    the newest snapshot of each of the N newest UTC calendar days that have
 *                   snapshots (days without any do not count);
 *   keep-weekly N   the same per ISO 8601 week (Monday to Sunday, UTC);
 *   keep-monthly N  the same per calendar month (UTC).
 * A snapshot kept by any rule stays, and records every rule that keeps it. The time of a
 * snapshot is the one its id encodes (its creation, UTC).
 *
 * Whatever the rules say, these stay:
 *   - the newest complete snapshot of each database, and the newest complete one whose last
 *     verification succeeded;
 *   - pinned snapshots (something, such as an unfinished release, depends on them: see "pins"
 *     in snapshot.h);
 *   - pre-restore snapshots younger than the pre-restore window (default 7 days, at least 1
 *     hour): they hold
 *     what a restore replaced, and a failed restore names one as the way back. They are not
 *     counted by the keep-* rules, which describe the regular history ("latest" never means a
 *     pre-restore snapshot either); once older than the window, they go;
 *   - complete snapshots whose manifest cannot be read (deleting what cannot be identified is
 *     left to a person);
 *   - incomplete snapshots (no manifest) whose writer is alive, or younger than the grace.
 * Incomplete snapshots older than the grace whose writer is gone are deleted. */
#ifndef DEPLOYCTL_RETENTION_H
#define DEPLOYCTL_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "deployctl/error.h"
#include "deployctl/snapshot.h"
#include "deployctl/store.h"

/* Why a snapshot stays (DC_KEEP_*) or goes (DC_DROP_*): bits, several may be set. */
typedef enum {
    DC_KEEP_LAST = 1u << 0,
    DC_KEEP_DAILY = 1u << 1,
    DC_KEEP_WEEKLY = 1u << 2,
    DC_KEEP_MONTHLY = 1u << 3,
    DC_KEEP_NEWEST = 1u << 4,
    DC_KEEP_NEWEST_VERIFIED = 1u << 5,
    DC_KEEP_PINNED = 1u << 6,
    DC_KEEP_PRE_RESTORE = 1u << 7,
    DC_KEEP_UNREADABLE = 1u << 8,
    DC_KEEP_IN_PROGRESS = 1u << 9,
    DC_KEEP_INCOMPLETE_GRACE = 1u << 10,
    DC_DROP_EXPIRED = 1u << 11,   /* complete, and no rule keeps it */
    DC_DROP_ABANDONED = 1u << 12, /* incomplete, older than the grace, its writer gone */
} dc_retention_reason_t;

#define DC_RETENTION_REASON_COUNT 13

typedef struct dc_retention_policy {
    int keep_last; /* 0: rule off */
    int keep_daily;
    int keep_weekly;
    int keep_monthly;
    int64_t incomplete_grace;   /* seconds */
    int64_t pre_restore_window; /* seconds */
} dc_retention_policy_t;

/* Default seconds for the policy's durations. */
#define DC_RETENTION_INCOMPLETE_GRACE   (24 * 3600)
#define DC_RETENTION_PRE_RESTORE_WINDOW (7 * 24 * 3600)
/* The shortest pre-restore window a policy may have. */
#define DC_RETENTION_PRE_RESTORE_MIN 3600

typedef struct dc_retention_item {
    /* in */
    const char *database; /* snapshots are grouped by this */
    const char *id;
    time_t created;
    bool complete;    /* it has a manifest */
    bool readable;    /* ... that could be read */
    bool verified;    /* its newest verification succeeded */
    bool pinned;      /* at least one pin */
    bool in_progress; /* incomplete, and its writer holds its lease */
    bool pre_restore; /* tagged pre-restore */
    /* out */
    bool keep;
    unsigned reasons; /* dc_retention_reason_t bits */
} dc_retention_item_t;

/* Refuses a policy that would keep nothing by rule (no keep-* above 0): an empty policy is a
 * mistake, never a request to delete everything. Refuses a pre-restore window shorter than
 * DC_RETENTION_PRE_RESTORE_MIN too. */
int dc_retention_policy_check(const dc_retention_policy_t *policy, dc_error_t *err);

/* Decides keep or delete, with reasons, for every item (in any order; the array is not
 * reordered). */
int dc_retention_decide(dc_retention_item_t *items, size_t count,
                        const dc_retention_policy_t *policy, time_t now, dc_error_t *err);

/* "keep-last", "keep-daily", ..., "expired", "abandoned": the token of one reason bit. */
const char *dc_retention_reason_name(unsigned reason);
/* A phrase for people ("newest snapshot of its day"). */
const char *dc_retention_reason_text(unsigned reason);

/* ---- prune: the rules applied to a store ---- */

typedef struct dc_prune_opts {
    dc_store_t *store;
    const char *database; /* a database name, or NULL for every database in the store */
    dc_retention_policy_t policy;
    bool dry_run;
    time_t now;
} dc_prune_opts_t;

typedef struct dc_prune_entry {
    char database[256]; /* the manifest's database, else the store directory */
    char database_dir[256];
    char id[DC_SNAPSHOT_ID_LEN + 1];
    char created_at[32];
    char tag[40]; /* "" when unknown */
    bool complete;
    bool keep;
    unsigned reasons;
    char pin_object[48]; /* one of its pins, for messages */
    uint64_t stored_bytes;
    bool deleted;  /* it was (not in a dry run) */
    char *failure; /* why deleting it failed, or NULL */
} dc_prune_entry_t;

typedef struct dc_prune_result {
    dc_prune_entry_t *entries; /* per database, oldest first */
    size_t count;
    size_t kept;
    size_t to_delete; /* decided: deleted, or would be in a dry run */
    size_t deleted;
    size_t failed;
    uint64_t freed_bytes;
    int removed_temporary; /* objects of dead writers removed by the store's cleanup */
} dc_prune_result_t;

/* Lists the store, decides, and (unless dry_run) deletes: complete snapshots manifest first,
 * incomplete ones under their writer's lease; then the store's own cleanup of dead writers'
 * temporary objects. One prune at a time per store (a lease); a dry run changes nothing, not
 * even a lease. The result is filled even when some deletions failed (-1, err says how many). */
int dc_prune_run(const dc_prune_opts_t *opts, dc_prune_result_t *out, dc_error_t *err);
void dc_prune_result_free(dc_prune_result_t *result);

#endif
