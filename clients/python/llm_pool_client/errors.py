"""The pool's errors as Python exceptions, one class per error class of the pool.

Every failed call raises a subclass of :class:`LlmPoolError`, which carries the gRPC code,
the pool's message, the Decision when the pool made one (no consensus, invalid answers,
unavailable, deadline) and, for rate limits and overload, how long to wait.
"""

from __future__ import annotations

from typing import Optional

import grpc
from google.rpc import error_details_pb2, status_pb2

from llmpool.v1 import llmpool_pb2 as pb

DECISION_TYPE_URL = "type.googleapis.com/llmpool.v1.Decision"


class LlmPoolError(Exception):
    """A call the pool answered with an error, or could not be made."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        decision: Optional[pb.Decision] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        #: The Decision with every candidate, when the pool made one before failing.
        self.decision = decision
        #: Seconds to wait before trying again (rate limited, overloaded).
        self.retry_after = retry_after


class InvalidArgument(LlmPoolError):
    """The request is wrong (a field, a size, a strategy the task does not allow)."""


class NotFound(LlmPoolError):
    """No such task, provider or request id."""


class Unauthenticated(LlmPoolError):
    """Missing or wrong credentials."""


class PermissionDenied(LlmPoolError):
    """The tenant may not use this task, provider or priority."""


class RateLimited(LlmPoolError):
    """Rate limited or overloaded: wait :attr:`retry_after` seconds."""


class Unavailable(LlmPoolError):
    """No provider could answer, or the pool cannot be reached."""


class DeadlineExceeded(LlmPoolError):
    """The deadline passed before an answer was ready."""


class NoConsensus(LlmPoolError):
    """The ensemble did not agree (or was not confident enough) and said so."""


class InvalidAnswer(LlmPoolError):
    """Every answer failed the task's output checks (labels, JSON schema, tools)."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.ABORTED: NoConsensus,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidAnswer,
}


def from_rpc_error(code: grpc.StatusCode, details: str, trailing) -> LlmPoolError:
    """The exception for a failed call, from its code, message and trailing metadata."""
    decision = None
    retry_after = None
    for key, value in trailing or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for any_ in status.details:
                if any_.type_url == DECISION_TYPE_URL:
                    decision = pb.Decision.FromString(any_.value)
                elif any_.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    any_.Unpack(info)
                    retry_after = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
        elif key == "retry-after" and retry_after is None:
            try:
                retry_after = float(value)
            except ValueError:
                pass
    cls = _BY_CODE.get(code, LlmPoolError)
    return cls(code, details or "", decision, retry_after)
