#!/usr/bin/env python3
"""Hold N concurrent slow uploads open against one proxy, for the RSS part of bench/run.sh.

Each connection sends a request head announcing a Content-Length of --body-size bytes, then --initial bytes quickly
(so that the proxy has received more than its in-memory buffer and has had to spill to disk), then trickles
--trickle bytes per connection every --interval seconds. The body never completes. Once every connection has sent its
initial bytes the client prints `READY ...` on stdout and holds for --hold seconds (the caller samples the proxy's
memory meanwhile), then prints `CLOSING`, aborts every connection and prints a summary line `DONE ...`.

Only the Python standard library is used. Every phase has a deadline, so the client always stops by itself.
"""

import argparse
import asyncio
import os
import sys
import time

CHUNK = 64 * 1024


class Conn:
    def __init__(self):
        self.writer = None
        self.sent = 0
        self.ready = False
        self.failed = None
        self.answered = None  # first line the server sent back before we were done (an early error response)


async def read_early_answer(reader, conn):
    """Record the status line if the proxy answers (or closes) before the body is complete."""
    try:
        line = await reader.readline()
    except (ConnectionError, OSError) as error:
        conn.answered = f"reset: {error.__class__.__name__}"
        return
    conn.answered = line.decode(errors="replace").strip() or "closed"


async def open_one(args, conn, connect_gate, payload):
    async with connect_gate:
        reader, writer = await asyncio.open_connection(args.host, args.port)
    conn.writer = writer
    asyncio.ensure_future(read_early_answer(reader, conn))
    head = (
        f"{args.method} {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {args.body_size}\r\n\r\n"
    )
    writer.write(head.encode())
    while conn.sent < args.initial:
        n = min(CHUNK, args.initial - conn.sent)
        writer.write(payload[:n])
        conn.sent += n
        await writer.drain()
    conn.ready = True


async def trickle(args, conns, payload, stop):
    while not stop.is_set():
        for conn in conns:
            if conn.ready and conn.writer and conn.answered is None and conn.sent + args.trickle < args.body_size:
                conn.writer.write(payload[: args.trickle])
                conn.sent += args.trickle
        try:
            await asyncio.wait_for(stop.wait(), args.interval)
        except asyncio.TimeoutError:
            pass


async def main(args):
    payload = os.urandom(max(CHUNK, args.trickle))
    conns = [Conn() for _ in range(args.connections)]
    connect_gate = asyncio.Semaphore(args.connect_concurrency)
    started = time.monotonic()
    openers = [asyncio.ensure_future(open_one(args, c, connect_gate, payload)) for c in conns]
    stop = asyncio.Event()
    trickler = asyncio.ensure_future(trickle(args, conns, payload, stop))
    done, pending = await asyncio.wait(openers, timeout=args.ramp_timeout)
    for task, conn in zip(openers, conns):
        if task in done and task.exception() is not None:
            conn.failed = repr(task.exception())
    ready = sum(c.ready for c in conns)
    print(f"READY ready={ready} failed={sum(c.failed is not None for c in conns)} pending={len(pending)} "
          f"ramp_s={time.monotonic() - started:.1f}", flush=True)
    await asyncio.sleep(args.hold)
    print("CLOSING", flush=True)
    stop.set()
    await trickler
    for task in pending:
        task.cancel()
    answered = [c.answered for c in conns if c.answered is not None]
    for conn in conns:
        if conn.writer is not None:
            conn.writer.transport.abort()
    await asyncio.sleep(0.2)
    kinds = {}
    for answer in answered:
        kinds[answer[:40]] = kinds.get(answer[:40], 0) + 1
    failures = {}
    for conn in conns:
        if conn.failed:
            failures[conn.failed[:60]] = failures.get(conn.failed[:60], 0) + 1
    print(f"DONE ready={ready} sent_mib={sum(c.sent for c in conns) / 2**20:.1f} "
          f"early_answers={len(answered)} {kinds or ''} failures={failures or ''}", flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--method", default="PUT")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--body-size", type=int, default=4 * 2**20, help="announced Content-Length")
    p.add_argument("--initial", type=int, default=320 * 1024, help="bytes sent at once on each connection")
    p.add_argument("--trickle", type=int, default=1024, help="bytes sent per connection per interval afterwards")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--hold", type=float, default=10.0, help="seconds to hold every connection open after READY")
    p.add_argument("--ramp-timeout", type=float, default=60.0, help="give up waiting for the initial sends after this")
    p.add_argument("--connect-concurrency", type=int, default=100)
    args = p.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("slow_uploads.py only targets loopback")
    if args.initial + args.trickle * (args.hold / args.interval + 2) >= args.body_size:
        sys.exit("--body-size must exceed what is sent, or the bodies would complete")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
