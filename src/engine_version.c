/* The engine library's version string (the engine's layers add their own files). */
#include "mofo_version.h"

const char *mofo_engine_version(void);
const char *mofo_engine_version(void) { return MOFO_VERSION; }
