"""A WebSocket client in a process of its own, for tests that stop (SIGSTOP) or kill it.

``python tests/server/ws_client.py ws://...``: connects, prints ``open``, then sends nothing and
only answers the server's protocol pings (the websockets library does that by itself) until it
is stopped or killed.
"""

import asyncio
import sys

from websockets.asyncio.client import connect


async def main(url: str) -> None:
    async with connect(url, ping_interval=None, open_timeout=10) as socket:
        print("open", flush=True)
        await socket.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
