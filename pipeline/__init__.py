"""The runtime library of the event pipeline; docs/design.md has its shape and promises."""

__version__ = "0.1.0"
