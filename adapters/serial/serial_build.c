/*
 * serial_build.c - a serial device's and its points' set-up for the port
 * state machine: the device-map keys (serial_keys.c) turned into struct
 * ser_dev / ser_point, with the match and write_response regexes compiled,
 * json match terms parsed, separators and commands unescaped, write commands
 * compiled. No I/O and no libuv (it allocates: regcomp, the json terms);
 * called by the glue while it builds its ports, tested without it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_setup.h"

static int compile(regex_t *re, const char *s, int flags)
{
	return regcomp(re, s, REG_EXTENDED | flags) ? -EINVAL : 0;
}

static void unescape_set(const char *s, char *out, size_t cap)
{
	int n = ser_unescape(s ? s : "", (uint8_t *)out, cap - 1);

	out[n > 0 ? n : 0] = '\0';
}

int ser_dev_build(const struct ser_bus *sb, struct ser_dev *x, struct ser_dev_rt *rt,
		  const struct ad_device *d, struct ser_point *pts, struct ser_point_rt *prt)
{
	const struct ser_device *sd = ser_device_of(d);
	const char *why;
	unsigned int i;
	int n;

	x->dev = d;
	x->parser = sd->parser;
	x->points = pts;
	x->n_points = d->n_points;
	if (sd->match && *sd->match) {
		if (sd->parser == SER_PARSE_JSON) {
			rt->jbuf = gw_strdup(sd->match);
			if (!rt->jbuf)
				return -ENOMEM;
			if (ser_jmatch_parse(rt->jbuf, x, &why))
				return -EINVAL;
		} else {
			if (compile(&rt->match, sd->match,
				    sd->parser == SER_PARSE_REGEX ? 0 : REG_NOSUB))
				return -EINVAL;
			rt->has_match = true;
			x->match = &rt->match;
			x->n_groups = (unsigned int)rt->match.re_nsub;
		}
	}
	{
		uint8_t sep[2];

		x->separator = ser_unescape(sd->separator ? sd->separator : ",", sep, 2) == 1
				       ? sep[0]
				       : ',';
	}
	x->header = sd->header;
	unescape_set(sd->pair_separator, rt->pair, sizeof(rt->pair));
	unescape_set(sd->kv_separator, rt->kv, sizeof(rt->kv));
	x->pair_seps = rt->pair;
	x->kv_seps = rt->kv;
	if (sd->poll_command && *sd->poll_command) {
		n = ser_unescape(sd->poll_command, rt->poll_cmd, sizeof(rt->poll_cmd));
		if (n > 0) {
			x->poll_cmd = rt->poll_cmd;
			x->poll_cmd_len = (size_t)n;
			x->poll_ms = d->poll_ms;
		}
	}
	for (i = 0; i < d->n_points; i++) {
		const struct ad_point *pt = d->points[i];
		const struct ser_point_keys *sp = ser_point_of(pt);
		struct ser_point *y = &pts[i];
		struct ser_point_rt *yr = &prt[i];
		const char *wc = sp->write_command && *sp->write_command ? sp->write_command
									 : sd->write_command;
		const char *wr = sp->write_response && *sp->write_response ? sp->write_response
									   : sd->write_response;

		y->pt = pt;
		y->type = pt->type;
		y->scale = pt->scale;
		y->offset = pt->offset;
		y->group = sp->group;
		if (sp->column) {
			char *end;
			long c = strtol(sp->column, &end, 10);

			if (*sp->column && !*end && c > 0)
				y->column = (unsigned int)c;
			else
				y->column_name = sp->column;
		}
		y->key = sp->key;
		y->json_pointer = sp->json_pointer;
		y->field = sp->field;
		y->hex = sb->fc.hex;
		y->writable = pt->writable;
		if (pt->writable && wc && *wc) {
			uint8_t buf[SER_MAX_CMD];

			n = ser_unescape(wc, buf, sizeof(buf));
			if (n < 0 || ser_fmt_compile(buf, (size_t)n, &yr->fmt, &why))
				return -EINVAL;
			yr->has_fmt = true;
			y->write_fmt = &yr->fmt;
			if (wr && *wr) {
				if (compile(&yr->resp, wr, REG_NOSUB))
					return -EINVAL;
				yr->has_resp = true;
				y->write_response = &yr->resp;
			}
		}
	}
	return 0;
}
