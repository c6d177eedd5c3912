/* The catalog: which snapshots a store holds (complete or not), resolving "latest" and ids,
 * and removing what backups that died left behind. It reads keys, never trusts them: only
 * <database-dir>/<valid id>/<known object> is recognised. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/snapshot.h"
#include "deployctl/util.h"

#define MANIFEST_OBJECT "manifest.json"
#define ARCHIVE_OBJECT  "snapshot.tar"
#define MANIFEST_MAX    (256u * 1024 * 1024)
#define PIN_PREFIX      "pin-"

static dc_snapshot_info_t *find_or_add(dc_snapshot_list_t *list, const char *dir, const char *id)
{
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->items[i].id, id) == 0 && strcmp(list->items[i].database_dir, dir) == 0)
            return &list->items[i];
    }
    list->items = dc_realloc(list->items, (list->count + 1) * sizeof(*list->items));
    dc_snapshot_info_t *info = &list->items[list->count++];
    memset(info, 0, sizeof(*info));
    snprintf(info->database_dir, sizeof(info->database_dir), "%s", dir);
    snprintf(info->id, sizeof(info->id), "%s", id);
    return info;
}

/* Splits "<dir>/<id>/<object>" and checks each part. */
static bool split_key(const char *key, char *dir, size_t dir_size, char *id, const char **object)
{
    const char *s1 = strchr(key, '/');
    if (s1 == NULL || (size_t)(s1 - key) >= dir_size)
        return false;
    const char *s2 = strchr(s1 + 1, '/');
    if (s2 == NULL || s2 - s1 - 1 != DC_SNAPSHOT_ID_LEN || strchr(s2 + 1, '/') != NULL)
        return false;
    memcpy(dir, key, (size_t)(s1 - key));
    dir[s1 - key] = '\0';
    memcpy(id, s1 + 1, DC_SNAPSHOT_ID_LEN);
    id[DC_SNAPSHOT_ID_LEN] = '\0';
    *object = s2 + 1;
    return dc_snapshot_id_valid(id);
}

static int collect(void *ctx, const dc_store_entry_t *entry, dc_error_t *err)
{
    (void)err;
    dc_snapshot_list_t *list = ctx;
    char dir[256], id[DC_SNAPSHOT_ID_LEN + 1];
    const char *object;
    if (!split_key(entry->key, dir, sizeof(dir), id, &object))
        return 0;
    dc_snapshot_info_t *info = find_or_add(list, dir, id);
    info->stored_bytes += entry->size;
    if (strcmp(object, MANIFEST_OBJECT) == 0)
        info->complete = true;
    /* verify-YYYYMMDDTHHMMSSZ.json: the newest sorts last. */
    if (dc_str_starts_with(object, "verify-") && dc_str_ends_with(object, ".json") &&
        strlen(object) < sizeof(info->verify_object) && strcmp(object, info->verify_object) > 0)
        snprintf(info->verify_object, sizeof(info->verify_object), "%s", object);
    if (dc_str_starts_with(object, PIN_PREFIX) &&
        dc_snapshot_tag_valid(object + strlen(PIN_PREFIX))) {
        if (info->pin_count++ == 0 || strcmp(object, info->pin_object) < 0)
            snprintf(info->pin_object, sizeof(info->pin_object), "%s", object);
    }
    return 0;
}

static int by_id(const void *a, const void *b)
{
    const dc_snapshot_info_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->database_dir, y->database_dir);
}

static void load_manifest(dc_store_t *store, dc_snapshot_info_t *info)
{
    char *key = dc_sprintf("%s/%s/%s", info->database_dir, info->id, MANIFEST_OBJECT);
    char *text = NULL;
    size_t len = 0;
    dc_error_t err;
    if (dc_store_read_all(store, key, MANIFEST_MAX, &text, &len, &err) != 0 ||
        dc_manifest_from_json(text, len, &info->manifest, &err) != 0) {
        info->manifest_error = dc_strdup(err.message);
    } else if (strcmp(info->manifest->id, info->id) != 0) {
        info->manifest_error = dc_sprintf("manifest id %s does not match its location %s",
                                          info->manifest->id, info->id);
        dc_manifest_free(info->manifest);
        info->manifest = NULL;
    }
    free(text);
    free(key);
}

/* The snapshots in the store, from their keys alone (no manifest is read), oldest first. */
static int scan(dc_store_t *store, const char *database, dc_snapshot_list_t *out, dc_error_t *err)
{
    char dir[256] = "";
    memset(out, 0, sizeof(*out));
    if (database != NULL)
        dc_snapshot_database_dir(database, dir, sizeof(dir));
    if (dc_store_list(store, dir, collect, out, err) != 0) {
        dc_catalog_list_free(out);
        return -1;
    }
    if (out->count > 1)
        qsort(out->items, out->count, sizeof(*out->items), by_id);
    return 0;
}

static char *lease_name(const dc_snapshot_info_t *info)
{
    return dc_sprintf("%s.%s", info->database_dir, info->id);
}

/* The newest verification's outcome. */
static void load_verification(dc_store_t *store, dc_snapshot_info_t *info)
{
    if (info->verify_object[0] == '\0')
        return;
    char *key = dc_sprintf("%s/%s/%s", info->database_dir, info->id, info->verify_object);
    char *text = NULL;
    size_t len = 0;
    dc_error_t err;
    if (dc_store_read_all(store, key, 1024 * 1024, &text, &len, &err) == 0) {
        json_t *root = json_loadb(text, len, 0, NULL);
        info->verified = json_is_true(json_object_get(root, "ok"));
        info->verified_deep = json_is_true(json_object_get(root, "deep"));
        const char *at = json_string_value(json_object_get(root, "verified_at"));
        snprintf(info->verified_at, sizeof(info->verified_at), "%s", at ? at : "");
        json_decref(root);
    }
    free(text);
    free(key);
}

int dc_catalog_list(dc_store_t *store, const char *database, dc_snapshot_list_t *out,
                    dc_error_t *err)
{
    if (scan(store, database, out, err) != 0)
        return -1;
    for (size_t i = 0; i < out->count; i++) {
        dc_snapshot_info_t *info = &out->items[i];
        if (info->complete) {
            load_manifest(store, info);
            load_verification(store, info);
        } else {
            char *lease = lease_name(info);
            info->in_progress = dc_store_lease_is_held(store, lease);
            free(lease);
        }
    }
    return 0;
}

void dc_catalog_list_free(dc_snapshot_list_t *list)
{
    for (size_t i = 0; i < list->count; i++) {
        dc_manifest_free(list->items[i].manifest);
        free(list->items[i].manifest_error);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

int dc_catalog_load(dc_store_t *store, const char *database, const char *ref, dc_manifest_t **out,
                    char database_dir_out[256], dc_error_t *err)
{
    dc_snapshot_list_t list;
    bool latest = strcmp(ref, "latest") == 0;
    if (!latest && !dc_snapshot_id_valid(ref))
        return dc_error_set(err,
                            "'%s' is not a snapshot id (expected YYYYMMDDTHHMMSSZ-xxxx or "
                            "'latest'); run 'deployctl snapshots' to see them",
                            ref);
    if (scan(store, database, &list, err) != 0)
        return -1;
    /* Newest first; only the manifests looked at are read. */
    dc_snapshot_info_t *found = NULL;
    for (size_t i = list.count; i > 0 && found == NULL; i--) {
        dc_snapshot_info_t *info = &list.items[i - 1];
        if (latest) {
            if (info->complete) {
                load_manifest(store, info);
                const char *tag = info->manifest ? info->manifest->tag : NULL;
                if (info->manifest != NULL && (tag == NULL || strcmp(tag, DC_TAG_PRE_RESTORE)))
                    found = info;
            }
        } else if (strcmp(info->id, ref) == 0) {
            found = info;
            if (info->complete)
                load_manifest(store, info);
        }
    }
    int rc = -1;
    if (found == NULL && latest)
        dc_error_set(err,
                     "no complete snapshot of database %s in store %s (pre-restore snapshots "
                     "are never 'latest': name one by its id); take one with 'deployctl backup'",
                     database ? database : "(any)", dc_store_url(store));
    else if (found == NULL)
        dc_error_set(err,
                     "unknown snapshot %s for database %s in store %s; run 'deployctl "
                     "snapshots' to see them",
                     ref, database ? database : "(any)", dc_store_url(store));
    else if (!found->complete) {
        char *lease = lease_name(found);
        bool running = dc_store_lease_is_held(store, lease);
        free(lease);
        dc_error_set(err,
                     "snapshot %s is incomplete (it has no manifest: its backup %s) and cannot "
                     "be used",
                     ref, running ? "is still running" : "did not finish");
    } else if (found->manifest == NULL)
        dc_error_set(err, "snapshot %s cannot be read: %s", ref, found->manifest_error);
    else {
        if (latest)
            dc_log_info("latest snapshot of %s: %s (%s%s%s)", database ? database : "(any)",
                        found->id, found->manifest->created_at,
                        found->manifest->tag ? ", tag " : "",
                        found->manifest->tag ? found->manifest->tag : "");
        *out = found->manifest;
        found->manifest = NULL;
        snprintf(database_dir_out, 256, "%s", found->database_dir);
        rc = 0;
    }
    dc_catalog_list_free(&list);
    return rc;
}

/* Removes one snapshot without a manifest, if its writer is gone. The cleaner takes the
 * writer's lease itself and looks for the manifest again while holding it: a writer releases
 * its lease only after its manifest is durable, so a snapshot committed meanwhile is seen. */
int dc_catalog_remove_abandoned(dc_store_t *store, const dc_snapshot_info_t *info, bool *removed,
                                dc_error_t *err)
{
    dc_store_lease_t *lease = NULL;
    dc_error_t busy;
    char *name = lease_name(info);
    *removed = false;
    int rc = 0;
    if (dc_store_lease_acquire(store, name, &lease, &busy) == 0) {
        char *manifest = dc_sprintf("%s/%s/%s", info->database_dir, info->id, MANIFEST_OBJECT);
        bool committed = false;
        rc = dc_store_exists(store, manifest, &committed, err);
        if (rc == 0 && !committed) {
            char *prefix = dc_sprintf("%s/%s", info->database_dir, info->id);
            rc = dc_store_delete_prefix(store, prefix, err);
            *removed = rc == 0;
            free(prefix);
        }
        free(manifest);
        dc_store_lease_release(lease);
    }
    free(name);
    return rc;
}

int dc_catalog_clean_abandoned(dc_store_t *store, int *removed_temporary, int *removed_snapshots,
                               dc_error_t *err)
{
    dc_snapshot_list_t list;
    *removed_snapshots = 0;
    if (dc_store_cleanup_temporary(store, removed_temporary, err) != 0)
        return -1;
    if (scan(store, NULL, &list, err) != 0)
        return -1;
    dc_fault_point("clean-after-scan");
    int rc = 0;
    for (size_t i = 0; i < list.count && rc == 0; i++) {
        bool removed = false;
        if (!list.items[i].complete)
            rc = dc_catalog_remove_abandoned(store, &list.items[i], &removed, err);
        if (removed)
            (*removed_snapshots)++;
    }
    dc_catalog_list_free(&list);
    return rc;
}

/* The objects of one snapshot, with what deleting it needs to know. */
typedef struct snapshot_objects {
    char **keys;
    size_t count;
    bool has_manifest;
    bool pinned;
} snapshot_objects_t;

static int collect_object(void *ctx, const dc_store_entry_t *entry, dc_error_t *err)
{
    (void)err;
    snapshot_objects_t *o = ctx;
    const char *slash = strrchr(entry->key, '/');
    const char *object = slash ? slash + 1 : entry->key;
    if (strcmp(object, MANIFEST_OBJECT) == 0) {
        o->has_manifest = true;
        return 0; /* deleted first, on its own */
    }
    if (dc_str_starts_with(object, PIN_PREFIX))
        o->pinned = true;
    o->keys = dc_realloc(o->keys, (o->count + 1) * sizeof(char *));
    o->keys[o->count++] = dc_strdup(entry->key);
    return 0;
}

static void snapshot_objects_free(snapshot_objects_t *o)
{
    for (size_t i = 0; i < o->count; i++)
        free(o->keys[i]);
    free(o->keys);
}

int dc_catalog_delete_snapshot(dc_store_t *store, const char *database_dir, const char *id,
                               dc_error_t *err)
{
    if (!dc_snapshot_id_valid(id))
        return dc_error_set(err, "refusing to delete '%s': not a snapshot id", id);
    char *prefix = dc_sprintf("%s/%s", database_dir, id);
    snapshot_objects_t objects = {0};
    int rc = dc_store_list(store, prefix, collect_object, &objects, err);
    if (rc == 0 && objects.pinned)
        rc = dc_error_set(err, "snapshot %s was pinned while prune ran (see its %s* objects): kept",
                          id, PIN_PREFIX);
    if (rc == 0 && objects.has_manifest) {
        char *manifest = dc_sprintf("%s/%s", prefix, MANIFEST_OBJECT);
        rc = dc_store_delete(store, manifest, err);
        free(manifest);
        dc_fault_point("prune-after-manifest");
    }
    /* The archive before the rest, so what is left of an interrupted deletion is small. */
    for (size_t i = 0; i < objects.count && rc == 0; i++) {
        if (dc_str_ends_with(objects.keys[i], "/" ARCHIVE_OBJECT))
            rc = dc_store_delete(store, objects.keys[i], err);
    }
    for (size_t i = 0; i < objects.count && rc == 0; i++) {
        if (!dc_str_ends_with(objects.keys[i], "/" ARCHIVE_OBJECT))
            rc = dc_store_delete(store, objects.keys[i], err);
    }
    if (rc != 0)
        dc_error_prefix(err, "deleting snapshot %s/%s from store %s: ", database_dir, id,
                        dc_store_url(store));
    snapshot_objects_free(&objects);
    free(prefix);
    return rc;
}

static int pin_key(const char *database_dir, const char *id, const char *owner, char **key,
                   dc_error_t *err)
{
    if (!dc_snapshot_id_valid(id))
        return dc_error_set(err, "'%s' is not a snapshot id", id);
    if (!dc_snapshot_tag_valid(owner))
        return dc_error_set(err, "pin owner '%s' is not valid: use 1-32 of [a-z0-9._-]", owner);
    *key = dc_sprintf("%s/%s/%s%s", database_dir, id, PIN_PREFIX, owner);
    return 0;
}

int dc_snapshot_pin(dc_store_t *store, const char *database_dir, const char *id, const char *owner,
                    const char *note, dc_error_t *err)
{
    char *key = NULL;
    if (pin_key(database_dir, id, owner, &key, err) != 0)
        return -1;
    char at[32];
    dc_format_rfc3339(time(NULL), at, sizeof(at));
    json_t *o =
        json_pack("{s:s, s:s, s:s}", "owner", owner, "note", note ? note : "", "pinned_at", at);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    dc_store_writer_t *w = NULL;
    int rc = dc_store_writer_open(store, key, &w, err);
    if (rc == 0 && (rc = dc_store_writer_write(w, text, strlen(text), err)) != 0)
        dc_store_writer_abort(w);
    else if (rc == 0)
        rc = dc_store_writer_commit(w, err);
    free(text);
    free(key);
    return rc;
}

int dc_snapshot_unpin(dc_store_t *store, const char *database_dir, const char *id,
                      const char *owner, dc_error_t *err)
{
    char *key = NULL;
    if (pin_key(database_dir, id, owner, &key, err) != 0)
        return -1;
    int rc = dc_store_delete(store, key, err);
    free(key);
    return rc;
}
