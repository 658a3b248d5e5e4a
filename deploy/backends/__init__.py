"""Backends as small runner classes with one interface (in the manner of Polygraphy's runners).

A runner is a context manager; inside it, ``infer(feed)`` maps input names to NumPy arrays and returns
the outputs by name. Heavy libraries are imported when a runner is activated, not when this package is.
"""

from attnx.deploy.backends.base import Runner, TensorSpec

__all__ = ["Runner", "TensorSpec"]
