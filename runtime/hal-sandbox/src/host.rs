//! The sandbox: one engine, a compiled component and an `InstancePre` per isolate, a fresh store per call.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hal_runner::model::SecretLookup;
use hal_runner::tools::Tree;
use hal_spec::IsolateManifest;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use crate::capabilities::Granted;
use crate::limits::IsolateLimits;
use crate::state::HostState;
use crate::state::bindings::{Isolate as IsolateWorld, IsolatePre};

/// How often the epoch advances: the granularity of wall-time limits.
const TICK: Duration = Duration::from_millis(10);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The isolate ran and answered with an error.
    #[error("{0}")]
    Guest(String),
    /// The isolate was stopped: a limit, a crash, a panic.
    #[error("{0}")]
    Trap(String),
    /// The host failed (not the isolate's fault): the sandbox could not set up or finish the call.
    #[error("the sandbox failed: {0}")]
    Host(String),
}

/// The sandbox could not start (wasmtime, its linker, its HTTP client or its threads).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct StartError {
    /// What failed.
    pub what: &'static str,
    /// Why.
    pub reason: String,
}

impl StartError {
    fn new(what: &'static str, reason: impl std::fmt::Display) -> StartError {
        StartError { what, reason: reason.to_string() }
    }
}

/// A loaded isolate, ready for calls.
pub struct Isolate {
    /// Its manifest.
    pub manifest: IsolateManifest,
    /// What it may do.
    pub granted: Granted,
    /// Its limits.
    pub limits: IsolateLimits,
    /// Whether it is built into HAL.
    pub builtin: bool,
    /// Whether it is a plugin version (whose unversioned name `<name>` a rule for `<name>@v<N>` also holds).
    pub plugin: bool,
    /// Whether its compiled form came from the cache.
    pub from_cache: bool,
    /// Its functions: name, description, JSON Schema of the arguments.
    pub functions: Vec<(String, String, serde_json::Value)>,
    pre: Pre,
}

/// An isolate's component, ready to instantiate: now, or at its first call.
enum Pre {
    /// Compiled and linked when the isolate was loaded (its functions were asked of it then).
    Ready(IsolatePre<HostState>),
    /// A built plugin, whose functions its manifest gives: its component (tens of megabytes for Python) is read,
    /// compiled or taken from the cache, and linked only when a call reaches it, once.
    Later { component: PathBuf, loaded: LoadedLater },
}

/// Where a component loaded at its first call is kept: shared by the isolates that run it (a plugin's newest
/// version is `<name>` and `<name>@v<N>`), so it is compiled and linked once for both.
#[derive(Clone, Default)]
pub struct LoadedLater(Arc<std::sync::Mutex<Option<IsolatePre<HostState>>>>);

/// What a successful call gives back.
pub struct CallOutput {
    /// The result text.
    pub result: String,
    /// The thread access it was given, with the writes it made.
    pub tree: Option<Box<dyn Tree>>,
    /// Log lines the isolate wrote.
    pub logs: Vec<String>,
}

/// What a call needs from its caller.
pub struct CallContext {
    /// The thread's tree, when the call is made on a thread.
    pub tree: Option<Box<dyn Tree>>,
    /// Whether the call may use HTTP at all (its grants still decide which hosts).
    pub http: bool,
    /// Looks up secrets by name.
    pub secret: SecretLookup,
    /// Hears the guest's `log.progress` notes (scrubbed of secrets first).
    pub progress: Option<hal_runner::tools::Progress>,
}

/// Runs isolates. One per process is enough; calls from many threads share it.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    http: reqwest::Client,
    /// The runtime HTTP imports run on: its own worker drives the I/O, so a guest blocked in an import never
    /// depends on the caller's runtime making progress.
    http_runtime: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
}

impl Sandbox {
    /// A sandbox whose compiled components are cached in `cache_dir` (none: compile every time), with a
    /// WebAssembly stack of `stack_kb` KiB.
    pub fn new(cache_dir: Option<PathBuf>, stack_kb: u64) -> Result<Sandbox, StartError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(usize::try_from(stack_kb.saturating_mul(1024)).unwrap_or(usize::MAX));
        let engine = Engine::new(&config).map_err(|e| StartError::new("cannot start wasmtime", e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| StartError::new("linking WASI", e))?;
        IsolateWorld::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| StartError::new("linking HAL's imports", e))?;
        let http = hal_model::http_builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hal-isolate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StartError::new("cannot set up HTTP", e))?;
        let http_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hal-sandbox-http")
            .enable_all()
            .build()
            .map_err(|e| StartError::new("cannot start the HTTP runtime", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("hal-sandbox-epoch".to_owned())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| StartError::new("cannot start the epoch ticker", e))?;
        Ok(Sandbox { engine, linker, cache_dir, http, http_runtime: Some(http_runtime), stop })
    }

    /// Where compiled components (and built isolates) are cached, if anywhere.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    /// Compile (or load from the cache) the component `bytes`, check it is an isolate, and read its functions.
    pub fn load(
        &self,
        bytes: &[u8],
        manifest: IsolateManifest,
        granted: Granted,
        limits: IsolateLimits,
        builtin: bool,
    ) -> Result<Isolate, crate::Unusable> {
        let name = manifest.name.clone();
        let (component, from_cache) = crate::cache::load(&self.engine, bytes, self.cache_dir.as_deref())
            .map_err(|e| format!("isolate `{name}` is not a valid WebAssembly component: {e}"))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("isolate `{name}` imports something HAL does not offer: {e}"))?;
        let pre = IsolatePre::new(instance_pre).map_err(|e| format!("isolate `{name}` is not a HAL isolate: {e}"))?;
        let pre = Pre::Ready(pre);
        let mut isolate =
            Isolate { manifest, granted, limits, builtin, plugin: false, from_cache, functions: Vec::new(), pre };
        let context = CallContext { tree: None, http: false, secret: Arc::new(|_| None), progress: None };
        let (specs, _) = self
            .run(&isolate, context, |bindings, store| bindings.call_describe(store))
            .map_err(|error| error.to_string())?;
        for spec in specs {
            let schema: serde_json::Value = serde_json::from_str(&spec.parameters).map_err(|e| {
                format!("isolate `{name}` describes `{}` with a schema that is not JSON: {e}", spec.name)
            })?;
            isolate.functions.push((spec.name, spec.description, schema));
        }
        Ok(isolate)
    }

    /// An isolate whose component, built at `component`, is loaded only when a call first reaches it; `functions`
    /// (name, description, JSON Schema of the arguments) are what it answers `describe` with, as its manifest
    /// says. For plugins, whose glue HAL writes from that same manifest: listing and offering them costs no load.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load_later(
        &self,
        component: PathBuf,
        loaded: LoadedLater,
        manifest: IsolateManifest,
        granted: Granted,
        limits: IsolateLimits,
        functions: Vec<(String, String, serde_json::Value)>,
    ) -> Isolate {
        let pre = Pre::Later { component, loaded };
        Isolate { manifest, granted, limits, builtin: false, plugin: false, from_cache: false, functions, pre }
    }

    /// The isolate's component ready to instantiate, loading it first when it waits for its first call. A load
    /// that fails is not remembered (the next call tries again: the cause may pass), and its error names no path
    /// of this machine (it reaches the model and the thread).
    fn pre(&self, isolate: &Isolate) -> Result<IsolatePre<HostState>, CallError> {
        let (component, loaded) = match &isolate.pre {
            Pre::Ready(pre) => return Ok(pre.clone()),
            Pre::Later { component, loaded } => (component, loaded),
        };
        // Calls that come while the first loads wait for it, then share what it loaded.
        let mut loaded = loaded.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pre) = loaded.as_ref() {
            return Ok(pre.clone());
        }
        let name = &isolate.manifest.name;
        tracing::debug!(target: "hal_sandbox", isolate = %name, component = %component.display(), "loading a component at its first call");
        let bytes = std::fs::read(component).map_err(|e| {
            tracing::warn!(target: "hal_sandbox", isolate = %name, component = %component.display(), %e, "cannot read a built component");
            CallError::Host(format!("the built component of `{name}` cannot be read ({}): `hal isolate build` builds it again", e.kind()))
        })?;
        let (compiled, _) = crate::cache::load(&self.engine, &bytes, self.cache_dir.as_deref())
            .map_err(|e| CallError::Host(format!("isolate `{name}` is not a valid WebAssembly component: {e}")))?;
        let linked = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| CallError::Host(format!("isolate `{name}` imports something HAL does not offer: {e}")))?;
        let pre = IsolatePre::new(linked)
            .map_err(|e| CallError::Host(format!("isolate `{name}` is not a HAL isolate: {e}")))?;
        *loaded = Some(pre.clone());
        Ok(pre)
    }

    /// Call `function` of `isolate` with `arguments` (JSON text). Blocks until the call ends or a limit stops it.
    pub fn call(
        &self,
        isolate: &Isolate,
        function: &str,
        arguments: &str,
        context: CallContext,
    ) -> Result<CallOutput, CallError> {
        let (result, state) =
            self.run(isolate, context, |bindings, store| bindings.call_call(store, function, arguments))?;
        // Whatever the isolate says goes to the model and into a commit: no secret value it was given may.
        let result = result.map(|text| state.scrub(text)).map_err(|text| CallError::Guest(state.scrub(text)))?;
        if result.len() > isolate.limits.output {
            return Err(CallError::Trap(format!(
                "the result is {} bytes, more than the limit of {} bytes (output_kb)",
                result.len(),
                isolate.limits.output
            )));
        }
        Ok(CallOutput { result, tree: state.tree, logs: state.logs })
    }

    /// Instantiate `isolate` in a fresh store and run `body`; a trap is explained in plain words.
    fn run<R>(
        &self,
        isolate: &Isolate,
        context: CallContext,
        body: impl FnOnce(&IsolateWorld, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<(R, HostState), CallError> {
        // Loaded (a plugin's first call may compile it, for seconds) before the call's time starts: the call's limit
        // is for the isolate's work, not for HAL's.
        let pre = self.pre(isolate)?;
        let limits = isolate.limits;
        let deadline = Instant::now() + limits.wall;
        let http = match (&self.http_runtime, context.http) {
            (Some(runtime), true) => Some((self.http.clone(), runtime.handle().clone())),
            _ => None,
        };
        let mut state = HostState::new(isolate.granted.clone(), &limits, context.tree, http, context.secret, deadline);
        state.progress = context.progress;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        store.set_fuel(limits.fuel).map_err(|e| CallError::Host(e.to_string()))?;
        let ticks = limits.wall.as_millis().div_ceil(TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        let outcome = pre.instantiate(&mut store).and_then(|bindings| body(&bindings, &mut store));
        match outcome {
            Ok(value) => Ok((value, store.into_data())),
            Err(error) => Err(explain(&error, store.data(), &isolate.manifest.name, &limits)),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Shutting down in the background never blocks, so a sandbox may be dropped anywhere, async code included.
        if let Some(runtime) = self.http_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A plain-language reason for a failed call. Whatever stops a running isolate is its own doing, trap or not (an
/// exit, bad data across the component ABI, a limiter's cap): [`CallError::Trap`]. The host's own failures
/// before the isolate runs are [`CallError::Host`].
fn explain(error: &wasmtime::Error, state: &HostState, isolate: &str, limits: &IsolateLimits) -> CallError {
    let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
    let lines: Vec<&str> =
        stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("note: ")).collect();
    // A Rust panic prints `thread '…' panicked at <place>:` and then the message.
    let last_words = match lines.iter().rposition(|l| l.contains("panicked at")) {
        Some(at) => lines[at..].iter().take(2).copied().collect::<Vec<_>>().join(" "),
        None => lines.last().copied().unwrap_or_default().to_owned(),
    };
    let reason = match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("ran longer than its limit of {} ms (wall_ms)", limits.wall.as_millis()),
        Some(Trap::OutOfFuel) => format!("did more work than its limit of {} units of fuel (fuel)", limits.fuel),
        Some(Trap::StackOverflow) => "recursed too deep: its WebAssembly stack is exhausted (stack_kb)".to_owned(),
        Some(Trap::MemoryOutOfBounds) => {
            "crashed: it accessed memory out of bounds, as a program whose stack overflowed by recursing too deep does"
                .to_owned()
        }
        Some(_) if state.memory_denied => {
            format!("ran out of memory: it asked for more than its limit of {} MiB (memory_mb)", limits.memory >> 20)
        }
        Some(Trap::UnreachableCodeReached) if !last_words.is_empty() => format!("crashed: {last_words}"),
        Some(Trap::UnreachableCodeReached) => "crashed (a panic or an abort)".to_owned(),
        Some(trap) => format!("crashed: {trap}"),
        None if state.memory_denied => {
            format!("ran out of memory: it asked for more than its limit of {} MiB (memory_mb)", limits.memory >> 20)
        }
        None => format!("failed: {error:#}"),
    };
    CallError::Trap(state.scrub(format!("isolate `{isolate}` {reason}")))
}
