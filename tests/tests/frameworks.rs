//! The frameworks section on real environments: the venv pip built for the process tests, a
//! conda-style environment laid out as conda writes it, a Node project, and a home the agent
//! may not read.

use std::path::Path;

use aiscout_e2e::{process_python, run_agent, run_agent_as_nobody};
use serde_json::Value;

fn scan_frameworks(roots: &[&Path], extra: &[&str]) -> Value {
    let mut args = vec!["scan", "--json", "--no-cache", "--only", "frameworks"];
    args.extend_from_slice(extra);
    let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    args.extend(roots.iter().map(String::as_str));
    serde_json::from_str(&run_agent(&args, &[]).0).unwrap()
}

fn entry<'a>(doc: &'a Value, ecosystem: &str, name: &str) -> &'a Value {
    doc["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ecosystem"] == ecosystem && f["name"] == name)
        .unwrap_or_else(|| panic!("{ecosystem}/{name} not in {:#}", doc["frameworks"]))
}

/// A conda environment as conda lays it out: `conda-meta/history` and one JSON record per
/// package (with the fields conda writes), plus a pip-installed dist-info.
fn conda_env(prefix: &Path) {
    let meta = prefix.join("conda-meta");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("history"), "==> 2026-11-01 10:00:00 <==\n# cmd: conda create -n ml pytorch\n").unwrap();
    for (name, version, build) in [
        ("pytorch", "2.3.1", "py3.11_cuda12.1_cudnn8.9.2_0"),
        ("python", "3.11.9", "h955ad1f_0"),
        ("transformers", "4.41.2", "pyhd8ed1ab_0"),
    ] {
        let record = serde_json::json!({
            "name": name, "version": version, "build": build, "build_number": 0,
            "channel": "https://conda.anaconda.org/pytorch/linux-64",
            "subdir": "linux-64", "fn": format!("{name}-{version}-{build}.tar.bz2"),
            "files": ["lib/python3.11/site-packages/x.py"], "depends": [], "license": "BSD-3-Clause",
        });
        std::fs::write(meta.join(format!("{name}-{version}-{build}.json")), record.to_string()).unwrap();
    }
    let dist = prefix.join("lib/python3.11/site-packages/vllm-0.6.3.dist-info");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("METADATA"), "Metadata-Version: 2.1\nName: vllm\nVersion: 0.6.3\n\nbody\n").unwrap();
    std::fs::write(dist.join("INSTALLER"), "pip\n").unwrap();
}

#[test]
fn a_real_venv_and_a_conda_env_report_their_ai_packages() {
    let venv = process_python().parent().unwrap().parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let conda = dir.path().join("envs/ml");
    conda_env(&conda);
    let project = dir.path().join("chat-app");
    std::fs::create_dir_all(project.join("node_modules/openai")).unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"chat-app","dependencies":{"openai":"^4.0.0","express":"^4.19.0"},"devDependencies":{"@anthropic-ai/sdk":"^0.27.0"}}"#,
    )
    .unwrap();
    std::fs::write(project.join("node_modules/openai/package.json"), r#"{"name":"openai","version":"4.52.7"}"#)
        .unwrap();
    // A kernelspec in the (fake) home that runs the venv's interpreter.
    let kernel = dir.path().join(".local/share/jupyter/kernels/onnx-env");
    std::fs::create_dir_all(&kernel).unwrap();
    let spec = serde_json::json!({"argv": [venv.join("bin/python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                  "display_name": "ONNX env", "language": "python"});
    std::fs::write(kernel.join("kernel.json"), spec.to_string()).unwrap();

    let doc = scan_frameworks(&[&venv, dir.path()], &[]);
    let venv = std::fs::canonicalize(&venv).unwrap().display().to_string();
    let ort = entry(&doc, "pypi", "onnxruntime");
    assert_eq!(ort["version"], "1.24.4", "pinned in tests/process-requirements.txt");
    assert_eq!(ort["environment"], serde_json::json!({"path": venv, "kind": "venv"}));
    assert_eq!(entry(&doc, "pypi", "jupyter-server")["version"], "2.17.0");
    let envs = doc["environments"].as_array().unwrap();
    let v = envs.iter().find(|e| e["path"] == venv.as_str()).unwrap();
    assert!(v["packages"].as_u64().unwrap() > 20, "every package is counted: {v}");
    assert!(v["ai_packages"].as_u64().unwrap() < v["packages"].as_u64().unwrap());
    assert_eq!(v["kernels"], serde_json::json!(["onnx-env"]), "the kernelspec runs this venv's interpreter");
    // Only the watchlist is listed by default.
    assert!(doc["frameworks"].as_array().unwrap().iter().all(|f| f["name"] != "requests" && f["name"] != "tornado"));

    let conda = std::fs::canonicalize(&conda).unwrap().display().to_string();
    let torch = entry(&doc, "conda", "pytorch");
    assert_eq!((torch["version"].as_str(), torch["gpu_build"].as_bool()), (Some("2.3.1"), Some(true)));
    assert_eq!(torch["environment"], serde_json::json!({"path": conda, "kind": "conda"}));
    assert_eq!(entry(&doc, "conda", "transformers")["version"], "4.41.2");
    assert_eq!(entry(&doc, "pypi", "vllm")["environment"]["path"], conda.as_str());
    let c = envs.iter().find(|e| e["path"] == conda.as_str()).unwrap();
    assert_eq!(c["python_version"], "3.11.9");

    let openai = entry(&doc, "npm", "openai");
    assert_eq!(openai["version"], "4.52.7", "the installed version, from node_modules");
    assert_eq!(openai["environment"]["kind"], "node-project");
    assert_eq!(entry(&doc, "npm", "@anthropic-ai/sdk")["version"], "^0.27.0", "not installed: the declared range");
    assert!(doc["frameworks"].as_array().unwrap().iter().all(|f| f["name"] != "express"));
}

#[test]
fn all_packages_lists_every_package() {
    let venv = process_python().parent().unwrap().parent().unwrap().to_path_buf();
    let doc = scan_frameworks(&[&venv], &["--all-packages"]);
    let tornado = entry(&doc, "pypi", "tornado");
    assert!(tornado.get("category").is_none(), "not on the watchlist: {tornado}");
    assert_eq!(entry(&doc, "pypi", "onnxruntime")["category"], "core");
}

#[test]
fn a_home_the_agent_may_not_read_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    let dist = home.join(".local/lib/python3.11/site-packages/torch-2.3.1.dist-info");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("METADATA"), "Name: torch\nVersion: 2.3.1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run_agent_as_nobody(&["scan", "--json", "--no-cache", "--only", "frameworks", home.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["frameworks"], serde_json::json!([]));
    let errors: Vec<&Value> = doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["error"].as_str().unwrap().contains("permission denied"))
        .collect();
    assert!(!errors.is_empty(), "{:#}", doc["errors"]);
    assert!(errors.iter().all(|e| e["path"].as_str().unwrap().starts_with(home.to_str().unwrap())), "{errors:?}");
}

#[test]
fn python_projects_report_the_ai_dependencies_they_declare_and_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    // A requirements file as pip writes it, from the real venv of the process tests, plus what
    // people add by hand: an index with credentials, a VCS requirement with a token.
    let freeze = std::process::Command::new(process_python()).args(["-m", "pip", "freeze"]).output().unwrap();
    assert!(freeze.status.success());
    let frozen = String::from_utf8(freeze.stdout).unwrap();
    let onnxruntime = frozen.lines().find_map(|l| l.strip_prefix("onnxruntime==")).unwrap().to_owned();
    let api = dir.path().join("api");
    std::fs::create_dir_all(&api).unwrap();
    std::fs::write(
        api.join("requirements.txt"),
        format!(
            "--extra-index-url https://builder:PlantedIndexPw77@pypi.corp.example/simple\n{frozen}\
             vllm @ git+https://x-token:ghp_PlantedRepoToken1234567890abcdef@github.com/org/vllm\n"
        ),
    )
    .unwrap();
    // A Poetry project that is not installed anywhere, with a lock file, and a conda env file.
    let agent_app = dir.path().join("agent-app");
    std::fs::create_dir_all(agent_app.join("requirements")).unwrap();
    std::fs::write(
        agent_app.join("pyproject.toml"),
        "[project]\nname = \"agent-app\"\ndependencies = [\"anthropic>=0.40,<1\", \"httpx\"]\n\
         [tool.poetry.group.rag.dependencies]\nlangchain = \"^0.3\"\n",
    )
    .unwrap();
    std::fs::write(
        agent_app.join("uv.lock"),
        "version = 1\n[[package]]\nname = \"anthropic\"\nversion = \"0.42.0\"\n[[package]]\nname = \"litellm\"\nversion = \"1.55.0\"\n",
    )
    .unwrap();
    std::fs::write(agent_app.join("requirements/gpu.txt"), "torch==2.5.1\n").unwrap();
    std::fs::write(
        agent_app.join("environment.yml"),
        "name: app\ndependencies:\n  - pytorch::pytorch>=2.3\n  - pip:\n    - openai==1.40.0\n",
    )
    .unwrap();
    // Manifests inside installed code are not projects.
    let vendored = dir.path().join("venv/lib/python3.11/site-packages/somepkg");
    std::fs::create_dir_all(&vendored).unwrap();
    std::fs::write(vendored.join("requirements.txt"), "mistralai==1.0\n").unwrap();

    let out = run_agent(&["scan", "--json", "--no-cache", "--only", "frameworks", dir.path().to_str().unwrap()], &[]).0;
    for planted in ["PlantedIndexPw77", "ghp_PlantedRepoToken", "pypi.corp.example", "github.com/org"] {
        assert!(!out.contains(planted), "{planted} leaked");
    }
    let doc: Value = serde_json::from_str(&out).unwrap();
    let in_project = |eco: &str, name: &str, project: &Path| {
        let e = entry(&doc, eco, name);
        assert_eq!(e["environment"]["kind"], "python-project", "{e}");
        assert_eq!(e["environment"]["path"], project.canonicalize().unwrap().to_str().unwrap(), "{e}");
        e["version"].clone()
    };
    assert_eq!(in_project("pypi", "onnxruntime", &api), format!("=={onnxruntime}"));
    assert_eq!(in_project("pypi", "vllm", &api), Value::Null, "a URL is no version");
    assert_eq!(in_project("pypi", "anthropic", &agent_app), ">=0.40,<1", "the declared range wins over the lock");
    assert_eq!(in_project("pypi", "langchain", &agent_app), "^0.3");
    assert_eq!(in_project("pypi", "litellm", &agent_app), "1.55.0", "named only by the lock");
    assert_eq!(in_project("pypi", "torch", &agent_app), "==2.5.1");
    assert_eq!(in_project("pypi", "openai", &agent_app), "==1.40.0");
    assert_eq!(in_project("conda", "pytorch", &agent_app), ">=2.3");
    assert!(
        doc["frameworks"].as_array().unwrap().iter().all(|f| f["name"] != "mistralai"),
        "a manifest inside site-packages is not a project"
    );
    let projects: Vec<&Value> =
        doc["environments"].as_array().unwrap().iter().filter(|e| e["kind"] == "python-project").collect();
    assert_eq!(projects.len(), 2, "{projects:#?}");
}
