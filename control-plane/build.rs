//! Embeds the cluster page's chart library, uPlot, into the binary: `web/package.json` pins it
//! (like the node page's player libraries) and `npm ci --prefix web` installs it into
//! `web/node_modules/uplot/`. The control plane has no web directory at run time and loads
//! nothing from a CDN, so the library is copied into `OUT_DIR` here and `include_bytes!`-ed by
//! `src/page.rs`.
//!
//! Without `web/node_modules` (npm not run) the build still succeeds: a stub script takes the
//! library's place, the page says the charts need `npm ci --prefix web` and a rebuild, and
//! cargo prints a warning.

use std::path::PathBuf;

/// The files taken from the npm package, and the names they get in `OUT_DIR`.
const FILES: [(&str, &str); 2] =
    [("uPlot.iife.min.js", "uplot.js"), ("uPlot.min.css", "uplot.css")];

/// What the page runs instead of the library when it is missing (it checks `uPlotMissing`).
const STUB_JS: &str = "window.uPlotMissing = \"chart library not installed: run `npm ci --prefix web` and rebuild sluice-control-plane\";\n";

fn main() -> std::io::Result<()> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("../web");
    let dist = web.join("node_modules/uplot/dist");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed={}", web.join("package-lock.json").display());
    let present = FILES.iter().all(|(from, _)| dist.join(from).is_file());
    if present {
        for (from, to) in FILES {
            let path = dist.join(from);
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::copy(&path, out.join(to))?;
        }
    } else {
        // Watch the web directory, so an `npm ci` later triggers a rebuild with the library.
        println!("cargo:rerun-if-changed={}", web.display());
        println!(
            "cargo:warning=uPlot missing in {}: the cluster page will have no charts (run `npm ci --prefix web`)",
            dist.display()
        );
        std::fs::write(out.join("uplot.js"), STUB_JS)?;
        std::fs::write(out.join("uplot.css"), "")?;
    }
    Ok(())
}
