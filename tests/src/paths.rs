//! Where things are: the workspace root, the cargo target directory and the built binaries.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` if set (relative paths are taken from the workspace root), else
/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Path of a binary of this workspace, e.g. `sluice-origin`: the debug build, or the build
/// profile named by `SLUICE_TEST_PROFILE` (e.g. `release`, to run a suite against release
/// binaries). Panics with instructions if it has not been built (the test command builds the
/// debug binaries before running the tests).
pub fn binary(name: &str) -> PathBuf {
    let profile = std::env::var("SLUICE_TEST_PROFILE").unwrap_or_else(|_| "debug".into());
    let path = target_dir().join(profile).join(name);
    if !path.is_file() {
        panic!(
            "{} not found: build the binaries first with `cargo build --workspace --bins` \
             (scripts/test.sh does this)",
            path.display()
        );
    }
    path
}

/// Directory for generated test media (git-ignored).
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures")
}
