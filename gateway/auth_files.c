/*
 * auth_files.c - read the acl_file and the password_file (see auth_files.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "gateway/auth_files.h"
#include "gateway/config.h"
#include "gateway/tls/mbed_lib.h"

/* The whole of @path in *text (gw_free it), or -EINVAL with a message. */
static int slurp(const char *path, char **text, size_t *len, char *msg, size_t n)
{
	FILE *f = fopen(path, "r");
	long size;
	int rc = -EINVAL;

	*text = NULL;
	*len = 0;
	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		snprintf(msg, n, "'%s': cannot read: %s", path, strerror(errno));
		goto out;
	}
	if ((unsigned long)size > GW_AUTH_FILE_MAX) {
		snprintf(msg, n, "'%s': larger than %u bytes", path, GW_AUTH_FILE_MAX);
		goto out;
	}
	*text = gw_malloc((size_t)size + 1);
	if (!*text) {
		rc = -ENOMEM;
		snprintf(msg, n, "out of memory");
		goto out;
	}
	*len = fread(*text, 1, (size_t)size, f);
	if (ferror(f)) {
		snprintf(msg, n, "'%s': read error", path);
		gw_free(*text);
		*text = NULL;
		goto out;
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	return rc;
}

int gw_acl_load(const char *path, struct brk_acl **out, unsigned int *line, char *msg, size_t n)
{
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	*line = 0;
	rc = slurp(path, &text, &len, msg, n);
	if (rc)
		return rc;
	rc = brk_acl_parse(text, len, out, line, msg, n);
	gw_free(text);
	return rc;
}

int gw_passwd_load(const char *path, struct brk_passwd **out, unsigned int *line, char *msg,
		   size_t n)
{
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	*line = 0;
	/* The hashes and their base64 are mbedTLS's, loaded when first needed (mbed_lib.h). */
	if (gw_mbed_load(GW_MBED_CRYPTO)) {
		snprintf(msg, n, "mbed TLS cannot be loaded: %s", gw_mbed_error());
		return -ENOENT;
	}
	rc = slurp(path, &text, &len, msg, n);
	if (rc)
		return rc;
	rc = brk_passwd_parse(text, len, out, line, msg, n);
	/* The text held password hashes: do not leave them in freed memory. */
	memset(text, 0, len);
	gw_free(text);
	return rc;
}

/* Log a file that could not be loaded: file:line when the error has a line. */
static void log_bad(const struct gw_logger *lg, const char *key, const char *path,
		    unsigned int line, const char *msg)
{
	if (line)
		gw_log(lg, LOG_ERR, "config",
		       "reload: %s:%u: [broker] %s: %s; keeping the previous one", path, line, key,
		       msg);
	else
		gw_log(lg, LOG_ERR, "config", "reload: [broker] %s: %s; keeping the previous one",
		       key, msg);
}

int gw_auth_reload(struct gw_config *cfg, struct brk *b, const struct gw_logger *lg)
{
	unsigned int line;
	char msg[256];
	int rc, first = 0;

	if (cfg->acl_file) {
		struct brk_acl *acl;

		rc = gw_acl_load(cfg->acl_file, &acl, &line, msg, sizeof(msg));
		if (!rc && brk_set_acl(b, acl)) {
			brk_acl_free(acl);
			rc = -ENOMEM;
			line = 0;
			snprintf(msg, sizeof(msg), "out of memory");
		}
		if (rc) {
			log_bad(lg, "acl_file", cfg->acl_file, line, msg);
			first = rc;
		} else {
			brk_acl_free(cfg->broker.acl);
			cfg->broker.acl = acl;
			gw_log(lg, LOG_INFO, "config", "reload: acl_file %s read again",
			       cfg->acl_file);
		}
	}
	if (cfg->password_file) {
		struct brk_passwd *pw;

		rc = gw_passwd_load(cfg->password_file, &pw, &line, msg, sizeof(msg));
		if (rc) {
			log_bad(lg, "password_file", cfg->password_file, line, msg);
			if (!first)
				first = rc;
		} else {
			brk_set_passwd(b, pw);
			brk_passwd_free(cfg->broker.passwd);
			cfg->broker.passwd = pw;
			gw_log(lg, LOG_INFO, "config",
			       "reload: password_file %s read again (%u users)", cfg->password_file,
			       brk_passwd_count(pw));
		}
	}
	return first;
}
