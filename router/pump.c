#include "router/pump.h"

#include <stdint.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "router/client.h"

bool pump_request(struct client *c)
{
	struct upstream *u = c->up;
	struct client_req *r = &c->req;
	if (u == NULL || u->state != UPSTREAM_ACTIVE || u->wr_shut)
		return true;
	while (!u->wblocked) {
		size_t avail = buf_len(&c->in), n = 0;
		if (r->body_done) {
			n = 0;
		} else if (r->body == H1_BODY_LENGTH) {
			n = (size_t)MIN((uint64_t)avail, r->body_left);
		} else if (r->body == H1_BODY_CHUNKED) {
			while (r->body_ready < avail && !h1_chunked_done(&r->chunk)) {
				struct h1_slice data;
				int d =
				    h1_chunked_decode(&r->chunk, buf_data(&c->in) + r->body_ready,
				                      avail - r->body_ready, &data);
				if (d < 0) {
					/* docs/design.md: a bad chunk after forwarding began
					 * closes both connections */
					client_reject(c, 400, h1_strerror(d));
					return false;
				}
				if (d == 0)
					break;
				r->body_ready += (size_t)d;
			}
			n = r->body_ready;
		}
		size_t hl = buf_len(&u->out);
		if (hl == 0 && n == 0) {
			if (!r->body_done && c->rd_eof) {
				client_fail(c, HK_H27);
				return false;
			}
			break;
		}
		ssize_t w =
		    buf_send2(u->io.fd, buf_data(&u->out), hl, buf_data(&c->in), n, &u->wblocked);
		if (w < 0)
			goto write_error;
		size_t from_head = MIN((size_t)w, hl);
		/* kept for a retry (client_retry() rewinds it): not consumed */
		u->out.start += from_head;
		size_t bw = (size_t)w - from_head;
		if (bw > 0) {
			buf_consume(&c->in, bw);
			r->body_sent += bw;
			if (r->body == H1_BODY_LENGTH) {
				r->body_left -= bw;
				r->body_done = r->body_left == 0;
			} else {
				r->body_ready -= bw;
				r->body_done = r->body_ready == 0 && h1_chunked_done(&r->chunk);
			}
			u->last_active = loop_now(c->px->loop);
		}
	}
	if (r->body_done && buf_len(&u->out) == 0 && !r->req_sent) {
		r->req_sent = true;
		/* with a body, the first byte is awaited from its end; without,
		 * the timer started at the connect is the same */
		if (!r->got_any && r->body_sent > 0) {
			u->last_active = loop_now(c->px->loop);
			loop_timer_start(c->px->loop, &u->timer, c->px->cfg.first_byte_timeout,
			                 NULL);
		}
	}
	return true;
write_error:
	if (!r->got_any && u->reused && r->body_sent == 0 && r->idempotent) {
		/* on another upstream now: round again (a pooled one is
		 * writable already, no event will say so) */
		client_retry(c, false, false, "reused connection closed");
		return false;
	}
	if (r->got_any) {
		/* the dyno answered early and stopped reading the body: let
		 * the response finish, the client connection closes after */
		u->wr_shut = true;
		c->closing = true;
		return true;
	}
	client_fail(c, HK_H18);
	return false;
}

/* Parses the dyno's response head in u->in and queues the client's head. */
static bool response_head(struct client *c)
{
	struct proxy *px = c->px;
	struct upstream *u = c->up;
	struct client_req *r = &c->req;
	for (;;) {
		if (buf_len(&u->in) == 0)
			return true;
		struct h1_parser p;
		h1_parser_init(&p, NULL, px->headers, CLIENT_MAX_HEADERS);
		struct h1_response resp;
		int n = h1_parse_response(&p, buf_data(&u->in), buf_len(&u->in),
		                          r->method_id == H1_METHOD_HEAD ? H1_RESP_HEAD : 0, &resp);
		if (n == 0 && (u->rd_eof || buf_len(&u->in) >= CLIENT_BUF_MAX))
			n = H1_E_HEAD_TOO_LARGE; /* cut short, or no end in sight */
		if (n == 0)
			return true;
		if (n < 0) {
			client_fail(c, HK_H17);
			return false;
		}
		if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
			/* 100 Continue is the router's to send; other 1xx are
			 * dropped too, since 1.0 clients cannot take them */
			buf_consume(&u->in, (size_t)n);
			continue;
		}
		r->status = resp.status;
		r->dechunk = r->minor0 && resp.body == H1_BODY_CHUNKED;
		if (resp.upgrade && !r->upgrade) {
			client_fail(c, HK_H17);
			return false;
		}
		if (resp.body == H1_BODY_CLOSE || r->dechunk || !r->keep_alive || px->shutting_down)
			c->closing = true;
		r->up_keep = resp.keep_alive && r->keepalive_app && resp.body != H1_BODY_CLOSE &&
		             !resp.upgrade;
		struct hdr_response_info info = {
		    .close = c->closing && !resp.upgrade,
		    .client_10 = r->minor0,
		    .dechunk = r->dechunk,
		};
		ssize_t hl = hdr_build_response(&resp, &info, px->scratch, sizeof(px->scratch));
		if (hl < 0 || buf_append(&c->out, px->scratch, (size_t)hl, SIZE_MAX) < 0) {
			client_fail(c, HK_H17);
			return false;
		}
		r->bytes += (uint64_t)hl;
		r->resp_started = true;
		buf_consume(&u->in, (size_t)n);
		r->resp_body = resp.body;
		if (resp.upgrade) {
			c->state = CLIENT_TUNNEL;
			r->resp_done = true;
			client_log(c, HK_NONE, NULL);
			return true;
		}
		switch (resp.body) {
		case H1_BODY_NONE:
			r->resp_done = true;
			break;
		case H1_BODY_LENGTH:
			r->resp_left = (uint64_t)resp.content_length;
			r->resp_done = r->resp_left == 0;
			break;
		case H1_BODY_CHUNKED:
			h1_chunked_init(&r->resp_chunk, NULL);
			break;
		default:
			break;
		}
		return true;
	}
}

bool pump_flush(struct client *c)
{
	if (buf_len(&c->out) == 0 || c->wblocked)
		return true;
	ssize_t w = buf_flush(&c->out, c->conn.io.fd, &c->wblocked);
	if (w < 0) {
		if (c->state == CLIENT_PROXY && !c->req.logged)
			client_fail(c, HK_H27);
		else
			client_close(c);
		return false;
	}
	c->last_active = loop_now(c->px->loop);
	return true;
}

/* Chunks of the dyno's body for an HTTP/1.0 client, decoded into c->out:
 * the data alone, the end is the close. Returns false when c was failed;
 * *ret_more when the pump should go round again. */
static bool dechunk(struct client *c, bool *ret_more)
{
	struct upstream *u = c->up;
	struct client_req *r = &c->req;
	size_t avail = buf_len(&u->in);
	*ret_more = false;
	while (r->resp_ready < avail && !h1_chunked_done(&r->resp_chunk)) {
		struct h1_slice data;
		int d = h1_chunked_decode(&r->resp_chunk, buf_data(&u->in), avail, &data);
		if (d < 0) {
			client_fail(c, HK_H17);
			return false;
		}
		if (d == 0)
			break;
		if (data.len > 0)
			buf_append(&c->out, data.p, data.len, SIZE_MAX);
		buf_consume(&u->in, (size_t)d);
		avail -= (size_t)d;
		if (buf_len(&c->out) >= CLIENT_OUT_MAX)
			break;
	}
	r->resp_done = h1_chunked_done(&r->resp_chunk);
	size_t before = buf_len(&c->out);
	if (!pump_flush(c))
		return false;
	r->bytes += before - buf_len(&c->out);
	*ret_more = buf_len(&u->in) > 0 && buf_len(&c->out) == 0;
	return true;
}

bool pump_response(struct client *c)
{
	struct upstream *u = c->up;
	struct client_req *r = &c->req;
	if (u == NULL || u->state != UPSTREAM_ACTIVE)
		return pump_flush(c);
	if (!r->resp_started) {
		if (buf_len(&u->in) == 0 && u->rd_eof)
			goto closed;
		if (!response_head(c))
			return false;
		if (!r->resp_started || c->state == CLIENT_TUNNEL)
			return pump_flush(c);
	}
	while (!r->resp_done && !c->wblocked) {
		size_t avail = buf_len(&u->in), n = 0;
		if (r->resp_body == H1_BODY_LENGTH) {
			n = (size_t)MIN((uint64_t)avail, r->resp_left);
		} else if (r->resp_body == H1_BODY_CLOSE) {
			n = avail;
		} else if (r->resp_body == H1_BODY_CHUNKED && r->dechunk) {
			bool more;
			if (!dechunk(c, &more))
				return false;
			if (more)
				continue;
			if (!r->resp_done && u->rd_eof && buf_len(&u->in) == 0)
				goto closed;
			break;
		} else if (r->resp_body == H1_BODY_CHUNKED) {
			/* validated as it passes, forwarded as it came */
			while (r->resp_ready < avail && !h1_chunked_done(&r->resp_chunk)) {
				struct h1_slice data;
				const char *base = buf_data(&u->in) + r->resp_ready;
				int d = h1_chunked_decode(&r->resp_chunk, base,
				                          avail - r->resp_ready, &data);
				if (d < 0) {
					client_fail(c, HK_H17);
					return false;
				}
				if (d == 0)
					break;
				r->resp_ready += (size_t)d;
			}
			n = r->resp_ready;
		}
		if (n == 0) {
			if (u->rd_eof) {
				if (r->resp_body == H1_BODY_CLOSE) {
					r->resp_done = true;
					break;
				}
				goto closed;
			}
			break;
		}
		size_t hl = buf_len(&c->out);
		ssize_t w = buf_send2(c->conn.io.fd, buf_data(&c->out), hl, buf_data(&u->in), n,
		                      &c->wblocked);
		if (w < 0) {
			client_fail(c, HK_H27);
			return false;
		}
		size_t from_head = MIN((size_t)w, hl);
		buf_consume(&c->out, from_head);
		size_t bw = (size_t)w - from_head;
		buf_consume(&u->in, bw);
		r->bytes += bw;
		c->last_active = u->last_active = loop_now(c->px->loop);
		if (r->resp_body == H1_BODY_LENGTH) {
			r->resp_left -= bw;
			r->resp_done = r->resp_left == 0;
		} else if (r->resp_body == H1_BODY_CHUNKED) {
			r->resp_ready -= bw;
			r->resp_done = r->resp_ready == 0 && h1_chunked_done(&r->resp_chunk);
		}
	}
	return pump_flush(c);
closed:
	if (!r->resp_started && !r->got_any && u->reused && r->body_sent == 0 && r->idempotent) {
		/* on another upstream now: round again, so that pump_request()
		 * sends the head to a pooled one (writable already: no event
		 * comes) */
		client_retry(c, false, false, "reused connection closed");
		return false;
	}
	client_fail(c, r->resp_started ? HK_H18 : HK_H13);
	return false;
}

bool pump_tunnel(struct client *c)
{
	struct upstream *u = c->up;
	if (!pump_flush(c))
		return false;
	if (u == NULL) {
		client_close(c);
		return false;
	}
	uint64_t now = loop_now(c->px->loop);
	/* dyno -> client */
	while (buf_len(&c->out) == 0 && buf_len(&u->in) > 0 && !c->wblocked) {
		if (buf_flush(&u->in, c->conn.io.fd, &c->wblocked) < 0) {
			client_close(c);
			return false;
		}
		c->last_active = now;
	}
	/* client -> dyno */
	while (buf_len(&c->in) > 0 && !u->wblocked && !u->wr_shut) {
		if (buf_flush(&c->in, u->io.fd, &u->wblocked) < 0) {
			client_close(c);
			return false;
		}
		c->last_active = now;
	}
	/* half-closes travel on once the bytes before them are out */
	if (c->rd_eof && buf_len(&c->in) == 0 && !u->wr_shut) {
		shutdown(u->io.fd, SHUT_WR);
		u->wr_shut = true;
	}
	if (u->rd_eof && buf_len(&u->in) == 0 && buf_len(&c->out) == 0) {
		shutdown(c->conn.io.fd, SHUT_WR);
		if (c->rd_eof || u->wr_shut) {
			client_close(c);
			return false;
		}
	}
	if (c->rd_eof && u->rd_eof && buf_len(&u->in) == 0 && buf_len(&c->in) == 0) {
		client_close(c);
		return false;
	}
	return true;
}
