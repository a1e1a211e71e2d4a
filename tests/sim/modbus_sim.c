/*
 * modbus_sim.c - a Modbus slave for tests and demos: Modbus TCP on libmodbus's
 * server API (many clients, many unit ids), RTU on a serial device (e.g. one
 * end of a socat pty pair) and RTU-over-TCP, both with the adapter's own RTU
 * framing (libmodbus's RTU server answers one unit id only and it has no
 * RTU-over-TCP backend). Registers come from an INI file; faults are injected
 * from the command line.
 *
 *   modbus_sim --tcp 127.0.0.1:15020 --regs tests/sim/modbus_regs.ini
 *   modbus_sim --rtu /dev/pts/7 --baud 19200 --parity E --regs ...
 *   modbus_sim --rtu-tcp 127.0.0.1:15021 --regs ...
 *   options: --delay MS          answer every request MS late
 *            --drop-every N      never answer every N-th request
 *            --exception U:AREA:A[-B]:CODE   answer requests touching those
 *                                addresses of unit U with exception CODE
 *            --animate           vary the registers of the [animate] section
 *            --size N            registers / bits per table (default 10000)
 *            --verbose           log every request to stderr
 * Prints "ready" on stdout once it serves. Requests to a unit not in the INI
 * file get exception 11 over TCP and no answer over RTU. SIGTERM/SIGINT stop.
 *
 * INI: [unit:N] sections with "AREA.ADDRESS = [TYPE[:ORDER]:]VALUE", AREA one
 * of coil discrete input holding, TYPE one of the device-map point types
 * (string: high byte first; string_swap: low byte first), ORDER ABCD BADC CDAB
 * DCBA. [animate] holds "UNIT.AREA.ADDRESS = counter" (a uint16 that counts
 * seconds) or "= sine:TYPE:ORDER:MID:AMPLITUDE" (a 60 s sine wave).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <ini.h>
#include <modbus.h>

#include "adapters/modbus/mbus_int.h"

#define MAX_EXC 32
#define MAX_ANIM 32
#define MAX_CONN 256

struct sim_exc {
	int unit;
	enum ad_area area;
	unsigned int from, to; /* inclusive */
	uint8_t code;
};

struct sim_anim {
	int unit;
	enum ad_area area;
	uint16_t address;
	bool sine;
	enum ad_point_type type;
	enum ad_byte_order bo;
	double mid, amp;
};

struct conn {
	int fd;
	uint8_t buf[512];
	size_t len;
	int64_t last_rx;
};

struct sim {
	modbus_mapping_t *units[248];
	int size;
	unsigned int delay_ms;
	unsigned int drop_every;
	unsigned long n_req;
	struct sim_exc exc[MAX_EXC];
	unsigned int n_exc;
	struct sim_anim anim[MAX_ANIM];
	unsigned int n_anim;
	bool animate;
	bool verbose;
	int64_t t0;
	const char *ini_file;
	int ini_err;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int64_t now_ms(void)
{
	return gw_mono_ms();
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR && !stop_flag)
		;
}

static int parse_area(const char *s, size_t n, enum ad_area *out)
{
	static const char *const names[__AD_AREA_MAX] = {
		[AD_AREA_COIL] = "coil",
		[AD_AREA_DISCRETE] = "discrete",
		[AD_AREA_INPUT] = "input",
		[AD_AREA_HOLDING] = "holding",
	};
	unsigned int i;

	for (i = 0; i < __AD_AREA_MAX; i++)
		if (strlen(names[i]) == n && !strncmp(s, names[i], n)) {
			*out = (enum ad_area)i;
			return 0;
		}
	return -EINVAL;
}

static const char *const type_names[__AD_PT_MAX] = {
	[AD_PT_BOOL] = "bool",	     [AD_PT_BIT] = "bit",	[AD_PT_INT16] = "int16",
	[AD_PT_UINT16] = "uint16",   [AD_PT_INT32] = "int32",	[AD_PT_UINT32] = "uint32",
	[AD_PT_INT64] = "int64",     [AD_PT_UINT64] = "uint64", [AD_PT_FLOAT32] = "float32",
	[AD_PT_FLOAT64] = "float64", [AD_PT_STRING] = "string",
};

static int parse_type(const char *s, size_t n, enum ad_point_type *out)
{
	unsigned int i;

	for (i = 0; i < __AD_PT_MAX; i++)
		if (strlen(type_names[i]) == n && !strncmp(s, type_names[i], n)) {
			*out = (enum ad_point_type)i;
			return 0;
		}
	return -EINVAL;
}

static int parse_order(const char *s, size_t n, enum ad_byte_order *out)
{
	static const char *const names[] = { "ABCD", "BADC", "CDAB", "DCBA" };
	unsigned int i;

	for (i = 0; i < 4; i++)
		if (n == 4 && !strncmp(s, names[i], 4)) {
			*out = (enum ad_byte_order)(AD_BO_ABCD + i);
			return 0;
		}
	return -EINVAL;
}

static modbus_mapping_t *unit_map(struct sim *s, int unit)
{
	if (unit < 0 || unit > 247)
		return NULL;
	if (!s->units[unit])
		s->units[unit] = modbus_mapping_new(s->size, s->size, s->size, s->size);
	return s->units[unit];
}

/* Encodes @v as @type/@bo with the adapter's own codec and stores it. */
static int store(struct sim *s, int unit, enum ad_area area, unsigned int addr,
		 enum ad_point_type type, enum ad_byte_order bo, bool swap,
		 const struct ad_value *v)
{
	modbus_mapping_t *m = unit_map(s, unit);
	struct mbus_point mp = { .area = AD_AREA_HOLDING, .byte_order = bo, .string_swap = swap };
	struct ad_point pt = { .type = type, .scale = 1.0, .writable = true, .ext = &mp };
	uint16_t regs[MBUS_MAX_READ_REGS];
	const char *why = NULL;
	size_t n = 0, i;
	int rc;

	if (!m)
		return -ENOMEM;
	if (type == AD_PT_STRING)
		mp.length = (uint16_t)((v->s.len + 1) / 2);
	if (area == AD_AREA_COIL || area == AD_AREA_DISCRETE)
		mp.area = AD_AREA_COIL;
	if (type == AD_PT_BIT)
		pt.type = AD_PT_UINT16;
	rc = mbus_encode(&pt, v, regs, GW_ARRAY_SIZE(regs), &n, &why);
	if (rc) {
		fprintf(stderr, "modbus_sim: %s\n", why);
		return rc;
	}
	if (addr + n > (size_t)s->size)
		return -ERANGE;
	for (i = 0; i < n; i++) {
		switch (area) {
		case AD_AREA_COIL:
			m->tab_bits[addr + i] = regs[i] != 0;
			break;
		case AD_AREA_DISCRETE:
			m->tab_input_bits[addr + i] = regs[i] != 0;
			break;
		case AD_AREA_INPUT:
			m->tab_input_registers[addr + i] = regs[i];
			break;
		default:
			m->tab_registers[addr + i] = regs[i];
			break;
		}
	}
	return 0;
}

/* "[TYPE[:ORDER]:]VALUE" -> type, order, value. */
static int parse_value(const char *val, enum ad_point_type *type, enum ad_byte_order *bo,
		       bool *swap, struct ad_value *v)
{
	const char *c = strchr(val, ':');
	char *end;

	*type = AD_PT_UINT16;
	*bo = AD_BO_ABCD;
	*swap = false;
	if (c) {
		if (!strncmp(val, "string_swap:", 12)) {
			*type = AD_PT_STRING;
			*swap = true;
		} else if (parse_type(val, (size_t)(c - val), type)) {
			return -EINVAL;
		}
		val = c + 1;
		c = strchr(val, ':');
		if (*type != AD_PT_STRING && c && !parse_order(val, (size_t)(c - val), bo))
			val = c + 1;
	} else if (!strcmp(val, "true") || !strcmp(val, "false")) {
		*type = AD_PT_BOOL;
	}
	switch (*type) {
	case AD_PT_STRING:
		v->type = AD_VAL_STRING;
		v->s = gw_slice_cstr(val);
		return 0;
	case AD_PT_FLOAT32:
	case AD_PT_FLOAT64:
		v->type = AD_VAL_DOUBLE;
		v->d = strtod(val, &end);
		break;
	case AD_PT_BOOL:
		v->type = AD_VAL_BOOL;
		v->b = !strcmp(val, "true") || !strcmp(val, "1");
		return 0;
	case AD_PT_UINT64:
		v->type = AD_VAL_UINT;
		v->u = strtoull(val, &end, 0);
		break;
	default:
		v->type = AD_VAL_INT;
		v->i = strtoll(val, &end, 0);
		break;
	}
	return *end ? -EINVAL : 0;
}

/* "AREA.ADDRESS" */
static int parse_where(const char *name, enum ad_area *area, unsigned int *addr)
{
	const char *dot = strchr(name, '.');
	char *end;

	if (!dot || parse_area(name, (size_t)(dot - name), area))
		return -EINVAL;
	*addr = (unsigned int)strtoul(dot + 1, &end, 0);
	return *end || *addr > 65535 ? -EINVAL : 0;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct sim *s = user;
	enum ad_point_type type;
	enum ad_byte_order bo;
	enum ad_area area;
	struct ad_value v;
	unsigned int addr;
	bool swap;
	char *end;
	int unit;

	if (!strncmp(section, "unit:", 5)) {
		unit = (int)strtol(section + 5, &end, 10);
		if (*end || unit < 0 || unit > 247 || parse_where(name, &area, &addr) ||
		    parse_value(value, &type, &bo, &swap, &v) ||
		    store(s, unit, area, addr, type, bo, swap, &v))
			goto bad;
		return 1;
	}
	if (!strcmp(section, "animate")) {
		struct sim_anim *a = &s->anim[s->n_anim];
		char kind[16];
		char ty[16], ord[8];

		unit = (int)strtol(name, &end, 10);
		if (s->n_anim == MAX_ANIM || *end != '.' || parse_where(end + 1, &a->area, &addr))
			goto bad;
		a->unit = unit;
		a->address = (uint16_t)addr;
		a->type = AD_PT_UINT16;
		a->bo = AD_BO_ABCD;
		if (sscanf(value, "%15[a-z]:%15[a-z0-9]:%7[A-D]:%lf:%lf", kind, ty, ord, &a->mid,
			   &a->amp) == 5 &&
		    !strcmp(kind, "sine")) {
			a->sine = true;
			if (parse_type(ty, strlen(ty), &a->type) ||
			    parse_order(ord, strlen(ord), &a->bo))
				goto bad;
		} else if (strcmp(value, "counter")) {
			goto bad;
		}
		if (!unit_map(s, unit))
			goto bad;
		s->n_anim++;
		return 1;
	}
bad:
	fprintf(stderr, "modbus_sim: %s: [%s] %s = %s: bad entry\n", s->ini_file, section, name,
		value);
	s->ini_err = 1;
	return 0;
}

static void animate(struct sim *s)
{
	double t = (double)(now_ms() - s->t0) / 1000.0;
	unsigned int i;

	for (i = 0; i < s->n_anim; i++) {
		const struct sim_anim *a = &s->anim[i];
		struct ad_value v;

		if (a->sine) {
			v.type = AD_VAL_DOUBLE;
			v.d = a->mid + a->amp * sin(2 * M_PI * t / 60.0);
			if (a->type != AD_PT_FLOAT32 && a->type != AD_PT_FLOAT64) {
				v.type = AD_VAL_INT;
				v.i = (int64_t)llround(v.d);
			}
		} else {
			v.type = AD_VAL_INT;
			v.i = (int64_t)t % 65536;
		}
		store(s, a->unit, a->area, a->address, a->type, a->bo, false, &v);
	}
}

/* ---------------------------------------------------------- fault checks */

static const enum ad_area fc_area[17] = {
	[1] = AD_AREA_COIL, [2] = AD_AREA_DISCRETE, [3] = AD_AREA_HOLDING, [4] = AD_AREA_INPUT,
	[5] = AD_AREA_COIL, [6] = AD_AREA_HOLDING,  [15] = AD_AREA_COIL,   [16] = AD_AREA_HOLDING,
};

/* What to do with a request: 0 answer, > 0 exception code, < 0 drop. */
static int verdict(struct sim *s, int unit, int fc, unsigned int addr, unsigned int count)
{
	unsigned int i;

	s->n_req++;
	if (s->verbose)
		fprintf(stderr, "modbus_sim: #%lu unit %d fc %d addr %u count %u\n", s->n_req, unit,
			fc, addr, count);
	if (s->drop_every && s->n_req % s->drop_every == 0)
		return -1;
	if (s->delay_ms)
		sleep_ms(s->delay_ms);
	if (fc < 1 || fc > 16 || (fc > 6 && fc < 15))
		return 0;
	for (i = 0; i < s->n_exc; i++) {
		const struct sim_exc *e = &s->exc[i];

		if (e->unit == unit && e->area == fc_area[fc] && addr <= e->to &&
		    addr + (count ? count : 1) - 1 >= e->from)
			return e->code;
	}
	return 0;
}

/* ------------------------------------------------------------------- TCP */

static int serve_tcp(struct sim *s, const char *hostport)
{
	uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
	char host[256], *colon;
	modbus_t *ctx;
	fd_set all;
	int server, maxfd, fd, rc;
	int64_t last_anim = 0;

	snprintf(host, sizeof(host), "%s", hostport);
	colon = strrchr(host, ':');
	if (!colon)
		return 2;
	*colon = 0;
	ctx = modbus_new_tcp_pi(host, colon + 1);
	if (!ctx)
		return 1;
	server = modbus_tcp_pi_listen(ctx, 64);
	if (server < 0) {
		fprintf(stderr, "modbus_sim: listen %s: %s\n", hostport, modbus_strerror(errno));
		modbus_free(ctx);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	FD_ZERO(&all);
	FD_SET(server, &all);
	maxfd = server;
	while (!stop_flag) {
		struct timeval tv = { 0, 100000 };
		fd_set rd = all;

		if (s->animate && now_ms() - last_anim >= 1000) {
			animate(s);
			last_anim = now_ms();
		}
		rc = select(maxfd + 1, &rd, NULL, NULL, &tv);
		if (rc <= 0)
			continue;
		for (fd = 0; fd <= maxfd; fd++) {
			modbus_mapping_t *m;
			int unit, fc, v;
			unsigned int addr, count;

			if (!FD_ISSET(fd, &rd))
				continue;
			if (fd == server) {
				int c = accept(server, NULL, NULL);

				if (c >= 0 && c < FD_SETSIZE) {
					FD_SET(c, &all);
					maxfd = c > maxfd ? c : maxfd;
				} else if (c >= 0) {
					close(c);
				}
				continue;
			}
			modbus_set_socket(ctx, fd);
			rc = modbus_receive(ctx, query);
			if (rc == -1) {
				close(fd);
				FD_CLR(fd, &all);
				continue;
			}
			if (rc == 0)
				continue;
			/* MBAP (7 bytes): unit at 6, then the PDU. */
			unit = query[6];
			fc = query[7];
			addr = (unsigned int)(query[8] << 8 | query[9]);
			count = fc == 5 || fc == 6 ? 1 : (unsigned int)(query[10] << 8 | query[11]);
			v = verdict(s, unit, fc, addr, count);
			if (v < 0)
				continue;
			m = s->units[unit];
			if (!m)
				v = MODBUS_EXCEPTION_GATEWAY_TARGET;
			if (v > 0)
				modbus_reply_exception(ctx, query, (unsigned int)v);
			else
				modbus_reply(ctx, query, rc, m);
		}
	}
	for (fd = 0; fd <= maxfd; fd++)
		if (FD_ISSET(fd, &all))
			close(fd);
	modbus_free(ctx);
	return 0;
}

/* ------------------------------------------------------------------- RTU */

/* Serves one request PDU on @m: the response PDU into @w, or an exception. */
static int handle_pdu(struct sim *s, modbus_mapping_t *m, const struct mbus_frame *f,
		      struct gw_writer *w)
{
	struct gw_reader r;
	uint16_t addr = 0, cnt = 0, val;
	uint8_t bc;
	unsigned int i;

	gw_reader_init(&r, f->body.p, f->body.len);
	gw_rd_u16be(&r, &addr);
	gw_rd_u16be(&r, &cnt);
	if (r.err)
		return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
	switch (f->fc) {
	case 1:
	case 2: {
		const uint8_t *tab = f->fc == 1 ? m->tab_bits : m->tab_input_bits;

		if (cnt < 1 || cnt > MBUS_MAX_READ_BITS)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		if ((int)(addr + cnt) > s->size)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
		gw_wr_u8(w, f->fc);
		gw_wr_u8(w, (uint8_t)((cnt + 7) / 8));
		for (i = 0; i < cnt; i += 8) {
			uint8_t byte = 0;
			unsigned int b;

			for (b = 0; b < 8 && i + b < cnt; b++)
				byte |= (uint8_t)((tab[addr + i + b] ? 1 : 0) << b);
			gw_wr_u8(w, byte);
		}
		return 0;
	}
	case 3:
	case 4: {
		const uint16_t *tab = f->fc == 3 ? m->tab_registers : m->tab_input_registers;

		if (cnt < 1 || cnt > MBUS_MAX_READ_REGS)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		if ((int)(addr + cnt) > s->size)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
		gw_wr_u8(w, f->fc);
		gw_wr_u8(w, (uint8_t)(2 * cnt));
		for (i = 0; i < cnt; i++)
			gw_wr_u16be(w, tab[addr + i]);
		return 0;
	}
	case 5:
	case 6:
		if (addr >= s->size)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
		if (f->fc == 5 && cnt != 0xFF00 && cnt != 0)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		if (f->fc == 5)
			m->tab_bits[addr] = cnt ? 1 : 0;
		else
			m->tab_registers[addr] = cnt;
		gw_wr_bytes(w, f->body.p - 1, 5); /* echo fc, address, value */
		return 0;
	case 15:
	case 16:
		if (gw_rd_u8(&r, &bc) || gw_rd_left(&r) != bc || cnt < 1 ||
		    (f->fc == 15 ? bc != (cnt + 7) / 8 : bc != 2 * cnt))
			return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
		if ((int)(addr + cnt) > s->size)
			return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
		for (i = 0; i < cnt; i++) {
			if (f->fc == 15) {
				m->tab_bits[addr + i] = (r.p[r.off + i / 8] >> (i % 8)) & 1;
			} else {
				gw_rd_u16be(&r, &val);
				m->tab_registers[addr + i] = val;
			}
		}
		gw_wr_bytes(w, f->body.p - 1, 5); /* echo fc, address, count */
		return 0;
	default:
		return MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
	}
}

/* Feeds bytes from a connection / line; answers every complete request. */
static void rtu_input(struct sim *s, struct conn *c)
{
	for (;;) {
		uint8_t pdu[MBUS_RTU_MAX_ADU], adu[MBUS_RTU_MAX_ADU];
		struct gw_writer wp, wa;
		struct mbus_frame f;
		int n, v;
		unsigned int addr, count;

		n = mbus_rtu_decode_req(c->buf, c->len, &f);
		if (n == 0)
			return;
		if (n < 0) {
			/* Lost sync (noise, CRC error): drop what we have. */
			c->len = 0;
			return;
		}
		addr = f.body.len >= 2 ? (unsigned int)(f.body.p[0] << 8 | f.body.p[1]) : 0;
		count = f.fc == 5 || f.fc == 6 || f.body.len < 4
				? 1
				: (unsigned int)(f.body.p[2] << 8 | f.body.p[3]);
		v = verdict(s, f.unit, f.fc, addr, count);
		if (v >= 0 && f.unit <= 247 && s->units[f.unit]) {
			gw_writer_init(&wp, pdu, sizeof(pdu));
			if (v == 0)
				v = handle_pdu(s, s->units[f.unit], &f, &wp);
			if (v > 0) {
				gw_writer_init(&wp, pdu, sizeof(pdu));
				gw_wr_u8(&wp, (uint8_t)(f.fc | 0x80));
				gw_wr_u8(&wp, (uint8_t)v);
			}
			gw_writer_init(&wa, adu, sizeof(adu));
			/* Broadcasts (unit 0) are never answered. */
			if (f.unit != 0 && !mbus_rtu_encode(&wa, f.unit, pdu, wp.len) &&
			    write(c->fd, adu, wa.len) < 0)
				fprintf(stderr, "modbus_sim: write: %s\n", strerror(errno));
		}
		memmove(c->buf, c->buf + n, c->len - (size_t)n);
		c->len -= (size_t)n;
	}
}

static void conn_read(struct sim *s, struct conn *c, bool *closed)
{
	ssize_t k;

	/* A partial frame followed by silence is noise (RTU t3.5, generously). */
	if (c->len && now_ms() - c->last_rx > 200)
		c->len = 0;
	if (c->len == sizeof(c->buf))
		c->len = 0;
	k = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (k <= 0) {
		*closed = k == 0 || (errno != EAGAIN && errno != EINTR);
		return;
	}
	c->len += (size_t)k;
	c->last_rx = now_ms();
	rtu_input(s, c);
}

static speed_t baud_flag(unsigned long baud)
{
	switch (baud) {
	case 1200:
		return B1200;
	case 2400:
		return B2400;
	case 4800:
		return B4800;
	case 19200:
		return B19200;
	case 38400:
		return B38400;
	case 57600:
		return B57600;
	case 115200:
		return B115200;
	default:
		return B9600;
	}
}

static int serve_rtu(struct sim *s, const char *dev, unsigned long baud, char parity)
{
	struct conn c = { .fd = -1 };
	struct termios tio;
	int64_t last_anim = 0;

	c.fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (c.fd < 0) {
		fprintf(stderr, "modbus_sim: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	if (tcgetattr(c.fd, &tio) == 0) {
		cfmakeraw(&tio);
		cfsetispeed(&tio, baud_flag(baud));
		cfsetospeed(&tio, baud_flag(baud));
		tio.c_cflag |= CLOCAL | CREAD;
		if (parity == 'E' || parity == 'O')
			tio.c_cflag |= PARENB | (parity == 'O' ? PARODD : 0);
		tio.c_cc[VMIN] = 0;
		tio.c_cc[VTIME] = 0;
		tcsetattr(c.fd, TCSANOW, &tio);
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop_flag) {
		struct pollfd p = { .fd = c.fd, .events = POLLIN };
		bool closed = false;

		if (s->animate && now_ms() - last_anim >= 1000) {
			animate(s);
			last_anim = now_ms();
		}
		if (poll(&p, 1, 100) > 0) {
			conn_read(s, &c, &closed);
			if (closed && !(p.revents & POLLIN))
				sleep_ms(50); /* the pty's other end is not open yet */
		}
	}
	close(c.fd);
	return 0;
}

static int serve_rtu_tcp(struct sim *s, const char *hostport)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	struct pollfd pfd[MAX_CONN + 1];
	struct conn *conns;
	char host[256], *colon;
	unsigned int n = 0, i;
	int server, one = 1;
	int64_t last_anim = 0;

	snprintf(host, sizeof(host), "%s", hostport);
	colon = strrchr(host, ':');
	if (!colon)
		return 2;
	*colon = 0;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return 1;
	server = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (server < 0 || bind(server, ai->ai_addr, ai->ai_addrlen) || listen(server, 64)) {
		fprintf(stderr, "modbus_sim: listen %s: %s\n", hostport, strerror(errno));
		freeaddrinfo(ai);
		return 1;
	}
	freeaddrinfo(ai);
	conns = calloc(MAX_CONN, sizeof(*conns));
	if (!conns)
		return 1;
	printf("ready\n");
	fflush(stdout);
	while (!stop_flag) {
		if (s->animate && now_ms() - last_anim >= 1000) {
			animate(s);
			last_anim = now_ms();
		}
		pfd[0].fd = server;
		pfd[0].events = POLLIN;
		for (i = 0; i < n; i++) {
			pfd[i + 1].fd = conns[i].fd;
			pfd[i + 1].events = POLLIN;
		}
		if (poll(pfd, n + 1, 100) <= 0)
			continue;
		for (i = n; i > 0; i--) {
			bool closed = false;

			if (!pfd[i].revents)
				continue;
			conn_read(s, &conns[i - 1], &closed);
			if (closed) {
				close(conns[i - 1].fd);
				conns[i - 1] = conns[--n];
			}
		}
		if (pfd[0].revents & POLLIN) {
			int c = accept(server, NULL, NULL);

			if (c >= 0 && n < MAX_CONN) {
				memset(&conns[n], 0, sizeof(conns[n]));
				conns[n++].fd = c;
			} else if (c >= 0) {
				close(c);
			}
		}
	}
	for (i = 0; i < n; i++)
		close(conns[i].fd);
	close(server);
	free(conns);
	return 0;
}

/* ------------------------------------------------------------------ main */

static int parse_exc(struct sim *s, const char *arg)
{
	struct sim_exc *e = &s->exc[s->n_exc];
	char area[16];
	unsigned int code;

	if (s->n_exc == MAX_EXC)
		return -1;
	if (sscanf(arg, "%d:%15[a-z]:%u-%u:%u", &e->unit, area, &e->from, &e->to, &code) != 5) {
		if (sscanf(arg, "%d:%15[a-z]:%u:%u", &e->unit, area, &e->from, &code) != 4)
			return -1;
		e->to = e->from;
	}
	if (parse_area(area, strlen(area), &e->area) || code == 0 || code > 255)
		return -1;
	e->code = (uint8_t)code;
	s->n_exc++;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: modbus_sim (--tcp HOST:PORT | --rtu DEVICE | --rtu-tcp HOST:PORT)\n"
		"                  [--regs FILE] [--baud N] [--parity N|E|O] [--delay MS]\n"
		"                  [--drop-every N] [--exception UNIT:AREA:ADDR[-END]:CODE]...\n"
		"                  [--animate] [--size N] [--verbose]\n");
}

int main(int argc, char **argv)
{
	struct sim *s = calloc(1, sizeof(*s));
	const char *tcp = NULL, *rtu = NULL, *rtu_tcp = NULL;
	unsigned long baud = 9600;
	char parity = 'N';
	struct sigaction sa;
	int i, rc;

	if (!s)
		return 1;
	s->size = 10000;
	s->t0 = now_ms();
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--animate")) {
			s->animate = true;
			continue;
		}
		if (!strcmp(a, "--verbose")) {
			s->verbose = true;
			continue;
		}
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--tcp"))
			tcp = v;
		else if (!strcmp(a, "--rtu"))
			rtu = v;
		else if (!strcmp(a, "--rtu-tcp"))
			rtu_tcp = v;
		else if (!strcmp(a, "--regs"))
			s->ini_file = v;
		else if (!strcmp(a, "--baud"))
			baud = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--parity"))
			parity = v[0];
		else if (!strcmp(a, "--delay"))
			s->delay_ms = (unsigned int)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--drop-every"))
			s->drop_every = (unsigned int)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--size"))
			s->size = (int)GW_MIN(strtoul(v, NULL, 10), 65536ul);
		else if (!strcmp(a, "--exception")) {
			if (parse_exc(s, v)) {
				fprintf(stderr, "modbus_sim: bad --exception %s\n", v);
				return 2;
			}
		} else {
			usage();
			return 2;
		}
	}
	if (!!tcp + !!rtu + !!rtu_tcp != 1 || s->size < 1) {
		usage();
		return 2;
	}
	if (s->ini_file) {
		rc = ini_parse(s->ini_file, on_ini, s);
		if (rc || s->ini_err) {
			if (rc > 0)
				fprintf(stderr, "modbus_sim: %s:%d: parse error\n", s->ini_file,
					rc);
			else if (rc < 0)
				fprintf(stderr, "modbus_sim: cannot read %s\n", s->ini_file);
			return 2;
		}
	} else if (!unit_map(s, 1)) {
		return 1;
	}
	if (s->animate)
		animate(s);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (tcp)
		rc = serve_tcp(s, tcp);
	else if (rtu)
		rc = serve_rtu(s, rtu, baud, parity);
	else
		rc = serve_rtu_tcp(s, rtu_tcp);
	for (i = 0; i < 248; i++)
		if (s->units[i])
			modbus_mapping_free(s->units[i]);
	free(s);
	return rc;
}
