"""examples/deploy/'s settings as the real otel-launch reads them: each container's environment and
command line (the image's ENTRYPOINT, then compose's ``command`` or Kubernetes' ``args``) passes its
validation and reaches the program; the exporter headers from the Secret stay masked.

The programs (gunicorn, celery, python) are stand-ins on PATH that print what they received:
the launcher's checks run before it execs whatever the command names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_files import SHOP_SERVICES, by_kind, compose, containers
from tests.helpers import clean_env, launcher, run

pytestmark = [pytest.mark.process, pytest.mark.once]
pytest.importorskip("yaml", reason="PyYAML is not installed (the test extra has it: pip install '.[test]')")
STAND_IN = '#!/bin/sh\nprintf "%s\\n" "$0 $*" "service=$OTEL_SERVICE_NAME" "resource=$OTEL_RESOURCE_ATTRIBUTES"\n'


@pytest.fixture
def programs(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("gunicorn", "celery", "python"):
        (folder / name).write_text(STAND_IN)
        (folder / name).chmod(0o755)
    return folder


def kubernetes_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom, then env with $(VAR) expanded."""
    config_maps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    fields = {"metadata.name": "shop-web-7d9f8-abcde", "metadata.namespace": "shop"}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(
                r"\$\((\w+)\)", lambda match: env.get(match.group(1), match.group(0)), item["value"]
            )
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def launch(command: list[str], env: dict[str, str], programs: Path, workdir: Path):
    path = f"{programs}{os.pathsep}{os.environ.get('PATH', '')}"
    return run([*launcher(), *command], clean_env(**env, PATH=path), workdir, timeout=60)


@pytest.mark.parametrize("name", SHOP_SERVICES)
def test_each_compose_service_launches_its_command(name: str, programs: Path, workdir: Path):
    service = compose()["services"][name]
    result = launch(service["command"], service["environment"], programs, workdir)
    assert result.returncode == 0, result.stderr
    program, service_name, _ = result.stdout.splitlines()
    assert program.startswith(str(programs / service["command"][2])), program
    assert service_name == f"service=shop-{name}"
    assert not result.stderr  # no warning about any of the settings


@pytest.mark.parametrize("name", ["shop-web", "shop-worker", "shop-migrate"])
def test_each_kubernetes_container_launches_its_args(name: str, programs: Path, workdir: Path):
    container = containers()[name]
    env = kubernetes_env(container)
    result = launch(container["args"], env, programs, workdir)
    assert result.returncode == 0, result.stderr
    program, service_name, resource = result.stdout.splitlines()
    assert program.startswith(str(programs / container["args"][0])), program
    assert service_name == f"service={name}"
    if name != "shop-migrate":
        assert f"k8s.deployment.name={name}" in resource and "k8s.pod.name=shop-web-7d9f8-abcde" in resource
    assert not result.stderr


def test_print_config_masks_the_headers_from_the_secret(programs: Path, workdir: Path):
    env = kubernetes_env(containers()["shop-web"])
    token = env["OTEL_EXPORTER_OTLP_HEADERS"].partition("%20")[2]
    result = launch(["--print-config"], env, programs, workdir)
    assert result.returncode == 0, result.stderr
    assert "OTEL_EXPORTER_OTLP_HEADERS" in result.stdout and "parentbased_traceidratio" in result.stdout
    assert token and token not in result.stdout + result.stderr
