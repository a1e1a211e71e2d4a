/*
 * replay.c - runs a fuzz target over every file of the corpus folders named
 * on the command line, so `make test` (and `make asan`) replays each corpus as
 * an ordinary test. Exit 0 when every input ran; a crash is a failed test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	uint8_t *buf = NULL;
	FILE *f = NULL;
	long n;
	int rc = -1;

	f = fopen(path, "rb");
	if (!f)
		goto out;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		goto out;
	/* An exact-size heap copy, so ASan sees any overrun past the input. */
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		goto out;
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	rc = 0;
out:
	free(buf);
	if (f)
		fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned int files = 0;
	int i;

	for (i = 1; i < argc; i++) {
		struct dirent *de;
		DIR *d = opendir(argv[i]);

		if (!d) {
			fprintf(stderr, "replay: cannot open corpus %s\n", argv[i]);
			return 1;
		}
		/*
		 * readdir() returns NULL at the end and on an error: errno tells
		 * them apart (a 32-bit build without large-file support gets
		 * EOVERFLOW for a 64-bit inode number and used to see an
		 * empty folder).
		 */
		for (errno = 0; (de = readdir(d)); errno = 0) {
			char path[4096];
			struct stat st;

			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (stat(path, &st) || !S_ISREG(st.st_mode))
				continue;
			if (run_file(path)) {
				fprintf(stderr, "replay: cannot read %s\n", path);
				closedir(d);
				return 1;
			}
			files++;
		}
		if (errno) {
			fprintf(stderr, "replay: cannot list %s: %s\n", argv[i], strerror(errno));
			closedir(d);
			return 1;
		}
		closedir(d);
	}
	if (!files) {
		fprintf(stderr, "replay: empty corpus\n");
		return 1;
	}
	printf("replay: %u inputs ran clean\n", files);
	return 0;
}
