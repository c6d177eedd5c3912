/* libFuzzer target: the INI config reader (inih through dc_config_load_file) and the value
 * checks of dc_config_finish, on an arbitrary config file. */
#include "deployctl/config.h"
#include "fuzz_common.h"

static char config_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("config");
    snprintf(config_path, sizeof(config_path), "%s/deployctl.conf", fuzz_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_config_t cfg;
    dc_error_t err = {0};
    fuzz_write_file(config_path, data, size);
    dc_config_init(&cfg);
    int rc = dc_config_load_file(&cfg, config_path, &err);
    if (rc == 0)
        rc = dc_config_finish(&cfg, &err);
    if (rc != 0 && err.message[0] == '\0')
        abort(); /* a refusal always says why */
    if (rc == 0) {
        /* What commands then read: every typed getter on every option of its type. */
        for (int id = 0; id < DC_OPT_COUNT; id++) {
            const dc_option_t *o = &dc_options[id];
            if (dc_config_get(&cfg, (dc_opt_id_t)id) == NULL)
                continue;
            switch (o->type) {
            case DC_TYPE_BOOL:
                (void)dc_config_flag(&cfg, (dc_opt_id_t)id);
                break;
            case DC_TYPE_INT:
                (void)dc_config_int(&cfg, (dc_opt_id_t)id);
                break;
            case DC_TYPE_SIZE:
                (void)dc_config_size(&cfg, (dc_opt_id_t)id);
                break;
            case DC_TYPE_DURATION:
                (void)dc_config_duration_ms(&cfg, (dc_opt_id_t)id);
                break;
            default:
                break;
            }
        }
    }
    dc_config_free(&cfg);
    return 0;
}
