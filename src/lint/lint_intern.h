/* What the lint driver (lint.c), the rules (rules.c) and the classifier (classify.c) share:
 * the state of one file being linted. Private to src/lint/. */
#ifndef DEPLOYCTL_LINT_INTERN_H
#define DEPLOYCTL_LINT_INTERN_H

#include <jansson.h>
#include <stdbool.h>

#include "deployctl/error.h"
#include "deployctl/lint.h"

#define LINT_MAX_ALLOW   16
#define LINT_RULE_ID_MAX 48

/* A relation as the parser names it: schema may be NULL (unqualified). */
typedef struct lint_rel {
    char *schema;
    char *name;
} lint_rel_t;

typedef struct lint_rel_set {
    lint_rel_t *items;
    size_t count, cap;
} lint_rel_set_t;

typedef struct lint_ctx {
    dc_lint_result_t *result;
    size_t migration; /* this file's index in result->migrations */

    /* The statement being checked. */
    int line;
    const char *statement; /* for display */
    char allow[LINT_MAX_ALLOW][LINT_RULE_ID_MAX];
    size_t allow_count;
    dc_lint_class_t stmt_class;

    /* What the file's earlier statements did. */
    lint_rel_set_t created_tables; /* nobody can be using these yet */
    lint_rel_set_t created_indexes;
    /* FKs and checks added NOT VALID since the last COMMIT: {table name, constraint name} */
    lint_rel_set_t not_valid_constraints;
    size_t statement_count; /* in the whole file */
    bool lock_timeout_set;
    bool lock_timeout_local;    /* by SET LOCAL: ends at COMMIT / ROLLBACK */
    bool lock_timeout_in_block; /* set inside BEGIN ... : a ROLLBACK undoes it */
    bool lock_timeout_reported;
    bool concurrently_alone_reported;
    bool in_transaction; /* inside an explicit BEGIN ... COMMIT */
} lint_ctx_t;

/* lint.c: records a finding of rule `rule_id` for the current statement. */
void lint_report(lint_ctx_t *ctx, const char *rule_id, const char *fmt, ...) DC_PRINTF(3, 4);

/* lint.c: lints one file's SQL; findings name it `file`, its migration entry `name`, and a
 * syntax error `label` (the path a user can open). */
int lint_sql_named(const char *sql, const char *name, const char *file, const char *label,
                   dc_lint_result_t *out, dc_error_t *err);

/* result.c: appends to a result (copying the strings); returns the migration's index. */
size_t lint_result_add_migration(dc_lint_result_t *r, const char *name, const char *file);
void lint_result_add_finding(dc_lint_result_t *r, size_t migration, int line, const char *statement,
                             const dc_lint_rule_t *rule, dc_lint_class_t cls, const char *message,
                             bool allowed);

/* rules.c: checks one parsed statement ({"<Type>": {...}}), sets ctx->stmt_class and updates
 * the file's state. */
void lint_check_statement(lint_ctx_t *ctx, json_t *node);
void lint_ctx_free(lint_ctx_t *ctx);

/* classify.c: the class of a statement from its parse tree alone (rules.c then makes every
 * statement on a table created earlier in the same file additive). */
dc_lint_class_t lint_classify(const char *type, json_t *body);

/* Small accessors for libpg_query's JSON tree (rules.c). */
json_t *lint_json_get(json_t *obj, const char *key);
const char *lint_json_str(json_t *obj, const char *key);
bool lint_json_eq(json_t *obj, const char *key, const char *want);
/* A node is {"Type": {...}}: returns the type and sets *body. */
const char *lint_node_type(json_t *node, json_t **body);

#endif
