#ifndef BOOTSTRAP_CLOCK_H
#define BOOTSTRAP_CLOCK_H
/* Monotonic milliseconds: every interval, deadline and rate in the plugin is measured on it. */
#include <stdint.h>
#include <time.h>

static inline int64_t clock__ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
