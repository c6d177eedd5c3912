/* Snapshot ids, tags, member names and store paths: the strict patterns every name read from
 * a user, a manifest or a store listing must match before it is used. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/snapshot.h"
#include "deployctl/util.h"

const char DC_MEMBER_PRE_DATA[] = "schema/pre-data.sql";
const char DC_MEMBER_POST_DATA[] = "schema/post-data.sql";

/* Suffixes of the first id of a second start in the lower half, so that later ids of the same
 * second have room above it (see dc_snapshot_id_new_after). */
#define FIRST_SUFFIX_MAX 0x7fffu
#define NEXT_SUFFIX_STEP 0x100u

static void format_id(time_t t, unsigned suffix, char out[DC_SNAPSHOT_ID_LEN + 1])
{
    struct tm tm;
    char stamp[17];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, DC_SNAPSHOT_ID_LEN + 1, "%s-%04x", stamp, suffix & 0xffffu);
}

static unsigned random_below(unsigned n)
{
    uint8_t rnd[2];
    RAND_bytes(rnd, sizeof(rnd));
    return ((unsigned)rnd[0] << 8 | rnd[1]) % n;
}

void dc_snapshot_id_new(time_t t, char out[DC_SNAPSHOT_ID_LEN + 1])
{
    format_id(t, random_below(FIRST_SUFFIX_MAX + 1), out);
}

bool dc_snapshot_id_new_after(time_t t, const char *after, char out[DC_SNAPSHOT_ID_LEN + 1])
{
    format_id(t, 0, out);
    if (after == NULL || !dc_snapshot_id_valid(after) || strncmp(after, out, 16) != 0) {
        dc_snapshot_id_new(t, out);
        return true;
    }
    unsigned floor = (unsigned)strtoul(after + 17, NULL, 16);
    if (floor >= 0xffffu)
        return false;
    unsigned room = 0xffffu - floor;
    format_id(t, floor + 1 + random_below(room < NEXT_SUFFIX_STEP ? room : NEXT_SUFFIX_STEP), out);
    return true;
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

static int digits_at(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int dc_snapshot_id_time(const char *id, time_t *out)
{
    if (!dc_snapshot_id_valid(id))
        return -1;
    struct tm tm = {0};
    tm.tm_year = digits_at(id, 4) - 1900;
    tm.tm_mon = digits_at(id + 4, 2) - 1;
    tm.tm_mday = digits_at(id + 6, 2);
    tm.tm_hour = digits_at(id + 9, 2);
    tm.tm_min = digits_at(id + 11, 2);
    tm.tm_sec = digits_at(id + 13, 2);
    /* timegm() would quietly turn "month 13" into next January: refuse such ids instead. */
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    struct tm check = tm;
    time_t t = timegm(&check);
    if (t == (time_t)-1 || check.tm_mday != tm.tm_mday)
        return -1; /* February 30th */
    *out = t;
    return 0;
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
