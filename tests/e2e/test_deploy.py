"""The deploy files (deploy/, .dockerignore, the CMake install rules) checked
without Docker or a cluster: every library the built binary loads is installed
by the image's runtime stage (or ships with debian:12-slim), the build context
leaves local build trees out and still configures, the health check is
`agentd probe`, the Kubernetes manifest and the systemd unit carry a
configuration that `agentd check-config` accepts in production, and the unit
starts the binary where `cmake --install` puts it."""

import os
import re
import shlex
import shutil
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from agentd_harness import REPO, Server, agentd_bin, run_cli

DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
K8S = REPO / "deploy" / "k8s" / "agentd.yaml"
UNIT = REPO / "deploy" / "systemd" / "agentd.service"
ENV_EXAMPLE = REPO / "deploy" / "systemd" / "agentd.env.example"


# ---- Dockerfile parsing ----

def dockerfile_stages():
    """[(name, [(INSTRUCTION, args text, preceding comment lines)])] with
    continuation lines joined."""
    stages, comments, cur = [], [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not cur and line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        if not line and not cur:
            continue
        cur += " " + line[:-1] if line.endswith("\\") else " " + line
        if line.endswith("\\"):
            continue
        instr, _, args = cur.strip().partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            stages.append((m.group(2) or m.group(1), []))
        stages[-1][1].append((instr, args.strip(), comments))
        comments, cur = [], ""
    return stages


def apt_packages(steps):
    """Packages of every `apt-get install` in a stage's RUN lines."""
    pkgs = []
    for instr, args, _ in steps:
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|;", args):
            words = shlex.split(cmd)
            if "apt-get" in words and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def runtime_stage():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "expected a build stage and a runtime stage"
    return stages[-1]


def base_shipped(steps):
    """The packages the Dockerfile says debian:12-slim already ships."""
    for _, _, comments in steps:
        for c in comments:
            m = re.match(r"debian:12-slim already ships:\s*(.*)", c)
            if m:
                return m.group(1).replace(",", " ").split()
    return []


# ---- dpkg ----

def dpkg_status():
    """{package: {"depends": [first alternative of each Depends/Pre-Depends],
    "essential": bool, "priority": str}} of the installed packages."""
    pkgs, cur = {}, {}
    text = Path("/var/lib/dpkg/status").read_text(errors="replace")
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        if "Package" not in fields or "install ok installed" not in fields.get("Status", ""):
            continue
        deps = []
        for field in ("Pre-Depends", "Depends"):
            for dep in filter(None, (d.strip() for d in fields.get(field, "").split(","))):
                first = dep.split("|")[0].strip()
                deps.append(re.split(r"[\s(:]", first)[0])
        cur = {"depends": deps, "essential": fields.get("Essential") == "yes",
               "priority": fields.get("Priority", "")}
        pkgs[fields["Package"]] = cur
    return pkgs


def closure(roots, status):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += status.get(p, {}).get("depends", [])
    return seen


def package_of(path):
    """The Debian package that owns a library file (through symlinks)."""
    for candidate in (path, os.path.realpath(path)):
        for p in {candidate, candidate.replace("/usr/lib/", "/lib/", 1),
                  candidate.replace("/lib/", "/usr/lib/", 1)}:
            r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            if r.returncode == 0:
                return r.stdout.split(":")[0].strip()
    raise AssertionError(f"no Debian package owns {path}")


def ldd_packages(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    # The image builds without AGENTD_SANITIZE: a sanitizer build's runtimes
    # (scripts/test --sanitize runs these tests too) are not the image's.
    return {soname: package_of(path) for soname, path in libs.items()
            if not re.match(r"lib(asan|ubsan|lsan|tsan)\.so", soname)}


def needed_sonames(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", out)


# ---- the image ----

def test_runtime_stage_installs_every_library_the_binary_loads():
    name, steps = runtime_stage()
    assert steps[0][1].startswith("debian:12-slim"), steps[0]
    installed = apt_packages(steps)
    assert installed, "the runtime stage installs nothing"
    shipped = base_shipped(steps)
    assert shipped, "the Dockerfile does not say what debian:12-slim ships"
    status = dpkg_status()
    # debian:12-slim is Debian's minbase: the Essential and required packages
    # and what they depend on. Check the documented list against that.
    minbase = closure([p for p, v in status.items()
                       if v["essential"] or v["priority"] == "required"], status)
    for p in shipped:
        assert p in minbase, f"{p} is not in debian:12-slim (not Essential/required or their deps)"
    image = closure(installed + shipped, status) | minbase
    by_soname = ldd_packages(agentd_bin())
    assert by_soname, "ldd found no libraries"
    missing = {so: pkg for so, pkg in by_soname.items() if pkg not in image}
    assert not missing, f"the image lacks the packages of {missing}"
    # The binary's own (NEEDED) libraries are named explicitly, not left to
    # whatever another package happens to pull in.
    for so in needed_sonames(agentd_bin()):
        if so not in by_soname:
            continue                      # a sanitizer runtime
        pkg = by_soname[so]
        assert pkg in installed or pkg in shipped, \
            f"{so} ({pkg}) is needed by agentd but not in the runtime apt-get install"
    assert "ca-certificates" in installed, "HTTPS to the model needs CA certificates"
    # the libcurl the binary was linked against is the one installed (not -gnutls)
    assert by_soname["libcurl.so.4"] in installed


def test_build_stage_uses_the_projects_build_packages():
    stages = dockerfile_stages()
    build_pkgs = apt_packages(stages[0][1])
    assert stages[0][1][0][1].startswith("debian:12 "), stages[0][1][0]
    deps = (REPO / "scripts" / "install-deps").read_text()
    listed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", deps.split("PKGS=(")[1].split(")")[0]))
    for p in build_pkgs:
        assert p in listed, f"build stage installs {p}, which scripts/install-deps does not"
    for p in ("cmake", "pkg-config", "libcurl4-openssl-dev", "libevent-dev", "libjansson-dev",
              "libsqlite3-dev", "libssl-dev"):
        assert p in build_pkgs, p


def test_runtime_stage_shape():
    _, steps = runtime_stage()
    instrs = {}
    for instr, args, _ in steps:
        instrs.setdefault(instr, []).append(args)
    # non-root
    assert instrs["USER"] and not re.match(r"^(0|root)(:|$)", instrs["USER"][-1]), instrs["USER"]
    env = " ".join(instrs["ENV"])
    assert "AGENTD_HOST=0.0.0.0" in env
    data_dir = re.search(r"AGENTD_DATA_DIR=(\S+)", env).group(1)
    assert any(data_dir in v for v in instrs["VOLUME"]), "the data directory is not a volume"
    # the health check is agentd probe, not curl (which the image lacks)
    hc = instrs["HEALTHCHECK"][-1]
    assert "curl" not in hc and "wget" not in hc
    m = re.search(r"CMD\s+(\[.*\])", hc)
    assert m, hc
    import json
    cmd = json.loads(m.group(1))
    assert cmd[0] == "/usr/local/bin/agentd" and cmd[1] == "probe", cmd
    copied = [a for a in instrs["COPY"] if "--from=build" in a]
    assert copied and copied[0].split()[-1] == cmd[0], "the probe runs another binary than the image's"
    # every AGENTD_* name in the image is a real variable
    assert_known_variables(re.findall(r"\b(AGENTD_[A-Z0-9_]+)=", env))


def test_dockerfile_rules():
    """What a linter would say, without a container engine: pinned bases, no
    remote ADD, lean apt layers, a runtime stage without build tools or
    secrets, exec-form entry point, and a uid and port the manifests share."""
    stages = dockerfile_stages()
    for name, steps in stages:
        base = steps[0][1].split()[0]
        assert ":" in base and not base.endswith(":latest"), f"stage {name}: unpinned base {base}"
        for instr, args, _ in steps:
            assert instr != "ADD", f"stage {name}: ADD {args} (COPY, and no remote URLs)"
            assert instr != "MAINTAINER", "MAINTAINER is deprecated"
            if instr in ("ENV", "ARG"):
                for var in re.findall(r"([A-Z0-9_]+)=", args) or [args.split("=")[0]]:
                    assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", var), \
                        f"stage {name}: {instr} {var}: a secret baked into the image"
            if instr == "RUN" and "apt-get install" in args:
                assert "--no-install-recommends" in args, f"stage {name}: apt-get without --no-install-recommends"
                assert "apt-get update" in args, f"stage {name}: install without update in the same layer"
                assert "rm -rf /var/lib/apt/lists/*" in args, f"stage {name}: apt lists left in the layer"
    _, steps = runtime_stage()
    runtime = apt_packages(steps)
    for p in runtime:
        assert not p.endswith("-dev") and p not in ("build-essential", "gcc", "clang", "cmake",
                                                     "make", "pkg-config"), \
            f"runtime stage installs build tool {p}"
    instrs = {}
    for instr, args, _ in steps:
        instrs.setdefault(instr, []).append(args)
    import json
    entry = json.loads(instrs["ENTRYPOINT"][-1])
    assert entry == ["/usr/local/bin/agentd"], entry
    assert json.loads(instrs["CMD"][-1]) == ["serve"]
    assert instrs["STOPSIGNAL"] == ["SIGTERM"], "agentd drains on SIGTERM"
    uid = int(instrs["USER"][-1].split(":")[0])
    port = int(instrs["EXPOSE"][-1].split("/")[0])
    env = " ".join(instrs["ENV"])
    assert f"AGENTD_PORT={port}" in env
    # the manifests run the image's uid on its port, and their preStop
    # command exists in the image (debian:12-slim's Essential packages)
    status = dpkg_status()
    minbase = closure([p for p, v in status.items()
                       if v["essential"] or v["priority"] == "required"], status)
    image = closure(runtime + base_shipped(steps), status) | minbase
    for path in (K8S, K8S_REPLICAS):
        kinds = k8s_docs(path)
        pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert pod["securityContext"]["runAsUser"] == uid, f"{path.name}: another uid than the image's USER"
        assert c["ports"][0]["containerPort"] == port, f"{path.name}: another port than EXPOSE"
        hook = c.get("lifecycle", {}).get("preStop", {}).get("exec")
        if hook:
            pkg = package_of(hook["command"][0])
            assert pkg in image, f"{path.name}: preStop runs {hook['command'][0]} ({pkg}), not in the image"


# ---- .dockerignore: what `COPY . .` sends ----

def dockerignore_patterns():
    pats = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line)
    return pats


def ignored(rel, pats):
    """Docker's rule, enough for these patterns: a path is excluded when it or
    one of its parents matches a pattern (the last matching pattern wins;
    `!` re-includes)."""
    parts = rel.split("/")
    result = False
    for pat in pats:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch(prefix, p) or (p.startswith("**/") and
                                      (fnmatch(prefix, p[3:]) or fnmatch(prefix, p))):
                result = not neg
                break
    return result


def test_dockerignore_keeps_build_trees_and_data_out():
    assert DOCKERIGNORE.exists(), ".dockerignore is missing: COPY . . would send build/ and .git"
    pats = dockerignore_patterns()
    for path in ("build", "build/CMakeCache.txt", "build-asan/agentd", "build-clang",
                 ".git/HEAD", "agentd-data/agentd.db", "tests/e2e/__pycache__/x.pyc"):
        assert ignored(path, pats), f"{path} would be in the build context"
    for path in ("CMakeLists.txt", "src/main.c", "data/catalog.json", "tests/unit/CMakeLists.txt",
                 "bench/store.c", "scripts/install-deps", "deploy/Dockerfile"):
        assert not ignored(path, pats), f"{path} would be left out of the build context"


def test_build_context_configures(tmp_path):
    """The files `COPY . .` sends (tracked files, less .dockerignore) are
    enough for the Dockerfile's cmake configure step, even with a stale
    build tree in the working copy."""
    pats = dockerignore_patterns()
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split()
    ctx = tmp_path / "ctx"
    for rel in files:
        src = REPO / rel
        if ignored(rel, pats) or not src.is_file():
            continue
        dst = ctx / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    assert not (ctx / "build").exists()
    r = subprocess.run(["cmake", "-S", str(ctx), "-B", str(ctx / "build"),
                        "-DCMAKE_BUILD_TYPE=Release", "-DAGENTD_GIT_COMMIT=0123456789ab"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    version_h = (ctx / "build" / "generated" / "version.h").read_text()
    assert "0123456789ab" in version_h, "the commit build argument does not reach the binary"


# ---- configuration carried by the manifests ----

def known_variables():
    """Every variable name check-config prints (its dump lists them all)."""
    p = run_cli(["check-config"], env={"AGENTD_LLM_URL": "http://127.0.0.1:9/v1",
                                       "AGENTD_LLM_MODEL": "m"})
    return set(re.findall(r"^(AGENTD_[A-Z0-9_]+)=", p.stdout, re.M))


def assert_known_variables(names, known=None):
    known = known or known_variables()
    for n in names:
        base = n[:-5] if n.endswith("_FILE") else n
        assert base in known, f"{n} is not an agentd variable"


DUMMY_ENCRYPTION_KEY = "ZHVtbXkta2V5LWZvci1jaGVjay1jb25maWctMzJieXQ=\n"


def dummy_secret(name, tmp_path):
    """A value of the right shape for a secret variable, holding "dummy-key"
    where the real secret goes (check-config must never print it)."""
    if "ENCRYPTION" in name:          # the base64 of 32 bytes
        return DUMMY_ENCRYPTION_KEY
    if name == "AGENTD_DB_FILE":
        return "postgres://agentd:dummy-key@127.0.0.1:5432/agentd\n"
    if name == "AGENTD_REDIS_URL_FILE":
        return "redis://:dummy-key@127.0.0.1:6379/0\n"
    if name == "AGENTD_SIGNING_KEY_FILE":  # an EC P-256 private key
        pem = tmp_path / "dummy-signing-key.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", str(pem)], check=True,
                       capture_output=True)
        return pem.read_text()
    return "dummy-key-for-check-config\n"


def check_config_production(env, secrets, tmp_path):
    """check-config with this environment; each secret file path is remapped
    to a temporary file holding a dummy value. Returns the stdout."""
    env = dict(env)
    for name, path in secrets.items():
        f = tmp_path / Path(path).name
        f.write_text(dummy_secret(name, tmp_path))
        env[name] = str(f)
    env["AGENTD_DATA_DIR"] = str(tmp_path / "data")
    p = run_cli(["check-config"], env=env)
    assert p.returncode == 0, f"check-config refuses the manifest's configuration:\n{p.stdout}{p.stderr}"
    assert "AGENTD_ENV=production" in p.stdout
    assert "dummy-key" not in p.stdout
    return p.stdout


K8S_FILES = sorted((REPO / "deploy" / "k8s").rglob("*.yaml"))
K8S_REPLICAS = REPO / "deploy" / "k8s" / "agentd-replicas.yaml"


def k8s_docs(path=K8S):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def parse_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", str(text))
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_k8s_documents_parse(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path.name} holds no document"
    names = set()
    for d in docs:
        assert d.get("apiVersion") and d.get("kind"), d
        name = d.get("metadata", {}).get("name")
        assert name, f"a {d['kind']} without metadata.name"
        assert (d["kind"], name) not in names, f"two {d['kind']} {name}"
        names.add((d["kind"], name))


def prestop_seconds(c):
    """The preStop hook's sleep, in seconds (0 without one)."""
    hook = c.get("lifecycle", {}).get("preStop")
    if not hook:
        return 0
    if "sleep" in hook:                       # the kubelet's own sleep action
        return int(hook["sleep"]["seconds"])
    cmd = hook["exec"]["command"]
    assert Path(cmd[0]).name == "sleep" and cmd[0].startswith("/"), cmd
    return parse_seconds(cmd[1])


def check_agentd_pod(kinds, tmp_path):
    """The rules both manifests keep: configuration from the ConfigMap, keys
    as files from the Secret, the probes, the drain inside the grace period,
    a locked-down non-root container, and an environment check-config
    accepts in production. Returns (configmap data, deployment, container,
    volumes by name)."""
    for kind in ("ConfigMap", "Secret", "Deployment", "Service"):
        assert kind in kinds, f"no {kind}"
    cm = kinds["ConfigMap"][0]
    secret = kinds["Secret"][0]
    dep = kinds["Deployment"][0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]

    data = {k: str(v) for k, v in cm["data"].items()}
    assert data["AGENTD_ENV"] == "production"
    assert data["AGENTD_PUBLIC_URL"].startswith("https://")
    assert data.get("AGENTD_LLM_URL") and data.get("AGENTD_LLM_MODEL"), "no model configured"
    assert data["AGENTD_HOST"] == "0.0.0.0"
    assert [e["configMapRef"]["name"] for e in c["envFrom"]] == [cm["metadata"]["name"]]

    # the keys come from the Secret, as mounted files
    env = {e["name"]: e for e in c.get("env", [])}
    assert "AGENTD_LLM_API_KEY" not in data, "a key in a ConfigMap"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    secret_files = {}
    for name, e in env.items():
        if name.endswith("_FILE"):
            path = e["value"]
            vol = next(v for n, v in vols.items() if "secret" in v and
                       path.startswith(mounts[n]["mountPath"] + "/"))
            assert vol["secret"]["secretName"] == secret["metadata"]["name"]
            key = path.rsplit("/", 1)[1]
            assert key in secret.get("stringData", {}) or key in secret.get("data", {})
            secret_files[name] = path
        else:
            assert "value" not in e or not name.endswith("KEY"), f"{name} given inline"
    assert "AGENTD_LLM_API_KEY_FILE" in secret_files

    # probes, ports, drain
    port = int(data["AGENTD_PORT"])
    assert c["ports"][0]["containerPort"] == port
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # the grace period covers the preStop sleep and then the whole drain
    drain = parse_seconds(data.get("AGENTD_DRAIN_TIMEOUT", "25s"))
    assert prestop_seconds(c) > 0, "no preStop: endpoints may still route to a draining pod"
    assert pod["terminationGracePeriodSeconds"] > prestop_seconds(c) + drain
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]

    # non-root, locked down, only emptyDir/volumes writable
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False
    csc = c["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"]["drop"] == ["ALL"] and not csc["capabilities"].get("add")
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in vols[tmp["name"]], "/tmp is not a writable emptyDir"
    svc = next(s for s in kinds["Service"] if s["spec"].get("selector"))
    assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert spec["template"]["metadata"]["labels"] == spec["selector"]["matchLabels"]

    # the whole environment is one agentd accepts in production
    names = list(data) + list(env)
    assert_known_variables(names)
    plain = {**data, **{n: e["value"] for n, e in env.items() if n not in secret_files}}
    out = check_config_production(plain, secret_files, tmp_path)
    assert f"AGENTD_LLM_URL={data['AGENTD_LLM_URL']}" in out
    assert "AGENTD_LLM_API_KEY=***set***" in out
    assert f"AGENTD_PUBLIC_URL={data['AGENTD_PUBLIC_URL']}" in out
    return data, dep, c, vols, out


def test_k8s_manifest(tmp_path):
    """One box: SQLite on one volume, one writer."""
    kinds = k8s_docs(K8S)
    assert "PersistentVolumeClaim" in kinds
    data, dep, c, vols, _ = check_agentd_pod(kinds, tmp_path)
    spec = dep["spec"]
    assert spec["replicas"] == 1, "SQLite on one volume: one replica"
    assert spec["strategy"]["type"] == "Recreate"
    data_mount = next(m for m in c["volumeMounts"] if m["mountPath"] == data["AGENTD_DATA_DIR"])
    assert "persistentVolumeClaim" in vols[data_mount["name"]]
    assert "HorizontalPodAutoscaler" not in kinds, "SQLite does not scale out"


def test_k8s_replicas_manifest(tmp_path):
    """Replicas: stateless pods on PostgreSQL and Redis, autoscaled, rolled
    one at a time, at most one disrupted at once."""
    kinds = k8s_docs(K8S_REPLICAS)
    data, dep, c, vols, out = check_agentd_pod(kinds, tmp_path)
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["selector"]["matchLabels"]
    assert "PersistentVolumeClaim" not in kinds, "replicas keep no state in a volume"
    assert not any("persistentVolumeClaim" in v for v in vols.values())
    # the state is external: PostgreSQL and Redis URLs from the Secret
    env = {e["name"]: e for e in c["env"]}
    assert "AGENTD_DB_FILE" in env and "AGENTD_REDIS_URL_FILE" in env
    assert "AGENTD_DB" not in data and "AGENTD_REDIS_URL" not in data, "a password in a ConfigMap"
    secret = kinds["Secret"][0]["stringData"]
    db_host = re.match(r"postgres(?:ql)?://[^@]*@([^:/]+)", secret["database-url"]).group(1)
    redis_host = re.match(r"rediss?://[^@]*@([^:/]+)", secret["redis-url"]).group(1)
    external = {s["metadata"]["name"] for s in kinds["Service"]
                if s["spec"].get("type") == "ExternalName" and s["spec"].get("externalName")}
    assert {db_host, redis_host} <= external, (db_host, redis_host, external)
    assert "AGENTD_DB=postgres://agentd:***@" in out
    assert "AGENTD_SIGNING_KEY=***set***" in out, "replicas must share one webhook signing key"
    assert "AGENTD_ENCRYPTION_KEY=***set***" in out, "replicas must share one sealing key"
    # the only writable place is the /tmp emptyDir, and the data dir is in it
    assert data["AGENTD_DATA_DIR"] == "/tmp", "agentd makes the instances/ directory, not its parent"
    writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"], writable
    # rolled one at a time, never below the current count
    assert "replicas" not in spec, "the autoscaler owns the replica count"
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod.get("topologySpreadConstraints") or pod.get("affinity")
    (hpa,) = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert cpu and cpu[0]["resource"]["name"] == "cpu"
    # the commented custom-metric example names a metric agentd exports
    m = re.search(r"#\s*metric:\s*\{\s*name:\s*(\w+)", K8S_REPLICAS.read_text())
    assert m and m.group(1) in documented_metrics(), "the custom-metric example names no agentd metric"
    (pdb,) = kinds["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    if "minAvailable" in pdb["spec"]:
        assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "blocks every drain"
    else:
        assert pdb["spec"]["maxUnavailable"] >= 1


def documented_metrics():
    """Metric names in the docs/operations.md and docs/llm.md tables."""
    text = (REPO / "docs" / "operations.md").read_text() + (REPO / "docs" / "llm.md").read_text()
    return set(re.findall(r"`((?:agentd|process)_[a-z0-9_]+)`", text))


# ---- systemd and the install layout ----

def unit_settings():
    settings = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            settings.setdefault(k.strip(), []).append(v.strip())
    return settings


def test_systemd_unit_and_example_environment(tmp_path):
    s = unit_settings()
    assert s["Type"] == ["notify"], "agentd sends READY=1 (sd_notify)"
    assert s["KillSignal"] == ["SIGTERM"]
    assert parse_seconds(s["TimeoutStopSec"][0]) > 25, "shorter than the default drain"
    assert any(v.lstrip("-") == "/etc/agentd/agentd.env" for v in s["EnvironmentFile"])
    assert s.get("DynamicUser") == ["yes"] or s.get("User")
    assert s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    # agentd pings WATCHDOG=1 at half of it (tests/e2e/test_systemd_notify.py)
    assert 2 <= parse_seconds(s["WatchdogSec"][0]) <= 120, s["WatchdogSec"]
    hardening = {"ProtectHome": "yes", "PrivateTmp": "yes", "LockPersonality": "yes",
                 "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
                 "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter": "@system-service", "RestrictNamespaces": "yes",
                 "PrivateDevices": "yes", "StateDirectory": "agentd"}
    for k, v in hardening.items():
        assert s.get(k) == [v], f"{k}={s.get(k)}, want {v}"
    env = {}
    for v in s.get("Environment", []):
        k, _, val = v.partition("=")
        env[k] = val
    assert env.get("AGENTD_DATA_DIR") == "/var/lib/" + s["StateDirectory"][0]
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, val = line.partition("=")
            assert not k.startswith("export"), line
            env.setdefault(k, val)
    assert_known_variables(env)
    secrets = {n: env.pop(n) for n in list(env) if n.endswith("_FILE")}
    out = check_config_production(env, secrets, tmp_path)
    assert "AGENTD_LLM_API_KEY=***set***" in out
    assert "replace-with-your-key" not in out


def test_systemd_unit_verifies_and_stays_locked_down(tmp_path):
    """systemd's own checks, where systemd-analyze is installed: the unit
    parses with no warning, and its sandbox exposure stays low."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed: the unit is only checked as text")
    unit = tmp_path / "agentd.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/agentd", agentd_bin()))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60)
    problems = [l for l in (r.stdout + r.stderr).splitlines() if "agentd.service" in l]
    assert not problems, problems
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for agentd\.service: ([\d.]+)", r.stdout + r.stderr)
    if not m:
        pytest.skip(f"this systemd-analyze has no offline security report: {r.stderr.strip()[:200]}")
    assert float(m.group(1)) <= 2.0, r.stdout


def test_cmake_install_matches_the_unit(tmp_path):
    build = Path(agentd_bin()).parent
    if not (build / "cmake_install.cmake").exists():
        pytest.skip(f"{build} is not a CMake build directory")
    prefix = tmp_path / "prefix"
    r = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    binary = prefix / "bin" / "agentd"
    assert binary.is_file() and os.access(binary, os.X_OK)
    v = subprocess.run([str(binary), "version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("agentd ")
    installed_unit = prefix / "lib" / "systemd" / "system" / "agentd.service"
    assert installed_unit.is_file()
    execs = [l.split("=", 1)[1] for l in installed_unit.read_text().splitlines()
             if l.startswith("ExecStart=")]
    assert execs == [f"{binary} serve"], execs
    # the repository's unit is the one for the default prefix
    assert unit_settings()["ExecStart"] == ["/usr/local/bin/agentd serve"]
    assert (prefix / "share" / "doc" / "agentd" / "agentd.env.example").is_file()
    assert (prefix / "share" / "doc" / "agentd" / "docs" / "deployment.md").is_file()
    # the binary-only component, as the image installs it
    only = tmp_path / "only"
    r = subprocess.run(["cmake", "--install", str(build), "--prefix", str(only),
                        "--component", "agentd"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.relative_to(only).as_posix() for p in only.rglob("*") if p.is_file()) == \
        ["bin/agentd"]
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(installed_unit)],
                           capture_output=True, text=True, timeout=60)
        problems = [l for l in (r.stdout + r.stderr).splitlines() if "agentd.service" in l]
        assert not problems, problems


# ---- dashboards, alerts, runbook ----

DASHBOARD = REPO / "deploy" / "grafana" / "agentd.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = REPO / "docs" / "runbook.md"
METRIC_NAME = re.compile(r"\b((?:agentd|process)_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard_queries():
    """Every PromQL string of the dashboard: panel targets and variable queries."""
    import json
    out = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "query", "definition") and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(DASHBOARD.read_text()))
    return out


def alert_rules():
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def balanced(expr):
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def fresh_metric_families():
    """{family name: type} and the sample names of a fresh server's /metrics,
    with a model configured (the model client's families register then)."""
    srv = Server(env={"AGENTD_LLM_URL": "http://127.0.0.1:9/v1", "AGENTD_LLM_MODEL": "m"}).start()
    try:
        text = srv.get("/metrics").text
    finally:
        srv.stop()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    samples = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    return types, samples


def missing_metrics(names, types, samples):
    missing = []
    for n in sorted(set(names)):
        if n in types or n in samples:
            continue
        base = next((n[:-len(s)] for s in HISTOGRAM_SUFFIXES if n.endswith(s)), None)
        if base and types.get(base) == "histogram":
            continue
        missing.append(n)
    return missing


def runbook_anchors():
    anchors = set()
    for h in re.findall(r"^#{1,6} (.+)$", RUNBOOK.read_text(), re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-"))
    return anchors


def test_dashboard_and_alerts_name_only_exported_metrics():
    queries = dashboard_queries() + [r["expr"] for r in alert_rules()]
    names = [n for q in queries for n in METRIC_NAME.findall(q)]
    assert len(set(names)) > 20, "the dashboard and alerts name too few metrics"
    types, samples = fresh_metric_families()
    assert "agentd_http_requests_total" in types
    missing = missing_metrics(names, types, samples)
    assert not missing, f"named in {DASHBOARD.name}/{ALERTS.name} but not in /metrics: {missing}"
    # the checker itself: a made-up name and a counter with a histogram suffix are caught
    assert missing_metrics(["agentd_no_such_metric", "agentd_turns_total_bucket"], types,
                           samples) == ["agentd_no_such_metric", "agentd_turns_total_bucket"]


def test_grafana_dashboard():
    import json
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    used = set()
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert balanced(t["expr"]), (p["title"], t["expr"])
            assert "$instance" in t["expr"], f"{p['title']}: ignores the replica variable"
            used |= set(METRIC_NAME.findall(t["expr"]))
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
    # golden signals, the model, the agent, commerce, protection, dependencies
    for m in ("agentd_http_requests_total", "agentd_http_request_duration_seconds_bucket",
              "agentd_llm_request_duration_seconds_bucket", "agentd_llm_tokens_total",
              "agentd_llm_cost_usd_total", "agentd_llm_breaker_state", "agentd_turns_in_flight",
              "agentd_outbox_depth", "agentd_rate_limited_total", "agentd_redis_up",
              "agentd_webhook_dead_total", "process_resident_memory_bytes"):
        assert m in used, f"the dashboard does not show {m}"
    quantiles = {q for p in panels for t in p.get("targets", [])
                 for q in re.findall(r"histogram_quantile\((0\.\d+)", t["expr"])}
    assert {"0.5", "0.99"} <= quantiles


def test_prometheus_alerts():
    rules = alert_rules()
    anchors = runbook_anchors()
    names = set()
    for r in rules:
        name = r["alert"]
        assert name not in names, f"two alerts {name}"
        names.add(name)
        assert balanced(r["expr"]), (name, r["expr"])
        assert parse_seconds(r["for"]) > 0, f"{name}: fires on one bad scrape (no for:)"
        assert r["labels"]["severity"] in ("page", "warning"), name
        assert r["annotations"]["summary"], name
        url = r["annotations"]["runbook_url"]
        m = re.fullmatch(r"https://\S+/docs/runbook\.md#([a-z0-9-]+)", url)
        assert m, f"{name}: runbook_url {url}"
        assert m.group(1) in anchors, f"{name}: docs/runbook.md has no section #{m.group(1)}"
    exprs = " ".join(r["expr"] for r in rules)
    for needle in ('status=~"5.."', 'outcome="timeout"', "agentd_llm_breaker_state",
                   "agentd_webhook_dead_total", "agentd_outbox_depth", "process_resident_memory_bytes",
                   "agentd_redis_up", "agentd_store_errors_total", 'up{job="agentd"}',
                   "kube_pod_status_ready"):
        assert needle in exprs, f"no alert on {needle}"


def test_runbook():
    text = RUNBOOK.read_text()
    sections = {}
    for m in re.finditer(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", text, re.M | re.S):
        sections[m.group(1).strip().lower()] = m.group(2)
    for title in ("model timeouts spike", "tool errors spike", "memory grows", "database down",
                  "redis down", "a replica dies", "webhook dead-letters", "rolling back"):
        assert title in sections, f"docs/runbook.md has no section '{title}'"
        body = sections[title]
        assert METRIC_NAME.search(body) or '"msg"' in body, \
            f"'{title}' names no metric or log query to diagnose it"
    for doc in (REPO / "README.md", REPO / "docs" / "operations.md"):
        assert "docs/runbook.md" in doc.read_text() or "runbook.md" in doc.read_text(), \
            f"{doc.name} does not link the runbook"
