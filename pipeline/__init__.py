"""The runtime library of the event pipeline; see DESIGN.md for the shape."""

__version__ = "0.1.0"
