"""The deploy files validate offline: the Compose file with `docker-compose config` (Debian
`docker-compose`, installed by .ci/run), the Helm chart's values against its schema, and
the chart rendered by Helm's SDK with every manifest checked against Kubernetes' schemas."""

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CHART = DEPLOY / "helm" / "edge"
KUBERNETES = "1.30"
SECRETS = {
    "EDGE_S3_ACCESS_KEY": "edge",
    "EDGE_S3_SECRET_KEY": "secret-secret",
    "POSTGRES_PASSWORD": "pw",
    "EDGE_API_TOKEN": "staff:token",
    "EDGE_SITE_KEY": "key",
}


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    pytest.skip(
        "neither docker-compose nor docker compose is installed (apt-get install docker-compose)"
    )


def compose_config(env: dict[str, str]) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.Popen(
        [*compose_command(), "-f", str(DEPLOY / "compose.yaml"), "config"],
        env=base | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_compose_file_validates_and_needs_every_secret():
    runs = [compose_config(SECRETS), compose_config({})]  # side by side: seconds each
    (out, err), (_, err_without) = [run.communicate(timeout=120) for run in runs]
    assert runs[0].returncode == 0, err
    # A forgotten secret stops `up`; none has a default password.
    assert runs[1].returncode != 0 and "Missing mandatory value" in err_without, err_without
    text = (DEPLOY / "compose.yaml").read_text()
    for name in SECRETS:
        assert f"${{{name}:?" in text and f"${{{name}:-" not in text, name
    services = yaml.safe_load(out)["services"]
    assert {f"nats-{i}" for i in (1, 2, 3)} <= set(services)
    for i in (1, 2, 3):  # one cluster: every node routes to every node
        args = " ".join(services[f"nats-{i}"]["command"])
        assert "-js" in args and all(f"nats://nats-{j}:6222" in args for j in (1, 2, 3))
    receivers = sorted(s for s in services if s.startswith("receiver-"))
    uploaders = sorted(s for s in services if s.startswith("uploader-"))
    assert len(receivers) == 2 and len(uploaders) == 2
    haproxy = (DEPLOY / "compose" / "haproxy.cfg").read_text()
    assert all(re.search(rf"server {r} {r}:11112", haproxy) for r in receivers)
    assert services["dicom"]["ports"], "one DICOM port in front of the receivers"
    for name in ["minio", "postgres", "registry", "monitor", "dicom", *receivers, "nats-1"]:
        assert "healthcheck" in services[name], name
    env = services["receiver-1"]["environment"]
    assert env["EDGE_NATS_URL"].count("nats://") == 3
    assert env["EDGE_DATABASE_URL"].startswith("postgresql://")


def test_image_runs_as_non_root_from_the_lockfile():
    recipe = (DEPLOY / "Dockerfile").read_text()
    assert "uv sync --frozen" in recipe and "uv.lock" in recipe
    user = re.findall(r"^USER\s+(\S+)", recipe, re.M)
    assert user and not user[-1].startswith(("0", "root"))


def chart_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def validate(values: dict) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(values, schema)


def test_chart_values_match_their_schema():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert {d["name"] for d in chart["dependencies"]} == {"nats", "minio"}
    values = chart_values()
    validate(values)
    assert values["nats"]["config"]["cluster"]["replicas"] == 3
    assert values["receiver"]["replicas"] >= 2 and values["uploader"]["replicas"] >= 2

    broken = copy.deepcopy(values)
    broken["receiver"]["tls"]["enabled"] = True  # TLS without its Secret
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = copy.deepcopy(values)
    broken["uploader"]["replicas"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def render(**overrides: object) -> list[dict]:
    """`helm template`, offline, through Helm's own Go SDK (helm-python-sdk); the `helm`
    binary is in neither Debian nor PyPI."""
    chart = helm.Chart.load(CHART)
    values = chart.merge_values(overrides)
    chart.validate_schema(values)
    manifests = chart.render(values, name="edge", namespace="edge", is_install=True)
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("tls", [False, True])
def test_helm_chart_renders_manifests_valid_for_kubernetes(tls):
    overrides: dict = {"nats": {"enabled": False}, "minio": {"enabled": False}}
    if tls:
        overrides["receiver"] = {"tls": {"enabled": True, "secretName": "edge-dicom-tls"}}
    docs = render(**overrides)
    for doc in docs:  # kubeconform's check, with the schemas kubernetes-validate carries
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {k for k, _ in kinds} >= {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container.get("resources"), name
            # The uploader serves no port: it is restarted when it exits.
            assert container.get("readinessProbe") or "uploader" in name, name
    receiver = next(d for n, d in deployments.items() if "receiver" in n)
    mounted = json.dumps(receiver["spec"]["template"]["spec"].get("volumes", []))
    assert ("edge-dicom-tls" in mounted) is tls
    assert set(deployments) == {
        f"edge-{s}" for s in ("receiver", "uploader", "registry", "monitor")
    }


def test_helm_chart_refuses_tls_without_its_secret():
    with pytest.raises(helm.HelmError):
        render(receiver={"tls": {"enabled": True}})


def test_kubernetes_validation_can_fail():
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
             "spec": {"replicas": "two"}}, KUBERNETES, strict=True,
        )  # fmt: skip
