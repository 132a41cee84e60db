//! What a pickle may import: the allowlist of what real model files need and the denylist of
//! known execution primitives. Names are `module.qualname` as the pickle spells them.
//!
//! Matching, in order (the first rule that matches decides):
//! 1. [`DENY_EXACT`]: the callable itself;
//! 2. [`DENY_MODULES`]: the module or any parent module (`os` covers `os.path.join`);
//! 3. [`ALLOW_EXACT`] and [`SAFE_BUILTINS`]: the callable itself;
//! 4. [`ALLOW_PREFIXES`]: everything under a package whose contents are data types and
//!    estimator classes;
//! 5. anything else is unknown, and an unknown import is at least suspicious.
//!
//! Sources, cited per entry with these tags:
//! - `[ps]` picklescan `src/picklescan/scanner.py` `_unsafe_globals` / `_safe_globals`;
//! - `[ms]` ModelScan `modelscan/settings.py` `unsafe_globals`;
//! - `[fk]` fickling `fickle.py` `UNSAFE_IMPORTS`, `analysis.py` `BadCalls`, `ml.py`
//!   `ML_ALLOWLIST` and `UnsafeImportsML`;
//! - `[gh]` bypasses reported against those scanners (modelscan#338, #330, #331, #267, PR#346;
//!   picklescan#14, #22, PR#52; GHSA advisories) — see `shared/reference/models-and-scanners.md`;
//! - `[ai]` aiscout's own reading of the Python standard library and the ML libraries: the
//!   module runs code, spawns processes, opens files or sockets, or loads another pickle.

/// How one import is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportClass {
    /// On the denylist: an execution, file, network or deserialisation primitive.
    Dangerous(&'static str),
    /// On the allowlist: what model files need.
    Allowed,
    /// On neither list.
    Unknown,
}

/// Callables that execute code, touch files or the network, or load more pickles, with why.
pub const DENY_EXACT: &[(&str, &str)] = &[
    // builtins [ps][ms][fk]
    ("builtins.eval", "evaluates a Python expression [ps][ms][fk]"),
    ("builtins.exec", "executes Python code [ps][ms][fk]"),
    ("builtins.compile", "compiles Python code [ps][ms][fk]"),
    ("builtins.open", "opens a file [ps][ms][fk]"),
    ("builtins.getattr", "reaches any attribute of any object, e.g. os.system [ps][ms]"),
    ("builtins.setattr", "overwrites attributes of live objects [ai]"),
    ("builtins.delattr", "deletes attributes of live objects [ai]"),
    ("builtins.apply", "calls any callable (Python 2) [ps][ms]"),
    ("builtins.breakpoint", "starts a debugger [ps][ms]"),
    ("builtins.__import__", "imports any module [ms][fk]"),
    ("builtins.input", "reads from the terminal [ai]"),
    ("builtins.globals", "exposes module globals [ai]"),
    ("builtins.vars", "exposes object namespaces [ai]"),
    ("__builtin__.eval", "evaluates a Python expression (Python 2 name) [ps][ms]"),
    ("__builtin__.exec", "executes Python code (Python 2 name) [ps]"),
    ("__builtin__.compile", "compiles Python code (Python 2 name) [ps]"),
    ("__builtin__.open", "opens a file (Python 2 name) [ps]"),
    ("__builtin__.getattr", "reaches any attribute (Python 2 name) [ps]"),
    ("__builtin__.apply", "calls any callable (Python 2 name) [ps]"),
    ("__builtin__.__import__", "imports any module (Python 2 name) [ms]"),
    ("__builtin__.execfile", "executes a Python file (Python 2) [ai]"),
    // call helpers that turn a name into a call [ps][fk][gh]
    ("functools.partial", "binds arguments to any callable [ps][fk]"),
    ("functools.reduce", "calls any callable repeatedly [fk]"),
    ("operator.attrgetter", "reaches any attribute [ps][ms][fk]"),
    ("operator.itemgetter", "reaches any item [ps]"),
    ("operator.methodcaller", "calls any method [ps][gh]"),
    ("_operator.attrgetter", "reaches any attribute [ps]"),
    ("_operator.itemgetter", "reaches any item [ps]"),
    ("_operator.methodcaller", "calls any method [ps]"),
    ("types.CodeType", "builds a code object [ps][fk]"),
    ("types.FunctionType", "builds a function from a code object [fk]"),
    ("types.MethodType", "binds a function to an object [ai]"),
    ("logging.FileHandler", "opens a file for writing [ps]"),
    ("_io.FileIO", "opens a file [ps][fk]"),
    ("io.FileIO", "opens a file [fk]"),
    ("io.open", "opens a file [fk]"),
    ("pkgutil.resolve_name", "imports any name [ps]"),
    ("code.InteractiveInterpreter.runcode", "runs code [ps]"),
    ("doctest.debug_script", "runs a script [ps]"),
    ("ensurepip._run_pip", "runs pip [ps]"),
    ("imaplib.IMAP4_stream", "spawns a command [ps]"),
    ("trace.Trace.run", "runs code [ps]"),
    ("trace.Trace.runctx", "runs code [ps]"),
    ("lib2to3.pgen2.grammar.Grammar.loads", "loads a pickle [ps]"),
    ("lib2to3.pgen2.pgen.ParserGenerator.make_label", "evaluates a string [ps]"),
    ("mailcap.findmatch", "runs a shell command from mailcap [gh]"),
    ("zlib.decompress", "unpacks a hidden payload (zlib-packed pickles) [gh]"),
    ("numpy.load", "loads a file, pickles allowed [ai]"),
    ("numpy.fromfile", "reads a file [ai]"),
    ("numpy.__builtins__", "reaches builtins through numpy [gh]"),
    ("numpy.testing._private.utils.runstring", "executes a string [ps][gh]"),
    ("pandas.read_csv", "reads a file or URL [gh]"),
    ("pandas.read_pickle", "loads a pickle [ai]"),
    ("pandas.io.pickle.read_pickle", "loads a pickle [ai]"),
    ("pandas.read_json", "reads a file or URL [ai]"),
    ("pandas.read_html", "reads a file or URL [ai]"),
    ("pandas.read_sql", "queries a database [ai]"),
    ("torch.load", "loads another checkpoint (pickle) [ps][fk]"),
    ("torch.serialization.load", "loads another checkpoint (pickle) [ps][fk]"),
    ("torch.storage._load_from_bytes", "loads a pickle from bytes [fk]"),
    ("torch._dynamo.guards.GuardBuilder.get", "evaluates code [ps]"),
    ("torch._inductor.codecache.compile_file", "compiles and loads code [ps]"),
    ("torch.fx.experimental.symbolic_shapes.ShapeEnv.evaluate_guards_expression", "evaluates code [ps]"),
    ("torch.jit.unsupported_tensor_ops.execWrapper", "executes code [ps]"),
    ("torch.utils._config_module.ConfigModule.load_config", "loads a pickle [ps]"),
    ("torch.utils.bottleneck.__main__.run_cprofile", "runs code [ps]"),
    ("torch.utils.bottleneck.__main__.run_autograd_prof", "runs code [ps]"),
    ("torch.utils.collect_env.run", "runs a shell command [ps][gh]"),
    ("torch.utils.data.datapipes.utils.decoder.basichandlers", "unpickles data [ps]"),
    ("multiprocessing.util.spawnv_passfds", "spawns a process [gh]"),
    ("mlflow.projects.backend.local._run_entry_point", "runs a command [gh]"),
    ("mlflow.projects.utils.load_project", "loads and runs a project [ai]"),
    (
        "keras.src.saving.serialization_lib.deserialize_keras_object",
        "rebuilds objects from config, lambdas included [ai]",
    ),
    ("joblib.load", "loads another pickle [fk]"),
    ("joblib.numpy_pickle.load", "loads another pickle [fk]"),
    ("numpy.f2py", "compiles and imports Fortran/C [ps]"),
];

/// Modules every member of which is dangerous (the module and everything under it).
pub const DENY_MODULES: &[(&str, &str)] = &[
    ("os", "process, file and environment access [ps][ms][fk]"),
    ("nt", "os on Windows [ps][ms]"),
    ("posix", "os on POSIX [ps][ms]"),
    ("subprocess", "spawns processes [ps][ms][fk]"),
    ("sys", "interpreter internals [ps][ms]"),
    ("socket", "network access [ps][ms][fk]"),
    ("ssl", "network access [ps]"),
    ("shutil", "file operations [ps][ms][fk]"),
    ("runpy", "runs modules and code [ps][ms]"),
    ("pty", "spawns a shell [ps][ms]"),
    ("pickle", "loads a nested pickle [ps][ms][fk]"),
    ("_pickle", "loads a nested pickle [ps][ms][gh]"),
    ("cPickle", "loads a nested pickle (Python 2) [ai]"),
    ("dill", "deserialises code [fk]"),
    ("cloudpickle", "deserialises code [ps][fk]"),
    ("marshal", "loads code objects [fk]"),
    ("ctypes", "calls native code [ps][fk]"),
    ("_ctypes", "calls native code [ai]"),
    ("importlib", "imports any module [fk][gh]"),
    ("imp", "imports any module (old API) [ai]"),
    ("builtins.__loader__", "imports any module [ai]"),
    ("code", "interactive interpreter [ps][fk]"),
    ("codeop", "compiles code [ai]"),
    ("pdb", "debugger runs code [ps][ms]"),
    ("bdb", "debugger runs code [ps][ms]"),
    ("asyncio", "subprocesses and sockets [ps][ms]"),
    ("multiprocessing", "spawns processes [fk]"),
    ("_posixsubprocess", "spawns processes [ai]"),
    ("webbrowser", "launches a browser [ps][ms]"),
    ("httplib", "network access [ps][ms]"),
    ("http", "network access [ai]"),
    ("urllib", "network access [ps]"),
    ("urllib2", "network access [ai]"),
    ("urllib3", "network access [ai]"),
    ("httpx", "network access [ai]"),
    ("paramiko", "network access (SSH) [ai]"),
    ("pexpect", "spawns processes [ai]"),
    ("requests", "network access [ps][ms]"),
    ("aiohttp", "network access [ps][ms]"),
    ("ftplib", "network access [fk]"),
    ("smtplib", "network access [fk]"),
    ("telnetlib", "network access [fk]"),
    ("poplib", "network access [fk]"),
    ("nntplib", "network access [fk]"),
    ("socketserver", "network access [fk]"),
    ("xmlrpc", "network access [fk]"),
    ("pydoc", "pager runs a shell command [ps][gh]"),
    ("timeit", "executes code strings [ps]"),
    ("profile", "runs code [ps]"),
    ("cProfile", "runs code [ps]"),
    ("trace", "runs code [ps]"),
    ("pip", "installs packages [ps]"),
    ("venv", "creates environments, runs pip [ps]"),
    ("distutils", "file operations [ps]"),
    ("setuptools", "runs build code [ai]"),
    ("uuid", "spawns processes for node ids [ps]"),
    ("tempfile", "file operations [fk]"),
    ("tarfile", "file extraction [fk]"),
    ("zipfile", "file extraction [fk]"),
    ("glob", "file system access [ai]"),
    ("test", "CPython test helpers run code [ps]"),
    ("idlelib", "IDE helpers run code [ps]"),
    ("_osx_support", "spawns processes [ps]"),
    ("_aix_support", "spawns processes [ps]"),
    ("_pyrepl", "interactive interpreter [ps]"),
    ("inspect", "reaches frames and code [fk]"),
    ("gc", "reaches every live object [ai]"),
    ("signal", "alters process signals [ai]"),
    ("numpy.f2py", "compiles and imports code [ps][fk]"),
    ("numpy.testing", "test helpers run code [ps]"),
    ("numpy.distutils", "build helpers run commands [ai]"),
    ("torch.hub", "downloads and runs code [fk]"),
    ("torch._dynamo", "compiles and runs code [fk]"),
    ("torch._inductor", "compiles and runs code [fk]"),
    ("torch.jit", "compiles and runs code [fk]"),
    ("torch.utils.cpp_extension", "compiles and loads native code [ai]"),
    ("mlflow.projects", "runs projects [gh]"),
];

/// Callables model files need that are safe to call on data.
pub const ALLOW_EXACT: &[&str] = &[
    // collections [ps][fk]
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.deque",
    "collections.Counter",
    // object reconstruction helpers (rebuild a class imported separately) [fk]
    "copyreg._reconstructor",
    "copy_reg._reconstructor",
    "_codecs.encode",
    // torch tensor rebuilders [ps][fk]
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._tensor._rebuild_from_type_v2",
    "torch.Size",
    "torch.device",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.serialization._get_layout",
    "torch.nn.parameter.Parameter",
    // numpy array reconstruction [ps][fk]
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.dtypes.Float64DType",
    "numpy.dtypes.Float32DType",
    "numpy.dtypes.Int64DType",
    "numpy.dtypes.Int32DType",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.ma.core._mareconstruct",
    // joblib's array placeholders [ai]
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "joblib.numpy_pickle.NDArrayWrapper",
    "joblib.numpy_pickle.ZNDArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    // plain data types [ai]
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "decimal.Decimal",
    "fractions.Fraction",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePosixPath",
    // trainer arguments saved beside checkpoints [fk ML_ALLOWLIST]
    "transformers.training_args.TrainingArguments",
    "transformers.training_args.OptimizerNames",
    "transformers.trainer_utils.IntervalStrategy",
    "transformers.trainer_utils.SchedulerType",
    "transformers.trainer_utils.HubStrategy",
    "transformers.trainer_utils.SaveStrategy",
    "accelerate.state.PartialState",
    "accelerate.utils.dataclasses.DistributedType",
];

/// Builtin data types (`builtins.X`, Python 2 `__builtin__.X`) safe to call on data [fk
/// `SAFE_BUILTINS`].
pub const SAFE_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "list",
    "dict",
    "tuple",
    "int",
    "float",
    "complex",
    "bool",
    "str",
    "bytes",
    "bytearray",
    "slice",
    "range",
    "object",
    "unicode",
    "long",
    "NoneType",
    "Ellipsis",
    "NotImplemented",
];

/// Packages whose pickled contents are estimators, layers and data types, never execution
/// primitives (specific denials above take precedence).
pub const ALLOW_PREFIXES: &[&str] = &[
    "sklearn.",          // estimators, transformers, pipelines [ai]
    "scipy.sparse.",     // sparse matrices in estimators [ai]
    "xgboost.",          // boosters [ai]
    "lightgbm.",         // boosters [ai]
    "catboost.",         // boosters [ai]
    "torch.nn.modules.", // layers of whole-model saves [ai]
    "torch.optim.",      // optimizer state classes [ai]
    "pandas.core.",      // DataFrames and Series in estimators [ai]
    "pandas._libs.",     // pandas internals for frames [ai]
    "numpy.core.",       // array internals [ps]
    "numpy._core.",      // array internals (numpy 2) [ps]
];

fn module_matches(name: &str, module: &str) -> bool {
    name == module || (name.starts_with(module) && name.as_bytes().get(module.len()) == Some(&b'.'))
}

/// Classifies one import (`module.qualname`).
pub fn classify(name: &str) -> ImportClass {
    if let Some((_, why)) = DENY_EXACT.iter().find(|(n, _)| *n == name) {
        return ImportClass::Dangerous(why);
    }
    if let Some((_, why)) = DENY_MODULES.iter().find(|(m, _)| module_matches(name, m)) {
        return ImportClass::Dangerous(why);
    }
    if ALLOW_EXACT.contains(&name) {
        return ImportClass::Allowed;
    }
    let builtin = name.strip_prefix("builtins.").or_else(|| name.strip_prefix("__builtin__."));
    if builtin.is_some_and(|b| SAFE_BUILTINS.contains(&b)) {
        return ImportClass::Allowed;
    }
    if ALLOW_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return ImportClass::Allowed;
    }
    // torch storage classes (`torch.FloatStorage`, …) and dtypes (`torch.float32`, …).
    if let Some(rest) = name.strip_prefix("torch.") {
        if !rest.contains('.')
            && (rest.ends_with("Storage")
                || rest.starts_with("float")
                || rest.starts_with("int")
                || rest.starts_with("uint")
                || rest.starts_with("bfloat")
                || rest.starts_with("complex")
                || rest == "bool")
        {
            return ImportClass::Allowed;
        }
    }
    ImportClass::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_order() {
        assert!(matches!(classify("os.system"), ImportClass::Dangerous(_)));
        assert!(matches!(classify("posix.system"), ImportClass::Dangerous(_)));
        assert!(matches!(classify("builtins.eval"), ImportClass::Dangerous(_)));
        assert!(matches!(classify("numpy.testing._private.utils.runstring"), ImportClass::Dangerous(_)));
        assert!(matches!(classify("torch.utils.collect_env.run"), ImportClass::Dangerous(_)));
        assert_eq!(classify("osx.thing"), ImportClass::Unknown);
        assert_eq!(classify("collections.OrderedDict"), ImportClass::Allowed);
        assert_eq!(classify("torch.FloatStorage"), ImportClass::Allowed);
        assert_eq!(classify("sklearn.linear_model._logistic.LogisticRegression"), ImportClass::Allowed);
        assert_eq!(classify("__main__.Net"), ImportClass::Unknown);
    }
}
