//! What the README and docs/ say that a test can check: the exit statuses each
//! program documents, and every link between the pages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use iot_tests::{binary, repo, run};

const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The statuses `PROGRAM --help` lists under "Exit status:".
fn statuses_in_help(program: &str) -> BTreeSet<u8> {
    let output = run(binary(program).arg("--help"), LIMIT);
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    help.split("Exit status:")
        .nth(1)
        .unwrap_or_else(|| panic!("{program} --help lists no exit statuses"))
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The statuses of the table under a page's "exit status" heading.
fn statuses_in_page(page: &str) -> BTreeSet<u8> {
    let text = std::fs::read_to_string(repo().join("docs").join(page)).unwrap();
    let table = text
        .split_once("exit status |")
        .unwrap_or_else(|| panic!("docs/{page} has no exit status table"))
        .1;
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            l.trim_start_matches('|')
                .split('|')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn the_docs_list_the_exit_statuses_each_program_has() {
    for (program, page) in [("simulate", "simulate.md"), ("load", "load.md")] {
        let help = statuses_in_help(program);
        assert!(help.len() >= 6, "{program}: {help:?}");
        assert_eq!(
            statuses_in_page(page),
            help,
            "docs/{page} against {program} --help"
        );
    }
}

/// The pages: README.md and docs/*.md.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

/// GitHub's anchor for a heading: lower case, punctuation gone, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let mut fenced = false;
    std::fs::read_to_string(page)
        .unwrap()
        .lines()
        .filter(|l| {
            fenced ^= l.starts_with("```");
            !fenced && l.starts_with('#')
        })
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_between_the_pages_leads_somewhere() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap();
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
            } else if !fragment.is_empty() && !anchors(&file).contains(fragment) {
                broken.push(format!("{}: {target} (no such heading)", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
