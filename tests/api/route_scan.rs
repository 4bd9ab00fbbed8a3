//! The routes of the service as written in its source, for comparing with the OpenAPI document
//! (axum cannot list a router's routes).
//!
//! Reads every `.route("path", method_router)` call in `src/**/*.rs` outside `src/emulators/`
//! (the emulators are other services) and the methods of its method router (`get(a).post(b)`,
//! layers ignored). Anything it cannot read for certain is an error naming the file, so a new
//! way of adding routes (`.nest`, `any(…)`, `route_service`) fails the comparison instead of
//! slipping past it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const METHODS: &[&str] = &[
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];
/// Ways of routing this reader does not follow.
const UNREADABLE: &[&str] = &[
    ".nest(",
    ".nest_service(",
    ".route_service(",
    ".fallback_service(",
];
const UNREADABLE_METHODS: &[&str] = &["any", "on", "any_service", "on_service"];

/// `(METHOD, path)` of every route in the crate's source.
pub fn source_routes() -> Result<BTreeSet<(String, String)>, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &src.join("emulators"), &mut files);
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{file:?}: {e}"))?;
        let found = routes_in(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        routes.extend(found);
    }
    Ok(routes)
}

fn collect(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path == skip {
            continue;
        }
        if path.is_dir() {
            collect(&path, skip, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The routes declared in one file's text.
pub fn routes_in(text: &str) -> Result<Vec<(String, String)>, String> {
    let code = without_comments(text);
    if let Some(way) = UNREADABLE.iter().find(|w| code.contains(**w)) {
        return Err(format!(
            "routes added with `{way}…)` cannot be checked against the OpenAPI document: \
             use `.route(…)`, or teach tests/api/route_scan.rs to read it"
        ));
    }
    let mut routes = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(".route(") {
        let args_start = at + ".route(".len();
        let args = balanced(&rest[args_start..])
            .ok_or_else(|| format!("unbalanced `.route(` near {:?}", snippet(&rest[at..])))?;
        let (path, router) = split_path(args)
            .ok_or_else(|| format!("`.route(` without a literal path: {:?}", snippet(args)))?;
        let methods = top_level_calls(router)
            .into_iter()
            .filter_map(|name| {
                if METHODS.contains(&name.as_str()) {
                    Some(Ok(name.to_uppercase()))
                } else if UNREADABLE_METHODS.contains(&name.as_str()) {
                    Some(Err(format!(
                        "`{name}(…)` on route {path}: list the methods"
                    )))
                } else {
                    None // `.layer(…)` and the like
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if methods.is_empty() {
            return Err(format!("route {path}: no method found in {router:?}"));
        }
        routes.extend(methods.into_iter().map(|m| (m, path.clone())));
        rest = &rest[args_start + args.len()..];
    }
    Ok(routes)
}

/// The code with comments removed, raw strings emptied and char literals replaced by `'_'`,
/// so parentheses and quotes left are the code's own (plain string literals stay intact).
fn without_comments(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        match c[i] {
            '/' if next == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            '"' => {
                out.push('"');
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        out.push(c[i]);
                        i += 1;
                    }
                    if i < c.len() {
                        out.push(c[i]);
                        i += 1;
                    }
                }
                out.push('"');
                i += 1;
            }
            'r' if (next == Some('#') || next == Some('"'))
                && !(i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')) =>
            {
                let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
                if c.get(i + 1 + hashes) != Some(&'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                let closing: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while i < c.len()
                    && !c[i..]
                        .iter()
                        .take(closing.len())
                        .copied()
                        .eq(closing.chars())
                {
                    i += 1;
                }
                i += closing.len();
                out.push_str("\"\"");
            }
            '\'' => {
                // `'x'` or `'\n'` is a char literal; `'a` alone is a lifetime.
                let end = if next == Some('\\') {
                    // Skip the escaped character itself: `'\''`.
                    c[i + 3..]
                        .iter()
                        .position(|&q| q == '\'')
                        .map(|p| i + 4 + p)
                } else if c.get(i + 2) == Some(&'\'') {
                    Some(i + 3)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        out.push_str("'_'");
                        i = end;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// The text up to the parenthesis closing the one just opened (exclusive).
fn balanced(text: &str) -> Option<&str> {
    let mut depth = 1;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// `"path", rest` → `(path, rest)`.
fn split_path(args: &str) -> Option<(String, &str)> {
    let args = args.trim_start().strip_prefix('"')?;
    let end = args.find('"')?;
    let rest = args[end + 1..].trim_start().strip_prefix(',')?;
    Some((args[..end].to_string(), rest))
}

/// Names of the functions called at the top level of an expression: `get(a).post(b(c))` →
/// `get`, `post` (not `b`); `axum::routing::get(a)` → `get`.
fn top_level_calls(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut ident = String::new();
    let mut in_string = false;
    for c in expr.chars() {
        if in_string {
            in_string = c != '"';
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => {
                if depth == 0 && !ident.is_empty() {
                    names.push(ident.clone());
                }
                depth += 1;
            }
            ')' => depth -= 1,
            _ => {}
        }
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else if c.is_whitespace() && !ident.is_empty() {
            // `get (x)`: keep the name until the parenthesis.
        } else {
            ident.clear();
        }
    }
    names
}

fn snippet(text: &str) -> String {
    text.chars().take(80).collect()
}

#[test]
fn reads_method_chains_layers_and_comments() {
    let text = r##"
        Router::new()
            .route("/a", get(list).post(create))
            .route(
                "/a/{id}",
                // A comment with .route("/ghost", get(x)) in it.
                delete(remove).layer(Limit::new(get_size(3))),
            )
            .route("/b", axum::routing::patch(update))
            .route("/c", get(|| async { let q = ['"', '\'', ')']; r#"a)"b"# }))
        /* .route("/block", get(x)) */
    "##;
    let routes = routes_in(text).unwrap();
    let expected = [
        ("GET", "/a"),
        ("POST", "/a"),
        ("DELETE", "/a/{id}"),
        ("PATCH", "/b"),
        ("GET", "/c"),
    ];
    assert_eq!(
        routes,
        expected
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .to_vec()
    );
}

#[test]
fn refuses_what_it_cannot_read() {
    for text in [
        r#"Router::new().route("/x", any(handler))"#,
        r#"Router::new().nest("/v1", other())"#,
        r#"Router::new().route(PATH, get(handler))"#,
        r#"Router::new().route("/x", handler_router())"#,
    ] {
        assert!(routes_in(text).is_err(), "{text}");
    }
}
