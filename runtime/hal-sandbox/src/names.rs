//! The names of the files a plugin is built from.

/// Refuse a file name that is not a plain relative path.
pub(crate) fn check_relative(path: &str) -> Result<(), String> {
    match hal_store::tree_path::normalize(path) {
        Ok(normal) if normal == path && !path.split('/').any(|part| part == "..") => Ok(()),
        _ => Err(format!("the plugin file name {path:?} is not a plain relative path")),
    }
}
