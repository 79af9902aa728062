/* stb_image's decoders (image folders: PNG, JPEG, PGM, PPM), compiled into
 * the library from Debian's header so that nothing of stb has to be linked.
 * Like every internal symbol they are hidden: the shared library does not
 * export them and the static one makes them local. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
