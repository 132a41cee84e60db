#!/usr/bin/env python3
"""Checks what the schema cannot in packaging/kubernetes/agent-daemonset.yaml.

Usage: check-k8s-agent.py DAEMONSET_YAML [OUT_TOML]

kubernetes-validate says the manifests are well-formed Kubernetes; this says they are the agent
docs/rollout.md ("Kubernetes") describes:
1. every scan root of the agent.toml in the ConfigMap is a hostPath of that same path, mounted
   read-only at that path (the collector shows the node's own paths);
2. the state directory is a hostPath, writable (the identity survives pod restarts);
3. the config, CA and token are mounted as single files (subPath), as the agent refuses a token
   reached through a symbolic link;
4. hostPID, capabilities: ALL dropped, exactly DAC_READ_SEARCH and SYS_PTRACE added, no
   privilege escalation, read-only root file system;
5. a toleration and a node selector for NVIDIA GPU nodes, and CPU and memory requests and limits.
Writes the ConfigMap's agent.toml to OUT_TOML when given (scripts/test-manifests.sh runs
`aiscout-agent validate` on it). Needs PyYAML (the manifests venv has it).
"""

import sys
import tomllib

import yaml


def main(path, out_toml=None):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {d["kind"]: d for d in docs}
    problems = []
    agent_toml = by_kind["ConfigMap"]["data"]["agent.toml"]
    config = tomllib.loads(agent_toml)
    pod = by_kind["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}

    def host_path(mount):
        return volumes[mount["name"]].get("hostPath", {}).get("path")

    roots = config["scan"]["roots"]
    if not roots:
        problems.append("agent.toml: scan.roots is empty (the defaults would walk the container, not the node)")
    for root in roots:
        m = mounts.get(root)
        if m is None:
            problems.append(f"scan.roots: {root} is not a mount of the pod")
        elif host_path(m) != root:
            problems.append(f"scan.roots: {root} is mounted from {host_path(m)!r}, not from the node's {root}")
        elif not m.get("readOnly"):
            problems.append(f"scan.roots: {root} is mounted writable")

    state = mounts.get(config.get("state_dir", "/var/lib/aiscout"))
    if state is None or host_path(state) is None:
        problems.append("state_dir: not a hostPath mount (the agent's identity would die with the pod)")
    elif state.get("readOnly"):
        problems.append("state_dir: mounted read-only")

    for key in ("ca_file", "enrollment_token_file"):
        m = mounts.get(config["collector"][key])
        if m is None or "subPath" not in m:
            problems.append(f"collector.{key}: not mounted as a single file (subPath)")

    sc = container["securityContext"]
    caps = sc.get("capabilities", {})
    if not pod.get("hostPID"):
        problems.append("hostPID: not true (the node's processes are not visible)")
    if caps.get("drop") != ["ALL"]:
        problems.append("capabilities.drop: must be [ALL]")
    if sorted(caps.get("add", [])) != ["DAC_READ_SEARCH", "SYS_PTRACE"]:
        problems.append(f"capabilities.add: must be DAC_READ_SEARCH and SYS_PTRACE, got {caps.get('add')}")
    for key, want in (("allowPrivilegeEscalation", False), ("readOnlyRootFilesystem", True), ("privileged", False)):
        if sc.get(key) is not want:
            problems.append(f"securityContext.{key}: must be {want}")

    if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
        problems.append("tolerations: none for nvidia.com/gpu")
    if not any(k.startswith("nvidia.com/") for k in pod.get("nodeSelector", {})):
        problems.append("nodeSelector: no nvidia.com/ label")
    res = container.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(kind, {}):
                problems.append(f"resources.{kind}.{r}: missing")

    for p in problems:
        print(f"{path}: {p}")
    print(f"{path}: {len(roots)} scan roots checked against the host mounts; {len(problems)} problems")
    if out_toml:
        with open(out_toml, "w") as f:
            f.write(agent_toml)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print("usage: check-k8s-agent.py DAEMONSET_YAML [OUT_TOML]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
