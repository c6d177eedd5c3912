/* s3://bucket/prefix store driver: any S3-compatible service through libcurl, signed with SigV4
 * (CURLOPT_AWS_SIGV4 plus our own x-amz-content-sha256 header). Writers stream a multipart
 * upload, two parts in flight while the next fills (a small object is one PUT), readers stream
 * GETs (ranged, resumed after a failure), every request is retried with backoff on transient
 * errors. Leases are objects under <prefix>/.leases/ carrying an expiry their holder keeps pushing
 * forward. Not for parsing XML or building URLs: that is s3_util.c. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/util.h"
#include "s3_intern.h"
#include "store_intern.h"

#define MIN_PART_SIZE      (5u * 1024 * 1024)
#define MAX_PARTS          10000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_ATTEMPTS   5
#define BACKOFF_BASE_MS    200
#define BACKOFF_CAP_MS     20000
#define MAX_ERROR_BODY     (64 * 1024)
#define MAX_LIST_BODY      (16 * 1024 * 1024)
#define READ_SPILL_MAX     (256 * 1024)
#define UPLOADERS          2 /* parts uploading at once per writer */
#define LEASE_DIR          ".leases"
#define LEASE_TTL_S        300 /* a lease not refreshed for this long belongs to a dead process */
#define LEASE_REFRESH_S    60
#define UPLOAD_GRACE_S     120 /* an upload younger than this may still be taking its lease */
#define EMPTY_SHA256       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- settings ---- */

static struct {
    bool set;
    char *endpoint, *endpoint_origin, *region, *access_key_id, *access_key_id_origin;
    char *secret_access_key, *secret_access_key_origin, *secret_access_key_file;
    char *session_token, *ca_file;
    bool path_style;
    uint64_t part_size, timeout_ms;
    int max_attempts;
} settings;

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? dc_strdup(s) : NULL;
}

void dc_store_s3_configure(const dc_store_s3_settings_t *in)
{
    char **strings[] = {&settings.endpoint,
                        &settings.endpoint_origin,
                        &settings.region,
                        &settings.access_key_id,
                        &settings.access_key_id_origin,
                        &settings.secret_access_key,
                        &settings.secret_access_key_origin,
                        &settings.secret_access_key_file,
                        &settings.session_token,
                        &settings.ca_file};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        free(*strings[i]);
        *strings[i] = NULL;
    }
    settings.set = in != NULL;
    if (in == NULL)
        return;
    settings.endpoint = dup_or_null(in->endpoint);
    settings.endpoint_origin = dup_or_null(in->endpoint_origin);
    settings.region = dup_or_null(in->region);
    settings.access_key_id = dup_or_null(in->access_key_id);
    settings.access_key_id_origin = dup_or_null(in->access_key_id_origin);
    settings.secret_access_key = dup_or_null(in->secret_access_key);
    settings.secret_access_key_origin = dup_or_null(in->secret_access_key_origin);
    settings.secret_access_key_file = dup_or_null(in->secret_access_key_file);
    settings.session_token = dup_or_null(in->session_token);
    settings.ca_file = dup_or_null(in->ca_file);
    settings.path_style = in->path_style;
    settings.part_size = in->part_size;
    settings.timeout_ms = in->timeout_ms;
    settings.max_attempts = in->max_attempts;
}

/* ---- the store ---- */

typedef struct s3_store {
    dc_store_t base;
    char *bucket, *prefix;
    char *endpoint, *endpoint_origin;
    char *region, *sigv4;
    char *access_key, *access_key_origin;
    char *secret, *secret_origin;
    char *token;
    char *ca_file;
    bool path_style;
    size_t part_size;        /* configured; 0: from expected_bytes (dc_s3_part_size) */
    uint64_t expected_bytes; /* dc_store_expect_size */
    long timeout_s;
    int max_attempts;
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
} s3_store_t;

static s3_store_t *as_s3(dc_store_t *s)
{
    return (s3_store_t *)s;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
    (void)h;
    (void)access;
    pthread_mutex_lock(&((s3_store_t *)ctx)->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
    (void)h;
    pthread_mutex_unlock(&((s3_store_t *)ctx)->share_locks[data]);
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t backoff(int attempt)
{
    uint32_t rnd = 0;
    RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
    return dc_s3_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, rnd);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    dc_hex_encode(md, sizeof(md), out);
}

/* The request headers every call carries; extra ones (Range, If-Match) appended by callers. */
static struct curl_slist *base_headers(s3_store_t *s, const char *payload_sha256,
                                       const char *content_type)
{
    struct curl_slist *h = NULL;
    char line[256];
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", payload_sha256);
    h = curl_slist_append(h, line);
    if (s->token != NULL) {
        char *t = dc_sprintf("x-amz-security-token: %s", s->token);
        h = curl_slist_append(h, t);
        free(t);
    }
    if (content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Expect:");
    return h;
}

static void setup_handle(s3_store_t *s, CURL *h, const char *url, struct curl_slist *headers)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_SHARE, s->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "deployctl/" DEPLOYCTL_VERSION);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (s->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s->timeout_s < 10 ? s->timeout_s : 10L);
    /* A transfer where no byte moves for timeout_s fails (and is tried again). */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->timeout_s);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
}

/* What one HTTP exchange said. */
typedef struct s3_response {
    long status;
    int curl_code;
    char curl_message[CURL_ERROR_SIZE];
    dc_buf_t body;
    size_t body_max;
    char etag[160];
    uint64_t content_length;
    bool has_length;
    char *s3_code;
    char *s3_message;
    char *s3_region;      /* <Region> of a redirect or a malformed authorization */
    time_t date;          /* the server's clock (Date), 0 when not given */
    time_t last_modified; /* Last-Modified of the object read, 0 when not given */
} s3_response_t;

static void response_reset(s3_response_t *r)
{
    size_t max = r->body_max;
    dc_buf_free(&r->body);
    free(r->s3_code);
    free(r->s3_message);
    free(r->s3_region);
    memset(r, 0, sizeof(*r));
    r->body_max = max;
}

static void response_free(s3_response_t *r)
{
    response_reset(r);
}

static size_t collect_body(char *data, size_t size, size_t n, void *ctx)
{
    s3_response_t *r = ctx;
    size_t len = size * n;
    if (r->body.len + len > r->body_max)
        return 0; /* fails the transfer: more than we would ever accept */
    dc_buf_append(&r->body, data, len);
    return len;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, size, "%.*s", (int)(end - v), v);
}

/* An HTTP-date header's value as a time_t; `otherwise` when the line is not that header. */
static time_t header_time(const char *line, size_t len, const char *name, time_t otherwise)
{
    char value[80] = "";
    header_value(line, len, name, value, sizeof(value));
    time_t t = value[0] != '\0' ? curl_getdate(value, NULL) : -1;
    return t > 0 ? t : otherwise;
}

static size_t collect_header(char *data, size_t size, size_t n, void *ctx)
{
    s3_response_t *r = ctx;
    size_t len = size * n;
    char value[160] = "";
    header_value(data, len, "ETag", r->etag, sizeof(r->etag));
    header_value(data, len, "Content-Length", value, sizeof(value));
    if (value[0] != '\0') {
        r->content_length = strtoull(value, NULL, 10);
        r->has_length = true;
    }
    r->date = header_time(data, len, "Date", r->date);
    r->last_modified = header_time(data, len, "Last-Modified", r->last_modified);
    return len;
}

static void parse_error_body(s3_response_t *r)
{
    if (r->body.len == 0)
        return;
    const char *xml = r->body.data;
    size_t len = r->body.len;
    r->s3_code = dc_s3_xml_text(xml, len, "Code");
    r->s3_message = dc_s3_xml_text(xml, len, "Message");
    r->s3_region = dc_s3_xml_text(xml, len, "Region");
}

/* A request: method, object (a full key, or NULL for the bucket), canonical query (names in
 * order, values encoded), optional body. */
typedef struct s3_call {
    const char *method;
    const char *full_key;
    const char *query;
    const void *body;
    size_t body_len;
    const char *content_type;
    const char *range;
    bool missing_ok;  /* a 404 is an answer, not an error */
    const char *what; /* "reading x", for messages */
} s3_call_t;

typedef struct upload_source {
    const uint8_t *data;
    size_t len, off;
} upload_source_t;

static size_t read_upload(char *buf, size_t size, size_t n, void *ctx)
{
    upload_source_t *src = ctx;
    size_t room = size * n, left = src->len - src->off;
    size_t take = room < left ? room : left;
    memcpy(buf, src->data + src->off, take);
    src->off += take;
    return take;
}

static char *call_url(s3_store_t *s, const char *full_key, const char *query)
{
    char *base = dc_s3_object_url(s->endpoint, s->bucket, s->path_style, full_key);
    if (query == NULL)
        return base;
    char *url = dc_sprintf("%s?%s", base, query);
    free(base);
    return url;
}

/* One request's handle: its URL, the signed headers (base_headers plus the `extra` lines,
 * NULL-terminated), the store's options, and the response's headers and error text captured
 * into r. The caller adds the method and body callbacks, and frees *headers after the
 * transfer. NULL when out of memory. */
static CURL *request_new(s3_store_t *s, const char *full_key, const char *query,
                         const char *payload_hash, const char *content_type,
                         const char *const *extra, s3_response_t *r, struct curl_slist **headers)
{
    CURL *h = curl_easy_init();
    *headers = NULL;
    if (h == NULL)
        return NULL;
    *headers = base_headers(s, payload_hash, content_type);
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        *headers = curl_slist_append(*headers, extra[i]);
    char *url = call_url(s, full_key, query);
    setup_handle(s, h, url, *headers);
    free(url);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_message);
    return h;
}

/* Records how a transfer on h ended into r: libcurl's result (with a message) and the status. */
static void request_done(CURL *h, CURLcode result, s3_response_t *r)
{
    r->curl_code = (int)result;
    if (result != CURLE_OK && r->curl_message[0] == '\0')
        snprintf(r->curl_message, sizeof(r->curl_message), "%s", curl_easy_strerror(result));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
}

static int perform_once(s3_store_t *s, const s3_call_t *c, const char *payload_hash,
                        s3_response_t *r)
{
    char *range = c->range != NULL ? dc_sprintf("Range: %s", c->range) : NULL;
    const char *extra[] = {range, NULL};
    struct curl_slist *headers;
    CURL *h =
        request_new(s, c->full_key, c->query, payload_hash, c->content_type, extra, r, &headers);
    free(range);
    if (h == NULL) {
        r->curl_code = CURLE_OUT_OF_MEMORY;
        return -1;
    }
    upload_source_t src = {c->body, c->body_len, 0};
    if (strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_upload);
        curl_easy_setopt(h, CURLOPT_READDATA, &src);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? (const char *)c->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(c->method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    CURLcode rc = curl_easy_perform(h);
    request_done(h, rc, r);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    return rc == CURLE_OK ? 0 : -1;
}

/* Turns a failed exchange into a message a user can act on (never holding a secret). */
static int explain(s3_store_t *s, const char *what, const s3_response_t *r, dc_error_t *err)
{
    const char *url = s->base.url;
    const char *code = r->s3_code ? r->s3_code : "";
    char server_says[320] = "";
    if (r->s3_message != NULL)
        snprintf(server_says, sizeof(server_says), " (the server said: %.250s)", r->s3_message);
    switch ((CURLcode)r->curl_code) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        return dc_error_set(err,
                            "store %s: cannot resolve the endpoint %s while %s: %s; check the "
                            "endpoint (%s)",
                            url, s->endpoint, what, r->curl_message, s->endpoint_origin);
    case CURLE_COULDNT_CONNECT:
        return dc_error_set(err,
                            "store %s: cannot connect to the endpoint %s while %s: %s; is the "
                            "service up, and is the endpoint (%s) right?",
                            url, s->endpoint, what, r->curl_message, s->endpoint_origin);
    case CURLE_OPERATION_TIMEDOUT:
        return dc_error_set(err,
                            "store %s: the endpoint %s timed out while %s (%s); the service "
                            "or the network to it is too slow or stalled",
                            url, s->endpoint, what, r->curl_message);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return dc_error_set(err,
                            "store %s: TLS verification of %s failed while %s: %s; give the "
                            "CA bundle that signed its certificate with [s3] ca_file or "
                            "AWS_CA_BUNDLE",
                            url, s->endpoint, what, r->curl_message);
    default:
        return dc_error_set(err, "store %s: %s failed at %s: %s", url, what, s->endpoint,
                            r->curl_message);
    }
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return dc_error_set(err,
                            "store %s: %s refused: the server at %s does not know the access "
                            "key id (from %s); check AWS_ACCESS_KEY_ID or [s3] access_key_id",
                            url, what, s->endpoint, s->access_key_origin);
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return dc_error_set(err,
                            "store %s: %s refused: the request signature does not match; the "
                            "secret access key (from %s) is wrong for the access key id (from "
                            "%s), or the region '%s' is; check AWS_SECRET_ACCESS_KEY or [s3] "
                            "secret_access_key_file",
                            url, what, s->secret_origin, s->access_key_origin, s->region);
    if (strcmp(code, "NoSuchBucket") == 0)
        return dc_error_set(err,
                            "store %s: the bucket '%s' does not exist at %s; create it or fix "
                            "the store URL",
                            url, s->bucket, s->endpoint);
    if (strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
        strcmp(code, "PermanentRedirect") == 0 || r->status == 301) {
        return dc_error_set(err,
                            "store %s: the bucket '%s' is not in region '%s'%s%s%s; set "
                            "AWS_REGION or [s3] region",
                            url, s->bucket, s->region, r->s3_region ? " (it is in '" : "",
                            r->s3_region ? r->s3_region : "", r->s3_region ? "')" : "");
    }
    if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0 ||
        strcmp(code, "TokenRefreshRequired") == 0)
        return dc_error_set(err,
                            "store %s: %s refused: the session token (AWS_SESSION_TOKEN) is "
                            "expired or invalid; get fresh credentials",
                            url, what);
    if (r->status == 403)
        return dc_error_set(err,
                            "store %s: %s refused by %s: access denied (%s)%s; the credentials "
                            "from %s lack a permission on bucket '%s'",
                            url, what, s->endpoint, *code ? code : "403", server_says,
                            s->access_key_origin, s->bucket);
    if (r->status == 404 && *code == '\0' && r->body.len == 0)
        return dc_error_set(err, "store %s: %s: not found (HTTP 404)", url, what);
    return dc_error_set(err, "store %s: %s failed at %s: HTTP %ld %s%s", url, what, s->endpoint,
                        r->status, code, server_says);
}

/* The one retry policy, for every request (calls and reads alike): after try `attempt` of
 * `what` failed as r says, either fails for good (-1, err saying why and after how many
 * tries) or waits the backoff (exponential, with jitter) before the next try (0). */
static int retry_or_fail(s3_store_t *s, const char *what, const s3_response_t *r, int attempt,
                         dc_error_t *err)
{
    if (!dc_s3_retryable(r->curl_code, r->status, r->s3_code) || attempt >= s->max_attempts) {
        explain(s, what, r, err);
        if (attempt > 1)
            dc_error_append(err, " (after %d tries)", attempt);
        return -1;
    }
    uint64_t wait = backoff(attempt);
    dc_log_debug("store %s: %s: %s (HTTP %ld); trying again in %llu ms (try %d of %d)", s->base.url,
                 what, r->curl_code ? r->curl_message : (r->s3_code ? r->s3_code : "error"),
                 r->status, (unsigned long long)wait, attempt + 1, s->max_attempts);
    sleep_ms(wait);
    return 0;
}

/* Whether a finished exchange succeeded; fills r's S3 error fields when it did not. */
static bool call_succeeded(const s3_call_t *c, s3_response_t *r)
{
    if (r->curl_code != CURLE_OK)
        return false;
    bool ok_status = r->status >= 200 && r->status < 300;
    if (!ok_status) {
        parse_error_body(r);
        return c->missing_ok && r->status == 404;
    }
    /* CompleteMultipartUpload may fail after a 200: its body is then an <Error>. */
    if (c->body != NULL && r->body.len > 0 && strcmp(c->method, "POST") == 0) {
        const char *cur = r->body.data, *inner;
        size_t n;
        if (dc_s3_xml_next(&cur, r->body.data + r->body.len, "Error", &inner, &n)) {
            parse_error_body(r);
            /* Tried again only when its code says the server may do better next time
             * (InternalError, SlowDown…); InvalidPart or NoSuchUpload will not change. */
            r->status = dc_s3_retryable(CURLE_OK, 400, r->s3_code) ? 500 : 400;
            return false;
        }
    }
    return true;
}

/* Performs a call, trying again on transient failures. On 0, r holds the answer (2xx, or 404
 * with missing_ok). */
static int s3_call(s3_store_t *s, const s3_call_t *c, s3_response_t *r, dc_error_t *err)
{
    char payload[65];
    if (c->body_len > 0)
        sha256_hex(c->body, c->body_len, payload);
    else
        snprintf(payload, sizeof(payload), "%s", EMPTY_SHA256);
    if (r->body_max == 0)
        r->body_max = MAX_ERROR_BODY;
    for (int attempt = 1;; attempt++) {
        response_reset(r);
        perform_once(s, c, payload, r);
        if (call_succeeded(c, r))
            return 0;
        if (retry_or_fail(s, c->what, r, attempt, err) != 0)
            return -1;
    }
}

/* ---- writer: one PUT, or a multipart upload streamed a part at a time ---- */

typedef struct s3_lease s3_lease_t;
typedef struct s3_writer s3_writer_t;
static int lease_take(s3_store_t *s, const char *name, bool internal, const s3_writer_t *upload,
                      s3_lease_t **out, dc_error_t *err);
static void lease_drop(s3_lease_t *l);
static int lease_verify(s3_lease_t *l, dc_error_t *err);
static void abort_upload(s3_writer_t *w);
static bool lease_held(s3_store_t *s, const char *name, bool *error);

struct s3_writer {
    dc_store_writer_t base;
    s3_store_t *s;
    char *full_key;
    uint8_t *buf;
    size_t used, alloc, cap;
    char *upload_id;
    char **etags;
    int parts;
    uint64_t total; /* bytes in the parts uploaded */
    s3_lease_t *upload_lease;
    /* Up to UPLOADERS parts upload in background threads while the next one fills: memory is
     * UPLOADERS + 1 parts plus a constant. Parts are numbered when handed off; their ETags land
     * in etags[number - 1], so uploads may finish in any order. */
    uint8_t *spare[UPLOADERS]; /* buffers not in use */
    int spares;
    pthread_t uploader[UPLOADERS];
    int uploaders;
    struct part_job {
        uint8_t *data;
        size_t len;
        int number;
    } queue[UPLOADERS];
    int queued, running;
    bool quit, failed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dc_error_t job_err;
    char *what; /* "writing <key>", for messages */
};

static char *upload_lease_name(const char *upload_id)
{
    char hex[65];
    sha256_hex(upload_id, strlen(upload_id), hex);
    hex[24] = '\0';
    return dc_sprintf("upload-%s", hex);
}

static int start_upload(s3_writer_t *w, dc_error_t *err)
{
    s3_response_t r = {0};
    s3_call_t c = {.method = "POST",
                   .full_key = w->full_key,
                   .query = "uploads=",
                   .content_type = "application/octet-stream",
                   .what = w->what};
    if (s3_call(w->s, &c, &r, err) != 0) {
        response_free(&r);
        return -1;
    }
    w->upload_id = r.body.len ? dc_s3_xml_text(r.body.data, r.body.len, "UploadId") : NULL;
    response_free(&r);
    if (w->upload_id == NULL || *w->upload_id == '\0')
        return dc_error_set(err,
                            "store %s: %s: the server started a multipart upload without an "
                            "upload id",
                            w->s->base.url, w->what);
    /* The upload's own lease, which records the upload id: a cleaner aborts uploads nobody
     * keeps alive. Without it a cleaner could neither tell this upload is alive (where the
     * server lists uploads) nor find it once we die (where it cannot): no lease, no upload. */
    char *name = upload_lease_name(w->upload_id);
    int rc = lease_take(w->s, name, true, w, &w->upload_lease, err);
    free(name);
    if (rc != 0) {
        /* err already names the store. */
        dc_error_prefix(err, "cannot mark the upload of %s as alive: ", w->base.key);
        abort_upload(w);
    }
    return rc;
}

/* Uploads part `number` (from 1); its ETag goes to etags[number - 1]. Safe from several
 * threads: each touches its own slot, and the totals under the writer's mutex. */
static int upload_part(s3_writer_t *w, const uint8_t *data, size_t len, int number, dc_error_t *err)
{
    if (number > MAX_PARTS)
        return dc_error_set(err, "store %s: %s needs more than %d parts; raise [s3] part_size",
                            w->s->base.url, w->what, MAX_PARTS);
    char *id = dc_s3_uri_encode(w->upload_id, false);
    char *query = dc_sprintf("partNumber=%d&uploadId=%s", number, id);
    free(id);
    s3_response_t r = {0};
    s3_call_t c = {.method = "PUT",
                   .full_key = w->full_key,
                   .query = query,
                   .body = data,
                   .body_len = len,
                   .content_type = "application/octet-stream",
                   .what = w->what};
    double started = dc_now_seconds();
    dc_log_debug("store %s: %s: part %d (%zu bytes) starts", w->s->base.url, w->what, number, len);
    int rc = s3_call(w->s, &c, &r, err);
    if (rc == 0)
        dc_log_debug("store %s: %s: part %d stored in %.3f s", w->s->base.url, w->what, number,
                     dc_now_seconds() - started);
    free(query);
    if (rc == 0 && r.etag[0] == '\0')
        rc = dc_error_set(err, "store %s: %s: the server returned no ETag for part %d",
                          w->s->base.url, w->what, number);
    if (rc == 0)
        w->etags[number - 1] = dc_strdup(r.etag);
    response_free(&r);
    if (rc == 0)
        dc_fault_point("s3-after-part");
    return rc;
}

static void *part_uploader(void *arg)
{
    s3_writer_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->queued == 0 && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->queued == 0)
            break;
        struct part_job job = w->queue[0];
        memmove(&w->queue[0], &w->queue[1], (size_t)(w->queued - 1) * sizeof(w->queue[0]));
        w->queued--;
        w->running++;
        bool skip = w->failed; /* once one part failed for good, the rest is moot */
        pthread_mutex_unlock(&w->mu);
        dc_error_t e;
        int rc = skip ? 0 : upload_part(w, job.data, job.len, job.number, &e);
        pthread_mutex_lock(&w->mu);
        if (rc != 0 && !w->failed) {
            w->failed = true;
            w->job_err = e;
        }
        w->spare[w->spares++] = job.data;
        w->running--;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Waits until no part is queued or uploading; -1 with the error when one failed. */
static int wait_idle(s3_writer_t *w, dc_error_t *err)
{
    if (w->uploaders == 0)
        return 0;
    pthread_mutex_lock(&w->mu);
    while (w->queued > 0 || w->running > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    bool failed = w->failed;
    if (failed && err != NULL)
        *err = w->job_err;
    pthread_mutex_unlock(&w->mu);
    return failed ? -1 : 0;
}

static void stop_uploader(s3_writer_t *w)
{
    if (w->uploaders == 0)
        return;
    wait_idle(w, NULL);
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->uploaders; i++)
        pthread_join(w->uploader[i], NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->uploaders = 0;
}

/* Numbers the full part and queues it (waiting while UPLOADERS parts are in flight), then
 * fills a free buffer. */
static int hand_off_part(s3_writer_t *w, dc_error_t *err)
{
    if (w->etags == NULL)
        w->etags = dc_calloc(MAX_PARTS, sizeof(char *));
    if (w->parts >= MAX_PARTS)
        return dc_error_set(err, "store %s: %s needs more than %d parts; raise [s3] part_size",
                            w->s->base.url, w->what, MAX_PARTS);
    if (w->uploaders == 0) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        for (int i = 0; i < UPLOADERS; i++) {
            if (pthread_create(&w->uploader[w->uploaders], NULL, part_uploader, w) == 0)
                w->uploaders++;
        }
        if (w->uploaders == 0) {
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
            /* No thread: upload in line. */
            if (upload_part(w, w->buf, w->used, w->parts + 1, err) != 0)
                return -1;
            w->parts++;
            w->total += w->used;
            w->used = 0;
            return 0;
        }
    }
    pthread_mutex_lock(&w->mu);
    while (!w->failed && w->queued + w->running >= w->uploaders)
        pthread_cond_wait(&w->cv, &w->mu);
    if (w->failed) {
        *err = w->job_err;
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    w->queue[w->queued++] = (struct part_job){w->buf, w->used, ++w->parts};
    w->total += w->used;
    uint8_t *next = w->spares > 0 ? w->spare[--w->spares] : NULL;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    w->buf = next != NULL ? next : dc_malloc(w->cap);
    w->alloc = w->cap;
    w->used = 0;
    return 0;
}

static int s3_writer_open(dc_store_t *store, const char *key, dc_store_writer_t **out,
                          dc_error_t *err)
{
    (void)err;
    s3_store_t *s = as_s3(store);
    s3_writer_t *w = dc_calloc(1, sizeof(*w));
    w->base.store = store;
    w->base.key = dc_strdup(key);
    w->s = s;
    w->full_key = dc_s3_full_key(s->prefix, key);
    w->cap = dc_s3_part_size(s->part_size, s->expected_bytes);
    w->what = dc_sprintf("writing %s", key);
    *out = &w->base;
    return 0;
}

static void s3_writer_free(s3_writer_t *w)
{
    stop_uploader(w);
    for (int i = 0; w->etags != NULL && i < w->parts; i++)
        free(w->etags[i]);
    free(w->etags);
    free(w->buf);
    for (int i = 0; i < w->spares; i++)
        free(w->spare[i]);
    free(w->upload_id);
    free(w->full_key);
    free(w->what);
    free(w->base.key);
    free(w);
}

/* Whether the server says it cannot do what was asked at all (rather than failed to). */
static bool not_supported(const s3_response_t *r)
{
    return r->status == 501 || r->status == 405 ||
           (r->s3_code != NULL && (strcmp(r->s3_code, "NotImplemented") == 0 ||
                                   strcmp(r->s3_code, "MethodNotAllowed") == 0));
}

/* Aborts the multipart upload `upload_id` of full_key; *found false when the server no longer
 * had it (aborted or completed already). 1 (err set) when the server cannot abort uploads at
 * all (405, 501, NotImplemented: plain s3rver, some gateways): trying again never helps. */
static int abort_upload_id(s3_store_t *s, const char *full_key, const char *upload_id, bool *found,
                           dc_error_t *err)
{
    char *id = dc_s3_uri_encode(upload_id, false);
    char *query = dc_sprintf("uploadId=%s", id);
    free(id);
    char *what = dc_sprintf("aborting the multipart upload of %s", full_key);
    s3_response_t r = {0};
    s3_call_t c = {
        .method = "DELETE", .full_key = full_key, .query = query, .missing_ok = true, .what = what};
    int rc = s3_call(s, &c, &r, err);
    if (found != NULL)
        *found = rc == 0 && r.status != 404;
    if (rc != 0 && not_supported(&r))
        rc = 1;
    response_free(&r);
    free(query);
    free(what);
    return rc;
}

static void abort_upload(s3_writer_t *w)
{
    dc_error_t err;
    if (w->upload_id != NULL && abort_upload_id(w->s, w->full_key, w->upload_id, NULL, &err) != 0)
        dc_log_warn("%s; the parts stay until a cleaner (backup, prune) or a bucket lifecycle "
                    "rule aborts the upload",
                    err.message);
    /* Once is enough: a second abort (the caller's s3_writer_abort) would only cost a
     * round trip, with retries when the store is what failed. */
    free(w->upload_id);
    w->upload_id = NULL;
    lease_drop(w->upload_lease);
    w->upload_lease = NULL;
}

static void s3_writer_abort(dc_store_writer_t *base)
{
    s3_writer_t *w = (s3_writer_t *)base;
    stop_uploader(w); /* the part in flight goes (or fails) before the upload is aborted */
    abort_upload(w);
    s3_writer_free(w);
}

static int s3_writer_write(dc_store_writer_t *base, const void *data, size_t len, dc_error_t *err)
{
    s3_writer_t *w = (s3_writer_t *)base;
    const uint8_t *p = data;
    while (len > 0) {
        if (w->used == w->cap) {
            if (w->upload_id == NULL && start_upload(w, err) != 0)
                return -1;
            if (hand_off_part(w, err) != 0)
                return -1;
        }
        size_t room = w->cap - w->used;
        size_t n = len < room ? len : room;
        if (w->used + n > w->alloc) {
            /* Grows geometrically up to one part: a small object (a manifest) costs little. */
            size_t want = w->alloc ? w->alloc : 64 * 1024;
            while (want < w->used + n)
                want *= 2;
            w->alloc = want < w->cap ? want : w->cap;
            w->buf = dc_realloc(w->buf, w->alloc);
        }
        memcpy(w->buf + w->used, p, n);
        w->used += n;
        p += n;
        len -= n;
    }
    return 0;
}

static int complete_upload(s3_writer_t *w, dc_error_t *err)
{
    dc_buf_t xml = {0};
    dc_buf_appendf(&xml,
                   "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (int i = 0; i < w->parts; i++) {
        char *etag = dc_s3_xml_escape(w->etags[i]);
        dc_buf_appendf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
                       etag);
        free(etag);
    }
    dc_buf_appendf(&xml, "</CompleteMultipartUpload>");
    char *id = dc_s3_uri_encode(w->upload_id, false);
    char *query = dc_sprintf("uploadId=%s", id);
    free(id);
    s3_response_t r = {0};
    s3_call_t c = {.method = "POST",
                   .full_key = w->full_key,
                   .query = query,
                   .body = xml.data,
                   .body_len = xml.len,
                   .content_type = "application/xml",
                   .what = w->what};
    int rc = s3_call(w->s, &c, &r, err);
    if (rc != 0 && r.s3_code != NULL && strcmp(r.s3_code, "NoSuchUpload") == 0) {
        /* A try whose answer was lost may have completed the upload already: then the object
         * is there with every byte. */
        s3_response_t head = {0};
        s3_call_t h = {
            .method = "HEAD", .full_key = w->full_key, .missing_ok = true, .what = w->what};
        dc_error_t ignored;
        if (s3_call(w->s, &h, &head, &ignored) == 0 && head.status == 200 && head.has_length &&
            head.content_length == w->total) {
            dc_log_debug("store %s: %s was completed by an earlier try", w->s->base.url,
                         w->full_key);
            rc = 0;
        }
        response_free(&head);
    }
    response_free(&r);
    free(query);
    dc_buf_free(&xml);
    return rc;
}

/* The tail of a multipart upload: the parts still in flight, the last part, and the
 * completion, each timed in the debug log. (Uploading the last part alongside the parts in
 * flight would save up to one part's upload; it changes the order of the requests, on which
 * the fault schedule of tests/integration/s3_faults.sh depends, so it waits for that test.) */
static int finish_upload(s3_writer_t *w, dc_error_t *err)
{
    double started = dc_now_seconds();
    int rc = wait_idle(w, err);
    if (rc == 0 && w->used > 0) {
        rc = upload_part(w, w->buf, w->used, w->parts + 1, err);
        if (rc == 0) {
            w->parts++;
            w->total += w->used;
        }
    }
    if (rc != 0)
        return -1;
    double completing = dc_now_seconds();
    dc_log_debug("store %s: %s: %d parts stored (the last %.3f s after the commit began); "
                 "completing the upload",
                 w->s->base.url, w->what, w->parts, completing - started);
    /* A cleaner that judged our upload lease dead may have aborted the upload already. */
    if (w->upload_lease != NULL && lease_verify(w->upload_lease, err) != 0)
        return -1;
    rc = complete_upload(w, err);
    if (rc == 0)
        dc_log_debug("store %s: %s: upload completed in %.3f s", w->s->base.url, w->what,
                     dc_now_seconds() - completing);
    return rc;
}

static int s3_writer_commit(dc_store_writer_t *base, dc_error_t *err)
{
    s3_writer_t *w = (s3_writer_t *)base;
    int rc;
    if (w->upload_id == NULL) {
        /* Smaller than one part: a single PUT makes the object appear whole. */
        s3_response_t r = {0};
        s3_call_t c = {.method = "PUT",
                       .full_key = w->full_key,
                       .body = w->buf,
                       .body_len = w->used,
                       .content_type = "application/octet-stream",
                       .what = w->what};
        rc = s3_call(w->s, &c, &r, err);
        response_free(&r);
    } else {
        rc = finish_upload(w, err);
    }
    if (rc != 0) {
        s3_writer_abort(base);
        return -1;
    }
    lease_drop(w->upload_lease);
    w->upload_lease = NULL;
    s3_writer_free(w);
    return 0;
}

/* ---- reader: a streaming GET driven by the reads, resumed by range after a failure ---- */

typedef struct s3_reader {
    dc_store_reader_t base;
    s3_store_t *s;
    char *full_key;
    char *what;
    uint64_t fetched; /* absolute offset of the next byte to fetch */
    uint64_t started; /* `fetched` when the current transfer started */
    uint64_t end;     /* exclusive; UINT64_MAX while unknown */
    bool ranged;
    char etag[160];
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    bool active, paused, finished, eof;
    int attempts;
    s3_response_t resp; /* status, headers, error body */
    bool status_known, error_status;
    dc_buf_t spill;
    size_t spill_off;
} s3_reader_t;

static size_t reader_write(char *data, size_t size, size_t n, void *ctx)
{
    s3_reader_t *r = ctx;
    size_t len = size * n;
    if (!r->status_known) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->resp.status);
        r->status_known = true;
        r->error_status = !(r->resp.status == 200 || r->resp.status == 206);
        if (!r->error_status && r->resp.status == 200 && r->fetched > 0)
            r->error_status = true; /* a range asked for and the whole object sent */
    }
    if (r->error_status)
        return collect_body(data, size, n, &r->resp);
    if (r->spill.len - r->spill_off >= READ_SPILL_MAX) {
        r->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (r->spill_off > 0 && r->spill_off == r->spill.len) {
        r->spill.len = 0;
        r->spill_off = 0;
    }
    dc_buf_append(&r->spill, data, len);
    r->fetched += len;
    return len;
}

static void reader_stop(s3_reader_t *r)
{
    if (r->easy != NULL) {
        curl_multi_remove_handle(r->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->active = false;
    r->paused = false;
}

static int reader_start(s3_reader_t *r, dc_error_t *err)
{
    s3_store_t *s = r->s;
    r->attempts++;
    r->started = r->fetched;
    response_reset(&r->resp);
    r->resp.body_max = MAX_ERROR_BODY;
    r->status_known = r->error_status = false;
    r->finished = false;
    char range[96] = "", *if_match = NULL;
    if (r->ranged || r->fetched > 0) {
        if (r->end != UINT64_MAX)
            snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)r->fetched,
                     (unsigned long long)(r->end - 1));
        else
            snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)r->fetched);
    }
    /* A resumed read must see the same object, not one written since. */
    if (r->etag[0] != '\0')
        if_match = dc_sprintf("If-Match: %s", r->etag);
    const char *extra[] = {range[0] ? range : if_match, range[0] ? if_match : NULL, NULL};
    r->easy = request_new(s, r->full_key, NULL, EMPTY_SHA256, NULL, extra, &r->resp, &r->headers);
    free(if_match);
    if (r->easy == NULL)
        return dc_error_set(err, "store %s: out of memory", s->base.url);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, reader_write);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_multi_add_handle(r->multi, r->easy);
    r->active = true;
    return 0;
}

/* The transfer ended: done, or to be resumed, or an error. */
static int reader_finish(s3_reader_t *r, CURLcode result, dc_error_t *err)
{
    s3_store_t *s = r->s;
    request_done(r->easy, result, &r->resp);
    bool ok =
        result == CURLE_OK && (r->resp.status == 200 || r->resp.status == 206) && !r->error_status;
    if (ok && r->etag[0] == '\0' && r->resp.etag[0] != '\0')
        snprintf(r->etag, sizeof(r->etag), "%s", r->resp.etag);
    reader_stop(r);
    if (ok) {
        r->finished = true;
        return 0;
    }
    if (result == CURLE_OK && r->resp.status == 416) {
        r->finished = true; /* a range past the end: nothing more */
        return 0;
    }
    if (result == CURLE_OK)
        parse_error_body(&r->resp);
    if (r->resp.status == 404 || (r->resp.s3_code && strcmp(r->resp.s3_code, "NoSuchKey") == 0))
        return dc_error_set(err, "%s not found in store %s", r->base.key, s->base.url);
    if (r->resp.status == 412)
        return dc_error_set(err, "store %s: %s changed while it was being read; read it again",
                            s->base.url, r->base.key);
    if (r->fetched > r->started) {
        /* The budget of tries is per failure, not per object: a long read over a link that
         * drops now and then goes on as long as every resume makes progress. */
        dc_log_debug("store %s: %s: stopped at byte %llu; resuming", s->base.url, r->what,
                     (unsigned long long)r->fetched);
        r->attempts = 1;
    }
    if (retry_or_fail(s, r->what, &r->resp, r->attempts, err) != 0)
        return -1;
    return 0; /* not finished: the next read starts again from r->fetched */
}

/* Moves the transfer on once; handles its end when it came. */
static int reader_pump(s3_reader_t *r, dc_error_t *err)
{
    int running = 0;
    CURLMcode mc = curl_multi_perform(r->multi, &running);
    if (mc != CURLM_OK)
        return dc_error_set(err, "store %s: %s: %s", r->s->base.url, r->what,
                            curl_multi_strerror(mc));
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == r->easy)
            return reader_finish(r, msg->data.result, err);
    }
    return 0;
}

static int s3_reader_read(dc_store_reader_t *base, void *buf, size_t len, size_t *got,
                          dc_error_t *err)
{
    s3_reader_t *r = (s3_reader_t *)base;
    *got = 0;
    for (;;) {
        size_t pending = r->spill.len - r->spill_off;
        if (pending > 0) {
            size_t n = len < pending ? len : pending;
            memcpy(buf, r->spill.data + r->spill_off, n);
            r->spill_off += n;
            *got = n;
            if (r->spill_off == r->spill.len) {
                r->spill.len = 0;
                r->spill_off = 0;
                if (r->paused && r->easy != NULL) {
                    r->paused = false;
                    curl_easy_pause(r->easy, CURLPAUSE_CONT);
                }
            }
            return 0;
        }
        if (r->finished || r->eof || (r->end != UINT64_MAX && r->fetched >= r->end))
            return 0;
        if (len == 0)
            return 0;
        if (!r->active && reader_start(r, err) != 0)
            return -1;
        if (r->paused) {
            r->paused = false;
            curl_easy_pause(r->easy, CURLPAUSE_CONT);
        }
        if (reader_pump(r, err) != 0)
            return -1;
        if (r->active && r->spill.len == r->spill_off && !r->paused)
            curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
    }
}

static int open_reader(dc_store_t *store, const char *key, bool ranged, uint64_t offset,
                       uint64_t length, dc_store_reader_t **out, dc_error_t *err)
{
    s3_store_t *s = as_s3(store);
    s3_reader_t *r = dc_calloc(1, sizeof(*r));
    r->base.store = store;
    r->base.key = dc_strdup(key);
    r->s = s;
    r->full_key = dc_s3_full_key(s->prefix, key);
    r->what = dc_sprintf("reading %s", key);
    r->ranged = ranged;
    r->fetched = ranged ? offset : 0;
    r->end = ranged ? (length > UINT64_MAX - offset ? UINT64_MAX : offset + length) : UINT64_MAX;
    r->multi = curl_multi_init();
    r->resp.body_max = MAX_ERROR_BODY;
    *out = &r->base;
    if (ranged && length == 0)
        return 0;
    /* Start now, so a missing object or bad credentials fail the open, not the first read. */
    if (reader_start(r, err) != 0)
        goto fail;
    while (r->active && !r->status_known) {
        if (reader_pump(r, err) != 0)
            goto fail;
        if (r->active && !r->status_known)
            curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
        if (!r->active && !r->finished && r->attempts < s->max_attempts && !r->status_known) {
            if (reader_start(r, err) != 0)
                goto fail;
        } else if (!r->active) {
            break;
        }
    }
    /* An error status: let the transfer finish to read the error body, then report it. */
    while (r->status_known && r->error_status && r->active) {
        if (reader_pump(r, err) != 0)
            goto fail;
        if (r->active)
            curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
    }
    return 0;
fail:
    *out = NULL;
    reader_stop(r);
    curl_multi_cleanup(r->multi);
    response_free(&r->resp);
    dc_buf_free(&r->spill);
    free(r->full_key);
    free(r->what);
    free(r->base.key);
    free(r);
    return -1;
}

static int s3_reader_open(dc_store_t *store, const char *key, dc_store_reader_t **out,
                          dc_error_t *err)
{
    return open_reader(store, key, false, 0, 0, out, err);
}

static int s3_reader_open_range(dc_store_t *store, const char *key, uint64_t offset,
                                uint64_t length, dc_store_reader_t **out, dc_error_t *err)
{
    return open_reader(store, key, true, offset, length, out, err);
}

static void s3_reader_close(dc_store_reader_t *base)
{
    s3_reader_t *r = (s3_reader_t *)base;
    reader_stop(r);
    curl_multi_cleanup(r->multi);
    response_free(&r->resp);
    dc_buf_free(&r->spill);
    free(r->full_key);
    free(r->what);
    free(r->base.key);
    free(r);
}

/* ---- listing, existence, deletion ---- */

/* The full prefix to list for a store-relative directory ("" for the whole store). */
static char *list_prefix(s3_store_t *s, const char *dir)
{
    char *full = dc_s3_full_key(s->prefix, dir);
    char *p = *full ? dc_sprintf("%s/", full) : dc_strdup("");
    free(full);
    return p;
}

/* Calls fn for every object under full_prefix, page by page (1000 keys a page). */
typedef int (*raw_list_fn)(s3_store_t *s, void *ctx, const struct dc_s3_list_item *item,
                           dc_error_t *err);

static int list_raw(s3_store_t *s, const char *full_prefix, raw_list_fn fn, void *ctx,
                    dc_error_t *err)
{
    char *token = NULL;
    char *enc_prefix = dc_s3_uri_encode(full_prefix, false);
    int rc = 0;
    do {
        char *query;
        if (token != NULL) {
            char *enc_token = dc_s3_uri_encode(token, false);
            query =
                dc_sprintf("continuation-token=%s&list-type=2&prefix=%s", enc_token, enc_prefix);
            free(enc_token);
        } else {
            query = dc_sprintf("list-type=2&prefix=%s", enc_prefix);
        }
        s3_response_t r = {.body_max = MAX_LIST_BODY};
        s3_call_t c = {.method = "GET", .query = query, .what = "listing the store"};
        rc = s3_call(s, &c, &r, err);
        free(query);
        dc_s3_list_page_t page;
        if (rc == 0 && dc_s3_parse_list(r.body.data ? r.body.data : "", r.body.len, &page) != 0)
            rc = dc_error_set(err,
                              "store %s: the server's answer to a listing is not a "
                              "ListObjectsV2 result",
                              s->base.url);
        response_free(&r);
        free(token);
        token = NULL;
        if (rc != 0)
            break;
        for (size_t i = 0; i < page.count && rc == 0; i++)
            rc = fn(s, ctx, &page.items[i], err);
        if (rc == 0 && page.truncated)
            token = dc_strdup(page.next_token);
        dc_s3_list_page_free(&page);
    } while (rc == 0 && token != NULL);
    free(token);
    free(enc_prefix);
    return rc;
}

typedef struct list_ctx {
    size_t strip; /* length of "<prefix>/" */
    dc_store_list_fn fn;
    void *ctx;
} list_ctx_t;

static int list_visit(s3_store_t *s, void *vctx, const struct dc_s3_list_item *item,
                      dc_error_t *err)
{
    (void)s;
    list_ctx_t *lc = vctx;
    if (strlen(item->key) <= lc->strip)
        return 0;
    const char *key = item->key + lc->strip;
    /* Driver objects (.leases/…) and "directory" markers are not keys. */
    if (key[0] == '.' || strstr(key, "/.") != NULL || dc_str_ends_with(key, "/"))
        return 0;
    dc_store_entry_t entry = {key, item->size, item->mtime};
    return lc->fn(lc->ctx, &entry, err);
}

static int s3_list(dc_store_t *store, const char *prefix, dc_store_list_fn fn, void *ctx,
                   dc_error_t *err)
{
    s3_store_t *s = as_s3(store);
    char *full = list_prefix(s, prefix);
    list_ctx_t lc = {s->prefix[0] ? strlen(s->prefix) + 1 : 0, fn, ctx};
    int rc = list_raw(s, full, list_visit, &lc, err);
    free(full);
    return rc;
}

static int s3_exists(dc_store_t *store, const char *key, bool *exists, dc_error_t *err)
{
    s3_store_t *s = as_s3(store);
    char *full = dc_s3_full_key(s->prefix, key);
    char *what = dc_sprintf("looking for %s", key);
    s3_response_t r = {0};
    s3_call_t c = {.method = "HEAD", .full_key = full, .missing_ok = true, .what = what};
    int rc = s3_call(s, &c, &r, err);
    *exists = rc == 0 && r.status != 404;
    response_free(&r);
    free(what);
    free(full);
    return rc;
}

static int delete_full_key(s3_store_t *s, const char *full_key, const char *what, dc_error_t *err)
{
    s3_response_t r = {0};
    s3_call_t c = {.method = "DELETE", .full_key = full_key, .missing_ok = true, .what = what};
    int rc = s3_call(s, &c, &r, err);
    response_free(&r);
    return rc;
}

static int s3_remove(dc_store_t *store, const char *key, dc_error_t *err)
{
    s3_store_t *s = as_s3(store);
    char *full = dc_s3_full_key(s->prefix, key);
    char *what = dc_sprintf("deleting %s", key);
    int rc = delete_full_key(s, full, what, err);
    free(what);
    free(full);
    return rc;
}

/* ---- leases: <prefix>/.leases/<name>, {"token", "expires", "host", "pid"} ----
 * S3 has no locks. A lease is an object whose holder rewrites it every LEASE_REFRESH_S; a
 * lease not rewritten for LEASE_TTL_S belongs to a process that died. Taking one writes it and
 * reads it back: of two racing takers, the one whose token is read back wins.
 *
 * Whether a lease is alive is judged on the server's clock only: the age of the lease object
 * (the Date of the answer that read it minus its Last-Modified, both stamped by the server),
 * so that a cleaner whose clock runs minutes ahead of the writer's does not take a live lease
 * for dead. "expires" (the holder's clock) is information, and the fallback for a server that
 * sends neither header. A holder notices losing its lease: each refresh reads the lease before
 * and after writing it, and the writer checks it (dc_store_lease_check) before it publishes. */

struct s3_lease {
    dc_store_lease_t base;
    s3_store_t *s;
    char *full_key;
    char token[33];
    /* The multipart upload this lease keeps alive (an upload lease), else NULL: written into
     * the lease so that a cleaner can abort the upload once the lease expires, on servers
     * that cannot list uploads (s3rver, some gateways) as on those that can. */
    char *upload_key, *upload_id;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC: a wall clock stepped back does not delay refreshes */
    bool stop;
    bool lost;                 /* another process holds it now: refreshing stopped */
    struct timespec refreshed; /* CLOCK_MONOTONIC of the last write the server took */
};

static char *lease_key(s3_store_t *s, const char *name)
{
    char *rel = dc_sprintf("%s/%s", LEASE_DIR, name);
    char *full = dc_s3_full_key(s->prefix, rel);
    free(rel);
    return full;
}

static int lease_write(s3_store_t *s, const s3_lease_t *l, dc_error_t *err)
{
    char host[128] = "";
    gethostname(host, sizeof(host) - 1);
    json_t *o =
        json_pack("{s:s, s:I, s:s, s:i}", "token", l->token, "expires",
                  (json_int_t)(time(NULL) + LEASE_TTL_S), "host", host, "pid", (int)getpid());
    if (l->upload_id != NULL)
        json_object_set_new(o, "upload",
                            json_pack("{s:s, s:s}", "key", l->upload_key, "id", l->upload_id));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    s3_response_t r = {0};
    s3_call_t c = {.method = "PUT",
                   .full_key = l->full_key,
                   .body = text,
                   .body_len = strlen(text),
                   .content_type = "application/json",
                   .what = "writing a lease"};
    int rc = s3_call(s, &c, &r, err);
    response_free(&r);
    free(text);
    return rc;
}

/* What a lease object says. */
typedef struct lease_info {
    bool found;
    bool live; /* see dc_s3_lease_live */
    char token[33];
    char etag[160];
    time_t written;               /* Last-Modified, server clock; 0 when not given */
    char *upload_key, *upload_id; /* the upload it keeps alive, or NULL */
} lease_info_t;

static void lease_info_free(lease_info_t *info)
{
    free(info->upload_key);
    free(info->upload_id);
    memset(info, 0, sizeof(*info));
}

static char *json_dup(json_t *o, const char *name)
{
    const char *v = json_string_value(json_object_get(o, name));
    return v != NULL && *v != '\0' ? dc_strdup(v) : NULL;
}

static void lease_info_parse(const s3_response_t *r, lease_info_t *info)
{
    info->found = true;
    json_t *o = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    const char *t = json_string_value(json_object_get(o, "token"));
    snprintf(info->token, sizeof(info->token), "%s", t ? t : "");
    snprintf(info->etag, sizeof(info->etag), "%s", r->etag);
    info->written = r->last_modified;
    time_t expires = (time_t)json_integer_value(json_object_get(o, "expires"));
    info->live = dc_s3_lease_live(r->date, r->last_modified, expires, time(NULL), LEASE_TTL_S);
    json_t *upload = json_object_get(o, "upload");
    info->upload_key = json_dup(upload, "key");
    info->upload_id = json_dup(upload, "id");
    if (info->upload_key == NULL || info->upload_id == NULL) {
        free(info->upload_key);
        free(info->upload_id);
        info->upload_key = info->upload_id = NULL;
    }
    json_decref(o);
}

/* Reads a lease: info->found false when absent. */
static int lease_read(s3_store_t *s, const char *full_key, lease_info_t *info, dc_error_t *err)
{
    s3_response_t r = {0};
    s3_call_t c = {
        .method = "GET", .full_key = full_key, .missing_ok = true, .what = "reading a lease"};
    memset(info, 0, sizeof(*info));
    int rc = s3_call(s, &c, &r, err);
    if (rc == 0 && r.status != 404)
        lease_info_parse(&r, info);
    response_free(&r);
    return rc;
}

/* Whether the lease object still carries our token: 1 yes, 0 no (taken over, or deleted by a
 * cleaner), -1 when it cannot be read (err). */
static int lease_is_ours(s3_lease_t *l, dc_error_t *err)
{
    lease_info_t info;
    if (lease_read(l->s, l->full_key, &info, err) != 0)
        return -1;
    int ours = info.found && strcmp(info.token, l->token) == 0;
    lease_info_free(&info);
    return ours;
}

/* One refresh: never writes over a lease another process took (read first), and reads the
 * lease back to catch a taker that wrote in between. Sets *lost when it is not ours. */
static int lease_renew(s3_lease_t *l, bool *lost, dc_error_t *err)
{
    int ours = lease_is_ours(l, err);
    if (ours == 1 && lease_write(l->s, l, err) == 0)
        ours = lease_is_ours(l, err);
    else if (ours == 1)
        ours = -1;
    *lost = ours == 0;
    if (ours == 0)
        dc_error_set(err, "store %s: the lease %s was taken over by another process",
                     l->s->base.url, l->base.name);
    return ours == 1 ? 0 : -1;
}

static double mono_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void *lease_refresher(void *arg)
{
    s3_lease_t *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop && !l->lost) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += LEASE_REFRESH_S;
        while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &until) != ETIMEDOUT) {
        }
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->mu);
        dc_error_t err;
        bool lost = false;
        int rc = lease_renew(l, &lost, &err);
        pthread_mutex_lock(&l->mu);
        if (rc == 0)
            clock_gettime(CLOCK_MONOTONIC, &l->refreshed);
        else
            dc_log_warn("cannot refresh the lease %s: %s", l->base.name, err.message);
        l->lost = lost;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Before a holder publishes (completes its upload, writes a manifest): fails when the lease
 * was lost, or was not refreshed for so long that a cleaner may be taking it right now. */
static int lease_verify(s3_lease_t *l, dc_error_t *err)
{
    pthread_mutex_lock(&l->mu);
    bool lost = l->lost;
    double age = mono_since(&l->refreshed);
    pthread_mutex_unlock(&l->mu);
    if (!lost && age > LEASE_TTL_S - LEASE_REFRESH_S)
        return dc_error_set(err,
                            "store %s: the lease %s was last refreshed %.0f s ago (the store "
                            "failed to answer); a cleaner may take it after %d s, so this work "
                            "is not published",
                            l->s->base.url, l->base.name, age, LEASE_TTL_S);
    int ours = lost ? 0 : lease_is_ours(l, err);
    if (ours == 0) {
        pthread_mutex_lock(&l->mu);
        l->lost = true; /* not ours to delete on release */
        pthread_mutex_unlock(&l->mu);
        return dc_error_set(err,
                            "store %s: the lease %s was taken over by another process (a "
                            "cleaner judged it dead), so this work is not published",
                            l->s->base.url, l->base.name);
    }
    return ours == 1 ? 0 : -1;
}

static bool lease_held(s3_store_t *s, const char *name, bool *error)
{
    char *full = lease_key(s, name);
    lease_info_t info;
    dc_error_t err;
    int rc = lease_read(s, full, &info, &err);
    free(full);
    if (error != NULL)
        *error = rc != 0;
    bool live = info.found && info.live;
    lease_info_free(&info);
    /* When the store cannot be read, say "held": a cleaner must never take what may be alive. */
    return rc != 0 || live;
}

static void lease_free(s3_lease_t *l)
{
    free(l->full_key);
    free(l->upload_key);
    free(l->upload_id);
    free(l->base.name);
    free(l);
}

/* Starts the refresher; on failure deletes the lease again (nothing would keep it alive). */
static int lease_start_refresher(s3_lease_t *l, dc_error_t *err)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, &attr);
    pthread_condattr_destroy(&attr);
    clock_gettime(CLOCK_MONOTONIC, &l->refreshed);
    int rc = pthread_create(&l->thread, NULL, lease_refresher, l);
    if (rc == 0)
        return 0;
    dc_error_t ignored;
    delete_full_key(l->s, l->full_key, "releasing a lease", &ignored);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    return dc_error_set(err, "store %s: cannot start the thread that keeps the lease %s alive: %s",
                        l->s->base.url, l->base.name, strerror(rc));
}

/* Takes the lease `name` (an `internal` one without looking whether it is held: its name is
 * unique). `upload` is the writer whose multipart upload the lease keeps alive, or NULL. */
static int lease_take(s3_store_t *s, const char *name, bool internal, const s3_writer_t *upload,
                      s3_lease_t **out, dc_error_t *err)
{
    bool read_error = false;
    if (!internal && lease_held(s, name, &read_error)) {
        if (read_error)
            return dc_error_set(err, "cannot read the lease %s in store %s", name, s->base.url);
        return dc_error_set(err, "%s in store %s is in use by another process", name, s->base.url);
    }
    s3_lease_t *l = dc_calloc(1, sizeof(*l));
    l->base.store = &s->base;
    l->base.name = dc_strdup(name);
    l->s = s;
    l->full_key = lease_key(s, name);
    if (upload != NULL) {
        l->upload_key = dc_strdup(upload->full_key);
        l->upload_id = dc_strdup(upload->upload_id);
    }
    uint8_t rnd[16];
    RAND_bytes(rnd, sizeof(rnd));
    dc_hex_encode(rnd, sizeof(rnd), l->token);
    int ours = lease_write(s, l, err) == 0 ? lease_is_ours(l, err) : -1;
    if (ours == 0)
        dc_error_set(err, "%s in store %s is in use by another process", name, s->base.url);
    if (ours != 1 || lease_start_refresher(l, err) != 0) {
        lease_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

static void lease_drop(s3_lease_t *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->cv);
    bool lost = l->lost;
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    dc_error_t err;
    /* A lost lease is another process's now: not ours to delete. */
    if (!lost && delete_full_key(l->s, l->full_key, "releasing a lease", &err) != 0)
        dc_log_warn("%s (it expires by itself)", err.message);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    lease_free(l);
}

static int s3_lease_acquire(dc_store_t *store, const char *name, dc_store_lease_t **out,
                            dc_error_t *err)
{
    s3_lease_t *l;
    if (lease_take(as_s3(store), name, false, NULL, &l, err) != 0)
        return -1;
    *out = &l->base;
    return 0;
}

static void s3_lease_release(dc_store_lease_t *base)
{
    lease_drop((s3_lease_t *)base);
}

static int s3_lease_check(dc_store_lease_t *base, dc_error_t *err)
{
    return lease_verify((s3_lease_t *)base, err);
}

static bool s3_lease_is_held(dc_store_t *store, const char *name)
{
    return lease_held(as_s3(store), name, NULL);
}

/* ---- cleaning: expired leases, and multipart uploads nobody keeps alive ---- */

typedef struct clean_ctx {
    int *removed;
} clean_ctx_t;

/* Whether the lease at `key` still is what `seen` was (same token and object), re-read right
 * before acting on it: a holder whose refresh came late, or a process that has just taken the
 * name, must not lose its lease to a cleaner that judged the old one. */
static bool lease_unchanged(s3_store_t *s, const char *key, const lease_info_t *seen)
{
    lease_info_t now;
    dc_error_t e;
    bool same = lease_read(s, key, &now, &e) == 0 && now.found && !now.live &&
                strcmp(now.token, seen->token) == 0 && strcmp(now.etag, seen->etag) == 0 &&
                now.written == seen->written;
    lease_info_free(&now);
    return same;
}

/* An expired lease: its holder died. An upload lease names the upload its writer left, which
 * goes first; the lease stays when that fails, so that the next cleaning tries again. The
 * upload and its lease count as one thing removed. */
static int clean_lease(s3_store_t *s, void *vctx, const struct dc_s3_list_item *item,
                       dc_error_t *err)
{
    (void)err;
    clean_ctx_t *cc = vctx;
    lease_info_t info;
    dc_error_t e;
    if (lease_read(s, item->key, &info, &e) != 0 || !info.found || info.live) {
        lease_info_free(&info);
        return 0;
    }
    bool found = false;
    int aborted = info.upload_id != NULL
                      ? abort_upload_id(s, info.upload_key, info.upload_id, &found, &e)
                      : 0;
    if (aborted == 1) {
        /* Keeping the lease would only repeat this warning at every cleaning, forever. */
        dc_log_warn("%s; the server cannot abort uploads: a bucket lifecycle rule "
                    "AbortIncompleteMultipartUpload must remove its parts",
                    e.message);
    } else if (aborted != 0) {
        dc_log_warn("%s; the next cleaning tries again", e.message);
        lease_info_free(&info);
        return 0;
    }
    if (found)
        dc_log_info("store %s: aborted the multipart upload of %s its writer left (upload %s)",
                    s->base.url, info.upload_key, info.upload_id);
    bool deleted = lease_unchanged(s, item->key, &info) &&
                   delete_full_key(s, item->key, "deleting an expired lease", &e) == 0;
    if (found || deleted)
        (*cc->removed)++;
    lease_info_free(&info);
    return 0;
}

static int abort_stale_uploads(s3_store_t *s, int *removed, dc_error_t *err)
{
    char *full_prefix = list_prefix(s, "");
    char *enc_prefix = dc_s3_uri_encode(full_prefix, false);
    char *key_marker = NULL, *id_marker = NULL;
    int rc = 0;
    do {
        char *query;
        if (key_marker != NULL) {
            char *k = dc_s3_uri_encode(key_marker, false);
            char *u = dc_s3_uri_encode(id_marker ? id_marker : "", false);
            query = dc_sprintf("key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=", k,
                               enc_prefix, u);
            free(k);
            free(u);
        } else {
            query = dc_sprintf("prefix=%s&uploads=", enc_prefix);
        }
        s3_response_t r = {.body_max = MAX_LIST_BODY};
        s3_call_t c = {.method = "GET", .query = query, .what = "listing multipart uploads"};
        dc_error_t inner;
        rc = s3_call(s, &c, &r, &inner);
        free(query);
        free(key_marker);
        free(id_marker);
        key_marker = id_marker = NULL;
        if (rc != 0) {
            /* Some S3-compatible servers cannot list uploads: nothing to clean that way. */
            if (not_supported(&r)) {
                /* The upload leases name their uploads: clean_lease finds them that way. */
                dc_log_debug("store %s cannot list multipart uploads: %s", s->base.url,
                             inner.message);
                rc = 0;
            } else if (r.status == 403) {
                /* Credentials allowed to back up need not be allowed to list uploads. */
                dc_log_warn("store %s: cannot look for abandoned multipart uploads (%s); allow "
                            "s3:ListBucketMultipartUploads, or let a bucket lifecycle rule abort "
                            "them",
                            s->base.url, r.s3_code ? r.s3_code : "access denied");
                rc = 0;
            } else {
                *err = inner;
            }
            response_free(&r);
            break;
        }
        /* The uploads' Initiated is the server's clock: their age is judged on it too. */
        time_t server_now = r.date > 0 ? r.date : time(NULL);
        dc_s3_uploads_page_t page;
        if (dc_s3_parse_uploads(r.body.data ? r.body.data : "", r.body.len, &page) != 0) {
            response_free(&r);
            rc = dc_error_set(err, "store %s: the server's list of uploads cannot be read",
                              s->base.url);
            break;
        }
        response_free(&r);
        for (size_t i = 0; i < page.count; i++) {
            struct dc_s3_upload_item *u = &page.items[i];
            if (u->initiated != (time_t)-1 && u->initiated > server_now - UPLOAD_GRACE_S)
                continue;
            char *name = upload_lease_name(u->upload_id);
            bool held = lease_held(s, name, NULL);
            free(name);
            if (held)
                continue;
            bool found = false;
            dc_error_t e;
            if (abort_upload_id(s, u->key, u->upload_id, &found, &e) != 0)
                dc_log_warn("%s; the next cleaning tries again", e.message);
            else if (found)
                (*removed)++;
        }
        if (page.truncated) {
            key_marker = dc_strdup(page.next_key_marker);
            id_marker = page.next_upload_id_marker ? dc_strdup(page.next_upload_id_marker) : NULL;
        }
        dc_s3_uploads_page_free(&page);
    } while (key_marker != NULL);
    free(enc_prefix);
    free(full_prefix);
    return rc;
}

static int s3_cleanup_temporary(dc_store_t *store, int *removed, dc_error_t *err)
{
    s3_store_t *s = as_s3(store);
    if (abort_stale_uploads(s, removed, err) != 0)
        return -1;
    char *leases = list_prefix(s, LEASE_DIR);
    clean_ctx_t cc = {removed};
    int rc = list_raw(s, leases, clean_lease, &cc, err);
    free(leases);
    return rc;
}

/* Writes and deletes a probe object: proves the credentials, the bucket and the permissions
 * before a command starts work. */
static int s3_check_writable(dc_store_t *store, dc_error_t *err)
{
    s3_store_t *s = as_s3(store);
    uint8_t rnd[6];
    char hex[13];
    RAND_bytes(rnd, sizeof(rnd));
    dc_hex_encode(rnd, sizeof(rnd), hex);
    char *rel = dc_sprintf(".probe/%s", hex);
    char *full = dc_s3_full_key(s->prefix, rel);
    s3_response_t r = {0};
    s3_call_t c = {.method = "PUT",
                   .full_key = full,
                   .body = "probe",
                   .body_len = 5,
                   .content_type = "application/octet-stream",
                   .what = "writing a probe object"};
    int rc = s3_call(s, &c, &r, err);
    response_free(&r);
    if (rc == 0)
        rc = delete_full_key(s, full, "deleting a probe object", err);
    free(full);
    free(rel);
    return rc;
}

static void s3_close(dc_store_t *store)
{
    s3_store_t *s = as_s3(store);
    if (s->share != NULL)
        curl_share_cleanup(s->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&s->share_locks[i]);
    free(s->bucket);
    free(s->prefix);
    free(s->endpoint);
    free(s->endpoint_origin);
    free(s->region);
    free(s->sigv4);
    free(s->access_key);
    free(s->access_key_origin);
    free(s->secret);
    free(s->secret_origin);
    free(s->token);
    free(s->ca_file);
    free(s->base.url);
    free(s);
}

static void s3_expect_size(dc_store_t *store, uint64_t bytes)
{
    as_s3(store)->expected_bytes = bytes;
}

static const dc_store_ops_t s3_ops = {
    .writer_open = s3_writer_open,
    .writer_write = s3_writer_write,
    .writer_commit = s3_writer_commit,
    .writer_abort = s3_writer_abort,
    .reader_open = s3_reader_open,
    .reader_open_range = s3_reader_open_range,
    .reader_read = s3_reader_read,
    .reader_close = s3_reader_close,
    .list = s3_list,
    .exists = s3_exists,
    .remove = s3_remove,
    .lease_acquire = s3_lease_acquire,
    .lease_release = s3_lease_release,
    .lease_is_held = s3_lease_is_held,
    .lease_check = s3_lease_check,
    .cleanup_temporary = s3_cleanup_temporary,
    .check_writable = s3_check_writable,
    .free_space = NULL,
    .expect_size = s3_expect_size,
    .close = s3_close,
};

/* ---- opening ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The first of: a configured value, then the environment variables. */
static const char *pick(const char *configured, const char *configured_origin, const char *env1,
                        const char *env2, const char **origin)
{
    if (configured != NULL) {
        *origin = configured_origin ? configured_origin : "the configuration";
        return configured;
    }
    const char *names[] = {env1, env2};
    for (int i = 0; i < 2; i++) {
        const char *v = names[i] ? getenv(names[i]) : NULL;
        if (v != NULL && *v != '\0') {
            *origin = names[i];
            return v;
        }
    }
    return NULL;
}

static char *read_secret_file(const char *path, dc_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        dc_error_set(err,
                     "cannot read the secret access key file %s ([s3] "
                     "secret_access_key_file): %s",
                     path, strerror(errno));
        return NULL;
    }
    char line[512] = "";
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n == 0) {
        dc_error_set(err, "the secret access key file %s is empty", path);
        return NULL;
    }
    char *secret = dc_strdup(line);
    memset(line, 0, sizeof(line));
    return secret;
}

int dc_store_s3_open(const char *url, dc_store_t **out, dc_error_t *err)
{
    char *bucket = NULL, *prefix = NULL;
    const char *why = NULL;
    if (dc_s3_parse_url(url, &bucket, &prefix, &why) != 0)
        return dc_error_set(err, "invalid store URL '%s': %s; use s3://bucket/prefix", url, why);
    pthread_once(&curl_once, curl_init_once);
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    if (cv->version_num < 0x074b00) { /* 7.75.0: CURLOPT_AWS_SIGV4 */
        free(bucket);
        free(prefix);
        return dc_error_set(err, "store %s needs libcurl 7.75 or newer (this one is %s)", url,
                            cv->version);
    }

    s3_store_t *s = dc_calloc(1, sizeof(*s));
    s->base.ops = &s3_ops;
    s->base.url = dc_strdup(url);
    s->bucket = bucket;
    s->prefix = prefix;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&s->share_locks[i], NULL);

    const char *origin = NULL;
    const char *region =
        pick(settings.region, "[s3] region", "AWS_REGION", "AWS_DEFAULT_REGION", &origin);
    s->region = dc_strdup(region ? region : "us-east-1");
    for (const char *p = s->region; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            dc_error_set(err, "invalid S3 region '%s' (from %s)", s->region, origin ? origin : "?");
            goto fail;
        }
    }
    s->sigv4 = dc_sprintf("aws:amz:%s:s3", s->region);

    const char *endpoint = pick(settings.endpoint, settings.endpoint_origin, "AWS_ENDPOINT_URL_S3",
                                "AWS_ENDPOINT_URL", &origin);
    if (endpoint != NULL) {
        if (!dc_str_starts_with(endpoint, "https://") && !dc_str_starts_with(endpoint, "http://")) {
            dc_error_set(err, "invalid S3 endpoint '%s' (from %s): use https://host[:port]",
                         endpoint, origin);
            goto fail;
        }
        s->endpoint = dc_strdup(endpoint);
        size_t n = strlen(s->endpoint);
        while (n > 0 && s->endpoint[n - 1] == '/')
            s->endpoint[--n] = '\0';
        s->endpoint_origin = dc_strdup(origin);
    } else {
        s->endpoint = dc_sprintf("https://s3.%s.amazonaws.com", s->region);
        s->endpoint_origin = dc_strdup("the default for region; set AWS_ENDPOINT_URL_S3 or [s3] "
                                       "endpoint");
    }
    /* A bucket with dots cannot be a TLS host name under a wildcard certificate, and an
     * endpoint given as an IP address or localhost has no names under it. */
    const char *host = strstr(s->endpoint, "://") + 3;
    size_t host_len = strcspn(host, ":/");
    bool by_address = (host_len == 9 && strncmp(host, "localhost", 9) == 0) ||
                      strspn(host, "0123456789.") == host_len || host[0] == '[';
    s->path_style = settings.path_style || strchr(bucket, '.') != NULL || by_address;

    const char *key = pick(settings.access_key_id, settings.access_key_id_origin,
                           "AWS_ACCESS_KEY_ID", NULL, &origin);
    if (key == NULL) {
        dc_error_set(err,
                     "store %s: no S3 credentials: set AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY, or [s3] access_key_id and "
                     "secret_access_key_file in the config file",
                     url);
        goto fail;
    }
    s->access_key = dc_strdup(key);
    s->access_key_origin = dc_strdup(origin);
    if (settings.secret_access_key_file != NULL) {
        s->secret = read_secret_file(settings.secret_access_key_file, err);
        if (s->secret == NULL)
            goto fail;
        s->secret_origin = dc_sprintf("the file %s", settings.secret_access_key_file);
    } else {
        const char *secret = pick(settings.secret_access_key, settings.secret_access_key_origin,
                                  "AWS_SECRET_ACCESS_KEY", NULL, &origin);
        if (secret == NULL) {
            dc_error_set(err,
                         "store %s: no secret access key: set AWS_SECRET_ACCESS_KEY or "
                         "[s3] secret_access_key_file",
                         url);
            goto fail;
        }
        s->secret = dc_strdup(secret);
        s->secret_origin = dc_strdup(origin);
    }
    dc_secret_register(s->secret);
    const char *token =
        pick(settings.session_token, "[s3] session_token", "AWS_SESSION_TOKEN", NULL, &origin);
    if (token != NULL) {
        s->token = dc_strdup(token);
        dc_secret_register(s->token);
    }
    const char *ca = pick(settings.ca_file, "[s3] ca_file", "AWS_CA_BUNDLE", NULL, &origin);
    s->ca_file = ca ? dc_strdup(ca) : NULL;
    s->part_size = (size_t)settings.part_size;
    if (s->part_size != 0 && s->part_size < MIN_PART_SIZE) {
        dc_error_set(err, "[s3] part_size must be at least 5MiB (S3's smallest part)");
        goto fail;
    }
    uint64_t timeout_ms = settings.timeout_ms ? settings.timeout_ms : DEFAULT_TIMEOUT_MS;
    s->timeout_s = (long)((timeout_ms + 999) / 1000);
    s->max_attempts = settings.max_attempts;
    if (s->max_attempts <= 0) {
        const char *env = getenv("AWS_MAX_ATTEMPTS");
        long n = 0;
        s->max_attempts = env && dc_parse_int(env, 1, 100, &n) == 0 ? (int)n : DEFAULT_ATTEMPTS;
    }

    s->share = curl_share_init();
    curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    *out = &s->base;
    return 0;
fail:
    s3_close(&s->base);
    return -1;
}
