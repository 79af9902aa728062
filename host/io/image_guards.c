/* Checks of image files before stb_image 2.27 reads them, for the bugs of
 * that version the fuzzers found (host/io/image_guards.h). */
#include "io/image_guards.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

/* stb_image 2.27 builds a JPEG Huffman table from 16 code counts without
 * checking that they total at most 256, and writes past the table when they
 * do (found by the image fuzzer): 1 when path is a JPEG with such a table
 * (a DHT segment anywhere in its marker structure), which is then refused
 * before stb_image reads it. Files over 64 MiB are left to stb_image. */
int image_jpeg_huffman_overflows(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char start[2];
    long size = -1;
    if (fread(start, 1, 2, f) == 2 && start[0] == 0xff && start[1] == 0xd8 &&
        fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    unsigned char *b = size > 0 && size <= (64L << 20) ? malloc((size_t)size) : NULL;
    int overflows = 0;
    if (b && fseek(f, 0, SEEK_SET) == 0 && fread(b, 1, (size_t)size, f) == (size_t)size) {
        const long n = size;
        long i = 2;
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
                /* Tables of: class and index, 16 counts, that many symbols. */
                for (long p = i + 4; p + 17 <= end && !overflows;) {
                    int total = 0;
                    for (int k = 1; k <= 16; k++)
                        total += b[p + k];
                    overflows = total > 256;
                    p += 17 + total;
                }
            }
            i = end > i + 2 ? end : i + 2;
        }
    }
    free(b);
    fclose(f);
    return overflows;
}

/* stb_image 2.27 reads a binary PNM's (P5, P6) width, height and maximum
 * value into an int with no check for overflow, undefined behaviour that
 * the fuzzer found: 1 when path is such a file with a number of more than 9
 * significant digits in its header (the first 4 KiB), which is then refused
 * before stb_image reads it. */
int image_pnm_number_too_long(const char *path) {
    unsigned char header[4096];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    const size_t n = fread(header, 1, sizeof(header), f);
    fclose(f);
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
