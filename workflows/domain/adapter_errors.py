"""The one error family of the outside world: `AdapterError`, with `retryable` saying whether the same call may
succeed later, and a subclass per meaning (credentials refused, nothing there, service unavailable, request
refused as invalid).

Every adapter's own errors (KubeError, RegistryError, HarborError, GitError, GitHubAppError, BuildError) derive
from `AdapterError` and, where they have one, from the meaning too (`RegistryAuthError` is an `AuthRefused`), so a
caller can catch one family, or one meaning across services, instead of six lists of classes.

It sits in `domain`, not in `adapters`, because a pure module names errors of the family too: the log store
port (`workflows.domain.log_paging`) declares `LogStoreUnavailable` and `LogQueryError`, which both the Loki and
the Kubernetes log adapters raise, and domain may not import adapters. `workflows.adapters.errors` re-exports
these names; adapters and their callers import them from there.
"""

from __future__ import annotations


class AdapterError(Exception):
    """A call to something outside the platform failed. `retryable`: whether the same call may succeed later
    (the activities turn it into a retryable or a non-retryable Temporal failure, the tools into "try again" or
    an error the agent must act on)."""

    retryable: bool = False


class AuthRefused(AdapterError):
    """The service wants credentials, or refused the ones given (HTTP 401/403 after authenticating)."""


class ResourceNotFound(AdapterError):
    """The service has no such thing (repository, image, project, ref), or hides it from these credentials."""


class ServiceUnavailable(AdapterError):
    """The service could not answer now: unreachable, timed out, 5xx or rate-limited. Trying later may help."""

    retryable = True


class InvalidRequest(AdapterError):
    """The service refused the request itself (a bad query, a host not allowed); the same request fails again."""
