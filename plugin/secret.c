/* Reading secret files and wiping secrets. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "bootstrap_secret.h"
#include "bootstrap_text.h"

int secret__read_file(const char *label, const char *path, bool private, char **out, char *err, size_t errlen)
{
	return secret__read_file_max(label, path, private, SECRET_FILE_MAX, out, NULL, err, errlen);
}

int secret__read_file_max(const char *label, const char *path, bool private, size_t max, char **out, size_t *len,
		char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	ssize_t got;
	size_t total = 0;
	int fd;

	*out = NULL;
	/* O_NONBLOCK: a FIFO put at the path must not stall the broker thread in open() */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if(fd < 0){
		text__error(err, errlen, "%s: cannot open %s: %s", label, path, strerror(errno));
		return -1;
	}
	if(fstat(fd, &st) || !S_ISREG(st.st_mode)){
		text__error(err, errlen, "%s: %s is not a regular file", label, path);
		close(fd);
		return -1;
	}
	if(private && (st.st_mode & (S_IRWXG | S_IRWXO))){
		text__error(err, errlen, "%s: %s is accessible by group or others (mode %03o); chmod 600 it",
				label, path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	if((unsigned long long)st.st_size > max){
		text__error(err, errlen, "%s: %s is larger than %zu bytes", label, path, max);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if(!buf){
		close(fd);
		text__error(err, errlen, "out of memory");
		return -1;
	}
	while(total < (size_t)st.st_size){
		got = read(fd, buf + total, (size_t)st.st_size - total);
		if(got <= 0) break;
		total += (size_t)got;
	}
	close(fd);
	buf[total] = '\0';
	*out = buf;
	if(len) *len = total;
	return 0;
}

void secret__free(char **s)
{
	if(*s){
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

char *secret__trim(char *s)
{
	char *end;

	while(*s && isspace((unsigned char)*s)) s++;
	end = s + strlen(s);
	while(end > s && isspace((unsigned char)end[-1])) end--;
	*end = '\0';
	return s;
}
