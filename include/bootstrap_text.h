#ifndef BOOTSTRAP_TEXT_H
#define BOOTSTRAP_TEXT_H
/* Text from outside (client ids, deviceIds, the platform's and Redis's answers, file lines) on
 * its way into logs and audit lines is escaped, never filtered: printable ASCII stays as it
 * is, a backslash doubles, every other byte becomes \xNN. So no control byte gets through and
 * two different texts never print the same (nobody passes for "dev-0001" with an invisible
 * character). */
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#define TEXT_ESCAPED_LEN(n) (4 * (size_t)(n) + 1) /* room for n bytes escaped, with the NUL */
#define TEXT_CUT_MARK "\\..."                   /* ends text cut to fit: no escape is a backslash and a dot */

/* Copies src into dst escaped; text that does not fit is cut at a whole escape and ends with
 * TEXT_CUT_MARK. NULL src gives "". Returns dst. Any thread. */
static inline char *text__escape(char *dst, size_t dstlen, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t j = 0, need = 0, room;

	if(dstlen == 0) return dst;
	for(size_t i = 0; src && src[i]; i++){
		unsigned char c = (unsigned char)src[i];
		need += (c == '\\') ? 2 : (c >= 0x20 && c < 0x7f) ? 1 : 4;
	}
	/* cut: keep room for the mark */
	room = need < dstlen ? dstlen - 1 : (dstlen > sizeof(TEXT_CUT_MARK) ? dstlen - sizeof(TEXT_CUT_MARK) : 0);
	for(size_t i = 0; src && src[i]; i++){
		unsigned char c = (unsigned char)src[i];
		size_t w = (c == '\\') ? 2 : (c >= 0x20 && c < 0x7f) ? 1 : 4;
		if(j + w > room) break;
		if(c == '\\'){
			dst[j++] = '\\';
			dst[j++] = '\\';
		}else if(w == 1){
			dst[j++] = (char)c;
		}else{
			dst[j++] = '\\';
			dst[j++] = 'x';
			dst[j++] = hex[c >> 4];
			dst[j++] = hex[c & 0xf];
		}
	}
	if(need >= dstlen && dstlen > sizeof(TEXT_CUT_MARK)){
		memcpy(dst + j, TEXT_CUT_MARK, sizeof(TEXT_CUT_MARK) - 1);
		j += sizeof(TEXT_CUT_MARK) - 1;
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
