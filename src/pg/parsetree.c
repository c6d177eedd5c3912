/* Accessors for libpg_query's JSON parse trees (see deployctl/parsetree.h). */
#include <string.h>

#include "deployctl/parsetree.h"

json_t *dc_pt_get(json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

const char *dc_pt_str(json_t *obj, const char *key)
{
    json_t *v = dc_pt_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool dc_pt_eq(json_t *obj, const char *key, const char *want)
{
    const char *v = dc_pt_str(obj, key);
    return v != NULL && strcmp(v, want) == 0;
}

dc_pt_rel_t dc_pt_rangevar(json_t *rv)
{
    json_t *inner = dc_pt_get(rv, "RangeVar");
    if (inner != NULL)
        rv = inner;
    dc_pt_rel_t r = {dc_pt_str(rv, "schemaname"), dc_pt_str(rv, "relname")};
    return r;
}

static const char *sval(json_t *node)
{
    return dc_pt_str(dc_pt_get(node, "String"), "sval");
}

dc_pt_rel_t dc_pt_names(json_t *items, size_t trailing)
{
    dc_pt_rel_t r = {NULL, NULL};
    size_t n = json_array_size(items);
    if (n < trailing + 1)
        return r;
    r.name = sval(json_array_get(items, n - 1 - trailing));
    if (n >= trailing + 2)
        r.schema = sval(json_array_get(items, n - 2 - trailing));
    return r;
}
