/* What the pending migrations need of the role, read from their statements by PostgreSQL's
 * parser (libpg_query): ownership of the relations they alter, CREATE on the schemas they
 * create in, table privileges for the rows they read and write, REFERENCES for their foreign
 * keys, the extensions they create. Pure (no database): privileges.c then asks the catalog
 * about each need. Private to src/check/ (and its unit test). */
#ifndef DEPLOYCTL_CHECK_NEEDS_H
#define DEPLOYCTL_CHECK_NEEDS_H

#include <stdbool.h>
#include <stddef.h>

#include "deployctl/error.h"

typedef enum {
    DC_NEED_OWNER,     /* ownership of a relation (or membership in the owning role) */
    DC_NEED_PRIVILEGE, /* a table privilege (privilege names it) on a relation */
    DC_NEED_CREATE,    /* CREATE on a schema: schema, or NULL for the creation schema */
    DC_NEED_EXTENSION, /* CREATE EXTENSION name */
    DC_NEED_DATABASE,  /* CREATE on the database (CREATE SCHEMA name) */
} dc_need_kind_t;

typedef struct dc_need {
    dc_need_kind_t kind;
    char *migration;    /* the migration's directory name */
    char what[48];      /* the statement: "CREATE INDEX", "ALTER TABLE", "INSERT", ... */
    char *schema;       /* as written (case kept); NULL: unqualified, on the search_path */
    char *name;         /* the relation, the object created, or the extension */
    char privilege[16]; /* DC_NEED_PRIVILEGE: "INSERT", "REFERENCES", ... */
    bool missing_ok;    /* IF EXISTS / IF NOT EXISTS: the object's absence is not an error */
} dc_need_t;

/* A relation or schema the pending migrations create: what they then do to it needs nothing
 * more (the role will own it). */
typedef struct dc_need_name {
    char *schema; /* NULL: unqualified (matches the name in any schema) */
    char *name;
    /* Created IF NOT EXISTS (or OR REPLACE): one of that name may exist already, someone
     * else's; what follows needs its privileges then, and nothing when it does not exist. */
    bool maybe;
} dc_need_name_t;

typedef struct dc_needs {
    dc_need_t *items;
    size_t count;
    dc_need_name_t *created; /* relations (and indexes) created so far */
    size_t created_count;
    char **schemas; /* schemas created so far */
    size_t schema_count;
} dc_needs_t;

/* Adds the needs of one migration's statements, in order, to needs (which remembers what the
 * earlier migrations created). An SQL syntax error names the migration. */
int dc_needs_collect(dc_needs_t *needs, const char *migration, const char *sql, dc_error_t *err);
void dc_needs_free(dc_needs_t *needs);
/* Whether the pending migrations create that schema (the role will own it). */
bool dc_needs_schema_created(const dc_needs_t *needs, const char *schema);

#endif
