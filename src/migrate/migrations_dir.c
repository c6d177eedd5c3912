/* Prisma's migration directory: <dir>/<timestamp>_<name>/migration.sql (and our down.sql),
 * migration_lock.toml, checksums as Prisma computes them, and a migration's statements split
 * and classified by PostgreSQL's parser (libpg_query). No database access here. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "deployctl/migrate.h"
#include "deployctl/pg.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"

#define MAX_FILE_BYTES (256u * 1024u * 1024u)

/* ---- checksums ---- */

void dc_migrate_checksum(const void *data, size_t len, char out[65])
{
    dc_sha256_hex(data, len, out);
}

/* Prisma's variants of a script (checksum.rs, script_matches_checksum): every "\r\n" replaced
 * by "\n" (to_crlf false), or every '\n' by "\r\n" (to_crlf true; a CRLF becomes "\r\r\n", as
 * in Prisma, so a file with mixed line endings is an edit to both tools). */
static char *convert_line_endings(const char *sql, size_t len, bool to_crlf, size_t *out_len)
{
    dc_buf_t b = {0};
    dc_buf_append(&b, "", 0);
    for (size_t i = 0; i < len; i++) {
        if (!to_crlf && sql[i] == '\r' && i + 1 < len && sql[i + 1] == '\n')
            continue;
        if (to_crlf && sql[i] == '\n')
            dc_buf_append(&b, "\r", 1);
        dc_buf_append(&b, &sql[i], 1);
    }
    *out_len = b.len;
    return b.data;
}

/* A checksum as the recorded string is written: 64 hex digits, or, in rows written by old Prisma
 * versions (prisma-engines #1887), each byte without its leading zero ("{:x}"). */
static bool checksum_equals(const char *sum, const char *recorded)
{
    if (strlen(recorded) == 64)
        return strcmp(sum, recorded) == 0;
    char old[65];
    size_t n = 0;
    for (size_t i = 0; i < 64; i += 2) {
        if (sum[i] != '0')
            old[n++] = sum[i];
        old[n++] = sum[i + 1];
    }
    old[n] = '\0';
    return strcmp(old, recorded) == 0;
}

bool dc_migrate_checksum_matches(const char *sql, size_t len, const char *recorded)
{
    char sum[65];
    if (recorded == NULL)
        return false;
    dc_migrate_checksum(sql, len, sum);
    if (checksum_equals(sum, recorded))
        return true;
    for (int to_crlf = 0; to_crlf <= 1; to_crlf++) {
        size_t n;
        char *converted = convert_line_endings(sql, len, to_crlf, &n);
        dc_migrate_checksum(converted, n, sum);
        free(converted);
        if (checksum_equals(sum, recorded))
            return true;
    }
    return false;
}

/* ---- reading the directory ---- */

static int read_file(const char *path, bool optional, char **out, size_t *out_len, dc_error_t *err)
{
    return dc_read_file(path, MAX_FILE_BYTES, optional, out, out_len, err);
}

/* migration_lock.toml records the provider the migrations were written for. */
static int check_lock_file(const char *dir, dc_error_t *err)
{
    char *path = dc_sprintf("%s/migration_lock.toml", dir);
    char *text;
    size_t len;
    int rc = read_file(path, true, &text, &len, err);
    if (rc == 0 && text != NULL) {
        const char *p = strstr(text, "provider");
        char provider[64] = "";
        if (p != NULL)
            sscanf(p, "provider = \"%63[^\"]\"", provider);
        if (strcmp(provider, "postgresql") != 0)
            rc = dc_error_set(err,
                              "%s says provider \"%s\": these migrations were written for another "
                              "database; deployctl runs PostgreSQL migrations only",
                              path, provider);
    }
    free(text);
    free(path);
    return rc;
}

/* Prisma reads a migration into a string, which must be UTF-8: so must ours, checked before
 * anything runs (the server would refuse the bytes half-way, and the error text with them). */
static int check_utf8(const char *path, const char *text, size_t len, dc_error_t *err)
{
    size_t ok = text == NULL ? len : dc_utf8_valid_len(text, len);
    if (ok == len)
        return 0;
    return dc_error_set(err,
                        "%s is not valid UTF-8 (byte 0x%02x at offset %zu, line %d): save it as "
                        "UTF-8 (as Prisma requires); nothing was run",
                        path, (unsigned char)text[ok], ok, dc_pg_sql_line(text, text + ok));
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const dc_migration_t *)a)->name, ((const dc_migration_t *)b)->name);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const dc_migrate_read_opts_t DEFAULT_OPTS = {0};

int dc_migrate_read_one(const char *dir, const char *name, const dc_migrate_read_opts_t *opts,
                        dc_migration_t *m, dc_error_t *err)
{
    if (opts == NULL)
        opts = &DEFAULT_OPTS;
    memset(m, 0, sizeof(*m));
    m->name = dc_strdup(name);
    m->path = dc_sprintf("%s/%s/migration.sql", dir, name);
    char *down_path = dc_sprintf("%s/%s/down.sql", dir, name);
    int rc = read_file(m->path, true, &m->sql, &m->sql_len, err);
    if (rc == 0 && m->sql == NULL) {
        if (!opts->skip_incomplete)
            rc = dc_error_set(err,
                              "migration directory %s/%s has no migration.sql: remove the "
                              "directory or add its migration.sql",
                              dir, name);
    } else if (rc == 0) {
        rc = check_utf8(m->path, m->sql, m->sql_len, err);
        if (rc == 0)
            rc = read_file(down_path, true, &m->down_sql, &m->down_len, err);
        if (rc == 0)
            rc = check_utf8(down_path, m->down_sql, m->down_len, err);
        if (rc == 0)
            dc_migrate_checksum(m->sql, m->sql_len, m->checksum);
    }
    free(down_path);
    if (rc != 0)
        dc_migration_free(m);
    return rc;
}

int dc_migrate_read_dir(const char *dir, dc_migration_set_t *out, dc_error_t *err)
{
    return dc_migrate_read_dir_with(dir, NULL, out, err);
}

int dc_migrate_read_dir_with(const char *dir, const dc_migrate_read_opts_t *opts,
                             dc_migration_set_t *out, dc_error_t *err)
{
    if (opts == NULL)
        opts = &DEFAULT_OPTS;
    memset(out, 0, sizeof(*out));
    DIR *d = opendir(dir);
    if (d == NULL)
        return dc_error_set(err,
                            "cannot read the migrations directory %s: %s; give it with "
                            "--migrations DIR (or migrations.dir in the config file)",
                            dir, strerror(errno));
    out->dir = dc_strdup(dir);
    int rc = opts->any_provider ? 0 : check_lock_file(dir, err);
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *path = dc_sprintf("%s/%s", dir, e->d_name);
        struct stat st;
        bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        free(path);
        if (!is_dir)
            continue; /* migration_lock.toml, READMEs */
        dc_migration_t m;
        rc = dc_migrate_read_one(dir, e->d_name, opts, &m, err);
        if (rc == 0 && m.sql == NULL) {
            out->skipped = dc_realloc(out->skipped, (out->skipped_count + 1) * sizeof(char *));
            out->skipped[out->skipped_count++] = m.name;
            m.name = NULL;
            dc_migration_free(&m);
        } else if (rc == 0) {
            out->items = dc_realloc(out->items, (out->count + 1) * sizeof(dc_migration_t));
            out->items[out->count++] = m;
        }
    }
    closedir(d);
    if (rc != 0) {
        dc_migrate_set_free(out);
        return -1;
    }
    if (out->count > 1)
        qsort(out->items, out->count, sizeof(dc_migration_t), compare_names);
    if (out->skipped_count > 1)
        qsort(out->skipped, out->skipped_count, sizeof(char *), compare_strings);
    return 0;
}

void dc_migration_free(dc_migration_t *m)
{
    free(m->name);
    free(m->path);
    free(m->sql);
    free(m->down_sql);
    memset(m, 0, sizeof(*m));
}

void dc_migrate_set_free(dc_migration_set_t *set)
{
    for (size_t i = 0; i < set->count; i++)
        dc_migration_free(&set->items[i]);
    free(set->items);
    for (size_t i = 0; i < set->skipped_count; i++)
        free(set->skipped[i]);
    free(set->skipped);
    free(set->dir);
    memset(set, 0, sizeof(*set));
}

const dc_migration_t *dc_migrate_find(const dc_migration_set_t *set, const char *name)
{
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->items[i].name, name) == 0)
            return &set->items[i];
    }
    return NULL;
}

/* ---- statements ---- */

static bool node_true(json_t *node, const char *key)
{
    return json_is_true(json_object_get(node, key));
}

static const char *json_str(json_t *node, const char *key)
{
    const char *s = json_string_value(json_object_get(node, key));
    return s ? s : "";
}

/* A DefElem named `name` in a list of options (REINDEX (CONCURRENTLY) ...). */
static bool has_option(json_t *list, const char *name)
{
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        if (strcmp(json_str(json_object_get(item, "DefElem"), "defname"), name) == 0)
            return true;
    }
    return false;
}

static bool detaches_concurrently(json_t *alter)
{
    size_t i;
    json_t *cmd;
    json_array_foreach(json_object_get(alter, "cmds"), i, cmd)
    {
        json_t *c = json_object_get(cmd, "AlterTableCmd");
        if (strcmp(json_str(c, "subtype"), "AT_DetachPartition") == 0 &&
            node_true(json_object_get(json_object_get(c, "def"), "PartitionCmd"), "concurrent"))
            return true;
    }
    return false;
}

/* Statements PostgreSQL runs only outside a transaction block (PreventInTransactionBlock). */
static void classify_node(const char *type, json_t *node, dc_migrate_stmt_t *st)
{
    static const char *const always[] = {"CreatedbStmt",
                                         "DropdbStmt",
                                         "CreateTableSpaceStmt",
                                         "DropTableSpaceStmt",
                                         "AlterSystemStmt",
                                         "CreateSubscriptionStmt",
                                         "DropSubscriptionStmt",
                                         "AlterSubscriptionStmt",
                                         NULL};
    const char *what = NULL;
    for (int i = 0; always[i] != NULL; i++) {
        if (strcmp(type, always[i]) == 0)
            what = always[i];
    }
    if (strcmp(type, "IndexStmt") == 0 && node_true(node, "concurrent")) {
        what = "CREATE INDEX CONCURRENTLY";
        /* libpg_query gives names as PostgreSQL stores them: "User_email_key" keeps its
         * case, User_email_key is folded to user_email_key. */
        const char *name = json_str(node, "idxname");
        json_t *rel = json_object_get(node, "relation");
        const char *schema = json_str(rel, "schemaname");
        if (*name)
            st->concurrent_index = dc_strdup(name);
        if (*schema)
            st->index_schema = dc_strdup(schema);
        st->index_table = dc_strdup(json_str(rel, "relname"));
    } else if (strcmp(type, "ReindexStmt") == 0 &&
               (has_option(json_object_get(node, "params"), "concurrently") ||
                strcmp(json_str(node, "kind"), "REINDEX_OBJECT_DATABASE") == 0 ||
                strcmp(json_str(node, "kind"), "REINDEX_OBJECT_SYSTEM") == 0)) {
        what = "REINDEX CONCURRENTLY / DATABASE / SYSTEM";
    } else if (strcmp(type, "DropStmt") == 0 && node_true(node, "concurrent")) {
        what = "DROP INDEX CONCURRENTLY";
    } else if (strcmp(type, "VacuumStmt") == 0 && node_true(node, "is_vacuumcmd")) {
        what = "VACUUM";
    } else if (strcmp(type, "ClusterStmt") == 0 && json_object_get(node, "relation") == NULL) {
        what = "CLUSTER of every table";
    } else if (strcmp(type, "AlterTableStmt") == 0 && detaches_concurrently(node)) {
        what = "DETACH PARTITION CONCURRENTLY";
    } else if (strcmp(type, "AlterDatabaseStmt") == 0 &&
               has_option(json_object_get(node, "options"), "tablespace")) {
        what = "ALTER DATABASE ... SET TABLESPACE";
    } else if (strcmp(type, "DiscardStmt") == 0 &&
               strcmp(json_str(node, "target"), "DISCARD_ALL") == 0) {
        what = "DISCARD ALL";
    } else if (strcmp(type, "TransactionStmt") == 0 &&
               strcmp(json_str(node, "kind"), "TRANS_STMT_SAVEPOINT") != 0 &&
               strcmp(json_str(node, "kind"), "TRANS_STMT_RELEASE") != 0 &&
               strcmp(json_str(node, "kind"), "TRANS_STMT_ROLLBACK_TO") != 0) {
        /* BEGIN / COMMIT / ROLLBACK / PREPARE TRANSACTION ...; savepoints work inside ours. */
        st->transaction_ctl = true;
        snprintf(st->what, sizeof(st->what), "transaction control");
    }
    if (what != NULL) {
        st->no_transaction = true;
        snprintf(st->what, sizeof(st->what), "%s", what);
    }
}

static void stmt_free(dc_migrate_stmt_t *st)
{
    free(st->text);
    free(st->concurrent_index);
    free(st->index_schema);
    free(st->index_table);
}

bool dc_migrate_stmt_no_transaction(const char *type, json_t *node, char *what, size_t what_size)
{
    dc_migrate_stmt_t st;
    memset(&st, 0, sizeof(st));
    classify_node(type, node, &st);
    stmt_free(&st);
    if (st.no_transaction && what_size > 0)
        snprintf(what, what_size, "%s", st.what);
    return st.no_transaction;
}

/* Where the line count stands: statements come in file order, so each one's line is counted
 * from the previous one's start, once over the file in all. */
typedef struct line_cursor {
    const char *at;
    int line;
} line_cursor_t;

/* Whether a statement's first word shows it can be none of the statements classify_node looks
 * for (data statements: most of a big data migration), so it need not be parsed on its own. */
static bool plain_statement(const char *text)
{
    static const char *const plain[] = {"INSERT", "UPDATE", "DELETE", "SELECT", "WITH",    "COPY",
                                        "VALUES", "MERGE",  "GRANT",  "REVOKE", "COMMENT", NULL};
    size_t n = 0;
    while ((text[n] >= 'A' && text[n] <= 'Z') || (text[n] >= 'a' && text[n] <= 'z'))
        n++;
    for (int i = 0; plain[i] != NULL; i++) {
        if (strlen(plain[i]) == n && strncasecmp(text, plain[i], n) == 0)
            return true;
    }
    return false;
}

/* Classifies one statement from its own parse tree (libpg_query's JSON). */
static void classify_statement(dc_migrate_stmt_t *st)
{
    PgQueryParseResult parsed = pg_query_parse(st->text);
    json_t *tree = parsed.error == NULL ? json_loads(parsed.parse_tree, 0, NULL) : NULL;
    pg_query_free_parse_result(parsed);
    json_t *stmt = json_object_get(json_array_get(json_object_get(tree, "stmts"), 0), "stmt");
    const char *type;
    json_t *node;
    json_object_foreach(stmt, type, node)
    {
        classify_node(type, node, st);
    }
    json_decref(tree);
}

static void add_statement(const char *sql, size_t len, const PgQuerySplitStmt *split,
                          line_cursor_t *cur, dc_migrate_script_t *out)
{
    const char *begin, *start, *end;
    if (!dc_pg_sql_statement(sql, len, (size_t)split->stmt_location, (size_t)split->stmt_len,
                             &begin, &start, &end) ||
        start == end)
        return;
    dc_migrate_stmt_t *st = &out->stmts[out->count++];
    st->text = dc_strndup(start, (size_t)(end - start));
    if (start >= cur->at) {
        cur->line += (int)dc_count_newlines(cur->at, (size_t)(start - cur->at));
        cur->at = start;
    }
    st->line = cur->line;
    if (!plain_statement(st->text))
        classify_statement(st);
    if (st->no_transaction || st->transaction_ctl)
        out->needs_autocommit = true;
}

/* The file is split by PostgreSQL's parser once (which also finds any syntax error), and only
 * the statements that may need it are parsed again on their own to be classified: no parse
 * tree of the whole file, and linear in its size. */
int dc_migrate_parse_script(const char *sql, const char *label, dc_migrate_script_t *out,
                            dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    PgQuerySplitResult split = pg_query_split_with_parser(sql);
    if (split.error != NULL) {
        int line = dc_pg_sql_line(sql, dc_pg_sql_error_at(sql, split.error->cursorpos));
        dc_error_set(err, "%s is not valid SQL at line %d: %s; fix the file (nothing was run)",
                     label, line, split.error->message);
        pg_query_free_split_result(split);
        return -1;
    }
    out->stmts = dc_calloc((size_t)split.n_stmts + 1, sizeof(dc_migrate_stmt_t));
    size_t len = strlen(sql);
    line_cursor_t cur = {sql, 1};
    for (int i = 0; i < split.n_stmts; i++)
        add_statement(sql, len, split.stmts[i], &cur, out);
    pg_query_free_split_result(split);
    return 0;
}

void dc_migrate_script_free(dc_migrate_script_t *script)
{
    for (size_t i = 0; i < script->count; i++)
        stmt_free(&script->stmts[i]);
    free(script->stmts);
    memset(script, 0, sizeof(*script));
}

/* ---- command lines ---- */

int dc_migrate_split_command(const char *command, char ***argv, dc_error_t *err)
{
    size_t count = 0;
    char **args = dc_calloc(strlen(command) / 2 + 2, sizeof(char *));
    const char *p = command;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (*p == '\0')
            break;
        dc_buf_t word = {0};
        dc_buf_append(&word, "", 0);
        char quote = 0;
        for (; *p && (quote || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
            if (quote == 0 && (*p == '\'' || *p == '"')) {
                quote = *p;
            } else if (quote && *p == quote) {
                quote = 0;
            } else if (*p == '\\' && quote != '\'' && p[1] != '\0') {
                p++;
                dc_buf_append(&word, p, 1);
            } else {
                dc_buf_append(&word, p, 1);
            }
        }
        args[count++] = word.data;
        if (quote) {
            dc_migrate_argv_free(args);
            return dc_error_set(err, "migrate.command has an unclosed %c quote: %s", quote,
                                command);
        }
    }
    if (count == 0) {
        dc_migrate_argv_free(args);
        return dc_error_set(err, "migrate.command is empty: give a command such as "
                                 "'npx prisma migrate deploy'");
    }
    *argv = args;
    return 0;
}

void dc_migrate_argv_free(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}
