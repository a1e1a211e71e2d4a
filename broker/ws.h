/*
 * ws.h - WebSocket (RFC 6455) for the broker's ws:// and wss:// listeners:
 * the opening handshake checked and answered, frames decoded and encoded.
 * Pure: bytes in, bytes and events out; SHA-1 and base64 are mbedTLS's.
 *
 * MQTT over WebSocket (MQTT 5.0 6.0, 3.1.1 6): binary data frames carry the
 * MQTT byte stream, a packet may span frames and a frame may hold several
 * packets; the subprotocol is "mqtt" ("mqttv3.1" is accepted for old clients).
 */
#ifndef FIELDMQ_BROKER_WS_H
#define FIELDMQ_BROKER_WS_H

#include "broker/http.h"

enum {
	BRK_WS_CONT = 0x0,
	BRK_WS_TEXT = 0x1,
	BRK_WS_BINARY = 0x2,
	BRK_WS_CLOSE = 0x8,
	BRK_WS_PING = 0x9,
	BRK_WS_PONG = 0xA,
};

/* Close codes (RFC 6455 7.4.1) we send. */
enum {
	BRK_WS_CLOSE_NORMAL = 1000,
	BRK_WS_CLOSE_PROTOCOL = 1002,
	BRK_WS_CLOSE_UNSUPPORTED = 1003,
	BRK_WS_CLOSE_TOO_BIG = 1009,
};

/*
 * Decoder state of one connection (embed it, zeroed). Payload bytes stream
 * through without being buffered: only a frame header and a control frame's
 * payload (at most 125 bytes) are kept between calls.
 */
struct brk_ws_rx {
	uint8_t hdr[14];
	uint8_t hlen;  /* header bytes kept */
	uint8_t op;    /* opcode of the frame being read */
	bool in_frame; /* the header is complete; @left payload bytes to come */
	bool fin;
	bool in_msg; /* a fragmented data message is open (continuations expected) */
	uint8_t mask[4];
	uint8_t moff; /* where in the mask the next payload byte is */
	uint64_t left;
	uint8_t ctl[125]; /* a control frame's payload */
	uint8_t ctl_len;
};

enum brk_ws_ev_type {
	BRK_WS_EV_NONE, /* bytes consumed, nothing to report yet */
	BRK_WS_EV_DATA, /* MQTT bytes (unmasked, in place) in data */
	BRK_WS_EV_PING, /* answer with a PONG carrying data */
	BRK_WS_EV_PONG,
	BRK_WS_EV_CLOSE, /* the peer closes with code (1005: none given); echo it */
};

struct brk_ws_event {
	enum brk_ws_ev_type type;
	struct gw_slice data; /* DATA: into the caller's buffer; PING/PONG/CLOSE: into rx->ctl */
	uint16_t code;	      /* CLOSE: the peer's code; on an error: the code to close with */
};

/*
 * brk_ws_decode - decode client frames from @buf (@len bytes), unmasking
 * payload bytes in place. Reports one event per call: call again with the
 * rest while it returns > 0.
 * Returns bytes consumed (> 0) with *@ev set, 0 when @len is 0, or -EPROTO
 * with ev->code the close code to send: 1002 for a protocol violation (an
 * unmasked frame, RSV bits, an unknown opcode, a fragmented or oversized
 * control frame, a continuation out of place, a bad close code), 1003 for a
 * text frame (MQTT is binary only [MQTT-6.0.0-1]).
 */
int brk_ws_decode(struct brk_ws_rx *rx, uint8_t *buf, size_t len, struct brk_ws_event *ev);

/*
 * brk_ws_frame_header - the header of an unmasked final frame (a server's)
 * of opcode @op and @len payload bytes into @out. Returns its length (2-10).
 */
size_t brk_ws_frame_header(uint8_t out[10], uint8_t op, uint64_t len);

/*
 * brk_ws_handshake - check @req as an RFC 6455 opening handshake for @path
 * (the request-target's path must equal it) and write the response into
 * @resp (@cap bytes, 512 are enough), its length in *@resp_len.
 * Returns 0 for "101 Switching Protocols", or a negative errno with an error
 * response written: -ENOENT (404: another path), -EPROTONOSUPPORT (426 with
 * Sec-WebSocket-Version: 13: another version), -EBADMSG (400: not a
 * WebSocket upgrade, a bad key, or a subprotocol list without "mqtt" /
 * "mqttv3.1"), -EMSGSIZE (@cap too small; nothing written). A request that
 * names no subprotocol is accepted and answered without one.
 */
int brk_ws_handshake(const struct brk_http_req *req, const char *path, char *resp, size_t cap,
		     size_t *resp_len);

/* Sec-WebSocket-Accept for @key (RFC 6455 4.2.2): 28 characters and a NUL into @out. */
int brk_ws_accept_key(struct gw_slice key, char out[29]);

#endif
