"""The clone's relay (portalops.lab.relay) between two sockets of this namespace: what it passes on, and what a
client gets when nothing answers behind it."""

from __future__ import annotations

import argparse
import asyncio
import socket

import pytest

from portalops.lab import relay


async def _echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data.upper())
        await writer.drain()
    writer.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _through_relay(target_port: int, payload: bytes) -> bytes:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    task = asyncio.create_task(relay.serve(listener, ("127.0.0.1", target_port)))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        writer.write_eof()
        received = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        return received
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_relay_passes_both_ways_and_the_end_of_the_request() -> None:
    async def scenario() -> bytes:
        upstream = await asyncio.start_server(_echo_upper, "127.0.0.1", 0)
        async with upstream:
            port = upstream.sockets[0].getsockname()[1]
            return await _through_relay(port, b"get /debian/InRelease\n" * 5000)

    assert asyncio.run(scenario()) == b"GET /DEBIAN/INRELEASE\n" * 5000


def test_a_target_that_refuses_is_a_reset_for_the_client() -> None:
    with pytest.raises(ConnectionResetError):
        asyncio.run(_through_relay(_free_port(), b"GET / HTTP/1.0\r\n\r\n"))


@pytest.mark.parametrize("text", ["3142", "host:", ":3142", "host:port", "host:70000"])
def test_a_target_is_host_colon_port(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        relay.parse_target(text)
    assert relay.parse_target("127.0.0.1:3142") == ("127.0.0.1", 3142)
