/*
 * log.c - one line per event, to stderr or syslog.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base.h"

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",	  [LOG_CRIT] = "crit",
	[LOG_ERR] = "error",   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

void gw_logger_init(struct gw_logger *lg, int level, enum gw_log_target target)
{
	memset(lg, 0, sizeof(*lg));
	lg->level = level;
	lg->target = target;
}

int gw_log_level_parse(const char *s)
{
	if (!strcmp(s, "error"))
		return LOG_ERR;
	if (!strcmp(s, "warning"))
		return LOG_WARNING;
	if (!strcmp(s, "info"))
		return LOG_INFO;
	if (!strcmp(s, "debug"))
		return LOG_DEBUG;
	return -EINVAL;
}

void gw_vlog(const struct gw_logger *lg, int level, const char *module, const char *fmt, va_list ap)
{
	char msg[1024];
	struct timespec ts;
	struct tm tm;

	if (!lg || level > lg->level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (lg->sink) {
		lg->sink(lg->sink_arg, level, module, msg);
		return;
	}
	if (lg->target == GW_LOG_SYSLOG) {
		syslog(level, "%s: %s", module, msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: %s\n", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		level >= 0 && level <= LOG_DEBUG ? level_names[level] : "?", module, msg);
}

void gw_log(const struct gw_logger *lg, int level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gw_vlog(lg, level, module, fmt, ap);
	va_end(ap);
}
