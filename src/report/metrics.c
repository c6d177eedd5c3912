/* The Prometheus textfile: read the current file into families of samples, replace or add the
 * samples of this update, write the whole text to a temporary file beside it and rename it
 * over the old one. Lines this code does not understand are kept as they were, as comments
 * are, so a file another tool also writes to survives our updates. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "deployctl/metrics.h"
#include "deployctl/util.h"

#define METRICS_MAX_FILE (4u * 1024 * 1024)

typedef struct sample {
    char *key;   /* name{labels}, as written */
    char *value; /* the value, and the timestamp if one follows */
} sample_t;

typedef struct family {
    char *name;
    char *help; /* escaped as in the file, or NULL */
    char *type; /* or NULL */
    sample_t *samples;
    size_t count;
} family_t;

typedef struct textfile {
    family_t *families;
    size_t count;
} textfile_t;

static bool name_char(char c, bool first)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':' ||
           (!first && isdigit((unsigned char)c));
}

static bool metric_name_valid(const char *name)
{
    if (name == NULL || !name_char(name[0], true))
        return false;
    for (const char *p = name + 1; *p; p++) {
        if (!name_char(*p, false))
            return false;
    }
    return true;
}

static family_t *family_find(textfile_t *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strlen(t->families[i].name) == len && strncmp(t->families[i].name, name, len) == 0)
            return &t->families[i];
    }
    return NULL;
}

static family_t *family_get(textfile_t *t, const char *name, size_t len)
{
    family_t *f = family_find(t, name, len);
    if (f != NULL)
        return f;
    t->families = dc_realloc(t->families, (t->count + 1) * sizeof(family_t));
    f = &t->families[t->count++];
    memset(f, 0, sizeof(*f));
    f->name = dc_strndup(name, len);
    return f;
}

static void family_set_sample(family_t *f, const char *key, const char *value)
{
    for (size_t i = 0; i < f->count; i++) {
        if (strcmp(f->samples[i].key, key) == 0) {
            free(f->samples[i].value);
            f->samples[i].value = dc_strdup(value);
            return;
        }
    }
    f->samples = dc_realloc(f->samples, (f->count + 1) * sizeof(sample_t));
    f->samples[f->count].key = dc_strdup(key);
    f->samples[f->count].value = dc_strdup(value);
    f->count++;
}

static void textfile_free(textfile_t *t)
{
    for (size_t i = 0; i < t->count; i++) {
        family_t *f = &t->families[i];
        for (size_t j = 0; j < f->count; j++) {
            free(f->samples[j].key);
            free(f->samples[j].value);
        }
        free(f->samples);
        free(f->name);
        free(f->help);
        free(f->type);
    }
    free(t->families);
    memset(t, 0, sizeof(*t));
}

/* "# HELP name text" or "# TYPE name type": the family's header. Other comments are dropped
 * (they are rewritten from the headers). */
static void parse_comment(textfile_t *t, const char *line)
{
    const char *p = line + 1;
    p += strspn(p, " \t");
    bool help = strncmp(p, "HELP ", 5) == 0, type = strncmp(p, "TYPE ", 5) == 0;
    if (!help && !type)
        return;
    p += 5;
    p += strspn(p, " \t");
    size_t len = 0;
    while (name_char(p[len], len == 0))
        len++;
    if (len == 0)
        return;
    family_t *f = family_get(t, p, len);
    const char *text = p + len + strspn(p + len, " \t");
    char **slot = help ? &f->help : &f->type;
    free(*slot);
    *slot = dc_strdup(text);
}

/* "name{label="value",...} value [timestamp]": the key runs to the closing brace (quoted label
 * values may hold braces and escaped quotes). A histogram's _bucket/_sum/_count samples belong
 * to the family declared above them. */
static void parse_sample(textfile_t *t, const char *line, const family_t *declared)
{
    size_t len = 0;
    while (name_char(line[len], len == 0))
        len++;
    if (len == 0)
        return;
    size_t end = len;
    if (line[end] == '{') {
        bool quoted = false;
        for (end++; line[end] && (quoted || line[end] != '}'); end++) {
            if (quoted && line[end] == '\\' && line[end + 1])
                end++;
            else if (line[end] == '"')
                quoted = !quoted;
        }
        if (line[end] != '}')
            return;
        end++;
    }
    const char *value = line + end + strspn(line + end, " \t");
    if (*value == '\0')
        return;
    family_t *f = family_find(t, line, len);
    if (f == NULL && declared != NULL && declared->type != NULL &&
        (strcmp(declared->type, "histogram") == 0 || strcmp(declared->type, "summary") == 0) &&
        strncmp(line, declared->name, strlen(declared->name)) == 0)
        f = family_find(t, declared->name, strlen(declared->name));
    if (f == NULL)
        f = family_get(t, line, len);
    char *key = dc_strndup(line, end);
    family_set_sample(f, key, value);
    free(key);
}

static void textfile_parse(textfile_t *t, char *text)
{
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        line += strspn(line, " \t");
        if (*line == '#')
            parse_comment(t, line);
        else if (*line != '\0')
            parse_sample(t, line, t->count ? &t->families[t->count - 1] : NULL);
    }
}

/* Label values escape backslash, double quote and newline; HELP text backslash and newline. */
static void append_escaped(dc_buf_t *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            dc_buf_append(b, "\\\\", 2);
        else if (*s == '\n')
            dc_buf_append(b, "\\n", 2);
        else if (*s == '"' && quote)
            dc_buf_append(b, "\\\"", 2);
        else
            dc_buf_append(b, s, 1);
    }
}

static void format_value(double v, char *out, size_t size)
{
    if (isnan(v))
        snprintf(out, size, "NaN");
    else if (isinf(v))
        snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
    else if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
        snprintf(out, size, "%lld", (long long)v);
    else
        snprintf(out, size, "%.6f", v);
}

static void textfile_apply(textfile_t *t, const dc_metric_t *m)
{
    family_t *f = family_get(t, m->name, strlen(m->name));
    dc_buf_t help = {0}, key = {0};
    append_escaped(&help, m->help ? m->help : m->name, false);
    free(f->help);
    f->help = dc_strndup(help.data ? help.data : "", help.len);
    free(f->type);
    f->type = dc_strdup("gauge");
    dc_buf_appendf(&key, "%s", m->name);
    if (m->database != NULL) {
        dc_buf_append(&key, "{database=\"", 11);
        append_escaped(&key, m->database, true);
        dc_buf_append(&key, "\"}", 2);
    }
    char value[64];
    format_value(m->value, value, sizeof(value));
    family_set_sample(f, key.data, value);
    dc_buf_free(&help);
    dc_buf_free(&key);
}

static void textfile_render(const textfile_t *t, dc_buf_t *out)
{
    for (size_t i = 0; i < t->count; i++) {
        const family_t *f = &t->families[i];
        if (f->help != NULL)
            dc_buf_appendf(out, "# HELP %s %s\n", f->name, f->help);
        if (f->type != NULL)
            dc_buf_appendf(out, "# TYPE %s %s\n", f->name, f->type);
        for (size_t j = 0; j < f->count; j++)
            dc_buf_appendf(out, "%s %s\n", f->samples[j].key, f->samples[j].value);
    }
}

/* The directory part of path ("." when it has none), and the file name. */
static void split_path(const char *path, char **dir, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        *dir = dc_strdup(".");
        *base = path;
    } else {
        *dir = slash == path ? dc_strdup("/") : dc_strndup(path, (size_t)(slash - path));
        *base = slash + 1;
    }
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Temporary file beside the target (a hidden name without .prom, which the collector skips),
 * written, fsynced, readable by the collector's user, renamed over the target. */
static int replace_file(const char *path, const char *dir, const char *base, const dc_buf_t *text,
                        dc_error_t *err)
{
    char *tmp = dc_sprintf("%s/.%s.XXXXXX", dir, base);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return dc_error_set(err, "cannot write metrics file %s: %s", path, strerror(e));
    }
    int rc = 0;
    if (write_all(fd, text->data ? text->data : "", text->len) != 0 || fchmod(fd, 0644) != 0 ||
        fsync(fd) != 0)
        rc = dc_error_set(err, "cannot write metrics file %s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = dc_error_set(err, "cannot write metrics file %s: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = dc_error_set(err, "cannot replace metrics file %s: %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    if (rc == 0)
        rc = dc_fsync_dir(dir, err);
    return rc;
}

int dc_metrics_check_path(const char *path, dc_error_t *err)
{
    struct stat st;
    char *dir;
    const char *base;
    if (path == NULL || *path == '\0')
        return dc_error_set(err, "metrics file: empty path; give --metrics-file a file name");
    split_path(path, &dir, &base);
    int rc = 0;
    if (*base == '\0' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        rc = dc_error_set(err,
                          "metrics file %s is a directory; give --metrics-file a file name "
                          "such as %s/deployctl.prom",
                          path, path);
    else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = dc_error_set(err,
                          "metrics file %s: directory %s does not exist; create it (the "
                          "node_exporter textfile directory) or fix --metrics-file",
                          path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        rc = dc_error_set(err,
                          "metrics file %s: directory %s is not writable by this user; "
                          "fix its permissions or --metrics-file",
                          path, dir);
    free(dir);
    return rc;
}

int dc_metrics_update(const char *path, const dc_metric_t *metrics, size_t count, dc_error_t *err)
{
    for (size_t i = 0; i < count; i++) {
        if (!metric_name_valid(metrics[i].name))
            return dc_error_set(err, "invalid metric name '%s'",
                                metrics[i].name ? metrics[i].name : "(null)");
    }
    if (dc_metrics_check_path(path, err) != 0)
        return -1;
    char *dir;
    const char *base;
    split_path(path, &dir, &base);
    /* Another deployctl (a release while the nightly backup runs) updates the same file. */
    int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock >= 0)
        while (flock(lock, LOCK_EX) != 0 && errno == EINTR) {
        }
    char *old = NULL;
    size_t len;
    textfile_t t = {0};
    int rc = dc_read_file(path, METRICS_MAX_FILE, true, &old, &len, err);
    if (rc == 0) {
        if (old != NULL)
            textfile_parse(&t, old);
        for (size_t i = 0; i < count; i++)
            textfile_apply(&t, &metrics[i]);
        dc_buf_t text = {0};
        textfile_render(&t, &text);
        rc = replace_file(path, dir, base, &text, err);
        dc_buf_free(&text);
    }
    free(old);
    textfile_free(&t);
    if (lock >= 0)
        close(lock);
    free(dir);
    return rc;
}

int dc_metrics_release(const char *path, const char *database, int exit_code, double start,
                       double end, dc_error_t *err)
{
    dc_metric_t m[] = {
        {"deployctl_release_last_outcome",
         "Exit code of the last release: 0 released, 2 rolled back, 3 rollback failed, "
         "4 precheck refused, 75 another release held the lock.",
         database, exit_code},
        {"deployctl_release_last_start_timestamp_seconds", "When the last release started.",
         database, start},
        {"deployctl_release_last_end_timestamp_seconds", "When the last release ended.", database,
         end},
        {"deployctl_release_last_duration_seconds", "How long the last release took.", database,
         end - start},
        {"deployctl_release_last_success_timestamp_seconds",
         "When the last release that released (exit 0) ended.", database, end},
    };
    return dc_metrics_update(path, m, exit_code == 0 ? 5 : 4, err);
}

double dc_metrics_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}
