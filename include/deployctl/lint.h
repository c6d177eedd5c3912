/* Migration lint: every statement of a migration is parsed by PostgreSQL's own parser
 * (libpg_query), classified as additive, transformative or destructive, and checked against
 * rules for unsafe DDL. It reads SQL only; it never connects to a database. */
#ifndef DEPLOYCTL_LINT_H
#define DEPLOYCTL_LINT_H

#include <stdbool.h>
#include <stddef.h>

#include "deployctl/error.h"

/* The three migration types of the migration strategy, in rising order of danger, so that the
 * class of a migration is the largest class of its statements. */
typedef enum {
    DC_LINT_ADDITIVE = 0,       /* adds tables, columns, indexes, constraints, rows */
    DC_LINT_TRANSFORMATIVE = 1, /* changes existing data or definitions */
    DC_LINT_DESTRUCTIVE = 2,    /* removes tables, columns, other objects or rows */
} dc_lint_class_t;

typedef enum {
    DC_LINT_INFO = 0,
    DC_LINT_WARNING = 1,
    DC_LINT_ERROR = 2, /* can lose data, break the running application, or block writes */
} dc_lint_severity_t;

/* One rule: its stable id (what a `-- deployctl:allow <id>` comment names), its severity, the
 * class of the change it flags, and the safe alternative. */
typedef struct dc_lint_rule {
    const char *id;
    dc_lint_severity_t severity;
    int cls; /* a dc_lint_class_t, or -1: the class of the statement it was found in */
    const char *summary;
    const char *hint;
} dc_lint_rule_t;

typedef struct dc_lint_finding {
    char *file;      /* as given to dc_lint_sql; relative to the directory for dc_lint_dir */
    int line;        /* 1-based line where the statement starts (after leading comments) */
    char *statement; /* the statement on one line, shortened when long */
    const dc_lint_rule_t *rule;
    dc_lint_class_t cls;
    char *message; /* what this statement does wrong, naming its table or column */
    bool allowed;  /* accepted by a deployctl:allow comment: shown, never counted */
} dc_lint_finding_t;

typedef struct dc_lint_migration {
    char *name; /* the migration's directory name (or the file name for a single file) */
    char *file; /* relative path of its migration.sql */
    dc_lint_class_t cls;
    size_t statements;
    size_t errors, warnings, infos, allowed;
} dc_lint_migration_t;

/* Accumulates the findings of any number of files; init before use, free after. */
typedef struct dc_lint_result {
    dc_lint_finding_t *findings;
    size_t count;
    dc_lint_migration_t *migrations;
    size_t migration_count;
    size_t errors, warnings, infos, allowed; /* findings not allowed, by severity; and allowed */
    size_t finding_cap, migration_cap;       /* private: allocated lengths */
} dc_lint_result_t;

void dc_lint_result_init(dc_lint_result_t *r);
void dc_lint_result_free(dc_lint_result_t *r);

/* Lints one migration's SQL text, appending its findings and one migration entry named `file`
 * to out. A syntax error fails (-1) with a message naming file and line, and adds nothing. */
int dc_lint_sql(const char *sql, const char *file, dc_lint_result_t *out, dc_error_t *err);
/* Reads and lints one file; `name` is how findings name it (NULL: the path). */
int dc_lint_file(const char *path, const char *name, dc_lint_result_t *out, dc_error_t *err);
/* Lints one migration, <dir>/<name>/migration.sql, as dc_lint_dir does (for the pending ones a
 * release or check is about to apply). A directory without migration.sql is logged and skipped. */
int dc_lint_migration(const char *dir, const char *name, dc_lint_result_t *out, dc_error_t *err);
/* Lints a Prisma migrations directory: <dir>/<timestamp>_<name>/migration.sql in name order
 * (down.sql and migration_lock.toml are not migrations). A path to a single .sql file is
 * linted as one migration. A missing directory is an error; an empty one lints to nothing. */
int dc_lint_dir(const char *dir, dc_lint_result_t *out, dc_error_t *err);

/* The worst class over every migration linted (additive when there are none). */
dc_lint_class_t dc_lint_worst_class(const dc_lint_result_t *r);
/* True when every migration linted is additive: the old application version keeps working. */
bool dc_lint_all_additive(const dc_lint_result_t *r);

/* The findings as a JSON array of objects with keys file, line, statement, rule, severity,
 * class and hint; allowed findings are left out. Caller frees. */
char *dc_lint_to_json(const dc_lint_result_t *r);

const char *dc_lint_class_name(dc_lint_class_t c);
const char *dc_lint_severity_name(dc_lint_severity_t s);
/* The rule table, for help and documentation; and one rule by id (NULL when unknown). */
const dc_lint_rule_t *dc_lint_rules(size_t *count);
const dc_lint_rule_t *dc_lint_rule_find(const char *id);

#endif
