"""A typed client of llm-pool over gRPC (``llmpool.v1.LlmPool``).

``Client`` blocks, ``AsyncClient`` is for asyncio; both take a deadline per call and send
the caller's credentials (API key, JWT, or an HMAC signature made per call), over TLS when
asked. The messages are the generated ones (``llmpool.v1.llmpool_pb2``, re-exported as
``pb``); failures raise :class:`LlmPoolError` subclasses by error class.
"""

from llmpool.v1 import llmpool_pb2 as pb
from llmpool.v1 import llmpool_pb2_grpc as pb_grpc

from ._client import AsyncClient, Client, query_request, sign
from .errors import (
    DeadlineExceeded,
    InvalidAnswer,
    InvalidArgument,
    LlmPoolError,
    NoConsensus,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AsyncClient",
    "Client",
    "DeadlineExceeded",
    "InvalidAnswer",
    "InvalidArgument",
    "LlmPoolError",
    "NoConsensus",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
    "pb",
    "pb_grpc",
    "query_request",
    "sign",
]
