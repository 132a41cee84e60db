#!/usr/bin/env bash
# Checks the Puppet, Salt and Chef snippets of docs/rollout.md ("Configuration management"),
# which no CI machine runs whole (no Puppet server, Salt master or Chef server here):
#   - the Puppet class with `puppet parser validate`, its EPP template with `puppet epp
#     validate`, the external fact with `sh -n`;
#   - the Salt state parsed as YAML;
#   - the Chef recipe with `ruby -c`;
#   - each tool's agent.toml template rendered (EPP by `puppet epp render`, Jinja by Jinja2 as
#     Salt would, ERB by Ruby's ERB as Chef would), with and without scan roots, and the result
#     checked by `aiscout-agent validate`, as their validate_cmd/check_cmd/verify would.
# Usage: scripts/check-cm-snippets.sh AGENT_BINARY PYTHON_WITH_JINJA2_AND_YAML
# Installs Debian's puppet package (which brings Ruby) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
agent=$1
py=$2

command -v puppet >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq puppet >/dev/null; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The fenced blocks of the section, in order, as $tmp/N.LANG.
"$py" - "$tmp" <<'PY'
import re, sys
text = open("docs/rollout.md").read()
start = text.index("### Puppet")
section = text[start:text.index("\n## ", start)]
blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
want = ["sh", "puppet", "text", "yaml", "jinja", "ruby", "erb"]
got = [lang for lang, _ in blocks]
if got != want:
    sys.exit(f"docs/rollout.md: expected blocks {want} under Puppet/Salt/Chef, found {got}")
for i, (lang, body) in enumerate(blocks):
    open(f"{sys.argv[1]}/{i}.{lang}", "w").write(body)
PY

check_toml() { # check_toml WHAT FILE
  "$agent" validate --config "$2" >/dev/null || { cat "$2" >&2; echo "$1: the rendered agent.toml is invalid" >&2; exit 1; }
  echo "$1: rendered agent.toml valid"
}

sh -n "$tmp/0.sh" && echo "puppet: external fact: shell syntax valid"
puppet parser validate "$tmp/1.puppet" && echo "puppet: class aiscout_agent: parser validate passed"
puppet epp validate "$tmp/2.text" && echo "puppet: agent.toml.epp: epp validate passed"
"$py" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); print(f"salt: init.sls: {len(d)} states parsed")' "$tmp/3.yaml"
ruby -c "$tmp/5.ruby" >/dev/null && echo "chef: recipe: ruby -c syntax OK"

for roots in "no roots" "two roots"; do
  if [ "$roots" = "two roots" ]; then pp_roots="['/models', '/data']"; list='["/models", "/data"]'; else pp_roots='[]'; list='[]'; fi
  puppet epp render "$tmp/2.text" --values "{url => 'https://collector.example.com:7443', roots => $pp_roots}" \
    >"$tmp/puppet.toml" 2>"$tmp/puppet.err" || { cat "$tmp/puppet.err" >&2; exit 1; }
  check_toml "puppet ($roots)" "$tmp/puppet.toml"
  "$py" - "$tmp/4.jinja" "$list" >"$tmp/salt.toml" <<'PY'
import json, sys
import jinja2
pillar = {"aiscout:collector_url": "https://collector.example.com:7443", "aiscout:scan_roots": json.loads(sys.argv[2])}
template = jinja2.Environment().from_string(open(sys.argv[1]).read())
print(template.render(salt={"pillar.get": lambda key, default=None: pillar.get(key, default)}))
PY
  check_toml "salt ($roots)" "$tmp/salt.toml"
  ruby -rerb -rjson -e '@url = "https://collector.example.com:7443"; @roots = JSON.parse(ARGV[1]);
    print ERB.new(File.read(ARGV[0])).result(binding)' "$tmp/6.erb" "$list" >"$tmp/chef.toml"
  check_toml "chef ($roots)" "$tmp/chef.toml"
done
