"""A TCP relay from a clone's network namespace to a port on the lab machine (``portalops lab clone``).

A clone's hosts live in a network namespace of their own, with no route out of it; the gateway address they
are told to fetch packages through (``base_apt_proxy``, 10.89.60.1:3142) is the clone's own bridge, where
nothing listened, so every ``apt-get update`` on a clone fell back to the mirror it cannot reach and failed
after minutes. The relay gives the clone the lab machine's package cache at that address:

- the clone's start opens the listening socket *inside* the clone's namespace (:func:`listen_in`: the thread
  enters the namespace, binds, and returns; a socket keeps the namespace it was made in);
- a detached process (:func:`main`, ``python -m portalops.lab.relay``) inherits that socket and connects
  each client to the target in the lab machine's namespace, where it runs;
- a target that refuses is passed on as a reset to the client, as a stopped cache would give it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import struct
from pathlib import Path

CLONE_NEWNET = 0x40000000  # <sched.h>
CHUNK = 64 * 1024


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def listen_in(netns: Path, port: int, host: str = "0.0.0.0") -> socket.socket:  # noqa: S104 - the clone's own namespace
    """A TCP socket listening on ``host:port`` in the network namespace at ``netns`` (``/run/netns/NAME``).
    The calling thread is back in its own namespace when this returns, whatever happened."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                listener = socket.create_server((host, port), reuse_port=False)
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)
    listener.set_inheritable(True)
    return listener


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (linger 0), what the client would get from a port nobody listens on."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    """Relay every connection accepted on ``listener`` to ``target``, both ways, until cancelled."""

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            _reset(client_writer)
            return
        try:
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


def parse_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket, inherited")
    parser.add_argument("--to", type=parse_target, required=True, help="HOST:PORT to connect each client to")
    args = parser.parse_args(argv)
    listener = socket.socket(fileno=args.fd)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(listener, args.to))


if __name__ == "__main__":
    main()
