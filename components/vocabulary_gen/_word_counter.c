/* WordCounter: counts the whitespace-separated words of documents in one pass over their bytes.
 *
 * The same words as Arrow's ascii_split_whitespace (and tf.strings.split on ASCII): maximal runs
 * of bytes other than " \t\n\v\f\r", empty ones never. VocabularyGen's workers count every
 * occurrence of every word here (tens of millions a file) instead of materializing them as an
 * Arrow list array and hashing them again: each 64-byte block of a document becomes a bitmask of
 * its whitespace (SSE2 compares where the CPU has them), the words are found from the mask's
 * transitions, hashed, and looked up in an open-addressing table in groups, the table slot of
 * each word prefetched before it is needed. A word of up to 16 bytes (nearly all) is its own key,
 * two 64-bit values in its slot: looking it up compares them, and never reads the word's bytes
 * elsewhere. No byte past the end of the data is read.
 * The GIL is released while counting, so worker threads count in parallel. Python's only view of
 * the counts is words(): the distinct words (concatenated, with int64 offsets) and their counts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* A distinct word. Its bytes are the key when it has at most KEY_BYTES of them; a longer word's
 * key is its first 8 bytes and its offset in the arena, where all its bytes are. */
#define KEY_BYTES 16

typedef struct {
    uint64_t key[2];  /* The word's bytes, zero after its end (a short word). */
    int64_t length;
    int64_t count;    /* 0: an empty slot. */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    int64_t capacity;  /* A power of two, at least twice the distinct words. */
    int64_t distinct, distinct_bytes;  /* Words and their bytes, in all. */
    char *arena;       /* The long distinct words' bytes, one after another. */
    int64_t arena_length, arena_capacity;
    int busy;          /* Counting without the GIL: another call must not touch the table. */
} WordCounter;

static unsigned char whitespace[256];

/* keep[i]: an 8-byte value whose first i bytes in memory are all ones, the rest zero. */
static uint64_t keep[9];

/* The key of a word of 1 to KEY_BYTES bytes at p, all of which lie before limit. No branch on
 * its length: word lengths vary too much for a CPU to predict them. */
static inline void short_key(const unsigned char *p, int64_t n, const unsigned char *limit,
                             uint64_t key[2]) {
    unsigned char padded[KEY_BYTES];
    if (limit - p < KEY_BYTES) {  /* Near the end of the data: no loads past it. */
        memset(padded, 0, sizeof padded);
        memcpy(padded, p, (size_t)n);
        p = padded;
    }
    memcpy(&key[0], p, 8);
    memcpy(&key[1], p + 8, 8);
    key[0] &= keep[n < 8 ? n : 8];
    key[1] &= keep[n < 8 ? 0 : n - 8];
}

static inline uint64_t mix(uint64_t h) {  /* MurmurHash3's finalizer. */
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 33);
}

static inline uint64_t short_hash(const uint64_t key[2], int64_t n) {
    return mix(key[0] * 0x9E3779B97F4A7C15ull ^ (key[1] + (uint64_t)n) * 0xD6E8FEB86659FD93ull);
}

static uint64_t long_hash(const unsigned char *p, int64_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n, v;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&v, p, 8);
        h = mix(h ^ v);
    }
    v = 0;
    memcpy(&v, p, (size_t)n);
    return mix(h ^ v ^ 0xFFull);
}

static int grow_table(WordCounter *self) {
    int64_t capacity = self->capacity * 2, i, j;
    Slot *slots = calloc((size_t)capacity, sizeof(Slot));
    if (!slots) return -1;
    for (i = 0; i < self->capacity; i++) {
        Slot *slot = &self->slots[i];
        uint64_t hash;
        if (!slot->count) continue;
        hash = slot->length <= KEY_BYTES
            ? short_hash(slot->key, slot->length)
            : long_hash((const unsigned char *)self->arena + slot->key[1], slot->length);
        for (j = (int64_t)(hash & (uint64_t)(capacity - 1)); slots[j].count;
             j = (j + 1) & (capacity - 1)) {}
        slots[j] = *slot;
    }
    free(self->slots);
    self->slots = slots;
    self->capacity = capacity;
    return 0;
}

typedef struct {
    const unsigned char *start;
    int64_t length;
    uint64_t hash;
    uint64_t key[2];  /* As a slot's; a long word's second (its arena offset) is unused. */
} Word;

/* Adds one occurrence of the word; -1 if out of memory (nothing is added then). */
static int add_word(WordCounter *self, const Word *word) {
    int64_t j = (int64_t)(word->hash & (uint64_t)(self->capacity - 1)), length = word->length;
    Slot *slot;
    for (;; j = (j + 1) & (self->capacity - 1)) {
        slot = &self->slots[j];
        if (!slot->count) break;
        if (slot->length == length && slot->key[0] == word->key[0] &&
                (length <= KEY_BYTES ? slot->key[1] == word->key[1]
                 : memcmp(self->arena + slot->key[1], word->start, (size_t)length) == 0)) {
            slot->count++;
            return 0;
        }
    }
    if ((self->distinct + 1) * 2 > self->capacity) {  /* A new word: room first. */
        if (grow_table(self)) return -1;
        for (j = (int64_t)(word->hash & (uint64_t)(self->capacity - 1)); self->slots[j].count;
             j = (j + 1) & (self->capacity - 1)) {}
        slot = &self->slots[j];
    }
    if (length > KEY_BYTES) {
        if (self->arena_length + length > self->arena_capacity) {
            int64_t capacity = self->arena_capacity;
            char *arena;
            while (self->arena_length + length > capacity) capacity *= 2;
            if (!(arena = realloc(self->arena, (size_t)capacity))) return -1;
            self->arena = arena;
            self->arena_capacity = capacity;
        }
        memcpy(self->arena + self->arena_length, word->start, (size_t)length);
        slot->key[1] = (uint64_t)self->arena_length;
        self->arena_length += length;
    } else {
        slot->key[1] = word->key[1];
    }
    slot->key[0] = word->key[0];
    slot->length = length;
    slot->count = 1;
    self->distinct++;
    self->distinct_bytes += length;
    return 0;
}

#define PENDING 64    /* Words found before they are looked up, */
#define PREFETCH 8    /* and how far ahead of its lookup a word's slot is fetched. */

static int add_pending(WordCounter *self, Word *words, int n) {
    int i;
    for (i = 0; i < n; i++) {
        if (i + PREFETCH < n)  /* GCC's and Clang's builtins, as __builtin_ctzll below. */
            __builtin_prefetch(
                &self->slots[words[i + PREFETCH].hash & (uint64_t)(self->capacity - 1)]);
        if (add_word(self, &words[i])) return -1;
    }
    return 0;
}

/* Bit i: the byte at block + i is whitespace, i < n <= 64; the bits from n on are zero. */
static inline uint64_t whitespace_bits(const unsigned char *block, int64_t n) {
    uint64_t mask = 0;
    int64_t i;
    for (i = 0; i < n; i++) mask |= (uint64_t)whitespace[block[i]] << i;
    return mask;
}

/* Bit i: the byte at block + i is whitespace, i < 64. */
static inline uint64_t whitespace_mask(const unsigned char *block) {
#ifdef __SSE2__  /* Every x86-64 CPU: 16 bytes an instruction. */
    uint64_t mask = 0;
    int i;
    for (i = 0; i < 4; i++) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(block + 16 * i));
        __m128i tab_to_cr = _mm_sub_epi8(bytes, _mm_set1_epi8('\t'));  /* \t\n\v\f\r: 0-4. */
        __m128i spaces = _mm_or_si128(
            _mm_cmpeq_epi8(bytes, _mm_set1_epi8(' ')),
            _mm_cmpeq_epi8(_mm_min_epu8(tab_to_cr, _mm_set1_epi8(4)), tab_to_cr));
        mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(spaces) << (16 * i);
    }
    return mask;
#else
    return whitespace_bits(block, 64);
#endif
}

/* Counts the words of documents [offsets[i], offsets[i + 1]) of data, which ends at limit.
 * Returns the number of words, or -1 if out of memory. Runs without the GIL. */
static int64_t count_words(WordCounter *self, const unsigned char *data,
                           const unsigned char *limit, const int64_t *offsets,
                           Py_ssize_t documents) {
    Word pending[PENDING];
    int n = 0;
    int64_t words = 0, start, base, size;
    Py_ssize_t d;
    for (d = 0; d < documents; d++) {
        const unsigned char *document = data + offsets[d];
        size = offsets[d + 1] - offsets[d];
        start = -1;  /* Of the word being read, or -1 between words. */
        /* Past the end is whitespace: a last word of a document of 64n bytes ends in one more,
         * empty block. */
        for (base = 0; base < size || (base == size && start >= 0); base += 64) {
            int64_t in_block = size - base < 64 ? size - base : 64;
            const unsigned char *block = document + base;
            /* The data's last bytes one by one: none read past them. */
            uint64_t spaces = limit - block >= 64 ? whitespace_mask(block)
                                                  : whitespace_bits(block, in_block), changes;
            if (in_block < 64) spaces |= ~0ull << in_block;
            /* Bit i: byte i differs from byte i - 1 (before the block: what start says). */
            changes = spaces ^ ((spaces << 1) | (start < 0));
            while (changes) {
                int64_t at = base + __builtin_ctzll(changes);
                Word *word = &pending[n];
                changes &= changes - 1;
                if (start < 0) {
                    start = at;
                    continue;
                }
                word->start = document + start;
                word->length = at - start;
                if (word->length <= KEY_BYTES) {
                    short_key(word->start, word->length, limit, word->key);
                    word->hash = short_hash(word->key, word->length);
                } else {
                    memcpy(&word->key[0], word->start, 8);
                    word->hash = long_hash(word->start, word->length);
                }
                start = -1;
                words++;
                if (++n == PENDING) {
                    if (add_pending(self, pending, n)) return -1;
                    n = 0;
                }
            }
        }
    }
    return add_pending(self, pending, n) ? -1 : words;
}

static int WordCounter_init(WordCounter *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":WordCounter", keywords)) return -1;
    free(self->slots);
    free(self->arena);
    self->capacity = 1 << 16;
    self->arena_capacity = 1 << 20;
    self->distinct = self->distinct_bytes = self->arena_length = 0;
    self->slots = calloc((size_t)self->capacity, sizeof(Slot));
    self->arena = malloc((size_t)self->arena_capacity);
    if (!self->slots || !self->arena) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void WordCounter_dealloc(WordCounter *self) {
    free(self->slots);
    free(self->arena);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *WordCounter_add(WordCounter *self, PyObject *args) {
    Py_buffer data, offsets;
    Py_ssize_t documents, i;
    int64_t words = 0;
    const int64_t *at;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*:add", &data, &offsets)) return NULL;
    at = (const int64_t *)offsets.buf;
    documents = offsets.len / 8 - 1;
    if (offsets.len % 8 || documents < 0) {
        PyErr_Format(PyExc_ValueError, "offsets must be int64 values, one more than the "
                     "documents; got %zd bytes", offsets.len);
        goto done;
    }
    for (i = 0; i <= documents; i++) {
        if (at[i] < (i ? at[i - 1] : 0) || at[i] > data.len) {
            PyErr_Format(PyExc_ValueError, "offset %zd (%lld) is outside the data (%zd bytes) "
                         "or below the one before it", i, (long long)at[i], data.len);
            goto done;
        }
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "WordCounter.add called while it is counting");
        goto done;
    }
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    words = count_words(self, (const unsigned char *)data.buf,
                        (const unsigned char *)data.buf + data.len, at, documents);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    result = words < 0 ? PyErr_NoMemory() : PyLong_FromLongLong(words);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    return result;
}

static PyObject *WordCounter_words(WordCounter *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *data, *offsets, *counts;
    int64_t i, n = 0, *offset, *count;
    char *bytes;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "WordCounter.words called while it is counting");
        return NULL;
    }
    data = PyBytes_FromStringAndSize(NULL, self->distinct_bytes);
    offsets = PyBytes_FromStringAndSize(NULL, (self->distinct + 1) * 8);
    counts = PyBytes_FromStringAndSize(NULL, self->distinct * 8);
    if (!data || !offsets || !counts) {
        Py_XDECREF(data);
        Py_XDECREF(offsets);
        Py_XDECREF(counts);
        return NULL;
    }
    bytes = PyBytes_AS_STRING(data);
    offset = (int64_t *)PyBytes_AS_STRING(offsets);
    count = (int64_t *)PyBytes_AS_STRING(counts);
    offset[0] = 0;
    for (i = 0; i < self->capacity; i++) {
        Slot *slot = &self->slots[i];
        if (!slot->count) continue;
        memcpy(bytes + offset[n], slot->length <= KEY_BYTES ? (const char *)slot->key
               : self->arena + slot->key[1], (size_t)slot->length);
        offset[n + 1] = offset[n] + slot->length;
        count[n++] = slot->count;
    }
    return Py_BuildValue("(NNN)", data, offsets, counts);
}

static Py_ssize_t WordCounter_len(WordCounter *self) {
    return (Py_ssize_t)self->distinct;
}

static PyMethodDef WordCounter_methods[] = {
    {"add", (PyCFunction)WordCounter_add, METH_VARARGS,
     "add(data, offsets) -> int\n\n"
     "Counts the words of each document data[offsets[i]:offsets[i + 1]] (data: bytes-like;\n"
     "offsets: int64 values, native byte order, one more than the documents, as in an Arrow\n"
     "binary array's buffers). Returns the number of words counted.\n\n"
     "Raises ValueError if the offsets do not fit the data, MemoryError if the table cannot\n"
     "grow (the words counted before stay counted)."},
    {"words", (PyCFunction)WordCounter_words, METH_NOARGS,
     "words() -> (data, offsets, counts)\n\n"
     "The distinct words, in no particular order: their bytes one after another, the int64\n"
     "offsets of each in them (one more than the words), and each one's int64 count."},
    {NULL, NULL, 0, NULL}};

static PySequenceMethods WordCounter_as_sequence = {.sq_length = (lenfunc)WordCounter_len};

static PyTypeObject WordCounterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tfx_embeddings.components.vocabulary_gen._word_counter.WordCounter",
    .tp_basicsize = sizeof(WordCounter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Counts of the whitespace-separated words of documents; len(): distinct words.\n\n"
              "Not for two threads at once (add raises RuntimeError if it is counting).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)WordCounter_init,
    .tp_dealloc = (destructor)WordCounter_dealloc,
    .tp_methods = WordCounter_methods,
    .tp_as_sequence = &WordCounter_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_word_counter",
    "Counting words in compiled code, for VocabularyGen's workers.", -1, NULL};

PyMODINIT_FUNC PyInit__word_counter(void) {
    PyObject *m;
    const char *spaces = " \t\n\v\f\r";
    int i;
    for (; *spaces; spaces++) whitespace[(unsigned char)*spaces] = 1;
    for (i = 0; i <= 8; i++) memset((unsigned char *)&keep[i], 0xFF, (size_t)i);
    if (PyType_Ready(&WordCounterType) < 0) return NULL;
    if (!(m = PyModule_Create(&module))) return NULL;
    Py_INCREF(&WordCounterType);
    if (PyModule_AddObject(m, "WordCounter", (PyObject *)&WordCounterType) < 0) {
        Py_DECREF(&WordCounterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
