"""``python -m xtremehub.streams.server``: the stream server without the rest of the CLI (same options as
``xhub streams serve``); used by the crash tests and the benchmark to run the server as a process.
"""

from __future__ import annotations

import logging

from xtremehub.streams.server.command import serve

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve.main(prog_name="xhub streams serve")
