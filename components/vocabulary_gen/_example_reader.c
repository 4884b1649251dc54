/* Reading VocabularyGen's documents out of TFRecord files of tf.Examples in compiled code.
 *
 * frame() finds the records of a piece of a TFRecord file and checks each against its masked
 * CRC-32C, as TensorFlow's reader does (the CPU's CRC-32C instruction where there is one).
 * bytes_feature() takes the values of one bytes feature out of a batch of serialized Examples
 * straight into an Arrow binary array's buffers, with no Python object per record or value.
 *
 * bytes_feature() reads the canonical encoding that protobuf's serializers write. Whatever it does
 * not fully understand (unknown or repeated fields, a missing or empty feature, a key that is not
 * ASCII, a feature whose kind differs between the batch's examples) makes it return None, and the
 * caller decodes that batch with tfx_bsl instead: the documents, and every error, stay tfx_bsl's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---- CRC-32C (Castagnoli), as TFRecord uses it. ---- */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    uint32_t i, k, c;
    for (i = 0; i < 256; i++) {
        for (c = i, k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (k = 1; k < 8; k++)
            crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^ crc_table[0][crc_table[k - 1][i] & 0xFF];
}

static uint32_t crc32c_portable(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    uint64_t v;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&v, p, 8);
        v ^= c;  /* Little-endian: the CRC meets the first four bytes. */
        c = crc_table[7][v & 0xFF] ^ crc_table[6][(v >> 8) & 0xFF] ^
            crc_table[5][(v >> 16) & 0xFF] ^ crc_table[4][(v >> 24) & 0xFF] ^
            crc_table[3][(v >> 32) & 0xFF] ^ crc_table[2][(v >> 40) & 0xFF] ^
            crc_table[1][(v >> 48) & 0xFF] ^ crc_table[0][v >> 56];
    }
    for (; n; p++, n--) c = (c >> 8) ^ crc_table[0][(c ^ *p) & 0xFF];
    return ~c;
}

#if defined(__x86_64__) && defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(const uint8_t *p, size_t n) {
    uint64_t c = 0xFFFFFFFFu, v;
    uint32_t c32;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    for (c32 = (uint32_t)c; n; p++, n--) c32 = __builtin_ia32_crc32qi(c32, *p);
    return ~c32;
}
static int have_sse42;
static uint32_t crc32c(const uint8_t *p, size_t n) {
    return have_sse42 ? crc32c_sse42(p, n) : crc32c_portable(p, n);
}
#else
#define crc32c crc32c_portable
#endif

static uint32_t masked(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

static uint64_t load_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    int i;
    for (i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ---- frame() ---- */

typedef struct {
    int64_t *values;
    Py_ssize_t length, capacity;
} Int64s;

static int push(Int64s *a, int64_t v) {
    if (a->length == a->capacity) {
        Py_ssize_t capacity = a->capacity ? a->capacity * 2 : 1024;
        int64_t *values = realloc(a->values, (size_t)capacity * sizeof(int64_t));
        if (!values) return -1;
        a->values = values;
        a->capacity = capacity;
    }
    a->values[a->length++] = v;
    return 0;
}

static PyObject *frame(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer buffer;
    Int64s bounds = {NULL, 0, 0};
    const uint8_t *p;
    Py_ssize_t size, pos = 0;
    const char *bad = NULL;
    int out_of_memory = 0;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*:frame", &buffer)) return NULL;
    p = buffer.buf;
    size = buffer.len;
    Py_BEGIN_ALLOW_THREADS
    while (pos + 12 <= size) {
        uint64_t length = load_le(p + pos, 8);
        if (masked(crc32c(p + pos, 8)) != (uint32_t)load_le(p + pos + 8, 4)) {
            bad = "length";
            break;
        }
        if (size - pos < 16 || length > (uint64_t)(size - pos - 16)) break;  /* Incomplete. */
        if (masked(crc32c(p + pos + 12, (size_t)length))
                != (uint32_t)load_le(p + pos + 12 + length, 4)) {
            bad = "data";
            break;
        }
        if (push(&bounds, pos + 12) || push(&bounds, pos + 12 + (int64_t)length)) {
            out_of_memory = 1;
            break;
        }
        pos += 16 + (Py_ssize_t)length;
    }
    Py_END_ALLOW_THREADS
    if (out_of_memory)
        PyErr_NoMemory();
    else
        result = Py_BuildValue("y#ns", bounds.values ? (const char *)bounds.values : "",
                               (Py_ssize_t)(bounds.length * sizeof(int64_t)), pos, bad);
    free(bounds.values);
    PyBuffer_Release(&buffer);
    return result;
}

/* ---- bytes_feature() ---- */

enum { FALLBACK = 1, NO_MEMORY = 2 };

/* A varint as protobuf reads one: at most ten bytes. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *value) {
    uint64_t v = 0;
    int shift;
    for (shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *value = v;
            return 1;
        }
    }
    return 0;
}

/* A length-delimited field with the tag expected at *p: its contents [*field, *field_end). */
static int field(const uint8_t **p, const uint8_t *end, uint64_t tag, const uint8_t **contents,
                 const uint8_t **contents_end) {
    uint64_t t, length;
    if (!varint(p, end, &t) || t != tag || !varint(p, end, &length) ||
        length > (uint64_t)(end - *p))
        return 0;
    *contents = *p;
    *p += length;
    *contents_end = *p;
    return 1;
}

enum { BYTES_LIST = 1, FLOAT_LIST = 2, INT64_LIST = 3 };

/* The kind of a Feature other than the one read, its encoding checked; 0 if not canonical. */
static int other_kind(const uint8_t *p, const uint8_t *end) {
    uint64_t tag, length, v;
    const uint8_t *list, *list_end, *packed, *packed_end;
    int kind;
    if (!varint(&p, end, &tag) || (tag & 7) != 2 || (kind = (int)(tag >> 3)) < BYTES_LIST ||
        kind > INT64_LIST || !varint(&p, end, &length) || length != (uint64_t)(end - p))
        return 0;
    for (list = p, list_end = end; list < list_end;) {
        if (!varint(&list, list_end, &tag)) return 0;
        if (tag == 0x0A) {  /* A bytes value, or a packed run of floats or int64s. */
            if (!varint(&list, list_end, &length) || length > (uint64_t)(list_end - list))
                return 0;
            packed = list;
            packed_end = list += length;
            if (kind == FLOAT_LIST && length % 4) return 0;
            if (kind == INT64_LIST)
                while (packed < packed_end)
                    if (!varint(&packed, packed_end, &v)) return 0;
        } else if (kind == FLOAT_LIST && tag == 0x0D) {
            if (list_end - list < 4) return 0;
            list += 4;
        } else if (kind == INT64_LIST && tag == 0x08) {
            if (!varint(&list, list_end, &v)) return 0;
        } else {
            return 0;
        }
    }
    return kind;
}

#define MAX_KEYS 64

typedef struct {
    const uint8_t *key;
    Py_ssize_t length;
    int kind;
} Key;

typedef struct {
    const uint8_t *feature;
    Py_ssize_t feature_length;
    Key keys[MAX_KEYS];  /* The kinds of the batch's other features, as tfx_bsl checks them. */
    int keys_seen;
    Int64s offsets;
    uint8_t *data;
    int64_t data_length;
} Batch;

static int same(const uint8_t *a, Py_ssize_t a_length, const uint8_t *b, Py_ssize_t b_length) {
    return a_length == b_length && !memcmp(a, b, (size_t)a_length);
}

/* The values of a bytes_list Feature, appended to the batch's. */
static int read_values(Batch *batch, const uint8_t *p, const uint8_t *end) {
    const uint8_t *list, *list_end, *value, *value_end;
    if (!field(&p, end, 0x0A, &list, &list_end) || p != end) return FALLBACK;
    while (list < list_end) {
        if (!field(&list, list_end, 0x0A, &value, &value_end)) return FALLBACK;
        memcpy(batch->data + batch->data_length, value, (size_t)(value_end - value));
        batch->data_length += value_end - value;
        if (push(&batch->offsets, batch->data_length)) return NO_MEMORY;
    }
    return 0;
}

static int check_kind(Batch *batch, const uint8_t *key, Py_ssize_t length, int kind) {
    int i;
    for (i = 0; i < batch->keys_seen; i++)
        if (same(batch->keys[i].key, batch->keys[i].length, key, length))
            return batch->keys[i].kind == kind ? 0 : FALLBACK;
    if (batch->keys_seen == MAX_KEYS) return FALLBACK;
    batch->keys[batch->keys_seen].key = key;
    batch->keys[batch->keys_seen].length = length;
    batch->keys[batch->keys_seen++].kind = kind;
    return 0;
}

static int read_example(Batch *batch, const uint8_t *p, const uint8_t *end) {
    const uint8_t *features, *features_end, *entry, *entry_end, *key, *key_end, *value,
        *value_end, *keys[MAX_KEYS], *k;
    Py_ssize_t key_lengths[MAX_KEYS];
    int found = 0, keys_in_example = 0, i, status, kind;
    if (!field(&p, end, 0x0A, &features, &features_end) || p != end) return FALLBACK;
    while (features < features_end) {
        if (!field(&features, features_end, 0x0A, &entry, &entry_end) ||
            !field(&entry, entry_end, 0x0A, &key, &key_end) ||
            !field(&entry, entry_end, 0x12, &value, &value_end) || entry != entry_end ||
            keys_in_example == MAX_KEYS)
            return FALLBACK;
        for (k = key; k < key_end; k++)
            if (*k & 0x80) return FALLBACK;  /* protobuf checks the UTF-8 of keys. */
        for (i = 0; i < keys_in_example; i++)
            if (same(keys[i], key_lengths[i], key, key_end - key)) return FALLBACK;
        keys[keys_in_example] = key;
        key_lengths[keys_in_example++] = key_end - key;
        if (same(key, key_end - key, batch->feature, batch->feature_length)) {
            if ((status = read_values(batch, value, value_end))) return status;
            found = 1;
        } else if (!(kind = other_kind(value, value_end)) ||
                   check_kind(batch, key, key_end - key, kind)) {
            return FALLBACK;
        }
    }
    return found ? 0 : FALLBACK;
}

static PyObject *bytes_feature(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer buffer, bounds;
    const char *feature;
    Py_ssize_t feature_length, n, i;
    const int64_t *b;
    const uint8_t *p;
    int64_t total = 0;
    int status = 0;
    Batch batch;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*s#:bytes_feature", &buffer, &bounds, &feature,
                          &feature_length))
        return NULL;
    memset(&batch, 0, sizeof(batch));
    batch.feature = (const uint8_t *)feature;
    batch.feature_length = feature_length;
    b = bounds.buf;
    n = bounds.len / (Py_ssize_t)(2 * sizeof(int64_t));
    p = buffer.buf;
    for (i = 0; i < n; i++) {
        if (b[2 * i] < 0 || b[2 * i] > b[2 * i + 1] || b[2 * i + 1] > buffer.len) {
            PyErr_Format(PyExc_ValueError, "record %zd: bounds [%lld, %lld) outside the buffer",
                         i, (long long)b[2 * i], (long long)b[2 * i + 1]);
            goto done;
        }
        total += b[2 * i + 1] - b[2 * i];
    }
    if (!(batch.data = malloc((size_t)total + 1)) || push(&batch.offsets, 0)) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < n && !status; i++)
        status = read_example(&batch, p + b[2 * i], p + b[2 * i + 1]);
    Py_END_ALLOW_THREADS
    if (status == NO_MEMORY) {
        PyErr_NoMemory();
    } else if (status == FALLBACK || batch.offsets.length == 1) {
        result = Py_None;  /* Not canonical, or no value at all: tfx_bsl decides. */
        Py_INCREF(result);
    } else {
        result = Py_BuildValue("y#y#", (const char *)batch.data, (Py_ssize_t)batch.data_length,
                               (const char *)batch.offsets.values,
                               (Py_ssize_t)(batch.offsets.length * sizeof(int64_t)));
    }
done:
    free(batch.data);
    free(batch.offsets.values);
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&bounds);
    return result;
}

static PyObject *crc32c_of(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer data;
    int portable = 0;
    uint32_t crc;
    if (!PyArg_ParseTuple(args, "y*|p:crc32c", &data, &portable)) return NULL;
    crc = (portable ? crc32c_portable : crc32c)(data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(crc);
}

static PyMethodDef methods[] = {
    {"crc32c", crc32c_of, METH_VARARGS,
     "crc32c(data, portable=False) -> int\n\n"
     "The CRC-32C of data, as frame() computes it; portable: without the CPU's instruction."},
    {"frame", frame, METH_VARARGS,
     "frame(data) -> (bounds, used, bad)\n\n"
     "The whole TFRecord records at the start of data, each checked against its masked\n"
     "CRC-32C: bounds holds int64 pairs, the [start, end) of each record's payload in data;\n"
     "used is where the records end (an incomplete record may follow). bad is None, or\n"
     "'length' or 'data' if the record at used fails its CRC (an incomplete record's length\n"
     "is checked too)."},
    {"bytes_feature", bytes_feature, METH_VARARGS,
     "bytes_feature(data, bounds, feature) -> (values, offsets) or None\n\n"
     "The values of the bytes feature of the serialized tf.Examples data[start:end] for each\n"
     "int64 pair of bounds, as an Arrow binary array's buffers (the values one after another;\n"
     "int64 offsets, one more than the values). None if an example lacks the feature, is not\n"
     "encoded as protobuf writes it, or has a feature whose kind varies in the batch: the\n"
     "caller decodes those with tfx_bsl.\n\n"
     "Raises ValueError if bounds fall outside data."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_example_reader",
    "TFRecord framing and tf.Example decoding in compiled code, for VocabularyGen's workers.", -1,
    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__example_reader(void) {
    crc_init();
#if defined(__x86_64__) && defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
    return PyModule_Create(&module);
}
