/* The migration strategy's three types for one statement: additive (adds objects or rows),
 * transformative (changes existing data or definitions), destructive (removes objects or rows).
 * Judged from the parse tree alone; whether a table is new to the migration is rules.c's. */
#include <string.h>

#include "lint_intern.h"

/* Statements that change no schema and no data (settings, transactions, reads, maintenance)
 * cannot make a migration less than additive. */
static const char *const unchanging[] = {
    "VariableSetStmt", "VariableShowStmt",  "TransactionStmt", "SelectStmt",  "ExplainStmt",
    "LockStmt",        "VacuumStmt",        "CheckPointStmt",  "NotifyStmt",  "ListenStmt",
    "UnlistenStmt",    "DiscardStmt",       "ReindexStmt",     "ClusterStmt", "RefreshMatViewStmt",
    "CommentStmt",     "InsertStmt",        "IndexStmt",       "DefineStmt",  "CompositeTypeStmt",
    "ViewStmt",        "CreateTableAsStmt", "SecLabelStmt",
};

static bool in_list(const char *type, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(type, list[i]) == 0)
            return true;
    }
    return false;
}

static dc_lint_class_t worse(dc_lint_class_t a, dc_lint_class_t b)
{
    return a > b ? a : b;
}

/* ALTER TABLE: adding columns, constraints and indexes is additive, dropping columns and
 * constraints destructive, and anything else (types, defaults, NOT NULL) transformative. */
static dc_lint_class_t classify_alter_table(json_t *body)
{
    json_t *cmds = lint_json_get(body, "cmds");
    dc_lint_class_t cls = DC_LINT_ADDITIVE;
    size_t i;
    json_t *cmd;
    json_array_foreach(cmds, i, cmd)
    {
        const char *sub = lint_json_str(lint_json_get(cmd, "AlterTableCmd"), "subtype");
        if (sub == NULL)
            continue;
        if (strcmp(sub, "AT_AddColumn") == 0 || strcmp(sub, "AT_AddConstraint") == 0 ||
            strcmp(sub, "AT_AddIndex") == 0 || strcmp(sub, "AT_ValidateConstraint") == 0)
            continue;
        if (strcmp(sub, "AT_DropColumn") == 0 || strcmp(sub, "AT_DropConstraint") == 0)
            cls = worse(cls, DC_LINT_DESTRUCTIVE);
        else
            cls = worse(cls, DC_LINT_TRANSFORMATIVE);
    }
    return cls;
}

dc_lint_class_t lint_classify(const char *type, json_t *body)
{
    if (strcmp(type, "AlterTableStmt") == 0)
        return classify_alter_table(body);
    /* Rows removed are data lost, as much as a dropped column. */
    if (strcmp(type, "DeleteStmt") == 0 || strcmp(type, "TruncateStmt") == 0 ||
        strcmp(type, "DropdbStmt") == 0)
        return DC_LINT_DESTRUCTIVE;
    if (strcmp(type, "GrantStmt") == 0)
        return json_is_true(lint_json_get(body, "is_grant")) ? DC_LINT_ADDITIVE
                                                             : DC_LINT_TRANSFORMATIVE;
    if (strcmp(type, "AlterEnumStmt") == 0) /* ADD VALUE adds; RENAME VALUE changes */
        return lint_json_str(body, "oldVal") == NULL ? DC_LINT_ADDITIVE : DC_LINT_TRANSFORMATIVE;
    /* CREATE OR REPLACE changes what was there. */
    if (json_is_true(lint_json_get(body, "replace")))
        return DC_LINT_TRANSFORMATIVE;
    if (in_list(type, unchanging, sizeof(unchanging) / sizeof(unchanging[0])))
        return DC_LINT_ADDITIVE;
    if (strncmp(type, "Create", 6) == 0)
        return DC_LINT_ADDITIVE;
    if (strncmp(type, "Drop", 4) == 0)
        return DC_LINT_DESTRUCTIVE;
    /* Updates, renames, ALTER of anything else, DO blocks: they change what exists. */
    return DC_LINT_TRANSFORMATIVE;
}
