/* Status of each migration from the directory and the history rows, classified as Prisma's
 * schema engine does (rolled-back rows do not count, an unfinished row is a failure). Pure:
 * reading the table is history.c's job, acting on the status is runner.c's. */
#include <stdlib.h>
#include <string.h>

#include "deployctl/migrate.h"
#include "deployctl/util.h"

const char *dc_migrate_state_name(dc_migration_state_t s)
{
    switch (s) {
    case DC_MIG_APPLIED:
        return "applied";
    case DC_MIG_EDITED:
        return "edited";
    case DC_MIG_PENDING:
        return "pending";
    case DC_MIG_FAILED:
        return "failed";
    case DC_MIG_MISSING_LOCALLY:
        return "missing_locally";
    }
    return "?";
}

bool dc_migrate_row_partly_undone(const dc_history_row_t *row)
{
    return row != NULL && row->finished_at != NULL && row->rolled_back_at == NULL &&
           row->logs != NULL &&
           strncmp(row->logs, DC_MIGRATE_UNDO_MARK, strlen(DC_MIGRATE_UNDO_MARK)) == 0;
}

/* The rows of one migration that decide its state: the newest finished one, else the newest
 * unfinished one (both not rolled back), else the newest rolled-back one. */
typedef struct rows_of {
    const dc_history_row_t *finished;
    const dc_history_row_t *unfinished;
    const dc_history_row_t *rolled_back;
} rows_of_t;

static rows_of_t find_rows(const dc_history_t *h, const char *name)
{
    rows_of_t r = {0};
    for (size_t i = 0; h != NULL && i < h->count; i++) {
        const dc_history_row_t *row = &h->rows[i];
        if (strcmp(row->migration_name, name) != 0)
            continue;
        if (row->rolled_back_at != NULL)
            r.rolled_back = row;
        else if (row->finished_at != NULL)
            r.finished = row;
        else
            r.unfinished = row;
    }
    return r;
}

static void add_entry(dc_migrate_status_t *out, const char *name, const dc_migration_t *local,
                      const dc_history_t *history)
{
    dc_migration_status_t *e = &out->entries[out->count++];
    rows_of_t r = find_rows(history, name);
    e->name = name;
    e->local = local;
    if (r.finished != NULL) {
        e->row = r.finished;
        if (dc_migrate_row_partly_undone(r.finished))
            e->state = DC_MIG_FAILED; /* neither applied nor rolled back: needs attention */
        else if (local == NULL)
            e->state = DC_MIG_MISSING_LOCALLY;
        else if (dc_migrate_checksum_matches(local->sql, local->sql_len, r.finished->checksum))
            e->state = DC_MIG_APPLIED;
        else
            e->state = DC_MIG_EDITED;
    } else if (r.unfinished != NULL) {
        e->row = r.unfinished;
        e->state = DC_MIG_FAILED;
    } else {
        e->row = r.rolled_back;
        e->state = DC_MIG_PENDING;
    }
    switch (e->state) {
    case DC_MIG_APPLIED:
        out->applied++;
        break;
    case DC_MIG_EDITED:
        out->edited++;
        break;
    case DC_MIG_PENDING:
        out->pending++;
        break;
    case DC_MIG_FAILED:
        out->failed++;
        break;
    case DC_MIG_MISSING_LOCALLY:
        out->missing++;
        break;
    }
}

static bool seen_before(const dc_history_t *h, size_t index)
{
    for (size_t i = 0; i < index; i++) {
        if (strcmp(h->rows[i].migration_name, h->rows[index].migration_name) == 0)
            return true;
    }
    return false;
}

void dc_migrate_classify(const dc_migration_set_t *set, const dc_history_t *history,
                         dc_migrate_status_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t rows = history != NULL ? history->count : 0;
    out->history_exists = history != NULL && history->exists;
    out->entries = dc_calloc(set->count + rows + 1, sizeof(dc_migration_status_t));
    for (size_t i = 0; i < set->count; i++)
        add_entry(out, set->items[i].name, &set->items[i], history);
    /* Names the database knows and the directory does not (rolled-back ones do not count). */
    for (size_t i = 0; i < rows; i++) {
        const dc_history_row_t *row = &history->rows[i];
        if (dc_migrate_find(set, row->migration_name) != NULL || seen_before(history, i))
            continue;
        rows_of_t r = find_rows(history, row->migration_name);
        if (r.finished != NULL || r.unfinished != NULL)
            add_entry(out, row->migration_name, NULL, history);
    }
}

bool dc_migrate_up_to_date(const dc_migrate_status_t *st)
{
    return st->pending == 0 && st->failed == 0 && st->edited == 0 && st->missing == 0;
}

void dc_migrate_status_free(dc_migrate_status_t *st)
{
    free(st->entries);
    memset(st, 0, sizeof(*st));
}

void dc_history_free(dc_history_t *h)
{
    for (size_t i = 0; i < h->count; i++) {
        dc_history_row_t *r = &h->rows[i];
        free(r->id);
        free(r->checksum);
        free(r->migration_name);
        free(r->logs);
        free(r->started_at);
        free(r->finished_at);
        free(r->rolled_back_at);
    }
    free(h->rows);
    memset(h, 0, sizeof(*h));
}

void dc_migrate_report_free(dc_migrate_report_t *r)
{
    for (size_t i = 0; i < r->applied_count; i++)
        free(r->applied[i]);
    free(r->applied);
    for (size_t i = 0; i < r->dropped_count; i++)
        free(r->dropped_invalid[i]);
    free(r->dropped_invalid);
    free(r->failed);
    memset(r, 0, sizeof(*r));
}
