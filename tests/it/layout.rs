//! The seams stay clean: no import circle between the stages (top-level
//! modules of `src/`), so a change to one stage touches one folder. Read
//! from the source, as a reviewer would: a `crate::x` path outside comments
//! and test modules is a dependency on `x`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src/` with the top-level modules it uses.
fn stage_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let stage = first.trim_end_matches(".rs").to_string();
        if stage == "main" || stage == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        // Test modules may reach anywhere.
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let used = deps.entry(stage.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if !name.is_empty() && name != stage {
                    used.insert(name);
                }
            }
        }
    }
    deps
}

/// A circle through `from`, if any (depth-first search).
fn circle(deps: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        deps: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in deps.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(deps, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(deps, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_stage_imports_a_stage_that_imports_it_back() {
    let deps = stage_dependencies();
    assert!(deps.len() > 20, "read the stages: {:?}", deps.keys());
    assert!(
        deps["cmd"].contains("bake") && deps["cli"].contains("cmd"),
        "the reader sees real dependencies"
    );
    for stage in deps.keys() {
        if let Some(c) = circle(&deps, stage) {
            panic!("import circle: {}", c.join(" → "));
        }
    }
}
