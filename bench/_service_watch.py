"""A Service's selector as the API server streams it, one line per watch event: `<wall-clock seconds> <release>`.

Run as a process of its own by bench/rollback.py, so that what it observes is not delayed by the platform's event
loop (the bench runs the server and the worker in its own process; a watcher polling there saw the switch tens of
milliseconds after the patch had landed).

Run: python bench/_service_watch.py KUBECONFIG NAMESPACE SERVICE
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from kubernetes_asyncio import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflows.domain.labels import LABEL_RELEASE


async def main(kubeconfig: str, namespace: str, name: str) -> None:
    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api:
        core = client.CoreV1Api(api)
        w = watch.Watch()
        async for event in w.stream(core.list_namespaced_service, namespace, field_selector=f"metadata.name={name}",
                                    timeout_seconds=3600):
            at = time.time()
            selector = event["object"].spec.selector or {}
            print(f"{at:.6f} {selector.get(LABEL_RELEASE, '-')}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
