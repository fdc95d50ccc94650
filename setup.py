"""Build of the one compiled module (everything else is in pyproject.toml).

``xtremehub.connectors.codecs._bytescan`` finds byte positions with ``memchr``. It is
optional: without a C compiler the install goes on and ``byte_positions`` uses NumPy
(``make test`` installs a compiler and checks that the module is built).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "xtremehub.connectors.codecs._bytescan",
            ["src/xtremehub/connectors/codecs/_bytescan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
