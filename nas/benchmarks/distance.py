"""A database server further away than this machine's own: a TCP forwarder on a loopback port that holds what
passes through it, and counts the round trips made through it.

A worker on another machine talks to the study's PostgreSQL server over a network, where each round trip costs
0.2 ms (one rack) to a few ms (another zone); the local server here answers in 0.1 ms. The server's answers are
held ``round_trip`` seconds (what the client sends is not: a round trip costs the same either way); the event
loop's timers wake up to a few tenths of a millisecond late, so measure the round trip a client sees. A round
trip is counted when the client sends after an answer has reached it (or first).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

HOST = "127.0.0.1"
CHUNK = 1 << 16


class DistantServer:
    """``with DistantServer(port, round_trip=0.001) as distant:`` connect to ``distant.port`` instead of ``port``."""

    def __init__(self, port: int, round_trip: float):
        if round_trip < 0:
            raise ValueError(f"round_trip {round_trip!r} is negative; give seconds >= 0")
        self.target, self.round_trip = port, round_trip
        self.round_trips = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="distant-server", daemon=True)

    def url(self, url: str) -> str:
        """``url`` (a database URL naming the target's port) naming this forwarder's port instead."""
        if f":{self.target}/" not in url:  # left as it is, it would bypass the forwarder and count nothing
            raise ValueError(f"url {url!r} does not name port {self.target}; give host:{self.target}/database")
        return url.replace(f":{self.target}/", f":{self.port}/", 1)

    def __enter__(self) -> DistantServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connect, sock=self._listener), self._loop).result()
        return self

    def __exit__(self, *exc: Any) -> None:
        async def close() -> None:  # the clients' connections end as if the server went away
            self._server.close()
            for writer in self._writers:
                writer.close()
            await asyncio.gather(*asyncio.all_tasks() - {asyncio.current_task()}, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _connect(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(HOST, self.target)
        self._writers |= {client_out, server_out}
        # Who was delivered to last on this connection: a client's send after an answer reached it opens a trip.
        # An answer read from the server while the client's burst is still coming in (a fast server, a client
        # cut short by the scheduler) reaches the client only after its hold, so it opens none.
        last = {"from": "server"}

        def deliver(writer: asyncio.StreamWriter, data: bytes, side: str) -> None:
            writer.write(data)
            last["from"] = side

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, side: str) -> None:
            loop = asyncio.get_running_loop()
            hold = self.round_trip if side == "server" else 0.0
            while data := await reader.read(CHUNK):
                if side == "client" and last["from"] == "server":
                    self.round_trips += 1
                    last["from"] = "client"
                loop.call_later(hold, deliver, writer, data, side)  # equal holds keep the order
            loop.call_later(hold, writer.close)

        try:
            await asyncio.gather(forward(client_in, server_out, "client"), forward(server_in, client_out, "server"))
        except ConnectionError:
            pass  # one side went away: so does the other
        finally:
            self._writers -= {client_out, server_out}
            client_out.close()
            server_out.close()


__all__ = ["DistantServer"]
