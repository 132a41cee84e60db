//! End-to-end tests of the detector on fake homes and a fake system root.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::report::inventory::Ecosystem;

fn write(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn executable(path: &Path, content: &[u8]) {
    write(path, content);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A `*.dist-info` with its METADATA.
fn dist(site: &Path, name: &str, version: &str) {
    let dir = site.join(format!("{}-{version}.dist-info", name.replace('-', "_")));
    write(
        &dir.join("METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nREADME").as_bytes(),
    );
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The fake host of the brief: a venv, a conda env, a user site, a pyenv version, two
/// kernelspecs, a Node project and two native executables, all under one home.
struct Fixture {
    /// Keeps the files alive.
    _dir: tempfile::TempDir,
    /// Canonical temp root.
    t: PathBuf,
    /// The home.
    h: PathBuf,
    /// What the walk would have noted.
    markers: Markers,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().canonicalize().unwrap();
    let h = t.join("home");

    // A venv whose base interpreter lives in t/base/bin.
    let venv = h.join("proj/.venv");
    executable(&t.join("base/bin/python3.11"), b"\x7fELF");
    write(
        &venv.join("pyvenv.cfg"),
        format!("home = {}\ninclude-system-site-packages = false\nversion = 3.11.9\n", s(&t.join("base/bin")))
            .as_bytes(),
    );
    let site = venv.join("lib/python3.11/site-packages");
    dist(&site, "torch", "2.3.1+cu121");
    dist(&site, "nvidia-cublas-cu12", "12.1.3.1");
    dist(&site, "requests", "2.32.3");
    dist(&site, "vllm", "0.5.1");
    write(&site.join("transformers-4.41.0-py3.11.egg-info/PKG-INFO"), b"Name: transformers\nVersion: 4.41.0\n");
    std::os::unix::fs::symlink("lib", venv.join("lib64")).unwrap();
    // A package.json inside the venv is not a Node project.
    write(&venv.join("share/jupyter/labextensions/w/package.json"), br#"{"dependencies":{"openai":"1"}}"#);

    // A conda env: records in conda's format, one broken (file-name fallback), plus pip installs.
    let conda = h.join("miniconda3/envs/ml");
    write(&conda.join("conda-meta/history"), b"==> 2024-06-01 <==\n+defaults::python-3.11.9\n");
    write(
        &conda.join("conda-meta/pytorch-2.3.1-py3.11_cuda12.1_cudnn8.9.2_0.json"),
        br#"{"arch":"x86_64","build":"py3.11_cuda12.1_cudnn8.9.2_0","build_number":0,"channel":"https://conda.anaconda.org/pytorch/linux-64","constrains":[],"depends":["python >=3.11,<3.12.0a0"],"extracted_package_dir":"/x/pkgs/pytorch","files":["lib/python3.11/site-packages/torch/__init__.py","lib/python3.11/site-packages/torch/lib/libtorch.so"],"fn":"pytorch-2.3.1-py3.11_cuda12.1_cudnn8.9.2_0.tar.bz2","license":"BSD 3-Clause","md5":"0123","name":"pytorch","paths_data":{"paths":[],"paths_version":1},"platform":"linux","requested_spec":"pytorch","size":1,"subdir":"linux-64","timestamp":1,"url":"https://conda.anaconda.org/pytorch/linux-64/x.tar.bz2","version":"2.3.1"}"#,
    );
    write(
        &conda.join("conda-meta/python-3.11.9-h955ad1f_0.json"),
        br#"{"build":"h955ad1f_0","build_number":0,"channel":"https://repo.anaconda.com/pkgs/main/linux-64","files":["bin/python3.11"],"name":"python","version":"3.11.9"}"#,
    );
    write(&conda.join("conda-meta/numpy-1.26.4-py311h08b1b3b_0.json"), b"{\"name\": \"numpy\", \"files\": [tr");
    let csite = conda.join("lib/python3.11/site-packages");
    dist(&csite, "torch", "2.3.1");
    write(&csite.join("torch-2.3.1.dist-info/INSTALLER"), b"conda\n");
    dist(&csite, "numpy", "1.26.4");
    dist(&csite, "openai", "1.35.0");
    write(&csite.join("openai-1.35.0.dist-info/INSTALLER"), b"pip\n");

    // A user site and a pyenv version.
    let usite = h.join(".local/lib/python3.11/site-packages");
    dist(&usite, "langchain", "0.2.5");
    dist(&usite, "six", "1.16.0");
    let pyenv = h.join(".pyenv/versions/3.10.14");
    executable(&pyenv.join("bin/python3"), b"\x7fELF");
    dist(&pyenv.join("lib/python3.10/site-packages"), "jax", "0.4.30");

    // Kernelspecs: one into the venv, one into a prefix nothing else finds.
    let kernels = h.join(".local/share/jupyter/kernels");
    write(
        &kernels.join("proj/kernel.json"),
        format!(r#"{{"argv":["{}","-m","ipykernel_launcher","-f","{{connection_file}}"],"display_name":"proj","language":"python"}}"#, s(&venv.join("bin/python")))
            .as_bytes(),
    );
    let elsewhere = t.join("elsewhere/py");
    dist(&elsewhere.join("lib/python3.12/site-packages"), "transformers", "4.42.0");
    write(
        &kernels.join("other/kernel.json"),
        format!(
            r#"{{"argv":["{}","-m","ipykernel_launcher"],"display_name":"other","language":"python"}}"#,
            s(&elsewhere.join("bin/python"))
        )
        .as_bytes(),
    );

    // A Node project.
    let web = h.join("web");
    write(
        &web.join("package.json"),
        br#"{"name":"web","dependencies":{"openai":"^4.0.0","left-pad":"^1.3.0"},"devDependencies":{"@langchain/core":"^0.2.0"}}"#,
    );
    write(&web.join("node_modules/openai/package.json"), br#"{"name":"openai","version":"4.52.0"}"#);

    // Native executables: a binary, a console script of the venv, and a non-executable file.
    executable(&h.join(".local/bin/llama-server"), b"\x7fELF\x02\x01\x01");
    executable(
        &h.join(".local/bin/vllm"),
        format!("#!{}\nimport sys\nfrom vllm.scripts import main\n", s(&venv.join("bin/python"))).as_bytes(),
    );
    write(&h.join(".local/bin/ollama"), b"\x7fELF");

    let markers = Markers::from_paths([
        venv.join("pyvenv.cfg"),
        conda.join("conda-meta/history"),
        web.join("package.json"),
        venv.join("share/jupyter/labextensions/w/package.json"),
    ]);
    Fixture { _dir: dir, t, h, markers }
}

fn run(f: &Fixture, all_packages: bool) -> FrameworksOutcome {
    let host = Host { root: f.t.join("no-system-root"), path_dirs: Vec::new() };
    let opts = FrameworkOptions { homes: vec![f.h.clone()], system: false, all_packages };
    collect_on(&host, &opts, &f.markers)
}

fn find<'a>(out: &'a FrameworksOutcome, ecosystem: Ecosystem, name: &str, env: &Path) -> Option<&'a FrameworkEntry> {
    out.frameworks.iter().find(|e| e.ecosystem == ecosystem && e.name == name && e.environment.path == s(env))
}

#[test]
fn every_kind_of_environment_is_found_once_with_counts_and_kernels() {
    let f = fixture();
    let (t, h) = (&f.t, &f.h);
    let out = run(&f, false);
    assert!(out.errors.is_empty(), "{:?}", out.errors);

    let envs: Vec<(String, EnvironmentKind, u64, u64)> =
        out.environments.iter().map(|e| (e.path.clone(), e.kind, e.packages, e.ai_packages)).collect();
    assert_eq!(
        envs,
        vec![
            (s(&t.join("elsewhere/py")), EnvironmentKind::JupyterKernel, 1, 1),
            (s(&h.join(".local/bin")), EnvironmentKind::User, 2, 2),
            (s(&h.join(".local/lib/python3.11/site-packages")), EnvironmentKind::User, 2, 1),
            (s(&h.join(".pyenv/versions/3.10.14")), EnvironmentKind::Pyenv, 1, 1),
            (s(&h.join("miniconda3/envs/ml")), EnvironmentKind::Conda, 4, 2),
            (s(&h.join("proj/.venv")), EnvironmentKind::Venv, 5, 4),
            (s(&h.join("web")), EnvironmentKind::NodeProject, 3, 2),
        ]
    );
    let env = |p: &str| out.environments.iter().find(|e| e.path == s(&h.join(p))).unwrap();
    let venv = env("proj/.venv");
    assert_eq!(venv.kernels, ["proj"]);
    assert_eq!(venv.python_version.as_deref(), Some("3.11.9"));
    assert_eq!(venv.interpreter.as_deref(), Some(s(&t.join("base/bin/python3.11")).as_str()));
    let conda = env("miniconda3/envs/ml");
    assert_eq!(conda.python_version.as_deref(), Some("3.11.9"));
    assert!(conda.kernels.is_empty());
    let pyenv = env(".pyenv/versions/3.10.14");
    assert_eq!(pyenv.python_version.as_deref(), Some("3.10"));
    assert_eq!(pyenv.interpreter.as_deref(), Some(s(&h.join(".pyenv/versions/3.10.14/bin/python3")).as_str()));
    assert_eq!(env(".local/lib/python3.11/site-packages").python_version.as_deref(), Some("3.11"));
    let kernel_only = out.environments.first().unwrap();
    assert_eq!(kernel_only.kernels, ["other"]);
    assert_eq!(kernel_only.python_version.as_deref(), Some("3.12"));
}

#[test]
fn watchlist_hits_carry_versions_categories_and_gpu_builds() {
    let f = fixture();
    let h = &f.h;
    let out = run(&f, false);
    let venv = h.join("proj/.venv");

    let torch = find(&out, Ecosystem::Pypi, "torch", &venv).unwrap();
    assert_eq!(torch.version.as_deref(), Some("2.3.1+cu121"));
    assert_eq!(torch.category.as_deref(), Some("core"));
    assert!(torch.gpu_build);
    assert_eq!(torch.environment.kind, EnvironmentKind::Venv);
    let cublas = find(&out, Ecosystem::Pypi, "nvidia-cublas-cu12", &venv).unwrap();
    assert_eq!((cublas.category.as_deref(), cublas.gpu_build), (Some("gpu"), true));
    let egg = find(&out, Ecosystem::Pypi, "transformers", &venv).unwrap();
    assert_eq!((egg.version.as_deref(), egg.gpu_build), (Some("4.41.0"), false));
    assert!(find(&out, Ecosystem::Pypi, "requests", &venv).is_none());

    let conda = h.join("miniconda3/envs/ml");
    let pytorch = find(&out, Ecosystem::Conda, "pytorch", &conda).unwrap();
    assert_eq!((pytorch.version.as_deref(), pytorch.gpu_build), (Some("2.3.1"), true));
    assert_eq!(find(&out, Ecosystem::Pypi, "openai", &conda).unwrap().version.as_deref(), Some("1.35.0"));
    assert!(find(&out, Ecosystem::Pypi, "torch", &conda).is_none(), "conda's own torch is not a pip install");

    let web = h.join("web");
    assert_eq!(find(&out, Ecosystem::Npm, "openai", &web).unwrap().version.as_deref(), Some("4.52.0"));
    let core = find(&out, Ecosystem::Npm, "@langchain/core", &web).unwrap();
    assert_eq!((core.version.as_deref(), core.category.as_deref()), (Some("^0.2.0"), Some("app")));
    assert!(find(&out, Ecosystem::Npm, "left-pad", &web).is_none());
    assert!(!out.frameworks.iter().any(|e| e.environment.path.contains("labextensions")));

    let bin = h.join(".local/bin");
    let llama = find(&out, Ecosystem::Native, "llama-server", &bin).unwrap();
    assert_eq!(llama.version, None);
    assert_eq!(llama.path.as_deref(), Some(s(&bin.join("llama-server")).as_str()));
    assert_eq!((llama.environment.kind, llama.category.as_deref()), (EnvironmentKind::User, Some("serving")));
    let vllm = find(&out, Ecosystem::Native, "vllm", &bin).unwrap();
    assert_eq!(vllm.version.as_deref(), Some("0.5.1"));
    assert!(find(&out, Ecosystem::Native, "ollama", &bin).is_none(), "not executable");

    let mut sorted = out.frameworks.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, out.frameworks);
    assert_eq!(out.frameworks.len(), 13, "{:#?}", out.frameworks);
}

#[test]
fn all_packages_lists_everything_without_changing_counts() {
    let f = fixture();
    let h = &f.h;
    let watch = run(&f, false);
    let all = run(&f, true);
    assert_eq!(watch.environments, all.environments);

    let requests = find(&all, Ecosystem::Pypi, "requests", &h.join("proj/.venv")).unwrap();
    assert_eq!((requests.version.as_deref(), requests.category.as_deref()), (Some("2.32.3"), None));
    let numpy = find(&all, Ecosystem::Conda, "numpy", &h.join("miniconda3/envs/ml")).unwrap();
    assert_eq!(numpy.version.as_deref(), Some("1.26.4"), "from the record's file name");
    assert!(find(&all, Ecosystem::Pypi, "numpy", &h.join("miniconda3/envs/ml")).is_none());
    let pad = find(&all, Ecosystem::Npm, "left-pad", &h.join("web")).unwrap();
    assert_eq!((pad.version.as_deref(), pad.category.as_deref()), (Some("^1.3.0"), None));
    let total: u64 = all.environments.iter().map(|e| e.packages).sum();
    assert_eq!(all.frameworks.len() as u64, total);
    assert!(watch.frameworks.iter().all(|e| e.category.is_some()));
}

#[test]
fn system_locations_under_a_fake_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let dist_packages = root.join("usr/lib/python3/dist-packages");
    dist(&dist_packages, "onnxruntime-gpu", "1.18.0");
    executable(&root.join("usr/bin/python3"), b"\x7fELF");
    dist(&root.join("usr/local/lib/python3.12/dist-packages"), "mlflow", "2.14.0");
    write(&root.join("opt/conda/conda-meta/history"), b"");
    write(
        &root.join("opt/conda/conda-meta/pytorch-2.3.1-cpu_py311h0_0.json"),
        br#"{"name":"pytorch","version":"2.3.1","build":"cpu_py311h0_0"}"#,
    );
    write(&root.join("opt/tool/pyvenv.cfg"), b"version_info = 3.12.3.final.0\n");
    dist(&root.join("opt/tool/lib/python3.12/site-packages"), "ollama", "0.2.1");
    executable(&root.join("usr/local/bin/ollama"), b"\x7fELF");
    // `pip install` into the system Python puts scripts in /usr/local/bin.
    executable(&root.join("usr/local/bin/mlflow"), format!("#!{}\n", s(&root.join("usr/bin/python3"))).as_bytes());
    // A venv's own bin/ is that venv's packages, not a native runtime directory.
    executable(&root.join("opt/tool/bin/ollama"), b"#!/opt/tool/bin/python\n");
    // A kernel of the system interpreter joins the system sites of that prefix.
    write(
        &root.join("usr/share/jupyter/kernels/sys/kernel.json"),
        format!(r#"{{"argv":["{}"]}}"#, s(&root.join("usr/bin/python3"))).as_bytes(),
    );

    let host = Host { root: root.clone(), path_dirs: vec![root.join("missing/bin")] };
    let opts = FrameworkOptions { homes: Vec::new(), system: true, all_packages: false };
    let out = collect_on(&host, &opts, &Markers::default());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let envs: Vec<(String, EnvironmentKind)> = out.environments.iter().map(|e| (e.path.clone(), e.kind)).collect();
    assert_eq!(
        envs,
        vec![
            (s(&root.join("opt/conda")), EnvironmentKind::Conda),
            (s(&root.join("opt/tool")), EnvironmentKind::Venv),
            (s(&dist_packages), EnvironmentKind::System),
            (s(&root.join("usr/local/bin")), EnvironmentKind::System),
            (s(&root.join("usr/local/lib/python3.12/dist-packages")), EnvironmentKind::System),
        ]
    );
    let debian = out.environments.iter().find(|e| e.path == s(&dist_packages)).unwrap();
    assert_eq!(debian.interpreter.as_deref(), Some(s(&root.join("usr/bin/python3")).as_str()));
    assert_eq!(debian.python_version, None);
    assert_eq!(debian.kernels, ["sys"]);
    let ort = find(&out, Ecosystem::Pypi, "onnxruntime-gpu", &dist_packages).unwrap();
    assert!(ort.gpu_build);
    assert!(!find(&out, Ecosystem::Conda, "pytorch", &root.join("opt/conda")).unwrap().gpu_build);
    let tool = out.environments.iter().find(|e| e.path == s(&root.join("opt/tool"))).unwrap();
    assert_eq!(tool.python_version.as_deref(), Some("3.12.3"));
    // mlflow's script runs /usr/bin/python3: the version comes from /usr's system sites.
    let mlflow = find(&out, Ecosystem::Native, "mlflow", &root.join("usr/local/bin")).unwrap();
    assert_eq!(mlflow.version.as_deref(), Some("2.14.0"));
    assert_eq!(find(&out, Ecosystem::Native, "ollama", &root.join("usr/local/bin")).unwrap().version, None);
}

#[test]
fn environments_found_twice_are_examined_once() {
    let f = fixture();
    let mut markers = f.markers.clone();
    // The same conda env through environments.txt and a symlinked path.
    write(
        &f.h.join(".conda/environments.txt"),
        format!("{}\n\nrelative/ignored\n", s(&f.h.join("miniconda3/envs/ml"))).as_bytes(),
    );
    std::os::unix::fs::symlink(f.h.join("proj/.venv"), f.h.join("venv-link")).unwrap();
    markers.pyvenv_cfgs.push(f.h.join("venv-link/pyvenv.cfg"));
    let host = Host { root: f.t.join("none"), path_dirs: Vec::new() };
    let opts = FrameworkOptions { homes: vec![f.h.clone(), f.h.join(".")], system: false, all_packages: false };
    let out = collect_on(&host, &opts, &markers);
    assert_eq!(out.environments.len(), 7);
    assert_eq!(out.environments.iter().filter(|e| e.kind == EnvironmentKind::Venv).count(), 1);
}

#[test]
fn broken_files_are_errors_not_failures() {
    let f = fixture();
    write(&f.h.join(".local/share/jupyter/kernels/bad/kernel.json"), b"{not json");
    write(&f.h.join("broken/package.json"), b"\x00\x01");
    let mut markers = f.markers.clone();
    markers.package_jsons.push(f.h.join("broken/package.json"));
    let host = Host { root: f.t.join("none"), path_dirs: Vec::new() };
    let opts = FrameworkOptions { homes: vec![f.h.clone()], system: false, all_packages: false };
    let out = collect_on(&host, &opts, &markers);
    let paths: Vec<&str> = out.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [s(&f.h.join(".local/share/jupyter/kernels/bad/kernel.json")), s(&f.h.join("broken/package.json"))]
    );
    assert!(out.errors.iter().all(|e| e.error == e.error.to_lowercase() && e.error.starts_with("cannot parse")));
    assert_eq!(out.environments.len(), 7);
}
