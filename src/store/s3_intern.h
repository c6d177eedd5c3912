/* The pure parts of the s3:// driver, apart so unit tests can call them: the few XML elements
 * S3 answers with, URL and key building, error classification and the retry schedule.
 * No I/O here; store_s3.c does the HTTP. Only the s3 driver and its tests include this file. */
#ifndef DEPLOYCTL_S3_INTERN_H
#define DEPLOYCTL_S3_INTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- XML (S3 responses only: no DTDs, no namespaces prefixes, no CDATA needed) ---- */

/* Finds the next element <name ...>…</name> (or <name/>) at or after *cursor, before end.
 * On success sets its inner text span and moves *cursor past it. Nested elements of the same
 * name are not expected in S3 answers and not supported. */
bool dc_s3_xml_next(const char **cursor, const char *end, const char *name, const char **inner,
                    size_t *inner_len);
/* The decoded text of the first <name> in [xml, xml+len), or NULL (caller frees). */
char *dc_s3_xml_text(const char *xml, size_t len, const char *name);
/* Decodes &amp; &lt; &gt; &quot; &apos; &#N; &#xH; (caller frees); NULL on a malformed one. */
char *dc_s3_xml_unescape(const char *s, size_t len);
/* Escapes text for an XML element (caller frees). */
char *dc_s3_xml_escape(const char *s);

typedef struct dc_s3_list_page {
    struct dc_s3_list_item {
        char *key;
        uint64_t size;
        time_t mtime;
    } * items;
    size_t count;
    bool truncated;
    char *next_token; /* NextContinuationToken */
} dc_s3_list_page_t;
/* Parses a ListObjectsV2 answer; -1 when it is not one. */
int dc_s3_parse_list(const char *xml, size_t len, dc_s3_list_page_t *out);
void dc_s3_list_page_free(dc_s3_list_page_t *page);

typedef struct dc_s3_uploads_page {
    struct dc_s3_upload_item {
        char *key;
        char *upload_id;
        time_t initiated;
    } * items;
    size_t count;
    bool truncated;
    char *next_key_marker;
    char *next_upload_id_marker;
} dc_s3_uploads_page_t;
/* Parses a ListMultipartUploads answer; -1 when it is not one. */
int dc_s3_parse_uploads(const char *xml, size_t len, dc_s3_uploads_page_t *out);
void dc_s3_uploads_page_free(dc_s3_uploads_page_t *page);

/* "2026-11-29T18:54:40.000Z" -> time_t (UTC); -1 when malformed. */
time_t dc_s3_parse_time(const char *text);

/* ---- URLs ---- */

/* Splits "s3://bucket/prefix/" into bucket and prefix (no leading or trailing '/'); -1 and a
 * reason when the URL is not one. */
int dc_s3_parse_url(const char *url, char **bucket, char **prefix, const char **why);
/* Percent-encodes everything but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash), as SigV4's
 * canonical form wants (caller frees). */
char *dc_s3_uri_encode(const char *s, bool keep_slash);
/* The URL of an object (key NULL or "": the bucket itself) without a query:
 * path style:   <endpoint>/<bucket>/<key>
 * virtual host: <scheme>://<bucket>.<host>/<key>
 * endpoint is "scheme://host[:port]" without a trailing '/'. Caller frees. */
char *dc_s3_object_url(const char *endpoint, const char *bucket, bool path_style, const char *key);
/* prefix "/" key, or key alone when there is no prefix (caller frees). */
char *dc_s3_full_key(const char *prefix, const char *key);

/* ---- errors and retries ---- */

/* Whether a request should be tried again: curl_code is a CURLcode (0 when the HTTP exchange
 * completed), status the HTTP status, s3_code the <Code> of an error answer (or NULL). */
bool dc_s3_retryable(int curl_code, long status, const char *s3_code);
/* Milliseconds to wait before try number `attempt` + 1 (attempt counts from 1): exponential
 * from base_ms, capped at cap_ms, "equal jitter": half fixed, half from random (0..2^32-1). */
uint64_t dc_s3_backoff_ms(int attempt, uint64_t base_ms, uint64_t cap_ms, uint32_t random);
/* The part size of a multipart upload: `configured` when it is not 0; otherwise 8 MiB, or
 * more when an object of `expected` bytes would need over 5,000 parts (half of S3's 10,000,
 * a margin for a low estimate), in whole MiB. One size for every part of an upload: R2 and
 * Garage refuse uploads whose non-trailing parts differ in size. */
size_t dc_s3_part_size(size_t configured, uint64_t expected);

/* ---- leases ---- */

/* Whether a lease is alive. Judged on the server's clock alone when the server gave both its
 * `server_now` (the Date of the answer that read the lease) and the lease's `written` (its
 * Last-Modified): alive while younger than ttl_s. The two machines' clocks then need not
 * agree. Only without those (0: absent) does it fall back to the holder's `expires` against
 * this machine's `local_now`. */
bool dc_s3_lease_live(time_t server_now, time_t written, time_t expires, time_t local_now,
                      int ttl_s);

#endif
