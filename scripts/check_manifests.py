#!/usr/bin/env python3
"""Policy checks for the PSIRT deployment files (deploy/), run by scripts/check-deploy.sh.

Subcommands:
  policy FILE...        hardening policy on rendered Kubernetes manifests (kubectl kustomize
                        output): every container of every workload runs as non-root, with a
                        read-only root filesystem, all capabilities dropped, seccomp
                        RuntimeDefault, no privilege escalation, CPU and memory requests and
                        limits, readiness and liveness probes; no secret inlined in an env
                        value or a ConfigMap.
  builtin FILE OUT      copies the objects of built-in Kubernetes API groups from FILE to OUT
                        (for schema validation) and names the custom resources left out.
  dockerfile [PATH]     structural checks of deploy/docker/Dockerfile that a linter cannot
                        know: every workspace member's manifest is in the dependency layer,
                        the runtime stage is minimal and runs as a numeric non-root user.
  config FILE BIN_DIR   each rendered Deployment's service loads its configuration: its
                        ConfigMap TOML and literal env vars (secret env vars get a
                        placeholder, mounted files an empty stand-in) are fed to
                        `BIN_DIR/<binary> --config FILE config`, which validates them.
  infra                 deploy/nats/values.yaml and deploy/postgres/cluster.yaml keep their
                        durability settings (3 servers, JetStream on PVCs; 3 instances,
                        backups with credentials from a Secret).
  --self-test FILE      proves the policy can fail: the good FILE passes, then a broken copy
                        written to a temp dir (one defect per rule) must fail with each defect
                        named.

Exit status: 0 when everything holds, 1 with one line per violation otherwise.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# API groups whose schemas ship with kubernetes-validate; anything else is a custom resource.
BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
}
# Env var names that carry a secret when given a literal `value:`.
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|DATABASE__URL|DSN|CREDS)",
    re.IGNORECASE,
)
# Literal secrets inside a ConfigMap (e.g. the service TOML).
SECRET_TEXT = [
    (re.compile(r"\w+://[^/\s:@\"']+:[^@\s\"']+@"), "a URL with a password"),
    (re.compile(r"^\s*(hs256_secret|token|password)\s*=", re.MULTILINE), "a secret key"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]


def load_docs(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]


def api_group(doc: dict) -> str:
    api = doc.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def ref(doc: dict) -> str:
    meta = doc.get("metadata", {})
    ns = meta.get("namespace")
    return f"{doc.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    spec = doc.get("spec", {})
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


# ------------------------------------------------------------------------------------------
# policy


def check_container(where: str, c: dict, pod: dict, init: bool) -> list[str]:
    v: list[str] = []
    psc = pod.get("securityContext") or {}
    sc = c.get("securityContext") or {}

    run_as_non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    if run_as_non_root is not True:
        v.append(f"{where}: runAsNonRoot is not true")
    run_as_user = sc.get("runAsUser", psc.get("runAsUser"))
    if run_as_user == 0:
        v.append(f"{where}: runAsUser is 0 (root)")
    if sc.get("readOnlyRootFilesystem") is not True:
        v.append(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        v.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("privileged") is True:
        v.append(f"{where}: privileged is true")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        v.append(f"{where}: capabilities.drop does not contain ALL")
    if caps.get("add"):
        v.append(f"{where}: capabilities.add is not empty ({caps['add']})")
    seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        v.append(f"{where}: seccompProfile is {seccomp or 'unset'}, not RuntimeDefault")

    res = c.get("resources") or {}
    for section in ("requests", "limits"):
        for key in ("cpu", "memory"):
            if not (res.get(section) or {}).get(key):
                v.append(f"{where}: resources.{section}.{key} is not set")

    if not init:
        for probe in ("readinessProbe", "livenessProbe"):
            if not c.get(probe):
                v.append(f"{where}: {probe} is not set")

    image = c.get("image", "")
    if not image or image.endswith(":latest") or (":" not in image.split("/")[-1] and "@" not in image):
        v.append(f"{where}: image {image!r} has no pinned tag or digest")

    for env in c.get("env") or []:
        name = env.get("name", "")
        # A *_FILE / *_PATH variable names where a secret is mounted, not the secret.
        if "value" in env and SECRET_NAME.search(name) and not re.search(r"_(FILE|PATH)$", name):
            v.append(f"{where}: env {name} has an inline value; use valueFrom.secretKeyRef")
    return v


def check_policy(docs: list[dict], source: str) -> list[str]:
    violations: list[str] = []
    workloads = 0
    for doc in docs:
        if doc.get("kind") == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                for pattern, what in SECRET_TEXT:
                    if pattern.search(str(text)):
                        violations.append(f"{source}: {ref(doc)} key {key}: contains {what}; use a Secret")
        if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            violations.append(f"{source}: {ref(doc)}: a Secret with inline data; secrets are referenced, never inlined")
        pod = pod_spec(doc)
        if pod is None:
            continue
        workloads += 1
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                violations.append(f"{source}: {ref(doc)}: {flag} is true")
        for init, key in ((True, "initContainers"), (False, "containers")):
            for c in pod.get(key) or []:
                where = f"{source}: {ref(doc)} container {c.get('name')}"
                violations.extend(check_container(where, c, pod, init))
    if workloads == 0:
        violations.append(f"{source}: no workload found (nothing was checked)")
    return violations


# ------------------------------------------------------------------------------------------
# builtin split


def split_builtin(src: Path, out: Path) -> int:
    docs = load_docs(src)
    keep = [d for d in docs if api_group(d) in BUILTIN_GROUPS]
    skipped = [d for d in docs if api_group(d) not in BUILTIN_GROUPS]
    with out.open("w") as f:
        yaml.safe_dump_all(keep, f, sort_keys=False)
    for d in skipped:
        print(f"skipped (custom resource, no schema offline): {d.get('apiVersion')} {ref(d)}")
    print(f"{len(keep)} built-in objects to validate, {len(skipped)} custom resources skipped")
    return 0 if keep else 1


# ------------------------------------------------------------------------------------------
# Dockerfile


def check_dockerfile(path: Path) -> list[str]:
    v: list[str] = []
    text = path.read_text()
    # Join continuation lines so each instruction is one line.
    lines = [ln.strip() for ln in re.sub(r"\\\n", " ", text).splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]

    workspace = tomllib.loads((REPO / "Cargo.toml").read_text())
    copied = " ".join(i for i in instructions if i.upper().startswith("COPY"))
    for member in workspace["workspace"]["members"]:
        if f"{member}/Cargo.toml" not in copied:
            v.append(f"{path}: dependency layer misses COPY {member}/Cargo.toml (workspace member)")

    stages = [i for i in instructions if i.upper().startswith("FROM ")]
    if len(stages) < 2:
        v.append(f"{path}: not a multi-stage build")
    else:
        final = stages[-1].lower()
        if not ("distroless" in final or "bookworm-slim" in final or "trixie-slim" in final):
            v.append(f"{path}: the runtime stage ({stages[-1]}) is not a minimal base")
        final_at = instructions.index(stages[-1])
        runtime = instructions[final_at:]
        users = [i.split(None, 1)[1] for i in runtime if i.upper().startswith("USER ")]
        if not users:
            v.append(f"{path}: the runtime stage sets no USER")
        else:
            uid = users[-1].split(":")[0]
            if not uid.isdigit() or uid == "0":
                v.append(f"{path}: USER {users[-1]} is not a numeric non-root user")
        if any(i.upper().startswith("RUN ") for i in runtime):
            v.append(f"{path}: the runtime stage runs commands (no shell at run time)")
        entry = [i for i in runtime if i.upper().startswith("ENTRYPOINT")]
        if not entry or "[" not in entry[-1]:
            v.append(f"{path}: the runtime stage needs an exec-form ENTRYPOINT")
    for binary in ("psirt-intake", "psirt-triage", "psirtctl"):
        if f"target/release/{binary}" not in text:
            v.append(f"{path}: binary {binary} is not copied into the image")
    return v


# ------------------------------------------------------------------------------------------
# service configuration

# Placeholders for values that come from Secrets in the cluster.
SECRET_PLACEHOLDERS = {"PSIRT_DATABASE__URL": "postgres://placeholder:placeholder@db.invalid/psirt"}


def check_config(docs: list[dict], bin_dir: Path) -> list[str]:
    import os

    v: list[str] = []
    configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        pod = pod_spec(doc) or {}
        volumes = {vol["name"]: vol for vol in pod.get("volumes") or []}
        for c in pod.get("containers") or []:
            where = f"{ref(doc)} container {c.get('name')}"
            binary = bin_dir / Path((c.get("command") or [""])[0]).name
            if not binary.is_file():
                v.append(f"{where}: no binary {binary} to load the configuration with")
                continue
            with tempfile.TemporaryDirectory(prefix="psirt-config-") as tmp:
                config_file = None
                mounts = {}
                for m in c.get("volumeMounts") or []:
                    vol = volumes.get(m["name"], {})
                    if "configMap" in vol and m.get("subPath"):
                        data = configmaps.get(vol["configMap"]["name"], {}).get("data", {})
                        if m["subPath"] not in data:
                            v.append(f"{where}: ConfigMap {vol['configMap']['name']} has no key {m['subPath']}")
                            continue
                        config_file = (m["mountPath"], data[m["subPath"]])
                    else:
                        mounts[m["mountPath"]] = Path(tmp) / m["name"]
                if config_file is None:
                    v.append(f"{where}: no TOML config mounted from a ConfigMap")
                    continue
                text = config_file[1]
                # Mounted files (JWKS, NATS credentials) are replaced by stand-ins.
                for mount, local in mounts.items():
                    local.mkdir(parents=True, exist_ok=True)
                    for path in set(re.findall(re.escape(mount) + r"/[\w.\-]+", text)):
                        stand_in = local / Path(path).name
                        stand_in.write_text('{"keys": []}' if path.endswith(".json") else "")
                        text = text.replace(path, str(stand_in))
                toml_path = Path(tmp) / Path(config_file[0]).name
                toml_path.write_text(text)
                env = {k: val for k, val in os.environ.items() if not k.startswith("PSIRT_")}
                env.update(RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
                for e in c.get("env") or []:
                    if "value" in e:
                        env[e["name"]] = str(e["value"])
                    else:
                        env[e["name"]] = SECRET_PLACEHOLDERS.get(e["name"], "placeholder")
                args = list(c.get("args") or [])
                if "--config" in args:
                    args[args.index("--config") + 1] = str(toml_path)
                # Keep the flags, swap the subcommand (serve) for `config`.
                args = [a for a in args if a not in ("serve", "rebuild")] + ["config"]
                run = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=60)
                if run.returncode != 0:
                    lines = [ln.strip() for ln in (run.stderr or run.stdout).splitlines() if ln.strip()]
                    detail = " | ".join(lines)[:600]
                    v.append(f"{where}: {binary.name} rejects its configuration: {detail}")
    return v


# ------------------------------------------------------------------------------------------
# NATS and PostgreSQL


def dig(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def check_infra() -> list[str]:
    v: list[str] = []
    nats_path = REPO / "deploy/nats/values.yaml"
    nats = yaml.safe_load(nats_path.read_text())
    expect = [
        (("config", "cluster", "enabled"), True),
        (("config", "cluster", "replicas"), 3),
        (("config", "jetstream", "enabled"), True),
        (("config", "jetstream", "fileStore", "enabled"), True),
        (("config", "jetstream", "fileStore", "pvc", "enabled"), True),
        (("podDisruptionBudget", "enabled"), True),
    ]
    for keys, want in expect:
        got = dig(nats, *keys)
        if got != want:
            v.append(f"{nats_path}: {'.'.join(keys)} is {got!r}, expected {want!r}")

    pg_path = REPO / "deploy/postgres/cluster.yaml"
    docs = load_docs(pg_path)
    clusters = [d for d in docs if d.get("kind") == "Cluster"]
    if len(clusters) != 1:
        v.append(f"{pg_path}: expected one CloudNativePG Cluster, found {len(clusters)}")
    else:
        spec = clusters[0].get("spec", {})
        if spec.get("instances") != 3:
            v.append(f"{pg_path}: Cluster instances is {spec.get('instances')!r}, expected 3")
        plugins = spec.get("plugins") or []
        if not any(p.get("isWALArchiver") for p in plugins) and not dig(spec, "backup", "barmanObjectStore"):
            v.append(f"{pg_path}: Cluster has no WAL archiving / backup configured")
    stores = [d for d in docs if d.get("kind") == "ObjectStore"]
    for store in stores:
        creds = dig(store, "spec", "configuration", "s3Credentials") or {}
        for key in ("accessKeyId", "secretAccessKey"):
            if not (isinstance(creds.get(key), dict) and creds[key].get("name")):
                v.append(f"{pg_path}: {ref(store)} {key} is not a Secret reference")
    if not stores:
        v.append(f"{pg_path}: no ObjectStore for backups")
    if not any(d.get("kind") == "ScheduledBackup" for d in docs):
        v.append(f"{pg_path}: no ScheduledBackup")
    return v


# ------------------------------------------------------------------------------------------
# self-test

# One defect per rule: (description, mutation of the first Deployment, expected text).
def _container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


MUTATIONS = [
    ("root user", lambda d: _container(d)["securityContext"].update(runAsNonRoot=False), "runAsNonRoot is not true"),
    ("writable rootfs", lambda d: _container(d)["securityContext"].pop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
    ("capabilities kept", lambda d: _container(d)["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "drop does not contain ALL"),
    (
        "seccomp unconfined",
        lambda d: (
            _container(d)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            d["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile", None),
        ),
        "seccompProfile is Unconfined",
    ),
    ("privilege escalation", lambda d: _container(d)["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation is not false"),
    ("no memory limit", lambda d: _container(d)["resources"]["limits"].pop("memory"), "resources.limits.memory is not set"),
    ("no requests", lambda d: _container(d)["resources"].pop("requests"), "resources.requests.cpu is not set"),
    ("no readiness probe", lambda d: _container(d).pop("readinessProbe"), "readinessProbe is not set"),
    ("no liveness probe", lambda d: _container(d).pop("livenessProbe"), "livenessProbe is not set"),
    (
        "inline secret env",
        lambda d: _container(d)["env"].append({"name": "PSIRT_AUTH__HS256_SECRET", "value": "s3cr3t"}),
        "env PSIRT_AUTH__HS256_SECRET has an inline value",
    ),
    ("latest image", lambda d: _container(d).update(image="psirt:latest"), "has no pinned tag or digest"),
]


def self_test(good: Path) -> int:
    me = Path(__file__).resolve()
    failures: list[str] = []
    ok = subprocess.run([sys.executable, str(me), "policy", str(good)], capture_output=True, text=True)
    if ok.returncode != 0:
        failures.append(f"the good manifests fail the policy:\n{ok.stdout}{ok.stderr}")

    docs = load_docs(good)
    deployments = [i for i, d in enumerate(docs) if d.get("kind") == "Deployment"]
    if not deployments:
        print("FAIL self-test needs a Deployment in the good manifests")
        return 1
    with tempfile.TemporaryDirectory(prefix="psirt-policy-selftest-") as tmp:
        broken_docs = copy.deepcopy(docs)
        extra = []
        for n, (_, mutate, _) in enumerate(MUTATIONS):
            victim = copy.deepcopy(docs[deployments[0]])
            victim["metadata"]["name"] = f"broken-{n}"
            mutate(victim)
            extra.append(victim)
        broken_docs.extend(extra)
        broken_docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "broken-config"},
                "data": {"svc.toml": '[database]\nurl = "postgres://psirt:hunter2@db/psirt"\n'},
            }
        )
        broken = Path(tmp) / "broken.yaml"
        with broken.open("w") as f:
            yaml.safe_dump_all(broken_docs, f, sort_keys=False)
        run = subprocess.run([sys.executable, str(me), "policy", str(broken)], capture_output=True, text=True)
        if run.returncode == 0:
            failures.append("the broken copy passed the policy")
        for n, (what, _, expected) in enumerate(MUTATIONS):
            hit = [ln for ln in run.stdout.splitlines() if f"/broken-{n} " in ln and expected in ln]
            status = "detected" if hit else "MISSED"
            print(f"  self-test: {what}: {status}")
            if not hit:
                failures.append(f"defect {what!r} not reported (expected {expected!r})")
        if "a URL with a password" not in run.stdout:
            failures.append("a password in a ConfigMap URL was not reported")
        else:
            print("  self-test: password in a ConfigMap: detected")
        # The Dockerfile check must fail on a Dockerfile that lost a member and runs as root.
        df = (REPO / "deploy/docker/Dockerfile").read_text()
        bad_df = Path(tmp) / "Dockerfile"
        bad_df.write_text(
            df.replace("COPY services/triage/Cargo.toml services/triage/\n", "").replace("USER 65532:65532", "USER root")
        )
        found = check_dockerfile(bad_df)
        for expected in ("services/triage/Cargo.toml", "not a numeric non-root user"):
            status = "detected" if any(expected in x for x in found) else "MISSED"
            print(f"  self-test: Dockerfile {expected}: {status}")
            if status == "MISSED":
                failures.append(f"Dockerfile defect {expected!r} not reported")
    for f in failures:
        print(f"FAIL {f}")
    print("self-test passed" if not failures else "self-test FAILED")
    return 1 if failures else 0


# ------------------------------------------------------------------------------------------


def report(violations: list[str], what: str) -> int:
    for line in violations:
        print(f"VIOLATION {line}")
    if violations:
        print(f"{what}: {len(violations)} violation(s)")
        return 1
    print(f"{what}: ok")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, args = argv[0], argv[1:]
    if cmd == "--self-test" and len(args) == 1:
        return self_test(Path(args[0]))
    if cmd == "policy" and args:
        violations = []
        for a in args:
            violations.extend(check_policy(load_docs(Path(a)), a))
        return report(violations, "policy")
    if cmd == "builtin" and len(args) == 2:
        return split_builtin(Path(args[0]), Path(args[1]))
    if cmd == "dockerfile" and len(args) <= 1:
        path = Path(args[0]) if args else REPO / "deploy/docker/Dockerfile"
        return report(check_dockerfile(path), "dockerfile")
    if cmd == "config" and len(args) == 2:
        return report(check_config(load_docs(Path(args[0])), Path(args[1])), "config")
    if cmd == "infra" and not args:
        return report(check_infra(), "infra")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
