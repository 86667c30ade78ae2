"""faust-streaming apps the interop test runs as real worker processes."""
