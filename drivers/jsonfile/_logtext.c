/* The json-file fast path's inner loop in C: what `logs` prints for a chunk of json-file records.
 *
 * runs(data, timestamps=False) -> list[tuple[str, bytes]] | None
 *
 * `data` holds whole records in the exact shape Docker and logship write them,
 *
 *     {"log":"<string>","stream":"stdout"|"stderr",["attrs":{"<k>":"<v>",...},]"time":"<string>"}\n
 *
 * (`log` may be absent: an empty piece of a long line). The result is the records' unescaped `log`
 * values joined into runs of one stream, as `runs_of` makes them from decoded messages: a record whose
 * `log` is empty prints nothing and does not break a run; one whose `log` has no newline (a piece of a
 * long line) ends its run. Anything else - another key order, white
 * space, an unknown key, an invalid escape, a lone surrogate, a raw control character, invalid UTF-8,
 * a cut record - gives None, and the caller decodes the chunk with a general JSON decoder instead, so
 * this loop only ever has to be right about the common shape, never lenient.
 *
 * With timestamps (`logs -t`), every record prints `2006-01-02T15:04:05.000000000Z ` and then its log, an
 * empty one included (which then ends its run, having no newline), as the API prints each message; a time
 * not in Docker's own form (UTC "Z", a real calendar day, no leap second) also gives None, as the general
 * path normalizes those.
 *
 * Why C: in Python every record costs at least one object and a few calls (about 0.3 us with msgspec,
 * the fastest decoder found); this loop is a byte scan with no object per record, and it runs without
 * the GIL, so the event loop keeps sending the previous chunk meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

static PyObject *stream_names[2]; /* "stdout", "stderr" */

typedef struct {
    int stream;      /* 0 stdout, 1 stderr */
    Py_ssize_t end;  /* the run's bytes end here in the output buffer */
} run_t;

typedef struct {
    run_t *items;
    Py_ssize_t count, capacity;
} runs_t;

static int push_run(runs_t *runs, int stream, Py_ssize_t end)
{
    if (runs->count == runs->capacity) {
        Py_ssize_t capacity = runs->capacity ? runs->capacity * 2 : 16;
        run_t *items = realloc(runs->items, (size_t)capacity * sizeof(run_t));
        if (items == NULL)
            return -1;
        runs->items = items;
        runs->capacity = capacity;
    }
    runs->items[runs->count].stream = stream;
    runs->items[runs->count].end = end;
    runs->count++;
    return 0;
}

static int hex4(const unsigned char *p, const unsigned char *end)
{
    int value = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        value <<= 4;
        if (c >= '0' && c <= '9')
            value |= c - '0';
        else if (c >= 'a' && c <= 'f')
            value |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            value |= c - 'A' + 10;
        else
            return -1;
    }
    return value;
}

static unsigned char *put_utf8(unsigned char *o, int cp)
{
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | (cp >> 6));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (cp >> 12));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | (cp >> 18));
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Length of the valid UTF-8 sequence at p (a byte >= 0x80), 0 if invalid: no overlong forms, no
 * surrogates, nothing above U+10FFFF (what Python's and orjson's decoders accept). */
static Py_ssize_t utf8_length(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    Py_ssize_t left = end - p;
    if (c >= 0xC2 && c <= 0xDF) {
        return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0)
            return 0; /* a surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* A JSON string's contents from p (just after its opening quote) to its closing quote, unescaped into
 * *out when out is not NULL. Returns the position after the closing quote, NULL if the string is not
 * valid JSON. The output is never longer than the input. */
static const unsigned char *read_string(const unsigned char *p, const unsigned char *end, unsigned char **out)
{
    unsigned char *o = out ? *out : NULL;
    while (p < end) {
        const unsigned char *start = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (o != NULL && p > start) {
            memcpy(o, start, (size_t)(p - start));
            o += p - start;
        }
        if (p >= end)
            return NULL;
        unsigned char c = *p;
        if (c == '"') {
            if (out != NULL)
                *out = o;
            return p + 1;
        }
        if (c < 0x20)
            return NULL; /* raw control characters are not allowed in JSON strings */
        if (c >= 0x80) {
            Py_ssize_t length = utf8_length(p, end);
            if (length == 0)
                return NULL;
            if (o != NULL) {
                memcpy(o, p, (size_t)length);
                o += length;
            }
            p += length;
            continue;
        }
        /* a backslash */
        if (end - p < 2)
            return NULL;
        unsigned char escaped = p[1];
        p += 2;
        unsigned char byte;
        switch (escaped) {
        case '"': byte = '"'; break;
        case '\\': byte = '\\'; break;
        case '/': byte = '/'; break;
        case 'b': byte = '\b'; break;
        case 'f': byte = '\f'; break;
        case 'n': byte = '\n'; break;
        case 'r': byte = '\r'; break;
        case 't': byte = '\t'; break;
        case 'u': {
            int cp = hex4(p, end);
            if (cp < 0)
                return NULL;
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return NULL; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                    return NULL; /* a lone high surrogate */
                int low = hex4(p + 2, end);
                if (low < 0xDC00 || low > 0xDFFF)
                    return NULL;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (o != NULL)
                o = put_utf8(o, cp);
            continue;
        }
        default:
            return NULL;
        }
        if (o != NULL)
            *o++ = byte;
    }
    return NULL;
}

static int digits(const unsigned char *p, int count, int *value)
{
    *value = 0;
    for (int i = 0; i < count; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        *value = *value * 10 + (p[i] - '0');
    }
    return 1;
}

/* Whether a time value (the raw bytes between its quotes) is an RFC 3339 time that the reader's
 * parse_rfc3339nano accepts, in ASCII: a record whose time does not parse is one `decode` skips, so
 * this path must not print it. */
static int valid_time(const unsigned char *p, Py_ssize_t length)
{
    int year, month, day, hour, minute, second, zone;
    if (length < 20 || !digits(p, 4, &year) || p[4] != '-' || !digits(p + 5, 2, &month) || p[7] != '-' ||
        !digits(p + 8, 2, &day) || (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2, &hour) || p[13] != ':' ||
        !digits(p + 14, 2, &minute) || p[16] != ':' || !digits(p + 17, 2, &second))
        return 0;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return 0;
    Py_ssize_t i = 19;
    if (p[i] == '.') {
        Py_ssize_t first = ++i;
        while (i < length && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == first || i - first > 9)
            return 0;
    }
    if (i + 1 == length && (p[i] == 'Z' || p[i] == 'z'))
        return 1;
    return i + 6 == length && (p[i] == '+' || p[i] == '-') && digits(p + i + 1, 2, &zone) && p[i + 3] == ':' &&
           digits(p + i + 4, 2, &zone);
}

#define PREFIX_BYTES 31 /* "2006-01-02T15:04:05.000000000Z " */

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

/* The `logs -t` prefix for a time value that valid_time() accepted, written at out; 0 when the time is
 * not in Docker's own form, which the general path normalizes (another zone, a lower-case t or z, a leap
 * second, a day the month does not have, a year before 1970). */
static int write_prefix(const unsigned char *p, Py_ssize_t length, unsigned char *out)
{
    int year, month, day, second;
    if (p[10] != 'T' || p[length - 1] != 'Z' || !digits(p, 4, &year) || !digits(p + 5, 2, &month) ||
        !digits(p + 8, 2, &day) || !digits(p + 17, 2, &second))
        return 0;
    if (year < 1970 || second > 59 || day > days_in_month(year, month))
        return 0;
    memcpy(out, p, 19);
    out[19] = '.';
    Py_ssize_t fraction = p[19] == '.' ? length - 21 : 0; /* 1 to 9 digits between '.' and 'Z' */
    memcpy(out + 20, p + 20, (size_t)fraction);
    memset(out + 20 + fraction, '0', (size_t)(9 - fraction));
    out[29] = 'Z';
    out[30] = ' ';
    return 1;
}

/* p advanced past `literal` if it starts there, else NULL. */
static const unsigned char *expect(const unsigned char *p, const unsigned char *end, const char *literal, size_t length)
{
    if ((size_t)(end - p) < length || memcmp(p, literal, length) != 0)
        return NULL;
    return p + length;
}

#define EXPECT(p, end, literal) expect((p), (end), (literal), sizeof(literal) - 1)

/* Past an attrs object `{"k":"v",...}` (strings only, as both writers make it), from just after `{`. */
static const unsigned char *skip_attrs(const unsigned char *p, const unsigned char *end)
{
    if (p < end && *p == '}')
        return p + 1;
    while (p != NULL && p < end) {
        if (*p++ != '"' || (p = read_string(p, end, NULL)) == NULL)
            return NULL;
        if ((p = EXPECT(p, end, ":\"")) == NULL || (p = read_string(p, end, NULL)) == NULL)
            return NULL;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        return p < end && *p == '}' ? p + 1 : NULL;
    }
    return NULL;
}

/* One record from p: its log unescaped into *out (after its time prefix with timestamps), its stream in
 * *stream. Returns the position after the record's newline (or at the end of data for a last record
 * without one), NULL if the record is not in the expected shape. */
static const unsigned char *read_record(const unsigned char *p, const unsigned char *end, unsigned char **out, int *stream,
                                        int timestamps)
{
    unsigned char *prefix = *out; /* the time comes last in a record: its prefix is filled in then */
    if (timestamps)
        *out += PREFIX_BYTES;
    const unsigned char *after_log = EXPECT(p, end, "{\"log\":\"");
    if (after_log != NULL) {
        if ((p = read_string(after_log, end, out)) == NULL || (p = EXPECT(p, end, ",\"stream\":\"")) == NULL)
            return NULL;
    } else if ((p = EXPECT(p, end, "{\"stream\":\"")) == NULL) {
        return NULL;
    }
    const unsigned char *after_stream;
    if ((after_stream = EXPECT(p, end, "stdout\",")) != NULL)
        *stream = 0;
    else if ((after_stream = EXPECT(p, end, "stderr\",")) != NULL)
        *stream = 1;
    else
        return NULL;
    p = after_stream;
    const unsigned char *after_attrs = EXPECT(p, end, "\"attrs\":{");
    if (after_attrs != NULL && ((p = skip_attrs(after_attrs, end)) == NULL || (p = EXPECT(p, end, ",")) == NULL))
        return NULL;
    const unsigned char *time_start = EXPECT(p, end, "\"time\":\"");
    if (time_start == NULL || (p = read_string(time_start, end, NULL)) == NULL ||
        !valid_time(time_start, p - 1 - time_start))
        return NULL;
    if (timestamps && !write_prefix(time_start, p - 1 - time_start, prefix))
        return NULL;
    if (p < end && *p == '}') {
        p++;
        if (p == end)
            return p;
        if (*p == '\n')
            return p + 1;
    }
    return NULL;
}

/* The whole scan, without the GIL: the output bytes in `output`, run boundaries in `runs`.
 * Returns 0, -1 for "not the expected shape", -2 for out of memory. */
static int scan(const unsigned char *data, Py_ssize_t length, unsigned char *output, runs_t *runs, int timestamps)
{
    const unsigned char *p = data, *end = data + length;
    unsigned char *o = output;
    int current = -1;
    while (p < end) {
        unsigned char *record_start = o;
        int stream;
        p = read_record(p, end, &o, &stream, timestamps);
        if (p == NULL)
            return -1;
        if (o == record_start)
            continue; /* an empty log prints nothing (without timestamps), and does not end a run */
        /* A piece of a long line (no newline) ends its run, so the API can cut runs into dockerd's
         * frame per message at newlines. */
        if (stream != current || (record_start > output && record_start[-1] != '\n')) {
            if (current >= 0 && push_run(runs, current, record_start - output) < 0)
                return -2;
            current = stream;
        }
    }
    if (current >= 0 && push_run(runs, current, o - output) < 0)
        return -2;
    return 0;
}

static PyObject *logtext_runs(PyObject *module, PyObject *args)
{
    Py_buffer view;
    int timestamps = 0;
    if (!PyArg_ParseTuple(args, "y*|p:runs", &view, &timestamps))
        return NULL;
    /* A whole record never prints more than it takes in the file (a prefix is shorter than the time and
     * keys it replaces); the record being read can be ahead by its prefix until its time is reached. */
    unsigned char *output = malloc((size_t)view.len + PREFIX_BYTES);
    runs_t runs = {NULL, 0, 0};
    PyObject *result = NULL;
    if (output == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = scan(view.buf, view.len, output, &runs, timestamps);
    Py_END_ALLOW_THREADS
    if (status == -2) {
        PyErr_NoMemory();
        goto done;
    }
    if (status == -1) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = PyList_New(runs.count);
    if (result == NULL)
        goto done;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < runs.count; i++) {
        PyObject *text = PyBytes_FromStringAndSize((const char *)output + start, runs.items[i].end - start);
        if (text == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyObject *run = PyTuple_Pack(2, stream_names[runs.items[i].stream], text);
        Py_DECREF(text);
        if (run == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, run);
        start = runs.items[i].end;
    }
done:
    free(output);
    free(runs.items);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"runs", logtext_runs, METH_VARARGS,
     "runs(data, timestamps=False) -> list[tuple[str, bytes]] | None\n\n"
     "What `logs` (or `logs -t`) prints for whole json-file records in Docker's shape, as runs of one\n"
     "stream's bytes; None when some record is in another shape (decode those with a general JSON decoder)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_logtext", "The json-file fast path's inner loop (see runs()).", -1, methods,
};

PyMODINIT_FUNC PyInit__logtext(void)
{
    stream_names[0] = PyUnicode_InternFromString("stdout");
    stream_names[1] = PyUnicode_InternFromString("stderr");
    if (stream_names[0] == NULL || stream_names[1] == NULL)
        return NULL;
    return PyModule_Create(&module_definition);
}
