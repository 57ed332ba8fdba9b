#ifndef ZONEWALL_CFUZZDRIVER_H
#define ZONEWALL_CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point (compiler-rt's FuzzerInterface.h). SwiftPM gives every executable its
 * own `main`, so libFuzzer's `main` is never linked: each target's `main` calls this instead. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
#endif
