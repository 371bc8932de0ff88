/* What the target programs (QEMU tests, size probes) provide around device/: the memory mbedTLS
 * 2.28 asks for (bootstrap_mbedtls_config.h) from a fixed arena whose peak is measured, and
 * stack painting to measure a call's stack peak on the emulated CPU. Not part of the library. */
#ifndef BOOTSTRAP_TARGET_SUPPORT_H
#define BOOTSTRAP_TARGET_SUPPORT_H
#include <stddef.h>

/* the arena's peak since the last reset, in bytes (8-byte aligned blocks) */
void target_heap_reset(void);
size_t target_heap_peak(void);
size_t target_heap_live(void);

/* target_stack_paint() fills the unused stack below the caller's stack pointer with a pattern;
 * target_stack_used() then says how many bytes below that stack pointer were written since:
 * the peak of the calls made in between, their callees included. Inline, so that the stack
 * pointer is the caller's own (nothing on a Cortex-M uses the stack below it meanwhile). */
#include <stdint.h>
#define TARGET_PAINT 0xA5u
extern unsigned char __stack_limit[];
extern uintptr_t target_paint_sp;

static inline __attribute__((always_inline)) void target_stack_paint(void)
{
	uintptr_t sp;
	__asm__ volatile("mov %0, sp" : "=r"(sp));
	target_paint_sp = sp;
	for(volatile unsigned char *p = __stack_limit; (uintptr_t)p < sp; p++) *p = TARGET_PAINT;
}

static inline size_t target_stack_used(void)
{
	const volatile unsigned char *p = __stack_limit;
	while((uintptr_t)p < target_paint_sp && *p == TARGET_PAINT) p++;
	return target_paint_sp - (uintptr_t)p;
}
#endif
