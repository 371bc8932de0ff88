#ifndef BOOTSTRAP_HASH_H
#define BOOTSTRAP_HASH_H
/* FNV-1a over a C string, for the plugin's hash tables (jobs, replay cache, failure limiter). */
#include <stdint.h>

#define HASH_SEED 2166136261u /* FNV-1a offset basis */

/* One byte more: hash__string is this step over every byte. */
static inline uint32_t hash__byte(uint32_t h, unsigned char c)
{
	return (h ^ c) * 16777619u;
}

/* Continues a hash from h; start with HASH_SEED. */
static inline uint32_t hash__string(const char *s, uint32_t h)
{
	while(*s){
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

#endif
