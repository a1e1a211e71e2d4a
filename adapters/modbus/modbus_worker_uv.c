/*
 * modbus_worker_uv.c - a serial RTU line's worker thread: libmodbus (its
 * RS-485 and timing handling) runs one request at a time there, blocking for
 * at most the bus timeout; the loop hands the request over under the line's
 * mutex and takes the result back through the adapter's uv_async
 * (ad__modbus_on_async), which feeds the poller. See modbus_uv.c for the
 * threads' rules.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <modbus.h>
#include <uv.h>

#include "modbus_uv_int.h"
/* ============================================================ serial worker */

static void lm_close(struct mb_line *l)
{
	if (l->w->ctx) {
		if (l->w->connected)
			modbus_close(l->w->ctx);
		modbus_free(l->w->ctx);
		l->w->ctx = NULL;
	}
	l->w->connected = false;
}

static int lm_open(struct mb_line *l)
{
	const struct mbus_bus *mc = l->mc;

	if (l->w->connected)
		return 0;
	if (!l->w->ctx) {
		l->w->ctx = modbus_new_rtu(mc->device, (int)mc->baud, mc->parity ? mc->parity : 'N',
					   mc->data_bits ? mc->data_bits : 8,
					   mc->stop_bits ? mc->stop_bits : 1);
		if (!l->w->ctx)
			return -errno ? -errno : -ENOMEM;
		modbus_set_response_timeout(l->w->ctx, mc->timeout_ms / 1000,
					    (mc->timeout_ms % 1000) * 1000);
	}
	if (modbus_connect(l->w->ctx) == -1)
		return -errno;
	if (mc->rs485 && modbus_rtu_set_serial_mode(l->w->ctx, MODBUS_RTU_RS485) == -1)
		gw_log(l->ad->base.log, LOG_WARNING, MOD,
		       "bus %s: cannot switch %s to RS485 mode (%s), using RS232", l->cfg->name,
		       mc->device, strerror(errno));
	l->w->connected = true;
	return 0;
}

/* Maps a failed libmodbus call's errno; drops the port unless the device
 * answered (an exception) or the line was merely quiet or noisy. */
static int lm_fail(struct mb_line *l, uint8_t *exc)
{
	int e = errno;

	if (e > MODBUS_ENOBASE && e <= EMBXGTAR) {
		*exc = (uint8_t)(e - MODBUS_ENOBASE);
		return -MBUS_EEXC;
	}
	if (e != ETIMEDOUT && e != EMBBADCRC) {
		modbus_close(l->w->ctx);
		l->w->connected = false;
	} else {
		modbus_flush(l->w->ctx);
	}
	if (e == EMBBADCRC)
		return -EBADMSG;
	if (e > EMBXGTAR)
		return -EPROTO;
	return e ? -e : -EIO;
}

/* One request with libmodbus (blocks for at most the bus timeout). */
static int lm_xfer(struct mb_line *l, const struct mbus_xfer *x, uint8_t *exc)
{
	int rc, i;

	rc = lm_open(l);
	if (rc)
		return rc;
	modbus_set_slave(l->w->ctx, x->unit);
	switch (x->fc) {
	case MBUS_FC_READ_COILS:
		rc = modbus_read_bits(l->w->ctx, x->addr, x->count, l->w->bits);
		break;
	case MBUS_FC_READ_DISCRETE:
		rc = modbus_read_input_bits(l->w->ctx, x->addr, x->count, l->w->bits);
		break;
	case MBUS_FC_READ_INPUT:
		rc = modbus_read_input_registers(l->w->ctx, x->addr, x->count, x->dst);
		break;
	case MBUS_FC_READ_HOLDING:
		rc = modbus_read_registers(l->w->ctx, x->addr, x->count, x->dst);
		break;
	case MBUS_FC_WRITE_COIL:
		rc = modbus_write_bit(l->w->ctx, x->addr, x->vals[0] ? 1 : 0);
		break;
	case MBUS_FC_WRITE_COILS:
		for (i = 0; i < x->count; i++)
			l->w->bits[i] = x->vals[i] ? 1 : 0;
		rc = modbus_write_bits(l->w->ctx, x->addr, x->count, l->w->bits);
		break;
	case MBUS_FC_WRITE_REGISTER:
		rc = modbus_write_register(l->w->ctx, x->addr, x->vals[0]);
		break;
	default:
		rc = modbus_write_registers(l->w->ctx, x->addr, x->count, x->vals);
		break;
	}
	if (rc == -1)
		return lm_fail(l, exc);
	if (x->fc <= MBUS_FC_READ_INPUT && rc != x->count)
		return -EBADMSG;
	if (x->fc == MBUS_FC_READ_COILS || x->fc == MBUS_FC_READ_DISCRETE)
		for (i = 0; i < x->count; i++)
			x->dst[i] = l->w->bits[i];
	return 0;
}

void ad__modbus_worker_main(void *arg)
{
	struct mb_line *l = arg;
	struct mbus_xfer x;
	uint8_t exc;
	int err;

	uv_mutex_lock(&l->w->lock);
	for (;;) {
		while (!l->w->quit && !l->w->job)
			uv_cond_wait(&l->w->cond, &l->w->lock);
		if (!l->w->job)
			break;
		x = l->w->x;
		l->w->job = false;
		exc = 0;
		if (l->w->quit) {
			/* Stopping: answer without touching the device. */
			err = -ECANCELED;
		} else {
			uv_mutex_unlock(&l->w->lock);
			err = lm_xfer(l, &x, &exc);
			uv_mutex_lock(&l->w->lock);
		}
		l->w->job_err = err;
		l->w->job_exc = exc;
		l->w->done = true;
		uv_async_send(&l->ad->async);
	}
	uv_mutex_unlock(&l->w->lock);
	lm_close(l);
	uv_mutex_lock(&l->w->lock);
	l->w->exited = true;
	uv_mutex_unlock(&l->w->lock);
	uv_async_send(&l->ad->async);
}

/* Results and exits of the workers, on the loop. */
void ad__modbus_on_async(uv_async_t *h)
{
	struct mb_adapter *ad = container_of(h, struct mb_adapter, async);
	unsigned int i;

	for (i = 0; i < ad->n_lines; i++) {
		struct mb_line *l = &ad->lines[i];
		bool done, exited;
		int err;
		uint8_t exc;

		if (!l->serial || !l->w->thread_started)
			continue;
		uv_mutex_lock(&l->w->lock);
		done = l->w->done;
		exited = l->w->exited;
		err = l->w->job_err;
		exc = l->w->job_exc;
		l->w->done = false;
		uv_mutex_unlock(&l->w->lock);
		if (done) {
			mbus_line_result(&l->sm, ad__modbus_clock_now(), err, exc);
			ad__modbus_pump(l);
		}
		if (exited && !l->w->joined) {
			uv_thread_join(&l->w->thread);
			l->w->joined = true;
			ad->workers_left--;
		}
	}
	ad__modbus_maybe_done(ad);
}
