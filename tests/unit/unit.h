#ifndef UNIT_H
#define UNIT_H
/* A minimal unit-test harness: CHECK records a failure and goes on; RUN runs one case;
 * unit_main prints "N passed, N failed" and fails the process if anything failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int unit_checks_failed;
static int unit_cases_passed, unit_cases_failed;

#define CHECK(cond) do{ \
	if(!(cond)){ \
		fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
		unit_checks_failed++; \
	} \
}while(0)

#define CHECK_STR(a, b) do{ \
	const char *unit_a = (a), *unit_b = (b); \
	if(!unit_a || !unit_b || strcmp(unit_a, unit_b)){ \
		fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
				unit_a ? unit_a : "(null)", unit_b ? unit_b : "(null)"); \
		unit_checks_failed++; \
	} \
}while(0)

#define RUN(fn) do{ \
	int unit_before = unit_checks_failed; \
	fn(); \
	if(unit_checks_failed == unit_before){ unit_cases_passed++; printf("ok   %s\n", #fn); } \
	else{ unit_cases_failed++; printf("FAIL %s\n", #fn); } \
}while(0)

/* A temporary file holding text, with mode; the path lives until the fourth call after. */
static inline char *unit_write_file(const char *text, mode_t mode)
{
	static char paths[4][64];
	static int next;
	char *path = paths[next++ % 4];
	int fd;

	snprintf(path, 64, "/tmp/bootstrap-unit-XXXXXX");
	fd = mkstemp(path);
	if(fd < 0) return NULL;
	if(write(fd, text, strlen(text)) != (ssize_t)strlen(text)){
		close(fd);
		return NULL;
	}
	close(fd);
	chmod(path, mode);
	return path;
}

static inline int unit_main_result(void)
{
	printf("%d passed, %d failed\n", unit_cases_passed, unit_cases_failed);
	return unit_cases_failed ? 1 : 0;
}

#endif
