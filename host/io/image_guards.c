/* Checks of image files before stb_image 2.27 reads them, for the bugs of
 * that version the fuzzers found (host/io/image_guards.h). */
#include "io/image_guards.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* stb_image 2.27 builds a JPEG Huffman table from 16 code counts without
 * checking that they total at most 256, and writes past the table when they
 * do (found by the image fuzzer): 1 when f is a JPEG with such a table
 * (a DHT segment anywhere in its marker structure), which is then refused
 * before stb_image reads it. Files over 64 MiB are left to stb_image. */
static int jpeg_huffman_overflows(FILE *f) {
    unsigned char start;
    long size = -1;
    if (fseek(f, 0, SEEK_SET) == 0 && fread(&start, 1, 1, f) == 1 && start == 0xff &&
        fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    unsigned char *b = size > 0 && size <= (64L << 20) ? malloc((size_t)size) : NULL;
    int overflows = 0;
    if (b && fseek(f, 0, SEEK_SET) == 0 && fread(b, 1, (size_t)size, f) == (size_t)size) {
        const long n = size;
        /* The start-of-image marker, after any 0xff fill bytes as stb_image
         * takes it (0xff 0xff 0xd8 too: the fuzzer's third find). */
        long i = 1;
        while (i < n && b[i] == 0xff)
            i++;
        i = i < n && b[i] == 0xd8 ? i + 1 : n;
        while (i + 1 < n && !overflows) {
            if (b[i] != 0xff) {
                i++; /* entropy-coded data after a scan */
                continue;
            }
            const int marker = b[i + 1];
            if (marker == 0xff || marker == 0x00 || marker == 0x01 || marker == 0xd8 ||
                (marker >= 0xd0 && marker <= 0xd7)) {
                i += marker == 0xff ? 1 : 2; /* fill, stuffing, markers without a length */
                continue;
            }
            if (marker == 0xd9 || i + 3 >= n)
                break;
            const long length = (long)b[i + 2] << 8 | b[i + 3];
            const long end = i + 2 + length < n ? i + 2 + length : n;
            if (marker == 0xc4) {
                /* Tables of: class and index, 16 counts, that many symbols,
                 * read as stb_image reads them: while the segment's length
                 * lasts, a table that starts inside it read whole even past
                 * its end (the fuzzer's second find), bytes past the file's
                 * end as 0. A bad class or index, or a length the tables do
                 * not fill exactly, and stb_image refuses the file. */
                long left = length - 2, p = i + 4;
                while (left > 0 && !overflows && p < n && b[p] >> 4 <= 1 && (b[p] & 15) <= 3) {
                    int total = 0;
                    for (int k = 1; k <= 16; k++)
                        total += p + k < n ? b[p + k] : 0;
                    overflows = total > 256;
                    p += 17 + total;
                    left -= 17 + total;
                }
                if (left != 0)
                    break;
            }
            i = end > i + 2 ? end : i + 2;
        }
    }
    free(b);
    return overflows;
}

/* stb_image 2.27 reads a binary PNM's (P5, P6) width, height and maximum
 * value into an int with no check for overflow, undefined behaviour that
 * the fuzzer found: 1 when f is such a file with a number of more than 9
 * significant digits in its header (the first 4 KiB), which is then refused
 * before stb_image reads it. */
static int pnm_number_too_long(FILE *f) {
    unsigned char header[4096];
    const size_t n = fseek(f, 0, SEEK_SET) == 0 ? fread(header, 1, sizeof(header), f) : 0;
    if (n < 2 || header[0] != 'P' || (header[1] != '5' && header[1] != '6'))
        return 0;
    size_t i = 2;
    for (int number = 0; number < 3; number++) {
        while (i < n && (isspace(header[i]) || header[i] == '#')) {
            if (header[i] == '#')
                while (i < n && header[i] != '\n' && header[i] != '\r')
                    i++;
            else
                i++;
        }
        int significant = 0;
        for (; i < n && isdigit(header[i]); i++)
            if (significant > 0 || header[i] != '0')
                if (++significant > 9)
                    return 1;
    }
    return 0;
}

/* stb_image 2.27 grows its buffer for a PNG's image data to fit a chunk's
 * declared length before it reads the chunk: a 241-byte file declaring a
 * chunk of a gigabyte had it allocate 2 GiB (found by the folder fuzzer). 1
 * when f is a PNG with a chunk, before its IEND, whose data runs past
 * the file's end, which is then refused before stb_image reads it. */
static int png_chunk_past_end(FILE *f) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char header[8];
    long size = -1;
    if (fseek(f, 0, SEEK_SET) == 0 && fread(header, 1, 8, f) == 8 &&
        memcmp(header, signature, 8) == 0 && fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    int past_end = 0;
    /* Chunks: a 4-byte big-endian length, a 4-byte type, the data, a CRC. */
    for (long at = 8; !past_end && size > 0 && at + 8 <= size; at += 12) {
        if (fseek(f, at, SEEK_SET) != 0 || fread(header, 1, 8, f) != 8)
            break;
        const unsigned long length = (unsigned long)header[0] << 24 |
                                     (unsigned long)header[1] << 16 |
                                     (unsigned long)header[2] << 8 | header[3];
        past_end = length > (unsigned long)(size - at - 8);
        if (memcmp(header + 4, "IEND", 4) == 0)
            break;
        at += (long)length;
    }
    return past_end;
}

const char *image_refusal(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL; /* stb_image says it cannot open it */
    const char *refusal = pnm_number_too_long(f) ? "a number in its PNM header is too large"
                          : jpeg_huffman_overflows(f)
                              ? "a JPEG Huffman table has more than 256 codes"
                          : png_chunk_past_end(f) ? "a PNG chunk runs past the end of the file"
                                                  : NULL;
    fclose(f);
    return refusal;
}
