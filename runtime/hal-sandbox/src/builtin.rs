//! The isolates built into HAL: compiled from `isolates/` to `wasm32-wasip2` by the build script and embedded.

/// One built-in isolate.
pub struct Builtin {
    /// Its name.
    pub name: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Its `isolate.yaml`.
    pub manifest: &'static str,
}

/// Every built-in isolate.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "files",
        wasm: include_bytes!(concat!(env!("HAL_SANDBOX_GUESTS"), "/files.wasm")),
        manifest: include_str!("../../../isolates/files/isolate.yaml"),
    },
    Builtin {
        name: "http",
        wasm: include_bytes!(concat!(env!("HAL_SANDBOX_GUESTS"), "/http.wasm")),
        manifest: include_str!("../../../isolates/http/isolate.yaml"),
    },
];
