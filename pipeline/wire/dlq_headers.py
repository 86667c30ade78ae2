"""The headers a dead letter carries: written by the runtime, read by every DLQ tool.

Named once here so that the writer (pipeline.runtime.dead_letters) and the
readers (`pipeline dlq`, the redrive, `TestPipeline.dead_letters`, the chaos
verdict) cannot drift apart by a typo in a string.
"""

from __future__ import annotations

PREFIX = "dlq-"
ERROR_TYPE = "dlq-error-type"
ERROR_MESSAGE = "dlq-error-message"
TRACEBACK = "dlq-traceback"
SOURCE_TOPIC = "dlq-source-topic"
SOURCE_PARTITION = "dlq-source-partition"
SOURCE_OFFSET = "dlq-source-offset"
SOURCE_TIMESTAMP = "dlq-source-timestamp"
GROUP = "dlq-group"
PROCESSOR = "dlq-processor"
ATTEMPTS = "dlq-attempts"
FIRST_FAILURE_AT = "dlq-first-failure-at"
VALUE_OMITTED = "dlq-value-omitted"
VALUE_SHA256 = "dlq-value-sha256"
HEADERS_OMITTED = "dlq-headers-omitted"
KEY_OMITTED = "dlq-key-omitted"
