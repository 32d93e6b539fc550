//! `sluicectl config ...`: list, choose, create and delete the named contexts.

use std::path::Path;

use serde::Serialize;

use crate::args::{ConfigCommand, Format, Global};
use crate::config::{self, ConfigFile};
use crate::error::CtlError;
use crate::output::{encode, print};
use crate::table::Table;

/// One row of `config get-contexts` (the token itself is never printed).
#[derive(Debug, Serialize)]
pub struct ContextRow {
    pub name: String,
    pub current: bool,
    pub endpoint: Option<String>,
    pub token: Option<String>,
    pub ca: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ContextList {
    pub current_context: Option<String>,
    pub contexts: Vec<ContextRow>,
}

pub fn list(file: &ConfigFile) -> ContextList {
    let contexts = file
        .contexts
        .iter()
        .map(|(name, c)| ContextRow {
            name: name.clone(),
            current: file.current_context.as_deref() == Some(name.as_str()),
            endpoint: c.endpoint.clone(),
            token: match (&c.token, &c.token_file) {
                (Some(_), _) => Some("(inline)".into()),
                (None, Some(f)) => Some(f.display().to_string()),
                (None, None) => None,
            },
            ca: c.ca.as_ref().map(|p| p.display().to_string()),
            timeout: c.timeout.clone(),
        })
        .collect();
    ContextList { current_context: file.current_context.clone(), contexts }
}

pub fn render_list(list: &ContextList) -> String {
    let mut t = Table::new(&["CURRENT", "NAME", "ENDPOINT", "TOKEN", "CA", "TIMEOUT"]);
    let cell = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for c in &list.contexts {
        t.row(vec![
            if c.current { "*".into() } else { String::new() },
            c.name.clone(),
            cell(&c.endpoint),
            cell(&c.token),
            cell(&c.ca),
            cell(&c.timeout),
        ]);
    }
    t.render()
}

/// Apply a `config` command to the file; `Ok(Some(text))` is what to print, and the file is
/// written back when the command changed it.
pub fn apply(
    cmd: &ConfigCommand,
    flags: &Global,
    file: &mut ConfigFile,
) -> Result<(bool, String), CtlError> {
    let missing = |name: &str| CtlError::Usage(format!("no context {name:?} in the config file"));
    match cmd {
        ConfigCommand::GetContexts => Ok((false, encode(flags.output, &list(file), render_list)?)),
        ConfigCommand::CurrentContext => match &file.current_context {
            Some(name) => Ok((false, format!("{name}\n"))),
            None => Err(CtlError::Usage("no current context is set".into())),
        },
        ConfigCommand::UseContext { name } => {
            if !file.contexts.contains_key(name) {
                return Err(missing(name));
            }
            file.current_context = Some(name.clone());
            Ok((true, format!("switched to context {name}\n")))
        }
        ConfigCommand::SetContext { name } => {
            let created = !file.contexts.contains_key(name);
            config::set_context(file, name, flags);
            let verb = if created { "created" } else { "updated" };
            Ok((true, format!("context {name} {verb}\n")))
        }
        ConfigCommand::DeleteContext { name } => {
            if file.contexts.remove(name).is_none() {
                return Err(missing(name));
            }
            if file.current_context.as_deref() == Some(name.as_str()) {
                file.current_context = None;
            }
            Ok((true, format!("context {name} deleted\n")))
        }
    }
}

/// Load, apply, save if changed, print.
pub fn run(cmd: &ConfigCommand, flags: &Global, path: &Path) -> Result<(), CtlError> {
    let mut file = config::load(path)?;
    let (changed, text) = apply(cmd, flags, &mut file)?;
    if changed {
        config::save(path, &file)?;
    }
    // Confirmations are for people: with -o json/yaml only listings go to stdout.
    if changed && flags.output != Format::Table {
        eprint!("{text}");
    } else {
        print(&text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(endpoint: &str) -> Global {
        Global { endpoint: Some(endpoint.into()), ..Global::default() }
    }

    #[test]
    fn set_use_list_and_delete() {
        let mut file = ConfigFile::default();
        let set = |name: &str| ConfigCommand::SetContext { name: name.into() };
        let (changed, text) = apply(&set("prod"), &flags("https://p:1"), &mut file).unwrap();
        assert!(changed);
        assert_eq!(text, "context prod created\n");
        apply(&set("lab"), &flags("http://l:1"), &mut file).unwrap();
        let (_, text) = apply(&set("lab"), &flags("http://l:2"), &mut file).unwrap();
        assert_eq!(text, "context lab updated\n");

        let use_prod = ConfigCommand::UseContext { name: "prod".into() };
        assert_eq!(
            apply(&use_prod, &Global::default(), &mut file).unwrap().1,
            "switched to context prod\n"
        );
        let (changed, table) =
            apply(&ConfigCommand::GetContexts, &Global::default(), &mut file).unwrap();
        assert!(!changed);
        assert_eq!(
            table,
            "CURRENT  NAME  ENDPOINT     TOKEN  CA  TIMEOUT\n         lab   http://l:2   -      -   -\n*        prod  https://p:1  -      -   -\n"
        );

        let bad = ConfigCommand::UseContext { name: "nope".into() };
        assert!(matches!(apply(&bad, &Global::default(), &mut file), Err(CtlError::Usage(_))));
        let del = ConfigCommand::DeleteContext { name: "prod".into() };
        apply(&del, &Global::default(), &mut file).unwrap();
        assert_eq!(file.current_context, None);
        assert!(apply(&ConfigCommand::CurrentContext, &Global::default(), &mut file).is_err());
    }

    #[test]
    fn the_token_is_never_listed() {
        let mut file = ConfigFile::default();
        let flags = Global { token: Some("s3cret".into()), ..Global::default() };
        apply(&ConfigCommand::SetContext { name: "a".into() }, &flags, &mut file).unwrap();
        let json = Global { output: Format::Json, ..Global::default() };
        let (_, text) = apply(&ConfigCommand::GetContexts, &json, &mut file).unwrap();
        assert!(!text.contains("s3cret") && text.contains("(inline)"), "{text}");
    }
}
