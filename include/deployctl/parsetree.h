/* Reading libpg_query's JSON parse trees (jansson): the accessors lint, the migration runner and
 * check's privilege needs share. Every accessor takes NULL or a node of another type and then
 * returns NULL (or false). */
#ifndef DEPLOYCTL_PARSETREE_H
#define DEPLOYCTL_PARSETREE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A relation as the parser names it. */
typedef struct dc_pt_rel {
    const char *schema; /* NULL: unqualified */
    const char *name;
} dc_pt_rel_t;

json_t *dc_pt_get(json_t *obj, const char *key);
const char *dc_pt_str(json_t *obj, const char *key);
bool dc_pt_eq(json_t *obj, const char *key, const char *want);
/* A RangeVar, bare ("relation": {...}) or wrapped as {"RangeVar": {...}}. */
dc_pt_rel_t dc_pt_rangevar(json_t *rv);
/* A qualified name list [[catalog.]schema.]name ({"String": {"sval": ...}} items), less
 * `trailing` names after it (a column's or constraint's after its table's). */
dc_pt_rel_t dc_pt_names(json_t *items, size_t trailing);

#endif
