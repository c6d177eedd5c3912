/* The contract between the check runner (check.c) and the check families (pooler.c,
 * checks_db.c, checks_store.c, checks_migrations.c). Only src/check/ includes this file. */
#ifndef DEPLOYCTL_CHECK_INTERN_H
#define DEPLOYCTL_CHECK_INTERN_H

#include <libpq-fe.h>

#include "deployctl/check.h"
#include "deployctl/pg.h"

/* Every check query runs under these: a lock held (or queued) by another session makes a
 * query fail with 55P03 after DC_CHECK_LOCK_TIMEOUT instead of waiting with it. */
#define DC_CHECK_LOCK_TIMEOUT      "2s"
#define DC_CHECK_STATEMENT_TIMEOUT "30s"

/* What the checks share: the options, the one connection they all read through, and what an
 * earlier check learnt that a later one needs. */
typedef struct dc_check_ctx {
    const dc_check_opts_t *opts;
    dc_check_report_t *report;
    char *libpq_url;     /* the URL without Prisma-only parameters */
    char *prisma_schema; /* ?schema=, or NULL (public) */
    char database[256];  /* the database name, for the store */
    PGconn *conn;        /* NULL when the connection check failed */
    bool superuser;
    /* The migrations check's verdict on what is still to apply (the privileges check reads
     * it): -1 when unknown. */
    long pending_count;
    bool history_exists; /* whether _prisma_migrations exists (the migrations check) */
    /* What the pending migrations need of the role (needs.c), for the privileges check: NULL
     * when unknown; needs_error when a pending migration cannot be parsed. */
    struct dc_needs *needs;
    char *needs_error;
    uint64_t last_snapshot_bytes; /* archive bytes of the newest snapshot, 0 when none */
} dc_check_ctx_t;

/* Whether a query failed on lock_timeout or statement_timeout (not waiting is the point). */
bool dc_check_timed_out(const dc_error_t *err);

/* A result for a check that needs the connection when there is none. */
void dc_check_skip_no_connection(dc_check_ctx_t *ctx, const char *name, const char *title);

/* Each adds exactly one result to ctx->report. */
void dc_check_connection(dc_check_ctx_t *ctx); /* connects; sets ctx->conn */
void dc_check_pooler(dc_check_ctx_t *ctx);
/* Only when a pooled URL is configured (then one result). */
void dc_check_pooled_url(dc_check_ctx_t *ctx);
void dc_check_migrations(dc_check_ctx_t *ctx);
void dc_check_snapshot(dc_check_ctx_t *ctx);
void dc_check_free_space(dc_check_ctx_t *ctx);
void dc_check_locks(dc_check_ctx_t *ctx);
void dc_check_wraparound(dc_check_ctx_t *ctx);
void dc_check_pg_dump(dc_check_ctx_t *ctx);
void dc_check_privileges(dc_check_ctx_t *ctx);
void dc_check_invalid_indexes(dc_check_ctx_t *ctx);
void dc_check_connection_headroom(dc_check_ctx_t *ctx);
void dc_check_prepared_xacts(dc_check_ctx_t *ctx);

#endif
