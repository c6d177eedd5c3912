/* libFuzzer target: what the s3:// driver parses out of a server's answers (src/store/s3_util.c):
 * ListObjectsV2 and ListMultipartUploads pages, error bodies (<Code>, <Message>, <Region>), the
 * <UploadId> of a multipart start, the <Error> a CompleteMultipartUpload may return after a 200,
 * timestamps, entities; and the input as an s3:// store URL. The input is passed with its exact
 * length and no NUL after it, as a response body is, so a read past its end is caught. */
#include "../../src/store/s3_intern.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dc_log_configure(DC_LOG_ERROR, DC_LOG_TEXT);
    return 0;
}

static void parse_pages(const char *xml, size_t len)
{
    dc_s3_list_page_t list;
    memset(&list, 0, sizeof(list));
    if (dc_s3_parse_list(xml, len, &list) == 0) {
        for (size_t i = 0; i < list.count; i++) {
            if (list.items[i].key == NULL)
                abort();
        }
    }
    dc_s3_list_page_free(&list);
    dc_s3_uploads_page_t uploads;
    memset(&uploads, 0, sizeof(uploads));
    if (dc_s3_parse_uploads(xml, len, &uploads) == 0) {
        for (size_t i = 0; i < uploads.count; i++) {
            if (uploads.items[i].key == NULL)
                abort();
        }
    }
    dc_s3_uploads_page_free(&uploads);
}

static void parse_error_fields(const char *xml, size_t len)
{
    static const char *const fields[] = {"Code",     "Message", "Region",
                                         "UploadId", "ETag",    "LastModified"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char *text = dc_s3_xml_text(xml, len, fields[i]);
        if (text != NULL) {
            (void)dc_s3_parse_time(text);
            (void)dc_s3_retryable(0, 503, text);
            char *escaped = dc_s3_xml_escape(text);
            free(escaped);
        }
        free(text);
    }
    const char *cur = xml, *inner;
    size_t n;
    while (dc_s3_xml_next(&cur, xml + len, "Error", &inner, &n)) {
        if (inner < xml || inner + n > xml + len || cur > xml + len)
            abort(); /* a span outside the body */
    }
}

static void parse_url(const uint8_t *data, size_t size)
{
    char *url = fuzz_string(data, size);
    char *bucket = NULL, *prefix = NULL;
    const char *why = NULL;
    if (dc_s3_parse_url(url, &bucket, &prefix, &why) == 0) {
        if (bucket == NULL || bucket[0] == '\0')
            abort(); /* an accepted URL names a bucket */
        char *key = dc_s3_full_key(prefix, "db/20261125T013259Z-0f9a/manifest.json");
        char *object = dc_s3_object_url("http://127.0.0.1:9000", bucket, false, key);
        char *encoded = dc_s3_uri_encode(key, true);
        free(encoded);
        free(object);
        free(key);
    } else if (why == NULL) {
        abort(); /* a refusal says why */
    }
    free(bucket);
    free(prefix);
    free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: libFuzzer's buffer is already one, but say so. */
    char *xml = malloc(size ? size : 1);
    if (xml == NULL)
        abort();
    memcpy(xml, data, size);
    parse_pages(xml, size);
    parse_error_fields(xml, size);
    char *text = dc_s3_xml_unescape(xml, size);
    free(text);
    free(xml);
    parse_url(data, size);
    return 0;
}
