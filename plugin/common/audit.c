/* The audit trail: JSON lines, appended. Broker thread only. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "bootstrap_audit.h"
#include "bootstrap_reply.h"
#include "bootstrap_text.h"

/* The audit code of a line: the reply code, or the reason's own name when there was no reply. */
static const char *audit__code(const struct audit_entry *e)
{
	int code = reason__code(e->reason);

	return code == AUDIT_ONLY ? reason__name(e->reason) : reply__code_name((enum bootstrap_code)code);
}

struct audit {
	char *path;
	int fd;
};

static int audit__open_fd(const char *path, char *err, size_t errlen)
{
	/* 0640: operators read it through the broker's group; never world-readable. O_NONBLOCK: a
	 * FIFO put at the path must not stall the broker thread in open(); only a regular file is
	 * written to */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
	struct stat st;

	if(fd < 0){
		snprintf(err, errlen, "plugin_opt_audit_file: cannot open %s for appending: %s", path, strerror(errno));
		return -1;
	}
	if(fstat(fd, &st) || !S_ISREG(st.st_mode)){
		snprintf(err, errlen, "plugin_opt_audit_file: %s is not a regular file", path);
		close(fd);
		return -1;
	}
	return fd;
}

struct audit *audit__open(const char *path, char *err, size_t errlen)
{
	struct audit *a = calloc(1, sizeof(*a));

	if(!a || !(a->path = strdup(path))){
		free(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->fd = audit__open_fd(path, err, errlen);
	if(a->fd < 0){
		free(a->path);
		free(a);
		return NULL;
	}
	return a;
}

int audit__reopen(struct audit *a, char *err, size_t errlen)
{
	int fd = audit__open_fd(a->path, err, errlen);

	if(fd < 0) return -1; /* keep writing where we were */
	close(a->fd);
	a->fd = fd;
	return 0;
}

/* A client id longer than AUDIT_CLIENT_SHOWN bytes: its start, escaped, then its length and a
 * digest of the whole, so a flood of 64 KB client ids cannot grow the file by 64 KB a line, and
 * two different ids still never read the same. */
static const char *audit__cut(const char *s, char *buf, size_t buflen)
{
	char head[AUDIT_CLIENT_SHOWN + 1], shown[TEXT_ESCAPED_LEN(AUDIT_CLIENT_SHOWN)], hex[2 * 8 + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t len = strlen(s);

	memcpy(head, s, AUDIT_CLIENT_SHOWN);
	head[AUDIT_CLIENT_SHOWN] = '\0';
	if(!EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < 8) memset(md, 0, 8);
	for(int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(buf, buflen, "%s...(%zu bytes, sha256 %s)", text__escape(shown, sizeof(shown), head), len, hex);
	return buf;
}

/* Text as an audit field, escaped (bootstrap_text.h) where escaping changes it: so no control
 * byte reaches the file, two different client ids never read the same, and jansson (UTF-8
 * only) never drops a line. raw: text as the client sent it (a backslash is escaped too);
 * else text validated or escaped already, which is kept as it is unless a byte outside
 * printable ASCII shows it was not. */
static const char *audit__text(const char *s, bool raw, char *buf, size_t buflen)
{
	if(!s) return NULL;
	if(raw && strlen(s) > AUDIT_CLIENT_SHOWN) return audit__cut(s, buf, buflen);
	for(const char *c = s; *c; c++){
		if((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e || (raw && *c == '\\')) return text__escape(buf, buflen, s);
	}
	return s;
}

void audit__record(struct audit *a, const struct audit_entry *e)
{
	char when[32];
	struct tm tm;
	json_t *line;
	char *text;
	/* a client id is written whole up to AUDIT_CLIENT_SHOWN bytes (every one a reply can go
	 * to); a longer one is cut, and marked (audit__cut) */
	char client[TEXT_ESCAPED_LEN(AUDIT_CLIENT_SHOWN) + 64], address[TEXT_ESCAPED_LEN(64)], product_key[TEXT_ESCAPED_LEN(64)];
	char device_id[TEXT_ESCAPED_LEN(64)], request_id[TEXT_ESCAPED_LEN(64)], platform_code[TEXT_ESCAPED_LEN(64)];
	const char *reason = reason__name(e->reason);

	if(!a) return;
	gmtime_r(&e->time, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	line = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:I}",
			"time", when, "client", audit__text(e->client, true, client, sizeof(client)),
			"address", audit__text(e->address, false, address, sizeof(address)),
			"productKey", audit__text(e->product_key, false, product_key, sizeof(product_key)),
			"deviceId", audit__text(e->device_id, false, device_id, sizeof(device_id)), "format", e->format,
			"code", audit__code(e), "reason", reason ? reason : "unknown",
			"platformCode", audit__text(e->platform_code, false, platform_code, sizeof(platform_code)), "device", e->device, "requestId", audit__text(e->request_id, false, request_id, sizeof(request_id)),
			"action", e->action, "durationMs", (json_int_t)e->duration_ms);
	if(line && e->unanswered) json_object_set_new(line, "unanswered", json_integer((json_int_t)e->unanswered));
	text = line ? json_dumps(line, JSON_COMPACT) : NULL;
	if(text){
		size_t len = strlen(text);
		text[len] = '\n'; /* json_dumps' terminator becomes the line end; one write, one line */
		if(write(a->fd, text, len + 1) < 0){ /* a full disk must not stop bootstraps */ }
		free(text);
	}
	json_decref(line);
}

void audit__close(struct audit *a)
{
	if(!a) return;
	close(a->fd);
	free(a->path);
	free(a);
}
