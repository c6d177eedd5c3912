/* Snapshot keys: reading one (a file that only its owner may read, or an environment value),
 * deriving the subkeys with HKDF-SHA256, naming it by a public id, and wiping it after use.
 * Not the cipher itself (src/stream/aes_gcm.c). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/crypto.h"
#include "deployctl/util.h"

#define KEY_FILE_MAX 256 /* more than any form of a 32-byte key */

static const char KDF_SALT[] = "deployctl snapshot key";

static int hkdf(const uint8_t key[DC_KEY_BYTES], const char *label, uint8_t *out, size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, DC_KEY_BYTES),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)KDF_SALT,
                                          sizeof(KDF_SALT) - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label)),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx != NULL && EVP_KDF_derive(ctx, out, len, params) > 0;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

int dc_key_from_bytes(const uint8_t key[DC_KEY_BYTES], dc_key_t **out, dc_error_t *err)
{
    dc_key_t *k = dc_calloc(1, sizeof(*k));
    uint8_t id[8];
    if (hkdf(key, "deployctl v1 member encryption", k->data, sizeof(k->data)) != 0 ||
        hkdf(key, "deployctl v1 manifest mac", k->manifest, sizeof(k->manifest)) != 0 ||
        hkdf(key, "deployctl v1 raw digest mac", k->raw, sizeof(k->raw)) != 0 ||
        hkdf(key, "deployctl v1 key id", id, sizeof(id)) != 0) {
        dc_key_free(k);
        return dc_error_set(err, "cannot derive the snapshot key's subkeys (OpenSSL HKDF)");
    }
    dc_hex_encode(id, sizeof(id), k->id);
    *out = k;
    return 0;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 64 hex digits, or the 44 characters of base64; 0 when it is one of them. */
static int decode_text(const char *s, size_t n, uint8_t key[DC_KEY_BYTES])
{
    if (n == 2 * DC_KEY_BYTES) {
        for (size_t i = 0; i < DC_KEY_BYTES; i++) {
            int hi = hex_value((unsigned char)s[2 * i]),
                lo = hex_value((unsigned char)s[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            key[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
    }
    if (n != 44 || s[43] != '=' || s[42] == '=')
        return -1;
    uint8_t decoded[33];
    int got = EVP_DecodeBlock(decoded, (const unsigned char *)s, 44);
    int ok = got == 33; /* the padding counts as a zero byte */
    if (ok)
        memcpy(key, decoded, DC_KEY_BYTES);
    OPENSSL_cleanse(decoded, sizeof(decoded));
    return ok ? 0 : -1;
}

int dc_key_parse(const char *text, size_t len, int raw_ok, const char *what, dc_key_t **out,
                 dc_error_t *err)
{
    uint8_t key[DC_KEY_BYTES];
    const char *s = text;
    size_t n = len;
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    int rc = decode_text(s, n, key);
    if (rc != 0 && raw_ok && len == DC_KEY_BYTES) {
        memcpy(key, text, DC_KEY_BYTES);
        rc = 0;
    }
    if (rc != 0)
        return dc_error_set(err,
                            "%s is not a 32-byte key: give 64 hex digits or 44 characters of "
                            "base64%s (e.g. made by 'openssl rand -hex 32')",
                            what, raw_ok ? ", or exactly 32 raw bytes" : "");
    rc = dc_key_from_bytes(key, out, err);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int dc_key_load_file(const char *path, dc_key_t **out, dc_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return dc_error_set(err, "cannot open the encryption key file %s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dc_error_set(err, "the encryption key file %s is not a regular file", path);
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        return dc_error_set(err,
                            "the encryption key file %s may be read by group or others (mode "
                            "%04o): make it private with 'chmod 600 %s'",
                            path, (unsigned)(st.st_mode & 07777), path);
    }
    char buf[KEY_FILE_MAX + 1];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf))
            break;
    }
    close(fd);
    char *what = dc_sprintf("the encryption key file %s", path);
    int rc = len > KEY_FILE_MAX ? dc_error_set(err, "%s is too long to hold a 32-byte key", what)
                                : dc_key_parse(buf, len, 1, what, out, err);
    OPENSSL_cleanse(buf, sizeof(buf));
    free(what);
    return rc;
}

int dc_key_resolve(const char *file, const char *value, const char *value_origin, dc_key_t **out,
                   dc_error_t *err)
{
    *out = NULL;
    if (file != NULL && *file != '\0')
        return dc_key_load_file(file, out, err);
    if (value == NULL || *value == '\0')
        return 0;
    char *what = dc_sprintf("the encryption key in %s", value_origin ? value_origin : "?");
    int rc = dc_key_parse(value, strlen(value), 0, what, out, err);
    free(what);
    return rc;
}

void dc_key_free(dc_key_t *k)
{
    if (k == NULL)
        return;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

void dc_hmac_sha256(const uint8_t key[DC_KEY_BYTES], const void *data, size_t len, uint8_t out[32])
{
    size_t n = 0;
    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, DC_KEY_BYTES, data, len, out, 32, &n);
}
