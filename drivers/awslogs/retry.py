"""Which CloudWatch failures are worth retrying, and how long to wait.

Throttling, 5xx, network errors and expired or missing credentials are temporary: the batch is kept and
retried with exponential backoff and full jitter. DataAlreadyAccepted means CloudWatch has the batch.
Everything else (a missing group without awslogs-create-group, access denied, invalid parameters) will
not get better by retrying the same request: the batch is given up on, logged once with its size.
"""

from __future__ import annotations

import random

BASE_S = 0.2
CAP_S = 30.0

SUCCESS_CODES = frozenset({"DataAlreadyAcceptedException"})
TEMPORARY_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidSequenceTokenException",  # obsolete since 2023; a plain retry is right
    }
)


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(error).__name__


def is_temporary(error: BaseException) -> bool:
    code = error_code(error)
    if code in TEMPORARY_CODES:
        return True
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return bool(status) and status >= 500
    # botocore's connection errors, read timeouts and NoCredentialsError carry no response
    return True


def backoff_s(attempt: int) -> float:
    """Exponential backoff with full jitter (attempts count from 1)."""
    return random.uniform(0, min(CAP_S, BASE_S * 2 ** min(attempt, 20)))
