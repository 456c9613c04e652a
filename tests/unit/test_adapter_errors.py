"""The outside world's one error family (workflows.adapters.errors): every adapter's error is an AdapterError,
each meaning (auth refused, not found, unavailable, invalid request) is catchable across services, and
`retryable` is what each class said before the family existed."""

from __future__ import annotations

import pytest

from workflows.adapters.buildah import BuilderMissing, BuildError, BuildFailed, BuildTimeout, PushFailed
from workflows.adapters.errors import AdapterError, AuthRefused, InvalidRequest, ResourceNotFound, ServiceUnavailable
from workflows.adapters.git import (
    GitAuthError,
    GitError,
    GitHostUnresolvable,
    GitTimeout,
    GitUnavailable,
    HostNotAllowed,
    RefNotFound,
    RepoNotFound,
)
from workflows.adapters.github_app import (
    GitHubAppAuthError,
    GitHubAppError,
    GitHubAppNotForTenant,
    GitHubAppNotInstalled,
    GitHubUnavailable,
)
from workflows.adapters.harbor import HarborAuthError, HarborError, HarborNotFound, HarborUnavailable
from workflows.adapters.kube import KubeError
from workflows.adapters.registry import ImageNotFound, RegistryAuthError, RegistryError, RegistryUnavailable
from workflows.domain.k8s_errors import classify_status
from workflows.domain.log_paging import LogQueryError, LogStoreUnavailable

MEANINGS: list[tuple[type[AdapterError], type[AdapterError] | None, bool]] = [
    (RegistryError, None, False), (ImageNotFound, ResourceNotFound, False), (RegistryAuthError, AuthRefused, False),
    (RegistryUnavailable, ServiceUnavailable, True),
    (HarborError, None, False), (HarborAuthError, AuthRefused, False), (HarborNotFound, ResourceNotFound, False),
    (HarborUnavailable, ServiceUnavailable, True),
    (GitError, None, False), (HostNotAllowed, InvalidRequest, False), (GitHostUnresolvable, ResourceNotFound, False),
    (GitUnavailable, ServiceUnavailable, True), (GitTimeout, ServiceUnavailable, True),
    (GitAuthError, AuthRefused, False), (RepoNotFound, ResourceNotFound, False), (RefNotFound, ResourceNotFound, False),
    (GitHubAppError, None, False), (GitHubAppNotInstalled, ResourceNotFound, False),
    (GitHubAppNotForTenant, AuthRefused, False), (GitHubAppAuthError, AuthRefused, False),
    (GitHubUnavailable, ServiceUnavailable, True),
    (BuildError, None, False), (BuilderMissing, None, False), (BuildFailed, None, False), (BuildTimeout, None, False),
    (LogStoreUnavailable, ServiceUnavailable, True), (LogQueryError, InvalidRequest, False),
]


@pytest.mark.parametrize(("cls", "meaning", "retryable"), MEANINGS, ids=[c.__name__ for c, _, _ in MEANINGS])
def test_every_adapter_error_is_one_family(cls: type[AdapterError], meaning: type[AdapterError] | None,
                                           retryable: bool) -> None:
    error = cls("the message")
    assert isinstance(error, AdapterError) and str(error) == "the message"
    assert error.retryable is retryable
    others = {AuthRefused, ResourceNotFound, ServiceUnavailable, InvalidRequest} - {meaning}
    assert (meaning is None or isinstance(error, meaning)) and not any(isinstance(error, m) for m in others)


def test_adapter_specific_fields_survive() -> None:
    assert RegistryAuthError("no", registry="r.example", status=401).status == 401
    assert HarborUnavailable("down", status=503, code="X").code == "X"
    assert RefNotFound("gone", url="https://g/x.git", ref="v1", branches=["main"]).branches == ["main"]
    assert GitHubUnavailable("later", status=502).status == 502
    push = PushFailed("denied", retryable=False)
    assert isinstance(push, AdapterError) and not push.retryable and PushFailed("flaky").retryable


def test_kube_errors_are_retryable_as_classified() -> None:
    conflict = KubeError(classify_status(409, "changed"), "apply Deployment/ns/web")
    invalid = KubeError(classify_status(422, "bad"), "apply Deployment/ns/web")
    assert isinstance(conflict, AdapterError) and conflict.retryable and not invalid.retryable
    assert str(conflict) == "apply Deployment/ns/web: changed"


def test_a_403_right_after_the_api_server_was_unreachable_is_retryable() -> None:
    """A restarting API server refuses everyone until its RBAC caches fill: that 403 is retried; any other
    403 still fails at once."""
    from workflows.adapters import kube as kube_mod

    k = kube_mod.Kube(object())  # type: ignore[arg-type]
    assert not k._classify(403, "forbidden").retryable
    assert k._classify(None, "connection refused").type == "K8sUnreachable"
    warm = k._classify(403, "forbidden")
    assert warm.retryable and warm.type == "K8sForbidden" and "retried" in warm.message
    k._unreachable_at -= kube_mod.UNREACHABLE_WINDOW + 1
    assert not k._classify(403, "forbidden").retryable
