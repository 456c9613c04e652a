"""The errors of the outside world, as adapters and their callers import them: the `AdapterError` family
(retryable or not, one subclass per meaning). Defined in `workflows.domain.adapter_errors`, because the pure log
store port names two of them; this module is where the adapters' side of the code finds them."""

from __future__ import annotations

from workflows.domain.adapter_errors import (
    AdapterError,
    AuthRefused,
    InvalidRequest,
    ResourceNotFound,
    ServiceUnavailable,
)

__all__ = ["AdapterError", "AuthRefused", "InvalidRequest", "ResourceNotFound", "ServiceUnavailable"]
