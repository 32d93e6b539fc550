//! The context file (`$SLUICE_CONFIG`, else `~/.config/sluice/sluicectl.toml`) and the
//! connection settings: for each setting the flag beats the `SLUICE_*` variable, which beats
//! the chosen context, which beats the default. Resolution is a pure function of the flags,
//! an environment lookup and the parsed file, so the precedence is tested without touching
//! the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::args::{parse_duration, Global};
use crate::error::CtlError;

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The config file: named contexts and which one is current.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One named context: where a control plane is and how to talk to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// A duration such as `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Where the bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    File(PathBuf),
}

/// The resolved connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub endpoint: String,
    pub token: Option<Token>,
    pub timeout: Duration,
    pub ca: Option<PathBuf>,
    /// The context used, if any.
    pub context: Option<String>,
}

/// The config file's path: `$SLUICE_CONFIG`, else `$XDG_CONFIG_HOME/sluice/sluicectl.toml`,
/// else `$HOME/.config/sluice/sluicectl.toml`.
pub fn path(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, CtlError> {
    if let Some(p) = env("SLUICE_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = match (env("XDG_CONFIG_HOME"), env("HOME")) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => Path::new(&home).join(".config"),
        (None, None) => {
            return Err(CtlError::Usage(
                "neither SLUICE_CONFIG nor HOME is set: cannot find the config file".into(),
            ))
        }
    };
    Ok(base.join("sluice").join("sluicectl.toml"))
}

/// The parsed file; a missing file is an empty config.
pub fn load(path: &Path) -> Result<ConfigFile, CtlError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(source) => Err(CtlError::Read { path: path.to_path_buf(), source }),
    }
}

pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, CtlError> {
    toml::from_str(text).map_err(|e| CtlError::Config {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

/// Write the file (owner-only: a context may hold a token), through a temporary file and a
/// rename so a crash never leaves half a config.
pub fn save(path: &Path, config: &ConfigFile) -> Result<(), CtlError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = toml::to_string(config)
        .map_err(|e| CtlError::Encode { format: "toml", message: e.to_string() })?;
    let write_err = |source| CtlError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err)?;
    file.write_all(text.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

/// Resolve the settings: flag, then variable, then context, then default.
pub fn resolve(
    flags: &Global,
    env: &dyn Fn(&str) -> Option<String>,
    file: &ConfigFile,
) -> Result<Settings, CtlError> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let (context_name, context) = chosen_context(flags, &env, file)?;
    let context = context.cloned().unwrap_or_default();

    let endpoint = flags
        .endpoint
        .clone()
        .or_else(|| env("SLUICE_ENDPOINT"))
        .or(context.endpoint)
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());

    let token = match (&flags.token, &flags.token_file) {
        (Some(t), _) => Some(Token::Literal(t.clone())),
        (None, Some(f)) => Some(Token::File(f.clone())),
        (None, None) => env("SLUICE_TOKEN")
            .map(Token::Literal)
            .or_else(|| env("SLUICE_TOKEN_FILE").map(|f| Token::File(f.into())))
            .or_else(|| context.token.map(Token::Literal))
            .or_else(|| context.token_file.map(Token::File)),
    };

    let timeout = match flags.timeout {
        Some(t) => t,
        None => match env("SLUICE_TIMEOUT").or(context.timeout) {
            Some(t) => parse_duration(&t)?,
            None => DEFAULT_TIMEOUT,
        },
    };
    let ca = flags.ca.clone().or_else(|| env("SLUICE_CA").map(PathBuf::from)).or(context.ca);
    Ok(Settings { endpoint, token, timeout, ca, context: context_name })
}

/// The context named by `--context`, else `SLUICE_CONTEXT`, else the file's current one.
fn chosen_context<'a>(
    flags: &Global,
    env: &dyn Fn(&str) -> Option<String>,
    file: &'a ConfigFile,
) -> Result<(Option<String>, Option<&'a Context>), CtlError> {
    let Some(name) =
        flags.context.clone().or_else(|| env("SLUICE_CONTEXT")).or(file.current_context.clone())
    else {
        return Ok((None, None));
    };
    match file.contexts.get(&name) {
        Some(c) => Ok((Some(name), Some(c))),
        None => Err(CtlError::Usage(format!("no context {name:?} in the config file"))),
    }
}

/// Update context `name` with the connection flags given (others keep their value).
pub fn set_context(file: &mut ConfigFile, name: &str, flags: &Global) {
    let context = file.contexts.entry(name.to_string()).or_default();
    if let Some(e) = &flags.endpoint {
        context.endpoint = Some(e.clone());
    }
    if let Some(t) = &flags.token {
        context.token = Some(t.clone());
        context.token_file = None;
    }
    if let Some(f) = &flags.token_file {
        context.token_file = Some(f.clone());
        context.token = None;
    }
    if let Some(ca) = &flags.ca {
        context.ca = Some(ca.clone());
    }
    if let Some(t) = flags.timeout {
        context.timeout = Some(format!("{}ms", t.as_millis()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const FILE: &str = r#"
current-context = "prod"

[contexts.prod]
endpoint = "https://cp.prod:50051"
token-file = "/etc/sluice/token"
ca = "/etc/sluice/ca.pem"
timeout = "3s"

[contexts.lab]
endpoint = "http://lab:50051"
token = "lab-token"
"#;

    fn file() -> ConfigFile {
        parse(Path::new("t.toml"), FILE).unwrap()
    }

    #[test]
    fn defaults_without_anything() {
        let s = resolve(&Global::default(), &env_of(&[]), &ConfigFile::default()).unwrap();
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!((s.token, s.timeout, s.ca, s.context), (None, DEFAULT_TIMEOUT, None, None));
    }

    #[test]
    fn the_current_context_fills_in() {
        let s = resolve(&Global::default(), &env_of(&[]), &file()).unwrap();
        assert_eq!(s.endpoint, "https://cp.prod:50051");
        assert_eq!(s.token, Some(Token::File("/etc/sluice/token".into())));
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert_eq!(s.ca, Some("/etc/sluice/ca.pem".into()));
        assert_eq!(s.context.as_deref(), Some("prod"));
    }

    #[test]
    fn env_beats_context_and_flag_beats_env() {
        let env = env_of(&[
            ("SLUICE_ENDPOINT", "http://env:1"),
            ("SLUICE_TOKEN", "env-token"),
            ("SLUICE_TIMEOUT", "4s"),
        ]);
        let s = resolve(&Global::default(), &env, &file()).unwrap();
        assert_eq!(s.endpoint, "http://env:1");
        assert_eq!(s.token, Some(Token::Literal("env-token".into())));
        assert_eq!(s.timeout, Duration::from_secs(4));
        assert_eq!(s.ca, Some("/etc/sluice/ca.pem".into()), "unset variables keep the context");

        let flags = Global {
            endpoint: Some("http://flag:1".into()),
            token_file: Some("/flag/token".into()),
            timeout: Some(Duration::from_secs(5)),
            ..Global::default()
        };
        let s = resolve(&flags, &env, &file()).unwrap();
        assert_eq!(s.endpoint, "http://flag:1");
        assert_eq!(s.token, Some(Token::File("/flag/token".into())));
        assert_eq!(s.timeout, Duration::from_secs(5));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let env = env_of(&[("SLUICE_ENDPOINT", ""), ("SLUICE_TOKEN", "")]);
        let s = resolve(&Global::default(), &env, &file()).unwrap();
        assert_eq!(s.endpoint, "https://cp.prod:50051");
        assert_eq!(s.token, Some(Token::File("/etc/sluice/token".into())));
    }

    #[test]
    fn a_context_is_chosen_by_flag_then_variable_then_file() {
        let env = env_of(&[("SLUICE_CONTEXT", "lab")]);
        let s = resolve(&Global::default(), &env, &file()).unwrap();
        assert_eq!(s.endpoint, "http://lab:50051");
        assert_eq!(s.token, Some(Token::Literal("lab-token".into())));
        let flags = Global { context: Some("prod".into()), ..Global::default() };
        assert_eq!(resolve(&flags, &env, &file()).unwrap().context.as_deref(), Some("prod"));
        let flags = Global { context: Some("nope".into()), ..Global::default() };
        let err = resolve(&flags, &env, &file()).unwrap_err();
        assert_eq!(err.to_string(), "no context \"nope\" in the config file");
    }

    #[test]
    fn a_bad_timeout_is_a_usage_error() {
        let env = env_of(&[("SLUICE_TIMEOUT", "soon")]);
        assert!(matches!(
            resolve(&Global::default(), &env, &ConfigFile::default()),
            Err(CtlError::Usage(_))
        ));
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_path() {
        let err = parse(Path::new("/x/c.toml"), "[contexts.a]\nendpiont = \"x\"\n").unwrap_err();
        assert!(err.to_string().starts_with("invalid config file /x/c.toml: "), "{err}");
    }

    #[test]
    fn the_path_follows_the_variables() {
        let p = |pairs: &[(&str, &str)]| path(&env_of(pairs)).unwrap();
        assert_eq!(p(&[("SLUICE_CONFIG", "/a.toml"), ("HOME", "/h")]), PathBuf::from("/a.toml"));
        assert_eq!(p(&[("HOME", "/h")]), PathBuf::from("/h/.config/sluice/sluicectl.toml"));
        assert_eq!(
            p(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")]),
            PathBuf::from("/x/sluice/sluicectl.toml")
        );
    }

    #[test]
    fn set_context_saves_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("sluicectl-config-{}", std::process::id()));
        let path = dir.join("nested").join("sluicectl.toml");
        let mut config = load(&path).unwrap();
        assert_eq!(config, ConfigFile::default(), "a missing file is empty");
        let flags = Global {
            endpoint: Some("http://a:1".into()),
            token_file: Some("/t".into()),
            timeout: Some(Duration::from_secs(2)),
            ..Global::default()
        };
        set_context(&mut config, "a", &flags);
        config.current_context = Some("a".into());
        save(&path, &config).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back, config);
        let s = resolve(&Global::default(), &env_of(&[]), &back).unwrap();
        assert_eq!((s.endpoint.as_str(), s.timeout), ("http://a:1", Duration::from_secs(2)));
        // Only the given fields change.
        let flags = Global { endpoint: Some("http://b:1".into()), ..Global::default() };
        set_context(&mut config, "a", &flags);
        assert_eq!(config.contexts["a"].token_file, Some(PathBuf::from("/t")));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
