"""The gateway's OpenAPI document against what it does, by a contract fuzzer (issue 48)."""
