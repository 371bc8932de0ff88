/* The target programs' arena and stack painting (target_support.h). Runs on the device's one
 * thread; the static state here is the test program's, not the library's. */
#include <stdint.h>
#include <string.h>
#include "target_support.h"

/* mbedTLS 2.28 borrows at most 280 bytes (HMAC's or GCM's contexts) */
#ifndef TARGET_ARENA_SIZE
#define TARGET_ARENA_SIZE 4096
#endif
#define ARENA_SIZE TARGET_ARENA_SIZE

static _Alignas(8) unsigned char arena[ARENA_SIZE];
static size_t arena_top, arena_peak, arena_live;

void *bootstrap_target_calloc(size_t n, size_t size)
{
	size_t bytes;

	if(size != 0 && n > SIZE_MAX / size) return NULL;
	bytes = (n * size + 7u) & ~(size_t)7u;
	if(bytes > ARENA_SIZE - arena_top) return NULL;
	void *p = arena + arena_top;
	memset(p, 0, bytes);
	arena_top += bytes;
	arena_live++;
	if(arena_top > arena_peak) arena_peak = arena_top;
	return p;
}

/* cppcheck-suppress constParameter ; free()'s signature, which mbedTLS calls it with */
void bootstrap_target_free(void *p)
{
	if(p == NULL) return;
	/* blocks live only inside one mbedTLS call: the arena empties when the last is freed */
	if(--arena_live == 0) arena_top = 0;
}

void target_heap_reset(void)
{
	arena_peak = arena_top;
}

size_t target_heap_peak(void)
{
	return arena_peak;
}

size_t target_heap_live(void)
{
	return arena_live;
}

uintptr_t target_paint_sp;
