//! The host side of one call: the WASI context (empty), the limits' bookkeeping, and the imports an isolate may
//! use, each checked against what it was granted.

use std::time::Instant;

use hal_runner::model::SecretLookup;
use hal_runner::tools::Tree;
use hal_spec::TreeAccess;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::Granted;
use crate::scrub::Scrubber;

/// The code wasmtime generates from `schemas/wit` (the `isolate` world, its `hal:isolate` interfaces): in a module of
/// its own, so that `Isolate` here means the world and `bindings::hal` the interfaces, never anything of HAL's.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({ world: "isolate", path: "../../schemas/wit" });
}

/// Most bytes of an HTTP response body read into the guest.
const MAX_HTTP_BODY: usize = 8 << 20;
/// Log lines kept from one call.
const MAX_LOG_LINES: usize = 100;
/// Characters kept of one log line.
const MAX_LOG_LINE: usize = 2000;
/// Bytes of a log line read before it is scrubbed and cut to [`MAX_LOG_LINE`] characters: room enough that a value
/// cut at this boundary lies past what is kept.
const MAX_LOG_BYTES: usize = 8 * MAX_LOG_LINE;
/// Most bytes a guest may write to its stderr (kept for error messages).
pub(crate) const STDERR_CAPACITY: usize = 64 << 10;

/// Everything one call's store holds.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The guest's stderr, for panic messages.
    pub(crate) stderr: MemoryOutputPipe,
    /// Linear memory allowed, in bytes.
    memory_limit: usize,
    /// A memory growth was refused.
    pub(crate) memory_denied: bool,
    /// Bytes of linear memory of all the store's memories.
    memory_used: usize,
    /// Bytes written to the tree by this call.
    written: usize,
    /// Files this call may write.
    max_files: usize,
    /// Every form of the secret values handed to the guest, to be scrubbed from what it returns and writes.
    scrubber: Scrubber,
    granted: Granted,
    /// The thread's tree, when the call is made on a thread.
    pub(crate) tree: Option<Box<dyn Tree>>,
    http: Option<(reqwest::Client, tokio::runtime::Handle)>,
    secret: SecretLookup,
    deadline: Instant,
    /// Log lines the guest wrote.
    pub(crate) logs: Vec<String>,
    /// Progress notes the guest sent.
    progress_notes: usize,
    /// Hears them.
    pub(crate) progress: Option<hal_runner::tools::Progress>,
}

impl HostState {
    /// `text` with every secret value handed to the guest (in every form) replaced by `<secret NAME>`.
    pub(crate) fn scrub(&self, text: String) -> String {
        self.scrubber.text(text)
    }

    pub(crate) fn new(
        granted: Granted,
        limits: &crate::limits::IsolateLimits,
        tree: Option<Box<dyn Tree>>,
        http: Option<(reqwest::Client, tokio::runtime::Handle)>,
        secret: SecretLookup,
        deadline: Instant,
    ) -> HostState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Nothing is granted through WASI: no preopened directories, no environment, no arguments, no sockets.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory_limit: limits.memory,
            memory_denied: false,
            memory_used: 0,
            written: 0,
            max_files: limits.files,
            scrubber: Scrubber::default(),
            granted,
            tree,
            http,
            secret,
            deadline,
            logs: Vec::new(),
            progress_notes: 0,
            progress: None,
        }
    }

    fn tree(&mut self, access: TreeAccess) -> Result<&mut (dyn Tree + 'static), String> {
        self.granted.check_tree(access)?;
        self.tree.as_deref_mut().ok_or_else(|| "this call is not made on a thread, so there are no files".to_owned())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // The limit is on all the store's memories together: a component may hold several.
        let total = self.memory_used.saturating_add(desired.saturating_sub(current));
        if total > self.memory_limit {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory_used = total;
        Ok(true)
    }

    fn memories(&self) -> usize {
        64
    }

    fn instances(&self) -> usize {
        256
    }

    fn tables(&self) -> usize {
        256
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

impl bindings::hal::isolate::types::Host for HostState {}

impl bindings::hal::isolate::tree::Host for HostState {
    fn read(&mut self, path: String) -> Result<Option<Vec<u8>>, String> {
        // What is read is copied into the guest's memory: a file larger than that could never arrive, and is not
        // read into the host's either.
        let most = self.memory_limit as u64;
        self.tree(TreeAccess::Read)?.read(&path, most).map_err(|e| e.to_string())
    }

    fn list_files(&mut self, prefix: String) -> Result<Vec<(String, u64)>, String> {
        let files = self.tree(TreeAccess::Read)?.list().map_err(|e| e.to_string())?;
        Ok(files.into_iter().filter(|(path, _)| path.starts_with(&prefix)).collect())
    }

    fn write(&mut self, path: String, content: Vec<u8>) -> Result<(), String> {
        // What a call writes is held by the host until the step is committed: bounded like the guest's memory.
        let written = self.written.saturating_add(content.len());
        if written > self.memory_limit {
            return Err(format!("a call may write at most {} MiB in all", self.memory_limit >> 20));
        }
        // A secret must not reach a commit: a name holding one is refused (rewriting it could merge two files),
        // contents are scrubbed like results.
        if let Some(name) = self.scrubber.found_in(&path) {
            return Err(format!("a file name may not hold the value of the secret {name}"));
        }
        let content = self.scrubber.bytes(content);
        let max_files = self.max_files;
        let tree = self.tree(TreeAccess::Write)?;
        if tree.writes_count() >= max_files && !tree.writes_to(&path) {
            return Err(format!(
                "a call may write at most {max_files} files (sandbox.limits.files in hal.yaml, or the isolate's limits)"
            ));
        }
        tree.write(&path, content).map_err(|e| e.to_string())?;
        self.written = written;
        Ok(())
    }
}

impl bindings::hal::isolate::http::Host for HostState {
    fn fetch(
        &mut self,
        method: String,
        url: String,
        body: Option<String>,
    ) -> Result<bindings::hal::isolate::http::Response, String> {
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("not a URL: {url}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("only http and https URLs can be fetched, not {}", parsed.scheme()));
        }
        let host = parsed.host_str().unwrap_or_default().to_owned();
        self.granted.check_host(&host)?;
        let (client, handle) = self.http.clone().ok_or_else(|| "HTTP is not available to this call".to_owned())?;
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("not an HTTP method: {method}"))?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        handle.block_on(async move {
            let mut request = client.request(method, parsed).timeout(remaining);
            if let Some(body) = body {
                request = request.body(body);
            }
            // Errors leave the URL out: it may carry a secret the isolate put there.
            let mut response = request.send().await.map_err(|e| format!("the request failed: {}", e.without_url()))?;
            let status = response.status().as_u16();
            let mut bytes = Vec::new();
            while let Some(chunk) =
                response.chunk().await.map_err(|e| format!("reading the response failed: {}", e.without_url()))?
            {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_HTTP_BODY {
                    bytes.truncate(MAX_HTTP_BODY);
                    break;
                }
            }
            Ok(bindings::hal::isolate::http::Response { status, body: String::from_utf8_lossy(&bytes).into_owned() })
        })
    }
}

impl bindings::hal::isolate::secrets::Host for HostState {
    fn get(&mut self, name: String) -> Result<String, String> {
        self.granted.check_secret(&name)?;
        let value = (self.secret)(&name).ok_or_else(|| format!("the secret {name} is not set"))?;
        self.scrubber.add(&name, &value);
        Ok(value)
    }
}

impl bindings::hal::isolate::log::Host for HostState {
    fn write(&mut self, level: String, message: String) {
        // Past the cap nothing more is logged, not even to the host's log: a guest cannot flood it.
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        // The level is one of four words (anything else is `info`): it cannot carry a value out.
        let level = match level.as_str() {
            "error" | "warn" | "info" | "debug" => level,
            _ => "info".to_owned(),
        };
        // Scrubbed before it is cut, so that a cut cannot leave the start of a value.
        let message: String = self.scrubber.text(clip(&message, MAX_LOG_BYTES)).chars().take(MAX_LOG_LINE).collect();
        tracing::info!(target: "hal_sandbox::guest", isolate = %self.granted.isolate, %level, %message);
        self.logs.push(format!("{level}: {message}"));
    }

    fn progress(&mut self, done: u64, total: u64, message: String) {
        self.progress_notes = self.progress_notes.saturating_add(1);
        if self.progress_notes > MAX_LOG_LINES {
            return;
        }
        let message: String = self.scrubber.text(clip(&message, MAX_LOG_BYTES)).chars().take(MAX_LOG_LINE).collect();
        tracing::debug!(target: "hal_sandbox::guest", isolate = %self.granted.isolate, done, total, %message, "progress");
        if let Some(progress) = &self.progress {
            progress(done, total, &message);
        }
    }
}

/// At most `max` bytes of `text` (at a character boundary), before it is scrubbed: scrubbing a huge string a guest
/// made would cost the host as much as the guest.
fn clip(text: &str, max: usize) -> String {
    hal_store::files::prefix(text, max).to_owned()
}
