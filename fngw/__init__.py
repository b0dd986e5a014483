"""fngw: a function gateway for Jupyter kernels."""

from fngw.lazy_imports import defer_iri_grammar

__version__ = "0.1.0"

# Before anything imports jsonschema: a worker's start must not pay for a grammar few schemas use.
defer_iri_grammar()
