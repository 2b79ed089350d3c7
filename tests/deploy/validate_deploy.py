#!/usr/bin/python3
"""Checks the deployment files by parsing them (no container engine runs in CI).

    validate_deploy.py REPO_ROOT               check the files under REPO_ROOT
    validate_deploy.py --self-test REPO_ROOT   also break copies of them in a
                                               temporary folder, one way at a
                                               time, and expect each to fail

Covers deploy/docker/Dockerfile (+ the root .dockerignore),
deploy/compose/docker-compose.yml, deploy/k8s/*.yaml and
deploy/systemd/inventoryd.service (+ inventoryd.env.example): what each must
hold for inventoryd to start, be probed, drain on SIGTERM and keep the shard
passwords out of argv and images. Prints every problem and exits 1 if there
is any, 0 otherwise. Needs python3-yaml (scripts/install-deps.sh).
"""

import base64
import glob
import json
import os
import re
import shlex
import shutil
import sys
import tempfile

import yaml

GRPC_PORT = 50051
METRICS_PORT = 9464
READINESS_SERVICE = "inventory.v1.InventoryService"
DEFAULT_DRAIN_S = 10.0  # inventoryd's --drain_timeout default
# After the drain deadline the executors get 1 s more and the shard monitors
# 1 s to stop: a stop can take drain + 2 s.
SHUTDOWN_SLACK_S = 2.0
ROOT_USERS = {"root", "0", "root:root", "0:0", "root:0", "0:root"}

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
          "h": 3600.0, "hr": 3600.0}


def parse_duration(value):
    """Seconds in '10s', '1m30s', '1min 30s', '500ms' or a bare number."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(us|ms|sec|min|hr|s|m|h)", text)
    if not parts or re.sub(r"[\d.\s]|us|ms|sec|min|hr|s|m|h", "", text):
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def split_dsns(value):
    """INVENTORY_SHARDS as inventoryd splits it: on commas, trimmed."""
    return [p.strip() for p in str(value).split(",")]


def dsn_keywords(dsn):
    return dict(kv.split("=", 1) for kv in dsn.split() if "=" in kv)


class Checker:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.errors = []
        self.checks = 0

    def rel(self, path):
        return os.path.relpath(path, self.root)

    def check(self, cond, where, message):
        self.checks += 1
        if not cond:
            self.errors.append(f"{where}: {message}")
        return bool(cond)

    def fail(self, where, message):
        self.check(False, where, message)

    def read(self, rel):
        path = os.path.join(self.root, rel)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            self.fail(rel, f"cannot read: {e.strerror}")
            return None

    def load_yaml(self, rel):
        text = self.read(rel)
        if text is None:
            return None
        try:
            return [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as e:
            self.fail(rel, f"invalid YAML: {e}")
            return None

    # ------------------------------------------------------------ Dockerfile
    def dockerfile(self):
        rel = "deploy/docker/Dockerfile"
        text = self.read(rel)
        if text is None:
            return
        # Logical instructions: comments dropped, continuation lines joined.
        instructions, pending = [], ""
        for line in text.splitlines():
            if not pending and line.lstrip().startswith("#"):
                continue
            if pending and line.lstrip().startswith("#"):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            full = (pending + line).strip()
            pending = ""
            if full:
                word, _, rest = full.partition(" ")
                instructions.append((word.upper(), rest.strip()))

        stages = []  # list of lists of (instr, args)
        for instr, args in instructions:
            if instr == "FROM":
                stages.append([(instr, args)])
            elif stages:
                stages[-1].append((instr, args))
        self.check(len(stages) >= 2, rel,
                   f"needs a multi-stage build (>= 2 FROM), found {len(stages)}")
        names = set()
        for stage in stages:
            words = stage[0][1].split()
            image = words[0]
            if image not in names:  # FROM <earlier stage> is fine
                self.check(re.match(r"debian:(12|bookworm)\b", image), rel,
                           f"stage image {image!r} is not Debian 12 (bookworm)")
            if len(words) == 3 and words[1].upper() == "AS":
                names.add(words[2])
        for instr, args in instructions:
            if instr == "ADD":
                self.check(not re.search(r"\b(https?|ftp)://", args), rel,
                           f"ADD of a remote URL ({args}); download in a RUN with checksums")
        if len(stages) < 2:
            return
        build, final = stages[0], stages[-1]
        build_run = " ".join(a for i, a in build if i == "RUN")
        self.check("-DINVENTORY_BUILD_TESTS=OFF" in build_run, rel,
                   "build stage must configure with -DINVENTORY_BUILD_TESTS=OFF")
        self.check(re.search(r"--target\s+inventoryd\b", build_run), rel,
                   "build stage must build --target inventoryd")
        self.check(re.search(r"-DCMAKE_BUILD_TYPE=Release\b", build_run), rel,
                   "build stage must be a Release build")

        # Runtime stage: libraries only, non-root, exec-form entrypoint.
        final_run = " ".join(a for i, a in final if i == "RUN")
        for m in re.finditer(r"apt-get\s+install\s+([^&;|]*)", final_run):
            for pkg in m.group(1).split():
                if pkg.startswith("-"):
                    continue
                self.check(not (pkg.endswith("-dev") or pkg in
                                {"g++", "gcc", "cmake", "ninja-build", "make",
                                 "protobuf-compiler", "protobuf-compiler-grpc"}),
                           rel, f"runtime stage installs build package {pkg!r}")
        self.check(any(i == "COPY" and "--from=" in a for i, a in final), rel,
                   "runtime stage must COPY the binaries --from the build stage")
        users = [a for i, a in final if i == "USER"]
        self.check(users, rel, "runtime stage has no USER (would run as root)")
        if users:
            self.check(users[-1].strip() not in ROOT_USERS, rel,
                       f"runtime stage runs as root (USER {users[-1]})")
        for name in ("ENTRYPOINT", "CMD"):
            args = [a for i, a in final if i == name]
            if not self.check(args, rel, f"runtime stage has no {name}"):
                continue
            try:
                value = json.loads(args[-1])
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            except ValueError:
                value, ok = None, False
            if not self.check(ok, rel, f"{name} must be exec form (a JSON array), "
                                       f"got: {args[-1]}"):
                continue
            if name == "ENTRYPOINT":
                self.check(value and value[0] == "/usr/local/bin/inventoryd", rel,
                           f"ENTRYPOINT must start /usr/local/bin/inventoryd, got {value}")
            else:
                for flag in (f"--listen=0.0.0.0:{GRPC_PORT}",
                             f"--metrics_listen=0.0.0.0:{METRICS_PORT}",
                             "--log_format=json"):
                    self.check(flag in value, rel, f"CMD lacks {flag}")
                self.check(not any(v.startswith("--shards") for v in value), rel,
                           "CMD must not carry --shards (passwords in argv)")
        exposed = " ".join(a for i, a in final if i == "EXPOSE").split()
        for port in (GRPC_PORT, METRICS_PORT):
            self.check(str(port) in exposed or f"{port}/tcp" in exposed, rel,
                       f"runtime stage does not EXPOSE {port}")
        for i, a in final:
            if i == "ENV":
                self.check("INVENTORY_SHARDS" not in a, rel,
                           "INVENTORY_SHARDS must not be baked into the image")

        # Every COPY source must survive the root .dockerignore.
        sources = []
        for i, a in build:
            if i == "COPY" and "--from=" not in a:
                sources += [s for s in a.split()[:-1] if not s.startswith("--")]
        self.dockerignore(sources)

    def dockerignore(self, sources):
        rel = ".dockerignore"
        text = self.read(rel)
        if text is None:
            return
        patterns = [l.strip() for l in text.splitlines()
                    if l.strip() and not l.strip().startswith("#")]
        allow_list = bool(patterns) and patterns[0] in ("*", "**")
        reincluded = {p[1:].strip("/") for p in patterns if p.startswith("!")}
        if allow_list:
            for src in sources:
                top = src.strip("./").split("/")[0]
                self.check(top in reincluded, rel,
                           f"Dockerfile COPYs {src!r} but the allow-list does not "
                           f"re-include it (!{top})")
            self.check(not {".git", ".data", "build"} & reincluded, rel,
                       "must not re-include .git, .data or build")
        else:
            excluded = {p.strip("/") for p in patterns if not p.startswith("!")}
            for must in (".git", ".data", "build"):
                self.check(must in excluded, rel,
                           f"must exclude {must}/ (or start with '*' as an allow-list)")

    # --------------------------------------------------------------- compose
    def compose(self):
        rel = "deploy/compose/docker-compose.yml"
        docs = self.load_yaml(rel)
        if docs is None:
            return
        if not self.check(len(docs) == 1 and isinstance(docs[0], dict), rel,
                          "must be one YAML mapping"):
            return
        services = docs[0].get("services")
        if not self.check(isinstance(services, dict) and services, rel,
                          "has no services"):
            return
        named_volumes = docs[0].get("volumes") or {}

        def natural(name):
            return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]

        shards = sorted((n for n, s in services.items()
                         if str((s or {}).get("image", "")).startswith("postgres:15")),
                        key=natural)
        self.check(len(shards) == 2, rel,
                   f"expected 2 postgres:15 shard services, found {shards}")
        for name in shards:
            svc = services[name]
            test = (svc.get("healthcheck") or {}).get("test")
            test_text = " ".join(test) if isinstance(test, list) else str(test or "")
            self.check("pg_isready" in test_text, rel,
                       f"shard {name} needs a healthcheck running pg_isready")
            vols = [str(v).split(":")[0] if not isinstance(v, dict) else v.get("source")
                    for v in svc.get("volumes") or []]
            self.check(any(v in named_volumes for v in vols), rel,
                       f"shard {name} must keep its data in a named volume")
            env = self.env_map(svc.get("environment"))
            pw = env.get("POSTGRES_PASSWORD", env.get("POSTGRES_PASSWORD_FILE", ""))
            self.check(pw.startswith("${") or "POSTGRES_PASSWORD_FILE" in env, rel,
                       f"shard {name}: password must come from the environment "
                       f"or a secret, not the file")

        apps = [n for n, s in services.items()
                if "INVENTORY_SHARDS" in self.env_map((s or {}).get("environment"))]
        if not self.check(len(apps) == 1, rel,
                          f"expected one service with INVENTORY_SHARDS, found {apps}"):
            return
        app = services[apps[0]]
        where = f"{rel}: service {apps[0]}"
        build = app.get("build") or {}
        if self.check(isinstance(build, dict) and build.get("dockerfile"), where,
                      "must build from deploy/docker/Dockerfile"):
            ctx = os.path.normpath(os.path.join(self.root, "deploy/compose",
                                                build.get("context", ".")))
            dockerfile = os.path.normpath(os.path.join(ctx, build["dockerfile"]))
            self.check(ctx == self.root, where,
                       f"build context must be the repository root, is {self.rel(ctx)}")
            self.check(dockerfile == os.path.join(self.root, "deploy/docker/Dockerfile"),
                       where, f"dockerfile resolves to {self.rel(dockerfile)}")
        deps = app.get("depends_on")
        for name in shards:
            cond = deps.get(name, {}).get("condition") if isinstance(deps, dict) else None
            self.check(cond == "service_healthy", where,
                       f"must depend on {name} with condition service_healthy "
                       f"(found {cond!r})")
        dsns = split_dsns(self.env_map(app["environment"])["INVENTORY_SHARDS"])
        hosts = [dsn_keywords(d).get("host") for d in dsns]
        self.check(hosts == shards, where,
                   f"INVENTORY_SHARDS must list the shards in index order {shards}, "
                   f"lists hosts {hosts}")
        for i, d in enumerate(dsns):
            pw = dsn_keywords(d).get("password", "")
            self.check(pw.startswith("${"), where,
                       f"INVENTORY_SHARDS entry {i}: password must be interpolated "
                       f"from the environment, not written in the file")
        ports = " ".join(str(p) for p in app.get("ports") or [])
        self.check(re.search(rf":{GRPC_PORT}\b", ports), where,
                   f"must publish the gRPC port {GRPC_PORT}")
        drain = parse_duration(self.env_map(app["environment"]).get(
            "INVENTORY_DRAIN_TIMEOUT", DEFAULT_DRAIN_S))
        grace = parse_duration(app.get("stop_grace_period", "10s"))
        self.check(grace > drain + SHUTDOWN_SLACK_S, where,
                   f"stop_grace_period ({grace:g}s) must exceed the drain timeout "
                   f"({drain:g}s) + {SHUTDOWN_SLACK_S:g}s, or SIGKILL cuts the drain short")

    @staticmethod
    def env_map(env):
        if isinstance(env, dict):
            return {k: "" if v is None else str(v) for k, v in env.items()}
        if isinstance(env, list):
            return dict(str(e).split("=", 1) if "=" in str(e) else (str(e), "")
                        for e in env)
        return {}

    # ------------------------------------------------------------ Kubernetes
    def kubernetes(self):
        files = sorted(glob.glob(os.path.join(self.root, "deploy/k8s/*.yaml")) +
                       glob.glob(os.path.join(self.root, "deploy/k8s/*.yml")))
        if not self.check(files, "deploy/k8s", "no *.yaml manifests"):
            return
        objects = []  # (file, doc)
        for path in files:
            rel = self.rel(path)
            docs = self.load_yaml(rel)
            for doc in docs or []:
                if not self.check(isinstance(doc, dict), rel, "document is not a mapping"):
                    continue
                name = (doc.get("metadata") or {}).get("name")
                ok = all([self.check(doc.get("apiVersion"), rel, "document without apiVersion"),
                          self.check(doc.get("kind"), rel, "document without kind"),
                          self.check(name, rel, f"{doc.get('kind')} without metadata.name")])
                if ok:
                    objects.append((rel, doc))

        def of_kind(kind):
            return [(f, d) for f, d in objects if d["kind"] == kind]

        configmaps = {d["metadata"]["name"]: (f, d) for f, d in of_kind("ConfigMap")}
        secrets = {d["metadata"]["name"]: (f, d) for f, d in of_kind("Secret")}
        for f, d in configmaps.values():
            for k, v in (d.get("data") or {}).items():
                self.check(isinstance(v, str), f,
                           f"ConfigMap {d['metadata']['name']}: {k} must be a string "
                           f"(quote it), is {type(v).__name__}")
                self.check(re.fullmatch(r"INVENTORY_[A-Z0-9_]+", k), f,
                           f"ConfigMap key {k} is not an INVENTORY_<FLAG> variable")
                self.check(k != "INVENTORY_SHARDS", f,
                           "INVENTORY_SHARDS (passwords) belongs in a Secret, not a ConfigMap")
        shard_secrets = []
        for f, d in secrets.values():
            data = dict(d.get("stringData") or {})
            for k, v in (d.get("data") or {}).items():
                try:
                    data[k] = base64.b64decode(v).decode()
                except ValueError:
                    self.fail(f, f"Secret data {k} is not base64")
            if "INVENTORY_SHARDS" in data:
                shard_secrets.append(d["metadata"]["name"])
                dsns = split_dsns(data["INVENTORY_SHARDS"])
                self.check(all(dsns) and all(dsn_keywords(x).get("host") for x in dsns), f,
                           "INVENTORY_SHARDS must be comma-separated DSNs, each with host=")
        self.check(shard_secrets, "deploy/k8s", "no Secret holds INVENTORY_SHARDS")

        deployments = of_kind("Deployment")
        if not self.check(len(deployments) == 1, "deploy/k8s",
                          f"expected one Deployment, found {len(deployments)}"):
            return
        f, dep = deployments[0]
        where = f"{f}: Deployment {dep['metadata']['name']}"
        spec = dep.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        replicas = spec.get("replicas", 1)
        self.check(isinstance(replicas, int) and replicas >= 2, where,
                   f"replicas must be >= 2 for availability, is {replicas}")
        self.check(selector and selector.items() <= labels.items(), where,
                   "spec.selector.matchLabels must match the pod template labels")
        containers = {c.get("name"): c for c in pod.get("containers") or []}
        c = containers.get("inventoryd")
        if not self.check(c, where, "no container named inventoryd"):
            return
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        self.check(GRPC_PORT in ports.values(), where, f"no containerPort {GRPC_PORT}")

        def probe_port(grpc):
            port = grpc.get("port")
            return ports.get(port, port) if isinstance(port, str) else port

        for probe, want in (("readinessProbe", READINESS_SERVICE), ("livenessProbe", "")):
            grpc = (c.get(probe) or {}).get("grpc")
            if not self.check(isinstance(grpc, dict), where,
                              f"{probe} must be a native grpc: probe"):
                continue
            self.check(probe_port(grpc) == GRPC_PORT, where,
                       f"{probe} must probe port {GRPC_PORT}, probes {grpc.get('port')}")
            got = grpc.get("service", "")
            self.check(got == want, where,
                       f"{probe} must check health service {want!r}, checks {got!r}")
        pre = ((c.get("lifecycle") or {}).get("preStop")) or {}
        sleep_s = None
        if "sleep" in pre:
            sleep_s = float((pre["sleep"] or {}).get("seconds", 0))
        elif "exec" in pre:
            cmd = (pre["exec"] or {}).get("command") or []
            words = shlex.split(" ".join(cmd[2:])) if cmd[:1] in (["sh"], ["/bin/sh"]) else cmd
            if len(words) >= 2 and os.path.basename(str(words[0])) == "sleep":
                sleep_s = parse_duration(words[1])
        self.check(sleep_s and sleep_s > 0, where,
                   "lifecycle.preStop must sleep, so endpoints drain before SIGTERM")
        psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
        self.check(csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, where,
                   "securityContext.runAsNonRoot must be true")
        self.check(csc.get("runAsUser", psc.get("runAsUser", 1)) != 0, where,
                   "must not run as user 0")
        self.check(csc.get("readOnlyRootFilesystem") is True, where,
                   "container securityContext.readOnlyRootFilesystem must be true")
        self.check(csc.get("allowPrivilegeEscalation") is False, where,
                   "container securityContext.allowPrivilegeEscalation must be false")
        res = c.get("resources") or {}
        self.check((res.get("requests") or {}).get("cpu") and
                   (res.get("requests") or {}).get("memory") and
                   (res.get("limits") or {}).get("memory"), where,
                   "resources need cpu/memory requests and a memory limit")

        # Configuration wiring: the shards come from the Secret only.
        cm_refs = [e["configMapRef"]["name"] for e in c.get("envFrom") or []
                   if "configMapRef" in e]
        secret_refs = [e["secretRef"]["name"] for e in c.get("envFrom") or []
                       if "secretRef" in e]
        secret_refs += [e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env") or []
                        if e.get("name") == "INVENTORY_SHARDS"
                        and "secretKeyRef" in (e.get("valueFrom") or {})]
        for name in cm_refs:
            self.check(name in configmaps, where, f"envFrom names ConfigMap {name!r}, "
                                                  f"which is not in deploy/k8s")
        self.check(set(secret_refs) & set(shard_secrets), where,
                   "INVENTORY_SHARDS must reach the container from the Secret")
        for e in c.get("env") or []:
            self.check(not (e.get("name") == "INVENTORY_SHARDS" and "value" in e), where,
                       "INVENTORY_SHARDS must not be a plain env value")
        for a in (c.get("args") or []) + (c.get("command") or []):
            self.check(not str(a).startswith("--shards"), where,
                       "--shards on the command line exposes passwords")
        env = {}
        for name in cm_refs:
            if name in configmaps:
                env.update(configmaps[name][1].get("data") or {})
        env.update({e["name"]: e["value"] for e in c.get("env") or [] if "value" in e})
        drain = parse_duration(env.get("INVENTORY_DRAIN_TIMEOUT", DEFAULT_DRAIN_S))
        for a in c.get("args") or []:
            if str(a).startswith("--drain_timeout="):
                drain = parse_duration(str(a).split("=", 1)[1])
        grace = pod.get("terminationGracePeriodSeconds", 30)
        need = (sleep_s or 0) + drain + SHUTDOWN_SLACK_S
        self.check(grace > need, where,
                   f"terminationGracePeriodSeconds ({grace}) must exceed preStop "
                   f"({sleep_s or 0:g}s) + drain ({drain:g}s) + {SHUTDOWN_SLACK_S:g}s")
        ann = (spec.get("template") or {}).get("metadata", {}).get("annotations") or {}
        if ann.get("prometheus.io/scrape") == "true":
            self.check(str(ann.get("prometheus.io/port")) == str(METRICS_PORT) and
                       METRICS_PORT in ports.values(), where,
                       f"prometheus.io/port must be the metrics containerPort {METRICS_PORT}")

        services = of_kind("Service")
        self.check(services, "deploy/k8s", "no Service")
        for f, svc in services:
            s = svc.get("spec") or {}
            where = f"{f}: Service {svc['metadata']['name']}"
            self.check(s.get("clusterIP") == "None", where,
                       "must be headless (clusterIP: None) for client-side round-robin")
            sel = s.get("selector") or {}
            self.check(sel and sel.items() <= labels.items(), where,
                       "selector does not select the Deployment's pods")
            self.check(any(p.get("port") == GRPC_PORT for p in s.get("ports") or []), where,
                       f"must expose port {GRPC_PORT}")

        for f, cj in of_kind("CronJob"):
            where = f"{f}: CronJob {cj['metadata']['name']}"
            s = cj.get("spec") or {}
            self.check(s.get("concurrencyPolicy") == "Forbid", where,
                       "concurrencyPolicy must be Forbid (never two full scans at once)")
            jpod = (((s.get("jobTemplate") or {}).get("spec") or {})
                    .get("template") or {}).get("spec") or {}
            jsc = jpod.get("securityContext") or {}
            for jc in jpod.get("containers") or []:
                sc = jc.get("securityContext") or {}
                self.check(sc.get("runAsNonRoot", jsc.get("runAsNonRoot")) is True, where,
                           f"container {jc.get('name')}: runAsNonRoot must be true")
                self.check(sc.get("readOnlyRootFilesystem") is True, where,
                           f"container {jc.get('name')}: readOnlyRootFilesystem must be true")

        pdbs = of_kind("PodDisruptionBudget")
        self.check(pdbs, "deploy/k8s", "no PodDisruptionBudget")
        for f, pdb in pdbs:
            s = pdb.get("spec") or {}
            where = f"{f}: PodDisruptionBudget {pdb['metadata']['name']}"
            self.check(pdb.get("apiVersion") == "policy/v1", where,
                       "apiVersion must be policy/v1")
            sel = (s.get("selector") or {}).get("matchLabels") or {}
            self.check(sel and sel.items() <= labels.items(), where,
                       f"selector {sel} does not match the Deployment's pod labels {labels}")
            if "minAvailable" in s:
                self.check(isinstance(s["minAvailable"], int) and
                           1 <= s["minAvailable"] < replicas, where,
                           f"minAvailable must be between 1 and replicas-1 ({replicas - 1}), "
                           f"or node drains block forever")
            else:
                self.check(isinstance(s.get("maxUnavailable"), int) and
                           1 <= s["maxUnavailable"] < replicas, where,
                           "needs minAvailable or maxUnavailable (>= 1, < replicas)")

    # --------------------------------------------------------------- systemd
    def systemd(self):
        rel = "deploy/systemd/inventoryd.service"
        text = self.read(rel)
        if text is None:
            return
        sections, current = {}, None
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
            if m:
                current = sections.setdefault(m.group(1), {})
                continue
            if not self.check(current is not None and "=" in line, rel,
                              f"line {n} is neither a [Section] nor Key=Value: {line!r}"):
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
        for name in ("Unit", "Service", "Install"):
            self.check(name in sections, rel, f"no [{name}] section")
        svc = sections.get("Service", {})

        def last(key):
            return (svc.get(key) or [None])[-1]

        exec_start = last("ExecStart")
        if self.check(exec_start, rel, "[Service] has no ExecStart"):
            self.check(exec_start.lstrip("-@:+!").startswith("/"), rel,
                       "ExecStart must be an absolute path")
            self.check("--shards" not in exec_start, rel,
                       "--shards in ExecStart exposes passwords; use the EnvironmentFile")
        user = last("User")
        self.check(user and user not in ROOT_USERS, rel,
                   f"[Service] User must be an unprivileged user, is {user!r}")
        self.check(last("Type") in (None, "simple", "exec"), rel,
                   f"Type={last('Type')}: inventoryd does not speak sd_notify")
        self.check(last("KillSignal") in (None, "SIGTERM", "TERM", "15"), rel,
                   "KillSignal must be SIGTERM (it drains)")
        self.check(last("Restart") in ("on-failure", "always"), rel,
                   "Restart=on-failure expected")
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                          ("PrivateTmp", "yes")):
            self.check(last(key) == want, rel, f"hardening: {key}={want} expected")
        env_file = last("EnvironmentFile")
        self.check(env_file and env_file.lstrip("-") == "/etc/inventory/inventoryd.env",
                   rel, "EnvironmentFile=/etc/inventory/inventoryd.env expected")

        example_rel = "deploy/systemd/inventoryd.env.example"
        example = self.read(example_rel) or ""
        env = {}
        for raw in example.splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                if self.check("=" in line, example_rel, f"not KEY=value: {line!r}"):
                    k, _, v = line.partition("=")
                    self.check(k == k.strip() and re.fullmatch(r"[A-Z][A-Z0-9_]*", k),
                               example_rel, f"bad variable name {k!r}")
                    env[k] = v
        self.check("INVENTORY_SHARDS" in env, example_rel, "does not set INVENTORY_SHARDS")
        drain = parse_duration(env.get("INVENTORY_DRAIN_TIMEOUT", DEFAULT_DRAIN_S))
        stop = last("TimeoutStopSec")
        if self.check(stop, rel, "[Service] has no TimeoutStopSec"):
            self.check(parse_duration(stop) > drain + SHUTDOWN_SLACK_S, rel,
                       f"TimeoutStopSec ({stop}) must exceed the drain timeout "
                       f"({drain:g}s) + {SHUTDOWN_SLACK_S:g}s")

    def run(self):
        for part in (self.dockerfile, self.compose, self.kubernetes, self.systemd):
            try:
                part()
            except Exception as e:  # a malformed file must fail, not crash
                self.fail(part.__name__, f"unexpected structure: {type(e).__name__}: {e}")
        return self.errors


# ---------------------------------------------------------------- self-test
# Each mutation breaks a copy in one way that the real deployment would
# suffer from; the checker must report it (matching the given text).
MUTATIONS = [
    ("deploy/docker/Dockerfile", 'ENTRYPOINT ["/usr/local/bin/inventoryd"]',
     "ENTRYPOINT /usr/local/bin/inventoryd", "ENTRYPOINT must be exec form"),
    ("deploy/docker/Dockerfile", "USER 10001:10001", "USER root", "runs as root"),
    ("deploy/docker/Dockerfile", "FROM debian:12 AS build",
     "FROM debian:12 AS build\nADD https://example.com/x.tgz /tmp/", "ADD of a remote URL"),
    ("deploy/docker/Dockerfile", "      libgrpc++1.51 ", "      libgrpc++-dev ",
     "installs build package"),
    (".dockerignore", "!proto/\n", "", "does not re-include it (!proto)"),
    ("deploy/compose/docker-compose.yml", "        host=shard0 ", "        host=shard9 ",
     "in index order"),
    ("deploy/compose/docker-compose.yml",
     "      shard1:\n        condition: service_healthy",
     "      shard1:\n        condition: service_started", "condition service_healthy"),
    ("deploy/compose/docker-compose.yml", "    test: [\"CMD\", \"pg_isready\"",
     "    test: [\"CMD\", \"true\"", "healthcheck running pg_isready"),
    ("deploy/compose/docker-compose.yml", "stop_grace_period: 15s",
     "stop_grace_period: 5s", "stop_grace_period"),
    ("deploy/k8s/deployment.yaml", "service: inventory.v1.InventoryService",
     'service: ""', "readinessProbe must check health service"),
    ("deploy/k8s/deployment.yaml", "command: [\"/bin/sleep\", \"5\"]",
     "command: [\"/bin/true\"]", "preStop must sleep"),
    ("deploy/k8s/deployment.yaml", "terminationGracePeriodSeconds: 30",
     "terminationGracePeriodSeconds: 12", "terminationGracePeriodSeconds"),
    ("deploy/k8s/deployment.yaml", "            runAsNonRoot: true\n",
     "            runAsNonRoot: false\n", "runAsNonRoot"),
    ("deploy/k8s/deployment.yaml", "  replicas: 3", "  replicas: 3\n   bad: [",
     "invalid YAML"),
    ("deploy/k8s/service.yaml", "  clusterIP: None\n", "", "headless"),
    ("deploy/k8s/pdb.yaml", "    matchLabels:\n      app.kubernetes.io/name: inventoryd",
     "    matchLabels:\n      app.kubernetes.io/name: inventory", "does not match"),
    ("deploy/k8s/secret.yaml", "  INVENTORY_SHARDS:", "  SHARDS:",
     "no Secret holds INVENTORY_SHARDS"),
    ("deploy/k8s/verify-cronjob.yaml", "concurrencyPolicy: Forbid",
     "concurrencyPolicy: Allow", "concurrencyPolicy must be Forbid"),
    ("deploy/k8s/configmap.yaml", 'INVENTORY_SHARD_CONNECTIONS: "4"',
     "INVENTORY_SHARD_CONNECTIONS: 4", "must be a string"),
    ("deploy/systemd/inventoryd.service", "TimeoutStopSec=20s\n", "",
     "no TimeoutStopSec"),
    ("deploy/systemd/inventoryd.service", "User=inventory", "User=root",
     "unprivileged user"),
    ("deploy/systemd/inventoryd.service", "[Install]", "", "no [Install]"),
]


def copy_tree(root, dest):
    shutil.copytree(os.path.join(root, "deploy"), os.path.join(dest, "deploy"))
    shutil.copy(os.path.join(root, ".dockerignore"), dest)


def self_test(root):
    failures = []
    for rel, old, new, expect in MUTATIONS:
        with tempfile.TemporaryDirectory(prefix="deploy-selftest-") as tmp:
            copy_tree(root, tmp)
            path = os.path.join(tmp, rel)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            label = f"{rel}: {old!r} -> {new!r}"
            if text.count(old) != 1:
                failures.append(f"{label}: the text to break occurs {text.count(old)} times "
                                f"(update MUTATIONS)")
                continue
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new))
            errors = Checker(tmp).run()
            if not any(expect in e for e in errors):
                failures.append(f"{label}: not caught (wanted {expect!r}; got {errors})")
            else:
                print(f"caught: {label}")
    return failures


def main(argv):
    args = [a for a in argv[1:] if a != "--self-test"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    root = args[0]
    checker = Checker(root)
    errors = checker.run()
    for e in errors:
        print(f"FAIL {e}")
    if "--self-test" in argv:
        failures = self_test(root)
        for f in failures:
            print(f"SELF-TEST FAIL {f}")
        errors = errors + failures
        if not failures:
            print(f"self-test: all {len(MUTATIONS)} broken copies were caught")
    if errors:
        print(f"{len(errors)} problem(s) in the deployment files")
        return 1
    print(f"deployment files ok ({checker.checks} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
