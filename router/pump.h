/* The body pumps of dyno-router: the bytes of a request and its response
 * between a client connection and its upstream (router/client.h). Bodies
 * stream through bounded buffers: bytes are written from one side's input
 * buffer straight to the other side's socket (with a head still queued in
 * front, in one sendmsg), and a side is only read while its buffer has
 * room. Content-Length and chunked bodies are framed as they pass (chunked
 * ones validated, and decoded for an HTTP/1.0 client); after a 101 the
 * tunnel moves raw bytes both ways, half-closes included.
 *
 * Each pump returns false when it closed the client (c->conn.closed), ended its
 * request with an answer, or moved it to another upstream (a retry: the
 * caller goes round again); true when it is waiting for an event. */
#pragma once

#include <stdbool.h>

struct client;

/* Moves request bytes to the dyno: what is left of the head in u->out and
 * the body bytes that follow it in c->in. */
bool pump_request(struct client *c);

/* Parses the dyno's response head when it is complete, then moves the
 * response to the client: its head, rebuilt, and the body bytes after it. */
bool pump_response(struct client *c);

/* After a 101: raw bytes both ways until both sides are done. */
bool pump_tunnel(struct client *c);

/* Writes what c->out holds (a router answer, a head, decoded chunks). */
bool pump_flush(struct client *c);
