/* ksmtop's per-tick read of tracked processes, in C: the three preads (stat, statm, ksm_stat) and their parsing,
 * for every process in one call, without the Python objects of three reads and their splits.
 *
 * Built by cffi in API mode (procread_build.py) into ksmtop.collect._procread when pip installs ksmtop; the
 * Python loop in procfs.py stays as the fallback, and it reads any process this code does not understand
 * (KSMTOP_PYTHON): unusual text takes the path that knows every case.
 *
 * A row of KSMTOP_ROW int64 per process: see the KSMTOP_AT_* indexes in procread_build.py's CDEF.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define KSMTOP_BUFFER 4096

/* The next whitespace-separated word of [*at, end): its start and length; 0 when there is none. */
static size_t next_word(const char **at, const char *end, const char **word)
{
    const char *p = *at;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t'))
        p++;
    const char *start = p;
    while (p < end && *p != ' ' && *p != '\n' && *p != '\t')
        p++;
    *at = p;
    *word = start;
    return (size_t)(p - start);
}

/* A whole word as a decimal integer (an optional '-', then digits, no overflow); 0 when it is not one. */
static int word_int(const char *word, size_t length, int64_t *value)
{
    size_t i = 0;
    int negative = 0;
    if (length && word[0] == '-') {
        negative = 1;
        i = 1;
    }
    if (i == length || length - i > 18)
        return 0;
    int64_t number = 0;
    for (; i < length; i++) {
        if (word[i] < '0' || word[i] > '9')
            return 0;
        number = number * 10 + (word[i] - '0');
    }
    *value = negative ? -number : number;
    return 1;
}

/* /proc/PID/stat: the fields after the last ')' (comm may hold anything). */
static int parse_stat(const char *text, size_t size, int64_t *row)
{
    const char *close = NULL;
    for (const char *p = text + size; p > text; p--)
        if (p[-1] == ')') {
            close = p - 1;
            break;
        }
    if (close == NULL)
        return KSMTOP_PYTHON;
    const char *at = close + 1, *end = text + size, *word;
    /* field 0 is the state; minflt 7, majflt 9, utime 11, stime 12, starttime 19 (as procfs.parse_stat) */
    int64_t utime = 0, stime = 0, number;
    for (int field = 0; field <= 19; field++) {
        size_t length = next_word(&at, end, &word);
        if (length == 0)
            return KSMTOP_PYTHON;
        if (field == 0) {
            row[KSMTOP_AT_STATE] = (unsigned char)word[0];
            continue;
        }
        if (field != 7 && field != 9 && field != 11 && field != 12 && field != 19)
            continue;
        if (!word_int(word, length, &number))
            return KSMTOP_PYTHON;
        switch (field) {
        case 7: row[KSMTOP_AT_MINFLT] = number; break;
        case 9: row[KSMTOP_AT_MAJFLT] = number; break;
        case 11: utime = number; break;
        case 12: stime = number; break;
        default: row[KSMTOP_AT_START] = number; break;
        }
    }
    row[KSMTOP_AT_CPU_TICKS] = utime + stime;
    return KSMTOP_OK;
}

/* /proc/PID/statm: size resident shared ... (pages). */
static int parse_statm(const char *text, size_t size, int64_t *row)
{
    const char *at = text, *end = text + size, *word;
    int64_t values[3];
    for (int field = 0; field < 3; field++) {
        size_t length = next_word(&at, end, &word);
        if (!word_int(word, length, &values[field]))
            return KSMTOP_PYTHON;
    }
    row[KSMTOP_AT_RSS_PAGES] = values[1];
    row[KSMTOP_AT_SHARED_PAGES] = values[2];
    return KSMTOP_OK;
}

/* /proc/PID/ksm_stat: one "name value" pair per line; names it does not know are skipped, as in Python. */
static int parse_ksm_stat(const char *text, size_t size, int64_t *row)
{
#define KEY(name) name, sizeof name - 1
    static const struct {
        const char *name;
        size_t length;
        int at, bit, flag;
    } keys[] = {
        {KEY("ksm_merging_pages"), KSMTOP_AT_MERGING, KSMTOP_HAS_MERGING, 0},
        {KEY("ksm_zero_pages"), KSMTOP_AT_ZERO, KSMTOP_HAS_ZERO, 0},
        {KEY("ksm_rmap_items"), KSMTOP_AT_RMAP, KSMTOP_HAS_RMAP, 0},
        {KEY("ksm_process_profit"), KSMTOP_AT_PROFIT, KSMTOP_HAS_PROFIT, 0},
        {KEY("ksm_mergeable:"), KSMTOP_AT_MERGEABLE, KSMTOP_HAS_MERGEABLE, 1},
        {KEY("ksm_merge_any:"), KSMTOP_AT_MERGE_ANY, KSMTOP_HAS_MERGE_ANY, 1},
    };
#undef KEY
    const char *line = text, *end = text + size;
    while (line < end) {
        const char *newline = memchr(line, '\n', (size_t)(end - line));
        if (newline == NULL)
            return KSMTOP_PYTHON; /* a last line without its newline: not the kernel's format */
        const char *at = line, *name, *value, *extra;
        size_t name_length = next_word(&at, newline, &name);
        size_t value_length = next_word(&at, newline, &value);
        if (name_length == 0 || value_length == 0 || next_word(&at, newline, &extra) != 0)
            return KSMTOP_PYTHON; /* not one pair on this line */
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            if (keys[k].length != name_length || memcmp(name, keys[k].name, name_length) != 0)
                continue;
            if (keys[k].flag) {
                row[keys[k].at] = value_length == 3 && memcmp(value, "yes", 3) == 0;
            } else if (!word_int(value, value_length, &row[keys[k].at])) {
                return KSMTOP_PYTHON;
            }
            row[KSMTOP_AT_PRESENT] |= keys[k].bit;
        }
        line = newline + 1;
    }
    return KSMTOP_OK;
}

int ksmtop_parse(const char *stat, size_t stat_size, const char *statm, size_t statm_size, int ksm_kind,
                 const char *ksm, size_t ksm_size, int64_t start_ticks, int64_t *row)
{
    memset(row, 0, KSMTOP_ROW * sizeof *row);
    int status = parse_stat(stat, stat_size, row);
    if (status == KSMTOP_OK
        && (row[KSMTOP_AT_START] != start_ticks || row[KSMTOP_AT_STATE] == 'Z' || row[KSMTOP_AT_STATE] == 'X'))
        status = KSMTOP_GONE; /* another process with the same PID, or an exited one */
    if (status != KSMTOP_OK) {
        row[KSMTOP_AT_STATUS] = status;
        return status;
    }
    status = parse_statm(statm, statm_size, row);
    if (status == KSMTOP_OK && ksm_kind == KSMTOP_KSM_STAT)
        status = parse_ksm_stat(ksm, ksm_size, row);
    if (status == KSMTOP_OK && ksm_kind == KSMTOP_KSM_MERGING_PAGES) {
        const char *at = ksm, *word;
        size_t length = next_word(&at, ksm + ksm_size, &word);
        if (!word_int(word, length, &row[KSMTOP_AT_MERGING]))
            status = KSMTOP_PYTHON;
        row[KSMTOP_AT_PRESENT] = KSMTOP_HAS_MERGING;
    }
    row[KSMTOP_AT_STATUS] = status;
    return status;
}

/* One read of a whole small proc file; -1 when it failed, -2 when it filled the buffer (maybe cut short). */
static ssize_t read_whole(int fd, char *buffer)
{
    ssize_t size = pread(fd, buffer, KSMTOP_BUFFER, 0);
    if (size < 0)
        return -1;
    return size == KSMTOP_BUFFER ? -2 : size;
}

void ksmtop_sample(const int *fds, size_t count, const int64_t *start_ticks, int64_t *rows)
{
    char stat[KSMTOP_BUFFER], statm[KSMTOP_BUFFER], ksm[KSMTOP_BUFFER];
    for (size_t i = 0; i < count; i++) {
        const int *process = fds + i * KSMTOP_FDS;
        int64_t *row = rows + i * KSMTOP_ROW;
        int ksm_kind = process[3];
        ssize_t stat_size = read_whole(process[0], stat), statm_size = -1, ksm_size = 0;
        if (stat_size >= 0)
            statm_size = read_whole(process[1], statm);
        if (stat_size >= 0 && statm_size >= 0 && ksm_kind != KSMTOP_KSM_NONE)
            ksm_size = read_whole(process[2], ksm);
        if (stat_size < 0 || statm_size < 0 || ksm_size < 0) {
            memset(row, 0, KSMTOP_ROW * sizeof *row);
            /* a failed read: the Python path reads it again and drops the process as it always has */
            row[KSMTOP_AT_STATUS] = KSMTOP_PYTHON;
            continue;
        }
        ksmtop_parse(stat, (size_t)stat_size, statm, (size_t)statm_size, ksm_kind, ksm, (size_t)ksm_size,
                     start_ticks[i], row);
    }
}
