/* The lint rules: the table of rule ids, severities and safe alternatives, and the checks that
 * read one statement's parse tree (libpg_query's JSON) and report what it does wrong. Tables
 * created earlier in the same file are exempt from lock rules: nobody can be using them yet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/migrate.h"
#include "deployctl/parsetree.h"
#include "deployctl/util.h"
#include "lint_intern.h"

#define STMT_CLASS (-1)

/* clang-format off */
static const dc_lint_rule_t rules[] = {
    {"drop-table", DC_LINT_ERROR, DC_LINT_DESTRUCTIVE,
     "drops a table: its data is lost and the running application breaks",
     "Expand/contract: deploy an application version that no longer uses the table, wait until "
     "no running version reads it (the seed waits 24-48 h), then drop it in a later migration, "
     "after a snapshot."},
    {"drop-column", DC_LINT_ERROR, DC_LINT_DESTRUCTIVE,
     "drops a column: its data is lost and the running application breaks",
     "Expand/contract (seed scenario 5): stop using the column in the application and deploy "
     "that, wait until no running version reads it, then drop it in a migration of its own, "
     "after a snapshot."},
    {"drop-schema", DC_LINT_ERROR, DC_LINT_DESTRUCTIVE,
     "drops a schema and everything in it",
     "Drop the objects one by one in later migrations, once the application no longer uses "
     "them and a snapshot holds their data."},
    {"drop-database", DC_LINT_ERROR, DC_LINT_DESTRUCTIVE,
     "drops a database",
     "Never drop a database from a migration; do it by hand, after a snapshot."},
    {"rename-table", DC_LINT_ERROR, DC_LINT_TRANSFORMATIVE,
     "renames or moves a table: the running application still uses the old name",
     "Expand/contract: create the table under its new name, copy and keep syncing the data "
     "(or add a view under one of the names), switch the application, then drop the old table "
     "in a later migration."},
    {"rename-column", DC_LINT_ERROR, DC_LINT_TRANSFORMATIVE,
     "renames a column: the running application still uses the old name",
     "Expand/contract (seed scenario 2): add the new column nullable, backfill it "
     "(UPDATE ... SET new = old, in batches), make it required, switch the application to it, "
     "then drop the old column in a later migration."},
    {"change-column-type", DC_LINT_ERROR, DC_LINT_TRANSFORMATIVE,
     "changes a column's type: rewrites the table under an ACCESS EXCLUSIVE lock, and the "
     "running application may not handle the new type",
     "Expand/contract (seed scenario 4): add a column of the new type, backfill it "
     "(e.g. SET quantity_decimal = quantity::decimal, in batches), switch the application to "
     "it, then drop the old column in a later migration."},
    {"widen-column-type", DC_LINT_WARNING, DC_LINT_TRANSFORMATIVE,
     "changes a column's type to text, varchar or unconstrained numeric without USING: cheap "
     "(a brief lock, no rewrite) only if it widens the old type",
     "Fine when it widens: varchar(n) to varchar(m > n) or text, varchar to text, numeric(p,s) "
     "to numeric. From any other type (int to text, varchar(200) to varchar(50)) it rewrites "
     "the table: use expand/contract as for change-column-type."},
    {"add-not-null-column-without-default", DC_LINT_ERROR, DC_LINT_ADDITIVE,
     "adds a NOT NULL column without a default: fails on a table with rows, and the running "
     "application's inserts fail",
     "Add the column nullable (or NOT NULL with a constant DEFAULT), backfill it, then add "
     "CHECK (col IS NOT NULL) NOT VALID in a later migration, and VALIDATE CONSTRAINT and SET "
     "NOT NULL in one after that."},
    {"add-column-with-volatile-default", DC_LINT_ERROR, DC_LINT_ADDITIVE,
     "adds a column whose value is computed per row (volatile default, serial, identity or "
     "stored generated column): rewrites the table under an ACCESS EXCLUSIVE lock",
     "Add the column without a default (or with a constant one, which PostgreSQL 11+ stores "
     "without a rewrite), ALTER COLUMN ... SET DEFAULT for new rows, and backfill the existing "
     "rows in batches."},
    {"set-not-null", DC_LINT_WARNING, DC_LINT_TRANSFORMATIVE,
     "sets NOT NULL on an existing column: scans the whole table under an ACCESS EXCLUSIVE lock",
     "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID in one migration; in a later one, "
     "VALIDATE CONSTRAINT c (does not block writes), then SET NOT NULL, which uses the "
     "validated check instead of a scan (PostgreSQL 12+), then drop the check."},
    {"constraint-without-not-valid", DC_LINT_ERROR, DC_LINT_ADDITIVE,
     "adds a foreign key or check constraint validated, or validates it in the migration that "
     "added it: every row is checked while writes are blocked",
     "Add it with NOT VALID (a brief lock; only new rows are checked), then ALTER TABLE ... "
     "VALIDATE CONSTRAINT in a later migration: validation does not block writes, but in the "
     "same migration it runs while the ADD's ACCESS EXCLUSIVE lock is still held."},
    {"index-not-concurrent", DC_LINT_ERROR, DC_LINT_ADDITIVE,
     "builds an index on an existing table without CONCURRENTLY: writes are blocked until it "
     "is built",
     "CREATE INDEX CONCURRENTLY, in a migration of its own (it cannot run in a transaction); "
     "drop an INVALID index left by a failed build before retrying."},
    {"unique-constraint-without-index", DC_LINT_ERROR, DC_LINT_ADDITIVE,
     "adds a UNIQUE, PRIMARY KEY or EXCLUDE constraint by building its index under an ACCESS "
     "EXCLUSIVE lock",
     "CREATE UNIQUE INDEX CONCURRENTLY first (in its own migration), then ALTER TABLE ... ADD "
     "CONSTRAINT name UNIQUE USING INDEX index_name (or PRIMARY KEY USING INDEX)."},
    {"truncate", DC_LINT_ERROR, DC_LINT_DESTRUCTIVE,
     "empties a table under an ACCESS EXCLUSIVE lock; no down migration brings the rows back",
     "Delete only the rows you mean to, with a WHERE clause and in batches, after a snapshot."},
    {"update-without-where", DC_LINT_WARNING, DC_LINT_TRANSFORMATIVE,
     "updates every row of a table in one transaction, locking them all until it commits",
     "Backfill in batches (UPDATE ... WHERE id BETWEEN ...) as the seed's backfill script "
     "does, so each batch holds its row locks briefly."},
    {"delete-without-where", DC_LINT_WARNING, DC_LINT_DESTRUCTIVE,
     "deletes every row of a table",
     "Name the rows to remove with a WHERE clause, delete in batches, and take a snapshot "
     "first."},
    {"missing-lock-timeout", DC_LINT_WARNING, STMT_CLASS,
     "takes a lock that blocks writes on an existing table with no lock_timeout set earlier "
     "in the file: queued behind a long transaction, it blocks every query on the table",
     "Start the migration with SET lock_timeout = '5s'; so it fails fast instead of queueing, "
     "and retry (deployctl migrate sets one; prisma migrate deploy does not)."},
    {"drop-index-not-concurrent", DC_LINT_WARNING, DC_LINT_DESTRUCTIVE,
     "drops an index without CONCURRENTLY: holds an ACCESS EXCLUSIVE lock on its table",
     "DROP INDEX CONCURRENTLY, in a migration of its own."},
    {"concurrently-in-transaction", DC_LINT_ERROR, STMT_CLASS,
     "runs a statement that cannot run in a transaction (CREATE/DROP INDEX or REINDEX "
     "CONCURRENTLY, VACUUM, DETACH PARTITION CONCURRENTLY, ...) inside BEGIN ... COMMIT: "
     "PostgreSQL refuses it",
     "Remove the BEGIN/COMMIT around it and put the statement in a migration of its own."},
    {"concurrently-not-alone", DC_LINT_WARNING, STMT_CLASS,
     "a statement that cannot run in a transaction (CREATE/DROP INDEX or REINDEX CONCURRENTLY, "
     "VACUUM, DETACH PARTITION CONCURRENTLY, ...) shares its migration with other statements: "
     "prisma "
     "migrate deploy sends the file as one query, which PostgreSQL runs as one implicit "
     "transaction and so refuses (error 25001); deployctl migrate runs it statement by "
     "statement, so a failure leaves it half applied",
     "Put the statement alone in a migration of its own (not even a SET beside it)."},
    {"table-rewrite-or-exclusive-lock", DC_LINT_ERROR, DC_LINT_TRANSFORMATIVE,
     "rewrites a table or holds a lock that blocks it for as long as it works on every row: "
     "VACUUM FULL, CLUSTER, REINDEX without CONCURRENTLY, REFRESH MATERIALIZED VIEW without "
     "CONCURRENTLY, ALTER TABLE ... SET TABLESPACE, SET LOGGED or SET UNLOGGED",
     "REINDEX ... CONCURRENTLY and REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique "
     "index), alone in a migration; pg_repack or pg_squeeze instead of VACUUM FULL or CLUSTER; "
     "a new table filled in batches instead of SET TABLESPACE / LOGGED / UNLOGGED."},
    {"unknown-allow-rule", DC_LINT_WARNING, STMT_CLASS,
     "a deployctl:allow comment names a rule that does not exist, so it accepts nothing",
     "Use a rule id from 'deployctl lint --help'; several may be given, separated by commas "
     "or spaces."},
};
/* clang-format on */

#define RULE_COUNT (sizeof(rules) / sizeof(rules[0]))

const dc_lint_rule_t *dc_lint_rules(size_t *count)
{
    *count = RULE_COUNT;
    return rules;
}

const dc_lint_rule_t *dc_lint_rule_find(const char *id)
{
    for (size_t i = 0; i < RULE_COUNT; i++) {
        if (strcmp(rules[i].id, id) == 0)
            return &rules[i];
    }
    return NULL;
}

/* ---- the JSON tree ---- */

json_t *lint_json_get(json_t *obj, const char *key)
{
    return dc_pt_get(obj, key);
}

const char *lint_json_str(json_t *obj, const char *key)
{
    return dc_pt_str(obj, key);
}

bool lint_json_eq(json_t *obj, const char *key, const char *want)
{
    return dc_pt_eq(obj, key, want);
}

const char *lint_node_type(json_t *node, json_t **body)
{
    void *it = json_is_object(node) ? json_object_iter(node) : NULL;
    if (it == NULL) {
        *body = NULL;
        return NULL;
    }
    *body = json_object_iter_value(it);
    return json_object_iter_key(it);
}

static bool jtrue(json_t *obj, const char *key)
{
    return json_is_true(lint_json_get(obj, key));
}

/* The last name of a qualified name list ([{"String":{"sval":"pg_catalog"}}, ...]). */
static const char *last_name(json_t *names)
{
    size_t n = json_array_size(names);
    return n ? lint_json_str(lint_json_get(json_array_get(names, n - 1), "String"), "sval") : NULL;
}

/* ---- relations ---- */

typedef dc_pt_rel_t rel_t;

static rel_t rel_of(json_t *rv)
{
    return dc_pt_rangevar(rv);
}

/* DROP's object names: [[catalog.]schema.]name as a list of strings. */
static rel_t rel_of_names(json_t *object)
{
    return dc_pt_names(lint_json_get(lint_json_get(object, "List"), "items"), 0);
}

static const char *rel_show(rel_t r, char *buf, size_t size)
{
    if (r.schema != NULL)
        snprintf(buf, size, "\"%s\".\"%s\"", r.schema, r.name ? r.name : "?");
    else
        snprintf(buf, size, "\"%s\"", r.name ? r.name : "?");
    return buf;
}

/* "users" and "public"."users" are the same table as far as lint can tell. */
static bool set_has(const lint_rel_set_t *set, rel_t r)
{
    if (r.name == NULL)
        return false;
    for (size_t i = 0; i < set->count; i++) {
        const lint_rel_t *c = &set->items[i];
        if (strcmp(c->name, r.name) != 0)
            continue;
        if (c->schema == NULL || r.schema == NULL || strcmp(c->schema, r.schema) == 0)
            return true;
    }
    return false;
}

static void set_add(lint_rel_set_t *set, rel_t r)
{
    if (r.name == NULL || set_has(set, r))
        return;
    if (set->count == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 8;
        set->items = dc_realloc(set->items, set->cap * sizeof(*set->items));
    }
    set->items[set->count].schema = r.schema ? dc_strdup(r.schema) : NULL;
    set->items[set->count].name = dc_strdup(r.name);
    set->count++;
}

static void set_free(lint_rel_set_t *set)
{
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].schema);
        free(set->items[i].name);
    }
    free(set->items);
    memset(set, 0, sizeof(*set));
}

void lint_ctx_free(lint_ctx_t *ctx)
{
    set_free(&ctx->created_tables);
    set_free(&ctx->created_indexes);
    set_free(&ctx->not_valid_constraints);
}

static bool is_new(const lint_ctx_t *ctx, rel_t r)
{
    return set_has(&ctx->created_tables, r);
}

/* A statement about to take a lock that blocks writes on an existing table: without a
 * lock_timeout, waiting for it queues every other session's query on that table. Once a file. */
static void note_lock(lint_ctx_t *ctx, rel_t r)
{
    if (is_new(ctx, r) || ctx->lock_timeout_set || ctx->lock_timeout_reported)
        return;
    char name[256];
    ctx->lock_timeout_reported = true;
    lint_report(ctx, "missing-lock-timeout",
                "locks table %s with no SET lock_timeout earlier in the file: queued behind a "
                "long transaction, it blocks every query on the table",
                rel_show(r, name, sizeof(name)));
}

/* ---- ALTER TABLE ---- */

/* Functions whose value differs per row: a default using one makes ADD COLUMN fill every row. */
static const char *const volatile_functions[] = {
    "random",           "gen_random_uuid",  "uuid_generate_v1", "uuid_generate_v1mc",
    "uuid_generate_v4", "nextval",          "clock_timestamp",  "timeofday",
    "random_normal",    "gen_random_bytes", "setseed",          "txid_current",
    "uuidv4",           "uuidv7",
};

static const char *find_volatile_call(json_t *expr)
{
    if (json_is_array(expr)) {
        size_t i;
        json_t *v;
        json_array_foreach(expr, i, v)
        {
            const char *f = find_volatile_call(v);
            if (f != NULL)
                return f;
        }
        return NULL;
    }
    if (!json_is_object(expr))
        return NULL;
    json_t *call = lint_json_get(expr, "FuncCall");
    if (call != NULL) {
        const char *fn = last_name(lint_json_get(call, "funcname"));
        for (size_t i = 0; fn && i < sizeof(volatile_functions) / sizeof(volatile_functions[0]);
             i++) {
            if (strcmp(fn, volatile_functions[i]) == 0)
                return volatile_functions[i];
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(expr, key, v)
    {
        const char *f = find_volatile_call(v);
        if (f != NULL)
            return f;
    }
    return NULL;
}

static bool is_serial_type(const char *type)
{
    static const char *const serials[] = {"serial",  "serial2",   "serial4",
                                          "serial8", "bigserial", "smallserial"};
    for (size_t i = 0; type && i < sizeof(serials) / sizeof(serials[0]); i++) {
        if (strcmp(type, serials[i]) == 0)
            return true;
    }
    return false;
}

/* What a new column's definition says about it. */
typedef struct column_traits {
    bool not_null, has_default, unique, primary, foreign, check;
    const char *per_row; /* why each row gets its own value: NULL, a function, "serial", ... */
} column_traits_t;

/* DEFAULT NULL (or NULL::type) is no default at all. */
static bool is_null_constant(json_t *expr)
{
    json_t *cast = lint_json_get(expr, "TypeCast");
    if (cast != NULL)
        expr = lint_json_get(cast, "arg");
    return jtrue(lint_json_get(expr, "A_Const"), "isnull");
}

static column_traits_t column_traits(lint_ctx_t *ctx, json_t *coldef)
{
    column_traits_t t = {0};
    const char *type = last_name(lint_json_get(lint_json_get(coldef, "typeName"), "names"));
    if (is_serial_type(type)) {
        t.has_default = true;
        t.per_row = type;
    }
    size_t i;
    json_t *c;
    json_array_foreach(lint_json_get(coldef, "constraints"), i, c)
    {
        json_t *con = lint_json_get(c, "Constraint");
        const char *kind = lint_json_str(con, "contype");
        if (kind == NULL)
            continue;
        if (strcmp(kind, "CONSTR_NOTNULL") == 0) {
            t.not_null = true;
        } else if (strcmp(kind, "CONSTR_DEFAULT") == 0) {
            t.has_default = !is_null_constant(lint_json_get(con, "raw_expr"));
            const char *fn = find_volatile_call(lint_json_get(con, "raw_expr"));
            if (fn != NULL)
                t.per_row = fn;
        } else if (strcmp(kind, "CONSTR_IDENTITY") == 0) {
            t.has_default = true;
            t.per_row = "GENERATED AS IDENTITY";
        } else if (strcmp(kind, "CONSTR_GENERATED") == 0) {
            t.has_default = true;
            t.per_row = "GENERATED ... STORED";
        } else if (strcmp(kind, "CONSTR_PRIMARY") == 0) {
            t.primary = true;
        } else if (strcmp(kind, "CONSTR_UNIQUE") == 0) {
            t.unique = true;
        } else if (strcmp(kind, "CONSTR_FOREIGN") == 0) {
            t.foreign = true;
            note_lock(ctx, rel_of(lint_json_get(con, "pktable")));
        } else if (strcmp(kind, "CONSTR_CHECK") == 0) {
            t.check = true;
        }
    }
    return t;
}

static void check_add_column(lint_ctx_t *ctx, const char *table, json_t *coldef)
{
    const char *col = lint_json_str(coldef, "colname");
    column_traits_t t = column_traits(ctx, coldef);
    if ((t.not_null || t.primary) && !t.has_default)
        lint_report(ctx, "add-not-null-column-without-default",
                    "adds NOT NULL column \"%s\" to table %s without a default", col, table);
    if (t.per_row != NULL)
        lint_report(
            ctx, "add-column-with-volatile-default",
            "adds column \"%s\" to table %s with a per-row value (%s): the table is rewritten "
            "under an ACCESS EXCLUSIVE lock",
            col, table, t.per_row);
    if (t.unique || t.primary)
        lint_report(
            ctx, "unique-constraint-without-index",
            "adds column \"%s\" to table %s as %s: its index is built while writes are blocked",
            col, table, t.primary ? "PRIMARY KEY" : "UNIQUE");
    if (t.foreign || t.check)
        lint_report(
            ctx, "constraint-without-not-valid",
            "adds column \"%s\" to table %s with a %s constraint: every row is checked while "
            "writes are blocked",
            col, table, t.foreign ? "REFERENCES" : "CHECK");
}

static void check_add_constraint(lint_ctx_t *ctx, rel_t rel, const char *table, json_t *con)
{
    const char *kind = lint_json_str(con, "contype");
    const char *name = lint_json_str(con, "conname");
    char named[160];
    snprintf(named, sizeof(named), "%s%s%s", name ? "\"" : "", name ? name : "", name ? "\" " : "");
    if (kind == NULL)
        return;
    if (strcmp(kind, "CONSTR_FOREIGN") == 0 || strcmp(kind, "CONSTR_CHECK") == 0) {
        /* Remembered: a VALIDATE of it later in this file still runs under this lock. */
        if (jtrue(con, "skip_validation") && name != NULL && rel.name != NULL)
            set_add(&ctx->not_valid_constraints, (rel_t){rel.name, name});
        if (!jtrue(con, "skip_validation"))
            lint_report(ctx, "constraint-without-not-valid",
                        "adds %s constraint %son table %s without NOT VALID: every row is checked "
                        "while writes are blocked",
                        strcmp(kind, "CONSTR_FOREIGN") == 0 ? "foreign key" : "check", named,
                        table);
    } else if (strcmp(kind, "CONSTR_UNIQUE") == 0 || strcmp(kind, "CONSTR_PRIMARY") == 0 ||
               strcmp(kind, "CONSTR_EXCLUSION") == 0) {
        if (lint_json_str(con, "indexname") == NULL)
            lint_report(ctx, "unique-constraint-without-index",
                        "adds %s constraint %son table %s without USING INDEX: its index is built "
                        "while writes are blocked",
                        strcmp(kind, "CONSTR_UNIQUE") == 0    ? "UNIQUE"
                        : strcmp(kind, "CONSTR_PRIMARY") == 0 ? "PRIMARY KEY"
                                                              : "EXCLUDE",
                        named, table);
    }
}

/* ALTER COLUMN ... TYPE text, varchar(n) or numeric without USING: binary-coercible, so no
 * rewrite, when it widens the old type (which lint does not know). */
static bool widening_target(json_t *cmd)
{
    json_t *def = lint_json_get(lint_json_get(cmd, "def"), "ColumnDef");
    if (def == NULL || lint_json_get(def, "raw_default") != NULL)
        return false;
    json_t *tn = lint_json_get(def, "typeName");
    if (lint_json_get(tn, "TypeName") != NULL)
        tn = lint_json_get(tn, "TypeName");
    const char *type = last_name(lint_json_get(tn, "names"));
    if (type == NULL || json_array_size(lint_json_get(tn, "arrayBounds")) > 0)
        return false;
    if (strcmp(type, "text") == 0 || strcmp(type, "varchar") == 0)
        return true;
    return strcmp(type, "numeric") == 0 && json_array_size(lint_json_get(tn, "typmods")) == 0;
}

static void check_alter_cmd(lint_ctx_t *ctx, rel_t rel, const char *table, json_t *cmd)
{
    const char *sub = lint_json_str(cmd, "subtype");
    const char *col = lint_json_str(cmd, "name");
    if (sub == NULL)
        return;
    if (strcmp(sub, "AT_AddColumn") == 0)
        check_add_column(ctx, table, lint_json_get(lint_json_get(cmd, "def"), "ColumnDef"));
    else if (strcmp(sub, "AT_AddConstraint") == 0)
        check_add_constraint(ctx, rel, table,
                             lint_json_get(lint_json_get(cmd, "def"), "Constraint"));
    else if (strcmp(sub, "AT_ValidateConstraint") == 0 && col != NULL && rel.name != NULL &&
             set_has(&ctx->not_valid_constraints, (rel_t){rel.name, col}))
        lint_report(ctx, "constraint-without-not-valid",
                    "validates constraint \"%s\" of table %s in the migration that added it NOT "
                    "VALID: the ADD's ACCESS EXCLUSIVE lock is still held, so every row is "
                    "checked while reads and writes are blocked",
                    col, table);
    else if (strcmp(sub, "AT_DropColumn") == 0)
        lint_report(ctx, "drop-column", "drops column \"%s\" of table %s", col, table);
    else if (strcmp(sub, "AT_AlterColumnType") == 0 && widening_target(cmd))
        lint_report(ctx, "widen-column-type",
                    "changes the type of column \"%s\" of table %s to text, varchar or numeric: "
                    "no rewrite only if it widens the old type",
                    col, table);
    else if (strcmp(sub, "AT_AlterColumnType") == 0)
        lint_report(ctx, "change-column-type", "changes the type of column \"%s\" of table %s", col,
                    table);
    else if (strcmp(sub, "AT_SetNotNull") == 0)
        lint_report(ctx, "set-not-null", "sets NOT NULL on column \"%s\" of table %s", col, table);
    else if (strcmp(sub, "AT_SetTableSpace") == 0 || strcmp(sub, "AT_SetLogged") == 0 ||
             strcmp(sub, "AT_SetUnLogged") == 0)
        lint_report(ctx, "table-rewrite-or-exclusive-lock",
                    "%s table %s: copies every row under an ACCESS EXCLUSIVE lock",
                    strcmp(sub, "AT_SetTableSpace") == 0 ? "moves to another tablespace"
                    : strcmp(sub, "AT_SetLogged") == 0   ? "makes LOGGED"
                                                         : "makes UNLOGGED",
                    table);
}

/* Foreign keys added to a new table still lock the existing table they reference. */
static void note_referenced_locks(lint_ctx_t *ctx, json_t *cmds)
{
    size_t i;
    json_t *cmd;
    json_array_foreach(cmds, i, cmd)
    {
        json_t *def = lint_json_get(lint_json_get(cmd, "AlterTableCmd"), "def");
        json_t *con = lint_json_get(def, "Constraint");
        if (lint_json_eq(con, "contype", "CONSTR_FOREIGN"))
            note_lock(ctx, rel_of(lint_json_get(con, "pktable")));
        size_t j;
        json_t *c;
        json_array_foreach(lint_json_get(lint_json_get(def, "ColumnDef"), "constraints"), j, c)
        {
            if (lint_json_eq(lint_json_get(c, "Constraint"), "contype", "CONSTR_FOREIGN"))
                note_lock(ctx, rel_of(lint_json_get(lint_json_get(c, "Constraint"), "pktable")));
        }
    }
}

static void check_alter_table(lint_ctx_t *ctx, json_t *body)
{
    if (!lint_json_eq(body, "objtype", "OBJECT_TABLE"))
        return;
    rel_t rel = rel_of(lint_json_get(body, "relation"));
    json_t *cmds = lint_json_get(body, "cmds");
    if (is_new(ctx, rel)) {
        note_referenced_locks(ctx, cmds);
        return;
    }
    /* VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE, which lets writes through. */
    size_t i;
    json_t *cmd;
    json_array_foreach(cmds, i, cmd)
    {
        if (!lint_json_eq(lint_json_get(cmd, "AlterTableCmd"), "subtype", "AT_ValidateConstraint"))
            note_lock(ctx, rel);
    }
    note_referenced_locks(ctx, cmds);
    char table[256];
    rel_show(rel, table, sizeof(table));
    json_array_foreach(cmds, i, cmd)
    {
        check_alter_cmd(ctx, rel, table, lint_json_get(cmd, "AlterTableCmd"));
    }
}

/* ---- other statements ---- */

/* A statement that cannot run in a transaction block (the migrate module's judgement, the one
 * the runner acts on): refused in BEGIN ... COMMIT, and a file holding it cannot be one
 * transaction. */
static void check_concurrently(lint_ctx_t *ctx, const char *what)
{
    if (ctx->in_transaction)
        lint_report(ctx, "concurrently-in-transaction",
                    "%s inside BEGIN ... COMMIT: PostgreSQL refuses to run it", what);
    else if (ctx->statement_count > 1 && !ctx->concurrently_alone_reported) {
        ctx->concurrently_alone_reported = true;
        lint_report(ctx, "concurrently-not-alone",
                    "%s shares this migration with %zu other statement%s: "
                    "prisma migrate deploy fails on it, and no runner can apply it atomically",
                    what, ctx->statement_count - 1, ctx->statement_count == 2 ? "" : "s");
    }
}

static void check_index(lint_ctx_t *ctx, json_t *body)
{
    rel_t rel = rel_of(lint_json_get(body, "relation"));
    const char *idx = lint_json_str(body, "idxname");
    char table[256];
    if (idx != NULL) {
        rel_t index = {rel.schema, idx};
        set_add(&ctx->created_indexes, index);
    }
    if (jtrue(body, "concurrent"))
        return; /* see check_concurrently */
    if (is_new(ctx, rel))
        return;
    note_lock(ctx, rel);
    lint_report(ctx, "index-not-concurrent",
                "builds %sindex %s%s%son table %s without CONCURRENTLY: writes to the table are "
                "blocked until it is built",
                jtrue(body, "unique") ? "unique " : "", idx ? "\"" : "", idx ? idx : "",
                idx ? "\" " : "", rel_show(rel, table, sizeof(table)));
}

static void check_drop(lint_ctx_t *ctx, json_t *body)
{
    const char *type = lint_json_str(body, "removeType");
    json_t *objects = lint_json_get(body, "objects");
    size_t i;
    json_t *o;
    char name[256];
    if (type == NULL)
        return;
    if (strcmp(type, "OBJECT_SCHEMA") == 0) {
        json_array_foreach(objects, i, o)
        {
            lint_report(ctx, "drop-schema", "drops schema \"%s\"%s",
                        lint_json_str(lint_json_get(o, "String"), "sval"),
                        lint_json_eq(body, "behavior", "DROP_CASCADE") ? " and everything in it"
                                                                       : "");
        }
        return;
    }
    if (strcmp(type, "OBJECT_INDEX") == 0 && jtrue(body, "concurrent"))
        return; /* see check_concurrently */
    json_array_foreach(objects, i, o)
    {
        rel_t r = rel_of_names(o);
        if (strcmp(type, "OBJECT_TABLE") == 0 && !is_new(ctx, r)) {
            note_lock(ctx, r);
            lint_report(ctx, "drop-table", "drops table %s", rel_show(r, name, sizeof(name)));
        } else if (strcmp(type, "OBJECT_INDEX") == 0 && !set_has(&ctx->created_indexes, r)) {
            /* Which table the index belongs to is not in the statement; say the index. */
            if (!ctx->lock_timeout_set && !ctx->lock_timeout_reported) {
                ctx->lock_timeout_reported = true;
                lint_report(ctx, "missing-lock-timeout",
                            "drops index %s with no SET lock_timeout earlier in the file: "
                            "queued behind a long transaction, it blocks every query on its "
                            "table",
                            rel_show(r, name, sizeof(name)));
            }
            lint_report(ctx, "drop-index-not-concurrent",
                        "drops index %s without CONCURRENTLY: its table is locked against "
                        "reads and writes meanwhile",
                        rel_show(r, name, sizeof(name)));
        }
    }
}

static void check_rename(lint_ctx_t *ctx, json_t *body)
{
    const char *type = lint_json_str(body, "renameType");
    rel_t rel = rel_of(lint_json_get(body, "relation"));
    const char *to = lint_json_str(body, "newname");
    char table[256];
    if (type == NULL)
        return;
    if (strcmp(type, "OBJECT_TABLE") == 0) {
        if (is_new(ctx, rel)) {
            rel_t renamed = {rel.schema, to};
            set_add(&ctx->created_tables, renamed);
            return;
        }
        note_lock(ctx, rel);
        lint_report(ctx, "rename-table", "renames table %s to \"%s\"",
                    rel_show(rel, table, sizeof(table)), to);
    } else if (strcmp(type, "OBJECT_COLUMN") == 0 &&
               lint_json_eq(body, "relationType", "OBJECT_TABLE") && !is_new(ctx, rel)) {
        note_lock(ctx, rel);
        lint_report(ctx, "rename-column", "renames column \"%s\" of table %s to \"%s\"",
                    lint_json_str(body, "subname"), rel_show(rel, table, sizeof(table)), to);
    }
}

static void check_set_schema(lint_ctx_t *ctx, json_t *body)
{
    rel_t rel = rel_of(lint_json_get(body, "relation"));
    char table[256];
    if (!lint_json_eq(body, "objectType", "OBJECT_TABLE") || is_new(ctx, rel))
        return;
    note_lock(ctx, rel);
    lint_report(ctx, "rename-table", "moves table %s to schema \"%s\"",
                rel_show(rel, table, sizeof(table)), lint_json_str(body, "newschema"));
}

static void check_truncate(lint_ctx_t *ctx, json_t *body)
{
    size_t i;
    json_t *r;
    char table[256];
    json_array_foreach(lint_json_get(body, "relations"), i, r)
    {
        rel_t rel = rel_of(r);
        if (is_new(ctx, rel))
            continue;
        note_lock(ctx, rel);
        lint_report(ctx, "truncate", "empties table %s", rel_show(rel, table, sizeof(table)));
    }
}

static void check_unfiltered(lint_ctx_t *ctx, json_t *body, const char *rule, const char *verb)
{
    rel_t rel = rel_of(lint_json_get(body, "relation"));
    char table[256];
    if (lint_json_get(body, "whereClause") != NULL || is_new(ctx, rel))
        return;
    lint_report(ctx, rule, "%s every row of %s (no WHERE clause)", verb,
                rel_show(rel, table, sizeof(table)));
}

/* SET lock_timeout = 0 (or RESET, or DEFAULT) means no timeout at all. */
static void track_setting(lint_ctx_t *ctx, json_t *body)
{
    const char *name = lint_json_str(body, "name");
    if (lint_json_eq(body, "kind", "VAR_RESET_ALL")) {
        ctx->lock_timeout_set = false;
        return;
    }
    if (name == NULL || strcmp(name, "lock_timeout") != 0)
        return;
    ctx->lock_timeout_set = false;
    /* SET LOCAL ends at COMMIT or ROLLBACK; a plain SET made in BEGIN ... ends at ROLLBACK. */
    ctx->lock_timeout_local = jtrue(body, "is_local");
    ctx->lock_timeout_in_block = ctx->in_transaction;
    if (!lint_json_eq(body, "kind", "VAR_SET_VALUE"))
        return;
    json_t *value = lint_json_get(json_array_get(lint_json_get(body, "args"), 0), "A_Const");
    json_t *ival = lint_json_get(value, "ival");
    const char *sval = lint_json_str(lint_json_get(value, "sval"), "sval");
    if (ival != NULL)
        ctx->lock_timeout_set = json_integer_value(lint_json_get(ival, "ival")) > 0;
    else if (sval != NULL)
        ctx->lock_timeout_set = strtod(sval, NULL) > 0;
}

/* SELECT set_config('lock_timeout', '5s', is_local): the same as SET [LOCAL]. */
static void track_set_config(lint_ctx_t *ctx, json_t *body)
{
    size_t i;
    json_t *target;
    json_array_foreach(lint_json_get(body, "targetList"), i, target)
    {
        json_t *call =
            lint_json_get(lint_json_get(lint_json_get(target, "ResTarget"), "val"), "FuncCall");
        const char *fn = last_name(lint_json_get(call, "funcname"));
        json_t *args = lint_json_get(call, "args");
        if (fn == NULL || strcmp(fn, "set_config") != 0 || json_array_size(args) != 3)
            continue;
        json_t *a0 = lint_json_get(json_array_get(args, 0), "A_Const");
        json_t *a1 = lint_json_get(json_array_get(args, 1), "A_Const");
        json_t *a2 = lint_json_get(json_array_get(args, 2), "A_Const");
        const char *setting = lint_json_str(lint_json_get(a0, "sval"), "sval");
        const char *value = lint_json_str(lint_json_get(a1, "sval"), "sval");
        if (setting == NULL || strcmp(setting, "lock_timeout") != 0)
            continue;
        ctx->lock_timeout_set = value != NULL && strtod(value, NULL) > 0;
        ctx->lock_timeout_local = jtrue(lint_json_get(a2, "boolval"), "boolval");
        ctx->lock_timeout_in_block = ctx->in_transaction;
    }
}

static void track_transaction(lint_ctx_t *ctx, json_t *body)
{
    const char *kind = lint_json_str(body, "kind");
    if (kind == NULL)
        return;
    if (strcmp(kind, "TRANS_STMT_BEGIN") == 0 || strcmp(kind, "TRANS_STMT_START") == 0)
        ctx->in_transaction = true;
    else if (strcmp(kind, "TRANS_STMT_COMMIT") == 0 || strcmp(kind, "TRANS_STMT_ROLLBACK") == 0 ||
             strcmp(kind, "TRANS_STMT_PREPARE") == 0) {
        ctx->in_transaction = false;
        if (ctx->lock_timeout_local ||
            (ctx->lock_timeout_in_block && strcmp(kind, "TRANS_STMT_ROLLBACK") == 0))
            ctx->lock_timeout_set = false;
        ctx->lock_timeout_local = ctx->lock_timeout_in_block = false;
        /* The ADD's lock ends here: a VALIDATE after it runs in a transaction of its own. */
        set_free(&ctx->not_valid_constraints);
    }
}

/* CREATE TABLE: locks the existing tables it references or inherits from, then is new. With IF
 * NOT EXISTS the table may well exist already, with rows and readers: it is not taken as new,
 * so what the file does to it next is checked as for any existing table. */
static void track_create_table(lint_ctx_t *ctx, json_t *body)
{
    size_t i, j;
    json_t *elt, *c, *parent;
    json_array_foreach(lint_json_get(body, "tableElts"), i, elt)
    {
        json_t *con = lint_json_get(elt, "Constraint");
        if (lint_json_eq(con, "contype", "CONSTR_FOREIGN"))
            note_lock(ctx, rel_of(lint_json_get(con, "pktable")));
        json_array_foreach(lint_json_get(lint_json_get(elt, "ColumnDef"), "constraints"), j, c)
        {
            con = lint_json_get(c, "Constraint");
            if (lint_json_eq(con, "contype", "CONSTR_FOREIGN"))
                note_lock(ctx, rel_of(lint_json_get(con, "pktable")));
        }
    }
    json_array_foreach(lint_json_get(body, "inhRelations"), i, parent)
    {
        note_lock(ctx, rel_of(parent));
    }
    if (!jtrue(body, "if_not_exists"))
        set_add(&ctx->created_tables, rel_of(lint_json_get(body, "relation")));
}

static void note_locks_of(lint_ctx_t *ctx, json_t *relations)
{
    size_t i;
    json_t *r;
    json_array_foreach(relations, i, r)
    {
        note_lock(ctx, rel_of(r));
    }
}

/* Whether the statement only touches a table created earlier in this file: then it is part of
 * creating that table, and additive whatever it does. */
static bool only_new_tables(lint_ctx_t *ctx, const char *type, json_t *body)
{
    static const char *const single[] = {"AlterTableStmt", "IndexStmt",  "RenameStmt",
                                         "UpdateStmt",     "DeleteStmt", "InsertStmt"};
    for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
        if (strcmp(type, single[i]) == 0) {
            json_t *rel = lint_json_get(body, "relation");
            return rel != NULL && is_new(ctx, rel_of(rel));
        }
    }
    size_t i;
    json_t *r;
    if (strcmp(type, "TruncateStmt") == 0) {
        json_array_foreach(lint_json_get(body, "relations"), i, r)
        {
            if (!is_new(ctx, rel_of(r)))
                return false;
        }
        return true;
    }
    if (strcmp(type, "DropStmt") == 0 && lint_json_eq(body, "removeType", "OBJECT_TABLE")) {
        json_array_foreach(lint_json_get(body, "objects"), i, r)
        {
            if (!is_new(ctx, rel_of_names(r)))
                return false;
        }
        return true;
    }
    return false;
}

/* A DefElem named name in a list of options (VACUUM (FULL), REINDEX (CONCURRENTLY)). */
static bool has_option(json_t *options, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(options, i, o)
    {
        if (lint_json_eq(lint_json_get(o, "DefElem"), "defname", name))
            return true;
    }
    return false;
}

/* Maintenance that rewrites a table, or locks it while it reads every row. */
static void check_maintenance(lint_ctx_t *ctx, const char *type, json_t *body)
{
    char name[256];
    const char *what = NULL;
    rel_t rel = {NULL, NULL};
    if (strcmp(type, "VacuumStmt") == 0 && jtrue(body, "is_vacuumcmd") &&
        has_option(lint_json_get(body, "options"), "full")) {
        json_t *first =
            lint_json_get(json_array_get(lint_json_get(body, "rels"), 0), "VacuumRelation");
        rel = rel_of(lint_json_get(first, "relation"));
        what = "VACUUM FULL rewrites";
    } else if (strcmp(type, "ClusterStmt") == 0 && lint_json_get(body, "relation") != NULL) {
        rel = rel_of(lint_json_get(body, "relation"));
        what = "CLUSTER rewrites";
    } else if (strcmp(type, "ReindexStmt") == 0 &&
               !has_option(lint_json_get(body, "params"), "concurrently")) {
        rel = rel_of(lint_json_get(body, "relation"));
        if (rel.name == NULL)
            rel.name = lint_json_str(body, "name");
        what = "REINDEX without CONCURRENTLY rebuilds the indexes of";
    } else if (strcmp(type, "RefreshMatViewStmt") == 0 && !jtrue(body, "concurrent")) {
        rel = rel_of(lint_json_get(body, "relation"));
        what = "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every read of";
    }
    if (what == NULL || (rel.name != NULL && is_new(ctx, rel)))
        return;
    if (ctx->stmt_class < DC_LINT_TRANSFORMATIVE)
        ctx->stmt_class = DC_LINT_TRANSFORMATIVE;
    if (rel.name != NULL)
        note_lock(ctx, rel);
    lint_report(ctx, "table-rewrite-or-exclusive-lock", "%s %s while it works on every row", what,
                rel.name != NULL ? rel_show(rel, name, sizeof(name)) : "every table");
}

void lint_check_statement(lint_ctx_t *ctx, json_t *node)
{
    json_t *body;
    const char *type = lint_node_type(node, &body);
    if (type == NULL)
        return;
    ctx->stmt_class =
        only_new_tables(ctx, type, body) ? DC_LINT_ADDITIVE : lint_classify(type, body);
    char what[64];
    if (dc_migrate_stmt_no_transaction(type, body, what, sizeof(what)))
        check_concurrently(ctx, what);
    check_maintenance(ctx, type, body);
    if (strcmp(type, "AlterTableStmt") == 0) {
        check_alter_table(ctx, body);
    } else if (strcmp(type, "IndexStmt") == 0) {
        check_index(ctx, body);
    } else if (strcmp(type, "DropStmt") == 0) {
        check_drop(ctx, body);
    } else if (strcmp(type, "DropdbStmt") == 0) {
        lint_report(ctx, "drop-database", "drops database \"%s\"", lint_json_str(body, "dbname"));
    } else if (strcmp(type, "RenameStmt") == 0) {
        check_rename(ctx, body);
    } else if (strcmp(type, "AlterObjectSchemaStmt") == 0) {
        check_set_schema(ctx, body);
    } else if (strcmp(type, "TruncateStmt") == 0) {
        check_truncate(ctx, body);
    } else if (strcmp(type, "UpdateStmt") == 0) {
        check_unfiltered(ctx, body, "update-without-where", "updates");
    } else if (strcmp(type, "DeleteStmt") == 0) {
        check_unfiltered(ctx, body, "delete-without-where", "deletes");
    } else if (strcmp(type, "VariableSetStmt") == 0) {
        track_setting(ctx, body);
    } else if (strcmp(type, "TransactionStmt") == 0) {
        track_transaction(ctx, body);
    } else if (strcmp(type, "SelectStmt") == 0) {
        track_set_config(ctx, body);
    } else if (strcmp(type, "CreateStmt") == 0) {
        track_create_table(ctx, body);
    } else if (strcmp(type, "CreateTableAsStmt") == 0) {
        if (!jtrue(body, "if_not_exists"))
            set_add(&ctx->created_tables,
                    rel_of(lint_json_get(lint_json_get(body, "into"), "rel")));
    } else if (strcmp(type, "CreateTrigStmt") == 0) {
        note_lock(ctx, rel_of(lint_json_get(body, "relation")));
    } else if (strcmp(type, "LockStmt") == 0) {
        /* SHARE (5) and stronger block writes; LOCK TABLE alone is ACCESS EXCLUSIVE (8). */
        if (json_integer_value(lint_json_get(body, "mode")) >= 5)
            note_locks_of(ctx, lint_json_get(body, "relations"));
    }
}
