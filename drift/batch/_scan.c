/*
 * drift.batch._scan: JSON inference events of the usual shape read straight into columns.
 *
 * A Scanner is built once from the fields the column-wise models read (the kept envelope
 * fields, the kept segment keys, the float and category fields of `features` and of
 * `prediction`). Scanner.scan(chunk) reads a list of messages and returns their columns,
 * or None when any message of the chunk is not of the plain shape it reads; the typed
 * msgspec road (drift/batch/typed_json.py) then reads that chunk as before. The scanner
 * therefore only has to be exact on what it accepts, and it accepts only:
 *
 *   - one JSON object per message, whitespace around tokens, nothing after it;
 *   - top-level keys among the event fields, each at most once;
 *   - event_id, model, model_version, tenant, region, route, entity_id: a string or null;
 *   - ts: a string, an integer within int64, or null;
 *   - segment: null, or an object of strings (each kept key at most once);
 *   - features and prediction: null, or an object whose keys are exactly among the known
 *     float fields (a number or null) and category fields (a string or null), each at most once;
 *   - strings without escapes and without control characters, in valid UTF-8;
 *   - numbers in RFC 8259's grammar that do not overflow a double.
 *
 * Numbers are read as msgspec reads them into a float field: integers through int64 (so
 * -0 reads as 0.0), other numbers correctly rounded (Clinger's exact fast path, else
 * strtod in the C locale). The messages are read without the GIL.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE_BYTES (8 * 1024 * 1024)

enum { ENV_EVENT_ID, ENV_TS, ENV_MODEL, ENV_MODEL_VERSION, ENV_TENANT, ENV_REGION, ENV_ROUTE,
       ENV_ENTITY_ID, ENV_SEGMENT, ENV_FEATURES, ENV_PREDICTION, N_TOP };

static const char *const TOP_NAMES[N_TOP] = {
    "event_id", "ts", "model", "model_version", "tenant", "region", "route", "entity_id", "segment",
    "features", "prediction"};

enum { CELL_ABSENT = 0, CELL_NULL = 1, CELL_VALUE = 2 };

typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Name;

typedef struct {
    Name *names;
    Py_ssize_t n;
} Names;

/* A growing string column: Arrow validity bitmap, int32 offsets, bytes; null and absent per row. */
typedef struct {
    uint8_t *validity;
    int32_t *offsets;
    char *data;
    Py_ssize_t data_len, data_cap;
    uint8_t *null;
    uint8_t *absent;
    int overflow;
} TextColumn;

typedef struct {
    const char *ptr;
    Py_ssize_t len;
    int state;
} Cell;

/* The fields of one object (features or prediction). */
typedef struct {
    Names floats;
    Names cats;
} Object;

typedef struct {
    PyObject_HEAD
    int env_kept[N_TOP];     /* column of each kept envelope field, -1 when only checked */
    Py_ssize_t n_env;
    Names segment;
    Object objects[2];       /* features, prediction */
    PyObject *owner;         /* keeps the names' bytes alive */
    locale_t c_locale;
} Scanner;

/* Per chunk output buffers. */
typedef struct {
    Py_ssize_t m;
    TextColumn *env;           /* n_env */
    TextColumn *seg;           /* segment.n */
    TextColumn ts_text;
    int64_t *ts_int;
    uint8_t *ts_int_valid;
    int any_int;
    uint8_t *present[2];
    double *floats[2];         /* field-major: floats[o][f * m + row] */
    uint8_t *float_null[2];
    TextColumn *cats[2];
} Out;

typedef struct {
    Cell *env;                 /* n_env */
    Cell *seg;
    Cell ts;
    int64_t ts_value;
    int ts_is_int;
    Cell *cats[2];
} RowCells;

/* ------------------------------------------------------------------ lexing */

static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* A string starting after its opening quote: no escapes, no control characters, valid UTF-8.
 * Returns the position after the closing quote, or NULL. */
static const char *scan_string(const char *p, const char *end, const char **start, Py_ssize_t *len) {
    const unsigned char *s = (const unsigned char *)p;
    const unsigned char *e = (const unsigned char *)end;
    *start = p;
    while (s < e) {
        unsigned char c = *s;
        if (c == '"') {
            *len = (const char *)s - p;
            return (const char *)s + 1;
        }
        if (c == '\\' || c < 0x20)
            return NULL;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (e - s < 2 || (s[1] & 0xC0) != 0x80)
                return NULL;
            s += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (e - s < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
                return NULL;
            if (c == 0xE0 && s[1] < 0xA0)
                return NULL; /* overlong */
            if (c == 0xED && s[1] > 0x9F)
                return NULL; /* surrogate */
            s += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (e - s < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                return NULL;
            if (c == 0xF0 && s[1] < 0x90)
                return NULL; /* overlong */
            if (c == 0xF4 && s[1] > 0x8F)
                return NULL; /* past U+10FFFF */
            s += 4;
        } else {
            return NULL;
        }
    }
    return NULL;
}

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A JSON number at p. Sets *value (as a float field reads it), *is_int and, for an integer
 * within int64, *int_value. Returns the position after it, or NULL (bad grammar, overflow). */
static const char *scan_number(const char *p, const char *end, locale_t loc, double *value, int *is_int,
                               int64_t *int_value, int *int_fits) {
    const char *start = p;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end)
        return NULL;
    uint64_t mantissa = 0;
    int digits = 0;          /* significant digits taken into mantissa */
    int dropped = 0;         /* integer digits not taken (too many) */
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                digits++;
            } else {
                dropped++;
            }
            p++;
        }
    } else {
        return NULL;
    }
    int exp10 = dropped;
    int fraction = 0, exponent = 0;
    if (p < end && *p == '.') {
        fraction = 1;
        p++;
        const char *f = p;
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                digits++;
                exp10--;
            } else {
                dropped++;
            }
            p++;
        }
        if (p == f)
            return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        exponent = 1;
        p++;
        int exp_negative = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            exp_negative = *p == '-';
            p++;
        }
        const char *f = p;
        int e = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        }
        if (p == f)
            return NULL;
        exp10 += exp_negative ? -e : e;
    }
    *is_int = !fraction && !exponent;
    *int_fits = 0;
    if (*is_int && dropped == 0) {
        /* An integer literal: msgspec reads it as an integer, then converts. */
        if (!negative && mantissa <= (uint64_t)INT64_MAX) {
            *int_value = (int64_t)mantissa;
            *int_fits = 1;
            *value = (double)(int64_t)mantissa;
            return p;
        }
        if (negative && mantissa <= (uint64_t)INT64_MAX + 1) {
            *int_value = mantissa == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mantissa;
            *int_fits = 1;
            *value = (double)*int_value;
            return p;
        }
        if (!negative) {
            *value = (double)mantissa; /* a uint64 */
            return p;
        }
    }
    /* Exact when the mantissa and the power of ten are both exact doubles (Clinger). */
    if (dropped == 0 && mantissa <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)mantissa;
        v = exp10 < 0 ? v / POW10[-exp10] : v * POW10[exp10];
        *value = negative ? -v : v;
        return p;
    }
    Py_ssize_t n = p - start;
    char stack[64];
    char *text = n < (Py_ssize_t)sizeof(stack) ? stack : malloc((size_t)n + 1);
    if (text == NULL)
        return NULL;
    memcpy(text, start, (size_t)n);
    text[n] = 0;
    double v = strtod_l(text, NULL, loc);
    if (text != stack)
        free(text);
    if (isinf(v))
        return NULL; /* overflow: left to the other roads */
    *value = v;
    return p;
}

static inline int match(const Names *names, const char *key, Py_ssize_t len, Py_ssize_t *hint) {
    Py_ssize_t n = names->n;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t i = (*hint + k) % n;
        if (names->names[i].len == len && memcmp(names->names[i].ptr, key, (size_t)len) == 0) {
            *hint = i + 1;
            return (int)i;
        }
    }
    return -1;
}

/* -------------------------------------------------------------- columns */

static int text_init(TextColumn *c, Py_ssize_t m) {
    memset(c, 0, sizeof(*c));
    c->validity = calloc((size_t)(m + 7) / 8 + 1, 1);
    c->offsets = malloc(sizeof(int32_t) * (size_t)(m + 1));
    c->null = calloc((size_t)m + 1, 1);
    c->absent = calloc((size_t)m + 1, 1);
    c->data_cap = 256 + 16 * m;
    c->data = malloc((size_t)c->data_cap);
    if (!c->validity || !c->offsets || !c->null || !c->absent || !c->data)
        return -1;
    c->offsets[0] = 0;
    return 0;
}

static void text_free(TextColumn *c) {
    free(c->validity);
    free(c->offsets);
    free(c->data);
    free(c->null);
    free(c->absent);
    memset(c, 0, sizeof(*c));
}

static int text_put(TextColumn *c, Py_ssize_t row, const Cell *cell) {
    if (cell->state == CELL_VALUE) {
        if (c->data_len + cell->len > c->data_cap) {
            Py_ssize_t cap = c->data_cap * 2;
            while (cap < c->data_len + cell->len)
                cap *= 2;
            char *grown = realloc(c->data, (size_t)cap);
            if (grown == NULL)
                return -1;
            c->data = grown;
            c->data_cap = cap;
        }
        memcpy(c->data + c->data_len, cell->ptr, (size_t)cell->len);
        c->data_len += cell->len;
        if (c->data_len > INT32_MAX) {
            c->overflow = 1;
            return -1;
        }
        c->validity[row >> 3] |= (uint8_t)(1u << (row & 7));
    } else if (cell->state == CELL_NULL) {
        c->null[row] = 1;
    } else {
        c->absent[row] = 1;
    }
    c->offsets[row + 1] = (int32_t)c->data_len;
    return 0;
}

/* --------------------------------------------------------------- parsing */

static const char *scan_text_value(const char *p, const char *end, Cell *cell) {
    if (p < end && *p == '"') {
        p = scan_string(p + 1, end, &cell->ptr, &cell->len);
        cell->state = CELL_VALUE;
        return p;
    }
    if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
        cell->state = CELL_NULL;
        return p + 4;
    }
    return NULL;
}

/* An object of features or prediction fields; the opening brace is at p. */
static const char *scan_fields(const Scanner *s, int o, const char *p, const char *end, Out *out, Py_ssize_t row,
                               Cell *cats) {
    const Object *obj = &s->objects[o];
    Py_ssize_t m = out->m;
    Py_ssize_t float_hint = 0, cat_hint = 0;
    uint64_t seen_small = 0;
    Py_ssize_t n_fields = obj->floats.n + obj->cats.n;
    uint8_t seen_stack[128];
    uint8_t *seen = n_fields <= 128 ? seen_stack : calloc((size_t)n_fields, 1);
    if (seen == NULL)
        return NULL;
    if (n_fields <= 128)
        memset(seen, 0, (size_t)n_fields);
    (void)seen_small;
    const char *result = NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        result = p + 1;
        goto done;
    }
    for (;;) {
        if (p >= end || *p != '"')
            goto done;
        const char *key;
        Py_ssize_t key_len;
        p = scan_string(p + 1, end, &key, &key_len);
        if (p == NULL)
            goto done;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            goto done;
        p = skip_ws(p + 1, end);
        int f = obj->floats.n ? match(&obj->floats, key, key_len, &float_hint) : -1;
        if (f >= 0) {
            if (seen[f])
                goto done;
            seen[f] = 1;
            if (p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) {
                double v;
                int is_int, fits;
                int64_t iv;
                p = scan_number(p, end, s->c_locale, &v, &is_int, &iv, &fits);
                if (p == NULL)
                    goto done;
                out->floats[o][f * m + row] = v;
            } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
                out->float_null[o][f * m + row] = 1;
                p += 4;
            } else {
                goto done;
            }
        } else {
            int c = obj->cats.n ? match(&obj->cats, key, key_len, &cat_hint) : -1;
            if (c < 0 || seen[obj->floats.n + c])
                goto done;
            seen[obj->floats.n + c] = 1;
            p = scan_text_value(p, end, &cats[c]);
            if (p == NULL)
                goto done;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            result = p + 1;
            goto done;
        }
        goto done;
    }
done:
    if (seen != seen_stack)
        free(seen);
    return result;
}

static const char *scan_segment(const Scanner *s, const char *p, const char *end, Cell *seg) {
    Py_ssize_t hint = 0;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        if (p >= end || *p != '"')
            return NULL;
        const char *key;
        Py_ssize_t key_len;
        p = scan_string(p + 1, end, &key, &key_len);
        if (p == NULL)
            return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return NULL;
        p = skip_ws(p + 1, end);
        if (p >= end || *p != '"')
            return NULL; /* dict[str, str]: every value a string */
        Cell cell;
        p = scan_string(p + 1, end, &cell.ptr, &cell.len);
        if (p == NULL)
            return NULL;
        cell.state = CELL_VALUE;
        int k = s->segment.n ? match(&s->segment, key, key_len, &hint) : -1;
        if (k >= 0) {
            if (seg[k].state != CELL_ABSENT)
                return NULL; /* a repeated key */
            seg[k] = cell;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return p + 1;
        return NULL;
    }
}

static inline int top_index(const char *key, Py_ssize_t len, int *hint) {
    for (int k = 0; k < N_TOP; k++) {
        int i = (*hint + k) % N_TOP;
        const char *name = TOP_NAMES[i];
        if ((Py_ssize_t)strlen(name) == len && memcmp(name, key, (size_t)len) == 0) {
            *hint = i + 1;
            return i;
        }
    }
    return -1;
}

/* One message into row `row`. Returns 0, or -1 when it is not of the plain shape. */
static int scan_message(const Scanner *s, const char *p, Py_ssize_t len, Out *out, Py_ssize_t row, RowCells *cells) {
    const char *end = p + len;
    int seen = 0;
    int hint = 0;
    for (Py_ssize_t i = 0; i < s->n_env; i++)
        cells->env[i].state = CELL_NULL; /* an absent text field reads as None */
    for (Py_ssize_t i = 0; i < s->segment.n; i++)
        cells->seg[i].state = CELL_NULL;
    cells->ts.state = CELL_NULL;
    cells->ts_is_int = 0;
    for (int o = 0; o < 2; o++)
        for (Py_ssize_t i = 0; i < s->objects[o].cats.n; i++)
            cells->cats[o][i].state = CELL_ABSENT;
    int segment_object = 0;

    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= end || *p != '"')
                return -1;
            const char *key;
            Py_ssize_t key_len;
            p = scan_string(p + 1, end, &key, &key_len);
            if (p == NULL)
                return -1;
            int field = top_index(key, key_len, &hint);
            if (field < 0 || (seen & (1 << field)))
                return -1;
            seen |= 1 << field;
            p = skip_ws(p, end);
            if (p >= end || *p != ':')
                return -1;
            p = skip_ws(p + 1, end);
            if (p >= end)
                return -1;
            switch (field) {
            case ENV_TS:
                if (*p == '-' || (*p >= '0' && *p <= '9')) {
                    double v;
                    int is_int, fits;
                    int64_t iv;
                    p = scan_number(p, end, s->c_locale, &v, &is_int, &iv, &fits);
                    if (p == NULL || !is_int || !fits)
                        return -1;
                    cells->ts_is_int = 1;
                    cells->ts_value = iv;
                } else {
                    p = scan_text_value(p, end, &cells->ts);
                }
                break;
            case ENV_SEGMENT:
                if (*p == '{') {
                    for (Py_ssize_t i = 0; i < s->segment.n; i++)
                        cells->seg[i].state = CELL_ABSENT;
                    segment_object = 1;
                    p = scan_segment(s, p, end, cells->seg);
                } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
                    p += 4;
                } else {
                    return -1;
                }
                break;
            case ENV_FEATURES:
            case ENV_PREDICTION: {
                int o = field == ENV_FEATURES ? 0 : 1;
                if (*p == '{') {
                    out->present[o][row] = 1;
                    p = scan_fields(s, o, p, end, out, row, cells->cats[o]);
                } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
                    p += 4;
                } else {
                    return -1;
                }
                break;
            }
            default: {
                Cell cell;
                p = scan_text_value(p, end, &cell);
                if (p != NULL && s->env_kept[field] >= 0)
                    cells->env[s->env_kept[field]] = cell;
                break;
            }
            }
            if (p == NULL)
                return -1;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            return -1;
        }
    }
    if (skip_ws(p, end) != end)
        return -1;
    /* A segment key absent from a segment object reads as None, as does a null segment. */
    if (segment_object)
        for (Py_ssize_t i = 0; i < s->segment.n; i++)
            if (cells->seg[i].state == CELL_ABSENT)
                cells->seg[i].state = CELL_NULL;
    for (Py_ssize_t i = 0; i < s->n_env; i++)
        if (text_put(&out->env[i], row, &cells->env[i]) < 0)
            return -1;
    for (Py_ssize_t i = 0; i < s->segment.n; i++)
        if (text_put(&out->seg[i], row, &cells->seg[i]) < 0)
            return -1;
    if (cells->ts_is_int) {
        Cell none = {NULL, 0, CELL_NULL};
        out->ts_int[row] = cells->ts_value;
        out->ts_int_valid[row] = 1;
        out->any_int = 1;
        if (text_put(&out->ts_text, row, &none) < 0)
            return -1;
    } else if (text_put(&out->ts_text, row, &cells->ts) < 0) {
        return -1;
    }
    for (int o = 0; o < 2; o++)
        for (Py_ssize_t i = 0; i < s->objects[o].cats.n; i++)
            if (text_put(&out->cats[o][i], row, &cells->cats[o][i]) < 0)
                return -1;
    return 0;
}

/* ---------------------------------------------------------- Python glue */

static void out_free(const Scanner *s, Out *out) {
    if (out->env) {
        for (Py_ssize_t i = 0; i < s->n_env; i++)
            text_free(&out->env[i]);
        free(out->env);
    }
    if (out->seg) {
        for (Py_ssize_t i = 0; i < s->segment.n; i++)
            text_free(&out->seg[i]);
        free(out->seg);
    }
    text_free(&out->ts_text);
    free(out->ts_int);
    free(out->ts_int_valid);
    for (int o = 0; o < 2; o++) {
        free(out->present[o]);
        free(out->floats[o]);
        free(out->float_null[o]);
        if (out->cats[o]) {
            for (Py_ssize_t i = 0; i < s->objects[o].cats.n; i++)
                text_free(&out->cats[o][i]);
            free(out->cats[o]);
        }
    }
}

static int out_init(const Scanner *s, Out *out, Py_ssize_t m) {
    memset(out, 0, sizeof(*out));
    out->m = m;
    out->env = calloc((size_t)s->n_env + 1, sizeof(TextColumn));
    out->seg = calloc((size_t)s->segment.n + 1, sizeof(TextColumn));
    if (!out->env || !out->seg)
        return -1;
    for (Py_ssize_t i = 0; i < s->n_env; i++)
        if (text_init(&out->env[i], m) < 0)
            return -1;
    for (Py_ssize_t i = 0; i < s->segment.n; i++)
        if (text_init(&out->seg[i], m) < 0)
            return -1;
    if (text_init(&out->ts_text, m) < 0)
        return -1;
    out->ts_int = calloc((size_t)m + 1, sizeof(int64_t));
    out->ts_int_valid = calloc((size_t)m + 1, 1);
    if (!out->ts_int || !out->ts_int_valid)
        return -1;
    for (int o = 0; o < 2; o++) {
        Py_ssize_t nf = s->objects[o].floats.n;
        out->present[o] = calloc((size_t)m + 1, 1);
        out->floats[o] = malloc(sizeof(double) * (size_t)(nf * m + 1));
        out->float_null[o] = calloc((size_t)(nf * m + 1), 1);
        out->cats[o] = calloc((size_t)s->objects[o].cats.n + 1, sizeof(TextColumn));
        if (!out->present[o] || !out->floats[o] || !out->float_null[o] || !out->cats[o])
            return -1;
        for (Py_ssize_t i = 0; i < nf * m; i++)
            out->floats[o][i] = NAN; /* absent */
        for (Py_ssize_t i = 0; i < s->objects[o].cats.n; i++)
            if (text_init(&out->cats[o][i], m) < 0)
                return -1;
    }
    return 0;
}

static PyObject *bytes_of(const void *data, Py_ssize_t n) {
    return PyBytes_FromStringAndSize(data == NULL ? "" : (const char *)data, n);
}

/* (validity, offsets, data, null, absent) as bytes */
static PyObject *text_tuple(const TextColumn *c, Py_ssize_t m) {
    return Py_BuildValue("(NNNNN)", bytes_of(c->validity, (m + 7) / 8), bytes_of(c->offsets, sizeof(int32_t) * (m + 1)),
                         bytes_of(c->data, c->data_len), bytes_of(c->null, m), bytes_of(c->absent, m));
}

static PyObject *text_list(const TextColumn *columns, Py_ssize_t n, Py_ssize_t m) {
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = text_tuple(&columns[i], m);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *Scanner_scan(Scanner *self, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "scan() takes a list of messages");
    if (seq == NULL)
        return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    const char **ptrs = malloc(sizeof(char *) * (size_t)(m + 1));
    Py_ssize_t *lens = malloc(sizeof(Py_ssize_t) * (size_t)(m + 1));
    if (!ptrs || !lens) {
        free(ptrs);
        free(lens);
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        if (!PyBytes_Check(items[i]) || PyBytes_GET_SIZE(items[i]) > MAX_MESSAGE_BYTES) {
            free(ptrs);
            free(lens);
            Py_DECREF(seq);
            Py_RETURN_NONE;
        }
        ptrs[i] = PyBytes_AS_STRING(items[i]);
        lens[i] = PyBytes_GET_SIZE(items[i]);
    }
    Out out;
    RowCells cells;
    memset(&cells, 0, sizeof(cells));
    int failed = out_init(self, &out, m) < 0;
    cells.env = calloc((size_t)self->n_env + 1, sizeof(Cell));
    cells.seg = calloc((size_t)self->segment.n + 1, sizeof(Cell));
    cells.cats[0] = calloc((size_t)self->objects[0].cats.n + 1, sizeof(Cell));
    cells.cats[1] = calloc((size_t)self->objects[1].cats.n + 1, sizeof(Cell));
    if (!cells.env || !cells.seg || !cells.cats[0] || !cells.cats[1])
        failed = 1;
    int refused = 0;
    if (!failed) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < m; i++) {
            if (scan_message(self, ptrs[i], lens[i], &out, i, &cells) < 0) {
                refused = 1;
                break;
            }
        }
        Py_END_ALLOW_THREADS
    }
    free(ptrs);
    free(lens);
    free(cells.env);
    free(cells.seg);
    free(cells.cats[0]);
    free(cells.cats[1]);
    Py_DECREF(seq);
    PyObject *result = NULL;
    if (failed) {
        PyErr_NoMemory();
    } else if (refused) {
        result = Py_None;
        Py_INCREF(result);
    } else {
        PyObject *objects[2];
        for (int o = 0; o < 2; o++) {
            Py_ssize_t nf = self->objects[o].floats.n;
            objects[o] = Py_BuildValue("(NNNN)", bytes_of(out.present[o], m),
                                       bytes_of(out.floats[o], (Py_ssize_t)sizeof(double) * nf * m),
                                       bytes_of(out.float_null[o], nf * m),
                                       text_list(out.cats[o], self->objects[o].cats.n, m));
        }
        result = Py_BuildValue("(NNNNNNN)", text_list(out.env, self->n_env, m), text_list(out.seg, self->segment.n, m),
                               text_tuple(&out.ts_text, m),
                               out.any_int ? bytes_of(out.ts_int, (Py_ssize_t)sizeof(int64_t) * m) : Py_NewRef(Py_None),
                               out.any_int ? bytes_of(out.ts_int_valid, m) : Py_NewRef(Py_None), objects[0], objects[1]);
    }
    out_free(self, &out);
    return result;
}

static int names_from(PyObject *tuple, Names *names, PyObject *owner) {
    PyObject *seq = PySequence_Fast(tuple, "names must be a sequence of str");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    names->n = n;
    names->names = calloc((size_t)n + 1, sizeof(Name));
    if (names->names == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *encoded = PyUnicode_AsUTF8String(item);
        if (encoded == NULL || PyList_Append(owner, encoded) < 0) {
            Py_XDECREF(encoded);
            Py_DECREF(seq);
            return -1;
        }
        names->names[i].ptr = PyBytes_AS_STRING(encoded);
        names->names[i].len = PyBytes_GET_SIZE(encoded);
        Py_DECREF(encoded); /* the owner list holds it */
    }
    Py_DECREF(seq);
    return 0;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"envelope", "segment", "feature_floats", "feature_categories", "prediction_floats",
                               "prediction_categories", NULL};
    PyObject *envelope, *segment, *ff, *fc, *pf, *pc;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOO", keywords, &envelope, &segment, &ff, &fc, &pf, &pc))
        return -1;
    self->owner = PyList_New(0);
    if (self->owner == NULL)
        return -1;
    Names env;
    if (names_from(envelope, &env, self->owner) < 0)
        return -1;
    for (int k = 0; k < N_TOP; k++)
        self->env_kept[k] = -1;
    self->n_env = env.n;
    for (Py_ssize_t i = 0; i < env.n; i++) {
        int hint = 0;
        int k = top_index(env.names[i].ptr, env.names[i].len, &hint);
        if (k < 0 || k == ENV_TS || k == ENV_SEGMENT || k == ENV_FEATURES || k == ENV_PREDICTION) {
            free(env.names);
            PyErr_Format(PyExc_ValueError, "not a text field of the event: %s", env.names[i].ptr);
            return -1;
        }
        self->env_kept[k] = (int)i;
    }
    free(env.names);
    if (names_from(segment, &self->segment, self->owner) < 0 || names_from(ff, &self->objects[0].floats, self->owner) < 0 ||
        names_from(fc, &self->objects[0].cats, self->owner) < 0 || names_from(pf, &self->objects[1].floats, self->owner) < 0 ||
        names_from(pc, &self->objects[1].cats, self->owner) < 0)
        return -1;
    self->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (self->c_locale == (locale_t)0) {
        PyErr_SetString(PyExc_OSError, "cannot open the C locale");
        return -1;
    }
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    free(self->segment.names);
    for (int o = 0; o < 2; o++) {
        free(self->objects[o].floats.names);
        free(self->objects[o].cats.names);
    }
    if (self->c_locale != (locale_t)0)
        freelocale(self->c_locale);
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(messages) -> columns, or None when a message is not of the plain shape read here."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "drift.batch._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "JSON events of the plain shape read into columns.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "drift.batch._scan",
                                    "JSON inference events of the plain shape read into columns.", -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__scan(void) {
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
