/* Checks of image files before stb_image 2.27 reads them: each returns 1
 * when path holds what that version mishandles (found by the fuzzers), so
 * that the caller refuses the file. Used by the library's image folders
 * and by the command line's image reader, which compiles this file in too
 * (the library's copy is hidden). */
#ifndef CLCNN_IO_IMAGE_GUARDS_H
#define CLCNN_IO_IMAGE_GUARDS_H

/* A JPEG with a Huffman table of more than 256 codes. */
int image_jpeg_huffman_overflows(const char *path);
/* A binary PNM whose header has a number of more than 9 significant digits. */
int image_pnm_number_too_long(const char *path);

#endif
