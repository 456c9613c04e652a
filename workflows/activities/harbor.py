"""The registry side of a deploy, when the operator configures Harbor: the tenant's Harbor project (named after
the tenant, as the images `<registry>/<tenant>/<app>` are), its robot account and retention rule, and the
project namespace's pull Secret (`kubernetes.io/dockerconfigjson`) holding the robot's credentials for the
registry host, which the release's pods list in `imagePullSecrets`.

Harbor shows a robot's secret only when it creates (or refreshes) it, so the secret is sealed with the
SecretBox into Postgres (`harbor_robots`) and reused by later deploys. When the stored one is lost (no row, a
row the secrets key no longer opens) or the robot is gone from Harbor, `HarborClient.ensure_robot` creates the
robot or refreshes its secret, and the new one is stored. Ensuring is serialised per tenant (`RobotStore`):
two deploys refreshing one robot at once would leave one of them with a dead secret.

The secret lives only inside this activity: the workflow passes names, the activity returns object refs,
errors carry Harbor's messages (which never hold a secret, see the adapter), and nothing here logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.activities.kube_call import kube_call
from workflows.activities.stores import RobotStore
from workflows.adapters.harbor import HarborAuthError, HarborClient, HarborError
from workflows.adapters.kube import Kube, ref
from workflows.domain.credentials import RobotCredentials
from workflows.domain.deploy_contract import EnsurePullSecret
from workflows.domain.secretbox import SecretBox, SecretBoxError
from workflows.render.namespace import project_labels
from workflows.render.pull_secret import imagepull_secret

CREDENTIAL_SETTINGS = "harbor_username and harbor_password (DEPLOY_MCP_HARBOR_USERNAME, DEPLOY_MCP_HARBOR_PASSWORD)"


def harbor_project(tenant: str) -> str:
    """The tenant's Harbor project: built images are `<registry>/<tenant>/<app>`."""
    return tenant


def harbor_failure(e: HarborError) -> ApplicationError:
    """A Harbor failure as the activity error the workflow records: unreachable or overloaded Harbor is
    retried; refused credentials are not, and the message names the settings to fix."""
    if isinstance(e, HarborAuthError):
        return ApplicationError(
            f"{e}. Fix the settings {CREDENTIAL_SETTINGS}: the account must be a Harbor administrator (or a "
            "system robot) allowed to create projects, project robots and retention policies",
            type="HarborAuth", non_retryable=True,
        )
    if e.retryable:
        return ApplicationError(str(e), type="HarborUnavailable")
    return ApplicationError(str(e), type="HarborError", non_retryable=True)


class HarborActivities:
    """Bound to the worker's Kubernetes client, store, secrets key and (when configured) Harbor client."""

    def __init__(self, kube: Kube, store: RobotStore, secretbox: SecretBox, harbor: HarborClient | None,
                 registry_host: str, retention_keep_last: int = 10) -> None:
        self.kube = kube
        self.store = store
        self.secretbox = secretbox
        self.harbor = harbor
        self.registry_host = registry_host
        self.retention_keep_last = retention_keep_last

    @activity.defn
    async def ensure_pull_secret(self, inp: EnsurePullSecret) -> list[str]:
        """The tenant's Harbor project, robot and retention rule, then the namespace's pull Secret for the
        registry host with the robot's credentials (server-side apply: unchanged data is a no-op)."""
        robot = await self.robot_credentials(inp.tenant)
        secret = imagepull_secret(self.registry_host, robot, name=inp.secret, namespace=inp.namespace,
                                  labels=project_labels(inp.tenant, inp.project))
        await kube_call(lambda: self.kube.apply(secret))
        return [ref(secret)]

    async def robot_credentials(self, tenant: str) -> RobotCredentials:
        if self.harbor is None:
            raise ApplicationError(
                "This deploy asks for a registry pull secret, but the worker has no Harbor configured: set "
                f"harbor_url, {CREDENTIAL_SETTINGS} for the worker as for the server",
                type="HarborNotConfigured", non_retryable=True,
            )
        try:
            return await self._robot(self.harbor, tenant)
        except HarborError as e:
            raise harbor_failure(e) from None

    async def _robot(self, harbor: HarborClient, tenant: str) -> RobotCredentials:
        project = harbor_project(tenant)
        async with self.store.robot_slot(tenant, harbor.url) as slot:
            await harbor.ensure_project(project)
            await harbor.set_retention(project, self.retention_keep_last)
            stored = await slot.get()
            if stored is not None:
                name, ciphertext = stored
                secret = self._open(ciphertext)
                if secret and await harbor.find_robot(project) == name:
                    return RobotCredentials(name, secret)
            robot = await harbor.ensure_robot(project)  # created, or its secret refreshed: store it now
            await slot.put(project, robot.name, self.secretbox.seal({"secret": robot.secret}))
            return robot

    def _open(self, ciphertext: bytes) -> str | None:
        try:
            return self.secretbox.open(ciphertext).get("secret") or None
        except SecretBoxError:
            return None  # sealed with another secrets key: as good as lost, so the robot is refreshed

    def all(self) -> list[Callable[..., Any]]:
        return [self.ensure_pull_secret]
