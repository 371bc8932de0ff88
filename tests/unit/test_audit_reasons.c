/* The reasons an audit line can carry (bootstrap_reason.h) and the table in docs/operating.md's
 * "Reasons" are the same set, both ways, each with the same code; and an audit line carries
 * its reason and the code that goes with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bootstrap_audit.h"
#include "bootstrap_reply.h"
#include "doc_table.h"
#include "unit.h"

#define MAX_ROWS 128

static char names[MAX_ROWS][64], codes[MAX_ROWS][64];
static int rows;
static const char *doc_path;

/* The audit code a reason goes with: the reply code, or its own name without a reply. */
static const char *code_of(enum bootstrap_reason r)
{
	return reason__code(r) == AUDIT_ONLY ? reason__name(r) : reply__code_name((enum bootstrap_code)reason__code(r));
}

/* Rows "| `reason` | `code` | ... |" under "### Reasons". */
static void reason_row(char *name, char *rest, void *ud)
{
	char *code = strstr(rest, "| `"), *code_end = code ? strchr(code + 3, '`') : NULL;

	(void)ud;
	if(rows == MAX_ROWS) return;
	snprintf(names[rows], sizeof(names[rows]), "%.63s", name);
	codes[rows][0] = '\0';
	if(code_end) snprintf(codes[rows], sizeof(codes[rows]), "%.*s", (int)(code_end - code - 3), code + 3);
	rows++;
}

static void read_table(void)
{
	CHECK(doc_table__each(doc_path, "### Reasons", reason_row, NULL) == 0);
}

static void test_every_documented_reason_exists(void)
{
	CHECK(rows >= 20);
	for(int i = 0; i < rows; i++){
		enum bootstrap_reason found = REASON_NONE;
		for(int r = REASON_NONE + 1; r < REASON_COUNT; r++){
			if(!strcmp(reason__name((enum bootstrap_reason)r), names[i])) found = (enum bootstrap_reason)r;
		}
		if(!found){
			fprintf(stderr, "  docs/operating.md documents reason %s, which the plugin does not have\n", names[i]);
			CHECK(0);
			continue;
		}
		if(strcmp(codes[i], code_of(found))){
			fprintf(stderr, "  docs/operating.md gives reason %s code %s; the plugin %s\n", names[i], codes[i], code_of(found));
			CHECK(0);
		}
	}
}

static void test_every_reason_is_documented_once(void)
{
	for(int r = REASON_NONE + 1; r < REASON_COUNT; r++){
		const char *name = reason__name((enum bootstrap_reason)r);
		int documented = 0;
		CHECK(name != NULL);
		if(!name) continue;
		for(int i = 0; i < rows; i++) documented += !strcmp(names[i], name);
		if(documented != 1) fprintf(stderr, "  reason %s is in docs/operating.md's table %d times\n", name, documented);
		CHECK(documented == 1);
		/* stable tokens: lower-case snake_case */
		for(const char *c = name; *c; c++) CHECK((*c >= 'a' && *c <= 'z') || *c == '_');
	}
	CHECK(reason__name(REASON_NONE) == NULL);
	CHECK(reason__name(REASON_COUNT) == NULL);
}

/* One line through the real writer: reason and code side by side, the platform's Code too. */
static void test_line_carries_reason(void)
{
	char path[] = "/tmp/audit_reasons_XXXXXX", err[256], buf[2048];
	int fd = mkstemp(path);
	struct audit *a;
	struct audit_entry e = { .time = 0, .client = "dev-0001", .device_id = "dev-0001", .reason = REASON_SIGN_MISMATCH };
	FILE *f;
	json_t *line;

	CHECK(fd >= 0);
	if(fd < 0) return;
	close(fd);
	a = audit__open(path, err, sizeof(err));
	CHECK(a != NULL);
	audit__record(a, &e);
	e.reason = REASON_PLATFORM_REFUSED;
	e.platform_code = "iot.prod.NotExistedProduct";
	audit__record(a, &e);
	e.reason = REASON_SUPERSEDED;
	e.platform_code = NULL;
	audit__record(a, &e);
	audit__close(a);
	f = fopen(path, "r");
	CHECK(f != NULL);
	const char *want[][3] = { { "unauthorized", "sign_mismatch", NULL }, { "platform_error", "platform_refused", "iot.prod.NotExistedProduct" },
		{ "superseded", "superseded", NULL } };
	for(int i = 0; f && i < 3; i++){
		CHECK(fgets(buf, sizeof(buf), f) != NULL);
		line = json_loads(buf, 0, NULL);
		CHECK(line != NULL);
		CHECK_STR(json_string_value(json_object_get(line, "code")), want[i][0]);
		CHECK_STR(json_string_value(json_object_get(line, "reason")), want[i][1]);
		if(want[i][2]) CHECK_STR(json_string_value(json_object_get(line, "platformCode")), want[i][2]);
		else CHECK(json_is_null(json_object_get(line, "platformCode")));
		json_decref(line);
	}
	if(f) fclose(f);
	unlink(path);
}

/* A flood of long client ids: each line shows the start of its id, its length and a digest, so
 * it stays short and two ids that differ only at their end still read apart. */
static void test_long_client_id_cut(void)
{
	char path[] = "/tmp/audit_cut_XXXXXX", err[256], buf[4096];
	static char id[60001];
	const char *client[2];
	int fd = mkstemp(path);
	struct audit *a;
	struct audit_entry e = { .time = 0, .reason = REASON_DYNREG_MALFORMED };
	FILE *f;

	CHECK(fd >= 0);
	if(fd < 0) return;
	close(fd);
	memset(id, 'A', sizeof(id) - 1);
	a = audit__open(path, err, sizeof(err));
	CHECK(a != NULL);
	e.client = id;
	audit__record(a, &e);
	id[sizeof(id) - 2] = 'B';
	audit__record(a, &e);
	audit__close(a);
	f = fopen(path, "r");
	CHECK(f != NULL);
	for(int i = 0; f && i < 2; i++){
		json_t *line;
		CHECK(fgets(buf, sizeof(buf), f) != NULL && strlen(buf) < 700);
		line = json_loads(buf, 0, NULL);
		CHECK(line != NULL);
		client[i] = line ? strdup(json_string_value(json_object_get(line, "client"))) : NULL;
		CHECK(client[i] && !strncmp(client[i], id, AUDIT_CLIENT_SHOWN) && strstr(client[i], "...(60000 bytes, sha256 "));
		json_decref(line);
	}
	CHECK(client[0] && client[1] && strcmp(client[0], client[1]) != 0);
	free((void *)client[0]);
	free((void *)client[1]);
	if(f) fclose(f);
	unlink(path);
}

int main(int argc, char **argv)
{
	if(argc != 2){
		fprintf(stderr, "usage: %s docs/operating.md\n", argv[0]);
		return 2;
	}
	doc_path = argv[1];
	read_table();
	RUN(test_every_documented_reason_exists);
	RUN(test_every_reason_is_documented_once);
	RUN(test_line_carries_reason);
	RUN(test_long_client_id_cut);
	return unit_main_result();
}
