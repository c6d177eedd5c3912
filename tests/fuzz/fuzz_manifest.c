/* libFuzzer target: the manifest reader (dc_manifest_from_json) on arbitrary bytes. A manifest
 * it accepts must serialise again and read back (what a verify or a restore does with it). */
#include "deployctl/snapshot.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dc_log_configure(DC_LOG_ERROR, DC_LOG_TEXT);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_manifest_t *m = NULL;
    dc_error_t err = {0};
    if (dc_manifest_from_json((const char *)data, size, &m, &err) != 0) {
        if (err.message[0] == '\0' || m != NULL) {
            fprintf(stderr, "a refusal without a reason, or with a manifest: '%s'\n", err.message);
            abort(); /* a refusal always says why, and leaves nothing behind */
        }
        return 0;
    }
    (void)dc_manifest_total_rows(m);
    (void)dc_manifest_total_raw_bytes(m);
    char *json = dc_manifest_to_json(m);
    if (json != NULL) {
        dc_manifest_t *again = NULL;
        if (dc_manifest_from_json(json, strlen(json), &again, &err) != 0) {
            fprintf(stderr, "an accepted manifest does not read back: %s\n", err.message);
            abort();
        }
        dc_manifest_free(again);
        free(json);
    }
    dc_manifest_free(m);
    return 0;
}
