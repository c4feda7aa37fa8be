"""Segment Tracking API messages: validation and normalization, free of I/O.

Entry points: :func:`parse_message`, :func:`parse_batch`, :func:`parse_record_value`.
"""

from services.ingest.tracking.errors import (
    BATCH_TOO_LARGE,
    INVALID_BATCH,
    INVALID_EVENT_PROPERTIES,
    INVALID_JSON,
    INVALID_MESSAGE,
    MESSAGE_TOO_LARGE,
    InvalidBody,
    Rejection,
)
from services.ingest.tracking.messages import BatchBody, Message
from services.ingest.tracking.normalize import correct_timestamp, normalize
from services.ingest.tracking.validate import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    BatchResult,
    RecordResult,
    parse_batch,
    parse_message,
    parse_record_value,
)

__all__ = [
    "BATCH_TOO_LARGE",
    "INVALID_BATCH",
    "INVALID_EVENT_PROPERTIES",
    "INVALID_JSON",
    "INVALID_MESSAGE",
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TOO_LARGE",
    "BatchBody",
    "BatchResult",
    "InvalidBody",
    "Message",
    "RecordResult",
    "Rejection",
    "correct_timestamp",
    "normalize",
    "parse_batch",
    "parse_message",
    "parse_record_value",
]
