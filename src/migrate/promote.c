/* promote-check: is what production is about to get (its applied migrations plus the
 * directory's pending ones) exactly what staging has applied? Compared by name and checksum
 * from both databases' _prisma_migrations. Reads only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/migrate.h"
#include "deployctl/util.h"

/* A migration as one side has it: state and checksum. */
typedef struct side {
    const char *name;
    const char *checksum; /* NULL when it does not have it */
    bool failed;
} side_t;

static void add_diff(dc_promote_result_t *r, const char *name, dc_promote_diff_kind_t kind,
                     const char *source, const char *target)
{
    r->diffs = dc_realloc(r->diffs, (r->count + 1) * sizeof(*r->diffs));
    dc_promote_diff_t *d = &r->diffs[r->count++];
    memset(d, 0, sizeof(*d));
    d->name = dc_strdup(name);
    d->kind = kind;
    snprintf(d->source_checksum, sizeof(d->source_checksum), "%s", source ? source : "");
    snprintf(d->target_checksum, sizeof(d->target_checksum), "%s", target ? target : "");
}

/* Staging: what it applied (rows), what failed. */
static side_t source_side(const dc_migration_status_t *e)
{
    side_t s = {e->name, NULL, e->state == DC_MIG_FAILED};
    if (e->state == DC_MIG_APPLIED || e->state == DC_MIG_EDITED ||
        e->state == DC_MIG_MISSING_LOCALLY)
        s.checksum = e->row->checksum;
    return s;
}

/* Production after a deploy: applied rows as recorded, pending ones as in the directory. */
static side_t target_side(const dc_migration_status_t *e)
{
    side_t s = source_side(e);
    if (e->state == DC_MIG_PENDING)
        s.checksum = e->local->checksum;
    return s;
}

static const dc_migration_status_t *find(const dc_migrate_status_t *st, const char *name)
{
    for (size_t i = 0; i < st->count; i++) {
        if (strcmp(st->entries[i].name, name) == 0)
            return &st->entries[i];
    }
    return NULL;
}

void dc_promote_compare(const dc_migrate_status_t *src, const dc_migrate_status_t *dst,
                        dc_promote_result_t *r)
{
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < dst->count; i++) {
        side_t t = target_side(&dst->entries[i]);
        const dc_migration_status_t *se = find(src, t.name);
        side_t s = se ? source_side(se) : (side_t){t.name, NULL, false};
        if (t.failed)
            add_diff(r, t.name, DC_PROMOTE_FAILED_ON_TARGET, s.checksum, NULL);
        else if (t.checksum == NULL)
            continue; /* neither applied nor going to be: not part of the comparison */
        else if (s.failed)
            add_diff(r, t.name, DC_PROMOTE_FAILED_ON_SOURCE, NULL, t.checksum);
        else if (s.checksum == NULL)
            add_diff(r, t.name, DC_PROMOTE_MISSING_ON_SOURCE, NULL, t.checksum);
        else if (strcmp(s.checksum, t.checksum) != 0)
            add_diff(r, t.name, DC_PROMOTE_CHECKSUM_DIFFERS, s.checksum, t.checksum);
        else
            r->same++;
    }
    for (size_t i = 0; i < src->count; i++) {
        side_t s = source_side(&src->entries[i]);
        const dc_migration_status_t *te = find(dst, s.name);
        if (s.checksum != NULL && (te == NULL || target_side(te).checksum == NULL) &&
            !(te != NULL && te->state == DC_MIG_FAILED))
            add_diff(r, s.name, DC_PROMOTE_NOT_IN_TARGET, s.checksum, NULL);
    }
}

int dc_migrate_promote_check(const dc_migrate_opts_t *source, const dc_migrate_opts_t *target,
                             dc_promote_result_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    dc_migration_set_t sset, tset;
    dc_history_t shist, thist;
    dc_migrate_status_t sst, tst;
    if (dc_migrate_status(source, &sset, &shist, &sst, err) != 0)
        return dc_error_prefix(err, "reading the source environment's migrations: ");
    int rc = dc_migrate_status(target, &tset, &thist, &tst, err);
    if (rc != 0) {
        dc_error_prefix(err, "reading the target environment's migrations: ");
    } else {
        dc_promote_compare(&sst, &tst, out);
        dc_migrate_status_free(&tst);
        dc_history_free(&thist);
        dc_migrate_set_free(&tset);
    }
    dc_migrate_status_free(&sst);
    dc_history_free(&shist);
    dc_migrate_set_free(&sset);
    return rc;
}

void dc_promote_result_free(dc_promote_result_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->diffs[i].name);
    free(r->diffs);
    memset(r, 0, sizeof(*r));
}

const char *dc_promote_diff_name(dc_promote_diff_kind_t kind)
{
    switch (kind) {
    case DC_PROMOTE_MISSING_ON_SOURCE:
        return "missing on the source";
    case DC_PROMOTE_FAILED_ON_SOURCE:
        return "failed on the source";
    case DC_PROMOTE_CHECKSUM_DIFFERS:
        return "checksum differs";
    case DC_PROMOTE_NOT_IN_TARGET:
        return "applied on the source, not going to the target";
    case DC_PROMOTE_FAILED_ON_TARGET:
        return "failed on the target";
    }
    return "?";
}
