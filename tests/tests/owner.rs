//! Whose file is it: model files shipped inside installed packages carry their owner (pypi from
//! a real venv of PyPI wheels, deb from a package installed with dpkg, rpm from one
//! built with rpmbuild and installed with rpm, npm from a
//! `node_modules` tree), the table and the collector's default listing leave them out, and a
//! rescan reads no unchanged record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use aiscout_e2e::fleet::{assert_ok, run_once, Collector};
use aiscout_e2e::{fixtures_dir, run_agent, run_scan_json, running_as_root, workspace_root};
use serde_json::{json, Value};

/// The venv `scripts/owner-venv.sh` prepares (scikit-learn, joblib and their dependencies,
/// torch without its CUDA wheels), and its site directory.
fn owner_venv() -> (PathBuf, PathBuf) {
    let venv = workspace_root().join("var/owner-venv");
    assert!(
        venv.join("bin/python").is_file() && venv.join(".requirements.sha256").is_file(),
        "{} is missing: run scripts/owner-venv.sh (scripts/test.sh runs it before the tests)",
        venv.display()
    );
    let lib = venv.join("lib");
    let python = std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .unwrap_or_else(|| panic!("no python3.* in {}", lib.display()));
    (venv.clone(), python.path().join("site-packages"))
}

/// Path → (normalised name, version) of every file the venv's distributions list, as Python's
/// own `importlib.metadata` reads their RECORD files: an independent reading of the records.
fn files_by_importlib(venv: &Path, site: &Path) -> BTreeMap<String, (String, String)> {
    let script = r#"
import importlib.metadata as md, json, os, re, sys
site = sys.argv[1]
out = {}
for dist in md.distributions(path=[site]):
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    for f in dist.files or []:
        out[os.path.normpath(str(dist.locate_file(f)))] = [name, dist.version]
json.dump(out, sys.stdout)
"#;
    let out = Command::new(venv.join("bin/python")).arg("-c").arg(script).arg(site).output().unwrap();
    assert!(out.status.success(), "importlib.metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let map: BTreeMap<String, (String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(map.len() > 1000, "the venv's records list only {} files", map.len());
    map
}

fn models(doc: &Value) -> Vec<Value> {
    doc["models"].as_array().cloned().unwrap_or_default()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The table's rows (lines of the models table that end with a path).
fn table_paths(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with('('))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect()
}

#[test]
fn every_file_of_a_real_venv_is_attributed_as_its_records_say() {
    let (venv, site) = owner_venv();
    let expected = files_by_importlib(&venv, &site);
    let mine = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), mine.path().join("mine.onnx")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let roots = [venv.as_path(), mine.path()];

    let cold = run_scan_json(&roots, state.path(), &[]);
    let all = models(&cold);
    let in_venv: Vec<&Value> = all.iter().filter(|m| text(&m["path"]).starts_with(&*venv.to_string_lossy())).collect();
    assert!(in_venv.len() >= 50, "only {} models in the venv", in_venv.len());
    let mut attributed = 0;
    for m in &in_venv {
        let path = text(&m["path"]);
        let (name, version) = expected.get(path).unwrap_or_else(|| panic!("{path}: no record lists it"));
        let want =
            json!({"ecosystem": "pypi", "name": name, "version": version, "environment": venv.display().to_string()});
        assert_eq!(m["owner"], want, "{path}");
        attributed += 1;
    }
    let user: Vec<&Value> =
        all.iter().filter(|m| text(&m["path"]).starts_with(&*mine.path().to_string_lossy())).collect();
    assert_eq!(user.len(), 1);
    assert_eq!(user[0]["owner"], Value::Null);
    assert_eq!(cold["stats"]["owned_models"], json!(attributed));
    let read = cold["stats"]["records_read"].as_u64().unwrap();
    assert!(read >= 3, "{:#}", cold["stats"]);

    // A rescan reads no record: every one is answered by the cache.
    let warm = run_scan_json(&roots, state.path(), &[]);
    assert_eq!(warm["stats"]["records_read"], json!(0), "{:#}", warm["stats"]);
    assert_eq!(warm["stats"]["record_cache_hits"], json!(read));
    assert_eq!(
        models(&warm).iter().map(|m| m["owner"].clone()).collect::<Vec<_>>(),
        all.iter().map(|m| m["owner"].clone()).collect::<Vec<_>>()
    );
    eprintln!(
        "owner venv: {} models in the venv, {attributed} attributed; cold scan {} ms ({} records read), rescan {} ms",
        in_venv.len(),
        cold["stats"]["duration_ms"],
        read,
        warm["stats"]["duration_ms"]
    );

    // The table lists the user's model only, unless asked.
    let state_arg = state.path().to_string_lossy().into_owned();
    let (venv_arg, mine_arg) = (venv.to_string_lossy().into_owned(), mine.path().to_string_lossy().into_owned());
    let args = ["scan", "--only", "models", "--state-dir", &state_arg, &venv_arg, &mine_arg];
    let (table, _) = run_agent(&args, &[]);
    let rows = table_paths(&table);
    assert_eq!(rows, vec![text(&user[0]["path"]).to_owned()], "{table}");
    assert!(table.contains(&format!("({attributed} files shipped inside installed packages not listed")), "{table}");
    let (table, _) = run_agent(&[&args[..], &["--include-owned"]].concat(), &[]);
    assert_eq!(table_paths(&table).len(), in_venv.len() + 1, "{table}");
}

/// Installs a `.deb` built here and purges it when dropped.
struct InstalledDeb(&'static str);

impl Drop for InstalledDeb {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", self.0]).output();
    }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(out.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_file_of_an_installed_debian_package_is_attributed_to_it() {
    assert!(running_as_root(), "installing a .deb needs root (scripts/test.sh runs as root in CI)");
    const PACKAGE: &str = "aiscout-owner-e2e";
    let build = tempfile::tempdir().unwrap();
    let root = build.path().join("root");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("opt").join(PACKAGE)).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {PACKAGE}\nVersion: 1.2-3\nArchitecture: all\nMaintainer: aiscout <t@example.invalid>\nDescription: owner test\n"),
    )
    .unwrap();
    std::fs::copy(fixtures_dir().join("models/plain_p2.pickle"), root.join("opt").join(PACKAGE).join("model.pkl"))
        .unwrap();
    let deb = build.path().join("p.deb");
    run(Command::new("dpkg-deb").args(["--build", "--root-owner-group"]).arg(&root).arg(&deb));
    let _installed = InstalledDeb(PACKAGE);
    run(Command::new("dpkg").arg("-i").arg(&deb));

    let state = tempfile::tempdir().unwrap();
    let dir = Path::new("/opt").join(PACKAGE);
    let doc = run_scan_json(&[&dir], state.path(), &[]);
    let all = models(&doc);
    assert_eq!(all.len(), 1, "{doc:#}");
    assert_eq!(
        all[0]["owner"],
        json!({"ecosystem": "deb", "name": PACKAGE, "version": "1.2-3", "environment": "system"})
    );
    // The same bytes outside the package are the user's own.
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("model.pkl"), home.path().join("model.pkl")).unwrap();
    let doc = run_scan_json(&[home.path()], state.path(), &[]);
    assert_eq!(models(&doc)[0]["owner"], Value::Null);
}

/// Where the rpm database of the test lives: Debian's rpm defaults to `~/.rpmdb`, the
/// distributions that ship rpm to `/var/lib/rpm` (or `/usr/lib/sysimage/rpm`), which the agent
/// reads, so every rpm call of the test names it.
const RPM_DBPATH: &str = "/var/lib/rpm";

/// Installs an `.rpm` built here and erases it when dropped.
struct InstalledRpm(&'static str);

impl Drop for InstalledRpm {
    fn drop(&mut self) {
        let _ = Command::new("rpm").args(["--dbpath", RPM_DBPATH, "-e", "--nodeps", self.0]).output();
    }
}

/// The output of a command that must succeed.
fn stdout_of(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(out.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_file_of_an_installed_rpm_package_is_attributed_to_it() {
    assert!(running_as_root(), "installing an .rpm needs root (scripts/test.sh runs as root in CI)");
    for tool in ["rpm", "rpmbuild"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()),
            "{tool} is missing: apt-get install rpm (scripts/test.sh installs it)"
        );
    }
    const PACKAGE: &str = "aiscout-rpmtest";
    let rpm_eval = |macro_: &str| stdout_of(Command::new("rpm").args(["--dbpath", RPM_DBPATH, "--eval", macro_]));
    assert_eq!(rpm_eval("%_dbpath"), RPM_DBPATH);
    assert_eq!(rpm_eval("%_db_backend"), "sqlite", "the agent reads the SQLite rpm database only");

    let build = tempfile::tempdir().unwrap();
    let model = build.path().join("model.pkl");
    std::fs::copy(fixtures_dir().join("models/plain_p2.pickle"), &model).unwrap();
    let spec = build.path().join("p.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: {PACKAGE}\nVersion: 1.2\nRelease: 3\nEpoch: 4\nSummary: owner test\nLicense: MIT\n\
BuildArch: noarch\n%description\nowner test\n%install\nmkdir -p %{{buildroot}}/usr/share/{PACKAGE}\n\
cp {} %{{buildroot}}/usr/share/{PACKAGE}/model.pkl\n%files\n/usr/share/{PACKAGE}/model.pkl\n",
            model.display()
        ),
    )
    .unwrap();
    let top = build.path().join("top");
    run(Command::new("rpmbuild")
        .args(["-bb", "--nodeps", "--define"])
        .arg(format!("_topdir {}", top.display()))
        .arg(&spec));
    let rpm = top.join("RPMS/noarch/aiscout-rpmtest-1.2-3.noarch.rpm");
    assert!(rpm.is_file(), "rpmbuild made no {}", rpm.display());
    let _installed = InstalledRpm(PACKAGE);
    run(Command::new("rpm").args(["--dbpath", RPM_DBPATH, "-i", "--nodeps", "--nosignature"]).arg(&rpm));
    let db = Path::new(RPM_DBPATH).join("rpmdb.sqlite");
    assert!(db.is_file(), "rpm did not write {}", db.display());
    let dir = Path::new("/usr/share").join(PACKAGE);
    assert_eq!(
        stdout_of(Command::new("rpm").args(["--dbpath", RPM_DBPATH, "-qf"]).arg(dir.join("model.pkl"))),
        "aiscout-rpmtest-1.2-3.noarch"
    );

    let state = tempfile::tempdir().unwrap();
    let doc = run_scan_json(&[&dir], state.path(), &[]);
    let all = models(&doc);
    assert_eq!(all.len(), 1, "{doc:#}");
    assert_eq!(
        all[0]["owner"],
        json!({"ecosystem": "rpm", "name": PACKAGE, "version": "4:1.2-3", "environment": "system"})
    );
    // A rescan answers from the cache; the same bytes outside the package are the user's own.
    let again = run_scan_json(&[&dir], state.path(), &[]);
    assert_eq!(models(&again)[0]["owner"], all[0]["owner"]);
    assert_eq!(again["stats"]["records_read"], json!(0), "{:#}", again["stats"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("model.pkl"), home.path().join("model.pkl")).unwrap();
    let doc = run_scan_json(&[home.path()], state.path(), &[]);
    assert_eq!(models(&doc)[0]["owner"], Value::Null);
}

/// A Node project with an npm package holding a model, a nested scoped package holding another,
/// and the user's own model.
fn node_project(at: &Path) {
    let write = |rel: &str, text: &str| {
        let p = at.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let copy = |fixture: &str, rel: &str| {
        let p = at.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(fixtures_dir().join(fixture), p).unwrap();
    };
    write("package.json", r#"{"name":"app","dependencies":{"a":"^1"}}"#);
    write("node_modules/a/package.json", r#"{"name":"a","version":"1.0.0"}"#);
    copy("models/tiny.onnx", "node_modules/a/models/m.onnx");
    write("node_modules/a/node_modules/@s/b/package.json", r#"{"name":"@s/b","version":"2.0.0"}"#);
    copy("safety/hostile/builtins_eval_p2.pkl", "node_modules/a/node_modules/@s/b/w.pkl");
    copy("models/single.safetensors", "models/mine.safetensors");
}

/// Roots that reach every model of [`node_project`] (none nested in another).
fn package_roots(project: &Path) -> Vec<PathBuf> {
    ["models", "node_modules/a/models", "node_modules/a/node_modules/@s/b"].iter().map(|r| project.join(r)).collect()
}

#[test]
fn node_modules_files_belong_to_the_innermost_package() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().canonicalize().unwrap().join("app");
    node_project(&project);
    let state = tempfile::tempdir().unwrap();
    // The walk never descends into a `node_modules` (roots::DEFAULT_EXCLUDED_DIRS), so a scan
    // of the project meets no npm file; roots inside packages are walked.
    let doc = run_scan_json(&[&project], state.path(), &[]);
    assert_eq!(models(&doc).len(), 1, "{doc:#}");
    let roots = package_roots(&project);
    let roots: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
    let doc = run_scan_json(&roots, state.path(), &[]);
    let owners: BTreeMap<String, Value> = models(&doc)
        .iter()
        .map(|m| (text(&m["path"]).replace(&*project.to_string_lossy(), ""), m["owner"].clone()))
        .collect();
    let env = project.display().to_string();
    let want: BTreeMap<String, Value> = [
        ("/models/mine.safetensors", Value::Null),
        (
            "/node_modules/a/models/m.onnx",
            json!({"ecosystem": "npm", "name": "a", "version": "1.0.0", "environment": env}),
        ),
        (
            "/node_modules/a/node_modules/@s/b/w.pkl",
            json!({"ecosystem": "npm", "name": "@s/b", "version": "2.0.0", "environment": env}),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(owners, want);
    // The dangerous package file is named with its package under the table.
    let mut args = vec!["scan".to_owned(), "--no-cache".into(), "--only".into(), "models".into()];
    args.extend(roots.iter().map(|r| r.to_string_lossy().into_owned()));
    let (table, _) = run_agent(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(table_paths(&table).len(), 1, "{table}");
    assert!(table.contains("dangerous files shipped inside installed packages:"), "{table}");
    assert!(table.contains("w.pkl  npm @s/b 2.0.0"), "{table}");
}

#[test]
fn the_collector_lists_package_files_only_when_asked_or_dangerous() {
    let c = Collector::start();
    let token = c.token_file("token", &[]);
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().canonicalize().unwrap().join("app");
    node_project(&project);
    let roots = package_roots(&project);
    assert_ok(&run_once(&c.agent("n", &roots.iter().map(PathBuf::as_path).collect::<Vec<_>>(), &token)));
    let listed = |query: &str| -> Vec<(String, bool)> {
        let page = c.get(&format!("/api/v1/assets?kind=model{query}"));
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(page["total"], json!(items.len()));
        let mut out: Vec<(String, bool)> = items
            .iter()
            .map(|a| {
                let id = text(&a["id"]);
                let detail = c.get(&format!("/api/v1/assets/{id}"));
                let path = text(&detail["sightings_page"]["items"][0]["path"]).replace(&*project.to_string_lossy(), "");
                (path, a["owned"].as_bool().unwrap())
            })
            .collect();
        out.sort();
        out
    };
    let user = ("/models/mine.safetensors".to_owned(), false);
    let dangerous = ("/node_modules/a/node_modules/@s/b/w.pkl".to_owned(), true);
    let package = ("/node_modules/a/models/m.onnx".to_owned(), true);
    assert_eq!(listed(""), vec![user.clone(), dangerous.clone()]);
    assert_eq!(listed("&include_owned=false"), vec![user.clone(), dangerous.clone()]);
    assert_eq!(listed("&include_owned=true"), vec![user, package, dangerous]);
}
