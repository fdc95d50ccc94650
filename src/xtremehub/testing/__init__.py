"""Conformance suites and real test servers, shipped with the package so that
every backend (ours or a third party's) runs the same tests.

- :mod:`xtremehub.testing.storage`: ``StoreTests``, subclass it per store.
- :mod:`xtremehub.testing.executor`: ``ExecutorTests``, subclass it per compute backend.
- :mod:`xtremehub.testing.seaweedfs`: a real S3 server on free loopback ports.
- :mod:`xtremehub.testing.tcprelay`: a loopback TCP relay in front of a real server that fault
  tests subclass to cut or hold back its traffic.
"""
