/* Snapshot ids, tags, member names and store paths: the strict patterns every name read from
 * a user, a manifest or a store listing must match before it is used. */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "deployctl/snapshot.h"
#include "deployctl/util.h"

const char DC_MEMBER_PRE_DATA[] = "schema/pre-data.sql";
const char DC_MEMBER_POST_DATA[] = "schema/post-data.sql";

void dc_snapshot_id_new(time_t t, char out[DC_SNAPSHOT_ID_LEN + 1])
{
    struct tm tm;
    uint8_t rnd[2];
    char hex[5];
    char stamp[17];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    RAND_bytes(rnd, sizeof(rnd));
    dc_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(out, DC_SNAPSHOT_ID_LEN + 1, "%s-%s", stamp, hex);
}

static bool all_in(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0' || strchr(set, s[i]) == NULL)
            return false;
    }
    return true;
}

bool dc_snapshot_id_valid(const char *id)
{
    static const char digits[] = "0123456789";
    if (id == NULL || strlen(id) != DC_SNAPSHOT_ID_LEN)
        return false;
    return all_in(id, 8, digits) && id[8] == 'T' && all_in(id + 9, 6, digits) && id[15] == 'Z' &&
           id[16] == '-' && all_in(id + 17, 4, "0123456789abcdef");
}

bool dc_snapshot_tag_valid(const char *tag)
{
    size_t n = tag ? strlen(tag) : 0;
    if (n == 0 || n > 32)
        return false;
    if (!all_in(tag, 1, "abcdefghijklmnopqrstuvwxyz0123456789"))
        return false;
    return all_in(tag, n, "abcdefghijklmnopqrstuvwxyz0123456789._-");
}

void dc_snapshot_database_dir(const char *database, char *out, size_t out_size)
{
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)database; *p && j + 4 < out_size; p++) {
        bool safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                    (*p == '.' && p != (const unsigned char *)database);
        if (safe) {
            out[j++] = (char)*p;
        } else {
            snprintf(out + j, out_size - j, "%%%02X", *p);
            j += 3;
        }
    }
    out[j] = '\0';
}

void dc_snapshot_chunk_member(unsigned table_seq, unsigned chunk_seq, char out[DC_MEMBER_MAX])
{
    snprintf(out, DC_MEMBER_MAX, "data/%u.%u.copy.zst", table_seq, chunk_seq);
}

void dc_snapshot_blob_member(uint32_t oid, unsigned chunk_seq, char out[DC_MEMBER_MAX])
{
    snprintf(out, DC_MEMBER_MAX, "blobs/%u.%u.zst", (unsigned)oid, chunk_seq);
}
