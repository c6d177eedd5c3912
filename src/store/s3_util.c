/* Pure helpers of the s3:// driver: a small, careful reader of the few XML elements S3 answers
 * with (list pages, upload ids, errors), URL building and the retry policy. No I/O: the HTTP
 * side is store_s3.c. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/util.h"
#include "s3_intern.h"

/* ---- XML ---- */

static bool name_ends_tag(char c)
{
    return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool dc_s3_xml_next(const char **cursor, const char *end, const char *name, const char **inner,
                    size_t *inner_len)
{
    size_t n = strlen(name);
    const char *p = *cursor;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (lt == NULL || (size_t)(end - lt) < n + 2)
            return false;
        if (strncmp(lt + 1, name, n) != 0 || !name_ends_tag(lt[1 + n])) {
            p = lt + 1;
            continue;
        }
        const char *gt = memchr(lt, '>', (size_t)(end - lt));
        if (gt == NULL)
            return false;
        if (gt[-1] == '/') { /* <name/> */
            *inner = gt + 1;
            *inner_len = 0;
            *cursor = gt + 1;
            return true;
        }
        const char *body = gt + 1;
        /* the closing tag </name> */
        for (const char *q = body; q < end;) {
            const char *c = memchr(q, '<', (size_t)(end - q));
            if (c == NULL || (size_t)(end - c) < n + 3)
                return false;
            if (c[1] == '/' && strncmp(c + 2, name, n) == 0 &&
                (c[2 + n] == '>' || c[2 + n] == ' ')) {
                const char *close = memchr(c, '>', (size_t)(end - c));
                if (close == NULL)
                    return false;
                *inner = body;
                *inner_len = (size_t)(c - body);
                *cursor = close + 1;
                return true;
            }
            q = c + 1;
        }
        return false;
    }
    return false;
}

static void put_utf8(dc_buf_t *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    dc_buf_append(b, u, n);
}

char *dc_s3_xml_unescape(const char *s, size_t len)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    dc_buf_t b = {0};
    const char *end = s + len;
    for (const char *p = s; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL) {
            dc_buf_append(&b, p, (size_t)(end - p));
            break;
        }
        dc_buf_append(&b, p, (size_t)(amp - p));
        const char *semi = memchr(amp, ';', (size_t)(end - amp));
        if (semi == NULL || semi - amp > 12) {
            dc_buf_free(&b);
            return NULL;
        }
        bool ok = false;
        if (amp[1] == '#') {
            char digits[16];
            bool hex = amp[2] == 'x' || amp[2] == 'X';
            const char *d = amp + (hex ? 3 : 2);
            size_t dn = (size_t)(semi - d);
            if (dn > 0 && dn < sizeof(digits)) {
                memcpy(digits, d, dn);
                digits[dn] = '\0';
                char *stop;
                unsigned long cp = strtoul(digits, &stop, hex ? 16 : 10);
                if (*stop == '\0' && cp > 0 && cp <= 0x10FFFF) {
                    put_utf8(&b, cp);
                    ok = true;
                }
            }
        } else {
            for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
                size_t nn = strlen(named[i].name);
                if ((size_t)(semi - amp) == nn && strncmp(amp + 1, named[i].name, nn) == 0) {
                    dc_buf_append(&b, &named[i].c, 1);
                    ok = true;
                }
            }
        }
        if (!ok) {
            dc_buf_free(&b);
            return NULL;
        }
        p = semi + 1;
    }
    dc_buf_append(&b, "", 1);
    return b.data;
}

char *dc_s3_xml_escape(const char *s)
{
    dc_buf_t b = {0};
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&':
            dc_buf_append(&b, "&amp;", 5);
            break;
        case '<':
            dc_buf_append(&b, "&lt;", 4);
            break;
        case '>':
            dc_buf_append(&b, "&gt;", 4);
            break;
        case '"':
            dc_buf_append(&b, "&quot;", 6);
            break;
        default:
            dc_buf_append(&b, p, 1);
        }
    }
    dc_buf_append(&b, "", 1);
    return b.data;
}

char *dc_s3_xml_text(const char *xml, size_t len, const char *name)
{
    const char *cursor = xml, *inner;
    size_t n;
    if (!dc_s3_xml_next(&cursor, xml + len, name, &inner, &n))
        return NULL;
    return dc_s3_xml_unescape(inner, n);
}

time_t dc_s3_parse_time(const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (text == NULL || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
                               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return (time_t)-1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
        return (time_t)-1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static bool is_root(const char *xml, size_t len, const char *root)
{
    const char *cursor = xml, *inner;
    size_t n;
    return dc_s3_xml_next(&cursor, xml + len, root, &inner, &n);
}

static bool text_is_true(const char *xml, size_t len, const char *name)
{
    char *t = dc_s3_xml_text(xml, len, name);
    bool yes = t != NULL && strcmp(t, "true") == 0;
    free(t);
    return yes;
}

int dc_s3_parse_list(const char *xml, size_t len, dc_s3_list_page_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!is_root(xml, len, "ListBucketResult"))
        return -1;
    const char *cursor = xml, *end = xml + len, *inner;
    size_t n;
    while (dc_s3_xml_next(&cursor, end, "Contents", &inner, &n)) {
        char *key = dc_s3_xml_text(inner, n, "Key");
        char *size = dc_s3_xml_text(inner, n, "Size");
        char *mtime = dc_s3_xml_text(inner, n, "LastModified");
        if (key != NULL) {
            out->items = dc_realloc(out->items, (out->count + 1) * sizeof(*out->items));
            struct dc_s3_list_item *it = &out->items[out->count++];
            it->key = key;
            it->size = size ? strtoull(size, NULL, 10) : 0;
            it->mtime = dc_s3_parse_time(mtime);
            if (it->mtime == (time_t)-1)
                it->mtime = 0;
            key = NULL;
        }
        free(key);
        free(size);
        free(mtime);
    }
    /* The flag and token follow the contents in S3's answers, but look at the whole body
     * outside <Contents> for them: only the top level holds these names. */
    out->truncated = text_is_true(xml, len, "IsTruncated");
    out->next_token = dc_s3_xml_text(xml, len, "NextContinuationToken");
    if (out->truncated && (out->next_token == NULL || *out->next_token == '\0')) {
        dc_s3_list_page_free(out);
        return -1; /* a truncated page must say where to go on */
    }
    return 0;
}

void dc_s3_list_page_free(dc_s3_list_page_t *page)
{
    for (size_t i = 0; i < page->count; i++)
        free(page->items[i].key);
    free(page->items);
    free(page->next_token);
    memset(page, 0, sizeof(*page));
}

int dc_s3_parse_uploads(const char *xml, size_t len, dc_s3_uploads_page_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!is_root(xml, len, "ListMultipartUploadsResult"))
        return -1;
    const char *cursor = xml, *end = xml + len, *inner;
    size_t n;
    while (dc_s3_xml_next(&cursor, end, "Upload", &inner, &n)) {
        char *key = dc_s3_xml_text(inner, n, "Key");
        char *id = dc_s3_xml_text(inner, n, "UploadId");
        char *at = dc_s3_xml_text(inner, n, "Initiated");
        if (key != NULL && id != NULL) {
            out->items = dc_realloc(out->items, (out->count + 1) * sizeof(*out->items));
            struct dc_s3_upload_item *it = &out->items[out->count++];
            it->key = key;
            it->upload_id = id;
            it->initiated = dc_s3_parse_time(at);
            key = id = NULL;
        }
        free(key);
        free(id);
        free(at);
    }
    out->truncated = text_is_true(xml, len, "IsTruncated");
    out->next_key_marker = dc_s3_xml_text(xml, len, "NextKeyMarker");
    out->next_upload_id_marker = dc_s3_xml_text(xml, len, "NextUploadIdMarker");
    if (out->truncated && (out->next_key_marker == NULL || *out->next_key_marker == '\0')) {
        dc_s3_uploads_page_free(out);
        return -1;
    }
    return 0;
}

void dc_s3_uploads_page_free(dc_s3_uploads_page_t *page)
{
    for (size_t i = 0; i < page->count; i++) {
        free(page->items[i].key);
        free(page->items[i].upload_id);
    }
    free(page->items);
    free(page->next_key_marker);
    free(page->next_upload_id_marker);
    memset(page, 0, sizeof(*page));
}

/* ---- URLs ---- */

int dc_s3_parse_url(const char *url, char **bucket, char **prefix, const char **why)
{
    if (strncmp(url, "s3://", 5) != 0) {
        *why = "it does not start with s3://";
        return -1;
    }
    const char *b = url + 5;
    size_t bn = strcspn(b, "/");
    if (bn < 3 || bn > 63) {
        *why = "a bucket name has 3 to 63 characters";
        return -1;
    }
    for (size_t i = 0; i < bn; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            *why = "a bucket name has only lowercase letters, digits, '-' and '.'";
            return -1;
        }
    }
    const char *p = b + bn;
    while (*p == '/')
        p++;
    char *pre = dc_strdup(p);
    size_t pn = strlen(pre);
    while (pn > 0 && pre[pn - 1] == '/')
        pre[--pn] = '\0';
    /* "." and ".." segments too: an HTTP client may resolve them in the object's URL path
     * (path-style: out of the bucket) while the request is signed for the literal key. */
    char *dotted = dc_sprintf("/%s/", pre);
    bool dots = strstr(dotted, "/./") != NULL || strstr(dotted, "/../") != NULL;
    free(dotted);
    if (strstr(pre, "//") != NULL || strchr(pre, '?') != NULL || strchr(pre, '#') != NULL || dots) {
        free(pre);
        *why = "the prefix must be '/'-separated names without '?', '#', '.' or '..'";
        return -1;
    }
    *bucket = dc_strndup(b, bn);
    *prefix = pre;
    return 0;
}

char *dc_s3_uri_encode(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    dc_buf_t b = {0};
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            dc_buf_append(&b, p, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            dc_buf_append(&b, e, 3);
        }
    }
    dc_buf_append(&b, "", 1);
    return b.data;
}

char *dc_s3_object_url(const char *endpoint, const char *bucket, bool path_style, const char *key)
{
    char *path = dc_s3_uri_encode(key ? key : "", true);
    char *url;
    if (path_style) {
        url = dc_sprintf("%s/%s/%s", endpoint, bucket, path);
    } else {
        const char *host = strstr(endpoint, "://");
        size_t scheme_len = host ? (size_t)(host - endpoint) : 0;
        host = host ? host + 3 : endpoint;
        url = dc_sprintf("%.*s://%s.%s/%s", (int)scheme_len, endpoint, bucket, host, path);
    }
    free(path);
    return url;
}

char *dc_s3_full_key(const char *prefix, const char *key)
{
    if (prefix == NULL || *prefix == '\0')
        return dc_strdup(key);
    if (key == NULL || *key == '\0')
        return dc_strdup(prefix);
    return dc_sprintf("%s/%s", prefix, key);
}

/* ---- errors and retries ---- */

bool dc_s3_retryable(int curl_code, long status, const char *s3_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST: /* a DNS hiccup; bounded by the number of tries */
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return true;
    default:
        return false;
    }
    /* 501 Not Implemented (and 505) say what the server will never do: trying again only
     * waits (s3rver answers ListMultipartUploads so, and every backup paid ~2 s for it). */
    if (status == 501 || status == 505 ||
        (s3_code != NULL && strcmp(s3_code, "NotImplemented") == 0))
        return false;
    if (status == 429 || status >= 500)
        return true;
    if (s3_code != NULL &&
        (strcmp(s3_code, "RequestTimeout") == 0 || strcmp(s3_code, "SlowDown") == 0 ||
         strcmp(s3_code, "InternalError") == 0 || strcmp(s3_code, "ServiceUnavailable") == 0 ||
         strcmp(s3_code, "RequestTimeTooSkewed") == 0))
        return true;
    return false;
}

uint64_t dc_s3_backoff_ms(int attempt, uint64_t base_ms, uint64_t cap_ms, uint32_t random)
{
    if (attempt < 1)
        attempt = 1;
    uint64_t d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    uint64_t half = d / 2;
    return half + (half * (uint64_t)random) / UINT32_MAX;
}

size_t dc_s3_part_size(size_t configured, uint64_t expected)
{
    const uint64_t mib = 1024 * 1024, smallest = 8 * mib, largest = 5 * 1024 * mib;
    if (configured != 0)
        return configured;
    uint64_t per_part = expected / 5000 + (expected % 5000 != 0);
    per_part = (per_part / mib + (per_part % mib != 0)) * mib;
    if (per_part < smallest)
        per_part = smallest;
    return (size_t)(per_part < largest ? per_part : largest);
}

bool dc_s3_lease_live(time_t server_now, time_t written, time_t expires, time_t local_now,
                      int ttl_s)
{
    if (server_now > 0 && written > 0)
        return server_now - written < ttl_s;
    return expires > local_now;
}
