"""Other stream processors on this project's topics (pipeline.interop.faust)."""
