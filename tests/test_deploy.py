"""The deploy files validate offline: the Compose file with `docker-compose config` (Debian
`docker-compose`, installed by .ci/run), the Helm chart's values against its schema, and
`helm template` when `helm` is installed (it is in neither Debian nor PyPI, so usually not)."""

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CHART = DEPLOY / "helm" / "edge"
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


def test_chart_templates_open_and_close_their_blocks():
    for path in (CHART / "templates").iterdir():
        text = path.read_text()
        assert text.count("{{") == text.count("}}"), path.name
        opened = len(re.findall(r"{{-?\s*(if|range|with|define)\b", text))
        closed = len(re.findall(r"{{-?\s*end\b", text))
        assert opened == closed, path.name


@pytest.mark.skipif(
    not shutil.which("helm"),
    reason="helm is not installed: it is in neither Debian nor PyPI, so the test bootstrap "
    "cannot install it; values and template structure are checked above instead",
)
def test_helm_template_renders_valid_manifests(tmp_path):
    args = ["--set", "nats.enabled=false", "--set", "minio.enabled=false"]
    for values in ([], ["--set", "receiver.tls.enabled=true", "--set", "receiver.tls.secretName=t",
                        "--set", "receiver.echoProbe.aeTitle=PROBE"]):  # fmt: skip
        out = subprocess.run(
            ["helm", "template", "edge", str(CHART), *args, *values],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"} <= kinds
        if shutil.which("kubeconform"):
            check = subprocess.run(["kubeconform", "-strict", "-summary"], input=out.stdout,
                                   capture_output=True, text=True)  # fmt: skip
            assert check.returncode == 0, check.stdout + check.stderr
