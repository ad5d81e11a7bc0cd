"""examples/deploy/ read as the tools that deploy it would: the Compose file, the Kubernetes manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "examples" / "deploy"
K8S = DEPLOY / "k8s"
SHOP_SERVICES = ("migrate", "web", "worker", "beat")


def load_all(path: Path) -> list[dict[str, Any]]:
    import yaml  # the test extra's; the test modules skip without it

    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose() -> dict[str, Any]:
    (loaded,) = load_all(DEPLOY / "docker-compose.yml")
    return loaded


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in load_all(path)]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def containers() -> dict[str, dict[str, Any]]:
    """Each Deployment's and Job's one container, by the object's name."""
    found = {}
    for kind in ("Deployment", "Job"):
        for name, doc in by_kind(kind).items():
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            found[name] = container
    return found
