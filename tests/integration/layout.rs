//! The shape of the code, as a newcomer relies on it: the command line is a leaf that
//! nothing imports, and the top-level modules of `src/` import each other without a
//! cycle, so each can be read (and changed) knowing only what it imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules of `src/` and the files of each.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            modules.insert(name, rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            modules.insert(name, vec![path]);
        }
    }
    modules
}

/// The modules `files` use through `crate::NAME`, outside comments and unit tests.
fn imports(files: &[PathBuf], known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    // `use crate::{a, b::c}`
                    Some(group) => group
                        .split([',', '}'])
                        .map(|n| n.trim().split("::").next().unwrap())
                        .collect(),
                    None => vec![rest
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap()],
                };
                found.extend(
                    names
                        .into_iter()
                        .filter(|n| known.contains(*n))
                        .map(String::from),
                );
            }
        }
    }
    found
}

#[test]
fn no_module_imports_the_command_line_and_no_top_level_modules_import_each_other_in_a_cycle() {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    assert!(
        known.contains("cli") && known.contains("engine"),
        "{known:?}"
    );
    let graph: BTreeMap<&str, BTreeSet<String>> = modules
        .iter()
        .map(|(name, files)| {
            let mut uses = imports(files, &known);
            uses.remove(name);
            (name.as_str(), uses)
        })
        .collect();
    let importers_of_cli: Vec<&&str> = graph
        .iter()
        .filter(|(_, uses)| uses.contains("cli"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        importers_of_cli.is_empty(),
        "these modules import cli: {importers_of_cli:?}"
    );

    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit<'a>(
        name: &'a str,
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|n| *n == name) {
            panic!("import cycle: {} -> {name}", path[at..].join(" -> "));
        }
        if done.contains(name) {
            return;
        }
        path.push(name);
        for next in &graph[name] {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(name);
    }
    let mut done = BTreeSet::new();
    for name in graph.keys() {
        visit(name, &graph, &mut Vec::new(), &mut done);
    }
}
