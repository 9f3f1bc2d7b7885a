//! `serve --config serve.yaml`: every serve setting in one YAML file, read once at
//! start. Each key is the name of a long flag (`max-associations:` for
//! `--max-associations`); a flag given on the command line wins over the file (a
//! list flag replaces the file's list). An unknown key is an error that names it
//! and the nearest known one. Relative paths in the file are taken from the file's
//! own folder, so a config and its certificates can move together.
//!
//! The file holds no secret: the key is a path (`key-file:`) and STOW-RS
//! credentials come from the environment, so nothing here needs masking.

use super::{Forward, Retry, ServeOptions};
use crate::error::Error;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every serve setting, each optional: what the file says, or what the flags say.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub listen: Option<String>,
    pub ae_title: Option<String>,
    /// `AE` or `AE@IP`.
    pub allow: Option<Vec<String>>,
    pub spool: Option<PathBuf>,
    pub forward: Option<Vec<ForwardSpec>>,
    pub profile: Option<String>,
    pub key_file: Option<PathBuf>,
    /// PS3.15 options (`--option`, repeatable).
    pub option: Option<Vec<String>>,
    pub quarantine: Option<PathBuf>,
    pub quarantine_copy: Option<bool>,
    pub refuse_quarantined: Option<bool>,
    pub max_associations: Option<usize>,
    pub max_per_ae: Option<usize>,
    pub artim_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub max_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    /// Seconds a series must go without a new object before it is forwarded, for
    /// every destination without its own `stable-age`.
    pub stable_age: Option<u64>,
}

/// One destination: a bare `DEST` string, or a map with `to:` and the settings that
/// apply to that destination only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSpec {
    pub to: String,
    /// This destination's `stable-age` (seconds), over the global one.
    pub stable_age: Option<u64>,
}

impl<'de> Deserialize<'de> for ForwardSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The map form; its own unknown keys are refused like the top level's.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct Full {
            to: String,
            stable_age: Option<u64>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ForwardSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a destination, or a map with `to:`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ForwardSpec, E> {
                Ok(ForwardSpec {
                    to: s.to_string(),
                    stable_age: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<ForwardSpec, A::Error> {
                let full = Full::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                Ok(ForwardSpec {
                    to: full.to,
                    stable_age: full.stable_age,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a config's text; `source` names it in errors (`serve.yaml:3:1: ...`).
pub fn parse(source: &str, text: &str) -> Result<Settings, Error> {
    // An empty file is a config that sets nothing.
    if text.trim().is_empty() {
        return Ok(Settings::default());
    }
    serde_saphyr::from_str::<Settings>(text).map_err(|e| Error::Usage(render(source, &e)))
}

/// serde-saphyr's error as one line with the place first, plus the nearest known
/// key for an unknown one. Only the first line: the rest quotes the file.
fn render(source: &str, e: &serde_saphyr::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or("YAML error");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let num = |word: &str| -> Option<u64> {
        let at = first.find(word)? + word.len();
        first[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    let (line, column) = (num("line "), num("column "));
    let message = match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest,
        _ => first,
    };
    let place = match (line, column) {
        (Some(l), Some(c)) => format!("{source}:{l}:{c}"),
        (Some(l), None) => format!("{source}:{l}"),
        _ => source.to_string(),
    };
    let mut out = format!("{place}: {message}");
    // serde's "unknown field `x`, expected one of a, b, c": the nearest of those.
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((word, rest)) = rest.split_once('`')
        && let Some((_, known)) = rest.split_once("expected one of ")
        && let Some(m) = crate::profile::diagnose::did_you_mean(
            word,
            known.split(", ").map(|k| k.trim_matches('`')),
        )
    {
        out.push_str(&format!("; did you mean `{m}`?"));
    }
    out
}

/// Reads and parses a config file; relative paths in it are made relative to its
/// folder.
pub fn load(path: &Path) -> Result<Settings, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("--config {}: {e}", path.display())))?;
    let mut s = parse(&path.display().to_string(), &text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    s.rebase(dir);
    Ok(s)
}

impl Settings {
    /// Joins `dir` to every relative path of the file: the folders, the key and TLS
    /// files, a profile given as a YAML file, and folder destinations.
    fn rebase(&mut self, dir: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for p in [
            &mut self.spool,
            &mut self.key_file,
            &mut self.quarantine,
            &mut self.tls_cert,
            &mut self.tls_key,
            &mut self.tls_ca,
            &mut self.tls_client_ca,
            &mut self.tls_client_cert,
            &mut self.tls_client_key,
        ]
        .into_iter()
        .flatten()
        {
            join(p);
        }
        if let Some(p) = &mut self.profile
            && (p.ends_with(".yaml") || p.ends_with(".yml"))
            && Path::new(p.as_str()).is_relative()
        {
            *p = dir.join(&*p).display().to_string();
        }
        for f in self.forward.iter_mut().flatten() {
            if !f.to.contains("://") && Path::new(&f.to).is_relative() {
                f.to = dir.join(&f.to).display().to_string();
            }
        }
    }

    /// These settings with every setting `over` has replacing ours.
    pub fn overridden_by(self, over: Settings) -> Settings {
        Settings {
            listen: over.listen.or(self.listen),
            ae_title: over.ae_title.or(self.ae_title),
            allow: over.allow.or(self.allow),
            spool: over.spool.or(self.spool),
            forward: over.forward.or(self.forward),
            profile: over.profile.or(self.profile),
            key_file: over.key_file.or(self.key_file),
            option: over.option.or(self.option),
            quarantine: over.quarantine.or(self.quarantine),
            quarantine_copy: over.quarantine_copy.or(self.quarantine_copy),
            refuse_quarantined: over.refuse_quarantined.or(self.refuse_quarantined),
            max_associations: over.max_associations.or(self.max_associations),
            max_per_ae: over.max_per_ae.or(self.max_per_ae),
            artim_timeout: over.artim_timeout.or(self.artim_timeout),
            idle_timeout: over.idle_timeout.or(self.idle_timeout),
            max_attempts: over.max_attempts.or(self.max_attempts),
            retry_base_ms: over.retry_base_ms.or(self.retry_base_ms),
            retry_max_ms: over.retry_max_ms.or(self.retry_max_ms),
            tls_cert: over.tls_cert.or(self.tls_cert),
            tls_key: over.tls_key.or(self.tls_key),
            tls_ca: over.tls_ca.or(self.tls_ca),
            tls_client_ca: over.tls_client_ca.or(self.tls_client_ca),
            tls_client_cert: over.tls_client_cert.or(self.tls_client_cert),
            tls_client_key: over.tls_client_key.or(self.tls_client_key),
            stable_age: over.stable_age.or(self.stable_age),
        }
    }

    /// The options serve runs with: the defaults for what nobody set, and an error
    /// for what must be set.
    pub fn into_options(self) -> Result<ServeOptions, Error> {
        let need = |what: &str| {
            Error::Usage(format!(
                "serve needs {what} (on the command line, or as `{}:` in --config)",
                what.trim_start_matches("--")
            ))
        };
        let forward = self.forward.unwrap_or_default();
        if forward.is_empty() {
            return Err(need("--forward"));
        }
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(Error::Usage(
                    "--tls-cert and --tls-key go together (the listener's certificate and its key)"
                        .into(),
                ));
            }
        };
        let tls_client = match (self.tls_client_cert, self.tls_client_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(Error::Usage(
                    "--tls-client-cert and --tls-client-key go together (the certificate \
                     presented to destinations and its key)"
                        .into(),
                ));
            }
        };
        Ok(ServeOptions {
            listen: self.listen.ok_or_else(|| need("--listen"))?,
            ae_title: self.ae_title.unwrap_or_else(|| "DICOM-DEID".into()),
            allow: self.allow.unwrap_or_default(),
            spool: self.spool.ok_or_else(|| need("--spool"))?,
            forward: forward
                .into_iter()
                .map(|f| Forward {
                    dest: f.to,
                    stable_age: Duration::from_secs(f.stable_age.or(self.stable_age).unwrap_or(0)),
                })
                .collect(),
            profile: self.profile.unwrap_or_else(|| "basic".into()),
            key_file: self.key_file,
            options: self.option.unwrap_or_default(),
            quarantine: self.quarantine,
            quarantine_copy: self.quarantine_copy.unwrap_or(false),
            refuse_quarantined: self.refuse_quarantined.unwrap_or(false),
            max_associations: self.max_associations.unwrap_or(16),
            max_per_ae: self.max_per_ae.unwrap_or(4),
            artim: Duration::from_secs(self.artim_timeout.unwrap_or(30)),
            idle: Duration::from_secs(self.idle_timeout.unwrap_or(60)),
            retry: Retry {
                max_attempts: self.max_attempts.unwrap_or(10).max(1),
                base: Duration::from_millis(self.retry_base_ms.unwrap_or(1000)),
                max: Duration::from_millis(self.retry_max_ms.unwrap_or(300_000)),
            },
            tls,
            tls_ca: self.tls_ca,
            tls_client_ca: self.tls_client_ca,
            tls_client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_and_flags_win() {
        let s = parse(
            "serve.yaml",
            "listen: 0.0.0.0:11112\nae-title: DEID-GW\nallow: [PACS@10.0.0.5, CT1]\n\
             spool: spool\nforward:\n  - dimse://R@h:104\n  - to: out\nkey-file: key\n\
             max-attempts: 3\ntls-cert: c.pem\ntls-key: k.pem\n",
        )
        .unwrap();
        assert_eq!(s.allow.as_deref().unwrap().len(), 2);
        let mut s = s;
        s.rebase(Path::new("/etc/gw"));
        assert_eq!(s.spool.as_deref(), Some(Path::new("/etc/gw/spool")));
        assert_eq!(s.forward.as_ref().unwrap()[1].to, "/etc/gw/out");
        assert_eq!(s.forward.as_ref().unwrap()[0].to, "dimse://R@h:104");
        let flags = Settings {
            max_attempts: Some(7),
            ..Settings::default()
        };
        let o = s.overridden_by(flags).into_options().unwrap();
        assert_eq!(o.forward[0].stable_age, Duration::ZERO);
        assert_eq!(o.retry.max_attempts, 7);
        assert_eq!(o.ae_title, "DEID-GW");
        assert_eq!(o.max_per_ae, 4);
        assert!(o.tls.is_some());
    }

    #[test]
    fn stable_age_is_global_or_per_destination() {
        let s = parse(
            "s.yaml",
            "listen: a:1\nspool: s\nstable-age: 30\n\
             forward:\n  - out\n  - {to: dimse://A@h:1, stable-age: 5}\n",
        )
        .unwrap();
        let o = s.into_options().unwrap();
        assert_eq!(o.forward[0].stable_age, Duration::from_secs(30));
        assert_eq!(o.forward[1].stable_age, Duration::from_secs(5));
    }

    #[test]
    fn an_unknown_key_is_named_with_the_nearest_one() {
        let e = parse("serve.yaml", "listen: a:1\nmax-atempts: 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("serve.yaml:2:"), "{e}");
        assert!(e.contains("`max-atempts`"), "{e}");
        assert!(e.contains("did you mean `max-attempts`?"), "{e}");
        let e = parse("s.yaml", "forward:\n  - {to: x, stable: 3}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`stable`"), "{e}");
        let e = parse("s.yaml", "zzzzzz: 1\n").unwrap_err().to_string();
        assert!(e.contains("expected one of listen,"), "{e}");
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn what_must_be_set_is_asked_for() {
        let e = Settings::default()
            .into_options()
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--forward"), "{e}");
        let s = parse("s.yaml", "forward: [out]\nspool: s\n").unwrap();
        let e = s.into_options().err().unwrap().to_string();
        assert!(e.contains("--listen"), "{e}");
    }
}
