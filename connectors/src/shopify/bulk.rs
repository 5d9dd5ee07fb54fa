//! Reading a bulk operation's result: JSONL, one object per line, nested connections flattened
//! with each child carrying `__parentId` and following its parent. A [`Grouper`] is fed the file
//! line by line and hands back one top-level object at a time with all its descendants, so memory
//! stays bounded by the largest object (a variant and its stock levels), not the file. Each group
//! knows the byte offset where what follows it begins: a reader that stops after a group resumes
//! there. A bad line is a per-record problem with its line number; it does not stop the rest.
//! [`Groups`] is the same over any `BufRead`.

use std::collections::HashSet;
use std::io::BufRead;

use serde_json::Value;

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The object's global id (`gid://shopify/ProductVariant/…`); empty for objects without one.
    pub id: String,
    /// The `__parentId`, for children.
    pub parent: Option<String>,
    /// The object without `__parentId`.
    pub value: Value,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A top-level object and every descendant that followed it, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub root: Record,
    pub descendants: Vec<Record>,
    /// Where the file goes on after this group: the byte offset and the lines before it.
    pub next: Resume,
}

/// A place in the file to read on from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    pub offset: u64,
    pub lines: usize,
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error("line {line}: cannot read the file: {message}")]
    Io { line: usize, message: String },
    #[error("line {line}: not a JSON object: {message}")]
    NotJson { line: usize, message: String },
    #[error("line {line}: its parent {parent} is not the object before it or one of its descendants")]
    Orphan { line: usize, parent: String },
}

impl BulkError {
    /// The line it is about.
    pub fn line(&self) -> usize {
        match self {
            BulkError::Io { line, .. } | BulkError::NotJson { line, .. } | BulkError::Orphan { line, .. } => *line,
        }
    }
}

/// Gathers groups from lines fed in file order.
#[derive(Debug, Default)]
pub struct Grouper {
    /// Where the next line starts.
    at: Resume,
    /// The group being gathered, and the ids in it (a child's parent must be among them).
    current: Option<(Group, HashSet<String>)>,
}

impl Grouper {
    /// A grouper for a file read from `at` on (a group boundary, or the start).
    pub fn starting_at(at: Resume) -> Self {
        Grouper { at, current: None }
    }

    /// Feeds the next line (with or without its newline). Returns the group this line closes (the
    /// one before a new top-level object), or this line's problem.
    pub fn push(&mut self, raw: &[u8]) -> Option<Result<Group, BulkError>> {
        let starts = self.at;
        self.at.offset += raw.len() as u64;
        self.at.lines += 1;
        let line = self.at.lines;
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t.trim(),
            Err(e) => return Some(Err(BulkError::NotJson { line, message: e.to_string() })),
        };
        if text.is_empty() {
            return None;
        }
        let mut value: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Some(Err(BulkError::NotJson { line, message: "not an object".into() })),
            Err(e) => return Some(Err(BulkError::NotJson { line, message: e.to_string() })),
        };
        let object = value.as_object_mut()?;
        let parent = object.remove("__parentId").and_then(|p| p.as_str().map(str::to_owned));
        let id = object.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        // A child may name an object nested inline in its parent (a variant's inventory item).
        let inline: Vec<String> =
            object.values().filter_map(|v| v.get("id").and_then(Value::as_str).map(str::to_owned)).collect();
        let record = Record { id, parent, value, line };
        match &record.parent {
            None => {
                let mut ids = HashSet::from([record.id.clone()]);
                ids.extend(inline);
                let fresh = (Group { root: record, descendants: Vec::new(), next: Resume::default() }, ids);
                let mut finished = self.current.replace(fresh)?.0;
                finished.next = starts;
                Some(Ok(finished))
            }
            Some(parent) => match &mut self.current {
                Some((group, ids)) if ids.contains(parent) => {
                    if !record.id.is_empty() {
                        ids.insert(record.id.clone());
                    }
                    ids.extend(inline);
                    group.descendants.push(record);
                    None
                }
                _ => Some(Err(BulkError::Orphan { line, parent: parent.clone() })),
            },
        }
    }

    /// Whether no group is being gathered (at the start, or after [`Grouper::finish`]).
    pub fn is_empty(&self) -> bool {
        self.current.is_none()
    }

    /// The last group, once the file has ended.
    pub fn finish(&mut self) -> Option<Group> {
        let (mut group, _) = self.current.take()?;
        group.next = self.at;
        Some(group)
    }
}

/// Groups of a bulk result read from `reader`, one at a time.
pub struct Groups<R> {
    reader: R,
    grouper: Grouper,
    done: bool,
}

impl<R: BufRead> Groups<R> {
    pub fn new(reader: R) -> Self {
        Groups { reader, grouper: Grouper::default(), done: false }
    }
}

impl<R: BufRead> Iterator for Groups<R> {
    type Item = Result<Group, BulkError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut raw = Vec::new();
        while !self.done {
            raw.clear();
            match self.reader.read_until(b'\n', &mut raw) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    if let Some(out) = self.grouper.push(&raw) {
                        return Some(out);
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(BulkError::Io { line: self.grouper.at.lines + 1, message: e.to_string() }));
                }
            }
        }
        self.grouper.finish().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two products, the first with two variants and one of them with a stock level, the way a
    /// bulk query of products → variants → inventory levels comes back (ids escaped as Shopify
    /// writes them).
    const FILE: &str = concat!(
        r#"{"id":"gid:\/\/shopify\/Product\/11","title":"Tee","updatedAt":"2026-02-01T09:00:00Z"}"#,
        "\n",
        r#"{"id":"gid:\/\/shopify\/ProductVariant\/21","sku":"TEE-S","__parentId":"gid:\/\/shopify\/Product\/11"}"#,
        "\n",
        r#"{"id":"gid:\/\/shopify\/InventoryLevel\/31?inventory_item_id=41","quantities":[{"name":"available","quantity":4}],"__parentId":"gid:\/\/shopify\/ProductVariant\/21"}"#,
        "\n",
        r#"{"id":"gid:\/\/shopify\/ProductVariant\/22","sku":"TEE-M","__parentId":"gid:\/\/shopify\/Product\/11"}"#,
        "\n\n",
        r#"{"id":"gid:\/\/shopify\/Product\/12","title":"Cap"}"#,
        "\n",
    );

    #[test]
    fn children_are_gathered_under_their_top_level_object() {
        let groups: Vec<Group> = Groups::new(FILE.as_bytes()).collect::<Result<_, _>>().expect("valid");
        assert_eq!(groups.len(), 2);
        let tee = &groups[0];
        assert_eq!(tee.root.id, "gid://shopify/Product/11");
        assert_eq!(tee.root.value["title"], "Tee");
        let ids: Vec<&str> = tee.descendants.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "gid://shopify/ProductVariant/21",
                "gid://shopify/InventoryLevel/31?inventory_item_id=41",
                "gid://shopify/ProductVariant/22"
            ]
        );
        assert_eq!(tee.descendants[1].parent.as_deref(), Some("gid://shopify/ProductVariant/21"));
        assert!(tee.descendants[0].value.get("__parentId").is_none());
        assert_eq!((groups[1].root.value["title"].as_str(), groups[1].descendants.len()), (Some("Cap"), 0));
        assert_eq!(groups[1].root.line, 6, "blank lines count");
    }

    #[test]
    fn reading_on_from_a_groups_end_gives_the_rest_and_the_same_line_numbers() {
        let all: Vec<Group> = Groups::new(FILE.as_bytes()).collect::<Result<_, _>>().expect("valid");
        let at = all[0].next;
        assert_eq!(at.lines, 5, "the blank line before the second product is the first's");
        let mut g = Grouper::starting_at(at);
        let rest = &FILE.as_bytes()[at.offset as usize..];
        let mut out: Vec<Group> =
            rest.split_inclusive(|b| *b == b'\n').filter_map(|l| g.push(l)).map(|r| r.expect("valid")).collect();
        out.extend(g.finish());
        assert_eq!(out, all[1..]);
        assert_eq!(out[0].next.offset, FILE.len() as u64);
        // A child nested inline in its parent (a variant's inventory item) may be named as parent.
        let inline = concat!(
            r#"{"id":"gid://shopify/ProductVariant/1","inventoryItem":{"id":"gid://shopify/InventoryItem/5"}}"#,
            "\n",
            r#"{"id":"gid://shopify/InventoryLevel/7","__parentId":"gid://shopify/InventoryItem/5"}"#
        );
        let groups: Vec<Group> = Groups::new(inline.as_bytes()).collect::<Result<_, _>>().expect("valid");
        assert_eq!(groups[0].descendants.len(), 1);
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number_and_the_rest_still_reads() {
        let file = format!(
            "{}\nnot json\n{}\n{}\n",
            r#"{"id":"gid://shopify/Product/1"}"#,
            r#"{"id":"gid://shopify/ProductVariant/9","__parentId":"gid://shopify/Product/404"}"#,
            r#"{"id":"gid://shopify/Product/2"}"#
        );
        let out: Vec<Result<Group, BulkError>> = Groups::new(file.as_bytes()).collect();
        assert!(matches!(out[0], Err(BulkError::NotJson { line: 2, .. })), "{out:?}");
        assert_eq!(out[1], Err(BulkError::Orphan { line: 3, parent: "gid://shopify/Product/404".into() }));
        let roots: Vec<String> = out.iter().filter_map(|g| g.as_ref().ok()).map(|g| g.root.id.clone()).collect();
        assert_eq!(roots, ["gid://shopify/Product/1", "gid://shopify/Product/2"]);
    }

    #[test]
    fn a_large_file_streams_group_by_group() {
        // 10,000 products with 3 variants each, streamed from a reader that makes the lines.
        struct Lines(usize);
        impl std::io::Read for Lines {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 >= 40_000 {
                    return Ok(0);
                }
                let (p, k) = (self.0 / 4, self.0 % 4);
                let line = if k == 0 {
                    format!("{{\"id\":\"gid://shopify/Product/{p}\"}}\n")
                } else {
                    format!(
                        "{{\"id\":\"gid://shopify/ProductVariant/{p}{k}\",\"__parentId\":\"gid://shopify/Product/{p}\"}}\n"
                    )
                };
                self.0 += 1;
                buf[..line.len()].copy_from_slice(line.as_bytes());
                Ok(line.len())
            }
        }
        let mut groups = Groups::new(std::io::BufReader::with_capacity(256, Lines(0)));
        let mut count = 0;
        for g in groups.by_ref() {
            let g = g.expect("valid");
            assert_eq!(g.descendants.len(), 3);
            count += 1;
        }
        assert_eq!(count, 10_000);
        assert!(groups.grouper.current.is_none());
    }
}
