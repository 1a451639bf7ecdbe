"""deploy/ agrees with the code, and the configs it ships really run.

Static checks: every YAML under deploy/k8s and deploy/docker-compose.yml parses, and the
manifests agree with the llm-pool.toml they carry: container and Service ports equal
[server] grpc_addr / http_addr; probes hit /readyz and /health on the http port; the config
and prompts are ConfigMap DIRECTORY mounts (a subPath mount never sees ConfigMap updates, so
hot reload would silently break) with `--config` inside one and prompts_dir equal to the
other; the termination grace outlasts the drain; the HPA, PDB and Services select the
Deployment; the prompts ConfigMap holds prompts/ byte for byte. The Dockerfile agrees with
rust-toolchain.toml, the shipped config and the manifests.

Dynamic checks, with the real binary (LLM_POOL_BIN, default target/debug/llm-pool, relative
to the repository): `llm-pool check-config` passes on the ConfigMap's and the compose config;
`llm-pool serve` on the ConfigMap's config (listeners moved to free 127.0.0.1 ports,
prompts_dir to a copy of the prompts ConfigMap) answers the Deployment's probe paths with 200
and exits 0 on SIGTERM; and an update made the way the kubelet makes it (a new timestamped
folder, then an atomic rename of the `..data` symlink) is hot-reloaded.

Run: LLM_POOL_BIN=target/debug/llm-pool pytest -q tests/deploy   (needs PyYAML; Python 3.11+)
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import re
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
PROMPTS = ROOT / "prompts"
DOCKERFILE = ROOT / "Dockerfile"

# Hosts that, inside a container or pod, mean the container itself, never a model server.
LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}


# ---- loading ------------------------------------------------------------------------------


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml"))


@functools.cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, object) for every document in deploy/k8s, the Kustomization included."""
    out = []
    for f in k8s_files():
        for doc in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            if doc is not None:
                out.append((f.name, doc))
    return tuple(out)


def objects(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in k8s_docs() if d.get("kind") == kind]


def configmap(name: str) -> dict[str, str]:
    found = [d for d in objects("ConfigMap") if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one ConfigMap {name!r} in deploy/k8s, found {len(found)}"
    return found[0].get("data") or {}


def config_arg(args: list[str]) -> str | None:
    """The value of `--config` (or `-c`) in a container's args."""
    for i, a in enumerate(args):
        if a in ("--config", "-c") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


@functools.cache
def pool_deployment() -> dict[str, Any]:
    """The Deployment that runs `llm-pool serve --config ...`."""
    found = [
        d
        for d in objects("Deployment")
        if any(config_arg(c.get("args", [])) for c in d["spec"]["template"]["spec"]["containers"])
    ]
    assert len(found) == 1, "expected exactly one Deployment running `serve --config FILE`"
    return found[0]


def pod_spec(deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    return (deployment or pool_deployment())["spec"]["template"]["spec"]


def pod_labels(deployment: dict[str, Any] | None = None) -> dict[str, str]:
    return (deployment or pool_deployment())["spec"]["template"]["metadata"]["labels"]


def pool_container() -> dict[str, Any]:
    (c,) = [c for c in pod_spec()["containers"] if config_arg(c.get("args", []))]
    return c


def mount_for(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (volumeMount, volume) of the pool container whose mountPath is `path`."""
    mounts = [m for m in pool_container().get("volumeMounts", []) if m["mountPath"] == path]
    assert len(mounts) == 1, f"no volumeMount at {path} in the pool container"
    (volume,) = [v for v in pod_spec()["volumes"] if v["name"] == mounts[0]["name"]]
    return mounts[0], volume


def config_file() -> str:
    path = config_arg(pool_container()["args"])
    assert path is not None and path.startswith("/"), f"--config must be absolute: {path!r}"
    return path


@functools.cache
def pool_toml_text() -> str:
    """llm-pool.toml as the pod sees it: the ConfigMap key named by `--config`."""
    mount_dir, key = posixpath.split(config_file())
    _, volume = mount_for(mount_dir)
    assert "configMap" in volume, f"{mount_dir} is not a ConfigMap volume"
    data = configmap(volume["configMap"]["name"])
    assert key in data, f"ConfigMap {volume['configMap']['name']} has no key {key!r}"
    return data[key]


def pool_toml() -> dict[str, Any]:
    return tomllib.loads(pool_toml_text())


def prompts_mount_dir(toml: dict[str, Any], config_path: str) -> str:
    """prompts_dir as the pool resolves it: relative paths are relative to the config file."""
    d = toml.get("server", {}).get("prompts_dir", "prompts")
    return posixpath.normpath(posixpath.join(posixpath.dirname(config_path), d))


def prompts_configmap_name() -> str:
    _, volume = mount_for(prompts_mount_dir(pool_toml(), config_file()))
    assert "configMap" in volume, "prompts_dir is not a ConfigMap volume"
    return volume["configMap"]["name"]


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def host_of(addr: str) -> str:
    return addr.rsplit(":", 1)[0]


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, resolved through the container's named ports."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"container {container['name']} has no port named {port!r}"
    return named[port]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def quantity_bytes(q: str) -> int:
    """A Kubernetes memory quantity (512Mi, 1G, 268435456) in bytes."""
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
    }
    m = re.fullmatch(r"(\d+)([KMGT]i?|k)?", str(q))
    assert m, f"cannot read memory quantity {q!r}"
    return int(m.group(1)) * units.get(m.group(2) or "", 1)


def duration_secs(s: str | int) -> float:
    """A compose duration (40s, 1m30s, 500ms) in seconds."""
    if isinstance(s, int):
        return float(s)
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", s)
    assert parts and "".join(a + b for a, b in parts) == s, f"cannot read duration {s!r}"
    for n, unit in parts:
        total += float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


def prestop_sleep_secs(container: dict[str, Any]) -> int:
    pre = container.get("lifecycle", {}).get("preStop")
    if not pre:
        return 0
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    cmd = pre.get("exec", {}).get("command", [])
    if len(cmd) == 2 and posixpath.basename(cmd[0]) == "sleep":
        return int(cmd[1])
    pytest.fail(f"unrecognised preStop hook {pre!r}: cannot bound its duration")


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_pool() -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in compose()["services"].items() if "build" in s]
    assert len(found) == 1, "expected one compose service built from the Dockerfile"
    return found[0]


def compose_bind(service: dict[str, Any], target: str) -> Path:
    """The host folder bound at `target` (long or short volume syntax)."""
    for v in service.get("volumes", []):
        if isinstance(v, str):
            src, _, rest = v.partition(":")
            tgt = rest.split(":")[0]
        else:
            if v.get("type") != "bind":
                continue
            src, tgt = v["source"], v["target"]
        if tgt.rstrip("/") == target.rstrip("/"):
            return (DEPLOY / src).resolve()
    pytest.fail(f"the compose pool service binds nothing at {target}")


def compose_config_path() -> str:
    _, svc = compose_pool()
    cmd = svc.get("command")
    assert isinstance(cmd, list), "the compose pool service needs an exec-form command"
    path = config_arg(cmd)
    assert path and path.startswith("/"), f"--config must be absolute: {path!r}"
    return path


def compose_toml_file() -> Path:
    """The host file the compose pool reads as its config."""
    mount_dir, name = posixpath.split(compose_config_path())
    return compose_bind(compose_pool()[1], mount_dir) / name


# ---- running the binary -------------------------------------------------------------------


def binary() -> Path:
    p = Path(os.environ.get("LLM_POOL_BIN", "target/debug/llm-pool"))
    if not p.is_absolute():
        p = ROOT / p
    if not os.access(p, os.X_OK):
        pytest.fail(f"no llm-pool binary at {p}: build it (cargo build) or set LLM_POOL_BIN")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_keys(text: str, **values: str) -> str:
    """Sets `key = "value"` lines (each key must occur exactly once) and nothing else, so
    what runs is the shipped file but for the keys named here."""
    for key, value in values.items():
        line = f"{key} = {json.dumps(value)}"
        text, n = re.subn(rf"^{key}\s*=.*$", lambda _m, line=line: line, text, flags=re.M)
        assert n == 1, f"expected one `{key} =` line, found {n}"
    return text


def check_config(path: Path) -> None:
    run = subprocess.run(
        [str(binary()), "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"check-config {path} failed:\n{run.stderr}"


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(
    what: str,
    check: Callable[[], Any],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 20.0,
) -> Any:
    """Polls `check` until it returns something truthy; fails with the server log if the
    process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"llm-pool exited ({proc.returncode}) while waiting for {what}:\n"
                + log.read_text(errors="replace")[-4000:]
            )
        try:
            result = check()
            if result:
                return result
            last = result
        except (OSError, ValueError) as e:
            last = e
        time.sleep(0.05)
    pytest.fail(
        f"timed out after {timeout}s waiting for {what} (last: {last!r}):\n"
        + log.read_text(errors="replace")[-4000:]
    )


@contextlib.contextmanager
def serving(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary()), "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "info"},
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def write_prompts(folder: Path, data: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in data.items():
        (folder / name).write_text(text, encoding="utf-8")


def local_pool_config(tmp: Path, prompts_dir: Path) -> tuple[Path, int]:
    """The ConfigMap's llm-pool.toml with listeners on free local ports and prompts_dir at
    `prompts_dir`; returns the file and the HTTP port."""
    http, grpc = free_port(), free_port()
    text = set_keys(
        pool_toml_text(),
        http_addr=f"127.0.0.1:{http}",
        grpc_addr=f"127.0.0.1:{grpc}",
        prompts_dir=str(prompts_dir),
    )
    path = tmp / "llm-pool.toml"
    path.write_text(text, encoding="utf-8")
    return path, http


# ---- static: YAML and Kustomization -------------------------------------------------------


def test_every_yaml_parses_and_is_namespace_free() -> None:
    assert k8s_files(), "no YAML under deploy/k8s"
    for name, doc in k8s_docs():
        assert isinstance(doc, dict), f"{name}: a document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{name}: apiVersion and kind"
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{name}: {doc['kind']} has no name"
            assert "namespace" not in doc["metadata"], (
                f"{name}: {doc['kind']} sets a namespace; the manifests are namespace-free "
                "(kubectl -n or kustomize chooses it)"
            )
    assert isinstance(compose().get("services"), dict), "docker-compose.yml has no services"


def test_kustomization_lists_every_manifest() -> None:
    (k,) = objects("Kustomization")
    listed = set(k.get("resources", []))
    present = {f.name for f in k8s_files() if not f.name.startswith("kustomization.")}
    assert listed == present, f"kustomization.yaml resources {sorted(listed)} != {sorted(present)}"


# ---- static: the Deployment against its config --------------------------------------------


def test_container_ports_match_config_listeners() -> None:
    server = pool_toml()["server"]
    c = pool_container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports.get("grpc") == port_of(server["grpc_addr"]), (ports, server["grpc_addr"])
    assert ports.get("http") == port_of(server["http_addr"]), (ports, server["http_addr"])
    # In a pod, 127.0.0.1 would refuse the kubelet's probes and every other pod.
    for key in ("grpc_addr", "http_addr"):
        assert host_of(server[key]) in ("0.0.0.0", "[::]"), f"server.{key} must listen on all"


def test_probes_are_readyz_and_health_on_the_http_port() -> None:
    c = pool_container()
    http = port_of(pool_toml()["server"]["http_addr"])
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/health")):
        get = c.get(probe, {}).get("httpGet")
        assert get, f"{probe} must be an httpGet probe"
        assert get["path"] == path, f"{probe} path {get['path']!r}, expected {path!r}"
        assert container_port(c, get["port"]) == http, f"{probe} is not on the http port"


def test_config_and_prompts_are_directory_mounts_without_subpath() -> None:
    c = pool_container()
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    for m in c.get("volumeMounts", []):
        if "configMap" in volumes[m["name"]]:
            assert "subPath" not in m and "subPathExpr" not in m, (
                f"{m['mountPath']}: a subPath mount never receives ConfigMap updates, so hot "
                "reload would silently stop working; mount the ConfigMap as a directory"
            )
            assert "items" not in volumes[m["name"]]["configMap"], (
                f"{m['name']}: `items` would hide keys added later; mount every key"
            )
    mount_dir, _ = posixpath.split(config_file())
    mount, volume = mount_for(mount_dir)
    assert "configMap" in volume, "--config must point inside the config ConfigMap mount"


def test_prompts_dir_is_the_prompts_mount() -> None:
    toml = pool_toml()
    prompts_dir = prompts_mount_dir(toml, config_file())
    mount, volume = mount_for(prompts_dir)
    assert "configMap" in volume, f"prompts_dir {prompts_dir} is not a ConfigMap mount"
    data = configmap(volume["configMap"]["name"])
    for name, task in toml.get("tasks", {}).items():
        for key in ("prompt", "judge_prompt"):
            if key in task:
                assert task[key] in data, f"tasks.{name}.{key} = {task[key]!r} not in ConfigMap"


def test_prompts_configmap_holds_every_prompt_file() -> None:
    data = configmap(prompts_configmap_name())
    files = {p.name: p.read_text(encoding="utf-8") for p in PROMPTS.iterdir() if p.is_file()}
    hint = "; run `python3 scripts/gen-k8s-prompts.py`"
    assert set(data) == set(files), f"prompts ConfigMap keys differ from prompts/{hint}"
    for name, text in files.items():
        assert data[name] == text, f"prompts ConfigMap {name} differs from prompts/{name}{hint}"


def test_termination_grace_outlasts_the_drain() -> None:
    grace = pod_spec()["terminationGracePeriodSeconds"]
    drain = pool_toml()["server"].get("shutdown_grace_secs", 30)  # the code's default is 30
    pre = prestop_sleep_secs(pool_container())
    assert grace > drain + pre, (
        f"terminationGracePeriodSeconds {grace} <= preStop {pre} + shutdown_grace_secs "
        f"{drain}: the kubelet would SIGKILL pods that are still draining"
    )


def test_security_context_and_resources() -> None:
    for d in objects("Deployment"):
        name = d["metadata"]["name"]
        spec = pod_spec(d)
        assert spec.get("securityContext", {}).get("runAsNonRoot") is True, name
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part, {})), f"{name}/{c['name']} {part}"
    # The memory limit must hold the cache's memory level with room to spare.
    cache = pool_toml().get("cache", {})
    if cache.get("enabled", True) and cache.get("backend", "memory") in ("memory", "two_level"):
        limit = quantity_bytes(pool_container()["resources"]["limits"]["memory"])
        cap = cache.get("max_bytes", 256 * 2**20)
        assert limit >= 2 * cap, f"memory limit {limit} leaves no room over cache.max_bytes {cap}"


def test_image_user_matches_run_as_user() -> None:
    m = re.search(r"^USER\s+(\d+)", DOCKERFILE.read_text(), flags=re.M)
    assert m, "the Dockerfile needs a numeric USER (runAsNonRoot can only verify numbers)"
    assert pod_spec()["securityContext"].get("runAsUser") == int(m.group(1))


# ---- static: Services, HPA, PDB, Redis ----------------------------------------------------


def test_services_select_pods_and_match_ports() -> None:
    deployments = objects("Deployment")
    server = pool_toml()["server"]
    seen_pool_service = False
    for svc in objects("Service"):
        name = svc["metadata"]["name"]
        selector = svc["spec"].get("selector", {})
        targets = [d for d in deployments if selects(selector, pod_labels(d))]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} Deployments"
        (container, *_) = pod_spec(targets[0])["containers"]
        for p in svc["spec"]["ports"]:
            container_port(container, p.get("targetPort", p["port"]))  # resolves, or fails
        if targets[0] is pool_deployment() and svc["spec"].get("clusterIP") != "None":
            seen_pool_service = True
            ports = {p["name"]: p for p in svc["spec"]["ports"]}
            assert ports["grpc"]["port"] == port_of(server["grpc_addr"])
            assert ports["http"]["port"] == port_of(server["http_addr"])
            assert container_port(pool_container(), ports["grpc"]["targetPort"]) == port_of(
                server["grpc_addr"]
            )
            assert container_port(pool_container(), ports["http"]["targetPort"]) == port_of(
                server["http_addr"]
            )
            assert ports["grpc"].get("appProtocol") == "grpc"
    assert seen_pool_service, "no ClusterIP Service in front of the pool"


def test_hpa_scales_the_deployment_on_cpu() -> None:
    (hpa,) = objects("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        "apps/v1",
        "Deployment",
        pool_deployment()["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] >= 2
    assert pool_deployment()["spec"]["replicas"] >= 2
    assert any(
        m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]
    )
    # Utilization is a share of the request: without one the HPA cannot compute it.
    assert "cpu" in pool_container()["resources"]["requests"]


def test_pdb_selects_only_the_pool() -> None:
    (pdb,) = objects("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    selector = pdb["spec"]["selector"]["matchLabels"]
    matched = [d for d in objects("Deployment") if selects(selector, pod_labels(d))]
    assert matched == [pool_deployment()], "the PDB must select the pool's pods and no others"
    (hpa,) = objects("HorizontalPodAutoscaler")
    if "minAvailable" in pdb["spec"]:
        # Otherwise a drain at minimum scale could never evict a pod.
        assert int(pdb["spec"]["minAvailable"]) < hpa["spec"]["minReplicas"]


def test_cache_uses_the_redis_service() -> None:
    cache = pool_toml()["cache"]
    assert cache["backend"] == "two_level", "replicas share answers only through Redis"
    m = re.fullmatch(r"redis://([^:/]+):(\d+)(/\d+)?", cache["redis_url"])
    assert m, f"unexpected redis_url {cache['redis_url']!r}"
    host, port = m.group(1), int(m.group(2))
    (svc,) = [s for s in objects("Service") if s["metadata"]["name"] == host]
    assert port in [p["port"] for p in svc["spec"]["ports"]]
    (redis,) = [d for d in objects("Deployment") if selects(svc["spec"]["selector"], pod_labels(d))]
    assert "redis" in pod_spec(redis)["containers"][0]["image"]


def test_providers_do_not_point_at_the_pod_itself() -> None:
    for label, toml in (
        ("configmap", pool_toml()),
        ("compose", tomllib.loads(compose_toml_file().read_text())),
    ):
        for name, p in toml["providers"].items():
            for url in p["endpoints"]:
                host = re.sub(r"^\w+://", "", url).split("/")[0].rsplit(":", 1)[0]
                assert host not in LOOPBACK, (
                    f"{label}: providers.{name} endpoint {url} is the container itself"
                )


# ---- static: docker-compose.yml and the Dockerfile ----------------------------------------


def test_compose_agrees_with_its_config() -> None:
    name, svc = compose_pool()
    services = compose()["services"]
    build = svc["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert (context / build.get("dockerfile", "Dockerfile")).is_file(), "build context"
    # The config is read from a bound FOLDER (hot reload survives editors' rename-on-save).
    config_dir = compose_bind(svc, posixpath.dirname(compose_config_path()))
    assert config_dir.is_dir(), f"{config_dir} must be a folder, not a file bind mount"
    toml_file = compose_toml_file()
    assert toml_file.is_file(), f"{toml_file} (--config of the compose service) is missing"
    toml = tomllib.loads(toml_file.read_text())
    server = toml["server"]
    prompts = compose_bind(svc, prompts_mount_dir(toml, compose_config_path()))
    assert prompts == PROMPTS.resolve(), f"prompts_dir is bound to {prompts}, not prompts/"
    published = {int(str(p).rsplit(":", 1)[1].split("/")[0]) for p in svc["ports"]}
    assert published == {port_of(server["grpc_addr"]), port_of(server["http_addr"])}
    assert duration_secs(svc["stop_grace_period"]) > server.get("shutdown_grace_secs", 30), (
        "stop_grace_period must outlast shutdown_grace_secs, or Docker SIGKILLs the drain"
    )
    m = re.fullmatch(r"redis://([^:/]+):(\d+)(/\d+)?", toml["cache"]["redis_url"])
    assert m and m.group(1) in services, "cache.redis_url must name the compose redis service"
    assert services[m.group(1)]["image"].startswith("redis"), "redis_url's service"
    assert m.group(1) in svc.get("depends_on", {}), f"{name} should wait for Redis"
    for pname, p in toml["providers"].items():
        for url in p["endpoints"]:
            host = re.sub(r"^\w+://", "", url).split("/")[0].rsplit(":", 1)[0]
            assert host in services, f"providers.{pname} endpoint {url}: no such service"


def test_dockerfile_agrees_with_toolchain_config_and_ignore_file() -> None:
    text = DOCKERFILE.read_text()
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    arg = re.search(r"^ARG RUST_VERSION=(\S+)", text, flags=re.M)
    assert arg and arg.group(1) == channel, f"builder Rust {arg and arg.group(1)} != {channel}"
    assert re.search(r"^FROM rust:\$\{RUST_VERSION\}\S* AS builder", text, flags=re.M)
    # The image's default config: EXPOSE and HEALTHCHECK must match its listeners.
    shipped = tomllib.loads((ROOT / "llm-pool.toml").read_text())["server"]
    ports = {port_of(shipped["grpc_addr"]), port_of(shipped["http_addr"])}
    expose = re.search(r"^EXPOSE\s+(.+)$", text, flags=re.M)
    assert expose and {int(p) for p in expose.group(1).split()} == ports
    # The instruction with its continuation lines.
    health = re.search(r"^HEALTHCHECK(?:[^\n]*\\\n)*[^\n]*", text, flags=re.M)
    assert health and f":{port_of(shipped['http_addr'])}/health" in health.group(0)
    cmd = re.search(r"^CMD\s+(\[.*\])$", text, flags=re.M)
    assert cmd, "CMD must be in exec form"
    default = config_arg(json.loads(cmd.group(1)))
    assert re.search(rf"^COPY llm-pool\.toml {re.escape(str(default))}$", text, flags=re.M)
    # Everything COPYed from the context must survive .dockerignore (an allowlist).
    allowed = [
        ln[1:].rstrip("/")
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.startswith("!")
    ]
    for src in re.findall(r"^COPY (?!--)(.+) \S+$", text, flags=re.M):
        for path in src.split():
            rel = path.removeprefix("./").rstrip("/")
            assert any(
                rel == a or rel.startswith(a + "/") for a in allowed
            ), f"COPY {path}: excluded by .dockerignore"


# ---- dynamic: the real binary -------------------------------------------------------------


def test_check_config_passes_on_the_configmap(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    write_prompts(prompts, configmap(prompts_configmap_name()))
    path = tmp_path / "llm-pool.toml"
    path.write_text(set_keys(pool_toml_text(), prompts_dir=str(prompts)), encoding="utf-8")
    check_config(path)


def test_check_config_passes_on_the_compose_config(tmp_path: Path) -> None:
    toml_file = compose_toml_file()
    text = toml_file.read_text()
    # prompts_dir as compose binds it: the host folder behind the container path.
    prompts = compose_bind(
        compose_pool()[1], prompts_mount_dir(tomllib.loads(text), compose_config_path())
    )
    path = tmp_path / toml_file.name
    path.write_text(set_keys(text, prompts_dir=str(prompts)), encoding="utf-8")
    check_config(path)


def test_the_configmap_config_serves_the_probe_paths(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    write_prompts(prompts, configmap(prompts_configmap_name()))
    config, port = local_pool_config(tmp_path, prompts)
    c = pool_container()
    annotations = pool_deployment()["spec"]["template"]["metadata"].get("annotations", {})
    log = tmp_path / "pool.log"
    with serving(config, log) as proc:
        base = f"http://127.0.0.1:{port}"
        for probe in ("readinessProbe", "livenessProbe"):
            path = c[probe]["httpGet"]["path"]
            status, body = wait_until(
                f"GET {path} = 200",
                lambda path=path: (r := http_get(base + path))[0] == 200 and r,
                proc,
                log,
            )
            assert isinstance(json.loads(body), dict), f"{path} answers JSON"
        status, body = http_get(base + annotations.get("prometheus.io/path", "/metrics"))
        assert status == 200 and b"llm_pool_" in body, "the scrape path serves the metrics"
        status, body = http_get(base + "/info")
        info = json.loads(body)
        assert sorted(info["tasks"]) == sorted(pool_toml()["tasks"])
        # Draining an idle pool is immediate: exit 0 well inside the termination grace.
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=pool_toml()["server"]["shutdown_grace_secs"])
        assert code == 0, log.read_text(errors="replace")[-4000:]


def kubelet_layout(folder: Path, files: dict[str, str]) -> None:
    """Writes `files` the way the kubelet populates a ConfigMap volume: the data in a
    timestamped hidden folder, a `..data` symlink to it, and one symlink per key."""
    folder.mkdir(parents=True, exist_ok=True)
    kubelet_swap(folder, files)
    for name in files:
        (folder / name).symlink_to(f"..data/{name}")


def kubelet_swap(folder: Path, files: dict[str, str]) -> None:
    """A ConfigMap update: new timestamped folder, `..data` renamed atomically onto it, the
    old folder removed (the kubelet's AtomicWriter)."""
    old = os.readlink(folder / "..data") if (folder / "..data").is_symlink() else None
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    (folder / stamp).mkdir()
    for name, text in files.items():
        (folder / stamp / name).write_text(text, encoding="utf-8")
    (folder / "..data_tmp").symlink_to(stamp)
    os.rename(folder / "..data_tmp", folder / "..data")
    if old:
        for f in (folder / old).iterdir():
            f.unlink()
        (folder / old).rmdir()


def test_configmap_updates_are_hot_reloaded(tmp_path: Path) -> None:
    """The mount layout of deployment.yaml, updated the way the kubelet updates it. Observed
    through the operations routes (/health, /info), which need no credentials."""
    config_dir, prompts_dir = tmp_path / "config", tmp_path / "prompts"
    prompts = configmap(prompts_configmap_name())
    kubelet_layout(prompts_dir, prompts)
    name = posixpath.basename(config_file())
    port = free_port()
    text = set_keys(
        pool_toml_text(),
        http_addr=f"127.0.0.1:{port}",
        grpc_addr=f"127.0.0.1:{free_port()}",
        prompts_dir=str(prompts_dir),
    )
    kubelet_layout(config_dir, {name: text})
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "pool.log"

    def get(path: str) -> dict[str, Any]:
        status, body = http_get(base + path)
        return json.loads(body) if status == 200 else {}

    def config_status() -> dict[str, Any]:
        return get("/health").get("config", {})

    with serving(config_dir / name, log) as proc:
        before = wait_until("/health", config_status, proc, log)
        # A config change: one more task (a chat pass-through on the first provider).
        provider = next(iter(pool_toml()["providers"]))
        added = f'\n[tasks.ops_probe]\nproviders = ["{provider}"]\n'
        kubelet_swap(config_dir, {name: text + added})
        wait_until(
            "the task added by a ..data swap",
            lambda: "ops_probe" in get("/info").get("tasks", []),
            proc,
            log,
        )
        after = config_status()
        assert after["last_error"] is None, after
        assert after["version"] > before["version"], (before, after)
        # A prompt change reloads too.
        changed = dict(prompts)
        first = sorted(changed)[0]
        changed[first] = changed[first] + "\n"
        kubelet_swap(prompts_dir, changed)
        wait_until(
            "a reload after the prompts ..data swap",
            lambda: config_status().get("version", 0) > after["version"],
            proc,
            log,
        )
        assert config_status()["last_error"] is None
