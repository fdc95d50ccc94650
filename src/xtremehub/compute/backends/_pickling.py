"""Pipe ends that survive pickling, whichever pickler is used.

``multiprocessing`` teaches only its own pickler how to send a connection (a
``Pipe`` end) to another process: the file descriptor is duplicated into the
receiving process through its resource sharer. Plain ``pickle`` and
``cloudpickle`` copy the descriptor *number*, which means nothing there. Importing
this module registers the standard library's reducer with :mod:`copyreg`, which
every pickler consults, so connections travel as call arguments to local workers
and inside a ``Process`` sent to another backend's worker on this machine. The
fast standard pickler stays the one that pickles calls.

Example:
    >>> import multiprocessing, pickle
    >>> reader, writer = multiprocessing.Pipe(duplex=False)
    >>> copy = pickle.loads(pickle.dumps(writer))
    >>> copy.send("through a copy"); reader.recv()
    'through a copy'
"""

from __future__ import annotations

import copyreg
import sys
from multiprocessing import connection

__all__: list[str] = []

if sys.platform != "win32":
    copyreg.pickle(connection.Connection, connection.reduce_connection)  # type: ignore[attr-defined]
