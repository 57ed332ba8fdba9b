#ifndef ZONEWALL_CGLIBC_SHIM_H
#define ZONEWALL_CGLIBC_SHIM_H
/* glibc's heap tuning (malloc_trim, mallopt, M_ARENA_MAX), which Swift's Glibc module leaves out. */
#include <malloc.h>
#endif
