#ifndef BOOTSTRAP_SECRET_H
#define BOOTSTRAP_SECRET_H
/* The files the plugin reads (secrets, the products file, the allowlist), and wiping secrets
 * from memory. Pure; any thread. Below the configuration, credentials, products and allowlist
 * modules, which all read files through it. */
#include <stdbool.h>
#include <stddef.h>

#define SECRET_FILE_MAX (64 * 1024)

/* Reads a regular file of at most SECRET_FILE_MAX bytes into *out (malloc'd, NUL-terminated;
 * wipe and free it). Symlinks are followed (Kubernetes, systemd and Docker lay files out behind
 * them); the final target must be a regular file, and is never opened otherwise (no FIFO,
 * device or directory; nothing stalls). private: its owner alone may access it, or its group
 * may read it as well when that group is one the broker's process is in and the owner is root
 * or the broker (0440 root:<fsGroup> on Kubernetes); others nothing. On failure err reads
 * "<label>: <why>" (just "<why>" with a NULL label), naming the path and where a symlink
 * points, never the content. 0 or -1. */
int secret__read_file(const char *label, const char *path, bool private, char **out, char *err, size_t errlen);
/* The same, for files that may be larger (a list of secret files, the allowlist): at most max
 * bytes; *len (if given) gets how many were read, NUL bytes included. */
int secret__read_file_max(const char *label, const char *path, bool private, size_t max, char **out, size_t *len,
		char *err, size_t errlen);

/* Wipes and frees a secret string, and clears the pointer. */
void secret__free(char **secret);

/* White space off both ends, in place. */
char *secret__trim(char *s);

#endif
