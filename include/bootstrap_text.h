#ifndef BOOTSTRAP_TEXT_H
#define BOOTSTRAP_TEXT_H
/* Text from the network (client ids, platform codes) on its way into logs, audit lines and
 * replies: printable ASCII only, so nobody injects control characters or escapes. */
#include <stddef.h>

/* Copies src into dst keeping printable ASCII only, truncated to fit; returns dst. NULL src
 * gives "". Any thread. */
static inline char *text__printable(char *dst, size_t dstlen, const char *src)
{
	size_t j = 0;

	for(size_t i = 0; src && src[i] && j + 1 < dstlen; i++){
		unsigned char c = (unsigned char)src[i];
		if(c >= 0x20 && c < 0x7f) dst[j++] = (char)c;
	}
	dst[j] = '\0';
	return dst;
}

#endif
