"""nextbest: the next best action for every customer."""

__version__ = "0.1.0"
