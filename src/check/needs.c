/* The privileges each pending migration's statements need, from their parse trees (libpg_query's
 * JSON). The migration is split as the runner splits it (dc_migrate_parse_script) and each
 * statement parsed on its own, so a large data migration is read in one linear pass. What a
 * statement does to a relation created by an earlier pending statement needs nothing: the role
 * will own it. Only the catalog (privileges.c) can say what the role has. */
#include <jansson.h>
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/migrate.h"
#include "deployctl/parsetree.h"
#include "deployctl/util.h"
#include "needs.h"

typedef dc_pt_rel_t rel_t;

/* The statement being read. */
typedef struct collect {
    dc_needs_t *needs;
    const char *migration;
    json_t *ctes; /* CTE names of the statement: FROM x names no table then */
} collect_t;

/* ---- the JSON tree ---- */

static bool flag(json_t *obj, const char *key)
{
    return json_is_true(dc_pt_get(obj, key));
}

/* ---- what the pending set creates ---- */

static bool same_or_unqualified(const char *a, const char *b)
{
    return a == NULL || b == NULL || strcmp(a, b) == 0;
}

/* "orders" and "public"."orders" are taken as one relation: the search_path is the server's. */
static dc_need_name_t *find_created(const dc_needs_t *needs, rel_t r)
{
    for (size_t i = 0; r.name != NULL && i < needs->created_count; i++) {
        dc_need_name_t *c = &needs->created[i];
        if (strcmp(c->name, r.name) == 0 && same_or_unqualified(c->schema, r.schema))
            return c;
    }
    return NULL;
}

/* Whether the pending set surely creates the relation (not IF NOT EXISTS). */
static bool created(const dc_needs_t *needs, rel_t r)
{
    const dc_need_name_t *c = find_created(needs, r);
    return c != NULL && !c->maybe;
}

static void add_created(dc_needs_t *needs, rel_t r, bool maybe)
{
    dc_need_name_t *c = find_created(needs, r);
    if (r.name == NULL)
        return;
    if (c != NULL) {
        c->maybe = c->maybe && maybe; /* surely created once one statement surely creates it */
        return;
    }
    needs->created =
        dc_realloc(needs->created, (needs->created_count + 1) * sizeof(dc_need_name_t));
    c = &needs->created[needs->created_count++];
    c->schema = r.schema ? dc_strdup(r.schema) : NULL;
    c->name = dc_strdup(r.name);
    c->maybe = maybe;
}

bool dc_needs_schema_created(const dc_needs_t *needs, const char *schema)
{
    for (size_t i = 0; schema != NULL && i < needs->schema_count; i++) {
        if (strcmp(needs->schemas[i], schema) == 0)
            return true;
    }
    return false;
}

/* ---- needs ---- */

static bool same_need(const dc_need_t *n, dc_need_kind_t kind, const char *migration,
                      const char *what, rel_t r, const char *privilege)
{
    return n->kind == kind && strcmp(n->migration, migration) == 0 && strcmp(n->what, what) == 0 &&
           strcmp(n->privilege, privilege) == 0 && strcmp(n->name, r.name) == 0 &&
           ((n->schema == NULL && r.schema == NULL) ||
            (n->schema != NULL && r.schema != NULL && strcmp(n->schema, r.schema) == 0));
}

/* Records a need once per migration, statement kind and object (a thousand INSERTs into one
 * table need one INSERT privilege). */
static void add_need(collect_t *c, dc_need_kind_t kind, const char *what, rel_t r,
                     const char *privilege, bool missing_ok)
{
    dc_needs_t *needs = c->needs;
    if (r.name == NULL)
        return;
    if (kind == DC_NEED_OWNER || kind == DC_NEED_PRIVILEGE) {
        const dc_need_name_t *made = find_created(needs, r);
        if (made != NULL && !made->maybe)
            return;
        missing_ok = missing_ok || made != NULL; /* made IF NOT EXISTS: fine when absent */
    }
    if (kind == DC_NEED_CREATE && dc_needs_schema_created(needs, r.schema))
        return;
    if (privilege == NULL)
        privilege = "";
    for (size_t i = 0; i < needs->count; i++) {
        if (same_need(&needs->items[i], kind, c->migration, what, r, privilege))
            return;
    }
    needs->items = dc_realloc(needs->items, (needs->count + 1) * sizeof(dc_need_t));
    dc_need_t *n = &needs->items[needs->count++];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->migration = dc_strdup(c->migration);
    snprintf(n->what, sizeof(n->what), "%s", what);
    n->schema = r.schema ? dc_strdup(r.schema) : NULL;
    n->name = dc_strdup(r.name);
    snprintf(n->privilege, sizeof(n->privilege), "%s", privilege);
    n->missing_ok = missing_ok;
}

/* ---- reads and writes ---- */

static bool is_cte(const collect_t *c, rel_t r)
{
    size_t i;
    json_t *name;
    if (r.schema != NULL || r.name == NULL)
        return false;
    json_array_foreach(c->ctes, i, name)
    {
        if (strcmp(json_string_value(name), r.name) == 0)
            return true;
    }
    return false;
}

/* Calls visit on every {"<key>": value} member in the subtree, depth first; visit returns
 * whether to look inside value too. */
typedef bool (*visit_fn)(collect_t *c, const char *key, json_t *value);

static void walk(collect_t *c, json_t *node, visit_fn visit)
{
    const char *key;
    json_t *v;
    size_t i;
    json_array_foreach(node, i, v)
    {
        walk(c, v, visit);
    }
    json_object_foreach(node, key, v)
    {
        if (visit(c, key, v))
            walk(c, v, visit);
    }
}

/* Every WITH name anywhere in the statement. */
static bool note_cte(collect_t *c, const char *key, json_t *value)
{
    if (strcmp(key, "CommonTableExpr") == 0 && dc_pt_str(value, "ctename") != NULL)
        json_array_append_new(c->ctes, json_string(dc_pt_str(value, "ctename")));
    return true;
}

/* Every table the subtree reads (each {"RangeVar": ...} in it) needs SELECT. */
static bool note_read(collect_t *c, const char *key, json_t *value)
{
    if (strcmp(key, "RangeVar") != 0)
        return true;
    rel_t r = dc_pt_rangevar(value);
    if (!is_cte(c, r))
        add_need(c, DC_NEED_PRIVILEGE, "SELECT", r, "SELECT", false);
    return false;
}

static void reads_in(collect_t *c, json_t *node)
{
    walk(c, node, note_read);
}

/* INSERT / UPDATE / DELETE: the verb's privilege on the target, SELECT on the tables read (and
 * on the target when a WHERE clause reads its columns). */
static void data_statement(collect_t *c, json_t *body, const char *verb)
{
    rel_t target = dc_pt_rangevar(dc_pt_get(body, "relation"));
    add_need(c, DC_NEED_PRIVILEGE, verb, target, verb, false);
    if (dc_pt_get(body, "whereClause") != NULL)
        add_need(c, DC_NEED_PRIVILEGE, verb, target, "SELECT", false);
    if (strcmp(verb, "INSERT") == 0 &&
        dc_pt_eq(dc_pt_get(body, "onConflictClause"), "action", "ONCONFLICT_UPDATE"))
        add_need(c, DC_NEED_PRIVILEGE, verb, target, "UPDATE", false);
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "relation") != 0)
            reads_in(c, v);
    }
}

/* ---- DDL ---- */

static void foreign_key(collect_t *c, json_t *constraint)
{
    json_t *con = dc_pt_get(constraint, "Constraint");
    if (dc_pt_eq(con, "contype", "CONSTR_FOREIGN"))
        add_need(c, DC_NEED_PRIVILEGE, "FOREIGN KEY", dc_pt_rangevar(dc_pt_get(con, "pktable")),
                 "REFERENCES", false);
}

static void column_foreign_keys(collect_t *c, json_t *coldef)
{
    size_t i;
    json_t *con;
    json_array_foreach(dc_pt_get(dc_pt_get(coldef, "ColumnDef"), "constraints"), i, con)
    {
        foreign_key(c, con);
    }
}

/* ALTER TABLE / INDEX / SEQUENCE / VIEW ...: PostgreSQL's name for the object type. */
static const char *object_word(const char *objtype)
{
    static const char *const words[][2] = {
        {"OBJECT_TABLE", "TABLE"},
        {"OBJECT_INDEX", "INDEX"},
        {"OBJECT_SEQUENCE", "SEQUENCE"},
        {"OBJECT_VIEW", "VIEW"},
        {"OBJECT_MATVIEW", "MATERIALIZED VIEW"},
        {"OBJECT_FOREIGN_TABLE", "FOREIGN TABLE"},
    };
    for (size_t i = 0; objtype != NULL && i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcmp(objtype, words[i][0]) == 0)
            return words[i][1];
    }
    return NULL;
}

static void alter_table(collect_t *c, json_t *body)
{
    const char *word = object_word(dc_pt_str(body, "objtype"));
    char what[48];
    snprintf(what, sizeof(what), "ALTER %s", word ? word : "TABLE");
    add_need(c, DC_NEED_OWNER, what, dc_pt_rangevar(dc_pt_get(body, "relation")), NULL,
             flag(body, "missing_ok"));
    size_t i;
    json_t *cmd;
    json_array_foreach(dc_pt_get(body, "cmds"), i, cmd)
    {
        json_t *def = dc_pt_get(dc_pt_get(cmd, "AlterTableCmd"), "def");
        foreign_key(c, def);
        column_foreign_keys(c, def);
    }
}

/* CREATE TABLE: CREATE on its schema, REFERENCES for its foreign keys, ownership of the table
 * it is a partition of or inherits from. With IF NOT EXISTS an existing table of that name may
 * be someone else's: what follows is then checked against it. */
static void create_table(collect_t *c, json_t *body)
{
    rel_t rel = dc_pt_rangevar(dc_pt_get(body, "relation"));
    rel_t in_schema = {rel.schema, rel.name};
    add_need(c, DC_NEED_CREATE, "CREATE TABLE", in_schema, NULL, false);
    size_t i;
    json_t *elt, *parent;
    json_array_foreach(dc_pt_get(body, "inhRelations"), i, parent)
    {
        add_need(c, DC_NEED_OWNER,
                 dc_pt_get(body, "partbound") ? "CREATE TABLE ... PARTITION OF"
                                              : "CREATE TABLE ... INHERITS",
                 dc_pt_rangevar(parent), NULL, false);
    }
    /* before its own foreign keys: one may reference itself */
    add_created(c->needs, rel, flag(body, "if_not_exists"));
    json_array_foreach(dc_pt_get(body, "tableElts"), i, elt)
    {
        foreign_key(c, elt);
        column_foreign_keys(c, elt);
    }
}

static void create_index(collect_t *c, json_t *body)
{
    rel_t table = dc_pt_rangevar(dc_pt_get(body, "relation"));
    add_need(c, DC_NEED_OWNER, flag(body, "unique") ? "CREATE UNIQUE INDEX" : "CREATE INDEX", table,
             NULL, false);
    rel_t index = {table.schema, dc_pt_str(body, "idxname")};
    add_created(c->needs, index, flag(body, "if_not_exists"));
}

static void drop(collect_t *c, json_t *body)
{
    const char *word = object_word(dc_pt_str(body, "removeType"));
    if (word == NULL)
        return; /* types, functions, schemas: not relations */
    char what[48];
    snprintf(what, sizeof(what), "DROP %s", word);
    size_t i;
    json_t *object;
    json_array_foreach(dc_pt_get(body, "objects"), i, object)
    {
        add_need(c, DC_NEED_OWNER, what,
                 dc_pt_names(dc_pt_get(dc_pt_get(object, "List"), "items"), 0), NULL,
                 flag(body, "missing_ok"));
    }
}

static void rename_relation(collect_t *c, json_t *body)
{
    json_t *relation = dc_pt_get(body, "relation");
    if (relation == NULL)
        return; /* a type, function or schema */
    rel_t rel = dc_pt_rangevar(relation);
    const char *type = dc_pt_str(body, "renameType");
    const char *word = object_word(type);
    char what[48];
    if (word != NULL)
        snprintf(what, sizeof(what), "ALTER %s ... RENAME", word);
    else if (type != NULL && strcmp(type, "OBJECT_COLUMN") == 0)
        snprintf(what, sizeof(what), "RENAME COLUMN");
    else
        snprintf(what, sizeof(what), "RENAME CONSTRAINT");
    if (word != NULL && created(c->needs, rel)) {
        rel_t renamed = {rel.schema, dc_pt_str(body, "newname")};
        add_created(c->needs, renamed, false);
    }
    add_need(c, DC_NEED_OWNER, what, rel, NULL, flag(body, "missing_ok"));
}

static void set_schema(collect_t *c, json_t *body)
{
    const char *word = object_word(dc_pt_str(body, "objectType"));
    if (word == NULL || dc_pt_get(body, "relation") == NULL)
        return;
    char what[48];
    snprintf(what, sizeof(what), "ALTER %s ... SET SCHEMA", word);
    add_need(c, DC_NEED_OWNER, what, dc_pt_rangevar(dc_pt_get(body, "relation")), NULL,
             flag(body, "missing_ok"));
    rel_t target = {dc_pt_str(body, "newschema"), dc_pt_str(body, "newschema")};
    add_need(c, DC_NEED_CREATE, what, target, NULL, false);
}

static void truncate_tables(collect_t *c, json_t *body)
{
    size_t i;
    json_t *r;
    json_array_foreach(dc_pt_get(body, "relations"), i, r)
    {
        add_need(c, DC_NEED_PRIVILEGE, "TRUNCATE", dc_pt_rangevar(r), "TRUNCATE", false);
    }
}

static void comment(collect_t *c, json_t *body)
{
    const char *type = dc_pt_str(body, "objtype");
    json_t *items = dc_pt_get(dc_pt_get(dc_pt_get(body, "object"), "List"), "items");
    size_t trailing;
    if (object_word(type) != NULL)
        trailing = 0;
    else if (type != NULL &&
             (strcmp(type, "OBJECT_COLUMN") == 0 || strcmp(type, "OBJECT_TABCONSTRAINT") == 0))
        trailing = 1;
    else
        return;
    add_need(c, DC_NEED_OWNER, "COMMENT ON", dc_pt_names(items, trailing), NULL, false);
}

/* Objects created in a schema, not relations: CREATE TYPE, DOMAIN, FUNCTION, ... */
static void create_in_schema(collect_t *c, const char *what, json_t *names)
{
    rel_t r = dc_pt_names(names, 0);
    add_need(c, DC_NEED_CREATE, what, r, NULL, false);
}

static void create_relation(collect_t *c, const char *what, json_t *rv, bool maybe_exists)
{
    rel_t r = dc_pt_rangevar(rv);
    add_need(c, DC_NEED_CREATE, what, r, NULL, false);
    add_created(c->needs, r, maybe_exists);
}

static void create_schema(collect_t *c, json_t *body)
{
    const char *name = dc_pt_str(body, "schemaname");
    if (name == NULL)
        return;
    rel_t r = {NULL, name};
    add_need(c, DC_NEED_DATABASE, "CREATE SCHEMA", r, NULL, false);
    if (!dc_needs_schema_created(c->needs, name)) {
        c->needs->schemas =
            dc_realloc(c->needs->schemas, (c->needs->schema_count + 1) * sizeof(char *));
        c->needs->schemas[c->needs->schema_count++] = dc_strdup(name);
    }
}

static void statement(collect_t *c, const char *type, json_t *body)
{
    if (strcmp(type, "AlterTableStmt") == 0)
        alter_table(c, body);
    else if (strcmp(type, "CreateStmt") == 0)
        create_table(c, body);
    else if (strcmp(type, "IndexStmt") == 0)
        create_index(c, body);
    else if (strcmp(type, "DropStmt") == 0)
        drop(c, body);
    else if (strcmp(type, "RenameStmt") == 0)
        rename_relation(c, body);
    else if (strcmp(type, "AlterObjectSchemaStmt") == 0)
        set_schema(c, body);
    else if (strcmp(type, "TruncateStmt") == 0)
        truncate_tables(c, body);
    else if (strcmp(type, "CommentStmt") == 0)
        comment(c, body);
    else if (strcmp(type, "InsertStmt") == 0)
        data_statement(c, body, "INSERT");
    else if (strcmp(type, "UpdateStmt") == 0)
        data_statement(c, body, "UPDATE");
    else if (strcmp(type, "DeleteStmt") == 0)
        data_statement(c, body, "DELETE");
    else if (strcmp(type, "SelectStmt") == 0)
        reads_in(c, body);
    else if (strcmp(type, "ViewStmt") == 0)
        create_relation(c, "CREATE VIEW", dc_pt_get(body, "view"), flag(body, "replace"));
    else if (strcmp(type, "CreateSeqStmt") == 0)
        create_relation(c, "CREATE SEQUENCE", dc_pt_get(body, "sequence"),
                        flag(body, "if_not_exists"));
    else if (strcmp(type, "CreateTableAsStmt") == 0) {
        create_relation(c,
                        dc_pt_eq(body, "objtype", "OBJECT_MATVIEW") ? "CREATE MATERIALIZED VIEW"
                                                                    : "CREATE TABLE AS",
                        dc_pt_get(dc_pt_get(body, "into"), "rel"), flag(body, "if_not_exists"));
        reads_in(c, dc_pt_get(body, "query"));
    } else if (strcmp(type, "CompositeTypeStmt") == 0) {
        rel_t r = dc_pt_rangevar(dc_pt_get(body, "typevar"));
        add_need(c, DC_NEED_CREATE, "CREATE TYPE", r, NULL, false);
    } else if (strcmp(type, "CreateEnumStmt") == 0)
        create_in_schema(c, "CREATE TYPE", dc_pt_get(body, "typeName"));
    else if (strcmp(type, "CreateDomainStmt") == 0)
        create_in_schema(c, "CREATE DOMAIN", dc_pt_get(body, "domainname"));
    else if (strcmp(type, "CreateFunctionStmt") == 0)
        create_in_schema(c, flag(body, "is_procedure") ? "CREATE PROCEDURE" : "CREATE FUNCTION",
                         dc_pt_get(body, "funcname"));
    else if (strcmp(type, "DefineStmt") == 0 && dc_pt_eq(body, "kind", "OBJECT_TYPE"))
        create_in_schema(c, "CREATE TYPE", dc_pt_get(body, "defnames"));
    else if (strcmp(type, "CreateExtensionStmt") == 0) {
        rel_t r = {NULL, dc_pt_str(body, "extname")};
        add_need(c, DC_NEED_EXTENSION, "CREATE EXTENSION", r, NULL, flag(body, "if_not_exists"));
    } else if (strcmp(type, "CreateSchemaStmt") == 0)
        create_schema(c, body);
}

/* One statement's text, parsed on its own. */
static void collect_statement(collect_t *c, const char *text)
{
    PgQueryParseResult parsed = pg_query_parse(text);
    json_t *tree = parsed.error == NULL ? json_loads(parsed.parse_tree, 0, NULL) : NULL;
    pg_query_free_parse_result(parsed);
    json_t *stmt = dc_pt_get(json_array_get(dc_pt_get(tree, "stmts"), 0), "stmt");
    c->ctes = json_array();
    walk(c, stmt, note_cte);
    const char *type;
    json_t *body;
    json_object_foreach(stmt, type, body)
    {
        statement(c, type, body);
    }
    json_decref(c->ctes);
    json_decref(tree);
}

int dc_needs_collect(dc_needs_t *needs, const char *migration, const char *sql, dc_error_t *err)
{
    dc_migrate_script_t script;
    if (dc_migrate_parse_script(sql, migration, &script, err) != 0)
        return -1;
    collect_t c = {needs, migration, NULL};
    for (size_t i = 0; i < script.count; i++)
        collect_statement(&c, script.stmts[i].text);
    dc_migrate_script_free(&script);
    return 0;
}

void dc_needs_free(dc_needs_t *needs)
{
    for (size_t i = 0; i < needs->count; i++) {
        free(needs->items[i].migration);
        free(needs->items[i].schema);
        free(needs->items[i].name);
    }
    free(needs->items);
    for (size_t i = 0; i < needs->created_count; i++) {
        free(needs->created[i].schema);
        free(needs->created[i].name);
    }
    free(needs->created);
    for (size_t i = 0; i < needs->schema_count; i++)
        free(needs->schemas[i]);
    free(needs->schemas);
    memset(needs, 0, sizeof(*needs));
}
