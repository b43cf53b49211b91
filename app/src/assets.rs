//! The names under which the page asks for its static files. Each carries a hash of its content
//! (`pkg/watchpost.<hash>.wasm`, `echarts.<hash>.js`), so a browser keeps it for a year and a new build is a
//! new name, never a stale copy. cargo-leptos writes the hashes of the JS, WASM and CSS into `hash.txt` in
//! the site root, which leptos reads for its hydration scripts and stylesheet; the ECharts bundle is built
//! by esbuild (`npm run echarts`) and found here by its name.

use leptos::config::LeptosOptions;
use std::path::Path;

/// The hash list cargo-leptos writes beside the files it names (`hash-file-name` in `Cargo.toml`).
pub const HASH_FILE: &str = "hash.txt";

/// Options that make leptos use the hashed names when the site was built with them. The hash file is given
/// as an absolute path: leptos joins it to the binary's folder, and joining an absolute path replaces that,
/// so the binary may run from anywhere. A site built without hashes keeps the plain names.
pub fn with_hashed_names(mut options: LeptosOptions) -> LeptosOptions {
    let hash_file = Path::new(options.site_root.as_ref()).join(HASH_FILE);
    if !hash_file.is_file() {
        return options;
    }
    let hash_file = std::path::absolute(&hash_file).unwrap_or(hash_file);
    options.hash_files = true;
    options.hash_file = hash_file.to_string_lossy().into();
    options
}

/// The dashboard's own build of the app (`pkg/watchpost-dashboard.<hash>.wasm` and `.js`), which carries no
/// other page: scripts/build.sh makes it beside cargo-leptos's build of the whole app and lists its hashes
/// in this file, in the site root, as cargo-leptos does for its own.
pub const DASHBOARD_OUTPUT: &str = "watchpost-dashboard";
pub const DASHBOARD_HASH_FILE: &str = "hash-dashboard.txt";

/// Options whose hydration scripts load the dashboard's own build, when the site has one made with the
/// whole app it now holds: the dashboard's build records the whole app's WASM hash it was made beside
/// (`app:`), and a site rebuilt since by cargo-leptos alone (`cargo leptos watch` after a release build)
/// has another, so its dashboard is not hydrated by a build of older code. Without it the whole app is
/// sent with every page, the dashboard too.
pub fn dashboard_build(options: &LeptosOptions) -> Option<LeptosOptions> {
    let site = Path::new(options.site_root.as_ref());
    let hash_file = site.join(DASHBOARD_HASH_FILE);
    let made_beside = hash_of(&std::fs::read_to_string(&hash_file).ok()?, "app")?;
    let whole_app = hash_of(&std::fs::read_to_string(site.join(HASH_FILE)).ok()?, "wasm")?;
    if made_beside != whole_app {
        return None;
    }
    let hash_file = std::path::absolute(&hash_file).unwrap_or(hash_file);
    let mut options = options.clone();
    options.output_name = DASHBOARD_OUTPUT.into();
    options.hash_files = true;
    options.hash_file = hash_file.to_string_lossy().into();
    Some(options)
}

/// The hash a hash list (`name: hash` lines) gives for `name`.
fn hash_of(list: &str, name: &str) -> Option<String> {
    list.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, hash)| hash.trim().to_owned())
}

/// The ECharts bundle's path as the page references it: `/echarts.<hash>.js` from the site root, or the plain
/// name when none is there. Looked up per page, as leptos reads its hash file per page: a listing of a
/// folder of a few files, and a site rebuilt under a running server is followed.
pub fn echarts_src(options: &LeptosOptions) -> String {
    find_bundle(Path::new(options.site_root.as_ref()))
        .map(|name| format!("/{name}"))
        .unwrap_or_else(|| "/echarts.js".to_owned())
}

/// The newest `echarts.<hash>.js` in `site` (setup removes the older ones, so there is one).
fn find_bundle(site: &Path) -> Option<String> {
    std::fs::read_dir(site)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let hash = name.strip_prefix("echarts.")?.strip_suffix(".js")?;
            let modified = entry.metadata().and_then(|m| m.modified()).ok()?;
            (!hash.is_empty() && !hash.contains('.')).then_some((modified, name))
        })
        .max()
        .map(|(_, name)| name)
}
