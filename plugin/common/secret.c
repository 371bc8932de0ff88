/* Reading the files the plugin is given (secrets, lists), symlinks followed safely, and wiping
 * secrets. Pure; any thread (the broker thread reads its files, the worker an OIDC token). */
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

/* What sits at path, for a message: " (a symlink to <its target>)" when it is one, else "". */
static void link__describe(const char *path, char *out, size_t outlen)
{
	char target[512];
	struct stat lst;
	ssize_t n;

	out[0] = '\0';
	if(lstat(path, &lst) || !S_ISLNK(lst.st_mode)) return;
	n = readlink(path, target, sizeof(target) - 1);
	if(n < 0) return;
	target[n] = '\0';
	snprintf(out, outlen, " (a symlink to %s)", target);
}

static const char *file__kind(mode_t mode)
{
	if(S_ISDIR(mode)) return "a directory";
	if(S_ISFIFO(mode)) return "a FIFO";
	if(S_ISCHR(mode)) return "a character device";
	if(S_ISBLK(mode)) return "a block device";
	if(S_ISSOCK(mode)) return "a socket";
	return "not a file";
}

/* Whether the broker's process is in group gid (effective or supplementary). */
static bool group__is_mine(gid_t gid)
{
	gid_t *groups;
	int n;
	bool mine = false;

	if(gid == getegid()) return true;
	n = getgroups(0, NULL);
	if(n <= 0) return false;
	groups = calloc((size_t)n, sizeof(*groups));
	if(!groups) return false;
	n = getgroups(n, groups);
	for(int i = 0; i < n && !mine; i++) mine = groups[i] == gid;
	free(groups);
	return mine;
}

/* A private file: its owner alone may use it, or its group may read it too when that group is
 * one the broker is in and the owner is root or the broker itself (Kubernetes' fsGroup makes
 * Secret files 0440 root:<fsGroup>; Debian's 0640 root:mosquitto): then nobody outside root and
 * the broker's own group can read or change it. Never writable by the group (whoever could
 * rewrite a ProductSecret could sign for any device), never anything for others. */
static bool mode__private(const struct stat *st)
{
	if(st->st_mode & S_IRWXO) return false;
	/* owned by another user, it is that user's to rewrite or read, whatever its mode */
	if(st->st_uid != 0 && st->st_uid != geteuid()) return false;
	if(!(st->st_mode & S_IRWXG)) return true;
	if(st->st_mode & (S_IWGRP | S_IXGRP)) return false;
	return group__is_mine(st->st_gid);
}

int secret__read_file_max(const char *label, const char *path, bool private, size_t max, char **out, size_t *len,
		char *err, size_t errlen)
{
	struct stat st;
	char *buf, where[600];
	const char *colon = label ? ": " : "";
	ssize_t got;
	size_t total = 0;
	int fd;

	*out = NULL;
	if(!label) label = "";
	/* Symlinks are followed: Kubernetes projects files as name -> ..data/name with ..data ->
	 * ..<time>/ swapped on each update, and systemd and Docker link too. What the rules below
	 * check is the final target, as opened. A look first, so that a device is never opened (an
	 * open can act: a tape rewinds, a tty is acquired). */
	if(stat(path, &st)){
		int e = errno;
		link__describe(path, where, sizeof(where));
		if(e == ENOENT && where[0]){
			text__error(err, errlen, "%s%scannot open %s%s: it points to nothing (a dangling symlink)", label, colon, path, where);
		}else if(e == ELOOP){
			text__error(err, errlen, "%s%scannot open %s%s: %s (a symlink loop)", label, colon, path, where, strerror(e));
		}else{
			text__error(err, errlen, "%s%scannot open %s%s: %s", label, colon, path, where, strerror(e));
		}
		return -1;
	}
	if(!S_ISREG(st.st_mode)){
		link__describe(path, where, sizeof(where));
		text__error(err, errlen, "%s%s%s%s is not a regular file (%s)", label, colon, path, where, file__kind(st.st_mode));
		return -1;
	}
	/* O_NONBLOCK: should a FIFO be swapped in since the look, open() must still not stall the
	 * broker thread; the fstat below refuses it */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if(fd < 0){
		int e = errno;
		link__describe(path, where, sizeof(where));
		text__error(err, errlen, "%s%scannot open %s%s: %s", label, colon, path, where, strerror(e));
		return -1;
	}
	if(fstat(fd, &st)){
		int e = errno;
		text__error(err, errlen, "%s%scannot open %s: %s", label, colon, path, strerror(e));
		close(fd);
		return -1;
	}
	if(!S_ISREG(st.st_mode)){
		link__describe(path, where, sizeof(where));
		text__error(err, errlen, "%s%s%s%s is not a regular file (%s)", label, colon, path, where, file__kind(st.st_mode));
		close(fd);
		return -1;
	}
	if(private && !mode__private(&st)){
		link__describe(path, where, sizeof(where));
		if(st.st_mode & (S_IRWXO | S_IWGRP | S_IXGRP)){
			text__error(err, errlen, "%s%s%s%s is accessible by group or others (mode %03o); chmod 600 it (or 640 "
					"with a group the broker is in)", label, colon, path, where, (unsigned)(st.st_mode & 0777));
		}else if(st.st_uid != 0 && st.st_uid != geteuid()){
			text__error(err, errlen, "%s%s%s%s is owned by another user (uid %lu, mode %03o), who can read and rewrite it; "
					"chown it to root or the broker's user", label, colon, path, where,
					(unsigned long)st.st_uid, (unsigned)(st.st_mode & 0777));
		}else{
			text__error(err, errlen, "%s%s%s%s is accessible by group or others (mode %03o) and its group (gid %lu) is "
					"not one the broker is in; chmod 600 it, or chgrp it to the broker's group", label, colon, path, where,
					(unsigned)(st.st_mode & 0777), (unsigned long)st.st_gid);
		}
		close(fd);
		return -1;
	}
	if((unsigned long long)st.st_size > max){
		link__describe(path, where, sizeof(where));
		text__error(err, errlen, "%s%s%s%s is larger than %zu bytes", label, colon, path, where, max);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if(!buf){
		close(fd);
		text__error(err, errlen, "%s%sout of memory", label, colon);
		return -1;
	}
	while(total < (size_t)st.st_size){
		got = read(fd, buf + total, (size_t)st.st_size - total);
		if(got < 0 && errno == EINTR) continue;
		if(got < 0){
			int e = errno;
			text__error(err, errlen, "%s%scannot read %s: %s", label, colon, path, strerror(e));
			OPENSSL_cleanse(buf, total);
			free(buf);
			close(fd);
			return -1;
		}
		if(got == 0) break; /* shrank meanwhile: what was there */
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
