#ifndef BOOTSTRAP_SECRET_H
#define BOOTSTRAP_SECRET_H
/* Files that hold secrets, and wiping secrets from memory. Pure; any thread. Below both the
 * configuration and the credentials modules, which both read such files. */
#include <stdbool.h>
#include <stddef.h>

#define SECRET_FILE_MAX (64 * 1024)

/* Reads a regular file of at most SECRET_FILE_MAX bytes into *out (malloc'd, NUL-terminated;
 * wipe and free it). private: refused when group or others have any permission on it. On
 * failure err reads "<label>: <why>", naming the path, never the content. 0 or -1. */
int secret__read_file(const char *label, const char *path, bool private, char **out, char *err, size_t errlen);
/* The same, for files that may be larger (a list of secret files): at most max bytes; *len
 * (if given) gets how many were read, NUL bytes included. */
int secret__read_file_max(const char *label, const char *path, bool private, size_t max, char **out, size_t *len,
		char *err, size_t errlen);

/* Wipes and frees a secret string, and clears the pointer. */
void secret__free(char **secret);

/* White space off both ends, in place. */
char *secret__trim(char *s);

#endif
