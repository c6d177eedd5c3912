/* prune: the retention decision (retention.c) applied to a store. Lists the snapshots with the
 * catalog, decides, and deletes what goes through the catalog (manifest first; incomplete ones
 * under their writer's lease). Not for deciding: that is the pure retention module. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/log.h"
#include "deployctl/retention.h"
#include "deployctl/util.h"

/* One prune at a time per store: two would each keep what the other deletes. */
#define PRUNE_LEASE "prune"

static void item_from_info(const dc_snapshot_info_t *info, dc_retention_item_t *it, time_t now)
{
    const dc_manifest_t *m = info->manifest;
    it->database = info->database_dir;
    it->id = info->id;
    it->complete = info->complete;
    it->readable = m != NULL;
    it->verified = info->verified;
    it->pinned = info->pin_count > 0;
    it->in_progress = info->in_progress;
    it->pre_restore = m != NULL && m->tag != NULL && strcmp(m->tag, DC_TAG_PRE_RESTORE) == 0;
    if (dc_snapshot_id_time(info->id, &it->created) != 0) {
        /* An id naming no real time (month 13): its age is unknown, so it must look young and
         * unidentified rather than old. */
        it->created = now;
        it->readable = false;
    }
}

static void entry_from(const dc_snapshot_info_t *info, const dc_retention_item_t *it,
                       dc_prune_entry_t *e)
{
    const dc_manifest_t *m = info->manifest;
    memset(e, 0, sizeof(*e));
    snprintf(e->database, sizeof(e->database), "%s",
             m && m->database ? m->database : info->database_dir);
    snprintf(e->database_dir, sizeof(e->database_dir), "%s", info->database_dir);
    snprintf(e->id, sizeof(e->id), "%s", info->id);
    if (m != NULL)
        snprintf(e->created_at, sizeof(e->created_at), "%s", m->created_at);
    else
        dc_format_rfc3339(it->created, e->created_at, sizeof(e->created_at));
    snprintf(e->tag, sizeof(e->tag), "%s", m && m->tag ? m->tag : "");
    snprintf(e->pin_object, sizeof(e->pin_object), "%s", info->pin_object);
    e->complete = info->complete;
    e->keep = it->keep;
    e->reasons = it->reasons;
    e->stored_bytes = info->stored_bytes;
}

/* Deletes one snapshot the decision dropped; a failure is recorded on the entry, not fatal. */
static void delete_one(dc_store_t *store, const dc_snapshot_info_t *info, dc_prune_entry_t *e,
                       dc_prune_result_t *out)
{
    dc_error_t err;
    dc_error_clear(&err);
    int rc;
    if (info->complete) {
        rc = dc_catalog_delete_snapshot(store, info->database_dir, info->id, &err);
        e->deleted = rc == 0;
    } else {
        bool removed = false;
        rc = dc_catalog_remove_abandoned(store, info, &removed, &err);
        e->deleted = rc == 0 && removed;
        if (rc == 0 && !removed) {
            /* Its writer holds the lease again, or committed meanwhile: it stays. */
            e->keep = true;
            e->reasons = DC_KEEP_IN_PROGRESS;
            out->to_delete--;
            out->kept++;
            return;
        }
    }
    if (e->deleted) {
        out->deleted++;
        out->freed_bytes += e->stored_bytes;
        dc_log_info("deleted snapshot %s of %s (%s)", e->id, e->database,
                    dc_retention_reason_text(e->reasons));
    } else {
        out->failed++;
        e->failure = dc_strdup(err.message);
        dc_log_error("could not delete snapshot %s of %s: %s", e->id, e->database, err.message);
    }
}

static int decide(const dc_prune_opts_t *opts, const dc_snapshot_list_t *list,
                  dc_prune_result_t *out, dc_error_t *err)
{
    dc_retention_item_t *items = dc_calloc(list->count ? list->count : 1, sizeof(*items));
    for (size_t i = 0; i < list->count; i++)
        item_from_info(&list->items[i], &items[i], opts->now);
    int rc = dc_retention_decide(items, list->count, &opts->policy, opts->now, err);
    if (rc == 0) {
        out->entries = dc_calloc(list->count ? list->count : 1, sizeof(*out->entries));
        out->count = list->count;
        for (size_t i = 0; i < list->count; i++) {
            entry_from(&list->items[i], &items[i], &out->entries[i]);
            if (items[i].keep)
                out->kept++;
            else
                out->to_delete++;
        }
    }
    free(items);
    return rc;
}

/* The catalog lists by id; people read a prune's report per database. */
static int by_database_then_id(const void *a, const void *b)
{
    const dc_prune_entry_t *x = a, *y = b;
    int c = strcmp(x->database_dir, y->database_dir);
    return c ? c : strcmp(x->id, y->id);
}

int dc_prune_run(const dc_prune_opts_t *opts, dc_prune_result_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (dc_retention_policy_check(&opts->policy, err) != 0)
        return -1;
    dc_store_lease_t *lease = NULL;
    dc_error_t busy;
    if (!opts->dry_run && dc_store_lease_acquire(opts->store, PRUNE_LEASE, &lease, &busy) != 0)
        return dc_error_set(err,
                            "cannot prune store %s: %s (another prune running?); try again "
                            "when it has ended",
                            dc_store_url(opts->store), busy.message);
    dc_snapshot_list_t list;
    int rc = dc_catalog_list(opts->store, opts->database, &list, err);
    if (rc == 0) {
        rc = decide(opts, &list, out, err);
        for (size_t i = 0; rc == 0 && !opts->dry_run && i < out->count; i++) {
            if (!out->entries[i].keep)
                delete_one(opts->store, &list.items[i], &out->entries[i], out);
        }
        dc_catalog_list_free(&list);
    }
    /* Temporary objects of dead writers (on S3: their stale multipart uploads). */
    if (rc == 0 && !opts->dry_run &&
        dc_store_cleanup_temporary(opts->store, &out->removed_temporary, err) != 0)
        rc = -1;
    dc_store_lease_release(lease);
    if (out->count > 1)
        qsort(out->entries, out->count, sizeof(*out->entries), by_database_then_id);
    if (rc == 0 && out->failed > 0)
        rc = dc_error_set(err,
                          "%zu of %zu snapshots to delete could not be deleted (see above); "
                          "they are left as they were or incomplete, and the next prune "
                          "retries",
                          out->failed, out->to_delete);
    return rc;
}

void dc_prune_result_free(dc_prune_result_t *result)
{
    for (size_t i = 0; i < result->count; i++)
        free(result->entries[i].failure);
    free(result->entries);
    memset(result, 0, sizeof(*result));
}
