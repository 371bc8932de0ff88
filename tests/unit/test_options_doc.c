/* The option table of docs/configuration.md and the options the plugin accepts are the same set, both ways;
 * every documented literal default is accepted; every listed option is handled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_config.h"
#include "doc_table.h"
#include "unit.h"

#define MAX_ROWS 64

static char names[MAX_ROWS][64], defaults[MAX_ROWS][128];
static int rows;
static const char *doc_path;

/* Rows "| `name` | default | meaning |" under "## Options". */
static void option_row(char *name, char *rest, void *ud)
{
	char *cell = strchr(rest, '|'), *cellend = cell ? strchr(cell + 1, '|') : NULL;

	(void)ud;
	if(rows == MAX_ROWS) return;
	snprintf(names[rows], sizeof(names[rows]), "%.63s", name);
	defaults[rows][0] = '\0';
	/* a default cell that is a literal starts with a backtick: `30`, `sign`, `0` (off) */
	if(cell && cellend && cell[2] == '`'){
		char *v = cell + 3, *ve = strchr(v, '`');
		if(ve && ve < cellend) snprintf(defaults[rows], sizeof(defaults[rows]), "%.*s", (int)(ve - v), v);
	}
	rows++;
}

static void read_table(void)
{
	CHECK(doc_table__each(doc_path, "## Options", option_row, NULL) == 0);
}

static void test_every_documented_option_is_accepted(void)
{
	CHECK(rows >= 20);
	for(int i = 0; i < rows; i++){
		struct bootstrap_config cfg;
		char err[CONFIG_ERR_LEN] = "";
		bool listed = false;

		for(size_t j = 0; config__option_name(j); j++) listed |= !strcmp(config__option_name(j), names[i]);
		if(!listed) fprintf(stderr, "  docs/configuration.md documents %s, which the plugin does not accept\n", names[i]);
		CHECK(listed);
		if(!defaults[i][0]) continue;
		config__init(&cfg);
		if(config__set(&cfg, names[i], defaults[i], err, sizeof(err))){
			fprintf(stderr, "  documented default of %s refused: %s\n", names[i], err);
			CHECK(0);
		}
		config__cleanup(&cfg);
	}
}

static void test_every_accepted_option_is_documented(void)
{
	for(size_t j = 0; config__option_name(j); j++){
		bool documented = false;
		for(int i = 0; i < rows; i++) documented |= !strcmp(names[i], config__option_name(j));
		if(!documented) fprintf(stderr, "  plugin accepts %s, which docs/configuration.md does not document\n", config__option_name(j));
		CHECK(documented);
	}
}

static void test_every_listed_option_is_handled(void)
{
	/* with a value no option takes, a handled option says why the value is wrong */
	for(size_t j = 0; config__option_name(j); j++){
		struct bootstrap_config cfg;
		char err[CONFIG_ERR_LEN] = "";
		config__init(&cfg);
		config__set(&cfg, config__option_name(j), "", err, sizeof(err));
		CHECK(strstr(err, "not handled") == NULL && strstr(err, "unknown option") == NULL);
		config__cleanup(&cfg);
	}
}

int main(int argc, char **argv)
{
	doc_path = argc > 1 ? argv[1] : "docs/configuration.md";
	read_table();
	RUN(test_every_documented_option_is_accepted);
	RUN(test_every_accepted_option_is_documented);
	RUN(test_every_listed_option_is_handled);
	return unit_main_result();
}
