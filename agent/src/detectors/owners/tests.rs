use std::path::Path;

use super::*;

fn model(path: &Path) -> ModelEntry {
    serde_json::from_value(serde_json::json!({
        "path": path.display().to_string(), "format": "pickle", "size": 1, "sha256": "", "digest_source": "hashed",
        "metadata": {}, "source": null, "group": null, "safety": {"verdict": "safe"}
    }))
    .unwrap()
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A venv with one wheel, a conda environment, a Node project and a user's model.
struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Host {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let site = root.join("venv/lib/python3.11/site-packages");
        write(&root.join("venv/pyvenv.cfg"), "home = /usr/bin\n");
        write(&site.join("joblib/test/data/a.pkl"), "x");
        write(&site.join("joblib-1.6.0.dist-info/METADATA"), "Metadata-Version: 2.1\nName: joblib\nVersion: 1.6.0\n\n");
        write(
            &site.join("joblib-1.6.0.dist-info/RECORD"),
            "joblib/__init__.py,sha256=x,1\njoblib/test/data/a.pkl,sha256=y,1\n\"../../../share/j/b,1.npy\",,\njoblib-1.6.0.dist-info/RECORD,,\n",
        );
        // Named after its directory only: no METADATA.
        write(&site.join("Old_Pkg-0.1.dist-info/RECORD"), "old_pkg/m.onnx,,\n");
        write(&site.join("stray.pkl"), "x");
        let env = root.join("conda/envs/e");
        write(&env.join("conda-meta/history"), "");
        write(
            &env.join("conda-meta/pytorch-2.3.0-py311_0.json"),
            r#"{"name":"pytorch","version":"2.3.0","build":"py311_0","files":["lib/python3.11/site-packages/torch/m.pt"]}"#,
        );
        write(&env.join("lib/python3.11/site-packages/pipped-1.0.dist-info/RECORD"), "pipped/w.npz,,\n");
        write(&root.join("proj/node_modules/a/node_modules/@s/b/package.json"), r#"{"name":"@s/b","version":"2.0.0"}"#);
        write(&root.join("proj/node_modules/a/package.json"), r#"{"name":"a"}"#);
        Self { _dir: dir, root }
    }

    fn markers(&self) -> Markers {
        Markers::from_paths([self.root.join("venv/pyvenv.cfg"), self.root.join("conda/envs/e/conda-meta/history")])
    }

    fn attribute(&self, rels: &[&str], cache: Option<&RecordCache>) -> (Vec<Option<ModelOwner>>, OwnersOutcome) {
        let mut models: Vec<ModelEntry> = rels.iter().map(|r| model(&self.root.join(r))).collect();
        let opts = OwnerOptions { homes: vec![], dpkg_info: self.root.join("dpkg/info"), rpm_dbs: vec![] };
        let outcome = attribute(&mut models, &self.markers(), cache, &opts);
        (models.into_iter().map(|m| m.owner).collect(), outcome)
    }
}

fn expect(ecosystem: OwnerEcosystem, name: &str, version: Option<&str>, environment: &Path) -> Option<ModelOwner> {
    Some(ModelOwner {
        ecosystem,
        name: name.into(),
        version: version.map(Into::into),
        environment: environment.display().to_string(),
    })
}

#[test]
fn each_package_manager_attributes_its_files() {
    let host = Host::new();
    let site = "venv/lib/python3.11/site-packages";
    let (owners, outcome) = host.attribute(
        &[
            &format!("{site}/joblib/test/data/a.pkl"),
            "venv/share/j/b,1.npy",
            &format!("{site}/old_pkg/m.onnx"),
            &format!("{site}/stray.pkl"),
            "conda/envs/e/lib/python3.11/site-packages/torch/m.pt",
            "conda/envs/e/lib/python3.11/site-packages/pipped/w.npz",
            "proj/node_modules/a/node_modules/@s/b/m/x.onnx",
            "proj/node_modules/a/m.onnx",
            "proj/models/mine.onnx",
        ],
        None,
    );
    let venv = host.root.join("venv");
    let env = host.root.join("conda/envs/e");
    let proj = host.root.join("proj");
    // `venv/share/…` lies outside the site directory: no rule looks for it there.
    let want = vec![
        expect(OwnerEcosystem::Pypi, "joblib", Some("1.6.0"), &venv),
        None,
        expect(OwnerEcosystem::Pypi, "old-pkg", Some("0.1"), &venv),
        None,
        expect(OwnerEcosystem::Conda, "pytorch", Some("2.3.0"), &env),
        expect(OwnerEcosystem::Pypi, "pipped", Some("1.0"), &env),
        expect(OwnerEcosystem::Npm, "@s/b", Some("2.0.0"), &proj),
        expect(OwnerEcosystem::Npm, "a", None, &proj),
        None,
    ];
    assert_eq!(owners, want);
    assert_eq!(outcome.owned, 6);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
}

#[test]
fn a_rescan_reads_no_unchanged_record() {
    let host = Host::new();
    let db = sled::Config::new().path(host.root.join("db")).open().unwrap();
    let cache = RecordCache::open(&db).unwrap();
    let rels = ["venv/lib/python3.11/site-packages/joblib/test/data/a.pkl", "proj/node_modules/a/m.onnx"];
    let (first, cold) = host.attribute(&rels, Some(&cache));
    assert_eq!((cold.records_read, cold.records_cached), (3, 0));
    let (again, warm) = host.attribute(&rels, Some(&cache));
    assert_eq!(first, again);
    assert_eq!((warm.records_read, warm.records_cached), (0, 3));
    // Only candidates are kept: the joblib entry holds its pickle, not its Python files.
    write(&host.root.join("venv/lib/python3.11/site-packages/joblib-1.6.0.dist-info/RECORD"), "joblib/x.py,,\n");
    let (changed, _) = host.attribute(&rels, Some(&cache));
    assert_eq!(changed.first().unwrap(), &None);
}

#[test]
fn unreadable_records_are_errors_naming_them() {
    let host = Host::new();
    let record = host.root.join("venv/lib/python3.11/site-packages/bad-1.dist-info/RECORD");
    write(&record.with_file_name("METADATA"), "Name: bad\nVersion: 1\n\n");
    std::fs::create_dir_all(&record).unwrap();
    let json = host.root.join("conda/envs/e/conda-meta/broken-1-0.json");
    write(&json, "{not json");
    let (_, outcome) = host.attribute(
        &["venv/lib/python3.11/site-packages/joblib/test/data/a.pkl", "conda/envs/e/lib/python3.11/x.pkl"],
        None,
    );
    let paths: Vec<&str> = outcome.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, vec![json.display().to_string().as_str()]);
    assert!(outcome.errors[0].error.starts_with("cannot parse conda record"), "{:?}", outcome.errors);
}

#[test]
fn system_files_only_outside_homes() {
    assert_eq!(merged_usr_twin(Path::new("/usr/lib/x.pkl")).unwrap(), Path::new("/lib/x.pkl"));
    assert_eq!(merged_usr_twin(Path::new("/lib/x.pkl")).unwrap(), Path::new("/usr/lib/x.pkl"));
    assert_eq!(merged_usr_twin(Path::new("/usr/share/x.pkl")), None);
    let dir = tempfile::tempdir().unwrap();
    let info = dir.path().join("info");
    write(&info.join("m.list"), "/usr/share/m/model.pkl\n/root/m.pkl\n");
    let opts = OwnerOptions { homes: vec![PathBuf::from("/root")], dpkg_info: info, rpm_dbs: vec![] };
    let mut models = vec![model(Path::new("/usr/share/m/model.pkl")), model(Path::new("/root/m.pkl"))];
    let outcome = attribute(&mut models, &Markers::default(), None, &opts);
    let deb =
        ModelOwner { ecosystem: OwnerEcosystem::Deb, name: "m".into(), version: None, environment: "system".into() };
    assert_eq!(models[0].owner, Some(deb));
    assert_eq!(models[1].owner, None);
    assert_eq!(outcome.records_read, 1);
}

#[test]
fn a_directory_model_is_owned_when_a_member_is() {
    let host = Host::new();
    let site = host.root.join("venv/lib/python3.11/site-packages");
    write(&site.join("tf-1.0.dist-info/RECORD"), "tf/saved/saved_model.pb,,\ntf/saved/variables/variables.index,,\n");
    let mut dir_model = model(&site.join("tf/saved"));
    dir_model.group = Some(crate::report::ModelGroup {
        id: String::new(),
        kind: "directory".into(),
        root: site.join("tf/saved").display().to_string(),
        members: vec![site.join("tf/saved/saved_model.pb").display().to_string()],
        missing: Vec::new(),
    });
    let mut models = vec![dir_model];
    let opts = OwnerOptions { homes: vec![], dpkg_info: host.root.join("dpkg/info"), rpm_dbs: vec![] };
    attribute(&mut models, &host.markers(), None, &opts);
    let venv = host.root.join("venv");
    assert_eq!(models[0].owner, expect(OwnerEcosystem::Pypi, "tf", Some("1.0"), &venv));
}
