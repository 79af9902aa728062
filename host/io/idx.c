/* IDX files (the MNIST format), raw or gzip-compressed.
 *
 * Layout: 00 00 <type> <ndim>, then ndim big-endian u32 dimensions, then the
 * elements in C order. Only type 0x08 (unsigned byte) is supported, which is
 * what MNIST and Fashion-MNIST use.
 *
 * The gzip stream is inflated here rather than through gzread, because
 * gzread silently ignores bytes after the end of the stream and a damaged
 * file must be refused. Since a gzip file does not say how much it expands
 * to, the data buffer grows as data actually arrives: a header that claims
 * far more than the file holds costs at most twice what the file really
 * contains before it is refused as truncated. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

enum {
    IDX_TYPE_UNSIGNED_BYTE = 0x08,
    IDX_MAX_DIMS = 4,
    IDX_INPUT_BUFFER_SIZE = 16384,
    IDX_FIRST_CAPACITY = 1 << 20,
};

/* MNIST's own readers use 32-bit sizes; more than this is a damaged header. */
static const uint64_t idx_max_elements = (uint64_t)1 << 31;

/* Delivers the bytes of the IDX content from a raw or a gzip file. */
typedef struct idx_reader {
    clcnn_context *ctx;
    const char *path;
    FILE *file;
    int is_gzip;
    int inflate_started; /* inflateEnd is needed */
    z_stream stream;
    unsigned char input[IDX_INPUT_BUFFER_SIZE];
    long long compressed_read; /* bytes read from the file so far */
    int input_ended;           /* fread reached the end of the file */
    int member_ended;          /* the current gzip member is complete */
    int stream_truncated;      /* the file ended inside a gzip member */
} idx_reader;

static long long compressed_offset(const idx_reader *reader) {
    return reader->compressed_read - (long long)reader->stream.avail_in;
}

static clcnn_status fill_input(idx_reader *reader) {
    size_t n = fread(reader->input, 1, sizeof(reader->input), reader->file);
    if (n < sizeof(reader->input)) {
        if (ferror(reader->file))
            return set_error(reader->ctx, CLCNN_ERROR_IO, "%s: read failed: %s", reader->path,
                             strerror(errno));
        reader->input_ended = 1;
    }
    reader->stream.next_in = reader->input;
    reader->stream.avail_in = (uInt)n;
    reader->compressed_read += (long long)n;
    return CLCNN_OK;
}

/* Inflates up to want bytes. Fewer come back only at the end of the stream,
 * either cleanly or with reader->stream_truncated set. */
static clcnn_status inflate_some(idx_reader *reader, unsigned char *destination, size_t want,
                                 size_t *got) {
    size_t delivered = 0;
    while (delivered < want) {
        if (reader->stream.avail_in == 0 && !reader->input_ended) {
            clcnn_status status = fill_input(reader);
            if (status != CLCNN_OK)
                return status;
            continue;
        }
        if (reader->member_ended) {
            if (reader->stream.avail_in == 0)
                break;
            /* Concatenated gzip members are one valid stream (gzip -d reads
             * them all); anything else after the end is damage. */
            if (reader->stream.next_in[0] != 0x1f)
                return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                                 "%s: trailing bytes after the end of the gzip stream at "
                                 "compressed byte offset %lld",
                                 reader->path, compressed_offset(reader));
            if (inflateReset(&reader->stream) != Z_OK)
                return set_error(reader->ctx, CLCNN_ERROR_FORMAT, "%s: inflateReset failed",
                                 reader->path);
            reader->member_ended = 0;
        }
        if (reader->stream.avail_in == 0) {
            reader->stream_truncated = 1;
            break;
        }
        size_t room = want - delivered;
        reader->stream.next_out = destination + delivered;
        reader->stream.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        uInt input_before = reader->stream.avail_in;
        uInt room_before = reader->stream.avail_out;
        int result = inflate(&reader->stream, Z_NO_FLUSH);
        size_t produced = room_before - reader->stream.avail_out;
        delivered += produced;
        if (result == Z_STREAM_END) {
            reader->member_ended = 1;
        } else if (result == Z_MEM_ERROR) {
            return set_error(reader->ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                             "%s: out of memory while inflating", reader->path);
        } else if (result != Z_OK && result != Z_BUF_ERROR) {
            return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                             "%s: corrupt gzip data near compressed byte offset %lld: %s",
                             reader->path, compressed_offset(reader),
                             reader->stream.msg ? reader->stream.msg : "invalid data");
        } else if (produced == 0 && reader->stream.avail_in == input_before) {
            /* zlib could make no progress with input and room available. */
            return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                             "%s: corrupt gzip data near compressed byte offset %lld", reader->path,
                             compressed_offset(reader));
        }
    }
    *got = delivered;
    return CLCNN_OK;
}

static clcnn_status reader_read(idx_reader *reader, unsigned char *destination, size_t want,
                                size_t *got) {
    if (reader->is_gzip)
        return inflate_some(reader, destination, want, got);
    *got = fread(destination, 1, want, reader->file);
    if (*got < want && ferror(reader->file))
        return set_error(reader->ctx, CLCNN_ERROR_IO, "%s: read failed: %s", reader->path,
                         strerror(errno));
    return CLCNN_OK;
}

static const char *idx_type_name(int type) {
    switch (type) {
    case 0x08:
        return "unsigned byte";
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "short";
    case 0x0C:
        return "int";
    case 0x0D:
        return "float";
    case 0x0E:
        return "double";
    }
    return "not an IDX type";
}

static const char *offsets_note(const idx_reader *reader) {
    return reader->is_gzip ? " (offsets in the uncompressed stream)" : "";
}

static clcnn_status read_header(idx_reader *reader, clcnn_array *array, size_t *header_size) {
    unsigned char head[4 + 4 * IDX_MAX_DIMS];
    size_t got = 0;
    clcnn_status status = reader_read(reader, head, 4, &got);
    if (status != CLCNN_OK)
        return status;
    if (got < 4)
        return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                         "%s: truncated at byte offset %zu, expected a 4-byte IDX magic number%s",
                         reader->path, got, offsets_note(reader));
    if (head[0] != 0 || head[1] != 0)
        return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                         "%s: not an IDX file: bad magic at byte offset 0 (expected 00 00, found "
                         "%02x %02x)",
                         reader->path, head[0], head[1]);
    if (head[2] != IDX_TYPE_UNSIGNED_BYTE)
        return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                         "%s: unsupported IDX element type 0x%02x (%s) at byte offset 2; only "
                         "0x08 (unsigned byte) is supported",
                         reader->path, head[2], idx_type_name(head[2]));
    int ndim = head[3];
    if (ndim < 1 || ndim > IDX_MAX_DIMS)
        return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                         "%s: unsupported number of dimensions %d at byte offset 3 (expected 1 "
                         "to %d)",
                         reader->path, ndim, IDX_MAX_DIMS);
    size_t dims_size = 4 * (size_t)ndim;
    status = reader_read(reader, head + 4, dims_size, &got);
    if (status != CLCNN_OK)
        return status;
    if (got < dims_size)
        return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                         "%s: truncated at byte offset %zu, expected a header of %zu bytes for %d "
                         "dimensions%s",
                         reader->path, 4 + got, 4 + dims_size, ndim, offsets_note(reader));

    uint64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *bytes = head + 4 + 4 * i;
        uint32_t dim = (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 |
                       (uint32_t)bytes[2] << 8 | (uint32_t)bytes[3];
        if (dim == 0)
            return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                             "%s: dimension %d is 0 at byte offset %d", reader->path, i, 4 + 4 * i);
        /* count <= 2^31 and dim < 2^32, so the product fits in 64 bits. */
        count *= dim;
        if (count > idx_max_elements)
            return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                             "%s: the header claims more than 2^31 elements (dimensions up to %d "
                             "multiply to %llu)",
                             reader->path, i, (unsigned long long)count);
        array->shape[i] = dim;
    }
    array->dtype = CLCNN_UINT8;
    array->ndim = ndim;
    *header_size = 4 + dims_size;
    return CLCNN_OK;
}

static clcnn_status read_raw_data(idx_reader *reader, long long file_size, size_t header_size,
                                  size_t count, unsigned char **out) {
    long long expected_size = (long long)header_size + (long long)count;
    if (file_size < expected_size)
        return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                         "%s: truncated at byte offset %lld, expected %zu bytes of data (the "
                         "file is %lld bytes, too short by %lld)",
                         reader->path, file_size, count, file_size, expected_size - file_size);
    if (file_size > expected_size)
        return set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                         "%s: %lld trailing bytes after the data, which ends at byte offset %lld",
                         reader->path, file_size - expected_size, expected_size);
    unsigned char *data = malloc(count);
    if (!data)
        return set_error(reader->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes",
                         reader->path, count);
    size_t got = 0;
    clcnn_status status = reader_read(reader, data, count, &got);
    if (status == CLCNN_OK && got < count)
        status = set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                           "%s: truncated at byte offset %zu, expected %zu bytes of data (was "
                           "the file changed while being read?)",
                           reader->path, header_size + got, count);
    if (status != CLCNN_OK) {
        free(data);
        return status;
    }
    *out = data;
    return CLCNN_OK;
}

static clcnn_status read_gzip_data(idx_reader *reader, size_t header_size, size_t count,
                                   unsigned char **out) {
    size_t capacity = count < IDX_FIRST_CAPACITY ? count : IDX_FIRST_CAPACITY;
    unsigned char *data = malloc(capacity);
    if (!data)
        return set_error(reader->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes",
                         reader->path, capacity);
    size_t filled = 0;
    clcnn_status status = CLCNN_OK;
    while (filled < count) {
        if (filled == capacity) {
            size_t grown = capacity > count / 2 ? count : capacity * 2;
            unsigned char *bigger = realloc(data, grown);
            if (!bigger) {
                status = set_error(reader->ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                                   "%s: cannot allocate %zu bytes", reader->path, grown);
                break;
            }
            data = bigger;
            capacity = grown;
        }
        size_t requested = capacity - filled;
        size_t got = 0;
        status = reader_read(reader, data + filled, requested, &got);
        if (status != CLCNN_OK)
            break;
        filled += got;
        if (got < requested)
            break;
    }
    if (status == CLCNN_OK && filled < count)
        status = set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                           "%s: truncated at byte offset %zu, expected %zu bytes of data%s",
                           reader->path, header_size + filled, count, offsets_note(reader));
    if (status == CLCNN_OK) {
        /* Reading on must reach the end of the stream cleanly: that also
         * checks the gzip CRC and length of what was read. */
        unsigned char extra;
        size_t got = 0;
        status = reader_read(reader, &extra, 1, &got);
        if (status == CLCNN_OK && got > 0)
            status = set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                               "%s: trailing data after the expected end at byte offset %zu%s",
                               reader->path, header_size + count, offsets_note(reader));
        else if (status == CLCNN_OK && reader->stream_truncated)
            status = set_error(reader->ctx, CLCNN_ERROR_FORMAT,
                               "%s: truncated gzip stream: the file ends at compressed byte "
                               "offset %lld before the gzip end marker",
                               reader->path, reader->compressed_read);
    }
    if (status != CLCNN_OK) {
        free(data);
        return status;
    }
    *out = data;
    return CLCNN_OK;
}

static clcnn_status read_idx_file(idx_reader *reader, long long file_size, clcnn_array *out) {
    clcnn_array array;
    memset(&array, 0, sizeof(array));
    size_t header_size = 0;
    clcnn_status status = read_header(reader, &array, &header_size);
    if (status != CLCNN_OK)
        return status;
    size_t count = (size_t)clcnn_array_count(&array);
    unsigned char *data = NULL;
    if (reader->is_gzip)
        status = read_gzip_data(reader, header_size, count, &data);
    else
        status = read_raw_data(reader, file_size, header_size, count, &data);
    if (status != CLCNN_OK)
        return status;
    array.data = data;
    *out = array;
    return CLCNN_OK;
}

clcnn_status clcnn_idx_read(clcnn_context *ctx, const char *path, clcnn_array *out) {
    if (out)
        memset(out, 0, sizeof(*out));
    if (!path || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_idx_read: path and out are required");
    FILE *file = fopen(path, "rb");
    if (!file)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat info;
    if (fstat(fileno(file), &info) != 0) {
        clcnn_status status =
            set_error(ctx, CLCNN_ERROR_IO, "%s: cannot stat: %s", path, strerror(errno));
        fclose(file);
        return status;
    }
    if (!S_ISREG(info.st_mode)) {
        fclose(file);
        return set_error(ctx, CLCNN_ERROR_IO, "%s: not a regular file", path);
    }

    /* The reader holds a 16 KiB input buffer: keep it off the stack. */
    idx_reader *reader = calloc(1, sizeof(*reader));
    if (!reader) {
        fclose(file);
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    reader->ctx = ctx;
    reader->path = path;
    reader->file = file;

    unsigned char signature[2];
    size_t signature_size = fread(signature, 1, 2, file);
    reader->is_gzip = signature_size == 2 && signature[0] == 0x1f && signature[1] == 0x8b;
    clcnn_status status = CLCNN_OK;
    if (fseek(file, 0, SEEK_SET) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: cannot seek: %s", path, strerror(errno));
    if (status == CLCNN_OK && reader->is_gzip) {
        /* 16 + MAX_WBITS: a gzip wrapper, not zlib or raw deflate. */
        int result = inflateInit2(&reader->stream, 16 + MAX_WBITS);
        if (result == Z_OK)
            reader->inflate_started = 1;
        else if (result == Z_MEM_ERROR)
            status = set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
        else
            status = set_error(ctx, CLCNN_ERROR_FORMAT, "%s: cannot start inflating: %s", path,
                               reader->stream.msg ? reader->stream.msg : "zlib error");
    }
    if (status == CLCNN_OK)
        status = read_idx_file(reader, (long long)info.st_size, out);

    if (reader->inflate_started)
        inflateEnd(&reader->stream);
    free(reader);
    fclose(file);
    return status;
}
