//! Profiles shipped inside the binary, so it works from any directory.

/// (name, YAML text). `basic` is generated from Table E.1-1 by
/// `cargo run --example gen-basic-profile`.
const BUILTINS: [(&str, &str); 1] = [("basic", include_str!("../../profiles/basic.yaml"))];

pub fn get(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
