#ifndef DOC_TABLE_H
#define DOC_TABLE_H
/* The rows of a documentation table, for the tests that hold a doc page's table against the
 * code: every line "| `name` |rest" between a heading that starts with heading and the next
 * heading. row gets the name (its backticks gone) and the rest of the line after it. */
#include <stdio.h>
#include <string.h>

/* 0, or -1 when path cannot be read. */
static inline int doc_table__each(const char *path, const char *heading, void (*row)(char *name, char *rest, void *ud), void *ud)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int in = 0;

	if(!f) return -1;
	while(fgets(line, sizeof(line), f)){
		char *name = line + 3, *end;

		if(line[0] == '#'){ /* any heading ends the table */
			in = !strncmp(line, heading, strlen(heading));
			continue;
		}
		if(!in || strncmp(line, "| `", 3) || !(end = strchr(name, '`'))) continue;
		*end = '\0';
		row(name, end + 1, ud);
	}
	fclose(f);
	return 0;
}

#endif
