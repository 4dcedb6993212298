/* MOFO_API marks the functions libmofo exports; everything else in the library is compiled with
 * hidden visibility, so libmofo.so exports only what the installed headers declare (checked by
 * tests/exports_check.sh with nm -D). */
#ifndef MOFO_EXPORT_H
#define MOFO_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define MOFO_API __attribute__((visibility("default")))
#else
#define MOFO_API
#endif

#endif
