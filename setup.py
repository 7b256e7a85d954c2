"""The native nonce search (chain/adapters/_noncesearch.c), built by ``pip install`` (scripts/setup.sh).

Everything else about the package is in pyproject.toml.  The extension is optional: where it cannot
be built (no C compiler, no Python headers) the install still succeeds and the hashing core runs its
pure-Python backend (chain/adapters/nonce_search.py says which backend runs, and why).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "chain.adapters._noncesearch",
            sources=["chain/adapters/_noncesearch.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
