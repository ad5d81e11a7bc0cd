"""examples/deploy/ checked without a Docker engine or a cluster: the YAML parses, the Compose file
validates against the compose-spec schema (check-jsonschema's copy), the Kubernetes manifests
against the Kubernetes schemas (kubernetes-validate's, strict: no unknown fields), and what
neither schema sees is checked by hand: the collector's pipelines name components it defines,
references between files and objects resolve, the Dockerfile copies files that exist and runs
its command under otel-launch.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_files import DEPLOY, SHOP_SERVICES, by_kind, compose, containers, manifests
from tests.helpers import PYTHON, clean_env, run

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (the test extra has it: pip install '.[test]')")
ROOT = Path(__file__).resolve().parents[2]


# -- Compose ----------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema():
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is not installed (the test extra has it)")
    args = [PYTHON, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    result = run([*args, str(DEPLOY / "docker-compose.yml")], clean_env(), DEPLOY, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_the_shop_services_redis_collector_and_jaeger():
    services = compose()["services"]
    assert set(services) == {*SHOP_SERVICES, "redis", "otel-collector", "jaeger"}
    commands = {name: services[name]["command"] for name in SHOP_SERVICES}
    assert commands["web"][2] == "gunicorn"
    assert commands["worker"][2:6] == ["celery", "-A", "shop", "worker"] and "prefork" in commands["worker"]
    assert commands["beat"][2:6] == ["celery", "-A", "shop", "beat"]
    for name, command in commands.items():  # launcher options first: the image's ENTRYPOINT is otel-launch
        assert command[:2] == ["--service-name", f"shop-{name}"]


def test_compose_references_resolve():
    spec = compose()
    services = spec["services"]
    for name, service in services.items():
        for needed in service.get("depends_on", []):
            assert needed in services, f"{name} depends on {needed}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts {source}"
            else:
                assert source in spec["volumes"], f"{name} mounts the volume {source}"
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    env = services["web"]["environment"]
    host, port = env["OTEL_EXPORTER_OTLP_ENDPOINT"].removeprefix("http://").split(":")
    assert host in services and port == collector()["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].split(":")[1]
    assert all(url.startswith("redis://redis:") for url in (env["SHOP_BROKER_URL"], env["SHOP_CACHE_URL"]))
    assert services["migrate"]["command"][2:5] == ["python", "manage.py", "migrate"]
    assert services["web"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


# -- Collector --------------------------------------------------------------------------------


def collector() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())


def test_collector_pipelines_use_components_it_defines_and_reach_jaeger():
    config = collector()
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        for section, names in used.items():
            for component in pipeline.get(section, []):
                assert component in config[section], f"pipeline {name}: {section} {component} is not defined"
                names.add(component)
    for section, names in used.items():
        assert names == set(config[section]), f"{section} defined but in no pipeline: {set(config[section]) - names}"
    assert pipelines["traces"]["processors"][0] == "memory_limiter"  # the collector's advice: first
    jaeger = [name for name in pipelines["traces"]["exporters"] if name.split("/")[0] == "otlp_grpc"]
    assert [config["exporters"][name]["endpoint"] for name in jaeger] == ["jaeger:4317"]
    assert "debug" in pipelines["traces"]["exporters"]
    for protocol in config["receivers"]["otlp"]["protocols"].values():  # reachable from the other containers
        assert protocol["endpoint"].startswith("0.0.0.0:")


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_copies_what_exists_and_runs_its_command_under_otel_launch():
    instructions = dockerfile()
    copies = [shlex.split(arguments) for name, arguments in instructions if name == "COPY"]
    assert copies
    for words in copies:
        sources = [word for word in words if not word.startswith("--")][:-1]
        for source in sources:  # the build context is the repository's root
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    last = {name: arguments for name, arguments in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["otel-launch"]
    cmd = json.loads(last["CMD"])
    assert cmd[:2] == ["gunicorn", "shop.wsgi"] and "0.0.0.0:8000" in cmd
    assert json.loads(last["CMD"]) == compose()["services"]["web"]["command"][2:]
    assert last["USER"] != "root"
    installs = [arguments for name, arguments in instructions if name == "RUN" and "pip install" in arguments]
    assert installs and '".[demo]"' in installs[0]  # otel-launch in the app's own environment


# -- Kubernetes -------------------------------------------------------------------------------


def test_manifests_match_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (the test extra has it)"
    )
    import jsonschema  # kubernetes-validate's own dependency

    version = kubernetes_validate.latest_version()
    docs = manifests()
    assert {doc["kind"] for doc in docs} == {"ConfigMap", "Secret", "Deployment", "Service", "Job"}
    failures = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except jsonschema.ValidationError as error:  # what kubernetes-validate raises, and its own subclass
            where = ".".join(str(part) for part in error.path)
            failures.append(f"{doc['kind']} {doc['metadata']['name']} at {where}: {error.message}")
    assert not failures, "\n".join(failures)


def test_web_and_worker_read_otel_settings_from_a_configmap_and_headers_from_a_secret():
    config_maps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    assert set(by_kind("Deployment")) == {"shop-web", "shop-worker"}
    assert all(name.startswith("OTEL_") for name in config_maps["shop-otel"]["data"])
    for name, container in containers().items():
        refs = [source["configMapRef"]["name"] for source in container["envFrom"]]
        assert "shop-otel" in refs and all(ref in config_maps for ref in refs), name
        env = {item["name"]: item for item in container["env"]}
        assert env["OTEL_SERVICE_NAME"]["value"] == name
        headers = env["OTEL_EXPORTER_OTLP_HEADERS"]
        assert "value" not in headers, f"{name}: the headers are a secret, never a literal"
        ref = headers["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"], name
        for item in env.values():
            secret = item.get("valueFrom", {}).get("secretKeyRef")
            if secret:
                assert secret["key"] in secrets[secret["name"]]["stringData"], name
        literal = {item["name"] for item in container["env"] if "value" in item and item["name"].startswith("OTEL_")}
        assert literal <= {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}, f"{name}: shared OTEL_* go in shop-otel"


def test_the_service_reaches_the_web_pods():
    service = by_kind("Service")["shop-web"]
    web = by_kind("Deployment")["shop-web"]
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert web["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {port["name"]: port["containerPort"] for port in containers()["shop-web"]["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)
    assert containers()["shop-web"]["readinessProbe"]["httpGet"]["path"] == "/health/"


def test_containers_run_the_image_entrypoint_with_their_command_as_args():
    """``command`` would replace the image's ENTRYPOINT (otel-launch); ``args`` replaces only CMD."""
    for name, container in containers().items():
        assert "command" not in container and container["args"], name
    assert containers()["shop-worker"]["args"][:4] == ["celery", "-A", "shop", "worker"]
