/* Docker's multiplexed framing of `logs` output, one frame per message, in C.
 *
 * frame_messages(stream_type, data) -> bytes
 *
 * `data` is a run of one stream's output: messages that each end with "\n", and perhaps a last one
 * without (a piece of a long line). Every message becomes a frame of its own,
 *
 *     [stream_type, 0, 0, 0, size as uint32 big-endian] message
 *
 * as dockerd sends them: clients that read the stream a frame at a time (docker-py's
 * `logs(stream=True)`) then get one message per item, as they do from dockerd.
 *
 * Why C: the readers hand the API runs of a whole chunk of lines at once; framing them line by line in
 * Python costs about 0.34 us per line (split, a header per line, a join), as much as reading them did.
 * This is one memchr and two memcpys per line, without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define HEADER_BYTES 8

static Py_ssize_t count_messages(const char *data, Py_ssize_t length)
{
    Py_ssize_t count = 0;
    const char *p = data, *end = data + length;
    while (p < end) {
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        count++;
        if (newline == NULL)
            break;
        p = newline + 1;
    }
    return count;
}

static void write_frames(const char *data, Py_ssize_t length, unsigned char stream_type, char *out)
{
    const char *p = data, *end = data + length;
    while (p < end) {
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        size_t size = newline == NULL ? (size_t)(end - p) : (size_t)(newline + 1 - p);
        out[0] = (char)stream_type;
        out[1] = out[2] = out[3] = 0;
        out[4] = (char)(size >> 24);
        out[5] = (char)(size >> 16);
        out[6] = (char)(size >> 8);
        out[7] = (char)size;
        memcpy(out + HEADER_BYTES, p, size);
        out += HEADER_BYTES + size;
        p += size;
    }
}

static PyObject *multiplex_frame_messages(PyObject *module, PyObject *args)
{
    unsigned char stream_type;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "by*:frame_messages", &stream_type, &view))
        return NULL;
    if ((unsigned long long)view.len > 0xFFFFFFFFull) {
        /* No message is longer than `data`: below 4 GiB, every frame's size field holds its message's. */
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "frame_messages: data larger than 4 GiB");
        return NULL;
    }
    Py_ssize_t frames;
    Py_BEGIN_ALLOW_THREADS
    frames = count_messages(view.buf, view.len);
    Py_END_ALLOW_THREADS
    PyObject *result = PyBytes_FromStringAndSize(NULL, view.len + frames * HEADER_BYTES);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        Py_BEGIN_ALLOW_THREADS
        write_frames(view.buf, view.len, stream_type, out);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"frame_messages", multiplex_frame_messages, METH_VARARGS,
     "frame_messages(stream_type, data) -> bytes\n\n"
     "Each message of `data` (ending with a newline, or the rest) as one multiplexed frame of\n"
     "`stream_type`, as dockerd frames `logs` output."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_multiplex", "Docker's multiplexed framing, a frame per message (see frame_messages()).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__multiplex(void) { return PyModule_Create(&module_definition); }
