#!/usr/bin/env python3
"""Checks the CI examples in packaging/ci: each file parses as YAML (PyYAML) and has the shape
its CI system expects; no secret is written into them (secret-looking settings only reference
the CI's secret store, no URL with a password, no key material) and no secret is interpolated
into a command line. Prints every `deployctl` invocation as `file<TAB>command<TAB>flags...`
for the caller to check against the binary. Exit 1 with one line per problem."""
import re
import shlex
import sys

import yaml

SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|_KEY$|_KEY_ID$|DATABASE_URL|DATABASE$)")
GITHUB_SECRET_REF = re.compile(r"^\$\{\{ secrets\.[A-Z0-9_]+ \}\}$")
GITLAB_REF = re.compile(r"^\$\{?[A-Z0-9_]+\}?$")
INLINE = [
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@$]+:[^@\s$]+@"), "a URL with a password"),
    (re.compile(r"AKIA[0-9A-Z]{16}"), "an AWS access key id"),
    (re.compile(r"-----BEGIN"), "key material"),
]
problems = []


def strings(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def check_env(name, env, ref, where):
    for key, value in (env or {}).items():
        if SECRET_NAME.search(str(key)) and not ref.match(str(value)):
            problems.append(f"{name}: {where} sets {key} to something other than a secret "
                            f"reference: {value!r}")


def commands(name, script):
    text = re.sub(r"\\\n\s*", " ", script)
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for i, w in enumerate(words[:-1]):
            if w == "deployctl" and not words[i + 1].startswith("-"):
                flags = [x.split("=")[0] for x in words[i + 2:] if x.startswith("--")]
                print(f"{name}\t{words[i + 1]}\t{' '.join(flags)}")


def github(name, doc):
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as true
    if not on or not isinstance(doc.get("jobs"), dict) or not doc["jobs"]:
        problems.append(f"{name}: not a GitHub Actions workflow (no on: or jobs:)")
        return
    check_env(name, doc.get("env"), GITHUB_SECRET_REF, "the workflow's env")
    for job_name, job in doc["jobs"].items():
        if "runs-on" not in job or not job.get("steps"):
            problems.append(f"{name}: job {job_name} has no runs-on or no steps")
        check_env(name, job.get("env"), GITHUB_SECRET_REF, f"job {job_name}'s env")
        for step in job.get("steps", []):
            if ("run" in step) == ("uses" in step):
                problems.append(f"{name}: a step of {job_name} needs exactly one of run/uses")
            check_env(name, step.get("env"), GITHUB_SECRET_REF, f"step {step.get('name')}'s env")
            run = step.get("run", "")
            if "secrets." in run:
                problems.append(f"{name}: step {step.get('name')} puts a secret in its command "
                                "line; pass it through env:")
            commands(name, run)


def gitlab(name, doc):
    check_env(name, doc.get("variables"), GITLAB_REF, "variables")
    jobs = {k: v for k, v in doc.items()
            if isinstance(v, dict) and not k.startswith(".") and k not in ("default", "variables")}
    if not jobs or not isinstance(doc.get("stages"), list):
        problems.append(f"{name}: not a GitLab CI file (no stages: or jobs)")
    for job_name, job in jobs.items():
        if not isinstance(job.get("script"), list) or job.get("stage") not in doc.get("stages", []):
            problems.append(f"{name}: job {job_name} has no script list or an unknown stage")
        check_env(name, job.get("variables"), GITLAB_REF, f"job {job_name}'s variables")
    for _, script in strings({k: v for k, v in doc.items()}):
        commands(name, script)


for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            problems.append(f"{path}: not valid YAML: {e}")
            continue
    for where, s in strings(doc):
        for pattern, what in INLINE:
            if pattern.search(s):
                problems.append(f"{path}: {what} written into {where}")
    (gitlab if path.endswith(".gitlab-ci.yml") else github)(path, doc)

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
