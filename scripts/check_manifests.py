#!/usr/bin/env python3
"""Policy checks for the PSIRT deployment files (deploy/), run by scripts/check-deploy.sh.

Subcommands:
  policy FILE...        hardening policy on rendered Kubernetes manifests (kubectl kustomize
                        output): every container of every workload runs as non-root, with a
                        read-only root filesystem, all capabilities dropped, seccomp
                        RuntimeDefault, no privilege escalation, CPU and memory requests and
                        limits, readiness and liveness probes; no secret inlined in an env
                        value or a ConfigMap. Every service of SERVICES is deployed, with
                        a gRPC readiness probe of its API service and /healthz liveness and
                        startup probes on its admin port, a NetworkPolicy
                        when the namespace denies by default (allowing egress on the ports
                        it delivers to, e.g. psirt-notification's webhooks on 443), a
                        ServiceMonitor when there are any; an egress ipBlock never reaches
                        the cloud metadata address and never allows every port;
                        directories a service writes (advisory.csaf_directory) are on a
                        writable volume shared by all replicas (ReadWriteMany, or an
                        emptyDir with one replica); an Ingress routes of an admin port only
                        the paths its service publishes (psirt-remediation:
                        /.well-known/csaf/; psirt-notification: exactly /hooks/jira and
                        /hooks/servicenow; nothing of the others), without path-rewriting
                        or snippet annotations; a service that calls another (notification
                        -> triage gRPC) is allowed to by both NetworkPolicies.
  builtin FILE OUT      copies the objects of built-in Kubernetes API groups from FILE to OUT
                        (for schema validation) and names the custom resources left out.
  dockerfile [PATH]     structural checks of deploy/docker/Dockerfile that a linter cannot
                        know: every workspace member's manifest is in the dependency layer,
                        the runtime stage is minimal and runs as a numeric non-root user.
  config FILE BIN_DIR   each rendered Deployment's service loads its configuration: its
                        ConfigMap TOML and literal env vars (secret env vars get a
                        placeholder, mounted files an empty stand-in) are fed to
                        `BIN_DIR/<binary> --config FILE config`, which validates them; the
                        directories of the effective configuration it prints must be on
                        writable volumes (as in `policy`).
  infra                 deploy/nats/values.yaml and deploy/postgres/cluster.yaml keep their
                        durability settings (3 servers, JetStream on PVCs; 3 instances,
                        backups with credentials from a Secret; a database and role per
                        service of SERVICES).
  dashboard [PATH]      deploy/grafana/psirt-dashboard.json parses as JSON, is a Grafana 10+
                        dashboard (schemaVersion >= 38) with a Prometheus datasource variable,
                        and every metric its PromQL (panel targets, template queries) names
                        is in the Metrics table of docs/operations.md (histogram series
                        `_bucket`/`_count`/`_sum` of a documented histogram included).
  alerts RENDERED OUT   the PrometheusRule of the rendered manifests (components/monitoring)
                        holds exactly the alerts of the "Alerts" section of docs/operations.md:
                        one rule per documented alert and none else, with the documented
                        expression, `for` and severity label, summary and description
                        annotations and a runbook_url pointing to the alert's section; every
                        metric a rule names is in the Metrics table there (or Prometheus's
                        own `up`). Writes the rule groups to OUT (for `promtool check rules`
                        and `promtool test rules`).
  --self-test FILE      proves the policy can fail: the good FILE passes, then a broken copy
                        written to a temp dir (one defect per rule) must fail with each defect
                        named; broken copies of the dashboard (an undocumented metric, invalid
                        JSON, no datasource variable) must fail too, and so must alert rules
                        with an undocumented metric, a missing, an extra or a changed rule.

Exit status: 0 when everything holds, 1 with one line per violation otherwise.
"""

from __future__ import annotations

import copy
import json
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


# The services of deploy/k8s/base. Every overlay must deploy each of them; `writable` names
# the config keys holding a directory the service writes (the root filesystem is read-only).
SERVICES: dict[str, dict] = {
    "psirt-intake": {
        "grpc": 50051,
        "admin": 9101,
        "public_admin": (),
        "readiness": "psirt.intake.v1.IntakeService",
        "database": "intake",
        "writable": (),
    },
    "psirt-triage": {
        "grpc": 50052,
        "admin": 9102,
        "public_admin": (),
        "readiness": "psirt.triage.v1.TriageService",
        "database": "triage",
        "writable": (),
    },
    "psirt-remediation": {
        "grpc": 50053,
        "admin": 9103,
        # The CSAF provider directory (components/csaf-ingress): that subtree only.
        "public_admin": (("/.well-known/csaf", "subtree"),),
        "readiness": "psirt.remediation.v1.RemediationService",
        "database": "remediation",
        # The CSAF trusted provider directory: written by the replica holding the
        # projection lease, served by every replica.
        "writable": ("advisory.csaf_directory",),
    },
    "psirt-notification": {
        "grpc": 50054,
        # /metrics, /healthz, /readyz and the inbound tracker webhooks: an Ingress may
        # route exactly POST /hooks/jira and /hooks/servicenow (components/tracker-webhooks),
        # nothing else of it (check_ingress).
        "admin": 9104,
        "public_admin": (("/hooks/jira", "exact"), ("/hooks/servicenow", "exact")),
        "readiness": "psirt.notification.v1.NotificationService",
        "database": "notification",
        "writable": (),
        # Delivers webhooks and tracker calls (443) and e-mail to the SMTP relay (587
        # STARTTLS, 465 TLS): its NetworkPolicy must allow egress on these ports, and only
        # to public addresses (no metadata service; see check_egress).
        "egress_ports": (443, 587, 465),
        # Inbound ticket changes drive commands through psirt-triage's gRPC API: both
        # NetworkPolicies must allow that call (check_calls).
        "calls": {"psirt-triage": 50052},
    },
}
# Addresses an egress ipBlock open to the world must except (SSRF defence): the cloud
# metadata services (IPv4 link-local, AWS's IPv6 one).
METADATA_ADDRESSES = ("169.254.169.254", "fd00:ec2::254")
# Ingress annotations that change what a path reaches (a rewrite of /hooks/jira to
# /metrics, a regex path, raw nginx configuration): refused on an Ingress routing an admin
# port, whose safety rests on its literal paths.
PATH_CHANGING_ANNOTATION = re.compile(r"(rewrite-target|use-regex|app-root|-snippet)$")


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


def service_of(doc: dict) -> str | None:
    """The PSIRT service a workload runs (its pod's app.kubernetes.io/name), if any."""
    pod_labels = dig(doc, "spec", "template", "metadata", "labels") or {}
    name = pod_labels.get("app.kubernetes.io/name")
    return name if name in SERVICES else None


def main_container(doc: dict, service: str) -> dict | None:
    containers = (pod_spec(doc) or {}).get("containers") or []
    for c in containers:
        if Path((c.get("command") or [""])[0]).name == service:
            return c
    return containers[0] if containers else None


def mounted_toml(c: dict, pod: dict, configmaps: dict[str, dict]) -> dict | None:
    """The service TOML a container mounts from a ConfigMap (subPath), parsed."""
    volumes = {vol["name"]: vol for vol in pod.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        vol = volumes.get(m.get("name"), {})
        if "configMap" in vol and m.get("subPath"):
            text = (configmaps.get(vol["configMap"].get("name"), {}).get("data") or {}).get(m["subPath"])
            if text is not None and m["subPath"].endswith(".toml"):
                try:
                    return tomllib.loads(text)
                except tomllib.TOMLDecodeError:
                    return None
    return None


def config_value(toml: dict, c: dict, key: str):
    """A config key as the service resolves it: a literal PSIRT_<SECTION>__<KEY> env var
    wins over the TOML."""
    env_name = "PSIRT_" + "__".join(part.upper() for part in key.split("."))
    for e in c.get("env") or []:
        if e.get("name") == env_name and "value" in e:
            return e["value"]
    return dig(toml, *key.split("."))


def replica_ceiling(doc: dict, docs: list[dict]) -> int:
    """The most replicas a workload can run: spec.replicas, else its HPA's maximum, else 1."""
    replicas = dig(doc, "spec", "replicas")
    if replicas is not None:
        return int(replicas)
    ns = dig(doc, "metadata", "namespace")
    ceilings = [
        int(dig(h, "spec", "maxReplicas") or 1)
        for h in docs
        if h.get("kind") == "HorizontalPodAutoscaler"
        and dig(h, "metadata", "namespace") == ns
        and dig(h, "spec", "scaleTargetRef", "kind") == doc.get("kind")
        and dig(h, "spec", "scaleTargetRef", "name") == dig(doc, "metadata", "name")
    ]
    return max(ceilings) if ceilings else 1


def writable_dir_problems(
    where: str, key: str, path, c: dict, pod: dict, namespace: str | None, docs: list[dict], replicas: int
) -> list[str]:
    """A directory the service writes (and every replica serves) must be on a writable
    volume: a ReadWriteMany claim, or an emptyDir when there is only one replica."""
    if not path:
        return [f"{where}: {key} is not set (the default is relative, on the read-only root filesystem)"]
    path = str(path)
    if not path.startswith("/"):
        return [f"{where}: {key} {path!r} is relative (the root filesystem is read-only); use the volume's mount path"]
    mounts = [
        m
        for m in c.get("volumeMounts") or []
        if not m.get("subPath") and (path == m["mountPath"].rstrip("/") or path.startswith(m["mountPath"].rstrip("/") + "/"))
    ]
    if not mounts:
        return [f"{where}: {key} {path} is not on a mounted volume (the root filesystem is read-only)"]
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    if mount.get("readOnly"):
        return [f"{where}: {key} {path} is on volume {mount['name']}, mounted read-only"]
    vol = {v["name"]: v for v in pod.get("volumes") or []}.get(mount["name"], {})
    if "emptyDir" in vol or "ephemeral" in vol:
        if replicas > 1:
            return [
                f"{where}: {key} {path} is on an emptyDir with up to {replicas} replicas: a replica without the "
                "projection lease would serve an empty directory; use a ReadWriteMany PersistentVolumeClaim"
            ]
        return []
    if "persistentVolumeClaim" in vol:
        claim = vol["persistentVolumeClaim"].get("claimName")
        if vol["persistentVolumeClaim"].get("readOnly"):
            return [f"{where}: {key} {path} is on claim {claim}, mounted read-only"]
        pvcs = [
            d
            for d in docs
            if d.get("kind") == "PersistentVolumeClaim"
            and dig(d, "metadata", "name") == claim
            and dig(d, "metadata", "namespace") == namespace
        ]
        if not pvcs:
            return [f"{where}: {key} {path} is on claim {claim}, which is not in the manifests"]
        modes = dig(pvcs[0], "spec", "accessModes") or []
        if replicas > 1 and "ReadWriteMany" not in modes:
            return [
                f"{where}: {key} {path} is on claim {claim} ({', '.join(modes) or 'no access mode'}), not "
                f"ReadWriteMany, but up to {replicas} replicas on different nodes mount it"
            ]
        return []
    kinds = ", ".join(k for k in vol if k != "name") or "unknown"
    return [f"{where}: {key} {path} is on a {kinds} volume, which is not writable storage"]


def check_service(doc: dict, docs: list[dict], source: str) -> list[str]:
    """What every PSIRT service Deployment needs beyond the generic hardening."""
    service = service_of(doc)
    if service is None or doc.get("kind") != "Deployment":
        return []
    spec = SERVICES[service]
    v: list[str] = []
    pod = pod_spec(doc) or {}
    namespace = dig(doc, "metadata", "namespace")
    c = main_container(doc, service)
    if c is None:
        return [f"{source}: {ref(doc)}: no container"]
    where = f"{source}: {ref(doc)} container {c.get('name')}"
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    for name in ("grpc", "admin"):
        if ports.get(name) != spec[name]:
            v.append(f"{where}: port {name} is {ports.get(name)!r}, expected {spec[name]}")
    ready = dig(c, "readinessProbe", "grpc") or {}
    if ready.get("port") != spec["grpc"] or ready.get("service") != spec["readiness"]:
        v.append(f"{where}: readinessProbe is not a grpc probe on {spec['grpc']} for {spec['readiness']}")
    # Liveness and startup ask /healthz on the admin port: the gRPC health follows
    # readiness (NATS, database, projections), and an outage must not restart pods.
    for probe in ("livenessProbe", "startupProbe"):
        http = dig(c, probe, "httpGet") or {}
        if http.get("path") != "/healthz" or http.get("port") not in ("admin", spec["admin"]):
            v.append(f"{where}: {probe} is not an httpGet of /healthz on the admin port")
    if spec["writable"]:
        configmaps = {
            d["metadata"]["name"]: d
            for d in docs
            if d.get("kind") == "ConfigMap" and dig(d, "metadata", "namespace") == namespace
        }
        toml = mounted_toml(c, pod, configmaps)
        if toml is None:
            v.append(f"{where}: no TOML config mounted from a ConfigMap")
        else:
            replicas = replica_ceiling(doc, docs)
            for key in spec["writable"]:
                value = config_value(toml, c, key)
                v.extend(writable_dir_problems(where, key, value, c, pod, namespace, docs, replicas))
    return v


def public_admin_allowed(service: str | None, path: str, path_type: str | None) -> bool:
    """Is routing `path` (`path_type`) of `service`'s admin port to the public allowed?"""
    for allowed, match in SERVICES.get(service, {}).get("public_admin", ()):
        if match == "subtree" and path_type in ("Prefix", "Exact"):
            if path.rstrip("/") == allowed or path.startswith(allowed + "/"):
                return True
        if match == "exact" and path_type == "Exact" and path == allowed:
            return True
    return False


def describe_public_admin(service: str | None) -> str:
    parts = [
        f"{path}/ (Prefix or Exact)" if match == "subtree" else f"{path} (Exact)"
        for path, match in SERVICES.get(service, {}).get("public_admin", ())
    ]
    return " and ".join(parts)


def check_ingress(doc: dict, source: str) -> list[str]:
    """An Ingress may publish of an admin port only what its service serves publicly."""
    v: list[str] = []
    spec = doc.get("spec") or {}

    def admin_backend(backend: dict) -> str | None:
        svc = (backend or {}).get("service") or {}
        port = svc.get("port") or {}
        name = svc.get("name")
        if port.get("name") == "admin" or (name in SERVICES and port.get("number") == SERVICES[name]["admin"]):
            return name
        return None

    routes_admin = False
    if admin_backend(spec.get("defaultBackend")):
        routes_admin = True
        v.append(f"{source}: {ref(doc)}: defaultBackend is an admin port (/metrics would be public)")
    for rule in spec.get("rules") or []:
        for p in dig(rule, "http", "paths") or []:
            svc = admin_backend(p.get("backend"))
            if svc is None:
                continue
            routes_admin = True
            path = p.get("path") or "/"
            if public_admin_allowed(svc, path, p.get("pathType")):
                continue
            allowed = describe_public_admin(svc)
            if not allowed:
                v.append(f"{source}: {ref(doc)}: routes {path!r} to the admin port of {svc}, which stays internal")
            else:
                v.append(
                    f"{source}: {ref(doc)}: routes {path!r} ({p.get('pathType')}) to the admin port of {svc}; "
                    f"only {allowed} may be public, /metrics stays internal"
                )
    if routes_admin:
        for key in (dig(doc, "metadata", "annotations") or {}):
            if PATH_CHANGING_ANNOTATION.search(key):
                v.append(
                    f"{source}: {ref(doc)}: annotation {key} on an Ingress routing an admin port "
                    "(it could route another path of the admin port, e.g. /metrics)"
                )
    return v


def check_egress(doc: dict, source: str) -> list[str]:
    """An egress ipBlock is an allow-list: it pins its ports, and when it spans a cloud
    metadata address it excepts it (SSRF defence for user-chosen webhook endpoints)."""
    import ipaddress

    v: list[str] = []
    for n, rule in enumerate(dig(doc, "spec", "egress") or []):
        for peer in rule.get("to") or []:
            block = peer.get("ipBlock")
            if not block:
                continue
            try:
                net = ipaddress.ip_network(block.get("cidr", ""), strict=False)
                excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
            except ValueError as e:
                v.append(f"{source}: {ref(doc)} egress rule {n}: invalid ipBlock: {e}")
                continue
            for address in map(ipaddress.ip_address, METADATA_ADDRESSES):
                if address.version == net.version and address in net and not any(address in e for e in excepts):
                    v.append(
                        f"{source}: {ref(doc)} egress rule {n}: ipBlock {net} reaches the metadata address "
                        f"{address}; add it (169.254.0.0/16, fd00:ec2::/32 or fc00::/7) to `except`"
                    )
            if net.prefixlen == 0 and not rule.get("ports"):
                v.append(f"{source}: {ref(doc)} egress rule {n}: ipBlock {net} allows every port; pin the ports")
    return v


def _selects(selector: dict | None, labels: dict) -> bool:
    """Does a label selector (matchLabels only; matchExpressions count as no match)
    select pods with `labels`? An empty selector selects every pod."""
    selector = selector or {}
    if selector.get("matchExpressions"):
        return False
    return all(labels.get(k) == val for k, val in (selector.get("matchLabels") or {}).items())


def _peer_selects(peer: dict, labels: dict) -> bool:
    """Does a NetworkPolicy peer select pods of its own namespace with `labels`?"""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer and peer["namespaceSelector"] not in ({}, None):
        return False
    return _selects(peer.get("podSelector"), labels)


def _ports_allow(rule: dict, port: int, name: str) -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") in (port, name) for p in ports)


def _policy_types(policy: dict) -> list[str]:
    spec = policy.get("spec") or {}
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress") else []))


def check_calls(docs: list[dict], policies: list[dict], source: str) -> list[str]:
    """A service calling another (SERVICES[...]["calls"]) is allowed to by both
    NetworkPolicies: egress of the caller to the callee's pods on the port, ingress of
    the callee from the caller's pods on it."""
    v: list[str] = []
    pod_labels = {
        dig(d, "metadata", "name"): dig(d, "spec", "template", "metadata", "labels") or {}
        for d in docs
        if d.get("kind") == "Deployment"
    }
    for caller, info in SERVICES.items():
        for callee, port in info.get("calls", {}).items():
            if caller not in pod_labels or callee not in pod_labels:
                continue
            caller_labels, callee_labels = pod_labels[caller], pod_labels[callee]
            out = [p for p in policies if _selects(dig(p, "spec", "podSelector"), caller_labels)]
            into = [p for p in policies if _selects(dig(p, "spec", "podSelector"), callee_labels)]
            if any("Egress" in _policy_types(p) for p in out) and not any(
                _ports_allow(rule, port, "grpc")
                and (not rule.get("to") or any(_peer_selects(peer, callee_labels) for peer in rule["to"]))
                for p in out
                for rule in dig(p, "spec", "egress") or []
            ):
                v.append(f"{source}: NetworkPolicy for {caller} allows no egress to {callee} on {port}")
            if any("Ingress" in _policy_types(p) for p in into) and not any(
                _ports_allow(rule, port, "grpc")
                and (not rule.get("from") or any(_peer_selects(peer, caller_labels) for peer in rule["from"]))
                for p in into
                for rule in dig(p, "spec", "ingress") or []
            ):
                v.append(f"{source}: NetworkPolicy for {callee} allows no ingress from {caller} on {port}")
    return v


def check_coverage(docs: list[dict], source: str) -> list[str]:
    """Every service is deployed, and covered by the components the rendering uses."""
    v: list[str] = []
    deployments = {dig(d, "metadata", "name") for d in docs if d.get("kind") == "Deployment"}
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    default_deny = any(dig(p, "spec", "podSelector") in ({}, None) for p in policies)
    monitors = [d for d in docs if d.get("kind") == "ServiceMonitor"]
    for service in SERVICES:
        if service not in deployments:
            v.append(f"{source}: no Deployment {service} (every overlay deploys every service)")
        own = [p for p in policies if dig(p, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") == service]
        if default_deny and not own:
            v.append(f"{source}: no NetworkPolicy for {service} under the default deny (it could reach nothing)")
        if default_deny and own:
            allowed = {
                port.get("port")
                for p in own
                for rule in dig(p, "spec", "egress") or []
                if any("ipBlock" in peer for peer in rule.get("to") or [])
                for port in rule.get("ports") or []
            }
            for port in SERVICES[service].get("egress_ports", ()):
                if port not in allowed:
                    v.append(
                        f"{source}: NetworkPolicy for {service} allows no egress to external addresses on {port} "
                        "(its deliveries would fail)"
                    )
        if monitors and not any(
            dig(m, "spec", "selector", "matchLabels", "app.kubernetes.io/name") == service for m in monitors
        ):
            v.append(f"{source}: no ServiceMonitor for {service}")
    if default_deny:
        v.extend(check_calls(docs, policies, source))
    return v


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
        if doc.get("kind") == "Ingress":
            violations.extend(check_ingress(doc, source))
        if doc.get("kind") == "NetworkPolicy":
            violations.extend(check_egress(doc, source))
        violations.extend(check_service(doc, docs, source))
        pod = pod_spec(doc)
        if pod is None:
            continue
        workloads += 1
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                violations.append(f"{source}: {ref(doc)}: {flag} is true")
        # A Job's container runs to completion: probes have nothing to tell.
        completes = doc.get("kind") in ("Job", "CronJob")
        for init, key in ((True, "initContainers"), (False, "containers")):
            for c in pod.get(key) or []:
                where = f"{source}: {ref(doc)} container {c.get('name')}"
                violations.extend(check_container(where, c, pod, init or completes))
    if workloads == 0:
        violations.append(f"{source}: no workload found (nothing was checked)")
    violations.extend(check_coverage(docs, source))
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
    for binary in (*SERVICES, "psirtctl"):
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
                    continue
                # The directories the service writes, as the binary resolved them.
                service = service_of(doc)
                if service and SERVICES[service]["writable"]:
                    try:
                        effective = json.loads(run.stdout)
                    except json.JSONDecodeError:
                        v.append(f"{where}: `{binary.name} config` printed no JSON configuration")
                        continue
                    namespace = dig(doc, "metadata", "namespace")
                    replicas = replica_ceiling(doc, docs)
                    for key in SERVICES[service]["writable"]:
                        value = dig(effective, *key.split("."))
                        v.extend(
                            writable_dir_problems(
                                f"{where} (effective config)", key, value, c, pod, namespace, docs, replicas
                            )
                        )
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
        # A database and a login role per service, the password from a Secret.
        initdb = dig(spec, "bootstrap", "initdb") or {}
        roles = {r.get("name"): r for r in dig(spec, "managed", "roles") or []}
        databases = {dig(d, "spec", "name"): d for d in docs if d.get("kind") == "Database"}
        for service, info in SERVICES.items():
            db = info["database"]
            if initdb.get("database") == db:
                if initdb.get("owner") != db or not dig(initdb, "secret", "name"):
                    v.append(f"{pg_path}: bootstrap database {db} needs owner {db} and a password Secret")
                continue
            role = roles.get(db)
            if not role or role.get("login") is not True or not dig(role, "passwordSecret", "name"):
                v.append(f"{pg_path}: no managed login role {db} with a password Secret ({service})")
            database = databases.get(db)
            if not database or dig(database, "spec", "owner") != db:
                v.append(f"{pg_path}: no Database {db} owned by {db} ({service})")
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
# Grafana dashboard

DASHBOARD = REPO / "deploy/grafana/psirt-dashboard.json"
OPERATIONS_DOC = REPO / "docs/operations.md"

# PromQL words that are not metric names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "histogram_quantile", "label_values", "label_replace", "label_join", "abs", "ceil",
    "floor", "round", "clamp", "clamp_min", "clamp_max", "vector", "scalar", "time", "absent",
    "absent_over_time", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
    "count_over_time", "last_over_time", "changes", "resets", "sort", "sort_desc", "inf", "nan",
    "query_result", "metrics", "label_names",
}


def documented_metrics(doc: Path = OPERATIONS_DOC) -> dict[str, str]:
    """name -> type, from the `| `name` | type | ...` rows of the `## Metrics` section."""
    text = doc.read_text()
    match = re.search(r"^## Metrics\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not match:
        return {}
    metrics = {}
    for line in match.group(1).splitlines():
        row = re.match(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(\w+)\s*\|", line)
        if row:
            metrics[row.group(1)] = row.group(2)
    return metrics


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana variables) refers to."""
    # Grafana's label_values(metric{...}, label) / label_values(label): only the metric.
    lv = re.fullmatch(r"\s*label_values\((.*)\)\s*", expr, re.S)
    if lv:
        args = lv.group(1)
        return promql_metric_names(args.rsplit(",", 1)[0]) if "," in args else set()
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^{}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges and subqueries
    e = re.sub(r"\$\{[^}]*\}|\$\w+", " ", e)  # Grafana variables
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word in PROMQL_WORDS or re.fullmatch(r"e\d*", word):
            continue
        names.add(word)
    return names


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and query variable."""
    found = []

    def panels(items):
        for p in items or []:
            yield p
            yield from panels(p.get("panels"))

    for p in panels(dashboard.get("panels")):
        for t in p.get("targets") or []:
            if t.get("expr"):
                found.append((f"panel {p.get('title')!r} target {t.get('refId')}", t["expr"]))
    for v in dig(dashboard, "templating", "list") or []:
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if q:
                found.append((f"variable {v.get('name')!r}", q))
    return found


def check_dashboard(path: Path = DASHBOARD, doc: Path = OPERATIONS_DOC) -> list[str]:
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [f"{path}: not valid JSON: {e}"]
    violations = []
    if not isinstance(dashboard, dict) or "panels" not in dashboard:
        return [f"{path}: not a Grafana dashboard (no panels)"]
    if not isinstance(dashboard.get("schemaVersion"), int) or dashboard["schemaVersion"] < 38:
        violations.append(f"{path}: schemaVersion {dashboard.get('schemaVersion')!r} is older than Grafana 10 (38)")
    variables = dig(dashboard, "templating", "list") or []
    if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables):
        violations.append(f"{path}: no Prometheus datasource variable")
    documented = documented_metrics(doc)
    if not documented:
        return violations + [f"{doc}: no metrics table under ## Metrics"]
    exprs = dashboard_exprs(dashboard)
    if not exprs:
        violations.append(f"{path}: no PromQL queries")
    for where, expr in exprs:
        for name in sorted(promql_metric_names(expr)):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if name in documented or documented.get(base) == "histogram":
                continue
            violations.append(f"{path}: {where} uses {name}, which is not in the Metrics table of {doc.name}")
    return violations


# ------------------------------------------------------------------------------------------
# Alert rules (components/monitoring/prometheusrule.yaml) against docs/operations.md

# Metrics a rule may name beyond the Metrics table: Prometheus's own scrape series.
PROMETHEUS_OWN_METRICS = {"up"}
SEVERITIES = {"page", "warning", "ticket", "info"}


def documented_alerts(doc: Path = OPERATIONS_DOC) -> dict[str, dict]:
    """name -> {severity, for, expr} from the `### Psirt...` sections under `## Alerts`:
    a line `Severity `<severity>`, for <duration>` (or without `for`) and one promql block."""
    text = doc.read_text()
    match = re.search(r"^## Alerts\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not match:
        return {}
    alerts = {}
    for section in re.finditer(r"^### (Psirt\w+)\n(.*?)(?=^### |\Z)", match.group(1), re.S | re.M):
        name, body = section.group(1), section.group(2)
        severity = re.search(r"^Severity `(\w+)`(?:, for (\d+[smh]))?", body, re.M)
        exprs = re.findall(r"```promql\n(.*?)```", body, re.S)
        alerts[name] = {
            "severity": severity.group(1) if severity else None,
            "for": severity.group(2) if severity else None,
            "exprs": exprs,
        }
    return alerts


def normalize_promql(expr: str) -> str:
    return " ".join(expr.split())


def alert_rules(docs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(PrometheusRule objects, their rule groups) of a rendering."""
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    groups = [g for r in rules for g in dig(r, "spec", "groups") or []]
    return rules, groups


def check_alerts(docs: list[dict], doc: Path = OPERATIONS_DOC) -> list[str]:
    rules, groups = alert_rules(docs)
    if len(rules) != 1:
        return [f"expected one PrometheusRule in the rendering, found {len(rules)}"]
    documented = documented_alerts(doc)
    if not documented:
        return [f"{doc}: no `### Psirt...` alerts under ## Alerts"]
    metrics = documented_metrics(doc)
    v: list[str] = []
    seen: dict[str, int] = {}
    for group in groups:
        for rule in group.get("rules") or []:
            name = rule.get("alert")
            if not name:
                v.append(f"group {group.get('name')}: a rule without `alert` (recording rules are not documented)")
                continue
            seen[name] = seen.get(name, 0) + 1
            where = f"alert {name}"
            spec = documented.get(name)
            if spec is None:
                v.append(f"{where}: not documented under ## Alerts in {doc.name}")
                continue
            if len(spec["exprs"]) != 1:
                v.append(f"{where}: {doc.name} shows {len(spec['exprs'])} promql blocks for it, expected one")
            elif normalize_promql(rule.get("expr", "")) != normalize_promql(spec["exprs"][0]):
                v.append(f"{where}: expr differs from {doc.name}: {normalize_promql(rule.get('expr', ''))!r}")
            if spec["severity"] not in SEVERITIES:
                v.append(f"{where}: {doc.name} gives no severity of {sorted(SEVERITIES)}")
            elif dig(rule, "labels", "severity") != spec["severity"]:
                v.append(f"{where}: severity {dig(rule, 'labels', 'severity')!r}, documented {spec['severity']!r}")
            if rule.get("for") != spec["for"]:
                v.append(f"{where}: for {rule.get('for')!r}, documented {spec['for']!r}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description"):
                if not str(annotations.get(key, "")).strip():
                    v.append(f"{where}: no {key} annotation")
            runbook = f"docs/operations.md#{name.lower()}"
            if annotations.get("runbook_url") != runbook:
                v.append(f"{where}: runbook_url {annotations.get('runbook_url')!r}, expected {runbook!r}")
            for metric in sorted(promql_metric_names(rule.get("expr", ""))):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                if metric in metrics or metrics.get(base) == "histogram" or metric in PROMETHEUS_OWN_METRICS:
                    continue
                v.append(f"{where}: uses {metric}, which is not in the Metrics table of {doc.name}")
    for name, count in sorted(seen.items()):
        if count > 1:
            v.append(f"alert {name}: {count} rules, expected one")
    for name in sorted(set(documented) - set(seen)):
        v.append(f"alert {name}: documented in {doc.name}, but no rule")
    return v


def write_alert_groups(docs: list[dict], out: Path) -> None:
    _, groups = alert_rules(docs)
    out.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))


# ------------------------------------------------------------------------------------------
# self-test

# One defect per rule: (description, mutation of a service Deployment, expected text). Each
# is applied to a copy of every service's Deployment, so each service's hardening is tested.
def _container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _volume(doc: dict, name: str) -> dict:
    return next(v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == name)


def _without_mount(doc: dict, name: str) -> None:
    c = _container(doc)
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != name]


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
    (
        "liveness following readiness",
        lambda d: _container(d).update(livenessProbe={"grpc": {"port": 50051}}),
        "livenessProbe is not an httpGet of /healthz",
    ),
    (
        "startup on the grpc health",
        lambda d: _container(d).update(startupProbe={"grpc": {"port": 50051}}),
        "startupProbe is not an httpGet of /healthz",
    ),
    (
        "readiness on another service",
        lambda d: _container(d)["readinessProbe"]["grpc"].update(service="grpc.health.v1.Health"),
        "readinessProbe is not a grpc probe",
    ),
]


# Defects of the writable directories (services with SERVICES[...]["writable"]): the volume
# holding advisory.csaf_directory is named `csaf` in the base.
WRITABLE_MUTATIONS = [
    ("CSAF directory not mounted", lambda d: _without_mount(d, "csaf"), "is not on a mounted volume"),
    (
        "CSAF directory mounted read-only",
        lambda d: next(m for m in _container(d)["volumeMounts"] if m["name"] == "csaf").update(readOnly=True),
        "mounted read-only",
    ),
    (
        "CSAF directory on an emptyDir with 3 replicas",
        lambda d: (
            _volume(d, "csaf").pop("persistentVolumeClaim", None),
            _volume(d, "csaf").update(emptyDir={}),
            d["spec"].update(replicas=3),
        ),
        "is on an emptyDir with up to 3 replicas",
    ),
    (
        "CSAF directory on a ReadWriteOnce claim with 3 replicas",
        lambda d: (
            _volume(d, "csaf").update(persistentVolumeClaim={"claimName": "broken-rwo"}),
            d["spec"].update(replicas=3),
        ),
        "not ReadWriteMany",
    ),
    (
        "CSAF directory moved by env to the read-only root",
        lambda d: _container(d)["env"].append({"name": "PSIRT_ADVISORY__CSAF_DIRECTORY", "value": "/srv/csaf"}),
        "is not on a mounted volume",
    ),
]


def _ingress(
    name: str, namespace, path: str, service: str, port: dict, path_type: str = "Prefix", annotations=None
) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "rules": [
                {
                    "host": "psirt.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": path_type,
                                "backend": {"service": {"name": service, "port": port}},
                            }
                        ]
                    },
                }
            ]
        },
    }


def self_test(good: Path) -> int:
    me = Path(__file__).resolve()
    failures: list[str] = []

    def policy(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(me), "policy", str(path)], capture_output=True, text=True)

    ok = policy(good)
    if ok.returncode != 0:
        failures.append(f"the good manifests fail the policy:\n{ok.stdout}{ok.stderr}")

    docs = load_docs(good)
    by_service = {
        dig(d, "metadata", "name"): d for d in docs if d.get("kind") == "Deployment" and dig(d, "metadata", "name") in SERVICES
    }
    missing = [svc for svc in SERVICES if svc not in by_service]
    if missing:
        print(f"FAIL self-test needs the Deployments of every service in the good manifests; missing: {missing}")
        return 1

    def expect(output: str, what: str, marker: str, expected: str) -> None:
        hit = [ln for ln in output.splitlines() if marker in ln and expected in ln]
        status = "detected" if hit else "MISSED"
        print(f"  self-test: {what}: {status}")
        if not hit:
            failures.append(f"defect {what!r} not reported (expected {expected!r})")

    with tempfile.TemporaryDirectory(prefix="psirt-policy-selftest-") as tmp:
        # 1. One broken copy per (service, defect), all in one file next to the good objects.
        broken_docs = copy.deepcopy(docs)
        cases = []
        for svc, deployment in by_service.items():
            rules = [(f"{svc}: {what}", mutate, expected) for what, mutate, expected in MUTATIONS]
            if SERVICES[svc]["writable"]:
                rules += [(f"{svc}: {what}", mutate, expected) for what, mutate, expected in WRITABLE_MUTATIONS]
            for n, (what, mutate, expected) in enumerate(rules):
                victim = copy.deepcopy(deployment)
                victim["metadata"]["name"] = f"broken-{svc}-{n}"
                mutate(victim)
                broken_docs.append(victim)
                cases.append((what, f"/broken-{svc}-{n} ", expected))
        namespace = dig(by_service["psirt-remediation"], "metadata", "namespace")
        rwo = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "broken-rwo", **({"namespace": namespace} if namespace else {})},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
        broken_docs.append(rwo)
        broken_docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "broken-config"},
                "data": {"svc.toml": '[database]\nurl = "postgres://psirt:hunter2@db/psirt"\n'},
            }
        )
        # Ingresses that would publish more of an admin port than its service's public
        # paths (psirt-remediation: the CSAF directory; psirt-notification: exactly the
        # two tracker webhooks; the others: nothing).
        for n, (path, svc, port, path_type) in enumerate(
            [
                ("/metrics", "psirt-remediation", {"name": "admin"}, "Prefix"),
                ("/", "psirt-remediation", {"number": 9103}, "Prefix"),
                ("/.well-known/csafx", "psirt-remediation", {"name": "admin"}, "Prefix"),
                ("/.well-known/csaf", "psirt-remediation", {"name": "admin"}, "ImplementationSpecific"),
                ("/webhooks/jira", "psirt-notification", {"number": 9104}, "Prefix"),
                ("/.well-known/csaf", "psirt-notification", {"name": "admin"}, "Prefix"),
                ("/metrics", "psirt-notification", {"name": "admin"}, "Exact"),
                ("/", "psirt-notification", {"number": 9104}, "Prefix"),
                ("/hooks", "psirt-notification", {"name": "admin"}, "Prefix"),
                ("/hooks/jira", "psirt-notification", {"name": "admin"}, "Prefix"),
                ("/hooks/servicenowx", "psirt-notification", {"name": "admin"}, "Exact"),
                ("/hooks/jira", "psirt-remediation", {"name": "admin"}, "Exact"),
                ("/.well-known/csaf", "psirt-intake", {"name": "admin"}, "Prefix"),
                ("/.well-known/csaf", "psirt-triage", {"number": 9102}, "Prefix"),
            ]
        ):
            broken_docs.append(_ingress(f"broken-ingress-{n}", namespace, path, svc, port, path_type))
            cases.append(
                (
                    f"Ingress publishing {path} ({path_type}) of the admin port of {svc}",
                    f"/broken-ingress-{n}:",
                    "to the admin port",
                )
            )
        # An allowed path whose annotations make it reach another path (/metrics).
        for n, (path, svc, path_type, annotations) in enumerate(
            [
                (
                    "/hooks/jira",
                    "psirt-notification",
                    "Exact",
                    {"nginx.ingress.kubernetes.io/rewrite-target": "/metrics"},
                ),
                (
                    "/hooks/servicenow",
                    "psirt-notification",
                    "Exact",
                    {"nginx.ingress.kubernetes.io/configuration-snippet": "rewrite ^ /metrics break;"},
                ),
                ("/.well-known/csaf", "psirt-remediation", "Prefix", {"nginx.ingress.kubernetes.io/use-regex": "true"}),
            ]
        ):
            name = f"broken-ingress-annotated-{n}"
            broken_docs.append(_ingress(name, namespace, path, svc, {"name": "admin"}, path_type, annotations))
            key = next(iter(annotations))
            cases.append((f"Ingress routing {path} of {svc} with {key}", f"/{name}:", f"annotation {key}"))
        # Egress allow-lists (SSRF defence): copies of every NetworkPolicy with an ipBlock,
        # one reaching the metadata address, one allowing every port.
        for policy_doc in (d for d in docs if d.get("kind") == "NetworkPolicy"):
            for n, rule in enumerate(dig(policy_doc, "spec", "egress") or []):
                if not any("ipBlock" in peer for peer in rule.get("to") or []):
                    continue
                name = dig(policy_doc, "metadata", "name")
                open_meta = copy.deepcopy(policy_doc)
                # The rule's index in the name: a policy may hold several ipBlock rules
                # (psirt-notification: HTTPS and SMTP), each must be caught on its own.
                open_meta["metadata"]["name"] = f"broken-{name}-{n}-metadata"
                for peer in open_meta["spec"]["egress"][n]["to"]:
                    if "ipBlock" in peer:
                        peer["ipBlock"]["except"] = [
                            e for e in peer["ipBlock"].get("except") or [] if e not in ("169.254.0.0/16", "fc00::/7")
                        ]
                broken_docs.append(open_meta)
                what = f"{name}: egress rule {n} to the metadata address"
                cases.append((what, f"/broken-{name}-{n}-metadata ", "reaches the metadata address"))
                all_ports = copy.deepcopy(policy_doc)
                all_ports["metadata"]["name"] = f"broken-{name}-{n}-ports"
                all_ports["spec"]["egress"][n].pop("ports", None)
                broken_docs.append(all_ports)
                cases.append(
                    (
                        f"{name}: egress rule {n} to the world on every port",
                        f"/broken-{name}-{n}-ports ",
                        "allows every port",
                    )
                )
        broken = Path(tmp) / "broken.yaml"
        with broken.open("w") as f:
            yaml.safe_dump_all(broken_docs, f, sort_keys=False)
        run = policy(broken)
        if run.returncode == 0:
            failures.append("the broken copy passed the policy")
        for what, marker, expected in cases:
            expect(run.stdout, what, marker, expected)
        if "a URL with a password" not in run.stdout:
            failures.append("a password in a ConfigMap URL was not reported")
        else:
            print("  self-test: password in a ConfigMap: detected")

        # 2. Renderings that lost a service (each in turn) with its policy and monitor.
        for gone in SERVICES:
            partial = [
                d
                for d in docs
                if not (
                    d.get("kind") in ("Deployment", "NetworkPolicy", "ServiceMonitor")
                    and dig(d, "metadata", "name") == gone
                )
            ]
            partial_path = Path(tmp) / "partial.yaml"
            with partial_path.open("w") as f:
                yaml.safe_dump_all(partial, f, sort_keys=False)
            run = policy(partial_path)
            for what, expected in (
                (f"{gone} not deployed", f"no Deployment {gone}"),
                (f"{gone} without a NetworkPolicy", f"no NetworkPolicy for {gone}"),
                (f"{gone} without a ServiceMonitor", f"no ServiceMonitor for {gone}"),
            ):
                expect(run.stdout, what, "", expected)

        # 2b. A service that delivers outside (egress_ports) whose NetworkPolicy lost that egress.
        for svc, info in SERVICES.items():
            for port in info.get("egress_ports", ()):
                cut = copy.deepcopy(docs)
                for d in cut:
                    if d.get("kind") == "NetworkPolicy" and dig(d, "metadata", "name") == svc:
                        d["spec"]["egress"] = [
                            r
                            for r in d["spec"].get("egress") or []
                            if port not in [p.get("port") for p in r.get("ports") or []]
                        ]
                cut_path = Path(tmp) / "cut.yaml"
                with cut_path.open("w") as f:
                    yaml.safe_dump_all(cut, f, sort_keys=False)
                run = policy(cut_path)
                expected = f"{svc} allows no egress to external addresses on {port}"
                expect(run.stdout, f"{svc} without egress on {port}", "", expected)

        # 2c. The paths a service may publish do pass (the rule must not reject them): an
        # Ingress per service with exactly its public admin paths, added to the good objects.
        allowed_docs = copy.deepcopy(docs)
        for svc, info in SERVICES.items():
            for n, (path, match) in enumerate(info.get("public_admin", ())):
                path_type = "Prefix" if match == "subtree" else "Exact"
                allowed_docs.append(
                    _ingress(f"allowed-{svc}-{n}", namespace, path, svc, {"name": "admin"}, path_type)
                )
        allowed_path = Path(tmp) / "allowed.yaml"
        with allowed_path.open("w") as f:
            yaml.safe_dump_all(allowed_docs, f, sort_keys=False)
        run = policy(allowed_path)
        status = "passes" if run.returncode == 0 else "REJECTED"
        print(f"  self-test: Ingresses of the public admin paths only: {status}")
        if run.returncode != 0:
            failures.append(f"Ingresses of the allowed public admin paths fail the policy:\n{run.stdout}")

        # 2d. A service calling another (SERVICES[...]["calls"]) whose NetworkPolicies lost
        # the caller's egress or the callee's ingress for that call.
        has_policies = any(d.get("kind") == "NetworkPolicy" for d in docs)
        for caller, info in SERVICES.items():
            for callee, port in info.get("calls", {}).items() if has_policies else ():
                callee_labels = dig(by_service[callee], "spec", "template", "metadata", "labels") or {}
                caller_labels = dig(by_service[caller], "spec", "template", "metadata", "labels") or {}
                for side, owner, peers, labels, expected in (
                    ("egress", caller, "to", callee_labels, f"{caller} allows no egress to {callee} on {port}"),
                    ("ingress", callee, "from", caller_labels, f"{callee} allows no ingress from {caller} on {port}"),
                ):
                    cut = copy.deepcopy(docs)
                    for d in cut:
                        if d.get("kind") == "NetworkPolicy" and dig(d, "metadata", "name") == owner:
                            d["spec"][side] = [
                                r
                                for r in d["spec"].get(side) or []
                                if not (
                                    _ports_allow(r, port, "grpc")
                                    and (not r.get(peers) or any(_peer_selects(pe, labels) for pe in r[peers]))
                                )
                            ]
                    cut_path = Path(tmp) / "cut-calls.yaml"
                    with cut_path.open("w") as f:
                        yaml.safe_dump_all(cut, f, sort_keys=False)
                    run = policy(cut_path)
                    expect(run.stdout, f"{caller} -> {callee} without {side} on {port}", "", expected)

        # 3. The Dockerfile check must fail on a Dockerfile that lost members and binaries and
        # runs as root.
        df = (REPO / "deploy/docker/Dockerfile").read_text()
        bad_df = Path(tmp) / "Dockerfile"
        bad_df.write_text(
            df.replace("COPY services/triage/Cargo.toml services/triage/\n", "")
            .replace("COPY services/remediation/Cargo.toml services/remediation/\n", "")
            .replace("target/release/psirt-remediation", "")
            .replace("target/release/psirt-notification", "")
            .replace("USER 65532:65532", "USER root")
        )
        found = check_dockerfile(bad_df)
        for expected in (
            "services/triage/Cargo.toml",
            "services/remediation/Cargo.toml",
            "binary psirt-remediation is not copied",
            "binary psirt-notification is not copied",
            "not a numeric non-root user",
        ):
            status = "detected" if any(expected in x for x in found) else "MISSED"
            print(f"  self-test: Dockerfile {expected}: {status}")
            if status == "MISSED":
                failures.append(f"Dockerfile defect {expected!r} not reported")
        # 4. The dashboard check must fail on a query naming an undocumented metric, on a
        # file that is not JSON, and on a dashboard without its datasource variable.
        good_dashboard = json.loads(DASHBOARD.read_text())
        ok_found = check_dashboard(DASHBOARD)
        if ok_found:
            failures.append(f"the dashboard fails its check: {ok_found}")
        undocumented = copy.deepcopy(good_dashboard)
        target = next(t for p in undocumented["panels"] for t in p.get("targets") or [])
        target["expr"] = 'sum(rate(psirt_not_documented_total{job=~"$job"}[5m])) / sum(rpc_server_duration_seconds_count)'
        no_datasource = copy.deepcopy(good_dashboard)
        no_datasource["templating"]["list"] = [
            v for v in no_datasource["templating"]["list"] if v.get("type") != "datasource"
        ]
        for what, content, expected in (
            ("dashboard with an undocumented metric", json.dumps(undocumented), "uses psirt_not_documented_total"),
            ("dashboard that is not JSON", json.dumps(good_dashboard)[:-2], "not valid JSON"),
            ("dashboard without a datasource variable", json.dumps(no_datasource), "no Prometheus datasource variable"),
        ):
            bad = Path(tmp) / "dashboard.json"
            bad.write_text(content)
            found = check_dashboard(bad)
            status = "detected" if any(expected in x for x in found) else "MISSED"
            print(f"  self-test: {what}: {status}")
            if status == "MISSED":
                failures.append(f"{what} not reported (expected {expected!r}; got {found})")
        # 5. The alert rules: the shipped ones pass; an undocumented metric, a missing rule,
        # an extra rule, a changed expression or severity must each be reported.
        good_docs = load_docs(good)
        ok_found = check_alerts(good_docs)
        if ok_found:
            failures.append(f"the alert rules fail their check: {ok_found}")

        def alert_mutation(change) -> list[dict]:
            docs = copy.deepcopy(good_docs)
            rules = next(d for d in docs if d.get("kind") == "PrometheusRule")["spec"]["groups"][0]["rules"]
            change(rules)
            return docs

        def first(rules: list[dict]) -> dict:
            return rules[0]

        for what, change, expected in (
            (
                "alert with an undocumented metric",
                lambda r: first(r).update(expr=first(r)["expr"] + " or psirt_not_documented_total > 0"),
                "uses psirt_not_documented_total",
            ),
            ("documented alert without a rule", lambda r: r.pop(0), "but no rule"),
            ("rule of an undocumented alert", lambda r: r.append(dict(first(r), alert="PsirtNotDocumented")), "not documented"),
            ("alert with two rules", lambda r: r.append(copy.deepcopy(first(r))), "2 rules, expected one"),
            ("alert with another expression", lambda r: first(r).update(expr="vector(1) > 0"), "expr differs"),
            ("alert with another severity", lambda r: first(r)["labels"].update(severity="info"), "severity 'info'"),
            ("alert without a runbook", lambda r: first(r)["annotations"].pop("runbook_url"), "runbook_url None"),
        ):
            found = check_alerts(alert_mutation(change))
            status = "detected" if any(expected in x for x in found) else "MISSED"
            print(f"  self-test: {what}: {status}")
            if status == "MISSED":
                failures.append(f"{what} not reported (expected {expected!r}; got {found})")
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
    if cmd == "dashboard" and len(args) <= 1:
        path = Path(args[0]) if args else DASHBOARD
        return report(check_dashboard(path), "dashboard")
    if cmd == "alerts" and len(args) == 2:
        docs = load_docs(Path(args[0]))
        violations = check_alerts(docs)
        if not violations:
            write_alert_groups(docs, Path(args[1]))
        return report(violations, "alerts")
    if cmd == "infra" and not args:
        return report(check_infra(), "infra")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
