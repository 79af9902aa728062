/* Checks of image files before stb_image 2.27 reads them, for what that
 * version mishandles (found by the fuzzers), so that the caller refuses the
 * file. Used by the library's image folders and by the command line's image
 * reader, which compiles this file in too (the library's copy is hidden). */
#ifndef CLCNN_IO_IMAGE_GUARDS_H
#define CLCNN_IO_IMAGE_GUARDS_H

/* Why path must not be given to stb_image (words to follow "cannot read
 * the image: "), or NULL when it may: a binary PNM whose header has a
 * number of more than 9 significant digits, a JPEG with a Huffman table of
 * more than 256 codes, a PNG with a chunk that runs past the file's end. */
const char *image_refusal(const char *path);

#endif
