/*
 * mbus_poll.h - the Modbus poller as a sans-I/O state machine: one "line"
 * (what must be used one request at a time: a TCP connection, an RTU-over-TCP
 * server, a serial line) with its devices, their poll schedules, the jobs
 * queued on it (device polls and writes, in order), the request plan of each
 * device, the split of a merged read that got an exception, results turned
 * into readings, and device health (bad, offline, degraded, back online).
 *
 * The poller does no I/O, reads no clock, allocates nothing and logs
 * nothing. The glue feeds it events with the time (mbus_line_due,
 * mbus_line_response, mbus_line_result, mbus_line_error) and it acts through
 * struct mbus_poll_ops: send a request, drop a transport whose request timed
 * out, hand out readings, status changes, write results and notes to log.
 * Memory is the glue's: mbus_pdev_need() says how much a device needs,
 * mbus_pdev_init() carves it. Every call runs on one thread (the loop).
 *
 * Included by adapters/modbus/ and its tests only.
 */
#ifndef FIELDMQ_MBUS_POLL_H
#define FIELDMQ_MBUS_POLL_H

#include "adapters/modbus/mbus_int.h"
#include "adapters/modbus/modbus_adapter.h"

/* Our "the device answered with an exception" error; the code travels beside it. */
#define MBUS_EEXC EREMOTEIO
/* Commands waiting per line before new ones are refused. */
#define MBUS_MAX_QUEUED_WRITES 64

/* The time of an event: monotonic for schedules, wall for reading timestamps. */
struct mbus_clock {
	int64_t mono_ms;
	int64_t wall_ms;
};

/* One request the poller asks the transport to run. */
struct mbus_xfer {
	uint8_t unit;
	uint8_t fc;	      /* 1-4 reads, 5, 6, 15, 16 writes */
	uint16_t addr;	      /* protocol address */
	uint16_t count;	      /* units read or written */
	const uint16_t *vals; /* writes: @count values (coils as 0/1) */
	uint16_t *dst;	      /* reads: room for @count units (bits one per slot, 0/1) */
};

/*
 * Frames request @x into @aw as the glue sends it on a TCP line: its PDU
 * (a write when x->vals is set, else a read) in an MBAP header (@mbap; the
 * transaction id is ++*tid, incremented only once the PDU is valid) or in
 * RTU framing (unit, PDU, CRC; @tid unused) for RTU over TCP. Pure (in
 * mbus_rtu.c). Returns 0 (the ADU is aw->len bytes), -EINVAL (a function
 * code or count the PDU writers refuse) or -EMSGSIZE (the framing's: an
 * empty or too long PDU, no room in @aw).
 */
int mbus_xfer_encode(struct gw_writer *aw, bool mbap, uint16_t *tid, const struct mbus_xfer *x);

/* Something worth a log line; the glue words it. */
enum mbus_note_kind {
	MBUS_NOTE_FAILED,    /* a device's first failed cycle after success: err */
	MBUS_NOTE_EXCEPTION, /* a read got a new exception: req, exc, split */
	MBUS_NOTE_ONLINE,
	MBUS_NOTE_OFFLINE,
	MBUS_NOTE_DEGRADED, /* fails failed cycles: skipped for degrade_for */
};

struct mbus_note {
	enum mbus_note_kind kind;
	const struct ad_device *dev;
	int err;
	uint8_t exc;
	const struct mbus_req *req;
	bool split;
	unsigned int fails;
};

struct mbus_write;

/*
 * What the poller asks of the glue. All on the loop thread.
 * send: start @x; 0 when under way (its end comes back as one
 *       mbus_line_response / _result / _error, or the poller times it out),
 *       or -errno when it could not start (taken as that transport error).
 *       @x and what it points to stay valid until the request ends.
 * reset: the poller gave up on the request in flight (a timeout, or an
 *       answer that does not fit: wrong unit, malformed): drop the transport
 *       so a late or stray answer cannot be taken for the next request.
 * on_write_done: @w ended with @res; the poller no longer holds @w.
 */
struct mbus_poll_ops {
	int (*send)(void *arg, const struct mbus_xfer *x);
	void (*reset)(void *arg);
	void (*on_reading)(void *arg, const struct ad_reading *r);
	void (*on_status)(void *arg, const struct ad_device *dev, bool online);
	void (*on_write_done)(void *arg, struct mbus_write *w, const struct ad_cmd_result *res);
	void (*on_note)(void *arg, const struct mbus_note *n);
};

enum mbus_job_kind {
	MBUS_JOB_POLL,
	MBUS_JOB_WRITE,
};

struct mbus_job {
	struct gw_list node;
	enum mbus_job_kind kind;
};

/* The outcome of one planned request in the current cycle. */
struct mbus_res {
	int err; /* 0, -MBUS_EEXC (exc set) or a transport -errno */
	uint8_t exc;
	bool sent;  /* false when skipped after an earlier transport failure */
	bool split; /* an exception on a merged read: its points were read one by one */
	uint16_t extra, extra_failed; /* requests of the split */
	int64_t ts;		      /* wall ms */
	uint32_t off;		      /* into data */
};

/* One device on a line. Fill with mbus_pdev_init() (and mbus_pdev_move()). */
struct mbus_pdev {
	struct mbus_job job; /* its poll, while queued or running */
	const struct ad_device *cfg;
	struct mbus_line *line;
	const struct ad_point **order; /* points sorted as planned */
	struct mbus_req *reqs;
	int n_reqs;
	uint16_t *data;	      /* every request's units */
	struct mbus_res *res; /* per request */
	int *pt_err;	      /* per point of order, for split requests */
	int *req_err;	      /* per request: the last error noted */
	uint8_t *pt_q;	      /* per point of order: 0 never, 1 good, 2 bad */
	struct mbus_health health;
	struct ad_device_stats st; /* requests, errors by kind, latency (for /metrics) */
	uint32_t period_ms;
	uint32_t first_delay_ms;
	int64_t next_due; /* monotonic ms */
	bool busy;	  /* its poll is queued or running */
	/* The cycle in progress. */
	int cur;   /* request */
	int split; /* point of order being read alone, or -1 */
	int fatal; /* transport error that ends the cycle */
};

/* A command: the glue allocates it, mbus_line_write() fills and queues it. */
struct mbus_write {
	struct mbus_job job;
	struct mbus_pdev *dev;
	const struct ad_point *pt;
	void *token;
	uint8_t fc;
	uint16_t regs[MBUS_MAX_WRITE_REGS];
	size_t n;
	struct ad_value value; /* strings point into str */
	uint8_t str[2 * MBUS_MAX_WRITE_REGS + 2];
	int err;
	uint8_t exc;
};

struct mbus_line {
	const struct mbus_poll_ops *ops;
	void *arg;
	struct ad_modbus_stats *stats; /* shared by the adapter's lines */
	uint32_t timeout_ms;	       /* 0: the transport times requests out itself */
	uint32_t turnaround_ms;	       /* silence between a response and the next request */
	struct mbus_pdev **devs;
	unsigned int n_devs;
	struct gw_list queue; /* jobs waiting */
	struct mbus_job *cur; /* running job, NULL when idle */
	struct mbus_xfer x;   /* the request in flight */
	bool outstanding;
	int64_t deadline;    /* of the request in flight (timeout_ms) */
	int64_t sent_at;     /* when the request in flight was sent (monotonic ms) */
	int64_t quiet_until; /* turnaround: no request before */
	unsigned int n_writes;
	bool started, stopped, kicking;
};

/* Bytes a device needs for its plan and results (the memory of mbus_pdev_init). */
long mbus_pdev_need(const struct ad_device *dev);

/*
 * Plan @dev into @d using @mem (@len bytes, at least mbus_pdev_need, aligned
 * as malloc aligns). The first poll falls @first_delay_ms after the line
 * starts, then every poll period. Returns the number of units (uint16_t) its
 * reads fill (>= 1): the caller points d->data at that much room before the
 * line starts. Or -EMSGSIZE / -EINVAL when a point cannot be planned (*bad
 * names it), -ENOBUFS when @len is short.
 */
int mbus_pdev_init(struct mbus_pdev *d, const struct ad_device *dev, void *mem, size_t len,
		   uint32_t first_delay_ms, const struct ad_point **bad);

/*
 * mbus_pdev_need() plans for the worst case, a request per point; the plan
 * usually holds far fewer (one for ten adjacent registers). After
 * mbus_pdev_init(): mbus_pdev_size() is what @d's plan fills, plus @units
 * uint16_t for d->data; mbus_pdev_move() copies the plan into @mem (@len
 * bytes, at least mbus_pdev_size, aligned as malloc aligns), points d->data
 * at the units after it (zeroed) and returns 0, or -ENOBUFS when @len is
 * short (@d untouched). The old memory is the caller's to free.
 */
size_t mbus_pdev_size(const struct mbus_pdev *d, int units);
int mbus_pdev_move(struct mbus_pdev *d, void *mem, size_t len, int units);

/*
 * Set up @l for the @n devices in @devs (each initialised with
 * mbus_pdev_init; the array and the devices outlive the line). @stats is
 * added to; @timeout_ms 0 leaves timeouts to the transport.
 */
void mbus_line_init(struct mbus_line *l, const struct mbus_poll_ops *ops, void *arg,
		    struct ad_modbus_stats *stats, struct mbus_pdev **devs, unsigned int n,
		    uint32_t timeout_ms, uint32_t turnaround_ms);

/* Start the schedules at @now. */
void mbus_line_start(struct mbus_line *l, struct mbus_clock now);

/*
 * Time has come to @now: time a request out, start the polls that are due
 * (an overrun when a device's previous poll is still queued or running, a
 * skip while it is degraded), send what can be sent. Returns the monotonic
 * time of the next event the line waits for (a poll, a timeout, the end of a
 * turnaround), or INT64_MAX when none: call again then.
 */
int64_t mbus_line_due(struct mbus_line *l, struct mbus_clock now);

/*
 * The answer to the request in flight, as decoded by the transport's framing
 * (RTU or MBAP; the glue has checked the transaction id). Returns 0, or
 * -ESTALE when no request is in flight (a late answer: ignored).
 */
int mbus_line_response(struct mbus_line *l, struct mbus_clock now, const struct mbus_frame *f);

/*
 * The end of the request in flight for a transport that fills x->dst itself
 * (libmodbus): @err 0, -MBUS_EEXC with @exc, or a transport -errno. An error
 * is mbus_line_result(l, now, err, 0). Return as mbus_line_response.
 */
int mbus_line_result(struct mbus_line *l, struct mbus_clock now, int err, uint8_t exc);
int mbus_line_error(struct mbus_line *l, struct mbus_clock now, int err);

/*
 * The request in flight has just been sent, later than ops->send asked (the
 * transport had to connect first): its timeout counts again from @now, so
 * connecting and answering each get the bus timeout, as with libmodbus.
 */
void mbus_line_sent(struct mbus_line *l, struct mbus_clock now);

/*
 * Queue a write of @v to @pt of device @d, with @w (the glue's, zeroed or
 * not). Returns 0: @w belongs to the poller until on_write_done; or refuses
 * with *why set (@w stays the caller's): -EACCES / -EINVAL / -ERANGE as
 * mbus_encode, -ENOBUFS too many queued, -ECANCELED the line is stopped.
 */
int mbus_line_write(struct mbus_line *l, struct mbus_pdev *d, struct mbus_write *w,
		    const struct ad_point *pt, const struct ad_value *v, void *token,
		    const char **why);

/*
 * Stop: no more polls; queued writes end with -ECANCELED. A request in
 * flight stays until the glue ends it (mbus_line_error with -ECANCELED once
 * its transport is closed, or the worker's result); a write's result is
 * still delivered, a poll's readings are not. Returns whether a request is
 * still in flight.
 */
bool mbus_line_stop(struct mbus_line *l, struct mbus_clock now);

/* Text for an error of a request ("timeout", "illegal data address", ...); NULL for 0. */
const char *mbus_err_str(int err, uint8_t exc);

#endif
