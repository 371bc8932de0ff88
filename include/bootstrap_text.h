#ifndef BOOTSTRAP_TEXT_H
#define BOOTSTRAP_TEXT_H
/* Text from the network (client ids, platform codes) on its way into logs, audit lines and
 * replies: printable ASCII only, so nobody injects control characters or escapes. */
#include <stdarg.h>
#include <stdio.h>
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

/* Formats one sentence into err (for a module's "why it failed" out-parameter); err may be
 * NULL. Any thread. */
static inline void text__error(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void text__error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list va;

	if(!err || errlen == 0) return;
	va_start(va, fmt);
	vsnprintf(err, errlen, fmt, va);
	va_end(va);
}

#endif
