"""Engines for the backend tests.

The Ray, Dask and Lithops engines (``ray_engine``, ``dask_client``, ``lithops_config``) live in
tests/conftest.py, shared with the pipeline, state and security tests.
"""
